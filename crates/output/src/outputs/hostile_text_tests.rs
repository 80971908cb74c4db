//! Every human-facing sink renders input strings escaped (issue 16, item 5):
//! for each hostile id kind — `ESC[2J`, an OSC title, CR, backspace, NUL, an
//! RTL override, a newline — used as integration id, key, resource and in
//! evidence, no text a person reads carries the raw character, and each
//! shows its `\u{…}` form.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use tripline_engine::text::{has_invisible, MAX_FIELD_CHARS};
use tripline_engine::{Alert, AlertKind, Evidence, Resolved, Severity};

use super::alertmanager::{Alertmanager, Timing};
use super::pagerduty::PagerDuty;
use super::slack::Slack;
use super::webhook::{Signing, Webhook};
use super::{Links, Notification, SecretUrl};
use crate::secret::Secret;

/// (hostile id, what its escaped form must contain).
const HOSTILE: [(&str, &str); 7] = [
    ("clear\u{1b}[2Jscreen", "\\u{1b}[2J"),
    ("title\u{1b}]0;owned\u{7}", "\\u{1b}]0;owned\\u{7}"),
    ("hide\rmailchimp-sync", "\\u{d}"),
    ("back\u{8}\u{8}\u{8}space", "\\u{8}\\u{8}\\u{8}"),
    ("nul\0byte", "\\u{0}"),
    ("rtl\u{202e}cnys-pmihcliam", "\\u{202e}"),
    ("two\n| fake | row |", "\\u{a}"),
];

fn url(path: &str) -> SecretUrl {
    SecretUrl(Url::parse(&format!("http://127.0.0.1:9/{path}")).unwrap())
}

fn links() -> Links {
    Links::new(
        "https://docs.example/ops.md",
        Some("https://grafana.example/d/t?var-integration={integration_id}"),
    )
}

fn alert(id: &str) -> Alert {
    let mut evidence = Evidence::new();
    evidence.insert("data_type".into(), format!("{id}:read").into());
    evidence.insert("granted".into(), vec![id.to_owned()].into());
    Alert {
        id: "9c1f0e4b7a2d5e10".into(),
        kind: AlertKind::UnknownIntegration,
        severity: Severity::Warning,
        integration_id: id.into(),
        key_id: Some(format!("key-{id}")),
        resource: Some(format!("res-{id}")),
        detected_at: 1_764_424_992_000,
        window_start: 1_764_424_992_000,
        window_end: 1_764_424_992_000,
        observed: Some(1.0),
        expected: None,
        score: 0.8,
        summary: format!("unregistered integration {id} is calling the CRM"),
        evidence,
    }
}

fn resolved(id: &str) -> Resolved {
    Resolved {
        id: "9c1f0e4b7a2d5e10".into(),
        kind: AlertKind::UnknownIntegration,
        severity: Severity::Warning,
        integration_id: id.into(),
        last_seen: 1_764_424_992_000,
        resolved_at: 1_764_424_999_000,
        folded: 0,
    }
}

fn firing(id: &str) -> Notification {
    Notification::Firing(Arc::new(alert(id)))
}

fn resolution(id: &str) -> Notification {
    Notification::Resolved(Arc::new(resolved(id)))
}

/// Every string (keys included) anywhere in a JSON value.
fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                out.push(k.clone());
                strings(x, out);
            }
        }
        _ => {}
    }
}

