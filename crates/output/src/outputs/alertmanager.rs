//! Alertmanager v2: `POST <url>/api/v2/alerts` with a JSON array of
//! `{labels, annotations, startsAt, endsAt, generatorURL}`.
//!
//! Labels (identical on fire and resolve, so Alertmanager's fingerprint
//! matches): `alertname` = `Tripline` + the CamelCase kind
//! (`TriplineCallSpike`, see `links.rs`), `kind`, `severity`,
//! `integration_id`, `tripline_id` = the alert id, plus any configured static
//! labels. Group on `integration_id` (one notification per integration).
//! Everything else (summary, description, `runbook_url`, `dashboard_url`,
//! observed, expected, score, key, resource, window) goes into annotations.
//!
//! Firing alerts are sent with `endsAt` = now + `alert_ttl_seconds`.
//! Alertmanager treats an alert whose `endsAt` has passed as resolved, so
//! while an episode is open the dispatcher re-pushes every open alert each
//! `repush_interval_seconds` (in one request), moving `endsAt` forward. If
//! tripline dies, its alerts resolve by themselves after the TTL instead of
//! firing forever. A resolution re-sends the same labels with `endsAt` = now.
//!
//! Alertmanager never notifies an alert that fired and resolved between two
//! flushes of its group (its `DedupStage`: "no need to notify the receiver
//! since it doesn't know about them"), and it keeps the later of two explicit
//! `endsAt`, so a resolution cannot be post-dated. An episode that resolves
//! sooner than `group_wait`/`group_interval` after it fired (a backlog caught
//! up in seconds, a replay) would then never page. So the dispatcher holds a
//! resolution that comes sooner than `min_firing_seconds` after the alert's
//! first push until then, re-pushing the alert meanwhile.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use serde::Serialize;
use tokio::time::Instant;
use tripline_engine::text::{safe, Safe, MAX_SUMMARY_CHARS};
use tripline_engine::time::format_rfc3339;
use tripline_engine::{Alert, AlertKind, EvidenceValue, Resolved};

use super::links::{alertname, Links};
use super::{EncodeError, Notification, SecretUrl, WireRequest};

/// Labels tripline sets itself.
pub const RESERVED_LABELS: [&str; 5] = [
    "alertname",
    "kind",
    "severity",
    "integration_id",
    "tripline_id",
];

/// A configured Alertmanager.
#[derive(Clone, Debug)]
pub struct Alertmanager {
    endpoint: SecretUrl,
    bearer: Option<HeaderValue>,
    labels: BTreeMap<String, String>,
    generator_url: Option<String>,
    pub(crate) repush_interval: Duration,
    ttl: Duration,
    pub(crate) min_firing: Duration,
    pub(crate) max_open: usize,
    links: Links,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert<'a> {
    labels: BTreeMap<&'a str, Cow<'a, str>>,
    annotations: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    starts_at: Option<String>,
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
}

/// `text` escaped for a label value, borrowed when already clean.
fn safe_cow(text: &str) -> Cow<'_, str> {
    let s = safe(text);
    if s.is_clean() {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(s.to_string())
    }
}

