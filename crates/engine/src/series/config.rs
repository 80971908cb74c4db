//! The one configuration of `tripline score-series`: the same values for
//! every series (nothing is fitted per file). `config/default.toml` `[series]`
//! mirrors these defaults; `docs/ARCHITECTURE.md` ("Series scoring") explains
//! the model they tune.

use serde::{Deserialize, Serialize};

/// Which value model scores a series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    /// Chosen from the data: the count model while every value seen is a
    /// non-negative integer, the continuous model from the first one that is not.
    #[default]
    Auto,
    /// Always the continuous (Laplace residual, Gaussian CUSUM) model.
    Continuous,
}

/// Rows before any score is reported: the models learn a level, a scale and
/// the first day of a profile. NAB ignores its first 15% (≥ 186 rows on the
/// shortest series), so this costs nothing there.
pub const DEFAULT_WARMUP_ROWS: u32 = 150;
/// Level predictor (EWMA) weight per row: a memory of ~10 rows follows a
/// wandering series without chasing single spikes (updates are clipped).
pub const DEFAULT_LEVEL_ALPHA: f64 = 0.1;
/// Seasonal slot weight per period: recent days count most.
pub const DEFAULT_SEASON_ALPHA: f64 = 0.5;
/// Error-scale (mean absolute residual) weight per row: ~1 day of 5-min rows.
pub const DEFAULT_ERROR_ALPHA: f64 = 1.0 / 256.0;
/// Robust updates: residuals beyond this many scales are clipped before they
/// move a level, a slot or the scale.
pub const DEFAULT_CLIP: f64 = 4.0;
/// Level and profile-offset updates are clipped tighter (Huber-like): a
/// spiky series keeps its level at the floor between spikes.
pub const DEFAULT_LEVEL_CLIP: f64 = 2.0;
/// A seasonal predictor is used once its running error is below this
/// fraction of the level predictor's.
pub const DEFAULT_SEASONAL_GAIN: f64 = 0.8;
/// The continuous CUSUM is tuned to a mean shift of this many scales.
pub const DEFAULT_CUSUM_SHIFT: f64 = 1.5;
/// The count CUSUM is tuned to this rate multiple (and its inverse downward).
pub const DEFAULT_CUSUM_RATIO: f64 = 2.0;
/// A CUSUM at this tail probability is a level shift: the level predictor
/// re-anchors on the new values and the CUSUM restarts.
pub const DEFAULT_SHIFT_P: f64 = 1e-6;
/// Memory of the calibration (the series' own history of surprises), rows.
pub const DEFAULT_MEMORY_ROWS: u32 = 1000;
/// Beyond the largest surprise seen, each further unit of surprise adds this
/// much calibrated surprise (a tail extrapolation, in log10 units).
pub const DEFAULT_TAIL_SLOPE: f64 = 0.5;
/// Rows of the recent-window channel (the mean point surprise of the last
/// rows, calibrated on its own): bursts of moderately unusual rows.
pub const DEFAULT_WINDOW_ROWS: u32 = 40;
/// A score at least this is an alarm: the refractory period starts.
pub const DEFAULT_ALARM_SCORE: f64 = 0.42;
/// Rows after an alarm whose scores are damped (one anomaly, one detection).
pub const DEFAULT_REFRACTORY_ROWS: u32 = 100;
/// Factor applied to scores during the refractory period.
pub const DEFAULT_REFRACTORY_DAMPING: f64 = 0.0;
/// A point surprise up to this multiple of what the same time of day
/// produced on earlier days is a recurrence (0 = off).
pub const DEFAULT_RECURRENCE_RATIO: f64 = 2.0;
/// A recurrence's calibrated surprise is multiplied by this.
pub const DEFAULT_RECURRENCE_DAMPING: f64 = 0.7;
/// Time-of-day slots of this many minutes (a row looks at its own slot
/// and the two beside it).
pub const DEFAULT_RECURRENCE_SLOT_MINUTES: u32 = 60;
/// What earlier days produced fades by this factor per day.
pub const DEFAULT_RECURRENCE_DECAY: f64 = 0.8;
/// A residual magnitude up to this multiple of the largest in the last
/// `amplitude_memory_rows` rows is a repeat of a known burst (0 = off) ...
pub const DEFAULT_AMPLITUDE_RATIO: f64 = 1.0;
/// ... and at least this multiple of it (a much smaller one is a different
/// event) ...
pub const DEFAULT_AMPLITUDE_LOW: f64 = 0.3;
/// ... and its calibrated surprise is capped at this (−log10 p; 2 is a
/// score of 0.4).
pub const DEFAULT_AMPLITUDE_CAP: f64 = 2.0;
/// Rows the amplitude memory looks back over (~a week of 5-minute rows).
pub const DEFAULT_AMPLITUDE_MEMORY_ROWS: u32 = 2048;

