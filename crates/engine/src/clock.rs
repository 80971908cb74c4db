//! The robust stream time of one engine (one partition).
//!
//! Event time is written by the people tripline watches, so no single event
//! may move a clock. The stream time is the [`RANK`]-th highest of the last
//! [`WINDOW`] event times: one (or `RANK - 1`) hostile event dated 9999 or
//! 2030 leaves it where the honest traffic is; a genuine jump of the whole
//! stream (a replay that starts later, a partition resuming after an outage)
//! is followed after `RANK` events. Never moves backwards once the window is
//! full.

use serde::{Deserialize, Serialize};

/// Recent event times kept.
pub const WINDOW: usize = 16;
/// Rank of the stream time among them (1 = the maximum).
pub const RANK: usize = 3;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamClock {
    recent: Vec<i64>,
    next: usize,
    /// The current stream time (`None` before the first event).
    now: Option<i64>,
}

impl StreamClock {
    /// Records an event time and returns the stream time including it.
    pub fn observe(&mut self, ts: i64) -> i64 {
        if self.recent.len() < WINDOW {
            self.recent.push(ts);
        } else {
            self.recent[self.next] = ts;
        }
        self.next = (self.next + 1) % WINDOW;
        let mut w = [i64::MIN; WINDOW];
        let n = self.recent.len();
        w[..n].copy_from_slice(&self.recent);
        let k = RANK.min(n);
        let (_, kth, _) = w[..n].select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
        let t = *kth;
        let now = match self.now {
            Some(prev) if n >= RANK => prev.max(t),
            _ => t,
        };
        self.now = Some(now);
        now
    }

    pub fn now(&self) -> Option<i64> {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_outlier_cannot_move_the_stream_time_but_a_real_jump_is_followed() {
        let mut c = StreamClock::default();
        for i in 0..20 {
            c.observe(1_000 + i);
        }
        assert_eq!(c.observe(i64::MAX / 2), 1_018);
        assert_eq!(c.observe(0), 1_018);
        assert_eq!(c.observe(1_020), 1_019);
        // The whole stream moves on: followed after RANK events.
        assert_eq!(c.observe(9_000), 1_020);
        assert_eq!(c.observe(9_001), 9_000);
    }
}
