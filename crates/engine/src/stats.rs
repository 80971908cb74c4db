//! Seasonal count baselines and their tail probabilities.
//!
//! Each integration keeps one [`Seasonal`] per count series (calls, records,
//! auth errors). A series is modelled per bucket as negative-binomial with a
//! mean that depends on the hour of the week (168 slots, so a nightly batch job
//! or a Monday-morning surge is normal while the same volume at an unusual hour
//! is not) and a dispersion φ (variance = φ × mean) shared by all slots. The
//! month-end factor learns how much busier the last days of a month are
//! (billing runs) without polluting the weekly slots.
//!
//! Memory: 168 × f32 per series, about 700 bytes.

use serde::{Deserialize, Serialize};
use statrs::distribution::{DiscreteCDF, NegativeBinomial, Poisson};

/// A slot that has never been observed.
const UNSEEN: f32 = -1.0;
/// Mean used for a slot whose history is all zeros, so that "something at an
/// hour that never had anything" is improbable rather than impossible.
pub const MEAN_FLOOR: f64 = 0.02;
/// Dispersion is clipped here so one wild hour cannot blow the model open.
const MAX_DISPERSION: f64 = 1e6;
/// Minimum weight of one hour in the dispersion average (≈ the last 2 weeks).
const DISPERSION_ALPHA: f64 = 1.0 / 336.0;
/// Slot means average over weeks with weight at least this (≈ 4-week memory),
/// so slow growth is followed.
const SLOT_ALPHA_MIN: f64 = 0.25;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Seasonal {
    /// Mean count per bucket for each hour of the week (UTC), or `UNSEEN`.
    slots: Vec<f32>,
    /// Weeks of history folded into the slots so far (saturating).
    weeks: u16,
    /// Variance-to-mean ratio, ≥ 1.
    dispersion: f32,
    /// Hours with traffic folded into `dispersion` (saturating).
    dispersion_hours: u16,
    /// Month-end traffic ÷ ordinary traffic for the same hour; 0 = not learned.
    month_end_factor: f32,
    /// Within-hour dispersion per hour-of-week slot, log2-quantized
    /// (16 steps per doubling; 0 = 1 or unseen): a batch job that fills half
    /// its hour is bursty *within* that hour, which the slot mean alone hides.
    #[serde(default)]
    slot_dispersion: Vec<u8>,
}

impl Default for Seasonal {
    fn default() -> Self {
        Seasonal {
            slots: vec![UNSEEN; 168],
            weeks: 0,
            dispersion: 1.0,
            dispersion_hours: 0,
            month_end_factor: 0.0,
            slot_dispersion: Vec::new(),
        }
    }
}

impl Seasonal {
    /// Expected count per bucket at hour-of-week `slot`; `None` until seen.
    pub fn expected(&self, slot: usize, month_end: bool) -> Option<f64> {
        let m = *self.slots.get(slot)?;
        if m < 0.0 {
            return None;
        }
        let mut m = f64::from(m);
        if month_end && self.month_end_factor > 1.0 {
            m *= f64::from(self.month_end_factor);
        }
        Some(m.max(MEAN_FLOOR))
    }

    /// Weeks of history folded into the slots (saturating).
    pub fn weeks(&self) -> u16 {
        self.weeks
    }

    pub fn dispersion(&self) -> f64 {
        f64::from(self.dispersion).max(1.0)
    }

    /// The within-hour dispersion learned for `slot` (≥ 1; 1 when unseen).
    pub fn slot_dispersion(&self, slot: usize) -> f64 {
        self.slot_dispersion
            .get(slot)
            .map_or(1.0, |&q| (f64::from(q) / 16.0).exp2())
    }

