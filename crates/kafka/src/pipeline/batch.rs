//! One batch: route messages to their partitions, run the partitions'
//! engines (spread over worker threads, each partition on exactly one of
//! them, in offset order), hand the outputs on, send dead letters and alerts;
//! offsets are stored when those are acknowledged (`in_flight`).
//!
//! Nothing here walks engine state: per-partition counters are kept in
//! [`PartState`], and the engine-stats walk (memory estimate) runs at most
//! once a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;
use tripline_engine::{Engine, EngineStats, Outputs};
use tripline_ingest::{Format, RejectReason};

use super::in_flight::InFlight;
use super::produce::{dead_letter, OutRecord};
use super::{PartState, Pipeline};
use crate::consumer::Msg;

/// Engine stats (memory, tracked integrations, late events) are reported at
/// most this often: computing them walks every integration.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// What one worker thread produced for its partitions of a batch.
#[derive(Default)]
pub(super) struct Acc {
    out: Outputs,
    records: Vec<OutRecord>,
    delays: Vec<f64>,
    rejected: [u64; RejectReason::ALL.len()],
    processed: u64,
    skipped: u64,
    seeded: u64,
}

impl Acc {
    fn clear(&mut self) {
        self.out.clear();
        self.records.clear();
        self.delays.clear();
        self.rejected = [0; RejectReason::ALL.len()];
        self.processed = 0;
        self.skipped = 0;
        self.seeded = 0;
    }
}

/// What every worker needs to know about the batch.
#[derive(Clone, Copy)]
struct Env<'a> {
    batch: &'a [Msg],
    now_ms: i64,
    seed_from_ms: Option<i64>,
    dlq_topic: Option<&'a str>,
    formats: &'a HashMap<String, Format>,
    seed: Option<&'a Mutex<Engine>>,
}

static CANONICAL: Format = Format::Canonical;

/// Runs one partition's messages of the batch through its engine, in order.
fn run_partition(ps: &mut PartState, env: Env<'_>, acc: &mut Acc) {
    if ps.pending.is_empty() {
        return;
    }
    ps.unsettled += 1;
    for &i in &ps.pending {
        let m = &env.batch[i as usize];
        if m.offset < ps.skip_below {
            // Already inside the restored checkpoint's state.
            acc.skipped += 1;
            continue;
        }
        ps.batch_next = Some(m.next_offset());
        // One message may hold several events (a Kong batch, a CloudWatch
        // envelope); each is processed in order, each reject dead-lettered.
        let format = env.formats.get(&*m.topic).unwrap_or(&CANONICAL);
        format.decode(m.payload(), &mut |r| match r {
            Ok(raw) => {
                let ev = raw.event();
                if m.offset < ps.seed_until {
                    // Seeding: learn, say nothing; older than the seed
                    // time is not history this deployment wants.
                    if env.seed_from_ms.is_some_and(|t| ev.ts_ms >= t) {
                        let mark = (acc.out.alerts.len(), acc.out.resolved.len());
                        ps.engine.process(&ev, &mut acc.out);
                        acc.out.alerts.truncate(mark.0);
                        acc.out.resolved.truncate(mark.1);
                        ps.events += 1;
                        ps.max_ts = ps.engine.stream_time();
                        acc.seeded += 1;
                    }
                    return;
                }
                if let Some(seed) = env.seed {
                    adopt_seeded(&mut ps.engine, seed, ev.integration_id);
                }
                ps.engine.process(&ev, &mut acc.out);
                ps.events += 1;
                ps.max_ts = ps.engine.stream_time();
                acc.processed += 1;
                #[allow(clippy::cast_precision_loss)]
                acc.delays
                    .push(env.now_ms.saturating_sub(ev.ts_ms) as f64 / 1000.0);
            }
            Err(reject) => {
                if let Some(i) = RejectReason::ALL.iter().position(|r| *r == reject.reason) {
                    acc.rejected[i] += 1;
                }
                if let Some(topic) = env.dlq_topic {
                    acc.records
                        .push(dead_letter(topic, m, reject.reason, &reject.detail));
                }
            }
        });
    }
}

/// Seeding from files: the first live event of an integration this engine
/// does not know moves the integration's learnt state over from the seed
/// engine (one lock per integration, never again for it afterwards).
fn adopt_seeded(engine: &mut Engine, seed: &Mutex<Engine>, id: &str) {
    if engine.integration(id).is_some() {
        return;
    }
    let taken = match seed.lock() {
        Ok(mut s) => s.take_integration(id),
        Err(poisoned) => poisoned.into_inner().take_integration(id),
    };
    if let Some((id, state)) = taken {
        engine.adopt_integration(id, state);
    }
}

