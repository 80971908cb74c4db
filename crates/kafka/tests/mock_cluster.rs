//! The Kafka source against librdkafka's in-process mock cluster.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use tripline_engine::AlertKind;
use tripline_kafka::mock::{integration_key, produce_lines, start_mock_cluster};
use tripline_kafka::{
    HEADER_REJECT_DETAIL, HEADER_REJECT_REASON, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
};

use crate::common::*;

const PARTITIONS: i32 = 3;

/// Valid events are all processed, every garbage line reaches the DLQ
/// untouched with its reason, and the group's committed offsets reach the end
/// of every partition after shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_valid_dead_letters_garbage_and_commits_to_the_end() {
    let cluster = start_mock_cluster(1).unwrap();
    let bs = cluster.bootstrap_servers();
    let (topic, dlq, group) = (unique("in"), unique("dlq"), unique("g"));
    cluster.create_topic(&topic, PARTITIONS).unwrap();
    cluster.create_topic(&dlq, 1).unwrap();

    const N: usize = 300;
    let mut lines: Vec<Vec<u8>> = (0..N)
        .map(|i| event(i, &format!("app-{}", i % 20)).into_bytes())
        .collect();
    let garbage = garbage();
    for (j, g) in garbage.iter().enumerate() {
        lines.insert(j * 40 + 5, g.clone());
    }
    produce_lines(&bs, &topic, &lines, integration_key)
        .await
        .unwrap();

    let sink = Arc::new(CollectingSink::default());
    let obs = Arc::new(CollectingObserver::default());
    let run = Running::start(
        settings(&bs, &topic, &group, &dlq),
        None,
        sink.clone(),
        obs.clone(),
    );

    eventually(
        "all messages processed or rejected",
        Duration::from_secs(30),
        || obs.processed() == N as u64 && obs.rejected_total() == garbage.len() as u64,
    )
    .await;
    eventually("ready reported", Duration::from_secs(10), || {
        obs.last_ready() == Some(true)
    })
    .await;
    eventually("consumer lag reported", Duration::from_secs(10), || {
        obs.lag_reports.load(std::sync::atomic::Ordering::Relaxed) > 0
    })
    .await;
    let summary = run.stop().await;
    assert_eq!(summary.processed, N as u64);
    assert_eq!(summary.rejected, garbage.len() as u64);
    assert_eq!(summary.dead_letters, garbage.len() as u64);
    assert_eq!(summary.abandoned_batches, 0);
    assert!(summary.final_commit_ok);
    assert_eq!(
        obs.dead_delivered
            .load(std::sync::atomic::Ordering::Relaxed),
        garbage.len() as u64
    );

    let dead = read_topic(&bs, &dlq, garbage.len(), Duration::from_secs(20)).await;
    assert_eq!(
        dead.len(),
        garbage.len(),
        "exactly one dead letter per garbage line"
    );
    let got: BTreeSet<Vec<u8>> = dead
        .iter()
        .map(|m| m.payload().unwrap_or_default().to_vec())
        .collect();
    let want: BTreeSet<Vec<u8>> = garbage.iter().cloned().collect();
    assert_eq!(got, want, "dead letters carry the original bytes");
    let reasons: BTreeSet<String> = dead
        .iter()
        .map(|m| {
            String::from_utf8(
                header(m, HEADER_REJECT_REASON)
                    .expect("reason header")
                    .to_vec(),
            )
            .unwrap()
        })
        .collect();
    let allowed = [
        "invalid_json",
        "invalid_utf8",
        "missing_field",
        "invalid_field",
        "too_large",
    ];
    assert!(
        reasons.iter().all(|r| allowed.contains(&r.as_str())),
        "{reasons:?}"
    );
    assert!(
        reasons.contains("invalid_json")
            && reasons.contains("invalid_utf8")
            && reasons.contains("missing_field")
    );
    for m in &dead {
        assert_eq!(header(m, HEADER_SOURCE_TOPIC), Some(topic.as_bytes()));
        let p: i32 = std::str::from_utf8(header(m, HEADER_SOURCE_PARTITION).unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert!((0..PARTITIONS).contains(&p));
        let _o: i64 = std::str::from_utf8(header(m, HEADER_SOURCE_OFFSET).unwrap())
            .unwrap()
            .parse()
            .unwrap();
        assert!(header(m, HEADER_REJECT_DETAIL).is_some());
    }
    assert_committed_to_end(&bs, &group, &topic, PARTITIONS).await;
}

