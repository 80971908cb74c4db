//! The processing task: batches, per-partition engines, dead letters, the
//! alerts topic, offset storage and graceful shutdown.
//!
//! **Processed** (the point at which an input offset is stored, and so may be
//! committed) means all of: the message went through its partition's engine
//! or was rejected; its dead letter, if any, was acknowledged by the broker;
//! every alert of its batch was handed to the [`AlertSink`] and, if an alerts
//! topic is configured, acknowledged there. Offsets are stored per batch, in
//! order, per partition (the next batches' engines run while a batch waits
//! for its acknowledgements); a batch that cannot finish stores nothing and
//! is consumed again (at-least-once).
//!
//! # Layout
//! - this module: [`RunConfig`], [`run`] (start-up and the shutdown sequence)
//!   and the state of the loop;
//! - `main_loop`: batching, the select loop, the drain after shutdown;
//! - `batch`: one batch — routing to partitions, the engines (in parallel
//!   over worker threads), outputs, telemetry;
//! - `in_flight`: batches waiting for their acknowledgements, completed
//!   (offsets stored) in order;
//! - `checkpoint`: assignment, restore, checkpoints, revoke;
//! - `produce`: dead letters and the alerts topic;
//! - `control`: the control channel (the HTTP API's view of the engines);
//! - `shutdown`: the one deadline and threads that may overrun it.

mod batch;
mod checkpoint;
mod control;
mod in_flight;
mod main_loop;
mod produce;
mod shutdown;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tripline_engine::{Engine, EngineConfig, Registry};
use tripline_ingest::Format;

use crate::consumer::{commit_sync, poll_loop, Ctx, TriplineConsumer};
use crate::error::Error;
use crate::hooks::{
    AlertSink, NoStateStore, NoopObserver, NoopSink, Observer, RunSummary, StateStore,
};
use crate::settings::{KafkaSettings, Role};
use crate::util::{Health, LogLimiter, WARN_INTERVAL};

pub use control::{control_channel, ControlHandle, ControlReceiver, EngineVisit, VisitError};
pub use produce::{
    HEADER_REJECT_DETAIL, HEADER_REJECT_REASON, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
};

use batch::Acc;
use shutdown::{on_thread, CloseOnDrop, Stopper};

/// Most messages handed from the poll thread to the processing task at once.
const HANDOFF_MAX: usize = 1024;
/// Chunks buffered between the poll thread and the processing task.
const HANDOFF_CHUNKS: usize = 4;

/// Everything [`run`] needs besides the shutdown signal.
pub struct RunConfig {
    pub settings: KafkaSettings,
    pub engine_config: EngineConfig,
    pub registry: Option<Registry>,
    /// Where alerts and resolutions go (enqueue only).
    pub sink: Arc<dyn AlertSink>,
    /// Telemetry.
    pub observer: Arc<dyn Observer>,
    /// Checkpoints: restored on assignment, written on a timer, on revoke
    /// and at shutdown.
    pub state_store: Arc<dyn StateStore>,
    /// The HTTP API's view of the engines.
    pub control: Option<ControlReceiver>,
    /// Input format per topic; a topic not listed is canonical
    /// (`docs/specs/events.md`).
    pub formats: HashMap<String, Format>,
    /// Seeding from files: an engine that learnt exported history. Each
    /// integration's state moves from it to the engine of the partition its
    /// first live event arrives on (see `Engine::take_integration`).
    pub seed_engine: Option<Arc<Mutex<Engine>>>,
}

impl RunConfig {
    /// No registry, no sink, no telemetry, no checkpoints, no control channel.
    pub fn new(settings: KafkaSettings, engine_config: EngineConfig) -> Self {
        RunConfig {
            settings,
            engine_config,
            registry: None,
            sink: Arc::new(NoopSink),
            observer: Arc::new(NoopObserver),
            state_store: Arc::new(NoStateStore),
            control: None,
            formats: HashMap::new(),
            seed_engine: None,
        }
    }
}

/// Rate-limited, counted warnings.
struct Warner {
    observer: Arc<dyn Observer>,
    logs: Arc<LogLimiter>,
}

impl Warner {
    fn warn(&self, kind: &'static str, stage: &'static str, error: &dyn std::fmt::Display) {
        self.observer.error(kind, stage);
        if let Some(suppressed) = self.logs.allow(kind) {
            tracing::warn!(error_type = kind, stage, suppressed, %error, "Kafka pipeline error.");
        }
    }
}

