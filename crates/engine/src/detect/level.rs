//! How far an integration's call *level* strays from its seasonal baseline:
//! the uncertainty the sustained statistic on calls must allow for.
//!
//! The one-bucket model is `x ~ (mean μ, variance φ μ)`: right for one
//! minute, wrong for a window of hours. An hour's level differs from its
//! hour-of-week slot mean by a factor that is shared by every minute of the
//! hour (campaigns, catch-up, rollouts, a slot mean learned from a few weeks
//! or pulled down by a silence): the sum `X` of a window with expectation
//! `M` has variance `φ M + v M²`, where `v` is the relative variance of the
//! level. Poisson noise shrinks with the window, the level term does not —
//! so the longer and busier the window, the more the level dominates.
//!
//! # Estimating `v` from the integration's own history
//! Every closed hour with an expected total `E` (from the slot, before the
//! hour is folded in) and an observed total `T` gives the moment estimate
//! `((T − E)² − φ E) / E²` of `v`, with variance ≈ `2 (φ/E + v)²`. The
//! estimate is their mean over about the last two weeks (an exponential
//! window), each weighted by `1 / (φ/E + 0.01)²` — its precision when the
//! level is steady — so busy hours, where the level is visible through the
//! Poisson noise, count most. Hours of silence folded in as
//! zeros count too: an integration that was away has a baseline to
//! distrust. Until an hour has been seen the level is taken as unknown
//! (variance 1: as uncertain as the level itself).
//!
//! A slot learned from few calls is uncertain beyond that: a gamma-Poisson
//! posterior from `n` calls has relative variance `1/n`, added per slot
//! (`n` = the slot's hourly expectation × the weeks it averages, at most
//! seven: the slot mean's effective memory).
//!
//! # Use in the CUSUM
//! The quasi-likelihood ratio of a window is divided by its variance-to-mean
//! ratio; with the level term that ratio is `φ + v M` instead of `φ`. The
//! statistic (computed with `φ`) is therefore judged against
//! `h · (1 + v M / φ)`: for short or quiet windows that is the plain
//! threshold; for long busy ones the ratio needed to fire tends to
//! `((k − 1) + h v) / ln k` — only a shift beyond the integration's own
//! level variability fires, however long it lasts.

use serde::{Deserialize, Serialize};

/// Model error kept whatever the history says (relative sd 10%).
pub(crate) const LEVEL_VAR_FLOOR: f64 = 0.01;
/// Before any hour was informative: as uncertain as the level itself.
const LEVEL_VAR_UNKNOWN: f64 = 1.0;
/// Per-hour decay of the weighted sums (≈ the last two weeks).
const DECAY: f64 = 1.0 - 1.0 / 336.0;
/// Hours expecting fewer calls than this say nothing about the level.
const MIN_EXPECTED: f64 = 1.0;
/// One hour's estimate is clipped here (a level off by 5x).
const MAX_SAMPLE: f64 = 16.0;
/// The slot mean's effective memory in weeks (EWMA weight 0.25 per week).
const SLOT_WEEKS_MAX: f64 = 7.0;

/// The running estimate of the relative level variance `v` (8 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelVar {
    /// Decayed sum of weight × sample.
    num: f32,
    /// Decayed sum of weights.
    den: f32,
}

impl LevelVar {
    /// Folds one closed hour: `total` observed against `expected` (the
    /// slot's prediction for the whole hour), with within-hour dispersion
    /// `phi`.
    pub(crate) fn observe(&mut self, total: f64, expected: f64, phi: f64) {
        if !(expected >= MIN_EXPECTED && total.is_finite()) {
            return;
        }
        let phi = phi.max(1.0);
        let sample =
            (((total - expected).powi(2) - phi * expected) / (expected * expected)).min(MAX_SAMPLE);
        // Weighted by the sample's precision under the noise alone (not the
        // current estimate: the estimator stays linear, and a change of
        // level — a silence, a lasting rise — is learned at the same pace
        // as it is forgotten).
        let w = 1.0 / (phi / expected + LEVEL_VAR_FLOOR).powi(2);
        self.num = (DECAY * f64::from(self.num) + w * sample) as f32;
        self.den = (DECAY * f64::from(self.den) + w) as f32;
    }

    /// The relative variance of an hour's level around its slot mean.
    pub(crate) fn variance(&self) -> f64 {
        if self.den <= 0.0 {
            return LEVEL_VAR_UNKNOWN;
        }
        (f64::from(self.num) / f64::from(self.den)).max(LEVEL_VAR_FLOOR)
    }

    /// `v` for a slot expecting `hour_expected` calls an hour, learned over
    /// `weeks` weeks: the level's variance plus the slot mean's own.
    pub(crate) fn slot_variance(&self, hour_expected: f64, weeks: u16) -> f64 {
        let n = hour_expected.max(1e-3) * f64::from(weeks.max(1)).min(SLOT_WEEKS_MAX);
        self.variance() + 1.0 / n
    }
}

