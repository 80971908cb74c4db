//! The admin HTTP server: `/metrics`, `/healthz`, `/readyz`, plus any extra
//! routes the binary merges in (e.g. the audit API).
//!
//! It runs on its own OS thread with its own single-threaded Tokio runtime,
//! so a data plane saturating the main runtime cannot delay a scrape or a
//! readiness probe (linkerd's admin server does the same).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::oneshot;

use crate::metrics::Metrics;
pub use crate::serve::HttpLimits;

/// Something `/readyz` consults: returns why it is not healthy, if it is not.
pub trait HealthCheck: Send + Sync + 'static {
    /// Empty when healthy; one human-readable line per problem otherwise.
    fn problems(&self) -> Vec<String>;
}

#[derive(Default)]
struct ReadinessInner {
    consuming: AtomicBool,
    checks: RwLock<Vec<Arc<dyn HealthCheck>>>,
}

/// Shared readiness: ready when the source is consuming and every registered
/// check (e.g. the [`crate::Dispatcher`]) reports no problem. Cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    inner: Arc<ReadinessInner>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("consuming", &self.inner.consuming.load(Ordering::Relaxed))
            .finish()
    }
}

impl Readiness {
    /// Not consuming, no checks.
    pub fn new() -> Self {
        Readiness::default()
    }

    /// Called by the consumer: true once partitions are assigned and the
    /// loop runs, false when it stops or loses its assignment.
    pub fn set_consuming(&self, consuming: bool) {
        self.inner.consuming.store(consuming, Ordering::Relaxed);
    }

    /// Adds a check consulted on every `/readyz`.
    pub fn add_check(&self, check: Arc<dyn HealthCheck>) {
        if let Ok(mut checks) = self.inner.checks.write() {
            checks.push(check);
        }
    }

    /// `Ok` when ready, otherwise every reason it is not.
    pub fn status(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if !self.inner.consuming.load(Ordering::Relaxed) {
            problems.push("not consuming".to_owned());
        }
        if let Ok(checks) = self.inner.checks.read() {
            for c in checks.iter() {
                problems.extend(c.problems());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// What the admin routes need.
#[derive(Clone, Debug)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
}

/// Errors starting the admin server.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot bind an HTTP server to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin server I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the admin server thread stopped unexpectedly")]
    Stopped,
}

async fn metrics(State(state): State<AdminState>) -> Response {
    state.metrics.set_ready(state.readiness.status().is_ok());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    match state.readiness.status() {
        Ok(()) => {
            state.metrics.set_ready(true);
            (StatusCode::OK, Json(serde_json::json!({"status": "ready"}))).into_response()
        }
        Err(reasons) => {
            state.metrics.set_ready(false);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"status": "not_ready", "reasons": reasons})),
            )
                .into_response()
        }
    }
}

/// The admin routes. `extra` serves every path the admin routes do not
/// (it is installed as the fallback, so a clash cannot panic at startup;
/// the admin routes win).
pub fn router(state: AdminState, extra: Option<Router>) -> Router {
    let base = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    match extra {
        Some(extra) => base.fallback_service(extra),
        None => base,
    }
}

/// A running admin server.
#[derive(Debug)]
pub struct AdminServer {
    local_addr: SocketAddr,
    done: oneshot::Receiver<Result<(), HttpError>>,
}

impl AdminServer {
    /// The bound address (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the server has stopped (after `shutdown` resolved and
    /// open requests finished).
    pub async fn wait(self) -> Result<(), HttpError> {
        self.done.await.unwrap_or(Err(HttpError::Stopped))
    }
}

/// Binds `addr` (now, so errors surface at startup) and serves the admin
/// routes plus `extra` on a dedicated thread and runtime until `shutdown`
/// resolves. Handlers of `extra` run on that runtime too.
pub fn serve(
    addr: SocketAddr,
    state: AdminState,
    extra: Option<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<AdminServer, HttpError> {
    serve_with_limits(addr, state, extra, HttpLimits::default(), shutdown)
}

/// As [`serve`], with explicit connection limits (`http.header_read_timeout_seconds`,
/// `http.max_connections`).
pub fn serve_with_limits(
    addr: SocketAddr,
    state: AdminState,
    extra: Option<Router>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<AdminServer, HttpError> {
    serve_router(
        "tripline-admin",
        addr,
        router(state, extra),
        limits,
        shutdown,
    )
}

/// Binds `addr` (now, so errors surface at startup) and serves `app` with
/// `limits` on a dedicated OS thread named `name`, with its own
/// single-threaded runtime, until `shutdown` resolves. The admin server is
/// one; the audit API on its own port (`http.api_listen_addr`) is another.
pub fn serve_router(
    name: &str,
    addr: SocketAddr,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<AdminServer, HttpError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let thread = name.to_owned();
    std::thread::Builder::new()
        .name(thread.clone())
        .spawn(move || {
            let result = runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                crate::serve::serve_limited(listener, app, limits, shutdown).await?;
                Ok(())
            });
            if let Err(error) = &result {
                tracing::error!(%error, server = %thread, "HTTP server failed.");
            }
            let _ = tx.send(result);
        })?;
    tracing::info!(addr = %local_addr, server = name, "HTTP server listening.");
    Ok(AdminServer {
        local_addr,
        done: rx,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<String>);
    impl HealthCheck for Fixed {
        fn problems(&self) -> Vec<String> {
            self.0.clone()
        }
    }

    #[test]
    fn readiness_collects_every_reason() {
        let r = Readiness::new();
        assert_eq!(r.status(), Err(vec!["not consuming".to_owned()]));
        r.set_consuming(true);
        assert_eq!(r.status(), Ok(()));
        r.add_check(Arc::new(Fixed(vec!["output a: queue full".into()])));
        r.add_check(Arc::new(Fixed(vec![])));
        assert_eq!(r.status(), Err(vec!["output a: queue full".to_owned()]));
    }
}
