//! The processing task: batches, per-partition engines, dead letters, the
//! alerts topic, offset storage and graceful shutdown.
//!
//! **Processed** (the point at which an input offset is stored, and so may be
//! committed) means all of: the message went through its partition's engine
//! or was rejected; its dead letter, if any, was acknowledged by the broker;
//! every alert of its batch was handed to the [`AlertSink`] and, if an alerts
//! topic is configured, acknowledged there. Offsets are stored per batch, in
//! order, per partition; a batch that cannot finish stores nothing and is
//! consumed again (at-least-once).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tripline_engine::{Engine, EngineConfig, EngineStats, Outputs, Registry};
use tripline_ingest::{parse_event, RejectReason};

use crate::consumer::{commit_sync, next_offset, poll_loop, Ctx, Item, Tp, TriplineConsumer};
use crate::hooks::{AlertSink, DeadLetterOutcome, NoStateStore, Observer, RunSummary, StateStore};
use crate::settings::{KafkaSettings, Role};
use crate::util::{error_kind, Health, LogLimiter, WARN_INTERVAL};

/// Dead-letter header: the bounded reject reason (`invalid_json`, ...).
pub const HEADER_REJECT_REASON: &str = "tripline-reject-reason";
/// Dead-letter header: the parser's human-readable detail (never the payload).
pub const HEADER_REJECT_DETAIL: &str = "tripline-reject-detail";
/// Dead-letter header: the topic the message was read from.
pub const HEADER_SOURCE_TOPIC: &str = "tripline-source-topic";
/// Dead-letter header: its partition, in decimal.
pub const HEADER_SOURCE_PARTITION: &str = "tripline-source-partition";
/// Dead-letter header: its offset, in decimal.
pub const HEADER_SOURCE_OFFSET: &str = "tripline-source-offset";

/// Engine stats (memory, tracked integrations, late events) are reported at
/// most this often: computing them walks every integration.
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Reject details are parser messages; cap them so a header stays small.
const MAX_DETAIL_BYTES: usize = 512;
/// First wait before producing a failed record again...
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// ...doubling up to this, so a long outage costs one attempt per 5 s.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Part of the shutdown deadline kept for the final commit and consumer close.
const COMMIT_RESERVE_MAX: Duration = Duration::from_secs(2);

/// Runs the Kafka source until `shutdown` resolves, then drains and commits
/// within `settings.shutdown_deadline_ms`: [`run_with_control`] with no
/// checkpoints ([`NoStateStore`]) and no control channel.
///
/// Returns an error only for problems that retrying cannot fix (invalid
/// settings, a client librdkafka refuses to create). Broker outages are
/// logged (rate-limited), reported through [`Observer::ready`] and waited out.
pub async fn run(
    settings: KafkaSettings,
    engine_config: EngineConfig,
    registry: Option<Registry>,
    sink: Arc<dyn AlertSink>,
    observer: Arc<dyn Observer>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let store = Arc::new(NoStateStore);
    run_with_control(
        settings,
        engine_config,
        registry,
        sink,
        observer,
        store,
        None,
        shutdown,
    )
    .await
}

/// The work of an [`EngineVisit`], run over every assigned partition's engine.
type VisitJob = Box<dyn FnOnce(&mut [&mut Engine]) + Send>;

/// A request to look at (or change) the partition engines from outside the
/// loop — the HTTP API's inventory, audit and feedback. It runs on the
/// processing task between batches, so engines need no locks.
pub struct EngineVisit {
    job: VisitJob,
    /// Whether the job may change engine state (feedback): the next
    /// checkpoint must then save every partition even if no offset moved.
    mutates: bool,
}

/// Where [`EngineVisit`]s are sent. Bounded: a flood of API calls is refused
/// ([`ControlHandle::visit`] returns `None`), it never delays processing.
#[derive(Clone, Debug)]
pub struct ControlHandle {
    tx: mpsc::Sender<EngineVisit>,
}

/// The receiving end, passed to [`run_with_control`].
pub struct ControlReceiver {
    rx: mpsc::Receiver<EngineVisit>,
}

/// A control channel for [`run_with_control`].
pub fn control_channel() -> (ControlHandle, ControlReceiver) {
    let (tx, rx) = mpsc::channel(64);
    (ControlHandle { tx }, ControlReceiver { rx })
}

