//! Scenarios shared by the end-to-end tests against `tripline run` on Tansu
//! (tests/e2e_state.rs, tests/e2e_api.rs): a config per test, steady traffic,
//! a call burst, and the kinds of alerts on the alerts topic.

use std::path::Path;

use super::kafka::{self, Record};
use super::tripline::{self, KafkaConf};
use super::unique;

pub fn conf(bootstrap: &str) -> KafkaConf {
    KafkaConf {
        brokers: bootstrap.to_owned(),
        topic: unique("logs"),
        group: unique("group"),
        dlq_topic: unique("dlq"),
        alerts_topic: unique("alerts"),
        batch_max_events: 200,
    }
}

/// A config for `conf` plus a `[checkpoint]` section and a short session
/// timeout (a killed member's partitions move in seconds, not 45 s).
pub fn config_with(dir: &Path, conf: &KafkaConf, checkpoint: &str) -> (std::path::PathBuf, String) {
    let (path, addr) = tripline::write_config(dir, conf);
    let mut text = std::fs::read_to_string(&path).expect("config");
    text.push_str("\n[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n");
    text.push_str(checkpoint);
    std::fs::write(&path, text).expect("config");
    (path, addr)
}

/// Steady traffic for `ids` over `days` (one call per integration every 2
/// minutes), then a burst of 400 calls in one minute for each at `burst_at`.
pub fn traffic(ids: &[&str], start_ms: i64, days: i64) -> Vec<Record> {
    let mut v = Vec::new();
    for m in (0..days * 1440).step_by(2) {
        for id in ids {
            let ts = start_ms + m * 60_000;
            v.push(Record::keyed_by_integration(format!(
                r#"{{"ts":{ts},"integration_id":"{id}","resource":"contacts","method":"GET","status":200,"source_ip":"198.51.100.9"}}"#
            )));
        }
    }
    v
}

pub fn burst(ids: &[&str], at_ms: i64) -> Vec<Record> {
    let mut v = Vec::new();
    for i in 0..400i64 {
        for id in ids {
            let ts = at_ms + i * 100;
            v.push(Record::keyed_by_integration(format!(
                r#"{{"ts":{ts},"integration_id":"{id}","resource":"contacts","method":"GET","status":200,"source_ip":"198.51.100.9"}}"#
            )));
        }
    }
    v
}

pub fn kinds_for(bootstrap: &str, topic: &str) -> Vec<(String, String)> {
    use rdkafka::Message;
    kafka::read_to_end(bootstrap, topic)
        .iter()
        .filter_map(|m| {
            let v: serde_json::Value = serde_json::from_slice(m.payload()?).ok()?;
            Some((
                v["kind"].as_str()?.to_owned(),
                v["resource"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}
