//! The librdkafka side: a `BaseConsumer` polled on its own OS thread, feeding
//! messages and rebalance notices into one ordered channel.
//!
//! Why a thread and not `StreamConsumer`: librdkafka runs rebalance callbacks
//! on the thread that polls. On revoke we must wait for the processing task to
//! finish the in-flight batch and store its offsets *before* the partitions are
//! released; blocking like that is only safe off the async runtime.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::OwnedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::{Message, TopicPartitionList};
use tokio::sync::mpsc;

use crate::hooks::Observer;
use crate::util::{error_kind, is_connectivity, Health, LogLimiter};

/// A (topic, partition) pair.
pub(crate) type Tp = (String, i32);

/// What the poll thread hands the processing task, in librdkafka's order.
pub(crate) enum Item {
    Message(OwnedMessage),
    Assigned(Vec<Tp>),
    /// Partitions about to be released. The poll thread waits (bounded) on
    /// the sender until the processing task has stored their offsets.
    Revoked(Vec<Tp>, std::sync::mpsc::SyncSender<()>),
    /// The poll thread has stopped; nothing follows.
    Stopped,
}

/// Poll timeout: how quickly the thread notices a stop request.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

pub(crate) struct Ctx {
    pub(crate) tx: mpsc::Sender<Item>,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) health: Arc<Health>,
    pub(crate) logs: Arc<LogLimiter>,
    /// Set once the processing task no longer drains the channel: callbacks
    /// then must not wait for it.
    pub(crate) closing: AtomicBool,
    /// How long a revoke waits for the in-flight batch.
    pub(crate) revoke_wait: Duration,
    pub(crate) assigned: Mutex<BTreeSet<Tp>>,
}

fn tps(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl Ctx {
    fn warn(&self, kind: &'static str, stage: &'static str, error: &dyn std::fmt::Display) {
        self.observer.error(kind, stage);
        if let Some(suppressed) = self.logs.allow(kind) {
            tracing::warn!(error_type = kind, stage, suppressed, %error, "Kafka error.");
        }
    }

    fn lock_assigned(&self) -> std::sync::MutexGuard<'_, BTreeSet<Tp>> {
        match self.assigned.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// Commits stored offsets; "nothing to commit" is not an error.
pub(crate) fn commit_sync<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> KafkaResult<()> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        r => r,
    }
}

impl ClientContext for Ctx {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                if let Some(suppressed) = self.logs.allow("librdkafka_log") {
                    tracing::warn!(target: "librdkafka", facility = fac, suppressed, "{log_message}");
                }
            }
            _ => tracing::debug!(target: "librdkafka", facility = fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if is_connectivity(&error) {
            self.health.set(false);
        }
        self.warn(
            error_kind(&error),
            "consume",
            &format_args!("{error}: {reason}"),
        );
    }

    fn stats(&self, stats: Statistics) {
        let any_up = stats.brokers.values().any(|b| b.state == "UP");
        let assigned = self.lock_assigned().clone();
        if !any_up {
            self.health.set(false);
        } else if !assigned.is_empty() {
            self.health.set(true);
        }
        for (topic, t) in &stats.topics {
            for (p, ps) in &t.partitions {
                if *p < 0 || !assigned.contains(&(topic.clone(), *p)) {
                    continue;
                }
                if ps.consumer_lag >= 0 {
                    self.observer.consumer_lag(topic, *p, ps.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts = tps(tpl);
                tracing::info!(partitions = ?parts, "Partitions revoked; finishing in-flight work.");
                if !self.closing.load(Ordering::Acquire) {
                    let (ack_tx, ack_rx) = std::sync::mpsc::sync_channel(1);
                    if self
                        .tx
                        .blocking_send(Item::Revoked(parts.clone(), ack_tx))
                        .is_ok()
                        && ack_rx.recv_timeout(self.revoke_wait).is_err()
                    {
                        self.warn(
                            "revoke_timeout",
                            "rebalance",
                            &"in-flight batch not finished before revoke; it will be consumed again",
                        );
                    }
                }
                if let Err(e) = commit_sync(consumer) {
                    self.warn(error_kind(&e), "commit", &e);
                }
                let mut a = self.lock_assigned();
                for tp in &parts {
                    a.remove(tp);
                }
            }
            Rebalance::Assign(_) => {}
            Rebalance::Error(e) => self.warn("rebalance", "rebalance", e),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts = tps(tpl);
            tracing::info!(partitions = ?parts, "Partitions assigned.");
            self.lock_assigned().extend(parts.iter().cloned());
            if !self.closing.load(Ordering::Acquire) {
                // Only fails when the processing task is gone (shutting down).
                let _ = self.tx.blocking_send(Item::Assigned(parts));
            }
            self.health.set(true);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(e) => self.warn(error_kind(&e), "commit", &e),
        }
    }
}

pub(crate) type TriplineConsumer = BaseConsumer<Ctx>;

/// Polls until `stop` is set, forwarding messages. Runs on its own thread.
pub(crate) fn poll_loop(consumer: Arc<TriplineConsumer>, stop: Arc<AtomicBool>) {
    let ctx = Arc::clone(consumer.context());
    while !stop.load(Ordering::Acquire) {
        match consumer.poll(POLL_TIMEOUT) {
            None => {}
            Some(Ok(m)) => {
                ctx.health.set(true);
                let owned = m.detach();
                drop(m);
                if ctx.tx.blocking_send(Item::Message(owned)).is_err() {
                    break;
                }
            }
            Some(Err(e)) => {
                if is_connectivity(&e) {
                    ctx.health.set(false);
                }
                ctx.warn(error_kind(&e), "consume", &e);
            }
        }
    }
    let _ = ctx.tx.blocking_send(Item::Stopped);
}

/// Offset of the first message not yet processed, for `store_offsets`.
pub(crate) fn next_offset(m: &OwnedMessage) -> i64 {
    m.offset().saturating_add(1)
}
