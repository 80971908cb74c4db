//! An in-process Kafka (librdkafka's mock cluster) and producer helpers, for
//! `tripline demo` and tests. Not for production traffic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Errors of the mock cluster and the producer helpers.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("mock cluster: {0}")]
    Cluster(#[source] KafkaError),
    #[error("producing to {topic}: {source}")]
    Produce {
        topic: String,
        #[source]
        source: KafkaError,
    },
}

/// Bytes librdkafka's mock cluster keeps per partition (hard-coded in
/// `rdkafka_mock.c`, not configurable). Beyond it the oldest message sets are
/// deleted **whether or not anyone has read them**, and a consumer that starts
/// later silently begins at the new log start.
pub const MOCK_PARTITION_MAX_BYTES: usize = 5 * 1024 * 1024;

/// Per-record overhead of the v2 record batch format, generously rounded up.
const RECORD_OVERHEAD_BYTES: usize = 100;

/// A safe `max_unread` for [`produce_events_bounded`] when no line is longer
/// than `max_line_bytes` (key included): half the mock cluster's per-partition
/// retention, so nothing unread is ever trimmed.
pub fn safe_unread_for(max_line_bytes: usize) -> i64 {
    let per = max_line_bytes.saturating_add(RECORD_OVERHEAD_BYTES).max(1);
    i64::try_from((MOCK_PARTITION_MAX_BYTES / 2) / per)
        .unwrap_or(i64::MAX)
        .max(1)
}

/// A running mock cluster; it stops when dropped.
///
/// librdkafka's mock brokers speak the Kafka protocol (produce, fetch,
/// consumer groups, offset commits) on local ports. Topic creation through
/// the admin API is not supported: use [`MockKafka::create_topic`], or rely on
/// auto-creation with one partition.
///
/// Two behaviours matter for throughput and completeness:
/// - each partition keeps at most [`MOCK_PARTITION_MAX_BYTES`]; older
///   messages are trimmed unread (use [`produce_events_bounded`]);
/// - a new consumer group waits 3 s (the mock's
///   `group.initial.rebalance.delay.ms`) before its first assignment, and one
///   fetch returns at most one produce batch per partition.
pub struct MockKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

/// Starts a mock cluster with `brokers` brokers (ids 1..=brokers).
pub fn start_mock_cluster(brokers: i32) -> Result<MockKafka, MockError> {
    MockCluster::new(brokers)
        .map(|cluster| MockKafka { cluster })
        .map_err(MockError::Cluster)
}

impl MockKafka {
    /// `host:port,...` to use as `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), MockError> {
        self.cluster
            .create_topic(topic, partitions, 1)
            .map_err(MockError::Cluster)
    }

    /// Makes broker `id` refuse connections (-1: every broker).
    pub fn broker_down(&self, id: i32) -> Result<(), MockError> {
        self.cluster.broker_down(id).map_err(MockError::Cluster)
    }

    /// Makes every metadata request about `topic` answer `error` (so
    /// produces to it wait for a leader); `RD_KAFKA_RESP_ERR_NO_ERROR`
    /// clears it.
    pub fn topic_error(
        &self,
        topic: &str,
        error: rdkafka::types::RDKafkaRespErr,
    ) -> Result<(), MockError> {
        self.cluster
            .topic_error(topic, error)
            .map_err(MockError::Cluster)
    }

    /// Makes broker `id` accept connections again (-1: every broker).
    pub fn broker_up(&self, id: i32) -> Result<(), MockError> {
        self.cluster.broker_up(id).map_err(MockError::Cluster)
    }
}

/// The `integration_id` of a canonical event, found by a cheap scan for the
/// common unescaped form; `None` if absent or escaped (the message then goes to
/// a partition of librdkafka's choosing).
pub fn integration_key(line: &[u8]) -> Option<&[u8]> {
    const FIELD: &[u8] = b"\"integration_id\"";
    let start = line.windows(FIELD.len()).position(|w| w == FIELD)? + FIELD.len();
    let rest = &line[start..];
    let rest = rest.trim_ascii_start().strip_prefix(b":")?;
    let rest = rest.trim_ascii_start().strip_prefix(b"\"")?;
    let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
    if rest[end] == b'\\' || end == 0 {
        return None;
    }
    Some(&rest[..end])
}

fn producer(bootstrap: &str) -> Result<FutureProducer, MockError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .map_err(MockError::Cluster)
}

