//! Analyst feedback: "this alert is expected" turned into engine state.
//!
//! A [`Feedback`] is addressed to one integration and says one of:
//! - [`FeedbackAction::AcceptDataType`]: the integration may touch
//!   `resource:action`; it no longer raises `new_data_type` or
//!   `scope_violation` for it;
//! - [`FeedbackAction::AcceptNetwork`]: calls from this CIDR no longer raise
//!   `new_source` (learned or declared-network);
//! - [`FeedbackAction::RaiseThreshold`]: `call_spike`, `volume_spike` or
//!   `error_burst` need `factor` times the configured `min_ratio` and
//!   `min_excess` before they are examined.
//!
//! Every feedback has an expiry, compared with **event time** (the event
//! being judged), never the wall clock: the engine stays pure, and replaying
//! the same events with the same feedback gives the same alerts.
//!
//! The state is plain serde data inside [`crate::Engine`], so a checkpoint of
//! the engine carries the active feedback and the bounded audit trail.
//!
//! # Determinism
//! Feedback for integration X only ever changes what the engine decides about
//! X, and its expiry is judged on X's events. So the per-integration invariant
//! of [`crate::engine`] holds, provided feedback is applied to the engine that
//! owns X (in a partitioned deployment: the partition X is keyed to).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::alert::AlertKind;
use crate::event::Action;

/// At most this many feedback records are kept in the audit trail (oldest
/// dropped first): enough for months of analyst decisions, bounded memory.
pub const MAX_TRAIL: usize = 1000;

/// At most this many active (unexpired) feedback entries per integration; a
/// further one is refused rather than silently dropping an older decision.
pub const MAX_ACTIVE_PER_INTEGRATION: usize = 64;

/// Largest accepted threshold factor: beyond it, disable the detector instead.
pub const MAX_FACTOR: f64 = 1000.0;

/// What the feedback makes expected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeedbackAction {
    /// Accept `resource:action` into the integration's baseline.
    AcceptDataType {
        /// CRM resource, e.g. `notes`.
        resource: String,
        /// What the call does to it.
        action: Action,
    },
    /// Accept calls from a network into the integration's baseline.
    AcceptNetwork {
        /// The accepted network, e.g. `203.0.113.0/24`.
        cidr: IpNet,
    },
    /// Multiply one spike detector's `min_ratio` and `min_excess`.
    RaiseThreshold {
        /// `call_spike`, `volume_spike` or `error_burst`.
        kind: AlertKind,
        /// Multiplier, > 1 and at most [`MAX_FACTOR`].
        factor: f64,
    },
}

/// One analyst decision about one integration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// The integration it applies to.
    pub integration_id: String,
    /// What it makes expected.
    pub action: FeedbackAction,
    /// Event time (epoch ms) from which it no longer applies.
    #[serde(rename = "expires_at", with = "crate::time::rfc3339")]
    pub expires_at_ms: i64,
    /// Who decided (an email or a username; never a credential).
    pub author: String,
    /// Why, in the analyst's words.
    pub reason: String,
    /// The alert that prompted it, if any.
    #[serde(default)]
    pub alert_id: Option<String>,
    /// When it was recorded (epoch ms; wall clock of whoever recorded it).
    #[serde(rename = "created_at", with = "crate::time::rfc3339")]
    pub created_at_ms: i64,
}

impl Feedback {
    /// Whether it still applies to an event at `ts_ms` (event time).
    pub fn active_at(&self, ts_ms: i64) -> bool {
        ts_ms < self.expires_at_ms
    }