    /// Folds one closed hour's within-hour dispersion into its slot (the
    /// larger of the new hour and the decayed old value, so one quiet week
    /// does not forget a weekly batch).
    pub fn observe_slot_dispersion(&mut self, slot: usize, sum: f64, sum_sq: f64, n: f64) {
        if n < 2.0 || sum <= 0.0 || slot >= 168 {
            return;
        }
        let mean = sum / n;
        let var = (sum_sq / n - mean * mean).max(0.0) * n / (n - 1.0);
        let phi = (var / mean).clamp(1.0, 65_536.0);
        let q = (phi.log2() * 16.0).round().clamp(0.0, 255.0) as u8;
        if self.slot_dispersion.len() != 168 {
            self.slot_dispersion = vec![0; 168];
        }
        let old = self.slot_dispersion[slot];
        // Half the old value (in log terms) survives a week.
        let decayed = old.saturating_sub(8);
        self.slot_dispersion[slot] = q
            .max(decayed)
            .max(((u16::from(old) + u16::from(q)) / 2) as u8);
    }

    /// Folds one closed hour into the baseline: `per_bucket` is the hour's mean
    /// count per bucket, already clipped by the caller so anomalies don't poison it.
    pub fn observe_hour(
        &mut self,
        slot: usize,
        per_bucket: f64,
        month_end: bool,
        weeks_of_history: u16,
    ) {
        let Some(cur) = self.slots.get_mut(slot) else {
            return;
        };
        self.weeks = self.weeks.max(weeks_of_history);
        if *cur < 0.0 {
            *cur = per_bucket as f32;
            return;
        }
        let base = f64::from(*cur);
        if month_end {
            // Learn the month-end lift, leave the weekly slot alone.
            let ratio = ((per_bucket + 0.5) / (base + 0.5)).clamp(0.2, 50.0) as f32;
            self.month_end_factor = if self.month_end_factor <= 0.0 {
                ratio
            } else {
                0.8 * self.month_end_factor + 0.2 * ratio
            };
            return;
        }
        let alpha = (1.0 / (f64::from(self.weeks) + 1.0)).max(SLOT_ALPHA_MIN);
        *cur = (base + alpha * (per_bucket - base)) as f32;
    }

    /// Folds one closed hour's within-hour variance into the dispersion
    /// estimate: `sum` and `sum_sq` of the (clipped) per-bucket counts over
    /// `n` buckets. Available from the first hour, so the model is not
    /// Poisson-narrow while the weekly slots are still being learned.
    pub fn observe_dispersion(&mut self, sum: f64, sum_sq: f64, n: f64) {
        if n < 2.0 || sum <= 0.0 {
            return;
        }
        let mean = sum / n;
        let var = (sum_sq / n - mean * mean).max(0.0) * n / (n - 1.0);
        let phi = (var / mean).clamp(1.0, MAX_DISPERSION);
        self.dispersion = if self.dispersion_hours == 0 {
            phi as f32
        } else {
            let a = (1.0 / (f64::from(self.dispersion_hours) + 1.0)).max(DISPERSION_ALPHA);
            (f64::from(self.dispersion) * (1.0 - a) + phi * a) as f32
        };
        self.dispersion_hours = self.dispersion_hours.saturating_add(1);
    }

    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<f32>() + self.slot_dispersion.capacity()
    }
}

