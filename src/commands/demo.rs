//! `tripline demo`: the whole service on an embedded Kafka-protocol cluster.
//!
//! Starts librdkafka's in-process mock cluster, creates the topics, simulates
//! CRM traffic with labelled incidents, produces the first week ("history",
//! which the baselines learn from) as fast as it can and the rest at a visible
//! pace, runs the real `tripline run` pipeline against it and prints alerts as
//! they fire. Any Kafka client can produce into the printed bootstrap address.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tripline_engine::time::{format_rfc3339, DAY_MS};
use tripline_engine::Alert;
use tripline_kafka::mock;

use super::run::{serve, shutdown_signal, AlertTap};
use crate::Common;

pub const TOPIC: &str = "crm-access-logs";
pub const DLQ_TOPIC: &str = "crm-access-logs.dlq";
pub const ALERTS_TOPIC: &str = "tripline-alerts";
/// Events per second for the history part ("as fast as it can"). Flow
/// control, not this rate, keeps the mock cluster's bounded log from trimming
/// unread history (see `mock::produce_events_bounded`).
const HISTORY_RATE: u32 = 200_000;
const PARTITIONS: i32 = 12;

#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    #[command(flatten)]
    pub common: Common,
    /// Simulation seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulated days (the first 8 are history, produced at full speed).
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Simulated integrations.
    #[arg(long, default_value_t = 10)]
    pub integrations: u32,
    /// Events per second for the live part.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Stop by itself this many seconds after the last event was produced
    /// (default: run until Ctrl-C).
    #[arg(long)]
    pub exit_after: Option<u64>,
}

pub fn main(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let (mut settings, file_registry) = super::load(&args.common)?;
    let cluster = mock::start_mock_cluster(1).context("starting the embedded Kafka cluster")?;
    let bootstrap = cluster.bootstrap_servers();
    // librdkafka's mock cluster keeps at most 5 MB per partition and trims
    // older messages; keys skew the load, so partitions alone do not prevent
    // that: production below is flow-controlled.
    cluster
        .create_topic(TOPIC, PARTITIONS)
        .context("creating topics")?;
    cluster
        .create_topic(DLQ_TOPIC, 1)
        .context("creating topics")?;
    cluster
        .create_topic(ALERTS_TOPIC, 1)
        .context("creating topics")?;

    let cfg = tripline_sim::SimConfig {
        seed: args.seed,
        days: args.days,
        integrations: args.integrations,
        rate_scale: 0.2,
        ..Default::default()
    };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let (truth, registry_toml) =
        tripline_sim::generate(&cfg, |l| lines.push(l.to_vec())).context("simulating traffic")?;
    let registry = match file_registry {
        Some(r) => r,
        None => tripline_ingest::parse_registry(&registry_toml, "simulated registry")
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    };
    // History: everything before day 8, which the baselines learn from.
    let live_from = cfg.start_ms + 8 * DAY_MS;
    let split = lines
        .iter()
        .position(|l| tripline_ingest::parse_event(l).is_ok_and(|r| r.ts_ms() >= live_from))
        .unwrap_or(lines.len());
    let live = lines.split_off(split);
    let history = lines;

    settings.kafka.brokers = bootstrap.clone();
    settings.kafka.topics = vec![TOPIC.into()];
    settings.kafka.dlq_topic = Some(DLQ_TOPIC.into());
    settings.kafka.alerts_topic = Some(ALERTS_TOPIC.into());
    settings.kafka.group_id = "tripline-demo".into();

    println!("tripline demo");
    println!("  embedded Kafka bootstrap: {bootstrap}   (any Kafka client can produce to it)");
    println!(
        "  topics: {TOPIC} ({PARTITIONS} partitions, keyed by integration_id), {DLQ_TOPIC}, {ALERTS_TOPIC}"
    );
    println!(
        "  metrics: http://{}/metrics   health: /healthz /readyz",
        settings.http.listen_addr
    );
    println!(
        "  traffic: {} integrations over {} simulated days from {}; {} incidents injected",
        args.integrations,
        args.days,
        format_rfc3339(cfg.start_ms),
        truth.incidents.len()
    );
    println!(
        "  producing {} history events now, then {} live events at {}/s. Ctrl-C stops.\n",
        history.len(),
        live.len(),
        args.rate
    );
    let _ = std::io::stdout().flush();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let printed = Arc::new(AtomicU64::new(0));
    let tap: AlertTap = {
        let printed = Arc::clone(&printed);
        Arc::new(move |a: &Alert| {
            printed.fetch_add(1, Ordering::Relaxed);
            print_alert(a);
        })
    };
    let exit_after = args.exit_after;
    let rate = args.rate;
    let group = settings.kafka.group_id.clone();
    let summary = rt.block_on(async move {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let producer_bootstrap = bootstrap.clone();
        tokio::spawn(async move {
            // The embedded cluster keeps at most 5 MB per partition and trims
            // older messages, read or not; the group's first assignment takes
            // 3 s. So production waits whenever a partition gets too far
            // ahead of the group's committed offsets.
            let max_line = history.iter().chain(&live).map(Vec::len).max().unwrap_or(0);
            let max_unread = mock::safe_unread_for(max_line);
            if let Err(e) = mock::produce_events_bounded(&producer_bootstrap, TOPIC, history, HISTORY_RATE, &group, max_unread).await {
                tracing::error!(error = %e, "Producing history failed.");
            }
            if let Err(e) = mock::produce_events_bounded(&producer_bootstrap, TOPIC, live, rate, &group, max_unread).await {
                tracing::error!(error = %e, "Producing live traffic failed.");
            }
            println!("\n  all simulated traffic produced; still consuming. Ctrl-C stops.");
            let _ = done_tx.send(());
        });
        let stop = async move {
            match exit_after {
                Some(secs) => {
                    tokio::select! {
                        _ = shutdown_signal() => {}
                        _ = async { let _ = done_rx.await; tokio::time::sleep(Duration::from_secs(secs)).await } => {}
                    }
                }
                None => shutdown_signal().await,
            }
        };
        serve(settings, Some(registry), stop, Some(tap), None).await
    })?;
    drop(cluster);
    println!(
        "\ntripline demo stopped: {} events processed, {} rejected to the DLQ, {} alerts ({} printed).",
        summary.processed,
        summary.rejected,
        summary.alerts,
        printed.load(Ordering::Relaxed)
    );
    Ok(ExitCode::SUCCESS)
}

fn print_alert(a: &Alert) {
    let sev = match a.severity {
        tripline_engine::Severity::Critical => "CRITICAL",
        tripline_engine::Severity::Warning => "WARNING ",
        tripline_engine::Severity::Info => "INFO    ",
    };
    let when = format_rfc3339(a.detected_at);
    println!(
        "{sev} {:<19} {:<22} {}  {}",
        a.kind.as_str(),
        a.integration_id,
        when.get(..16).unwrap_or(&when).replace('T', " "),
        a.summary
    );
    let _ = std::io::stdout().flush();
}
