//! Engine tuning: bucket size, learning period, lateness, memory bounds and
//! every detector's thresholds. Plain data with serde defaults; the binary fills
//! it from `config/default.toml`, a `--config` file and `TRIPLINE__…` env vars.

use serde::{Deserialize, Serialize};

use crate::alert::{AlertKind, Severity};

/// Why these defaults: one-minute buckets give the "within a minute or two"
/// detection the product promises; a week of learning sees every hour of the
/// week once, which is what the seasonal baseline is indexed by.
pub const DEFAULT_BUCKET_SECONDS: u32 = 60;
/// Spec default for out-of-order tolerance (`events.md`, "Time").
pub const DEFAULT_LATENESS_SECONDS: u32 = 60;
pub const DEFAULT_LEARNING_DAYS: u32 = 7;
/// The process's bound (every partition's engine together). Under a 1M-id
/// flood, peak RSS measured 871 MB at 150k (1.04 GB at 200k: over a 1 GiB
/// pod limit), docs/operations.md "Sizing under attack"; registered
/// integrations are never evicted, so the bound applies to unregistered ids.
pub const DEFAULT_MAX_INTEGRATIONS: usize = 150_000;
pub const DEFAULT_IDLE_EVICT_DAYS: u32 = 400;
/// Event time is written by the people tripline watches: an event more than
/// this far ahead of the partition's robust stream time does not move any
/// clock. A day: an hour was measured to break run ≡ replay — in a sparse
/// partition (a few integrations, quiet nights) the robust stream time lags
/// the newest event by hours, so ordinary morning traffic counted as out of
/// range in `run` but not in `replay`. An event inside the skew can hold an
/// integration's watermark ahead by at most a day (years before).
pub const DEFAULT_MAX_FUTURE_SKEW_SECONDS: u32 = 86_400;

/// Spec default (`registry.md`): resources whose exposure raises severity.
pub fn default_sensitive_resources() -> Vec<String> {
    [
        "notes",
        "deals",
        "payments",
        "invoices",
        "tickets",
        "attachments",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Width of the event-time buckets that counts are kept in.
    pub bucket_seconds: u32,
    /// How far out of order an event may arrive and still be counted in its bucket.
    pub lateness_seconds: u32,
    /// History an integration needs (from its first event) before learned detectors speak.
    pub learning_days: u32,
    /// Most integrations tracked at once; beyond it the least recently seen
    /// unregistered ones are evicted.
    pub max_integrations: usize,
    /// Unregistered integrations idle this long are evicted, measured on
    /// the partition's witnessed time (`clock::Witnesses`).
    pub idle_evict_days: u32,
    /// How far an event may be ahead of the robust stream time (and a new
    /// integration's first event behind it) and still move clocks; beyond
    /// it the event is counted as `ts_out_of_range`, checked by the rule
    /// detectors at the bounded time, and not baselined.
    pub max_future_skew_seconds: u32,
    /// Resources whose appearance raises an alert's severity one step.
    pub sensitive_resources: Vec<String>,
    /// IPv4 prefix length that defines a "network" for `new_source`.
    pub network_prefix_v4: u8,
    /// IPv6 prefix length that defines a "network" for `new_source`.
    pub network_prefix_v6: u8,
    /// Days at the end of a month whose traffic is baselined separately
    /// (month-end billing runs); 0 disables.
    pub month_end_days: u32,
    /// Distinct data types remembered per integration (bounded memory).
    pub max_data_types: usize,
    /// Distinct networks remembered per integration.
    pub max_networks: usize,
    /// Distinct keys remembered per integration.
    pub max_keys: usize,
    /// Open anomaly episodes per integration; past it, new subjects of a
    /// kind fold into one aggregate alert of that kind (`episodes.rs`).
    pub max_open_episodes: usize,
    /// Alerts of one kind per window across integrations (`budget.rs`).
    pub alert_budget: AlertBudgetConfig,
    pub detectors: DetectorsConfig,
}

/// Per-kind alert budgets (`[engine.alert_budget]`): past `per_kind` alerts
/// of a kind in one window (per partition), further alerts of that kind
/// fold into one aggregate alert sent when the window closes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertBudgetConfig {
    pub enabled: bool,
    /// Window of stream time the budget is counted over.
    pub window_minutes: u32,
    /// Alerts of one kind sent individually per window.
    pub per_kind: u32,
    /// A kind's own budget, replacing `per_kind` for it.
    pub kinds: std::collections::BTreeMap<AlertKind, u32>,
}

