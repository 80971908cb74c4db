//! tripline's edge to the outside world: alert delivery, Prometheus metrics
//! and the admin HTTP server.
//!
//! The engine produces [`tripline_engine::Alert`]s and
//! [`tripline_engine::Resolved`]s; this crate gets them to people
//! (a signed webhook, Alertmanager, PagerDuty, Slack) and exposes what the
//! pipeline is doing (`/metrics`, `/healthz`, `/readyz`).
//!
//! # Wiring (what the binary does)
//! 1. `let metrics = Arc::new(Metrics::new(version, DEFAULT_TOP_K)?)`.
//! 2. `let settings = validate_outputs(&raw.outputs, &ProcessEnv)` (exit 64
//!    on `Err(problems)`, printing each problem).
//! 3. Inside the runtime: `let dispatcher = Dispatcher::new(settings, &metrics)?`.
//! 4. `let readiness = Readiness::new(); readiness.add_check(Arc::new(dispatcher.clone()))`;
//!    the consumer calls `readiness.set_consuming(true)` once it runs.
//! 5. `let admin = http::serve(addr, AdminState { metrics, readiness }, Some(audit_router), shutdown)?`.
//! 6. Per batch: `metrics.record_batch(..)`, `metrics.alert(&a)` per alert,
//!    `dispatcher.submit(&out.alerts, &out.resolved)` (never blocks on I/O).
//! 7. On shutdown: `dispatcher.flush(deadline).await`, then stop the admin server last.
//!
//! # Layout
//! - [`metrics`]: [`Metrics`], every series of `docs/specs/metrics.md`;
//!   `top_k.rs` the top-K anomaly-score gauge.
//! - [`http`]: the admin server on its own thread and runtime, and
//!   [`Readiness`].
//! - [`outputs`]: output configuration and validation, one payload encoder
//!   per receiver type, and the [`Dispatcher`] (queues, retries, overflow).
//! - [`grouping`]: per-output deduplication by alert id and the
//!   per-integration rate limit.
//! - [`secret`]: [`Secret`] and `*_env` / `*_file` secret references.
//!
//! `docs/outputs.md` in the repository is the operator's guide:
//! configuration examples, headers, signature verification, retry and
//! overflow semantics, metrics.
#![forbid(unsafe_code)]

mod build_info;
pub mod grouping;
pub mod http;
pub mod metrics;
mod output_metrics;
pub mod outputs;
pub mod secret;
mod serve;
mod top_k;

pub use grouping::{GroupingConfig, GroupingStats};
pub use http::{
    serve, serve_router, serve_with_limits, AdminServer, AdminState, HealthCheck, HttpError,
    HttpLimits, Readiness,
};
pub use metrics::{BatchStats, BuildInfo, Metrics, MetricsError, DEFAULT_TOP_K};
pub use outputs::{
    validate_outputs, DeliveryConfig, Dispatcher, DispatcherError, FlushOutcome, Notification,
    OutputConfig, OutputHealth, OutputSettings, OutputStats, OverflowPolicy,
};
pub use secret::{ProcessEnv, Secret, SecretSource};
