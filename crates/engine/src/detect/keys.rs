//! Per-key sustained shifts: a key is a sub-stream of its integration, and
//! its calls are judged against its recent share of the integration's
//! baseline — the CUSUM of `sustained.rs` and the exact window test of
//! `exact.rs`, per minute of the key's calls.

use serde::{Deserialize, Serialize};

use super::exact::{glr_needed, window_dispersion, window_nats, MIN_EXACT_COUNT};
use super::level::threshold_factor;
use super::sustained::{effective_dispersion, span_label, MAX_QUIET_MS};
use super::{fmt1, Cx};
use crate::alert::{round_sig, AlertKind, Evidence, EvidenceValue};
use crate::buckets::CALLS;
use crate::episodes::Finding;
use crate::event::Event;
use crate::shift::Cusum;
use crate::state::IntegrationState;
use crate::stats::score_from_p;
use crate::time::{hour_of_week, is_month_end, MINUTE_MS};

/// Time constant of a key's recent share of its integration's calls.
const SHARE_TAU_MINUTES: f64 = 2.0 * 24.0 * 60.0;

/// Per-key sustained-shift state (≈ 48 bytes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyWatch {
    cusum: Cusum,
    /// The key's recent call count, decayed with a two-day time constant:
    /// its share of the integration's calls follows key rotation.
    recent: f32,
    /// Expected calls of the key in `minute` (its share of the baseline).
    mu: f32,
    /// Minute being counted (epoch minutes, clamped to an i32: it lasts
    /// until the year 6053), and its calls so far.
    minute: i32,
    minute_calls: u32,
    /// Whether the statistic fired during `minute` (no second look in it).
    alarmed: bool,
    /// The integration's event count (`IntegrationState::events`,
    /// truncated; differences wrap) before the key's first event of the
    /// minute the statistic's current run started in — or of `minute`,
    /// while the statistic is idle (a run can only start there): how many
    /// calls the whole integration made in the key's window
    /// ([`share_nats`]). One field keeps the watch at 48 bytes.
    #[serde(default)]
    run_events: u32,
}

/// Evidence in nats (a Chernoff bound on `−ln` of the binomial upper tail)
/// that `key` calls out of `key + others` exceed the key's usual `share`:
/// 0 when its share of the window's calls is not above it. A batch or a
/// rise of the whole integration lifts every key alike and scores ≈ 0.
pub(crate) fn share_nats(key: f64, others: f64, share: f64) -> f64 {
    let n = key + others;
    if n <= 0.0 || !(share > 0.0 && share < 1.0) {
        return 0.0;
    }
    let q = (key / n).min(1.0);
    if q <= share {
        return 0.0;
    }
    let kl_other = if q < 1.0 {
        (1.0 - q) * ((1.0 - q) / (1.0 - share)).ln()
    } else {
        0.0
    };
    n * (q * (q / share).ln() + kl_other)
}

pub(crate) fn decay(v: f32, from: i64, to: i64) -> f32 {
    if to <= from {
        return v;
    }
    (f64::from(v) * (-((to - from) as f64) / SHARE_TAU_MINUTES).exp()) as f32
}

