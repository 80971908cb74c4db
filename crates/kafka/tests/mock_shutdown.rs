//! Shutdown at the deadline with a batch that cannot finish: nothing past it
//! is checkpointed or committed, so a restart dead-letters the bad message
//! exactly once and loses no valid event.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::types::RDKafkaRespErr;
use tripline_kafka::mock::{integration_key, produce_lines, start_mock_cluster};
use tripline_kafka::{DirStateStore, RunConfig};

use crate::common::*;

/// Far more than the batches in flight can run ahead of the stuck one.
const VALID: usize = 299;

fn config(
    settings: &tripline_kafka::KafkaSettings,
    dir: &std::path::Path,
    obs: Arc<CollectingObserver>,
) -> RunConfig {
    let mut c = RunConfig::new(settings.clone(), tripline_engine::EngineConfig::default());
    c.observer = obs;
    c.state_store = Arc::new(DirStateStore {
        store: tripline_state::DirStore::open(dir).unwrap(),
        interval: Duration::from_millis(300),
        cold_on_corrupt: false,
    });
    c
}

/// The DLQ topic has no leader, so the dead letter of the batch holding the
/// bad message is never acknowledged; shutdown abandons that batch at the
/// deadline. Before the fix the shutdown checkpoint saved that partition's
/// engine and an offset past the bad message: the restart skipped it, and
/// it was never dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_batch_is_not_checkpointed_and_its_dead_letter_is_produced_once() {
    let cluster = start_mock_cluster(1).unwrap();
    let bs = cluster.bootstrap_servers();
    let (topic, dlq, group) = (unique("in"), unique("dlq"), unique("g"));
    cluster.create_topic(&topic, 1).unwrap();
    cluster.create_topic(&dlq, 1).unwrap();
    cluster
        .topic_error(&dlq, RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
        .unwrap();
    let mut lines: Vec<Vec<u8>> = (0..VALID).map(|i| event(i, "app-1").into_bytes()).collect();
    lines.insert(50, b"not json at all".to_vec());
    produce_lines(&bs, &topic, &lines, integration_key)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(unique("ckpt"));
    let mut s = settings(&bs, &topic, &group, &dlq);
    s.batch_max_events = 10;
    s.shutdown_deadline_ms = 1500;
    s.properties
        .insert("session.timeout.ms".into(), "6000".into());

    let obs1 = Arc::new(CollectingObserver::default());
    let run1 = Running::start_with(config(&s, &dir, obs1.clone()));
    eventually("first run made progress", Duration::from_secs(30), || {
        obs1.processed() > 0
    })
    .await;
    // The batch with the bad message waits for its dead letter forever.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stuck_at = obs1.processed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(obs1.processed(), stuck_at, "processing should be stuck");
    assert!(stuck_at < VALID as u64, "stuck at {stuck_at}");
    let s1 = run1.stop().await;
    // The stuck batch, and the batches that ran their engines after it while
    // it waited (in flight, never completed).
    assert!(s1.abandoned_batches >= 1, "{s1:?}");
    assert_eq!(s1.dead_letters, 0);

    cluster
        .topic_error(&dlq, RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
        .unwrap();
    let obs2 = Arc::new(CollectingObserver::default());
    let run2 = Running::start_with(config(&s, &dir, obs2.clone()));
    let dead = read_topic(&bs, &dlq, 1, Duration::from_secs(30)).await;
    assert_eq!(dead.len(), 1, "the bad message is dead-lettered");
    eventually("second run caught up", Duration::from_secs(30), || {
        s1.processed + obs2.processed() >= VALID as u64
    })
    .await;
    let s2 = run2.stop().await;
    assert!(s2.checkpoints > 0, "{s2:?}");

    // Exactly once: no second dead letter...
    let dead = read_topic(&bs, &dlq, 2, Duration::from_secs(3)).await;
    assert_eq!(dead.len(), 1, "dead-lettered more than once");
    // ...and the saved state holds every valid event exactly once, with the
    // offset right after the last message.
    let store = tripline_state::DirStore::open(&dir).unwrap();
    let bytes = store.load_bytes(&topic, 0).unwrap().expect("a checkpoint");
    let p = tripline_state::decode(&bytes, "checkpoint").unwrap();
    assert_eq!(p.next_offset, (VALID + 1) as i64);
    assert_eq!(p.engine.stats().events, VALID as u64);
    assert_committed_to_end(&bs, &group, &topic, 1).await;
    let _ = std::fs::remove_dir_all(&dir);
}
