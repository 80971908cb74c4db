//! Sustained shifts: `call_spike`, `volume_spike` and `error_burst` for
//! anomalies that build over ten minutes to several hours, when no single
//! bucket is unusual — per integration on every count series (calls,
//! records, bytes, 401/403 auth failures), and per key on calls.
//!
//! Each series runs a quasi-Poisson CUSUM ([`crate::shift`]) over its
//! closed buckets against the same seasonal baseline the one-bucket
//! detector uses. Records, bytes and auth failures are judged *given the
//! calls*: their expected value is scaled up by the observed/expected call
//! ratio, so a call spike is not also a volume spike, and auth failures are
//! judged as a share of the calls made. A key is a sub-stream of its
//! integration: its expected calls are the integration's times the key's
//! recent share.
//!
//! The open buckets are judged as they fill (the statistic of the closed
//! ones plus the open ones' increments, a lower bound of the statistic at
//! close), so the detector fires mid-bucket like the one-bucket one.
//! After an alarm the statistic starts over: a shift that goes on fires
//! again once it has built up anew. A shift confined to one bucket is left
//! to the one-bucket detector (and its excess and ratio floors). On calls
//! the threshold rises with the integration's uncertainty about its own
//! level ([`super::level`]); 429 responses are not counted.

use serde::{Deserialize, Serialize};

use super::exact::{
    break_even, glr_needed, window_dispersion, window_nats, MIN_EXACT_COUNT, MIN_EXACT_EXPECTED,
};
pub use super::keys::KeyWatch;
use super::level::{threshold_factor, LevelCorr, LevelVar, ShortLevel};
use super::{fmt1, Cx};
use crate::alert::{round_sig, AlertKind, Evidence, EvidenceValue};
use crate::buckets::{Bucket, CALLS, ERRORS, RECORDS};
use crate::episodes::Finding;
use crate::event::Event;
use crate::shift::{Cusum, CusumParams};
use crate::state::IntegrationState;
use crate::stats::score_from_p;
use crate::time::{format_rfc3339, hour_of_week, is_month_end, weekday, HOUR_MS, MINUTE_MS};

/// The sustained series: the three baselined ones plus bytes (judged on the
/// records baseline at the learned bytes per record).
pub(crate) const BYTES: usize = 3;
pub(crate) const SHIFT_SERIES: usize = 4;
/// A gap without buckets longer than this restarts the statistics (the
/// silence is its own signal: dormancy).
pub(crate) const MAX_QUIET_MS: i64 = 6 * HOUR_MS;

/// A silence this long makes the baselines stale (the hours of silence were
/// folded in as zeros): the sustained statistics re-learn for a learning
/// period before they speak again.
const STALE_AFTER_MS: i64 = 3 * 24 * HOUR_MS;

/// The dispersion series `s` is judged with in hour-of-week `slot`: its own
/// (global) dispersion, raised by how much burstier than usual the slot's
/// calls are within the hour (a batch job that fills half its hour).
pub(crate) fn effective_dispersion(st: &IntegrationState, s: usize, slot: usize) -> f64 {
    let base = if s == BYTES { RECORDS } else { s };
    let calls = &st.baselines[CALLS];
    let lift = (calls.slot_dispersion(slot) / calls.dispersion()).max(1.0);
    st.baselines[base].dispersion() * lift
}

/// Per-integration sustained-shift state (≈ 120 bytes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Shifts {
    cusum: [Cusum; SHIFT_SERIES],
    /// End of the last bucket stepped into the statistics.
    stepped_to: i64,
    /// The integration's recent call count (decayed, see [`KeyWatch`]).
    pub(crate) recent_calls: f32,
    /// Minute (epoch minutes; an i32 lasts until the year 6053)
    /// `recent_calls` is decayed to.
    pub(crate) recent_minute: i32,
    /// After a long silence: no sustained alert before this time.
    pub(crate) relearn_until: i64,
    /// How far the hourly call level strays from its slot means.
    #[serde(default)]
    pub(crate) level: LevelVar,
    /// How far one hour's level carries into the next.
    #[serde(default)]
    pub(crate) level_corr: LevelCorr,
    /// The same at the ten-minute scale (the exact test's short windows).
    #[serde(default)]
    pub(crate) short: ShortLevel,
}

