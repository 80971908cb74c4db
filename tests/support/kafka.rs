//! Kafka clients that look at the broker from the outside: create topics,
//! produce keyed events, read a topic to its end, and read a group's
//! committed offsets with a separate client that never joins the group.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::unique;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One message to produce.
#[derive(Clone, Debug)]
pub struct Record {
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
}

impl Record {
    /// `payload` keyed by its `integration_id` when it has one (as producers
    /// of access logs are told to do); unkeyed otherwise (garbage).
    pub fn keyed_by_integration(payload: impl Into<Vec<u8>>) -> Record {
        let payload = payload.into();
        let key = serde_json::from_slice::<serde_json::Value>(&payload)
            .ok()
            .and_then(|v| {
                v.get("integration_id")?
                    .as_str()
                    .map(|s| s.as_bytes().to_vec())
            });
        Record { key, payload }
    }
}

/// Non-empty lines of a JSONL file (as `tripline replay` reads them), as
/// records keyed by integration.
pub fn records_of_file(path: &std::path::Path) -> Vec<Record> {
    let bytes = std::fs::read(path).expect("read events file");
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .map(|l| Record::keyed_by_integration(l.to_vec()))
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime")
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("test consumer")
}

/// Whether the broker answers a metadata request (used while it starts).
pub fn metadata_ok(bootstrap: &str) -> Result<(), String> {
    let c = consumer(bootstrap, &unique("probe"));
    c.fetch_metadata(None, Duration::from_secs(1))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Creates `topic` with `partitions` partitions (replication 1) through the
/// admin API, and waits until its metadata shows every partition.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let results = runtime()
        .block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
        ))
        .expect("create_topics request");
    for r in results {
        if let Err((name, code)) = r {
            panic!("creating topic {name}: {code:?}");
        }
    }
    super::eventually(
        &format!("topic {topic} to have {partitions} partitions in metadata"),
        TIMEOUT,
        Duration::from_millis(100),
        || {
            let n = partition_count(bootstrap, topic);
            if n == partitions {
                Ok(())
            } else {
                Err(format!("{n} partitions"))
            }
        },
    );
}

/// Partitions of `topic` according to the broker (0 if unknown).
pub fn partition_count(bootstrap: &str, topic: &str) -> i32 {
    let c = consumer(bootstrap, &unique("meta"));
    c.fetch_metadata(Some(topic), TIMEOUT)
        .ok()
        .and_then(|m| {
            m.topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map(|t| t.partitions().len() as i32)
        })
        .unwrap_or(0)
}

/// Where a produced record landed: `(partition, offset)`.
pub type Landed = (i32, i64);

/// Produces every record (to `partition` if given, else by key) and waits
/// for each acknowledgement; panics on any delivery failure. Returns where
/// each record landed, in order.
pub fn produce_to(
    bootstrap: &str,
    topic: &str,
    partition: Option<i32>,
    records: &[Record],
) -> Vec<Landed> {
    produce_with(bootstrap, topic, partition, records, false)
}

/// [`produce`] with one record per record batch (slower).
///
/// Needed where a consumer resumes from a committed offset in the middle of
/// the stream: Tansu 0.6.0 answers a fetch whose offset falls *inside* a
/// record batch with no records at all (Kafka returns the whole batch and
/// the client skips to the offset), so a group that committed mid-batch
/// would never get past that offset.
pub fn produce_unbatched(bootstrap: &str, topic: &str, records: &[Record]) -> Vec<Landed> {
    produce_with(bootstrap, topic, None, records, true)
}

