//! Per-integration state and the ten detectors.
//!
//! # Invariant: detection is per integration
//! Everything the engine decides about integration X is a function of the
//! ordered sub-sequence of X's events (plus config and registry): buckets,
//! lateness and baselines use X's own event-time watermark, never a global
//! one. So any partitioning of the stream that keeps each integration's events
//! in order (Kafka keyed by `integration_id`) produces the same alerts, with the
//! same ids, as one engine over the whole stream (`tripline replay`). The only
//! global decision is memory eviction under pressure, which only touches
//! unregistered integrations.
//!
//! Analyst feedback ([`crate::feedback`]) keeps the invariant: each entry is
//! addressed to one integration and expires on that integration's event time,
//! so it must be applied to the engine that owns the integration.

use std::net::IpAddr;

use ipnet::IpNet;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::alert::{
    alert_id, round_sig, Alert, AlertKind, Evidence, EvidenceValue, Outputs, Resolved, Severity,
};
use crate::config::EngineConfig;
use crate::event::{Action, Event};
use crate::feedback::{Feedback, FeedbackError, FeedbackState};
use crate::registry::{IntegrationDecl, Registry};
use crate::stats::{score_from_p, upper_tail, Seasonal};
use crate::time::{
    format_rfc3339, hour_of_week, is_month_end, slot_label, DAY_MS, HOUR_MS, WEEK_MS,
};

/// Latest event time the engine accepts as is: 9999-12-31T23:59:59.999Z.
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Count series kept per integration.
const CALLS: usize = 0;
const RECORDS: usize = 1;
const ERRORS: usize = 2;
const SERIES: usize = 3;
/// At most this many hours of silence are folded into the baseline as zeros
/// when an integration resumes (four weeks: every slot gets several updates).
const MAX_ZERO_HOURS: i64 = 4 * 168;

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
    /// Highest event time seen.
    pub max_event_time_ms: i64,
}

/// One open event-time bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Bucket {
    start_ms: i64,
    /// calls, records, auth errors.
    counts: [u64; SERIES],
    bytes: u64,
    /// Running count at which each series must be examined next (u64::MAX: done).
    check_at: [u64; SERIES],
    /// Whether each series fired in this bucket (its contribution is clipped).
    fired: [bool; SERIES],
    /// The clip level for each series (the cheap threshold).
    clip: [u64; SERIES],
    /// Bytes that make `volume_spike` fire on bytes alone.
    bytes_check_at: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataTypeUse {
    pub resource: Box<str>,
    pub action: Action,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkUse {
    pub network: IpNet,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CredentialUse {
    pub id: Box<str>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
    /// Longest silence between two uses.
    pub max_gap_ms: i64,
}

/// An open anomaly episode: later repeats fold into it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub kind: AlertKind,
    pub subject: Box<str>,
    pub alert_id: String,
    pub severity: Severity,
    pub score: f64,
    pub started: i64,
    pub last_alert: i64,
    pub last_seen: i64,
    pub folded: u64,
    /// Its end was already announced by [`Engine::advance_to`]: the episode
    /// stays (so folding still follows this integration's own event time,
    /// exactly as in a replay) but its resolution is not sent twice.
    #[serde(default)]
    pub announced: bool,
}

/// Everything the engine knows about one integration. Plain data: it
/// serializes for checkpoints and is what the inventory/audit reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntegrationState {
    pub first_seen: i64,
    pub last_seen: i64,
    /// This integration's own event-time watermark (max ts seen).
    pub watermark: i64,
    pub events: u64,
    pub records: u64,
    pub bytes: u64,
    pub auth_errors: u64,
    pub late_events: u64,
    /// Longest silence between two events.
    pub max_gap_ms: i64,
    pub data_types: Vec<DataTypeUse>,
    pub networks: Vec<NetworkUse>,
    pub keys: Vec<CredentialUse>,
    pub principals: Vec<CredentialUse>,
    pub episodes: Vec<Episode>,
    /// Whether the registry lists it (registered ones are never evicted).
    pub registered: bool,
    baselines: Vec<Seasonal>,
    /// Learned bytes per record, to judge bytes on the records baseline.
    bytes_per_record: f64,
    buckets: Vec<Bucket>,
    /// Start of the hour being accumulated, and its per-series totals.
    hour_start: i64,
    hour_totals: [f64; SERIES],
    /// Sums of squares of the hour's bucket counts (within-hour dispersion).
    hour_sq: [f64; SERIES],
}

impl IntegrationState {
    fn new(ts: i64) -> Self {
        IntegrationState {
            first_seen: ts,
            last_seen: ts,
            watermark: ts,
            events: 0,
            records: 0,
            bytes: 0,
            auth_errors: 0,
            late_events: 0,
            max_gap_ms: 0,
            data_types: Vec::new(),
            networks: Vec::new(),
            keys: Vec::new(),
            principals: Vec::new(),
            episodes: Vec::new(),
            registered: false,
            baselines: vec![Seasonal::default(); SERIES],
            bytes_per_record: 0.0,
            buckets: Vec::with_capacity(2),
            hour_start: ts.div_euclid(HOUR_MS) * HOUR_MS,
            hour_totals: [0.0; SERIES],
            hour_sq: [0.0; SERIES],
        }
    }

    /// Estimated heap + inline bytes.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .baselines
                .iter()
                .map(|b| b.memory_bytes() + std::mem::size_of::<Seasonal>())
                .sum::<usize>()
            + self.data_types.capacity() * std::mem::size_of::<DataTypeUse>()
            + self
                .data_types
                .iter()
                .map(|d| d.resource.len())
                .sum::<usize>()
            + self.networks.capacity() * std::mem::size_of::<NetworkUse>()
            + (self.keys.capacity() + self.principals.capacity())
                * std::mem::size_of::<CredentialUse>()
            + self
                .keys
                .iter()
                .chain(&self.principals)
                .map(|k| k.id.len())
                .sum::<usize>()
            + self.episodes.capacity() * std::mem::size_of::<Episode>()
            + self.buckets.capacity() * std::mem::size_of::<Bucket>()
    }

    fn mature(&self, now: i64, learning_ms: i64) -> bool {
        now - self.first_seen >= learning_ms
    }
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
}