/// "Tue 13:12–14:05" (UTC), or with the first day when it spans days.
pub(crate) fn span_label(a: i64, b: i64) -> String {
    const WD: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let hm = |t: i64| {
        let s = format_rfc3339(t);
        s.get(11..16).unwrap_or("").to_owned()
    };
    let wa = WD[weekday(a, 0) as usize % 7];
    let wb = WD[weekday(b, 0) as usize % 7];
    if b - a < 24 * HOUR_MS && wa == wb {
        format!("{wa} {}–{}", hm(a), hm(b))
    } else {
        format!("{wa} {}–{wb} {}", hm(a), hm(b))
    }
}

impl Cx<'_, '_> {
    pub(crate) fn shift_params(&self) -> CusumParams {
        let d = &self.cfg.detectors.sustained;
        CusumParams::new(d.ratio, d.p_value)
    }

    /// Whether the integration's sustained statistic on calls stands above
    /// its plain threshold `h` (`shift_params().h`: `ln(1/p_value)`, before
    /// any level factor): the calls of now are judged anomalous, and the
    /// level model clips what it learns from them (`detect/level.rs`).
    pub(crate) fn calls_suspect(&self, st: &IntegrationState, h: f64) -> bool {
        f64::from(st.shifts.cusum[CALLS].stat) > h
    }

    fn shift_enabled(&self, s: usize) -> bool {
        let d = &self.cfg.detectors;
        d.sustained.enabled
            && match s {
                CALLS => d.call_spike.enabled && d.sustained.calls,
                RECORDS => d.volume_spike.spike.enabled,
                BYTES => d.volume_spike.spike.enabled,
                _ => d.error_burst.enabled,
            }
    }

    /// (expected, dispersion) of series `s` for a bucket at `start` with
    /// `calls` calls so far; None while the slot is unseen.
    fn shift_expected(
        &self,
        st: &IntegrationState,
        s: usize,
        start: i64,
        calls: u64,
    ) -> Option<(f64, f64)> {
        let slot = hour_of_week(start);
        let me = is_month_end(start, self.cfg.month_end_days);
        let base = if s == BYTES { RECORDS } else { s };
        let mut mu = st.baselines[base].expected(slot, me)?;
        let mut phi = effective_dispersion(st, s, slot);
        if s == ERRORS || s == RECORDS {
            // Judged as a share of the calls, pooled over the whole history
            // (rare events: a slot mean learned from a few hours is mostly
            // noise): the calls made times the usual errors or records per
            // call, and never less than the slot baseline at usual calls.
            let per_call = if s == ERRORS {
                (st.auth_errors as f64 + 1.0) / (st.events.max(1) as f64 + 100.0)
            } else {
                st.records_per_call()
            };
            let calls_mu = st.baselines[CALLS].expected(slot, me)?;
            return Some(((calls as f64).max(calls_mu) * per_call, phi));
        }
        if s == BYTES {
            if st.bytes_per_record <= 0.0 {
                return None;
            }
            mu *= st.bytes_per_record;
            phi *= st.bytes_per_record;
        }
        if s != CALLS {
            // Judged given the calls: more calls than usual explain more
            // records, bytes and auth failures in proportion.
            let calls_mu = st.baselines[CALLS].expected(slot, me)?;
            mu *= (calls as f64 / calls_mu).max(1.0);
        }
        Some((mu, phi))
    }

    /// The count series `s` is judged on in bucket `b`.
    pub(crate) fn bucket_count(b: &Bucket, s: usize) -> u64 {
        match s {
            BYTES => b.bytes_capped,
            RECORDS => b.records_capped,
            CALLS => b.counts[CALLS].saturating_sub(b.rate_limited),
            s => b.counts[s],
        }
    }

    /// The statistic of series `s` as the first open bucket will find it
    /// when it closes: the closed run drained by the quiet buckets between
    /// the last stepped bucket and the first open one (`shift_close` steps
    /// them only then), or started afresh after a gap that restarts it. The
    /// open buckets are judged on this, not on the bare closed run: a burst
    /// followed by an hour of silence is not a window that expected only the
    /// burst's minutes.
    fn pending_cusum(&self, st: &IntegrationState, s: usize) -> Cusum {
        let mut c = st.shifts.cusum[s];
        let Some(first_open) = st.buckets.first().map(|b| b.start_ms) else {
            return c;
        };
        let stepped = st.shifts.stepped_to;
        let gap = first_open - stepped;
        if stepped <= 0 || gap <= 0 || c.stat <= 0.0 {
            return c;
        }
        if gap > MAX_QUIET_MS {
            c.reset(first_open);
            return c;
        }
        self.quiet_gap(st, s, Some(&mut c), stepped, first_open);
        c
    }

