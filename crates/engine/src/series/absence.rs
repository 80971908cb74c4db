//! Absence: a series that bursts now and then and then stops bursting for
//! longer than it ever paused before is doing something new — a disk that
//! wrote every few minutes for days and goes silent. No single row of the
//! silence is surprising (each sits on the floor the model expects), so the
//! point and window channels cannot see it; what is unusual is the gap.
//!
//! A *burst* is a row whose residual (value − prediction, upward) is at
//! least `amplitude_low` × the largest residual magnitude in the amplitude
//! memory. This keeps the gaps between consecutive bursts that ended within
//! the last `amplitude_memory_rows` rows; when the gap since the last burst
//! becomes longer than `absence_ratio` × every one of them, on a series with
//! at least `absence_min_bursts` bursts in memory, the row is reported once
//! per gap with a surprise that measures the gap against the series' own
//! burst rate (see [`Absence::observe`]): random gaps (noise around the
//! prediction) make records too, and score about 0.
//!
//! State: the gaps in memory (at most one per row of the memory, reserved
//! for 256 and grown only when a series bursts more often than that); the
//! longest is rescanned only when it leaves the memory.

/// Gaps reserved up front (the memory bounds them: one gap per row at most).
const RESERVED_GAPS: usize = 256;

#[derive(Clone, Debug)]
pub(crate) struct Absence {
    /// Row index of the last burst.
    last: Option<u64>,
    /// (row the gap ended, gap length in rows), oldest first.
    gaps: std::collections::VecDeque<(u64, u64)>,
    /// Longest gap in `gaps`.
    longest: u64,
    /// The current gap was already reported.
    reported: bool,
    memory: u64,
    min_bursts: u32,
}

impl Absence {
    pub(crate) fn new(memory_rows: u32, min_bursts: u32) -> Self {
        Absence {
            last: None,
            gaps: std::collections::VecDeque::with_capacity(
                RESERVED_GAPS.min(memory_rows as usize),
            ),
            longest: 0,
            reported: false,
            memory: u64::from(memory_rows),
            min_bursts,
        }
    }

    /// Folds in row `row` (whether it is a burst) and returns the surprise
    /// of the current gap on the first row where it is longer than `ratio`
    /// × every gap in memory (once per gap), 0 otherwise.
    ///
    /// The surprise is how much rarer the gap is than a record among the
    /// gaps in memory would be if bursts came at random at the series' own
    /// rate `λ` (bursts per row in memory): `λ g log10 e`, the −log10 chance
    /// of `g` rows without a burst, less `log10(n + 1)`, the −log10 chance that
    /// the next of `n` random gaps is the longest. Noise around a
    /// prediction scores about 0 (its gaps are random); bursts that came
    /// every few rows for days and then stop score high.
    pub(crate) fn observe(&mut self, row: u64, burst: bool, ratio: f64) -> f64 {
        // The longest gap is rescanned only when it leaves the memory.
        let mut stale = false;
        while let Some(&(end, g)) = self.gaps.front() {
            if end.saturating_add(self.memory) > row {
                break;
            }
            self.gaps.pop_front();
            stale |= g == self.longest;
        }
        if burst {
            if let Some(last) = self.last {
                let g = row.saturating_sub(last);
                self.gaps.push_back((row, g));
                self.longest = self.longest.max(g);
            }
            self.last = Some(row);
            self.reported = false;
        }
        if stale {
            self.longest = self.gaps.iter().map(|g| g.1).max().unwrap_or(0);
        }
        let Some(last) = self.last else {
            return 0.0;
        };
        let n = self.gaps.len();
        let gap = row.saturating_sub(last) as f64;
        if burst
            || self.reported
            || n + 1 < self.min_bursts as usize
            || gap <= ratio * self.longest as f64
        {
            return 0.0;
        }
        self.reported = true;
        let span = self.memory.min(row.max(1)) as f64;
        let rate = (n as f64 + 1.0) / span;
        (rate * gap * std::f64::consts::LOG10_E - (n as f64 + 1.0).log10()).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows where `observe` reported a surprise, and the surprises.
    fn reports(a: &mut Absence, rows: u64, burst: impl Fn(u64) -> bool) -> Vec<(u64, f64)> {
        (0..rows)
            .filter_map(|r| {
                let s = a.observe(r, burst(r), 1.0);
                (s > 0.0).then_some((r, s))
            })
            .collect()
    }

    #[test]
    fn a_gap_longer_than_any_in_memory_is_reported_once_and_scored_by_the_burst_rate() {
        // A burst every other row, one pause (gap 30 from 1300 to 1330), then
        // silence from row 1500.
        let mut a = Absence::new(2048, 8);
        let burst = |r: u64| r <= 1500 && r.is_multiple_of(2) && !(1301..1330).contains(&r);
        let got = reports(&mut a, 3000, burst);
        assert_eq!(got.len(), 1, "{got:?}");
        let (row, s) = got[0];
        assert_eq!(row, 1531, "the first row of a gap longer than 30");
        // 737 bursts in 1531 rows; 31 rows without one: 31 × rate × log10 e,
        // less log10 of the 737 bursts (a record among 736 random gaps).
        let bursts = (0..=1500).filter(|&r| burst(r)).count() as f64;
        assert_eq!(bursts, 737.0);
        assert!(s > 3.0, "{s}");
        let want = bursts / 1531.0 * 31.0 * std::f64::consts::LOG10_E - bursts.log10();
        assert!((s - want).abs() < 1e-9, "{s} vs {want}");
    }

    #[test]
    fn too_few_bursts_are_no_rhythm_and_random_gaps_score_little() {
        let mut a = Absence::new(2048, 8);
        assert!(reports(&mut a, 2000, |r| r == 10 || r == 30 || r == 50).is_empty());
        // Bursts at random (a fixed pseudo-random sequence, ~1 in 5 rows):
        // record gaps come, but no rarer than a record among random gaps is.
        let mut a = Absence::new(2048, 8);
        let random = |r: u64| (r.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 59) < 6;
        let got = reports(&mut a, 20_000, random);
        assert!(got.iter().all(|&(_, s)| s < 1.0), "{got:?}");
    }
}
