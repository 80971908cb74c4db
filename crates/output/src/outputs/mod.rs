//! Alert outputs: configuration, payload encoders and the [`Dispatcher`].
//!
//! Configuration is two-stage. [`OutputConfig`] is the raw serde form of one
//! `[[outputs]]` entry; [`validate_outputs`] checks every entry, resolves the
//! secrets they reference and returns validated [`OutputSettings`] (or every
//! problem found). The binary hands those to [`Dispatcher::new`].
//!
//! Each `*.rs` next to this file turns a [`Notification`] into one HTTP
//! request for its receiver; they are pure functions of the notification and
//! the wall-clock time, tested without any network.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tripline_engine::{Alert, Resolved};

use crate::grouping::GroupingConfig;
use crate::secret::{self, Secret, SecretSource};

pub mod alertmanager;
mod dispatcher;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

pub use dispatcher::{Dispatcher, DispatcherError, FlushOutcome, OutputHealth, OutputStats};

/// Default queue size per output. An alert is ~1 KiB, so 10,000 queued
/// notifications cost ~10 MiB and cover hours of a receiver outage at any
/// realistic alert rate.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Default first retry delay: long enough not to hammer a restarting receiver.
pub const DEFAULT_INITIAL_BACKOFF_MS: u64 = 500;
/// Default retry delay cap: a receiver that comes back is found within a minute.
pub const DEFAULT_MAX_BACKOFF_MS: u64 = 60_000;
/// Default age after which an undelivered notification is dropped (`expired`):
/// six hours, so an outage of minutes or a bad night loses nothing, while an
/// alert nobody could see for a day is not delivered as if it were news.
pub const DEFAULT_MAX_AGE_SECONDS: u64 = 6 * 3600;
/// Default per-request timeout: receivers answer in milliseconds; ten seconds
/// tolerates a slow one without letting a hung one stall the queue.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Default time an output may fail continuously before `/readyz` reports it:
/// five minutes, longer than a routine receiver restart.
pub const DEFAULT_UNHEALTHY_AFTER_SECONDS: u64 = 300;
/// The PagerDuty Events API v2 endpoint.
pub const DEFAULT_PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// Default Alertmanager re-push interval. Must be well under the alert TTL.
pub const DEFAULT_AM_REPUSH_INTERVAL_SECONDS: u64 = 60;
/// Default `endsAt` horizon of a firing alert pushed to Alertmanager: if
/// tripline stops re-pushing (it crashed), Alertmanager resolves the alert
/// after this long. Five re-push intervals, so a few lost pushes do not flap.
pub const DEFAULT_AM_ALERT_TTL_SECONDS: u64 = 300;
/// Default bound on open Alertmanager episodes kept for re-pushing.
pub const DEFAULT_AM_MAX_OPEN_ALERTS: usize = 10_000;

/// What the dispatcher does when a queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowPolicy {
    /// Drop the oldest queued notification to make room (fresh news wins).
    #[default]
    DropOldest,
    /// Drop the incoming notification (what is queued wins).
    DropNewest,
}

/// Delivery settings shared by every output type (`[outputs.delivery]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Notifications queued for this output before the overflow policy applies.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// `drop_oldest` (default) or `drop_newest`; drops are counted in
    /// `tripline_output_dropped_total{reason="queue_full"}`.
    #[serde(default)]
    pub overflow: OverflowPolicy,
    /// First retry delay; each retry doubles the cap, with full jitter.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Upper bound of a retry delay.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Attempts per notification before it is dropped (`expired`). Unset:
    /// unlimited, bounded by `max_age_seconds`.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// A notification not delivered this long after it was queued is dropped (`expired`).
    #[serde(default = "default_max_age_seconds")]
    pub max_age_seconds: u64,
    /// Timeout of one HTTP request (connect + response).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The output is reported unhealthy on `/readyz` after failing continuously this long.
    #[serde(default = "default_unhealthy_after_seconds")]
    pub unhealthy_after_seconds: u64,
}

