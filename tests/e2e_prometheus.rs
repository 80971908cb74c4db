//! End to end: `tripline demo` (the real service on an embedded Kafka cluster
//! with simulated traffic) scraped by a real Prometheus, checked with
//! promtool and the dashboard's own queries. Binaries: /usr/bin/prometheus,
//! promtool (Debian package `prometheus`); a missing one fails the test,
//! never skips it.
//!
//! Run: `cargo test --test tests e2e_prometheus`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::demo::*;
use crate::support::http::{eventually, require_binary, Answer, Receiver};
use crate::support::prometheus::{Prometheus, PROMTOOL};

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