/// All brokers down when `run` starts: it keeps waiting (does not exit),
/// reports not-ready, and consumes everything once the brokers are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_out_a_broker_outage_at_start() {
    let cluster = start_mock_cluster(1).unwrap();
    let bs = cluster.bootstrap_servers();
    let (topic, dlq, group) = (unique("in"), unique("dlq"), unique("g"));
    cluster.create_topic(&topic, PARTITIONS).unwrap();
    cluster.create_topic(&dlq, 1).unwrap();
    const N: usize = 100;
    let lines: Vec<String> = (0..N)
        .map(|i| event(i, &format!("app-{}", i % 7)))
        .collect();
    produce_lines(&bs, &topic, &lines, integration_key)
        .await
        .unwrap();

    cluster.broker_down(-1).unwrap();
    let sink = Arc::new(CollectingSink::default());
    let obs = Arc::new(CollectingObserver::default());
    let run = Running::start(
        settings(&bs, &topic, &group, &dlq),
        None,
        sink.clone(),
        obs.clone(),
    );

    eventually(
        "a connectivity error is reported",
        Duration::from_secs(20),
        || !obs.errors.lock().unwrap().is_empty(),
    )
    .await;
    assert_eq!(
        obs.last_ready(),
        Some(false),
        "not ready while brokers are down"
    );
    assert!(
        !run.task.is_finished(),
        "run must not exit on a broker outage"
    );
    assert_eq!(obs.processed(), 0);

    cluster.broker_up(-1).unwrap();
    eventually(
        "everything consumed after the brokers return",
        Duration::from_secs(60),
        || obs.processed() == N as u64,
    )
    .await;
    eventually("ready again", Duration::from_secs(10), || {
        obs.last_ready() == Some(true)
    })
    .await;
    let summary = run.stop().await;
    assert_eq!(summary.processed, N as u64);
    assert_committed_to_end(&bs, &group, &topic, PARTITIONS).await;
}

