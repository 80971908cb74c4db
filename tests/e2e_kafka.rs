//! `tripline run` end to end: the release binary as a child process against a
//! real Kafka-protocol broker (Tansu, started per test by `support::tansu`).
//! Everything is checked from the outside: output topics read with separate
//! clients, committed offsets read by a client that never joins the group,
//! the admin endpoints over HTTP, SIGTERM through `kill`.
//!
//! Needs the `tansu` binary (`$TRIPLINE_TANSU` or `~/.cargo/bin/tansu`); a
//! missing broker fails the tests rather than skipping them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::kafka::{self, Record};
use crate::support::tansu::Tansu;
use crate::support::tripline::{self, KafkaConf, Run};
use crate::support::{eventually, unique};

/// The spec's shutdown deadline (10 s) plus a margin for process exit.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(13);
const POLL: Duration = Duration::from_millis(50);

/// One broker, one tempdir, fresh topic and group names.
struct Fixture {
    /// Kept alive (and its log shown on failure) for the whole test.
    _broker: Tansu,
    dir: tempfile::TempDir,
    conf: KafkaConf,
    /// Where everything produced to the input topic landed.
    landed: Mutex<Vec<kafka::Landed>>,
}

impl Fixture {
    fn new(partitions: i32, batch_max_events: usize) -> Fixture {
        let broker = Tansu::start();
        let conf = KafkaConf {
            brokers: broker.bootstrap.clone(),
            topic: unique("events"),
            group: unique("tripline"),
            dlq_topic: unique("dlq"),
            alerts_topic: unique("alerts"),
            batch_max_events,
        };
        conf.create_topics(partitions);
        Fixture {
            _broker: broker,
            dir: tempfile::tempdir().expect("tempdir"),
            conf,
            landed: Mutex::new(Vec::new()),
        }
    }

    /// Produces to the input topic, keyed by integration; returns the
    /// partitions used.
    fn produce(&self, records: &[Record]) -> BTreeSet<i32> {
        self.record_landed(kafka::produce(self.bootstrap(), &self.conf.topic, records))
    }

    /// [`Fixture::produce`], one record per batch (see `produce_unbatched`).
    fn produce_unbatched(&self, records: &[Record]) -> BTreeSet<i32> {
        self.record_landed(kafka::produce_unbatched(
            self.bootstrap(),
            &self.conf.topic,
            records,
        ))
    }

    fn record_landed(&self, landed: Vec<kafka::Landed>) -> BTreeSet<i32> {
        let parts = landed.iter().map(|(p, _)| *p).collect();
        self.landed.lock().unwrap().extend(landed);
        parts
    }

    /// End offsets of the input topic per partition.
    fn ends(&self) -> BTreeMap<i32, i64> {
        kafka::ends(&self.landed.lock().unwrap())
    }

    fn committed_vs_end(&self) -> Vec<(i32, i64, i64)> {
        kafka::committed_vs_end(
            self.bootstrap(),
            &self.conf.group,
            &self.conf.topic,
            &self.ends(),
        )
    }

    fn bootstrap(&self) -> &str {
        &self.conf.brokers
    }

    fn config(&self) -> (PathBuf, String) {
        tripline::write_config(self.dir.path(), &self.conf)
    }

    fn all_committed(&self) -> Result<(), String> {
        kafka::all_committed(
            self.bootstrap(),
            &self.conf.group,
            &self.conf.topic,
            &self.ends(),
        )
    }

    /// Waits until the group has committed the whole input topic, checking
    /// that `run` stays up meanwhile.
    fn wait_all_committed(&self, run: &mut Run, timeout: Duration) {
        eventually("every input offset committed", timeout, POLL, || {
            run.assert_running();
            self.all_committed()
        });
    }

