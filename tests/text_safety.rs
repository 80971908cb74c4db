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

fn tripline() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tripline"));
    c.env("TRIPLINE_LOG", "info");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIPLINE__") {
            c.env_remove(k);
        }
    }
    c
}

/// Logs are a sink too: `tripline replay`'s stderr, in both log formats,
/// for events with every hostile id (accepted) and lines whose rejection
/// quotes hostile text, carries no raw control, bidi or invisible
/// character on any line — and every alert's summary on stdout neither.
#[test]
fn replay_logs_and_summaries_carry_no_raw_controls() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry.toml");
    std::fs::write(
        &reg,
        "[[integrations]]\nid = \"mailchimp-sync\"\ngranted = [\"contacts:read\"]\n",
    )
    .unwrap();
    let mut lines = String::new();
    for (i, id) in HOSTILE.iter().enumerate() {
        let ts = 1_764_424_992_000i64 + i as i64 * 1000;
        let ok = serde_json::json!({"ts": ts, "integration_id": id, "resource": "contacts",
            "key_id": format!("k\u{1b}[2J{i}"), "method": "GET", "status": 200});
        lines.push_str(&format!("{ok}\n"));
        // Rejected: the status is a hostile string, which serde quotes.
        let bad = serde_json::json!({"ts": ts, "integration_id": id, "resource": "contacts",
            "method": "GET", "status": format!("{id}\u{202e}")});
        lines.push_str(&format!("{bad}\n"));
    }
    let input = dir.path().join("hostile.jsonl");
    std::fs::write(&input, lines).unwrap();
    for format in ["text", "json"] {
        let out = tripline()
            .args(["replay", "--log-format", format, "--registry"])
            .arg(&reg)
            .arg(&input)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("Rejected event."), "{stderr}");
        for line in stderr.lines() {
            assert!(
                !has_invisible(line),
                "raw control in a {format} log line {line:?}"
            );
        }
        let stdout = String::from_utf8(out.stdout).unwrap();
        let alerts: Vec<serde_json::Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            alerts.len(),
            HOSTILE.len(),
            "one unknown_integration per id:\n{stdout}"
        );
        for a in &alerts {
            let summary = a["summary"].as_str().unwrap();
            assert!(!has_invisible(summary), "{summary:?}");
        }
        // The zero-width look-alike names the registered id it imitates.
        let zw = alerts
            .iter()
            .find(|a| a["integration_id"] == "mailchimp\u{200b}-sync")
            .unwrap();
        assert_eq!(zw["evidence"]["imitates"], "mailchimp-sync");
        assert_eq!(zw["evidence"]["invisible_characters"], 1);
    }
}