/// Stop mid-stream, restart with the same group: every valid event is
/// processed at least once. Each event has its own integration id and the
/// registry knows none of them, so the engine raises one
/// `unknown_integration` alert per event: the alerts' ids are the set of
/// events that went through an engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_the_same_group_loses_nothing() {
    let cluster = start_mock_cluster(1).unwrap();
    let bs = cluster.bootstrap_servers();
    let (topic, dlq, group) = (unique("in"), unique("dlq"), unique("g"));
    cluster.create_topic(&topic, PARTITIONS).unwrap();
    cluster.create_topic(&dlq, 1).unwrap();
    // Large enough that the first run is stopped mid-stream however fast it is.
    const N: usize = 20_000;
    let lines: Vec<String> = (0..N).map(|i| event(i, &format!("shadow-{i}"))).collect();
    let (first, second) = lines.split_at(N / 2);
    produce_lines(&bs, &topic, first, integration_key)
        .await
        .unwrap();

    let registry = registry_with("declared-app");
    let sink1 = Arc::new(CollectingSink::default());
    let obs1 = Arc::new(CollectingObserver::default());
    let mut s = settings(&bs, &topic, &group, &dlq);
    s.batch_max_events = 10;
    if std::env::var_os("TRIPLINE_KAFKA_DEBUG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_test_writer()
            .try_init();
        s.properties
            .insert("debug".into(), "consumer,cgrp,fetch".into());
    }
    // The mock group coordinator delays the rebalance after a member leaves by
    // session timeout - 1 s (a real broker rebalances at once); keep it short.
    s.properties
        .insert("session.timeout.ms".into(), "6000".into());
    let run1 = Running::start(
        s.clone(),
        Some(registry.clone()),
        sink1.clone(),
        obs1.clone(),
    );
    // Keep producing while the first run is stopped part-way.
    let producer = {
        let (bs, topic) = (bs.clone(), topic.clone());
        let second = second.to_vec();
        tokio::spawn(async move { produce_lines(&bs, &topic, &second, integration_key).await })
    };
    eventually("first run made progress", Duration::from_secs(30), || {
        obs1.processed() >= 200
    })
    .await;
    let s1 = run1.stop().await;
    assert_eq!(producer.await.unwrap().unwrap(), (N / 2) as u64);
    assert!(
        s1.processed < N as u64,
        "the first run should stop mid-stream (processed {})",
        s1.processed
    );

    let sink2 = Arc::new(CollectingSink::default());
    let obs2 = Arc::new(CollectingObserver::default());
    let t0 = std::time::Instant::now();
    let run2 = Running::start(s, Some(registry), sink2.clone(), obs2.clone());
    eventually("second run starts", Duration::from_secs(30), || {
        obs2.processed() > 0
    })
    .await;
    assert!(t0.elapsed() < Duration::from_secs(30));
    let want: BTreeSet<String> = (0..N).map(|i| format!("shadow-{i}")).collect();
    let seen = || {
        let mut seen = sink1.integrations();
        seen.extend(sink2.integrations());
        seen
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while seen() != want && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let missing: Vec<_> = want.difference(&seen()).take(10).cloned().collect();
    assert!(
        missing.is_empty(),
        "missing {} events, e.g. {missing:?}; run1 unowned {}; run1 processed {} (alerts {}), run2 processed {} (alerts {}), rejected {}",
        want.len() - seen().len(),
        s1.unowned,
        obs1.processed(),
        sink1.alerts.lock().unwrap().len(),
        obs2.processed(),
        sink2.alerts.lock().unwrap().len(),
        obs2.rejected_total()
    );
    let s2 = run2.stop().await;
    assert!(s1.processed + s2.processed >= N as u64);
    // Redelivery after a clean stop is bounded by what was in flight, not the whole topic.
    assert!(
        s2.processed <= N as u64,
        "second run reprocessed {}",
        s2.processed
    );
    let kinds: BTreeSet<AlertKind> = sink1
        .alerts
        .lock()
        .unwrap()
        .iter()
        .chain(sink2.alerts.lock().unwrap().iter())
        .map(|a| a.kind)
        .collect();
    assert_eq!(kinds, BTreeSet::from([AlertKind::UnknownIntegration]));
    assert_committed_to_end(&bs, &group, &topic, PARTITIONS).await;
}

/// Alerts produced by the engine reach the alerts topic as alert JSON keyed by
/// integration id, and reach the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_published_to_the_alerts_topic() {
    let cluster = start_mock_cluster(1).unwrap();
    let bs = cluster.bootstrap_servers();
    let (topic, dlq, alerts, group) = (unique("in"), unique("dlq"), unique("alerts"), unique("g"));
    cluster.create_topic(&topic, PARTITIONS).unwrap();
    cluster.create_topic(&dlq, 1).unwrap();
    cluster.create_topic(&alerts, 1).unwrap();
    let lines: Vec<String> = (0..20)
        .map(|i| {
            event(
                i,
                if i % 2 == 0 {
                    "declared-app"
                } else {
                    "shadow-app"
                },
            )
        })
        .collect();
    produce_lines(&bs, &topic, &lines, integration_key)
        .await
        .unwrap();

    let sink = Arc::new(CollectingSink::default());
    let obs = Arc::new(CollectingObserver::default());
    let mut s = settings(&bs, &topic, &group, &dlq);
    s.alerts_topic = Some(alerts.clone());
    let run = Running::start(
        s,
        Some(registry_with("declared-app")),
        sink.clone(),
        obs.clone(),
    );
    eventually("all processed", Duration::from_secs(30), || {
        obs.processed() == 20
    })
    .await;
    run.stop().await;

    let got = read_topic(&bs, &alerts, 1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "one folded unknown_integration alert");
    let m = &got[0];
    assert_eq!(m.key(), Some(&b"shadow-app"[..]));
    let alert: tripline_engine::Alert = serde_json::from_slice(m.payload().unwrap()).unwrap();
    assert_eq!(alert.kind, AlertKind::UnknownIntegration);
    assert_eq!(alert.integration_id, "shadow-app");
    assert_eq!(sink.alerts.lock().unwrap().len(), 1);
    assert_eq!(sink.alerts.lock().unwrap()[0], alert);
}

