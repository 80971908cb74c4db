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
//! deep nesting — and, end to end, the event-time attacks (one event dated
//! 9999, one dated 2030 on a live integration, 1970 copies of live events)
//! and a flood of new ids (alert budget). Their mechanisms are tested beside
//! their fixes (`crates/engine/src/tests_hostile.rs`, `tests_budget.rs`).

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
    let show = |v: &[&Value], w: &[&Value]| -> Vec<String> {
        v.iter()
            .filter(|a| !w.iter().any(|b| b["id"] == a["id"]))
            .map(|a| {
                format!(
                    "{} {} {} {}",
                    a["kind"], a["integration_id"], a["detected_at"], a["summary"]
                )
            })
            .collect()
    };
    let base_refs: Vec<&Value> = base.iter().collect();
    assert_eq!(
        own.len(),
        base.len(),
        "alerts on the stream's integrations changed:\nmissing {:#?}\nextra {:#?}\n{}",
        show(&base_refs, &own),
        show(&own, &base_refs),
        run.stderr
    );
    for (a, b) in own.iter().zip(base) {
        assert_eq!(*a, b);
    }
}

/// As [`assert_same_alerts`] for hostile events that are *valid events of
/// the stream's own integrations* (forged times): they are counted into the
/// integration's lifetime totals (calls, records per call), so scores and
/// expectations (and the figures quoted in summaries: per-call caps follow
/// the lifetime mean) may move in their last digit; the alerts themselves —
/// ids, kinds, integrations, detection times — must not.
fn assert_same_alert_identities(run: &Run, forged: &dyn Fn(&Value) -> bool) {
    let key = |a: &Value| {
        ["id", "kind", "integration_id", "detected_at"]
            .map(|f| a[f].to_string())
            .join(" ")
    };
    let got: Vec<String> = run.alerts.iter().filter(|a| !forged(a)).map(key).collect();
    let want: Vec<String> = clean().alerts.iter().map(key).collect();
    let missing: Vec<&String> = want.iter().filter(|k| !got.contains(k)).collect();
    let extra: Vec<&String> = got.iter().filter(|k| !want.contains(k)).collect();
    assert!(
        got == want,
        "alerts changed:\nmissing {missing:#?}\nextra {extra:#?}"
    );
}

fn rejected(run: &Run, reason: &str) -> u64 {
    run.rejected.get(reason).copied().unwrap_or(0)
}

/// The replay summary's `ts_out_of_range` line (absent: 0).
fn out_of_range(run: &Run) -> u64 {
    run.stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("ts_out_of_range "))
        .map_or(0, |n| n.trim().parse().unwrap())
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

// ---- event time and floods, end to end -----------------------------------

/// The stream replayed with one forged line inserted before line `at`.
fn replay_with_one(at: usize, forged: &[u8]) -> Run {
    replay(b"", &|i| {
        if i == at {
            vec![forged.to_vec()]
        } else {
            Vec::new()
        }
    })
}

/// Line `i` of the stream as JSON.
fn line(i: usize) -> Value {
    serde_json::from_slice(&stream().lines[i]).unwrap_or(Value::Null)
}

/// Index of the first valid line of the stream from `from` on.
fn valid_from(from: usize) -> usize {
    (from..stream().lines.len())
        .find(|&i| line(i)["integration_id"].is_string() && line(i)["ts"].is_i64())
        .unwrap()
}

#[test]
fn one_event_dated_9999_from_a_new_id_changes_no_alert() {
    let at = stream().lines.len() / 3;
    let forged = event_at(0, "forged-9999", "");
    let forged = String::from_utf8(forged)
        .unwrap()
        .replacen(
            &format!("\"ts\":{}", tripline_sim::DEFAULT_START_MS),
            "\"ts\":253402214400000",
            1,
        )
        .into_bytes();
    let run = replay_with_one(at, &forged);
    assert_same_alerts(&run, &|id| id == "forged-9999");
    assert_eq!(
        out_of_range(&run),
        out_of_range(clean()) + 1,
        "the summary counts the forged event out of range:\n{}",
        run.stderr
    );
}

#[test]
fn one_event_dated_2030_on_a_live_integration_changes_no_alert() {
    // A copy of a real line of a stream integration, dated 2030.
    let at = valid_from(stream().lines.len() / 2);
    let mut forged = line(at);
    forged["ts"] = Value::from(1_893_456_000_000i64);
    let forged = serde_json::to_vec(&forged).unwrap();
    let run = replay_with_one(at + 1, &forged);
    // The forged event itself may fire (by design, a forged date can only
    // make alerts fire: here its key looks dormant for 3 years); nothing
    // else may change.
    assert_same_alert_identities(&run, &|a| a["detected_at"] == "2030-01-01T00:00:00.000Z");
}

/// One event dated 20 hours ahead — inside the skew (`max_future_skew`, a
/// day), so the stream accepts it — on an integration a few hours before
/// one of its bucket alerts: held as its lead and contradicted by its next
/// honest event, it moves no watermark, and the alert still fires
/// (`crates/engine/src/clock.rs`, `advance_watermark`).
#[test]
fn one_event_hours_ahead_on_a_live_integration_changes_no_alert() {
    const HOUR: i64 = 3_600_000;
    let spike = clean()
        .alerts
        .iter()
        .find(|a| {
            ["call_spike", "volume_spike", "error_burst"].contains(&a["kind"].as_str().unwrap())
        })
        .expect("the known stream has a bucket alert");
    let id = spike["integration_id"].as_str().unwrap();
    let when =
        tripline_engine::time::parse_rfc3339(spike["detected_at"].as_str().unwrap()).unwrap();
    // Its last event at least 3 hours before the alert.
    let at = (0..stream().lines.len())
        .rev()
        .find(|&i| {
            let l = line(i);
            l["integration_id"] == id && l["ts"].as_i64().is_some_and(|t| t < when - 3 * HOUR)
        })
        .expect("an earlier event of the integration");
    let mut forged = line(at);
    let ts = forged["ts"].as_i64().unwrap() + 20 * HOUR;
    forged["ts"] = Value::from(ts);
    let forged = serde_json::to_vec(&forged).unwrap();
    let run = replay_with_one(at + 1, &forged);
    let stamp = tripline_engine::time::format_rfc3339(ts);
    assert_same_alert_identities(&run, &|a| a["detected_at"] == stamp.as_str());
    assert_eq!(out_of_range(&run), out_of_range(clean()), "inside the skew");
}

