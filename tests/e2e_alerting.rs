//! End to end: `tripline demo` (the real service on an embedded Kafka cluster
//! with simulated traffic) delivering to a real Alertmanager, scraped by a
//! real Prometheus, checked with promtool and the dashboard's own queries,
//! and surviving a receiver outage. Binaries: /usr/bin/prometheus, promtool,
//! prometheus-alertmanager (Debian packages `prometheus`,
//! `prometheus-alertmanager`); a missing one fails the test, never skips it.
//!
//! Run: `cargo test --test tests e2e_alerting`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::alertmanager::Alertmanager;
use crate::support::http::{
    eventually, free_port, get, require_binary, verify_standard_webhook, Answer, KillOnDrop,
    Receiver, Request,
};
use crate::support::prometheus::{Prometheus, PROMTOOL};

/// Small enough for a test, big enough that every detector kind can fire:
/// 8 history days at full speed, then 4 live days (~30k events) at 3000/s.
const DEMO_ARGS: [&str; 6] = ["--days", "12", "--integrations", "6", "--rate", "3000"];

/// One alert line `tripline demo` printed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Printed {
    kind: String,
    integration: String,
    severity: String,
    /// `YYYY-MM-DD HH:MM` of detected_at.
    minute: String,
}

/// `tripline demo` as a child process.
struct Demo {
    process: KillOnDrop,
    stdout: PathBuf,
    http: String,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// Starts `tripline demo` with `config` (TOML) and `env`, stopping by
    /// itself `exit_after` seconds after the last event was produced. Waits
    /// until its admin server answers.
    async fn start(config: &str, env: &[(&str, &str)], exit_after: u64) -> Demo {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("tripline.toml");
        std::fs::write(&config_path, config).unwrap();
        for attempt in 0..5 {
            let http = format!("127.0.0.1:{}", free_port());
            let stdout = dir.path().join(format!("demo-{attempt}.out"));
            let log = dir.path().join(format!("demo-{attempt}.log"));
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_tripline"));
            for (k, _) in std::env::vars() {
                if k.starts_with("TRIPLINE__") {
                    cmd.env_remove(k);
                }
            }
            cmd.env("TRIPLINE_LOG", "warn")
                .env("TRIPLINE__HTTP__LISTEN_ADDR", &http)
                .envs(env.iter().copied())
                .arg("demo")
                .arg("--config")
                .arg(&config_path)
                .args(DEMO_ARGS)
                .arg("--exit-after")
                .arg(exit_after.to_string())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout).unwrap())
                .stderr(std::fs::File::create(&log).unwrap());
            let child = cmd.spawn().expect("spawn tripline demo");
            let mut process = KillOnDrop {
                child,
                name: "tripline demo",
                log,
            };
            let url = format!("http://{http}/healthz");
            let up = eventually("tripline demo /healthz", Duration::from_secs(30), || {
                let exited = matches!(process.child.try_wait(), Ok(Some(_)));
                let url = url.clone();
                async move {
                    if exited {
                        return Ok(false);
                    }
                    match get(&url).await {
                        Ok((200, _)) => Ok(true),
                        other => Err(format!("{other:?}")),
                    }
                }
            })
            .await;
            if up {
                return Demo {
                    process,
                    stdout,
                    http,
                    _dir: dir,
                };
            }
            let log = process.log_tail(4000);
            assert!(
                log.contains("serving HTTP") || log.contains("in use"),
                "tripline demo exited at startup:\n{log}"
            );
            eprintln!("tripline demo could not bind {http}, retrying");
        }
        panic!("tripline demo did not start after 5 attempts");
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Every alert line printed so far.
    fn printed(&self) -> Vec<Printed> {
        self.stdout()
            .lines()
            .filter(|l| {
                l.starts_with("CRITICAL ") || l.starts_with("WARNING  ") || l.starts_with("INFO ")
            })
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Printed {
                    severity: f[0].to_ascii_lowercase(),
                    kind: f[1].into(),
                    integration: f[2].into(),
                    minute: format!("{} {}", f[3], f[4]),
                }
            })
            .collect()
    }

    fn produced_everything(&self) -> bool {
        self.stdout().contains("all simulated traffic produced")
    }

    /// The final line's alert count, once the demo stopped.
    fn summary_alerts(&self) -> Option<u64> {
        let out = self.stdout();
        let line = out
            .lines()
            .find(|l| l.starts_with("tripline demo stopped:"))?;
        let before = line.split(" alerts (").next()?;
        before.rsplit(' ').next()?.parse().ok()
    }

    async fn metrics(&self) -> Result<String, String> {
        match get(&format!("http://{}/metrics", self.http)).await? {
            (200, body) => Ok(body),
            (s, body) => Err(format!("/metrics answered {s}: {body}")),
        }
    }

    fn sigterm(&self) {
        let pid = self.process.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "could not SIGTERM tripline demo (pid {pid})");
    }

    /// Waits for the process to exit by itself; asserts it exited 0.
    async fn wait_exit(&mut self, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if let Some(status) = self.process.child.try_wait().expect("try_wait") {
                assert!(
                    status.success(),
                    "tripline demo exited with {status}:\n{}\n{}",
                    self.stdout(),
                    self.process.log_tail(4000)
                );
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "tripline demo still running after {timeout:?}:\n{}",
                self.process.log_tail(4000)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tail(&self) -> String {
        self.process.log_tail(4000)
    }
}

/// Sum of every series of `name` in a text exposition (optionally only those
/// whose label set contains `with`).
fn metric_sum(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn printed_key(a: &Value) -> Printed {
    let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
    let detected = s("detected_at");
    Printed {
        kind: s("kind"),
        integration: s("integration_id"),
        severity: s("severity"),
        minute: detected.get(..16).unwrap_or(&detected).replace('T', " "),
    }
}

/// `Tripline` + the kind in CamelCase (`call_spike` → `TriplineCallSpike`),
/// the label contract of docs/outputs.md.
fn camel_alertname(kind: &str) -> String {
    let mut out = String::from("Tripline");
    for word in kind.split('_') {
        let mut c = word.chars();
        if let Some(first) = c.next() {
            out.push(first.to_ascii_uppercase());
            out.push_str(c.as_str());
        }
    }
    out
}

/// One alert inside an Alertmanager webhook notification.
#[derive(Clone, Debug)]
struct AmNotification {
    status: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn am_notifications(rx: &Receiver) -> Vec<AmNotification> {
    let mut out = Vec::new();
    for r in rx.requests() {
        let v = r.json();
        for a in v["alerts"].as_array().cloned().unwrap_or_default() {
            let map = |x: &Value| -> BTreeMap<String, String> {
                x.as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            out.push(AmNotification {
                status: a["status"].as_str().unwrap_or_default().to_owned(),
                labels: map(&a["labels"]),
                annotations: map(&a["annotations"]),
            });
        }
    }
    out
}

/// Webhook bodies by `X-Tripline-Event` (`alert` / `resolved`), accepted ones only.
fn webhook_bodies(rx: &Receiver, event: &str) -> Vec<Value> {
    rx.accepted()
        .iter()
        .filter(|r| r.header("x-tripline-event") == Some(event))
        .map(Request::json)
        .collect()
}

fn count_by<K: Ord>(items: impl IntoIterator<Item = K>) -> BTreeMap<K, usize> {
    let mut m = BTreeMap::new();
    for k in items {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

// ------------------------------------------------------------------ tests

/// Every alert tripline fires reaches Alertmanager's receiver exactly once as
/// firing, with the documented labels; re-pushes (every 2 s here) never cause
/// a second notification; episodes tripline ends arrive as resolved, and the
/// alerts still open when tripline stops resolve by themselves after
/// `alert_ttl_seconds` (docs/outputs.md, "Re-push").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_alertmanager_once_with_labels_and_resolve() {
    let t0 = Instant::now();
    let am_rx = Receiver::start(Answer::Always(200)).await;
    // The webhook output is the oracle: it carries alert ids and resolutions.
    let oracle = Receiver::start(Answer::Always(200)).await;
    let am = Alertmanager::start(&am_rx.url("/alertmanager")).await;
    let config = format!(
        r#"
[[outputs]]
name = "am"
type = "alertmanager"
url = "{}"
labels = {{ env = "e2e" }}
repush_interval_seconds = 2
alert_ttl_seconds = 10

[[outputs]]
name = "oracle"
type = "webhook"
url_env = "E2E_ORACLE_URL"
"#,
        am.url()
    );
    let mut demo = Demo::start(&config, &[("E2E_ORACLE_URL", &oracle.url("/hook"))], 4).await;
    let ran = demo.wait_exit(Duration::from_secs(75)).await;
    let stopped_at = Instant::now();

    let printed = demo.printed();
    assert!(
        printed.len() >= 5,
        "the demo fires alerts of several kinds: {}",
        demo.stdout()
    );
    assert_eq!(
        demo.summary_alerts(),
        Some(printed.len() as u64),
        "summary counts what was printed:\n{}",
        demo.stdout()
    );
    let alerts = webhook_bodies(&oracle, "alert");
    let ids: BTreeSet<String> = alerts
        .iter()
        .map(|a| a["id"].as_str().expect("alert id").to_owned())
        .collect();
    assert_eq!(ids.len(), alerts.len(), "webhook: every alert id once");
    assert_eq!(
        count_by(alerts.iter().map(printed_key)),
        count_by(printed.iter().cloned()),
        "webhook received exactly the printed alerts"
    );
    let by_id: BTreeMap<String, &Value> = alerts
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a))
        .collect();
    let resolved_by_tripline: BTreeSet<String> = webhook_bodies(&oracle, "resolved")
        .iter()
        .map(|r| r["id"].as_str().expect("resolution id").to_owned())
        .collect();
    assert!(
        resolved_by_tripline.is_subset(&ids),
        "resolutions only for fired alerts"
    );

    // Every alert fires once and eventually resolves: by tripline's
    // resolution, or by endsAt (TTL 10 s) after tripline stopped re-pushing.
    let notes = eventually(
        "Alertmanager notifies firing and resolved for every alert",
        Duration::from_secs(40),
        || {
            let notes = am_notifications(&am_rx);
            let ids = ids.clone();
            async move {
                let firing: BTreeSet<_> = notes
                    .iter()
                    .filter(|n| n.status == "firing")
                    .map(|n| n.labels.get("tripline_id").cloned().unwrap_or_default())
                    .collect();
                let resolved: BTreeSet<_> = notes
                    .iter()
                    .filter(|n| n.status == "resolved")
                    .map(|n| n.labels.get("tripline_id").cloned().unwrap_or_default())
                    .collect();
                if firing == ids && resolved == ids {
                    Ok(notes)
                } else {
                    Err(format!(
                        "{} alerts; firing {} (missing {:?}, extra {:?}); resolved {} (missing {:?})",
                        ids.len(),
                        firing.len(),
                        ids.difference(&firing).collect::<Vec<_>>(),
                        firing.difference(&ids).collect::<Vec<_>>(),
                        resolved.len(),
                        ids.difference(&resolved).collect::<Vec<_>>()
                    ))
                }
            }
        },
    )
    .await;
    let all_resolved_after = stopped_at.elapsed();

    // Exactly once each way, in order, with the documented labels.
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in &notes {
        let id = n.labels["tripline_id"].clone();
        let a = by_id[&id];
        let kind = a["kind"].as_str().unwrap();
        let alertname = camel_alertname(kind);
        let want: BTreeMap<String, String> = [
            ("alertname", alertname.as_str()),
            ("kind", kind),
            ("severity", a["severity"].as_str().unwrap()),
            ("integration_id", a["integration_id"].as_str().unwrap()),
            ("tripline_id", id.as_str()),
            ("env", "e2e"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(n.labels, want, "labels of a {} notification", n.status);
        assert!(
            ["critical", "warning", "info"].contains(&want["severity"].as_str()),
            "severity {}",
            want["severity"]
        );
        assert_eq!(
            n.annotations.get("runbook_url").map(String::as_str),
            Some(
                format!(
                    "https://github.com/example/tripline/blob/main/docs/operations.md#kind-{kind}"
                )
                .as_str()
            ),
            "runbook_url of {id}"
        );
        for key in ["summary", "description", "detected_at"] {
            assert!(
                n.annotations.get(key).is_some_and(|v| !v.is_empty()),
                "annotation {key} on {id}: {:?}",
                n.annotations
            );
        }
        seen.entry(id).or_default().push(n.status.clone());
    }
    for (id, statuses) in &seen {
        assert_eq!(
            statuses,
            &["firing".to_owned(), "resolved".to_owned()],
            "alert {id}: one firing then one resolved notification"
        );
    }
    // Alertmanager holds no alert that is still active.
    let active: Vec<Value> = am
        .alerts()
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a["status"]["state"] == "active")
        .collect();
    assert!(
        active.is_empty(),
        "still active in Alertmanager: {active:?}"
    );
    eprintln!(
        "alertmanager e2e: {} alerts ({} resolved by tripline, {} by TTL); demo ran {:.1}s, \
         all resolved {:.1}s after it stopped; total {:.1}s",
        ids.len(),
        resolved_by_tripline.len(),
        ids.len() - resolved_by_tripline.len(),
        ran.as_secs_f64(),
        all_resolved_after.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    drop(am);
}

/// A real Prometheus scrapes tripline's /metrics while the demo runs; the
/// processed and alert counters are there; a live scrape is promtool-clean
/// (docs/specs/metrics.md); the alert counter matches what was printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_tripline_and_promtool_is_clean() {
    let t0 = Instant::now();
    require_binary(PROMTOOL, "prometheus");
    let mut demo = Demo::start("", &[], 60).await;
    let prom = Prometheus::start(&[demo.http.clone()]).await;

    let processed = eventually(
        "Prometheus: tripline_events_processed_total > 0",
        Duration::from_secs(45),
        || async {
            match prom
                .scalar(r#"sum(tripline_events_processed_total{job="tripline"})"#)
                .await
            {
                Ok(v) if v > 0.0 => Ok(v),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let series = eventually(
        "Prometheus: tripline_alerts_total has series, and some alert fired",
        Duration::from_secs(45),
        || async {
            let r = prom
                .query(r#"tripline_alerts_total{job="tripline"}"#)
                .await?;
            let fired: f64 = r
                .iter()
                .filter_map(|s| s["value"][1].as_str()?.parse::<f64>().ok())
                .sum();
            if !r.is_empty() && fired > 0.0 {
                Ok(r)
            } else {
                Err(format!("{} series, {fired} alerts", r.len()))
            }
        },
    )
    .await;
    for s in &series {
        let m = &s["metric"];
        assert!(
            m["kind"].is_string() && m["severity"].is_string(),
            "alerts series labelled kind and severity: {m}"
        );
    }

    // promtool on a live scrape: no findings at all.
    let scrape = demo.metrics().await.unwrap();
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(scrape.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && findings.trim().is_empty(),
        "promtool check metrics on a live scrape ({}): {findings}",
        out.status
    );

    // The live scrape is within the documented budget, exactly:
    // F + P + N·O + T (+ error series beyond the initial ones).
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/specs/metrics.md"
    ))
    .unwrap();
    let start = spec
        .find("exactly **")
        .expect("budget formula in metrics.md")
        + 10;
    let formula: String = spec[start..].chars().take_while(|c| *c != '*').collect();
    let nums: Vec<usize> = formula
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let samples: Vec<&str> = scrape
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let count = |prefix: &str| samples.iter().filter(|l| l.starts_with(prefix)).count();
    let partitions = count("tripline_consumer_lag_messages{");
    let outputs = count("tripline_output_queue_depth{");
    let scored = count("tripline_integration_anomaly_score{");
    let extra_errors = count("tripline_errors_total{").saturating_sub(7);
    let budget = nums[0] + partitions + nums[1] * outputs + scored + extra_errors;
    assert_eq!(
        samples.len(),
        budget,
        "live scrape vs docs/specs/metrics.md {formula:?} with P={partitions}, O={outputs}, \
         T={scored}, extra errors {extra_errors}"
    );

    // Once everything is consumed, the counter equals the printed alerts.
    let alerts = eventually(
        "tripline_alerts_total equals the alerts printed",
        Duration::from_secs(45),
        || async {
            let text = demo.metrics().await?;
            let lag = metric_sum(&text, "tripline_consumer_lag_messages", "");
            let counted = metric_sum(&text, "tripline_alerts_total", "");
            let printed = demo.printed().len() as f64;
            if demo.produced_everything() && lag == 0.0 && counted == printed && printed > 0.0 {
                Ok(printed)
            } else {
                Err(format!("lag {lag}, counted {counted}, printed {printed}"))
            }
        },
    )
    .await;
    demo.sigterm();
    demo.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(demo.summary_alerts(), Some(alerts as u64));
    eprintln!(
        "prometheus e2e: {processed} events processed at first check, {} alerts_total series, \
         {alerts} alerts; promtool clean on {} bytes; {:.1}s",
        series.len(),
        scrape.len(),
        t0.elapsed().as_secs_f64()
    );
    let _ = prom.log_tail();
    let _ = demo.log_tail();
}

/// Every query of the Grafana dashboard returns data against a real
/// Prometheus scraping the real service. A webhook output pointed at a
/// receiver that answers 503 for a while makes the delivery failure and retry
/// panels show real series, not only the zeros.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data() {
    let t0 = Instant::now();
    let flaky = Receiver::start(Answer::FailFirst {
        status: 503,
        for_: Duration::from_secs(5),
    })
    .await;
    let config = r#"
[[outputs]]
name = "flaky-hook"
type = "webhook"
url_env = "E2E_FLAKY_URL"
[outputs.delivery]
initial_backoff_ms = 200
max_backoff_ms = 1000
"#;
    let mut demo = Demo::start(config, &[("E2E_FLAKY_URL", &flaky.url("/hook"))], 90).await;
    let prom = Prometheus::start(&[demo.http.clone()]).await;
    // Wait for the failures to be scraped, then run the dashboard check.
    eventually(
        "Prometheus saw delivery failures and retries",
        Duration::from_secs(60),
        || async {
            let f = prom
                .scalar(
                    r#"sum(tripline_output_deliveries_total{job="tripline",outcome="failure"})"#,
                )
                .await?;
            let r = prom
                .scalar(r#"sum(tripline_output_retries_total{job="tripline"})"#)
                .await?;
            if f > 0.0 && r > 0.0 {
                Ok(())
            } else {
                Err(format!("failures {f}, retries {r}"))
            }
        },
    )
    .await;
    demo.process.assert_running();
    // Every panel's query must return data (the internal-errors panel reads
    // 0 on a healthy instance via `or on() vector(0)`).
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/dashboard_queries.py");
    let prom_url = prom.url();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg(&prom_url)
            .args(["--rate-interval", "1m", "--retry-for", "30"]);
        cmd.output()
    })
    .await
    .unwrap()
    .expect("run python3 scripts/dashboard_queries.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    demo.process.assert_running();
    demo.sigterm();
    demo.wait_exit(Duration::from_secs(30)).await;
    assert!(
        out.status.success(),
        "dashboard_queries.py failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains("(allowed)"),
        "no panel may be empty:\n{stdout}"
    );
    eprintln!(
        "dashboard e2e: {}; {:.1}s",
        stdout.lines().last().unwrap_or_default(),
        t0.elapsed().as_secs_f64()
    );
}

/// A webhook receiver that answers 503 for its first 5 s loses nothing:
/// every alert tripline fired arrives, exactly once after dedup by id, every
/// request (retries included) carries valid Standard Webhooks signatures for
/// both keys of a rotation (checked by the test's own implementation), a
/// resolution never shares a `webhook-id` with its alert, and the retries
/// are counted in tripline_output_retries_total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_outage_loses_no_alert() {
    let t0 = Instant::now();
    // Old and new key during a rotation (24 and 32 bytes).
    const SECRETS: [&str; 2] = [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ];
    let rx = Receiver::start(Answer::FailFirst {
        status: 503,
        for_: Duration::from_secs(5),
    })
    .await;
    let config = r#"
[[outputs]]
name = "secops-hook"
type = "webhook"
url_env = "E2E_HOOK_URL"
signing_secret_env = "E2E_HOOK_SECRETS"
[outputs.delivery]
initial_backoff_ms = 200
max_backoff_ms = 1000
"#;
    let mut demo = Demo::start(
        config,
        &[
            ("E2E_HOOK_URL", &rx.url("/hook")),
            ("E2E_HOOK_SECRETS", &SECRETS.join(" ")),
        ],
        60,
    )
    .await;

    // Wait until everything is consumed and the receiver has every printed
    // alert; read the retry counter while the process still serves /metrics.
    let (retries, failures) = eventually(
        "every printed alert delivered after the outage",
        Duration::from_secs(75),
        || async {
            let text = demo.metrics().await?;
            let lag = metric_sum(&text, "tripline_consumer_lag_messages", "");
            let depth = metric_sum(&text, "tripline_output_queue_depth", "secops-hook");
            let printed = demo.printed().len();
            let got: BTreeSet<String> = webhook_bodies(&rx, "alert")
                .iter()
                .filter_map(|a| a["id"].as_str().map(str::to_owned))
                .collect();
            if demo.produced_everything() && lag == 0.0 && depth == 0.0 && got.len() == printed {
                Ok((
                    metric_sum(&text, "tripline_output_retries_total", "secops-hook"),
                    metric_sum(
                        &text,
                        "tripline_output_deliveries_total",
                        "outcome=\"failure\"",
                    ),
                ))
            } else {
                Err(format!(
                    "lag {lag}, queue {depth}, printed {printed}, received {} distinct",
                    got.len()
                ))
            }
        },
    )
    .await;
    demo.sigterm();
    demo.wait_exit(Duration::from_secs(30)).await;

    let requests = rx.requests();
    let refused = requests.iter().filter(|r| r.status == 503).count();
    assert!(refused > 0, "the outage refused some deliveries");
    let mut notification_ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &requests {
        let nid = verify_standard_webhook(&SECRETS, r).unwrap_or_else(|e| {
            panic!(
                "bad signature on a {} request: {e}\n{}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
        });
        let alert_id = r.json()["id"].as_str().unwrap_or_default().to_owned();
        assert_ne!(nid, alert_id, "the notification id is not the alert id");
        notification_ids.entry(nid).or_default().insert(format!(
            "{} {alert_id}",
            r.header("x-tripline-event").unwrap_or_default()
        ));
    }
    for (nid, what) in &notification_ids {
        assert_eq!(what.len(), 1, "webhook-id {nid} used for {what:?}");
    }
    let printed = demo.printed();
    let alerts = webhook_bodies(&rx, "alert");
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for a in &alerts {
        let id = a["id"].as_str().expect("alert id").to_owned();
        if let Some(prev) = by_id.insert(id.clone(), a.clone()) {
            assert_eq!(&prev, a, "a redelivery of {id} carries the same alert");
        }
    }
    assert_eq!(
        count_by(by_id.values().map(printed_key)),
        count_by(printed.iter().cloned()),
        "after dedup by id, exactly the printed alerts"
    );
    assert_eq!(
        demo.summary_alerts(),
        Some(by_id.len() as u64),
        "every alert tripline fired was received"
    );
    for r in webhook_bodies(&rx, "resolved") {
        let id = r["id"].as_str().unwrap_or_default();
        assert!(
            by_id.contains_key(id),
            "resolution of an unknown alert {id}"
        );
        assert_eq!(r["status"], "resolved");
    }
    assert!(
        retries >= 1.0 && failures >= refused as f64,
        "retries counted: tripline_output_retries_total {retries}, failures {failures}, \
         receiver refused {refused}"
    );
    eprintln!(
        "outage e2e: {} alerts ({} accepted requests incl. {} duplicates, {} refused with 503), \
         retries {retries}, failures {failures}; {:.1}s",
        by_id.len(),
        rx.accepted().len(),
        alerts.len() - by_id.len(),
        refused,
        t0.elapsed().as_secs_f64()
    );
}
