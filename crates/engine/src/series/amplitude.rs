//! Amplitude memory: a residual about as large as the largest this series
//! produced within the last `amplitude_memory_rows` rows is a repeat, not
//! news — a server whose disk writes jump from 0 to 4e8 a few times a day
//! is doing what it does.
//!
//! The calibrator alone cannot see this: it ranks *surprises*, residuals in
//! units of a running error scale, and on a series that rests on a floor
//! between rare bursts that scale shrinks during every quiet spell, so the
//! same burst reads as a larger surprise each time it returns after a
//! pause (and beyond the largest surprise seen the calibrator extrapolates).
//! Residuals in the series' own units do not drift that way.
//!
//! Magnitudes, both directions together: when a profile has learned a burst
//! that then comes a few minutes late, the row where it was expected misses
//! downward by the burst's size — the same event seen from the other side.
//!
//! The memory is a windowed maximum kept per block of rows (a ring of block
//! maxima): O(1) per row, O(blocks) once per block.

/// Rows per block of the ring.
pub(crate) const BLOCK_ROWS: u32 = 64;

#[derive(Clone, Debug)]
pub(crate) struct Amplitude {
    /// Largest residual magnitude of each completed block in the ring.
    blocks: Vec<f64>,
    /// Next block slot to overwrite once the ring is full.
    next: usize,
    /// The current block's largest magnitude and its rows so far.
    current: f64,
    current_rows: u32,
    /// Largest magnitude over the completed blocks in the ring.
    completed: f64,
    capacity: usize,
}

impl Amplitude {
    pub(crate) fn new(memory_rows: u32) -> Self {
        let capacity = (memory_rows / BLOCK_ROWS).max(1) as usize;
        Amplitude {
            blocks: Vec::with_capacity(capacity),
            next: 0,
            current: 0.0,
            current_rows: 0,
            completed: 0.0,
            capacity,
        }
    }

    /// Folds in a row's residual (value − prediction) and returns the
    /// largest residual magnitude among the earlier rows in memory (0 when
    /// there is none).
    pub(crate) fn observe(&mut self, resid: f64) -> f64 {
        if !resid.is_finite() {
            return 0.0;
        }
        let earlier = self.completed.max(self.current);
        self.current = self.current.max(resid.abs());
        self.current_rows += 1;
        if self.current_rows == BLOCK_ROWS {
            if self.blocks.len() < self.capacity {
                self.blocks.push(self.current);
            } else if let Some(b) = self.blocks.get_mut(self.next) {
                *b = self.current;
            }
            self.next = (self.next + 1) % self.capacity;
            self.current = 0.0;
            self.current_rows = 0;
            self.completed = self.blocks.iter().copied().fold(0.0, f64::max);
        }
        earlier
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_residual_is_compared_with_the_largest_earlier_one() {
        let mut a = Amplitude::new(1024);
        assert_eq!(a.observe(5.0), 0.0);
        assert_eq!(a.observe(3.0), 5.0);
        // Magnitudes: a miss downward is measured against bursts upward.
        assert_eq!(a.observe(-2.0), 5.0);
        for _ in 0..500 {
            a.observe(0.5);
        }
        assert_eq!(a.observe(-7.0), 5.0);
        assert_eq!(a.observe(1.0), 7.0);
        assert_eq!(a.observe(f64::NAN), 0.0);
    }

    #[test]
    fn residuals_older_than_the_memory_are_forgotten() {
        let mut a = Amplitude::new(4 * BLOCK_ROWS);
        a.observe(9.0);
        // The 9 is in the first block; once a fifth block has overwritten
        // it in the ring of four it is gone.
        for _ in 0..(4 * BLOCK_ROWS - 1) {
            a.observe(1.0);
        }
        assert_eq!(a.observe(2.0), 9.0);
        for _ in 0..BLOCK_ROWS {
            a.observe(1.0);
        }
        assert_eq!(a.observe(2.0), 2.0);
    }
}