#[test]
fn copies_of_live_events_dated_1970_change_no_alert() {
    // Every 400th line again, dated a whole number of weeks back into 1970
    // (same hour of the week, so only the year is hostile); not before the
    // stream's first event (that case is the last test of this file).
    const WEEK: i64 = 7 * 86_400_000;
    let run = replay(b"", &|i| {
        if i == 0 || i % 400 != 0 {
            return Vec::new();
        }
        let mut v = line(valid_from(i - 1));
        let ts = v["ts"].as_i64().unwrap();
        v["ts"] = Value::from(ts - (ts - 1_000_000_000) / WEEK * WEEK);
        vec![serde_json::to_vec(&v).unwrap()]
    });
    assert_same_alert_identities(&run, &|_| false);
}

#[test]
fn a_flood_of_new_ids_pages_the_budget_and_changes_no_alert() {
    // 3,000 new ids in one minute of the stream, a third of the way in.
    let at = stream().lines.len() / 3;
    let n = valid_from(at);
    let ts = line(n)["ts"].as_i64().unwrap();
    let run = replay(b"", &|i| {
        if i != n {
            return Vec::new();
        }
        (0..3_000)
            .map(|k| {
                format!(
                    r#"{{"ts":{},"integration_id":"flood-{k:05}","resource":"contacts","method":"GET","status":200}}"#,
                    ts + k as i64 * 20
                )
                .into_bytes()
            })
            .collect()
    });
    let flood = |id: &str| id.starts_with("flood-") || id == "*";
    assert_same_alerts(&run, &flood);
    let pages: Vec<&Value> = run
        .alerts
        .iter()
        .filter(|a| flood(a["integration_id"].as_str().unwrap()))
        .collect();
    assert!(
        pages.len() <= 22,
        "{} pages for a 3,000-id flood (budget 20, then aggregates)",
        pages.len()
    );
    let folded: u64 = pages
        .iter()
        .filter_map(|a| a["evidence"]["alerts_folded"].as_u64())
        .sum();
    let single = pages.iter().filter(|a| a["integration_id"] != "*").count() as u64;
    assert_eq!(single + folded, 3_000, "every new id is accounted for");
}

/// A 1970 event placed *before a partition's first event*: there is no
/// stream time to judge it against, so it is accepted — but it must neither
/// set the partition's stream time (the honest stream that follows would be
/// a jump for every integration) nor its integration's clock (learning
/// skipped, a 56-year dormancy). A stream time resting on fewer than 3
/// events restarts at an event beyond the stale horizon (`idle_evict_days`)
/// from it, and so does an integration's clock resting on fewer than 3
/// events (`crates/engine/src/clock.rs`): the forged event is then forgotten
/// (counted as out of range) and nothing else changes.
#[test]
fn a_1970_event_before_the_streams_first_event_changes_no_alert() {
    const WEEK: i64 = 7 * 86_400_000;
    let mut v = line(valid_from(0));
    let ts = v["ts"].as_i64().unwrap();
    v["ts"] = Value::from(ts - (ts - 1_000_000_000) / WEEK * WEEK);
    let mut prefix = serde_json::to_vec(&v).unwrap();
    prefix.push(b'\n');
    let run = replay(&prefix, &|_| Vec::new());
    assert_same_alerts(&run, &|_| false);
}

/// A forged event opening the partition dated a month or two before the
/// stream: within the stale horizon (`idle_evict_days`), so it is not
/// forgotten like the 1970 one above — it is as much history as a sparse
/// integration's real call months before. It must still not end its
/// integration's learning period at once (the issue's "1970 timestamp as
/// first event: 22 → 206 alerts"): fewer than 3 events followed by a
/// silence are too thin a history to learn from (`IntegrationState::
/// restart_learning`). What it may add, by design, is the one alert a
/// real call that old would raise: the integration "woke up" after the
/// silence it forged.
#[test]
fn an_event_weeks_before_the_streams_first_event_changes_no_alert() {
    const DAY: i64 = 86_400_000;
    for days in [30, 60] {
        let mut v = line(valid_from(0));
        let ts = v["ts"].as_i64().unwrap();
        let forged = ts - days * DAY;
        v["ts"] = Value::from(forged);
        let mut prefix = serde_json::to_vec(&v).unwrap();
        prefix.push(b'\n');
        let run = replay(&prefix, &|_| Vec::new());
        // Its silence starts at most a day (the skew) after the forged time.
        let before = tripline_engine::time::format_rfc3339(ts);
        let woke = |a: &Value| {
            a["kind"] == "dormant_reactivated"
                && a["window_start"].as_str().is_some_and(|w| *w < *before)
        };
        // At most the forged integration and its key "woke up".
        let w: Vec<&Value> = run.alerts.iter().filter(|a| woke(a)).collect();
        assert!(
            w.len() <= 2 && w.iter().all(|a| a["integration_id"] == v["integration_id"]),
            "{days} days: {w:#?}"
        );
        assert_same_alert_identities(&run, &woke);
    }
}
