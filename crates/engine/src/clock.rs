//! Event time you can trust: the robust stream time of one engine (one
//! partition), the per-integration confirmation of a jump, and the
//! integration's watermark rule.
//!
//! Event time is written by the people tripline watches, so no single event
//! — nor two — may move a clock beyond the skew, nor one event a watermark:
//! - [`StreamClock`]: the stream time is the [`RANK`]-th highest of the last
//!   [`WINDOW`] *accepted* event times, each entered at most
//!   `max_future_skew` ahead of the stream time it found. Monotone once
//!   established.
//! - [`Jump`]: an event more than `max_future_skew` ahead of the stream time
//!   is out of range unless it confirms a jump of its integration: the
//!   [`CONFIRM`]-th consecutive such event of that integration with no
//!   event inside the bound (of any integration of the partition) in
//!   between. A forged event in a live stream is contradicted by the honest
//!   traffic around it; a genuinely sparse stream (an integration that wakes
//!   up a day later, a partition resuming after an outage) is followed after
//!   [`CONFIRM`] events, and the stream time then catches up by at most the
//!   skew per accepted event.
//! - A partition's first events have nothing to be judged against: while
//!   the stream time rests on fewer than [`RANK`] accepted events it is
//!   [`StreamClock::weak`], and an event more than the stale horizon
//!   (`EngineConfig::stale_ms`: `idle_evict_days`) away from it restarts it;
//!   an integration whose clock rests on fewer than [`CONFIRM`] events, all
//!   beyond that horizon from a new event that agrees with the stream time,
//!   restarts at that event. So one forged event opening a partition (dated
//!   1970 or 9999) neither sets the partition's time nor starts its
//!   integration's learning period there.
//! - A weak stream time more than a learning period behind a confirmed jump
//!   (one forged event opening a partition weeks before its stream) is
//!   outvoted by the jump's [`CONFIRM`] events and restarts at it
//!   (`Engine::process`); an integration's clocks start at its first
//!   accepted event (`IntegrationState::start_clocks_at`), and fewer than
//!   [`CONFIRM`] accepted events followed by a long silence do not count as
//!   learning (`IntegrationState::restart_learning`).
//! - [`Witnesses`]: the idle sweep and the out-of-range check of a new
//!   integration's first event run on the [`RANK`]-th newest of the
//!   distinct integrations' newest accepted times (the oldest while there
//!   are fewer), not on the stream time: one integration's forged events
//!   can ratchet the stream time a skew per three of them, but cannot evict
//!   the other integrations nor put a newcomer's first event out of range.
//! - [`advance_watermark`]: inside the skew, an integration's watermark
//!   does not follow one event more than the lateness allowance ahead of
//!   it and of the stream time until its next event confirms it.

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
    /// it. `skew` bounds how far one event may pull the window ahead.
    pub fn observe(&mut self, ts: i64, skew: i64) -> i64 {
        let ts = match self.now {
            Some(now) => ts.min(now.saturating_add(skew)),
            None => ts,
        };
        if self.recent.len() < WINDOW {
            self.recent.push(ts);
        } else {
            self.recent[self.next] = ts;
        }
        self.next = (self.next + 1) % WINDOW;
        // The RANK highest in one pass, no copy (a select over a copy of
        // the window cost ~750 instructions per event, 6% of a replay).
        let mut top = [i64::MIN; RANK];
        for &x in &self.recent {
            if x > top[RANK - 1] {
                let mut i = RANK - 1;
                while i > 0 && top[i - 1] < x {
                    top[i] = top[i - 1];
                    i -= 1;
                }
                top[i] = x;
            }
        }
        let n = self.recent.len();
        let t = top[RANK.min(n) - 1];
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

    /// Whether the stream time rests on fewer than [`RANK`] accepted
    /// events — at a partition's start, that is: it may then be one forged
    /// event (the partition's first), and an event more than the stale
    /// horizon away from it restarts it (`Engine::process`).
    pub fn weak(&self) -> bool {
        self.now.is_some() && self.recent.len() < RANK
    }
}