impl Pipeline {
    /// Engines, sink, then dead letters and alerts sent; the batch joins the
    /// batches in flight and completes (offsets stored) once they are
    /// acknowledged (`in_flight`). Cancelling this future (shutdown
    /// deadline) stores nothing, and the partitions it touched stay
    /// unsettled (never checkpointed).
    pub(super) async fn process_batch(&mut self, batch: &[Msg]) {
        let started = std::time::Instant::now();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));

        // Route: one binary search per run of messages of one partition.
        let mut unowned = 0u64;
        let mut last: Option<(&str, i32, usize)> = None;
        for (i, m) in batch.iter().enumerate() {
            let slot = match last {
                Some((t, p, s)) if p == m.partition && t == &*m.topic => Some(s),
                _ => {
                    let s = self.slot(&m.topic, m.partition);
                    last = s.map(|s| (&*m.topic, m.partition, s));
                    s
                }
            };
            match slot {
                Some(s) => self.parts[s].pending.push(i as u32),
                // Fetched before a revoke; its new owner consumes it.
                None => unowned += 1,
            }
        }
        if unowned > 0 {
            tracing::debug!(
                unowned,
                "Skipped messages of partitions no longer assigned."
            );
        }

        let env = Env {
            batch,
            now_ms,
            seed_from_ms: self.seed_from_ms,
            dlq_topic: self.dlq_topic.as_deref(),
            formats: &self.formats,
            seed: self.seed_engine.as_deref(),
        };
        let threads = run_engines(
            &mut self.parts,
            &mut self.accs,
            self.workers,
            self.settings.min_events_per_worker,
            env,
        );
        // Every partition whose engine ran: the batch moves its offset once
        // it completes.
        let mut moved = Vec::new();
        for ps in &mut self.parts {
            if !ps.pending.is_empty() {
                moved.push((Arc::clone(&ps.topic), ps.partition, ps.batch_next));
                ps.pending.clear();
            }
        }
        self.advance_idle();
        for ps in &mut self.parts {
            ps.batch_next = None;
        }

        // Gather: outputs in worker order (per-partition order is kept).
        let (first, rest) = self.accs.split_at_mut(1);
        let acc = &mut first[0];
        for other in rest.iter_mut() {
            acc.out.alerts.append(&mut other.out.alerts);
            acc.out.resolved.append(&mut other.out.resolved);
            acc.records.append(&mut other.records);
            acc.delays.append(&mut other.delays);
            for (a, b) in acc.rejected.iter_mut().zip(other.rejected) {
                *a += b;
            }
            acc.processed += other.processed;
            acc.skipped += other.skipped;
            acc.seeded += other.seeded;
            other.clear();
        }
        let mut records = std::mem::take(&mut acc.records);
        let n_dead = records.len();
        if !acc.out.is_empty() {
            self.sink.submit(&acc.out);
            if let Some(topic) = &self.alerts_topic {
                for a in &acc.out.alerts {
                    match serde_json::to_vec(a) {
                        Ok(payload) => records.push(OutRecord {
                            topic: topic.clone(),
                            key: Some(a.integration_id.as_bytes().to_vec()),
                            payload,
                            headers: Vec::new(),
                            dead_letter: false,
                        }),
                        Err(e) => self.warner.warn("serialize", "alerts_topic", &e),
                    }
                }
            }
        }

        let acc = &mut self.accs[0];
        let obs = &self.observer;
        obs.events_received(batch.len() as u64);
        obs.events_processed(acc.processed);
        for (reason, n) in RejectReason::ALL.iter().zip(acc.rejected) {
            if n > 0 {
                obs.events_rejected(*reason, n);
            }
        }
        if !acc.delays.is_empty() {
            obs.event_delays(&acc.delays);
        }
        obs.batch(started.elapsed(), batch.len());
        let s = &mut self.summary;
        s.received += batch.len() as u64;
        s.processed += acc.processed;
        s.rejected += acc.rejected.iter().sum::<u64>();
        s.alerts += acc.out.alerts.len() as u64;
        s.resolved += acc.out.resolved.len() as u64;
        s.skipped_covered += acc.skipped;
        s.unowned += unowned;
        s.seeded += acc.seeded;
        s.batches += 1;
        s.parallel_batches += u64::from(threads > 1);
        acc.clear();
        self.maybe_report_engine_stats();

        // Dead letters and alerts go out now; the batch completes (offsets
        // stored) when they are acknowledged, while later batches run.
        let f = InFlight::start(
            self.producer.as_ref(),
            &self.warner,
            records,
            moved,
            n_dead as u64,
        );
        self.launch(f).await;
    }

    /// Moves partitions that had no traffic in this batch up to the newest
    /// accepted event time of any partition (`EngineStats::stream_time_ms`:
    /// one forged event cannot move it), so their open episodes can resolve. A partition with
    /// a backlog has traffic in the batch and is left alone. O(partitions).
    fn advance_idle(&mut self) {
        let newest = self.parts.iter().map(|ps| ps.max_ts).max().unwrap_or(0);
        if newest <= 0 {
            return;
        }
        let out = &mut self.accs[0].out;
        for ps in &mut self.parts {
            if ps.batch_next.is_none()
                && ps.events > 0
                && ps.max_ts < newest
                && ps.advanced_to < newest
            {
                ps.engine.advance_to(newest, out);
                ps.advanced_to = newest;
            }
        }
    }

    /// [`Pipeline::report_engine_stats`], at most once a second.
    pub(super) fn maybe_report_engine_stats(&mut self) {
        if self.last_stats.elapsed() >= STATS_INTERVAL {
            self.report_engine_stats();
        }
    }

    /// Sums engine stats over the partitions: walks every integration.
    pub(super) fn report_engine_stats(&mut self) {
        self.last_stats = Instant::now();
        let mut total = EngineStats::default();
        let (mut late, mut out_of_range) = (0u64, 0u64);
        for ps in &mut self.parts {
            let s = ps.engine.stats();
            late += s.late_events.saturating_sub(ps.late_reported);
            ps.late_reported = s.late_events;
            out_of_range += s.ts_out_of_range.saturating_sub(ps.out_of_range_reported);
            ps.out_of_range_reported = s.ts_out_of_range;
            total.events += s.events;
            total.tracked_integrations += s.tracked_integrations;
            total.late_events += s.late_events;
            total.ts_out_of_range += s.ts_out_of_range;
            total.evicted_integrations += s.evicted_integrations;
            total.approx_memory_bytes += s.approx_memory_bytes;
            total.learning_integrations += s.learning_integrations;
            total.max_event_time_ms = total.max_event_time_ms.max(s.max_event_time_ms);
        }
        if late > 0 {
            self.observer.events_late(late);
        }
        if out_of_range > 0 {
            self.observer.events_out_of_range(out_of_range);
        }
        self.observer.engine_stats(&total);
    }
}

