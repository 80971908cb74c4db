//! The integration inventory: what each integration really touched, built
//! from the engine's per-integration state and the registry.
//!
//! Everything here is a read-only view: it borrows an [`Engine`] and copies
//! out plain data, with times as RFC 3339 strings (as in alerts).

use serde::{Deserialize, Serialize};
use tripline_engine::engine::CredentialUse;
use tripline_engine::registry::IntegrationDecl;
use tripline_engine::time::format_rfc3339;
use tripline_engine::{Engine, Feedback};

/// One line of `GET /api/v1/integrations`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntegrationSummary {
    /// `integration_id` as in events and the registry.
    pub id: String,
    /// Whether the registry lists it.
    pub registered: bool,
    /// Whether tripline has seen at least one call from it.
    pub seen: bool,
    /// Registry `name`, when registered.
    pub name: Option<String>,
    /// Registry `owner`, when registered.
    pub owner: Option<String>,
    /// First call seen (RFC 3339), if any.
    pub first_seen: Option<String>,
    /// Last call seen (RFC 3339), if any.
    pub last_seen: Option<String>,
    /// Calls seen.
    pub calls: u64,
    /// Records moved.
    pub records: u64,
    /// Distinct data types (`resource:action`) used.
    pub data_types: usize,
    /// Distinct keys seen.
    pub keys: usize,
    /// Open alert episodes.
    pub open_alerts: usize,
}

/// One data type an integration used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataTypeView {
    /// `resource:action`.
    pub data_type: String,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
    /// Whether the registry grants it (`None`: not registered / no registry).
    pub granted: Option<bool>,
}

/// One source network an integration called from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkView {
    /// The network (CIDR) the engine groups source addresses into.
    pub network: String,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
}

/// One key or principal seen (an identifier, never a secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CredentialView {
    pub id: String,
    pub first_seen: String,
    /// Last use.
    pub last_seen: String,
    pub count: u64,
    /// Whether the registry declares it.
    pub declared: bool,
    /// Registry `revoked_at` / `offboarded_at`, if any.
    pub revoked_at: Option<String>,
}

/// The registry entry, rendered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistryEntryView {
    pub name: Option<String>,
    pub vendor: Option<String>,
    pub owner: Option<String>,
    pub purpose: Option<String>,
    /// `resource:action` grants, `*` wildcards as written.
    pub granted: Vec<String>,
    /// Declared networks (CIDR).
    pub networks: Vec<String>,
    /// Declared active hours, described.
    pub active_hours: Option<String>,
    /// `normal` or `high`.
    pub sensitivity: String,
}

impl RegistryEntryView {
    fn from_decl(d: &IntegrationDecl) -> Self {
        RegistryEntryView {
            name: d.name.clone(),
            vendor: d.vendor.clone(),
            owner: d.owner.clone(),
            purpose: d.purpose.clone(),
            granted: d.granted.iter().map(ToString::to_string).collect(),
            networks: d.networks.iter().map(ToString::to_string).collect(),
            active_hours: d.active_hours.as_ref().map(|h| h.describe()),
            sensitivity: match d.sensitivity {
                tripline_engine::registry::Sensitivity::High => "high",
                tripline_engine::registry::Sensitivity::Normal => "normal",
            }
            .to_owned(),
        }
    }
}

/// An open alert episode.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenAlertView {
    /// The id of the alert that opened the episode.
    pub alert_id: String,
    pub kind: String,
    pub severity: String,
    /// What it is about (a data type, a network, a credential), may be empty.
    pub subject: String,
    pub started: String,
    pub last_seen: String,
    /// Repeats folded into it.
    pub folded: u64,
}

/// `GET /api/v1/integrations/{id}`: everything known about one integration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntegrationDetail {
    #[serde(flatten)]
    pub summary: IntegrationSummary,
    pub bytes: u64,
    pub auth_errors: u64,
    pub data_types: Vec<DataTypeView>,
    pub networks: Vec<NetworkView>,
    pub keys: Vec<CredentialView>,
    pub principals: Vec<CredentialView>,
    /// The registry entry, when registered.
    pub registry: Option<RegistryEntryView>,
    pub open_alerts: Vec<OpenAlertView>,
    /// Feedback held for it (active or not yet pruned).
    pub feedback: Vec<Feedback>,
}

/// Every integration the engine tracks or the registry declares, by id.
pub fn summaries(engine: &Engine) -> Vec<IntegrationSummary> {
    ids(engine)
        .into_iter()
        .map(|id| summary(engine, &id))
        .collect()
}

