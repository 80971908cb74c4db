//! Partition lifecycle: assignment (restore or cold start, seeding),
//! checkpoints (state first, then the offsets they cover), revoke, release.
//!
//! The invariant kept here: a partition's stored offset never runs ahead of
//! its last saved checkpoint, and a checkpoint never holds events past the
//! offset it records — so after any restart each event is in the state
//! exactly once.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use tokio::time::Instant;
use tripline_engine::Engine;

use crate::consumer::Tp;
use crate::util::error_kind;

use super::shutdown::blocking;
use super::{PartState, Pipeline};

impl Pipeline {
    pub(super) fn assign(&mut self, parts: Vec<Tp>) {
        for (topic, partition) in parts {
            if self.slot(&topic, partition).is_some() {
                continue;
            }
            let (engine, skip_below) = match self.restore(&topic, partition) {
                Ok(Some((engine, next))) => (engine, next),
                Ok(None) => (
                    Engine::new(self.engine_config.clone(), self.registry.clone()),
                    -1,
                ),
                Err(msg) if self.state_store.cold_on_corrupt() => {
                    tracing::error!(topic = %topic, partition, error = %msg, "Checkpoint unusable; starting this partition cold (checkpoint.on_corrupt = \"cold\").");
                    (
                        Engine::new(self.engine_config.clone(), self.registry.clone()),
                        -1,
                    )
                }
                Err(msg) => {
                    tracing::error!(topic = %topic, partition, error = %msg, "Checkpoint unusable; stopping (checkpoint.on_corrupt = \"fail\").");
                    self.fatal = Some(msg);
                    self.poisoned = true;
                    return;
                }
            };
            // `max_integrations` bounds the process, not each partition.
            let mut engine = engine;
            engine.join_population(&self.population);
            // Once per assignment, not per batch: this walks the state.
            let stats = engine.stats();
            let saved = (skip_below >= 0).then_some(skip_below);
            // The checkpoint covers everything before its offset, but the
            // process that wrote it may have died before committing that
            // offset: store it now, as `checkpoint` does after each save.
            // Otherwise a partition checkpointed to its end would stay
            // uncommitted (lag that never drains) until new messages arrive.
            if let Some(next) = saved {
                let mut tpl = TopicPartitionList::new();
                let stored = tpl
                    .add_partition_offset(&topic, partition, Offset::Offset(next))
                    .and_then(|()| self.consumer.store_offsets(&tpl));
                if let Err(e) = stored {
                    self.warn(error_kind(&e), "store_offset", &e);
                }
            }
            // A partition with no state and a seed time learns from what the
            // topic retains, up to where it ends now, before going live.
            let seed_until = match (self.seed_from_ms, skip_below) {
                (Some(_), -1) => {
                    let consumer = Arc::clone(&self.consumer);
                    let (t, p) = (topic.clone(), partition);
                    match blocking(|| consumer.fetch_watermarks(&t, p, Duration::from_secs(10))) {
                        Ok((_, high)) => {
                            tracing::info!(topic = %topic, partition, until_offset = high, "Seeding: learning from the retained topic with alerts suppressed.");
                            high
                        }
                        Err(e) => {
                            self.warn(error_kind(&e), "seed", &e);
                            -1
                        }
                    }
                }
                _ => -1,
            };
            let ps = PartState {
                topic: Arc::from(topic.as_str()),
                partition,
                engine,
                late_reported: stats.late_events,
                out_of_range_reported: stats.ts_out_of_range,
                pending: Vec::new(),
                skip_below,
                next_offset: saved,
                batch_next: None,
                unsettled: 0,
                saved_offset: saved,
                seed_until,
                events: stats.events,
                max_ts: stats.stream_time_ms,
                advanced_to: stats.stream_time_ms,
            };
            let at = self
                .parts
                .partition_point(|q| (&*q.topic, q.partition) < (topic.as_str(), partition));
            self.parts.insert(at, ps);
        }
    }

