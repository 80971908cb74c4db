//! Checkpoints in a Kafka changelog topic (the Kafka Streams pattern), so any
//! member of the consumer group can restore a partition it is handed.
//!
//! Each input partition's checkpoint is written as chunks (a checkpoint can be
//! far larger than a Kafka message) into one of two slots, then a small head
//! record naming the slot is written last:
//!
//! ```text
//! key "{group}/{topic}/{partition}/head"        value "{epoch} {slot} {chunks}"
//! key "{group}/{topic}/{partition}/{slot}/{i}"  value epoch (8 bytes LE) ++ chunk i
//! ```
//!
//! A torn write (crash between chunks) only ever touches the slot the head
//! does not name, so the last complete checkpoint stays readable. Keys repeat,
//! so a compacted topic (`cleanup.policy=compact`) stays bounded at about
//! two checkpoints per partition.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::hooks::StateStore;

/// Longest a checkpoint save waits for the broker's acknowledgements (less
/// when the shutdown deadline comes first).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Chunk payload size: below Kafka's default 1 MB message limit with room for
/// the key and headers.
const CHUNK_BYTES: usize = 900 * 1024;
/// Reading the changelog stops after this long without a new message.
const READ_IDLE: Duration = Duration::from_millis(1500);
/// Upper bound on one restore read.
const READ_MAX: Duration = Duration::from_secs(60);

/// How a missing changelog topic is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangelogTopic {
    /// -1: the broker's default.
    pub replication_factor: i32,
    /// `min.insync.replicas`; `None`: the broker's default.
    pub min_insync_replicas: Option<u32>,
}

impl Default for ChangelogTopic {
    fn default() -> Self {
        ChangelogTopic {
            replication_factor: 1,
            min_insync_replicas: None,
        }
    }
}

/// A [`StateStore`] backed by a (compacted) Kafka topic.
pub struct ChangelogStore {
    config: ClientConfig,
    producer: BaseProducer,
    topic: String,
    group: String,
    interval: Duration,
    cold_on_corrupt: bool,
    /// Last (epoch, slot) written or read per input partition.
    heads: Mutex<HashMap<(String, i32), (u64, u8)>>,
}

impl ChangelogStore {
    /// `config` is the client config used for the input (brokers, TLS, SASL).
    pub fn new(
        config: ClientConfig,
        topic: &str,
        group: &str,
        interval: Duration,
        cold_on_corrupt: bool,
    ) -> Result<Self, crate::Error> {
        let mut pc = config.clone();
        pc.set("message.max.bytes", "1048576").set("linger.ms", "0");
        for k in [
            "group.id",
            "enable.auto.commit",
            "enable.auto.offset.store",
            "auto.offset.reset",
            "enable.partition.eof",
            "auto.commit.interval.ms",
            "statistics.interval.ms",
            "fetch.wait.max.ms",
        ] {
            pc.remove(k);
        }
        let producer: BaseProducer = pc
            .create()
            .map_err(crate::Error::client("creating the changelog producer"))?;
        Ok(ChangelogStore {
            config,
            producer,
            topic: topic.to_owned(),
            group: group.to_owned(),
            interval,
            cold_on_corrupt,
            heads: Mutex::new(HashMap::new()),
        })
    }