impl Default for AlertBudgetConfig {
    fn default() -> Self {
        AlertBudgetConfig {
            enabled: true,
            window_minutes: 5,
            per_kind: 20,
            kinds: std::collections::BTreeMap::new(),
        }
    }
}

impl AlertBudgetConfig {
    /// The budget of `kind` per window.
    pub fn limit(&self, kind: AlertKind) -> u32 {
        self.kinds.get(&kind).copied().unwrap_or(self.per_kind)
    }

    pub fn window_ms(&self) -> i64 {
        i64::from(self.window_minutes.max(1)) * crate::time::MINUTE_MS
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            bucket_seconds: DEFAULT_BUCKET_SECONDS,
            lateness_seconds: DEFAULT_LATENESS_SECONDS,
            learning_days: DEFAULT_LEARNING_DAYS,
            max_integrations: DEFAULT_MAX_INTEGRATIONS,
            idle_evict_days: DEFAULT_IDLE_EVICT_DAYS,
            max_future_skew_seconds: DEFAULT_MAX_FUTURE_SKEW_SECONDS,
            sensitive_resources: default_sensitive_resources(),
            network_prefix_v4: 24,
            network_prefix_v6: 48,
            month_end_days: 2,
            max_data_types: 64,
            max_networks: 64,
            max_keys: 32,
            max_open_episodes: 64,
            alert_budget: AlertBudgetConfig::default(),
            detectors: DetectorsConfig::default(),
        }
    }
}

/// Thresholds of a count detector (`call_spike`, `volume_spike`, `error_burst`).
/// A bucket fires only when *all three* hold, so a low-volume integration is
/// not paged for 3 calls instead of 0.2, and a high-volume one not for +5%.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpikeConfig {
    pub enabled: bool,
    /// Upper-tail probability under the baseline's negative-binomial model below
    /// which the running bucket count is improbable.
    pub p_value: f64,
    /// Observed must be at least this multiple of expected.
    pub min_ratio: f64,
    /// Observed must exceed expected by at least this much (calls, records or errors).
    pub min_excess: f64,
    /// Quiet time after which an episode ends (and resolves).
    pub episode_gap_minutes: u32,
    /// Re-alert an episode still ongoing after this long.
    pub cooldown_minutes: u32,
    pub severity: Severity,
}

impl SpikeConfig {
    fn with(min_excess: f64, severity: Severity) -> Self {
        SpikeConfig {
            enabled: true,
            p_value: 1e-6,
            min_ratio: 4.0,
            min_excess,
            episode_gap_minutes: 15,
            cooldown_minutes: 24 * 60,
            severity,
        }
    }
}

/// A detector with no numeric threshold beyond folding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleConfig {
    pub enabled: bool,
    pub episode_gap_minutes: u32,
    pub cooldown_minutes: u32,
    pub severity: Severity,
}

impl RuleConfig {
    fn with(severity: Severity) -> Self {
        RuleConfig {
            enabled: true,
            episode_gap_minutes: 6 * 60,
            cooldown_minutes: 24 * 60,
            severity,
        }
    }
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig::with(Severity::Warning)
    }
}