/// Checks a Prometheus label name.
pub fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// `<base>/api/v2/alerts`, keeping any path prefix of `base`.
pub(crate) fn alerts_endpoint(
    mut base: Url,
    prefix: &str,
    problems: &mut Vec<String>,
) -> Option<Url> {
    if !base.path().ends_with('/') {
        let p = format!("{}/", base.path());
        base.set_path(&p);
    }
    match base.join("api/v2/alerts") {
        Ok(u) => Some(u),
        Err(e) => {
            problems.push(format!(
                "{prefix}.url cannot be extended with /api/v2/alerts: {e}"
            ));
            None
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn evidence_text(v: &EvidenceValue) -> String {
    match v {
        EvidenceValue::Null => "null".to_owned(),
        EvidenceValue::Bool(b) => b.to_string(),
        EvidenceValue::Int(i) => i.to_string(),
        EvidenceValue::UInt(u) => u.to_string(),
        EvidenceValue::Num(n) => fmt_num(*n),
        EvidenceValue::Str(s) => safe(s).to_string(),
        EvidenceValue::List(l) => {
            let parts: Vec<String> = l.iter().map(|s| safe(s).to_string()).collect();
            parts.join(",")
        }
    }
}

/// One-paragraph description: the figure, the subject and the evidence.
pub(crate) fn description(a: &Alert) -> String {
    let mut s = String::new();
    match (a.observed, a.expected) {
        (Some(o), Some(e)) => {
            let _ = write!(s, "observed {} vs expected {}; ", fmt_num(o), fmt_num(e));
        }
        (Some(o), None) => {
            let _ = write!(s, "observed {}; ", fmt_num(o));
        }
        _ => {}
    }
    let _ = write!(s, "score {}", fmt_num(a.score));
    if let Some(k) = &a.key_id {
        let _ = write!(s, "; key {}", safe(k));
    }
    if let Some(r) = &a.resource {
        let _ = write!(s, "; resource {}", safe(r));
    }
    if !a.evidence.is_empty() {
        s.push_str("; evidence: ");
        let parts: Vec<String> = a
            .evidence
            .iter()
            .map(|(k, v)| format!("{k}={}", evidence_text(v)))
            .collect();
        s.push_str(&parts.join(", "));
    }
    s
}

/// How long alerts live in Alertmanager and how many are re-pushed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub repush_interval: Duration,
    pub ttl: Duration,
    /// Shortest time an alert stays firing in Alertmanager (see the module docs).
    pub min_firing: Duration,
    pub max_open: usize,
}

impl Alertmanager {
    pub(crate) fn new(
        endpoint: SecretUrl,
        bearer: Option<HeaderValue>,
        labels: BTreeMap<String, String>,
        generator_url: Option<String>,
        timing: Timing,
        links: Links,
    ) -> Self {
        Alertmanager {
            endpoint,
            bearer,
            labels,
            generator_url,
            repush_interval: timing.repush_interval,
            ttl: timing.ttl,
            min_firing: timing.min_firing,
            max_open: timing.max_open,
            links,
        }
    }

    /// Where alerts are posted.
    #[cfg(test)]
    pub(crate) fn endpoint(&self) -> &SecretUrl {
        &self.endpoint
    }

    /// The labels. `integration_id` is input: rendered with [`Safe`]
    /// (the same on fire and resolve, so the fingerprint still matches).
    fn labels<'a>(
        &'a self,
        kind: AlertKind,
        severity: &'static str,
        integration: &'a str,
        id: &'a str,
    ) -> BTreeMap<&'a str, Cow<'a, str>> {
        let mut l: BTreeMap<&str, Cow<'a, str>> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_str())))
            .collect();
        l.insert("alertname", Cow::Borrowed(alertname(kind)));
        l.insert("kind", Cow::Borrowed(kind.as_str()));
        l.insert("severity", Cow::Borrowed(severity));
        l.insert("integration_id", safe_cow(integration));
        l.insert("tripline_id", safe_cow(id));
        l
    }

    /// `runbook_url` and, when configured, `dashboard_url`.
    fn link_annotations(
        &self,
        kind: AlertKind,
        integration: &str,
        ann: &mut BTreeMap<&'static str, String>,
    ) {
        ann.insert("runbook_url", self.links.runbook(kind));
        if let Some(d) = self.links.dashboard(integration) {
            ann.insert("dashboard_url", d);
        }
    }

    fn firing<'a>(&'a self, a: &'a Alert, now_ms: i64) -> PostableAlert<'a> {
        let mut ann = BTreeMap::new();
        ann.insert(
            "summary",
            Safe::new(&a.summary, MAX_SUMMARY_CHARS).to_string(),
        );
        ann.insert("description", description(a));
        ann.insert("score", fmt_num(a.score));
        if let Some(o) = a.observed {
            ann.insert("observed", fmt_num(o));
        }
        if let Some(e) = a.expected {
            ann.insert("expected", fmt_num(e));
        }
        if let Some(k) = &a.key_id {
            ann.insert("key_id", safe(k).to_string());
        }
        if let Some(r) = &a.resource {
            ann.insert("resource", safe(r).to_string());
        }
        ann.insert("window_start", format_rfc3339(a.window_start));
        ann.insert("window_end", format_rfc3339(a.window_end));
        ann.insert("detected_at", format_rfc3339(a.detected_at));
        self.link_annotations(a.kind, &a.integration_id, &mut ann);
        let ttl_ms = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX / 2);
        PostableAlert {
            labels: self.labels(a.kind, a.severity.as_str(), &a.integration_id, &a.id),
            annotations: ann,
            // Event time may run ahead of the wall clock (skewed producers);
            // Alertmanager rejects startsAt after endsAt, so clamp.
            starts_at: Some(format_rfc3339(a.detected_at.min(now_ms))),
            ends_at: format_rfc3339(now_ms.saturating_add(ttl_ms)),
            generator_url: self.generator_url.as_deref(),
        }
    }

    fn request(&self, body: Vec<u8>) -> WireRequest {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(b) = &self.bearer {
            headers.insert(AUTHORIZATION, b.clone());
        }
        WireRequest {
            url: self.endpoint.clone(),
            headers,
            body,
        }
    }

    /// One request carrying every alert in `alerts` as firing.
    pub(crate) fn encode_firing(
        &self,
        alerts: &[&Alert],
        now_ms: i64,
    ) -> Result<WireRequest, EncodeError> {
        let body: Vec<PostableAlert<'_>> = alerts.iter().map(|a| self.firing(a, now_ms)).collect();
        Ok(self.request(serde_json::to_vec(&body)?))
    }

    /// A resolution: the same labels, `endsAt` = now. `opened` is the alert
    /// that opened the episode when still known, to keep its annotations.
    /// `resolved_at` is the event time the episode ended (the notification
    /// may have been held, see the module docs).
    pub(crate) fn encode_resolved(
        &self,
        r: &Resolved,
        opened: Option<&Alert>,
        now_ms: i64,
    ) -> Result<WireRequest, EncodeError> {
        let mut p = match opened {
            Some(a) => self.firing(a, now_ms),
            None => {
                let mut ann = BTreeMap::new();
                ann.insert(
                    "summary",
                    format!("{} on {} resolved", r.kind, safe(&r.integration_id)),
                );
                self.link_annotations(r.kind, &r.integration_id, &mut ann);
                PostableAlert {
                    labels: self.labels(r.kind, r.severity.as_str(), &r.integration_id, &r.id),
                    annotations: ann,
                    starts_at: None,
                    ends_at: String::new(),
                    generator_url: self.generator_url.as_deref(),
                }
            }
        };
        p.annotations
            .insert("last_seen", format_rfc3339(r.last_seen));
        p.annotations.insert("folded", r.folded.to_string());
        p.annotations
            .insert("resolved_at", format_rfc3339(r.resolved_at));
        p.ends_at = format_rfc3339(now_ms);
        Ok(self.request(serde_json::to_vec(&[p])?))
    }

    pub(crate) fn encode(&self, n: &Notification, now_ms: i64) -> Result<WireRequest, EncodeError> {
        match n {
            Notification::Firing(a) => self.encode_firing(&[a.as_ref()], now_ms),
            Notification::Resolved(r) => self.encode_resolved(r, None, now_ms),
        }
    }
}