/// A caught-up consumer processes what arrives at once: a batch smaller than
/// `batch_max_events` does not wait out `batch_max_wait_ms` (here a minute)
/// once librdkafka has nothing more ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caught_up_batch_is_processed_without_waiting_for_the_batch_deadline() {
    let cluster = start_mock_cluster(1).unwrap();
    let bs = cluster.bootstrap_servers();
    let (topic, dlq, group) = (unique("in"), unique("dlq"), unique("g"));
    cluster.create_topic(&topic, PARTITIONS).unwrap();
    cluster.create_topic(&dlq, 1).unwrap();
    let mut s = settings(&bs, &topic, &group, &dlq);
    s.batch_max_events = 1000;
    s.batch_max_wait_ms = 60_000;
    let obs = Arc::new(CollectingObserver::default());
    let run = Running::start(s, None, Arc::new(CollectingSink::default()), obs.clone());
    eventually("assigned and ready", Duration::from_secs(30), || {
        obs.last_ready() == Some(true)
    })
    .await;

    const N: usize = 10;
    let lines: Vec<Vec<u8>> = (0..N)
        .map(|i| event(i, &format!("app-{}", i % 3)).into_bytes())
        .collect();
    produce_lines(&bs, &topic, &lines, integration_key)
        .await
        .unwrap();
    eventually(
        "the few messages processed long before the one-minute batch deadline",
        Duration::from_secs(10),
        || obs.processed() == N as u64,
    )
    .await;
    let summary = run.stop().await;
    assert_eq!(summary.processed, N as u64);
}

/// An event dated far ahead of its partition's stream time is processed but
/// moves no clock (`EngineStats::ts_out_of_range`): the loop reports it to
/// the observer (`tripline_events_ts_out_of_range_total`), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_dated_far_ahead_is_reported_out_of_range() {
    let cluster = start_mock_cluster(1).unwrap();
    let bs = cluster.bootstrap_servers();
    let (topic, dlq, group) = (unique("in"), unique("dlq"), unique("g"));
    cluster.create_topic(&topic, PARTITIONS).unwrap();
    cluster.create_topic(&dlq, 1).unwrap();

    const N: usize = 120;
    let mut lines: Vec<Vec<u8>> = (0..N)
        .map(|i| event(i, &format!("app-{}", i % 4)).into_bytes())
        .collect();
    // 2100-01-01, on a live integration, halfway through the stream.
    let forged = r#"{"ts":4102444800000,"integration_id":"app-0","resource":"contacts","method":"GET","status":200,"records":1}"#;
    lines.insert(N / 2, forged.as_bytes().to_vec());
    produce_lines(&bs, &topic, &lines, integration_key)
        .await
        .unwrap();

    let obs = Arc::new(CollectingObserver::default());
    let run = Running::start(
        settings(&bs, &topic, &group, &dlq),
        None,
        Arc::new(CollectingSink::default()),
        obs.clone(),
    );
    eventually("all events processed", Duration::from_secs(30), || {
        obs.processed() == N as u64 + 1
    })
    .await;
    let summary = run.stop().await;
    assert_eq!(summary.rejected, 0);
    assert_eq!(
        obs.out_of_range.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
