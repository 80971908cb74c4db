//! Slack incoming webhooks: `POST <webhook url>` with `{text, blocks}`.
//!
//! The message is readable on a phone lock screen: severity emoji, severity
//! and kind, the summary, then integration, observed vs expected and score,
//! then the runbook and (when configured) dashboard links. Text from the
//! alert never becomes a link or a mention: `<`, `>` and `&` are escaped, the
//! only links are the configured runbook/dashboard URLs, and unfurling is
//! off. Each text is capped at Slack's limit (3000 characters per section,
//! 2000 per field) on a character boundary; a cut text says so and points
//! to the dashboard, which has the full alert.

use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use serde_json::json;
use tripline_engine::text::Safe;
use tripline_engine::time::format_rfc3339;
use tripline_engine::{Alert, Resolved, Severity};

use super::links::Links;
use super::{EncodeError, Notification, SecretUrl, WireRequest};

/// Slack's limit on a section's text.
pub const MAX_SECTION_CHARS: usize = 3000;
/// Slack's limit on one section field.
pub const MAX_FIELD_CHARS: usize = 2000;
/// Appended to a cut text.
const CUT_MARK: &str = "… (truncated; full alert on the dashboard)";

/// A configured Slack incoming webhook.
#[derive(Clone, Debug)]
pub struct Slack {
    url: SecretUrl,
    send_resolved: bool,
    links: Links,
}

/// Slack's mrkdwn control characters, after input strings' controls, bidi
/// and invisible characters are rendered as `\u{…}` ([`Safe`]).
pub fn escape(s: &str) -> String {
    escape_within(s, MAX_SECTION_CHARS)
}

/// [`escape`] for an id, key or resource: at most
/// [`tripline_engine::text::MAX_FIELD_CHARS`] characters before the
/// entities.
pub fn escape_id(s: &str) -> String {
    escape_within(s, tripline_engine::text::MAX_FIELD_CHARS)
}

