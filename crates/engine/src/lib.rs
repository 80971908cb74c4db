//! The tripline detection engine: CRM API access events in, alerts out.
//!
//! Pure and deterministic: no async, no I/O, no clock. Event time is carried
//! by each event; the same events in the same per-integration order always give
//! the same alerts with the same ids.
//!
//! # Layout
//! - [`event`]: the borrowed, validated event the engine consumes.
//! - [`alert`]: alerts and resolutions, per `docs/specs/alerts.md`.
//! - [`clock`]: the robust stream time (no single event moves it).
//! - [`config`]: thresholds, learning period, bucket size, memory bounds.
//! - [`registry`]: the validated declared-integrations registry.
//! - [`stats`]: seasonal count baselines and negative-binomial tails.
//! - [`series`]: scoring of univariate `timestamp, value` series
//!   (`tripline score-series`): the same statistics, one score per row.
//! - [`shift`]: sustained upward shifts of a count series (quasi-Poisson
//!   CUSUM against any expected count per step); reusable outside the detectors.
//! - [`engine`]: the [`Engine`] — integrations by id, `process`,
//!   `advance_to`, eviction.
//! - [`population`]: the process-wide count behind `max_integrations`
//!   (one [`Population`] shared by every partition's engine).
//! - `budget`: per-kind alert budgets; floods across integrations fold into
//!   one aggregate alert per window.
//! - [`state`]: what is kept per integration and its bounded lists.
//! - `buckets`: event-time buckets, hourly folding into the baselines.
//! - `detect`: the ten detectors by family (`spike`, `sustained`, `learned`,
//!   `rules`).
//! - `episodes`: folding repeats into episodes, opening alerts, resolving.
//! - [`feedback`]: analyst feedback (accepted data types and networks,
//!   raised thresholds) with event-time expiry, and its audit trail.
//! - [`time`]: calendar maths on epoch milliseconds.
//! - [`text`]: safe rendering of input strings for humans ([`text::Safe`]).
//! - [`confusable`]: look-alike skeletons of ids (Unicode TR39), so an
//!   unregistered id names the registered one it imitates.
#![forbid(unsafe_code)]

pub mod alert;
mod buckets;
mod budget;
pub mod clock;
pub mod config;
pub mod confusable;
mod detect;
pub mod engine;
mod episodes;
pub mod event;
pub mod feedback;
pub mod population;
pub mod registry;
pub mod series;
pub mod shift;
pub mod state;
pub mod stats;
pub mod text;
pub mod time;

pub use alert::{Alert, AlertKind, Evidence, EvidenceValue, Outputs, Resolved, Severity};
pub use config::EngineConfig;
pub use engine::{Engine, EngineStats};
pub use event::{Action, Event};
pub use feedback::{Feedback, FeedbackAction, FeedbackError, FeedbackRecord};
pub use population::Population;
pub use registry::Registry;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_budget;
#[cfg(test)]
mod tests_depth;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_hostile_time;