fn default_queue_capacity() -> usize {
    DEFAULT_QUEUE_CAPACITY
}
fn default_initial_backoff_ms() -> u64 {
    DEFAULT_INITIAL_BACKOFF_MS
}
fn default_max_backoff_ms() -> u64 {
    DEFAULT_MAX_BACKOFF_MS
}
fn default_max_age_seconds() -> u64 {
    DEFAULT_MAX_AGE_SECONDS
}
fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_unhealthy_after_seconds() -> u64 {
    DEFAULT_UNHEALTHY_AFTER_SECONDS
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            overflow: OverflowPolicy::default(),
            initial_backoff_ms: DEFAULT_INITIAL_BACKOFF_MS,
            max_backoff_ms: DEFAULT_MAX_BACKOFF_MS,
            max_attempts: None,
            max_age_seconds: DEFAULT_MAX_AGE_SECONDS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            unhealthy_after_seconds: DEFAULT_UNHEALTHY_AFTER_SECONDS,
        }
    }
}

/// Validated delivery settings with typed durations.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub queue_capacity: usize,
    pub overflow: OverflowPolicy,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_attempts: Option<u32>,
    pub max_age: Duration,
    pub timeout: Duration,
    pub unhealthy_after: Duration,
}

impl DeliveryConfig {
    fn validate(&self, prefix: &str, problems: &mut Vec<String>) -> Delivery {
        if self.queue_capacity == 0 {
            problems.push(format!(
                "{prefix}.delivery.queue_capacity must be at least 1"
            ));
        }
        if self.initial_backoff_ms == 0 {
            problems.push(format!(
                "{prefix}.delivery.initial_backoff_ms must be at least 1"
            ));
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            problems.push(format!(
                "{prefix}.delivery.max_backoff_ms must be >= initial_backoff_ms"
            ));
        }
        if self.max_attempts == Some(0) {
            problems.push(format!(
                "{prefix}.delivery.max_attempts must be at least 1 (omit it for unlimited)"
            ));
        }
        if self.max_age_seconds == 0 {
            problems.push(format!(
                "{prefix}.delivery.max_age_seconds must be at least 1"
            ));
        }
        if self.timeout_ms == 0 {
            problems.push(format!("{prefix}.delivery.timeout_ms must be at least 1"));
        }
        Delivery {
            queue_capacity: self.queue_capacity.max(1),
            overflow: self.overflow,
            initial_backoff: Duration::from_millis(self.initial_backoff_ms.max(1)),
            max_backoff: Duration::from_millis(
                self.max_backoff_ms.max(self.initial_backoff_ms).max(1),
            ),
            max_attempts: self.max_attempts,
            max_age: Duration::from_secs(self.max_age_seconds.max(1)),
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            unhealthy_after: Duration::from_secs(self.unhealthy_after_seconds),
        }
    }
}

/// `type = "webhook"`: POSTs each alert (and resolution) as JSON, signed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique output name; the `output` label of its metrics.
    pub name: String,
    /// Environment variable holding the receiver URL (it may embed a token).
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the receiver URL.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Environment variable holding the HMAC-SHA256 signing key. Without a
    /// key no `X-Tripline-Signature` header is sent.
    #[serde(default)]
    pub hmac_key_env: Option<String>,
    /// File holding the HMAC-SHA256 signing key.
    #[serde(default)]
    pub hmac_key_file: Option<PathBuf>,
    /// Environment variable holding a bearer token sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// File holding the bearer token.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Extra, non-secret request headers. `Authorization`, `Content-Type`
    /// and `X-Tripline-*` are reserved.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Queueing and retries.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Deduplication and rate limiting.
    #[serde(default)]
    pub grouping: GroupingConfig,
}