/// Runs every partition that has messages in the batch, spread over up to
/// `workers` threads (balanced by message count). Each partition runs on one
/// thread, its messages in offset order, so each engine sees exactly the
/// sequence it would see alone: the result does not depend on `workers`.
/// A batch takes another thread only for at least `min_per_worker` messages
/// per thread. Returns the threads used.
fn run_engines(
    parts: &mut [PartState],
    accs: &mut [Acc],
    workers: usize,
    min_per_worker: usize,
    env: Env<'_>,
) -> usize {
    let total: usize = parts.iter().map(|ps| ps.pending.len()).sum();
    let mut active: Vec<&mut PartState> = parts
        .iter_mut()
        .filter(|ps| !ps.pending.is_empty())
        .collect();
    let n = workers
        .min(active.len())
        .min(total / min_per_worker.max(1))
        .min(accs.len())
        .max(1);
    if n == 1 {
        for ps in active {
            run_partition(ps, env, &mut accs[0]);
        }
        return 1;
    }
    // Largest first onto the least loaded worker.
    active.sort_by_key(|ps| std::cmp::Reverse(ps.pending.len()));
    let mut groups: Vec<Vec<&mut PartState>> = (0..n).map(|_| Vec::new()).collect();
    let mut load = vec![0usize; n];
    for ps in active {
        let w = (0..n).min_by_key(|w| load[*w]).unwrap_or(0);
        load[w] += ps.pending.len();
        groups[w].push(ps);
    }
    std::thread::scope(|s| {
        let mut jobs = groups.into_iter().zip(accs.iter_mut());
        let here = jobs.next();
        for (group, acc) in jobs {
            s.spawn(move || {
                for ps in group {
                    run_partition(ps, env, acc);
                }
            });
        }
        if let Some((group, acc)) = here {
            for ps in group {
                run_partition(ps, env, acc);
            }
        }
    });
    n
}
