//! Batches in flight: their engine work is done and their records (dead
//! letters, alerts-topic records) are sent, but not all acknowledged yet.
//!
//! Waiting for the broker's acknowledgements (the producer's `linger.ms`
//! plus a round trip) used to stop the processing task once per batch with
//! alerts or dead letters; now the next batches run their engines meanwhile.
//! What stays as strict as before: a batch *completes* — its offsets move
//! and are stored, its dead letters are counted — only when every one of its
//! records is acknowledged, and batches complete in the order they ran, so a
//! partition's stored offset never passes an unacknowledged record. At most
//! [`MAX_IN_FLIGHT`] batches wait; checkpoints, assignments, revokes and
//! shutdown first complete every one of them ([`Pipeline::settle`]).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::producer::{DeliveryFuture, FutureProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::hooks::DeadLetterOutcome;
use crate::util::error_kind;

use super::produce::{send, stage, OutRecord};
use super::shutdown::Stopper;
use super::{Pipeline, Warner};

/// Batches whose acknowledgements may be outstanding at once. The engines of
/// a batch take about as long as one acknowledgement round trip (a few
/// milliseconds), so a few hide it; each holds only its own records.
pub(super) const MAX_IN_FLIGHT: usize = 4;

/// First wait before producing a failed record again...
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// ...doubling up to this, so a long outage costs one attempt per 5 s.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One batch waiting for its acknowledgements.
pub(super) struct InFlight {
    records: Vec<OutRecord>,
    /// Sent, not yet acknowledged (index into `records`).
    pending: Vec<(usize, DeliveryFuture)>,
    /// Refused or failed: produced again after `backoff`.
    failed: Vec<usize>,
    backoff: Duration,
    /// Every partition whose engine ran in the batch, with the offset after
    /// its last processed message (none if all were skipped).
    moved: Vec<(Arc<str>, i32, Option<i64>)>,
    dead_letters: u64,
}

impl InFlight {
    /// Sends every record (without waiting for acknowledgements).
    pub(super) fn start(
        producer: Option<&FutureProducer>,
        warner: &Warner,
        records: Vec<OutRecord>,
        moved: Vec<(Arc<str>, i32, Option<i64>)>,
        dead_letters: u64,
    ) -> InFlight {
        let mut f = InFlight {
            records,
            pending: Vec::new(),
            failed: Vec::new(),
            backoff: INITIAL_BACKOFF,
            moved,
            dead_letters,
        };
        if let Some(producer) = producer {
            let all: Vec<usize> = (0..f.records.len()).collect();
            f.send(producer, warner, &all);
        }
        f
    }

    fn send(&mut self, producer: &FutureProducer, warner: &Warner, which: &[usize]) {
        for &i in which {
            match send(producer, &self.records[i]) {
                Ok(delivery) => self.pending.push((i, delivery)),
                Err(e) => {
                    warner.warn(error_kind(&e), stage(&self.records[i]), &e);
                    self.failed.push(i);
                }
            }
        }
    }

    /// Resolves once every record sent has been acknowledged or has failed.
    /// Cancel-safe: what has been heard back is kept.
    pub(super) async fn answered(&mut self, warner: &Warner) {
        while let Some((_, delivery)) = self.pending.last_mut() {
            let result = delivery.await;
            let Some((i, _)) = self.pending.pop() else {
                break;
            };
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    warner.warn(error_kind(&e), stage(&self.records[i]), &e);
                    self.failed.push(i);
                }
                Err(_canceled) => {
                    warner.warn("canceled", stage(&self.records[i]), &"delivery report lost");
                    self.failed.push(i);
                }
            }
        }
    }

    /// Every record acknowledged: failures are produced again with backoff
    /// until they are. Never drops a record; only cancellation (the shutdown
    /// deadline) ends it early, and it is cancel-safe.
    async fn acknowledged(
        &mut self,
        producer: Option<&FutureProducer>,
        warner: &Warner,
        observer: &dyn crate::hooks::Observer,
    ) {
        loop {
            self.answered(warner).await;
            if self.failed.is_empty() {
                return;
            }
            let Some(producer) = producer else {
                // Nothing can have been sent without a producer.
                self.failed.clear();
                return;
            };
            let retried_dead = self
                .failed
                .iter()
                .filter(|i| self.records[**i].dead_letter)
                .count();
            if retried_dead > 0 {
                observer.dead_letters(DeadLetterOutcome::Retried, retried_dead as u64);
            }
            tokio::time::sleep(self.backoff).await;
            self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            let mut failed = std::mem::take(&mut self.failed);
            failed.sort_unstable();
            self.send(producer, warner, &failed);
        }
    }
}