/// A gap since the last burst longer than this multiple of every gap
/// between bursts in the amplitude memory is an absence (0 = off) ...
pub const DEFAULT_ABSENCE_RATIO: f64 = 1.2;
/// ... on a series with at least this many bursts in that memory.
pub const DEFAULT_ABSENCE_MIN_BURSTS: u32 = 64;

/// Rows over which a positive series is scored on both its values and
/// their logarithm before one scale is kept (0 = the values' own scale
/// only). Off: every setting tried lowered the NAB tune-half score
/// (BENCHMARKS.md, "Session 8") ...
pub const DEFAULT_SCALE_ROWS: u32 = 0;
/// ... the log scale being kept when Vuong's statistic for it exceeds this
/// (2: the conventional two-sided 5 % level).
pub const DEFAULT_SCALE_Z: f64 = 2.0;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesConfig {
    /// Value model: `auto` (count or continuous, from the data) or `continuous`.
    pub model: ModelChoice,
    /// Rows scored 0 while the models learn.
    pub warmup_rows: u32,
    /// Level predictor EWMA weight per row, in (0, 1].
    pub level_alpha: f64,
    /// Seasonal slot weight per period, in (0, 1].
    pub season_alpha: f64,
    /// Running-error (scale) weight per row, in (0, 1].
    pub error_alpha: f64,
    /// Robust-update clip, in scales (> 0).
    pub clip: f64,
    /// Clip of level and profile-offset updates, in scales (> 0).
    pub level_clip: f64,
    /// Learn daily and weekly profiles and use one when it predicts better.
    pub seasonality: bool,
    /// A profile replaces the level predictor when its error is below this
    /// fraction of the level predictor's, in (0, 1].
    pub seasonal_gain: f64,
    /// Continuous CUSUM: mean shift it is tuned to, in scales (> 0).
    pub cusum_shift: f64,
    /// Count CUSUM: rate multiple it is tuned to (> 1; 1/ratio downward).
    pub cusum_ratio: f64,
    /// Tail probability at which a CUSUM declares a level shift, in (0, 1).
    pub shift_p: f64,
    /// Calibration memory, rows (≥ 16).
    pub memory_rows: u32,
    /// Calibrated surprise per unit of surprise beyond the largest seen (≥ 0).
    pub tail_slope: f64,
    /// Recent-window channel length, rows (0 or 1: off).
    pub window_rows: u32,
    /// Score that starts a refractory period, in (0, 1].
    pub alarm_score: f64,
    /// Refractory period after an alarm, rows.
    pub refractory_rows: u32,
    /// Score factor during the refractory period, in [0, 1].
    pub refractory_damping: f64,
    pub recurrence_ratio: f64,
    pub recurrence_damping: f64,
    pub recurrence_slot_minutes: u32,
    pub recurrence_decay: f64,
    /// A residual magnitude up to this multiple of the largest earlier one
    /// in memory is a repeat (≥ 0; 0 = off) ...
    pub amplitude_ratio: f64,
    /// ... when it is at least this multiple of it, in [0, 1] ...
    pub amplitude_low: f64,
    /// ... and its calibrated surprise is capped at this (≥ 0).
    pub amplitude_cap: f64,
    /// Rows the amplitude memory spans (64..=1_000_000).
    pub amplitude_memory_rows: u32,
    /// A gap since the last burst longer than this multiple of every gap
    /// in the amplitude memory is an absence (≥ 0; 0 = off) ...
    pub absence_ratio: f64,
    /// ... once the memory holds at least this many bursts (≥ 2).
    pub absence_min_bursts: u32,
    /// Rows a positive series is scored on both scales (linear and log)
    /// before one is kept (0 = linear only) ...
    pub scale_rows: u32,
    /// ... the log scale when Vuong's statistic exceeds this (finite).
    pub scale_z: f64,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        SeriesConfig {
            model: ModelChoice::Auto,
            warmup_rows: DEFAULT_WARMUP_ROWS,
            level_alpha: DEFAULT_LEVEL_ALPHA,
            season_alpha: DEFAULT_SEASON_ALPHA,
            error_alpha: DEFAULT_ERROR_ALPHA,
            clip: DEFAULT_CLIP,
            level_clip: DEFAULT_LEVEL_CLIP,
            seasonality: true,
            seasonal_gain: DEFAULT_SEASONAL_GAIN,
            cusum_shift: DEFAULT_CUSUM_SHIFT,
            cusum_ratio: DEFAULT_CUSUM_RATIO,
            shift_p: DEFAULT_SHIFT_P,
            memory_rows: DEFAULT_MEMORY_ROWS,
            tail_slope: DEFAULT_TAIL_SLOPE,
            window_rows: DEFAULT_WINDOW_ROWS,
            alarm_score: DEFAULT_ALARM_SCORE,
            refractory_rows: DEFAULT_REFRACTORY_ROWS,
            refractory_damping: DEFAULT_REFRACTORY_DAMPING,
            recurrence_ratio: DEFAULT_RECURRENCE_RATIO,
            recurrence_damping: DEFAULT_RECURRENCE_DAMPING,
            recurrence_slot_minutes: DEFAULT_RECURRENCE_SLOT_MINUTES,
            recurrence_decay: DEFAULT_RECURRENCE_DECAY,
            amplitude_ratio: DEFAULT_AMPLITUDE_RATIO,
            amplitude_low: DEFAULT_AMPLITUDE_LOW,
            amplitude_cap: DEFAULT_AMPLITUDE_CAP,
            amplitude_memory_rows: DEFAULT_AMPLITUDE_MEMORY_ROWS,
            absence_ratio: DEFAULT_ABSENCE_RATIO,
            absence_min_bursts: DEFAULT_ABSENCE_MIN_BURSTS,
            scale_rows: DEFAULT_SCALE_ROWS,
            scale_z: DEFAULT_SCALE_Z,
        }
    }
}

