//! The seams between the Kafka loop and the rest of tripline: where alerts go
//! ([`AlertSink`]), where telemetry goes ([`Observer`]) and where per-partition
//! engine state could be checkpointed ([`StateStore`]).

use std::time::Duration;

use tripline_engine::{EngineStats, Outputs};
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
    /// Valid events the engines counted as out of range of their
    /// partition's stream time (`EngineStats::ts_out_of_range`).
    fn events_out_of_range(&self, _count: u64) {}
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
    /// Engine counters summed over this consumer's partitions, at most once
    /// a second (computing them walks every integration).
    fn engine_stats(&self, _stats: &EngineStats) {}
    /// A partition was revoked: drop its per-partition series (consumer lag).
    fn partition_revoked(&self, _topic: &str, _partition: i32) {}
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopObserver;

impl Observer for NoopObserver {}

/// Where per-partition checkpoints live: a directory, a changelog topic.
///
/// With a store [`enabled`](StateStore::enabled), the loop restores each
/// partition's engine when it is assigned, skips the messages its checkpoint
/// already covers, and stores (hence commits) offsets only up to the last
/// checkpoint it wrote — so committed offsets never run ahead of saved state
/// and no event is counted twice into a baseline. Methods do blocking I/O;
/// the loop calls them off the async worker threads.
pub trait StateStore: Send + Sync {
    /// Whether checkpoints are kept. When false, offsets are stored after
    /// every batch and every assignment starts cold.
    fn enabled(&self) -> bool {
        false
    }
    /// How often each partition is checkpointed (also on revoke and shutdown).
    fn interval(&self) -> Duration {
        Duration::from_secs(30)
    }
    /// A checkpoint that cannot be used: start that partition cold (true) or
    /// stop with an error (false).
    fn cold_on_corrupt(&self) -> bool {
        false
    }
    /// The partition's latest checkpoint bytes, if any.
    fn load(&self, _topic: &str, _partition: i32) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
    /// Replaces the partition's checkpoint.
    fn save(&self, _topic: &str, _partition: i32, _bytes: &[u8]) -> Result<(), String> {
        Ok(())
    }
    /// [`StateStore::save`] that gives up at `deadline` (the shutdown
    /// deadline, when one runs). A save that did not finish leaves the
    /// previous checkpoint in force. Stores whose writes can block override
    /// it (the changelog's producer flush); the default ignores the deadline.
    fn save_by(
        &self,
        topic: &str,
        partition: i32,
        bytes: &[u8],
        _deadline: Option<std::time::Instant>,
    ) -> Result<(), String> {
        self.save(topic, partition, bytes)
    }
}

/// Keeps no state: every assignment starts fresh.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStateStore;

impl StateStore for NoStateStore {}

/// Checkpoints as files in a directory (one instance, or a shared volume).
#[derive(Clone, Debug)]
pub struct DirStateStore {
    pub store: tripline_state::DirStore,
    pub interval: Duration,
    pub cold_on_corrupt: bool,
}

impl StateStore for DirStateStore {
    fn enabled(&self) -> bool {
        true
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn cold_on_corrupt(&self) -> bool {
        self.cold_on_corrupt
    }
    fn load(&self, topic: &str, partition: i32) -> Result<Option<Vec<u8>>, String> {
        self.store
            .load_bytes(topic, partition)
            .map_err(|e| e.to_string())
    }
    fn save(&self, topic: &str, partition: i32, bytes: &[u8]) -> Result<(), String> {
        self.store
            .save_bytes(topic, partition, bytes)
            .map_err(|e| e.to_string())
    }
}

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
    /// Partitions restored from a checkpoint.
    pub restored_partitions: u64,
    /// Messages skipped because a restored checkpoint already covered them.
    pub skipped_covered: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Events learned from while seeding (their alerts suppressed).
    pub seeded: u64,
    /// Messages skipped because their partition was not assigned to this
    /// consumer when they were processed (fetched before a revoke).
    pub unowned: u64,
    /// Batches whose engines ran on more than one worker thread.
    pub parallel_batches: u64,
}