/// Resolves when the oldest batch in flight has heard back for every record
/// (for the main loop's select; cancel-safe).
pub(super) async fn oldest_answered(q: &mut VecDeque<InFlight>, warner: &Warner) {
    match q.front_mut() {
        Some(f) => f.answered(warner).await,
        None => std::future::pending().await,
    }
}

impl Pipeline {
    /// Queues a batch whose engines have run, and completes the oldest
    /// batches while more than [`MAX_IN_FLIGHT`] wait.
    pub(super) async fn launch(&mut self, f: InFlight) {
        self.in_flight.push_back(f);
        while self.in_flight.len() > MAX_IN_FLIGHT {
            self.complete_oldest().await;
        }
    }

    /// Waits for the oldest batch's acknowledgements, then completes it: its
    /// offsets move (and are stored, unless state is checkpointed) and its
    /// dead letters count as delivered. Cancel-safe: nothing moves unless
    /// every record was acknowledged.
    pub(super) async fn complete_oldest(&mut self) {
        let Some(f) = self.in_flight.front_mut() else {
            return;
        };
        f.acknowledged(self.producer.as_ref(), &self.warner, &*self.observer)
            .await;
        let Some(f) = self.in_flight.pop_front() else {
            return;
        };
        let store_now = !self.state_store.enabled();
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next) in &f.moved {
            let Some(s) = self.slot(topic, *partition) else {
                continue;
            };
            let ps = &mut self.parts[s];
            ps.unsettled = ps.unsettled.saturating_sub(1);
            if let Some(next) = *next {
                ps.next_offset = Some(next);
                if store_now {
                    if let Err(e) =
                        tpl.add_partition_offset(topic, *partition, Offset::Offset(next))
                    {
                        self.warner.warn(error_kind(&e), "store_offset", &e);
                    }
                }
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = self.consumer.store_offsets(&tpl) {
                // Partition lost meanwhile (session timeout): its next owner
                // consumes these messages again.
                self.warner.warn(error_kind(&e), "store_offset", &e);
            }
        }
        if f.dead_letters > 0 {
            self.observer
                .dead_letters(DeadLetterOutcome::Delivered, f.dead_letters);
            self.summary.dead_letters += f.dead_letters;
        }
    }

    /// Completes every batch in flight, unless the shutdown deadline passes
    /// first (then the pipeline is poisoned: see [`Pipeline::abandon`]).
    pub(super) async fn settle<F: Future<Output = ()>>(&mut self, stopper: &mut Stopper<F>) {
        if self.poisoned || self.in_flight.is_empty() {
            return;
        }
        let done = stopper
            .guard(async {
                while !self.in_flight.is_empty() {
                    self.complete_oldest().await;
                }
            })
            .await;
        if done.is_none() {
            self.abandon(0);
        }
    }

    /// Completes the oldest batch in flight (its acknowledgements are in).
    pub(super) async fn settle_oldest<F: Future<Output = ()>>(&mut self, stopper: &mut Stopper<F>) {
        if self.poisoned {
            return;
        }
        if stopper.guard(self.complete_oldest()).await.is_none() {
            self.abandon(0);
        }
    }

    /// The shutdown deadline passed with batches unfinished (`unqueued`: a
    /// batch that never reached the queue): from now on nothing is processed
    /// or stored, and the partitions they touched stay unsettled, so they are
    /// never checkpointed; they are consumed again after a restart.
    pub(super) fn abandon(&mut self, unqueued: usize) {
        let n = self.in_flight.len() + unqueued;
        self.in_flight.clear();
        self.poisoned = true;
        self.summary.abandoned_batches += n as u64;
        tracing::warn!(
            batches = n,
            "Shutdown deadline passed with batches unfinished; their offsets are not stored and they will be consumed again."
        );
    }
}
