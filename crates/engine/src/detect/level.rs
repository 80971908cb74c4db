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
/// ... and a suspect hour's rise at this many standard deviations of the
/// current estimate.
const CLIP_SIGMAS: f64 = 3.0;
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
    /// `phi`; `suspect` when the sustained statistic on calls stood above
    /// its threshold as the hour closed (the hour is judged anomalous, and
    /// a rise in it is clipped: [`HourSample::new`]).
    pub(crate) fn observe(&mut self, total: f64, expected: f64, phi: f64, suspect: bool) {
        if let Some(h) = HourSample::new(total, expected, phi, self.variance(), suspect) {
            self.fold(&h);
        }
    }

    fn fold(&mut self, h: &HourSample) {
        self.num = (DECAY * f64::from(self.num) + h.w * h.sample) as f32;
        self.den = (DECAY * f64::from(self.den) + h.w) as f32;
    }

    /// The relative variance of an hour's level around its slot mean.
    pub(crate) fn variance(&self) -> f64 {
        if self.den <= 0.0 {
            return LEVEL_VAR_UNKNOWN;
        }
        (f64::from(self.num) / f64::from(self.den)).max(LEVEL_VAR_FLOOR)
    }

    /// `v` of a window `minutes` long in slots expecting `hour_expected`
    /// calls an hour, learned over `weeks` weeks: the hourly level's
    /// variance averaged over the window's hours as far as they are
    /// independent ([`LevelCorr`], [`window_share`]), plus the slot mean's
    /// own (kept whole: a slot pulled down by a silence is pulled down in
    /// every hour of the window).
    pub(crate) fn window_variance(
        &self,
        corr: &LevelCorr,
        hour_expected: f64,
        weeks: u16,
        minutes: f64,
    ) -> f64 {
        let share = window_share(corr.rho(self), minutes / 60.0);
        self.variance() * share + slot_mean_variance(hour_expected, weeks)
    }
}

/// The relative variance of a slot mean learned from `hour_expected` calls
/// an hour over `weeks` weeks (a gamma-Poisson posterior from `n` calls:
/// `1/n`).
fn slot_mean_variance(hour_expected: f64, weeks: u16) -> f64 {
    let n = hour_expected.max(1e-3) * f64::from(weeks.max(1)).min(SLOT_WEEKS_MAX);
    1.0 / n
}

/// One closed hour's evidence about the level: the moment estimate of `v`,
/// its weight, and the relative residual `(T − E) / E`.
struct HourSample {
    sample: f64,
    w: f64,
    residual: f64,
    /// The clip applied to the sample (products of residuals too).
    bound: f64,
}

impl HourSample {
    /// `v` is the current estimate. A `suspect` hour (the statistic was
    /// above its threshold) *above* its expectation by more than
    /// [`CLIP_SIGMAS`] standard deviations of what `v` and the noise
    /// explain counts as that bound: an incident's own hours must not
    /// teach the model that such hours are normal while the incident goes
    /// on. Other hours count whole (clipping every rise biased `v` low on
    /// integrations whose bursts are heavy-tailed: more false alerts).
    fn new(total: f64, expected: f64, phi: f64, v: f64, suspect: bool) -> Option<HourSample> {
        if !(expected >= MIN_EXPECTED && total.is_finite()) {
            return None;
        }
        let phi = phi.max(1.0);
        let noise = phi / expected;
        // Only rises are clipped: a drop or a silence is a baseline to
        // distrust at once (more variance, a higher bar), never a way to
        // hide a rise.
        let bound = if suspect && total > expected {
            (CLIP_SIGMAS * CLIP_SIGMAS * (v + noise) - noise).min(MAX_SAMPLE)
        } else {
            MAX_SAMPLE
        };
        let sample =
            (((total - expected).powi(2) - phi * expected) / (expected * expected)).min(bound);
        // Weighted by the sample's precision under the noise alone (not the
        // current estimate: the estimator stays linear, and a change of
        // level — a silence, a lasting rise — is learned at the same pace
        // as it is forgotten).
        let w = 1.0 / (noise + LEVEL_VAR_FLOOR).powi(2);
        let residual = (total - expected) / expected;
        Some(HourSample {
            sample,
            w,
            residual,
            bound,
        })
    }
}

/// How much of one hour's level carries into the next (8 bytes): the
/// decayed covariance of consecutive informative hours' relative residuals,
/// on [`LevelVar`]'s weights, so `ρ = cov / v`.
///
/// A level that stays off for a day (a campaign, a slot mean a silence
/// pulled down) has `ρ` near 1 and a window of hours shares it; one that
/// wanders hour by hour (traffic whose hourly totals scatter around the
/// slot means) has `ρ` near 0 and a window of `H` hours has about `1/H` of
/// its variance — so a rise to 2–3x for a few hours on such an integration
/// is judged against what several independent hours can do, not one.
/// Where the previous hour said nothing (it expected less than a call,
/// or its residual was exactly 0) the sample is the variance's own, as if
/// `ρ` were 1: missing evidence never lowers the bar.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelCorr {
    /// The previous informative hour's relative residual (0: none).
    prev: f32,
    /// Decayed sum of weight × (previous residual × this residual).
    num: f32,
}