impl ControlHandle {
    /// Runs `f` over every assigned partition's engine and returns its
    /// result, or `None` if the loop is busy, gone, or slower than `timeout`.
    /// Blocking: call it from a blocking thread, never from async code.
    pub fn visit<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&[&Engine]) -> T + Send + 'static,
    ) -> Option<T> {
        self.send(timeout, false, move |engines| {
            let refs: Vec<&Engine> = engines.iter().map(|e| &**e).collect();
            f(&refs)
        })
    }

    /// [`ControlHandle::visit`] for a job that changes engine state; the
    /// change is saved by the next checkpoint.
    pub fn visit_mut<T: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut [&mut Engine]) -> T + Send + 'static,
    ) -> Option<T> {
        self.send(timeout, true, f)
    }

    fn send<T: Send + 'static>(
        &self,
        timeout: Duration,
        mutates: bool,
        f: impl FnOnce(&mut [&mut Engine]) -> T + Send + 'static,
    ) -> Option<T> {
        let (reply, answer) = std::sync::mpsc::channel();
        let job = Box::new(move |engines: &mut [&mut Engine]| {
            let _ = reply.send(f(engines));
        });
        self.tx.try_send(EngineVisit { job, mutates }).ok()?;
        answer.recv_timeout(timeout).ok()
    }
}

/// The Kafka source with a [`StateStore`] (checkpoints: restored on
/// assignment, written on a timer, on revoke and at shutdown) and an optional
/// control channel (the HTTP API's view of the engines).
#[allow(clippy::too_many_arguments)]
pub async fn run_with_control(
    settings: KafkaSettings,
    engine_config: EngineConfig,
    registry: Option<Registry>,
    sink: Arc<dyn AlertSink>,
    observer: Arc<dyn Observer>,
    state_store: Arc<dyn StateStore>,
    control: Option<ControlReceiver>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunSummary> {
    let mut control = control.map(|c| c.rx);
    let consumer_config = settings.client_config(Role::Consumer)?;
    let producer: Option<FutureProducer> =
        if settings.dlq_topic().is_some() || settings.alerts_topic().is_some() {
            let p = settings
                .client_config(Role::Producer)?
                .create()
                .context("creating the Kafka producer")?;
            Some(p)
        } else {
            None
        };

    let health = Arc::new(Health::new(Arc::clone(&observer)));
    health.set(false);
    let logs = Arc::new(LogLimiter::new(WARN_INTERVAL));
    // Room for two batches: one being processed, one being fetched.
    let (tx, rx) = mpsc::channel(settings.batch_max_events.saturating_mul(2).max(16));
    let ctx = Ctx {
        tx,
        observer: Arc::clone(&observer),
        health: Arc::clone(&health),
        logs: Arc::clone(&logs),
        closing: AtomicBool::new(false),
        revoke_wait: settings.shutdown_deadline(),
        assigned: Default::default(),
    };
    let consumer: TriplineConsumer = consumer_config
        .create_with_context(ctx)
        .context("creating the Kafka consumer")?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .with_context(|| format!("subscribing to {topics:?}"))?;
    let consumer = Arc::new(consumer);
    let stop = Arc::new(AtomicBool::new(false));
    let mut guard = CloseOnDrop {
        consumer: Some(Arc::clone(&consumer)),
        stop: Arc::clone(&stop),
    };
    let poll_thread = std::thread::Builder::new()
        .name("tripline-kafka-poll".into())
        .spawn({
            let consumer = Arc::clone(&consumer);
            let stop = Arc::clone(&stop);
            move || poll_loop(consumer, stop)
        })
        .context("spawning the Kafka poll thread")?;
    tracing::info!(
        brokers = %settings.brokers,
        group_id = %settings.group_id,
        topics = ?settings.topics,
        "Kafka source started."
    );

    let seed_from_ms = settings
        .seed_from
        .as_deref()
        .and_then(tripline_engine::time::parse_rfc3339);
    let mut p = Pipeline {
        dlq_topic: settings.dlq_topic().map(str::to_owned),
        alerts_topic: settings.alerts_topic().map(str::to_owned),
        settings,
        engine_config,
        registry,
        sink,
        observer,
        state_store,
        consumer: Arc::clone(&consumer),
        producer,
        logs,
        engines: HashMap::new(),
        out: Outputs::default(),
        delays: Vec::new(),
        summary: RunSummary::default(),
        poisoned: false,
        fatal: None,
        last_checkpoint: Instant::now(),
        seed_from_ms,
        last_stats: Instant::now(),
    };
    let mut stopper = Stopper {
        shutdown: Box::pin(shutdown),
        requested_at: None,
        drain_deadline: None,
        total: p.settings.shutdown_deadline(),
    };
    let mut rx = rx;
    p.main_loop(&mut rx, &mut stopper, &mut control).await;

    // Shutdown: stop fetching, finish what was already fetched.
    let requested_at = stopper.requested_at.unwrap_or_else(Instant::now);
    let final_deadline = requested_at + stopper.total;
    stop.store(true, Ordering::Release);
    tracing::info!("Kafka source stopping: draining in-flight messages.");
    p.drain(&mut rx, &mut stopper).await;
    consumer.context().closing.store(true, Ordering::Release);
    drop(rx);
    p.release_all();

    if let Some(producer) = p.producer.clone() {
        let left = final_deadline.saturating_duration_since(Instant::now());
        let flushed = on_thread("tripline-kafka-flush", left, move || producer.flush(left)).await;
        if !matches!(flushed, Some(Ok(()))) {
            tracing::warn!("Kafka producer not flushed before the shutdown deadline.");
        }
    }
    let left = final_deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    let committer = Arc::clone(&consumer);
    let committed = on_thread("tripline-kafka-commit", left, move || {
        commit_sync(&committer).map_err(|e| e.to_string())
    })
    .await;
    p.summary.final_commit_ok = matches!(committed, Some(Ok(())));
    match committed {
        Some(Ok(())) => {}
        Some(Err(error)) => tracing::warn!(%error, "Final offset commit failed."),
        None => tracing::warn!("Final offset commit did not finish before the deadline."),
    }
    drop(p.consumer);
    guard.consumer = None;
    let left = final_deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(100));
    // Leaving the group cleanly lets the partitions move without waiting for
    // the session timeout; it needs the last reference to the consumer.
    let closed = on_thread("tripline-kafka-close", left, move || {
        let _ = poll_thread.join();
        drop(consumer);
    })
    .await;
    if closed.is_none() {
        tracing::warn!("Kafka consumer did not close before the shutdown deadline.");
    }
    health.set(false);
    if let Some(msg) = p.fatal.take() {
        anyhow::bail!(msg);
    }
    let s = p.summary;
    tracing::info!(
        received = s.received,
        processed = s.processed,
        rejected = s.rejected,
        dead_letters = s.dead_letters,
        alerts = s.alerts,
        abandoned_batches = s.abandoned_batches,
        final_commit_ok = s.final_commit_ok,
        "Kafka source stopped."
    );
    Ok(s)
}