/// The newest accepted event times of the [`RANK`] integrations whose
/// newest are the newest, each integration once (by its id): the time the
/// idle sweep and the out-of-range check of a new integration's first
/// event run on ([`Witnesses::time`]). The stream time counts events, so
/// one integration's forged events, three at a time and each inside the
/// skew of the stream time they find, ratchet it a skew per triplet; here
/// that integration is one witness of [`RANK`], and the time is the
/// [`RANK`]-th newest (the oldest while fewer integrations have been
/// seen), so it moves only when [`RANK`] integrations (every one, while
/// there are fewer) have moved it.
///
/// Exact with [`RANK`] entries because each integration's newest time only
/// grows: one that drops out was the oldest of them, and any newer time of
/// it re-enters above the [`RANK`]-th. Witnesses are named by their ids,
/// not a hash (ids are chosen by the people tripline watches: a forged id
/// whose hash collided with an honest one's would merge the two); an
/// entry's string is reused when another integration takes its place, so
/// a live partition allocates here only until the 3 strings have grown to
/// its longest ids. No per-integration state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Witnesses {
    /// Newest first; distinct ids.
    top: Vec<Witness>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Witness {
    /// Its newest accepted event time.
    ts: i64,
    id: String,
}

impl Witnesses {
    /// An accepted event of `integration_id` at `ts` (as bounded by the
    /// skew: at most the stream time plus `max_future_skew`, or a
    /// confirmed jump).
    pub fn observe(&mut self, integration_id: &str, ts: i64) {
        if self.top.len() == RANK && ts <= self.top[RANK - 1].ts {
            // A time no newer than the oldest witness changes nothing (a
            // witness's own time is at least that).
            return;
        }
        let mut i = match self.top.iter().position(|w| w.id == integration_id) {
            Some(i) if ts <= self.top[i].ts => return,
            Some(i) => {
                self.top[i].ts = ts;
                i
            }
            None if self.top.len() == RANK => {
                let w = &mut self.top[RANK - 1];
                w.ts = ts;
                w.id.clear();
                w.id.push_str(integration_id);
                RANK - 1
            }
            None => {
                self.top.push(Witness {
                    ts,
                    id: integration_id.to_owned(),
                });
                self.top.len() - 1
            }
        };
        // Only entry `i` grew: it moves up to its place (newest first).
        while i > 0 && self.top[i - 1].ts < self.top[i].ts {
            self.top.swap(i - 1, i);
            i -= 1;
        }
    }

    /// The [`RANK`]-th newest of the distinct integrations' newest event
    /// times, the oldest of them while fewer have been seen (`None`
    /// before any).
    pub fn time(&self) -> Option<i64> {
        self.top.last().map(|w| w.ts)
    }

    /// The witnessed time, never later than `stream` (the stream time; it
    /// alone while there is no witness).
    pub fn at_most(&self, stream: i64) -> i64 {
        self.time().map_or(stream, |w| w.min(stream))
    }
}

/// One integration's run of events beyond the skew of the stream time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Jump {
    /// Consecutive events of the run (0: none).
    n: u8,
    /// The partition's count of in-bound events when the run started: any
    /// in-bound event since (of any integration) contradicts the run. Kept
    /// modulo 2^32 (4 bytes of per-integration state; a checkpoint holds
    /// it as a u64): a contradiction goes unseen only if a multiple of 2^32
    /// in-bound events came between two events of the run.
    #[serde(with = "wrapped")]
    mark: u32,
    /// The run began with the integration's very first event (its learning
    /// start was bounded too, and moves with a confirmed jump).
    #[serde(default)]
    first: bool,
}

impl Jump {
    /// An event of this integration beyond the bound; `in_bound` is the
    /// partition's count of in-bound events. Returns whether the jump is
    /// confirmed (the event may move the integration's clocks).
    /// `first`: this is the integration's first event.
    pub fn ahead(&mut self, in_bound: u64, first: bool) -> bool {
        // Modulo 2^32 by design (see `mark`).
        let in_bound = in_bound as u32;
        if self.n == 0 || self.mark != in_bound {
            *self = Jump {
                n: 1,
                mark: in_bound,
                first,
            };
        } else {
            self.n = self.n.saturating_add(1);
        }
        self.n >= CONFIRM
    }