    /// Steps the bucket-less span `[from, to)` into `c` (when given), hour
    /// slot by hour slot at each slot's expectation, and returns the count
    /// expected over it and the nats its empty buckets take off a
    /// statistic. A gap may reach from the end of a batch hour into a quiet
    /// one: judged at the slot of the bucket that ends it alone, the rest of
    /// the batch hour would expect nothing and the window before it would
    /// look like a burst against a few minutes' baseline.
    fn quiet_gap(
        &self,
        st: &IntegrationState,
        s: usize,
        mut c: Option<&mut Cusum>,
        from: i64,
        to: i64,
    ) -> (f64, f64) {
        let bucket_ms = self.cfg.bucket_ms().max(1);
        let p = self.shift_params();
        let (mut expected, mut drain) = (0.0, 0.0);
        let mut t = from;
        while t < to {
            let end = ((t.div_euclid(HOUR_MS) + 1) * HOUR_MS).min(to);
            let n = ((end - t) / bucket_ms) as f64;
            if n > 0.0 {
                if let Some((mu, phi)) = self.shift_expected(st, s, t, 0) {
                    expected += n * mu;
                    drain -= n * p.increment(0.0, mu, phi);
                    if let Some(c) = c.as_deref_mut() {
                        c.quiet(&p, n, mu, phi, end);
                    }
                }
            }
            t = end;
        }
        (expected, drain)
    }

    /// Sum of the increments and of the counts of the open buckets other
    /// than `skip`, and the expected count of every open bucket (`skip`
    /// included) — with the empty buckets between open ones (an
    /// integration's event held as a lead leaves its earlier buckets open)
    /// counted as the quiet minutes they are.
    /// `base` is the statistic the open buckets continue (a gap drains the
    /// running sum to zero at most, as the statistic itself would).
    fn open_sums(
        &self,
        st: &IntegrationState,
        s: usize,
        skip: Option<usize>,
        base: f64,
    ) -> (f64, f64, f64) {
        let p = self.shift_params();
        let bucket_ms = self.cfg.bucket_ms();
        let (mut inc, mut observed, mut expected) = (0.0, 0.0, 0.0);
        let mut prev_end: Option<i64> = None;
        for (i, b) in st.buckets.iter().enumerate() {
            if let Some(pe) = prev_end.filter(|&pe| b.start_ms > pe) {
                let (e, drain) = self.quiet_gap(st, s, None, pe, b.start_ms);
                expected += e;
                inc = (base + inc - drain).max(0.0) - base;
            }
            prev_end = Some(b.start_ms + bucket_ms);
            if let Some((mu, phi)) = self.shift_expected(st, s, b.start_ms, b.counts[CALLS]) {
                expected += mu;
                if Some(i) != skip {
                    let x = Self::bucket_count(b, s) as f64;
                    inc += p.increment(x, mu, phi);
                    observed += x;
                }
            }
        }
        (inc, observed, expected)
    }

    /// The relative level variance `v` of calls for a window `minutes` long
    /// ending in a bucket expecting `mu` ([`super::level`]).
    fn call_level_var(&self, st: &IntegrationState, mu: f64, minutes: f64) -> f64 {
        let per_hour = (HOUR_MS / self.cfg.bucket_ms().max(1)) as f64;
        st.shifts.level.window_variance(
            &st.shifts.level_corr,
            mu * per_hour,
            st.baselines[CALLS].weeks(),
            minutes,
        )
    }

    /// The relative level variance of a window of calls `minutes` long
    /// ending in a bucket expecting `mu`: the hourly level's, plus the
    /// ten-minute scale's excess for short windows.
    pub(crate) fn window_var(&self, st: &IntegrationState, mu: f64, minutes: f64) -> f64 {
        let v = self.call_level_var(st, mu, minutes);
        v + st.shifts.short.excess(st.shifts.level.variance(), minutes)
    }

    /// Whether the exact test may judge a window ending at `t`: once the
    /// level model has had a week of predicted hours (a level variance
    /// from a handful of hours is not one a tail can rest on).
    pub(crate) fn exact_ready(&self, st: &IntegrationState, t: i64) -> bool {
        t - st.learning_start() >= 2 * self.cfg.learning_ms()
    }