fn produce_with(
    bootstrap: &str,
    topic: &str,
    partition: Option<i32>,
    records: &[Record],
    unbatched: bool,
) -> Vec<Landed> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        // Generous: a loaded 2-core machine running Tansu, the product and
        // the test at once has timed out a record at 30 s (the test is about
        // what tripline does with the records, not the producer's speed).
        .set("message.timeout.ms", "120000")
        // Java clients' partitioner: one integration, one partition.
        .set("partitioner", "murmur2_random");
    if unbatched {
        config.set("batch.num.messages", "1").set("linger.ms", "0");
    }
    let producer: FutureProducer = config.create().expect("test producer");
    let landed = runtime().block_on(async {
        let mut acks = Vec::with_capacity(records.len());
        for r in records {
            let mut rec = FutureRecord::<[u8], [u8]>::to(topic).payload(&r.payload[..]);
            if let Some(k) = &r.key {
                rec = rec.key(&k[..]);
            }
            if let Some(p) = partition {
                rec = rec.partition(p);
            }
            loop {
                match producer.send_result(rec) {
                    Ok(ack) => {
                        acks.push(ack);
                        break;
                    }
                    // Local queue full: let deliveries drain, then retry.
                    Err((_e, back)) => {
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }
        let mut landed = Vec::with_capacity(acks.len());
        for (i, ack) in acks.into_iter().enumerate() {
            match ack.await {
                Ok(Ok(d)) => landed.push((d.partition, d.offset)),
                Ok(Err((e, _))) => panic!("producing record {i} to {topic}: {e}"),
                Err(_) => panic!("producing record {i} to {topic}: delivery report lost"),
            }
        }
        landed
    });
    let _ = producer.flush(TIMEOUT);
    landed
}

/// [`produce_to`] partitioned by key.
pub fn produce(bootstrap: &str, topic: &str, records: &[Record]) -> Vec<Landed> {
    produce_to(bootstrap, topic, None, records)
}

/// End offsets (last offset + 1) per partition of what was produced, from
/// the broker's own acknowledgements.
///
/// Not from `ListOffsets`/`fetch_watermarks`: Tansu 0.6.0 reports the high
/// watermark as the base offset of the last record *batch* + 1, so after one
/// produce of 30 records it says 1, not 30 (fetches still return all 30).
pub fn ends(landed: &[Landed]) -> BTreeMap<i32, i64> {
    let mut ends = BTreeMap::new();
    for (p, off) in landed {
        let e = ends.entry(*p).or_insert(0);
        *e = (*e).max(off + 1);
    }
    ends
}

/// Header that marks the end-of-topic sentinels [`read_to_end`] appends.
pub const SENTINEL_HEADER: &str = "tripline-test-sentinel";

/// Every message of `topic` (all partitions) from the beginning to its
/// current end, read by a client that assigns partitions itself (no group).
///
/// The end is found by appending a sentinel record to every partition and
/// reading up to it (the broker's high watermark cannot be trusted, see
/// [`ends`]), so call this only once the writers of `topic` have stopped.
/// Sentinels are not returned.
pub fn read_to_end(bootstrap: &str, topic: &str) -> Vec<OwnedMessage> {
    use rdkafka::message::{Header, OwnedHeaders};
    let n = partition_count(bootstrap, topic);
    assert!(n > 0, "topic {topic} has no partitions");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("sentinel producer");
    let mut sentinel: BTreeMap<i32, i64> = BTreeMap::new();
    runtime().block_on(async {
        for p in 0..n {
            let rec = FutureRecord::<[u8], [u8]>::to(topic)
                .partition(p)
                .payload(&b"sentinel"[..])
                .headers(OwnedHeaders::new().insert(Header {
                    key: SENTINEL_HEADER,
                    value: Some(&b"1"[..]),
                }));
            let d = producer
                .send(rec, TIMEOUT)
                .await
                .unwrap_or_else(|(e, _)| panic!("sentinel to {topic}/{p}: {e}"));
            sentinel.insert(d.partition, d.offset);
        }
    });
    let c = consumer(bootstrap, &unique("reader"));
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition offset");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut remaining = sentinel.clone();
    let start = Instant::now();
    while !remaining.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "reading {topic} up to the sentinels {sentinel:?}: still waiting for {remaining:?} after {} messages",
            out.len()
        );
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let m = m.detach();
                if remaining.get(&m.partition()) == Some(&m.offset()) {
                    remaining.remove(&m.partition());
                }
                if header(&m, SENTINEL_HEADER).is_none() {
                    out.push(m);
                }
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Per partition of `topic`: `(partition, committed offset of group or -1,
/// expected end offset)`, read with a fresh client in `group` that does not
/// subscribe, so it never takes part in the group's rebalances. `ends` are
/// the end offsets from [`ends`]; partitions missing there end at 0.
pub fn committed_vs_end(
    bootstrap: &str,
    group: &str,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
) -> Vec<(i32, i64, i64)> {
    let n = partition_count(bootstrap, topic);
    let c = consumer(bootstrap, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    let committed = c
        .committed_offsets(tpl, TIMEOUT)
        .unwrap_or_else(|e| panic!("committed offsets of {group} on {topic}: {e}"));
    (0..n)
        .map(|p| {
            let off = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            };
            (p, off, ends.get(&p).copied().unwrap_or(0))
        })
        .collect()
}

/// Sum of committed offsets (unset counts as 0) and of end offsets.
pub fn committed_and_end_totals(rows: &[(i32, i64, i64)]) -> (i64, i64) {
    rows.iter()
        .fold((0, 0), |(c, e), (_, off, hi)| (c + (*off).max(0), e + hi))
}

/// Ok once `group` has committed every partition of `topic` exactly up to
/// its end; an error describing the offsets otherwise.
pub fn all_committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
) -> Result<(), String> {
    let rows = committed_vs_end(bootstrap, group, topic, ends);
    if rows.iter().all(|(_, off, end)| *end == 0 || off == end) {
        Ok(())
    } else {
        Err(format!("(partition, committed, end): {rows:?}"))
    }
}

/// The value of header `key`, if present.
pub fn header<'a>(m: &'a OwnedMessage, key: &str) -> Option<&'a [u8]> {
    m.headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
}