/// P(X ≥ k) for a count with mean `mean` and variance `dispersion × mean`:
/// negative-binomial when over-dispersed, Poisson otherwise.
pub fn upper_tail(k: u64, mean: f64, dispersion: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    let mean = mean.max(MEAN_FLOOR);
    let p = if dispersion > 1.0 + 1e-6 {
        let r = mean / (dispersion - 1.0);
        match NegativeBinomial::new(r, 1.0 / dispersion) {
            Ok(d) => d.sf(k - 1),
            Err(_) => f64::NAN,
        }
    } else {
        match Poisson::new(mean) {
            Ok(d) => d.sf(k - 1),
            Err(_) => f64::NAN,
        }
    };
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// P(X ≤ k) for the same count model as [`upper_tail`]: how improbable a
/// *drop* to `k` is. Used by `series` (a count series falling silent is as
/// anomalous as one surging); the detectors use only the upper tail.
pub fn lower_tail(k: u64, mean: f64, dispersion: f64) -> f64 {
    let mean = mean.max(MEAN_FLOOR);
    let p = if dispersion > 1.0 + 1e-6 {
        let r = mean / (dispersion - 1.0);
        match NegativeBinomial::new(r, 1.0 / dispersion) {
            Ok(d) => d.cdf(k),
            Err(_) => f64::NAN,
        }
    } else {
        match Poisson::new(mean) {
            Ok(d) => d.cdf(k),
            Err(_) => f64::NAN,
        }
    };
    // Unlike the upper tail (where a failure must not hide a spike), an
    // unusable lower tail means "no evidence of a drop".
    if p.is_nan() {
        1.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

/// Maps a tail probability to a score in [0, 1] that is comparable across
/// integrations: s / (s + 3) with s = −log10(p). p = 1e-3 → 0.5,
/// 1e-6 → 0.67, 1e-20 → 0.87, 1e-100 → 0.97.
pub fn score_from_p(p: f64) -> f64 {
    let s = -p.max(1e-300).log10();
    if s <= 0.0 {
        return 0.0;
    }
    crate::alert::round_sig(s / (s + 3.0)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_is_monotone_and_overdispersion_widens_it() {
        let mut prev = 1.0;
        for k in 0..40 {
            let p = upper_tail(k, 5.0, 1.0);
            assert!(p <= prev + 1e-12);
            prev = p;
        }
        assert!(upper_tail(20, 5.0, 4.0) > upper_tail(20, 5.0, 1.0) * 100.0);
        // Poisson(5): P(X >= 15) ≈ 2.3e-4.
        let p = upper_tail(15, 5.0, 1.0);
        assert!((p - 2.3e-4).abs() < 0.3e-4, "{p}");
    }

    #[test]
    fn low_volume_counts_are_judged_on_probability() {
        // An integration that makes ~3 calls an hour: 4 calls in one minute is
        // improbable, 1 is not.
        let mean = 3.0 / 60.0;
        assert!(upper_tail(1, mean, 1.0) > 0.01);
        assert!(upper_tail(4, mean, 1.0) < 1e-6);
    }

    #[test]
    fn slots_learn_then_follow_growth_and_month_end() {
        let mut s = Seasonal::default();
        assert_eq!(s.expected(3, false), None);
        s.observe_hour(3, 10.0, false, 1);
        assert_eq!(s.expected(3, false), Some(10.0));
        for w in 2..20 {
            s.observe_hour(3, 20.0, false, w);
        }
        assert!((s.expected(3, false).unwrap() - 20.0).abs() < 0.1);
        s.observe_hour(3, 60.0, true, 20);
        assert!((s.expected(3, true).unwrap() - 60.0).abs() < 2.0);
        assert!(
            (s.expected(3, false).unwrap() - 20.0).abs() < 0.1,
            "month end must not move the weekly slot"
        );
    }

    #[test]
    fn lower_tail_complements_the_upper_tail() {
        // P(X <= k) + P(X >= k + 1) = 1 for both models.
        for &(mean, phi) in &[(5.0, 1.0), (5.0, 3.0), (200.0, 40.0)] {
            for k in [0u64, 2, 5, 9, 150] {
                let s = lower_tail(k, mean, phi) + upper_tail(k + 1, mean, phi);
                assert!((s - 1.0).abs() < 1e-9, "{mean} {phi} {k}: {s}");
            }
        }
        // A count series falling silent: 0 when 50 are expected.
        assert!(lower_tail(0, 50.0, 1.0) < 1e-20);
    }

    #[test]
    fn score_is_monotone_in_improbability() {
        assert!(score_from_p(1e-3) < score_from_p(1e-6));
        assert!(score_from_p(1e-6) < score_from_p(1e-30));
        assert!(score_from_p(0.0) <= 1.0 && score_from_p(1.0) == 0.0);
    }
}
