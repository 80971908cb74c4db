//! What the dispatcher reports of each output: counters, health, and what a
//! shutdown flush achieved.

use crate::grouping::GroupingStats;

/// Counters of one output, read from its metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputStats {
    pub name: String,
    /// Successful delivery attempts.
    pub delivered: u64,
    /// Failed delivery attempts (each retry that fails counts).
    pub failed_attempts: u64,
    /// Re-attempts after a failure.
    pub retries: u64,
    pub dropped_queue_full: u64,
    pub dropped_rate_limited: u64,
    pub dropped_expired: u64,
    /// Waiting, including the one being delivered.
    pub queue_depth: usize,
    /// Alertmanager resolutions held until their alert has fired for
    /// `min_firing_seconds` (not in `queue_depth`).
    pub held_resolutions: usize,
    /// What deduplication and the rate limit folded.
    pub grouping: GroupingStats,
}

/// Health of one output, for `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputHealth {
    pub name: String,
    /// `None` when healthy; otherwise why not.
    pub problem: Option<String>,
}

/// What [`Dispatcher::flush`](super::Dispatcher::flush) achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushOutcome {
    /// Notifications still undelivered at the deadline (counted as `expired`).
    pub abandoned: usize,
}
