//! `tripline run`: the Kafka sidecar service.
//!
//! Wiring only: the Kafka loop (`tripline-kafka`) feeds per-partition engines;
//! what they produce goes to the alert dispatcher (`tripline-output`) through
//! [`DispatchSink`]; telemetry goes to Prometheus through [`MetricsObserver`];
//! the admin server (`/metrics`, `/healthz`, `/readyz`) runs on its own thread;
//! the audit API shares it or, with `http.api_listen_addr`, has its own.
//!
//! Shutdown order on SIGTERM/SIGINT: stop fetching, drain in-flight batches,
//! hand their alerts to the outputs, commit offsets (all inside the Kafka
//! loop), then flush the outputs within what is left of the deadline, then stop
//! the admin and API servers.

use std::collections::HashMap;
use std::future::Future;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tripline_engine::{Alert, EngineStats, Outputs, Registry};
use tripline_ingest::RejectReason;
use tripline_kafka::{AlertSink, DeadLetterOutcome, Observer, RunSummary};
use tripline_output::{AdminState, Dispatcher, Metrics, ProcessEnv, Readiness};

use crate::settings::Settings;
use crate::Common;

/// Most integrations remembered for the anomaly-score gauge (only the top-K of
/// them are exported; this bounds the memory of choosing them).
const MAX_SCORED_INTEGRATIONS: usize = 10_000;
/// Recent alerts kept for `GET /api/v1/alerts`.
const ALERT_LOG_CAPACITY: usize = 1000;

pub fn main(
    common: &Common,
    seed_from: Option<String>,
    seed_files: &[std::path::PathBuf],
    fmt: &crate::FormatArgs,
) -> anyhow::Result<ExitCode> {
    let (mut settings, registry) = super::load(common)?;
    let seed = if seed_files.is_empty() {
        None
    } else {
        let format = super::load_format(fmt)?;
        Some(seed_from_files(
            &settings,
            registry.as_ref(),
            &format,
            seed_files,
        )?)
    };
    if let Some(t) = seed_from {
        if tripline_engine::time::parse_rfc3339(&t).is_none() {
            return Err(
                super::ConfigProblem(format!("--seed-from {t:?} is not an RFC 3339 time")).into(),
            );
        }
        settings.kafka.seed_from = Some(t);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tripline")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let summary = serve(settings, registry, shutdown_signal(), None, seed).await?;
        tracing::info!(?summary, "Stopped.");
        Ok(ExitCode::SUCCESS)
    })
}

/// `--seed-file`: learns exported history (alerts suppressed) into one
/// engine before going live. Its integrations' states move to the partition
/// engines as their first live events arrive (see `tripline_kafka::RunConfig`),
/// so no partition count or partitioner needs to be known here.
fn seed_from_files(
    settings: &Settings,
    registry: Option<&Registry>,
    format: &tripline_ingest::Format,
    files: &[std::path::PathBuf],
) -> anyhow::Result<tripline_engine::Engine> {
    let mut engine = tripline_engine::Engine::new(settings.engine_config(), registry.cloned());
    let mut out = Outputs::default();
    let (mut events, mut rejected, mut suppressed) = (0u64, 0u64, 0u64);
    for f in files {
        let h = std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?;
        let name = f.display().to_string();
        tripline_ingest::read_events(format, std::io::BufReader::with_capacity(1 << 20, h), |line, r| {
            match r {
                Ok(raw) => {
                    events += 1;
                    engine.process(&raw.event(), &mut out);
                    suppressed += out.alerts.len() as u64;
                    out.clear();
                }
                Err(rej) => {
                    rejected += 1;
                    if rejected <= 10 {
                        tracing::warn!(file = %name, line, reason = rej.reason.as_str(), detail = ?rej.detail, "Seed record rejected.");
                    }
                }
            }
        })
        .with_context(|| format!("reading seed file {name}"))?;
    }
    tracing::info!(
        files = files.len(),
        events,
        rejected,
        suppressed_alerts = suppressed,
        integrations = engine.stats().tracked_integrations,
        format = format.name(),
        "Seeded from files."
    );
    Ok(engine)
}

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received; shutting down."),
                    _ = int.recv() => tracing::info!("SIGINT received; shutting down."),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Called with every alert as it is handed to the outputs (the demo prints).
