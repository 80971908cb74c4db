//! Small sampling helpers on top of `rand` 0.8 (no `rand_distr`).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub(crate) type SimRng = ChaCha8Rng;

/// Standard normal via Box-Muller.
pub(crate) fn normal(rng: &mut SimRng) -> f64 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Poisson count: Knuth's product method for small means, a rounded normal
/// approximation above 30.
pub(crate) fn poisson(rng: &mut SimRng, lambda: f64) -> u32 {
    if lambda.is_nan() || lambda <= 0.0 || !lambda.is_finite() {
        return 0;
    }
    if lambda > 30.0 {
        let v = lambda + lambda.sqrt() * normal(rng);
        return v.round().clamp(0.0, f64::from(u32::MAX / 2)) as u32;
    }
    let l = (-lambda).exp();
    let mut k = 0u32;
    let mut p = 1.0;
    loop {
        p *= rng.gen::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// Uniform in [lo, hi).
pub(crate) fn uniform(rng: &mut SimRng, lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        lo
    } else {
        rng.gen_range(lo..hi)
    }
}

/// True with probability `p`.
pub(crate) fn chance(rng: &mut SimRng, p: f64) -> bool {
    rng.gen::<f64>() < p
}

/// Index drawn by weight; 0 when all weights are zero.
pub(crate) fn weighted(rng: &mut SimRng, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    if total.is_nan() || total <= 0.0 {
        return 0;
    }
    let mut x = rng.gen::<f64>() * total;
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        last = i;
        if x < w {
            return i;
        }
        x -= w;
    }
    last
}
