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
    /// Only for unsigned values above `i64::MAX` (e.g. `records` near 2^64).
    UInt(u64),
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
        i64::try_from(v).map_or(EvidenceValue::UInt(v), EvidenceValue::Int)
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
    /// One sentence for humans. Strings from input inside it are rendered
    /// with [`crate::text::Safe`] when serialized (control, bidi and invisible
    /// characters as `\u{…}`, at most [`crate::text::MAX_SUMMARY_CHARS`]).
    #[serde(serialize_with = "safe_summary")]
    pub summary: String,
    pub evidence: Evidence,
}

fn safe_summary<S: serde::Serializer>(s: &str, ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_str(&crate::text::Safe::new(s, crate::text::MAX_SUMMARY_CHARS))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::IntegrationDecl;
    use crate::{Action, Engine, EngineConfig, Event, Registry};

    /// Ids from input reach alert summaries (issue 16): terminal controls,
    /// bidi overrides, newlines and zero-width characters must arrive escaped.
    #[test]
    fn summaries_from_hostile_ids_carry_no_raw_controls() {
        let reg = Registry::new(vec![IntegrationDecl::new("mailchimp-sync")], vec![], vec![]);
        let mut engine = Engine::new(EngineConfig::default(), Some(reg));
        let mut out = Outputs::default();
        let hostile = "x\u{1b}[2J\u{1b}]0;title\u{7}\r\u{8}\0\u{202e}\nmailchimp\u{200b}-sync";
        engine.process(
            &Event::new(
                1_764_424_992_345,
                hostile,
                "contacts\u{1b}[31m",
                Action::Read,
            ),
            &mut out,
        );
        assert!(!out.alerts.is_empty());
        for a in &out.alerts {
            let json = serde_json::to_string(a).unwrap();
            let back: serde_json::Value = serde_json::from_str(&json).unwrap();
            let summary = back["summary"].as_str().unwrap();
            assert!(
                !crate::text::has_invisible(summary),
                "raw control in {summary:?}"
            );
            assert!(
                summary.contains("\\u{1b}[2J") && summary.contains("\\u{200b}"),
                "{summary}"
            );
            // The machine-readable id stays exact.
            assert_eq!(back["integration_id"].as_str().unwrap(), hostile);
        }
    }

    /// `records = 2^64-1` in an event must show as itself in evidence, not as
    /// i64::MAX (issue 16).
    #[test]
    fn large_unsigned_evidence_is_exact() {
        let v = EvidenceValue::from(u64::MAX);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "18446744073709551615");
        let back: EvidenceValue = serde_json::from_str(&json).unwrap();
        assert_eq!(back, v);
        assert_eq!(EvidenceValue::from(7u64), EvidenceValue::Int(7));
    }
}
