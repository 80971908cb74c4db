//! Shared helpers: collecting sink/observer, event lines, separate-client
//! checks of topics and committed offsets, `eventually`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::sync::oneshot;
use tripline_engine::{Alert, Outputs};
use tripline_ingest::RejectReason;
use tripline_kafka::{
    AlertSink, DeadLetterOutcome, KafkaSettings, Observer, RunConfig, RunSummary,
};

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A valid canonical event; `principal` carries the sequence number so every
/// event is distinguishable.
pub fn event(i: usize, integration: &str) -> String {
    // Recent event time so event delays are small and nothing is "late".
    let ts = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + i as i64;
    format!(
        r#"{{"ts":{ts},"integration_id":"{integration}","resource":"contacts","method":"GET","status":200,"principal":"p-{i}","records":1}}"#
    )
}

/// Rejected lines, one per interesting reason.
pub fn garbage() -> Vec<Vec<u8>> {
    vec![
        b"not json at all".to_vec(),
        b"{\"ts\":0,".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        br#"{"integration_id":"a","resource":"x","method":"GET","status":200}"#.to_vec(),
        br#"{"ts":0,"integration_id":"a","resource":"x","method":"BREW","status":200}"#.to_vec(),
        br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":999}"#.to_vec(),
        Vec::new(),
    ]
}

#[derive(Default)]
pub struct CollectingSink {
    pub alerts: Mutex<Vec<Alert>>,
}

impl AlertSink for CollectingSink {
    fn submit(&self, out: &Outputs) {
        if let Ok(mut a) = self.alerts.lock() {
            a.extend(out.alerts.iter().cloned());
        }
    }
}

impl CollectingSink {
    pub fn integrations(&self) -> BTreeSet<String> {
        self.alerts
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.integration_id.clone())
            .collect()
    }
}

#[derive(Default)]
pub struct CollectingObserver {
    pub received: AtomicU64,
    pub processed: AtomicU64,
    pub rejected: Mutex<BTreeMap<&'static str, u64>>,
    pub dead_delivered: AtomicU64,
    pub batches: AtomicU64,
    pub ready: Mutex<Vec<bool>>,
    pub errors: Mutex<Vec<(&'static str, &'static str)>>,
    pub lag_reports: AtomicU64,
    pub out_of_range: AtomicU64,
}

impl Observer for CollectingObserver {
    fn events_received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }
    fn events_processed(&self, n: u64) {
        self.processed.fetch_add(n, Ordering::Relaxed);
    }
    fn events_rejected(&self, reason: RejectReason, n: u64) {
        *self
            .rejected
            .lock()
            .unwrap()
            .entry(reason.as_str())
            .or_default() += n;
    }
    fn dead_letters(&self, outcome: DeadLetterOutcome, n: u64) {
        if outcome == DeadLetterOutcome::Delivered {
            self.dead_delivered.fetch_add(n, Ordering::Relaxed);
        }
    }
    fn batch(&self, _d: Duration, _n: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
    }
    fn events_out_of_range(&self, n: u64) {
        self.out_of_range.fetch_add(n, Ordering::Relaxed);
    }
    fn consumer_lag(&self, _t: &str, _p: i32, _lag: i64) {
        self.lag_reports.fetch_add(1, Ordering::Relaxed);
    }
    fn ready(&self, ready: bool) {
        self.ready.lock().unwrap().push(ready);
    }
    fn error(&self, t: &'static str, s: &'static str) {
        self.errors.lock().unwrap().push((t, s));
    }
}

impl CollectingObserver {
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }
    pub fn rejected_total(&self) -> u64 {
        self.rejected.lock().unwrap().values().sum()
    }
    pub fn last_ready(&self) -> Option<bool> {
        self.ready.lock().unwrap().last().copied()
    }
}

