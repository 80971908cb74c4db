//! Alertmanager resolutions held back until their alert has been firing for
//! `min_firing_seconds` (why: `alertmanager.rs`, module docs).
//!
//! Bounded: only a resolution of an alert still in the output's open table
//! is held, and at most `max_open_alerts` at once (the dispatcher sends any
//! beyond at once).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Items waiting for their due time, earliest first.
#[derive(Debug)]
pub(super) struct Held<T> {
    items: VecDeque<(Instant, T)>,
}

impl<T> Default for Held<T> {
    fn default() -> Self {
        Held {
            items: VecDeque::new(),
        }
    }
}

/// When a resolution of an alert first pushed at `pushed` may be sent, if
/// that is later than `now`.
pub(super) fn due(pushed: Instant, min_firing: Duration, now: Instant) -> Option<Instant> {
    let due = pushed.checked_add(min_firing)?;
    (due > now).then_some(due)
}

impl<T> Held<T> {
    /// Holds `item` until `due`; items due at the same time keep their order.
    pub(super) fn hold(&mut self, due: Instant, item: T) {
        let at = self.items.partition_point(|(d, _)| *d <= due);
        self.items.insert(at, (due, item));
    }

    /// The earliest item due at or before `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.items.front().is_some_and(|(d, _)| *d <= now) {
            self.items.pop_front().map(|(_, item)| item)
        } else {
            None
        }
    }

    /// When the earliest item falls due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.items.front().map(|(d, _)| *d)
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Forgets every held item; returns how many there were.
    pub(super) fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_out_when_due_earliest_first() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut h = Held::default();
        h.hold(t0 + s(5), "b");
        h.hold(t0 + s(2), "a");
        h.hold(t0 + s(5), "c");
        assert_eq!(h.len(), 3);
        assert_eq!(h.next_due(), Some(t0 + s(2)));
        assert_eq!(h.pop_due(t0 + s(1)), None);
        assert_eq!(h.pop_due(t0 + s(2)), Some("a"));
        assert_eq!(h.pop_due(t0 + s(4)), None);
        assert_eq!(h.pop_due(t0 + s(9)), Some("b"));
        assert_eq!(h.clear(), 1);
        assert_eq!(h.next_due(), None);
    }

    #[test]
    fn due_only_while_the_alert_is_younger_than_min_firing() {
        let t0 = Instant::now();
        let min = Duration::from_secs(360);
        assert_eq!(due(t0, min, t0 + Duration::from_secs(10)), Some(t0 + min));
        assert_eq!(due(t0, min, t0 + min), None);
        assert_eq!(due(t0, Duration::ZERO, t0), None);
    }
}
