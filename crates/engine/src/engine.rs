//! The [`Engine`]: the map of per-integration state, the entry points
//! (`process`, `advance_to`), and the one global decision — memory eviction.
//!
//! # Layout of the engine's modules
//! - [`crate::state`]: what is kept per integration (`IntegrationState` and
//!   its bounded lists).
//! - [`crate::buckets`]: event-time buckets and the hourly folding into the
//!   seasonal baselines.
//! - [`crate::detect`]: the detectors, by family (`spike`, `learned`,
//!   `rules`), and the order an event goes through them.
//! - [`crate::episodes`]: one mechanism for every detector: fold a repeat
//!   into its open episode or open a new one (one alert); resolve episodes.
//!
//! # Invariant: detection is per integration
//! Everything the engine decides about integration X is a function of the
//! ordered sub-sequence of X's events (plus config and registry): buckets,
//! lateness and baselines use X's own event-time watermark, never a global
//! one. So any partitioning of the stream that keeps each integration's events
//! in order (Kafka keyed by `integration_id`) produces the same alerts, with the
//! same ids, as one engine over the whole stream (`tripline replay`). Two
//! decisions look across integrations, both only under floods: memory
//! eviction under pressure (bounded by the process-wide
//! [`crate::population::Population`]), which only touches unregistered
//! integrations, and the per-kind alert budgets (`budget.rs`).
//!
//! Analyst feedback ([`crate::feedback`]) keeps the invariant: each entry is
//! addressed to one integration and expires on that integration's event time,
//! so it must be applied to the engine that owns the integration.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::alert::Outputs;
use crate::budget::AlertBudget;
use crate::clock::{StreamClock, Witnesses, CONFIRM};
use crate::config::EngineConfig;
use crate::detect::Cx;
use crate::episodes::{close_episodes, next_announcement};
use crate::event::Event;
use crate::feedback::{Feedback, FeedbackError, FeedbackState};
use crate::population::{Population, Seat};
use crate::registry::Registry;
use crate::time::DAY_MS;

// The state types are part of this module's public API (the audit reads them).
pub use crate::episodes::Episode;
pub use crate::state::{network_of, CredentialUse, DataTypeUse, IntegrationState, NetworkUse};

/// Latest event time the engine accepts as is: 9999-12-31T23:59:59.999Z.
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Counters about the engine itself, for metrics and the replay summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    pub events: u64,
    pub tracked_integrations: usize,
    /// Events older than their integration's lateness allowance: counted and
    /// checked by the rule detectors, but not added to baselines.
    pub late_events: u64,
    pub evicted_integrations: u64,
    pub alerts: u64,
    /// Repeats folded into an already-alerted episode.
    pub folded: u64,
    /// Estimated heap bytes of all engine state.
    pub approx_memory_bytes: usize,
    /// Tracked integrations still inside their learning period at the
    /// stream time (`stream_time_ms`; learning coverage: their learned
    /// detectors do not speak yet). Computed by [`Engine::stats`].
    #[serde(default)]
    pub learning_integrations: usize,
    /// Highest event time seen (raw, attacker-controlled: only for display;
    /// decisions use `stream_time_ms`).
    pub max_event_time_ms: i64,
    /// Newest *accepted* event time: never more than `max_future_skew`
    /// ahead of the robust stream time ([`crate::clock`]) unless a jump was
    /// confirmed, so no single event moves it far. Audit `as_of` and idle
    /// partitions' `advance_to` use it, never the raw maximum.
    #[serde(default)]
    pub stream_time_ms: i64,
    /// Events too far ahead of the stream time (or a new integration's first
    /// event too far behind it), see `max_future_skew_seconds`: checked by
    /// the rule detectors at the bounded time, never baselined; and the
    /// events of a clock forgotten because it rested on fewer than 3 events
    /// beyond the stale horizon (`clock.rs`).
    #[serde(default)]
    pub ts_out_of_range: u64,
    /// Alerts not sent individually because their kind's alert budget for
    /// the window was spent: folded into the window's aggregate alert
    /// (`budget.rs`).
    #[serde(default)]
    pub alerts_over_budget: u64,
}

