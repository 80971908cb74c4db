//! Strings from input reach people escaped (issue 16, item 5): an attacker
//! who picks an integration id, resource or key id cannot clear a terminal,
//! retitle it, hide text with CR/backspace, reverse it with a bidi override,
//! break a Markdown table or pass for a registered id with a zero-width space.

use tripline_audit::{audit, render, AuditOptions, Format};
use tripline_engine::text::has_invisible;
use tripline_engine::{Engine, EngineConfig, Outputs};

/// Every hostile id kind named in the issue.
pub const HOSTILE: [&str; 8] = [
    "clear\u{1b}[2J",
    "title\u{1b}]0;owned\u{7}",
    "hide\rmailchimp-sync",
    "back\u{8}\u{8}\u{8}\u{8}",
    "nul\0id",
    "rtl\u{202e}cnys-pmihcliam",
    "two\n| fake | row |",
    "mailchimp\u{200b}-sync",
];

fn engine_with_hostile_ids() -> Engine {
    let reg = tripline_ingest::parse_registry(
        "[[integrations]]\nid = \"mailchimp-sync\"\ngranted = [\"contacts:read\"]\n",
        "r.toml",
    )
    .unwrap();
    let mut engine = Engine::new(EngineConfig::default(), Some(reg));
    let mut out = Outputs::default();
    for (i, id) in HOSTILE.iter().enumerate() {
        let line = serde_json::json!({
            "ts": 1_764_424_992_000i64 + i as i64 * 1000,
            "integration_id": id,
            "resource": format!("res\u{1b}[31m|{i}"),
            "key_id": format!("key\u{202e}{i}"),
            "method": "GET",
            "status": 200,
        })
        .to_string();
        let raw = tripline_ingest::parse_event(line.as_bytes()).unwrap();
        engine.process(&raw.event(), &mut out);
    }
    engine
}

fn report(engine: &Engine) -> tripline_audit::AuditReport {
    audit(
        engine,
        &AuditOptions {
            as_of_ms: 1_764_424_999_000,
            horizon_days: 90,
            dormant_days: 30,
            rotation_days: 90,
        },
    )
}

#[test]
fn audit_table_escapes_input_strings() {
    let engine = engine_with_hostile_ids();
    let text = render(&report(&engine), Format::Table).unwrap();
    for line in text.lines() {
        assert!(!has_invisible(line), "raw control in table line {line:?}");
    }
    assert!(text.contains("clear\\u{1b}[2J"), "{text}");
    assert!(text.contains("mailchimp\\u{200b}-sync"), "{text}");
}

#[test]
fn audit_markdown_rows_never_break() {
    let engine = engine_with_hostile_ids();
    let text = render(&report(&engine), Format::Markdown).unwrap();
    assert!(!has_invisible(&text.replace('\n', "")), "{text:?}");
    // Every table row has as many cell separators as its header.
    let mut want = None;
    for line in text.lines() {
        if !line.starts_with('|') {
            want = None;
            continue;
        }
        let bars = line.replace("\\|", "").matches('|').count();
        match want {
            None => want = Some(bars),
            Some(w) => assert_eq!(bars, w, "broken row {line:?} in\n{text}"),
        }
    }
    assert!(text.contains("two\\u{a}\\| fake \\| row \\|"), "{text}");
}
