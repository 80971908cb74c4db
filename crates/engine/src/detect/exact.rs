//! The exact window test beside the sustained CUSUM on calls.
//!
//! The CUSUM ([`crate::shift`]) is tuned to one multiple `k` (4) and judged
//! against Wald's bound `e^{−h}`. Both are loose where the remaining quiet
//! incidents live: a shift of 2.5–3x is far from the design ratio (the
//! statistic collects `x ln k − (k − 1) μ`, much less than the window's
//! log-likelihood ratio at its own ratio), and for a few dozen counts the
//! Poisson tail is orders of magnitude smaller than the bound. So the window
//! the CUSUM selected (its run since it was last 0, plus the open buckets)
//! is also judged by its **exact upper tail** under the count model the
//! level model implies: the window's sum `X` with expectation `M` is
//! negative-binomial with variance `φ M + v M²` ([`super::level`]: `v` is
//! the integration's level variance plus the slot's `1/n`), computed with
//! `statrs` ([`crate::stats::upper_tail`]).
//!
//! - **Multiplicity.** The run is the best-supported of many window starts:
//!   the tail is multiplied by `1 + log2(buckets in the window)` (the number
//!   of dyadic window lengths it competes with) before it is compared with
//!   `detectors.sustained.exact_p_value`.
//! - **Ratio floor.** The window must also be above the CUSUM's break-even
//!   ratio `(k − 1) / ln k` (2.16): an exact test alone would, on a busy
//!   integration with a steady level, call a ×1.8 afternoon significant, and
//!   fluctuations of ×1.3–1.8 for hours are ordinary. With the floor, the
//!   exact test only makes the CUSUM's own windows fire sooner and at
//!   lower counts; it never fires on a ratio the CUSUM would drift down on.
//! - **Cost.** The tail is computed only when the bucket's count passes a
//!   trigger precomputed when the bucket opens (like the CUSUM's): the count
//!   at which the window's Poisson log-likelihood ratio at its own ratio,
//!   scaled by the negative-binomial variance-to-mean ratio, reaches the
//!   threshold — a necessary condition up to the tail's shape. The hot path
//!   stays one comparison per event.

use crate::shift::CusumParams;

/// Fewest calls in a window for the exact test to speak: below this a
/// "window" is a couple of calls, the one-bucket detector's business.
pub(crate) const MIN_EXACT_COUNT: f64 = 8.0;

/// Fewest calls a window must expect for the exact test: a slot mean near
/// zero (an hour never used, or pulled down by a silence) is not a rate a
/// tail can be computed against — a handful of calls there is the CUSUM's
/// and the one-bucket detector's to judge, with their excess floors.
pub(crate) const MIN_EXACT_EXPECTED: f64 = 1.0;

/// The CUSUM's break-even ratio `(k − 1) / ln k`: windows below it never
/// accumulate; the exact test judges none either.
pub(crate) fn break_even(p: &CusumParams) -> f64 {
    p.k_minus_1 / p.ln_k
}

/// The multiplicity of a window `buckets` long chosen as the best of its
/// dyadic lengths.
pub(crate) fn scan_factor(buckets: f64) -> f64 {
    1.0 + buckets.max(1.0).log2()
}

/// The variance-to-mean ratio of a window expecting `m` at dispersion `phi`
/// and relative level variance `v`: `φ + v M`.
pub(crate) fn window_dispersion(m: f64, phi: f64, v: f64) -> f64 {
    phi.max(1.0) + v.max(0.0) * m.max(0.0)
}

/// The Poisson log-likelihood ratio of `o` counts against `m` expected at
/// the window's own ratio, divided by the variance-to-mean ratio `d`.
fn scaled_glr(o: f64, m: f64, d: f64) -> f64 {
    if o <= m || m <= 0.0 {
        return 0.0;
    }
    (o * (o / m).ln() - (o - m)) / d.max(1.0)
}

