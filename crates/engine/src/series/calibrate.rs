//! Calibration of surprises against the series' own history — the anomaly
//! likelihood idea (Numenta): a model's tail probability is only as good as
//! the model, so what is reported is how rare *this* surprise is among the
//! surprises this series has produced, not the model's raw number.
//!
//! The history is an exponentially decayed histogram of surprises (bins of
//! 1/8 of a log10 unit, a Fenwick tree so a tail sum is O(log bins)). The
//! calibrated tail probability of surprise `u` is
//! `(weight of past surprises ≥ u + w) / (total + w)` — the rank of `u`
//! among the history, with the current row's own weight `w` as the prior — and
//! beyond the largest surprise seen it keeps falling, by `tail_slope` log10
//! units per unit of excess: a value far beyond anything seen scores beyond
//! what the history alone can say.

/// Histogram bins per log10 unit of surprise.
const BINS_PER_UNIT: f64 = 8.0;
/// Bins: surprises up to 32 log10 units are resolved, larger ones share the
/// last bin (they are far in the extrapolated tail anyway).
const BINS: usize = 256;
/// The extrapolation measures excess against at least this much surprise
/// (a history of exact zeros must not make the first blip infinite).
const MIN_MAX_SEEN: f64 = 0.25;
/// Weights are rescaled when the running increment passes this.
const RESCALE_AT: f64 = 1e150;

#[derive(Clone, Debug)]
pub(crate) struct Calibrator {
    /// Fenwick tree of decayed weights, 1-based.
    tree: Vec<f64>,
    total: f64,
    /// Weight of the next row; grows by `growth` per row (decay without
    /// touching the history).
    w: f64,
    growth: f64,
    /// Largest surprise seen, decaying slowly so one old outlier does not
    /// mask the tail forever.
    max_seen: f64,
    max_decay: f64,
    tail_slope: f64,
}

fn bin(u: f64) -> usize {
    if u.is_nan() || u <= 0.0 {
        0
    } else {
        ((u * BINS_PER_UNIT) as usize).min(BINS - 1)
    }
}

impl Calibrator {
    pub(crate) fn new(memory_rows: u32, tail_slope: f64) -> Self {
        let m = f64::from(memory_rows.max(2));
        Calibrator {
            tree: vec![0.0; BINS + 1],
            total: 0.0,
            w: 1.0,
            growth: 1.0 / (1.0 - 1.0 / m),
            max_seen: 0.0,
            max_decay: 1.0 - 1.0 / m,
            tail_slope,
        }
    }

    /// Sum of the weights of bins `< b`.
    fn below(&self, b: usize) -> f64 {
        let mut i = b;
        let mut s = 0.0;
        while i > 0 {
            s += self.tree[i];
            i &= i - 1;
        }
        s
    }

    /// −log10 of the calibrated tail probability of surprise `u`.
    pub(crate) fn calibrated(&self, u: f64) -> f64 {
        let at_least = (self.total - self.below(bin(u))).max(0.0);
        let mut c = -((at_least + self.w) / (self.total + self.w)).log10();
        let floor = self.max_seen.max(MIN_MAX_SEEN);
        if u > floor {
            c += self.tail_slope * (u - floor);
        }
        c.max(0.0)
    }

    /// Adds `u` to the history.
    pub(crate) fn learn(&mut self, u: f64) {
        let mut i = bin(u) + 1;
        while i <= BINS {
            self.tree[i] += self.w;
            i += i & i.wrapping_neg();
        }
        self.total += self.w;
        self.w *= self.growth;
        self.max_seen = (self.max_seen * self.max_decay).max(u);
        if self.w > RESCALE_AT {
            let k = 1.0 / self.w;
            for t in &mut self.tree {
                *t *= k;
            }
            self.total *= k;
            self.w = 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_surprise_is_judged_by_its_rank_in_the_history() {
        let mut c = Calibrator::new(10_000, 0.5);
        for i in 0..1000 {
            c.learn(f64::from(i % 10) / 4.0);
        }
        // Half the history is >= 1.25: calibrated p ≈ 0.5.
        let half = c.calibrated(1.25);
        assert!((half - 0.5f64.log10().abs()).abs() < 0.05, "{half}");
        // The largest seen: ≈ 1 in 10.
        assert!((c.calibrated(2.25) - 1.0).abs() < 0.1);
        // Beyond everything: rank 1/1001, plus 0.5 per unit beyond 2.25.
        let far = c.calibrated(10.0);
        let want = 3.0 + 0.5 * (10.0 - 2.25);
        assert!((far - want).abs() < 0.1, "{far} vs {want}");
        assert_eq!(c.calibrated(0.0), 0.0);
    }

    #[test]
    fn old_history_fades() {
        let mut c = Calibrator::new(100, 0.5);
        for _ in 0..100 {
            c.learn(5.0);
        }
        let fresh = c.calibrated(5.0);
        for _ in 0..2000 {
            c.learn(0.0);
        }
        assert!(fresh < 0.1, "{fresh}");
        assert!(c.calibrated(5.0) > 2.0, "{}", c.calibrated(5.0));
    }

    #[test]
    fn weights_are_rescaled_without_changing_answers() {
        let mut c = Calibrator::new(16, 0.5);
        for i in 0..20_000 {
            c.learn(f64::from(i % 7));
        }
        let v = c.calibrated(3.0);
        assert!(v.is_finite() && v > 0.0 && v < 2.0, "{v}");
    }
}
