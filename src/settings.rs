//! tripline's configuration: `config/default.toml` (embedded) < `--config FILE`
//! < `TRIPLINE__SECTION__KEY` environment variables.
//!
//! Two stages, as in ripgrep's flags: a raw serde struct filled by the `config`
//! crate, then validation that reports every problem at once (unknown keys
//! anywhere, bad values in every section) rather than the first one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tripline_engine::config::DetectorsConfig;
use tripline_engine::EngineConfig;
use tripline_kafka::KafkaSettings;
use tripline_output::outputs::OutputConfig;

/// The defaults, mirrored by code defaults (a test keeps them equal).
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Default HTTP listen address: loopback, so a sidecar does not expose its
/// admin port by accident; the container image sets 0.0.0.0.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:9464";
/// Spec default shutdown deadline (issue: graceful shutdown within 10 s).
pub const DEFAULT_SHUTDOWN_DEADLINE_SECONDS: u64 = 10;
/// A request head must arrive within this many seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECONDS: u64 = 10;
/// Top-K integrations exported with their anomaly score.
pub const DEFAULT_TOP_K: usize = 20;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Buckets, learning, lateness, memory bounds.
    pub engine: EngineConfig,
    /// Every detector's thresholds, cooldowns and severities.
    pub detectors: DetectorsConfig,
    pub registry: RegistrySettings,
    pub kafka: KafkaSettings,
    pub http: HttpSettings,
    /// Alert outputs; any number at once.
    pub outputs: Vec<OutputConfig>,
    pub shutdown: ShutdownSettings,
    pub checkpoint: CheckpointSettings,
    /// Input formats per topic (docs/formats.md).
    pub ingest: IngestSettings,
    /// `tripline score-series`: the one configuration for every series.
    pub series: tripline_engine::series::SeriesConfig,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestSettings {
    /// Topic → built-in format name (`tripline formats`). Topics not listed
    /// carry canonical events.
    pub formats: std::collections::BTreeMap<String, String>,
    /// Topic → mapping profile file (TOML); with an entry in `formats` it
    /// overrides that built-in key by key.
    pub mappings: std::collections::BTreeMap<String, PathBuf>,
}