/// Open episodes of one Alertmanager output, for re-pushing, with when each
/// was first pushed. Bounded: the oldest opened is forgotten first (it then
/// resolves in Alertmanager after its TTL).
#[derive(Debug, Default)]
pub(crate) struct OpenAlerts {
    max: usize,
    by_id: HashMap<String, (Arc<Alert>, Instant)>,
    order: VecDeque<String>,
}

impl OpenAlerts {
    pub(crate) fn new(max: usize) -> Self {
        OpenAlerts {
            max: max.max(1),
            by_id: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn open(&mut self, a: Arc<Alert>, pushed: Instant) {
        if self.by_id.contains_key(&a.id) {
            return;
        }
        while self.by_id.len() >= self.max {
            match self.order.pop_front() {
                Some(old) => {
                    self.by_id.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(a.id.clone());
        self.by_id.insert(a.id.clone(), (a, pushed));
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Alert>> {
        self.by_id.get(id).map(|(a, _)| Arc::clone(a))
    }

    /// Most open episodes remembered.
    pub(crate) fn capacity(&self) -> usize {
        self.max
    }

    /// When the alert was first pushed, while it is open.
    pub(crate) fn pushed_at(&self, id: &str) -> Option<Instant> {
        self.by_id.get(id).map(|(_, at)| *at)
    }

    pub(crate) fn close(&mut self, id: &str) {
        if self.by_id.remove(id).is_some() {
            self.order.retain(|o| o != id);
        }
    }

    pub(crate) fn all(&self) -> Vec<Arc<Alert>> {
        self.order
            .iter()
            .filter_map(|id| self.by_id.get(id).map(|(a, _)| Arc::clone(a)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tripline_engine::time::parse_rfc3339;
    use tripline_engine::Severity;

    fn am() -> Alertmanager {
        let mut problems = Vec::new();
        let url = alerts_endpoint(
            Url::parse("http://am:9093/prefix").unwrap(),
            "x",
            &mut problems,
        )
        .unwrap();
        assert_eq!(url.as_str(), "http://am:9093/prefix/api/v2/alerts");
        let mut labels = BTreeMap::new();
        labels.insert("env".to_owned(), "prod".to_owned());
        Alertmanager::new(
            SecretUrl(url),
            None,
            labels,
            None,
            Timing {
                repush_interval: Duration::from_secs(60),
                ttl: Duration::from_secs(300),
                min_firing: Duration::from_secs(360),
                max_open: 10,
            },
            Links::new(
                "https://docs.example/ops.md",
                Some("https://grafana.example/d/t?var-integration={integration_id}"),
            ),
        )
    }

    fn alert() -> Alert {
        let mut evidence = tripline_engine::Evidence::new();
        evidence.insert("baseline_mean".into(), 38.5.into());
        Alert {
            id: "9c1f".into(),
            kind: AlertKind::CallSpike,
            severity: Severity::Critical,
            integration_id: "mailchimp-sync".into(),
            key_id: Some("k1".into()),
            resource: None,
            detected_at: parse_rfc3339("2026-11-29T03:12:00Z").unwrap(),
            window_start: 0,
            window_end: 0,
            observed: Some(812.0),
            expected: Some(38.5),
            score: 0.99,
            summary: "spike".into(),
            evidence,
        }
    }

    #[test]
    fn firing_and_resolved_share_labels() {
        let am = am();
        let a = alert();
        let now = parse_rfc3339("2026-11-29T03:13:00Z").unwrap();
        let fire: serde_json::Value =
            serde_json::from_slice(&am.encode_firing(&[&a], now).unwrap().body).unwrap();
        let f = &fire[0];
        assert_eq!(f["labels"]["alertname"], "TriplineCallSpike");
        assert_eq!(f["labels"]["kind"], "call_spike");
        assert_eq!(f["labels"]["severity"], "critical");
        assert_eq!(f["labels"]["integration_id"], "mailchimp-sync");
        assert_eq!(
            f["annotations"]["runbook_url"],
            "https://docs.example/ops.md#kind-call_spike"
        );
        assert_eq!(
            f["annotations"]["dashboard_url"],
            "https://grafana.example/d/t?var-integration=mailchimp-sync"
        );
        assert_eq!(f["labels"]["tripline_id"], "9c1f");
        assert_eq!(f["labels"]["env"], "prod");
        assert_eq!(f["annotations"]["summary"], "spike");
        assert_eq!(
            f["annotations"]["description"],
            "observed 812 vs expected 38.5; score 0.99; key k1; evidence: baseline_mean=38.5"
        );
        assert_eq!(f["startsAt"], "2026-11-29T03:12:00.000Z");
        assert_eq!(f["endsAt"], "2026-11-29T03:18:00.000Z");
        assert!(f.get("generatorURL").is_none());

        let r = Resolved {
            id: a.id.clone(),
            kind: a.kind,
            severity: a.severity,
            integration_id: a.integration_id.clone(),
            last_seen: 0,
            resolved_at: parse_rfc3339("2026-11-29T03:12:40Z").unwrap(),
            folded: 2,
        };
        for opened in [Some(&a), None] {
            let res: serde_json::Value =
                serde_json::from_slice(&am.encode_resolved(&r, opened, now).unwrap().body).unwrap();
            assert_eq!(res[0]["labels"], f["labels"]);
            assert_eq!(
                res[0]["annotations"]["runbook_url"],
                f["annotations"]["runbook_url"]
            );
            assert_eq!(res[0]["endsAt"], "2026-11-29T03:13:00.000Z");
            assert_eq!(
                res[0]["annotations"]["resolved_at"],
                "2026-11-29T03:12:40.000Z"
            );
        }
    }

    #[test]
    fn starts_at_is_clamped_to_now() {
        let a = alert();
        let now = a.detected_at - 10_000;
        let v: serde_json::Value =
            serde_json::from_slice(&am().encode_firing(&[&a], now).unwrap().body).unwrap();
        assert_eq!(v[0]["startsAt"], format_rfc3339(now));
    }

    #[test]
    fn label_names() {
        for ok in ["env", "_x", "a1_b"] {
            assert!(valid_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "__x", "é"] {
            assert!(!valid_label_name(bad), "{bad}");
        }
    }

    #[test]
    fn open_alerts_are_bounded() {
        let mut o = OpenAlerts::new(2);
        let t0 = Instant::now();
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            let mut a = alert();
            a.id = id.into();
            o.open(Arc::new(a), t0 + Duration::from_secs(i as u64));
        }
        assert_eq!(
            o.all().iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
        o.close("b");
        assert_eq!(o.all().len(), 1);
        assert!(o.get("c").is_some());
        assert_eq!(o.pushed_at("c"), Some(t0 + Duration::from_secs(2)));
        assert_eq!(o.pushed_at("b"), None);
        assert_eq!(o.capacity(), 2);
    }
}
