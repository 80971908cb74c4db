//! `[kafka]` settings: what to consume, where dead letters and alerts go, and
//! the librdkafka properties passed through verbatim.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// A local broker, so `tripline run` works against a dev Kafka without config.
pub const DEFAULT_BROKERS: &str = "localhost:9092";
/// One group per deployment; replicas of one deployment share the partitions.
pub const DEFAULT_GROUP_ID: &str = "tripline";
/// The topic producers are told to write access logs to (`README`, demo).
pub const DEFAULT_TOPIC: &str = "crm-access-logs";
/// Rejected events are kept next to their source topic so they can be replayed.
pub const DEFAULT_DLQ_TOPIC: &str = "crm-access-logs.dlq";
/// Large enough to amortise per-batch costs (offset store, metrics, acks),
/// small enough that one batch is a few milliseconds of engine time.
pub const DEFAULT_BATCH_MAX_EVENTS: usize = 1000;
/// A quiet topic still gets its alerts out within a tenth of a second.
pub const DEFAULT_BATCH_MAX_WAIT_MS: u64 = 100;
/// librdkafka's auto-commit cadence. After a crash at most about this much
/// processed input is consumed again (at-least-once, never lost).
pub const DEFAULT_COMMIT_INTERVAL_MS: u64 = 1000;
/// Shutdown must finish well inside Kubernetes' 30 s termination grace.
pub const DEFAULT_SHUTDOWN_DEADLINE_MS: u64 = 10_000;
/// Consumer lag is read from librdkafka statistics at this cadence: often
/// enough for dashboards, rare enough to cost nothing.
pub const DEFAULT_LAG_INTERVAL_MS: u64 = 5000;
/// A message that librdkafka could not deliver within this time is handed back
/// to us and retried by our loop (which logs and reports it); librdkafka's own
/// five-minute default would hide an outage for that long.
pub const DEFAULT_PRODUCE_TIMEOUT_MS: u64 = 30_000;

/// Upper bound on `workers`.
pub const MAX_WORKERS: usize = 256;
/// A batch is split over worker threads only when each gets at least this
/// many messages: below it, starting a thread costs more than it saves.
pub const DEFAULT_MIN_EVENTS_PER_WORKER: usize = 64;
/// librdkafka's `fetch.wait.max.ms` for the consumer (librdkafka's default is
/// 500). Kafka answers a fetch as soon as `fetch.min.bytes` (1) is there, so
/// on Kafka proper this is no latency term; brokers that hold an empty fetch
/// for the whole wait instead (librdkafka's mock cluster does) would add up
/// to this much to every alert of a caught-up consumer. An idle consumer
/// sends at most 10 empty fetches a second per broker for it. Overridable
/// in `kafka.properties`.
pub const DEFAULT_FETCH_WAIT_MAX_MS: u64 = 100;

/// Property keys tripline sets itself: overriding them would break
/// at-least-once delivery or contradict a dedicated setting.
const RESERVED_PROPERTIES: [(&str, &str); 5] = [
    ("bootstrap.servers", "use kafka.brokers"),
    ("group.id", "use kafka.group_id"),
    (
        "enable.auto.commit",
        "tripline commits stored offsets itself",
    ),
    (
        "enable.auto.offset.store",
        "offsets are stored only after processing (at-least-once)",
    ),
    ("auto.commit.interval.ms", "use kafka.commit_interval_ms"),
];

/// Suffix of a property whose value names an environment variable holding the
/// real value, e.g. `sasl.password_env = "KAFKA_PASSWORD"`.
pub const ENV_SUFFIX: &str = "_env";