/// The engine. Feed it events with [`Engine::process`]; it appends alerts and
/// resolutions to the [`Outputs`] you pass.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Engine {
    /// Not part of the state: a restored engine takes the config (and the
    /// registry) of the process restoring it, see [`Engine::resume`].
    #[serde(skip)]
    config: EngineConfig,
    #[serde(skip)]
    registry: Option<Registry>,
    integrations: FxHashMap<Box<str>, IntegrationState>,
    stats: EngineStats,
    /// Last day (event time) on which the idle sweep ran.
    last_sweep_day: i64,
    /// Analyst feedback and its audit trail; checkpoints carry it.
    #[serde(default)]
    feedback: FeedbackState,
    /// The robust stream time: the bound on how far an event may move an
    /// integration's clock, and the alert-budget windows.
    #[serde(default)]
    clock: StreamClock,
    /// Last watermark day on which expired feedback was pruned.
    #[serde(default)]
    last_prune_day: i64,
    /// The distinct integrations' newest accepted times: the idle sweep
    /// runs on them (`clock::Witnesses`), so one integration's clock cannot
    /// evict the others. Absent from older checkpoints: they fill again
    /// from the next accepted events (until the first, the sweep uses the
    /// stream time).
    #[serde(default)]
    witnesses: Witnesses,
    /// Events inside the bound so far: any of them contradicts a jump run
    /// started before it ([`crate::clock::Jump`]).
    #[serde(default)]
    in_bound: u64,
    /// Newest accepted (not out-of-range) event time.
    #[serde(default)]
    accepted_max: i64,
    /// Alerts per kind and window across integrations (`budget.rs`).
    #[serde(default)]
    budget: AlertBudget,
    /// Its share of the process-wide integration count (`population.rs`);
    /// not state: a restored engine joins the restoring process's.
    #[serde(skip)]
    seat: Seat,
    /// No episode still to be announced can end at or before this event
    /// time, so [`Engine::advance_to`] up to it has nothing to walk (a lower
    /// bound: lowered by every event that opens or folds an episode, set by
    /// each walk; `i64::MIN` walks at the next call).
    #[serde(default = "walk_next")]
    announce_after: i64,
}

/// [`Engine`]'s `announce_after` when nothing is known: walk.
fn walk_next() -> i64 {
    i64::MIN
}

impl Engine {
    pub fn new(config: EngineConfig, registry: Option<Registry>) -> Self {
        Engine {
            config,
            registry,
            integrations: FxHashMap::default(),
            stats: EngineStats::default(),
            last_sweep_day: i64::MIN,
            feedback: FeedbackState::default(),
            clock: StreamClock::default(),
            last_prune_day: i64::MIN,
            witnesses: Witnesses::default(),
            in_bound: 0,
            accepted_max: 0,
            budget: AlertBudget::default(),
            seat: Seat::default(),
            announce_after: walk_next(),
        }
    }

    /// Counts this engine's integrations into `population`, shared by every
    /// engine of the process (one per partition): `max_integrations` then
    /// bounds them all together, not each engine alone.
    pub fn join_population(&mut self, population: &Population) {
        self.seat.join(population, self.integrations.len());
    }

    /// Records analyst feedback for one integration: from now on (until its
    /// expiry, in event time) the alerts it names as expected do not fire.
    /// Refused when invalid or when the integration has too many active
    /// entries; the audit trail records every accepted one.
    pub fn apply_feedback(&mut self, fb: &Feedback) -> Result<(), FeedbackError> {
        let watermark = self
            .integrations
            .get(&*fb.integration_id)
            .map(|s| s.watermark);
        self.feedback.apply(fb, watermark)
    }

    /// Active feedback and the audit trail.
    pub fn feedback(&self) -> &FeedbackState {
        &self.feedback
    }

