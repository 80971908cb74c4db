//! What the engine remembers about one integration: counters, its own
//! event-time watermark, the bounded lists of data types, networks, keys and
//! principals it used, its open anomaly episodes, and (private to the
//! bucket code) its open buckets and seasonal baselines.
//!
//! Plain data: it serializes for checkpoints (field order is part of the
//! checkpoint format) and is what the inventory and audit read.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::buckets::{Bucket, SERIES};
use crate::clock::Jump;
use crate::detect::sustained::{KeyWatch, Shifts};
use crate::episodes::Episode;
use crate::event::Action;
use crate::stats::Seasonal;
use crate::time::{HOUR_MS, MINUTE_MS};

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
    /// The key's sustained-shift statistic (unused for principals).
    #[serde(default)]
    pub(crate) watch: KeyWatch,
}

/// Everything the engine knows about one integration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntegrationState {
    pub first_seen: i64,
    pub last_seen: i64,
    /// This integration's own event-time watermark: the newest of its
    /// on-time event times, except one event more than the lateness
    /// allowance ahead, held as its `lead` until its next event confirms
    /// it (`clock::advance_watermark`).
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
    pub(crate) baselines: Vec<Seasonal>,
    /// Learned bytes per record, to judge bytes on the records baseline.
    pub(crate) bytes_per_record: f64,
    pub(crate) buckets: Vec<Bucket>,
    /// Start of the hour being accumulated, and its per-series totals.
    pub(crate) hour_start: i64,
    pub(crate) hour_totals: [f64; SERIES],
    /// Sums of squares of the hour's bucket counts (within-hour dispersion).
    pub(crate) hour_sq: [f64; SERIES],
    /// Sustained-shift statistics of every series.
    #[serde(default)]
    pub(crate) shifts: Shifts,
    /// Its current run of events beyond the stream time's skew.
    #[serde(default)]
    pub(crate) jump: Jump,
    /// No episode can end before this event time (a lower bound kept by
    /// `episodes.rs`), so most events skip the scan of open episodes.
    #[serde(default)]
    pub(crate) episodes_close_after: i64,
    /// Minutes from `first_seen` to the start of the learning period: 0
    /// unless a thin history was set aside
    /// ([`IntegrationState::restart_learning`]). Minutes in a `u32` (in the
    /// struct's padding: no memory cost) span any two event times.
    #[serde(default)]
    pub(crate) learning_offset_min: u32,
    /// Events that moved its clocks (not out of range), saturating: only
    /// compared with `clock::CONFIRM` (is its history too thin to learn
    /// from?). A checkpoint from before it was kept reads as saturated.
    #[serde(default = "saturated")]
    pub(crate) accepted: u8,
    /// Its newest on-time event time while that is held (more than the
    /// lateness allowance ahead of the watermark, not yet confirmed by a
    /// second event: `clock::advance_watermark`); `<= watermark`: none.
    #[serde(default)]
    pub(crate) lead: i64,
}

fn saturated() -> u8 {
    u8::MAX
}

