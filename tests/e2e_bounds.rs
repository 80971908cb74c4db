//! Process-wide bounds under `tripline run` (issue 16, item 4): a flood of
//! new ids over several partitions of a real broker (Tansu) holds at most
//! `max_integrations` in the whole process — not per partition — and pages
//! each partition's alert budget, then one aggregate per window.
//!
//! Kept to seconds: 3,000 ids against a bound of 300 (the 1M-id figure is
//! measured by `scripts/flood-memory.sh`, docs/operations.md "Sizing under
//! attack").

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::kafka::{self, Record};
use crate::support::tansu::Tansu;
use crate::support::tripline::{self, KafkaConf, Run};
use crate::support::{eventually, unique};

const POLL: Duration = Duration::from_millis(50);
const PARTITIONS: i32 = 3;
const MAX_INTEGRATIONS: usize = 300;
const GHOSTS: usize = 3_000;

fn event(integration: &str, ts: i64) -> String {
    format!(
        r#"{{"ts":{ts},"integration_id":"{integration}","resource":"contacts","method":"GET","status":200,"records":1}}"#
    )
}

#[test]
fn a_new_id_flood_over_partitions_stays_within_the_process_bound_and_the_alert_budget() {
    let broker = Tansu::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = KafkaConf {
        brokers: broker.bootstrap.clone(),
        topic: unique("events"),
        group: unique("tripline"),
        dlq_topic: unique("dlq"),
        alerts_topic: unique("alerts"),
        batch_max_events: 500,
    };
    conf.create_topics(PARTITIONS);
    let (config, http) = tripline::write_config(dir.path(), &conf);
    // Budgets on (the shared e2e config turns them off), a small bound.
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace(
        "[engine.alert_budget]\nenabled = false",
        "[engine.alert_budget]\nenabled = true",
    );
    std::fs::write(
        &config,
        format!("{text}\n[engine]\nmax_integrations = {MAX_INTEGRATIONS}\n"),
    )
    .expect("config");
    let registry = dir.path().join("registry.toml");
    std::fs::write(
        &registry,
        "[[integrations]]\nid = \"known-app\"\nname = \"Known app\"\ngranted = [\"*:*\"]\n",
    )
    .expect("registry");

    let t0 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let records = |lines: &[String]| -> Vec<Record> {
        lines
            .iter()
            .map(|l| Record::keyed_by_integration(l.as_bytes()))
            .collect()
    };
    let flood: Vec<String> = (0..GHOSTS)
        .map(|i| event(&format!("ghost-{i:05}"), t0 + i as i64))
        .collect();
    let mut landed = kafka::produce(&conf.brokers, &conf.topic, &records(&flood));
    let used: std::collections::BTreeSet<i32> = landed.iter().map(|(p, _)| *p).collect();
    assert_eq!(used.len(), PARTITIONS as usize, "flood spread: {used:?}");

    let mut run = Run::start(&config, &registry, &http);
    let ends = kafka::ends(&landed);
    eventually("the flood committed", Duration::from_secs(60), POLL, || {
        run.assert_running();
        kafka::all_committed(&conf.brokers, &conf.group, &conf.topic, &ends)
    });
    // Six minutes later, on one partition: its stream time moves past the
    // flood's window (on the third event: no single event moves it) and the
    // idle partitions are advanced to it, so every window closes. Engine
    // stats reach the metrics at most once a second after a batch: each
    // poll sends one more event.
    let mut sent = 0i64;
    let tracked = eventually(
        "engine stats reported",
        Duration::from_secs(30),
        Duration::from_millis(400),
        || {
            run.assert_running();
            let later: Vec<String> = (0..3)
                .map(|i| event("known-app", t0 + 6 * 60_000 + sent * 3 + i))
                .collect();
            sent += 1;
            landed.extend(kafka::produce(&conf.brokers, &conf.topic, &records(&later)));
            let (_, text) = run.get("/metrics")?;
            let events = tripline::metric(&text, "tripline_events_processed_total").unwrap_or(0.0);
            let tracked = tripline::metric(&text, "tripline_tracked_integrations");
            let memory = tripline::metric(&text, "tripline_engine_memory_bytes");
            match (tracked, memory) {
                (Some(t), Some(m)) if events >= (GHOSTS + 3) as f64 && t > 0.0 => Ok((t, m)),
                _ => Err(format!(
                    "tracked {tracked:?}, memory {memory:?}, events {events}"
                )),
            }
        },
    );
    // Aggregates are sent when windows close; wait for them.
    let alerts = eventually(
        "budget aggregates published",
        Duration::from_secs(20),
        POLL,
        || {
            run.assert_running();
            let alerts: Vec<serde_json::Value> =
                kafka::read_to_end(&conf.brokers, &conf.alerts_topic)
                    .iter()
                    .filter_map(|m| {
                        use rdkafka::Message;
                        serde_json::from_slice(m.payload()?).ok()
                    })
                    .collect();
            let folded: u64 = alerts
                .iter()
                .filter_map(|a| a["evidence"]["alerts_folded"].as_u64())
                .sum();
            let single = alerts.iter().filter(|a| a["integration_id"] != "*").count() as u64;
            if folded + single == GHOSTS as u64 {
                Ok(alerts)
            } else {
                Err(format!("{single} single + {folded} folded of {GHOSTS}"))
            }
        },
    );
    run.stop(Duration::from_secs(13));

    let (tracked, memory) = tracked;
    eprintln!(
        "e2e_bounds: {GHOSTS} ids over {PARTITIONS} partitions: tracked {tracked}, engine memory {memory} bytes, {} alerts",
        alerts.len()
    );
    // Before: each partition's engine had its own cap (up to 3 × 300).
    assert!(
        tracked <= MAX_INTEGRATIONS as f64 + 1.0,
        "the process tracks {tracked} > max_integrations {MAX_INTEGRATIONS} (+ known-app)"
    );
    // ~4 KiB per integration (docs/operations.md): bounded by the bound.
    assert!(
        memory < (MAX_INTEGRATIONS as f64 + 1.0) * 8192.0,
        "engine memory {memory} bytes for {tracked} integrations"
    );
    let mut by_kind: BTreeMap<(String, bool), usize> = BTreeMap::new();
    for a in &alerts {
        let agg = a["integration_id"] == "*";
        *by_kind
            .entry((a["kind"].as_str().unwrap_or("").to_owned(), agg))
            .or_insert(0) += 1;
    }
    let single = by_kind
        .get(&("unknown_integration".to_owned(), false))
        .copied()
        .unwrap_or(0);
    let agg = by_kind
        .get(&("unknown_integration".to_owned(), true))
        .copied()
        .unwrap_or(0);
    // Before: 3,000 pages. Per partition: the budget (20), then aggregates
    // (one per window; the flood's 3 s may straddle a window edge).
    assert!(single <= 20 * PARTITIONS as usize, "{by_kind:?}");
    assert!(
        (PARTITIONS as usize..=2 * PARTITIONS as usize).contains(&agg),
        "{by_kind:?}"
    );
    for a in alerts.iter().filter(|a| a["integration_id"] == "*") {
        let s = a["summary"].as_str().unwrap_or("");
        assert!(
            s.contains("unregistered integrations appeared in 5 min")
                && s.contains("top 10 by calls"),
            "{s}"
        );
        assert_eq!(a["evidence"]["aggregate"], true);
    }
}