/// The next control request, or never when there is no control channel.
async fn recv_opt(control: &mut Option<mpsc::Receiver<EngineVisit>>) -> Option<EngineVisit> {
    match control {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs blocking I/O (checkpoint files, changelog reads) without stalling
/// other tasks on a multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Runs `f` on its own OS thread and waits at most `timeout` for it. The
/// thread is left to finish on its own if it overruns (librdkafka calls that
/// block on an unreachable broker), so shutdown stays bounded.
async fn on_thread<T: Send + 'static>(
    name: &str,
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .ok()?;
    tokio::time::timeout(timeout, rx).await.ok()?.ok()
}

/// Makes dropping the `run` future (instead of resolving `shutdown`) safe:
/// stops the poll thread and closes the consumer on a thread of its own, so
/// the drop never blocks the async runtime on librdkafka's close.
struct CloseOnDrop {
    consumer: Option<Arc<TriplineConsumer>>,
    stop: Arc<AtomicBool>,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(consumer) = self.consumer.take() {
            consumer.context().closing.store(true, Ordering::Release);
            let _ = std::thread::Builder::new()
                .name("tripline-kafka-close".into())
                .spawn(move || drop(consumer));
        }
    }
}

/// Watches the shutdown future and owns the drain deadline.
struct Stopper<F: Future<Output = ()>> {
    shutdown: Pin<Box<F>>,
    requested_at: Option<Instant>,
    drain_deadline: Option<Instant>,
    total: Duration,
}

impl<F: Future<Output = ()>> Stopper<F> {
    /// Resolves when shutdown is requested, and at once if it already was
    /// (a signal that arrived mid-batch must still stop the main loop).
    async fn requested(&mut self) {
        if self.requested_at.is_some() {
            return;
        }
        self.shutdown.as_mut().await;
        let now = Instant::now();
        let reserve = (self.total / 4).min(COMMIT_RESERVE_MAX);
        self.requested_at = Some(now);
        self.drain_deadline = Some(now + self.total.saturating_sub(reserve));
        tracing::info!("Shutdown requested.");
    }

    /// Drives `fut` to completion unless shutdown is requested meanwhile and
    /// the drain deadline passes first (`None`).
    async fn guard<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            if let Some(deadline) = self.drain_deadline {
                return tokio::time::timeout_at(deadline, fut).await.ok();
            }
            tokio::select! {
                biased;
                r = &mut fut => return Some(r),
                () = self.requested() => {}
            }
        }
    }
}

