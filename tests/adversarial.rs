//! Adversarial suite (issue 16, item 9): a known deterministic simulated
//! stream (seed 16, 10 days, 8 integrations, its registry) replayed through
//! the real `tripline replay` binary, once clean and once per attack with
//! hostile lines mixed in. Each test asserts that detection still yields
//! exactly the same alerts (same ids, kinds, times, summaries) on the
//! stream's own integrations, that every hostile line is rejected by its
//! reason or processed as its own integration, and nothing else changes.
//!
//! Attacks covered here are the input attacks fixed on main: control
//! characters and look-alikes in ids, huge lines, a BOM, top-level arrays,
//! `u64` records, oversize ids, invalid JSON and invalid UTF-8 floods,
//! deep nesting. The event-time, cap, quadratic-cost and flood-budget
//! attacks have their tests beside their fixes (`crates/engine/src/tests_hostile.rs`).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;
use tripline_sim::{generate, registry_for, SimConfig};

fn sim() -> SimConfig {
    SimConfig {
        seed: 16,
        days: 10,
        integrations: 8,
        ..SimConfig::default()
    }
}

/// The clean stream: its lines, registry text and the ids it uses.
struct Stream {
    lines: Vec<Vec<u8>>,
    registry: String,
    malformed: u64,
}

fn stream() -> &'static Stream {
    static S: OnceLock<Stream> = OnceLock::new();
    S.get_or_init(|| {
        let cfg = sim();
        let registry = registry_for(&cfg).unwrap();
        let mut lines = Vec::new();
        let (truth, _) = generate(&cfg, |l| lines.push(l.to_vec())).unwrap();
        Stream {
            lines,
            registry,
            malformed: truth.malformed_lines,
        }
    })
}

/// What one replay produced.
struct Run {
    alerts: Vec<Value>,
    rejected: BTreeMap<String, u64>,
    stderr: String,
}

fn replay(prefix: &[u8], inject: &dyn Fn(usize) -> Vec<Vec<u8>>) -> Run {
    let s = stream();
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("registry.toml");
    std::fs::write(&reg, &s.registry).unwrap();
    let mut data = prefix.to_vec();
    for (i, l) in s.lines.iter().enumerate() {
        for h in inject(i) {
            data.extend_from_slice(&h);
            data.push(b'\n');
        }
        data.extend_from_slice(l);
        data.push(b'\n');
    }
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, data).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_tripline"));
    c.env("TRIPLINE_LOG", "error");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIPLINE__") {
            c.env_remove(k);
        }
    }
    let out = c
        .args(["replay", "--registry"])
        .arg(&reg)
        .arg(&input)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let alerts = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut rejected = BTreeMap::new();
    for l in stderr.lines() {
        if let Some(rest) = l.trim().strip_prefix("rejected ") {
            let mut it = rest.split_whitespace();
            if let (Some(reason), Some(n)) = (it.next(), it.next()) {
                rejected.insert(reason.to_owned(), n.parse().unwrap());
            }
        }
    }
    Run {
        alerts,
        rejected,
        stderr,
    }
}

fn clean() -> &'static Run {
    static R: OnceLock<Run> = OnceLock::new();
    R.get_or_init(|| replay(b"", &|_| Vec::new()))
}

/// Every `every`-th line of the stream gets `make(n)` before it (n counts
/// the injections); returns the run and how many were injected.
fn with_every(every: usize, make: impl Fn(usize) -> Vec<u8>) -> (Run, usize) {
    let total = stream().lines.len().div_ceil(every);
    let run = replay(b"", &|i| {
        if i % every == 0 {
            vec![make(i / every)]
        } else {
            Vec::new()
        }
    });
    (run, total)
}

/// A valid event line at the stream's time of line `i` (so it is never
/// late or early), for integration `id`.
fn event_at(n: usize, id: &str, extra: &str) -> Vec<u8> {
    let ts = tripline_sim::DEFAULT_START_MS + n as i64 * 60_000;
    format!(
        r#"{{"ts":{ts},"integration_id":{},"resource":"contacts","method":"GET","status":200{extra}}}"#,
        serde_json::to_string(id).unwrap()
    )
    .into_bytes()
}

