//! The HTTP API: inventory, recent alerts, the audit and analyst feedback.
//!
//! `docs/openapi.yaml` describes every route; the tests check responses
//! against it. Every `/api/*` route needs `Authorization: Bearer <token>`;
//! without a configured token the router answers 404 to everything, so the
//! API is simply off (the admin server keeps `/metrics` and the probes).
//!
//! The router only sees two traits, [`InventoryView`] and
//! [`FeedbackApplier`], so the service can back them with however many
//! engines it runs; [`SharedEngine`] is the in-process implementation over
//! one `Mutex<Engine>`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tripline_engine::feedback::FeedbackAction;
use tripline_engine::text::safe;
use tripline_engine::time::parse_rfc3339;
use tripline_engine::{Alert, Engine, Feedback, FeedbackRecord};
use tripline_output::Secret;

use crate::inventory::{self, IntegrationDetail, IntegrationSummary};
use crate::report::{self, AuditOptions, AuditReport};

/// Recent alerts kept for `GET /api/v1/alerts` by default.
pub const DEFAULT_ALERT_LOG_CAPACITY: usize = 10_000;
/// Alerts per response when the request gives no `limit`.
pub const DEFAULT_ALERTS_LIMIT: usize = 100;
/// Largest `limit` honoured: a response stays small whatever is asked.
pub const MAX_ALERTS_LIMIT: usize = 1000;

/// The engines could not answer in time (the processing loop is busy or
/// restarting): the API answers 503 with `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the processing loop is busy; retry later")]
pub struct Busy;

/// Seconds a client is told to wait after a [`Busy`].
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Why feedback was not applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    /// The request is wrong (unknown integration, bad decision): 422.
    #[error("{0}")]
    Rejected(String),
    /// Try again later: 503.
    #[error(transparent)]
    Busy(#[from] Busy),
}

/// Read access to what the engines know. Methods may block (call them from
/// a blocking thread); [`Busy`] when the engines did not answer in time.
pub trait InventoryView: Send + Sync {
    /// Every tracked or declared integration, by id.
    fn integrations(&self) -> Result<Vec<IntegrationSummary>, Busy>;
    /// One integration, or `None` when neither tracked nor declared.
    fn integration(&self, id: &str) -> Result<Option<IntegrationDetail>, Busy>;
    /// The audit as of `as_of_ms` (event time).
    fn audit(&self, as_of_ms: i64) -> Result<AuditReport, Busy>;
    /// The latest event time seen: the default `as_of` of
    /// `GET /api/v1/audit`. `None` (the default) falls back to the clock.
    fn latest_event_ms(&self) -> Result<Option<i64>, Busy> {
        Ok(None)
    }
}

/// Applies analyst feedback to the engine owning the integration.
pub trait FeedbackApplier: Send + Sync {
    /// Applies one decision.
    fn apply(&self, fb: Feedback) -> Result<FeedbackRecord, FeedbackError>;
    /// The audit trail, oldest first.
    fn trail(&self) -> Result<Vec<FeedbackRecord>, Busy>;
}

/// A bounded ring of recent alerts. The lock is a std `Mutex`, held only to
/// copy in or out, never across an `.await`.
#[derive(Debug)]
pub struct AlertLog {
    alerts: Mutex<VecDeque<Alert>>,
    capacity: usize,
}

impl Default for AlertLog {
    fn default() -> Self {
        AlertLog::new(DEFAULT_ALERT_LOG_CAPACITY)
    }
}