/// The level at the ten-minute scale (16 bytes): bursts of a few minutes
/// (an automation run, a sync catching up) that the hourly level averages
/// away. Each closed block of ten minutes of calls gives a sample of `v` as
/// an hour does; the exact window test (`detect/exact.rs`) uses it for
/// windows of about that length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShortLevel {
    pub(crate) var: LevelVar,
    /// The block being summed is the one of the last bucket added (the
    /// caller passes that bucket's end): no field for it.
    observed: f32,
    expected: f32,
}

/// The short scale's block length.
pub(crate) const SHORT_BLOCK_MS: i64 = 10 * 60 * 1000;

impl ShortLevel {
    /// Adds a closed bucket starting at `t` (`observed` calls against
    /// `expected`) after `quiet_expected` of expectation in the quiet
    /// buckets before it; `prev_end` is the end of the bucket added before
    /// it (0: none). Closes the previous block when `t` is in a new one.
    pub(crate) fn add(
        &mut self,
        t: i64,
        prev_end: i64,
        observed: f64,
        expected: f64,
        quiet_expected: f64,
        phi: f64,
    ) {
        // The quiet buckets are counted in the block they end (a silence
        // spanning blocks makes that block look low: more variance, never less).
        self.expected += quiet_expected as f32;
        let block = t.div_euclid(SHORT_BLOCK_MS);
        let prev = (prev_end - 1).div_euclid(SHORT_BLOCK_MS);
        if prev_end <= 0 || block != prev {
            if prev_end > 0 {
                self.var
                    .observe(f64::from(self.observed), f64::from(self.expected), phi);
            }
            self.observed = 0.0;
            self.expected = 0.0;
        }
        self.observed += observed as f32;
        self.expected += expected as f32;
    }

    /// The extra relative variance of a window `minutes` long beyond the
    /// hourly level's `v_hour`: the ten-minute excess, averaged over the
    /// window's independent blocks (none when nothing was learned).
    pub(crate) fn excess(&self, v_hour: f64, minutes: f64) -> f64 {
        if self.var.den <= 0.0 {
            return 0.0;
        }
        let blocks = (minutes / 10.0).max(1.0);
        (self.var.variance() - v_hour).max(0.0) / blocks
    }
}

/// The factor by which the CUSUM threshold is raised for a window expecting
/// `window_expected` counts, at dispersion `phi` and level variance `v`.
pub(crate) fn threshold_factor(v: f64, window_expected: f64, phi: f64) -> f64 {
    1.0 + v.max(0.0) * window_expected.max(0.0) / phi.max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_hours_at_the_slot_mean_give_the_floor() {
        let mut l = LevelVar::default();
        assert_eq!(l.variance(), LEVEL_VAR_UNKNOWN);
        // Totals within Poisson noise of 400 (sd 20).
        for i in 0..500 {
            let t = 400.0 + [-20.0, 20.0, -10.0, 10.0, 0.0][i % 5];
            l.observe(t, 400.0, 1.0);
        }
        assert_eq!(l.variance(), LEVEL_VAR_FLOOR);
    }

    #[test]
    fn levels_that_wander_are_learned() {
        let mut l = LevelVar::default();
        // Hours alternating at 0.7x and 1.3x of 1000 calls: v ≈ 0.09.
        for i in 0..1000 {
            let t = if i % 2 == 0 { 700.0 } else { 1300.0 };
            l.observe(t, 1000.0, 1.0);
        }
        let v = l.variance();
        assert!((v - 0.09).abs() < 0.005, "{v}");
    }

    #[test]
    fn a_silence_makes_the_baseline_untrusted() {
        let mut l = LevelVar::default();
        for _ in 0..400 {
            l.observe(100.0, 100.0, 1.0);
        }
        for _ in 0..100 {
            l.observe(0.0, 100.0, 1.0);
        }
        // 100 of the last ~336 hours silent: v ≈ 0.3, a baseline off by
        // about half.
        assert!(l.variance() > 0.2, "{}", l.variance());
    }

    #[test]
    fn sparse_slots_are_uncertain_and_long_windows_raise_the_bar() {
        let l = LevelVar {
            num: 0.02,
            den: 1.0,
        };
        // 4 calls an hour over two weeks: 8 calls of evidence.
        assert!((l.slot_variance(4.0, 2) - (0.02 + 0.125)).abs() < 1e-9);
        assert_eq!(threshold_factor(0.02, 0.0, 1.0), 1.0);
        assert!((threshold_factor(0.02, 500.0, 2.0) - 6.0).abs() < 1e-9);
    }
}
