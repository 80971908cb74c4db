//! PagerDuty Events API v2: `POST <events_url>` (default
//! `https://events.pagerduty.com/v2/enqueue`).
//!
//! A firing alert is `{"routing_key", "event_action": "trigger", "dedup_key":
//! <alert id>, "payload": {summary, source, severity, timestamp, component,
//! group, class, custom_details}, "client": "tripline", "links": [runbook,
//! dashboard]}`; a resolution is
//! `{"routing_key", "event_action": "resolve", "dedup_key": <alert id>}`.
//! Every input string a person sees (summary, source, component, group and
//! the alert in `custom_details`) is rendered escaped (`Safe`).
//! The dedup key is the alert id, so a replayed alert updates the same
//! PagerDuty incident instead of opening a second one.

use std::borrow::Cow;

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use serde::Serialize;
use tripline_engine::text::{safe, Safe};
use tripline_engine::time::format_rfc3339;
use tripline_engine::{Alert, Severity};

use super::human::for_humans;
use super::links::{alertname, Links};
use super::{EncodeError, Notification, SecretUrl, WireRequest};
use crate::secret::Secret;

/// PagerDuty truncates summaries at 1024 characters; we do it ourselves so
/// the cut is on a character boundary.
const MAX_SUMMARY_CHARS: usize = 1024;

/// A configured PagerDuty service.
#[derive(Clone, Debug)]
pub struct PagerDuty {
    url: SecretUrl,
    routing_key: Secret,
    links: Links,
}

#[derive(Serialize)]
struct Link {
    href: String,
    text: &'static str,
}

#[derive(Serialize)]
struct Event<'a> {
    routing_key: &'a str,
    event_action: &'static str,
    dedup_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<Payload<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<Link>,
}

#[derive(Serialize)]
struct Payload<'a> {
    summary: String,
    source: String,
    severity: &'static str,
    timestamp: String,
    component: String,
    group: String,
    class: &'static str,
    custom_details: Details<'a>,
}

/// `custom_details`: the alert object plus the shared label contract.
#[derive(Serialize)]
struct Details<'a> {
    alertname: &'static str,
    #[serde(flatten)]
    alert: Cow<'a, Alert>,
}

/// PagerDuty's severities are critical, error, warning and info.
fn pd_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

impl PagerDuty {
    pub(crate) fn new(url: SecretUrl, routing_key: Secret, links: Links) -> Self {
        PagerDuty {
            url,
            routing_key,
            links,
        }
    }

    pub(crate) fn encode(&self, n: &Notification) -> Result<WireRequest, EncodeError> {
        let event = match n {
            Notification::Firing(a) => Event {
                routing_key: self.routing_key.expose(),
                event_action: "trigger",
                dedup_key: &a.id,
                payload: Some(Payload {
                    summary: Safe::new(&a.summary, MAX_SUMMARY_CHARS).to_string(),
                    source: safe(&a.integration_id).to_string(),
                    severity: pd_severity(a.severity),
                    timestamp: format_rfc3339(a.detected_at),
                    component: safe(a.resource.as_deref().unwrap_or("api")).to_string(),
                    group: safe(&a.integration_id).to_string(),
                    class: a.kind.as_str(),
                    custom_details: Details {
                        alertname: alertname(a.kind),
                        alert: for_humans(a),
                    },
                }),
                client: Some("tripline"),
                links: std::iter::once(Link {
                    href: self.links.runbook(a.kind),
                    text: "runbook",
                })
                .chain(self.links.dashboard(&a.integration_id).map(|href| Link {
                    href,
                    text: "dashboard",
                }))
                .collect(),
            },
            Notification::Resolved(r) => Event {
                routing_key: self.routing_key.expose(),
                event_action: "resolve",
                dedup_key: &r.id,
                payload: None,
                client: None,
                links: Vec::new(),
            },
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(WireRequest {
            url: self.url.clone(),
            headers,
            body: serde_json::to_vec(&event)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tripline_engine::{AlertKind, Resolved};

    #[test]
    fn hostile_text_arrives_escaped() {
        let pd = PagerDuty::new(
            SecretUrl(reqwest::Url::parse("http://127.0.0.1/v2/enqueue").unwrap()),
            Secret::new("rk"),
            Links::default(),
        );
        let id = "x\u{1b}[2J\r\u{8}\0\u{202e}\nmailchimp\u{200b}-sync";
        let a = Alert {
            id: "id1".into(),
            kind: AlertKind::UnknownIntegration,
            severity: Severity::Warning,
            integration_id: id.into(),
            key_id: None,
            resource: None,
            detected_at: 0,
            window_start: 0,
            window_end: 0,
            observed: None,
            expected: None,
            score: 1.0,
            summary: format!("unregistered integration {id}"),
            evidence: Default::default(),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&pd.encode(&Notification::Firing(Arc::new(a))).unwrap().body)
                .unwrap();
        for field in ["summary", "source"] {
            let t = v["payload"][field].as_str().unwrap();
            assert!(!tripline_engine::text::has_invisible(t), "{field}: {t:?}");
            assert!(t.contains("\\u{200b}"), "{field}: {t}");
        }
    }

    #[test]
    fn trigger_and_resolve_shapes() {
        let pd = PagerDuty::new(
            SecretUrl(reqwest::Url::parse("http://127.0.0.1/v2/enqueue").unwrap()),
            Secret::new("rk"),
            Links::new("https://docs.example/ops.md", None),
        );
        let a = Alert {
            id: "id1".into(),
            kind: AlertKind::ErrorBurst,
            severity: Severity::Warning,
            integration_id: "hubspot".into(),
            key_id: None,
            resource: None,
            detected_at: 0,
            window_start: 0,
            window_end: 0,
            observed: None,
            expected: None,
            score: 0.5,
            summary: "é".repeat(2000),
            evidence: Default::default(),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&pd.encode(&Notification::Firing(Arc::new(a))).unwrap().body)
                .unwrap();
        assert_eq!(v["event_action"], "trigger");
        assert_eq!(v["dedup_key"], "id1");
        assert_eq!(v["routing_key"], "rk");
        assert_eq!(v["payload"]["severity"], "warning");
        assert_eq!(v["payload"]["source"], "hubspot");
        assert_eq!(v["payload"]["class"], "error_burst");
        assert_eq!(
            v["payload"]["summary"].as_str().unwrap().chars().count(),
            1024
        );
        assert_eq!(v["payload"]["custom_details"]["kind"], "error_burst");
        assert_eq!(
            v["payload"]["custom_details"]["alertname"],
            "TriplineErrorBurst"
        );
        assert_eq!(
            v["links"],
            serde_json::json!([{"href": "https://docs.example/ops.md#kind-error_burst", "text": "runbook"}])
        );
        let r = Resolved {
            id: "id1".into(),
            kind: AlertKind::ErrorBurst,
            severity: Severity::Warning,
            integration_id: "hubspot".into(),
            last_seen: 0,
            resolved_at: 0,
            folded: 0,
        };
        let v: serde_json::Value = serde_json::from_slice(
            &pd.encode(&Notification::Resolved(Arc::new(r)))
                .unwrap()
                .body,
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"routing_key":"rk","event_action":"resolve","dedup_key":"id1"})
        );
    }
}
