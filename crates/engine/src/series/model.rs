//! The value models: what a row of a univariate series was expected to be,
//! and how surprising its actual value is (a *surprise*: −log10 of a tail
//! probability under the model, before calibration).
//!
//! - **Predictors.** A robust level (EWMA whose updates are clipped, so a
//!   spike does not drag it) and, when the data shows them, daily and weekly
//!   profiles (additive Holt-Winters: slot means plus a fast offset). Each
//!   keeps its running mean absolute error; the best predictor is used, a
//!   profile only when it beats the level by `seasonal_gain`. Nothing comes
//!   from the file name: seasonality is kept when it predicts.
//! - **Count model** (every value so far a non-negative integer, and not
//!   mostly zeros during warm-up — an event train of bursts on silence gets
//!   the continuous model): the
//!   engine's negative-binomial tails ([`crate::stats`]) around the
//!   prediction with a learned dispersion, and the engine's quasi-Poisson
//!   CUSUM ([`crate::shift`]) up and down.
//! - **Continuous model** (anything else): Laplace tails of the residual in
//!   units of the running error, and a Gaussian mean-shift CUSUM on the
//!   clipped standardized residual — the same [`Cusum`] with the parameters
//!   that make its increment `δ z − δ²/2`.
//! - **Level shifts.** A CUSUM reaching `ln(1/shift_p)` re-anchors the level
//!   (and every profile's offset) on the new values: the shift is scored
//!   while it accumulates, then becomes the new normal.

use super::config::{ModelChoice, SeriesConfig};
use crate::shift::{Cusum, CusumParams};
use crate::stats::{lower_tail, upper_tail, MEAN_FLOOR};

const LOG10_E: f64 = std::f64::consts::LOG10_E;
const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;
/// Profiles hold at most this many slots per day (slots of ≥ 1 minute).
const MAX_SLOTS_PER_DAY: i64 = 1440;
/// Rows before surprises are produced: the level, scale and row spacing
/// (which sizes the profiles' slots) need a few rows.
pub(crate) const MODEL_WARMUP: u32 = 32;
/// A profile's error must rest on this many of its own predictions before
/// it can be chosen.
const PROFILE_MIN_PREDICTIONS: u32 = 48;
/// Count residuals inside this many standard deviations use the Gaussian
/// approximation (exact tails only where they matter: speed).
const EXACT_TAIL_SDS: f64 = 2.0;
/// The smallest error scale, relative to the predicted magnitude: profile
/// slots are `f32` (about 6e-8 relative precision), so on a noise-free
/// series a residual of a few f32 ulps must not read as many errors.
const SCALE_FLOOR_REL: f64 = 1e-6;

/// One seasonal profile: slot means over a period, plus a fast offset.
#[derive(Clone, Debug)]
struct Profile {
    period_ms: i64,
    width_ms: i64,
    /// Slot means, NaN while unseen.
    means: Vec<f32>,
    /// Additive level correction (Holt-Winters level), follows quickly.
    offset: f64,
    /// First timestamp folded in: the profile predicts only a period later.
    start_ms: i64,
    /// Running mean absolute and mean squared error of its predictions,
    /// and their number.
    err: f64,
    sq: f64,
    predictions: u32,
}

impl Profile {
    fn new(period_ms: i64, width_ms: i64, start_ms: i64) -> Self {
        let n = (period_ms / width_ms).max(1) as usize;
        Profile {
            period_ms,
            width_ms,
            means: vec![f32::NAN; n],
            offset: 0.0,
            start_ms,
            err: 0.0,
            sq: 0.0,
            predictions: 0,
        }
    }

    fn slot(&self, ts: i64) -> usize {
        (ts.rem_euclid(self.period_ms) / self.width_ms) as usize
    }

    fn predict(&self, ts: i64) -> Option<f64> {
        if ts.saturating_sub(self.start_ms) < self.period_ms {
            return None;
        }
        let m = *self.means.get(self.slot(ts))?;
        m.is_finite().then(|| f64::from(m) + self.offset)
    }

    fn usable(&self) -> bool {
        self.predictions >= PROFILE_MIN_PREDICTIONS
    }
}

/// The state of one series' value model.
#[derive(Clone, Debug)]
pub(crate) struct Model {
    rows: u32,
    last_ts: i64,
    /// Smallest positive spacing seen during warm-up: the profiles' slot width.
    min_gap_ms: i64,
    level: f64,
    level_err: f64,
    level_sq: f64,
    /// Daily then weekly, created at the end of warm-up.
    profiles: Vec<Profile>,
    /// Still the count model (auto mode, every value a non-negative integer).
    count: bool,
    /// Zeros among the warm-up rows: a series that is mostly zeros is an
    /// event train (bursts on silence), which a per-row count distribution
    /// around a level describes badly; it gets the continuous model.
    zeros: u32,
    /// Count dispersion (variance / mean of the residuals), ≥ 1.
    phi: f64,
    up: Cusum,
    down: Cusum,
    up_p: CusumParams,
    down_p: CusumParams,
    gauss_p: CusumParams,
    gauss_mu: f64,
}

