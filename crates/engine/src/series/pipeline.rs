//! One series' scoring pipeline on one value scale, up to the calibrated
//! surprise: the value model, the calibrators of the point and the
//! recent-window channel, recurrence, amplitude memory and absence. What is
//! left to [`super::SeriesScorer`] is the choice of scale, the warm-up and
//! the refractory period.

use super::config::SeriesConfig;
use super::{absence, amplitude, calibrate, model, recurrence};

/// A single row adds at most this much to the recent-window mean, so one
/// spike is the point channel's business and the window sees bursts.
const RECENT_CAP: f64 = 4.0;

#[derive(Clone, Debug)]
pub(crate) struct Pipeline {
    model: model::Model,
    calib: calibrate::Calibrator,
    /// The recent-window channel: the last `window_rows` point surprises
    /// (capped), their sum, and its own calibration.
    recent: Vec<f64>,
    recent_sum: f64,
    recent_calib: calibrate::Calibrator,
    rows: u64,
    recurrence: recurrence::Recurrence,
    amplitude: amplitude::Amplitude,
    absence: absence::Absence,
}

impl Pipeline {
    pub(crate) fn new(cfg: &SeriesConfig) -> Self {
        Pipeline {
            model: model::Model::new(cfg),
            calib: calibrate::Calibrator::new(cfg.memory_rows, cfg.tail_slope),
            recent: Vec::with_capacity(cfg.window_rows as usize),
            recent_sum: 0.0,
            recent_calib: calibrate::Calibrator::new(cfg.memory_rows, cfg.tail_slope),
            rows: 0,
            recurrence: recurrence::Recurrence::new(cfg),
            amplitude: amplitude::Amplitude::new(cfg.amplitude_memory_rows),
            absence: absence::Absence::new(cfg.amplitude_memory_rows, cfg.absence_min_bursts),
        }
    }

    pub(crate) fn is_count(&self) -> bool {
        self.model.is_count()
    }

    /// Folds in one (finite) value and returns its calibrated surprise
    /// (−log10 of a calibrated tail probability) and the model's residual;
    /// `None` while the model warms up.
    pub(crate) fn push(
        &mut self,
        cfg: &SeriesConfig,
        ts_ms: i64,
        value: f64,
    ) -> Option<(f64, f64)> {
        self.rows += 1;
        let s = self.model.step(cfg, ts_ms, value)?;
        let u = s.point.max(s.shift);
        let mut absent = 0.0f64;
        let mut c = self.calib.calibrated(u);
        self.calib.learn(u);
        if cfg.recurrence_ratio > 0.0 {
            let earlier = self.recurrence.observe(ts_ms, s.point);
            if earlier > 0.0 && s.point <= cfg.recurrence_ratio * earlier {
                c *= cfg.recurrence_damping;
            }
        }
        if cfg.amplitude_ratio > 0.0 {
            let earlier = self.amplitude.observe(s.resid);
            let a = s.resid.abs();
            if cfg.absence_ratio > 0.0 {
                let burst = earlier > 0.0 && s.resid >= cfg.amplitude_low * earlier;
                absent = self.absence.observe(self.rows, burst, cfg.absence_ratio);
            }
            // A point-driven surprise (not a level shift building up) whose
            // residual is comparable to the largest in memory: a repeat.
            if s.point >= s.shift
                && a <= cfg.amplitude_ratio * earlier
                && a >= cfg.amplitude_low * earlier
            {
                c = c.min(cfg.amplitude_cap);
            }
        }
        if cfg.window_rows > 1 {
            let w = cfg.window_rows as usize;
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
        Some((c.max(absent), s.resid))
    }
}
