//! tripline's Prometheus metrics, per `docs/specs/metrics.md`.
//!
//! [`Metrics`] owns its own [`prometheus::Registry`] (never the global one, so
//! tests and several engines in one process do not collide). Every label
//! handle with a bounded label set is resolved once at construction and kept,
//! so the hot path never hashes label values and every series a dashboard
//! expects exists at 0 from the first scrape.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use tripline_engine::{Alert, AlertKind, Resolved, Severity};

use crate::output_metrics::OutputFamilies;
pub use crate::output_metrics::OutputMetrics;

pub use crate::build_info::BuildInfo;
pub use crate::top_k::TopK;

/// Default number of `tripline_integration_anomaly_score` series: the metrics
/// contract's cardinality budget assumes K = 20.
pub const DEFAULT_TOP_K: usize = 20;

/// Reasons for `tripline_events_rejected_total`. Anything else maps to
/// [`REJECT_OTHER`] so a typo in a caller cannot create unbounded series.
pub const REJECT_REASONS: [&str; 6] = [
    "invalid_json",
    "missing_field",
    "invalid_field",
    "too_large",
    "invalid_utf8",
    "unmapped_resource",
];
/// The catch-all rejection reason.
pub const REJECT_OTHER: &str = "other";

/// Bucket bounds of `tripline_processing_duration_seconds`: batches take from
/// well under a millisecond (a few events) to seconds (a large backlog batch).
const PROCESSING_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Bucket bounds of `tripline_event_delay_seconds`: from a live stream (under a
/// second) to a consumer catching up after an outage (an hour or more).
const DELAY_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];
/// `tripline_errors_total` series created at 0: one per stage that reports
/// errors, with the error type that stage reports most generally, so rate()
/// and alerts work from the first scrape. Other types appear when they occur.
pub const INITIAL_ERRORS: [(&str, &str); 7] = [
    ("kafka", "consume"),
    ("kafka", "commit"),
    ("kafka", "store_offset"),
    ("kafka", "seed"),
    ("checkpoint_failed", "checkpoint"),
    ("rebalance", "rebalance"),
    ("serialize", "alerts_topic"),
];

/// Bucket bounds of `tripline_batch_size_events`.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0, 50000.0,
];

/// Errors building the metrics registry. These are bugs (a duplicate or
/// malformed metric), surfaced as errors rather than panics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("prometheus registry error: {0}")]
    Prometheus(#[from] prometheus::Error),
    #[error("invalid output name {0:?} for a metric label")]
    InvalidOutputName(String),
}

/// What one processed batch did, for [`Metrics::record_batch`].
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchStats<'a> {
    /// Messages or lines read from the source.
    pub received: u64,
    /// Valid events fed to the engine.
    pub processed: u64,
    /// Valid events older than the lateness allowance.
    pub late: u64,
    /// Wall time spent processing the batch.
    pub duration: Duration,
    /// Wall clock − event time, in seconds, for the batch's events (callers
    /// may pass a sample instead of every event).
    pub event_delays_seconds: &'a [f64],
}

/// All of tripline's metrics, in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events_received: IntCounter,
    events_processed: IntCounter,
    rejected: HashMap<&'static str, IntCounter>,
    rejected_other: IntCounter,
    events_late: IntCounter,
    events_out_of_range: IntCounter,
    dead_letters_delivered: IntCounter,
    dead_letters_retried: IntCounter,
    /// Indexed by `kind_index * 3 + severity_index`.
    alerts: Vec<IntCounter>,
    alerts_resolved: Vec<IntCounter>,
    alerts_folded: Vec<IntCounter>,
    consumer_lag: IntGaugeVec,
    processing_duration: Histogram,
    event_delay: Histogram,
    batch_size: Histogram,
    outputs: OutputFamilies,
    tracked_integrations: IntGauge,
    learning_integrations: IntGauge,
    engine_memory: IntGauge,
    top_k: Mutex<TopK>,
    ready: IntGauge,
    errors: IntCounterVec,
    checkpoint_last_success: Gauge,
    checkpoint_bytes: IntGauge,
}

