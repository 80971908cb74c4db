//! The per-output metric families (`tripline_output_*`, labelled by the
//! configured output name) and the handles one output resolves once.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::metrics::{reg, MetricsError};

/// Bucket bounds of `tripline_output_delivery_duration_seconds`: queued to
/// delivered, from a healthy receiver (milliseconds) to one back after an
/// outage (the six-hour `max_age` default).
const DELIVERY_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0, 21600.0,
];

/// Handles for one configured output, resolved once.
#[derive(Clone, Debug)]
pub struct OutputMetrics {
    pub(crate) success: IntCounter,
    pub(crate) failure: IntCounter,
    pub(crate) retries: IntCounter,
    pub(crate) dropped_queue_full: IntCounter,
    pub(crate) dropped_rate_limited: IntCounter,
    pub(crate) dropped_expired: IntCounter,
    pub(crate) queue_depth: IntGauge,
    pub(crate) held_resolutions: IntGauge,
    pub(crate) delivery_duration: Histogram,
}

/// The `tripline_output_*` families of one registry.
#[derive(Debug)]
pub(crate) struct OutputFamilies {
    deliveries: IntCounterVec,
    retries: IntCounterVec,
    dropped: IntCounterVec,
    queue_depth: IntGaugeVec,
    held_resolutions: IntGaugeVec,
    delivery_duration: HistogramVec,
}

impl OutputFamilies {
    pub(crate) fn register(r: &Registry) -> Result<Self, MetricsError> {
        let output_deliveries = reg(
            r,
            IntCounterVec::new(
                Opts::new(
                    "tripline_output_deliveries_total",
                    "Output delivery attempts by result.",
                ),
                &["output", "outcome"],
            )?,
        )?;
        let output_retries = reg(
            r,
            IntCounterVec::new(
                Opts::new(
                    "tripline_output_retries_total",
                    "Output re-attempts after a failure.",
                ),
                &["output"],
            )?,
        )?;
        let output_dropped = reg(
            r,
            IntCounterVec::new(
                Opts::new(
                    "tripline_output_dropped_total",
                    "Notifications dropped by policy.",
                ),
                &["output", "reason"],
            )?,
        )?;
        let output_queue_depth = reg(
            r,
            IntGaugeVec::new(
                Opts::new(
                    "tripline_output_queue_depth",
                    "Notifications waiting per output.",
                ),
                &["output"],
            )?,
        )?;
        let output_held_resolutions = reg(
        r,
        IntGaugeVec::new(
            Opts::new(
                "tripline_output_held_resolutions",
                "Alertmanager resolutions held until their alert has fired for min_firing_seconds.",
            ),
            &["output"],
        )?,
    )?;
        let output_delivery_duration = reg(
            r,
            HistogramVec::new(
                HistogramOpts::new(
                    "tripline_output_delivery_duration_seconds",
                    "Time from queueing a notification to its successful delivery, per output.",
                )
                .buckets(DELIVERY_BUCKETS.to_vec()),
                &["output"],
            )?,
        )?;
        Ok(OutputFamilies {
            deliveries: output_deliveries,
            retries: output_retries,
            dropped: output_dropped,
            queue_depth: output_queue_depth,
            held_resolutions: output_held_resolutions,
            delivery_duration: output_delivery_duration,
        })
    }

    /// Resolves (and creates at 0) the series of one configured output.
    pub(crate) fn handles(&self, name: &str) -> Result<OutputMetrics, MetricsError> {
        if name.is_empty() {
            return Err(MetricsError::InvalidOutputName(name.to_owned()));
        }
        Ok(OutputMetrics {
            success: self
                .deliveries
                .get_metric_with_label_values(&[name, "success"])?,
            failure: self
                .deliveries
                .get_metric_with_label_values(&[name, "failure"])?,
            retries: self.retries.get_metric_with_label_values(&[name])?,
            dropped_queue_full: self
                .dropped
                .get_metric_with_label_values(&[name, "queue_full"])?,
            dropped_rate_limited: self
                .dropped
                .get_metric_with_label_values(&[name, "rate_limited"])?,
            dropped_expired: self
                .dropped
                .get_metric_with_label_values(&[name, "expired"])?,
            queue_depth: self.queue_depth.get_metric_with_label_values(&[name])?,
            held_resolutions: self
                .held_resolutions
                .get_metric_with_label_values(&[name])?,
            delivery_duration: self
                .delivery_duration
                .get_metric_with_label_values(&[name])?,
        })
    }
}
