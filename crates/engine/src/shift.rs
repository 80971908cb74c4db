//! Sustained upward shifts of a count series: a quasi-Poisson CUSUM against
//! an expected count per step (from a seasonal baseline or anything else).
//!
//! Reusable on any count series: the detectors run one per series per
//! integration (and one per key), `tripline score-series` can run one over a
//! plain time series.
//!
//! # The statistic
//! For counts `x_t` with expected value `μ_t` and variance `φ μ_t`, the
//! log-likelihood ratio of "the rate is `k` times the baseline" against "the
//! rate is the baseline" is, per step, `x_t ln k − (k − 1) μ_t` (Poisson);
//! divided by `φ` it is the quasi-likelihood ratio, which keeps its meaning
//! when the counts are over-dispersed. The CUSUM
//!
//! ```text
//! S_t = max(0, S_{t−1} + (x_t ln k − (k − 1) μ_t) / φ)
//! ```
//!
//! is the log-likelihood ratio of the best-supported window ending now, over
//! every start since it was last 0. It fires when `S_t ≥ h`.
//!
//! - **Threshold.** `h = ln(1/p)`: by Wald's inequality a run of the
//!   statistic started under the baseline reaches `h` with probability at
//!   most `e^{−h} = p`, whatever its length — the correction for looking at
//!   every window length at once is built in.
//! - **Sensitivity.** A shift of ratio `r` adds `μ (r ln k − (k − 1)) / φ`
//!   per step: positive only when `r > (k − 1) / ln k` (2.16 for `k = 4`).
//!   Ordinary fluctuations below that ratio drift down, however long they
//!   last; a shift above it accumulates until it fires — in one step when it
//!   is large, over hours when it is small or the series is sparse.
//! - **Window.** The run since `S` was last 0 is the window that fired: its
//!   observed and expected sums are what the alert reports.

use serde::{Deserialize, Serialize};

/// One CUSUM: the statistic and the window it covers. 24 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cusum {
    /// The statistic, in nats of (quasi-)likelihood ratio; ≥ 0.
    pub stat: f32,
    /// Sum of the counts since the run started.
    pub observed: f32,
    /// Sum of the expected counts since the run started.
    pub expected: f32,
    /// Start of the current run (caller's time unit; epoch ms in the engine).
    pub run_start: i64,
}

/// The parameters of a CUSUM: the multiple it is tuned to and its threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CusumParams {
    /// `ln k`, `k` being the rate multiple the statistic is tuned to (> 1).
    pub ln_k: f64,
    /// `k − 1`.
    pub k_minus_1: f64,
    /// Threshold in nats: `ln(1/p)`.
    pub h: f64,
}

impl CusumParams {
    /// Tuned to ratio `k` (> 1), firing at tail probability `p` (in (0, 1)).
    pub fn new(k: f64, p: f64) -> Self {
        let k = if k.is_finite() && k > 1.0 { k } else { 2.0 };
        let p = if p.is_finite() && p > 0.0 && p < 1.0 {
            p
        } else {
            1e-6
        };
        CusumParams {
            ln_k: k.ln(),
            k_minus_1: k - 1.0,
            h: -p.ln(),
        }
    }

    /// The increment of one step with count `x`, expectation `mu`,
    /// dispersion `phi` (variance / mean, ≥ 1).
    pub fn increment(&self, x: f64, mu: f64, phi: f64) -> f64 {
        (x * self.ln_k - self.k_minus_1 * mu) / phi.max(1.0)
    }

    /// The smallest count `x` of a step that takes a statistic at `stat` to
    /// the threshold, given that step's `mu` and `phi`.
    pub fn needed(&self, stat: f64, mu: f64, phi: f64) -> f64 {
        ((self.h - stat).max(0.0) * phi.max(1.0) + self.k_minus_1 * mu) / self.ln_k
    }
}

impl Cusum {
    /// The statistic after a step with count `x`, without taking it.
    pub fn peek(&self, p: &CusumParams, x: f64, mu: f64, phi: f64) -> f64 {
        (f64::from(self.stat) + p.increment(x, mu, phi)).max(0.0)
    }

    /// Takes one step covering [`t`, `next_t`): returns the new statistic.
    /// When the statistic falls back to 0 the run restarts at `next_t`.
    pub fn step(&mut self, p: &CusumParams, x: f64, mu: f64, phi: f64, t: i64, next_t: i64) -> f64 {
        let s = f64::from(self.stat) + p.increment(x, mu, phi);
        if s <= 0.0 || !s.is_finite() {
            *self = Cusum {
                run_start: next_t,
                ..Cusum::default()
            };
            return 0.0;
        }
        if self.stat <= 0.0 {
            self.run_start = t;
            self.observed = 0.0;
            self.expected = 0.0;
        }
        self.stat = s as f32;
        self.observed += x as f32;
        self.expected += mu as f32;
        s
    }

