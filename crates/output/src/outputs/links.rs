//! The label and link contract every receiver shares.
//!
//! - `alertname`: `Tripline` + the kind in CamelCase (`TriplineCallSpike`),
//!   the Prometheus ecosystem's style, so tripline's anomalies sit beside
//!   `TriplineDown` and the other rules in Alertmanager, PagerDuty and Slack.
//! - `runbook_url`: `<runbook_url>#kind-<kind>`, an anchor of
//!   `docs/operations.md` for every kind.
//! - `dashboard_url`: the configured template with `{integration_id}`
//!   replaced by the percent-encoded integration id.

use tripline_engine::AlertKind;

/// The placeholder replaced in `dashboard_url`.
pub const INTEGRATION_PLACEHOLDER: &str = "{integration_id}";

/// `alertname` of an alert kind: `Tripline` + CamelCase kind.
pub fn alertname(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::CallSpike => "TriplineCallSpike",
        AlertKind::VolumeSpike => "TriplineVolumeSpike",
        AlertKind::ErrorBurst => "TriplineErrorBurst",
        AlertKind::NewDataType => "TriplineNewDataType",
        AlertKind::NewSource => "TriplineNewSource",
        AlertKind::DormantReactivated => "TriplineDormantReactivated",
        AlertKind::ScopeViolation => "TriplineScopeViolation",
        AlertKind::RevokedCredential => "TriplineRevokedCredential",
        AlertKind::OffHours => "TriplineOffHours",
        AlertKind::UnknownIntegration => "TriplineUnknownIntegration",
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so an
/// integration id can never change the structure of a URL.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runbook and dashboard links of one output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Links {
    runbook_base: String,
    dashboard: Option<String>,
}

impl Links {
    /// `runbook_base` without a fragment; `dashboard` a template with
    /// [`INTEGRATION_PLACEHOLDER`] (or none).
    pub fn new(runbook_base: &str, dashboard: Option<&str>) -> Self {
        let base = runbook_base.split('#').next().unwrap_or(runbook_base);
        Links {
            runbook_base: base.to_owned(),
            dashboard: dashboard.map(str::to_owned),
        }
    }

    /// `<base>#kind-<kind>`.
    pub fn runbook(&self, kind: AlertKind) -> String {
        format!("{}#kind-{}", self.runbook_base, kind.as_str())
    }

    /// The dashboard link of `integration_id`, if a dashboard is configured.
    pub fn dashboard(&self, integration_id: &str) -> Option<String> {
        self.dashboard
            .as_ref()
            .map(|t| t.replace(INTEGRATION_PLACEHOLDER, &percent_encode(integration_id)))
    }
}

impl Default for Links {
    fn default() -> Self {
        Links::new(super::DEFAULT_RUNBOOK_URL, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alertnames_are_camel_case_of_the_kind() {
        for kind in AlertKind::ALL {
            let camel: String = kind
                .as_str()
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                })
                .collect();
            assert_eq!(alertname(kind), format!("Tripline{camel}"));
        }
    }

    #[test]
    fn links_are_built_and_ids_cannot_break_out() {
        let l = Links::new(
            "https://docs.example/ops.md#old",
            Some("https://grafana.example/d/tripline?var-integration={integration_id}"),
        );
        assert_eq!(
            l.runbook(AlertKind::CallSpike),
            "https://docs.example/ops.md#kind-call_spike"
        );
        assert_eq!(
            l.dashboard("a b&c=d/#").as_deref(),
            Some("https://grafana.example/d/tripline?var-integration=a%20b%26c%3Dd%2F%23")
        );
        assert_eq!(Links::default().dashboard("x"), None);
    }
}
