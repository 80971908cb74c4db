//! Event-time buckets: open, count, close; closed buckets fold into hour
//! totals, finished hours into the seasonal baselines ([`crate::stats`]).
//!
//! Everything here runs on the integration's own watermark. A bucket closes
//! once the watermark minus the lateness allowance has passed its end; an hour
//! closes once no open bucket is left in it.

use serde::{Deserialize, Serialize};

use crate::alert::AlertKind;
use crate::detect::level::observe_hour;
use crate::detect::sustained::SHIFT_SERIES;
use crate::detect::Cx;
use crate::event::Event;
use crate::state::IntegrationState;
use crate::time::{hour_of_week, is_month_end, HOUR_MS, WEEK_MS};

/// Count series kept per integration.
pub(crate) const CALLS: usize = 0;
pub(crate) const RECORDS: usize = 1;
pub(crate) const ERRORS: usize = 2;
pub(crate) const SERIES: usize = 3;
/// At most this many hours of silence are folded into the baseline as zeros
/// when an integration resumes (four weeks: every slot gets several updates).
const MAX_ZERO_HOURS: i64 = 4 * 168;

/// One open event-time bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Bucket {
    pub(crate) start_ms: i64,
    /// calls, records, auth errors.
    pub(crate) counts: [u64; SERIES],
    pub(crate) bytes: u64,
    /// Running count at which each series must be examined next (u64::MAX: done).
    pub(crate) check_at: [u64; SERIES],
    /// Whether each series fired in this bucket (its contribution is clipped).
    pub(crate) fired: [bool; SERIES],
    /// The clip level for each series (the cheap threshold).
    pub(crate) clip: [u64; SERIES],
    /// Bytes that make `volume_spike` fire on bytes alone.
    pub(crate) bytes_check_at: u64,
    /// Running count (bytes for the last) at which each sustained series must
    /// be examined next (u64::MAX: not watched).
    #[serde(default)]
    pub(crate) sustain_at: [u64; SHIFT_SERIES],
    /// Whether each sustained series fired in this bucket (its statistic
    /// restarts after it).
    #[serde(default)]
    pub(crate) sustained_fired: [bool; SHIFT_SERIES],
    /// Records with each call's count capped at six times the integration's
    /// mean records per call: what the sustained records statistic counts,
    /// so one heavy call is not a shift.
    #[serde(default)]
    pub(crate) records_capped: u64,
    /// Calls answered 429: the rate limiter already acted on them; the
    /// sustained statistic counts the calls that were served.
    #[serde(default)]
    pub(crate) rate_limited: u64,
    /// Bytes with each call's capped at six times the mean per call, as
    /// `records_capped`.
    #[serde(default)]
    pub(crate) bytes_capped: u64,
}

impl Cx<'_, '_> {
    /// Closes every bucket the watermark has passed (minus lateness), folding
    /// it into the hour totals, and closes finished hours into the baselines.
    pub(crate) fn advance_buckets(&mut self, st: &mut IntegrationState) {
        let bucket_ms = self.cfg.bucket_ms();
        let closable = st.watermark - self.cfg.lateness_ms();
        while let Some(b) = st.buckets.first() {
            if b.start_ms + bucket_ms > closable {
                break;
            }
            let b = st.buckets.remove(0);
            self.close_bucket(st, &b);
        }
        // Hours with no open bucket left and before the watermark are complete.
        let open_from = st
            .buckets
            .first()
            .map_or(closable, |b| b.start_ms.min(closable));
        self.close_hours_until(st, open_from.div_euclid(bucket_ms) * bucket_ms);
    }

    /// A held lead was contradicted (`clock::advance_watermark`): the
    /// buckets starting more than `allowance` past the watermark hold only
    /// abandoned leads (every other event there would have been a lead
    /// confirming them), so they are dropped and their calls count as late
    /// — checked by the detectors when they came, never baselined. Bounds
    /// the open buckets: one forged event after each honest one cannot keep
    /// a bucket open each.
    pub(crate) fn drop_abandoned_lead(&mut self, st: &mut IntegrationState, allowance: i64) {
        let beyond = st.watermark.saturating_add(allowance);
        let keep = st.buckets.partition_point(|b| b.start_ms <= beyond);
        let dropped: u64 = st.buckets.drain(keep..).map(|b| b.counts[CALLS]).sum();
        st.late_events += dropped;
        self.stats.late_events += dropped;
    }