/// What the model made of one row.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Surprise {
    /// −log10 of the tail probability of the value itself.
    pub point: f64,
    /// The larger CUSUM statistic, in log10 units.
    pub shift: f64,
    /// The residual (value − prediction), in the series' units.
    pub resid: f64,
}

impl Model {
    pub(crate) fn new(cfg: &SeriesConfig) -> Self {
        let k = cfg.cusum_ratio;
        let up_p = CusumParams::new(k, cfg.shift_p);
        // Downward: tuned to the rate falling to 1/k; the same increment
        // `(x ln k' − (k' − 1) μ) / φ` with k' = 1/k < 1 (positive when x is
        // well below μ).
        let down_p = CusumParams {
            ln_k: -(k.ln()),
            k_minus_1: 1.0 / k - 1.0,
            h: up_p.h,
        };
        // Gaussian mean shift of δ on standardized z: with ln k = k − 1 = δ
        // and μ = δ / 2 the increment is δ z − δ² / 2.
        let d = cfg.cusum_shift;
        let gauss_p = CusumParams {
            ln_k: d,
            k_minus_1: d,
            h: up_p.h,
        };
        Model {
            rows: 0,
            last_ts: i64::MIN,
            min_gap_ms: i64::MAX,
            level: 0.0,
            level_err: 0.0,
            level_sq: 0.0,
            profiles: Vec::new(),
            count: cfg.model == ModelChoice::Auto,
            zeros: 0,
            phi: 1.0,
            up: Cusum::default(),
            down: Cusum::default(),
            up_p,
            down_p,
            gauss_p,
            gauss_mu: d / 2.0,
        }
    }

    /// Whether the count model is in use.
    pub(crate) fn is_count(&self) -> bool {
        self.count
    }

    /// Folds one row in; `None` during warm-up.
    pub(crate) fn step(&mut self, cfg: &SeriesConfig, ts: i64, x: f64) -> Option<Surprise> {
        self.rows = self.rows.saturating_add(1);
        if self.count && !(x >= 0.0 && x.fract() == 0.0) {
            // From now on continuous; the count CUSUMs mean nothing to it.
            self.count = false;
            self.up.reset(ts);
            self.down.reset(ts);
        }
        if self.rows <= MODEL_WARMUP && x == 0.0 {
            self.zeros += 1;
        }
        if self.count && self.rows == MODEL_WARMUP && 2 * self.zeros > MODEL_WARMUP {
            self.count = false;
            self.up.reset(ts);
            self.down.reset(ts);
        }
        if self.rows == 1 {
            self.level = x;
            self.last_ts = ts;
            return None;
        }
        if ts > self.last_ts && self.rows <= MODEL_WARMUP {
            self.min_gap_ms = self.min_gap_ms.min(ts.saturating_sub(self.last_ts));
        }
        self.last_ts = self.last_ts.max(ts);
        let warm = self.rows > MODEL_WARMUP;
        if self.rows == MODEL_WARMUP && cfg.seasonality {
            self.start_profiles(ts);
        }

        // Choose the predictor on errors up to the previous row.
        // Chosen on mean squared error: a profile earns its place by
        // predicting the large moves (a daily step) the level cannot.
        let mut pred = self.level;
        let mut err = self.level_err;
        let mut sq = self.level_sq;
        let mut predicted = [None; 2];
        for (p, out) in self.profiles.iter().zip(predicted.iter_mut()) {
            *out = p.predict(ts);
            if let (true, Some(v)) = (p.usable(), *out) {
                if p.sq < cfg.seasonal_gain * self.level_sq && p.sq < sq {
                    pred = v;
                    err = p.err;
                    sq = p.sq;
                }
            }
        }
        let scale = err
            .max(SCALE_FLOOR_REL * pred.abs().max(self.level.abs()))
            .max(1e-9);
        let r = x - pred;
        let z = r / scale;

        let mut out = Surprise {
            resid: r,
            ..Surprise::default()
        };
        if warm {
            if self.count {
                self.count_surprise(cfg, x, pred, &mut out, ts);
            } else {
                self.continuous_surprise(cfg, z, &mut out, ts);
            }
            if out.shift * std::f64::consts::LN_10 >= self.up_p.h {
                self.reanchor(x, ts);
            }
        }
        self.learn(cfg, ts, x, predicted);
        warm.then_some(out)
    }

