//! Producing: dead letters and the alerts topic, each record acknowledged by
//! the broker before the batch that made it counts as processed (waiting
//! and retrying: `in_flight`).

use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tripline_ingest::RejectReason;

use crate::consumer::Msg;

/// Dead-letter header: the bounded reject reason (`invalid_json`, ...).
pub const HEADER_REJECT_REASON: &str = "tripline-reject-reason";
/// Dead-letter header: the parser's human-readable detail (never the payload).
pub const HEADER_REJECT_DETAIL: &str = "tripline-reject-detail";
/// Dead-letter header: the topic the message was read from.
pub const HEADER_SOURCE_TOPIC: &str = "tripline-source-topic";
/// Dead-letter header: its partition, in decimal.
pub const HEADER_SOURCE_PARTITION: &str = "tripline-source-partition";
/// Dead-letter header: its offset, in decimal.
pub const HEADER_SOURCE_OFFSET: &str = "tripline-source-offset";

/// Reject details are parser messages; cap them so a header stays small.
const MAX_DETAIL_BYTES: usize = 512;

/// A record to produce and wait for.
pub(super) struct OutRecord {
    pub(super) topic: String,
    pub(super) key: Option<Vec<u8>>,
    pub(super) payload: Vec<u8>,
    pub(super) headers: Vec<(String, Vec<u8>)>,
    pub(super) dead_letter: bool,
}

pub(super) fn stage(r: &OutRecord) -> &'static str {
    if r.dead_letter {
        "dead_letter"
    } else {
        "alerts_topic"
    }
}

/// Sends one record without waiting for its acknowledgement.
pub(super) fn send(producer: &FutureProducer, r: &OutRecord) -> Result<DeliveryFuture, KafkaError> {
    let mut rec = FutureRecord::<[u8], [u8]>::to(&r.topic).payload(&r.payload[..]);
    if let Some(k) = &r.key {
        rec = rec.key(&k[..]);
    }
    if !r.headers.is_empty() {
        let mut h = OwnedHeaders::new_with_capacity(r.headers.len());
        for (key, value) in &r.headers {
            h = h.insert(Header {
                key: key.as_str(),
                value: Some(&value[..]),
            });
        }
        rec = rec.headers(h);
    }
    producer.send_result(rec).map_err(|(e, _)| e)
}

/// The dead letter of `m`: original key and bytes untouched, original headers
/// kept, reject reason and source coordinates added.
pub(super) fn dead_letter(topic: &str, m: &Msg, reason: RejectReason, detail: &str) -> OutRecord {
    let mut headers: Vec<(String, Vec<u8>)> = Vec::with_capacity(5);
    if let Some(original) = &m.headers {
        for h in original.iter() {
            headers.push((
                h.key.to_owned(),
                h.value.map(<[u8]>::to_vec).unwrap_or_default(),
            ));
        }
    }
    let mut add = |k: &str, v: Vec<u8>| headers.push((k.to_owned(), v));
    add(HEADER_REJECT_REASON, reason.as_str().as_bytes().to_vec());
    add(
        HEADER_REJECT_DETAIL,
        truncate(detail, MAX_DETAIL_BYTES).as_bytes().to_vec(),
    );
    add(HEADER_SOURCE_TOPIC, m.topic.as_bytes().to_vec());
    add(
        HEADER_SOURCE_PARTITION,
        m.partition.to_string().into_bytes(),
    );
    add(HEADER_SOURCE_OFFSET, m.offset.to_string().into_bytes());
    OutRecord {
        topic: topic.to_owned(),
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().to_vec(),
        headers,
        dead_letter: true,
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
    }

    #[test]
    fn dead_letter_keeps_key_and_bytes_and_adds_headers() {
        let original = OwnedHeaders::new().insert(Header {
            key: "trace",
            value: Some(&b"t1"[..]),
        });
        let m = Msg::new(
            Arc::from("in"),
            3,
            42,
            Some(b"k1"),
            b"\xffnot json",
            Some(original),
        );
        let r = dead_letter("dlq", &m, RejectReason::InvalidUtf8, "bad");
        assert_eq!(r.payload, b"\xffnot json");
        assert_eq!(r.key.as_deref(), Some(&b"k1"[..]));
        let h: HashMap<String, Vec<u8>> = r.headers.iter().cloned().collect();
        assert_eq!(h[HEADER_REJECT_REASON], b"invalid_utf8");
        assert_eq!(h[HEADER_SOURCE_PARTITION], b"3");
        assert_eq!(h[HEADER_SOURCE_OFFSET], b"42");
        assert_eq!(h[HEADER_SOURCE_TOPIC], b"in");
        assert_eq!(h["trace"], b"t1");
    }

    #[test]
    fn a_message_without_key_keeps_its_payload() {
        let m = Msg::new(Arc::from("in"), 0, 7, None, b"payload", None);
        assert_eq!(m.key(), None);
        assert_eq!(m.payload(), b"payload");
        assert_eq!(m.next_offset(), 8);
    }
}