    fn close_bucket(&mut self, st: &mut IntegrationState, b: &Bucket) {
        // The statistics step on the baseline the bucket was judged against,
        // before its hour is folded in.
        let mature = st.mature(b.start_ms, self.cfg.learning_ms());
        self.shift_close(st, b, mature);
        self.close_hours_until(st, b.start_ms);
        for s in 0..SERIES {
            let x = if b.fired[s] {
                b.clip[s].min(b.counts[s])
            } else {
                b.counts[s]
            } as f64;
            st.hour_totals[s] += x;
            st.hour_sq[s] += x * x;
        }
        if b.counts[RECORDS] > 0 && !b.fired[RECORDS] {
            let bpr = b.bytes as f64 / b.counts[RECORDS] as f64;
            st.bytes_per_record = if st.bytes_per_record == 0.0 {
                bpr
            } else {
                0.99 * st.bytes_per_record + 0.01 * bpr
            };
        }
    }

    /// Folds every complete hour before `until` into the seasonal baselines;
    /// hours with no traffic count as zeros (bounded to four weeks).
    fn close_hours_until(&mut self, st: &mut IntegrationState, until: i64) {
        let bucket_ms = self.cfg.bucket_ms();
        let per_hour = (HOUR_MS / bucket_ms) as f64;
        if until - st.hour_start > MAX_ZERO_HOURS * HOUR_MS {
            // Skip most of a long silence: keep the hour accumulator's data for
            // its own hour, then jump.
            self.close_one_hour(st, per_hour);
            st.hour_start = (until - MAX_ZERO_HOURS * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS;
        }
        while st.hour_start + HOUR_MS <= until {
            self.close_one_hour(st, per_hour);
        }
    }

    fn close_one_hour(&mut self, st: &mut IntegrationState, per_hour: f64) {
        let h = st.hour_start;
        let slot = hour_of_week(h);
        let month_end = is_month_end(h, self.cfg.month_end_days);
        // Learning history: from the learning start (the baselines restart
        // with it, `IntegrationState::restart_learning`).
        let from = st.learning_start();
        let weeks = ((h - from).max(0) / WEEK_MS + 1).min(i64::from(u16::MAX)) as u16;
        // The first hour is only partly observed: average over what was seen.
        let covered = if from > h {
            (((h + HOUR_MS - from) / self.cfg.bucket_ms()) as f64).max(1.0)
        } else {
            per_hour
        };
        // How far this hour's call level strayed from its slot's prediction
        // (before the hour is folded in): the sustained statistic's
        // uncertainty about the level (`detect/level.rs`).
        let hour_mean = st.baselines[CALLS]
            .expected(slot, month_end)
            .filter(|&m| m > crate::stats::MEAN_FLOOR);
        if let Some(m) = hour_mean {
            let phi = st.baselines[CALLS].dispersion();
            // An hour the sustained statistic judges anomalous as it closes
            // must not teach the level model that such hours are normal.
            let suspect = self.calls_suspect(st, self.shift_params().h);
            let shifts = &mut st.shifts;
            observe_hour(
                &mut shifts.level,
                &mut shifts.level_corr,
                st.hour_totals[CALLS],
                m * covered,
                phi,
                suspect,
            );
        } else {
            st.shifts.level_corr.break_chain();
        }
        for s in 0..SERIES {
            let mean_per_bucket = st.hour_totals[s] / covered;
            st.baselines[s].observe_hour(slot, mean_per_bucket, month_end, weeks);
            st.baselines[s].observe_dispersion(st.hour_totals[s], st.hour_sq[s], covered);
            if s == CALLS {
                // Within-hour burstiness is a property of the hour's calls
                // (a batch filling half its hour); the other series use it too.
                st.baselines[s].observe_slot_dispersion(
                    slot,
                    st.hour_totals[s],
                    st.hour_sq[s],
                    covered,
                );
            }
        }
        st.hour_totals = [0.0; SERIES];
        st.hour_sq = [0.0; SERIES];
        st.hour_start = h + HOUR_MS;
    }

    /// Adds the event to its bucket and runs the spike detectors on the
    /// running counts, so a spike fires mid-bucket, as soon as it is improbable.
    pub(crate) fn count(&mut self, st: &mut IntegrationState, ev: &Event<'_>) {
        let bucket_ms = self.cfg.bucket_ms();
        let start = ev.ts_ms.div_euclid(bucket_ms) * bucket_ms;
        let idx = match st.buckets.binary_search_by_key(&start, |b| b.start_ms) {
            Ok(i) => i,
            Err(i) => {
                let factors = self.threshold_factors(ev);
                let b = self.open_bucket(st, start, factors);
                crate::state::insert_exact(&mut st.buckets, i, b);
                for s in 0..SHIFT_SERIES {
                    st.buckets[i].sustain_at[s] = self.sustain_threshold(st, i, s);
                }
                i
            }
        };
        let mature = st.mature(ev.ts_ms, self.cfg.learning_ms());
        let cap = (6.0 * st.records as f64 / st.events.max(1) as f64)
            .ceil()
            .max(10.0) as u64;
        let bytes_cap = (6.0 * st.bytes as f64 / st.events.max(1) as f64)
            .ceil()
            .max(1000.0) as u64;
        let b = &mut st.buckets[idx];
        b.counts[CALLS] += 1;
        b.counts[RECORDS] = b.counts[RECORDS].saturating_add(ev.records);
        b.records_capped = b.records_capped.saturating_add(ev.records.min(cap));
        b.bytes = b.bytes.saturating_add(ev.bytes);
        b.bytes_capped = b.bytes_capped.saturating_add(ev.bytes.min(bytes_cap));
        if ev.is_auth_error() {
            b.counts[ERRORS] += 1;
        }
        if ev.is_rate_limited() {
            b.rate_limited += 1;
        }
        if !mature {
            return;
        }
        // `examine(s)` only changes series `s`'s check state, so each series
        // can read the live bucket (no per-event copy of it).
        for s in 0..SERIES {
            let b = &st.buckets[idx];
            let bytes_hit = s == RECORDS && b.bytes >= b.bytes_check_at;
            if b.counts[s] >= b.check_at[s] || bytes_hit {
                self.examine(st, idx, s, ev);
            }
        }
        for s in 0..SHIFT_SERIES {
            let b = &st.buckets[idx];
            if Self::bucket_count(b, s) >= b.sustain_at[s] {
                self.examine_sustained(st, idx, s, ev);
            }
        }
    }

    /// Feedback multipliers of each series' thresholds (1 without feedback).
    fn threshold_factors(&self, ev: &Event<'_>) -> [f64; SERIES] {
        if self.feedback.is_empty() {
            return [1.0; SERIES];
        }
        let f = |k| {
            self.feedback
                .threshold_factor(ev.integration_id, k, ev.ts_ms)
        };
        [
            f(AlertKind::CallSpike),
            f(AlertKind::VolumeSpike),
            f(AlertKind::ErrorBurst),
        ]
    }

    /// Opens a bucket; its thresholds are the configured ones times
    /// `factors` (raised by feedback until the bucket closes).
    fn open_bucket(&self, st: &IntegrationState, start: i64, factors: [f64; SERIES]) -> Bucket {
        let slot = hour_of_week(start);
        let month_end = is_month_end(start, self.cfg.month_end_days);
        let d = &self.cfg.detectors;
        let mut b = Bucket {
            start_ms: start,
            ..Bucket::default()
        };
        for (s, factor) in factors.iter().enumerate() {
            let (enabled, ratio, excess) = match s {
                CALLS => (
                    d.call_spike.enabled,
                    d.call_spike.min_ratio,
                    d.call_spike.min_excess,
                ),
                RECORDS => (
                    d.volume_spike.spike.enabled,
                    d.volume_spike.spike.min_ratio,
                    d.volume_spike.spike.min_excess,
                ),
                _ => (
                    d.error_burst.enabled,
                    d.error_burst.min_ratio,
                    d.error_burst.min_excess,
                ),
            };
            let (ratio, excess) = (ratio * factor, excess * factor);
            let cheap = match st.baselines[s].expected(slot, month_end) {
                Some(mean) if enabled => (mean * ratio).max(mean + excess).ceil().max(1.0) as u64,
                _ => u64::MAX,
            };
            b.check_at[s] = cheap;
            b.clip[s] = if cheap == u64::MAX { u64::MAX } else { cheap };
        }
        b.bytes_check_at = match st.baselines[RECORDS].expected(slot, month_end) {
            Some(mean) if d.volume_spike.spike.enabled && st.bytes_per_record > 0.0 => {
                let exp = mean * st.bytes_per_record;
                (exp * d.volume_spike.spike.min_ratio * factors[RECORDS])
                    .max(exp + d.volume_spike.min_excess_bytes * factors[RECORDS])
                    .ceil() as u64
            }
            _ => u64::MAX,
        };
        b
    }
}
