//! Delivery: one bounded queue and one worker task per output.
//!
//! [`Dispatcher::submit`] never waits on the network: it takes each output's
//! queue lock (held for a few pushes, never across an `.await`), applies
//! deduplication, the rate limit and the overflow policy, and wakes the
//! output's worker. The worker delivers one notification at a time, in order,
//! retrying a failed attempt with exponential backoff and full jitter until it
//! succeeds, hits a permanent error (4xx other than 408/429), runs out of
//! attempts or grows older than `max_age` (dropped as `expired`). Delivering in
//! order with the failing item at the head means a receiver that is down for
//! minutes receives everything, in order, once it is back, and a delivered
//! notification is never sent again by this process.
//!
//! An Alertmanager resolution that comes sooner than `min_firing_seconds`
//! after its alert's first push is held until then (`hold.rs`), so it may
//! be delivered after notifications queued behind it.
//!
//! [`Dispatcher::flush`] drains for shutdown: it waits until every queue is
//! empty or the deadline passes, then stops the workers; whatever is left is
//! counted as `expired`. Held resolutions are left to Alertmanager, which
//! resolves their alerts when the last push's `endsAt` passes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};
use tripline_engine::{Alert, Resolved, Severity};

use super::alertmanager::OpenAlerts;
use super::hold::{self, Held};
use super::retry::backoff;
use super::send::{self, SendError};
use super::stats::{FlushOutcome, OutputHealth, OutputStats};
use super::{
    Delivery, EncodeError, Notification, OutputKind, OutputSettings, OverflowPolicy, WireRequest,
};
use crate::grouping::{Admission, Grouper};
use crate::http::HealthCheck;
use crate::metrics::{Metrics, MetricsError, OutputMetrics};

/// How often at most a drop warning is logged per output: drops are counted
/// in metrics; the log only says that it is happening.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Alertmanager re-pushes are split into requests of at most this many alerts
/// so one request body stays well under a megabyte.
const REPUSH_CHUNK: usize = 500;
/// How often `flush` checks whether the queues are empty.
const FLUSH_POLL: Duration = Duration::from_millis(10);
/// How long `flush` waits for workers to stop after telling them to.
const WORKER_STOP_GRACE: Duration = Duration::from_secs(1);
/// An output is unhealthy when its queue is fuller than this fraction.
const UNHEALTHY_QUEUE_FRACTION: f64 = 0.9;

/// Errors building a [`Dispatcher`].
#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    #[error("the dispatcher must be created inside a Tokio runtime")]
    NoRuntime,
    #[error("cannot build the HTTP client of output {output}: {error}")]
    Client { output: String, error: String },
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

struct Item {
    n: Notification,
    enqueued: Instant,
}

struct State {
    queue: VecDeque<Item>,
    in_flight: bool,
    grouper: Grouper,
    open: Option<OpenAlerts>,
    /// Alertmanager resolutions waiting for `min_firing` (`hold.rs`).
    held: Held<Item>,
    failing_since: Option<Instant>,
    last_drop_log: Option<Instant>,
    closed: bool,
}

struct Output {
    name: String,
    delivery: Delivery,
    /// Alerts and resolutions below this severity are not queued.
    min_severity: Severity,
    kind: OutputKind,
    metrics: OutputMetrics,
    client: reqwest::Client,
    state: Mutex<State>,
    wake: Notify,
}

enum DropReason {
    QueueFull,
    Expired,
}