impl Default for SpikeConfig {
    fn default() -> Self {
        SpikeConfig::with(20.0, Severity::Warning)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DormantConfig {
    pub enabled: bool,
    /// A silence at least this long, and `gap_factor` times the longest gap
    /// seen before, fires whatever the active history before it (a
    /// short-lived integration waking up is exactly the dead connection an
    /// audit looks for).
    pub min_silence_days: u32,
    /// A silence must also be this many times the longest gap seen before.
    pub gap_factor: f64,
    /// A shorter silence, from this many days, also fires when the
    /// integration (or key) had a full learning period of history before it
    /// and the silence is `gap_factor` times its longest gap: long against
    /// its own history.
    pub learned_silence_days: u32,
    pub severity: Severity,
}

impl Default for DormantConfig {
    fn default() -> Self {
        DormantConfig {
            enabled: true,
            min_silence_days: 14,
            gap_factor: 3.0,
            learned_silence_days: 7,
            severity: Severity::Warning,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VolumeConfig {
    #[serde(flatten)]
    pub spike: SpikeConfig,
    /// Bytes must exceed expected by at least this much to fire on bytes alone.
    pub min_excess_bytes: f64,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        VolumeConfig {
            spike: SpikeConfig::with(250.0, Severity::Critical),
            min_excess_bytes: 20_000_000.0,
        }
    }
}

/// Sustained shifts: `call_spike`, `volume_spike` and `error_burst` that
/// build over minutes to hours (a quasi-Poisson CUSUM per series against the
/// seasonal baseline, [`crate::shift`]). Each kind's own `enabled` applies too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SustainedConfig {
    pub enabled: bool,
    /// The rate multiple the statistic is tuned to. A shift below
    /// (ratio - 1) / ln(ratio) of the baseline (2.16 for 4) never accumulates,
    /// however long it lasts; one above it fires sooner the larger it is.
    pub ratio: f64,
    /// Bound on the chance that a run of the statistic under the baseline
    /// reaches the threshold (threshold = ln(1 / p_value) nats; Wald).
    pub p_value: f64,
    /// Also judge calls (per integration, and per key when `per_key`),
    /// against a threshold raised by the integration's own uncertainty about
    /// its call level (`detect/level.rs`).
    pub calls: bool,
    /// Also judge each key's calls against its share of the integration's.
    pub per_key: bool,
    /// Keys carrying more than this share of their integration's calls are
    /// left to the integration-level statistic (they are the integration).
    pub key_share_max: f64,
    /// A key's rise is its own only when its share of the integration's
    /// calls in the window is up too: the binomial upper tail of the key's
    /// calls among the integration's, at the key's usual share, must be
    /// below this (a batch or a rise of the whole integration lifts every
    /// key alike and is the integration-level statistic's to judge). 1 = off.
    pub key_share_p_value: f64,
    /// The exact window test on calls (`detect/exact.rs`): the window the
    /// statistic selected also fires when its negative-binomial upper tail,
    /// times the number of window lengths it was chosen from, is below this.
    /// 0 switches the exact test off.
    pub exact_p_value: f64,
}

/// Why 4: the benign shifts a CRM integration shows for hours (x1.3-1.8:
/// campaigns, catch-up after an outage, rollouts) stay below the break-even
/// ratio 2.16, while a leaked key used at 3x or more accumulates.
pub const DEFAULT_SUSTAINED_RATIO: f64 = 4.0;

/// Why 1e-7: the exact test looks at most once per bucket and series
/// while a window is above the break-even ratio; 100 integration-days hold
/// 144,000 one-minute buckets, so a true tail below 1e-7 (after the scan
/// correction) leaves about 0.01 false alerts per 100 integration-days to
/// noise, the rest of the 0.5 budget to model error (which the level
/// variance in the count model is there to absorb).
pub const DEFAULT_EXACT_P_VALUE: f64 = 1e-7;

impl Default for SustainedConfig {
    fn default() -> Self {
        SustainedConfig {
            enabled: true,
            ratio: DEFAULT_SUSTAINED_RATIO,
            p_value: 1e-9,
            calls: true,
            per_key: true,
            key_share_max: 0.9,
            key_share_p_value: 0.01,
            exact_p_value: DEFAULT_EXACT_P_VALUE,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorsConfig {
    pub call_spike: SpikeConfig,
    pub volume_spike: VolumeConfig,
    pub error_burst: SpikeConfig,
    pub new_data_type: RuleConfig,
    pub new_source: RuleConfig,
    pub dormant_reactivated: DormantConfig,
    pub scope_violation: RuleConfig,
    pub revoked_credential: RuleConfig,
    pub off_hours: RuleConfig,
    pub unknown_integration: RuleConfig,
    pub sustained: SustainedConfig,
}

impl Default for DetectorsConfig {
    fn default() -> Self {
        DetectorsConfig {
            call_spike: SpikeConfig::with(30.0, Severity::Warning),
            volume_spike: VolumeConfig::default(),
            error_burst: SpikeConfig::with(15.0, Severity::Warning),
            new_data_type: RuleConfig::with(Severity::Warning),
            new_source: RuleConfig::with(Severity::Warning),
            dormant_reactivated: DormantConfig::default(),
            scope_violation: RuleConfig::with(Severity::Critical),
            revoked_credential: RuleConfig::with(Severity::Critical),
            off_hours: RuleConfig::with(Severity::Warning),
            unknown_integration: RuleConfig::with(Severity::Warning),
            sustained: SustainedConfig::default(),
        }
    }
}

impl DetectorsConfig {
    /// Whether detector `kind` is switched on.
    pub fn enabled(&self, kind: AlertKind) -> bool {
        match kind {
            AlertKind::CallSpike => self.call_spike.enabled,
            AlertKind::VolumeSpike => self.volume_spike.spike.enabled,
            AlertKind::ErrorBurst => self.error_burst.enabled,
            AlertKind::NewDataType => self.new_data_type.enabled,
            AlertKind::NewSource => self.new_source.enabled,
            AlertKind::DormantReactivated => self.dormant_reactivated.enabled,
            AlertKind::ScopeViolation => self.scope_violation.enabled,
            AlertKind::RevokedCredential => self.revoked_credential.enabled,
            AlertKind::OffHours => self.off_hours.enabled,
            AlertKind::UnknownIntegration => self.unknown_integration.enabled,
        }
    }

    /// (episode gap, cooldown) in ms for folding repeats of `kind`.
    pub fn fold_ms(&self, kind: AlertKind) -> (i64, i64) {
        let (g, c) = match kind {
            AlertKind::CallSpike => (
                self.call_spike.episode_gap_minutes,
                self.call_spike.cooldown_minutes,
            ),
            AlertKind::VolumeSpike => (
                self.volume_spike.spike.episode_gap_minutes,
                self.volume_spike.spike.cooldown_minutes,
            ),
            AlertKind::ErrorBurst => (
                self.error_burst.episode_gap_minutes,
                self.error_burst.cooldown_minutes,
            ),
            // Dormancy is a single moment: the wake-up. Fold a day.
            AlertKind::DormantReactivated => (24 * 60, 24 * 60),
            k => {
                let r = self.rule(k);
                (r.episode_gap_minutes, r.cooldown_minutes)
            }
        };
        (i64::from(g) * 60_000, i64::from(c) * 60_000)
    }

    pub fn severity(&self, kind: AlertKind) -> Severity {
        match kind {
            AlertKind::CallSpike => self.call_spike.severity,
            AlertKind::VolumeSpike => self.volume_spike.spike.severity,
            AlertKind::ErrorBurst => self.error_burst.severity,
            AlertKind::DormantReactivated => self.dormant_reactivated.severity,
            k => self.rule(k).severity,
        }
    }

    fn rule(&self, kind: AlertKind) -> &RuleConfig {
        match kind {
            AlertKind::NewDataType => &self.new_data_type,
            AlertKind::NewSource => &self.new_source,
            AlertKind::ScopeViolation => &self.scope_violation,
            AlertKind::RevokedCredential => &self.revoked_credential,
            AlertKind::OffHours => &self.off_hours,
            _ => &self.unknown_integration,
        }
    }
}

impl EngineConfig {
    /// Every problem with the values, not just the first.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.bucket_seconds == 0 || 3600 % self.bucket_seconds != 0 {
            p.push(format!(
                "engine.bucket_seconds = {}: must divide 3600 (e.g. 30, 60, 300)",
                self.bucket_seconds
            ));
        }
        if self.lateness_seconds > 3600 {
            p.push(format!(
                "engine.lateness_seconds = {}: at most 3600",
                self.lateness_seconds
            ));
        }
        if self.max_future_skew_seconds < self.lateness_seconds
            || self.max_future_skew_seconds > 7 * 86_400
        {
            p.push(format!(
                "engine.max_future_skew_seconds = {}: must be between lateness_seconds and 604800",
                self.max_future_skew_seconds
            ));
        }
        if self.max_integrations < 16 {
            p.push(format!(
                "engine.max_integrations = {}: at least 16",
                self.max_integrations
            ));
        }
        if self.network_prefix_v4 == 0 || self.network_prefix_v4 > 32 {
            p.push(format!(
                "engine.network_prefix_v4 = {}: must be 1..=32",
                self.network_prefix_v4
            ));
        }
        if self.network_prefix_v6 == 0 || self.network_prefix_v6 > 128 {
            p.push(format!(
                "engine.network_prefix_v6 = {}: must be 1..=128",
                self.network_prefix_v6
            ));
        }
        if self.month_end_days > 7 {
            p.push(format!(
                "engine.month_end_days = {}: at most 7",
                self.month_end_days
            ));
        }
        for (name, v) in [
            ("max_data_types", self.max_data_types),
            ("max_networks", self.max_networks),
            ("max_keys", self.max_keys),
            ("max_open_episodes", self.max_open_episodes),
        ] {
            if v == 0 || v > 4096 {
                p.push(format!("engine.{name} = {v}: must be 1..=4096"));
            }
        }
        let b = &self.alert_budget;
        if b.window_minutes == 0 || b.window_minutes > 1440 {
            p.push(format!(
                "engine.alert_budget.window_minutes = {}: must be 1..=1440",
                b.window_minutes
            ));
        }
        for (name, v) in std::iter::once(("per_kind".to_owned(), b.per_kind)).chain(
            b.kinds
                .iter()
                .map(|(k, v)| (format!("kinds.{}", k.as_str()), *v)),
        ) {
            if v == 0 || v > 100_000 {
                p.push(format!(
                    "engine.alert_budget.{name} = {v}: must be 1..=100000 (set enabled = false to send every alert)"
                ));
            }
        }
        let d = &self.detectors;
        for (name, s) in [
            ("call_spike", &d.call_spike),
            ("volume_spike", &d.volume_spike.spike),
            ("error_burst", &d.error_burst),
        ] {
            if !(s.p_value > 0.0 && s.p_value < 0.5) {
                p.push(format!(
                    "detectors.{name}.p_value = {}: must be in (0, 0.5)",
                    s.p_value
                ));
            }
            if !(s.min_ratio >= 1.0 && s.min_ratio.is_finite()) {
                p.push(format!(
                    "detectors.{name}.min_ratio = {}: must be >= 1",
                    s.min_ratio
                ));
            }
            if !(s.min_excess >= 0.0 && s.min_excess.is_finite()) {
                p.push(format!(
                    "detectors.{name}.min_excess = {}: must be >= 0",
                    s.min_excess
                ));
            }
            if s.episode_gap_minutes == 0 {
                p.push(format!("detectors.{name}.episode_gap_minutes must be > 0"));
            }
        }
        let su = &d.sustained;
        if !(su.ratio > 1.0 && su.ratio.is_finite() && su.ratio <= 100.0) {
            p.push(format!(
                "detectors.sustained.ratio = {}: must be in (1, 100]",
                su.ratio
            ));
        }
        if !(su.p_value > 0.0 && su.p_value < 0.5) {
            p.push(format!(
                "detectors.sustained.p_value = {}: must be in (0, 0.5)",
                su.p_value
            ));
        }
        if !(su.exact_p_value >= 0.0 && su.exact_p_value < 0.5) {
            p.push(format!(
                "detectors.sustained.exact_p_value = {}: must be in [0, 0.5)",
                su.exact_p_value
            ));
        }
        if !(su.key_share_max > 0.0 && su.key_share_max <= 1.0) {
            p.push(format!(
                "detectors.sustained.key_share_max = {}: must be in (0, 1]",
                su.key_share_max
            ));
        }
        if !(su.key_share_p_value > 0.0 && su.key_share_p_value <= 1.0) {
            p.push(format!(
                "detectors.sustained.key_share_p_value = {}: must be in (0, 1]",
                su.key_share_p_value
            ));
        }
        if !(d.dormant_reactivated.gap_factor >= 1.0
            && d.dormant_reactivated.gap_factor.is_finite())
        {
            p.push(format!(
                "detectors.dormant_reactivated.gap_factor = {}: must be >= 1",
                d.dormant_reactivated.gap_factor
            ));
        }
        p
    }

    pub fn bucket_ms(&self) -> i64 {
        i64::from(self.bucket_seconds) * 1000
    }

    pub fn lateness_ms(&self) -> i64 {
        i64::from(self.lateness_seconds) * 1000
    }

    pub fn max_future_skew_ms(&self) -> i64 {
        i64::from(self.max_future_skew_seconds) * 1000
    }

    /// A silence after which fewer than 3 events of an integration no
    /// longer count as its learning history (`detect::Cx::observe`): 1.5 ×
    /// the skew, so a daily job's jitter never reaches it.
    pub fn thin_silence_ms(&self) -> i64 {
        self.max_future_skew_ms() / 2 * 3
    }

    pub fn learning_ms(&self) -> i64 {
        i64::from(self.learning_days) * crate::time::DAY_MS
    }

    /// The stale horizon: `idle_evict_days` (never less than the learning
    /// period or the skew). What lies further than this from an event is no
    /// evidence against it: a partition's stream time, or an integration's
    /// clock, resting on fewer than 3 events that far from a new event
    /// restarts (`clock.rs`) — as the idle sweep forgets an integration idle
    /// that long.
    pub fn stale_ms(&self) -> i64 {
        (i64::from(self.idle_evict_days.max(self.learning_days)) * crate::time::DAY_MS)
            .max(self.max_future_skew_ms())
    }
}