    /// The exact test's threshold in nats (infinite when it is off).
    pub(crate) fn exact_h(&self) -> f64 {
        let p = self.cfg.detectors.sustained.exact_p_value;
        if p > 0.0 && p < 1.0 {
            -p.ln()
        } else {
            f64::INFINITY
        }
    }

    /// How many more calls the window needs before the exact test
    /// ([`super::exact`]) must look at it: `o_prev` calls so far against
    /// `m` expected (this bucket's `mu` included).
    fn exact_needed(
        &self,
        st: &IntegrationState,
        mu: f64,
        phi: f64,
        o_prev: f64,
        m: f64,
        minutes: f64,
    ) -> f64 {
        let h = self.exact_h();
        if !h.is_finite() || m < MIN_EXACT_EXPECTED || !self.exact_ready(st, st.watermark) {
            return f64::INFINITY;
        }
        let d = window_dispersion(m, phi, self.window_var(st, mu, minutes));
        let target = glr_needed(m, d, h)
            .max(break_even(&self.shift_params()) * m)
            .max(MIN_EXACT_COUNT);
        target - o_prev
    }

    /// The threshold factor of series `s` for a window `minutes` long
    /// expecting `window_expected`, ending in a bucket expecting `mu`: the
    /// level's uncertainty ([`super::level`]) on calls, 1 for the series
    /// judged given the calls (their level is the calls').
    pub(crate) fn level_factor(
        &self,
        st: &IntegrationState,
        s: usize,
        mu: f64,
        window_expected: f64,
        minutes: f64,
        phi: f64,
    ) -> f64 {
        if s != CALLS {
            return 1.0;
        }
        threshold_factor(self.call_level_var(st, mu, minutes), window_expected, phi)
    }

    /// The count of series `s` in the bucket at `idx` at which the
    /// statistic reaches the threshold (u64::MAX: not watched).
    pub(crate) fn sustain_threshold(&self, st: &IntegrationState, idx: usize, s: usize) -> u64 {
        if !self.shift_enabled(s) {
            return u64::MAX;
        }
        let Some(b) = st.buckets.get(idx) else {
            return u64::MAX;
        };
        let Some((mu, phi)) = self.shift_expected(st, s, b.start_ms, b.counts[CALLS]) else {
            return u64::MAX;
        };
        let mut p = self.shift_params();
        let c = self.pending_cusum(st, s);
        let (others, others_observed, open_expected) =
            self.open_sums(st, s, Some(idx), f64::from(c.stat));
        let stat = f64::from(c.stat) + others;
        let window_expected = f64::from(c.expected) + open_expected;
        let from = if c.stat > 0.0 {
            c.run_start
        } else {
            b.start_ms
        };
        let minutes = ((b.start_ms - from) as f64 / MINUTE_MS as f64 + 1.0).max(1.0);
        p.h *= self.level_factor(st, s, mu, window_expected, minutes, phi);
        let mut need = p.needed(stat, mu, phi);
        if s == CALLS && (c.stat > 0.0 || others > 0.0) {
            // The exact test judges windows that reach back before this bucket.
            let o_prev = f64::from(c.observed) + others_observed;
            need = need.min(self.exact_needed(st, mu, phi, o_prev, window_expected, minutes));
        }
        let need = need.ceil().max(1.0);
        if need.is_finite() && need < u64::MAX as f64 {
            need as u64
        } else {
            u64::MAX
        }
    }