    /// Builds the store from the input's settings (same brokers, TLS, SASL)
    /// and creates the topic, compacted, if it does not exist yet.
    pub async fn from_settings(
        settings: &crate::KafkaSettings,
        topic: &str,
        create: ChangelogTopic,
        interval: Duration,
        cold_on_corrupt: bool,
    ) -> Result<Self, crate::Error> {
        let config = settings.client_config(crate::settings::Role::Consumer)?;
        let mut ac = config.clone();
        for k in [
            "group.id",
            "enable.auto.commit",
            "enable.auto.offset.store",
            "auto.offset.reset",
            "enable.partition.eof",
            "auto.commit.interval.ms",
            "statistics.interval.ms",
            "fetch.wait.max.ms",
        ] {
            ac.remove(k);
        }
        if let Ok(admin) =
            ac.create::<rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>>()
        {
            let min_isr = create.min_insync_replicas.map(|m| m.to_string());
            let mut nt = rdkafka::admin::NewTopic::new(
                topic,
                1,
                rdkafka::admin::TopicReplication::Fixed(create.replication_factor),
            )
            .set("cleanup.policy", "compact");
            if let Some(m) = &min_isr {
                nt = nt.set("min.insync.replicas", m);
            }
            let opts = rdkafka::admin::AdminOptions::new()
                .operation_timeout(Some(Duration::from_secs(10)));
            match admin.create_topics([&nt], &opts).await {
                Ok(results) => {
                    for r in results {
                        if let Err((t, code)) = r {
                            if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                                tracing::warn!(topic = %t, error = %code, "Could not create the changelog topic; relying on auto-creation.");
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Could not create the changelog topic; relying on auto-creation.")
                }
            }
        }
        ChangelogStore::new(config, topic, &settings.group_id, interval, cold_on_corrupt)
    }

    fn base(&self, topic: &str, partition: i32) -> String {
        format!("{}/{}/{}", self.group, topic, partition)
    }

    /// Every (key → latest value) in the changelog under `prefix`.
    fn read_prefix(&self, prefix: &str) -> Result<HashMap<String, Vec<u8>>, String> {
        let mut cc = self.config.clone();
        cc.set("group.id", format!("{}-changelog-reader", self.group))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        let consumer: BaseConsumer = cc.create().map_err(|e| format!("changelog reader: {e}"))?;
        let md = consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(10))
            .map_err(|e| format!("changelog metadata: {e}"))?;
        let parts: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut tpl = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for p in &parts {
            tpl.add_partition_offset(&self.topic, *p, Offset::Beginning)
                .map_err(|e| e.to_string())?;
            if let Ok((_, high)) =
                consumer.fetch_watermarks(&self.topic, *p, Duration::from_secs(5))
            {
                ends.insert(*p, high);
            }
        }
        if parts.is_empty() {
            return Ok(HashMap::new());
        }
        consumer
            .assign(&tpl)
            .map_err(|e| format!("changelog assign: {e}"))?;
        let mut out = HashMap::new();
        let started = Instant::now();
        let mut last = Instant::now();
        let mut done: HashMap<i32, bool> = parts
            .iter()
            .map(|p| (*p, ends.get(p).is_some_and(|h| *h <= 0)))
            .collect();
        while started.elapsed() < READ_MAX
            && last.elapsed() < READ_IDLE
            && done.values().any(|d| !d)
        {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    last = Instant::now();
                    if ends
                        .get(&m.partition())
                        .is_some_and(|h| m.offset() + 1 >= *h)
                    {
                        done.insert(m.partition(), true);
                    }
                    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                        continue;
                    };
                    if key.starts_with(prefix) {
                        match m.payload() {
                            Some(v) => out.insert(key.to_owned(), v.to_vec()),
                            None => out.remove(key),
                        };
                    }
                }
                Some(Err(e)) => return Err(format!("changelog read: {e}")),
                None => {}
            }
        }
        Ok(out)
    }

    /// Queues one record, waiting for room in the producer's queue until
    /// `deadline`.
    fn send(&self, key: &str, value: &[u8], deadline: Instant) -> Result<(), String> {
        let mut rec = BaseRecord::<str, [u8]>::to(&self.topic)
            .key(key)
            .payload(value);
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((e, r)) => {
                    if !matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ) {
                        return Err(format!("changelog produce: {e}"));
                    }
                    if Instant::now() >= deadline {
                        return Err("changelog produce: queue full until the deadline".into());
                    }
                    self.producer.poll(Duration::from_millis(50));
                    rec = r;
                }
            }
        }
    }

    /// Waits for every queued record's acknowledgement until `deadline`.
    fn flush(&self, deadline: Instant) -> Result<(), String> {
        self.producer
            .flush(deadline.saturating_duration_since(Instant::now()))
            .map_err(|e| format!("changelog flush: {e}"))
    }
}