/// One assigned partition.
struct PartState {
    engine: Engine,
    /// `late_events` already reported, to report deltas.
    late_reported: u64,
    /// Whether the last batch had a message of this partition.
    active: bool,
    /// Messages below this offset are already inside a restored checkpoint.
    skip_below: i64,
    /// First offset not yet processed (None before the first message).
    next_offset: Option<i64>,
    /// `next_offset` covered by the last checkpoint written.
    saved_offset: Option<i64>,
    /// Seeding: messages below this offset train the engine with their
    /// alerts suppressed (-1: live).
    seed_until: i64,
}

/// A record to produce and wait for.
struct OutRecord {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    dead_letter: bool,
}

struct Pipeline {
    settings: KafkaSettings,
    dlq_topic: Option<String>,
    alerts_topic: Option<String>,
    engine_config: EngineConfig,
    registry: Option<Registry>,
    sink: Arc<dyn AlertSink>,
    observer: Arc<dyn Observer>,
    state_store: Arc<dyn StateStore>,
    consumer: Arc<TriplineConsumer>,
    producer: Option<FutureProducer>,
    logs: Arc<LogLimiter>,
    engines: HashMap<String, HashMap<i32, PartState>>,
    /// Reused across batches so the hot path does not allocate.
    out: Outputs,
    delays: Vec<f64>,
    summary: RunSummary,
    /// Set when a batch was abandoned at the deadline: from then on no offset
    /// may be stored, or the abandoned messages would be skipped.
    poisoned: bool,
    /// A problem that must stop the run (an unusable checkpoint with
    /// `on_corrupt = "fail"`): returned as the run's error after draining.
    fatal: Option<String>,
    /// When checkpoints were last written.
    last_checkpoint: Instant,
    /// `kafka.seed_from`, parsed.
    seed_from_ms: Option<i64>,
    /// When engine stats were last reported.
    last_stats: Instant,
}

impl Pipeline {
    fn warn(&self, kind: &'static str, stage: &'static str, error: &dyn std::fmt::Display) {
        self.observer.error(kind, stage);
        if let Some(suppressed) = self.logs.allow(kind) {
            tracing::warn!(error_type = kind, stage, suppressed, %error, "Kafka pipeline error.");
        }
    }