/// Kafka source settings. Unknown keys are an error (a typo must not silently
/// fall back to a default).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` bootstrap servers.
    pub brokers: String,
    /// Consumer group. Replicas sharing it split the partitions between them.
    pub group_id: String,
    /// Topics carrying access-log events (`docs/specs/events.md`), keyed by
    /// `integration_id` so that one integration's events stay in order.
    pub topics: Vec<String>,
    /// Where rejected messages go, untouched, with the reason in headers.
    /// An empty string disables dead-lettering (rejects are only counted).
    pub dlq_topic: Option<String>,
    /// If set, every alert is also produced here as JSON, keyed by
    /// `integration_id`, before its input offset is stored.
    pub alerts_topic: Option<String>,
    /// librdkafka properties passed verbatim to the consumer and producer (TLS,
    /// SASL, timeouts). A key ending in `_env` names an environment variable
    /// holding the value of the key without the suffix (`sasl.password_env`).
    /// Values of secret-looking keys are never logged or printed.
    pub properties: BTreeMap<String, String>,
    /// A batch is processed once it holds this many messages...
    pub batch_max_events: usize,
    /// ...or once its first message has waited this long; and at once
    /// when the consumer has nothing more ready (caught up).
    pub batch_max_wait_ms: u64,
    /// How often stored offsets are committed in the background.
    pub commit_interval_ms: u64,
    /// Upper bound on graceful shutdown (drain, flush, final commit).
    pub shutdown_deadline_ms: u64,
    /// How often consumer lag is reported.
    pub lag_interval_ms: u64,
    /// Seeding a new deployment (RFC 3339): a partition with no checkpoint
    /// first learns from the retained topic — events from this time on, up to
    /// the end of the partition when it was assigned — with alerts suppressed,
    /// then goes live. Unset: no seeding.
    pub seed_from: Option<String>,
    /// Threads the partitions' engines are spread over within a batch
    /// (each partition on one thread, in order). 0: one per CPU core.
    pub workers: usize,
    /// A batch uses another worker thread only for at least this many
    /// messages per thread.
    pub min_events_per_worker: usize,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: DEFAULT_BROKERS.to_owned(),
            group_id: DEFAULT_GROUP_ID.to_owned(),
            topics: vec![DEFAULT_TOPIC.to_owned()],
            dlq_topic: Some(DEFAULT_DLQ_TOPIC.to_owned()),
            alerts_topic: None,
            properties: BTreeMap::new(),
            batch_max_events: DEFAULT_BATCH_MAX_EVENTS,
            batch_max_wait_ms: DEFAULT_BATCH_MAX_WAIT_MS,
            commit_interval_ms: DEFAULT_COMMIT_INTERVAL_MS,
            shutdown_deadline_ms: DEFAULT_SHUTDOWN_DEADLINE_MS,
            lag_interval_ms: DEFAULT_LAG_INTERVAL_MS,
            seed_from: None,
            workers: 0,
            min_events_per_worker: DEFAULT_MIN_EVENTS_PER_WORKER,
        }
    }
}

/// Whether a property's value must never be shown.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "key.pem",
        "jaas",
        "oauthbearer.config",
        "token",
    ]
    .iter()
    .any(|s| k.contains(s))
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                let shown = if is_secret_key(k) && !k.ends_with(ENV_SUFFIX) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("dlq_topic", &self.dlq_topic)
            .field("alerts_topic", &self.alerts_topic)
            .field("properties", &props)
            .field("batch_max_events", &self.batch_max_events)
            .field("batch_max_wait_ms", &self.batch_max_wait_ms)
            .field("commit_interval_ms", &self.commit_interval_ms)
            .field("shutdown_deadline_ms", &self.shutdown_deadline_ms)
            .field("lag_interval_ms", &self.lag_interval_ms)
            .field("seed_from", &self.seed_from)
            .field("workers", &self.workers)
            .field("min_events_per_worker", &self.min_events_per_worker)
            .finish()
    }
}

/// A settings problem found while building a client.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// `validate()` found problems; all of them are listed.
    #[error("invalid kafka settings: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// librdkafka refused the configuration.
    #[error("kafka client configuration rejected: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
}

/// Which client a configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Consumer,
    Producer,
}