pub type AlertTap = Arc<dyn Fn(&Alert) + Send + Sync>;

/// Runs the service until `shutdown` resolves, then drains within the
/// configured deadline.
pub async fn serve(
    settings: Settings,
    registry: Option<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    tap: Option<AlertTap>,
    seed: Option<tripline_engine::Engine>,
) -> anyhow::Result<RunSummary> {
    let formats = settings
        .ingest
        .topic_formats(&settings.kafka.topics)
        .map_err(|p| super::ConfigProblem(p.join("; ")))?;
    let metrics = Arc::new(
        Metrics::new(env!("CARGO_PKG_VERSION"), settings.http.top_k).context("creating metrics")?,
    );
    let outputs = tripline_output::outputs::validate_outputs(&settings.outputs, &ProcessEnv)
        .map_err(|p| anyhow::anyhow!("outputs: {}", p.join("; ")))?;
    let dispatcher = Dispatcher::new(outputs, &metrics).context("starting alert outputs")?;
    let readiness = Readiness::new();
    readiness.add_check(Arc::new(dispatcher.clone()));
    let addr = settings
        .http
        .listen_addr
        .parse()
        .context("http.listen_addr")?;

    // The audit API: answered by the partition engines through the Kafka
    // loop's control channel; off (404) unless a bearer token is configured.
    let mut problems = Vec::new();
    let token = tripline_output::secret::resolve(
        "http.api_token",
        settings.http.api_token_env.as_deref(),
        settings.http.api_token_file.as_deref(),
        false,
        &ProcessEnv,
        &mut problems,
    );
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    let (control, control_rx) = tripline_kafka::control_channel();
    let alert_log = Arc::new(tripline_audit::api::AlertLog::new(ALERT_LOG_CAPACITY));
    let live = Arc::new(super::api::LiveEngines {
        control,
        defaults: tripline_audit::api::AuditDefaults::default(),
        empty: Arc::new(tripline_engine::Engine::new(
            settings.engine_config(),
            registry.clone(),
        )),
    });
    let api = tripline_audit::api::router(tripline_audit::api::ApiState {
        token,
        inventory: live.clone(),
        feedback: live,
        alerts: Arc::clone(&alert_log),
    });

    // One shutdown signal fans out to the Kafka loop; the admin server (and
    // the API's, when it has its own port) stops last, after the outputs are
    // flushed.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (admin_stop_tx, admin_stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let (on_admin, api_server) = match &settings.http.api_listen_addr {
        None => (Some(api), None),
        Some(api_addr) => {
            let api_addr: std::net::SocketAddr =
                api_addr.parse().context("http.api_listen_addr")?;
            let server = tripline_output::serve_router(
                "tripline-api",
                api_addr,
                api,
                settings.http.limits(),
                stopped(admin_stop_rx.clone()),
            )
            .with_context(|| format!("serving the API on {api_addr}"))?;
            tracing::info!(addr = %server.local_addr(), "Serving the audit API (/api/v1).");
            (None, Some(server))
        }
    };
    let admin = tripline_output::serve_with_limits(
        addr,
        AdminState {
            metrics: Arc::clone(&metrics),
            readiness: readiness.clone(),
        },
        on_admin,
        settings.http.limits(),
        stopped(admin_stop_rx),
    )
    .with_context(|| format!("serving HTTP on {addr}"))?;
    tracing::info!(addr = %admin.local_addr(), "Serving /metrics, /healthz and /readyz.");
    // When shutdown was requested: every step after it shares one deadline.
    let requested_at = Arc::new(std::sync::OnceLock::<tokio::time::Instant>::new());
    let requested = Arc::clone(&requested_at);
    tokio::spawn(async move {
        shutdown.await;
        let _ = requested.set(tokio::time::Instant::now());
        let _ = stop_tx.send(true);
    });

    let sink = Arc::new(DispatchSink::new(
        dispatcher.clone(),
        Arc::clone(&metrics),
        tap,
        alert_log,
    ));
    let observer = Arc::new(MetricsObserver {
        metrics: Arc::clone(&metrics),
        readiness: readiness.clone(),
    });
    let deadline = Duration::from_secs(settings.shutdown.deadline_seconds);
    let mut kafka = settings.kafka.clone();
    // The Kafka loop gets at most three quarters of the one deadline, so the
    // outputs keep at least a quarter for the alerts of its last batches.
    kafka.shutdown_deadline_ms = kafka
        .shutdown_deadline_ms
        .min((deadline.as_millis() as u64).saturating_mul(3) / 4)
        .max(100);
    let mut stop = stop_rx.clone();
    let kafka_stop = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let state_store = state_store(&settings).await?;
    let mut config = tripline_kafka::RunConfig::new(kafka, settings.engine_config());
    config.registry = registry;
    config.sink = sink;
    config.observer = observer;
    config.state_store = Arc::new(MeteredStore {
        inner: state_store,
        metrics: Arc::clone(&metrics),
        sizes: std::sync::Mutex::new(std::collections::HashMap::new()),
    });
    config.control = Some(control_rx);
    config.formats = formats;
    config.seed_engine = seed.map(|e| Arc::new(Mutex::new(e)));
    let summary = tripline_kafka::run(config, kafka_stop)
        .await
        .context("the Kafka source")?;
    // Whatever part of the deadline the Kafka drain did not use goes to the
    // outputs (not a fresh one).
    let flush_deadline = requested_at
        .get()
        .copied()
        .unwrap_or_else(tokio::time::Instant::now)
        + deadline;
    let flushed = dispatcher.flush(flush_deadline).await;
    if flushed.abandoned > 0 {
        tracing::warn!(
            abandoned = flushed.abandoned,
            "Outputs did not drain before the deadline."
        );
    }
    let _ = admin_stop_tx.send(true);
    let _ = admin.wait().await;
    if let Some(api) = api_server {
        let _ = api.wait().await;
    }
    Ok(summary)
}

