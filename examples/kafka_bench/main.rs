//! Kafka benchmark: `tripline run`'s pipeline vs a bare rdkafka consumer on
//! the same topic, and produce-to-alert latency of injected call spikes.
//!
//! ```sh
//! scripts/bench-kafka.sh                       # Tansu, ~2.0M events
//! cargo run --release --example kafka_bench -- --broker mock   # keyed, 12 partitions, produced while consumed
//! cargo run --release --example kafka_bench -- --broker mock --partitions 256 --keys none
//! ```
//!
//! `--produce during` (default when keyed) produces while consuming, at most
//! `--window` events (20,000) ahead of the consumer: the mock cluster keeps
//! only 5 MB per partition and trims older data, read or not, so a keyed 2M
//! backlog cannot be produced first. The bare consumer then reads its own
//! copy of the input (`bench-input-bare`) and fails on any offset gap;
//! under-load spikes are injected from half-way, at the event time being
//! produced. `--produce before` produces the whole backlog first (spike
//! latency while a 2M backlog drains).
//!
//! 1. Starts a broker (Tansu in memory, or librdkafka's mock cluster), creates
//!    the input (12 partitions), alerts and DLQ topics.
//! 2. Simulates traffic (seed 1, 36 days x 30 integrations = ~2.0M events) and
//!    produces all of it, keyed by `integration_id`.
//! 3. Floor: a bare `BaseConsumer` (own group) reads the topic from the start
//!    and only counts messages.
//! 4. The real pipeline (`tripline_kafka::run`, the code behind `tripline
//!    run`: per-partition engines, DLQ, alerts topic, offset store) consumes
//!    the same topic in a fresh group. Rates are first message to N-th.
//! 5. While it works through the backlog, a call spike (a burst for one busy
//!    integration, event time after all history) is injected every second;
//!    after it caught up, more spikes are injected one at a time. Latency =
//!    wall clock from producing the burst's first event to the `call_spike`
//!    alert arriving on the alerts topic (read by a separate consumer).
//!
//! Prints one summary; BENCHMARKS.md records it.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use tripline_engine::{Alert, AlertKind, EngineConfig};
use tripline_kafka::{KafkaSettings, NoopSink, Observer};

const INPUT: &str = "bench-input";
/// The bare consumer's copy of the input (produced while it reads).
const INPUT_BARE: &str = "bench-input-bare";
const ALERTS: &str = "bench-alerts";
const DLQ: &str = "bench-dlq";
/// Event-time gap between injected spikes: each gets its own buckets.
const SPIKE_GAP_MS: i64 = 10 * 60_000;
/// Producing while consuming gives up when the consumer took in nothing
/// for this long.
const FLOW_STALL: Duration = Duration::from_secs(60);

mod broker;
mod consumers;
mod cpu;
use broker::*;
use consumers::*;
use cpu::*;

struct Args {
    broker: String,
    seed: u64,
    days: u32,
    integrations: u32,
    spikes_under_load: usize,
    spikes_idle: usize,
    partitions: i32,
    /// Produce history without keys (random partitions): lets the mock
    /// cluster, which keeps 5 MB per partition, hold a 2M backlog over many
    /// partitions. Engines then see each integration split across partitions
    /// (detection differs; the per-event work does not).
    keyed: bool,
    /// Produce while consuming (flow-controlled: at most `window` events
    /// ahead of the consumer, so the mock cluster, which keeps 5 MB per
    /// partition, never trims unread data) instead of producing the whole
    /// backlog first. Default: while consuming when keyed.
    during: Option<bool>,
    window: u64,
    /// `--property key=value`: librdkafka properties for the pipeline
    /// (`kafka.properties`), e.g. to compare `fetch.wait.max.ms` values.
    properties: Vec<(String, String)>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        broker: "tansu".into(),
        seed: 1,
        days: 36,
        integrations: 30,
        spikes_under_load: 8,
        spikes_idle: 8,
        partitions: 12,
        keyed: true,
        during: None,
        window: 20_000,
        properties: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--broker" => a.broker = v,
            "--seed" => a.seed = v.parse()?,
            "--days" => a.days = v.parse()?,
            "--integrations" => a.integrations = v.parse()?,
            "--spikes-under-load" => a.spikes_under_load = v.parse()?,
            "--spikes-idle" => a.spikes_idle = v.parse()?,
            "--partitions" => a.partitions = v.parse()?,
            "--keys" => a.keyed = v != "none",
            "--produce" => {
                a.during = Some(match v.as_str() {
                    "during" => true,
                    "before" => false,
                    _ => bail!("--produce during|before"),
                })
            }
            "--window" => a.window = v.parse()?,
            "--property" => {
                let (k, v) = v.split_once('=').context("--property key=value")?;
                a.properties.push((k.to_owned(), v.to_owned()));
            }
            _ => bail!("unknown argument {k}"),
        }
    }
    Ok(a)
}

