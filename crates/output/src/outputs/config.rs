//! The raw serde form of `[[outputs]]` entries and their shared settings.
//!
//! An entry is an [`OutputConfig`]: the fields every output type has (name,
//! minimum severity, links, delivery, grouping), then the fields of its
//! `type`, flattened in from [`ReceiverConfig`]. Unknown keys are rejected by
//! the type's struct (`deny_unknown_fields`), so a misspelt key of either
//! part fails. [`super::validate_outputs`] turns these into
//! [`super::OutputSettings`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tripline_engine::Severity;

use crate::grouping::GroupingConfig;

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
/// Default shortest time an alert stays firing in Alertmanager: the shipped
/// route's `group_wait` (30 s) + `group_interval` (5 m) + 30 s, so that an
/// alert that joins an existing group is flushed as firing at least once.
pub const DEFAULT_AM_MIN_FIRING_SECONDS: u64 = 360;
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
    pub(crate) fn validate(&self, prefix: &str, problems: &mut Vec<String>) -> Delivery {
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

/// Default base of runbook links: the repository's operations guide, whose
/// `#kind-<kind>` anchors describe every alert kind.
pub const DEFAULT_RUNBOOK_URL: &str =
    "https://github.com/example/tripline/blob/main/docs/operations.md";

/// One `[[outputs]]` entry: the shared fields, then the type's own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputConfig {
    /// Unique output name; the `output` label of its metrics.
    pub name: String,
    /// Alerts (and their resolutions) below this severity are not sent to
    /// this output: `info` (default, everything), `warning` or `critical`.
    #[serde(default = "default_min_severity")]
    pub min_severity: Severity,
    /// Base URL of the runbook; each alert links to `<runbook_url>#kind-<kind>`.
    #[serde(default = "default_runbook_url")]
    pub runbook_url: String,
    /// Dashboard link of an alert; `{integration_id}` is replaced by the
    /// (percent-encoded) integration id. Unset: no dashboard link.
    #[serde(default)]
    pub dashboard_url: Option<String>,
    /// Queueing and retries.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Deduplication and rate limiting.
    #[serde(default)]
    pub grouping: GroupingConfig,
    /// `type = "…"` and the fields of that type.
    #[serde(flatten)]
    pub receiver: ReceiverConfig,
}

fn default_min_severity() -> Severity {
    Severity::Info
}
fn default_runbook_url() -> String {
    DEFAULT_RUNBOOK_URL.to_owned()
}

/// The type-specific part of an output, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ReceiverConfig {
    Webhook(WebhookConfig),
    Alertmanager(AlertmanagerConfig),
    Pagerduty(PagerDutyConfig),
    Slack(SlackConfig),
}

/// `type = "webhook"`: POSTs each alert (and resolution) as JSON, signed per
/// the Standard Webhooks specification.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Environment variable holding the receiver URL (it may embed a token).
    #[serde(default)]
    pub url_env: Option<String>,
    /// File holding the receiver URL.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Environment variable holding one or more Standard Webhooks signing
    /// secrets (`whsec_<base64>`, separated by whitespace). Each one adds a
    /// `v1,<signature>` to `webhook-signature`, so keys rotate without
    /// downtime. Without a secret no signature is sent.
    #[serde(default)]
    pub signing_secret_env: Option<String>,
    /// File holding the signing secret(s).
    #[serde(default)]
    pub signing_secret_file: Option<PathBuf>,
    /// Compatibility: also send the pre-Standard-Webhooks headers
    /// `X-Tripline-Timestamp` and `X-Tripline-Signature: sha256=<hex>`
    /// (HMAC-SHA256 of `timestamp.body` with `hmac_key`).
    #[serde(default)]
    pub legacy_signature: bool,
    /// Environment variable holding the legacy HMAC key (`legacy_signature` only).
    #[serde(default)]
    pub hmac_key_env: Option<String>,
    /// File holding the legacy HMAC key.
    #[serde(default)]
    pub hmac_key_file: Option<PathBuf>,
    /// Environment variable holding a bearer token sent as `Authorization: Bearer …`.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// File holding the bearer token.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Extra, non-secret request headers. `Authorization`, `Content-Type`,
    /// `webhook-*` and `X-Tripline-*` are reserved.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `type = "alertmanager"`: pushes alerts to Alertmanager's v2 API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// Alertmanager base URL, e.g. `http://alertmanager:9093`; alerts go to
    /// `<url>/api/v2/alerts`. Must not embed credentials.
    #[serde(default)]
    pub url: Option<String>,
    /// Instead of `url`: every replica of an Alertmanager cluster (alerts
    /// are not gossiped between replicas; each must get them). One output
    /// per replica, named `<name>-<index>`, each with its own queue.
    #[serde(default)]
    pub urls: Vec<String>,
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
    /// Shortest time an alert stays firing in Alertmanager: a resolution
    /// sooner than this after the first push is sent with `endsAt` = first
    /// push + this, because Alertmanager never notifies an alert that fired
    /// and resolved between two flushes of its group. At least `group_wait`
    /// + `group_interval` of the route; 0 resolves at once.
    #[serde(default = "default_am_min_firing")]
    pub min_firing_seconds: u64,
    /// Most open episodes remembered for re-pushing (oldest forgotten first).
    #[serde(default = "default_am_max_open")]
    pub max_open_alerts: usize,
}

fn default_am_repush() -> u64 {
    DEFAULT_AM_REPUSH_INTERVAL_SECONDS
}
fn default_am_ttl() -> u64 {
    DEFAULT_AM_ALERT_TTL_SECONDS
}
fn default_am_min_firing() -> u64 {
    DEFAULT_AM_MIN_FIRING_SECONDS
}
fn default_am_max_open() -> usize {
    DEFAULT_AM_MAX_OPEN_ALERTS
}

/// `type = "pagerduty"`: PagerDuty Events API v2 trigger/resolve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// Environment variable holding the integration (routing) key.
    #[serde(default)]
    pub routing_key_env: Option<String>,
    /// File holding the integration (routing) key.
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    /// Events API URL (tests point it at a local server).
    #[serde(default = "default_pd_url")]
    pub events_url: String,
}

fn default_pd_url() -> String {
    DEFAULT_PAGERDUTY_EVENTS_URL.to_owned()
}

/// `type = "slack"`: a Slack incoming webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Environment variable holding the incoming-webhook URL (it is a credential).
    #[serde(default)]
    pub webhook_url_env: Option<String>,
    /// File holding the incoming-webhook URL.
    #[serde(default)]
    pub webhook_url_file: Option<PathBuf>,
    /// Also post a message when an episode resolves.
    #[serde(default = "default_true")]
    pub send_resolved: bool,
}

fn default_true() -> bool {
    true
}
