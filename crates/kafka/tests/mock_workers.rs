//! The stateful paths on more than one worker thread: seeding from the
//! retained topic (`kafka.seed_from`) and a rebalance that moves a stopped
//! member's partitions, with their checkpoints, to the survivor. Each test
//! asserts that its batches really ran on both workers (`parallel_batches`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tripline_engine::AlertKind;
use tripline_kafka::mock::{integration_key, produce_lines, start_mock_cluster};
use tripline_kafka::{DirStateStore, RunConfig};

use crate::common::*;

/// Monday 2026-10-26 00:00 UTC.
const START_MS: i64 = 1_792_972_800_000;
const IDS: [&str; 6] = ["app-0", "app-1", "app-2", "app-3", "app-4", "app-5"];
const DAY_MS: i64 = 86_400_000;

/// One call every two minutes per integration for `days` days.
fn history(ids: &[String], days: i64) -> Vec<String> {
    let mut v = Vec::new();
    for m in (0..days * 1440).step_by(2) {
        for id in ids {
            v.push(line(START_MS + m * 60_000, id));
        }
    }
    v
}

/// 400 calls per integration in 40 s at `at_ms`.
fn burst(ids: &[String], at_ms: i64) -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..400i64 {
        for id in ids {
            v.push(line(at_ms + i * 100, id));
        }
    }
    v
}

fn registry(ids: &[String]) -> tripline_engine::Registry {
    let toml: String = ids
        .iter()
        .map(|id| format!("[[integrations]]\nid = \"{id}\"\ngranted = [\"contacts:read\"]\n\n"))
        .collect();
    tripline_ingest::parse_registry(&toml, "test.toml").expect("registry parses")
}

fn spiked(sink: &CollectingSink) -> BTreeSet<String> {
    sink.alerts
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.kind == AlertKind::CallSpike)
        .map(|a| a.integration_id.clone())
        .collect()
}