    /// Steps the closed bucket `b` into every series' statistic (called by
    /// the bucket code when a bucket closes, before its hour is folded).
    pub(crate) fn shift_close(&mut self, st: &mut IntegrationState, b: &Bucket, mature: bool) {
        let bucket_ms = self.cfg.bucket_ms();
        let end = b.start_ms + bucket_ms;
        let quiet_ms = b.start_ms - st.shifts.stepped_to;
        if st.shifts.stepped_to > 0 && quiet_ms > STALE_AFTER_MS {
            st.shifts.relearn_until = b.start_ms + self.cfg.learning_ms();
        }
        // After the learning period: every slot has been seen once; how far
        // a slot learned from one or two weeks can be trusted is the level
        // model's business (`detect/level.rs`: its 1/n term).
        let seasoned = b.start_ms - st.learning_start() >= self.cfg.learning_ms();
        let mature = mature && seasoned && b.start_ms >= st.shifts.relearn_until;
        let restart = !mature || st.shifts.stepped_to == 0 || quiet_ms > MAX_QUIET_MS;
        let p = self.shift_params();
        let gap_counted = st.shifts.stepped_to > 0 && quiet_ms > 0 && quiet_ms <= MAX_QUIET_MS;
        if let Some((mu, phi)) = self.shift_expected(st, CALLS, b.start_ms, 0) {
            let quiet_expected = if gap_counted {
                self.quiet_gap(st, CALLS, None, st.shifts.stepped_to, b.start_ms)
                    .0
            } else {
                0.0
            };
            let suspect = self.calls_suspect(st, p.h);
            st.shifts.short.add(
                b.start_ms,
                st.shifts.stepped_to,
                Self::bucket_count(b, CALLS) as f64,
                mu,
                quiet_expected,
                phi,
                suspect,
            );
        }
        for s in 0..SHIFT_SERIES {
            let expected = if restart {
                None
            } else {
                self.shift_expected(st, s, b.start_ms, b.counts[CALLS])
            };
            let Some((mu, phi)) = expected else {
                st.shifts.cusum[s].reset(end);
                continue;
            };
            let mut c = st.shifts.cusum[s];
            if quiet_ms > 0 {
                // Buckets without a single call: the unscaled expectation,
                // hour slot by hour slot.
                self.quiet_gap(st, s, Some(&mut c), st.shifts.stepped_to, b.start_ms);
            }
            c.step(
                &p,
                Self::bucket_count(b, s) as f64,
                mu,
                phi,
                b.start_ms,
                end,
            );
            let spiked = match s {
                BYTES => b.fired[RECORDS],
                s => b.fired[s],
            };
            if b.sustained_fired[s] || spiked {
                // An alarm was raised on this bucket: the statistic starts
                // over (the usual CUSUM restart), so a shift that goes on
                // fires again once it has built up anew, and one that ended
                // cannot leave a low-volume series' statistic near the
                // threshold for hours (it drains by only 3μ per step).
                c.reset(end);
            }
            st.shifts.cusum[s] = c;
        }
        st.shifts.stepped_to = end;
    }