impl KafkaSettings {
    /// Every problem with the values, not just the first.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(t) = &self.seed_from {
            if tripline_engine::time::parse_rfc3339(t).is_none() {
                p.push(format!("kafka.seed_from = {t:?} is not an RFC 3339 time"));
            }
        }
        if self.brokers.trim().is_empty() {
            p.push("kafka.brokers must not be empty".to_owned());
        }
        if self.group_id.trim().is_empty() {
            p.push("kafka.group_id must not be empty".to_owned());
        }
        if self.topics.is_empty() {
            p.push("kafka.topics must list at least one topic".to_owned());
        }
        for t in &self.topics {
            if t.trim().is_empty() {
                p.push("kafka.topics must not contain an empty name".to_owned());
            }
        }
        for (name, out) in [
            ("dlq_topic", self.dlq_topic()),
            ("alerts_topic", self.alerts_topic()),
        ] {
            if let Some(o) = out {
                if self.topics.iter().any(|t| t == o) {
                    p.push(format!(
                        "kafka.{name} = {o:?} is also an input topic (it would feed itself)"
                    ));
                }
            }
        }
        if !(1..=100_000).contains(&self.batch_max_events) {
            p.push(format!(
                "kafka.batch_max_events = {}: must be 1..=100000",
                self.batch_max_events
            ));
        }
        if !(1..=60_000).contains(&self.batch_max_wait_ms) {
            p.push(format!(
                "kafka.batch_max_wait_ms = {}: must be 1..=60000",
                self.batch_max_wait_ms
            ));
        }
        if !(10..=600_000).contains(&self.commit_interval_ms) {
            p.push(format!(
                "kafka.commit_interval_ms = {}: must be 10..=600000",
                self.commit_interval_ms
            ));
        }
        if !(100..=600_000).contains(&self.shutdown_deadline_ms) {
            p.push(format!(
                "kafka.shutdown_deadline_ms = {}: must be 100..=600000",
                self.shutdown_deadline_ms
            ));
        }
        if !(100..=3_600_000).contains(&self.lag_interval_ms) {
            p.push(format!(
                "kafka.lag_interval_ms = {}: must be 100..=3600000",
                self.lag_interval_ms
            ));
        }
        if self.workers > MAX_WORKERS {
            p.push(format!(
                "kafka.workers = {}: must be 0 (one per core) ..= {MAX_WORKERS}",
                self.workers
            ));
        }
        if !(1..=100_000).contains(&self.min_events_per_worker) {
            p.push(format!(
                "kafka.min_events_per_worker = {}: must be 1..=100000",
                self.min_events_per_worker
            ));
        }
        for (key, why) in RESERVED_PROPERTIES {
            if self.properties.contains_key(key) {
                p.push(format!("kafka.properties.{key:?} may not be set: {why}"));
            }
        }
        for (k, v) in &self.properties {
            if let Some(base) = k.strip_suffix(ENV_SUFFIX) {
                if self.properties.contains_key(base) {
                    p.push(format!(
                        "kafka.properties sets both {base:?} and {k:?}; keep one"
                    ));
                }
                if std::env::var_os(v).is_none() {
                    p.push(format!(
                        "kafka.properties.{k:?} names environment variable {v:?}, which is not set"
                    ));
                }
            }
        }
        p
    }

    /// The dead-letter topic, if dead-lettering is on.
    pub fn dlq_topic(&self) -> Option<&str> {
        self.dlq_topic.as_deref().filter(|t| !t.is_empty())
    }

    /// The alerts topic, if configured.
    pub fn alerts_topic(&self) -> Option<&str> {
        self.alerts_topic.as_deref().filter(|t| !t.is_empty())
    }

    pub(crate) fn batch_max_wait(&self) -> Duration {
        Duration::from_millis(self.batch_max_wait_ms)
    }

    /// `workers`, with 0 resolved to the machine's cores.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        }
        .clamp(1, MAX_WORKERS)
    }

    pub(crate) fn shutdown_deadline(&self) -> Duration {
        Duration::from_millis(self.shutdown_deadline_ms)
    }

    /// The librdkafka configuration for one client. User properties come last
    /// so they can tune anything tripline does not reserve.
    pub fn client_config(&self, role: Role) -> Result<ClientConfig, SettingsError> {
        let problems = self.validate();
        if !problems.is_empty() {
            return Err(SettingsError::Invalid(problems));
        }
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        match role {
            Role::Consumer => {
                c.set("group.id", &self.group_id)
                    .set("enable.auto.commit", "true")
                    .set("enable.auto.offset.store", "false")
                    .set(
                        "auto.commit.interval.ms",
                        self.commit_interval_ms.to_string(),
                    )
                    .set("auto.offset.reset", "earliest")
                    .set("enable.partition.eof", "false")
                    .set("fetch.wait.max.ms", DEFAULT_FETCH_WAIT_MAX_MS.to_string())
                    .set("statistics.interval.ms", self.lag_interval_ms.to_string());
            }
            Role::Producer => {
                c.set("message.timeout.ms", DEFAULT_PRODUCE_TIMEOUT_MS.to_string())
                    .set("linger.ms", "5");
            }
        }
        let mut problems = Vec::new();
        for (k, v) in &self.properties {
            if let Some(base) = k.strip_suffix(ENV_SUFFIX) {
                match std::env::var(v) {
                    Ok(val) => {
                        c.set(base, val);
                    }
                    Err(_) => problems.push(format!(
                        "kafka.properties.{k:?}: environment variable {v:?} is not set or not UTF-8"
                    )),
                }
            } else {
                c.set(k, v);
            }
        }
        if !problems.is_empty() {
            return Err(SettingsError::Invalid(problems));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml_like_json() {
        let s = KafkaSettings::default();
        assert!(s.validate().is_empty(), "{:?}", s.validate());
        let parsed: KafkaSettings = serde_json::from_str(r#"{"brokers":"b:1"}"#).unwrap();
        assert_eq!(parsed.brokers, "b:1");
        assert_eq!(parsed.dlq_topic(), Some(DEFAULT_DLQ_TOPIC));
        assert!(serde_json::from_str::<KafkaSettings>(r#"{"brokrs":"x"}"#).is_err());
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut s = KafkaSettings {
            brokers: String::new(),
            topics: vec!["a".into()],
            dlq_topic: Some("a".into()),
            batch_max_events: 0,
            ..KafkaSettings::default()
        };
        s.properties
            .insert("enable.auto.offset.store".into(), "true".into());
        s.properties.insert(
            "sasl.password_env".into(),
            "TRIPLINE_TEST_SURELY_UNSET_VAR".into(),
        );
        let p = s.validate();
        assert_eq!(p.len(), 5, "{p:#?}");
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let mut s = KafkaSettings::default();
        s.properties
            .insert("sasl.password".into(), "hunter2".into());
        s.properties
            .insert("ssl.key.password".into(), "hunter3".into());
        s.properties.insert("sasl.username".into(), "alice".into());
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("alice"));
    }

    #[test]
    fn env_indirection_resolves_into_the_client_config() {
        let mut s = KafkaSettings::default();
        // PATH is set in every test environment.
        s.properties
            .insert("sasl.password_env".into(), "PATH".into());
        let c = s.client_config(Role::Producer).unwrap();
        assert_eq!(
            c.get("sasl.password"),
            std::env::var("PATH").ok().as_deref()
        );
        assert_eq!(c.get("sasl.password_env"), None);
        let c = s.client_config(Role::Consumer).unwrap();
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
    }

    #[test]
    fn fetch_wait_has_a_latency_minded_default_that_properties_override() {
        let mut s = KafkaSettings::default();
        let c = s.client_config(Role::Consumer).unwrap();
        assert_eq!(c.get("fetch.wait.max.ms"), Some("100"));
        s.properties
            .insert("fetch.wait.max.ms".into(), "500".into());
        let c = s.client_config(Role::Consumer).unwrap();
        assert_eq!(c.get("fetch.wait.max.ms"), Some("500"));
    }
}