/// Everything needed to describe one alert; turned into an [`Alert`] by `fire`.
struct Finding<'a> {
    kind: AlertKind,
    subject: &'a str,
    key_id: Option<&'a str>,
    resource: Option<String>,
    window: (i64, i64),
    observed: Option<f64>,
    expected: Option<f64>,
    score: f64,
    sensitive: bool,
    summary: String,
    evidence: Evidence,
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
        }
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
        s.approx_memory_bytes = std::mem::size_of::<Self>()
            + self.integrations.capacity()
                * (std::mem::size_of::<(Box<str>, IntegrationState)>() + 8)
            + self
                .integrations
                .iter()
                .map(|(k, v)| k.len() + v.memory_bytes() - std::mem::size_of::<IntegrationState>())
                .sum::<usize>();
        s
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
        self.integrations.remove_entry(id)
    }

    /// Adopts a state taken with [`Engine::take_integration`] (replacing any
    /// state this engine had for that id).
    pub fn adopt_integration(&mut self, id: Box<str>, state: IntegrationState) {
        self.integrations.insert(id, state);
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
        if !self.integrations.contains_key(ev.integration_id) {
            if self.integrations.len() >= self.config.max_integrations {
                self.evict_for_room();
            }
            let mut st = IntegrationState::new(ev.ts_ms);
            st.registered = self
                .registry
                .as_ref()
                .is_some_and(|r| r.integration(ev.integration_id).is_some());
            self.integrations.insert(ev.integration_id.into(), st);
        }
        let decl = self
            .registry
            .as_ref()
            .and_then(|r| r.integration(ev.integration_id));
        let Some(st) = self.integrations.get_mut(ev.integration_id) else {
            return;
        };
        let mut cx = Cx {
            cfg: &self.config,
            registry: self.registry.as_ref(),
            decl,
            out,
            stats: &mut self.stats,
            feedback: &self.feedback,
        };
        cx.observe(st, ev);
        let day = ev.ts_ms.div_euclid(DAY_MS);
        if day > self.last_sweep_day {
            self.last_sweep_day = day;
            self.sweep_idle(ev.ts_ms);
        }
    }

    /// Moves event time forward without an event (idle inputs): ends every
    /// episode whose quiet gap has passed by `now_ms`, appending resolutions.
    pub fn advance_to(&mut self, now_ms: i64, out: &mut Outputs) {
        let mut ids: Vec<&Box<str>> = self
            .integrations
            .iter()
            .filter(|(_, s)| !s.episodes.is_empty())
            .map(|(k, _)| k)
            .collect();
        ids.sort_unstable();
        let ids: Vec<Box<str>> = ids.into_iter().cloned().collect();
        for id in ids {
            if let Some(st) = self.integrations.get_mut(&id) {
                close_episodes(&self.config, &id, st, now_ms, out, true);
            }
        }
    }

    /// Evicts the least recently seen tenth of unregistered integrations.
    fn evict_for_room(&mut self) {
        let mut cands: Vec<(i64, Box<str>)> = self
            .integrations
            .iter()
            .filter(|(_, s)| !s.registered)
            .map(|(k, s)| (s.last_seen, k.clone()))
            .collect();
        cands.sort_unstable();
        let n = (self.config.max_integrations / 10).max(1).min(cands.len());
        for (_, k) in cands.into_iter().take(n) {
            self.integrations.remove(&k);
            self.stats.evicted_integrations += 1;
        }
    }

    /// Once per event-time day: drop unregistered integrations idle for longer
    /// than `idle_evict_days`.
    fn sweep_idle(&mut self, now: i64) {
        let horizon = now - i64::from(self.config.idle_evict_days) * DAY_MS;
        let before = self.integrations.len();
        self.integrations
            .retain(|_, s| s.registered || s.last_seen >= horizon);
        self.stats.evicted_integrations += (before - self.integrations.len()) as u64;
        if !self.feedback.is_empty() {
            let integrations = &self.integrations;
            self.feedback
                .prune(|id| integrations.get(id).map(|s| s.watermark));
        }
    }
}

/// The per-event working context.
struct Cx<'a, 'o> {
    cfg: &'a EngineConfig,
    registry: Option<&'a Registry>,
    decl: Option<&'a IntegrationDecl>,
    out: &'o mut Outputs,
    stats: &'a mut EngineStats,
    feedback: &'a FeedbackState,
}

impl Cx<'_, '_> {
    fn observe(&mut self, st: &mut IntegrationState, ev: &Event<'_>) {
        let ts = ev.ts_ms;
        let learning = self.cfg.learning_ms();
        // Resume after silence: judged before this event updates anything.
        if ts > st.last_seen {
            let gap = ts - st.last_seen;
            if st.events > 0 {
                self.check_dormant(st, ev, gap);
            }
            st.max_gap_ms = st.max_gap_ms.max(gap);
            st.last_seen = ts;
        }
        st.events += 1;
        st.records = st.records.saturating_add(ev.records);
        st.bytes = st.bytes.saturating_add(ev.bytes);
        if ev.is_auth_error() {
            st.auth_errors += 1;
        }
        close_episodes(self.cfg, ev.integration_id, st, ts, self.out, false);

        // Buckets and baselines, on this integration's own watermark.
        let late = ts < st.watermark - self.cfg.lateness_ms();
        if late {
            st.late_events += 1;
            self.stats.late_events += 1;
        } else {
            st.watermark = st.watermark.max(ts);
            self.advance_buckets(st);
            self.count(st, ev);
        }

        // Registry detectors: from the first event, no learning.
        match (self.registry, self.decl) {
            (Some(_), None) => self.unknown_integration(st, ev),
            (Some(_), Some(d)) => {
                self.scope_violation(st, ev, d);
                self.off_hours(st, ev, d);
            }
            _ => {}
        }
        self.credentials(st, ev, learning);
        self.data_type(st, ev, learning);
        self.source(st, ev, learning);
    }