    /// A read-only union of several engines — one per partition, so their
    /// integrations are disjoint — for inventory and audit across
    /// partitions. Feedback comes from the engine with the longest trail
    /// (feedback is applied to every partition's engine).
    pub fn merged(parts: &[&Engine]) -> Option<Engine> {
        let first = parts.first()?;
        let mut m = Engine::new(first.config.clone(), first.registry.clone());
        for p in parts {
            for (k, v) in &p.integrations {
                m.integrations.insert(k.clone(), v.clone());
            }
            let s = &p.stats;
            m.stats.events += s.events;
            m.stats.late_events += s.late_events;
            m.stats.evicted_integrations += s.evicted_integrations;
            m.stats.alerts += s.alerts;
            m.stats.folded += s.folded;
            m.stats.max_event_time_ms = m.stats.max_event_time_ms.max(s.max_event_time_ms);
            m.stats.ts_out_of_range += s.ts_out_of_range;
            m.stats.alerts_over_budget += s.alerts_over_budget;
            m.accepted_max = m.accepted_max.max(p.accepted_max);
            if p.feedback.trail().count() > m.feedback.trail().count() {
                m.feedback = p.feedback.clone();
            }
        }
        Some(m)
    }

    /// Gives a deserialized (checkpointed) engine the running config and registry.
    pub fn resume(mut self, config: EngineConfig, registry: Option<Registry>) -> Self {
        self.config = config;
        self.set_registry(registry);
        self
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }

    /// Swaps the registry (a reload). Cached registration flags are refreshed.
    pub fn set_registry(&mut self, registry: Option<Registry>) {
        self.registry = registry;
        for (id, st) in self.integrations.iter_mut() {
            st.registered = self
                .registry
                .as_ref()
                .is_some_and(|r| r.integration(id).is_some());
        }
    }

    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats.clone();
        s.tracked_integrations = self.integrations.len();
        s.stream_time_ms = self.accepted_max;
        let (now, learning_ms) = (s.stream_time_ms, self.config.learning_ms());
        let (mut heap, mut learning) = (0usize, 0usize);
        for (k, v) in &self.integrations {
            heap += k.len() + v.memory_bytes() - std::mem::size_of::<IntegrationState>();
            learning += usize::from(!v.mature(now, learning_ms));
        }
        s.approx_memory_bytes = std::mem::size_of::<Self>()
            + self.integrations.capacity()
                * (std::mem::size_of::<(Box<str>, IntegrationState)>() + 8)
            + heap;
        s.learning_integrations = learning;
        s
    }

    /// The newest accepted event time (see [`EngineStats::stream_time_ms`];
    /// 0 before the first).
    pub fn stream_time(&self) -> i64 {
        self.accepted_max
    }

    /// The state of one integration (inventory, audit, tests).
    pub fn integration(&self, id: &str) -> Option<&IntegrationState> {
        self.integrations.get(id)
    }

    /// Moves one integration's whole state out of this engine. Seeding from
    /// files: baselines learnt from exported history move to the partition
    /// engine that owns the integration when its first live event arrives,
    /// so the integration's state is still a function of its own ordered
    /// events (history, then live) — the per-integration invariant.
    pub fn take_integration(&mut self, id: &str) -> Option<(Box<str>, IntegrationState)> {
        let taken = self.integrations.remove_entry(id);
        self.seat.sync(self.integrations.len());
        taken
    }

    /// Adopts a state taken with [`Engine::take_integration`] (replacing any
    /// state this engine had for that id).
    pub fn adopt_integration(&mut self, id: Box<str>, state: IntegrationState) {
        if !state.episodes.is_empty() {
            self.announce_after = self.announce_after.min(state.episodes_close_after);
        }
        self.integrations.insert(id, state);
        self.seat.sync(self.integrations.len());
    }

    /// All tracked integrations, sorted by id.
    pub fn integrations(&self) -> Vec<(&str, &IntegrationState)> {
        let mut v: Vec<_> = self.integrations.iter().map(|(k, v)| (&**k, v)).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// Feeds one event; alerts and resolutions it causes are appended to `out`.
    pub fn process(&mut self, ev: &Event<'_>, out: &mut Outputs) {
        // Event time outside what RFC 3339 can express is clamped, so time
        // arithmetic can never overflow (the ingest layer rejects such events).
        if !(0..=MAX_TS_MS).contains(&ev.ts_ms) {
            let clamped = Event {
                ts_ms: ev.ts_ms.clamp(0, MAX_TS_MS),
                ..ev.clone()
            };
            return self.process(&clamped, out);
        }
        self.stats.events += 1;
        self.stats.max_event_time_ms = self.stats.max_event_time_ms.max(ev.ts_ms);
        let skew = self.config.max_future_skew_ms();
        let stale = self.config.stale_ms().unsigned_abs();
        // A stream time resting on fewer than 3 events (a partition's first,
        // possibly forged) does not outweigh an event beyond the stale
        // horizon from it: it restarts there (`clock.rs`).
        if self.clock.weak()
            && self
                .clock
                .now()
                .is_some_and(|now| ev.ts_ms.abs_diff(now) > stale)
        {
            self.restart_clock(out);
        }
        // Event time is attacker-controlled (`clock.rs`): no event moves an
        // integration's clocks (watermark, last seen, learning start) beyond
        // the skew of the robust stream time unless it confirms a jump.
        let prev = self.clock.now().unwrap_or(ev.ts_ms);
        let bound = prev.saturating_add(skew);
        let floor = prev.saturating_sub(skew);
        // A new integration's first event is only bounded when it is older
        // than a whole learning period (the 1970 attack): a smaller lag is
        // ordinary delivery delay, and bounding it would make `first_seen`
        // depend on the partition's stream time (run ≢ replay). Measured
        // from the witnessed time (`clock::Witnesses`), which one
        // integration's forged events cannot ratchet as they can the stream
        // time: a newcomer's honest first event is not out of range because
        // another integration forged the partition's time ahead.
        let witnessed = self.witnesses.at_most(prev);
        let far_past = witnessed.saturating_sub(self.config.learning_ms());
        // An integration whose clock rests on fewer than `CONFIRM` events,
        // all beyond the stale horizon from this event while this one agrees
        // with the stream time, restarts here: what it rested on was forged
        // (a 1970 or 9999 event that opened the partition) or stale, and
        // must neither start its learning period nor set its watermark.
        // (One map lookup answers both that and whether it is known.)
        let known = if (far_past..=bound).contains(&ev.ts_ms) {
            self.restart_if_stale(ev, stale, out)
        } else {
            self.integrations.contains_key(ev.integration_id)
        };
        if !known {
            // The bound is the process's (every partition's engine), not
            // this engine's alone: see `population.rs`.
            if self.seat.total(self.integrations.len()) >= self.config.max_integrations {
                self.evict_for_room();
            }
            // A first event dated long before the stream would start the
            // learning period in the past (and skip it).
            let first = if ev.ts_ms < far_past { floor } else { ev.ts_ms };
            let mut st = IntegrationState::new(first.min(bound));
            st.registered = self
                .registry
                .as_ref()
                .is_some_and(|r| r.integration(ev.integration_id).is_some());
            self.integrations.insert(ev.integration_id.into(), st);
            self.seat.sync(self.integrations.len());
        }
        let Some(st) = self.integrations.get_mut(ev.integration_id) else {
            return;
        };
        let (out_of_range, bound, jumped) = if ev.ts_ms > bound {
            if st.jump.ahead(self.in_bound, !known) {
                // A confirmed jump: this integration's clocks follow it —
                // and, when the jump began with its first event, it starts
                // here, not at the bounded time it was created with (that
                // would shorten learning by the jump, fold the jump into
                // its baselines as silent hours and make a new
                // integration look dormant).
                if st.jump.take_began_with_first_event() {
                    st.start_clocks_at(ev.ts_ms);
                }
                // A stream time resting on fewer than 3 events (a
                // partition's first, possibly one forged event dated weeks
                // before the stream) more than a learning period behind
                // the jump is outvoted by the 3 events that confirm it: it
                // restarts at this event, so the partition's other
                // integrations are not each made to confirm the jump while
                // the stream time creeps up by the skew per event. (A jump
                // is forward: the sweep and prune days and the alert-budget
                // window follow on their own.)
                if self.clock.weak() && ev.ts_ms - prev > self.config.learning_ms() {
                    self.clock = StreamClock::default();
                    self.witnesses = Witnesses::default();
                    self.accepted_max = 0;
                }
                (false, ev.ts_ms, true)
            } else {
                (true, bound, false)
            }
        } else {
            st.jump.reset();
            self.in_bound += 1;
            (!known && ev.ts_ms < far_past, bound, false)
        };
        if out_of_range {
            self.stats.ts_out_of_range += 1;
        } else {
            self.clock.observe(ev.ts_ms, skew);
            self.witnesses
                .observe(ev.integration_id, ev.ts_ms.min(bound));
            self.accepted_max = self.accepted_max.max(ev.ts_ms);
        }
        let now = self.clock.now().unwrap_or(ev.ts_ms);
        // Alert budgets count per window of stream time: a window that has
        // ended sends its aggregates before this event is judged.
        let before = out.alerts.len();
        self.budget.roll(&self.config, now, out);
        self.stats.alerts += (out.alerts.len() - before) as u64;
        let decl = self
            .registry
            .as_ref()
            .and_then(|r| r.integration(ev.integration_id));
        let mut cx = Cx {
            cfg: &self.config,
            registry: self.registry.as_ref(),
            decl,
            out,
            stats: &mut self.stats,
            feedback: &self.feedback,
            budget: &mut self.budget,
            out_of_range,
            bound,
            jumped,
            ahead: ev.ts_ms > prev.saturating_add(self.config.lateness_ms()),
        };
        cx.observe(st, ev);
        // An episode this event opened or folded ends no earlier than the
        // integration's own bound (`episodes.rs`).
        if !st.episodes.is_empty() {
            self.announce_after = self.announce_after.min(st.episodes_close_after);
        }
        let wm_day = st.watermark.div_euclid(DAY_MS);
        // The sweep runs on the witnessed time (no later than the stream
        // time), so neither one event dated 9999 nor one integration's
        // forged events, however many, can make the others look idle.
        let witnessed = self.witnesses.at_most(now);
        let day = witnessed.div_euclid(DAY_MS);
        if day > self.last_sweep_day {
            self.last_sweep_day = day;
            self.sweep_idle(witnessed);
        }
        // Expired feedback is pruned on each integration's own watermark,
        // so any watermark's day change may trigger it (no eviction involved).
        if wm_day > self.last_prune_day && !self.feedback.is_empty() {
            self.last_prune_day = wm_day;
            let integrations = &self.integrations;
            self.feedback
                .prune(|id| integrations.get(id).map(|s| s.watermark));
        }
    }

    /// Forgets the stream time (it rested on fewer than 3 events, far from
    /// the one being processed): the partition starts again from the next
    /// event, as if it were its first — stream time, accepted time, the
    /// sweep and prune days and the alert-budget window.
    fn restart_clock(&mut self, out: &mut Outputs) {
        self.clock = StreamClock::default();
        self.witnesses = Witnesses::default();
        self.accepted_max = 0;
        self.last_sweep_day = i64::MIN;
        self.last_prune_day = i64::MIN;
        let before = out.alerts.len();
        self.budget.restart(&self.config, out);
        self.stats.alerts += (out.alerts.len() - before) as u64;
    }

    /// Drops the state of `ev`'s integration when its clock rests on fewer
    /// than `CONFIRM` events, all more than `stale` ms from `ev` (see
    /// `process`): its open episodes resolve and its events count as out of
    /// range; `ev` then starts it afresh. Returns whether the integration is
    /// still known (it was, and was not dropped).
    fn restart_if_stale(&mut self, ev: &Event<'_>, stale: u64, out: &mut Outputs) -> bool {
        let Some(st) = self.integrations.get(ev.integration_id) else {
            return false;
        };
        let nearest = ev
            .ts_ms
            .clamp(st.first_seen, st.watermark.max(st.lead).max(st.first_seen));
        if st.events >= u64::from(CONFIRM) || ev.ts_ms.abs_diff(nearest) <= stale {
            return true;
        }
        if let Some(mut old) = self.integrations.remove(ev.integration_id) {
            close_episodes(
                &self.config,
                ev.integration_id,
                &mut old,
                i64::MAX,
                out,
                false,
            );
            self.stats.ts_out_of_range += old.events;
            self.seat.sync(self.integrations.len());
        }
        false
    }

    /// Moves event time forward without an event (idle inputs): ends every
    /// episode whose quiet gap has passed by `now_ms`, appending resolutions.
    pub fn advance_to(&mut self, now_ms: i64, out: &mut Outputs) {
        if self.clock.now().is_some() {
            let before = out.alerts.len();
            self.budget.roll(&self.config, now_ms, out);
            self.stats.alerts += (out.alerts.len() - before) as u64;
        }
        // Called once per batch for every idle partition: without an
        // episode due it costs nothing, whatever the engine holds.
        if now_ms <= self.announce_after {
            return;
        }
        let mut ids: Vec<&Box<str>> = self
            .integrations
            .iter()
            .filter(|(_, s)| !s.episodes.is_empty())
            .map(|(k, _)| k)
            .collect();
        ids.sort_unstable();
        let ids: Vec<Box<str>> = ids.into_iter().cloned().collect();
        let mut next = i64::MAX;
        for id in ids {
            if let Some(st) = self.integrations.get_mut(&id) {
                close_episodes(&self.config, &id, st, now_ms, out, true);
                next = next.min(next_announcement(&self.config, st));
            }
        }
        self.announce_after = next;
    }

    /// The input has ended (end of a replay): sends what is held back until
    /// a window closes — the alert budgets' aggregates of the current
    /// window. A running service never calls it (its windows close on
    /// later events or [`Engine::advance_to`]; a checkpoint keeps them).
    pub fn finish(&mut self, out: &mut Outputs) {
        let before = out.alerts.len();
        self.budget.finish(&self.config, out);
        self.stats.alerts += (out.alerts.len() - before) as u64;
    }

    /// Evicts the least recently seen tenth of this engine's unregistered
    /// integrations (at least one). A tenth of its own, not of the bound:
    /// with the bound shared by every partition's engine (`population.rs`)
    /// an engine that meets a new id while others hold most of the bound
    /// gives up a tenth of what it holds, so an engine's flood displaces its
    /// own integrations first and eviction stays amortised O(log n) per id.
    fn evict_for_room(&mut self) {
        let mut cands: Vec<(i64, Box<str>)> = self
            .integrations
            .iter()
            .filter(|(_, s)| !s.registered)
            .map(|(k, s)| (s.last_seen, k.clone()))
            .collect();
        cands.sort_unstable();
        let n = (cands.len() / 10).max(1).min(cands.len());
        for (_, k) in cands.into_iter().take(n) {
            self.integrations.remove(&k);
            self.stats.evicted_integrations += 1;
        }
        self.seat.sync(self.integrations.len());
    }

    /// Once per day of witnessed time (`clock::Witnesses`): drop
    /// unregistered integrations idle for longer than `idle_evict_days`
    /// before `now`. Fails closed: while fewer than three integrations are
    /// active, an idle one holds `now` back, so a partition whose only live
    /// integration forges time keeps every other integration.
    fn sweep_idle(&mut self, now: i64) {
        let horizon = now - i64::from(self.config.idle_evict_days) * DAY_MS;
        let before = self.integrations.len();
        self.integrations
            .retain(|_, s| s.registered || s.last_seen >= horizon);
        self.stats.evicted_integrations += (before - self.integrations.len()) as u64;
        self.seat.sync(self.integrations.len());
    }
}