/// Runs the Kafka source until `shutdown` resolves, then drains, checkpoints
/// and commits, every step within what is left of
/// `settings.shutdown_deadline_ms` after the request.
///
/// Returns an error only for problems that retrying cannot fix (invalid
/// settings, a client librdkafka refuses to create, an unusable checkpoint
/// with `on_corrupt = "fail"`). Broker outages are logged (rate-limited),
/// reported through [`Observer::ready`] and waited out.
pub async fn run(
    config: RunConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, Error> {
    let RunConfig {
        settings,
        engine_config,
        registry,
        sink,
        observer,
        state_store,
        control,
        formats,
        seed_engine,
    } = config;
    let consumer_config = settings.client_config(Role::Consumer)?;
    let producer: Option<FutureProducer> =
        if settings.dlq_topic().is_some() || settings.alerts_topic().is_some() {
            let p = settings
                .client_config(Role::Producer)?
                .create()
                .map_err(Error::client("creating the Kafka producer"))?;
            Some(p)
        } else {
            None
        };

    let health = Arc::new(Health::new(Arc::clone(&observer)));
    health.set(false);
    let logs = Arc::new(LogLimiter::new(WARN_INTERVAL));
    let (tx, rx) = mpsc::channel(HANDOFF_CHUNKS);
    let ctx = Ctx {
        tx,
        observer: Arc::clone(&observer),
        health: Arc::clone(&health),
        logs: Arc::clone(&logs),
        closing: AtomicBool::new(false),
        revoke_wait: settings.shutdown_deadline(),
        assigned: Default::default(),
        pending: Mutex::new(Vec::new()),
        handoff: settings.batch_max_events.clamp(1, HANDOFF_MAX),
    };
    let consumer: TriplineConsumer = consumer_config
        .create_with_context(ctx)
        .map_err(Error::client("creating the Kafka consumer"))?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .map_err(Error::client("subscribing to the input topics"))?;
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
        .map_err(|source| Error::Spawn {
            what: "Kafka poll",
            source,
        })?;
    let workers = settings.worker_threads();
    tracing::info!(
        brokers = %settings.brokers,
        group_id = %settings.group_id,
        topics = ?settings.topics,
        workers,
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
        warner: Warner {
            observer: Arc::clone(&observer),
            logs,
        },
        observer,
        state_store,
        consumer: Arc::clone(&consumer),
        producer,
        parts: Vec::new(),
        accs: (0..workers).map(|_| Acc::default()).collect(),
        in_flight: VecDeque::new(),
        summary: RunSummary::default(),
        poisoned: false,
        fatal: None,
        last_checkpoint: Instant::now(),
        seed_from_ms,
        last_stats: Instant::now(),
        workers,
        formats,
        seed_engine,
        population: tripline_engine::Population::new(),
    };
    let mut stopper = Stopper::new(shutdown, p.settings.shutdown_deadline());
    let mut rx = rx;
    let mut control = control;
    p.main_loop(&mut rx, &mut stopper, &mut control).await;

    // Shutdown: stop fetching, finish what was already fetched.
    let final_deadline = stopper.final_deadline();
    stop.store(true, Ordering::Release);
    tracing::info!("Kafka source stopping: draining in-flight messages.");
    p.drain(&mut rx, &mut stopper).await;
    consumer.context().closing.store(true, Ordering::Release);
    drop(rx);
    p.release_all(final_deadline);
    p.report_engine_stats();

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
        return Err(Error::Checkpoint(msg));
    }
    let s = p.summary;
    tracing::info!(
        received = s.received,
        processed = s.processed,
        rejected = s.rejected,
        dead_letters = s.dead_letters,
        alerts = s.alerts,
        abandoned_batches = s.abandoned_batches,
        parallel_batches = s.parallel_batches,
        final_commit_ok = s.final_commit_ok,
        "Kafka source stopped."
    );
    Ok(s)
}

/// One assigned partition.
struct PartState {
    topic: Arc<str>,
    partition: i32,
    engine: Engine,
    /// `late_events` already reported, to report deltas.
    late_reported: u64,
    /// `ts_out_of_range` already reported, to report deltas.
    out_of_range_reported: u64,
    /// Indices (into the batch) of this partition's messages in the batch
    /// being processed. Reused across batches.
    pending: Vec<u32>,
    /// Messages below this offset are already inside a restored checkpoint.
    skip_below: i64,
    /// First offset not yet processed (None before the first message).
    next_offset: Option<i64>,
    /// What `next_offset` becomes once the batch being processed completes.
    batch_next: Option<i64>,
    /// Batches that ran this partition's engine and have not completed
    /// (in flight, or abandoned at the deadline): while non-zero the engine
    /// is ahead of `next_offset`, so it must not be checkpointed.
    unsettled: u32,
    /// `next_offset` covered by the last checkpoint written.
    saved_offset: Option<i64>,
    /// Seeding: messages below this offset train the engine with their
    /// alerts suppressed (-1: live).
    seed_until: i64,
    /// Events the engine has processed and its newest accepted event time
    /// (event time is attacker-controlled: never the raw newest event, see
    /// `tripline_engine::clock`): kept here so the per-batch path never
    /// walks engine state.
    events: u64,
    max_ts: i64,
    /// Event time this partition was last advanced to while idle.
    advanced_to: i64,
}

struct Pipeline {
    settings: KafkaSettings,
    dlq_topic: Option<String>,
    alerts_topic: Option<String>,
    engine_config: EngineConfig,
    registry: Option<Registry>,
    sink: Arc<dyn AlertSink>,
    observer: Arc<dyn Observer>,
    warner: Warner,
    state_store: Arc<dyn StateStore>,
    consumer: Arc<TriplineConsumer>,
    producer: Option<FutureProducer>,
    /// Assigned partitions, sorted by (topic, partition).
    parts: Vec<PartState>,
    /// One accumulator per worker thread, reused across batches.
    accs: Vec<Acc>,
    /// Batches waiting for their records' acknowledgements, oldest first.
    in_flight: VecDeque<in_flight::InFlight>,
    summary: RunSummary,
    /// Set when a batch was abandoned at the deadline: from then on no batch
    /// is processed, and no partition it touched is checkpointed.
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
    /// Input format per topic (absent: canonical).
    formats: HashMap<String, Format>,
    /// State learnt from seed files, handed out per integration.
    seed_engine: Option<Arc<Mutex<Engine>>>,
    /// Threads the engines of one batch are spread over.
    workers: usize,
    /// Integrations tracked by every partition's engine together: the
    /// scope of `max_integrations` (`tripline_engine::population`).
    population: tripline_engine::Population,
}

impl Pipeline {
    fn warn(&self, kind: &'static str, stage: &'static str, error: &dyn std::fmt::Display) {
        self.warner.warn(kind, stage, error);
    }

    /// Index of the partition's state, if assigned.
    fn slot(&self, topic: &str, partition: i32) -> Option<usize> {
        self.parts
            .binary_search_by(|ps| (&*ps.topic, ps.partition).cmp(&(topic, partition)))
            .ok()
    }
}