    async fn main_loop<F: Future<Output = ()>>(
        &mut self,
        rx: &mut mpsc::Receiver<Item>,
        stopper: &mut Stopper<F>,
        control: &mut Option<mpsc::Receiver<EngineVisit>>,
    ) {
        let max = self.settings.batch_max_events;
        let wait = self.settings.batch_max_wait();
        let mut batch: Vec<OwnedMessage> = Vec::with_capacity(max);
        let mut batch_deadline: Option<Instant> = None;
        // Checkpoints are due on a timer too, not only between messages: the
        // tail of a stream that has gone quiet must be saved (and its offsets
        // committed) without waiting for the next message.
        let period = if self.state_store.enabled() {
            self.state_store.interval()
        } else {
            Duration::from_secs(3600)
        };
        let mut checkpoint_tick = tokio::time::interval_at(Instant::now() + period, period);
        checkpoint_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = batch_deadline;
            tokio::select! {
                biased;
                () = stopper.requested() => {
                    // Messages already taken from the channel must be
                    // processed before the drain takes later ones: otherwise
                    // the drain stores offsets past them and they are lost.
                    self.flush(&mut batch, stopper).await;
                    return;
                }
                Some(visit) = recv_opt(control) => {
                    let mut engines: Vec<&mut Engine> =
                        self.engines.values_mut().flat_map(|b| b.values_mut().map(|ps| &mut ps.engine)).collect();
                    (visit.job)(&mut engines);
                    if visit.mutates {
                        // State changed (feedback) without moving offsets:
                        // make the next checkpoint save it.
                        for ps in self.engines.values_mut().flat_map(|b| b.values_mut()) {
                            ps.saved_offset = None;
                        }
                    }
                }
                _ = checkpoint_tick.tick(), if self.state_store.enabled() => {
                    batch_deadline = None;
                    self.flush(&mut batch, stopper).await;
                    self.checkpoint(None);
                }
                item = rx.recv() => match item {
                    Some(Item::Message(m)) => {
                        if batch.is_empty() {
                            batch_deadline = Some(Instant::now() + wait);
                        }
                        batch.push(m);
                        if batch.len() >= max {
                            batch_deadline = None;
                            self.flush(&mut batch, stopper).await;
                        }
                    }
                    Some(Item::Assigned(parts)) => {
                        batch_deadline = None;
                        self.flush(&mut batch, stopper).await;
                        self.assign(parts);
                    }
                    Some(Item::Revoked(parts, ack)) => {
                        batch_deadline = None;
                        self.flush(&mut batch, stopper).await;
                        self.revoke(&parts);
                        let _ = ack.send(());
                    }
                    Some(Item::Stopped) | None => {
                        // The poll thread only stops when asked; treat it as shutdown.
                        self.flush(&mut batch, stopper).await;
                        return;
                    }
                },
                () = sleep_until_opt(deadline) => {
                    batch_deadline = None;
                    self.flush(&mut batch, stopper).await;
                }
            }
            if self.poisoned {
                return;
            }
            if self.state_store.enabled()
                && self.last_checkpoint.elapsed() >= self.state_store.interval()
            {
                self.checkpoint(None);
            }
        }
    }

    /// After shutdown: processes what the poll thread had already fetched,
    /// until it reports it has stopped or the drain deadline passes.
    async fn drain<F: Future<Output = ()>>(
        &mut self,
        rx: &mut mpsc::Receiver<Item>,
        stopper: &mut Stopper<F>,
    ) {
        let Some(deadline) = stopper.drain_deadline else {
            return;
        };
        let max = self.settings.batch_max_events;
        let mut batch: Vec<OwnedMessage> = Vec::with_capacity(max);
        while !self.poisoned {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(Item::Message(m))) => {
                    batch.push(m);
                    if batch.len() >= max {
                        self.flush(&mut batch, stopper).await;
                    }
                }
                Ok(Some(Item::Assigned(parts))) => {
                    self.flush(&mut batch, stopper).await;
                    self.assign(parts);
                }
                Ok(Some(Item::Revoked(parts, ack))) => {
                    self.flush(&mut batch, stopper).await;
                    self.revoke(&parts);
                    let _ = ack.send(());
                }
                Ok(Some(Item::Stopped)) | Ok(None) | Err(_) => break,
            }
        }
        self.flush(&mut batch, stopper).await;
    }

    async fn flush<F: Future<Output = ()>>(
        &mut self,
        batch: &mut Vec<OwnedMessage>,
        stopper: &mut Stopper<F>,
    ) {
        if batch.is_empty() || self.poisoned {
            batch.clear();
            return;
        }
        let done = stopper.guard(self.process_batch(batch)).await;
        if done.is_none() {
            self.poisoned = true;
            self.summary.abandoned_batches += 1;
            tracing::warn!(
                events = batch.len(),
                "Shutdown deadline passed mid-batch; its offsets are not stored and it will be consumed again."
            );
        }
        batch.clear();
    }

    fn assign(&mut self, parts: Vec<Tp>) {
        for (topic, partition) in parts {
            let exists = self
                .engines
                .get(&topic)
                .is_some_and(|b| b.contains_key(&partition));
            if exists {
                continue;
            }
            let (engine, skip_below) = match self.restore(&topic, partition) {
                Ok(Some((engine, next))) => (engine, next),
                Ok(None) => (
                    Engine::new(self.engine_config.clone(), self.registry.clone()),
                    -1,
                ),
                Err(msg) if self.state_store.cold_on_corrupt() => {
                    tracing::error!(topic = %topic, partition, error = %msg, "Checkpoint unusable; starting this partition cold (checkpoint.on_corrupt = \"cold\").");
                    (
                        Engine::new(self.engine_config.clone(), self.registry.clone()),
                        -1,
                    )
                }
                Err(msg) => {
                    tracing::error!(topic = %topic, partition, error = %msg, "Checkpoint unusable; stopping (checkpoint.on_corrupt = \"fail\").");
                    self.fatal = Some(msg);
                    self.poisoned = true;
                    return;
                }
            };
            let late_reported = engine.stats().late_events;
            let saved = (skip_below >= 0).then_some(skip_below);
            // A partition with no state and a seed time learns from what the
            // topic retains, up to where it ends now, before going live.
            let seed_until = match (self.seed_from_ms, skip_below) {
                (Some(_), -1) => {
                    let consumer = Arc::clone(&self.consumer);
                    let (t, p) = (topic.clone(), partition);
                    match blocking(|| consumer.fetch_watermarks(&t, p, Duration::from_secs(10))) {
                        Ok((_, high)) => {
                            tracing::info!(topic = %topic, partition, until_offset = high, "Seeding: learning from the retained topic with alerts suppressed.");
                            high
                        }
                        Err(e) => {
                            self.warn(error_kind(&e), "seed", &e);
                            -1
                        }
                    }
                }
                _ => -1,
            };
            self.engines.entry(topic.clone()).or_default().insert(
                partition,
                PartState {
                    engine,
                    late_reported,
                    active: false,
                    skip_below,
                    next_offset: saved,
                    saved_offset: saved,
                    seed_until,
                },
            );
        }
    }

    /// The partition's checkpoint, decoded and checked, with its next offset.
    fn restore(&mut self, topic: &str, partition: i32) -> Result<Option<(Engine, i64)>, String> {
        if !self.state_store.enabled() {
            return Ok(None);
        }
        let store = Arc::clone(&self.state_store);
        let Some(bytes) = blocking(|| store.load(topic, partition))? else {
            return Ok(None);
        };
        let name = format!("checkpoint of {topic}/{partition}");
        let p = tripline_state::decode(&bytes, &name).map_err(|e| e.to_string())?;
        if p.topic != topic || p.partition != partition {
            return Err(format!("{name} belongs to {}/{}", p.topic, p.partition));
        }
        tracing::info!(
            topic,
            partition,
            next_offset = p.next_offset,
            integrations = p.engine.stats().tracked_integrations,
            "Restored partition state from checkpoint."
        );
        self.summary.restored_partitions += 1;
        Ok(Some((
            p.engine
                .resume(self.engine_config.clone(), self.registry.clone()),
            p.next_offset,
        )))
    }

    /// Writes a checkpoint of every partition that moved since its last one
    /// (`only`: just these), then stores those offsets for commit.
    fn checkpoint(&mut self, only: Option<&[Tp]>) {
        self.last_checkpoint = Instant::now();
        if !self.state_store.enabled() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        let mut errors: Vec<String> = Vec::new();
        let store = Arc::clone(&self.state_store);
        for (topic, by_part) in &mut self.engines {
            for (partition, ps) in by_part.iter_mut() {
                if only.is_some_and(|o| !o.iter().any(|(t, p)| t == topic && p == partition)) {
                    continue;
                }
                let Some(next) = ps.next_offset else { continue };
                if ps.saved_offset == Some(next) {
                    continue;
                }
                let saved = tripline_state::encode_parts(topic, *partition, next, &ps.engine)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| blocking(|| store.save(topic, *partition, &bytes)));
                match saved {
                    Ok(()) => {
                        ps.saved_offset = Some(next);
                        self.summary.checkpoints += 1;
                        if let Err(e) =
                            tpl.add_partition_offset(topic, *partition, Offset::Offset(next))
                        {
                            errors.push(e.to_string());
                        }
                    }
                    // Not saved: its offsets stay unstored, so a restart
                    // re-reads from the previous checkpoint. Nothing is lost.
                    Err(e) => errors.push(e),
                }
            }
        }
        for e in errors {
            self.warn("checkpoint_failed", "checkpoint", &e);
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.store_offsets(&tpl) {
                self.warn(error_kind(&e), "store_offset", &e);
            }
        }
    }

    fn revoke(&mut self, parts: &[Tp]) {
        self.checkpoint(Some(parts));
        for (topic, partition) in parts {
            if let Some(by_part) = self.engines.get_mut(topic) {
                by_part.remove(partition);
                if by_part.is_empty() {
                    self.engines.remove(topic);
                }
            }
        }
        // The engine-stats walk is O(integrations): at most once a second.
        if self.last_stats.elapsed() >= STATS_INTERVAL {
            self.last_stats = Instant::now();
            self.report_engine_stats();
        }
    }

    fn release_all(&mut self) {
        if !self.poisoned || self.fatal.is_none() {
            self.checkpoint(None);
        }
        self.engines.clear();
    }

    /// Engine, dead letters, sink, alerts topic, then offsets. Cancelling this
    /// future (shutdown deadline) before it returns stores nothing.
    async fn process_batch(&mut self, batch: &[OwnedMessage]) {
        let started = std::time::Instant::now();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.out.clear();
        self.delays.clear();
        let mut rejected = [0u64; RejectReason::ALL.len()];
        let mut records: Vec<OutRecord> = Vec::new();
        let mut offsets: HashMap<(&str, i32), i64> = HashMap::new();
        let mut processed = 0u64;
        let mut unowned = 0u64;
        let mut skipped = 0u64;
        let mut seeded = 0u64;
        for by_part in self.engines.values_mut() {
            for ps in by_part.values_mut() {
                ps.active = false;
            }
        }

        for m in batch {
            let Some(ps) = self
                .engines
                .get_mut(m.topic())
                .and_then(|b| b.get_mut(&m.partition()))
            else {
                // Fetched before a revoke; its new owner consumes it.
                unowned += 1;
                continue;
            };
            if m.offset() < ps.skip_below {
                // Already inside the restored checkpoint's state.
                skipped += 1;
                continue;
            }
            ps.active = true;
            ps.next_offset = Some(next_offset(m));
            offsets.insert((m.topic(), m.partition()), next_offset(m));
            let payload = m.payload().unwrap_or_default();
            match parse_event(payload) {
                Ok(raw) => {
                    let ev = raw.event();
                    if m.offset() < ps.seed_until {
                        // Seeding: learn, say nothing; older than the seed
                        // time is not history this deployment wants.
                        if self.seed_from_ms.is_some_and(|t| ev.ts_ms >= t) {
                            let mark = (self.out.alerts.len(), self.out.resolved.len());
                            ps.engine.process(&ev, &mut self.out);
                            self.out.alerts.truncate(mark.0);
                            self.out.resolved.truncate(mark.1);
                            seeded += 1;
                        }
                        continue;
                    }
                    ps.engine.process(&ev, &mut self.out);
                    processed += 1;
                    #[allow(clippy::cast_precision_loss)]
                    self.delays
                        .push(now_ms.saturating_sub(ev.ts_ms) as f64 / 1000.0);
                }
                Err(reject) => {
                    if let Some(i) = RejectReason::ALL.iter().position(|r| *r == reject.reason) {
                        rejected[i] += 1;
                    }
                    if let Some(topic) = &self.dlq_topic {
                        records.push(dead_letter(topic, m, reject.reason, &reject.detail));
                    }
                }
            }
        }
        if unowned > 0 {
            tracing::debug!(
                unowned,
                "Skipped messages of partitions no longer assigned."
            );
        }
        self.advance_idle();

        let n_dead = records.len();
        if !self.out.is_empty() {
            self.sink.submit(&self.out);
            if let Some(topic) = &self.alerts_topic {
                for a in &self.out.alerts {
                    match serde_json::to_vec(a) {
                        Ok(payload) => records.push(OutRecord {
                            topic: topic.clone(),
                            key: Some(a.integration_id.as_bytes().to_vec()),
                            payload,
                            headers: Vec::new(),
                            dead_letter: false,
                        }),
                        Err(e) => self.warn("serialize", "alerts_topic", &e),
                    }
                }
            }
        }
        if !records.is_empty() {
            self.produce_all(&records).await;
        }

        // Everything in the batch is done: store offsets — unless state is
        // checkpointed, in which case offsets are stored only up to the last
        // checkpoint (see `checkpoint`), so they never run ahead of the state.
        self.summary.skipped_covered += skipped;
        self.summary.unowned += unowned;
        self.summary.seeded += seeded;
        if !offsets.is_empty() && !self.state_store.enabled() {
            let mut tpl = TopicPartitionList::with_capacity(offsets.len());
            for ((topic, partition), offset) in &offsets {
                if let Err(e) = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                {
                    self.warn(error_kind(&e), "store_offset", &e);
                }
            }
            if let Err(e) = self.consumer.store_offsets(&tpl) {
                // Partition lost meanwhile (session timeout): its next owner
                // consumes these messages again.
                self.warn(error_kind(&e), "store_offset", &e);
            }
        }

        let obs = &self.observer;
        obs.events_received(batch.len() as u64);
        obs.events_processed(processed);
        for (reason, n) in RejectReason::ALL.iter().zip(rejected) {
            if n > 0 {
                obs.events_rejected(*reason, n);
            }
        }
        if n_dead > 0 {
            obs.dead_letters(DeadLetterOutcome::Delivered, n_dead as u64);
        }
        if !self.delays.is_empty() {
            obs.event_delays(&self.delays);
        }
        obs.batch(started.elapsed(), batch.len());
        let s = &mut self.summary;
        s.received += batch.len() as u64;
        s.processed += processed;
        s.rejected += rejected.iter().sum::<u64>();
        s.dead_letters += n_dead as u64;
        s.alerts += self.out.alerts.len() as u64;
        s.resolved += self.out.resolved.len() as u64;
        s.batches += 1;
        self.report_engine_stats();
    }

    /// Moves partitions that had no traffic in this batch up to the newest
    /// event time seen, so their open episodes can resolve. A partition with
    /// a backlog has traffic in the batch and is left alone.
    fn advance_idle(&mut self) {
        let newest = self
            .engines
            .values()
            .flat_map(|b| b.values())
            .map(|ps| ps.engine.stats().max_event_time_ms)
            .max()
            .unwrap_or(0);
        if newest <= 0 {
            return;
        }
        for ps in self.engines.values_mut().flat_map(|b| b.values_mut()) {
            if !ps.active
                && ps.engine.stats().events > 0
                && ps.engine.stats().max_event_time_ms < newest
            {
                ps.engine.advance_to(newest, &mut self.out);
            }
        }
    }

    fn report_engine_stats(&mut self) {
        let mut total = EngineStats::default();
        let mut late = 0u64;
        for ps in self.engines.values_mut().flat_map(|b| b.values_mut()) {
            let s = ps.engine.stats();
            late += s.late_events.saturating_sub(ps.late_reported);
            ps.late_reported = s.late_events;
            total.events += s.events;
            total.tracked_integrations += s.tracked_integrations;
            total.late_events += s.late_events;
            total.evicted_integrations += s.evicted_integrations;
            total.approx_memory_bytes += s.approx_memory_bytes;
            total.max_event_time_ms = total.max_event_time_ms.max(s.max_event_time_ms);
        }
        if late > 0 {
            self.observer.events_late(late);
        }
        self.observer.engine_stats(&total);
    }

    /// Produces every record and waits for the broker's acknowledgement,
    /// retrying failures with backoff until all are acknowledged. Never drops:
    /// only cancellation (shutdown deadline) ends it early.
    async fn produce_all(&self, records: &[OutRecord]) {
        let Some(producer) = &self.producer else {
            return;
        };
        let mut pending: Vec<usize> = (0..records.len()).collect();
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let mut failed = Vec::new();
            let mut inflight = Vec::with_capacity(pending.len());
            for &i in &pending {
                let r = &records[i];
                let mut rec = FutureRecord::<[u8], [u8]>::to(&r.topic).payload(&r.payload[..]);
                if let Some(k) = &r.key {
                    rec = rec.key(&k[..]);
                }
                if !r.headers.is_empty() {
                    let mut h = OwnedHeaders::new_with_capacity(r.headers.len());
                    for (key, value) in &r.headers {
                        h = h.insert(Header {
                            key: key.as_str(),
                            value: Some(&value[..]),
                        });
                    }
                    rec = rec.headers(h);
                }
                match producer.send_result(rec) {
                    Ok(delivery) => inflight.push((i, delivery)),
                    Err((e, _)) => {
                        self.warn(error_kind(&e), stage(r), &e);
                        failed.push(i);
                    }
                }
            }
            for (i, delivery) in inflight {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => {
                        self.warn(error_kind(&e), stage(&records[i]), &e);
                        failed.push(i);
                    }
                    Err(_canceled) => {
                        self.warn("canceled", stage(&records[i]), &"delivery report lost");
                        failed.push(i);
                    }
                }
            }
            if failed.is_empty() {
                return;
            }
            let retried_dead = failed.iter().filter(|i| records[**i].dead_letter).count();
            if retried_dead > 0 {
                self.observer
                    .dead_letters(DeadLetterOutcome::Retried, retried_dead as u64);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            failed.sort_unstable();
            pending = failed;
        }
    }
}

