//! Per-output admission: deduplication by alert id and an optional
//! per-integration rate limit.
//!
//! The engine already folds repeats of an ongoing anomaly into one alert; this
//! is the output-side safety net. It catches the same alert id arriving twice
//! (a replayed stream, a restart), and it caps how many alerts one noisy
//! integration can push to a human channel per hour.
//!
//! Everything here is synchronous and takes `now` as a parameter, so it is
//! tested without clocks or sleeps.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};
use tripline_engine::{Alert, Resolved};

/// Default number of alert ids remembered for deduplication. An id is 16 hex
/// characters, so 10,000 ids cost well under a megabyte per output, and cover
/// far more than a day of alerts at any sane alert rate.
pub const DEFAULT_DEDUP_CAPACITY: usize = 10_000;

/// Most integrations with a partly drained token bucket tracked at once. A
/// full bucket is the same as no bucket, so only integrations that alerted
/// recently take space; past this bound the fullest buckets are forgotten.
const MAX_TRACKED_BUCKETS: usize = 10_000;

/// Grouping settings of one output (`[outputs.grouping]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupingConfig {
    /// Alerts per integration per hour this output accepts (a token bucket of
    /// that size, refilled evenly over the hour). Unset: no limit. Alerts over
    /// the limit are counted in
    /// `tripline_output_dropped_total{reason="rate_limited"}` and their later
    /// resolution is not sent either.
    #[serde(default)]
    pub max_alerts_per_integration_per_hour: Option<u32>,
    /// How many alert ids are remembered to drop duplicates (oldest forgotten first).
    #[serde(default = "default_dedup_capacity")]
    pub dedup_capacity: usize,
}

fn default_dedup_capacity() -> usize {
    DEFAULT_DEDUP_CAPACITY
}

impl Default for GroupingConfig {
    fn default() -> Self {
        GroupingConfig {
            max_alerts_per_integration_per_hour: None,
            dedup_capacity: DEFAULT_DEDUP_CAPACITY,
        }
    }
}

impl GroupingConfig {
    /// Appends every problem with these settings to `problems`.
    pub fn validate(&self, prefix: &str, problems: &mut Vec<String>) {
        if self.max_alerts_per_integration_per_hour == Some(0) {
            problems.push(format!(
                "{prefix}.grouping.max_alerts_per_integration_per_hour must be at least 1 (omit it for no limit)"
            ));
        }
        if self.dedup_capacity == 0 {
            problems.push(format!(
                "{prefix}.grouping.dedup_capacity must be at least 1"
            ));
        }
    }
}

/// A token bucket: `capacity` tokens, refilled at `per_second`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(capacity: u32, refill_every: Duration, now: Instant) -> Self {
        let capacity = f64::from(capacity.max(1));
        let per_second = capacity / refill_every.as_secs_f64().max(f64::MIN_POSITIVE);
        TokenBucket {
            capacity,
            per_second,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.last = now;
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// True when the bucket has refilled completely by `now`.
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.per_second >= self.capacity
    }
}

/// Where an alert id stands for one output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdState {
    /// Accepted: queued or being delivered.
    Queued,
    /// Delivered successfully.
    Delivered,
    /// Dropped by the rate limit; its resolution is suppressed too.
    RateLimited,
    /// Its resolution was accepted.
    Resolved,
}

/// A bounded map of alert id → state, forgetting the oldest inserted id first.
#[derive(Debug)]
pub struct DedupSet {
    capacity: usize,
    states: HashMap<String, IdState>,
    order: VecDeque<String>,
}

impl DedupSet {
    /// An empty set holding at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        DedupSet {
            capacity: capacity.max(1),
            states: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The state of `id`, if remembered.
    pub fn get(&self, id: &str) -> Option<IdState> {
        self.states.get(id).copied()
    }