enum Delivered {
    Done,
    Aborted,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic while holding it, which only a bug
        // causes; the state is still consistent enough to keep delivering.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn depth_gauge(&self, st: &State) {
        let depth = st.queue.len() + usize::from(st.in_flight);
        self.metrics
            .queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        self.metrics
            .held_resolutions
            .set(i64::try_from(st.held.len()).unwrap_or(i64::MAX));
    }

    fn count_drop(&self, st: &mut State, n: &Notification, reason: DropReason) {
        let (counter, label) = match reason {
            DropReason::QueueFull => (&self.metrics.dropped_queue_full, "queue_full"),
            DropReason::Expired => (&self.metrics.dropped_expired, "expired"),
        };
        counter.inc();
        if let Notification::Firing(a) = n {
            st.grouper.abandoned(&a.id);
        }
        let now = Instant::now();
        let log_due = match st.last_drop_log {
            Some(t) => now.duration_since(t) >= DROP_LOG_INTERVAL,
            None => true,
        };
        if log_due {
            st.last_drop_log = Some(now);
            tracing::warn!(output = %self.name, reason = label, "Dropping alert notifications.");
        }
    }

    fn push(&self, st: &mut State, item: Item) {
        if st.closed {
            self.count_drop(st, &item.n, DropReason::Expired);
            return;
        }
        if st.queue.len() >= self.delivery.queue_capacity {
            match self.delivery.overflow {
                OverflowPolicy::DropOldest => {
                    if let Some(old) = st.queue.pop_front() {
                        self.count_drop(st, &old.n, DropReason::QueueFull);
                    }
                }
                OverflowPolicy::DropNewest => {
                    self.count_drop(st, &item.n, DropReason::QueueFull);
                    return;
                }
            }
        }
        st.queue.push_back(item);
    }

    fn enqueue(&self, alerts: &[Arc<Alert>], resolved: &[Arc<Resolved>], now: Instant) {
        {
            let mut st = self.lock();
            for a in alerts.iter().filter(|a| a.severity >= self.min_severity) {
                match st.grouper.admit_alert(a, now) {
                    Admission::Accept => self.push(
                        &mut st,
                        Item {
                            n: Notification::Firing(Arc::clone(a)),
                            enqueued: now,
                        },
                    ),
                    Admission::RateLimited => {
                        self.metrics.dropped_rate_limited.inc();
                    }
                    Admission::Duplicate | Admission::Suppressed => {}
                }
            }
            for r in resolved.iter().filter(|r| r.severity >= self.min_severity) {
                if st.grouper.admit_resolved(r) == Admission::Accept {
                    self.push(
                        &mut st,
                        Item {
                            n: Notification::Resolved(Arc::clone(r)),
                            enqueued: now,
                        },
                    );
                }
            }
            self.depth_gauge(&st);
        }
        self.wake.notify_one();
    }

    /// When an Alertmanager resolution must wait: its alert was first pushed
    /// less than `min_firing` ago. At most `max_open_alerts` wait (beyond,
    /// one is sent at once, as without the hold), so `held` is bounded like
    /// the open table even when alerts churn through it.
    fn hold_until(&self, st: &State, n: &Notification, now: Instant) -> Option<Instant> {
        let (OutputKind::Alertmanager(am), Notification::Resolved(r)) = (&self.kind, n) else {
            return None;
        };
        let open = st.open.as_ref()?;
        if st.held.len() >= open.capacity() {
            return None;
        }
        hold::due(open.pushed_at(&r.id)?, am.min_firing, now)
    }

    /// The next item to deliver: a held resolution now due, else the head of
    /// the queue (a resolution that must wait is moved to `held`).
    fn pop(&self) -> Option<Item> {
        let mut st = self.lock();
        let now = Instant::now();
        let item = loop {
            if let Some(item) = st.held.pop_due(now) {
                break Some(item);
            }
            let Some(item) = st.queue.pop_front() else {
                break None;
            };
            match self.hold_until(&st, &item.n, now) {
                Some(due) => st.held.hold(due, item),
                None => break Some(item),
            }
        };
        st.in_flight = item.is_some();
        self.depth_gauge(&st);
        item
    }

    fn finish(&self) {
        let mut st = self.lock();
        st.in_flight = false;
        self.depth_gauge(&st);
    }

    /// Puts an interrupted item back at the head, for `flush` to count.
    fn requeue(&self, item: Item) {
        let mut st = self.lock();
        st.queue.push_front(item);
        st.in_flight = false;
        self.depth_gauge(&st);
    }

    fn build(&self, n: &Notification, now_ms: i64) -> Result<Option<WireRequest>, EncodeError> {
        match (&self.kind, n) {
            (OutputKind::Alertmanager(am), Notification::Resolved(r)) => {
                let opened = self.lock().open.as_mut().and_then(|o| o.get(&r.id));
                am.encode_resolved(r, opened.as_deref(), now_ms).map(Some)
            }
            (kind, n) => kind.encode(n, now_ms),
        }
    }

    async fn send(&self, req: WireRequest) -> Result<(), SendError> {
        send::send(&self.client, req, self.delivery.timeout).await
    }

    fn record_success(&self) {
        self.metrics.success.inc();
        self.lock().failing_since = None;
    }

    fn record_failure(&self, now: Instant) {
        self.metrics.failure.inc();
        let mut st = self.lock();
        st.failing_since.get_or_insert(now);
    }

    /// Delivers one notification, retrying as configured.
    async fn deliver(&self, item: Item, shutdown: &mut watch::Receiver<bool>) -> Delivered {
        let mut failures: u32 = 0;
        loop {
            let now = Instant::now();
            if now.duration_since(item.enqueued) > self.delivery.max_age {
                let mut st = self.lock();
                self.count_drop(&mut st, &item.n, DropReason::Expired);
                return Delivered::Done;
            }
            let req = match self.build(&item.n, wall_ms()) {
                Ok(Some(req)) => req,
                Ok(None) => return Delivered::Done,
                Err(error) => {
                    tracing::error!(output = %self.name, %error, "Cannot encode an alert notification.");
                    self.record_failure(now);
                    return Delivered::Done;
                }
            };
            if failures > 0 {
                self.metrics.retries.inc();
            }
            let result = tokio::select! {
                r = self.send(req) => r,
                _ = shutdown.changed() => {
                    self.requeue(item);
                    return Delivered::Aborted;
                }
            };
            match result {
                Ok(()) => {
                    self.record_success();
                    self.metrics
                        .delivery_duration
                        .observe(item.enqueued.elapsed().as_secs_f64());
                    let mut st = self.lock();
                    match &item.n {
                        Notification::Firing(a) => {
                            st.grouper.delivered(&a.id);
                            if let Some(open) = st.open.as_mut() {
                                open.open(Arc::clone(a), now);
                            }
                        }
                        Notification::Resolved(r) => {
                            if let Some(open) = st.open.as_mut() {
                                open.close(&r.id);
                            }
                        }
                    }
                    return Delivered::Done;
                }
                Err(SendError::Permanent { what }) => {
                    self.record_failure(Instant::now());
                    tracing::warn!(output = %self.name, id = item.n.id(), error = %what,
                        "Alert notification rejected; not retrying.");
                    let mut st = self.lock();
                    if let Notification::Firing(a) = &item.n {
                        st.grouper.abandoned(&a.id);
                    }
                    return Delivered::Done;
                }
                Err(SendError::Retryable { retry_after, what }) => {
                    self.record_failure(Instant::now());
                    failures = failures.saturating_add(1);
                    if self
                        .delivery
                        .max_attempts
                        .is_some_and(|max| failures >= max)
                    {
                        tracing::warn!(output = %self.name, id = item.n.id(), error = %what,
                            attempts = failures, "Alert notification failed too often; dropping it.");
                        let mut st = self.lock();
                        self.count_drop(&mut st, &item.n, DropReason::Expired);
                        return Delivered::Done;
                    }
                    let delay = backoff(
                        &self.delivery,
                        failures,
                        retry_after,
                        rand::thread_rng().gen::<f64>(),
                    );
                    tracing::warn!(output = %self.name, id = item.n.id(), error = %what,
                        retry_in_ms = delay.as_millis() as u64, "Alert notification failed; will retry.");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.changed() => {
                            self.requeue(item);
                            return Delivered::Aborted;
                        }
                    }
                }
            }
        }
    }

    /// Re-pushes every open Alertmanager episode (one attempt; the next
    /// re-push is the retry).
    async fn repush(&self, shutdown: &mut watch::Receiver<bool>) {
        let OutputKind::Alertmanager(am) = &self.kind else {
            return;
        };
        let open = match self.lock().open.as_ref() {
            Some(o) => o.all(),
            None => return,
        };
        for chunk in open.chunks(REPUSH_CHUNK) {
            let refs: Vec<&Alert> = chunk.iter().map(|a| a.as_ref()).collect();
            let req = match am.encode_firing(&refs, wall_ms()) {
                Ok(r) => r,
                Err(error) => {
                    tracing::error!(output = %self.name, %error, "Cannot encode the Alertmanager re-push.");
                    return;
                }
            };
            let result = tokio::select! {
                r = self.send(req) => r,
                _ = shutdown.changed() => return,
            };
            match result {
                Ok(()) => self.record_success(),
                Err(SendError::Retryable { what, .. } | SendError::Permanent { what }) => {
                    self.record_failure(Instant::now());
                    tracing::warn!(output = %self.name, error = %what, "Alertmanager re-push failed.");
                    return;
                }
            }
        }
    }

    async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let repush_every = match &self.kind {
            OutputKind::Alertmanager(am) => Some(am.repush_interval),
            _ => None,
        };
        let mut next_repush = repush_every.map(|d| Instant::now() + d);
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let (Some(at), Some(every)) = (next_repush, repush_every) {
                if Instant::now() >= at {
                    self.repush(&mut shutdown).await;
                    next_repush = Some(Instant::now() + every);
                    continue;
                }
            }
            match self.pop() {
                Some(item) => {
                    if let Delivered::Aborted = self.deliver(item, &mut shutdown).await {
                        return;
                    }
                    self.finish();
                }
                None => {
                    let held_due = self.lock().held.next_due();
                    let wake_at = next_repush.into_iter().chain(held_due).min();
                    let timer = async {
                        match wake_at {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = shutdown.changed() => return,
                        _ = timer => {}
                    }
                }
            }
        }
    }

    fn stats(&self) -> OutputStats {
        let st = self.lock();
        OutputStats {
            name: self.name.clone(),
            delivered: self.metrics.success.get(),
            failed_attempts: self.metrics.failure.get(),
            retries: self.metrics.retries.get(),
            dropped_queue_full: self.metrics.dropped_queue_full.get(),
            dropped_rate_limited: self.metrics.dropped_rate_limited.get(),
            dropped_expired: self.metrics.dropped_expired.get(),
            queue_depth: st.queue.len() + usize::from(st.in_flight),
            held_resolutions: st.held.len(),
            grouping: st.grouper.stats(),
        }
    }

    fn health(&self, now: Instant) -> OutputHealth {
        let st = self.lock();
        let cap = self.delivery.queue_capacity as f64;
        let problem = if st.queue.len() as f64 > cap * UNHEALTHY_QUEUE_FRACTION {
            Some(format!(
                "output {}: queue {}/{} full",
                self.name,
                st.queue.len(),
                self.delivery.queue_capacity
            ))
        } else {
            st.failing_since.and_then(|since| {
                let for_ = now.saturating_duration_since(since);
                (for_ > self.delivery.unhealthy_after)
                    .then(|| format!("output {}: failing for {}s", self.name, for_.as_secs()))
            })
        };
        OutputHealth {
            name: self.name.clone(),
            problem,
        }
    }
}