    fn count_surprise(
        &mut self,
        cfg: &SeriesConfig,
        x: f64,
        pred: f64,
        out: &mut Surprise,
        ts: i64,
    ) {
        let mu = pred.max(MEAN_FLOOR);
        let sd = (self.phi * mu).sqrt();
        let dev = (x - mu) / sd;
        out.point = if dev.abs() <= EXACT_TAIL_SDS {
            dev * dev / 2.0 * LOG10_E
        } else {
            let k = x as u64;
            let p = if x > mu {
                upper_tail(k, mu, self.phi)
            } else {
                lower_tail(k, mu, self.phi)
            };
            -p.max(1e-300).log10()
        };
        let xc = x.clamp(mu - cfg.clip * sd, mu + cfg.clip * sd).max(0.0);
        let s_up = self
            .up
            .step(&self.up_p, xc, mu, self.phi, ts, ts.saturating_add(1));
        let s_down = self
            .down
            .step(&self.down_p, xc, mu, self.phi, ts, ts.saturating_add(1));
        out.shift = s_up.max(s_down) * LOG10_E;
    }

    fn continuous_surprise(&mut self, cfg: &SeriesConfig, z: f64, out: &mut Surprise, ts: i64) {
        out.point = z.abs() * LOG10_E;
        let zc = z.clamp(-cfg.clip, cfg.clip);
        let s_up = self.up.step(
            &self.gauss_p,
            zc,
            self.gauss_mu,
            1.0,
            ts,
            ts.saturating_add(1),
        );
        let s_down = self.down.step(
            &self.gauss_p,
            -zc,
            self.gauss_mu,
            1.0,
            ts,
            ts.saturating_add(1),
        );
        out.shift = s_up.max(s_down) * LOG10_E;
    }

    /// A level shift was declared: the new values are the new normal.
    fn reanchor(&mut self, x: f64, ts: i64) {
        self.level = x;
        for p in &mut self.profiles {
            let slot = p.slot(ts);
            if let Some(m) = p.means.get(slot).filter(|m| m.is_finite()) {
                p.offset = x - f64::from(*m);
            }
        }
        self.up.reset(ts.saturating_add(1));
        self.down.reset(ts.saturating_add(1));
    }

    fn start_profiles(&mut self, ts: i64) {
        if self.min_gap_ms == i64::MAX || self.min_gap_ms <= 0 {
            return;
        }
        let width = self.min_gap_ms.max(DAY_MS / MAX_SLOTS_PER_DAY);
        for period in [DAY_MS, WEEK_MS] {
            // A period must hold several rows to be a season at all.
            if period / width >= 4 {
                self.profiles.push(Profile::new(period, width, ts));
            }
        }
    }

    /// Robust updates of every predictor, its error and the dispersion.
    fn learn(&mut self, cfg: &SeriesConfig, ts: i64, x: f64, predicted: [Option<f64>; 2]) {
        let n = f64::from(self.rows);
        let warm = self.rows > MODEL_WARMUP;
        // Early on, plain averages (1/n) so the estimates start quickly.
        let ea = cfg.error_alpha.max(1.0 / n);
        let la = cfg.level_alpha.max(1.0 / n);
        let clip = |r: f64, e: f64| {
            if warm && e > 0.0 {
                r.clamp(-cfg.clip * e, cfg.clip * e)
            } else {
                r
            }
        };

        let r = x - self.level;
        let rc = clip(r, self.level_err);
        let lc = if warm && self.level_err > 0.0 {
            r.clamp(
                -cfg.level_clip * self.level_err,
                cfg.level_clip * self.level_err,
            )
        } else {
            r
        };
        if self.count {
            let mu = self.level.max(MEAN_FLOOR);
            let v = rc * rc / mu;
            self.phi = (self.phi + ea * (v - self.phi)).clamp(1.0, 1e12);
        }
        self.level += la * lc;
        self.level_err += ea * (rc.abs() - self.level_err);
        // Unclipped: the large misses are what tells the predictors apart.
        self.level_sq += ea * (r * r - self.level_sq);

        for (p, predicted) in self.profiles.iter_mut().zip(predicted) {
            let slot = p.slot(ts);
            let Some(m) = p.means.get_mut(slot) else {
                continue;
            };
            if let Some(v) = predicted {
                let pr = clip(x - v, p.err);
                let pa = cfg.error_alpha.max(1.0 / (f64::from(p.predictions) + 1.0));
                p.err += pa * (pr.abs() - p.err);
                p.sq += pa * ((x - v) * (x - v) - p.sq);
                p.predictions = p.predictions.saturating_add(1);
                let oc = (x - v).clamp(-cfg.level_clip * p.err, cfg.level_clip * p.err);
                p.offset += cfg.level_alpha * oc;
                *m = (f64::from(*m) + cfg.season_alpha * pr) as f32;
            } else if m.is_finite() {
                let base = f64::from(*m) + p.offset;
                *m = (f64::from(*m) + cfg.season_alpha * clip(x - base, self.level_err)) as f32;
            } else {
                *m = (x - p.offset) as f32;
            }
        }
    }
}
