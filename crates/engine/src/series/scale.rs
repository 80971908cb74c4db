//! The value scale a series is scored on: its values, or their logarithm
//! (a *multiplicative* series — prices, byte rates — whose noise grows with
//! its level, where a fall from 0.16 to 0.001 is a fall by 99 %, not by
//! 0.16). Chosen from the data, never from a name.
//!
//! Both scales are scored side by side for the first `scale_rows` rows
//! (while every value is positive). Each model's residuals are read as a
//! Laplace sample (the continuous model's tails); the log model's
//! likelihood of the *values* carries the Jacobian `−ln x`. The two
//! per-row log-likelihoods, at their maximum-likelihood scales
//! (`b = mean |residual|`), differ by
//! `d = ln b_lin − ln b_log − ln x + |r_lin| / b_lin − |r_log| / b_log`
//! (the constants cancel in the mean). The log scale is chosen when
//! Vuong's statistic `√n · mean(d) / sd(d)` — the standard test between
//! two non-nested models — exceeds `scale_z`: a clearly better description
//! of the data, not a tie broken by noise.

/// Running sums of the three per-row quantities that make up `d`:
/// `a = |r_lin|`, `b = |r_log|`, `c = ln x` (shifted by the first `ln x`,
/// for precision; variances do not depend on the shift).
#[derive(Clone, Debug, Default)]
pub(crate) struct ScaleChoice {
    n: f64,
    c0: Option<f64>,
    s: [f64; 3],
    /// Sums of products: aa, bb, cc, ab, ac, bc.
    p: [f64; 6],
}

impl ScaleChoice {
    /// One row both models predicted: its two residuals and `ln x`.
    pub(crate) fn observe(&mut self, resid_lin: f64, resid_log: f64, ln_x: f64) {
        let c0 = *self.c0.get_or_insert(ln_x);
        let (a, b, c) = (resid_lin.abs(), resid_log.abs(), ln_x - c0);
        if !(a.is_finite() && b.is_finite() && c.is_finite()) {
            return;
        }
        self.n += 1.0;
        self.s[0] += a;
        self.s[1] += b;
        self.s[2] += c;
        self.p[0] += a * a;
        self.p[1] += b * b;
        self.p[2] += c * c;
        self.p[3] += a * b;
        self.p[4] += a * c;
        self.p[5] += b * c;
    }

    /// Vuong's statistic for the log scale against the linear one
    /// (positive: the log scale describes the values better); `None`
    /// when it is undefined (too few rows, a perfect fit, no variance).
    pub(crate) fn vuong(&self) -> Option<f64> {
        let n = self.n;
        if n < 8.0 {
            return None;
        }
        let c0 = self.c0?;
        let (ma, mb, mc) = (self.s[0] / n, self.s[1] / n, self.s[2] / n);
        if !(ma > 0.0 && mb > 0.0) {
            return None;
        }
        let mean_d = ma.ln() - mb.ln() - (mc + c0);
        // d_i − const = a/ma − b/mb − c: a linear combination of (a, b, c).
        let cov = |sxy: f64, mx: f64, my: f64| sxy / n - mx * my;
        let (va, vb, vc) = (
            cov(self.p[0], ma, ma),
            cov(self.p[1], mb, mb),
            cov(self.p[2], mc, mc),
        );
        let (cab, cac, cbc) = (
            cov(self.p[3], ma, mb),
            cov(self.p[4], ma, mc),
            cov(self.p[5], mb, mc),
        );
        let (ka, kb, kc) = (1.0 / ma, -1.0 / mb, -1.0);
        let var = ka * ka * va
            + kb * kb * vb
            + kc * kc * vc
            + 2.0 * (ka * kb * cab + ka * kc * cac + kb * kc * cbc);
        (var > 0.0 && var.is_finite()).then(|| n.sqrt() * mean_d / var.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::series::tests::noise;

    /// Residuals of a known level on both scales.
    fn choose(values: &[f64], level: f64) -> f64 {
        let mut c = ScaleChoice::default();
        for &x in values {
            c.observe(x - level, x.ln() - level.ln(), x.ln());
        }
        c.vuong().unwrap_or(f64::NAN)
    }

    #[test]
    fn multiplicative_noise_prefers_the_log_scale_and_additive_noise_does_not() {
        let mut n = noise(5);
        // Noise of a factor e^(±1): a price wandering by multiples.
        let mult: Vec<f64> = (0..500).map(|_| 10.0 * (1.5 * n()).exp()).collect();
        let add: Vec<f64> = (0..500).map(|_| 10.0 + 3.0 * n()).collect();
        let (zm, za) = (choose(&mult, 10.0), choose(&add, 10.0));
        assert!(zm > 3.0, "multiplicative: {zm}");
        assert!(za < 1.0, "additive: {za}");
    }

    #[test]
    fn units_do_not_change_the_choice() {
        let mut n = noise(9);
        let v: Vec<f64> = (0..300).map(|_| 5.0 * (n()).exp()).collect();
        let scaled: Vec<f64> = v.iter().map(|x| x * 1e6).collect();
        let (z1, z2) = (choose(&v, 5.0), choose(&scaled, 5e6));
        assert!((z1 - z2).abs() < 1e-6 * z1.abs().max(1.0), "{z1} vs {z2}");
    }

    #[test]
    fn a_perfect_fit_or_too_few_rows_decide_nothing() {
        let mut c = ScaleChoice::default();
        for _ in 0..100 {
            c.observe(0.0, 0.0, 3.0);
        }
        assert_eq!(c.vuong(), None);
        let mut c = ScaleChoice::default();
        c.observe(1.0, 0.1, 1.0);
        assert_eq!(c.vuong(), None);
    }
}