struct Inner {
    outputs: Vec<Arc<Output>>,
    shutdown: watch::Sender<bool>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// Delivers alerts and resolutions to every configured output. Cheap to
/// clone (shared state); all clones feed the same queues.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field(
                "outputs",
                &self
                    .inner
                    .outputs
                    .iter()
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Dispatcher {
    /// Builds the outputs and spawns one worker task per output on the
    /// current Tokio runtime. Metric series of every output are created at 0.
    pub fn new(settings: Vec<OutputSettings>, metrics: &Metrics) -> Result<Self, DispatcherError> {
        let handle =
            tokio::runtime::Handle::try_current().map_err(|_| DispatcherError::NoRuntime)?;
        let (tx, _) = watch::channel(false);
        let mut outputs = Vec::with_capacity(settings.len());
        for s in settings {
            let client = reqwest::Client::builder()
                // Redirects would turn a POST into a GET and may leak headers
                // to another host; a receiver that redirects is misconfigured.
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(s.delivery.timeout)
                .user_agent(concat!("tripline/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| DispatcherError::Client {
                    output: s.name.clone(),
                    error: e.without_url().to_string(),
                })?;
            let open = match &s.kind {
                OutputKind::Alertmanager(am) => Some(OpenAlerts::new(am.max_open)),
                _ => None,
            };
            outputs.push(Arc::new(Output {
                metrics: metrics.output(&s.name)?,
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    in_flight: false,
                    grouper: Grouper::new(&s.grouping),
                    open,
                    held: Held::default(),
                    failing_since: None,
                    last_drop_log: None,
                    closed: false,
                }),
                name: s.name,
                delivery: s.delivery,
                min_severity: s.min_severity,
                kind: s.kind,
                client,
                wake: Notify::new(),
            }));
        }
        let workers = outputs
            .iter()
            .map(|o| handle.spawn(Arc::clone(o).run(tx.subscribe())))
            .collect();
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                outputs,
                shutdown: tx,
                workers: Mutex::new(workers),
            }),
        })
    }

    /// Queues `alerts` then `resolved` on every output. Never waits for the
    /// network; only for each output's queue lock, which is held for
    /// in-memory pushes only.
    pub fn submit(&self, alerts: &[Alert], resolved: &[Resolved]) {
        if alerts.is_empty() && resolved.is_empty() {
            return;
        }
        let now = Instant::now();
        let alerts: Vec<Arc<Alert>> = alerts.iter().map(|a| Arc::new(a.clone())).collect();
        let resolved: Vec<Arc<Resolved>> = resolved.iter().map(|r| Arc::new(r.clone())).collect();
        for o in &self.inner.outputs {
            o.enqueue(&alerts, &resolved, now);
        }
    }

    /// True when every queue is empty and nothing is being delivered.
    pub fn is_idle(&self) -> bool {
        self.inner.outputs.iter().all(|o| {
            let st = o.lock();
            st.queue.is_empty() && !st.in_flight
        })
    }

    /// Waits until every queue is drained or `deadline` passes, then stops the
    /// workers (interrupting an in-flight request or backoff). Notifications
    /// still queued are counted as dropped (`expired`). Later submits are
    /// dropped the same way.
    pub async fn flush(&self, deadline: Instant) -> FlushOutcome {
        while !self.is_idle() && Instant::now() < deadline {
            tokio::time::sleep(FLUSH_POLL.min(deadline.saturating_duration_since(Instant::now())))
                .await;
        }
        let _ = self.inner.shutdown.send(true);
        let workers =
            std::mem::take(&mut *self.inner.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            let _ = tokio::time::timeout(WORKER_STOP_GRACE, w).await;
        }
        let mut abandoned = 0;
        let mut left_to_alertmanager = 0;
        for o in &self.inner.outputs {
            let mut st = o.lock();
            st.closed = true;
            st.in_flight = false;
            left_to_alertmanager += st.held.clear();
            while let Some(item) = st.queue.pop_front() {
                abandoned += 1;
                o.count_drop(&mut st, &item.n, DropReason::Expired);
            }
            o.depth_gauge(&st);
        }
        if abandoned > 0 {
            tracing::warn!(abandoned, "Shut down with undelivered alert notifications.");
        }
        if left_to_alertmanager > 0 {
            tracing::info!(
                held = left_to_alertmanager,
                "Shut down with held Alertmanager resolutions; their alerts resolve at the TTL."
            );
        }
        FlushOutcome { abandoned }
    }

    /// Counters per output, in configuration order.
    pub fn stats(&self) -> Vec<OutputStats> {
        self.inner.outputs.iter().map(|o| o.stats()).collect()
    }

    /// Health per output, in configuration order.
    pub fn health(&self) -> Vec<OutputHealth> {
        let now = Instant::now();
        self.inner.outputs.iter().map(|o| o.health(now)).collect()
    }
}

impl HealthCheck for Dispatcher {
    fn problems(&self) -> Vec<String> {
        self.health()
            .into_iter()
            .filter_map(|h| h.problem)
            .collect()
    }
}