/// A [`tripline_kafka::StateStore`] that reports successful saves to
/// `tripline_checkpoint_last_success_timestamp_seconds` and
/// `tripline_checkpoint_size_bytes`.
struct MeteredStore {
    inner: Arc<dyn tripline_kafka::StateStore>,
    metrics: Arc<Metrics>,
    /// Latest checkpoint size per partition (bounded by the assignment).
    sizes: std::sync::Mutex<std::collections::HashMap<(String, i32), u64>>,
}

impl tripline_kafka::StateStore for MeteredStore {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }
    fn interval(&self) -> Duration {
        self.inner.interval()
    }
    fn cold_on_corrupt(&self) -> bool {
        self.inner.cold_on_corrupt()
    }
    fn load(&self, topic: &str, partition: i32) -> Result<Option<Vec<u8>>, String> {
        self.inner.load(topic, partition)
    }
    fn save(&self, topic: &str, partition: i32, bytes: &[u8]) -> Result<(), String> {
        self.save_by(topic, partition, bytes, None)
    }
    fn save_by(
        &self,
        topic: &str,
        partition: i32,
        bytes: &[u8],
        deadline: Option<std::time::Instant>,
    ) -> Result<(), String> {
        self.inner.save_by(topic, partition, bytes, deadline)?;
        let total = {
            let mut sizes = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
            sizes.insert((topic.to_owned(), partition), bytes.len() as u64);
            sizes.values().sum()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.metrics.checkpoint_saved(now, total);
        Ok(())
    }
}

/// The checkpoint store `[checkpoint]` asks for: a directory, a changelog
/// topic, or none.
async fn state_store(settings: &Settings) -> anyhow::Result<Arc<dyn tripline_kafka::StateStore>> {
    let c = &settings.checkpoint;
    let interval = Duration::from_secs(c.interval_seconds);
    let cold = c.on_corrupt == crate::settings::OnCorrupt::Cold;
    if let Some(dir) = &c.dir {
        let store = tripline_state::DirStore::open(dir)
            .with_context(|| format!("checkpoint.dir {}", dir.display()))?;
        return Ok(Arc::new(tripline_kafka::DirStateStore {
            store,
            interval,
            cold_on_corrupt: cold,
        }));
    }
    if let Some(topic) = &c.changelog_topic {
        let store = tripline_kafka::ChangelogStore::from_settings(
            &settings.kafka,
            topic,
            tripline_kafka::ChangelogTopic {
                replication_factor: c.changelog_replication_factor,
                min_insync_replicas: c.changelog_min_insync_replicas,
            },
            interval,
            cold,
        )
        .await
        .context("checkpoint.changelog_topic")?;
        return Ok(Arc::new(store));
    }
    Ok(Arc::new(tripline_kafka::NoStateStore))
}