impl Cx<'_, '_> {
    /// Per-key calls: the key's count this minute against its share of the
    /// integration's baseline. Runs for every event with a key that is not late.
    pub(crate) fn key_shift(&mut self, st: &mut IntegrationState, ev: &Event<'_>, mature: bool) {
        let Some(k) = ev.key_id else { return };
        if ev.is_rate_limited() {
            // As for the integration: the calls the API served.
            return;
        }
        let minute = ev.ts_ms.div_euclid(MINUTE_MS);
        // The integration's recent calls, decayed to this minute.
        let sh = &mut st.shifts;
        let m32 = minute.clamp(0, i64::from(i32::MAX)) as i32;
        sh.recent_calls = decay(sh.recent_calls, i64::from(sh.recent_minute), minute) + 1.0;
        sh.recent_minute = sh.recent_minute.max(m32);
        let total = f64::from(sh.recent_calls);
        let Some(ki) = st.keys.iter().position(|c| &*c.id == k) else {
            return;
        };
        let p = self.shift_params();
        let d = &self.cfg.detectors.sustained;
        let learning = self.cfg.learning_ms();
        let key_mature = ev.ts_ms - st.keys[ki].first_seen >= learning
            && ev.ts_ms - st.learning_start() >= learning
            && ev.ts_ms >= st.shifts.relearn_until;
        let watch_on = d.enabled && d.calls && d.per_key && self.cfg.detectors.call_spike.enabled;
        let calls_base = {
            let slot = hour_of_week(ev.ts_ms);
            let me = is_month_end(ev.ts_ms, self.cfg.month_end_days);
            // The integration's dispersion, lifted in slots whose calls come
            // in bursts within the hour (a batch job), as for the
            // integration's own statistic.
            st.baselines[CALLS]
                .expected(slot, me)
                .map(|m| (m, effective_dispersion(st, CALLS, slot)))
        };
        // The integration's events so far, this one included.
        let events_now = st.events as u32;
        let bucket_min = (self.cfg.bucket_ms() / MINUTE_MS).max(1) as f64;
        // Analyst feedback that raised the integration's `call_spike`
        // threshold raises its keys' too.
        let fb = self.feedback_raise(ev, AlertKind::CallSpike);
        let h_exact = fb
            * if self.exact_ready(st, ev.ts_ms) {
                self.exact_h()
            } else {
                f64::INFINITY
            };
        let (level, corr, short, weeks) = (
            st.shifts.level,
            st.shifts.level_corr,
            st.shifts.short,
            st.baselines[CALLS].weeks(),
        );
        let w = &mut st.keys[ki].watch;
        let minute = i64::from(m32);
        w.recent = decay(w.recent, i64::from(w.minute), minute) + 1.0;
        if minute > i64::from(w.minute) {
            // Close the key's previous minute, then its quiet minutes.
            let prev = i64::from(w.minute);
            let gap = minute - prev;
            let phi = calls_base.map_or(1.0, |c| c.1);
            if w.minute == 0 || gap * MINUTE_MS > MAX_QUIET_MS || w.mu <= 0.0 {
                w.cusum.reset(minute * MINUTE_MS);
            } else {
                let mu = f64::from(w.mu);
                let t = prev * MINUTE_MS;
                w.cusum
                    .step(&p, f64::from(w.minute_calls), mu, phi, t, t + MINUTE_MS);
                if w.alarmed {
                    // Starts over after an alarm, as for the integration.
                    w.cusum.reset(t + MINUTE_MS);
                }
                w.cusum
                    .quiet(&p, (gap - 1) as f64, mu, phi, minute * MINUTE_MS);
            }
            w.minute = m32;
            w.minute_calls = 0;
            w.alarmed = false;
            if w.cusum.stat <= 0.0 {
                // Idle: a run would start with this minute.
                w.run_events = events_now.wrapping_sub(1);
            }
            let share = (f64::from(w.recent) / total.max(1.0)).min(1.0);
            w.mu = match calls_base {
                Some((m, _)) if mature && key_mature => (m / bucket_min * share) as f32,
                _ => 0.0,
            };
        }
        w.minute_calls = w.minute_calls.saturating_add(1);
        let share = f64::from(w.recent) / total.max(1.0);
        // As for the integration: sustained means the window reaches back
        // before this minute.
        if !watch_on || w.alarmed || w.cusum.stat <= 0.0 || w.mu <= 0.0 || share > d.key_share_max {
            return;
        }
        let Some((_, phi)) = calls_base else { return };
        let mu = f64::from(w.mu);
        let x = f64::from(w.minute_calls);
        let stat = w.cusum.peek(&p, x, mu, phi);
        let c = w.cusum;
        let observed = f64::from(c.observed) + x;
        let expected = f64::from(c.expected) + mu;
        let from = if c.stat > 0.0 {
            c.run_start
        } else {
            minute * MINUTE_MS
        };
        let last_end = (minute + 1) * MINUTE_MS;
        let minutes = ((last_end - from) as f64 / MINUTE_MS as f64)
            .round()
            .max(1.0);
        // The key's level is uncertain as its integration's is, and its slot
        // is learned from its share of the calls only.
        let v = level.window_variance(&corr, mu * 60.0, weeks, minutes);
        let lf = threshold_factor(v, expected, phi);
        // The exact test on the key's window, as for the integration
        // (`detect/exact.rs`); the cheap likelihood-ratio gate first.
        let d = window_dispersion(expected, phi, v + short.excess(level.variance(), minutes));
        let exact = if h_exact.is_finite()
            && observed >= MIN_EXACT_COUNT
            && observed >= glr_needed(expected, d, h_exact)
        {
            // The tail rests on the integration's slot: the key's window
            // expects its share of that.
            let rate_base = expected / share.max(f64::MIN_POSITIVE);
            window_nats(observed, expected, d, minutes, &p, rate_base).filter(|&n| n >= h_exact)
        } else {
            None
        };
        if stat < p.h * lf * fb && exact.is_none() {
            return;
        }
        // The whole integration's calls in the window: the key's rise must
        // be its own, not its integration's.
        let others = (f64::from(events_now.wrapping_sub(w.run_events)) - observed).max(0.0);
        let share_evidence = share_nats(observed, others, share);
        if share_evidence < -self.cfg.detectors.sustained.key_share_p_value.ln() {
            return;
        }
        w.alarmed = true;
        let label = span_label(from, last_end);
        let sd = (phi * expected * lf).sqrt();
        let (test, tail) = match exact {
            Some(n) if stat < p.h * lf * fb || n > stat / lf => ("exact_tail", (-n).exp()),
            _ => ("cusum", (-stat / lf).exp()),
        };
        let mut evidence = Evidence::new();
        evidence.insert("detector".into(), "sustained".into());
        evidence.insert("series".into(), "calls".into());
        evidence.insert("test".into(), test.into());
        evidence.insert("key_share".into(), round_sig(share).into());
        evidence.insert(
            "window_key_share".into(),
            round_sig(observed / (observed + others).max(1.0)).into(),
        );
        evidence.insert("share_nats".into(), round_sig(share_evidence).into());
        evidence.insert("window_minutes".into(), minutes.into());
        evidence.insert("window_label".into(), label.clone().into());
        evidence.insert("window_observed".into(), observed.into());
        evidence.insert("window_expected".into(), round_sig(expected).into());
        evidence.insert("cusum_nats".into(), round_sig(stat).into());
        evidence.insert("tail_probability".into(), EvidenceValue::Num(tail));
        let subject = format!("key:{k}");
        let f = Finding {
            kind: AlertKind::CallSpike,
            subject: &subject,
            key_id: Some(k),
            resource: None,
            window: (from, last_end),
            observed: Some(round_sig(observed)),
            expected: Some(round_sig(expected)),
            score: score_from_p(tail),
            sensitive: false,
            summary: format!(
                "{}: key {k} made {} calls in the last {} min; its share ({:.0}% of the integration's calls) of the baseline for {label} is {} ± {}",
                ev.integration_id,
                fmt1(observed),
                fmt1(minutes),
                share * 100.0,
                fmt1(expected),
                fmt1(sd)
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }
}