impl AlertLog {
    /// Keeps the last `capacity` alerts (at least one).
    pub fn new(capacity: usize) -> Self {
        AlertLog {
            alerts: Mutex::new(VecDeque::with_capacity(capacity.clamp(1, 4096))),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Alert>> {
        // A panic elsewhere while holding the lock leaves a valid deque.
        self.alerts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an alert, dropping the oldest when full.
    pub fn push(&self, alert: &Alert) {
        let mut q = self.lock();
        if q.len() >= self.capacity {
            q.pop_front();
        }
        q.push_back(alert.clone());
    }

    /// Up to `limit` of the most recent alerts detected at or after
    /// `since_ms`, in the order they were pushed.
    pub fn since(&self, since_ms: i64, limit: usize) -> Vec<Alert> {
        let q = self.lock();
        let mut v: Vec<Alert> = q
            .iter()
            .rev()
            .filter(|a| a.detected_at >= since_ms)
            .take(limit)
            .cloned()
            .collect();
        v.reverse();
        v
    }

    /// Alerts held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the API routes need.
#[derive(Clone)]
pub struct ApiState {
    /// The bearer token; `None` turns the API off (404).
    pub token: Option<Secret>,
    pub inventory: Arc<dyn InventoryView>,
    pub feedback: Arc<dyn FeedbackApplier>,
    pub alerts: Arc<AlertLog>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("token", &self.token)
            .field("alerts", &self.alerts.len())
            .finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct Routes {
    state: ApiState,
    /// SHA-256 of the token: compared in constant time, and equal length
    /// whatever the token's, so the comparison leaks neither.
    token_digest: Arc<[u8; 32]>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The API router. Without a token every path answers 404.
pub fn router(state: ApiState) -> Router {
    let Some(token) = &state.token else {
        return Router::new().fallback(|| async { error(StatusCode::NOT_FOUND, "not found") });
    };
    let digest: [u8; 32] = Sha256::digest(token.expose().as_bytes()).into();
    let routes = Routes {
        state: state.clone(),
        token_digest: Arc::new(digest),
    };
    Router::new()
        .route("/api/v1/integrations", get(integrations))
        .route("/api/v1/integrations/{id}", get(integration))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/feedback", get(trail).post(feedback))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(routes.clone(), authorize))
        .with_state(routes)
}

async fn authorize(
    State(routes): State<Routes>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    let ok = given.is_some_and(|g| {
        let d: [u8; 32] = Sha256::digest(g.as_bytes()).into();
        bool::from(d.ct_eq(&*routes.token_digest))
    });
    if !ok {
        tracing::debug!(path = %request.uri().path(), "API request refused: missing or wrong bearer token.");
        let mut r = error(StatusCode::UNAUTHORIZED, "missing or invalid bearer token");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    next.run(request).await
}

/// Runs a possibly long read (whole inventory, audit) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
}

/// 503 with `Retry-After`: the engines are busy, the request may be repeated.
fn busy() -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, Busy.to_string());
    r.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(RETRY_AFTER_SECONDS),
    );
    r
}

async fn integrations(State(r): State<Routes>) -> Response {
    let inv = r.state.inventory.clone();
    match blocking(move || inv.integrations()).await {
        Ok(Ok(list)) => Json(serde_json::json!({ "integrations": list })).into_response(),
        Ok(Err(Busy)) => busy(),
        Err(e) => e,
    }
}

async fn integration(State(r): State<Routes>, Path(id): Path<String>) -> Response {
    let inv = r.state.inventory.clone();
    let lookup = id.clone();
    match blocking(move || inv.integration(&lookup)).await {
        Ok(Ok(Some(d))) => Json(d).into_response(),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, format!("unknown integration {id}")),
        Ok(Err(Busy)) => busy(),
        Err(e) => e,
    }
}

/// Latest instant accepted anywhere (9999-12-31T23:59:59.999Z, as events).
const MAX_INSTANT_MS: i64 = 253_402_300_799_999;

/// Parses an RFC 3339 instant or integer epoch milliseconds within
/// 1970..=9999 (so `as_of=-99999999999999999` is a 400, not an audit).
fn parse_instant(s: &str) -> Option<i64> {
    s.parse::<i64>()
        .ok()
        .or_else(|| parse_rfc3339(s))
        .filter(|t| (0..=MAX_INSTANT_MS).contains(t))
}

/// Largest request body (a feedback request is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Feedback expires at most this long after it is created.
pub const MAX_FEEDBACK_MS: i64 = 366 * 86_400_000;
/// `accept_network` narrower than this needs no `allow_broad` (IPv4, IPv6).
pub const BROAD_PREFIX: (u8, u8) = (8, 32);

/// A 413 for an oversize body, a 400 for any other unreadable one.
fn body_error(e: &JsonRejection) -> Response {
    let status = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    };
    error(status, e.body_text())
}

/// Feedback values an attacker with a token could use to blind detection
/// for good: a network covering the internet, or an expiry centuries away.
fn check_feedback_bounds(req: &FeedbackRequest, created_at_ms: i64) -> Result<(), String> {
    if let FeedbackAction::AcceptNetwork { cidr } = &req.action {
        let min = if cidr.addr().is_ipv4() {
            BROAD_PREFIX.0
        } else {
            BROAD_PREFIX.1
        };
        let broad = cidr.prefix_len() < min;
        if broad && !req.allow_broad {
            return Err(format!(
                "accept_network {cidr} is broader than /{} (IPv4) or /{} (IPv6); set \"allow_broad\": true to mean it",
                BROAD_PREFIX.0, BROAD_PREFIX.1
            ));
        }
    }
    if req.expires_at > created_at_ms.saturating_add(MAX_FEEDBACK_MS) {
        return Err("expires_at is more than 366 days after created_at".into());
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct AlertsQuery {
    since: Option<String>,
    limit: Option<usize>,
}

async fn alerts(
    State(r): State<Routes>,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let since = match q.since.as_deref().map(parse_instant) {
        None => i64::MIN,
        Some(Some(t)) => t,
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "since must be RFC 3339 or epoch milliseconds",
            )
        }
    };
    let limit = q
        .limit
        .unwrap_or(DEFAULT_ALERTS_LIMIT)
        .min(MAX_ALERTS_LIMIT);
    Json(serde_json::json!({ "alerts": r.state.alerts.since(since, limit) })).into_response()
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    as_of: Option<String>,
}

async fn audit(State(r): State<Routes>, q: Result<Query<AuditQuery>, QueryRejection>) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let as_of = match q.as_of.as_deref().map(parse_instant) {
        Some(Some(t)) => Some(t),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "as_of must be RFC 3339 or epoch milliseconds",
            )
        }
        None => None,
    };
    let inv = r.state.inventory.clone();
    // Both lookups block on the engines: off the async runtime.
    let answer = blocking(move || {
        let as_of = match as_of {
            Some(t) => t,
            None => inv.latest_event_ms()?.unwrap_or_else(wall_clock_ms),
        };
        inv.audit(as_of)
    });
    match answer.await {
        Ok(Ok(report)) => Json(report).into_response(),
        Ok(Err(Busy)) => busy(),
        Err(e) => e,
    }
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The body of `POST /api/v1/feedback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub integration_id: String,
    pub action: FeedbackAction,
    /// RFC 3339, compared with event time.
    #[serde(with = "tripline_engine::time::rfc3339")]
    pub expires_at: i64,
    pub author: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub alert_id: Option<String>,
    /// RFC 3339; defaults to the server's clock.
    #[serde(default, with = "opt_rfc3339")]
    pub created_at: Option<i64>,
    /// Required to accept a network broader than [`BROAD_PREFIX`].
    #[serde(default)]
    pub allow_broad: bool,
}

mod opt_rfc3339 {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => tripline_engine::time::parse_rfc3339(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("invalid RFC 3339 timestamp")),
        }
    }
}

async fn feedback(
    State(r): State<Routes>,
    body: Result<Json<FeedbackRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(req)) => req,
        Err(e) => return body_error(&e),
    };
    let created_at_ms = req.created_at.unwrap_or_else(wall_clock_ms);
    if let Err(message) = check_feedback_bounds(&req, created_at_ms) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, message);
    }
    let fb = Feedback {
        integration_id: req.integration_id,
        action: req.action,
        expires_at_ms: req.expires_at,
        author: req.author,
        reason: req.reason,
        alert_id: req.alert_id,
        created_at_ms,
    };
    let applier = r.state.feedback.clone();
    match blocking(move || applier.apply(fb)).await {
        Ok(Ok(rec)) => {
            tracing::info!(
                integration = %safe(&rec.feedback.integration_id),
                author = %safe(&rec.feedback.author),
                seq = rec.seq,
                "Feedback recorded."
            );
            (StatusCode::CREATED, Json(rec)).into_response()
        }
        Ok(Err(FeedbackError::Rejected(message))) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, message)
        }
        Ok(Err(FeedbackError::Busy(Busy))) => busy(),
        Err(e) => e,
    }
}

async fn trail(State(r): State<Routes>) -> Response {
    let applier = r.state.feedback.clone();
    match blocking(move || applier.trail()).await {
        Ok(Ok(trail)) => Json(serde_json::json!({ "feedback": trail })).into_response(),
        Ok(Err(Busy)) => busy(),
        Err(e) => e,
    }
}

/// Audit thresholds used by [`SharedEngine`]'s [`InventoryView::audit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditDefaults {
    pub horizon_days: u32,
    pub dormant_days: u32,
    pub rotation_days: u32,
}