impl IngestSettings {
    /// The compiled format of every configured topic, or every problem.
    pub fn topic_formats(
        &self,
        topics: &[String],
    ) -> Result<std::collections::HashMap<String, tripline_ingest::Format>, Vec<String>> {
        let mut out = std::collections::HashMap::new();
        let mut problems = Vec::new();
        let names: std::collections::BTreeSet<&String> =
            self.formats.keys().chain(self.mappings.keys()).collect();
        for topic in names {
            if !topics.contains(topic) {
                problems.push(format!(
                    "ingest: topic {topic:?} has a format but is not in kafka.topics"
                ));
                continue;
            }
            match tripline_ingest::load_format(
                self.formats.get(topic).map(String::as_str),
                self.mappings.get(topic).map(PathBuf::as_path),
            ) {
                Ok(f) => {
                    out.insert(topic.clone(), f);
                }
                Err(e) => problems.extend(
                    e.problems
                        .into_iter()
                        .map(|p| format!("ingest: topic {topic:?} ({}): {p}", e.profile)),
                ),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// Registry file (`docs/specs/registry.md`); `--registry` overrides it.
    pub path: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Where `/metrics`, `/healthz`, `/readyz` (and the API, unless
    /// `api_listen_addr` is set) listen.
    pub listen_addr: String,
    /// Serve the audit API (`/api/v1`) on this address instead of
    /// `listen_addr`, so a NetworkPolicy can open metrics to the monitoring
    /// namespace and the API to its own clients. The admin port then answers
    /// 404 under `/api`.
    pub api_listen_addr: Option<String>,
    /// How many integrations get a `tripline_integration_anomaly_score` series.
    pub top_k: usize,
    /// Environment variable holding the API bearer token (API off when unset).
    pub api_token_env: Option<String>,
    /// File holding the API bearer token.
    pub api_token_file: Option<PathBuf>,
    /// A client must send its request head within this (half-sent requests
    /// are closed).
    pub header_read_timeout_seconds: u64,
    /// Open connections at most; beyond it a new connection is closed at once.
    pub max_connections: usize,
}

impl HttpSettings {
    /// The admin/API server's connection limits.
    pub fn limits(&self) -> tripline_output::HttpLimits {
        tripline_output::HttpLimits {
            header_read_timeout: std::time::Duration::from_secs(self.header_read_timeout_seconds),
            max_connections: self.max_connections,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen_addr: DEFAULT_LISTEN_ADDR.into(),
            api_listen_addr: None,
            top_k: DEFAULT_TOP_K,
            api_token_env: None,
            api_token_file: None,
            header_read_timeout_seconds: DEFAULT_HEADER_READ_TIMEOUT_SECONDS,
            max_connections: tripline_output::HttpLimits::default().max_connections,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownSettings {
    /// On SIGTERM/SIGINT: stop fetching, drain, flush outputs, commit — within this.
    pub deadline_seconds: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        ShutdownSettings {
            deadline_seconds: DEFAULT_SHUTDOWN_DEADLINE_SECONDS,
        }
    }
}

/// Spec default: a checkpoint every 30 s bounds what a crash re-processes.
pub const DEFAULT_CHECKPOINT_INTERVAL_SECONDS: u64 = 30;

/// What to do when a checkpoint exists but cannot be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnCorrupt {
    /// Refuse to start (the operator decides).
    #[default]
    Fail,
    /// Log the problem and start that partition with a cold engine.
    Cold,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointSettings {
    /// Directory for per-partition checkpoints (atomic rename). Unset and no
    /// changelog topic: no checkpoints, every start is cold.
    pub dir: Option<PathBuf>,
    /// Compacted Kafka topic holding per-partition checkpoints, so that any
    /// instance of the consumer group can restore a partition it is handed.
    pub changelog_topic: Option<String>,
    /// Replication factor the changelog topic is created with (if it does
    /// not exist yet); -1: the broker's `default.replication.factor`.
    pub changelog_replication_factor: i32,
    /// `min.insync.replicas` of a created changelog topic (unset: the
    /// broker's default).
    pub changelog_min_insync_replicas: Option<u32>,
    /// How often each partition's state is checkpointed (also on revoke and
    /// shutdown). Offsets are committed only up to the last checkpoint.
    pub interval_seconds: u64,
    /// A corrupt or incompatible checkpoint: `fail` or start `cold`.
    pub on_corrupt: OnCorrupt,
}

impl Default for CheckpointSettings {
    fn default() -> Self {
        CheckpointSettings {
            dir: None,
            changelog_topic: None,
            changelog_replication_factor: 1,
            changelog_min_insync_replicas: None,
            interval_seconds: DEFAULT_CHECKPOINT_INTERVAL_SECONDS,
            on_corrupt: OnCorrupt::Fail,
        }
    }
}

/// Every problem found while loading, one per line.
#[derive(Debug)]
pub struct SettingsError(pub Vec<String>);

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "configuration has {} problem(s):", self.0.len())?;
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

/// Loads defaults < file < environment, then validates everything.
pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
    load_with_env(file, std::env::vars())
}

/// As [`load`], with the environment passed in (tests).
pub fn load_with_env(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, SettingsError> {
    use config::{Config, Environment, File, FileFormat};
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("TRIPLINE__"))
        .collect();
    let mut b = Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
    if let Some(f) = file {
        if !f.exists() {
            return Err(SettingsError(vec![format!(
                "{}: config file not found",
                f.display()
            )]));
        }
        b = b.add_source(File::from(f).format(FileFormat::Toml));
    }
    b = b.add_source(
        Environment::with_prefix("TRIPLINE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("engine.sensitive_resources")
            .with_list_parse_key("kafka.topics")
            .source(Some(env)),
    );
    let merged = b.build().map_err(|e| SettingsError(vec![e.to_string()]))?;
    let mut tree = merged
        .try_deserialize::<serde_json::Value>()
        .map_err(|e| SettingsError(vec![e.to_string()]))?;
    // All unknown keys at once (removed, so the rest can still be checked).
    let mut problems = Vec::new();
    if let Ok(known) = serde_json::to_value(Settings::default()) {
        strip_unknown_keys(&mut tree, &known, "", &mut problems);
    }
    // All type errors at once: serde stops at the first, so each one is
    // recorded with its path, the offending value removed (its default
    // applies) and the rest checked again.
    for _ in 0..MAX_TYPE_PROBLEMS {
        match serde_path_to_error::deserialize::<_, Settings>(&tree) {
            Ok(s) => {
                // Removed values fell back to defaults, so this adds nothing
                // spurious for them.
                problems.extend(s.validate());
                return if problems.is_empty() {
                    Ok(s)
                } else {
                    Err(SettingsError(problems))
                };
            }
            Err(e) => {
                let path = e.path().to_string();
                problems.push(format!("`{path}`: {}", e.inner()));
                if !remove_at(&mut tree, e.path()) {
                    break;
                }
            }
        }
    }
    Err(SettingsError(problems))
}

/// Type errors listed before giving up (each costs one re-deserialization).
const MAX_TYPE_PROBLEMS: usize = 64;

/// Removes the value at `path` from `tree`; false if there is none to remove.
fn remove_at(tree: &mut serde_json::Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segs: Vec<&Segment> = path.iter().collect();
    let Some((last, parents)) = segs.split_last() else {
        return false;
    };
    let mut v = tree;
    for s in parents {
        v = match (s, v) {
            (Segment::Map { key }, serde_json::Value::Object(m)) => match m.get_mut(key) {
                Some(c) => c,
                None => return false,
            },
            (Segment::Seq { index }, serde_json::Value::Array(a)) => match a.get_mut(*index) {
                Some(c) => c,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, v) {
        (Segment::Map { key }, serde_json::Value::Object(m)) => m.remove(key).is_some(),
        (Segment::Seq { index }, serde_json::Value::Array(a)) if *index < a.len() => {
            a.remove(*index);
            true
        }
        _ => false,
    }
}

/// Paths whose children are free-form maps or tagged lists.
const FREE_FORM: [&str; 7] = [
    "kafka.properties",
    "ingest.formats",
    "ingest.mappings",
    "outputs",
    "checkpoint.dir",
    "checkpoint.changelog_topic",
    "checkpoint.changelog_min_insync_replicas",
];

fn strip_unknown_keys(
    v: &mut serde_json::Value,
    known: &serde_json::Value,
    path: &str,
    out: &mut Vec<String>,
) {
    if FREE_FORM.contains(&path) {
        return;
    }
    let (serde_json::Value::Object(m), serde_json::Value::Object(k)) = (v, known) else {
        return;
    };
    let mut unknown = Vec::new();
    for (key, child) in m.iter_mut() {
        let p = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match k.get(key) {
            Some(kc) => strip_unknown_keys(child, kc, &p, out),
            // Optional fields serialize as null in the defaults, so their
            // presence in `k` is what counts: only truly absent keys are unknown.
            None => {
                out.push(format!("unknown key `{p}`"));
                unknown.push(key.clone());
            }
        }
    }
    for key in unknown {
        m.remove(&key);
    }
}

impl Settings {
    /// Every problem in every section.
    pub fn validate(&self) -> Vec<String> {
        let mut p = self.engine.validate();
        p.extend(self.series.validate());
        if self.engine.detectors != DetectorsConfig::default() {
            p.push("detector settings belong under [detectors.*], not [engine.detectors.*]".into());
        }
        let mut e = self.engine.clone();
        e.detectors = self.detectors.clone();
        p.extend(
            e.validate()
                .into_iter()
                .filter(|m| m.starts_with("detectors.")),
        );
        p.extend(
            self.kafka
                .validate()
                .into_iter()
                .map(|m| format!("kafka: {m}")),
        );
        if self
            .http
            .listen_addr
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            p.push(format!(
                "http.listen_addr = {:?}: not an address like 127.0.0.1:9464",
                self.http.listen_addr
            ));
        }
        if let Some(api) = &self.http.api_listen_addr {
            match api.parse::<std::net::SocketAddr>() {
                Err(_) => p.push(format!(
                    "http.api_listen_addr = {api:?}: not an address like 127.0.0.1:9465"
                )),
                Ok(a) if a.port() != 0 && Some(a) == self.http.listen_addr.parse().ok() => {
                    p.push(format!(
                        "http.api_listen_addr = {api:?}: the same address as http.listen_addr (leave it unset to share the admin port)"
                    ))
                }
                Ok(_) => {}
            }
        }
        if self.http.top_k > 1000 {
            p.push(format!(
                "http.top_k = {}: at most 1000 (it bounds metric cardinality)",
                self.http.top_k
            ));
        }
        if !(1..=300).contains(&self.http.header_read_timeout_seconds) {
            p.push(format!(
                "http.header_read_timeout_seconds = {}: must be 1..=300",
                self.http.header_read_timeout_seconds
            ));
        }
        if !(1..=100_000).contains(&self.http.max_connections) {
            p.push(format!(
                "http.max_connections = {}: must be 1..=100000",
                self.http.max_connections
            ));
        }
        if self.checkpoint.interval_seconds == 0 || self.checkpoint.interval_seconds > 86_400 {
            p.push(format!(
                "checkpoint.interval_seconds = {}: must be 1..=86400",
                self.checkpoint.interval_seconds
            ));
        }
        let rf = self.checkpoint.changelog_replication_factor;
        if rf == 0 || !(-1..=32).contains(&rf) {
            p.push(format!(
                "checkpoint.changelog_replication_factor = {rf}: must be -1 (broker default) or 1..=32"
            ));
        }
        if let Some(m) = self.checkpoint.changelog_min_insync_replicas {
            if m == 0 || (rf > 0 && m > rf as u32) {
                p.push(format!(
                    "checkpoint.changelog_min_insync_replicas = {m}: must be 1..=changelog_replication_factor"
                ));
            }
        }
        if self.checkpoint.dir.is_some() && self.checkpoint.changelog_topic.is_some() {
            p.push("checkpoint: set dir or changelog_topic, not both".into());
        }
        if self.shutdown.deadline_seconds == 0 || self.shutdown.deadline_seconds > 600 {
            p.push(format!(
                "shutdown.deadline_seconds = {}: must be 1..=600",
                self.shutdown.deadline_seconds
            ));
        }
        if let Err(e) = self.ingest.topic_formats(&self.kafka.topics) {
            p.extend(e);
        }
        let mut secrets = Vec::new();
        let _ = tripline_output::secret::resolve(
            "http.api_token",
            self.http.api_token_env.as_deref(),
            self.http.api_token_file.as_deref(),
            false,
            &tripline_output::secret::ProcessEnv,
            &mut secrets,
        );
        p.extend(secrets);
        if let Err(e) = tripline_output::outputs::validate_outputs(
            &self.outputs,
            &tripline_output::secret::ProcessEnv,
        ) {
            p.extend(e);
        }
        p
    }

    /// The engine config with the `[detectors]` section folded in.
    pub fn engine_config(&self) -> EngineConfig {
        let mut e = self.engine.clone();
        e.detectors = self.detectors.clone();
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn default_toml_mirrors_code_defaults() {
        let s = load_with_env(None, env(&[])).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn env_overrides_file_and_lists_parse() {
        let s = load_with_env(
            None,
            env(&[
                ("TRIPLINE__ENGINE__BUCKET_SECONDS", "30"),
                ("TRIPLINE__DETECTORS__CALL_SPIKE__MIN_RATIO", "6.5"),
                ("TRIPLINE__ENGINE__SENSITIVE_RESOURCES", "deals,payments"),
                ("TRIPLINE__KAFKA__BROKERS", "k1:9092,k2:9092"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(s.engine.bucket_seconds, 30);
        assert_eq!(s.detectors.call_spike.min_ratio, 6.5);
        assert_eq!(s.engine.sensitive_resources, vec!["deals", "payments"]);
        assert_eq!(s.kafka.brokers, "k1:9092,k2:9092");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[engine]\nbucket_secs = 60\nlateness_seconds = 99999\n[detectors.call_spike]\np_value = 2.0\nthreshold = 1\n[http]\nlisten_addr = \"nope\"\n[bogus]\nx = 1\n",
        )
        .unwrap();
        let err = load_with_env(Some(&f), env(&[])).unwrap_err();
        let all = err.0.join("\n");
        for want in [
            "engine.bucket_secs",
            "detectors.call_spike.threshold",
            "`bogus`",
        ] {
            assert!(all.contains(want), "missing {want}: {all}");
        }
        let err = load_with_env(
            None,
            env(&[
                ("TRIPLINE__ENGINE__LATENESS_SECONDS", "99999"),
                ("TRIPLINE__HTTP__LISTEN_ADDR", "nope"),
                ("TRIPLINE__DETECTORS__CALL_SPIKE__P_VALUE", "2"),
            ]),
        )
        .unwrap_err();
        let all = err.0.join("\n");
        for want in ["lateness_seconds", "listen_addr", "p_value"] {
            assert!(all.contains(want), "missing {want}: {all}");
        }
    }

    #[test]
    fn the_api_listen_addr_must_be_an_address_other_than_the_admin_one() {
        let problems = |api: &str| {
            load_with_env(
                None,
                env(&[
                    ("TRIPLINE__HTTP__LISTEN_ADDR", "127.0.0.1:9464"),
                    ("TRIPLINE__HTTP__API_LISTEN_ADDR", api),
                ]),
            )
            .err()
            .map(|e| e.0.join("\n"))
        };
        assert_eq!(problems("127.0.0.1:9465"), None);
        let same = problems("127.0.0.1:9464").expect("same address refused");
        assert!(same.contains("http.api_listen_addr"), "{same}");
        let bad = problems("nope").expect("not an address");
        assert!(bad.contains("http.api_listen_addr"), "{bad}");
    }

    /// Type errors used to come one per run (serde stops at the first): five
    /// runs to see five. Now every type error and unknown key is listed at once.
    #[test]
    fn type_errors_and_unknown_keys_are_all_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[engine]\nbucket_seconds = \"sixty\"\nlearnin_days = 3\n\
             [detectors.call_spike]\nmin_ratio = \"high\"\n\
             [http]\ntop_k = \"many\"\ncolour = 1\n\
             [shutdown]\ndeadline_seconds = true\n\
             [checkpoint]\ninterval_seconds = [1]\n",
        )
        .unwrap();
        let err = load_with_env(Some(&f), env(&[("TRIPLINE__KAFKA__GROUP_ID", "")])).unwrap_err();
        let all = err.0.join("\n");
        for want in [
            "engine.bucket_seconds",
            "engine.learnin_days",
            "detectors.call_spike.min_ratio",
            "http.top_k",
            "http.colour",
            "shutdown.deadline_seconds",
            "checkpoint.interval_seconds",
            "kafka.group_id",
        ] {
            assert!(all.contains(want), "missing {want}: {all}");
        }
    }

    /// `run` refuses an API token variable that is not set; so must
    /// `check-config` (it used to say ok).
    #[test]
    fn an_unset_api_token_variable_is_a_problem() {
        let err = load_with_env(
            None,
            env(&[(
                "TRIPLINE__HTTP__API_TOKEN_ENV",
                "TRIPLINE_TEST_SURELY_UNSET_TOKEN_VAR",
            )]),
        )
        .unwrap_err();
        let all = err.0.join("\n");
        assert!(
            all.contains("http.api_token_env")
                && all.contains("TRIPLINE_TEST_SURELY_UNSET_TOKEN_VAR"),
            "{all}"
        );
    }
}