/// Tracked and declared ids, sorted and deduplicated.
pub(crate) fn ids(engine: &Engine) -> Vec<String> {
    let mut ids: Vec<String> = engine
        .integrations()
        .into_iter()
        .map(|(id, _)| id.to_owned())
        .collect();
    if let Some(r) = engine.registry() {
        ids.extend(r.integrations().iter().map(|d| d.id.clone()));
    }
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn summary(engine: &Engine, id: &str) -> IntegrationSummary {
    let st = engine.integration(id);
    let decl = engine.registry().and_then(|r| r.integration(id));
    IntegrationSummary {
        id: id.to_owned(),
        registered: decl.is_some(),
        seen: st.is_some(),
        name: decl.and_then(|d| d.name.clone()),
        owner: decl.and_then(|d| d.owner.clone()),
        first_seen: st.map(|s| format_rfc3339(s.first_seen)),
        last_seen: st.map(|s| format_rfc3339(s.last_seen)),
        calls: st.map_or(0, |s| s.events),
        records: st.map_or(0, |s| s.records),
        data_types: st.map_or(0, |s| s.data_types.len()),
        keys: st.map_or(0, |s| s.keys.len()),
        open_alerts: st.map_or(0, |s| s.episodes.len()),
    }
}

/// Everything known about `id`, or `None` when it is neither tracked nor
/// declared.
pub fn detail(engine: &Engine, id: &str) -> Option<IntegrationDetail> {
    let st = engine.integration(id);
    let decl = engine.registry().and_then(|r| r.integration(id));
    if st.is_none() && decl.is_none() {
        return None;
    }
    let Some(st_ref) = st else {
        return Some(IntegrationDetail {
            summary: summary(engine, id),
            bytes: 0,
            auth_errors: 0,
            data_types: Vec::new(),
            networks: Vec::new(),
            keys: Vec::new(),
            principals: Vec::new(),
            registry: decl.map(RegistryEntryView::from_decl),
            open_alerts: Vec::new(),
            feedback: engine.feedback().entries(id).to_vec(),
        });
    };
    let registry = engine.registry();
    let mut data_types: Vec<DataTypeView> = st_ref
        .data_types
        .iter()
        .map(|d| DataTypeView {
            data_type: format!("{}:{}", d.resource, d.action.as_str()),
            first_seen: format_rfc3339(d.first_seen),
            last_seen: format_rfc3339(d.last_seen),
            count: d.count,
            granted: decl.map(|g| g.is_granted(&d.resource, d.action)),
        })
        .collect();
    data_types.sort_by(|a, b| a.data_type.cmp(&b.data_type));
    let mut networks: Vec<NetworkView> = st_ref
        .networks
        .iter()
        .map(|n| NetworkView {
            network: n.network.to_string(),
            first_seen: format_rfc3339(n.first_seen),
            last_seen: format_rfc3339(n.last_seen),
            count: n.count,
        })
        .collect();
    networks.sort_by(|a, b| a.network.cmp(&b.network));
    let cred = |c: &CredentialUse, declared: bool, revoked: Option<i64>| CredentialView {
        id: c.id.to_string(),
        first_seen: format_rfc3339(c.first_seen),
        last_seen: format_rfc3339(c.last_seen),
        count: c.count,
        declared,
        revoked_at: revoked.map(format_rfc3339),
    };
    let mut keys: Vec<CredentialView> = st_ref
        .keys
        .iter()
        .map(|k| {
            let d = registry.and_then(|r| r.key(&k.id));
            cred(k, d.is_some(), d.and_then(|d| d.revoked_at))
        })
        .collect();
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    let mut principals: Vec<CredentialView> = st_ref
        .principals
        .iter()
        .map(|p| {
            let d = registry.and_then(|r| r.principal(&p.id));
            cred(p, d.is_some(), d.and_then(|d| d.offboarded_at))
        })
        .collect();
    principals.sort_by(|a, b| a.id.cmp(&b.id));
    let open_alerts = st_ref
        .episodes
        .iter()
        .map(|e| OpenAlertView {
            alert_id: e.alert_id.clone(),
            kind: e.kind.as_str().to_owned(),
            severity: e.severity.as_str().to_owned(),
            subject: e.subject.to_string(),
            started: format_rfc3339(e.started),
            last_seen: format_rfc3339(e.last_seen),
            folded: e.folded,
        })
        .collect();
    Some(IntegrationDetail {
        summary: summary(engine, id),
        bytes: st_ref.bytes,
        auth_errors: st_ref.auth_errors,
        data_types,
        networks,
        keys,
        principals,
        registry: decl.map(RegistryEntryView::from_decl),
        open_alerts,
        feedback: engine.feedback().entries(id).to_vec(),
    })
}
