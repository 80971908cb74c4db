//! Scoring of univariate time series (`tripline score-series`): the engine's
//! statistics applied to one `timestamp, value` stream, one anomaly score in
//! [0, 1] per row, causally — a row's score depends only on the rows before
//! it and itself, so appending rows never changes an earlier score.
//!
//! Pure like the rest of the engine: values in, scores out; the caller reads
//! the files ([`SeriesScorer::push`] is all there is).
//!
//! # Pipeline, per row
//! 1. [`model`]: a predictor (robust level, or a daily/weekly profile when
//!    the data has one) and a value model (count or continuous, chosen from
//!    the data) give a *surprise*: −log10 of the value's tail probability,
//!    and the larger of two CUSUMs (level shifts up and down).
//! 2. [`calibrate`]: the surprise is ranked against this series' own
//!    history of surprises (the anomaly-likelihood idea), so one threshold
//!    means the same on a quiet flat line and on a spiky CPU trace. A second
//!    channel does the same for the mean point surprise of the last
//!    `window_rows` rows (each capped), which sees bursts of moderately
//!    unusual rows that no single row reveals; the larger calibrated
//!    surprise of the two counts. [`recurrence`]: a point surprise no
//!    larger than `recurrence_ratio` × what the same time of day produced
//!    on earlier days is a habit (a nightly job), and its calibrated
//!    surprise is damped by `recurrence_damping` first. [`amplitude`]: a
//!    point surprise whose residual (in the series' units) is between
//!    `amplitude_low` and `amplitude_ratio` × the largest residual of the
//!    last `amplitude_memory_rows` rows is a repeat of a known burst, and
//!    its calibrated surprise is capped at `amplitude_cap`. [`absence`]: a
//!    series that bursts often and then pauses for longer than
//!    `absence_ratio` × any pause in that memory reports the pause once,
//!    scored against its own burst rate (the bursts *stop*).
//! 3. The calibrated tail probability becomes a score with the engine's
//!    mapping ([`crate::stats::score_from_p`]: `s / (s + 3)`, `s = −log10 p`).
//! 4. **Refractory period.** A score ≥ `alarm_score` is an alarm; the
//!    following `refractory_rows` rows are damped, so one anomaly is one
//!    detection, not a run of them.

mod absence;
mod amplitude;
mod calibrate;
pub mod config;
mod model;
mod recurrence;

pub use config::{ModelChoice, SeriesConfig};

/// The engine's score mapping ([`crate::stats::score_from_p`]: `s / (s + 3)`
/// with `s = −log10 p`) applied to `s` directly, without the round trip
/// through `p` (and its rounding): the per-row hot path.
fn score_from_surprise(s: f64) -> f64 {
    if s.is_nan() || s <= 0.0 {
        return 0.0;
    }
    (s / (s + 3.0)).clamp(0.0, 1.0)
}

/// Scores one series, row by row.
#[derive(Clone, Debug)]
pub struct SeriesScorer {
    cfg: SeriesConfig,
    model: model::Model,
    calib: calibrate::Calibrator,
    /// The recent-window channel: the last `window_rows` point surprises
    /// (capped), their sum, and its own calibration.
    recent: Vec<f64>,
    recent_sum: f64,
    recent_calib: calibrate::Calibrator,
    rows: u64,
    /// Rows left in the current refractory period.
    refractory: u32,
    recurrence: recurrence::Recurrence,
    amplitude: amplitude::Amplitude,
    absence: absence::Absence,
}

/// A single row adds at most this much to the recent-window mean, so one
/// spike is the point channel's business and the window sees bursts.
const RECENT_CAP: f64 = 4.0;

impl SeriesScorer {
    /// A scorer for a new series. `cfg` should have passed
    /// [`SeriesConfig::validate`]; out-of-range values are not checked again.
    pub fn new(cfg: &SeriesConfig) -> Self {
        SeriesScorer {
            model: model::Model::new(cfg),
            calib: calibrate::Calibrator::new(cfg.memory_rows, cfg.tail_slope),
            recent: Vec::with_capacity(cfg.window_rows as usize),
            recent_sum: 0.0,
            recent_calib: calibrate::Calibrator::new(cfg.memory_rows, cfg.tail_slope),
            cfg: cfg.clone(),
            rows: 0,
            refractory: 0,
            recurrence: recurrence::Recurrence::new(cfg),
            amplitude: amplitude::Amplitude::new(cfg.amplitude_memory_rows),
            absence: absence::Absence::new(cfg.amplitude_memory_rows, cfg.absence_min_bursts),
        }
    }

    /// Rows folded in so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether the series is being scored with the count model (every value
    /// so far a non-negative integer, in `auto` mode).
    pub fn is_count(&self) -> bool {
        self.model.is_count()
    }

    /// Folds in the next row (`ts_ms`: epoch milliseconds, non-decreasing in
    /// practice; the profiles index by it) and returns its anomaly score in
    /// [0, 1]. A non-finite value scores 0 and leaves the state untouched.
    pub fn push(&mut self, ts_ms: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        self.rows += 1;
        let Some(s) = self.model.step(&self.cfg, ts_ms, value) else {
            return 0.0;
        };
        let u = s.point.max(s.shift);
        let mut absent = 0.0f64;
        let mut c = self.calib.calibrated(u);
        self.calib.learn(u);
        if self.cfg.recurrence_ratio > 0.0 {
            let earlier = self.recurrence.observe(ts_ms, s.point);
            if earlier > 0.0 && s.point <= self.cfg.recurrence_ratio * earlier {
                c *= self.cfg.recurrence_damping;
            }
        }
        if self.cfg.amplitude_ratio > 0.0 {
            let earlier = self.amplitude.observe(s.resid);
            let a = s.resid.abs();
            if self.cfg.absence_ratio > 0.0 {
                let burst = earlier > 0.0 && s.resid >= self.cfg.amplitude_low * earlier;
                absent = self
                    .absence
                    .observe(self.rows, burst, self.cfg.absence_ratio);
            }
            // A point-driven surprise (not a level shift building up) whose
            // residual is comparable to the largest in memory: a repeat.
            if s.point >= s.shift
                && a <= self.cfg.amplitude_ratio * earlier
                && a >= self.cfg.amplitude_low * earlier
            {
                c = c.min(self.cfg.amplitude_cap);
            }
        }
        if self.cfg.window_rows > 1 {
            let w = self.cfg.window_rows as usize;
            let p = s.point.min(RECENT_CAP);
            let slot = (self.rows as usize) % w;
            if self.recent.len() < w {
                self.recent.push(p);
            } else if let Some(old) = self.recent.get_mut(slot) {
                self.recent_sum -= *old;
                *old = p;
            }
            self.recent_sum += p;
            if self.recent.len() == w {
                let mean = (self.recent_sum / w as f64).max(0.0);
                c = c.max(self.recent_calib.calibrated(mean));
                self.recent_calib.learn(mean);
            }
        }
        c = c.max(absent);
        if self.rows <= u64::from(self.cfg.warmup_rows) {
            return 0.0;
        }
        let score = score_from_surprise(c);
        if self.refractory > 0 {
            self.refractory -= 1;
            return score * self.cfg.refractory_damping;
        }
        if score >= self.cfg.alarm_score {
            self.refractory = self.cfg.refractory_rows;
        }
        score
    }
}

#[cfg(test)]
mod tests;