    /// Checks bounds and meaning; every problem is a [`FeedbackError`].
    pub fn validate(&self) -> Result<(), FeedbackError> {
        if self.integration_id.is_empty() || self.integration_id.len() > 256 {
            return Err(FeedbackError::Invalid(
                "integration_id must be 1-256 bytes".into(),
            ));
        }
        if self.author.trim().is_empty() || self.author.len() > 256 {
            return Err(FeedbackError::Invalid("author must be 1-256 bytes".into()));
        }
        if self.reason.len() > 2048 {
            return Err(FeedbackError::Invalid(
                "reason must be at most 2048 bytes".into(),
            ));
        }
        if self.alert_id.as_ref().is_some_and(|a| a.len() > 64) {
            return Err(FeedbackError::Invalid(
                "alert_id must be at most 64 bytes".into(),
            ));
        }
        if self.expires_at_ms <= self.created_at_ms {
            return Err(FeedbackError::Invalid(
                "expires_at must be after created_at".into(),
            ));
        }
        match &self.action {
            FeedbackAction::AcceptDataType { resource, .. } => {
                if resource.is_empty() || resource.len() > 128 {
                    return Err(FeedbackError::Invalid(
                        "resource must be 1-128 bytes".into(),
                    ));
                }
            }
            FeedbackAction::AcceptNetwork { .. } => {}
            FeedbackAction::RaiseThreshold { kind, factor } => {
                if !matches!(
                    kind,
                    AlertKind::CallSpike | AlertKind::VolumeSpike | AlertKind::ErrorBurst
                ) {
                    return Err(FeedbackError::Invalid(format!(
                        "raise_threshold applies to call_spike, volume_spike or error_burst, not {kind}"
                    )));
                }
                if !(factor.is_finite() && *factor > 1.0 && *factor <= MAX_FACTOR) {
                    return Err(FeedbackError::Invalid(format!(
                        "factor must be > 1 and at most {MAX_FACTOR}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Why feedback was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FeedbackError {
    /// A field is out of bounds or meaningless.
    #[error("invalid feedback: {0}")]
    Invalid(String),
    /// The integration already has [`MAX_ACTIVE_PER_INTEGRATION`] active entries.
    #[error("integration {0} already has {MAX_ACTIVE_PER_INTEGRATION} active feedback entries")]
    TooMany(String),
}

/// One entry of the feedback audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    /// Sequence number, increasing from 1 over the engine's life.
    pub seq: u64,
    /// The decision as recorded.
    #[serde(flatten)]
    pub feedback: Feedback,
}

/// The engine's feedback state: active entries per integration and the trail.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackState {
    /// Active (possibly expired, pruned lazily) entries by integration id.
    /// A `BTreeMap` so checkpoints serialize in a stable order.
    active: BTreeMap<String, Vec<Feedback>>,
    /// The last [`MAX_TRAIL`] decisions, oldest first.
    trail: VecDeque<FeedbackRecord>,
    /// Last sequence number handed out.
    seq: u64,
}

impl FeedbackState {
    /// Records `fb` (already validated). `watermark` is the integration's
    /// event-time watermark, used to prune entries that can no longer apply.
    pub(crate) fn apply(
        &mut self,
        fb: &Feedback,
        watermark: Option<i64>,
    ) -> Result<(), FeedbackError> {
        fb.validate()?;
        let list = self.active.entry(fb.integration_id.clone()).or_default();
        if let Some(w) = watermark {
            list.retain(|f| f.active_at(w));
        }
        if list.len() >= MAX_ACTIVE_PER_INTEGRATION {
            return Err(FeedbackError::TooMany(fb.integration_id.clone()));
        }
        list.push(fb.clone());
        self.seq += 1;
        if self.trail.len() >= MAX_TRAIL {
            self.trail.pop_front();
        }
        self.trail.push_back(FeedbackRecord {
            seq: self.seq,
            feedback: fb.clone(),
        });
        Ok(())
    }

    /// Drops entries that expired by their own integration's event time;
    /// `watermark` gives it (`None`: the integration is not tracked, keep).
    pub(crate) fn prune(&mut self, watermark: impl Fn(&str) -> Option<i64>) {
        self.active.retain(|id, list| {
            if let Some(w) = watermark(id) {
                list.retain(|f| f.active_at(w));
            }
            !list.is_empty()
        });
    }

    /// Whether any feedback is held (the hot path checks this first).
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Entries for `id` that apply at event time `ts`.
    pub fn active_for(&self, id: &str, ts: i64) -> impl Iterator<Item = &Feedback> + '_ {
        self.active
            .get(id)
            .into_iter()
            .flatten()
            .filter(move |f| f.active_at(ts))
    }

    /// Every held entry for `id`, including ones not yet pruned.
    pub fn entries(&self, id: &str) -> &[Feedback] {
        self.active.get(id).map_or(&[], Vec::as_slice)
    }

    /// The audit trail, oldest first.
    pub fn trail(&self) -> impl Iterator<Item = &FeedbackRecord> + '_ {
        self.trail.iter()
    }

    /// Whether `resource:action` is accepted for `id` at `ts`.
    pub fn accepts_data_type(&self, id: &str, resource: &str, action: Action, ts: i64) -> bool {
        self.active_for(id, ts).any(|f| {
            matches!(&f.action, FeedbackAction::AcceptDataType { resource: r, action: a }
                if r == resource && *a == action)
        })
    }

    /// Whether calls from `ip` are accepted for `id` at `ts`.
    pub fn accepts_network(&self, id: &str, ip: IpAddr, ts: i64) -> bool {
        self.active_for(id, ts).any(
            |f| matches!(&f.action, FeedbackAction::AcceptNetwork { cidr } if cidr.contains(&ip)),
        )
    }

    /// The threshold multiplier for a spike `kind` of `id` at `ts` (the
    /// largest active factor; 1 when none).
    pub fn threshold_factor(&self, id: &str, kind: AlertKind, ts: i64) -> f64 {
        self.active_for(id, ts)
            .filter_map(|f| match &f.action {
                FeedbackAction::RaiseThreshold { kind: k, factor } if *k == kind => Some(*factor),
                _ => None,
            })
            .fold(1.0, f64::max)
    }

    /// Whether a finding of `kind` about `resource`/`action`/`ip` is made
    /// expected by feedback at event time `ts`.
    pub(crate) fn suppresses(
        &self,
        id: &str,
        kind: AlertKind,
        resource: &str,
        action: Action,
        ip: Option<IpAddr>,
        ts: i64,
    ) -> bool {
        match kind {
            AlertKind::NewDataType | AlertKind::ScopeViolation => {
                self.accepts_data_type(id, resource, action, ts)
            }
            AlertKind::NewSource => ip.is_some_and(|ip| self.accepts_network(id, ip, ts)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Outputs;
    use crate::config::EngineConfig;
    use crate::engine::Engine;
    use crate::event::Event;
    use crate::registry::{Grant, IntegrationDecl, Registry};
    use crate::time::{parse_rfc3339, DAY_MS, MINUTE_MS};

    fn t0() -> i64 {
        parse_rfc3339("2026-10-26T00:00:00Z").unwrap()
    }

    fn fb(id: &str, action: FeedbackAction, expires: i64) -> Feedback {
        Feedback {
            integration_id: id.into(),
            action,
            expires_at_ms: expires,
            author: "analyst@acme.example".into(),
            reason: "expected".into(),
            alert_id: None,
            created_at_ms: t0(),
        }
    }

    fn ev<'a>(ts: i64, id: &'a str, resource: &'a str, ip: &str) -> Event<'a> {
        let mut e = Event::new(ts, id, resource, Action::Read);
        e.source_ip = ip.parse().ok();
        e.records = 10;
        e.bytes = 5000;
        e
    }

    /// `days` of one call a minute from 198.51.100.7, reading contacts.
    fn learn(e: &mut Engine, id: &str, days: i64) {
        let mut out = Outputs::default();
        for m in 0..days * 1440 {
            e.process(
                &ev(t0() + m * MINUTE_MS, id, "contacts", "198.51.100.7"),
                &mut out,
            );
        }
        assert!(out.alerts.is_empty(), "{:?}", out.alerts);
    }

    fn kinds(out: &Outputs) -> Vec<AlertKind> {
        out.alerts.iter().map(|a| a.kind).collect()
    }

    fn registry() -> Registry {
        let mut d = IntegrationDecl::new("reg");
        d.granted = vec![Grant::parse("contacts:read").unwrap()];
        d.networks = vec!["198.51.100.0/24".parse().unwrap()];
        Registry::new(vec![d], vec![], vec![])
    }

    #[test]
    fn validation_refuses_nonsense() {
        let ok = fb(
            "a",
            FeedbackAction::RaiseThreshold {
                kind: AlertKind::CallSpike,
                factor: 3.0,
            },
            t0() + DAY_MS,
        );
        assert!(ok.validate().is_ok());
        let mut bad = ok.clone();
        bad.action = FeedbackAction::RaiseThreshold {
            kind: AlertKind::NewSource,
            factor: 3.0,
        };
        assert!(bad.validate().is_err());
        bad.action = FeedbackAction::RaiseThreshold {
            kind: AlertKind::CallSpike,
            factor: f64::NAN,
        };
        assert!(bad.validate().is_err());
        let mut bad = ok.clone();
        bad.expires_at_ms = bad.created_at_ms;
        assert!(bad.validate().is_err());
        let mut bad = ok;
        bad.integration_id.clear();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn accepted_data_type_is_silent_until_expiry_then_learned() {
        let mut e = Engine::new(EngineConfig::default(), None);
        learn(&mut e, "a", 8);
        let now = t0() + 8 * DAY_MS;
        let f = fb(
            "a",
            FeedbackAction::AcceptDataType {
                resource: "notes".into(),
                action: Action::Read,
            },
            now + DAY_MS,
        );
        e.apply_feedback(&f).unwrap();
        let mut out = Outputs::default();
        e.process(&ev(now + 10, "a", "notes", "198.51.100.7"), &mut out);
        assert!(out.alerts.is_empty(), "{:?}", out.alerts);
        // A data type the feedback does not name still fires.
        e.process(&ev(now + 20, "a", "deals", "198.51.100.7"), &mut out);
        assert_eq!(kinds(&out), vec![AlertKind::NewDataType]);
        assert_eq!(e.feedback().trail().count(), 1);
        // Accepted into the baseline: after expiry it is not new any more.
        let mut out = Outputs::default();
        e.process(
            &ev(now + 2 * DAY_MS, "a", "notes", "198.51.100.7"),
            &mut out,
        );
        assert!(out.alerts.is_empty(), "{:?}", out.alerts);
    }

    #[test]
    fn accepted_data_type_silences_scope_violation_until_expiry() {
        let mut e = Engine::new(EngineConfig::default(), Some(registry()));
        let f = fb(
            "reg",
            FeedbackAction::AcceptDataType {
                resource: "notes".into(),
                action: Action::Read,
            },
            t0() + DAY_MS,
        );
        e.apply_feedback(&f).unwrap();
        let mut out = Outputs::default();
        e.process(&ev(t0(), "reg", "notes", "198.51.100.7"), &mut out);
        assert!(out.alerts.is_empty(), "{:?}", out.alerts);
        // Expiry is judged on event time: at expiry it fires again.
        e.process(&ev(t0() + DAY_MS, "reg", "notes", "198.51.100.7"), &mut out);
        assert_eq!(kinds(&out), vec![AlertKind::ScopeViolation]);
    }

    #[test]
    fn accepted_network_silences_learned_and_declared_new_source() {
        // Declared networks: 203.0.113.0/24 is outside them.
        let mut e = Engine::new(EngineConfig::default(), Some(registry()));
        let f = fb(
            "reg",
            FeedbackAction::AcceptNetwork {
                cidr: "203.0.113.0/24".parse().unwrap(),
            },
            t0() + DAY_MS,
        );
        e.apply_feedback(&f).unwrap();
        let mut out = Outputs::default();
        e.process(&ev(t0(), "reg", "contacts", "203.0.113.9"), &mut out);
        assert!(out.alerts.is_empty(), "{:?}", out.alerts);
        e.process(&ev(t0() + 5, "reg", "contacts", "192.0.2.1"), &mut out);
        assert_eq!(kinds(&out), vec![AlertKind::NewSource]);

        // Learned: a mature integration, a new network.
        let mut e = Engine::new(EngineConfig::default(), None);
        learn(&mut e, "a", 8);
        let now = t0() + 8 * DAY_MS;
        let f = fb(
            "a",
            FeedbackAction::AcceptNetwork {
                cidr: "203.0.113.0/24".parse().unwrap(),
            },
            now + DAY_MS,
        );
        e.apply_feedback(&f).unwrap();
        let mut out = Outputs::default();
        e.process(&ev(now + 10, "a", "contacts", "203.0.113.9"), &mut out);
        assert!(out.alerts.is_empty(), "{:?}", out.alerts);
        // Feedback for another integration does not leak into this one.
        let other = fb(
            "b",
            FeedbackAction::AcceptNetwork {
                cidr: "192.0.2.0/24".parse().unwrap(),
            },
            now + DAY_MS,
        );
        e.apply_feedback(&other).unwrap();
        e.process(&ev(now + 20, "a", "contacts", "192.0.2.1"), &mut out);
        assert_eq!(kinds(&out), vec![AlertKind::NewSource]);
    }

    /// Eight days learned, then 60 calls in one minute at `at`.
    fn spike(e: &mut Engine, at: i64) -> Outputs {
        let mut out = Outputs::default();
        for i in 0..60 {
            e.process(&ev(at + i * 900, "a", "contacts", "198.51.100.7"), &mut out);
        }
        out
    }

    #[test]
    fn raised_threshold_needs_a_bigger_spike_until_expiry() {
        let mut base = Engine::new(EngineConfig::default(), None);
        learn(&mut base, "a", 8);
        let at = t0() + 8 * DAY_MS + 3 * 3_600_000;
        // Without feedback 60 calls/min against ~1 fires.
        let mut plain = base.clone();
        assert_eq!(kinds(&spike(&mut plain, at)), vec![AlertKind::CallSpike]);
        // Raised 100x: the same spike is below the bar.
        let mut raised = base.clone();
        raised
            .apply_feedback(&fb(
                "a",
                FeedbackAction::RaiseThreshold {
                    kind: AlertKind::CallSpike,
                    factor: 100.0,
                },
                at + DAY_MS,
            ))
            .unwrap();
        assert!(spike(&mut raised, at).alerts.is_empty());
        // After expiry (event time) the usual threshold is back.
        let mut expired = base;
        expired
            .apply_feedback(&fb(
                "a",
                FeedbackAction::RaiseThreshold {
                    kind: AlertKind::CallSpike,
                    factor: 100.0,
                },
                at - MINUTE_MS,
            ))
            .unwrap();
        assert_eq!(kinds(&spike(&mut expired, at)), vec![AlertKind::CallSpike]);
    }

    #[test]
    fn feedback_survives_a_checkpoint_and_the_trail_is_bounded() {
        let mut e = Engine::new(EngineConfig::default(), None);
        for i in 0..(MAX_TRAIL as i64 + 5) {
            let mut f = fb(
                "",
                FeedbackAction::AcceptNetwork {
                    cidr: "203.0.113.0/24".parse().unwrap(),
                },
                t0() + DAY_MS,
            );
            f.created_at_ms = t0() - 1;
            // Distinct integrations keep each under the active cap.
            f.integration_id = format!("i{i}");
            e.apply_feedback(&f).unwrap();
        }
        assert_eq!(e.feedback().trail().count(), MAX_TRAIL);
        assert_eq!(e.feedback().trail().next().map(|r| r.seq), Some(6));
        let json = serde_json::to_string(&e).unwrap();
        let back: Engine = serde_json::from_str(&json).unwrap();
        assert_eq!(back.feedback(), e.feedback());
    }

    #[test]
    fn active_entries_per_integration_are_capped() {
        let mut e = Engine::new(EngineConfig::default(), None);
        let f = fb(
            "a",
            FeedbackAction::AcceptNetwork {
                cidr: "203.0.113.0/24".parse().unwrap(),
            },
            t0() + DAY_MS,
        );
        for _ in 0..MAX_ACTIVE_PER_INTEGRATION {
            e.apply_feedback(&f).unwrap();
        }
        assert!(matches!(
            e.apply_feedback(&f),
            Err(FeedbackError::TooMany(_))
        ));
    }
}