impl SeriesConfig {
    /// Every problem with the values, not just the first.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut check = |name: &str, v: f64, ok: bool, want: &str| {
            if !ok || !v.is_finite() {
                p.push(format!("series.{name} = {v}: must be {want}"));
            }
        };
        let unit = |v: f64| v > 0.0 && v <= 1.0;
        check(
            "level_alpha",
            self.level_alpha,
            unit(self.level_alpha),
            "in (0, 1]",
        );
        check(
            "season_alpha",
            self.season_alpha,
            unit(self.season_alpha),
            "in (0, 1]",
        );
        check(
            "error_alpha",
            self.error_alpha,
            unit(self.error_alpha),
            "in (0, 1]",
        );
        check("clip", self.clip, self.clip > 0.0, "> 0");
        check("level_clip", self.level_clip, self.level_clip > 0.0, "> 0");
        check(
            "seasonal_gain",
            self.seasonal_gain,
            unit(self.seasonal_gain),
            "in (0, 1]",
        );
        check(
            "cusum_shift",
            self.cusum_shift,
            self.cusum_shift > 0.0,
            "> 0",
        );
        check(
            "cusum_ratio",
            self.cusum_ratio,
            self.cusum_ratio > 1.0,
            "> 1",
        );
        check(
            "shift_p",
            self.shift_p,
            self.shift_p > 0.0 && self.shift_p < 1.0,
            "in (0, 1)",
        );
        check(
            "tail_slope",
            self.tail_slope,
            self.tail_slope >= 0.0,
            ">= 0",
        );
        check(
            "alarm_score",
            self.alarm_score,
            unit(self.alarm_score),
            "in (0, 1]",
        );
        check(
            "refractory_damping",
            self.refractory_damping,
            (0.0..=1.0).contains(&self.refractory_damping),
            "in [0, 1]",
        );
        check(
            "recurrence_ratio",
            self.recurrence_ratio,
            self.recurrence_ratio >= 0.0,
            ">= 0 (0 = off)",
        );
        check(
            "recurrence_damping",
            self.recurrence_damping,
            (0.0..=1.0).contains(&self.recurrence_damping),
            "in [0, 1]",
        );
        check(
            "recurrence_decay",
            self.recurrence_decay,
            unit(self.recurrence_decay),
            "in (0, 1]",
        );
        check(
            "amplitude_ratio",
            self.amplitude_ratio,
            self.amplitude_ratio >= 0.0,
            ">= 0 (0 = off)",
        );
        check(
            "amplitude_low",
            self.amplitude_low,
            (0.0..=1.0).contains(&self.amplitude_low),
            "in [0, 1]",
        );
        check(
            "amplitude_cap",
            self.amplitude_cap,
            self.amplitude_cap >= 0.0,
            ">= 0",
        );
        check(
            "absence_ratio",
            self.absence_ratio,
            self.absence_ratio >= 0.0,
            ">= 0 (0 = off)",
        );
        check("scale_z", self.scale_z, true, "finite");
        if self.absence_min_bursts < 2 {
            p.push(format!(
                "series.absence_min_bursts = {}: must be >= 2",
                self.absence_min_bursts
            ));
        }
        if !(64..=1_000_000).contains(&self.amplitude_memory_rows) {
            p.push(format!(
                "series.amplitude_memory_rows = {}: must be in 64..=1000000",
                self.amplitude_memory_rows
            ));
        }
        if !(1..=1440).contains(&self.recurrence_slot_minutes) {
            p.push(format!(
                "series.recurrence_slot_minutes = {}: must be in 1..=1440",
                self.recurrence_slot_minutes
            ));
        }
        if self.window_rows > 10_000 {
            p.push(format!(
                "series.window_rows = {}: at most 10000",
                self.window_rows
            ));
        }
        if self.memory_rows < 16 {
            p.push(format!(
                "series.memory_rows = {}: must be >= 16",
                self.memory_rows
            ));
        }
        p
    }
}
