//! Slack incoming webhooks: `POST <webhook url>` with `{text, blocks}`.
//!
//! The message is readable on a phone lock screen: severity emoji, severity
//! and kind, the summary, then integration, observed vs expected and score.
//! It carries no links (tripline has no UI to link to), `<`, `>` and `&` are
//! escaped so nothing in an alert can become a link or a mention, and
//! unfurling is off.

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use serde_json::json;
use tripline_engine::text::{Safe, MAX_SUMMARY_CHARS};
use tripline_engine::time::format_rfc3339;
use tripline_engine::{Alert, Resolved, Severity};

use super::{EncodeError, Notification, SecretUrl, WireRequest};

/// A configured Slack incoming webhook.
#[derive(Clone, Debug)]
pub struct Slack {
    url: SecretUrl,
    send_resolved: bool,
}

/// Slack's mrkdwn control characters, after input strings' controls, bidi
/// and invisible characters are rendered as `\u{…}` ([`Safe`]).
pub fn escape(s: &str) -> String {
    Safe::new(s, MAX_SUMMARY_CHARS)
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn emoji(s: Severity) -> &'static str {
    match s {
        Severity::Critical => ":red_circle:",
        Severity::Warning => ":warning:",
        Severity::Info => ":information_source:",
    }
}

fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) => format!("{v}"),
        None => "n/a".to_owned(),
    }
}

fn firing(a: &Alert) -> serde_json::Value {
    let head = format!(
        "{} *{}* {} on `{}`",
        emoji(a.severity),
        a.severity.as_str().to_uppercase(),
        a.kind,
        escape(&a.integration_id)
    );
    let text = format!("{head}: {}", escape(&a.summary));
    let mut fields = vec![
        json!({"type": "mrkdwn", "text": format!("*Integration*\n{}", escape(&a.integration_id))}),
        json!({"type": "mrkdwn", "text": format!("*Kind*\n{}", a.kind)}),
        json!({"type": "mrkdwn", "text": format!("*Observed vs expected*\n{} vs {}", num(a.observed), num(a.expected))}),
        json!({"type": "mrkdwn", "text": format!("*Score*\n{}", num(Some(a.score)))}),
    ];
    if let Some(k) = &a.key_id {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Key*\n{}", escape(k))}));
    }
    if let Some(r) = &a.resource {
        fields.push(json!({"type": "mrkdwn", "text": format!("*Resource*\n{}", escape(r))}));
    }
    json!({
        "text": text,
        "unfurl_links": false,
        "unfurl_media": false,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("{head}\n{}", escape(&a.summary))}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
                "detected {} · alert id {}", format_rfc3339(a.detected_at), escape(&a.id))}]},
        ],
    })
}

fn resolved(r: &Resolved) -> serde_json::Value {
    let text = format!(
        ":white_check_mark: *RESOLVED* {} on `{}` (last seen {}, {} repeats folded)",
        r.kind,
        escape(&r.integration_id),
        format_rfc3339(r.last_seen),
        r.folded
    );
    json!({
        "text": text,
        "unfurl_links": false,
        "unfurl_media": false,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("alert id {}", escape(&r.id))}]},
        ],
    })
}

impl Slack {
    pub(crate) fn new(url: SecretUrl, send_resolved: bool) -> Self {
        Slack { url, send_resolved }
    }

    pub(crate) fn encode(&self, n: &Notification) -> Result<Option<WireRequest>, EncodeError> {
        let body = match n {
            Notification::Firing(a) => firing(a),
            Notification::Resolved(_) if !self.send_resolved => return Ok(None),
            Notification::Resolved(r) => resolved(r),
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Some(WireRequest {
            url: self.url.clone(),
            headers,
            body: serde_json::to_vec(&body)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tripline_engine::AlertKind;

    #[test]
    fn hostile_text_arrives_escaped() {
        let s = Slack::new(
            SecretUrl(reqwest::Url::parse("http://127.0.0.1/hook").unwrap()),
            true,
        );
        let id = "x\u{1b}[2J\u{1b}]0;t\u{7}\r\u{8}\0\u{202e}\nmailchimp\u{200b}-sync";
        let a = Alert {
            id: "id".into(),
            kind: AlertKind::UnknownIntegration,
            severity: Severity::Warning,
            integration_id: id.into(),
            key_id: None,
            resource: Some("contacts".into()),
            detected_at: 0,
            window_start: 0,
            window_end: 0,
            observed: None,
            expected: None,
            score: 1.0,
            summary: format!("unregistered integration {id} is calling"),
            evidence: Default::default(),
        };
        let req = s
            .encode(&Notification::Firing(std::sync::Arc::new(a)))
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let mut texts = vec![v["text"].as_str().unwrap().to_owned()];
        for b in v["blocks"].as_array().into_iter().flatten() {
            texts.push(b.to_string());
        }
        for t in &texts {
            let t = t.replace("\\n", "");
            assert!(!tripline_engine::text::has_invisible(&t), "{t:?}");
        }
        assert!(texts[0].contains("\\u{1b}[2J"), "{}", texts[0]);
    }

    #[test]
    fn message_is_readable_and_link_free() {
        let s = Slack::new(
            SecretUrl(reqwest::Url::parse("http://127.0.0.1/hook").unwrap()),
            false,
        );
        let a = Alert {
            id: "id".into(),
            kind: AlertKind::CallSpike,
            severity: Severity::Critical,
            integration_id: "<!channel>".into(),
            key_id: None,
            resource: Some("contacts".into()),
            detected_at: 0,
            window_start: 0,
            window_end: 0,
            observed: Some(812.0),
            expected: Some(38.5),
            score: 0.99,
            summary: "see <http://evil|here> & more".into(),
            evidence: Default::default(),
        };
        let req = s
            .encode(&Notification::Firing(std::sync::Arc::new(a)))
            .unwrap()
            .unwrap();
        let body = String::from_utf8(req.body).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let text = v["text"].as_str().unwrap();
        assert!(
            text.starts_with(":red_circle: *CRITICAL* call_spike on `&lt;!channel&gt;`"),
            "{text}"
        );
        assert!(!body.contains("<http"), "{body}");
        assert!(!body.contains("<!channel>"), "{body}");
        assert!(body.contains("812 vs 38.5"), "{body}");
        let r = Resolved {
            id: "id".into(),
            kind: AlertKind::CallSpike,
            severity: Severity::Critical,
            integration_id: "x".into(),
            last_seen: 0,
            resolved_at: 0,
            folded: 0,
        };
        assert!(s
            .encode(&Notification::Resolved(std::sync::Arc::new(r)))
            .unwrap()
            .is_none());
    }
}