/// Hands the engines' alerts to the dispatcher (enqueue only) and counts them.
pub struct DispatchSink {
    dispatcher: Dispatcher,
    metrics: Arc<Metrics>,
    tap: Option<AlertTap>,
    /// Recent alerts for the API.
    log: Arc<tripline_audit::api::AlertLog>,
    /// Open anomalies by integration: the score of each, for the top-K gauge.
    scores: Mutex<HashMap<String, HashMap<String, f64>>>,
}

impl DispatchSink {
    pub fn new(
        dispatcher: Dispatcher,
        metrics: Arc<Metrics>,
        tap: Option<AlertTap>,
        log: Arc<tripline_audit::api::AlertLog>,
    ) -> Self {
        DispatchSink {
            dispatcher,
            metrics,
            tap,
            log,
            scores: Mutex::new(HashMap::new()),
        }
    }
}

impl AlertSink for DispatchSink {
    fn submit(&self, out: &Outputs) {
        if out.is_empty() {
            return;
        }
        for a in &out.alerts {
            self.metrics.alert(a);
            self.log.push(a);
            if let Some(tap) = &self.tap {
                tap(a);
            }
        }
        for r in &out.resolved {
            self.metrics.resolved(r);
            if r.folded > 0 {
                self.metrics.folded(r.kind, r.folded);
            }
        }
        self.dispatcher.submit(&out.alerts, &out.resolved);
        // The anomaly-score gauge shows integrations with open anomalies.
        if let Ok(mut scores) = self.scores.lock() {
            for a in &out.alerts {
                if scores.len() < MAX_SCORED_INTEGRATIONS || scores.contains_key(&a.integration_id)
                {
                    scores
                        .entry(a.integration_id.clone())
                        .or_default()
                        .insert(a.id.clone(), a.score);
                }
            }
            for r in &out.resolved {
                if let Some(open) = scores.get_mut(&r.integration_id) {
                    open.remove(&r.id);
                    if open.is_empty() {
                        scores.remove(&r.integration_id);
                    }
                }
            }
            let top = scores
                .iter()
                .map(|(id, open)| (id.as_str(), open.values().copied().fold(0.0, f64::max)));
            self.metrics.update_top_scores(top);
        }
    }
}

/// Kafka-loop telemetry into Prometheus (`docs/specs/metrics.md`).
pub struct MetricsObserver {
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

impl Observer for MetricsObserver {
    fn events_received(&self, count: u64) {
        self.metrics.received(count);
    }
    fn events_processed(&self, count: u64) {
        self.metrics.processed(count);
    }
    fn events_rejected(&self, reason: RejectReason, count: u64) {
        for _ in 0..count {
            self.metrics.rejected(reason.as_str());
        }
    }
    fn events_late(&self, count: u64) {
        self.metrics.late(count);
    }
    fn events_out_of_range(&self, count: u64) {
        self.metrics.out_of_range(count);
    }
    fn dead_letters(&self, outcome: DeadLetterOutcome, count: u64) {
        for _ in 0..count {
            self.metrics
                .dead_letter(outcome == DeadLetterOutcome::Retried);
        }
    }
    fn batch(&self, duration: Duration, events: usize) {
        self.metrics.batch(duration, events);
    }
    fn event_delays(&self, seconds: &[f64]) {
        self.metrics.event_delays(seconds);
    }
    fn consumer_lag(&self, topic: &str, partition: i32, lag: i64) {
        self.metrics.set_consumer_lag(topic, partition, lag);
    }
    fn ready(&self, ready: bool) {
        self.readiness.set_consuming(ready);
    }
    fn error(&self, error_type: &'static str, stage: &'static str) {
        self.metrics.error(error_type, stage);
    }
    fn engine_stats(&self, stats: &EngineStats) {
        self.metrics.set_engine(
            stats.tracked_integrations,
            stats.learning_integrations,
            stats.approx_memory_bytes,
        );
    }
    fn partition_revoked(&self, topic: &str, partition: i32) {
        self.metrics.remove_consumer_lag(topic, partition);
    }
}
