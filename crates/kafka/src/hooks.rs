//! The seams between the Kafka loop and the rest of tripline: where alerts go
//! ([`AlertSink`]), where telemetry goes ([`Observer`]) and where per-partition
//! engine state could be checkpointed ([`StateStore`]).

use std::time::Duration;

use tripline_engine::{Engine, EngineStats, Outputs};
use tripline_ingest::RejectReason;

/// Receives everything the engines produced in one batch.
///
/// Called on the processing task before the batch's offsets are stored, so an
/// implementation MUST return quickly (enqueue, do not deliver) and MUST be
/// bounded: a full queue is the sink's policy decision, not the consumer's.
pub trait AlertSink: Send + Sync {
    fn submit(&self, out: &Outputs);
}

/// A sink that drops everything (alerts topic only, or tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopSink;

impl AlertSink for NoopSink {
    fn submit(&self, _out: &Outputs) {}
}

/// How a dead letter's produce went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeadLetterOutcome {
    /// Acknowledged by the broker.
    Delivered,
    /// Failed and will be produced again.
    Retried,
}

impl DeadLetterOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterOutcome::Delivered => "delivered",
            DeadLetterOutcome::Retried => "retried",
        }
    }
}

/// Telemetry from the Kafka loop. Every method has a no-op default; the binary
/// implements it with Prometheus handles resolved once (`docs/specs/metrics.md`).
///
/// Calls are per batch, not per event, except `consumer_lag` (per partition
/// every `lag_interval_ms`) and `ready`/`error` (on change / occurrence).
/// Methods run on the processing task or the consumer's poll thread and MUST
/// NOT block.
pub trait Observer: Send + Sync {
    /// Messages read from Kafka in a batch (valid or not).
    fn events_received(&self, _count: u64) {}
    /// Valid events fed to an engine.
    fn events_processed(&self, _count: u64) {}
    /// Rejected messages, by bounded reason.
    fn events_rejected(&self, _reason: RejectReason, _count: u64) {}
    /// Valid events the engines counted as later than the lateness allowance.
    fn events_late(&self, _count: u64) {}
    /// Dead-letter produces by outcome.
    fn dead_letters(&self, _outcome: DeadLetterOutcome, _count: u64) {}
    /// One batch done: wall time from its first message being taken to its
    /// offsets being stored, and its size in messages.
    fn batch(&self, _duration: Duration, _events: usize) {}
    /// Wall clock minus event time, in seconds, of each valid event of a batch.
    fn event_delays(&self, _seconds: &[f64]) {}
    /// High watermark minus consumer position of an assigned partition.
    fn consumer_lag(&self, _topic: &str, _partition: i32, _lag: i64) {}
    /// Consuming normally (true) or not (no broker reachable, no assignment).
    /// Called on changes only.
    fn ready(&self, _ready: bool) {}
    /// An internal error of a bounded `error_type` at a bounded `stage`.
    fn error(&self, _error_type: &'static str, _stage: &'static str) {}
    /// Engine counters summed over this consumer's partitions, after a batch.
    fn engine_stats(&self, _stats: &EngineStats) {}
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopObserver;

impl Observer for NoopObserver {}

/// Where per-partition engines could be checkpointed. The default methods keep
/// nothing, so an assigned partition starts with a fresh engine; checkpointing
/// can be added later without touching the loop.
pub trait StateStore: Send + Sync {
    /// An engine for `topic`/`partition` saved earlier, if any.
    fn restore(&self, _topic: &str, _partition: i32) -> Option<Engine> {
        None
    }
    /// Called when a partition is released (revoke, shutdown), after its
    /// offsets were stored and committed.
    fn persist(&self, _topic: &str, _partition: i32, _engine: &Engine) {}
}

/// Keeps no state: every assignment starts fresh.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStateStore;

impl StateStore for NoStateStore {}

/// What one `run` did, for the log line at exit and for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Messages taken from Kafka into batches.
    pub received: u64,
    /// Valid events processed by an engine.
    pub processed: u64,
    /// Messages rejected by the parser.
    pub rejected: u64,
    /// Dead letters acknowledged by the broker.
    pub dead_letters: u64,
    /// Alerts handed to the sink.
    pub alerts: u64,
    /// Resolutions handed to the sink.
    pub resolved: u64,
    /// Batches whose offsets were stored.
    pub batches: u64,
    /// Batches abandoned at the shutdown deadline (their offsets were not
    /// stored; they are consumed again after a restart).
    pub abandoned_batches: u64,
    /// Whether the final synchronous commit succeeded.
    pub final_commit_ok: bool,
}
