//! The librdkafka side: a `BaseConsumer` polled on its own OS thread, feeding
//! messages (in chunks, not one by one) and rebalance notices into one
//! ordered channel.
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
use rdkafka::message::{BorrowedMessage, OwnedHeaders};
use rdkafka::statistics::Statistics;
use rdkafka::{Message, TopicPartitionList};
use tokio::sync::mpsc;

use crate::hooks::Observer;
use crate::util::{error_kind, is_connectivity, Health, LogLimiter};

/// A (topic, partition) pair.
pub(crate) type Tp = (String, i32);

/// One consumed message, copied out of librdkafka's buffer: key and payload
/// share one allocation, the topic name is shared between messages.
pub(crate) struct Msg {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    /// Key bytes, then payload bytes.
    data: Vec<u8>,
    key_len: Option<usize>,
    pub(crate) headers: Option<OwnedHeaders>,
}

impl Msg {
    pub(crate) fn new(
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Msg {
        let klen = key.map_or(0, <[u8]>::len);
        let mut data = Vec::with_capacity(klen + payload.len());
        if let Some(k) = key {
            data.extend_from_slice(k);
        }
        data.extend_from_slice(payload);
        Msg {
            topic,
            partition,
            offset,
            data,
            key_len: key.map(<[u8]>::len),
            headers,
        }
    }

    fn copy(m: &BorrowedMessage<'_>, topic: Arc<str>) -> Msg {
        use rdkafka::message::Headers as _;
        let headers = m.headers().filter(|h| h.count() > 0).map(|h| h.detach());
        Msg::new(
            topic,
            m.partition(),
            m.offset(),
            m.key(),
            m.payload().unwrap_or_default(),
            headers,
        )
    }

    pub(crate) fn key(&self) -> Option<&[u8]> {
        self.key_len.map(|n| &self.data[..n])
    }

    pub(crate) fn payload(&self) -> &[u8] {
        &self.data[self.key_len.unwrap_or(0)..]
    }

    /// Offset of the first message after this one, for `store_offsets`.
    pub(crate) fn next_offset(&self) -> i64 {
        self.offset.saturating_add(1)
    }
}

/// What the poll thread hands the processing task, in librdkafka's order.
pub(crate) enum Item {
    /// Consecutive messages, in the order librdkafka returned them.
    Messages {
        msgs: Vec<Msg>,
        /// librdkafka had nothing more ready when the chunk was handed over:
        /// the consumer is caught up, so a batch waiting for more messages
        /// would only add latency.
        caught_up: bool,
    },
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
    /// Messages polled but not yet handed over (only the poll thread, and
    /// the rebalance callbacks it runs, touch this).
    pub(crate) pending: Mutex<Vec<Msg>>,
    /// Hand messages over in chunks of at most this many.
    pub(crate) handoff: usize,
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

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<Msg>> {
        match self.pending.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Sends the messages polled so far; false if the processing task is gone.
    fn hand_off(&self, caught_up: bool) -> bool {
        let msgs = std::mem::take(&mut *self.lock_pending());
        msgs.is_empty()
            || self
                .tx
                .blocking_send(Item::Messages { msgs, caught_up })
                .is_ok()
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
                    // Messages fetched before the revoke go first, in order.
                    self.hand_off(false);
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
                self.hand_off(false);
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

/// Polls until `stop` is set, forwarding messages in chunks: a chunk is
/// handed over when it is full or when librdkafka has nothing more ready
/// (marked `caught_up`, so the processing task does not hold it back either).
/// Runs on its own thread.
pub(crate) fn poll_loop(consumer: Arc<TriplineConsumer>, stop: Arc<AtomicBool>) {
    let ctx = Arc::clone(consumer.context());
    let mut topic: Option<Arc<str>> = None;
    while !stop.load(Ordering::Acquire) {
        let holding = !ctx.lock_pending().is_empty();
        let timeout = if holding {
            Duration::ZERO
        } else {
            POLL_TIMEOUT
        };
        match consumer.poll(timeout) {
            None => {
                if !ctx.hand_off(true) {
                    break;
                }
            }
            Some(Ok(m)) => {
                ctx.health.set(true);
                let t = match &topic {
                    Some(t) if **t == *m.topic() => Arc::clone(t),
                    _ => {
                        let t: Arc<str> = Arc::from(m.topic());
                        topic = Some(Arc::clone(&t));
                        t
                    }
                };
                let msg = Msg::copy(&m, t);
                drop(m);
                let full = {
                    let mut p = ctx.lock_pending();
                    p.push(msg);
                    p.len() >= ctx.handoff
                };
                if full && !ctx.hand_off(false) {
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
    ctx.hand_off(true);
    let _ = ctx.tx.blocking_send(Item::Stopped);
}
