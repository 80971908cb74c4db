//! The top-K anomaly-score gauge (`tripline_integration_anomaly_score`): the
//! one metric labelled by integration id, bounded to K series.

use std::collections::HashSet;

use prometheus::GaugeVec;

/// The top-K anomaly-score gauge: at most `k` `integration_id` series, the
/// ones with the highest current score. Series that drop out of the top K are
/// removed, so the cardinality stays K however many integrations exist.
#[derive(Debug)]
pub struct TopK {
    k: usize,
    gauge: GaugeVec,
    current: HashSet<String>,
}

impl TopK {
    pub(crate) fn new(k: usize, gauge: GaugeVec) -> Self {
        TopK {
            k,
            gauge,
            current: HashSet::new(),
        }
    }

    /// Replaces the series with the top `k` of `scores` (highest first; ties
    /// broken by id so the choice is deterministic). NaN scores are ignored.
    pub fn update<'a>(&mut self, scores: impl IntoIterator<Item = (&'a str, f64)>) {
        let top = select_top_k(scores, self.k);
        let next: HashSet<String> = top.iter().map(|(id, _)| (*id).to_owned()).collect();
        for gone in self.current.difference(&next) {
            // The series exists (we created it), so removal only fails if it
            // was removed already; nothing to do either way.
            let _ = self.gauge.remove_label_values(&[gone.as_str()]);
        }
        for (id, score) in &top {
            if let Ok(g) = self.gauge.get_metric_with_label_values(&[id]) {
                g.set(*score);
            }
        }
        self.current = next;
    }

    /// The integration ids currently exported.
    pub fn current(&self) -> impl Iterator<Item = &str> {
        self.current.iter().map(String::as_str)
    }
}

/// The `k` highest-scoring entries, highest first, ties by id ascending.
/// Keeps only `k` candidates in memory whatever the input size.
fn select_top_k<'a>(
    scores: impl IntoIterator<Item = (&'a str, f64)>,
    k: usize,
) -> Vec<(&'a str, f64)> {
    if k == 0 {
        return Vec::new();
    }
    let better = |a: &(&str, f64), b: &(&str, f64)| a.1 > b.1 || (a.1 == b.1 && a.0 < b.0);
    let mut top: Vec<(&'a str, f64)> = Vec::with_capacity(k + 1);
    for entry in scores {
        if entry.1.is_nan() {
            continue;
        }
        if top.len() == k {
            // `top` is sorted best-first; skip anything not better than the worst.
            match top.last() {
                Some(worst) if !better(&entry, worst) => continue,
                _ => {}
            }
        }
        let pos = top.partition_point(|e| better(e, &entry));
        top.insert(pos, entry);
        top.truncate(k);
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_top_k_cases() {
        let check = |input: &[(&'static str, f64)], k: usize, expect: &[&str]| {
            let got: Vec<&str> = select_top_k(input.iter().copied(), k)
                .into_iter()
                .map(|e| e.0)
                .collect();
            assert_eq!(got, expect, "input {input:?} k {k}");
        };
        check(&[], 3, &[]);
        check(&[("a", 1.0)], 0, &[]);
        check(&[("a", 1.0), ("b", 2.0), ("c", 3.0)], 2, &["c", "b"]);
        check(&[("b", 1.0), ("a", 1.0), ("c", 1.0)], 2, &["a", "b"]);
        check(&[("a", f64::NAN), ("b", 0.0)], 5, &["b"]);
        let many: Vec<(&str, f64)> = (0..1000).map(|i| ("x", i as f64)).collect();
        assert_eq!(
            select_top_k(many.iter().copied(), 3)
                .iter()
                .map(|e| e.1)
                .collect::<Vec<_>>(),
            vec![999.0, 998.0, 997.0]
        );
    }
}
