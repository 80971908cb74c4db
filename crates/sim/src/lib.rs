//! Synthetic CRM API traffic with labelled incidents, and a scorer that grades
//! a detector's alerts against those labels.
//!
//! # Simulator
//! [`simulate`] writes three files into a directory:
//! - `events.jsonl`: one event per line, schema per `docs/specs/events.md`;
//!   sorted by event time except ~2% of events displaced late by up to 45 s,
//!   plus ~0.05% malformed lines;
//! - `registry.toml`: the declared integrations, keys and principals, per
//!   `docs/specs/registry.md`;
//! - `truth.json`: the injected incidents ([`Truth`]).
//!
//! [`generate`] is the streaming form: every line goes to a callback, nothing
//! touches the file system, so benchmarks can produce millions of events.
//!
//! Output is a pure function of [`SimConfig`]: a ChaCha RNG seeded from
//! `seed`, no hash-map iteration order, no clock.
//!
//! Benign traffic never breaks the registry it comes with: every data type it
//! uses is granted, it comes only from declared networks and inside declared
//! active hours, revoked keys and offboarded principals stop being used before
//! their revocation, and every benign integration id is registered. Only the
//! injected incidents break those rules.
//!
//! # Scorer
//! [`evaluate`] matches alerts to incidents (same integration, compatible kind,
//! detected within the incident window plus 15 minutes) and reports recall per
//! kind, false alerts per 100 integration-days and time to detect.
#![forbid(unsafe_code)]

mod catalog;
mod eval;
mod gen;
mod hard;
mod incidents;
mod plan;
mod registry;
mod rng;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tripline_engine::AlertKind;

pub use eval::{
    evaluate, matches, Evaluation, GroupScore, KindScore, TimeToDetect, DETECTION_SLACK_MS,
};

/// 2026-10-26T00:00:00Z, a Monday.
pub const DEFAULT_START_MS: i64 = 1_792_972_800_000;

/// What to simulate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    pub seed: u64,
    /// Length of the run in days (1..=3660).
    pub days: u32,
    /// Registered, used integrations (1..=5000). One more, never used, is
    /// registered, and shadow integrations are added for incidents.
    pub integrations: u32,
    /// First instant of the run, epoch ms.
    pub start_ms: i64,
    /// Multiplies every benign rate (incident rates are kept detectable).
    pub rate_scale: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            days: 36,
            integrations: 30,
            start_ms: DEFAULT_START_MS,
            rate_scale: 1.0,
        }
    }
}

impl SimConfig {
    fn validate(&self) -> Result<(), SimError> {
        let mut p = Vec::new();
        if !(1..=3660).contains(&self.days) {
            p.push(format!("days = {}: must be 1..=3660", self.days));
        }
        if !(1..=5000).contains(&self.integrations) {
            p.push(format!(
                "integrations = {}: must be 1..=5000",
                self.integrations
            ));
        }
        if !(self.rate_scale.is_finite() && self.rate_scale >= 0.0 && self.rate_scale <= 1000.0) {
            p.push(format!(
                "rate_scale = {}: must be in [0, 1000]",
                self.rate_scale
            ));
        }
        // Keep every timestamp a four-digit-year RFC 3339 instant.
        if !(0..=200_000_000_000_000).contains(&self.start_ms) {
            p.push(format!(
                "start_ms = {}: must be between 1970 and 8000",
                self.start_ms
            ));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(SimError::InvalidConfig(p.join("; ")))
        }
    }
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulation config: {0}")]
    InvalidConfig(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialise truth: {0}")]
    Json(#[from] serde_json::Error),
}

/// How strong an incident's signal is.
///
/// - `easy`: far outside the baseline within a minute (10-50x the call rate,
///   50-200x the records, dozens of 401/403 a minute) or a plain rule break;
/// - `moderate`: a few times the baseline for ten minutes to several hours
///   (4x for ten minutes, 4-5x over an evening or a Saturday, one key of
///   several at 4-6x its share, 5x records per call for three hours), or a
///   dormant integration waking up after a full learning period;
/// - `hard`: barely above the noise of one minute, visible only summed over
///   a long window (3x for an hour where a handful of calls an hour are
///   usual; a few dozen 401/403 in half an hour among ~25 calls a minute),
///   or a short-lived integration that wakes up before it ever finished
///   learning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Difficulty {
    #[default]
    Easy,
    Moderate,
    Hard,
}

impl Difficulty {
    pub const ALL: [Difficulty; 3] = [Difficulty::Easy, Difficulty::Moderate, Difficulty::Hard];

    pub fn as_str(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Moderate => "moderate",
            Difficulty::Hard => "hard",
        }
    }
}