/// How many records a helper keeps in flight before waiting for acks.
const WINDOW: usize = 10_000;

/// Produces each line as one message to `topic`, keyed by `key_fn(line)`, and
/// waits until every one is acknowledged. Returns how many were produced.
pub async fn produce_lines<I, L, K>(
    bootstrap: &str,
    topic: &str,
    lines: I,
    key_fn: K,
) -> Result<u64, MockError>
where
    I: IntoIterator<Item = L>,
    L: AsRef<[u8]>,
    K: Fn(&[u8]) -> Option<&[u8]>,
{
    let p = producer(bootstrap)?;
    let err = |source| MockError::Produce {
        topic: topic.to_owned(),
        source,
    };
    let mut inflight = Vec::new();
    let mut n = 0u64;
    for line in lines {
        let line = line.as_ref();
        let mut rec = FutureRecord::<[u8], [u8]>::to(topic).payload(line);
        if let Some(k) = key_fn(line) {
            rec = rec.key(k);
        }
        inflight.push(p.send_result(rec).map_err(|(e, _)| err(e))?);
        n += 1;
        if inflight.len() >= WINDOW {
            wait_all(&mut inflight).await.map_err(err)?;
        }
    }
    wait_all(&mut inflight).await.map_err(err)?;
    Ok(n)
}

async fn wait_all(inflight: &mut Vec<rdkafka::producer::DeliveryFuture>) -> Result<(), KafkaError> {
    for d in inflight.drain(..) {
        match d.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(e),
            Err(_) => return Err(KafkaError::Canceled),
        }
    }
    Ok(())
}

/// Produces `lines` at about `events_per_second` (in 10 ms slices), keyed by
/// [`integration_key`], until the lines run out. Returns how many were
/// produced. Used by `tripline demo`.
pub async fn produce_events_at_pace<I, L>(
    bootstrap: &str,
    topic: &str,
    lines: I,
    events_per_second: u32,
) -> Result<u64, MockError>
where
    I: IntoIterator<Item = L>,
    L: AsRef<[u8]>,
{
    let p = producer(bootstrap)?;
    let per_tick = (f64::from(events_per_second.max(1)) / 100.0).max(0.01);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut budget = 0.0f64;
    let mut n = 0u64;
    let mut lines = lines.into_iter();
    let mut pending = Vec::new();
    'outer: loop {
        tick.tick().await;
        budget += per_tick;
        while budget >= 1.0 {
            budget -= 1.0;
            let Some(line) = lines.next() else {
                break 'outer;
            };
            let line = line.as_ref();
            let mut rec = FutureRecord::<[u8], [u8]>::to(topic).payload(line);
            if let Some(k) = integration_key(line) {
                rec = rec.key(k);
            }
            match p.send_result(rec) {
                Ok(d) => pending.push(d),
                Err((source, _)) => {
                    return Err(MockError::Produce {
                        topic: topic.to_owned(),
                        source,
                    })
                }
            }
            n += 1;
        }
        if pending.len() >= WINDOW {
            wait_all(&mut pending)
                .await
                .map_err(|source| MockError::Produce {
                    topic: topic.to_owned(),
                    source,
                })?;
        }
    }
    wait_all(&mut pending)
        .await
        .map_err(|source| MockError::Produce {
            topic: topic.to_owned(),
            source,
        })?;
    Ok(n)
}

/// Reads the committed offsets of one consumer group (without joining it).
struct GroupOffsets {
    client: Arc<BaseConsumer>,
    topic: String,
    partitions: i32,
}

impl GroupOffsets {
    async fn connect(bootstrap: &str, topic: &str, group: &str) -> Result<Self, KafkaError> {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let client = Arc::new(client);
        let (c, t) = (Arc::clone(&client), topic.to_owned());
        let partitions = tokio::task::spawn_blocking(move || {
            let md = c.fetch_metadata(Some(&t), Duration::from_secs(10))?;
            let n = md
                .topics()
                .iter()
                .find(|x| x.name() == t)
                .map_or(0, |x| x.partitions().len());
            Ok::<_, KafkaError>(i32::try_from(n).unwrap_or(i32::MAX))
        })
        .await
        .map_err(|_| KafkaError::Canceled)??;
        Ok(GroupOffsets {
            client,
            topic: topic.to_owned(),
            partitions,
        })
    }