    // ---- buckets -------------------------------------------------------

    /// Closes every bucket the watermark has passed (minus lateness), folding
    /// it into the hour totals, and closes finished hours into the baselines.
    fn advance_buckets(&mut self, st: &mut IntegrationState) {
        let bucket_ms = self.cfg.bucket_ms();
        let closable = st.watermark - self.cfg.lateness_ms();
        while let Some(b) = st.buckets.first() {
            if b.start_ms + bucket_ms > closable {
                break;
            }
            let b = st.buckets.remove(0);
            self.close_bucket(st, &b);
        }
        // Hours with no open bucket left and before the watermark are complete.
        let open_from = st
            .buckets
            .first()
            .map_or(closable, |b| b.start_ms.min(closable));
        self.close_hours_until(st, open_from.div_euclid(bucket_ms) * bucket_ms);
    }

    fn close_bucket(&mut self, st: &mut IntegrationState, b: &Bucket) {
        self.close_hours_until(st, b.start_ms);
        for s in 0..SERIES {
            let x = if b.fired[s] {
                b.clip[s].min(b.counts[s])
            } else {
                b.counts[s]
            } as f64;
            st.hour_totals[s] += x;
            st.hour_sq[s] += x * x;
        }
        if b.counts[RECORDS] > 0 && !b.fired[RECORDS] {
            let bpr = b.bytes as f64 / b.counts[RECORDS] as f64;
            st.bytes_per_record = if st.bytes_per_record == 0.0 {
                bpr
            } else {
                0.99 * st.bytes_per_record + 0.01 * bpr
            };
        }
    }