/// Which detectors can see an incident at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Only a learned baseline catches it (spikes, errors, new data type or
    /// network, dormancy): nothing in the registry is broken.
    #[default]
    Learned,
    /// The registry alone catches it (grants, revocations, active hours,
    /// unregistered ids).
    Registry,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Learned, Family::Registry];

    /// The family of an incident of `kind` as the simulator injects it
    /// (`new_source` only on integrations without declared networks).
    pub fn of(kind: AlertKind) -> Family {
        match kind {
            AlertKind::ScopeViolation
            | AlertKind::RevokedCredential
            | AlertKind::OffHours
            | AlertKind::UnknownIntegration => Family::Registry,
            _ => Family::Learned,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Learned => "learned",
            Family::Registry => "registry",
        }
    }
}

/// One injected incident: what a perfect detector should alert on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    /// `inc-001`, …, in start order.
    pub id: String,
    pub kind: AlertKind,
    pub integration_id: String,
    pub key_id: Option<String>,
    pub resource: Option<String>,
    #[serde(with = "tripline_engine::time::rfc3339")]
    pub start: i64,
    #[serde(with = "tripline_engine::time::rfc3339")]
    pub end: i64,
    pub description: String,
    #[serde(default)]
    pub difficulty: Difficulty,
    #[serde(default)]
    pub family: Family,
}

/// The labels of one simulated run (`truth.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub seed: u64,
    pub days: u32,
    pub integrations: u32,
    #[serde(with = "tripline_engine::time::rfc3339")]
    pub start: i64,
    /// Valid events written.
    pub events: u64,
    /// Malformed lines written in addition to `events`.
    pub malformed_lines: u64,
    pub incidents: Vec<Incident>,
    /// Sum over integration ids of the UTC days on which each sent traffic.
    pub integration_days: u64,
}

/// What [`simulate`] wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimSummary {
    pub events: u64,
    pub malformed_lines: u64,
    pub incidents: usize,
    pub integration_days: u64,
    pub events_path: String,
    pub registry_path: String,
    pub truth_path: String,
}

/// Streams the simulated events to `sink`, one JSON line (no newline) per
/// call, in output order; returns the truth and the registry TOML.
pub fn generate(cfg: &SimConfig, sink: impl FnMut(&[u8])) -> Result<(Truth, String), SimError> {
    cfg.validate()?;
    let world = plan::plan(cfg);
    let registry = registry::registry_toml(&world);
    let (events, malformed, integration_days) = gen::run(cfg, &world, sink);
    let truth = Truth {
        seed: cfg.seed,
        days: cfg.days,
        integrations: cfg.integrations,
        start: cfg.start_ms,
        events,
        malformed_lines: malformed,
        incidents: world.incidents.iter().map(|b| b.incident.clone()).collect(),
        integration_days,
    };
    Ok((truth, registry))
}

/// The registry TOML of the run `cfg` describes, without generating its
/// events (the world is planned up front, so this is cheap).
pub fn registry_for(cfg: &SimConfig) -> Result<String, SimError> {
    cfg.validate()?;
    Ok(registry::registry_toml(&plan::plan(cfg)))
}

/// Writes `events.jsonl`, `registry.toml` and `truth.json` into `out_dir`
/// (created if missing).
pub fn simulate(cfg: &SimConfig, out_dir: &Path) -> Result<SimSummary, SimError> {
    cfg.validate()?;
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| SimError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let events_path = out_dir.join("events.jsonl");
    let registry_path = out_dir.join("registry.toml");
    let truth_path = out_dir.join("truth.json");

    let file = File::create(&events_path).map_err(io(&events_path))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut err: Option<std::io::Error> = None;
    let (truth, registry) = generate(cfg, |line| {
        if err.is_none() {
            if let Err(e) = w.write_all(line).and_then(|()| w.write_all(b"\n")) {
                err = Some(e);
            }
        }
    })?;
    if let Some(e) = err {
        return Err(io(&events_path)(e));
    }
    w.flush().map_err(io(&events_path))?;
    drop(w);

    std::fs::write(&registry_path, registry).map_err(io(&registry_path))?;
    let mut json = serde_json::to_vec_pretty(&truth)?;
    json.push(b'\n');
    std::fs::write(&truth_path, json).map_err(io(&truth_path))?;

    Ok(SimSummary {
        events: truth.events,
        malformed_lines: truth.malformed_lines,
        incidents: truth.incidents.len(),
        integration_days: truth.integration_days,
        events_path: events_path.display().to_string(),
        registry_path: registry_path.display().to_string(),
        truth_path: truth_path.display().to_string(),
    })
}

#[cfg(test)]
mod tests;