    /// Committed offset per partition; 0 where nothing is committed yet (the
    /// group then starts at the log start, 0 while nothing was trimmed).
    async fn committed(&self) -> Result<HashMap<i32, i64>, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions {
            tpl.add_partition(&self.topic, p);
        }
        let c = Arc::clone(&self.client);
        let got =
            tokio::task::spawn_blocking(move || c.committed_offsets(tpl, Duration::from_secs(10)))
                .await
                .map_err(|_| KafkaError::Canceled)??;
        Ok(got
            .elements()
            .iter()
            .map(|e| {
                let o = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => 0,
                };
                (e.partition(), o)
            })
            .collect())
    }
}

/// Waits for every acknowledgement, recording the end offset per partition.
async fn wait_all_ends(
    inflight: &mut Vec<rdkafka::producer::DeliveryFuture>,
    ends: &mut HashMap<i32, i64>,
) -> Result<(), KafkaError> {
    for d in inflight.drain(..) {
        match d.await {
            Ok(Ok(delivery)) => {
                let end = ends.entry(delivery.partition).or_insert(0);
                *end = (*end).max(delivery.offset.saturating_add(1));
            }
            Ok(Err((e, _))) => return Err(e),
            Err(_) => return Err(KafkaError::Canceled),
        }
    }
    Ok(())
}

/// [`produce_events_at_pace`] with flow control: no partition of `topic` gets
/// more than `max_unread` messages beyond what consumer group `group` has
/// committed. Production pauses (before the group has even joined, too) until
/// the group catches up, so the mock cluster's bounded log
/// ([`MOCK_PARTITION_MAX_BYTES`]) never trims a message nobody has read. Pick
/// `max_unread` with [`safe_unread_for`]. Returns how many were produced.
pub async fn produce_events_bounded<I, L>(
    bootstrap: &str,
    topic: &str,
    lines: I,
    events_per_second: u32,
    group: &str,
    max_unread: i64,
) -> Result<u64, MockError>
where
    I: IntoIterator<Item = L>,
    L: AsRef<[u8]>,
{
    let err = |source| MockError::Produce {
        topic: topic.to_owned(),
        source,
    };
    let p = producer(bootstrap)?;
    let offsets = GroupOffsets::connect(bootstrap, topic, group)
        .await
        .map_err(err)?;
    // Sent between two checks; together with the unread count at the check
    // this never exceeds `max_unread` in any one partition.
    let check_every = u64::try_from((max_unread / 4).max(1)).unwrap_or(1);
    let per_tick = (f64::from(events_per_second.max(1)) / 100.0).max(0.01);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut budget = 0.0f64;
    let mut n = 0u64;
    let mut since_check = check_every;
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut lines = lines.into_iter().peekable();
    let mut pending = Vec::new();
    while lines.peek().is_some() {
        tick.tick().await;
        budget += per_tick;
        while budget >= 1.0 {
            if since_check >= check_every {
                wait_all_ends(&mut pending, &mut ends).await.map_err(err)?;
                let limit = max_unread.saturating_sub(i64::try_from(check_every).unwrap_or(0));
                loop {
                    let committed = offsets.committed().await.map_err(err)?;
                    let unread = ends
                        .iter()
                        .map(|(p, end)| end - committed.get(p).copied().unwrap_or(0))
                        .max()
                        .unwrap_or(0);
                    if unread <= limit {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    budget = budget.min(per_tick.max(1.0));
                }
                since_check = 0;
            }
            budget -= 1.0;
            let Some(line) = lines.next() else {
                break;
            };
            let line = line.as_ref();
            let mut rec = FutureRecord::<[u8], [u8]>::to(topic).payload(line);
            if let Some(k) = integration_key(line) {
                rec = rec.key(k);
            }
            pending.push(p.send_result(rec).map_err(|(e, _)| err(e))?);
            n += 1;
            since_check += 1;
        }
    }
    wait_all_ends(&mut pending, &mut ends).await.map_err(err)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integration_key_finds_plain_ids_only() {
        let l = br#"{"ts":0,"integration_id" : "mailchimp-sync","resource":"x"}"#;
        assert_eq!(integration_key(l), Some(&b"mailchimp-sync"[..]));
        assert_eq!(integration_key(br#"{"integration_id":"a\"b"}"#), None);
        assert_eq!(integration_key(br#"{"integration_id":7}"#), None);
        assert_eq!(integration_key(b"garbage"), None);
        assert_eq!(integration_key(br#"{"integration_id":""}"#), None);
    }
}