    /// Sets the state of `id`, inserting it (and evicting the oldest) if new.
    pub fn set(&mut self, id: &str, state: IdState) {
        if let Some(s) = self.states.get_mut(id) {
            *s = state;
            return;
        }
        while self.states.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.states.remove(&old);
                }
                None => break,
            }
        }
        self.states.insert(id.to_owned(), state);
        self.order.push_back(id.to_owned());
    }

    /// Forgets `id`, so the same alert can be accepted again (used when a
    /// queued notification was dropped before delivery).
    pub fn forget(&mut self, id: &str) {
        if self.states.remove(id).is_some() {
            self.order.retain(|o| o != id);
        }
    }

    /// Number of ids remembered.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

/// Counts of what admission folded away, for tests and the shutdown summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupingStats {
    /// Alerts whose id was already queued or delivered.
    pub duplicate_alerts: u64,
    /// Resolutions already accepted once.
    pub duplicate_resolutions: u64,
    /// Alerts over the per-integration rate limit.
    pub rate_limited: u64,
    /// Resolutions not sent because their alert was rate limited.
    pub suppressed_resolutions: u64,
}

/// The outcome of [`Grouper::admit_alert`] / [`Grouper::admit_resolved`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Enqueue it.
    Accept,
    /// Already accepted; fold it.
    Duplicate,
    /// Over the rate limit; drop and count.
    RateLimited,
    /// A resolution of an alert this output never sent.
    Suppressed,
}

/// Admission state of one output.
#[derive(Debug)]
pub struct Grouper {
    per_hour: Option<u32>,
    buckets: HashMap<String, TokenBucket>,
    ids: DedupSet,
    stats: GroupingStats,
}

impl Grouper {
    /// A grouper with the given settings.
    pub fn new(config: &GroupingConfig) -> Self {
        Grouper {
            per_hour: config.max_alerts_per_integration_per_hour,
            buckets: HashMap::new(),
            ids: DedupSet::new(config.dedup_capacity),
            stats: GroupingStats::default(),
        }
    }

    /// Decides whether `alert` is sent, and records it as queued if so.
    pub fn admit_alert(&mut self, alert: &Alert, now: Instant) -> Admission {
        if self.ids.get(&alert.id).is_some() {
            self.stats.duplicate_alerts += 1;
            return Admission::Duplicate;
        }
        if let Some(per_hour) = self.per_hour {
            if self.buckets.len() >= MAX_TRACKED_BUCKETS
                && !self.buckets.contains_key(&alert.integration_id)
            {
                self.buckets.retain(|_, b| !b.is_full(now));
            }
            let bucket = self
                .buckets
                .entry(alert.integration_id.clone())
                .or_insert_with(|| TokenBucket::new(per_hour, Duration::from_secs(3600), now));
            if !bucket.try_take(now) {
                self.stats.rate_limited += 1;
                self.ids.set(&alert.id, IdState::RateLimited);
                return Admission::RateLimited;
            }
        }
        self.ids.set(&alert.id, IdState::Queued);
        Admission::Accept
    }

    /// Decides whether a resolution is sent. A resolution of an alert this
    /// output never saw (e.g. opened before a restart) is sent: stateful
    /// receivers ignore unknown resolutions, and the alert may be open there.
    pub fn admit_resolved(&mut self, resolved: &Resolved) -> Admission {
        match self.ids.get(&resolved.id) {
            Some(IdState::RateLimited) => {
                self.stats.suppressed_resolutions += 1;
                Admission::Suppressed
            }
            Some(IdState::Resolved) => {
                self.stats.duplicate_resolutions += 1;
                Admission::Duplicate
            }
            _ => {
                self.ids.set(&resolved.id, IdState::Resolved);
                Admission::Accept
            }
        }
    }

    /// Records a successful delivery of alert `id`.
    pub fn delivered(&mut self, id: &str) {
        if self.ids.get(id) == Some(IdState::Queued) {
            self.ids.set(id, IdState::Delivered);
        }
    }

