//! Event time you can trust: the robust stream time of one engine (one
//! partition), the per-integration confirmation of a jump, and the
//! integration's watermark rule.
//!
//! Event time is written by the people tripline watches, so no single event
//! — nor two — may move a clock beyond the skew, nor one event a watermark:
//! - [`StreamClock`]: the stream time is the [`RANK`]-th highest of the last
//!   [`WINDOW`] *accepted* event times, each entered at most
//!   `max_future_skew` ahead of the stream time it found, and no later than
//!   the [`RANK`]-th highest of the newest times of the distinct
//!   integrations among them (the second, with two): one integration's
//!   events, however many, cannot move it past what the others vouch for.
//!   Monotone once established.
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
    /// Who sent each of `recent` ([`voter`] of its integration id). Absent
    /// from checkpoints written before it: those entries then count as
    /// distinct integrations (the rule they were judged by).
    #[serde(default)]
    who: Vec<u64>,
    next: usize,
    /// The current stream time (`None` before the first event).
    now: Option<i64>,
}

/// An integration's identity in [`StreamClock`]'s window: FNV-1a of its id
/// (stable across processes, so checkpoints restore it). Two ids that
/// collide count as one integration, which can only hold the stream time
/// back, never push it on.
pub fn voter(integration_id: &str) -> u64 {
    integration_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

impl StreamClock {
    /// Records an accepted event time of the integration `who` ([`voter`])
    /// and returns the stream time including it. `skew` bounds how far one
    /// event may pull the window ahead.
    pub fn observe(&mut self, ts: i64, who: u64, skew: i64) -> i64 {
        let ts = match self.now {
            Some(now) => ts.min(now.saturating_add(skew)),
            None => ts,
        };
        if self.who.len() != self.recent.len() {
            // A checkpoint from before `who`: its entries stay distinct.
            self.who = (0..self.recent.len() as u64).map(|i| !i).collect();
        }
        if self.recent.len() < WINDOW {
            self.recent.push(ts);
            self.who.push(who);
        } else {
            self.recent[self.next] = ts;
            self.who[self.next] = who;
        }
        self.next = (self.next + 1) % WINDOW;
        let n = self.recent.len();
        let k = RANK.min(n);
        // The RANK highest times (descending) and who sent them. When those
        // are k distinct integrations, the k-th is also the k-th highest of
        // the integrations' newest times (the common case: one pass);
        // otherwise one integration holds several and the distinct pass
        // decides.
        let mut top = [(i64::MIN, 0u64); RANK];
        for (&t, &w) in self.recent.iter().zip(&self.who) {
            if t > top[RANK - 1].0 {
                let mut i = RANK - 1;
                while i > 0 && top[i - 1].0 < t {
                    top[i] = top[i - 1];
                    i -= 1;
                }
                top[i] = (t, w);
            }
        }
        let distinct = (1..k).all(|i| top[..i].iter().all(|&(_, w)| w != top[i].1));
        let t = if distinct {
            top[k - 1].0
        } else {
            top[k - 1].0.min(self.newest_of_distinct())
        };
        let now = match self.now {
            Some(prev) if n >= RANK => prev.max(t),
            _ => t,
        };
        self.now = Some(now);
        now
    }

    /// The [`RANK`]-th highest of the newest times of the distinct
    /// integrations in the window (the lowest of them, with fewer).
    fn newest_of_distinct(&self) -> i64 {
        let mut voters = [(0u64, i64::MIN); RANK];
        let mut v = 0;
        for (&t, &w) in self.recent.iter().zip(&self.who) {
            let at = match voters[..v].iter().position(|&(id, _)| id == w) {
                Some(i) if voters[i].1 >= t => continue,
                Some(i) => i,
                None if v < RANK => {
                    v += 1;
                    v - 1
                }
                None if t > voters[RANK - 1].1 => RANK - 1,
                None => continue,
            };
            // An evicted integration that comes back does so with a newer
            // time than the one it was evicted with (the list only rises).
            voters[at] = (w, t);
            let mut i = at;
            while i > 0 && voters[i - 1].1 < voters[i].1 {
                voters.swap(i - 1, i);
                i -= 1;
            }
        }
        voters[v.max(1) - 1].1
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
            c.observe(1_000 + i, i as u64 % 4, skew);
        }
        // Even accepted, one far event enters the window at most `skew` ahead.
        assert_eq!(c.observe(i64::MAX / 2, 9, skew), 1_018);
        assert_eq!(c.observe(0, 1, skew), 1_018);
        assert_eq!(c.observe(1_020, 2, skew), 1_019);
        // The whole stream moves on: followed, at most `skew` per event.
        let mut prev = c.now().unwrap();
        for _ in 0..400 {
            let t = c.observe(9_000, 3, skew);
            assert!(t >= prev && t <= prev + skew, "{prev} -> {t}");
            prev = t;
        }
        assert_eq!(prev, 9_000);
    }

    #[test]
    fn one_integration_cannot_move_the_stream_time_past_the_others() {
        let skew = 1_000;
        let mut c = StreamClock::default();
        for i in 0..12 {
            c.observe(10_000 + i, i as u64 % 3, skew);
        }
        assert_eq!(c.now(), Some(10_009));
        // However many of one integration's events run ahead (each inside
        // the skew), the stream time stays at what the others vouch for.
        for i in 0..10 {
            assert_eq!(c.observe(10_900 + i, 7, skew), 10_010);
        }
        // With one other integration, the lower of the two.
        let mut two = StreamClock::default();
        for i in 0..8 {
            two.observe(5_000 + i, 1, skew);
        }
        for i in 0..5 {
            assert!(two.observe(5_900 + i, 2, skew) <= 5_007);
        }
        assert_eq!(two.now(), Some(5_007));
        // Once its events are all the window holds, it is followed: a
        // partition with one busy integration keeps its time.
        for i in 0..WINDOW as i64 {
            c.observe(11_000 + i, 7, skew);
        }
        assert_eq!(c.now(), Some(11_000 + WINDOW as i64 - RANK as i64));
    }

    #[test]
    fn a_checkpointed_window_without_voters_counts_its_entries_as_distinct() {
        let mut old = StreamClock::default();
        for i in 0..WINDOW as i64 {
            old.observe(1_000 + i, 0, 100);
        }
        old.who.clear();
        let json = serde_json::to_string(&old).unwrap().replace(",\"who\":[]", "");
        assert!(!json.contains("who"), "{json}");
        let mut c: StreamClock = serde_json::from_str(&json).unwrap();
        // Three events of one integration, each clamped to the skew: by
        // events alone the third would move the stream time to 1_113.
        for _ in 0..3 {
            assert_eq!(c.observe(1_100, 5, 100), 1_014);
        }
        assert_eq!(c.who.len(), c.recent.len());
    }

    #[test]
    fn the_stream_time_is_weak_until_it_rests_on_rank_events() {
        let mut c = StreamClock::default();
        assert!(!c.weak(), "no stream time yet");
        for i in 0..RANK as i64 {
            c.observe(1_000 + i, 0, 100);
            assert_eq!(c.weak(), i + 1 < RANK as i64);
        }
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
