//! Alerts, per `docs/specs/alerts.md`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The ten alert kinds of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    CallSpike,
    VolumeSpike,
    ErrorBurst,
    NewDataType,
    NewSource,
    DormantReactivated,
    ScopeViolation,
    RevokedCredential,
    OffHours,
    UnknownIntegration,
}

impl AlertKind {
    pub const ALL: [AlertKind; 10] = [
        AlertKind::CallSpike,
        AlertKind::VolumeSpike,
        AlertKind::ErrorBurst,
        AlertKind::NewDataType,
        AlertKind::NewSource,
        AlertKind::DormantReactivated,
        AlertKind::ScopeViolation,
        AlertKind::RevokedCredential,
        AlertKind::OffHours,
        AlertKind::UnknownIntegration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::CallSpike => "call_spike",
            AlertKind::VolumeSpike => "volume_spike",
            AlertKind::ErrorBurst => "error_burst",
            AlertKind::NewDataType => "new_data_type",
            AlertKind::NewSource => "new_source",
            AlertKind::DormantReactivated => "dormant_reactivated",
            AlertKind::ScopeViolation => "scope_violation",
            AlertKind::RevokedCredential => "revoked_credential",
            AlertKind::OffHours => "off_hours",
            AlertKind::UnknownIntegration => "unknown_integration",
        }
    }

    pub fn parse(s: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Learned kinds stay silent during an integration's learning period.
    pub fn is_learned(self) -> bool {
        matches!(
            self,
            AlertKind::CallSpike
                | AlertKind::VolumeSpike
                | AlertKind::ErrorBurst
                | AlertKind::NewDataType
                | AlertKind::NewSource
                | AlertKind::DormantReactivated
        )
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// One step up, saturating at critical (used for sensitive resources).
    pub fn raised(self) -> Severity {
        match self {
            Severity::Info => Severity::Warning,
            _ => Severity::Critical,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value in an alert's kind-specific `evidence` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EvidenceValue {
    Null,
    Bool(bool),
    Int(i64),
    Num(f64),
    Str(String),
    List(Vec<String>),
}

impl From<&str> for EvidenceValue {
    fn from(s: &str) -> Self {
        EvidenceValue::Str(s.to_owned())
    }
}
impl From<String> for EvidenceValue {
    fn from(s: String) -> Self {
        EvidenceValue::Str(s)
    }
}
impl From<f64> for EvidenceValue {
    fn from(v: f64) -> Self {
        EvidenceValue::Num(round_sig(v))
    }
}
impl From<i64> for EvidenceValue {
    fn from(v: i64) -> Self {
        EvidenceValue::Int(v)
    }
}
impl From<u64> for EvidenceValue {
    fn from(v: u64) -> Self {
        EvidenceValue::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<bool> for EvidenceValue {
    fn from(v: bool) -> Self {
        EvidenceValue::Bool(v)
    }
}
impl From<Vec<String>> for EvidenceValue {
    fn from(v: Vec<String>) -> Self {
        EvidenceValue::List(v)
    }
}
impl<T: Into<EvidenceValue>> From<Option<T>> for EvidenceValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(EvidenceValue::Null, Into::into)
    }
}

/// Kind-specific detail, rendered as a JSON object with sorted keys.
pub type Evidence = BTreeMap<String, EvidenceValue>;

/// One alert. `tripline replay` writes one per line; webhooks carry the same
/// object; Alertmanager and PagerDuty payloads are built from it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable hex id: the same anomaly seen twice gets the same id.
    pub id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub integration_id: String,
    pub key_id: Option<String>,
    pub resource: Option<String>,
    /// Event time of the event that made the detector fire.
    #[serde(with = "crate::time::rfc3339")]
    pub detected_at: i64,
    #[serde(with = "crate::time::rfc3339")]
    pub window_start: i64,
    #[serde(with = "crate::time::rfc3339")]
    pub window_end: i64,
    pub observed: Option<f64>,
    pub expected: Option<f64>,
    /// In [0, 1]; higher is more anomalous.
    pub score: f64,
    pub summary: String,
    pub evidence: Evidence,
}

/// The end of an anomaly episode: no repeat of it for the episode gap.
/// Outputs that track state (Alertmanager, PagerDuty) resolve the alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    /// The id of the alert that opened the episode.
    pub id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    pub integration_id: String,
    /// Event time the episode was last seen.
    #[serde(with = "crate::time::rfc3339")]
    pub last_seen: i64,
    /// Event time at which the engine decided it had ended.
    #[serde(with = "crate::time::rfc3339")]
    pub resolved_at: i64,
    /// Repeats folded into the episode after its first alert.
    pub folded: u64,
}

/// What one call into the engine produced. Reuse it across calls
/// (`clear()` between batches) so the hot path does not allocate.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub alerts: Vec<Alert>,
    pub resolved: Vec<Resolved>,
}

impl Outputs {
    pub fn clear(&mut self) {
        self.alerts.clear();
        self.resolved.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty() && self.resolved.is_empty()
    }
}

/// Rounds to 6 significant digits so evidence and `expected` stay readable and
/// byte-stable across platforms.
pub fn round_sig(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return if v.is_finite() { 0.0 } else { v };
    }
    let mag = v.abs().log10().floor() as i32;
    let scale = 10f64.powi(5 - mag);
    (v * scale).round() / scale
}

/// Stable 64-bit hex alert id from the anomaly's identity. SHA-256 is used so
/// ids do not depend on the Rust version's hasher and are hard to forge.
pub fn alert_id(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut s = String::with_capacity(16);
    for b in &d[..8] {
        use std::fmt::Write;
        let _ = write!(s, "{b:02x}");
    }
    s
}