fn kind_index(kind: AlertKind) -> usize {
    AlertKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

fn severity_index(sev: Severity) -> usize {
    Severity::ALL.iter().position(|s| *s == sev).unwrap_or(0)
}

pub(crate) fn reg<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    c: C,
) -> Result<C, MetricsError> {
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    /// Builds every metric of the contract. `version` goes into
    /// `tripline_build_info` (with this build's revision, rustc and target);
    /// `top_k` is the number of anomaly-score series.
    pub fn new(version: &str, top_k: usize) -> Result<Self, MetricsError> {
        Metrics::with_build_info(&BuildInfo::current(version), top_k)
    }

    /// [`Metrics::new`] with explicit build metadata.
    pub fn with_build_info(build: &BuildInfo, top_k: usize) -> Result<Self, MetricsError> {
        let r = Registry::new();

        // Process metrics (CPU, resident memory, open fds, start time,
        // threads) under the standard `process_` names.
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        let build_info = reg(
            &r,
            IntGaugeVec::new(
                Opts::new("tripline_build_info", "Build metadata; always 1."),
                &["version", "revision", "rustc", "target"],
            )?,
        )?;
        build_info
            .get_metric_with_label_values(&[
                build.version.as_str(),
                build.revision.as_str(),
                build.rustc.as_str(),
                build.target.as_str(),
            ])?
            .set(1);

        let events_received = reg(
            &r,
            IntCounter::new(
                "tripline_events_received_total",
                "Messages or lines read from the source.",
            )?,
        )?;
        let events_processed = reg(
            &r,
            IntCounter::new(
                "tripline_events_processed_total",
                "Valid events fed to the engine.",
            )?,
        )?;
        let rejected_vec = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "tripline_events_rejected_total",
                    "Rejected events by reason.",
                ),
                &["reason"],
            )?,
        )?;
        let mut rejected = HashMap::new();
        for reason in REJECT_REASONS {
            rejected.insert(
                reason,
                rejected_vec.get_metric_with_label_values(&[reason])?,
            );
        }
        let rejected_other = rejected_vec.get_metric_with_label_values(&[REJECT_OTHER])?;
        let events_late = reg(
            &r,
            IntCounter::new(
                "tripline_events_late_total",
                "Valid events older than the lateness allowance (counted, not baselined).",
            )?,
        )?;
        let events_out_of_range = reg(
            &r,
            IntCounter::new(
                "tripline_events_ts_out_of_range_total",
                "Valid events whose time is too far from the partition's robust stream time to move any clock (judged by the rule detectors, not baselined).",
            )?,
        )?;
        let dead = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "tripline_dead_letters_total",
                    "Dead-letter produces by outcome.",
                ),
                &["outcome"],
            )?,
        )?;
        let dead_letters_delivered = dead.get_metric_with_label_values(&["delivered"])?;
        let dead_letters_retried = dead.get_metric_with_label_values(&["retried"])?;

        let alerts_vec = reg(
            &r,
            IntCounterVec::new(
                Opts::new("tripline_alerts_total", "Alerts emitted by the engine."),
                &["kind", "severity"],
            )?,
        )?;
        let resolved_vec = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "tripline_alerts_resolved_total",
                    "Anomaly episodes resolved.",
                ),
                &["kind"],
            )?,
        )?;
        let folded_vec = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "tripline_alerts_folded_total",
                    "Repeats folded into an open episode.",
                ),
                &["kind"],
            )?,
        )?;
        let mut alerts = Vec::with_capacity(AlertKind::ALL.len() * Severity::ALL.len());
        let mut alerts_resolved = Vec::with_capacity(AlertKind::ALL.len());
        let mut alerts_folded = Vec::with_capacity(AlertKind::ALL.len());
        for kind in AlertKind::ALL {
            for sev in Severity::ALL {
                alerts
                    .push(alerts_vec.get_metric_with_label_values(&[kind.as_str(), sev.as_str()])?);
            }
            alerts_resolved.push(resolved_vec.get_metric_with_label_values(&[kind.as_str()])?);
            alerts_folded.push(folded_vec.get_metric_with_label_values(&[kind.as_str()])?);
        }

        let consumer_lag = reg(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "tripline_consumer_lag_messages",
                    "High watermark minus position, per assigned partition.",
                ),
                &["topic", "partition"],
            )?,
        )?;
        let processing_duration = reg(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "tripline_processing_duration_seconds",
                    "Wall time to process one batch (parse, detect, hand its records to the producer; not the wait for their acknowledgements).",
                )
                .buckets(PROCESSING_BUCKETS.to_vec()),
            )?,
        )?;
        let event_delay = reg(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "tripline_event_delay_seconds",
                    "Wall clock minus event time when an event is processed.",
                )
                .buckets(DELAY_BUCKETS.to_vec()),
            )?,
        )?;
        let batch_size = reg(
            &r,
            Histogram::with_opts(
                HistogramOpts::new("tripline_batch_size_events", "Events per processed batch.")
                    .buckets(BATCH_BUCKETS.to_vec()),
            )?,
        )?;
        let outputs = OutputFamilies::register(&r)?;
        let tracked_integrations = reg(
            &r,
            IntGauge::new(
                "tripline_tracked_integrations",
                "Integrations with state in the engine.",
            )?,
        )?;
        let learning_integrations = reg(
            &r,
            IntGauge::new(
                "tripline_learning_integrations",
                "Tracked integrations still in their learning period (learned detectors not yet active).",
            )?,
        )?;
        let engine_memory = reg(
            &r,
            IntGauge::new("tripline_engine_memory_bytes", "Estimated engine heap.")?,
        )?;
        let score = reg(
            &r,
            GaugeVec::new(
                Opts::new(
                    "tripline_integration_anomaly_score",
                    "Current anomaly score of the top-K integrations.",
                ),
                &["integration_id"],
            )?,
        )?;
        let ready = reg(
            &r,
            IntGauge::new("tripline_ready", "1 when consuming and outputs healthy.")?,
        )?;
        let errors = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "tripline_errors_total",
                    "Internal errors by type and stage.",
                ),
                &["error_type", "stage"],
            )?,
        )?;

        for (error_type, stage) in INITIAL_ERRORS {
            errors.get_metric_with_label_values(&[error_type, stage])?;
        }
        let checkpoint_last_success = reg(
            &r,
            Gauge::new(
                "tripline_checkpoint_last_success_timestamp_seconds",
                "Unix time of the last checkpoint written successfully (0: none yet); age = time() - this.",
            )?,
        )?;
        let checkpoint_bytes = reg(
            &r,
            IntGauge::new(
                "tripline_checkpoint_size_bytes",
                "Sum of the latest checkpoint size of every partition this instance saved.",
            )?,
        )?;

        Ok(Metrics {
            registry: r,
            events_received,
            events_processed,
            rejected,
            rejected_other,
            events_late,
            events_out_of_range,
            dead_letters_delivered,
            dead_letters_retried,
            alerts,
            alerts_resolved,
            alerts_folded,
            consumer_lag,
            processing_duration,
            event_delay,
            batch_size,
            outputs,
            tracked_integrations,
            learning_integrations,
            engine_memory,
            top_k: Mutex::new(TopK::new(top_k, score)),
            ready,
            errors,
            checkpoint_last_success,
            checkpoint_bytes,
        })
    }

    /// The underlying registry, e.g. to register process metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Valid events fed to the engine.
    pub fn processed(&self, n: u64) {
        self.events_processed.inc_by(n);
    }

    /// Valid events older than the lateness allowance.
    pub fn late(&self, n: u64) {
        self.events_late.inc_by(n);
    }

    /// Valid events out of range of their partition's stream time
    /// (`EngineStats::ts_out_of_range`).
    pub fn out_of_range(&self, n: u64) {
        self.events_out_of_range.inc_by(n);
    }

    /// One batch's wall time and size.
    pub fn batch(&self, duration: Duration, events: usize) {
        self.processing_duration.observe(duration.as_secs_f64());
        self.batch_size.observe(events as f64);
    }

    /// Wall clock − event time of processed events, in seconds.
    pub fn event_delays(&self, seconds: &[f64]) {
        for d in seconds {
            self.event_delay.observe(d.max(0.0));
        }
    }

    /// Records one processed batch: counters, the duration, batch size and
    /// event-delay histograms. One call per batch, not per event.
    pub fn record_batch(&self, batch: &BatchStats<'_>) {
        self.events_received.inc_by(batch.received);
        self.events_processed.inc_by(batch.processed);
        self.events_late.inc_by(batch.late);
        self.processing_duration
            .observe(batch.duration.as_secs_f64());
        self.batch_size.observe(batch.processed as f64);
        for d in batch.event_delays_seconds {
            self.event_delay.observe(d.max(0.0));
        }
    }

    /// Counts `n` events read from the source (outside [`Metrics::record_batch`]).
    pub fn received(&self, n: u64) {
        self.events_received.inc_by(n);
    }

    /// Counts one rejected event. `reason` should be one of
    /// [`REJECT_REASONS`]; anything else is counted as `other`.
    pub fn rejected(&self, reason: &str) {
        self.rejected
            .get(reason)
            .unwrap_or(&self.rejected_other)
            .inc();
    }

    /// Counts a dead-letter produce: `retried` false for a delivery, true for a re-attempt.
    pub fn dead_letter(&self, retried: bool) {
        if retried {
            self.dead_letters_retried.inc();
        } else {
            self.dead_letters_delivered.inc();
        }
    }

    /// Counts one alert emitted by the engine.
    pub fn alert(&self, alert: &Alert) {
        let i = kind_index(alert.kind) * Severity::ALL.len() + severity_index(alert.severity);
        if let Some(c) = self.alerts.get(i) {
            c.inc();
        }
    }

    /// Counts one resolved episode (its folds are counted by [`Metrics::folded`]).
    pub fn resolved(&self, resolved: &Resolved) {
        if let Some(c) = self.alerts_resolved.get(kind_index(resolved.kind)) {
            c.inc();
        }
    }

    /// Counts `n` repeats folded into an open episode of `kind`.
    pub fn folded(&self, kind: AlertKind, n: u64) {
        if let Some(c) = self.alerts_folded.get(kind_index(kind)) {
            c.inc_by(n);
        }
    }

    /// Sets the lag of one assigned partition.
    pub fn set_consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        let p = partition.to_string();
        if let Ok(g) = self
            .consumer_lag
            .get_metric_with_label_values(&[topic, p.as_str()])
        {
            g.set(lag);
        }
    }

    /// Removes the lag series of a partition that was revoked, so the series
    /// count follows the assignment.
    pub fn remove_consumer_lag(&self, topic: &str, partition: i32) {
        let p = partition.to_string();
        let _ = self.consumer_lag.remove_label_values(&[topic, p.as_str()]);
    }

    /// Sets the engine gauges.
    pub fn set_engine(
        &self,
        tracked_integrations: usize,
        learning_integrations: usize,
        memory_bytes: usize,
    ) {
        self.tracked_integrations
            .set(i64::try_from(tracked_integrations).unwrap_or(i64::MAX));
        self.learning_integrations
            .set(i64::try_from(learning_integrations).unwrap_or(i64::MAX));
        self.engine_memory
            .set(i64::try_from(memory_bytes).unwrap_or(i64::MAX));
    }

    /// Replaces the anomaly-score series with the top K of `scores`.
    pub fn update_top_scores<'a>(&self, scores: impl IntoIterator<Item = (&'a str, f64)>) {
        if let Ok(mut top) = self.top_k.lock() {
            top.update(scores);
        }
    }

    /// Sets `tripline_ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Counts one internal error. Both labels must come from small fixed sets
    /// (e.g. `error_type="kafka_commit", stage="commit"`), never from an
    /// error message.
    pub fn error(&self, error_type: &'static str, stage: &'static str) {
        if let Ok(c) = self
            .errors
            .get_metric_with_label_values(&[error_type, stage])
        {
            c.inc();
        }
    }

    /// A checkpoint was written: `at_unix_seconds` now, `total_bytes` the sum
    /// of the latest checkpoint of every partition saved.
    pub fn checkpoint_saved(&self, at_unix_seconds: f64, total_bytes: u64) {
        self.checkpoint_last_success.set(at_unix_seconds);
        self.checkpoint_bytes
            .set(i64::try_from(total_bytes).unwrap_or(i64::MAX));
    }

    /// Resolves (and creates at 0) the series of one configured output.
    pub fn output(&self, name: &str) -> Result<OutputMetrics, MetricsError> {
        self.outputs.handles(name)
    }

    /// The Prometheus text exposition format of every metric.
    pub fn render(&self) -> String {
        let families = self.registry.gather();
        match TextEncoder::new().encode_to_string(&families) {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, "Failed to encode metrics.");
                String::new()
            }
        }
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
