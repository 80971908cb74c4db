//! `call_spike`, `volume_spike`, `error_burst`: the running count of a bucket
//! judged against the seasonal baseline of its hour-of-week slot.
//!
//! [`Cx::count`](crate::buckets) calls [`Cx::examine`] only when a series
//! passes its cheap bound (ratio and excess over the expected count), so the
//! exact negative-binomial tail is computed rarely.

use super::{fmt1, human_bytes, Cx};
use crate::alert::{round_sig, AlertKind, Evidence, EvidenceValue};
use crate::buckets::{CALLS, ERRORS, RECORDS};
use crate::episodes::Finding;
use crate::event::Event;
use crate::state::IntegrationState;
use crate::stats::{score_from_p, upper_tail};
use crate::time::{hour_of_week, is_month_end, slot_label};

/// A slot expecting fewer calls an hour than this judges records per call
/// on the integration's pooled history, not on the slot's own means.
const THIN_SLOT_CALLS_PER_HOUR: f64 = 6.0;

impl Cx<'_, '_> {
    /// The running count of series `s` passed the cheap bound: compute its
    /// exact tail probability and fire, or raise the bar for the next check.
    pub(crate) fn examine(
        &mut self,
        st: &mut IntegrationState,
        idx: usize,
        s: usize,
        ev: &Event<'_>,
    ) {
        let b = &st.buckets[idx];
        let slot = hour_of_week(b.start_ms);
        let month_end = is_month_end(b.start_ms, self.cfg.month_end_days);
        let Some(slot_mean) = st.baselines[s].expected(slot, month_end) else {
            return;
        };
        // A slot that has seen almost no calls (a weekend hour of a
        // weekday integration) says nothing about records per call: there
        // the records expected are the calls made at the integration's
        // usual records per call, pooled over its history.
        let per_hour = (crate::time::HOUR_MS / self.cfg.bucket_ms().max(1)) as f64;
        let thin = s == RECORDS
            && st.baselines[CALLS]
                .expected(slot, month_end)
                .is_some_and(|c| c * per_hour < THIN_SLOT_CALLS_PER_HOUR);
        let pooled_rpc = st.records_per_call();
        let mean = if thin {
            slot_mean.max(b.counts[CALLS] as f64 * pooled_rpc)
        } else {
            slot_mean
        };
        let disp = super::sustained::effective_dispersion(st, s, slot);
        let d = &self.cfg.detectors;
        let p_thresh = match s {
            CALLS => d.call_spike.p_value,
            RECORDS => d.volume_spike.spike.p_value,
            _ => d.error_burst.p_value,
        };
        // Bytes are judged on the records baseline, converted at the learned rate.
        let by_bytes = s == RECORDS && b.bytes >= b.bytes_check_at && st.bytes_per_record > 0.0;
        let observed = if by_bytes {
            (b.bytes as f64 / st.bytes_per_record)
                .max(b.counts[s] as f64)
                .round() as u64
        } else {
            b.counts[s]
        };
        let p = upper_tail(observed, mean, disp);
        // Records explained by the call count are a call spike, not a bulk
        // export: volume_spike needs records per call well above usual too.
        let follows_calls = s == RECORDS && {
            let calls_mean = st.baselines[CALLS].expected(slot, month_end).unwrap_or(1.0);
            let usual_rpc = if thin {
                pooled_rpc
            } else {
                mean / calls_mean.max(1e-9)
            };
            let rpc = observed as f64 / (b.counts[CALLS].max(1) as f64);
            rpc < 2.0 * usual_rpc
        };
        if p > p_thresh || follows_calls {
            // Not yet improbable: next look when the count has grown by a tenth.
            let bucket = &mut st.buckets[idx];
            bucket.check_at[s] = bucket.counts[s].saturating_add((bucket.counts[s] / 10).max(1));
            if by_bytes {
                bucket.bytes_check_at = bucket.bytes.saturating_add((bucket.bytes / 10).max(1));
            }
            return;
        }
        let (start, counts, bytes) = {
            let bucket = &mut st.buckets[idx];
            bucket.fired[s] = true;
            bucket.check_at[s] = u64::MAX;
            if s == RECORDS {
                bucket.bytes_check_at = u64::MAX;
            }
            (bucket.start_ms, bucket.counts, bucket.bytes)
        };
        let bucket_ms = self.cfg.bucket_ms();
        let sd = (mean * disp).sqrt();
        let label = slot_label(start);
        let mins = bucket_ms as f64 / 60_000.0;
        let win = if (mins - 1.0).abs() < f64::EPSILON {
            "1 min".to_owned()
        } else {
            format!("{mins} min")
        };
        let (kind, summary) = match s {
            CALLS => (
                AlertKind::CallSpike,
                format!(
                    "{} made {} calls in {win}; its baseline for {label} is {} ± {}",
                    ev.integration_id,
                    counts[CALLS],
                    fmt1(mean),
                    fmt1(sd)
                ),
            ),
            RECORDS => (
                AlertKind::VolumeSpike,
                format!(
                    "{} moved {} records ({}) in {win} over {} calls; its baseline for {label} is {} records ± {}",
                    ev.integration_id,
                    counts[RECORDS],
                    human_bytes(bytes),
                    counts[CALLS],
                    fmt1(mean),
                    fmt1(sd)
                ),
            ),
            _ => (
                AlertKind::ErrorBurst,
                format!(
                    "{} got {} auth failures (401/403) in {win}; its baseline for {label} is {} ± {}",
                    ev.integration_id,
                    counts[ERRORS],
                    fmt1(mean),
                    fmt1(sd)
                ),
            ),
        };
        let mut evidence = Evidence::new();
        evidence.insert("baseline_slot".into(), label.into());
        evidence.insert("baseline_mean".into(), mean.into());
        evidence.insert("baseline_stddev".into(), sd.into());
        evidence.insert("dispersion".into(), disp.into());
        evidence.insert("month_end".into(), month_end.into());
        evidence.insert("tail_probability".into(), EvidenceValue::Num(p));
        evidence.insert("calls".into(), counts[CALLS].into());
        evidence.insert("records".into(), counts[RECORDS].into());
        evidence.insert("bytes".into(), bytes.into());
        evidence.insert("auth_errors".into(), counts[ERRORS].into());
        if s == RECORDS {
            evidence.insert(
                "bytes_per_record_baseline".into(),
                st.bytes_per_record.into(),
            );
            evidence.insert(
                "judged_on".into(),
                if by_bytes { "bytes" } else { "records" }.into(),
            );
            if thin {
                // The slot had almost no calls: expected = calls x this.
                evidence.insert(
                    "pooled_records_per_call".into(),
                    round_sig(pooled_rpc).into(),
                );
            }
        }
        let f = Finding {
            kind,
            subject: "",
            key_id: ev.key_id,
            resource: None,
            window: (start, start + bucket_ms),
            observed: Some(observed as f64),
            expected: Some(round_sig(mean)),
            score: score_from_p(p),
            sensitive: false,
            summary,
            evidence,
        };
        self.fire(st, ev, f);
    }
}
