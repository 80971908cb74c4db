//! Shared test helpers: a recording HTTP receiver, `eventually`, alert
//! builders and config parsing.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;
use serde::Deserialize;
use tripline_engine::{Alert, AlertKind, Resolved, Severity};
use tripline_output::{
    validate_outputs, Dispatcher, Metrics, OutputConfig, OutputSettings, SecretSource,
};

/// One request a [`Receiver`] got.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status the receiver answered with.
    pub status: u16,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("receiver got non-JSON body")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<Request>,
    /// Statuses to answer with, in order; empty → `default_status`.
    script: VecDeque<u16>,
    default_status: u16,
}

/// A local HTTP server on 127.0.0.1:0 that records every request and answers
/// with a scripted status.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    pub addr: SocketAddr,
}

async fn record(
    State(r): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut inner = r.inner.lock().unwrap();
    let status = inner.script.pop_front().unwrap_or(inner.default_status);
    inner.requests.push(Request {
        path: uri.path().to_owned(),
        headers,
        body,
        status,
    });
    StatusCode::from_u16(status).unwrap()
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let r = Receiver {
            inner: Arc::new(Mutex::new(Inner {
                default_status: 200,
                ..Default::default()
            })),
            addr,
        };
        let app = Router::new().fallback(record).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answer the next requests with these statuses, then with the default.
    pub fn script(&self, statuses: &[u16]) {
        self.inner.lock().unwrap().script.extend(statuses);
    }

    pub fn set_default_status(&self, status: u16) {
        self.inner.lock().unwrap().default_status = status;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Requests answered with a 2xx.
    pub fn accepted(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }
}

/// Polls `check` every 20 ms until it returns true or `timeout` passes.
pub async fn eventually<F: FnMut() -> bool>(timeout: Duration, what: &str, mut check: F) {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`eventually`] with an async check.
pub async fn eventually_async<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn alert(id: &str, integration: &str, kind: AlertKind, severity: Severity) -> Alert {
    let mut evidence = tripline_engine::Evidence::new();
    evidence.insert("baseline_mean".into(), 38.5.into());
    Alert {
        id: id.into(),
        kind,
        severity,
        integration_id: integration.into(),
        key_id: Some("key-1".into()),
        resource: Some("contacts".into()),
        detected_at: 1_795_000_000_000,
        window_start: 1_794_999_940_000,
        window_end: 1_795_000_000_000,
        observed: Some(812.0),
        expected: Some(38.5),
        score: 0.999,
        summary: format!("{integration} made 812 calls in 1 min; its baseline is 38.5"),
        evidence,
    }
}

pub fn spike(id: &str) -> Alert {
    alert(
        id,
        "mailchimp-sync",
        AlertKind::CallSpike,
        Severity::Critical,
    )
}

pub fn resolved_of(a: &Alert) -> Resolved {
    Resolved {
        id: a.id.clone(),
        kind: a.kind,
        severity: a.severity,
        integration_id: a.integration_id.clone(),
        last_seen: a.detected_at + 60_000,
        resolved_at: a.detected_at + 600_000,
        folded: 4,
    }
}

/// Secrets from a fixed map.
pub struct MapEnv(pub HashMap<String, String>);

impl MapEnv {
    pub fn new(vars: &[(&str, &str)]) -> Self {
        MapEnv(
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }
}

impl SecretSource for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
    fn read_file(&self, path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }
}

/// Parses `[[outputs]]` TOML and validates it against `env`.
pub fn settings(toml_text: &str, env: &[(&str, &str)]) -> Vec<OutputSettings> {
    #[derive(Deserialize)]
    struct Root {
        outputs: Vec<OutputConfig>,
    }
    let root: Root = toml::from_str(toml_text).expect("test config does not parse");
    validate_outputs(&root.outputs, &MapEnv::new(env))
        .unwrap_or_else(|p| panic!("invalid test config: {p:#?}"))
}

/// A dispatcher over `toml_text` with its own metrics.
pub fn dispatcher(toml_text: &str, env: &[(&str, &str)]) -> (Dispatcher, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new("test", 5).unwrap());
    let d = Dispatcher::new(settings(toml_text, env), &metrics).unwrap();
    (d, metrics)
}

/// The value of one series in a text exposition.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}
