//! Vendor formats end to end against the real broker: one `tripline run`
//! reading topics of different formats, and seeding from exported
//! Salesforce log files before going live.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::support::kafka::{self, Record};
use crate::support::tansu::Tansu;
use crate::support::tripline::{self, KafkaConf, Run};
use crate::support::{eventually, unique};

fn conf(bootstrap: &str) -> KafkaConf {
    KafkaConf {
        brokers: bootstrap.to_owned(),
        topic: unique("canonical"),
        group: unique("group"),
        dlq_topic: unique("dlq"),
        alerts_topic: unique("alerts"),
        batch_max_events: 200,
    }
}

/// The shared test config plus a second topic read as `format`.
fn config_two_topics(
    dir: &Path,
    c: &KafkaConf,
    second: &str,
    format: &str,
) -> (std::path::PathBuf, String) {
    let (path, addr) = tripline::write_config(dir, c);
    let text = std::fs::read_to_string(&path).unwrap().replace(
        &format!("topics = [\"{}\"]", c.topic),
        &format!("topics = [\"{}\", \"{second}\"]", c.topic),
    );
    let text = format!("{text}\n[ingest.formats]\n\"{second}\" = \"{format}\"\n");
    std::fs::write(&path, text).unwrap();
    (path, addr)
}

fn alerts(bootstrap: &str, topic: &str) -> Vec<(String, String)> {
    use rdkafka::Message;
    kafka::read_to_end(bootstrap, topic)
        .iter()
        .filter_map(|m| {
            let v: serde_json::Value = serde_json::from_slice(m.payload()?).ok()?;
            Some((
                v["kind"].as_str()?.to_owned(),
                v["integration_id"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

fn kong_record(consumer: &str, uri: &str, ts: i64) -> Record {
    Record {
        key: Some(consumer.as_bytes().to_vec()),
        payload: format!(
            r#"{{"request":{{"method":"GET","uri":"{uri}","headers":{{"user-agent":"sync/1"}}}},"response":{{"status":200,"size":512}},"consumer":{{"username":"{consumer}"}},"client_ip":"198.51.100.9","started_at":{ts}}}"#
        )
        .into_bytes(),
    }
}

#[test]
fn run_reads_a_kong_topic_and_a_canonical_topic_in_one_sidecar() {
    let tansu = Tansu::start();
    let b = tansu.bootstrap.clone();
    let dir = tempfile::tempdir().unwrap();
    let c = conf(&b);
    let kong_topic = unique("kong");
    for t in [&c.topic, &kong_topic, &c.alerts_topic, &c.dlq_topic] {
        kafka::create_topic(&b, t, 1);
    }
    let registry = dir.path().join("registry.toml");
    std::fs::write(
        &registry,
        "[[integrations]]\nid = \"registered-app\"\ngranted = [\"contacts:read\"]\n",
    )
    .unwrap();
    let (config, http) = config_two_topics(dir.path(), &c, &kong_topic, "kong");
    let mut run = Run::start(&config, &registry, &http);

    let ts = 1_792_972_800_000i64;
    let kong = vec![
        kong_record("kong-shadow", "/crm/v3/objects/contacts?limit=10", ts),
        // No route for this path: counted, dead-lettered, processing goes on.
        kong_record("kong-shadow", "/internal/health", ts + 1),
    ];
    let canonical = vec![Record::keyed_by_integration(format!(
        r#"{{"ts":{ts},"integration_id":"canonical-shadow","resource":"deals","method":"GET","status":200}}"#
    ))];
    let mut ends = kafka::ends(&kafka::produce_unbatched(&b, &kong_topic, &kong));
    let canon_ends = kafka::ends(&kafka::produce_unbatched(&b, &c.topic, &canonical));
    let got = eventually(
        "both topics' unknown integrations alert",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            run.assert_running();
            let a: BTreeSet<(String, String)> = alerts(&b, &c.alerts_topic).into_iter().collect();
            let want = [
                ("unknown_integration".to_owned(), "kong-shadow".to_owned()),
                (
                    "unknown_integration".to_owned(),
                    "canonical-shadow".to_owned(),
                ),
            ];
            if want.iter().all(|w| a.contains(w)) {
                Ok(a)
            } else {
                Err(format!("{a:?}\n{}", run.log()))
            }
        },
    );
    assert_eq!(
        got.len(),
        2,
        "exactly the two unknown integrations: {got:?}"
    );
    eventually(
        "offsets committed",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            kafka::all_committed(&b, &c.group, &kong_topic, &ends)?;
            kafka::all_committed(&b, &c.group, &c.topic, &canon_ends)
        },
    );
    ends.clear();
    let dlq = kafka::read_to_end(&b, &c.dlq_topic);
    assert_eq!(dlq.len(), 1, "the unmapped Kong record is dead-lettered");
    assert_eq!(
        kafka::header(&dlq[0], "tripline-reject-reason"),
        Some(&b"unmapped_resource"[..])
    );
    let (_, metrics) = run.get("/metrics").unwrap();
    assert_eq!(
        tripline::metric(
            &metrics,
            r#"tripline_events_rejected_total{reason="unmapped_resource"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        tripline::metric(&metrics, "tripline_events_processed_total"),
        Some(2.0)
    );
    run.stop(Duration::from_secs(15));
}

const ELF_HEADER: &str = "\"API_CLIENT_CATEGORY\",\"API_FAMILY\",\"API_RESOURCE\",\"CLIENT_IP\",\"CONNECTED_APP_ID\",\"CONNECTED_APP_NAME\",\"ENTITY_NAME\",\"EVENT_TYPE\",\"HTTP_METHOD\",\"ORGANIZATION_ID\",\"STATUS_CODE\",\"TIMESTAMP\",\"TIMESTAMP_DERIVED\",\"USER_ID\"\n";
const APP_15: &str = "0H4RM00000000Kr";
const APP_18: &str = "0H4RM00000000Kr0AI";

/// One ApiTotalUsage ELF file (the free event type) per day: one call every
/// two minutes, all day.
fn write_month_of_elf(dir: &Path, start_ms: i64, days: i64) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for d in 0..days {
        let mut text = String::from(ELF_HEADER);
        for m in (0..1440).step_by(2) {
            let ts = start_ms + (d * 1440 + m) * 60_000;
            let iso = tripline_engine::time::format_rfc3339(ts);
            let compact: String = iso[..19]
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
                + ".000";
            text.push_str(&format!(
                "\"EXTERNAL_APPLICATION\",\"REST\",\"/v61.0/sobjects/Contact\",\"198.51.100.9\",\"{APP_15}\",\"Sync\",\"Contact\",\"ApiTotalUsage\",\"GET\",\"00D5j000000001V\",\"200\",\"{compact}\",\"{iso}\",\"0055j000000utlP\"\n"
            ));
        }
        let p = dir.join(format!("ApiTotalUsage-{d:02}.csv"));
        std::fs::write(&p, text).unwrap();
        files.push(p);
    }
    files
}

#[test]
fn a_month_of_salesforce_log_files_seeds_run_silently_then_it_detects_live() {
    let tansu = Tansu::start();
    let b = tansu.bootstrap.clone();
    let dir = tempfile::tempdir().unwrap();
    let c = conf(&b);
    c.create_topics(2);
    let registry = dir.path().join("registry.toml");
    std::fs::write(
        &registry,
        format!("[[integrations]]\nid = \"{APP_18}\"\ngranted = [\"contacts:read\"]\n"),
    )
    .unwrap();
    let start = 1_790_294_400_000i64; // Monday 2026-09-28
    let files = write_month_of_elf(dir.path(), start, 30);
    let (config, http) = tripline::write_config(dir.path(), &c);
    let log = dir.path().join("run.log");
    let mut child = tripline::command()
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--registry")
        .arg(&registry)
        .args(["--format", "salesforce-elf", "--seed-file"])
        .args(&files)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually(
        "the sidecar is up after seeding",
        Duration::from_secs(120),
        Duration::from_millis(300),
        || {
            if let Ok(Some(s)) = child.try_wait() {
                return Err(format!("exited {s}: {}", log_text()));
            }
            tripline::http_get(&http, "/metrics").map(|_| ())
        },
    );
    let seeded = log_text();
    assert!(
        seeded.contains("Seeded from files") && seeded.contains("events=21600"),
        "{seeded}"
    );
    assert!(seeded.contains("rejected=0"), "{seeded}");

    // Live, on Kafka (canonical), the day after the history: a burst at an
    // hour the seeded baseline knows; no learning period is needed.
    let at = start + 30 * 86_400_000 + 3 * 3_600_000;
    let live: Vec<Record> = (0..400i64)
        .map(|i| {
            Record::keyed_by_integration(format!(
                r#"{{"ts":{},"integration_id":"{APP_18}","resource":"contacts","method":"GET","status":200,"source_ip":"198.51.100.9"}}"#,
                at + i * 100
            ))
        })
        .collect();
    kafka::produce_unbatched(&b, &c.topic, &live);
    let kinds = eventually(
        "a live call_spike",
        Duration::from_secs(60),
        Duration::from_millis(300),
        || {
            let a = alerts(&b, &c.alerts_topic);
            if a.iter().any(|(k, _)| k == "call_spike") {
                Ok(a)
            } else {
                Err(format!("{a:?}\n{}", log_text()))
            }
        },
    );
    assert!(
        kinds.iter().all(|(_, id)| id == APP_18),
        "only the seeded integration, and nothing from the (suppressed) history: {kinds:?}"
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