/// A burst for `template`'s integration: `n` copies at event time
/// `t0 .. t0 + 40 s`, inside one minute bucket.
fn burst(template: &[u8], t0: i64, n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let v: serde_json::Value = serde_json::from_slice(template)?;
    (0..n)
        .map(|j| {
            let mut e = v.clone();
            e["ts"] = serde_json::json!(t0 + (j as i64 * 40_000) / n as i64);
            Ok(serde_json::to_vec(&e)?)
        })
        .collect()
}

struct Spike {
    integration: String,
    t0: i64,
    lines: Vec<Vec<u8>>,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Produces `s` and waits (up to `timeout`) for its call_spike alert.
async fn inject(
    p: &FutureProducer,
    s: &Spike,
    seen: &Mutex<Vec<(String, i64, Instant)>>,
) -> anyhow::Result<Instant> {
    let started = Instant::now();
    for line in &s.lines {
        let rec = FutureRecord::<[u8], [u8]>::to(INPUT)
            .payload(&line[..])
            .key(s.integration.as_bytes());
        p.send_result(rec).map_err(|(e, _)| e)?;
    }
    let _ = seen;
    Ok(started)
}

fn latency_of(
    s: &Spike,
    started: Instant,
    seen: &Mutex<Vec<(String, i64, Instant)>>,
) -> Option<f64> {
    seen.lock()
        .unwrap()
        .iter()
        .find(|(id, at, _)| *id == s.integration && (s.t0..s.t0 + 120_000).contains(at))
        .map(|(_, _, when)| when.duration_since(started).as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let (broker, bs) = start_broker(&a.broker, a.partitions)?;
    if a.broker == "tansu" {
        create_topics(&bs, a.partitions).await?;
    }

    let cfg = tripline_sim::SimConfig {
        seed: a.seed,
        days: a.days,
        integrations: a.integrations,
        ..Default::default()
    };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let (_truth, registry_toml) = tripline_sim::generate(&cfg, |l| lines.push(l.to_vec()))?;
    let registry = tripline_ingest::parse_registry(&registry_toml, "simulated registry")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let n = lines.len() as u64;

    // Busiest integrations (they have baselines) and their last event.
    let mut per: HashMap<String, (u64, Vec<u8>)> = HashMap::new();
    let mut last_ts = 0i64;
    for l in &lines {
        if let Ok(r) = tripline_ingest::parse_event(l) {
            last_ts = last_ts.max(r.ts_ms());
            if let Some(k) = tripline_kafka::mock::integration_key(l) {
                let e = per
                    .entry(String::from_utf8_lossy(k).into_owned())
                    .or_insert((0, Vec::new()));
                e.0 += 1;
                e.1.clone_from(l);
            }
        }
    }
    let mut busiest: Vec<(String, u64, Vec<u8>)> =
        per.into_iter().map(|(k, (c, l))| (k, c, l)).collect();
    busiest.sort_by_key(|x| std::cmp::Reverse(x.1));
    let total_spikes = a.spikes_under_load + a.spikes_idle;
    let base = (last_ts / 60_000 + 2) * 60_000;
    let mut spikes = Vec::new();
    for i in 0..total_spikes {
        let (id, count, template) = &busiest[i % busiest.len()];
        // Ten times the integration's average calls per minute, at least 300.
        let per_min = *count as f64 / (f64::from(a.days) * 1440.0);
        let size = ((per_min * 10.0) as usize).max(300);
        let t0 = base + i as i64 * SPIKE_GAP_MS;
        spikes.push(Spike {
            integration: id.clone(),
            t0,
            lines: burst(template, t0, size)?,
        });
    }

    println!("kafka_bench: broker {} at {bs}", a.broker);
    println!(
        "  {n} events ({} days x {} integrations, seed {}), {} partitions, {}",
        a.days,
        a.integrations,
        a.seed,
        a.partitions,
        if a.keyed {
            "keyed by integration"
        } else {
            "unkeyed (random partitions)"
        }
    );
    let during = a.during.unwrap_or(a.keyed);
    let fetch_wait = a
        .properties
        .iter()
        .find(|(k, _)| k == "fetch.wait.max.ms")
        .map_or_else(
            || tripline_kafka::settings::DEFAULT_FETCH_WAIT_MAX_MS.to_string(),
            |(_, v)| v.clone(),
        );
    println!("  both consumers: fetch.wait.max.ms {fetch_wait}");
    let p = producer(&bs)?;
    let lines = Arc::new(lines);
    let mut cpu0 = thread_cpu();
    let bare_s = if during {
        println!(
            "  produced while consumed, at most {} events ahead of the consumer",
            a.window
        );
        let consumed = Arc::new(AtomicU64::new(0));
        let c2 = Arc::clone(&consumed);
        let flow = Flow {
            consumed: Box::new(move || c2.load(Ordering::Relaxed)),
            window: a.window,
            produced: AtomicU64::new(0),
        };
        let bs2 = bs.clone();
        let abort = Arc::new(AtomicBool::new(false));
        let abort2 = Arc::clone(&abort);
        let fw = fetch_wait.clone();
        let bare = tokio::task::spawn_blocking(move || {
            bare_consume(&bs2, INPUT_BARE, n, Some(consumed), &abort2, &fw)
        });
        // Either side failing ends both: the producer must not wait for a
        // consumer that has stopped, nor the consumer for input never sent.
        let produced = produce_all(&p, INPUT_BARE, &lines, a.keyed, a.partitions, Some(&flow));
        let consumed = async { bare.await.context("bare consumer task")? };
        let r = tokio::try_join!(produced, consumed);
        abort.store(true, Ordering::Relaxed);
        r?.1
    } else {
        let t = Instant::now();
        produce_all(&p, INPUT, &lines, a.keyed, a.partitions, None).await?;
        let produce_s = t.elapsed().as_secs_f64();
        // The bare phase's CPU is the reading only, not the producing.
        cpu0 = thread_cpu();
        println!(
            "  produced in {produce_s:.1} s ({:.0} events/s)",
            n as f64 / produce_s
        );
        if a.broker == "mock" {
            // The mock keeps 5 MB per partition and trims the rest, read or not.
            let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &bs).create()?;
            for part in 0..a.partitions {
                let (low, _) = c.fetch_watermarks(INPUT, part, Duration::from_secs(10))?;
                if low > 0 {
                    bail!("the mock cluster trimmed {low} unread events of partition {part}: use fewer --days or --produce during");
                }
            }
        }
        let bs2 = bs.clone();
        let never = AtomicBool::new(false);
        let fw = fetch_wait.clone();
        tokio::task::spawn_blocking(move || bare_consume(&bs2, INPUT, n, None, &never, &fw))
            .await??
    };
    let bare_cpu = cpu_between(&cpu0, &thread_cpu());
    let bare_rate = n as f64 / bare_s;
    println!("  bare consumer: {n} in {bare_s:.2} s = {bare_rate:.0} events/s");

    let stop = Arc::new(AtomicBool::new(false));
    let (seen, reader) = alert_reader(&bs, Arc::clone(&stop))?;
    let obs = Arc::new(Counting::default());
    obs.target.store(n, Ordering::Relaxed);
    let settings = KafkaSettings {
        brokers: bs.clone(),
        group_id: "bench-tripline".into(),
        topics: vec![INPUT.into()],
        dlq_topic: Some(DLQ.into()),
        alerts_topic: Some(ALERTS.into()),
        properties: a.properties.iter().cloned().collect(),
        ..KafkaSettings::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut config = tripline_kafka::RunConfig::new(settings, EngineConfig::default());
    config.registry = Some(registry);
    config.sink = Arc::new(NoopSink);
    config.observer = obs.clone() as Arc<dyn Observer>;
    let run = tokio::spawn(tripline_kafka::run(config, async move {
        let _ = stop_rx.await;
    }));

    // Spikes under load: one per second once the backlog is being read
    // (produced while consumed: from half-way, at the event time being
    // produced, for the busiest integrations).
    let cpu1 = thread_cpu();
    let producing = if during {
        let consumed = Arc::clone(&obs);
        let flow = Arc::new(Flow {
            consumed: Box::new(move || consumed.received.load(Ordering::Relaxed)),
            window: a.window,
            produced: AtomicU64::new(0),
        });
        let (p2, lines2, f2) = (p.clone(), Arc::clone(&lines), Arc::clone(&flow));
        let (keyed, parts) = (a.keyed, a.partitions);
        let h =
            tokio::spawn(
                async move { produce_all(&p2, INPUT, &lines2, keyed, parts, Some(&f2)).await },
            );
        Some((h, flow))
    } else {
        None
    };
    let mut under = Vec::new();
    let mut next = 0usize;
    while obs.received.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while obs.reached.lock().unwrap().is_none() {
        if next < a.spikes_under_load {
            match &producing {
                None => {
                    let started = inject(&p, &spikes[next], &seen).await?;
                    under.push((next, started));
                    next += 1;
                }
                Some((_, flow)) => {
                    let at = flow.produced.load(Ordering::Relaxed) as usize;
                    if at >= lines.len() / 2 && at < lines.len() {
                        if let Ok(r) = tripline_ingest::parse_event(&lines[at]) {
                            let (id, count, template) = &busiest[next % busiest.len()];
                            let per_min = *count as f64 / (f64::from(a.days) * 1440.0);
                            let size = ((per_min * 10.0) as usize).max(300);
                            let t0 = (r.ts_ms() / 60_000 + 1) * 60_000;
                            spikes.push(Spike {
                                integration: id.clone(),
                                t0,
                                lines: burst(template, t0, size)?,
                            });
                            let i = spikes.len() - 1;
                            let started = inject(&p, &spikes[i], &seen).await?;
                            under.push((i, started));
                            next += 1;
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if let Some((h, _)) = producing {
        h.await??;
    }
    let pipe_cpu = cpu_between(&cpu1, &thread_cpu());
    let first = obs.first.lock().unwrap().context("no first batch")?;
    let reached = obs.reached.lock().unwrap().context("never reached")?;
    let trip_s = reached.duration_since(first).as_secs_f64();
    let trip_rate = n as f64 / trip_s;
    println!("  tripline pipeline: {n} in {trip_s:.2} s = {trip_rate:.0} events/s");
    println!("  ratio tripline / bare: {:.2}", trip_rate / bare_rate);
    print_cpu("bare phase", n, bare_s, &bare_cpu);
    print_cpu("pipeline phase", n, trip_s, &pipe_cpu);

    // Wait for the under-load spikes, then inject idle ones one at a time.
    let wait_all = |list: &[(usize, Instant)]| {
        list.iter()
            .all(|(i, st)| latency_of(&spikes[*i], *st, &seen).is_some())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !wait_all(&under) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut idle = Vec::new();
    for (i, spike) in spikes
        .iter()
        .enumerate()
        .take(total_spikes)
        .skip(a.spikes_under_load)
    {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = inject(&p, spike, &seen).await?;
        idle.push((i, started));
        let deadline = Instant::now() + Duration::from_secs(30);
        while latency_of(spike, started, &seen).is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let report = |name: &str, list: &[(usize, Instant)]| {
        let mut ms: Vec<f64> = list
            .iter()
            .filter_map(|(i, st)| latency_of(&spikes[*i], *st, &seen))
            .collect();
        ms.sort_by(f64::total_cmp);
        println!(
            "  spike -> alert latency, {name}: {} of {} alerted; p50 {:.0} ms, p99 {:.0} ms (max {:.0} ms)",
            ms.len(),
            list.len(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.last().copied().unwrap_or(f64::NAN)
        );
    };
    report("injected while the backlog was consumed", &under);
    report("injected after catch-up (idle)", &idle);

    let _ = stop_tx.send(());
    let summary = run.await??;
    println!(
        "  tripline summary: received {}, processed {}, rejected {}, alerts {}; {} batches, {} of them on more than one worker",
        summary.received,
        summary.processed,
        summary.rejected,
        summary.alerts,
        summary.batches,
        summary.parallel_batches
    );
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    drop(broker);
    Ok(())
}