    /// Alert ids in the alerts topic, with how often each occurs.
    fn alert_ids(&self) -> BTreeMap<String, usize> {
        let mut ids = BTreeMap::new();
        for m in kafka::read_to_end(self.bootstrap(), &self.conf.alerts_topic) {
            use rdkafka::Message;
            let id = tripline::alert_id(m.payload().unwrap_or_default());
            *ids.entry(id).or_insert(0) += 1;
        }
        ids
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A valid event of `integration` (recent event time, so nothing is late).
fn event(integration: &str, ts: i64) -> String {
    format!(
        r#"{{"ts":{ts},"integration_id":"{integration}","resource":"contacts","method":"GET","status":200,"records":1}}"#
    )
}

/// A registry declaring one integration: every other id is unknown, and an
/// unknown integration alerts on its first event.
fn write_registry(dir: &Path) -> PathBuf {
    let p = dir.join("registry.toml");
    std::fs::write(
        &p,
        "[[integrations]]\nid = \"known-app\"\nname = \"Known app\"\ngranted = [\"*:*\"]\n",
    )
    .expect("write registry");
    p
}

/// Events of `n` distinct unregistered integrations, one each: every event
/// raises exactly one `unknown_integration` alert, whatever engine (fresh
/// after a restart or not) sees it first.
fn ghost_events(n: usize) -> Vec<String> {
    let t0 = now_ms();
    (0..n)
        .map(|i| event(&format!("ghost-{i:05}"), t0 + i as i64))
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").expect("write events file");
}

fn assert_same_ids(got: &BTreeSet<String>, want: &BTreeSet<String>) {
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "alert ids differ from replay's: {} missing {:?}, {} extra {:?} (run {}, replay {})",
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(10).collect::<Vec<_>>(),
        got.len(),
        want.len()
    );
}

#[test]
fn run_yields_the_same_alert_ids_as_replay() {
    let started = Instant::now();
    let fx = Fixture::new(3, 500);
    let (events, registry) = tripline::simulate(fx.dir.path(), 11);
    let records = kafka::records_of_file(&events);
    let parts = fx.produce(&records);
    assert!(
        parts.len() > 1,
        "keyed stream spread over partitions: {parts:?}"
    );
    let (config, http) = fx.config();
    let want = tripline::replay_alert_ids(&config, &registry, &events);
    assert!(want.len() >= 5, "replay finds alerts: {want:?}");

    let mut run = Run::start(&config, &registry, &http);
    fx.wait_all_committed(&mut run, Duration::from_secs(60));
    let took = run.stop(SHUTDOWN_LIMIT);

    let ids = fx.alert_ids();
    let got: BTreeSet<String> = ids.keys().cloned().collect();
    let dups: usize = ids.values().map(|n| n - 1).sum();
    eprintln!(
        "run_yields_the_same_alert_ids_as_replay: {} records, {} alert ids ({dups} duplicates), shutdown {took:?}, total {:?}",
        records.len(),
        got.len(),
        started.elapsed()
    );
    assert_same_ids(&got, &want);
    assert_eq!(dups, 0, "one uninterrupted run publishes each alert once");
    // run ≡ replay held with the partitions' engines on two threads.
    tripline::assert_parallel(&run);
}

#[test]
fn sigterm_mid_stream_then_restart_loses_nothing() {
    let started = Instant::now();
    // Small batches: the stream takes many batches, so SIGTERM lands mid-way.
    let fx = Fixture::new(3, 20);
    let registry = write_registry(fx.dir.path());
    let lines = ghost_events(4000);
    let events = fx.dir.path().join("events.jsonl");
    write_lines(&events, &lines);
    let records: Vec<Record> = lines
        .iter()
        .map(|l| Record::keyed_by_integration(l.as_bytes()))
        .collect();
    // The restart resumes mid-stream, which Tansu only serves at batch bounds.
    let produce_started = Instant::now();
    fx.produce_unbatched(&records);
    let produce_took = produce_started.elapsed();
    let (config, http) = fx.config();
    let want = tripline::replay_alert_ids(&config, &registry, &events);
    assert_eq!(want.len(), lines.len(), "one alert per ghost integration");

    let mut run = Run::start(&config, &registry, &http);
    let total = lines.len() as i64;
    let at_term = eventually(
        "some, not all, input committed",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || {
            run.assert_running();
            let rows = fx.committed_vs_end();
            let (committed, end) = kafka::committed_and_end_totals(&rows);
            assert_eq!(end, total);
            assert!(
                committed < end,
                "everything was committed before SIGTERM could land mid-stream: {rows:?}"
            );
            if committed > 0 {
                Ok(committed)
            } else {
                Err(format!("{rows:?}"))
            }
        },
    );
    let took = run.stop(SHUTDOWN_LIMIT);
    let rows = fx.committed_vs_end();
    let (after_stop, _) = kafka::committed_and_end_totals(&rows);
    assert!(
        after_stop >= at_term,
        "commits never go backwards: {at_term} then {rows:?}"
    );

    // Same group: it resumes from the committed offsets.
    let (config2, http2) = fx.config();
    let mut again = Run::start(&config2, &registry, &http2);
    fx.wait_all_committed(&mut again, Duration::from_secs(45));
    let took2 = again.stop(SHUTDOWN_LIMIT);
    fx.all_committed()
        .expect("committed offsets == end offsets after the restart");

    let ids = fx.alert_ids();
    let got: BTreeSet<String> = ids.keys().cloned().collect();
    let dups: usize = ids.values().map(|n| n - 1).sum();
    eprintln!(
        "sigterm_mid_stream_then_restart_loses_nothing: {total} events (produced unbatched in {produce_took:?}); committed {at_term} at SIGTERM, {after_stop} after the drain ({took:?}); restart shutdown {took2:?}; {} alert ids, {dups} duplicates; total {:?}",
        got.len(),
        started.elapsed()
    );
    assert_same_ids(&got, &want);
}

/// Garbage as producers get it wrong, each with the reason the DLQ must carry.
fn garbage() -> Vec<(Vec<u8>, &'static str)> {
    let huge = format!(
        r#"{{"ts":{},"integration_id":"ghost-huge","resource":"contacts","method":"GET","status":200,"user_agent":"{}"}}"#,
        now_ms(),
        "x".repeat(70 * 1024)
    );
    vec![
        (b"not json at all".to_vec(), "invalid_json"),
        (b"{\"ts\":0,".to_vec(), "invalid_json"),
        (
            br#"{"integration_id":"ghost-x","resource":"contacts","method":"GET","status":200}"#
                .to_vec(),
            "missing_field",
        ),
        (
            br#"{"ts":0,"integration_id":7,"resource":"contacts","method":"GET","status":200}"#
                .to_vec(),
            "invalid_field",
        ),
        (
            br#"{"ts":0,"integration_id":"ghost-y","resource":"contacts","method":"GET","status":"200"}"#
                .to_vec(),
            "invalid_field",
        ),
        (b"\xff\xfe{\"ts\":0}".to_vec(), "invalid_utf8"),
        (huge.into_bytes(), "too_large"),
    ]
}

#[test]
fn garbage_lands_in_the_dlq_with_reasons_and_processing_goes_on() {
    use rdkafka::Message;
    let started = Instant::now();
    // One partition: "after the garbage" is an order the broker keeps.
    let fx = Fixture::new(1, 50);
    let registry = write_registry(fx.dir.path());
    let garbage = garbage();
    let valid = ghost_events(garbage.len() + 1);
    // valid, garbage, valid, garbage, ..., valid.
    let mut records = Vec::new();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for (i, v) in valid.iter().enumerate() {
        records.push(Record::keyed_by_integration(v.as_bytes()));
        lines.push(v.as_bytes().to_vec());
        if let Some((g, _)) = garbage.get(i) {
            records.push(Record {
                key: None,
                payload: g.clone(),
            });
            lines.push(g.clone());
        }
    }
    let landed = kafka::produce(fx.bootstrap(), &fx.conf.topic, &records);
    fx.landed.lock().unwrap().extend(landed.iter().copied());
    let events = fx.dir.path().join("events.jsonl");
    let mut file = lines.join(&b'\n');
    file.push(b'\n');
    std::fs::write(&events, file).unwrap();
    let (config, http) = fx.config();
    let want_ids = tripline::replay_alert_ids(&config, &registry, &events);
    assert_eq!(
        want_ids.len(),
        valid.len(),
        "replay: one alert per valid ghost event"
    );

    let mut run = Run::start(&config, &registry, &http);
    fx.wait_all_committed(&mut run, Duration::from_secs(30));
    let took = run.stop(SHUTDOWN_LIMIT);
    fx.all_committed()
        .expect("offsets all committed after shutdown");

    // Every garbage message is in the DLQ once, bytes untouched, with its reason
    // and where it came from.
    let dlq = kafka::read_to_end(fx.bootstrap(), &fx.conf.dlq_topic);
    assert_eq!(
        dlq.len(),
        garbage.len(),
        "one dead letter per garbage message"
    );
    let source_offset: BTreeMap<Vec<u8>, i64> = records
        .iter()
        .zip(&landed)
        .map(|(r, (_, off))| (r.payload.clone(), *off))
        .collect();
    for (m, (bytes, reason)) in dlq.iter().zip(&garbage) {
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]).into_owned();
        assert_eq!(
            m.payload(),
            Some(&bytes[..]),
            "dead letter bytes untouched: {shown}"
        );
        let h = |k: &str| {
            kafka::header(m, k)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_else(|| panic!("dead letter of {shown} lacks header {k}"))
        };
        assert_eq!(h(tripline_kafka::HEADER_REJECT_REASON), *reason, "{shown}");
        assert!(
            !h(tripline_kafka::HEADER_REJECT_DETAIL).is_empty(),
            "{shown}"
        );
        assert_eq!(h(tripline_kafka::HEADER_SOURCE_TOPIC), fx.conf.topic);
        assert_eq!(h(tripline_kafka::HEADER_SOURCE_PARTITION), "0");
        assert_eq!(
            h(tripline_kafka::HEADER_SOURCE_OFFSET),
            source_offset[bytes].to_string(),
            "{shown}"
        );
    }

    // Valid events before, between and after the garbage all alerted.
    let alerts = kafka::read_to_end(fx.bootstrap(), &fx.conf.alerts_topic);
    let alerted: BTreeSet<String> = alerts
        .iter()
        .map(|m| {
            let v: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap();
            v["integration_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    let ghosts: BTreeSet<String> = (0..valid.len()).map(|i| format!("ghost-{i:05}")).collect();
    assert_eq!(
        alerted, ghosts,
        "every valid event alerted, the last ones after all the garbage"
    );
    let got: BTreeSet<String> = fx.alert_ids().into_keys().collect();
    assert_same_ids(&got, &want_ids);
    eprintln!(
        "garbage_lands_in_the_dlq_with_reasons_and_processing_goes_on: {} garbage, {} valid; shutdown {took:?}; total {:?}",
        garbage.len(),
        valid.len(),
        started.elapsed()
    );
}

#[test]
fn metrics_and_probes_are_served_while_running() {
    let started = Instant::now();
    let fx = Fixture::new(1, 50);
    let registry = write_registry(fx.dir.path());
    let (config, http) = fx.config();
    let mut run = Run::start(&config, &registry, &http);

    let (code, _) = eventually("/healthz answers", Duration::from_secs(15), POLL, || {
        run.assert_running();
        run.get("/healthz")
    });
    assert_eq!(code, 200, "/healthz is 200 as soon as the process serves");
    eventually(
        "/readyz 200 once consuming",
        Duration::from_secs(20),
        POLL,
        || {
            run.assert_running();
            match run.get("/readyz")? {
                (200, _) => Ok(()),
                (c, body) => Err(format!("{c}: {body}")),
            }
        },
    );

    const VALID: usize = 300;
    const BAD: usize = 7;
    let mut records: Vec<Record> = ghost_events(VALID)
        .iter()
        .map(|l| Record::keyed_by_integration(l.as_bytes()))
        .collect();
    for i in 0..BAD {
        records.insert(
            i * 40,
            Record {
                key: None,
                payload: format!("not json {i}").into_bytes(),
            },
        );
    }
    fx.produce(&records);
    fx.wait_all_committed(&mut run, Duration::from_secs(30));

    // Metrics are updated before offsets are stored, so once everything is
    // committed the counters are final.
    let (code, text) = run.get("/metrics").expect("GET /metrics");
    assert_eq!(code, 200);
    let value = |series: &str| {
        tripline::metric(&text, series)
            .unwrap_or_else(|| panic!("{series} missing from /metrics:\n{text}"))
    };
    assert_eq!(value("tripline_events_processed_total"), VALID as f64);
    assert_eq!(
        value(r#"tripline_events_rejected_total{reason="invalid_json"}"#),
        BAD as f64
    );
    assert_eq!(
        value("tripline_events_received_total"),
        (VALID + BAD) as f64
    );
    assert_eq!(
        value(r#"tripline_events_rejected_total{reason="missing_field"}"#),
        0.0
    );
    let (code, _) = run.get("/readyz").expect("GET /readyz");
    assert_eq!(code, 200, "still ready after consuming");
    let took = run.stop(SHUTDOWN_LIMIT);
    eprintln!(
        "metrics_and_probes_are_served_while_running: shutdown {took:?}; total {:?}",
        started.elapsed()
    );
}
