//! Recurrence: a surprise that the same time of day produced on earlier
//! days is a habit of the series (a nightly batch job, a daily report), not
//! news. The calibrator ranks a surprise against *all* earlier surprises, so
//! a once-a-day spike ranks as a once-a-day event — rare enough to alarm
//! every day. This remembers, per time-of-day slot, the largest point
//! surprise of earlier days (decayed per day), and the scorer damps a row's
//! calibrated surprise when it is no larger than `recurrence_ratio` times
//! what its slot and the two neighbouring ones produced before.
//!
//! Only for rows denser than the slots: on daily (or sparser) rows every
//! row would share one slot and "the same time of day" means nothing.

use super::config::SeriesConfig;

const DAY_MS: i64 = 86_400_000;

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// The day `today` belongs to; `i64::MIN` while the slot is unseen.
    day: i64,
    /// Largest point surprise in this slot on `day`.
    today: f64,
    /// Largest point surprise in this slot on earlier days, decayed.
    earlier: f64,
}

const UNSEEN: Slot = Slot {
    day: i64::MIN,
    today: 0.0,
    earlier: 0.0,
};

#[derive(Clone, Debug)]
pub(crate) struct Recurrence {
    slot_ms: i64,
    decay: f64,
    /// Created on first use (one day of slots).
    slots: Vec<Slot>,
    last_ts: Option<i64>,
}

impl Recurrence {
    pub(crate) fn new(cfg: &SeriesConfig) -> Self {
        Recurrence {
            slot_ms: i64::from(cfg.recurrence_slot_minutes.clamp(1, 1440)) * 60_000,
            decay: cfg.recurrence_decay,
            slots: Vec::new(),
            last_ts: None,
        }
    }

    fn index(&self, ts: i64) -> usize {
        (ts.rem_euclid(DAY_MS) / self.slot_ms) as usize
    }

    /// Moves slot `i` to `day`: what it saw on its own day joins the
    /// earlier days, and everything earlier decays by the days passed.
    fn roll(&mut self, i: usize, day: i64) {
        let decay = self.decay;
        if let Some(s) = self.slots.get_mut(i) {
            if s.day == i64::MIN {
                s.day = day;
            } else if s.day < day {
                let days = i32::try_from(day - s.day).unwrap_or(i32::MAX);
                s.earlier = s.earlier.max(s.today) * decay.powi(days);
                s.today = 0.0;
                s.day = day;
            }
        }
    }

    /// Folds in a row's point surprise and returns the largest point
    /// surprise its slot and the two neighbouring slots produced on earlier
    /// days (0 when none, or when rows are too sparse for slots to mean
    /// anything).
    pub(crate) fn observe(&mut self, ts: i64, point: f64) -> f64 {
        let dense = self
            .last_ts
            .is_some_and(|last| ts > last && ts - last < self.slot_ms);
        self.last_ts = Some(self.last_ts.map_or(ts, |l| l.max(ts)));
        if self.slots.is_empty() {
            let n = (DAY_MS / self.slot_ms).max(1) as usize;
            self.slots = vec![UNSEEN; n];
        }
        let n = self.slots.len();
        let day = ts.div_euclid(DAY_MS);
        let k = self.index(ts) % n;
        let mut earlier = 0.0f64;
        for i in [(k + n - 1) % n, k, (k + 1) % n] {
            self.roll(i, day);
            if let Some(s) = self.slots.get(i) {
                earlier = earlier.max(s.earlier);
            }
        }
        if let Some(s) = self.slots.get_mut(k) {
            s.today = s.today.max(point);
        }
        if dense {
            earlier
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn rec() -> Recurrence {
        Recurrence::new(&SeriesConfig::default())
    }

    /// Five-minute rows for a week, all 0.1 except 5.0 at 03:00 of day 0;
    /// what `observe` returned at each row.
    fn week() -> Vec<(i64, f64)> {
        let mut r = rec();
        let t0 = 10 * DAY_MS;
        (0..7 * 288)
            .map(|i| {
                let ts = t0 + i * 300_000;
                let point = if i == 36 { 5.0 } else { 0.1 };
                (ts - t0, r.observe(ts, point))
            })
            .collect()
    }

    fn at(w: &[(i64, f64)], t: i64) -> f64 {
        w.iter().find(|(ts, _)| *ts == t).map_or(f64::NAN, |x| x.1)
    }

    #[test]
    fn a_surprise_is_remembered_for_the_same_time_on_later_days() {
        let w = week();
        // Day 0 has no earlier day.
        assert_eq!(at(&w, 3 * HOUR + 600_000), 0.0);
        // Day 1 within an hour of 03:00: remembered, decayed once.
        let next = at(&w, DAY_MS + 3 * HOUR + 1_800_000);
        assert!((next - 5.0 * 0.8).abs() < 1e-9, "{next}");
        // Day 1 far from it: only the ordinary rows' 0.1.
        let far = at(&w, DAY_MS + 9 * HOUR);
        assert!((far - 0.1 * 0.8).abs() < 1e-9, "{far}");
        // Five days on it has faded by 0.8 per day.
        let later = at(&w, 6 * DAY_MS + 3 * HOUR);
        assert!((later - 5.0 * 0.8f64.powi(6)).abs() < 1e-9, "{later}");
    }

    #[test]
    fn sparse_rows_have_no_time_of_day() {
        let mut r = rec();
        for d in 0..10 {
            assert_eq!(r.observe(d * DAY_MS, 3.0), 0.0);
        }
    }
}