/// `type = "alertmanager"`: pushes alerts to Alertmanager's v2 API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Unique output name; the `output` label of its metrics.
    pub name: String,
    /// Alertmanager base URL, e.g. `http://alertmanager:9093`; alerts go to
    /// `<url>/api/v2/alerts`. Must not embed credentials.
    pub url: String,
    /// Environment variable holding a bearer token (e.g. for a proxy in front of Alertmanager).
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// File holding the bearer token.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Static labels added to every alert (e.g. `env = "prod"`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `generatorURL` of every alert (unset: omitted).
    #[serde(default)]
    pub generator_url: Option<String>,
    /// How often open episodes are re-pushed so Alertmanager keeps them firing.
    #[serde(default = "default_am_repush")]
    pub repush_interval_seconds: u64,
    /// `endsAt` of a firing alert is now + this; must exceed the re-push interval.
    #[serde(default = "default_am_ttl")]
    pub alert_ttl_seconds: u64,
    /// Most open episodes remembered for re-pushing (oldest forgotten first).
    #[serde(default = "default_am_max_open")]
    pub max_open_alerts: usize,
    /// Queueing and retries.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Deduplication and rate limiting.
    #[serde(default)]
    pub grouping: GroupingConfig,
}

fn default_am_repush() -> u64 {
    DEFAULT_AM_REPUSH_INTERVAL_SECONDS
}
fn default_am_ttl() -> u64 {
    DEFAULT_AM_ALERT_TTL_SECONDS
}
fn default_am_max_open() -> usize {
    DEFAULT_AM_MAX_OPEN_ALERTS
}

/// `type = "pagerduty"`: PagerDuty Events API v2 trigger/resolve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// Unique output name; the `output` label of its metrics.
    pub name: String,
    /// Environment variable holding the integration (routing) key.
    #[serde(default)]
    pub routing_key_env: Option<String>,
    /// File holding the integration (routing) key.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    /// Events API URL (tests point it at a local server).
    #[serde(default = "default_pd_url")]
    pub events_url: String,
    /// Queueing and retries.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Deduplication and rate limiting.
    #[serde(default)]
    pub grouping: GroupingConfig,
}

fn default_pd_url() -> String {
    DEFAULT_PAGERDUTY_EVENTS_URL.to_owned()
}

/// `type = "slack"`: a Slack incoming webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Unique output name; the `output` label of its metrics.
    pub name: String,
    /// Environment variable holding the incoming-webhook URL (it is a credential).
    #[serde(default)]
    pub webhook_url_env: Option<String>,
    /// File holding the incoming-webhook URL.
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// Also post a message when an episode resolves.
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// Queueing and retries.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Deduplication and rate limiting.
    #[serde(default)]
    pub grouping: GroupingConfig,
}

fn default_true() -> bool {
    true
}

/// One `[[outputs]]` entry, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OutputConfig {
    Webhook(WebhookConfig),
    Alertmanager(AlertmanagerConfig),
    Pagerduty(PagerDutyConfig),
    Slack(SlackConfig),
}

impl OutputConfig {
    /// The configured name.
    pub fn name(&self) -> &str {
        match self {
            OutputConfig::Webhook(c) => &c.name,
            OutputConfig::Alertmanager(c) => &c.name,
            OutputConfig::Pagerduty(c) => &c.name,
            OutputConfig::Slack(c) => &c.name,
        }
    }
}

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

/// Checks `raw` is an absolute http(s) URL, pushing a problem otherwise.
/// The message never includes the URL (it may hold a token).
fn parse_url(
    field: &str,
    raw: &str,
    allow_credentials: bool,
    problems: &mut Vec<String>,
) -> Option<Url> {
    match Url::parse(raw.trim()) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
            if !allow_credentials && (!u.username().is_empty() || u.password().is_some()) {
                problems.push(format!(
                    "{field} must not embed credentials; use bearer_token_env/_file"
                ));
                return None;
            }
            Some(u)
        }
        Ok(_) => {
            problems.push(format!("{field} must be an http or https URL"));
            None
        }
        Err(e) => {
            problems.push(format!("{field} is not a valid URL: {e}"));
            None
        }
    }
}