fn stage(r: &OutRecord) -> &'static str {
    if r.dead_letter {
        "dead_letter"
    } else {
        "alerts_topic"
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The dead letter of `m`: original key and bytes untouched, original headers
/// kept, reject reason and source coordinates added.
fn dead_letter(topic: &str, m: &OwnedMessage, reason: RejectReason, detail: &str) -> OutRecord {
    let mut headers: Vec<(String, Vec<u8>)> = Vec::with_capacity(5);
    if let Some(original) = m.headers() {
        for h in original.iter() {
            headers.push((
                h.key.to_owned(),
                h.value.map(<[u8]>::to_vec).unwrap_or_default(),
            ));
        }
    }
    let mut add = |k: &str, v: Vec<u8>| headers.push((k.to_owned(), v));
    add(HEADER_REJECT_REASON, reason.as_str().as_bytes().to_vec());
    add(
        HEADER_REJECT_DETAIL,
        truncate(detail, MAX_DETAIL_BYTES).as_bytes().to_vec(),
    );
    add(HEADER_SOURCE_TOPIC, m.topic().as_bytes().to_vec());
    add(
        HEADER_SOURCE_PARTITION,
        m.partition().to_string().into_bytes(),
    );
    add(HEADER_SOURCE_OFFSET, m.offset().to_string().into_bytes());
    OutRecord {
        topic: topic.to_owned(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers,
        dead_letter: true,
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
    }

    #[test]
    fn dead_letter_keeps_key_and_bytes_and_adds_headers() {
        let m = OwnedMessage::new(
            Some(b"\xffnot json".to_vec()),
            Some(b"k1".to_vec()),
            "in".into(),
            rdkafka::Timestamp::NotAvailable,
            3,
            42,
            None,
        );
        let r = dead_letter("dlq", &m, RejectReason::InvalidUtf8, "bad");
        assert_eq!(r.payload, b"\xffnot json");
        assert_eq!(r.key.as_deref(), Some(&b"k1"[..]));
        let h: HashMap<String, Vec<u8>> = r.headers.iter().cloned().collect();
        assert_eq!(h[HEADER_REJECT_REASON], b"invalid_utf8");
        assert_eq!(h[HEADER_SOURCE_PARTITION], b"3");
        assert_eq!(h[HEADER_SOURCE_OFFSET], b"42");
        assert_eq!(h[HEADER_SOURCE_TOPIC], b"in");
    }
}