fn line(ts: i64, id: &str) -> String {
    format!(
        r#"{{"ts":{ts},"integration_id":"{id}","resource":"contacts","method":"GET","status":200,"source_ip":"198.51.100.9"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_on_two_workers_learns_silently_then_detects_live() {
    let cluster = start_mock_cluster(1).unwrap();
    let bs = cluster.bootstrap_servers();
    let (topic, dlq, group) = (unique("in"), unique("dlq"), unique("g"));
    cluster.create_topic(&topic, 3).unwrap();
    cluster.create_topic(&dlq, 1).unwrap();

    // Nine days of one call every two minutes per integration, plus an
    // unregistered integration that would alert live.
    let ids: Vec<String> = IDS.iter().map(|s| (*s).to_owned()).collect();
    let mut history = history(&ids, 9);
    history.push(line(START_MS + 3 * DAY_MS, "shadow"));
    produce_lines(&bs, &topic, &history, integration_key)
        .await
        .unwrap();
    let registry = registry(&ids);
    let mut s = settings(&bs, &topic, &group, &dlq);
    s.batch_max_events = 500;
    s.seed_from = Some("2026-10-26T00:00:00Z".into());
    let sink = Arc::new(CollectingSink::default());
    let obs = Arc::new(CollectingObserver::default());
    let run = Running::start(s, Some(registry), sink.clone(), obs.clone());
    eventually("the history is received", Duration::from_secs(60), || {
        obs.received.load(std::sync::atomic::Ordering::Relaxed) >= history.len() as u64
    })
    .await;
    assert!(
        sink.alerts.lock().unwrap().is_empty(),
        "no alert while seeding: {:?}",
        sink.alerts.lock().unwrap().first()
    );

    // Live: a burst for every integration at an hour the seeded baseline
    // knows is quiet (one call in two minutes), and the shadow again.
    let mut live = burst(&ids, START_MS + 9 * DAY_MS + 3 * 3_600_000);
    live.push(line(
        START_MS + 9 * DAY_MS + 3 * 3_600_000 + 50_000,
        "shadow",
    ));
    produce_lines(&bs, &topic, &live, integration_key)
        .await
        .unwrap();
    eventually(
        "a call_spike for every seeded integration",
        Duration::from_secs(60),
        || spiked(&sink).len() == IDS.len(),
    )
    .await;
    let summary = run.stop().await;
    assert_eq!(
        summary.seeded,
        history.len() as u64,
        "every history event was learned: {summary:?}"
    );
    assert!(
        summary.parallel_batches > 0,
        "the seeding ran batches on both workers: {summary:?}"
    );
    let kinds: BTreeSet<AlertKind> = sink.alerts.lock().unwrap().iter().map(|a| a.kind).collect();
    assert!(
        kinds.contains(&AlertKind::UnknownIntegration),
        "the shadow integration alerts live: {kinds:?}"
    );
}

/// Two members share the partitions; one stops (checkpointing its
/// partitions on the way out); the survivor restores them from the shared
/// checkpoint directory and detects on every integration, the stopped
/// member's included, without a new learning period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_on_two_workers_restores_the_stopped_members_partitions() {
    let cluster = start_mock_cluster(1).unwrap();
    let bs = cluster.bootstrap_servers();
    let (topic, dlq, group) = (unique("in"), unique("dlq"), unique("g"));
    cluster.create_topic(&topic, 4).unwrap();
    cluster.create_topic(&dlq, 1).unwrap();
    let ids: Vec<String> = (0..12).map(|i| format!("app-{i}")).collect();
    let history = history(&ids, 9);
    produce_lines(&bs, &topic, &history, integration_key)
        .await
        .unwrap();

    let dir = std::env::temp_dir().join(unique("ckpt"));
    let store = Arc::new(DirStateStore {
        store: tripline_state::DirStore::open(&dir).expect("checkpoint dir"),
        interval: Duration::from_secs(1),
        cold_on_corrupt: false,
    });
    let mut s = settings(&bs, &topic, &group, &dlq);
    s.batch_max_events = 500;
    // The mock group coordinator delays the rebalance after a member leaves
    // by session timeout - 1 s (a real broker rebalances at once).
    s.properties
        .insert("session.timeout.ms".into(), "6000".into());
    let member = |sink: &Arc<CollectingSink>, obs: &Arc<CollectingObserver>| {
        let mut engine = tripline_engine::EngineConfig::default();
        engine.alert_budget.enabled = false;
        let mut config = RunConfig::new(s.clone(), engine);
        config.registry = Some(registry(&ids));
        config.sink = sink.clone();
        config.observer = obs.clone();
        config.state_store = store.clone();
        Running::start_with(config)
    };
    let (sink_a, obs_a) = (
        Arc::new(CollectingSink::default()),
        Arc::new(CollectingObserver::default()),
    );
    let (sink_b, obs_b) = (
        Arc::new(CollectingSink::default()),
        Arc::new(CollectingObserver::default()),
    );
    let a = member(&sink_a, &obs_a);
    let b = member(&sink_b, &obs_b);
    let received = |o: &CollectingObserver| o.received.load(std::sync::atomic::Ordering::Relaxed);
    eventually(
        "both members consumed the history between them",
        Duration::from_secs(60),
        || received(&obs_a) + received(&obs_b) >= history.len() as u64,
    )
    .await;
    let sa = a.stop().await;
    assert!(
        sa.received > 0 && received(&obs_b) > 0,
        "both members owned partitions: {} / {}",
        sa.received,
        received(&obs_b)
    );

    // After the rebalance: a burst for every integration at an hour the
    // history knows is quiet. The survivor must own all four partitions.
    let burst = burst(&ids, START_MS + 9 * DAY_MS + 3 * 3_600_000);
    produce_lines(&bs, &topic, &burst, integration_key)
        .await
        .unwrap();
    eventually(
        "a call_spike for every integration from the survivor",
        Duration::from_secs(60),
        || spiked(&sink_b).len() == ids.len(),
    )
    .await;
    let sb = b.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        sb.restored_partitions > 0,
        "the survivor restored the stopped member's partitions: {sb:?}"
    );
    assert!(
        sa.parallel_batches > 0 && sb.parallel_batches > 0,
        "both members ran batches on both workers: {sa:?} / {sb:?}"
    );
    assert!(
        spiked(&sink_a).is_empty(),
        "no spike before the burst: {:?}",
        spiked(&sink_a)
    );
}