    /// Records that the alert `id` was dropped before delivery, so a later
    /// copy of it is accepted again.
    pub fn abandoned(&mut self, id: &str) {
        if self.ids.get(id) == Some(IdState::Queued) {
            self.ids.forget(id);
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> GroupingStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tripline_engine::{AlertKind, Severity};

    fn alert(id: &str, integration: &str) -> Alert {
        Alert {
            id: id.into(),
            kind: AlertKind::CallSpike,
            severity: Severity::Warning,
            integration_id: integration.into(),
            key_id: None,
            resource: None,
            detected_at: 0,
            window_start: 0,
            window_end: 0,
            observed: Some(1.0),
            expected: Some(1.0),
            score: 0.9,
            summary: "s".into(),
            evidence: Default::default(),
        }
    }

    fn resolved(id: &str) -> Resolved {
        Resolved {
            id: id.into(),
            kind: AlertKind::CallSpike,
            severity: Severity::Warning,
            integration_id: "a".into(),
            last_seen: 0,
            resolved_at: 0,
            folded: 0,
        }
    }

    #[test]
    fn token_bucket_refills_evenly() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2, Duration::from_secs(3600), t0);
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        // One token per 30 minutes.
        assert!(!b.try_take(t0 + Duration::from_secs(29 * 60)));
        assert!(b.try_take(t0 + Duration::from_secs(30 * 60)));
        assert!(!b.is_full(t0 + Duration::from_secs(30 * 60)));
        assert!(b.is_full(t0 + Duration::from_secs(90 * 60)));
    }

    #[test]
    fn dedup_set_is_bounded_and_forgets_oldest() {
        let mut d = DedupSet::new(2);
        d.set("a", IdState::Queued);
        d.set("b", IdState::Queued);
        d.set("a", IdState::Delivered);
        d.set("c", IdState::Queued);
        assert_eq!(d.len(), 2);
        assert_eq!(d.get("a"), None);
        assert_eq!(d.get("b"), Some(IdState::Queued));
        d.forget("b");
        assert_eq!(d.get("b"), None);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn duplicates_are_folded_and_abandoned_ids_accepted_again() {
        let t = Instant::now();
        let mut g = Grouper::new(&GroupingConfig::default());
        assert_eq!(g.admit_alert(&alert("1", "a"), t), Admission::Accept);
        assert_eq!(g.admit_alert(&alert("1", "a"), t), Admission::Duplicate);
        g.delivered("1");
        assert_eq!(g.admit_alert(&alert("1", "a"), t), Admission::Duplicate);
        assert_eq!(g.admit_alert(&alert("2", "a"), t), Admission::Accept);
        g.abandoned("2");
        assert_eq!(g.admit_alert(&alert("2", "a"), t), Admission::Accept);
        assert_eq!(g.admit_resolved(&resolved("1")), Admission::Accept);
        assert_eq!(g.admit_resolved(&resolved("1")), Admission::Duplicate);
        assert_eq!(g.admit_resolved(&resolved("unknown")), Admission::Accept);
        assert_eq!(g.stats().duplicate_alerts, 2);
        assert_eq!(g.stats().duplicate_resolutions, 1);
    }

    #[test]
    fn rate_limit_is_per_integration_and_suppresses_resolutions() {
        let t = Instant::now();
        let cfg = GroupingConfig {
            max_alerts_per_integration_per_hour: Some(2),
            ..Default::default()
        };
        let mut g = Grouper::new(&cfg);
        assert_eq!(g.admit_alert(&alert("1", "a"), t), Admission::Accept);
        assert_eq!(g.admit_alert(&alert("2", "a"), t), Admission::Accept);
        assert_eq!(g.admit_alert(&alert("3", "a"), t), Admission::RateLimited);
        assert_eq!(g.admit_alert(&alert("4", "b"), t), Admission::Accept);
        assert_eq!(g.admit_resolved(&resolved("3")), Admission::Suppressed);
        assert_eq!(
            g.admit_alert(&alert("5", "a"), t + Duration::from_secs(1800)),
            Admission::Accept
        );
        assert_eq!(g.stats().rate_limited, 1);
        assert_eq!(g.stats().suppressed_resolutions, 1);
    }

    #[test]
    fn validation_reports_every_problem() {
        let cfg = GroupingConfig {
            max_alerts_per_integration_per_hour: Some(0),
            dedup_capacity: 0,
        };
        let mut p = Vec::new();
        cfg.validate("outputs[0]", &mut p);
        assert_eq!(p.len(), 2);
    }
}