impl LevelCorr {
    /// Folds one hour's sample, paired with the previous hour's residual
    /// (the sample is computed once for both estimators: [`observe_hour`]).
    fn fold(&mut self, h: &HourSample) {
        let c = if self.prev != 0.0 {
            (f64::from(self.prev) * h.residual).clamp(-h.bound, h.bound)
        } else {
            h.sample
        };
        self.num = (DECAY * f64::from(self.num) + h.w * c) as f32;
        self.prev = h.residual as f32;
    }

    /// An hour without evidence (its slot unseen or expecting nothing):
    /// the next hour has no previous one to pair with.
    pub(crate) fn break_chain(&mut self) {
        self.prev = 0.0;
    }

    /// The correlation of consecutive hours' levels, in [0, 1] (1 before
    /// anything was learned).
    pub(crate) fn rho(&self, level: &LevelVar) -> f64 {
        if level.den <= 0.0 {
            return 1.0;
        }
        let cov = f64::from(self.num) / f64::from(level.den);
        (cov / level.variance()).clamp(0.0, 1.0)
    }
}

/// Folds one closed hour of calls into the hourly level's variance and its
/// hour-to-hour correlation: one sample (gate, weight and clip judged
/// against the variance before this hour) for both, as [`LevelVar::observe`]
/// takes it; an hour without evidence breaks the correlation's chain.
pub(crate) fn observe_hour(
    level: &mut LevelVar,
    corr: &mut LevelCorr,
    total: f64,
    expected: f64,
    phi: f64,
    suspect: bool,
) {
    match HourSample::new(total, expected, phi, level.variance(), suspect) {
        Some(h) => {
            corr.fold(&h);
            level.fold(&h);
        }
        None => corr.break_chain(),
    }
}