    /// The partition's checkpoint, decoded and checked, with its next offset.
    fn restore(&mut self, topic: &str, partition: i32) -> Result<Option<(Engine, i64)>, String> {
        if !self.state_store.enabled() {
            return Ok(None);
        }
        let store = Arc::clone(&self.state_store);
        let Some(bytes) = blocking(|| store.load(topic, partition))? else {
            return Ok(None);
        };
        let name = format!("checkpoint of {topic}/{partition}");
        let p = tripline_state::decode(&bytes, &name).map_err(|e| e.to_string())?;
        if p.topic != topic || p.partition != partition {
            return Err(format!("{name} belongs to {}/{}", p.topic, p.partition));
        }
        tracing::info!(
            topic,
            partition,
            next_offset = p.next_offset,
            integrations = p.engine.stats().tracked_integrations,
            "Restored partition state from checkpoint."
        );
        self.summary.restored_partitions += 1;
        Ok(Some((
            p.engine
                .resume(self.engine_config.clone(), self.registry.clone()),
            p.next_offset,
        )))
    }

    /// Writes a checkpoint of every partition that moved since its last one
    /// (`only`: just these), then stores those offsets for commit. A
    /// partition whose engine is ahead of its offset (`unsettled`: a batch
    /// in flight or abandoned) is never saved; callers settle first. With a `deadline`, partitions not reached by then are left
    /// unsaved (their offsets stay where the last checkpoint put them).
    pub(super) fn checkpoint(&mut self, only: Option<&[Tp]>, deadline: Option<Instant>) {
        self.last_checkpoint = Instant::now();
        if !self.state_store.enabled() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        let mut errors: Vec<String> = Vec::new();
        let mut late = 0usize;
        let store = Arc::clone(&self.state_store);
        for ps in &mut self.parts {
            if only.is_some_and(|o| {
                !o.iter()
                    .any(|(t, p)| t.as_str() == &*ps.topic && *p == ps.partition)
            }) {
                continue;
            }
            let Some(next) = ps.next_offset else { continue };
            if ps.saved_offset == Some(next) || ps.unsettled > 0 {
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                late += 1;
                continue;
            }
            let (topic, partition) = (&*ps.topic, ps.partition);
            let saved = tripline_state::encode_parts(topic, partition, next, &ps.engine)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    let by = deadline.map(Instant::into_std);
                    blocking(|| store.save_by(topic, partition, &bytes, by))
                });
            match saved {
                Ok(()) => {
                    ps.saved_offset = Some(next);
                    self.summary.checkpoints += 1;
                    if let Err(e) = tpl.add_partition_offset(topic, partition, Offset::Offset(next))
                    {
                        errors.push(e.to_string());
                    }
                }
                // Not saved: its offsets stay unstored, so a restart
                // re-reads from the previous checkpoint. Nothing is lost.
                Err(e) => errors.push(e),
            }
        }
        for e in errors {
            self.warn("checkpoint_failed", "checkpoint", &e);
        }
        if late > 0 {
            self.warn(
                "deadline",
                "checkpoint",
                &format_args!("{late} partition(s) not checkpointed before the shutdown deadline; they resume from their previous checkpoint"),
            );
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.store_offsets(&tpl) {
                self.warn(error_kind(&e), "store_offset", &e);
            }
        }
    }

    pub(super) fn revoke(&mut self, parts: &[Tp]) {
        self.checkpoint(Some(parts), None);
        // The revoked engines' last counts (late, out of range) are reported
        // before they are dropped; a revoke is rare, so the walk is too.
        self.report_engine_stats();
        self.parts.retain(|ps| {
            !parts
                .iter()
                .any(|(t, p)| t.as_str() == &*ps.topic && *p == ps.partition)
        });
        for (topic, partition) in parts {
            self.observer.partition_revoked(topic, *partition);
        }
        self.report_engine_stats();
    }

    /// At shutdown: checkpoint what may be checkpointed within the deadline,
    /// then drop the engines.
    pub(super) fn release_all(&mut self, deadline: Instant) {
        self.checkpoint(None, Some(deadline));
        // Their last counts (late, out of range) before the engines go.
        self.report_engine_stats();
        self.parts.clear();
    }
}
