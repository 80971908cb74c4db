//! The detectors, by family, and the per-event context they share.
//!
//! - [`spike`]: `call_spike`, `volume_spike`, `error_burst` — running bucket
//!   counts against the seasonal baseline.
//! - [`sustained`]: the same three kinds for shifts that build over minutes
//!   to hours (a CUSUM per series, per integration and per key).
//! - [`learned`]: `new_data_type`, `new_source` (learned networks),
//!   `dormant_reactivated` (integrations and keys), and the bookkeeping of the
//!   per-integration lists they learn from.
//! - [`rules`]: registry rules — `scope_violation`, `revoked_credential`,
//!   `off_hours`, `unknown_integration`, `new_source` outside declared
//!   networks. They speak from the first event, without learning.
//!
//! [`Cx::observe`] is the order in which one event goes through all of them.

mod caps;
mod exact;
mod keys;
mod learned;
pub(crate) mod level;
mod rules;
mod spike;
pub(crate) mod sustained;

use crate::alert::Outputs;
use crate::budget::AlertBudget;
use crate::clock::{advance_watermark, CONFIRM};
use crate::config::EngineConfig;
use crate::engine::EngineStats;
use crate::episodes::close_episodes;
use crate::event::Event;
use crate::feedback::FeedbackState;
use crate::registry::{IntegrationDecl, Registry};
use crate::state::IntegrationState;

/// The per-event working context.
pub(crate) struct Cx<'a, 'o> {
    pub(crate) cfg: &'a EngineConfig,
    pub(crate) registry: Option<&'a Registry>,
    pub(crate) decl: Option<&'a IntegrationDecl>,
    pub(crate) out: &'o mut Outputs,
    pub(crate) stats: &'a mut EngineStats,
    pub(crate) feedback: &'a FeedbackState,
    /// Alerts per kind and window across integrations (`budget.rs`).
    pub(crate) budget: &'a mut AlertBudget,
    /// The event's time is beyond `max_future_skew` of the stream time (or,
    /// for a new integration, before it): the rule detectors judge it, but
    /// it is never counted into a bucket and never moves the watermark.
    pub(crate) out_of_range: bool,
    /// Stream time plus `max_future_skew`: no event moves the integration's
    /// last seen (and so its gaps) beyond it.
    pub(crate) bound: i64,
    /// The event confirms a jump of its integration beyond the skew
    /// (`clock::Jump`): its watermark follows at once.
    pub(crate) jumped: bool,
    /// The event is more than the lateness allowance ahead of the stream
    /// time (as the engine found it): only such an event may be held as
    /// its integration's lead (`clock::advance_watermark`).
    pub(crate) ahead: bool,
}

impl Cx<'_, '_> {
    /// How far analyst feedback raised `kind`'s thresholds for the event's
    /// integration at its time (≥ 1; 1 without feedback).
    pub(crate) fn feedback_raise(&self, ev: &Event<'_>, kind: crate::alert::AlertKind) -> f64 {
        if self.feedback.is_empty() {
            return 1.0;
        }
        self.feedback
            .threshold_factor(ev.integration_id, kind, ev.ts_ms)
            .max(1.0)
    }

    /// One event through the integration's state and every detector.
    pub(crate) fn observe(&mut self, st: &mut IntegrationState, ev: &Event<'_>) {
        let ts = ev.ts_ms;
        let learning = self.cfg.learning_ms();
        // Resume after silence: judged before this event updates anything,
        // on the time this event may move clocks to.
        let clk = ts.min(self.bound);
        if !self.out_of_range && st.accepted == 0 && st.events > 0 {
            // Its clocks rested only on out-of-range events (a bounded
            // creation time, a forged or far date): they start here, so
            // it neither looks dormant nor learns from that time.
            st.start_clocks_at(ts);
        }
        if clk > st.last_seen {
            let gap = clk - st.last_seen;
            if st.events > 0 {
                self.check_dormant(st, ev, gap);
            }
            if self.too_thin_to_learn_from(st, gap) {
                st.restart_learning(ts);
            }
            st.max_gap_ms = st.max_gap_ms.max(gap);
            st.last_seen = clk;
        }
        if !self.out_of_range {
            st.accepted = st.accepted.saturating_add(1);
        }
        st.events += 1;
        st.records = st.records.saturating_add(ev.records);
        st.bytes = st.bytes.saturating_add(ev.bytes);
        if ev.is_auth_error() {
            st.auth_errors += 1;
        }
        // Episodes end on trusted time: an out-of-range event (say one
        // dated 2030) is not evidence that the integration went quiet, so
        // it ends nothing beyond the integration's own watermark.
        let close_at = if self.out_of_range {
            ts.min(st.watermark)
        } else {
            ts
        };
        close_episodes(self.cfg, ev.integration_id, st, close_at, self.out, false);

        // Buckets and baselines, on this integration's own watermark.
        if self.out_of_range {
            // Counted by the engine (`ts_out_of_range`), never baselined.
        } else if ts < st.watermark - self.cfg.lateness_ms() {
            st.late_events += 1;
            self.stats.late_events += 1;
        } else {
            if self.jumped || !self.ahead {
                // Not ahead of the stream time (an integration resuming in
                // a live partition), or a jump confirmed by `CONFIRM`
                // events of this integration: the watermark follows it.
                st.watermark = st.watermark.max(ts);
            }
            let allowance = self.cfg.lateness_ms();
            if advance_watermark(&mut st.watermark, &mut st.lead, ts, allowance) {
                self.drop_abandoned_lead(st, allowance);
            }
            self.advance_buckets(st);
            self.count(st, ev);
            let mature = st.mature(ts, learning);
            self.key_shift(st, ev, mature);
        }

        // Registry detectors: from the first event, no learning.
        match (self.registry, self.decl) {
            (Some(_), None) => self.unknown_integration(st, ev),
            (Some(_), Some(d)) => {
                self.scope_violation(st, ev, d);
                self.off_hours(st, ev, d);
            }
            _ => {}
        }
        self.credentials(st, ev, learning);
        self.data_type(st, ev, learning);
        self.source(st, ev, learning);
    }

    /// Whether the history before a silence of `gap` that this (accepted)
    /// event ends is too thin to count as learning: fewer than
    /// [`CONFIRM`] accepted events (out-of-range ones moved no clock), then
    /// a silence longer than [`EngineConfig::thin_silence_ms`] (1.5 ×
    /// `max_future_skew`: 36 h by default, so a daily job's jitter never
    /// reaches it). The evidence a clock needs to follow a jump
    /// (`clock.rs`): fewer than [`CONFIRM`] events that far from everything
    /// after them are not history — one event dated weeks before an
    /// integration's real traffic would otherwise end its learning period
    /// at once (`IntegrationState::restart_learning`). The count is of all
    /// its accepted events, so a sparse integration restarts at most
    /// `CONFIRM - 1` times: its learning starts at its `CONFIRM`-th event
    /// at the latest.
    fn too_thin_to_learn_from(&self, st: &IntegrationState, gap: i64) -> bool {
        !self.out_of_range
            && st.accepted > 0
            && st.accepted < CONFIRM
            && gap > self.cfg.thin_silence_ms()
    }

    fn is_sensitive(&self, resource: &str) -> bool {
        self.cfg.sensitive_resources.iter().any(|r| r == resource)
    }
}

/// A number for a summary: integers without decimals, else one decimal.
fn fmt1(v: f64) -> String {
    if v >= 100.0 || (v - v.round()).abs() < 0.05 {
        format!("{:.0}", v)
    } else {
        format!("{:.1}", v)
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