    /// `n` steps with no count and expectation `mu` each (a quiet stretch),
    /// in O(1).
    pub fn quiet(&mut self, p: &CusumParams, n: f64, mu: f64, phi: f64, next_t: i64) {
        if self.stat <= 0.0 {
            return;
        }
        let s = f64::from(self.stat) - n * p.k_minus_1 * mu / phi.max(1.0);
        if s <= 0.0 {
            *self = Cusum {
                run_start: next_t,
                ..Cusum::default()
            };
        } else {
            self.stat = s as f32;
            self.expected += (n * mu) as f32;
        }
    }

    /// Starts over (after an alarm, or when the baseline is unknown).
    pub fn reset(&mut self, next_t: i64) {
        *self = Cusum {
            run_start: next_t,
            ..Cusum::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &CusumParams, xs: &[f64], mu: f64, phi: f64) -> Option<usize> {
        let mut c = Cusum::default();
        for (i, &x) in xs.iter().enumerate() {
            if c.step(p, x, mu, phi, i as i64, i as i64 + 1) >= p.h {
                return Some(i);
            }
        }
        None
    }

    #[test]
    fn a_sustained_moderate_multiple_fires_though_no_step_is_unusual() {
        let p = CusumParams::new(4.0, 1e-6);
        // 3x a baseline of 2 per step: 6 per step, not improbable in any one
        // step (P(X >= 6 | Poisson 2) ≈ 0.017), fires within a few steps.
        let at = run(&p, &[6.0; 30], 2.0, 1.0).expect("fires");
        assert!((3..=8).contains(&at), "fired at step {at}");
    }

    #[test]
    fn ratios_below_break_even_never_accumulate() {
        let p = CusumParams::new(4.0, 1e-6);
        // 1.8x for a very long time at high volume: drifts down.
        assert_eq!(run(&p, &[45.0; 10_000], 25.0, 1.0), None);
        // The break-even ratio is (k - 1) / ln k.
        let be = p.k_minus_1 / p.ln_k;
        assert!((be - 2.164).abs() < 1e-3, "{be}");
    }

    #[test]
    fn dispersion_slows_it_down() {
        let p = CusumParams::new(4.0, 1e-6);
        let fast = run(&p, &[8.0; 100], 2.0, 1.0).expect("fires");
        let slow = run(&p, &[8.0; 100], 2.0, 4.0).expect("fires");
        assert!(slow > fast, "{slow} vs {fast}");
    }

    #[test]
    fn needed_is_the_exact_crossing_count() {
        let p = CusumParams::new(4.0, 1e-6);
        let c = Cusum {
            stat: 5.0,
            ..Cusum::default()
        };
        let x = p.needed(5.0, 3.0, 2.0);
        assert!((c.peek(&p, x, 3.0, 2.0) - p.h).abs() < 1e-9);
        assert!(c.peek(&p, x - 0.01, 3.0, 2.0) < p.h);
    }

    #[test]
    fn the_run_is_the_window_that_fired() {
        let p = CusumParams::new(4.0, 1e-6);
        let mut c = Cusum::default();
        for t in 0..50 {
            c.step(&p, 2.0, 2.0, 1.0, t, t + 1);
        }
        assert_eq!(c.stat, 0.0);
        for t in 50..60 {
            c.step(&p, 8.0, 2.0, 1.0, t, t + 1);
        }
        assert_eq!(c.run_start, 50);
        assert_eq!(c.observed, 80.0);
        assert_eq!(c.expected, 20.0);
        c.quiet(&p, 1000.0, 2.0, 1.0, 1060);
        assert_eq!((c.stat, c.run_start), (0.0, 1060));
    }

    #[test]
    fn false_alarm_rate_under_the_baseline_is_below_p() {
        // Poisson(0.5) steps for 200k steps with a small p: runs reaching h
        // are bounded by p per run (Wald); expect none at p = 1e-6.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut uniform = || {
            // xorshift64*: good enough for a test stream.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        };
        let p = CusumParams::new(4.0, 1e-6);
        let mut c = Cusum::default();
        let l = (-0.5f64).exp();
        let mut alarms = 0;
        for t in 0..200_000 {
            let (mut k, mut prod) = (0.0, 1.0);
            loop {
                prod *= uniform();
                if prod <= l {
                    break;
                }
                k += 1.0;
            }
            if c.step(&p, k, 0.5, 1.0, t, t + 1) >= p.h {
                alarms += 1;
                c.reset(t + 1);
            }
        }
        assert_eq!(alarms, 0);
    }
}