fn escape_within(s: &str, max: usize) -> String {
    Safe::new(s, max)
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `s` cut to at most `max` characters (including [`CUT_MARK`] when cut),
/// never inside an `&…;` entity produced by [`escape`].
pub fn cap(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let keep = max.saturating_sub(CUT_MARK.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    if let Some(amp) = out.rfind('&') {
        if !out[amp..].contains(';') {
            out.truncate(amp);
        }
    }
    out.push_str(CUT_MARK);
    out
}

/// A Slack link to a configured URL. `&`, `<`, `>` are escaped as Slack asks
/// and `|` is percent-encoded so the URL cannot change the link text.
fn link(url: &str, text: &str) -> String {
    format!("<{}|{text}>", escape(url).replace('|', "%7C"))
}

fn field(label: &str, value: &str) -> serde_json::Value {
    json!({"type": "mrkdwn", "text": cap(&format!("*{label}*\n{value}"), MAX_FIELD_CHARS)})
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

fn links_line(links: &Links, kind: tripline_engine::AlertKind, integration: &str) -> String {
    let mut parts = vec![link(&links.runbook(kind), "Runbook")];
    if let Some(d) = links.dashboard(integration) {
        parts.push(link(&d, "Dashboard (full alert)"));
    }
    parts.join(" · ")
}

fn firing(a: &Alert, links: &Links) -> serde_json::Value {
    let head = format!(
        "{} *{}* {} on `{}`",
        emoji(a.severity),
        a.severity.as_str().to_uppercase(),
        a.kind,
        escape_id(&a.integration_id)
    );
    let text = cap(
        &format!("{head}: {}", escape(&a.summary)),
        MAX_SECTION_CHARS,
    );
    let mut fields = vec![
        field("Integration", &escape_id(&a.integration_id)),
        field("Kind", a.kind.as_str()),
        field(
            "Observed vs expected",
            &format!("{} vs {}", num(a.observed), num(a.expected)),
        ),
        field("Score", &num(Some(a.score))),
    ];
    if let Some(k) = &a.key_id {
        fields.push(field("Key", &escape_id(k)));
    }
    if let Some(r) = &a.resource {
        fields.push(field("Resource", &escape_id(r)));
    }
    let section = cap(
        &format!("{head}\n{}", escape(&a.summary)),
        MAX_SECTION_CHARS,
    );
    let context = cap(
        &format!(
            "detected {} · alert id {} · {}",
            format_rfc3339(a.detected_at),
            escape_id(&a.id),
            links_line(links, a.kind, &a.integration_id)
        ),
        MAX_SECTION_CHARS,
    );
    json!({
        "text": text,
        "unfurl_links": false,
        "unfurl_media": false,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    })
}

fn resolved(r: &Resolved) -> serde_json::Value {
    let text = cap(
        &format!(
            ":white_check_mark: *RESOLVED* {} on `{}` (last seen {}, {} repeats folded)",
            r.kind,
            escape_id(&r.integration_id),
            format_rfc3339(r.last_seen),
            r.folded
        ),
        MAX_SECTION_CHARS,
    );
    json!({
        "text": text,
        "unfurl_links": false,
        "unfurl_media": false,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": cap(&format!("alert id {}", escape_id(&r.id)), MAX_SECTION_CHARS)}]},
        ],
    })
}

impl Slack {
    pub(crate) fn new(url: SecretUrl, send_resolved: bool, links: Links) -> Self {
        Slack {
            url,
            send_resolved,
            links,
        }
    }

    pub(crate) fn encode(&self, n: &Notification) -> Result<Option<WireRequest>, EncodeError> {
        let body = match n {
            Notification::Firing(a) => firing(a, &self.links),
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
            Links::default(),
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
    fn message_is_readable_and_only_configured_links() {
        let s = Slack::new(
            SecretUrl(reqwest::Url::parse("http://127.0.0.1/hook").unwrap()),
            false,
            Links::new(
                "https://docs.example/ops.md",
                Some("https://grafana.example/d/t?a=1&var-integration={integration_id}"),
            ),
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
        assert!(!body.contains("<http://evil"), "{body}");
        assert!(!body.contains("<!channel>"), "{body}");
        assert!(body.contains("812 vs 38.5"), "{body}");
        assert!(
            body.contains("<https://docs.example/ops.md#kind-call_spike|Runbook>"),
            "{body}"
        );
        assert!(
            body.contains(
                "<https://grafana.example/d/t?a=1&amp;var-integration=%3C%21channel%3E|Dashboard (full alert)>"
            ),
            "{body}"
        );
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

    #[test]
    fn long_texts_are_capped_per_section_without_splitting_entities() {
        let s = Slack::new(
            SecretUrl(reqwest::Url::parse("http://127.0.0.1/hook").unwrap()),
            true,
            Links::default(),
        );
        let mut a = Alert {
            id: "id".into(),
            kind: AlertKind::CallSpike,
            severity: Severity::Critical,
            integration_id: "i".into(),
            key_id: None,
            resource: None,
            detected_at: 0,
            window_start: 0,
            window_end: 0,
            observed: None,
            expected: None,
            score: 0.9,
            summary: String::new(),
            evidence: Default::default(),
        };
        a.summary = "é<".repeat(5000);
        a.key_id = Some("k".repeat(5000));
        let req = s
            .encode(&Notification::Firing(std::sync::Arc::new(a)))
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let section = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(section.chars().count() <= MAX_SECTION_CHARS);
        assert!(section.ends_with(CUT_MARK), "{section}");
        let before = section.trim_end_matches(CUT_MARK);
        assert!(
            before.ends_with("&lt;") || before.ends_with('é'),
            "{before}"
        );
        assert!(v["text"].as_str().unwrap().chars().count() <= MAX_SECTION_CHARS);
        for f in v["blocks"][1]["fields"].as_array().unwrap() {
            assert!(f["text"].as_str().unwrap().chars().count() <= MAX_FIELD_CHARS);
        }
        assert_eq!(cap("short", 10), "short");
        assert_eq!(cap(&"a".repeat(100), 60).chars().count(), 60);
    }
}
