//! Bounded shutdown: the one deadline every step shares, threads that may
//! overrun it, and a safe drop of the consumer.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio::time::Instant;

use crate::consumer::TriplineConsumer;

/// Part of the shutdown deadline kept for the final commit and consumer close.
const COMMIT_RESERVE_MAX: Duration = Duration::from_secs(2);

/// Runs `f` on its own OS thread and waits at most `timeout` for it. The
/// thread is left to finish on its own if it overruns (librdkafka calls that
/// block on an unreachable broker), so shutdown stays bounded.
pub(super) async fn on_thread<T: Send + 'static>(
    name: &str,
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .ok()?;
    tokio::time::timeout(timeout, rx).await.ok()?.ok()
}

/// Runs blocking I/O (checkpoint files, changelog reads) without stalling
/// other tasks on a multi-threaded runtime.
pub(super) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Makes dropping the `run` future (instead of resolving `shutdown`) safe:
/// stops the poll thread and closes the consumer on a thread of its own, so
/// the drop never blocks the async runtime on librdkafka's close.
pub(super) struct CloseOnDrop {
    pub(super) consumer: Option<Arc<TriplineConsumer>>,
    pub(super) stop: Arc<AtomicBool>,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(consumer) = self.consumer.take() {
            consumer.context().closing.store(true, Ordering::Release);
            let _ = std::thread::Builder::new()
                .name("tripline-kafka-close".into())
                .spawn(move || drop(consumer));
        }
    }
}

/// Watches the shutdown future and owns the deadlines.
pub(super) struct Stopper<F: Future<Output = ()>> {
    shutdown: Pin<Box<F>>,
    requested_at: Option<Instant>,
    pub(super) drain_deadline: Option<Instant>,
    total: Duration,
}

impl<F: Future<Output = ()>> Stopper<F> {
    pub(super) fn new(shutdown: F, total: Duration) -> Self {
        Stopper {
            shutdown: Box::pin(shutdown),
            requested_at: None,
            drain_deadline: None,
            total,
        }
    }

    /// The one deadline of the whole shutdown: every step after the request
    /// gets what is left of it, none gets a fresh one.
    pub(super) fn final_deadline(&self) -> Instant {
        self.requested_at.unwrap_or_else(Instant::now) + self.total
    }

    /// Resolves when shutdown is requested, and at once if it already was
    /// (a signal that arrived mid-batch must still stop the main loop).
    pub(super) async fn requested(&mut self) {
        if self.requested_at.is_some() {
            return;
        }
        self.shutdown.as_mut().await;
        let now = Instant::now();
        let reserve = (self.total / 4).min(COMMIT_RESERVE_MAX);
        self.requested_at = Some(now);
        self.drain_deadline = Some(now + self.total.saturating_sub(reserve));
        tracing::info!("Shutdown requested.");
    }

    /// Drives `fut` to completion unless shutdown is requested meanwhile and
    /// the drain deadline passes first (`None`).
    pub(super) async fn guard<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            if let Some(deadline) = self.drain_deadline {
                return tokio::time::timeout_at(deadline, fut).await.ok();
            }
            tokio::select! {
                biased;
                r = &mut fut => return Some(r),
                () = self.requested() => {}
            }
        }
    }
}

pub(super) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
