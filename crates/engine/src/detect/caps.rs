//! Caps that fail closed (issue 16): a full learned list still alerts on a
//! new entry (evicting its least-used one, [`saturation`]), and a learning
//! period cannot be filled by a burst of junk: past half a list's cap, new
//! entries are not learned and one alert names the burst
//! ([`Cx::learning_burst`]).

use super::Cx;
use crate::alert::{AlertKind, Evidence};
use crate::episodes::Finding;
use crate::event::Event;
use crate::state::{learning_allowance, IntegrationState};

/// The subject of the one alert on a learning burst (folded while it lasts).
pub(crate) const BURST_SUBJECT: &str = "learning-burst";

/// Records in `evidence` that the list was full and which entry the new one
/// replaced; returns the summary's suffix ("" when the list had room).
pub(super) fn saturation(evidence: &mut Evidence, evicted: Option<&str>, what: &str) -> String {
    let Some(old) = evicted else {
        return String::new();
    };
    evidence.insert("list_saturated".into(), true.into());
    evidence.insert("evicted".into(), old.into());
    format!(" (its {what} list is full: the least-used entry {old} was forgotten)")
}

impl Cx<'_, '_> {
    /// A new entry beyond the learning allowance of a list with cap `cap`:
    /// not learned (it alerts as new once the integration is mature), and
    /// one alert of `kind` on the burst, folded while it goes on.
    pub(super) fn learning_burst(
        &mut self,
        st: &mut IntegrationState,
        ev: &Event<'_>,
        kind: AlertKind,
        enabled: bool,
        cap: usize,
    ) {
        if !enabled || self.fold(st, ev, kind, &[BURST_SUBJECT], 1.0) {
            return;
        }
        let allowance = learning_allowance(cap);
        let (what, entry) = match kind {
            AlertKind::NewSource => (
                "networks",
                ev.source_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            ),
            _ => (
                "data types",
                format!("{}:{}", ev.resource, ev.action.as_str()),
            ),
        };
        let mut evidence = Evidence::new();
        evidence.insert("learning_burst".into(), true.into());
        evidence.insert("learning_allowance".into(), (allowance as u64).into());
        evidence.insert("list_cap".into(), (cap as u64).into());
        evidence.insert("first_not_learned".into(), entry.clone().into());
        let f = Finding {
            kind,
            subject: BURST_SUBJECT,
            key_id: ev.key_id,
            resource: (kind == AlertKind::NewDataType).then(|| ev.resource.to_owned()),
            window: (st.first_seen, ev.ts_ms),
            observed: Some(allowance as f64 + 1.0),
            expected: Some(allowance as f64),
            score: 1.0,
            sensitive: false,
            summary: format!(
                "{} used more than {allowance} distinct {what} while still learning ({entry} and later ones are not learned; they alert once it is mature)",
                ev.integration_id
            ),
            evidence,
        };
        self.open(st, ev, f);
    }
}
