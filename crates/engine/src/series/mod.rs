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
//!    [`scale`] (off by default, `scale_rows = 0`: it lowered the NAB
//!    score, see BENCHMARKS.md): a series whose values are all positive is
//!    scored on its values and on their logarithm side by side for its
//!    first `scale_rows` rows; the log scale is kept from then on when it
//!    describes the data clearly better (Vuong's test between the two
//!    Laplace models, Jacobian included) — multiplicative series such as
//!    prices, where a fall to a hundredth is news whatever the units.
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
mod pipeline;
mod recurrence;
mod scale;

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

/// On the log scale a value at or below 0 (never seen while the scale was
/// chosen) is read as this fraction of the smallest positive value seen.
const LOG_FLOOR_REL: f64 = 1e-3;

/// Scores one series, row by row.
#[derive(Clone, Debug)]
pub struct SeriesScorer {
    cfg: SeriesConfig,
    /// The pipeline whose surprises are reported: the values' own scale,
    /// or the log scale once it was chosen.
    main: pipeline::Pipeline,
    /// The log-scale candidate while the scale is being chosen.
    candidate: Option<Box<pipeline::Pipeline>>,
    choice: scale::ScaleChoice,
    log: bool,
    /// Smallest positive value seen (the log scale's floor).
    min_pos: f64,
    rows: u64,
    /// Rows left in the current refractory period.
    refractory: u32,
}

impl SeriesScorer {
    /// A scorer for a new series. `cfg` should have passed
    /// [`SeriesConfig::validate`]; out-of-range values are not checked again.
    pub fn new(cfg: &SeriesConfig) -> Self {
        // The log scale is a continuous model (log values are not counts).
        let log_cfg = SeriesConfig {
            model: ModelChoice::Continuous,
            ..cfg.clone()
        };
        SeriesScorer {
            main: pipeline::Pipeline::new(cfg),
            candidate: (cfg.scale_rows > 0).then(|| Box::new(pipeline::Pipeline::new(&log_cfg))),
            choice: scale::ScaleChoice::default(),
            log: false,
            min_pos: f64::INFINITY,
            cfg: cfg.clone(),
            rows: 0,
            refractory: 0,
        }
    }

    /// Rows folded in so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether the series is being scored with the count model (every value
    /// so far a non-negative integer, in `auto` mode).
    pub fn is_count(&self) -> bool {
        !self.log && self.main.is_count()
    }

    /// Whether the series is scored on the log scale (chosen after
    /// `scale_rows` rows; until then, and for other series, false).
    pub fn is_log_scale(&self) -> bool {
        self.log
    }

    /// Folds in the next row (`ts_ms`: epoch milliseconds, non-decreasing in
    /// practice; the profiles index by it) and returns its anomaly score in
    /// [0, 1]. A non-finite value scores 0 and leaves the state untouched.
    pub fn push(&mut self, ts_ms: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        self.rows += 1;
        if value > 0.0 {
            self.min_pos = self.min_pos.min(value);
        }
        let out = if self.log {
            let y = value.max(self.min_pos * LOG_FLOOR_REL).ln();
            self.main.push(&self.cfg, ts_ms, y)
        } else {
            let out = self.main.push(&self.cfg, ts_ms, value);
            self.consider_log(ts_ms, value, out);
            out
        };
        let Some((c, _)) = out else {
            return 0.0;
        };
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

    /// While the scale is being chosen: the log candidate scores the row
    /// too; at `scale_rows` rows one scale is kept.
    fn consider_log(&mut self, ts_ms: i64, value: f64, lin: Option<(f64, f64)>) {
        let Some(cand) = self.candidate.as_mut() else {
            return;
        };
        if value <= 0.0 {
            // Not a positive series: the log scale is out.
            self.candidate = None;
            return;
        }
        let y = value.ln();
        if let (Some((_, r_lin)), Some((_, r_log))) = (lin, cand.push(&self.cfg, ts_ms, y)) {
            self.choice.observe(r_lin, r_log, y);
        }
        if self.rows >= u64::from(self.cfg.scale_rows) {
            let candidate = self.candidate.take();
            // A count series keeps the count model (a discrete model, not
            // one of the two Laplace models compared).
            let wins =
                !self.main.is_count() && self.choice.vuong().is_some_and(|z| z > self.cfg.scale_z);
            if let (true, Some(c)) = (wins, candidate) {
                self.main = *c;
                self.log = true;
            }
        }
    }
}

#[cfg(test)]
mod tests;