/// Polls `f` every 50 ms until it holds; panics with `what` after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if f() {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Test settings: small batches, fast commits and lag reports.
pub fn settings(bootstrap: &str, topic: &str, group: &str, dlq: &str) -> KafkaSettings {
    KafkaSettings {
        brokers: bootstrap.to_owned(),
        group_id: group.to_owned(),
        topics: vec![topic.to_owned()],
        dlq_topic: Some(dlq.to_owned()),
        alerts_topic: None,
        batch_max_events: 50,
        batch_max_wait_ms: 20,
        commit_interval_ms: 200,
        shutdown_deadline_ms: 10_000,
        lag_interval_ms: 500,
        // Two workers that take even small batches apart: the tests run
        // the parallel path.
        workers: 2,
        min_events_per_worker: 1,
        ..KafkaSettings::default()
    }
}

/// A `run` in the background, stopped through `stop()`.
pub struct Running {
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<RunSummary, tripline_kafka::Error>>,
}

impl Running {
    pub fn start(
        settings: KafkaSettings,
        registry: Option<tripline_engine::Registry>,
        sink: Arc<dyn AlertSink>,
        observer: Arc<dyn Observer>,
    ) -> Self {
        // The tests count one unknown_integration alert per new id as their
        // marker of what was processed: alert budgets would fold a burst.
        let mut engine = tripline_engine::EngineConfig::default();
        engine.alert_budget.enabled = false;
        let mut config = RunConfig::new(settings, engine);
        config.registry = registry;
        config.sink = sink;
        config.observer = observer;
        Self::start_with(config)
    }

    pub fn start_with(config: RunConfig) -> Self {
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(tripline_kafka::run(config, async move {
            let _ = rx.await;
        }));
        Running {
            stop: Some(tx),
            task,
        }
    }

    pub async fn stop(mut self) -> RunSummary {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let started = Instant::now();
        let summary = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("run did not return within 20 s of shutdown")
            .expect("run task panicked")
            .expect("run returned an error");
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "shutdown took {:?}, over the 10 s deadline",
            started.elapsed()
        );
        summary
    }
}

fn client(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("test consumer")
}

/// Every message of `topic`, read with a separate client from the start,
/// once `want` have arrived (or whatever arrived within `timeout`).
pub async fn read_topic(
    bootstrap: &str,
    topic: &str,
    want: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let c = client(&bootstrap, &unique("reader"));
        c.subscribe(&[&topic]).expect("subscribe");
        let mut out = Vec::new();
        let start = Instant::now();
        while out.len() < want && start.elapsed() < timeout {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                out.push(m.detach());
            }
        }
        // Anything beyond `want` (duplicates) shows up within a short grace.
        let grace = Instant::now();
        while grace.elapsed() < Duration::from_millis(500) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                out.push(m.detach());
            }
        }
        out
    })
    .await
    .expect("reader thread")
}

/// (committed offset, high watermark) of each partition of `topic` for
/// `group`, read with a separate client.
pub async fn committed_vs_end(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<(i32, i64, i64)> {
    let bootstrap = bootstrap.to_owned();
    let group = group.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let c = client(&bootstrap, &group);
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(&topic, p);
        }
        let committed = c
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        (0..partitions)
            .map(|p| {
                let (_, high) = c
                    .fetch_watermarks(&topic, p, Duration::from_secs(10))
                    .expect("watermarks");
                let off = match committed.find_partition(&topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => -1,
                };
                (p, off, high)
            })
            .collect()
    })
    .await
    .expect("offset thread")
}

/// Asserts every partition's committed offset equals its end offset.
pub async fn assert_committed_to_end(bootstrap: &str, group: &str, topic: &str, partitions: i32) {
    let rows = committed_vs_end(bootstrap, group, topic, partitions).await;
    for (p, committed, high) in &rows {
        if *high > 0 {
            assert_eq!(
                committed, high,
                "partition {p}: committed {committed} != end {high} ({rows:?})"
            );
        }
    }
}

/// A registry that declares only `known`; every other integration is unknown.
pub fn registry_with(known: &str) -> tripline_engine::Registry {
    let toml =
        format!("[[integrations]]\nid = \"{known}\"\nname = \"Known\"\ngranted = [\"*:*\"]\n");
    tripline_ingest::parse_registry(&toml, "test.toml").expect("registry parses")
}

pub fn header<'a>(m: &'a OwnedMessage, key: &str) -> Option<&'a [u8]> {
    use rdkafka::message::Headers;
    let h = m.headers()?;
    h.iter().find(|x| x.key == key).and_then(|x| x.value)
}