fn assert_safe(sink: &str, id: &str, texts: &[String], want: &str) {
    for t in texts {
        assert!(
            !has_invisible(t),
            "{sink}: raw control from {id:?} in {t:?}"
        );
    }
    assert!(
        texts.iter().any(|t| t.contains(want)),
        "{sink}: no escaped {want:?} for {id:?} in {texts:?}"
    );
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

#[test]
fn alertmanager_labels_and_annotations_are_escaped() {
    let am = Alertmanager::new(
        url("api/v2/alerts"),
        None,
        BTreeMap::new(),
        None,
        Timing {
            repush_interval: Duration::from_secs(60),
            ttl: Duration::from_secs(300),
            min_firing: Duration::from_secs(360),
            max_open: 10,
        },
        links(),
    );
    for (id, want) in HOSTILE {
        for n in [firing(id), resolution(id)] {
            let v = json(&am.encode(&n, 1_764_424_999_000).unwrap().body);
            let mut texts = Vec::new();
            strings(&v[0]["labels"], &mut texts);
            strings(&v[0]["annotations"], &mut texts);
            assert_safe("alertmanager", id, &texts, want);
            let label = v[0]["labels"]["integration_id"].as_str().unwrap();
            assert!(label.contains(want), "{label}");
            assert!(label.chars().count() <= MAX_FIELD_CHARS, "{label}");
        }
        // The annotations built from the alert itself, with the opening alert known.
        let a = alert(id);
        let v = json(
            &am.encode_resolved(&resolved(id), Some(&a), 1_764_424_999_000)
                .unwrap()
                .body,
        );
        let mut texts = Vec::new();
        strings(&v[0]["annotations"], &mut texts);
        assert_safe("alertmanager resolved", id, &texts, want);
    }
}

#[test]
fn slack_messages_are_escaped() {
    let slack = Slack::new(url("hook"), true, links());
    let texts_of = |n: &Notification| {
        let v = json(&slack.encode(n).unwrap().unwrap().body);
        let mut texts = Vec::new();
        strings(&v, &mut texts);
        texts
    };
    // Slack's own layout puts newlines between head and summary: only
    // those may stay, as many as for a clean id.
    let lines = |texts: &[String]| texts.iter().map(|t| t.matches('\n').count()).sum::<usize>();
    let clean = [
        lines(&texts_of(&firing("clean"))),
        lines(&texts_of(&resolution("clean"))),
    ];
    for (id, want) in HOSTILE {
        for (n, layout) in [firing(id), resolution(id)].iter().zip(clean) {
            let texts = texts_of(n);
            assert_eq!(
                lines(&texts),
                layout,
                "slack: a raw newline from {id:?}: {texts:?}"
            );
            let flat: Vec<String> = texts.iter().map(|t| t.replace('\n', " ")).collect();
            assert_safe("slack", id, &flat, want);
        }
    }
}

#[test]
fn pagerduty_payload_and_custom_details_are_escaped() {
    let pd = PagerDuty::new(url("v2/enqueue"), Secret::new("rk"), links());
    for (id, want) in HOSTILE {
        let v = json(&pd.encode(&firing(id)).unwrap().body);
        let mut texts = Vec::new();
        strings(&v["payload"], &mut texts);
        assert_safe("pagerduty", id, &texts, want);
        for field in ["summary", "source", "component", "group"] {
            let t = v["payload"][field].as_str().unwrap();
            assert!(!has_invisible(t), "{field}: {t:?}");
        }
        let details = &v["payload"]["custom_details"];
        let shown = details["integration_id"].as_str().unwrap();
        assert!(shown.contains(want), "{shown}");
        // A resolution carries no text at all.
        let v = json(&pd.encode(&resolution(id)).unwrap().body);
        assert!(v.get("payload").is_none());
    }
}

#[test]
fn webhook_human_text_is_escaped_and_machine_fields_exact() {
    let hook = Webhook::new(url("hook"), Signing::default(), None, Vec::new());
    for (id, want) in HOSTILE {
        let v = json(&hook.encode(&firing(id), 1_764_424_999_000).unwrap().body);
        let summary = v["summary"].as_str().unwrap();
        assert_safe("webhook summary", id, &[summary.to_owned()], want);
        // The machine-readable alert object keeps the id as received, so a
        // receiver can match it against its own records.
        assert_eq!(v["integration_id"].as_str().unwrap(), id);
        let v = json(
            &hook
                .encode(&resolution(id), 1_764_424_999_000)
                .unwrap()
                .body,
        );
        assert_eq!(v["integration_id"].as_str().unwrap(), id);
        assert!(v.get("summary").is_none(), "a resolution has no human text");
    }
}