impl IntegrationState {
    pub(crate) fn new(ts: i64) -> Self {
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
            shifts: Shifts::default(),
            jump: Jump::default(),
            episodes_close_after: 0,
            learning_offset_min: 0,
            accepted: 0,
            lead: ts,
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

    /// Start of the learning period: the first event, unless the few
    /// events before a long silence were set aside
    /// ([`IntegrationState::restart_learning`]).
    pub fn learning_start(&self) -> i64 {
        self.first_seen
            .saturating_add(i64::from(self.learning_offset_min) * MINUTE_MS)
    }

    /// Records per call pooled over the integration's whole history.
    pub(crate) fn records_per_call(&self) -> f64 {
        self.records as f64 / self.events.max(1) as f64
    }

    /// Whether the learning period has passed at `now` (event time).
    pub(crate) fn mature(&self, now: i64, learning_ms: i64) -> bool {
        now - self.learning_start() >= learning_ms
    }

    /// Starts the clocks of an integration that had only out-of-range
    /// events (it was created at a bounded time, `Engine::process`) at
    /// `at`, its first accepted event: first and last seen, watermark,
    /// learning start and hour. Its out-of-range events moved nothing else
    /// (never counted into a bucket or a baseline).
    pub(crate) fn start_clocks_at(&mut self, at: i64) {
        self.first_seen = at;
        self.last_seen = at;
        self.watermark = at;
        self.lead = at;
        self.learning_offset_min = 0;
        self.hour_start = at.div_euclid(HOUR_MS) * HOUR_MS;
    }

    /// Starts the learning period again at `at`, the event ending a silence
    /// that followed too thin a history to learn from (`detect::Cx::observe`:
    /// fewer than `clock::CONFIRM` events, then a silence longer than
    /// `max_future_skew`). One event dated a month before an integration's
    /// real traffic — forged, or a lone test call — must not stand in for
    /// its learning period, nor fill its baselines with a month of zeros:
    /// the baselines, open buckets and shift statistics start afresh (as
    /// for a new integration). What it *did* stays: first seen, counts,
    /// longest gap (dormancy does not depend on learning), data types,
    /// networks, keys and principals, open episodes.
    pub(crate) fn restart_learning(&mut self, at: i64) {
        let after = (at - self.first_seen).max(0);
        // Rounded up: the restarted period is never shorter than a whole one.
        let minutes = after / MINUTE_MS + i64::from(after % MINUTE_MS != 0);
        self.learning_offset_min = u32::try_from(minutes).unwrap_or(u32::MAX);
        for b in &mut self.baselines {
            *b = Seasonal::default();
        }
        self.bytes_per_record = 0.0;
        self.buckets.clear();
        self.hour_start = at.div_euclid(HOUR_MS) * HOUR_MS;
        self.hour_totals = [0.0; SERIES];
        self.hour_sq = [0.0; SERIES];
        self.shifts = Shifts::default();
        for k in &mut self.keys {
            k.watch = KeyWatch::default();
        }
    }
}

/// Records a use of a key or principal; returns its previous (last use, max gap).
/// Pushes onto a per-integration list growing it by one slot at a time:
/// these lists stay short (a few keys, networks, data types, one or two open
/// buckets) and are held by up to a million integrations, so the default
/// doubling (4 slots at the first push) would be most of their heap. A
/// list reallocates only when it reaches a length it never had.
pub(crate) fn push_exact<T>(list: &mut Vec<T>, x: T) {
    if list.len() == list.capacity() {
        list.reserve_exact(1);
    }
    list.push(x);
}

/// [`push_exact`] for an insertion at `i`.
pub(crate) fn insert_exact<T>(list: &mut Vec<T>, i: usize, x: T) {
    if list.len() == list.capacity() {
        list.reserve_exact(1);
    }
    list.insert(i, x);
}

pub(crate) fn track(
    list: &mut Vec<CredentialUse>,
    id: &str,
    ts: i64,
    cap: usize,
) -> Option<(i64, i64)> {
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
    // Fail closed: a full list forgets its least-used entry, so a burst of
    // junk ids cannot keep a real new one from being tracked.
    if list.len() >= cap.max(1) {
        evict_least_used(list, |c| (c.count, c.last_seen));
    }
    push_exact(
        list,
        CredentialUse {
            id: id.into(),
            first_seen: ts,
            last_seen: ts,
            count: 1,
            max_gap_ms: 0,
            watch: KeyWatch::default(),
        },
    );
    None
}

/// Removes the least-used entry (fewest uses, then least recently seen,
/// then first in the list) and returns it. O(len), only on a full list.
pub(crate) fn evict_least_used<T>(
    list: &mut Vec<T>,
    usage: impl Fn(&T) -> (u64, i64),
) -> Option<T> {
    let i = list
        .iter()
        .enumerate()
        .min_by_key(|(i, t)| (usage(t), *i))
        .map(|(i, _)| i)?;
    Some(list.remove(i))
}

/// How many entries a list may learn while the integration is learning:
/// half its cap, so a burst of junk then cannot crowd out what comes after.
pub(crate) fn learning_allowance(cap: usize) -> usize {
    (cap / 2).max(1)
}

/// The network an address belongs to for `new_source`.
pub fn network_of(ip: IpAddr, v4: u8, v6: u8) -> IpNet {
    let len = if ip.is_ipv4() { v4 } else { v6 };
    IpNet::new(ip, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}