    /// An event of this integration inside the bound ends any run.
    pub fn reset(&mut self) {
        self.n = 0;
        self.first = false;
    }

    /// Whether the current run began with the integration's first event;
    /// answers true once (the integration's clocks then start at the
    /// confirming event, not at each later event of the run).
    pub fn take_began_with_first_event(&mut self) -> bool {
        let first = self.n > 0 && self.first;
        self.first = false;
        first
    }
}

/// [`Jump::mark`] as a u64 on the wire (the checkpoint format), a u32 in
/// memory.
mod wrapped {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        u64::from(*v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        // Modulo 2^32 by design (see `Jump::mark`).
        Ok(u64::deserialize(d)? as u32)
    }
}

/// One integration's watermark, robust to a single forged event: the
/// newest of its on-time event times, except that an event more than
/// `allowance` (the lateness allowance) ahead of the watermark is *held* as
/// its lead and moves the watermark only when the integration's next event
/// confirms it — by being a lead too (the two leads' older time becomes the
/// watermark, the newer the lead if it is still more than `allowance`
/// ahead) or by landing within `allowance` of it. An event within
/// `allowance` of the watermark that leaves the lead more than `allowance`
/// ahead contradicts it: the lead is abandoned and `advance_watermark`
/// returns true (the caller drops what was counted beyond the watermark
/// plus `allowance`: only abandoned leads can be there).
///
/// The caller (`detect::Cx::observe`) first moves the watermark to an
/// event that is not ahead of the stream time (nor a confirmed jump), so
/// only an event more than the allowance ahead of its whole partition can
/// be held: honest traffic in a live partition never has a lead (an
/// integration resuming after a silence included), one in a sparse
/// partition moves its watermark at its second event. One event dated
/// hours ahead (within the skew of the stream time) is held, contradicted
/// by the next honest event, and moves nothing: its integration's later
/// events are not late.
/// `lead <= watermark` means no lead (0, a checkpoint from before it was
/// kept, reads so).
pub(crate) fn advance_watermark(
    watermark: &mut i64,
    lead: &mut i64,
    ts: i64,
    allowance: i64,
) -> bool {
    let held = *lead > *watermark;
    if ts <= watermark.saturating_add(allowance) {
        *watermark = (*watermark).max(ts);
        if !held {
            return false;
        }
        if *lead <= watermark.saturating_add(allowance) {
            // Corroborated: the lead is within the allowance of this event.
            *watermark = *lead;
            return false;
        }
        *lead = *watermark;
        return true;
    }
    if held {
        let (lo, hi) = ((*lead).min(ts), (*lead).max(ts));
        *watermark = if hi - lo <= allowance { hi } else { lo };
        *lead = hi;
    } else {
        *lead = ts;
    }
    false
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

    /// The one-pass top-RANK equals the RANK-th highest of the window by
    /// sorting (ties and short windows included), on a pseudo-random walk.
    #[test]
    fn the_stream_time_is_the_rank_th_highest_of_the_window() {
        let (skew, mut seed) = (50, 7_u64);
        let mut c = StreamClock::default();
        let mut window: Vec<i64> = Vec::new();
        let mut now: Option<i64> = None;
        for step in 0..5_000_i64 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            // Ties are frequent: a coarse walk around a slow upward trend.
            let ts = step / 4 + ((seed >> 33) % 40) as i64 - 20;
            let entered = now.map_or(ts, |n| ts.min(n + skew));
            window.push(entered);
            if window.len() > WINDOW {
                window.remove(0);
            }
            let mut sorted = window.clone();
            sorted.sort_unstable_by(|a, b| b.cmp(a));
            let kth = sorted[RANK.min(sorted.len()) - 1];
            let want = match now {
                Some(p) if window.len() >= RANK => p.max(kth),
                _ => kth,
            };
            now = Some(want);
            assert_eq!(c.observe(ts, skew), want, "step {step}");
        }
    }

    #[test]
    fn the_stream_time_is_weak_until_it_rests_on_rank_events() {
        let mut c = StreamClock::default();
        assert!(!c.weak(), "no stream time yet");
        for i in 0..RANK as i64 {
            c.observe(1_000 + i, 100);
            assert_eq!(c.weak(), i + 1 < RANK as i64);
        }
    }

    #[test]
    fn one_integration_cannot_move_the_witnessed_time_past_the_others() {
        let mut w = Witnesses::default();
        assert_eq!(w.time(), None);
        w.observe("a", 1_000);
        assert_eq!(w.time(), Some(1_000), "one integration: its own time");
        // Fewer than RANK integrations: the oldest of them.
        for k in 1..=50 {
            w.observe("m", 1_000 + k * 100);
        }
        assert_eq!(w.time(), Some(1_000));
        w.observe("b", 1_010);
        w.observe("c", 1_020);
        w.observe("a", 1_030);
        assert_eq!(w.time(), Some(1_020), "the third newest: c");
        // Each integration counts once, its newest time only.
        w.observe("m", 99_000);
        w.observe("c", 900);
        assert_eq!(w.time(), Some(1_020));
        w.observe("b", 1_040);
        assert_eq!(w.time(), Some(1_030), "c dropped out; a is third");
        // A witness that dropped out re-enters with a newer time.
        w.observe("c", 1_050);
        assert_eq!(w.time(), Some(1_040));
        assert_eq!(w.top.len(), RANK);
    }

    #[test]
    fn a_jump_needs_confirm_consecutive_uncontradicted_events() {
        let mut j = Jump::default();
        assert!(!j.ahead(5, false));
        assert!(!j.ahead(5, false));
        // An in-bound event elsewhere in the partition contradicts the run.
        assert!(!j.ahead(6, false));
        assert!(!j.ahead(6, false));
        assert!(j.ahead(6, false));
        assert!(j.ahead(6, false));
        // The integration's own in-bound event ends it.
        j.reset();
        assert!(!j.ahead(6, false));
    }

    #[test]
    fn one_lead_is_held_until_the_next_event_confirms_or_contradicts_it() {
        let a = 60;
        let (mut w, mut lead) = (1_000, 0);
        // Dense traffic: the watermark is the newest event time.
        for t in [1_030, 1_020, 1_090] {
            assert!(!advance_watermark(&mut w, &mut lead, t, a));
        }
        assert_eq!(w, 1_090);
        // One event far ahead is held; the next honest one contradicts it.
        assert!(!advance_watermark(&mut w, &mut lead, 80_000, a));
        assert_eq!(w, 1_090);
        assert!(advance_watermark(&mut w, &mut lead, 1_100, a));
        assert_eq!((w, lead <= w), (1_100, true));
        // A lead confirmed by the next event (a resumption after silence).
        assert!(!advance_watermark(&mut w, &mut lead, 5_000, a));
        assert!(!advance_watermark(&mut w, &mut lead, 5_010, a));
        assert_eq!((w, lead <= w), (5_010, true));
        // Sparse: each event confirms the one before (one event behind).
        assert!(!advance_watermark(&mut w, &mut lead, 6_000, a));
        assert!(!advance_watermark(&mut w, &mut lead, 7_000, a));
        assert_eq!((w, lead), (6_000, 7_000));
        // Two leads within the allowance of each other: the newer.
        assert!(!advance_watermark(&mut w, &mut lead, 6_990, a));
        assert_eq!((w, lead <= w), (7_000, true));
        // A lead corroborated by an event between it and the watermark.
        assert!(!advance_watermark(&mut w, &mut lead, 7_100, a));
        assert!(!advance_watermark(&mut w, &mut lead, 7_055, a));
        assert_eq!((w, lead <= w), (7_100, true));
    }
}