impl Default for AuditDefaults {
    fn default() -> Self {
        AuditDefaults {
            horizon_days: report::DEFAULT_HORIZON_DAYS,
            dormant_days: report::DEFAULT_DORMANT_DAYS,
            rotation_days: report::DEFAULT_ROTATION_DAYS,
        }
    }
}

/// One engine behind a std `Mutex`, serving both API traits in-process
/// (tests, and a single-engine service). Lock it to feed events.
#[derive(Debug)]
pub struct SharedEngine {
    engine: Mutex<Engine>,
    defaults: AuditDefaults,
}

impl SharedEngine {
    /// Wraps an engine with the default audit thresholds.
    pub fn new(engine: Engine) -> Self {
        SharedEngine {
            engine: Mutex::new(engine),
            defaults: AuditDefaults::default(),
        }
    }

    /// Uses other audit thresholds.
    pub fn with_defaults(mut self, defaults: AuditDefaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// The engine, locked. Do not hold the guard across an `.await`.
    pub fn lock(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl InventoryView for SharedEngine {
    fn integrations(&self) -> Result<Vec<IntegrationSummary>, Busy> {
        Ok(inventory::summaries(&self.lock()))
    }

    fn integration(&self, id: &str) -> Result<Option<IntegrationDetail>, Busy> {
        Ok(inventory::detail(&self.lock(), id))
    }

    fn audit(&self, as_of_ms: i64) -> Result<AuditReport, Busy> {
        let d = self.defaults;
        Ok(report::audit(
            &self.lock(),
            &AuditOptions {
                as_of_ms,
                horizon_days: d.horizon_days,
                dormant_days: d.dormant_days,
                rotation_days: d.rotation_days,
            },
        ))
    }

    fn latest_event_ms(&self) -> Result<Option<i64>, Busy> {
        let s = self.lock().stats();
        Ok((s.events > 0).then_some(s.stream_time_ms))
    }
}

impl FeedbackApplier for SharedEngine {
    fn apply(&self, fb: Feedback) -> Result<FeedbackRecord, FeedbackError> {
        let mut engine = self.lock();
        let known = engine.integration(&fb.integration_id).is_some()
            || engine
                .registry()
                .is_some_and(|r| r.integration(&fb.integration_id).is_some());
        if !known {
            return Err(FeedbackError::Rejected(format!(
                "unknown integration {}",
                fb.integration_id
            )));
        }
        engine
            .apply_feedback(&fb)
            .map_err(|e| FeedbackError::Rejected(e.to_string()))?;
        engine
            .feedback()
            .trail()
            .last()
            .cloned()
            .ok_or_else(|| FeedbackError::Rejected("feedback was not recorded".to_owned()))
    }

    fn trail(&self) -> Result<Vec<FeedbackRecord>, Busy> {
        Ok(self.lock().feedback().trail().cloned().collect())
    }
}