/// The smallest window count at which [`scaled_glr`] reaches `h` nats
/// (Newton on a convex increasing function; a slight underestimate, so the
/// trigger never comes late).
pub(crate) fn glr_needed(m: f64, d: f64, h: f64) -> f64 {
    let m = m.max(1e-9);
    let target = h.max(0.0) * d.max(1.0);
    // The Gaussian approximation is to the right of the root for small
    // `target` and close to it otherwise.
    let mut o = m + (2.0 * target * m).sqrt() + target / 3.0 + 1e-9;
    for _ in 0..6 {
        let l = (o / m).ln();
        if l <= 1e-12 {
            break;
        }
        let f = o * l - (o - m) - target;
        o = (o - f / l).max(m * (1.0 + 1e-9));
    }
    while o > m && scaled_glr(o, m, d) > h {
        // Step back below the root (at most a few steps).
        let next = o - (0.01 * o).max(1e-6);
        if scaled_glr(next, m, d) < h {
            break;
        }
        o = next;
    }
    o
}

/// The exact test's verdict on a window: its tail corrected for the scan,
/// in nats (−ln), or None when the window is below the floors.
///
/// `rate_base` is the expectation [`MIN_EXACT_EXPECTED`] applies to: the
/// window's own `m` for an integration; for a key, its integration's
/// expectation over the window (`m` / the key's share) — a key's small
/// share of a well-learned slot is a rate a tail can rest on, a slot near
/// zero is not.
pub(crate) fn window_nats(
    o: f64,
    m: f64,
    d: f64,
    buckets: f64,
    p: &CusumParams,
    rate_base: f64,
) -> Option<f64> {
    if o < MIN_EXACT_COUNT || rate_base < MIN_EXACT_EXPECTED || o < break_even(p) * m {
        return None;
    }
    // The count model's tail: negative-binomial at variance-to-mean `d`.
    let tail = crate::stats::upper_tail(o.round() as u64, m, d).max(1e-300);
    Some(-(tail * scan_factor(buckets)).min(1.0).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trigger_is_at_the_scaled_likelihood_ratio_threshold() {
        for &(m, d, h) in &[(5.0, 1.0, 16.0), (20.0, 1.3, 16.0), (1000.0, 11.0, 20.0)] {
            let o = glr_needed(m, d, h);
            assert!(scaled_glr(o, m, d) <= h + 1e-6, "{m} {d} {h}: {o}");
            assert!(scaled_glr(o * 1.02 + 1.0, m, d) >= h, "{m} {d} {h}: {o}");
        }
    }

    #[test]
    fn a_ten_minute_rise_of_three_times_is_exact_evidence_the_cusum_lacks() {
        // 54 calls where 20 are expected (2.7x): the k = 4 CUSUM collects
        // 54 ln 4 - 3 * 20 ≈ 15 nats, far below its 20.7; the exact tail is
        // below 1e-7 even after the scan correction (x4.3) and a 10% level
        // uncertainty.
        let p = CusumParams::new(4.0, 1e-9);
        let cusum = 54.0 * p.ln_k - p.k_minus_1 * 20.0;
        assert!(cusum < 16.0, "{cusum}");
        let d = window_dispersion(20.0, 1.0, 0.01);
        let nats = window_nats(54.0, 20.0, d, 10.0, &p, 20.0).expect("judged");
        assert!(nats > 16.1, "{nats}");
    }

    #[test]
    fn ordinary_fluctuations_are_never_judged() {
        let p = CusumParams::new(4.0, 1e-9);
        // x1.8 for hours on a busy, steady integration: hugely significant
        // under Poisson, but below the break-even ratio.
        assert_eq!(
            window_nats(18_000.0, 10_000.0, 1.0, 240.0, &p, 10_000.0),
            None
        );
        // A couple of calls where none are expected: too few to judge.
        assert_eq!(window_nats(5.0, 0.1, 1.0, 30.0, &p, 0.1), None);
        // Many calls where a slot expects almost none: no rate to judge.
        assert_eq!(window_nats(40.0, 0.5, 1.0, 30.0, &p, 0.5), None);
    }

    #[test]
    fn level_uncertainty_weakens_the_evidence_of_long_busy_windows() {
        let p = CusumParams::new(4.0, 1e-9);
        let steady = window_nats(2_500.0, 1_000.0, 1.0, 60.0, &p, 1_000.0).expect("judged");
        let wandering = window_nats(
            2_500.0,
            1_000.0,
            window_dispersion(1_000.0, 1.0, 0.3),
            60.0,
            &p,
            1_000.0,
        )
        .expect("judged");
        assert!(wandering < steady / 10.0, "{wandering} vs {steady}");
    }
}