/// The share of one hour's level variance a window `hours` long keeps when
/// consecutive hours correlate by `rho` (AR(1) across hours): the variance
/// of the mean of `n = hours` unit levels, `(1/n)(1+ρ)/(1−ρ) −
/// 2ρ(1−ρⁿ)/(n²(1−ρ)²)`, exact at whole `n` (`n = 2`: `(1+ρ)/2`) and
/// smooth between; 1 for a window inside an hour and as `ρ → 1`.
pub(crate) fn window_share(rho: f64, hours: f64) -> f64 {
    let n = hours.max(1.0);
    let rho = rho.clamp(0.0, 1.0);
    if n <= 1.0 || rho >= 0.999 {
        return 1.0;
    }
    let q = 1.0 - rho;
    let g = (1.0 + rho) / (n * q) - 2.0 * rho * (1.0 - rho.powf(n)) / (n * n * q * q);
    g.clamp(1.0 / n, 1.0)
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
    /// it (0: none). Closes the previous block when `t` is in a new one
    /// (`suspect`: as for [`LevelVar::observe`]).
    // One closed bucket's facts, passed as they are computed by the caller
    // (`Cx::shift_close`); a struct for them would be built once and dropped.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(
        &mut self,
        t: i64,
        prev_end: i64,
        observed: f64,
        expected: f64,
        quiet_expected: f64,
        phi: f64,
        suspect: bool,
    ) {
        // The quiet buckets are counted in the block they end (a silence
        // spanning blocks makes that block look low: more variance, never less).
        self.expected += quiet_expected as f32;
        let block = t.div_euclid(SHORT_BLOCK_MS);
        let prev = (prev_end - 1).div_euclid(SHORT_BLOCK_MS);
        if prev_end <= 0 || block != prev {
            if prev_end > 0 {
                self.var.observe(
                    f64::from(self.observed),
                    f64::from(self.expected),
                    phi,
                    suspect,
                );
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
            l.observe(t, 400.0, 1.0, false);
        }
        assert_eq!(l.variance(), LEVEL_VAR_FLOOR);
    }

    #[test]
    fn levels_that_wander_are_learned() {
        let mut l = LevelVar::default();
        // Hours alternating at 0.7x and 1.3x of 1000 calls: v ≈ 0.09.
        for i in 0..1000 {
            let t = if i % 2 == 0 { 700.0 } else { 1300.0 };
            l.observe(t, 1000.0, 1.0, false);
        }
        let v = l.variance();
        assert!((v - 0.09).abs() < 0.005, "{v}");
    }

    #[test]
    fn a_silence_makes_the_baseline_untrusted() {
        let mut l = LevelVar::default();
        for _ in 0..400 {
            l.observe(100.0, 100.0, 1.0, false);
        }
        for _ in 0..100 {
            l.observe(0.0, 100.0, 1.0, false);
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
        let shared = LevelCorr::default();
        // 4 calls an hour over two weeks: 8 calls of evidence.
        let v = l.window_variance(&shared, 4.0, 2, 60.0);
        assert!((v - (0.02 + 0.125)).abs() < 1e-9, "{v}");
        assert_eq!(threshold_factor(0.02, 0.0, 1.0), 1.0);
        assert!((threshold_factor(0.02, 500.0, 2.0) - 6.0).abs() < 1e-9);
    }

    #[test]
    fn hours_that_wander_independently_average_out_over_a_long_window() {
        // Hourly levels alternating 0.7x / 1.3x of 1000 calls: v ≈ 0.09,
        // consecutive hours anti-correlated (ρ clamps to 0).
        let mut l = LevelVar::default();
        let mut c = LevelCorr::default();
        for i in 0..1000 {
            let t = if i % 2 == 0 { 700.0 } else { 1300.0 };
            observe_hour(&mut l, &mut c, t, 1000.0, 1.0, false);
        }
        assert_eq!(c.rho(&l), 0.0);
        let one = l.window_variance(&c, 1000.0, 7, 60.0);
        let four = l.window_variance(&c, 1000.0, 7, 240.0);
        // Four independent hours: a quarter of the level's variance (the
        // slot mean's own, 1/n, stays whole).
        let slot = 1.0 / 7000.0;
        assert!((one - (l.variance() + slot)).abs() < 1e-9);
        assert!((four - (l.variance() / 4.0 + slot)).abs() < 1e-9, "{four}");
    }

    #[test]
    fn a_level_that_stays_off_for_hours_is_shared_by_the_window() {
        // Days alternating 0.7x and 1.3x, each level held for 12 hours.
        let mut l = LevelVar::default();
        let mut c = LevelCorr::default();
        for i in 0..2000 {
            let t = if (i / 12) % 2 == 0 { 700.0 } else { 1300.0 };
            observe_hour(&mut l, &mut c, t, 1000.0, 1.0, false);
        }
        let rho = c.rho(&l);
        assert!(rho > 0.75, "{rho}");
        assert!(window_share(rho, 4.0) > 0.8);
    }

    #[test]
    fn window_share_is_exact_at_whole_hours_and_bounded() {
        for rho in [0.0, 0.3, 0.7, 0.95] {
            assert!((window_share(rho, 2.0) - (1.0 + rho) / 2.0).abs() < 1e-12);
            let three = (3.0 + 4.0 * rho + 2.0 * rho * rho) / 9.0;
            assert!((window_share(rho, 3.0) - three).abs() < 1e-12);
            assert_eq!(window_share(rho, 0.5), 1.0);
            let mut last = 1.0;
            for h in 1..48 {
                let g = window_share(rho, f64::from(h));
                assert!(g <= last + 1e-12 && g >= 1.0 / f64::from(h) - 1e-12);
                last = g;
            }
        }
        assert_eq!(window_share(1.0, 10.0), 1.0);
    }

    #[test]
    fn a_suspect_hours_rise_barely_moves_the_estimate_an_unsuspected_one_does() {
        let mut l = LevelVar::default();
        for i in 0..500 {
            let t = 1000.0 + [-150.0, 150.0, -100.0, 100.0, 0.0][i % 5];
            l.observe(t, 1000.0, 1.0, false);
        }
        let before = l.variance();
        // Four hours at 3.5x while the statistic stood above its threshold.
        let mut suspect = l;
        for _ in 0..4 {
            suspect.observe(3500.0, 1000.0, 1.0, true);
        }
        assert!(
            suspect.variance() < 1.5 * before,
            "{before} -> {}",
            suspect.variance()
        );
        // The same hours unsuspected (a benign surge the statistic did not
        // flag) are learned.
        for _ in 0..4 {
            l.observe(3500.0, 1000.0, 1.0, false);
        }
        assert!(l.variance() > 3.0 * before, "{before} -> {}", l.variance());
        // A suspect hour's drop is never clipped.
        let mut drop = LevelVar::default();
        let mut drop_suspect = LevelVar::default();
        for _ in 0..100 {
            drop.observe(1000.0, 1000.0, 1.0, false);
            drop_suspect.observe(1000.0, 1000.0, 1.0, false);
        }
        drop.observe(0.0, 1000.0, 1.0, false);
        drop_suspect.observe(0.0, 1000.0, 1.0, true);
        assert_eq!(drop, drop_suspect);
    }
}