    /// The running count of series `s` in the bucket at `idx` passed its
    /// sustained threshold: compute the statistic and fire, or raise the bar.
    pub(crate) fn examine_sustained(
        &mut self,
        st: &mut IntegrationState,
        idx: usize,
        s: usize,
        ev: &Event<'_>,
    ) {
        let p = self.shift_params();
        let Some(b) = st.buckets.get(idx) else {
            return;
        };
        let (start, calls) = (b.start_ms, b.counts[CALLS]);
        let Some((mu, phi)) = self.shift_expected(st, s, start, calls) else {
            st.buckets[idx].sustain_at[s] = u64::MAX;
            return;
        };
        let x = Self::bucket_count(b, s) as f64;
        let c = self.pending_cusum(st, s);
        let (others, others_observed, open_expected) =
            self.open_sums(st, s, Some(idx), f64::from(c.stat));
        let window_expected = f64::from(c.expected) + open_expected;
        let stat = (f64::from(c.stat) + others + p.increment(x, mu, phi)).max(0.0);
        // A shift seen in this bucket alone is the one-bucket detector's
        // (with its own excess and ratio floors): sustained means the window
        // reaches back before this bucket.
        let earlier = c.stat > 0.0 || others > 0.0;
        // Analyst feedback that raised the kind's threshold raises this one.
        let kind = match s {
            CALLS => AlertKind::CallSpike,
            RECORDS | BYTES => AlertKind::VolumeSpike,
            _ => AlertKind::ErrorBurst,
        };
        let fb = self.feedback_raise(ev, kind);
        // The window the statistic selected: the closed run plus every open
        // bucket.
        let bucket_ms = self.cfg.bucket_ms();
        let mut first_open = i64::MAX;
        let mut last_end = start + bucket_ms;
        for b in &st.buckets {
            first_open = first_open.min(b.start_ms);
            last_end = last_end.max(b.start_ms + bucket_ms);
        }
        let from = if c.stat > 0.0 {
            c.run_start
        } else {
            first_open
        };
        let o_prev = f64::from(c.observed) + others_observed;
        // The exact test on calls (`detect/exact.rs`).
        let window_minutes = ((last_end - from) as f64 / MINUTE_MS as f64).max(1.0);
        let level = self.level_factor(st, s, mu, window_expected, window_minutes, phi);
        let mut p = p;
        p.h *= level * fb;
        let exact = if s == CALLS && earlier && self.exact_ready(st, start) {
            let v = self.window_var(st, mu, window_minutes);
            let d = window_dispersion(window_expected, phi, v);
            let buckets = ((last_end - from) as f64 / bucket_ms.max(1) as f64).max(1.0);
            window_nats(o_prev + x, window_expected, d, buckets, &p, window_expected)
        } else {
            None
        };
        let exact_fires = exact.is_some_and(|n| n >= self.exact_h() * fb);
        if !exact_fires && (stat < p.h || !earlier) {
            let mut need = p.needed(f64::from(c.stat) + others, mu, phi);
            if s == CALLS && earlier {
                let later = self.exact_needed(st, mu, phi, o_prev, window_expected, window_minutes);
                // Judged and not enough yet: look again a little later (at
                // most ~64 more looks per bucket).
                let later = if exact.is_some() {
                    later.max(x + 1.0 + x / 64.0)
                } else {
                    later
                };
                need = need.min(later);
            }
            let need = need.ceil();
            let b = &mut st.buckets[idx];
            b.sustain_at[s] = if need.is_finite() && need > x {
                need as u64
            } else {
                Self::bucket_count(b, s).saturating_add(1)
            };
            return;
        }
        st.buckets[idx].sustain_at[s] = u64::MAX;
        st.buckets[idx].sustained_fired[s] = true;
        let observed = o_prev + x;
        let expected = window_expected;
        let minutes = ((last_end - from) as f64 / MINUTE_MS as f64)
            .round()
            .max(1.0);
        // The window's sd with the level's uncertainty: sqrt(φ M + v M²).
        let sd = (phi * expected * level).sqrt();
        let label = span_label(from, last_end);
        let id = ev.integration_id;
        let win = format!("the last {} min", fmt1(minutes));
        let (what, summary) = match s {
            CALLS => (
                "calls",
                format!(
                    "{id} made {} calls in {win}; its baseline for {label} is {} ± {}",
                    fmt1(observed),
                    fmt1(expected),
                    fmt1(sd)
                ),
            ),
            RECORDS => (
                "records",
                format!(
                    "{id} moved {} records in {win}, {:.1}x its baseline for {label} given its calls ({} ± {})",
                    fmt1(observed),
                    observed / expected.max(1e-9),
                    fmt1(expected),
                    fmt1(sd)
                ),
            ),
            BYTES => (
                "bytes",
                format!(
                    "{id} moved {} in {win}, {:.1}x its baseline for {label} given its calls",
                    super::human_bytes(observed as u64),
                    observed / expected.max(1e-9)
                ),
            ),
            _ => (
                "auth_errors",
                format!(
                    "{id} got {} auth failures (401/403) in {win}; its baseline for {label}, given its calls, is {} ± {}",
                    fmt1(observed),
                    fmt1(expected),
                    fmt1(sd)
                ),
            ),
        };
        let (test, tail) = match exact {
            Some(n) if exact_fires && (stat < p.h || n > stat / level) => {
                ("exact_tail", (-n).exp())
            }
            _ => ("cusum", (-stat / level).exp()),
        };
        let mut evidence = Evidence::new();
        evidence.insert("detector".into(), "sustained".into());
        evidence.insert("series".into(), what.into());
        evidence.insert("test".into(), test.into());
        evidence.insert("window_minutes".into(), minutes.into());
        evidence.insert("window_label".into(), label.into());
        evidence.insert("window_observed".into(), observed.into());
        evidence.insert("window_expected".into(), round_sig(expected).into());
        evidence.insert("window_stddev".into(), round_sig(sd).into());
        evidence.insert("dispersion".into(), phi.into());
        evidence.insert("level_factor".into(), round_sig(level).into());
        evidence.insert("cusum_nats".into(), round_sig(stat).into());
        evidence.insert(
            "design_ratio".into(),
            self.cfg.detectors.sustained.ratio.into(),
        );
        evidence.insert("tail_probability".into(), EvidenceValue::Num(tail));
        let f = Finding {
            kind,
            subject: "",
            key_id: ev.key_id,
            resource: None,
            window: (from, last_end),
            observed: Some(round_sig(observed)),
            expected: Some(round_sig(expected)),
            score: score_from_p(tail),
            sensitive: false,
            summary,
            evidence,
        };
        self.fire(st, ev, f);
    }
}