fn bearer_header(
    token: Option<Secret>,
    field: &str,
    problems: &mut Vec<String>,
) -> Option<HeaderValue> {
    let token = token?;
    match HeaderValue::from_str(&format!("Bearer {}", token.expose())) {
        Ok(mut v) => {
            v.set_sensitive(true);
            Some(v)
        }
        Err(_) => {
            problems.push(format!(
                "{field}: the token contains characters not allowed in a header"
            ));
            None
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Validates every output entry and resolves its secrets from `source`.
/// Returns all problems at once, each prefixed with the entry it is about.
pub fn validate_outputs(
    configs: &[OutputConfig],
    source: &dyn SecretSource,
) -> Result<Vec<OutputSettings>, Vec<String>> {
    let mut problems = Vec::new();
    let mut settings = Vec::with_capacity(configs.len());
    let mut seen = std::collections::HashSet::new();
    for (i, cfg) in configs.iter().enumerate() {
        let name = cfg.name();
        let prefix = format!("outputs[{i}] ({name:?})");
        if !valid_name(name) {
            problems.push(format!(
                "{prefix}.name must be 1-64 characters of letters, digits, '_', '-' or '.'"
            ));
        }
        if !seen.insert(name.to_owned()) {
            problems.push(format!("{prefix}.name is used by another output"));
        }
        let (delivery, grouping, kind) = match cfg {
            OutputConfig::Webhook(c) => {
                let url = secret::resolve(
                    &format!("{prefix}.url"),
                    c.url_env.as_deref(),
                    c.url_file.as_deref(),
                    true,
                    source,
                    &mut problems,
                )
                .and_then(|s| parse_url(&format!("{prefix}.url"), s.expose(), true, &mut problems));
                let key = secret::resolve(
                    &format!("{prefix}.hmac_key"),
                    c.hmac_key_env.as_deref(),
                    c.hmac_key_file.as_deref(),
                    false,
                    source,
                    &mut problems,
                );
                let field = format!("{prefix}.bearer_token");
                let token = secret::resolve(
                    &field,
                    c.bearer_token_env.as_deref(),
                    c.bearer_token_file.as_deref(),
                    false,
                    source,
                    &mut problems,
                );
                let bearer = bearer_header(token, &field, &mut problems);
                let headers = webhook::custom_headers(&prefix, &c.headers, &mut problems);
                let kind = url.map(|url| {
                    OutputKind::Webhook(webhook::Webhook::new(SecretUrl(url), key, bearer, headers))
                });
                (
                    c.delivery.validate(&prefix, &mut problems),
                    c.grouping.clone(),
                    kind,
                )
            }
            OutputConfig::Alertmanager(c) => {
                let url = parse_url(&format!("{prefix}.url"), &c.url, false, &mut problems)
                    .and_then(|u| alertmanager::alerts_endpoint(u, &prefix, &mut problems));
                let field = format!("{prefix}.bearer_token");
                let token = secret::resolve(
                    &field,
                    c.bearer_token_env.as_deref(),
                    c.bearer_token_file.as_deref(),
                    false,
                    source,
                    &mut problems,
                );
                let bearer = bearer_header(token, &field, &mut problems);
                if c.repush_interval_seconds == 0 {
                    problems.push(format!(
                        "{prefix}.repush_interval_seconds must be at least 1"
                    ));
                }
                if c.alert_ttl_seconds <= c.repush_interval_seconds {
                    problems.push(format!(
                        "{prefix}.alert_ttl_seconds must be greater than repush_interval_seconds, \
                         or Alertmanager resolves open alerts between re-pushes"
                    ));
                }
                if c.max_open_alerts == 0 {
                    problems.push(format!("{prefix}.max_open_alerts must be at least 1"));
                }
                for label in c.labels.keys() {
                    if !alertmanager::valid_label_name(label)
                        || alertmanager::RESERVED_LABELS.contains(&label.as_str())
                    {
                        problems.push(format!(
                            "{prefix}.labels: {label:?} is not a valid label name or is reserved"
                        ));
                    }
                }
                if let Some(g) = &c.generator_url {
                    parse_url(&format!("{prefix}.generator_url"), g, false, &mut problems);
                }
                let kind = url.map(|url| {
                    OutputKind::Alertmanager(alertmanager::Alertmanager::new(
                        SecretUrl(url),
                        bearer,
                        c.labels.clone(),
                        c.generator_url.clone(),
                        Duration::from_secs(c.repush_interval_seconds.max(1)),
                        Duration::from_secs(c.alert_ttl_seconds),
                        c.max_open_alerts.max(1),
                    ))
                });
                (
                    c.delivery.validate(&prefix, &mut problems),
                    c.grouping.clone(),
                    kind,
                )
            }
            OutputConfig::Pagerduty(c) => {
                let key = secret::resolve(
                    &format!("{prefix}.routing_key"),
                    c.routing_key_env.as_deref(),
                    c.routing_key_file.as_deref(),
                    true,
                    source,
                    &mut problems,
                );
                let url = parse_url(
                    &format!("{prefix}.events_url"),
                    &c.events_url,
                    false,
                    &mut problems,
                );
                let kind = match (url, key) {
                    (Some(url), Some(key)) => Some(OutputKind::PagerDuty(
                        pagerduty::PagerDuty::new(SecretUrl(url), key),
                    )),
                    _ => None,
                };
                (
                    c.delivery.validate(&prefix, &mut problems),
                    c.grouping.clone(),
                    kind,
                )
            }
            OutputConfig::Slack(c) => {
                let field = format!("{prefix}.webhook_url");
                let url = secret::resolve(
                    &field,
                    c.webhook_url_env.as_deref(),
                    c.webhook_url_file.as_deref(),
                    true,
                    source,
                    &mut problems,
                )
                .and_then(|s| parse_url(&field, s.expose(), true, &mut problems));
                let kind = url
                    .map(|u| OutputKind::Slack(slack::Slack::new(SecretUrl(u), c.send_resolved)));
                (
                    c.delivery.validate(&prefix, &mut problems),
                    c.grouping.clone(),
                    kind,
                )
            }
        };
        grouping.validate(&prefix, &mut problems);
        if let Some(kind) = kind {
            settings.push(OutputSettings {
                name: name.to_owned(),
                delivery,
                grouping,
                kind,
            });
        }
    }
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(problems)
    }
}

/// Parses custom header pairs, pushing a problem for each invalid or reserved one.
pub(crate) fn parse_headers(
    prefix: &str,
    raw: &BTreeMap<String, String>,
    reserved: &[&str],
    problems: &mut Vec<String>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::new();
    for (k, v) in raw {
        let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
            problems.push(format!(
                "{prefix}.headers: {k:?} is not a valid header name"
            ));
            continue;
        };
        let lower = name.as_str();
        if reserved.iter().any(|r| {
            lower == *r || (r.ends_with('*') && lower.starts_with(r.trim_end_matches('*')))
        }) {
            problems.push(format!("{prefix}.headers: {k:?} is reserved"));
            continue;
        }
        match HeaderValue::from_str(v) {
            Ok(val) => out.push((name, val)),
            Err(_) => problems.push(format!(
                "{prefix}.headers: the value of {k:?} is not a valid header value"
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::tests::FakeEnv;

    fn parse(toml_text: &str) -> Vec<OutputConfig> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Root {
            outputs: Vec<OutputConfig>,
        }
        toml::from_str::<Root>(toml_text).unwrap().outputs
    }

    #[test]
    fn parses_every_type_with_defaults() {
        let cfgs = parse(
            r#"
            [[outputs]]
            name = "hook"
            type = "webhook"
            url_env = "HOOK_URL"
            hmac_key_file = "/run/key"
            headers = { "X-Team" = "secops" }
            [outputs.delivery]
            queue_capacity = 5
            overflow = "drop_newest"

            [[outputs]]
            name = "am"
            type = "alertmanager"
            url = "http://127.0.0.1:9093"

            [[outputs]]
            name = "pd"
            type = "pagerduty"
            routing_key_env = "PD_KEY"

            [[outputs]]
            name = "slack"
            type = "slack"
            webhook_url_env = "SLACK_URL"
            [outputs.grouping]
            max_alerts_per_integration_per_hour = 10
            "#,
        );
        let mut env = FakeEnv::default();
        env.vars.insert(
            "HOOK_URL".into(),
            "https://hooks.example/abc?token=SEKRIT".into(),
        );
        env.vars.insert("PD_KEY".into(), "R0UTINGKEY".into());
        env.vars.insert(
            "SLACK_URL".into(),
            "https://hooks.slack.com/services/T/B/SEKRIT".into(),
        );
        env.files.insert("/run/key".into(), "k3y\n".into());
        let s = validate_outputs(&cfgs, &env).unwrap();
        assert_eq!(
            s.iter().map(|s| s.kind()).collect::<Vec<_>>(),
            ["webhook", "alertmanager", "pagerduty", "slack"]
        );
        assert_eq!(s[0].delivery.queue_capacity, 5);
        assert_eq!(s[0].delivery.overflow, OverflowPolicy::DropNewest);
        assert_eq!(s[1].delivery.queue_capacity, DEFAULT_QUEUE_CAPACITY);
        assert_eq!(s[3].grouping.max_alerts_per_integration_per_hour, Some(10));
        let debug = format!("{s:?}");
        for secret in ["SEKRIT", "R0UTINGKEY", "k3y"] {
            assert!(!debug.contains(secret), "{secret} leaked in {debug}");
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        #[derive(Deserialize)]
        struct Root {
            #[allow(dead_code)]
            outputs: Vec<OutputConfig>,
        }
        let bad = r#"
            [[outputs]]
            name = "x"
            type = "slack"
            webhook_url = "https://hooks.slack.com/services/inline-secret"
        "#;
        assert!(toml::from_str::<Root>(bad).is_err());
        let bad_type = r#"
            [[outputs]]
            name = "x"
            type = "email"
        "#;
        assert!(toml::from_str::<Root>(bad_type).is_err());
    }

    #[test]
    fn validation_reports_every_problem_without_secrets() {
        let cfgs = parse(
            r#"
            [[outputs]]
            name = "dup"
            type = "webhook"
            url_env = "MISSING"
            headers = { "Authorization" = "Basic x", "X-Tripline-Signature" = "no" }
            [outputs.delivery]
            queue_capacity = 0
            max_backoff_ms = 1

            [[outputs]]
            name = "dup"
            type = "alertmanager"
            url = "http://user:pw@am:9093"
            repush_interval_seconds = 600
            labels = { alertname = "x" }

            [[outputs]]
            name = "bad name!"
            type = "pagerduty"
            routing_key_env = "K"
            routing_key_file = "/k"
            events_url = "ftp://x"
            "#,
        );
        let problems = validate_outputs(&cfgs, &FakeEnv::default()).unwrap_err();
        let joined = problems.join("\n");
        for needle in [
            "url_env`: environment variable MISSING",
            "\"Authorization\" is reserved",
            "\"X-Tripline-Signature\" is reserved",
            "queue_capacity must be at least 1",
            "max_backoff_ms must be >= initial_backoff_ms",
            "is used by another output",
            "must not embed credentials",
            "alert_ttl_seconds must be greater",
            "\"alertname\" is not a valid label name or is reserved",
            "name must be 1-64 characters",
            "set only one of",
            "events_url must be an http or https URL",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
        }
        assert!(!joined.contains("pw@"), "{joined}");
    }
}