impl StateStore for ChangelogStore {
    fn enabled(&self) -> bool {
        true
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn cold_on_corrupt(&self) -> bool {
        self.cold_on_corrupt
    }

    fn load(&self, topic: &str, partition: i32) -> Result<Option<Vec<u8>>, String> {
        let base = self.base(topic, partition);
        let kv = self.read_prefix(&format!("{base}/"))?;
        let Some(head) = kv.get(&format!("{base}/head")) else {
            return Ok(None);
        };
        let head = std::str::from_utf8(head).map_err(|_| format!("{base}: head is not text"))?;
        let mut it = head.split(' ').map(str::parse::<u64>);
        let (Some(Ok(epoch)), Some(Ok(slot)), Some(Ok(chunks))) = (it.next(), it.next(), it.next())
        else {
            return Err(format!("{base}: malformed head {head:?}"));
        };
        let mut bytes = Vec::new();
        for i in 0..chunks {
            let key = format!("{base}/{slot}/{i}");
            let v = kv
                .get(&key)
                .ok_or_else(|| format!("{base}: chunk {i} of epoch {epoch} missing"))?;
            if v.len() < 8 || v[..8] != epoch.to_le_bytes() {
                return Err(format!(
                    "{base}: chunk {i} is not from epoch {epoch} (torn checkpoint)"
                ));
            }
            bytes.extend_from_slice(&v[8..]);
        }
        if let Ok(mut h) = self.heads.lock() {
            h.insert((topic.to_owned(), partition), (epoch, slot as u8));
        }
        Ok(Some(bytes))
    }

    fn save(&self, topic: &str, partition: i32, bytes: &[u8]) -> Result<(), String> {
        self.save_by(topic, partition, bytes, None)
    }

    /// Chunks, then the head that makes them current: the whole save waits
    /// at most [`FLUSH_TIMEOUT`] for the broker, and never past `deadline`. A save cut short
    /// before the head is acknowledged leaves the previous epoch in force
    /// (readers follow the head only).
    fn save_by(
        &self,
        topic: &str,
        partition: i32,
        bytes: &[u8],
        deadline: Option<Instant>,
    ) -> Result<(), String> {
        let deadline = {
            let step = Instant::now() + FLUSH_TIMEOUT;
            deadline.map_or(step, |d| d.min(step))
        };
        let base = self.base(topic, partition);
        let (epoch, slot) = {
            let h = self
                .heads
                .lock()
                .map_err(|_| "changelog state poisoned".to_owned())?;
            match h.get(&(topic.to_owned(), partition)) {
                Some((e, s)) => (e + 1, 1 - s),
                None => (1, 0),
            }
        };
        let chunks: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[][..]]
        } else {
            bytes.chunks(CHUNK_BYTES).collect()
        };
        for (i, c) in chunks.iter().enumerate() {
            let mut v = Vec::with_capacity(8 + c.len());
            v.extend_from_slice(&epoch.to_le_bytes());
            v.extend_from_slice(c);
            self.send(&format!("{base}/{slot}/{i}"), &v, deadline)?;
        }
        self.flush(deadline)?;
        self.send(
            &format!("{base}/head"),
            format!("{epoch} {slot} {}", chunks.len()).as_bytes(),
            deadline,
        )?;
        self.flush(deadline)?;
        if let Ok(mut h) = self.heads.lock() {
            h.insert((topic.to_owned(), partition), (epoch, slot));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shutdown must not wait 2 × 30 s for a changelog broker that does not
    /// answer: the save gives up at the deadline, and leaves no new head.
    #[test]
    fn a_save_to_an_unreachable_broker_gives_up_at_the_deadline_and_keeps_the_old_head() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", format!("127.0.0.1:{port}"));
        let store =
            ChangelogStore::new(c, "tripline-state", "g", Duration::from_secs(30), false).unwrap();
        let started = Instant::now();
        let saved = store.save_by(
            "logs",
            0,
            b"engine state",
            Some(started + Duration::from_millis(300)),
        );
        let took = started.elapsed();
        assert!(saved.is_err(), "nothing acknowledged, yet {saved:?}");
        // Before: two flushes of 30 s each. The bound leaves room for a
        // loaded machine; the deadline itself was 0.3 s.
        assert!(took < Duration::from_secs(10), "gave up after {took:?}");
        assert!(
            store.heads.lock().unwrap().is_empty(),
            "an unacknowledged save must not become the current head"
        );
    }
}
