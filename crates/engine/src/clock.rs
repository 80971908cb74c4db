//! Event time you can trust: the robust stream time of one engine (one
//! partition) and each integration's own clock.
//!
//! Event time is written by the people tripline watches, so no single event
//! — nor two — may move a clock:
//! - Each integration's clock is its own watermark: an event moves it at
//!   most `max_future_skew` ahead of the integration's own accepted events
//!   (never the partition's), so what is decided about an integration
//!   depends on its own ordered events and any partitioning of the stream
//!   decides the same for honest traffic (`replay --threads`, Kafka).
//! - [`Jump`]: an event more than `max_future_skew` ahead of its
//!   integration's clock is out of range unless it confirms a jump: the
//!   [`CONFIRM`]-th consecutive such event of that integration, none of
//!   them contradicted by the partition (an event of another integration
//!   accepted in between and dated more than the skew before it). A forged
//!   event is contradicted by the integration's own honest events and by
//!   the live traffic around it; a genuinely sparse integration (one that
//!   wakes up after a weekend) is followed after [`CONFIRM`] events, and
//!   the same in every partitioning.
//! - [`StreamClock`]: the partition's stream time — the idle sweep, the
//!   alert-budget windows, the bound on a *new* integration's first event —
//!   is the [`RANK`]-th highest of the last [`WINDOW`] accepted event
//!   times. It is *established* once [`WINDOW`] events were seen: before
//!   that it bounds nothing (a forged first event of the partition cannot
//!   set it), and an integration whose clock started before it is
//!   *tentative* until it has [`CONFIRM`] events (its clock restarts at an
//!   event that disagrees with it, see `Engine::process`). Once
//!   established it is monotone and each event enters its window at most
//!   `max_future_skew` ahead of it.

use serde::{Deserialize, Serialize};

/// Recent event times kept.
pub const WINDOW: usize = 16;
/// Rank of the stream time among them (1 = the maximum).
pub const RANK: usize = 3;
/// Consecutive uncontradicted events beyond the skew that confirm a jump.
pub const CONFIRM: u8 = 3;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamClock {
    recent: Vec<i64>,
    next: usize,
    /// The current stream time (`None` before the first event).
    now: Option<i64>,
}

impl StreamClock {
    /// Records an accepted event time and returns the stream time including
    /// it. `skew` bounds how far one event may pull an established window
    /// ahead.
    pub fn observe(&mut self, ts: i64, skew: i64) -> i64 {
        let was = self.established();
        let ts = match self.now {
            Some(now) if was => ts.min(now.saturating_add(skew)),
            _ => ts,
        };
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
            Some(prev) if was => prev.max(t),
            _ => t,
        };
        self.now = Some(now);
        now
    }

    /// The stream time: before it is established, the [`RANK`]-th highest
    /// (so at first the lowest) of the times seen, bounding nothing.
    pub fn now(&self) -> Option<i64> {
        self.now
    }

    /// Whether [`WINDOW`] events were seen: the stream time then bounds
    /// new integrations' first events.
    pub fn established(&self) -> bool {
        self.recent.len() >= WINDOW
    }
}

/// One integration's run of events beyond the skew of its own clock, and
/// whether that clock is still tentative.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Jump {
    /// Consecutive events of the run (0: none).
    n: u8,
    /// The partition's count of accepted events at the run's last event:
    /// an event accepted since may contradict the run.
    mark: u64,
    /// The run began with the integration's very first event (its learning
    /// start was bounded too, and moves with a confirmed jump).
    #[serde(default)]
    first: bool,
    /// The integration's clock started before the partition's stream time
    /// was established: until it has [`CONFIRM`] events, an event far from
    /// it restarts it (`Engine::process`).
    #[serde(default)]
    tentative: bool,
}

impl Jump {
    /// An event of this integration beyond the bound of its clock; `seq`
    /// is the partition's count of accepted events and `contradicted`
    /// whether one accepted since the run's last event is dated more than
    /// the skew before this one. Returns whether the jump is confirmed (the
    /// event may move the integration's clocks). `first`: this is the
    /// integration's first event.
    pub fn ahead(&mut self, seq: u64, contradicted: bool, first: bool) -> bool {
        if self.n == 0 || (contradicted && self.mark != seq) {
            self.n = 1;
            self.first = first;
        } else {
            self.n = self.n.saturating_add(1);
        }
        self.mark = seq;
        self.n >= CONFIRM
    }

    /// The partition's count of accepted events at the run's last event.
    pub fn mark(&self) -> u64 {
        self.mark
    }

    /// An event of this integration inside the bound ends any run.
    pub fn reset(&mut self) {
        self.n = 0;
        self.first = false;
    }

    /// Whether the current run began with the integration's first event.
    pub fn began_with_first_event(&self) -> bool {
        self.n > 0 && self.first
    }

    /// Whether the integration's clock started before the partition's
    /// stream time was established.
    pub fn tentative(&self) -> bool {
        self.tentative
    }

    pub(crate) fn set_tentative(&mut self, t: bool) {
        self.tentative = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_outlier_cannot_move_the_stream_time_but_a_real_jump_is_followed() {
        let skew = 100;
        let mut c = StreamClock::default();
        for i in 0..20 {
            c.observe(1_000 + i, skew);
        }
        assert!(c.established());
        // Even accepted, one far event enters the window at most `skew` ahead.
        assert_eq!(c.observe(i64::MAX / 2, skew), 1_018);
        assert_eq!(c.observe(0, skew), 1_018);
        assert_eq!(c.observe(1_020, skew), 1_019);
        // The whole stream moves on: followed, at most `skew` per event.
        let mut prev = c.now().unwrap();
        for _ in 0..400 {
            let t = c.observe(9_000, skew);
            assert!(t >= prev && t <= prev + skew, "{prev} -> {t}");
            prev = t;
        }
        assert_eq!(prev, 9_000);
    }

    #[test]
    fn a_forged_first_event_does_not_set_the_stream_time() {
        for forged in [0, i64::MAX / 2] {
            let mut c = StreamClock::default();
            c.observe(forged, 100);
            assert!(!c.established());
            for i in 0..WINDOW as i64 {
                c.observe(1_000_000 + i, 100);
            }
            assert!(c.established());
            let now = c.now().unwrap();
            assert!((1_000_000..1_000_016).contains(&now), "{forged}: {now}");
        }
    }

    #[test]
    fn a_jump_needs_confirm_consecutive_uncontradicted_events() {
        let mut j = Jump::default();
        assert!(!j.ahead(5, false, false));
        assert!(!j.ahead(5, false, false));
        // An event accepted since, dated far before, contradicts the run.
        assert!(!j.ahead(6, true, false));
        assert!(!j.ahead(6, false, false));
        // Events accepted since that agree with the jump do not.
        assert!(j.ahead(7, false, false));
        assert!(j.ahead(7, false, false));
        // A contradiction with nothing accepted since is no contradiction.
        assert!(j.ahead(7, true, false));
        // The integration's own in-bound event ends it.
        j.reset();
        assert!(!j.ahead(7, false, false));
    }
}
