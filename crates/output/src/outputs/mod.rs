//! Alert outputs: configuration, payload encoders and the [`Dispatcher`].
//!
//! Configuration is two-stage. [`OutputConfig`] (`config.rs`) is the raw
//! serde form of one `[[outputs]]` entry; [`validate_outputs`]
//! (`validate.rs`) checks every entry, resolves the secrets they reference
//! and returns validated [`OutputSettings`] (or every problem found). The
//! binary hands those to [`Dispatcher::new`].
//!
//! Each receiver's `*.rs` turns a [`Notification`] into one HTTP request;
//! they are pure functions of the notification and the wall-clock time,
//! tested without any network. `links.rs` is the label and link contract
//! they share (`alertname`, `runbook_url`, `dashboard_url`).

use std::fmt;
use std::sync::Arc;

use reqwest::header::HeaderMap;
use reqwest::Url;
use tripline_engine::{Alert, Resolved, Severity};

use crate::grouping::GroupingConfig;

pub mod alertmanager;
mod config;
mod dispatcher;
mod hold;
#[cfg(test)]
mod hostile_text_tests;
mod human;
pub mod links;
pub mod pagerduty;
mod retry;
mod send;
pub mod slack;
mod stats;
mod validate;
pub mod webhook;

pub use config::*;
pub use dispatcher::{Dispatcher, DispatcherError};
pub use links::Links;
pub use stats::{FlushOutcome, OutputHealth, OutputStats};
pub(crate) use validate::parse_headers;
pub use validate::validate_outputs;

/// A URL that may embed a credential: `Debug` shows only scheme and host.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Url);

impl SecretUrl {
    /// The full URL, for the request only.
    pub fn expose(&self) -> &Url {
        &self.0
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}/[redacted]",
            self.0.scheme(),
            self.0.host_str().unwrap_or("")
        )
    }
}

/// Validated settings of one output.
#[derive(Clone, Debug)]
pub struct OutputSettings {
    /// Unique name, the `output` metric label.
    pub name: String,
    /// Queueing and retries.
    pub delivery: Delivery,
    /// Deduplication and rate limiting.
    pub grouping: GroupingConfig,
    /// Alerts and resolutions below this severity are not sent.
    pub min_severity: Severity,
    pub(crate) kind: OutputKind,
}

impl OutputSettings {
    /// `webhook`, `alertmanager`, `pagerduty` or `slack`.
    pub fn kind(&self) -> &'static str {
        match self.kind {
            OutputKind::Webhook(_) => "webhook",
            OutputKind::Alertmanager(_) => "alertmanager",
            OutputKind::PagerDuty(_) => "pagerduty",
            OutputKind::Slack(_) => "slack",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) enum OutputKind {
    Webhook(webhook::Webhook),
    Alertmanager(alertmanager::Alertmanager),
    PagerDuty(pagerduty::PagerDuty),
    Slack(slack::Slack),
}

/// What an output delivers.
#[derive(Clone, Debug, PartialEq)]
pub enum Notification {
    /// A new alert.
    Firing(Arc<Alert>),
    /// The end of an episode.
    Resolved(Arc<Resolved>),
}

impl Notification {
    /// The alert id it is about.
    pub fn id(&self) -> &str {
        match self {
            Notification::Firing(a) => &a.id,
            Notification::Resolved(r) => &r.id,
        }
    }
}

/// One HTTP POST built by an encoder.
#[derive(Debug)]
pub(crate) struct WireRequest {
    pub url: SecretUrl,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why an encoder could not build a request (a bug, not a receiver problem).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot serialize payload: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid header value")]
    Header,
}

impl OutputKind {
    /// The request for `n` at wall-clock time `now_ms`, or `None` when this
    /// output does not send that notification (e.g. Slack without resolutions).
    pub(crate) fn encode(
        &self,
        n: &Notification,
        now_ms: i64,
    ) -> Result<Option<WireRequest>, EncodeError> {
        match self {
            OutputKind::Webhook(w) => w.encode(n, now_ms).map(Some),
            OutputKind::Alertmanager(a) => a.encode(n, now_ms).map(Some),
            OutputKind::PagerDuty(p) => p.encode(n).map(Some),
            OutputKind::Slack(s) => s.encode(n),
        }
    }
}