/// The alerts on the stream's own integrations are exactly the clean ones.
fn assert_same_alerts(run: &Run, hostile_ids: &dyn Fn(&str) -> bool) {
    let base = &clean().alerts;
    let own: Vec<&Value> = run
        .alerts
        .iter()
        .filter(|a| !hostile_ids(a["integration_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        own.len(),
        base.len(),
        "alerts on the stream's integrations changed:\n{}",
        run.stderr
    );
    for (a, b) in own.iter().zip(base) {
        assert_eq!(*a, b);
    }
}

fn rejected(run: &Run, reason: &str) -> u64 {
    run.rejected.get(reason).copied().unwrap_or(0)
}

/// The clean replay is the reference: it has alerts (so the suite can fail)
/// and rejects only the simulator's malformed lines.
#[test]
fn the_known_stream_has_its_alerts() {
    let run = clean();
    assert!(
        run.alerts.len() >= 10,
        "{} alerts:\n{}",
        run.alerts.len(),
        run.stderr
    );
    assert_eq!(run.rejected.values().sum::<u64>(), stream().malformed);
}

#[test]
fn control_characters_in_ids_change_no_alert() {
    const IDS: [&str; 7] = [
        "clear\u{1b}[2J",
        "title\u{1b}]0;x\u{7}",
        "cr\rhidden",
        "bs\u{8}\u{8}",
        "nul\0id",
        "rtl\u{202e}cba",
        "nl\nid",
    ];
    let (run, _) = with_every(500, |n| event_at(n, IDS[n % IDS.len()], ""));
    let hostile = |id: &str| IDS.contains(&id);
    assert_same_alerts(&run, &hostile);
    let extra: Vec<&Value> = run
        .alerts
        .iter()
        .filter(|a| hostile(a["integration_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        extra.len(),
        IDS.len(),
        "one unknown_integration per hostile id"
    );
    for a in extra {
        assert_eq!(a["kind"], "unknown_integration");
        assert!(!tripline_engine::text::has_invisible(
            a["summary"].as_str().unwrap()
        ));
    }
}

#[test]
fn look_alike_ids_are_flagged_and_change_no_alert() {
    // A look-alike of the first registered integration of the stream.
    let real = clean().alerts[0]["integration_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fakes = [format!("{real}\u{200b}"), real.to_uppercase()];
    let (run, _) = with_every(700, |n| event_at(n, &fakes[n % 2], ""));
    let hostile = |id: &str| fakes.iter().any(|f| f == id);
    assert_same_alerts(&run, &hostile);
    for f in &fakes {
        let a = run
            .alerts
            .iter()
            .find(|a| a["integration_id"] == f.as_str())
            .unwrap();
        assert_eq!(a["evidence"]["imitates"], real.as_str(), "{f:?}");
    }
}

#[test]
fn huge_lines_are_skipped_and_change_no_alert() {
    let huge = vec![b'x'; 3 << 20];
    let (run, n) = with_every(20_000, |_| huge.clone());
    assert_same_alerts(&run, &|_| false);
    assert_eq!(rejected(&run, "too_large"), n as u64);
}

#[test]
fn a_leading_bom_changes_no_alert() {
    let run = replay("\u{feff}".as_bytes(), &|_| Vec::new());
    assert_same_alerts(&run, &|_| false);
    assert_eq!(run.rejected, clean().rejected);
}

#[test]
fn top_level_arrays_are_rejected_and_change_no_alert() {
    let (run, n) = with_every(300, |n| {
        format!(
            r#"[{},"arr","contacts","GET",200]"#,
            tripline_sim::DEFAULT_START_MS + n as i64
        )
        .into_bytes()
    });
    assert_same_alerts(&run, &|_| false);
    assert_eq!(
        rejected(&run, "invalid_json"),
        n as u64 + rejected(clean(), "invalid_json")
    );
}

#[test]
fn u64_records_are_processed_and_change_no_alert() {
    let (run, _) = with_every(900, |n| {
        event_at(n, "u64-records", &format!(r#","records":{}"#, u64::MAX))
    });
    assert_same_alerts(&run, &|id| id == "u64-records");
    assert_eq!(run.rejected, clean().rejected, "u64 records are valid");
    assert!(run
        .alerts
        .iter()
        .any(|a| a["integration_id"] == "u64-records"));
}

#[test]
fn oversize_ids_are_rejected_and_change_no_alert() {
    let long = "i".repeat(300);
    let (run, n) = with_every(400, |i| event_at(i, &long, ""));
    assert_same_alerts(&run, &|_| false);
    assert_eq!(
        rejected(&run, "invalid_field"),
        n as u64 + rejected(clean(), "invalid_field")
    );
}

#[test]
fn invalid_json_and_utf8_floods_change_no_alert() {
    let junk: [&[u8]; 6] = [
        b"{",
        b"{\"ts\":",
        b"not json at all",
        b"{\"ts\":1e999,\"integration_id\":\"a\"}",
        b"\xff\xfe\x00garbage",
        b"\"a string\"",
    ];
    let (run, n) = with_every(7, |i| junk[i % junk.len()].to_vec());
    assert_same_alerts(&run, &|_| false);
    let total: u64 = run.rejected.values().sum();
    assert_eq!(total, n as u64 + stream().malformed, "{:?}", run.rejected);
    assert!(rejected(&run, "invalid_utf8") > 0);
}

#[test]
fn deep_nesting_is_rejected_and_changes_no_alert() {
    let deep = format!(
        r#"{{"ts":0,"integration_id":"deep","fields":{}{}}}"#,
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    let (run, n) = with_every(10_000, |_| deep.clone().into_bytes());
    assert_same_alerts(&run, &|_| false);
    assert_eq!(
        run.rejected.values().sum::<u64>(),
        n as u64 + stream().malformed,
        "{:?}",
        run.rejected
    );
}