    /// Folds every complete hour before `until` into the seasonal baselines;
    /// hours with no traffic count as zeros (bounded to four weeks).
    fn close_hours_until(&mut self, st: &mut IntegrationState, until: i64) {
        let bucket_ms = self.cfg.bucket_ms();
        let per_hour = (HOUR_MS / bucket_ms) as f64;
        if until - st.hour_start > MAX_ZERO_HOURS * HOUR_MS {
            // Skip most of a long silence: keep the hour accumulator's data for
            // its own hour, then jump.
            self.close_one_hour(st, per_hour);
            st.hour_start = (until - MAX_ZERO_HOURS * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS;
        }
        while st.hour_start + HOUR_MS <= until {
            self.close_one_hour(st, per_hour);
        }
    }

    fn close_one_hour(&mut self, st: &mut IntegrationState, per_hour: f64) {
        let h = st.hour_start;
        let slot = hour_of_week(h);
        let month_end = is_month_end(h, self.cfg.month_end_days);
        let weeks = ((h - st.first_seen).max(0) / WEEK_MS + 1).min(i64::from(u16::MAX)) as u16;
        // The first hour is only partly observed: average over what was seen.
        let covered = if st.first_seen > h {
            (((h + HOUR_MS - st.first_seen) / self.cfg.bucket_ms()) as f64).max(1.0)
        } else {
            per_hour
        };
        for s in 0..SERIES {
            let mean_per_bucket = st.hour_totals[s] / covered;
            st.baselines[s].observe_hour(slot, mean_per_bucket, month_end, weeks);
            st.baselines[s].observe_dispersion(st.hour_totals[s], st.hour_sq[s], covered);
        }
        st.hour_totals = [0.0; SERIES];
        st.hour_sq = [0.0; SERIES];
        st.hour_start = h + HOUR_MS;
    }

    /// Adds the event to its bucket and runs the spike detectors on the
    /// running counts, so a spike fires mid-bucket, as soon as it is improbable.
    fn count(&mut self, st: &mut IntegrationState, ev: &Event<'_>) {
        let bucket_ms = self.cfg.bucket_ms();
        let start = ev.ts_ms.div_euclid(bucket_ms) * bucket_ms;
        let idx = match st.buckets.binary_search_by_key(&start, |b| b.start_ms) {
            Ok(i) => i,
            Err(i) => {
                let factors = self.threshold_factors(ev);
                let b = self.open_bucket(st, start, factors);
                st.buckets.insert(i, b);
                i
            }
        };
        let mature = st.mature(ev.ts_ms, self.cfg.learning_ms());
        let b = &mut st.buckets[idx];
        b.counts[CALLS] += 1;
        b.counts[RECORDS] = b.counts[RECORDS].saturating_add(ev.records);
        b.bytes = b.bytes.saturating_add(ev.bytes);
        if ev.is_auth_error() {
            b.counts[ERRORS] += 1;
        }
        if !mature {
            return;
        }
        // `examine(s)` only changes series `s`'s check state, so each series
        // can read the live bucket (no per-event copy of it).
        for s in 0..SERIES {
            let b = &st.buckets[idx];
            let bytes_hit = s == RECORDS && b.bytes >= b.bytes_check_at;
            if b.counts[s] >= b.check_at[s] || bytes_hit {
                self.examine(st, idx, s, ev);
            }
        }
    }

    /// Feedback multipliers of each series' thresholds (1 without feedback).
    fn threshold_factors(&self, ev: &Event<'_>) -> [f64; SERIES] {
        if self.feedback.is_empty() {
            return [1.0; SERIES];
        }
        let f = |k| {
            self.feedback
                .threshold_factor(ev.integration_id, k, ev.ts_ms)
        };
        [
            f(AlertKind::CallSpike),
            f(AlertKind::VolumeSpike),
            f(AlertKind::ErrorBurst),
        ]
    }

    /// Opens a bucket; its thresholds are the configured ones times
    /// `factors` (raised by feedback until the bucket closes).
    fn open_bucket(&self, st: &IntegrationState, start: i64, factors: [f64; SERIES]) -> Bucket {
        let slot = hour_of_week(start);
        let month_end = is_month_end(start, self.cfg.month_end_days);
        let d = &self.cfg.detectors;
        let mut b = Bucket {
            start_ms: start,
            ..Bucket::default()
        };
        for (s, factor) in factors.iter().enumerate() {
            let (enabled, ratio, excess) = match s {
                CALLS => (
                    d.call_spike.enabled,
                    d.call_spike.min_ratio,
                    d.call_spike.min_excess,
                ),
                RECORDS => (
                    d.volume_spike.spike.enabled,
                    d.volume_spike.spike.min_ratio,
                    d.volume_spike.spike.min_excess,
                ),
                _ => (
                    d.error_burst.enabled,
                    d.error_burst.min_ratio,
                    d.error_burst.min_excess,
                ),
            };
            let (ratio, excess) = (ratio * factor, excess * factor);
            let cheap = match st.baselines[s].expected(slot, month_end) {
                Some(mean) if enabled => (mean * ratio).max(mean + excess).ceil().max(1.0) as u64,
                _ => u64::MAX,
            };
            b.check_at[s] = cheap;
            b.clip[s] = if cheap == u64::MAX { u64::MAX } else { cheap };
        }
        b.bytes_check_at = match st.baselines[RECORDS].expected(slot, month_end) {
            Some(mean) if d.volume_spike.spike.enabled && st.bytes_per_record > 0.0 => {
                let exp = mean * st.bytes_per_record;
                (exp * d.volume_spike.spike.min_ratio * factors[RECORDS])
                    .max(exp + d.volume_spike.min_excess_bytes * factors[RECORDS])
                    .ceil() as u64
            }
            _ => u64::MAX,
        };
        b
    }

    /// The running count of series `s` passed the cheap bound: compute its
    /// exact tail probability and fire, or raise the bar for the next check.
    fn examine(&mut self, st: &mut IntegrationState, idx: usize, s: usize, ev: &Event<'_>) {
        let b = &st.buckets[idx];
        let slot = hour_of_week(b.start_ms);
        let month_end = is_month_end(b.start_ms, self.cfg.month_end_days);
        let Some(mean) = st.baselines[s].expected(slot, month_end) else {
            return;
        };
        let disp = st.baselines[s].dispersion();
        let d = &self.cfg.detectors;
        let p_thresh = match s {
            CALLS => d.call_spike.p_value,
            RECORDS => d.volume_spike.spike.p_value,
            _ => d.error_burst.p_value,
        };
        // Bytes are judged on the records baseline, converted at the learned rate.
        let by_bytes = s == RECORDS && b.bytes >= b.bytes_check_at && st.bytes_per_record > 0.0;
        let observed = if by_bytes {
            (b.bytes as f64 / st.bytes_per_record)
                .max(b.counts[s] as f64)
                .round() as u64
        } else {
            b.counts[s]
        };
        let p = upper_tail(observed, mean, disp);
        // Records explained by the call count are a call spike, not a bulk
        // export: volume_spike needs records per call well above usual too.
        let follows_calls = s == RECORDS && {
            let calls_mean = st.baselines[CALLS].expected(slot, month_end).unwrap_or(1.0);
            let usual_rpc = mean / calls_mean.max(1e-9);
            let rpc = observed as f64 / (b.counts[CALLS].max(1) as f64);
            rpc < 2.0 * usual_rpc
        };
        if p > p_thresh || follows_calls {
            // Not yet improbable: next look when the count has grown by a tenth.
            let bucket = &mut st.buckets[idx];
            bucket.check_at[s] = bucket.counts[s].saturating_add((bucket.counts[s] / 10).max(1));
            if by_bytes {
                bucket.bytes_check_at = bucket.bytes.saturating_add((bucket.bytes / 10).max(1));
            }
            return;
        }
        let (start, counts, bytes) = {
            let bucket = &mut st.buckets[idx];
            bucket.fired[s] = true;
            bucket.check_at[s] = u64::MAX;
            if s == RECORDS {
                bucket.bytes_check_at = u64::MAX;
            }
            (bucket.start_ms, bucket.counts, bucket.bytes)
        };
        let bucket_ms = self.cfg.bucket_ms();
        let sd = (mean * disp).sqrt();
        let label = slot_label(start);
        let mins = bucket_ms as f64 / 60_000.0;
        let win = if (mins - 1.0).abs() < f64::EPSILON {
            "1 min".to_owned()
        } else {
            format!("{mins} min")
        };
        let (kind, summary) = match s {
            CALLS => (
                AlertKind::CallSpike,
                format!(
                    "{} made {} calls in {win}; its baseline for {label} is {} ± {}",
                    ev.integration_id,
                    counts[CALLS],
                    fmt1(mean),
                    fmt1(sd)
                ),
            ),
            RECORDS => (
                AlertKind::VolumeSpike,
                format!(
                    "{} moved {} records ({}) in {win} over {} calls; its baseline for {label} is {} records ± {}",
                    ev.integration_id,
                    counts[RECORDS],
                    human_bytes(bytes),
                    counts[CALLS],
                    fmt1(mean),
                    fmt1(sd)
                ),
            ),
            _ => (
                AlertKind::ErrorBurst,
                format!(
                    "{} got {} auth failures (401/403/429) in {win}; its baseline for {label} is {} ± {}",
                    ev.integration_id,
                    counts[ERRORS],
                    fmt1(mean),
                    fmt1(sd)
                ),
            ),
        };
        let mut evidence = Evidence::new();
        evidence.insert("baseline_slot".into(), label.into());
        evidence.insert("baseline_mean".into(), mean.into());
        evidence.insert("baseline_stddev".into(), sd.into());
        evidence.insert("dispersion".into(), disp.into());
        evidence.insert("month_end".into(), month_end.into());
        evidence.insert("tail_probability".into(), EvidenceValue::Num(p));
        evidence.insert("calls".into(), counts[CALLS].into());
        evidence.insert("records".into(), counts[RECORDS].into());
        evidence.insert("bytes".into(), bytes.into());
        evidence.insert("auth_errors".into(), counts[ERRORS].into());
        if s == RECORDS {
            evidence.insert(
                "bytes_per_record_baseline".into(),
                st.bytes_per_record.into(),
            );
            evidence.insert(
                "judged_on".into(),
                if by_bytes { "bytes" } else { "records" }.into(),
            );
        }
        let f = Finding {
            kind,
            subject: "",
            key_id: ev.key_id,
            resource: None,
            window: (start, start + bucket_ms),
            observed: Some(observed as f64),
            expected: Some(round_sig(mean)),
            score: score_from_p(p),
            sensitive: false,
            summary,
            evidence,
        };
        self.fire(st, ev, f);
    }

    // ---- learned detectors -------------------------------------------

    fn check_dormant(&mut self, st: &mut IntegrationState, ev: &Event<'_>, gap: i64) {
        let d = &self.cfg.detectors.dormant_reactivated;
        if !d.enabled {
            return;
        }
        let learning = self.cfg.learning_ms();
        let min_silence = i64::from(d.min_silence_days) * DAY_MS;
        // Mature before the silence: enough active history to know its gaps.
        if st.last_seen - st.first_seen < learning {
            return;
        }
        let usual = st.max_gap_ms.max(DAY_MS);
        if gap < min_silence || (gap as f64) < d.gap_factor * usual as f64 {
            return;
        }
        let days = gap as f64 / DAY_MS as f64;
        let p = (usual as f64 / gap as f64).powi(2).min(1.0);
        let mut evidence = Evidence::new();
        evidence.insert("silence_days".into(), days.into());
        evidence.insert(
            "longest_previous_gap_days".into(),
            (st.max_gap_ms as f64 / DAY_MS as f64).into(),
        );
        evidence.insert("last_seen".into(), format_rfc3339(st.last_seen).into());
        evidence.insert(
            "active_days_before".into(),
            ((st.last_seen - st.first_seen) as f64 / DAY_MS as f64).into(),
        );
        let f = Finding {
            kind: AlertKind::DormantReactivated,
            subject: "",
            key_id: ev.key_id,
            resource: None,
            window: (st.last_seen, ev.ts_ms),
            observed: Some(round_sig(days)),
            expected: Some(round_sig(st.max_gap_ms as f64 / DAY_MS as f64)),
            score: score_from_p(p * 1e-3),
            sensitive: false,
            summary: format!(
                "{} woke up after {} days of silence (last call {}); its longest gap before was {} days",
                ev.integration_id,
                fmt1(days),
                format_rfc3339(st.last_seen),
                fmt1(st.max_gap_ms as f64 / DAY_MS as f64)
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }

    fn data_type(&mut self, st: &mut IntegrationState, ev: &Event<'_>, learning: i64) {
        let ts = ev.ts_ms;
        if let Some(d) = st
            .data_types
            .iter_mut()
            .find(|d| d.action == ev.action && &*d.resource == ev.resource)
        {
            d.count += 1;
            d.last_seen = d.last_seen.max(ts);
            d.first_seen = d.first_seen.min(ts);
            return;
        }
        if st.data_types.len() >= self.cfg.max_data_types {
            return;
        }
        let mature = st.mature(ts, learning);
        let known: Vec<String> = if mature && self.cfg.detectors.new_data_type.enabled {
            let mut v: Vec<String> = st
                .data_types
                .iter()
                .map(|d| format!("{}:{}", d.resource, d.action.as_str()))
                .collect();
            v.sort();
            v
        } else {
            Vec::new()
        };
        st.data_types.push(DataTypeUse {
            resource: ev.resource.into(),
            action: ev.action,
            first_seen: ts,
            last_seen: ts,
            count: 1,
        });
        if !mature || !self.cfg.detectors.new_data_type.enabled {
            return;
        }
        let dt = format!("{}:{}", ev.resource, ev.action.as_str());
        // Rule of succession: after N events without it, P(new) ≈ 1/(N+2).
        let p = 1.0 / (st.events as f64 + 1.0);
        let history_days = (ts - st.first_seen) as f64 / DAY_MS as f64;
        let sensitive = self.is_sensitive(ev.resource);
        let mut evidence = Evidence::new();
        evidence.insert("data_type".into(), dt.clone().into());
        evidence.insert("known_data_types".into(), known.clone().into());
        evidence.insert("history_days".into(), history_days.into());
        evidence.insert("history_events".into(), (st.events - 1).into());
        evidence.insert("sensitive_resource".into(), sensitive.into());
        let f = Finding {
            kind: AlertKind::NewDataType,
            subject: &dt,
            key_id: ev.key_id,
            resource: Some(ev.resource.to_owned()),
            window: (st.first_seen, ts),
            observed: None,
            expected: None,
            score: score_from_p(p),
            sensitive,
            summary: format!(
                "{} touched {dt} for the first time in {} days of history ({} calls); it normally uses {}",
                ev.integration_id,
                fmt1(history_days),
                st.events - 1,
                if known.is_empty() { "nothing else".to_owned() } else { known.join(", ") }
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }

    fn source(&mut self, st: &mut IntegrationState, ev: &Event<'_>, learning: i64) {
        let Some(ip) = ev.source_ip else { return };
        let net = network_of(ip, self.cfg.network_prefix_v4, self.cfg.network_prefix_v6);
        let ts = ev.ts_ms;
        // Declared networks: any call from outside them, from the first event.
        if let Some(d) = self.decl {
            if !d.network_allowed(ip) && self.cfg.detectors.new_source.enabled {
                let declared: Vec<String> = d.networks.iter().map(ToString::to_string).collect();
                let subject = net.to_string();
                let mut evidence = Evidence::new();
                evidence.insert("source_ip".into(), ip.to_string().into());
                evidence.insert("network".into(), subject.clone().into());
                evidence.insert("declared_networks".into(), declared.clone().into());
                evidence.insert("source".into(), "registry".into());
                let f = Finding {
                    kind: AlertKind::NewSource,
                    subject: &subject,
                    key_id: ev.key_id,
                    resource: None,
                    window: (ts, ts),
                    observed: None,
                    expected: None,
                    score: score_from_p(1e-6),
                    sensitive: false,
                    summary: format!(
                        "{} called from {ip}{}, outside its declared networks {}",
                        ev.integration_id,
                        ev.key_id
                            .map(|k| format!(" with key {k}"))
                            .unwrap_or_default(),
                        declared.join(", ")
                    ),
                    evidence,
                };
                self.fire(st, ev, f);
            }
        }
        if let Some(n) = st.networks.iter_mut().find(|n| n.network == net) {
            n.count += 1;
            n.last_seen = n.last_seen.max(ts);
            return;
        }
        if st.networks.len() >= self.cfg.max_networks {
            return;
        }
        let known: Vec<String> = st.networks.iter().map(|n| n.network.to_string()).collect();
        st.networks.push(NetworkUse {
            network: net,
            first_seen: ts,
            last_seen: ts,
            count: 1,
        });
        let declared = self.decl.is_some_and(|d| !d.networks.is_empty());
        if declared || !st.mature(ts, learning) || !self.cfg.detectors.new_source.enabled {
            return;
        }
        let subject = net.to_string();
        let p = 1.0 / (st.events as f64 + 1.0) * (known.len() as f64 + 1.0);
        let mut evidence = Evidence::new();
        evidence.insert("source_ip".into(), ip.to_string().into());
        evidence.insert("network".into(), subject.clone().into());
        evidence.insert("known_networks".into(), known.clone().into());
        evidence.insert("source".into(), "learned".into());
        let f = Finding {
            kind: AlertKind::NewSource,
            subject: &subject,
            key_id: ev.key_id,
            resource: None,
            window: (st.first_seen, ts),
            observed: None,
            expected: None,
            score: score_from_p(p.min(1.0)),
            sensitive: false,
            summary: format!(
                "{} called from new network {subject} ({ip}){}; it was only seen from {}",
                ev.integration_id,
                ev.key_id
                    .map(|k| format!(" with key {k}"))
                    .unwrap_or_default(),
                if known.is_empty() {
                    "no network".to_owned()
                } else {
                    known.join(", ")
                }
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }

    // ---- registry detectors -------------------------------------------

    fn unknown_integration(&mut self, st: &mut IntegrationState, ev: &Event<'_>) {
        if !self.cfg.detectors.unknown_integration.enabled
            || self.try_fold(st, ev, AlertKind::UnknownIntegration, &[], 0.8)
        {
            return;
        }
        let dt = format!("{}:{}", ev.resource, ev.action.as_str());
        let mut evidence = Evidence::new();
        evidence.insert("first_seen".into(), format_rfc3339(st.first_seen).into());
        evidence.insert("data_type".into(), dt.clone().into());
        evidence.insert(
            "source_ip".into(),
            ev.source_ip.map(|i| i.to_string()).into(),
        );
        let f = Finding {
            kind: AlertKind::UnknownIntegration,
            subject: "",
            key_id: ev.key_id,
            resource: Some(ev.resource.to_owned()),
            window: (st.first_seen, ev.ts_ms),
            observed: Some(st.events as f64),
            expected: None,
            score: 0.8,
            sensitive: self.is_sensitive(ev.resource),
            summary: format!(
                "unregistered integration {} is calling the CRM ({dt}{}); it is not in the registry",
                ev.integration_id,
                ev.key_id.map(|k| format!(", key {k}")).unwrap_or_default()
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }

    fn scope_violation(&mut self, st: &mut IntegrationState, ev: &Event<'_>, d: &IntegrationDecl) {
        if !self.cfg.detectors.scope_violation.enabled
            || d.is_granted(ev.resource, ev.action)
            || self.try_fold(
                st,
                ev,
                AlertKind::ScopeViolation,
                &[ev.resource, ":", ev.action.as_str()],
                0.9,
            )
        {
            return;
        }
        let dt = format!("{}:{}", ev.resource, ev.action.as_str());
        let granted: Vec<String> = d.granted.iter().map(ToString::to_string).collect();
        let mut evidence = Evidence::new();
        evidence.insert("data_type".into(), dt.clone().into());
        evidence.insert("granted".into(), granted.clone().into());
        evidence.insert("registry_entry".into(), d.id.clone().into());
        let f = Finding {
            kind: AlertKind::ScopeViolation,
            subject: &dt,
            key_id: ev.key_id,
            resource: Some(ev.resource.to_owned()),
            window: (ev.ts_ms, ev.ts_ms),
            observed: None,
            expected: None,
            score: 0.9,
            sensitive: self.is_sensitive(ev.resource),
            summary: format!(
                "{} did {dt}, which its registry grants do not allow (granted: {})",
                ev.integration_id,
                if granted.is_empty() {
                    "nothing".to_owned()
                } else {
                    granted.join(", ")
                }
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }

    fn off_hours(&mut self, st: &mut IntegrationState, ev: &Event<'_>, d: &IntegrationDecl) {
        let Some(h) = &d.active_hours else { return };
        if !self.cfg.detectors.off_hours.enabled
            || h.contains(ev.ts_ms)
            || self.try_fold(st, ev, AlertKind::OffHours, &[], 0.6)
        {
            return;
        }
        let local =
            crate::time::format_rfc3339(ev.ts_ms + i64::from(h.utc_offset_minutes) * 60_000);
        let local = local.get(..16).unwrap_or(&local).replace('T', " ");
        let mut evidence = Evidence::new();
        evidence.insert("active_hours".into(), h.describe().into());
        evidence.insert("local_time".into(), local.clone().into());
        let f = Finding {
            kind: AlertKind::OffHours,
            subject: "",
            key_id: ev.key_id,
            resource: Some(ev.resource.to_owned()),
            window: (ev.ts_ms, ev.ts_ms),
            observed: None,
            expected: None,
            score: 0.6,
            sensitive: self.is_sensitive(ev.resource),
            summary: format!(
                "{} called at {local} local time, outside its active hours ({})",
                ev.integration_id,
                h.describe()
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }

    /// Key and principal bookkeeping, revocation/offboarding, key dormancy.
    fn credentials(&mut self, st: &mut IntegrationState, ev: &Event<'_>, learning: i64) {
        let ts = ev.ts_ms;
        if let Some(k) = ev.key_id {
            let prev = track(&mut st.keys, k, ts, self.cfg.max_keys);
            if let Some(key) = self.registry.and_then(|r| r.key(k)) {
                if let Some(rev) = key.revoked_at.filter(|r| ts >= *r) {
                    self.revoked(st, ev, "key", k, rev);
                }
            }
            // A key silent far longer than usual, on an integration that is not
            // itself waking up (that alert already covers it).
            if let Some((last, max_gap)) = prev {
                let d = &self.cfg.detectors.dormant_reactivated;
                let gap = ts - last;
                let integration_woke = st
                    .episodes
                    .iter()
                    .any(|e| e.kind == AlertKind::DormantReactivated && e.last_seen == ts);
                if d.enabled
                    && !integration_woke
                    && st.mature(last, learning)
                    && gap >= i64::from(d.min_silence_days) * DAY_MS
                    && gap as f64 >= d.gap_factor * max_gap.max(DAY_MS) as f64
                {
                    let days = gap as f64 / DAY_MS as f64;
                    let mut evidence = Evidence::new();
                    evidence.insert("silence_days".into(), days.into());
                    evidence.insert("key_last_seen".into(), format_rfc3339(last).into());
                    evidence.insert(
                        "longest_previous_gap_days".into(),
                        (max_gap as f64 / DAY_MS as f64).into(),
                    );
                    let f = Finding {
                        kind: AlertKind::DormantReactivated,
                        subject: k,
                        key_id: Some(k),
                        resource: None,
                        window: (last, ts),
                        observed: Some(round_sig(days)),
                        expected: Some(round_sig(max_gap as f64 / DAY_MS as f64)),
                        score: score_from_p(
                            1e-3 * (max_gap.max(DAY_MS) as f64 / gap as f64).powi(2),
                        ),
                        sensitive: false,
                        summary: format!(
                            "{}: key {k} was used again after {} days unused (last use {})",
                            ev.integration_id,
                            fmt1(days),
                            format_rfc3339(last)
                        ),
                        evidence,
                    };
                    self.fire(st, ev, f);
                }
            }
        }
        if let Some(p) = ev.principal {
            track(&mut st.principals, p, ts, self.cfg.max_keys);
            if let Some(off) = self
                .registry
                .and_then(|r| r.principal(p))
                .and_then(|d| d.offboarded_at)
                .filter(|o| ts >= *o)
            {
                self.revoked(st, ev, "principal", p, off);
            }
        }
    }

    fn revoked(
        &mut self,
        st: &mut IntegrationState,
        ev: &Event<'_>,
        what: &str,
        id: &str,
        at: i64,
    ) {
        if !self.cfg.detectors.revoked_credential.enabled
            || self.try_fold(st, ev, AlertKind::RevokedCredential, &[what, ":", id], 0.95)
        {
            return;
        }
        let ago = (ev.ts_ms - at) as f64 / DAY_MS as f64;
        let mut evidence = Evidence::new();
        evidence.insert("credential_type".into(), what.into());
        evidence.insert(
            if what == "key" {
                "revoked_at"
            } else {
                "offboarded_at"
            }
            .into(),
            format_rfc3339(at).into(),
        );
        evidence.insert("days_since".into(), ago.into());
        evidence.insert(
            "source_ip".into(),
            ev.source_ip.map(|i| i.to_string()).into(),
        );
        let subject = format!("{what}:{id}");
        let summary = if what == "key" {
            format!(
                "{} used key {id}, revoked at {} ({} days ago)",
                ev.integration_id,
                format_rfc3339(at),
                fmt1(ago)
            )
        } else {
            evidence.insert("principal".into(), id.into());
            format!(
                "{} ran a call as {id}, offboarded at {} ({} days ago)",
                ev.integration_id,
                format_rfc3339(at),
                fmt1(ago)
            )
        };
        let f = Finding {
            kind: AlertKind::RevokedCredential,
            subject: &subject,
            key_id: ev.key_id,
            resource: Some(ev.resource.to_owned()),
            window: (at, ev.ts_ms),
            observed: None,
            expected: None,
            score: 0.95,
            sensitive: true,
            summary,
            evidence,
        };
        self.fire(st, ev, f);
    }

    fn is_sensitive(&self, resource: &str) -> bool {
        self.cfg.sensitive_resources.iter().any(|r| r == resource)
    }

    /// Emits a finding as a new alert, or folds it into its open episode.
    /// The cheap part of [`Cx::fire`], run before a finding is built: if
    /// feedback makes it expected, or it repeats an open episode within the
    /// cooldown, handle it here — so a flood of one ongoing violation costs
    /// no allocation per event. `subject` is given in parts (compared without
    /// concatenating). Returns whether the event was handled.
    fn try_fold(
        &mut self,
        st: &mut IntegrationState,
        ev: &Event<'_>,
        kind: AlertKind,
        subject: &[&str],
        score: f64,
    ) -> bool {
        let ts = ev.ts_ms;
        if !self.feedback.is_empty()
            && self.feedback.suppresses(
                ev.integration_id,
                kind,
                ev.resource,
                ev.action,
                ev.source_ip,
                ts,
            )
        {
            return true;
        }
        let (_gap, cooldown) = self.cfg.detectors.fold_ms(kind);
        match st
            .episodes
            .iter_mut()
            .find(|e| e.kind == kind && subject_is(&e.subject, subject))
        {
            Some(e) if ts - e.last_alert < cooldown => {
                e.last_seen = e.last_seen.max(ts);
                e.folded += 1;
                e.score = e.score.max(score);
                self.stats.folded += 1;
                true
            }
            _ => false,
        }
    }

    fn fire(&mut self, st: &mut IntegrationState, ev: &Event<'_>, f: Finding<'_>) {
        let ts = ev.ts_ms;
        // Analyst feedback made this expected (until its event-time expiry).
        if !self.feedback.is_empty()
            && self.feedback.suppresses(
                ev.integration_id,
                f.kind,
                ev.resource,
                ev.action,
                ev.source_ip,
                ts,
            )
        {
            return;
        }
        let (_gap, cooldown) = self.cfg.detectors.fold_ms(f.kind);
        if let Some(e) = st
            .episodes
            .iter_mut()
            .find(|e| e.kind == f.kind && &*e.subject == f.subject)
        {
            if ts - e.last_alert < cooldown {
                e.last_seen = e.last_seen.max(ts);
                e.folded += 1;
                e.score = e.score.max(f.score);
                self.stats.folded += 1;
                return;
            }
        }
        // A cooldown re-alert replaces the old episode: resolve the old id so
        // stateful receivers do not keep it open.
        let out = &mut *self.out;
        st.episodes.retain(|e| {
            let same = e.kind == f.kind && &*e.subject == f.subject;
            if same && !e.announced {
                out.resolved.push(Resolved {
                    id: e.alert_id.clone(),
                    kind: e.kind,
                    severity: e.severity,
                    integration_id: ev.integration_id.to_owned(),
                    last_seen: e.last_seen,
                    resolved_at: ts,
                    folded: e.folded,
                });
            }
            !same
        });
        let mut severity = self.cfg.detectors.severity(f.kind);
        if f.sensitive
            || self
                .decl
                .is_some_and(|d| d.sensitivity == crate::registry::Sensitivity::High)
        {
            severity = severity.raised();
        }
        let id = alert_id(&[
            f.kind.as_str(),
            ev.integration_id,
            f.subject,
            &ts.to_string(),
        ]);
        st.episodes.push(Episode {
            kind: f.kind,
            subject: f.subject.into(),
            alert_id: id.clone(),
            severity,
            score: f.score,
            started: ts,
            last_alert: ts,
            last_seen: ts,
            folded: 0,
            announced: false,
        });
        let mut evidence = f.evidence;
        if let Some(d) = self.decl {
            if let Some(o) = &d.owner {
                evidence.insert("owner".into(), o.clone().into());
            }
        }
        self.stats.alerts += 1;
        self.out.alerts.push(Alert {
            id,
            kind: f.kind,
            severity,
            integration_id: ev.integration_id.to_owned(),
            key_id: f.key_id.map(str::to_owned),
            resource: f.resource,
            detected_at: ts,
            window_start: f.window.0,
            window_end: f.window.1,
            observed: f.observed,
            expected: f.expected,
            score: f.score,
            summary: f.summary,
            evidence,
        });
    }
}

/// Ends the integration's episodes whose quiet gap has passed at `now`.
fn close_episodes(
    cfg: &EngineConfig,
    id: &str,
    st: &mut IntegrationState,
    now: i64,
    out: &mut Outputs,
    announce_only: bool,
) {
    if st.episodes.is_empty() {
        return;
    }
    st.episodes.retain_mut(|e| {
        let (gap, _) = cfg.detectors.fold_ms(e.kind);
        if now - e.last_seen <= gap {
            return true;
        }
        if !e.announced {
            out.resolved.push(Resolved {
                id: e.alert_id.clone(),
                kind: e.kind,
                severity: e.severity,
                integration_id: id.to_owned(),
                last_seen: e.last_seen,
                resolved_at: e.last_seen + gap,
                folded: e.folded,
            });
            e.announced = true;
        }
        // Only the integration's own events end an episode; a time from
        // outside (another partition's progress) only announces the end.
        announce_only
    });
}

/// Whether `s` equals the concatenation of `parts`.
fn subject_is(s: &str, parts: &[&str]) -> bool {
    let mut rest = s;
    for p in parts {
        match rest.strip_prefix(p) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// Records a use of a key or principal; returns its previous (last use, max gap).
fn track(list: &mut Vec<CredentialUse>, id: &str, ts: i64, cap: usize) -> Option<(i64, i64)> {
    if let Some(c) = list.iter_mut().find(|c| &*c.id == id) {
        let prev = (c.last_seen, c.max_gap_ms);
        if ts > c.last_seen {
            c.max_gap_ms = c.max_gap_ms.max(ts - c.last_seen);
            c.last_seen = ts;
        }
        c.first_seen = c.first_seen.min(ts);
        c.count += 1;
        return Some(prev);
    }
    if list.len() < cap {
        list.push(CredentialUse {
            id: id.into(),
            first_seen: ts,
            last_seen: ts,
            count: 1,
            max_gap_ms: 0,
        });
    }
    None
}

/// The network an address belongs to for `new_source`.
pub fn network_of(ip: IpAddr, v4: u8, v6: u8) -> IpNet {
    let len = if ip.is_ipv4() { v4 } else { v6 };
    IpNet::new(ip, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

fn fmt1(v: f64) -> String {
    if v >= 100.0 || (v - v.round()).abs() < 0.05 {
        format!("{:.0}", v)
    } else {
        format!("{:.1}", v)
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
