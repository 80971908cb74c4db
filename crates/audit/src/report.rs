//! The least-privilege audit: what to tighten, remove, rotate and chase,
//! judged from the evidence the engine gathered and the registry.
//!
//! Rules (all relative to `as_of`; `docs/audit.md` is the operator's guide):
//! - **unregistered**: tracked integrations the registry does not list.
//! - **tighten**: a grant no use matched within the horizon (recommend
//!   removing it), or a wildcard grant whose recent uses are a few concrete
//!   data types (recommend narrowing to them).
//! - **not granted**: data types used within the horizon that no grant covers.
//! - **remove**: a registered integration with no call for `dormant_days`
//!   (or never seen), and an unrevoked registry key unused for `dormant_days`
//!   (or never used). A removed integration gets no tighten items: removing
//!   it covers them.
//! - **rotate**: an unrevoked registry key whose `created` is at least
//!   `rotation_days` old and that is not already to be removed.
//! - **revoked in use**: a key used at or after its `revoked_at`, or a
//!   principal at or after its `offboarded_at`, listed under the integration
//!   that used it.
//! - **risk**: points per finding (see [`points`]), capped at 100, with the
//!   reasons; integrations are listed by risk, highest first, then by id.
//!
//! The engine keeps first/last use and counts, not every call, so an `as_of`
//! before the last event treats later uses as recent.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tripline_engine::registry::Grant;
use tripline_engine::time::{format_rfc3339, DAY_MS};
use tripline_engine::{Engine, Severity};

use crate::inventory::ids;

/// Default look-back for "used" (days): a quarter covers monthly and
/// quarterly jobs.
pub const DEFAULT_HORIZON_DAYS: u32 = 90;
/// Default silence (days) after which an integration or key should be removed.
pub const DEFAULT_DORMANT_DAYS: u32 = 180;
/// Default key age (days) after which a key should be rotated.
pub const DEFAULT_ROTATION_DAYS: u32 = 90;
/// The risk score is capped here.
pub const MAX_RISK: u32 = 100;

/// Points each finding adds to an integration's risk score.
pub mod points {
    /// Not in the registry at all (a shadow integration).
    pub const UNREGISTERED: u32 = 40;
    /// A revoked key or offboarded principal still in use.
    pub const REVOKED_IN_USE: u32 = 30;
    /// A data type used without a grant.
    pub const NOT_GRANTED: u32 = 15;
    /// Extra when that data type is a sensitive resource.
    pub const SENSITIVE_EXTRA: u32 = 10;
    /// An open critical / warning / info alert episode.
    pub const OPEN_CRITICAL: u32 = 10;
    pub const OPEN_WARNING: u32 = 5;
    pub const OPEN_INFO: u32 = 2;
    /// An unused (or too broad) grant.
    pub const TIGHTEN: u32 = 3;
    /// A key past its rotation age.
    pub const ROTATE: u32 = 5;
    /// A dormant integration / key.
    pub const REMOVE_INTEGRATION: u32 = 10;
    pub const REMOVE_KEY: u32 = 5;
    /// Registry `sensitivity = "high"`, when anything else raised the score.
    pub const HIGH_SENSITIVITY: u32 = 10;
}

/// What an audit looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditOptions {
    /// The instant the audit is for (epoch ms, event time).
    pub as_of_ms: i64,
    /// A grant is unused when nothing matched it in this many days.
    pub horizon_days: u32,
    /// An integration or key is dormant after this many days without use.
    pub dormant_days: u32,
    /// A key is due for rotation at this age (from registry `created`).
    pub rotation_days: u32,
}

impl AuditOptions {
    /// The defaults, as of `as_of_ms`.
    pub fn new(as_of_ms: i64) -> Self {
        AuditOptions {
            as_of_ms,
            horizon_days: DEFAULT_HORIZON_DAYS,
            dormant_days: DEFAULT_DORMANT_DAYS,
            rotation_days: DEFAULT_ROTATION_DAYS,
        }
    }
}

/// The whole audit (`tripline audit --format json`, `GET /api/v1/audit`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditReport {
    /// RFC 3339.
    pub as_of: String,
    pub horizon_days: u32,
    pub dormant_days: u32,
    pub rotation_days: u32,
    /// Whether a registry was loaded (without one only inventory facts and
    /// open alerts count).
    pub registry: bool,
    /// Integrations calling the CRM that the registry does not list.
    pub unregistered: Vec<UnregisteredIntegration>,
    /// Every tracked or declared integration, highest risk first.
    pub integrations: Vec<IntegrationAudit>,
}

/// A shadow integration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnregisteredIntegration {
    pub id: String,
    pub first_seen: String,
    pub last_seen: String,
    pub calls: u64,
    /// Data types it used, sorted.
    pub data_types: Vec<String>,
    /// Keys it used, sorted.
    pub keys: Vec<String>,
    /// Principals it ran as, sorted.
    pub principals: Vec<String>,
}

/// The audit of one integration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntegrationAudit {
    pub id: String,
    pub registered: bool,
    pub name: Option<String>,
    pub owner: Option<String>,
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub calls: u64,
    /// 0-100.
    pub risk: u32,
    /// What raised the score, largest first.
    pub risk_reasons: Vec<RiskReason>,
    pub tighten: Vec<Tighten>,
    pub not_granted: Vec<NotGranted>,
    pub remove: Vec<Remove>,
    pub rotate: Vec<Rotate>,
    pub revoked_in_use: Vec<RevokedInUse>,
}

/// One contribution to a risk score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RiskReason {
    pub points: u32,
    pub reason: String,
}

/// A grant to remove or narrow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tighten {
    /// The grant as written in the registry.
    pub grant: String,
    /// Last use of anything it covers (may be before the horizon).
    pub last_used: Option<String>,
    /// Empty: remove the grant. Otherwise: replace it with these.
    pub narrow_to: Vec<String>,
}

/// A data type used without a grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotGranted {
    pub data_type: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
}

/// What a removal is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoveItem {
    Integration,
    Key,
}

/// A dormant integration or key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Remove {
    pub item: RemoveItem,
    pub id: String,
    /// `None`: never used.
    pub last_used: Option<String>,
    pub reason: String,
}

/// A key due for rotation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rotate {
    pub key_id: String,
    pub created: String,
    pub age_days: u32,
    pub last_used: Option<String>,
}

/// What kind of credential a revoked-in-use finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    Key,
    Principal,
}

/// A revoked key or offboarded principal still in use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RevokedInUse {
    pub credential: Credential,
    pub id: String,
    /// `revoked_at` or `offboarded_at`.
    pub revoked_at: String,
    pub last_used: String,
}

fn days(ms: i64) -> u32 {
    u32::try_from((ms / DAY_MS).max(0)).unwrap_or(u32::MAX)
}

/// Runs the audit over the engine's state and registry.
pub fn audit(engine: &Engine, opts: &AuditOptions) -> AuditReport {
    let as_of = opts.as_of_ms;
    let horizon_start = as_of.saturating_sub(i64::from(opts.horizon_days) * DAY_MS);
    let dormant_before = as_of.saturating_sub(i64::from(opts.dormant_days) * DAY_MS);
    let rotation_ms = i64::from(opts.rotation_days) * DAY_MS;
    let registry = engine.registry();
    let sensitive = |r: &str| engine.config().sensitive_resources.iter().any(|s| s == r);
    // Last use of every key, across integrations (a key may be misused by
    // another integration than the one it was issued to).
    let key_last_used = |key: &str| {
        engine
            .integrations()
            .into_iter()
            .filter_map(|(_, s)| s.keys.iter().find(|k| &*k.id == key).map(|k| k.last_seen))
            .max()
    };

    let mut unregistered = Vec::new();
    let mut integrations = Vec::new();
    for id in ids(engine) {
        let st = engine.integration(&id);
        let decl = registry.and_then(|r| r.integration(&id));
        let mut a = IntegrationAudit {
            id: id.clone(),
            registered: decl.is_some(),
            name: decl.and_then(|d| d.name.clone()),
            owner: decl.and_then(|d| d.owner.clone()),
            first_seen: st.map(|s| format_rfc3339(s.first_seen)),
            last_seen: st.map(|s| format_rfc3339(s.last_seen)),
            calls: st.map_or(0, |s| s.events),
            risk: 0,
            risk_reasons: Vec::new(),
            tighten: Vec::new(),
            not_granted: Vec::new(),
            remove: Vec::new(),
            rotate: Vec::new(),
            revoked_in_use: Vec::new(),
        };
        let mut reasons: Vec<RiskReason> = Vec::new();
        let mut add = |points: u32, reason: String| reasons.push(RiskReason { points, reason });

        if let (Some(_), None, Some(st)) = (registry, decl, st) {
            let sorted = |v: Vec<String>| -> Vec<String> {
                let s: BTreeSet<String> = v.into_iter().collect();
                s.into_iter().collect()
            };
            unregistered.push(UnregisteredIntegration {
                id: id.clone(),
                first_seen: format_rfc3339(st.first_seen),
                last_seen: format_rfc3339(st.last_seen),
                calls: st.events,
                data_types: sorted(
                    st.data_types
                        .iter()
                        .map(|d| format!("{}:{}", d.resource, d.action.as_str()))
                        .collect(),
                ),
                keys: sorted(st.keys.iter().map(|k| k.id.to_string()).collect()),
                principals: sorted(st.principals.iter().map(|p| p.id.to_string()).collect()),
            });
            add(points::UNREGISTERED, "not in the registry".into());
        }

        if let Some(d) = decl {
            // Dormant or never-seen integration.
            match st {
                None => a.remove.push(Remove {
                    item: RemoveItem::Integration,
                    id: id.clone(),
                    last_used: None,
                    reason: "registered but never seen calling the CRM".into(),
                }),
                Some(s) if s.last_seen < dormant_before => a.remove.push(Remove {
                    item: RemoveItem::Integration,
                    id: id.clone(),
                    last_used: Some(format_rfc3339(s.last_seen)),
                    reason: format!("no calls for {} days", days(as_of - s.last_seen)),
                }),
                Some(_) => {}
            }
            let integration_removed = !a.remove.is_empty();
            if integration_removed {
                add(
                    points::REMOVE_INTEGRATION,
                    format!("dormant: {}", a.remove[0].reason),
                );
            }
            // Keys issued to it.
            let mut keys: Vec<_> = registry
                .map(|r| r.keys().iter().filter(|k| k.integration == id).collect())
                .unwrap_or_default();
            keys.sort_by(|x, y| x.id.cmp(&y.id));
            for k in keys {
                if k.revoked_at.is_some_and(|r| r <= as_of) {
                    continue;
                }
                let last = key_last_used(&k.id);
                let dormant = match last {
                    None => Some("never used".to_owned()),
                    Some(l) if l < dormant_before => {
                        Some(format!("unused for {} days", days(as_of - l)))
                    }
                    Some(_) => None,
                };
                if let Some(reason) = dormant {
                    add(points::REMOVE_KEY, format!("dormant key {}", k.id));
                    a.remove.push(Remove {
                        item: RemoveItem::Key,
                        id: k.id.clone(),
                        last_used: last.map(format_rfc3339),
                        reason,
                    });
                    continue;
                }
                if let Some(c) = k.created.filter(|c| as_of - c >= rotation_ms) {
                    add(
                        points::ROTATE,
                        format!("key {} is {} days old", k.id, days(as_of - c)),
                    );
                    a.rotate.push(Rotate {
                        key_id: k.id.clone(),
                        created: format_rfc3339(c),
                        age_days: days(as_of - c),
                        last_used: last.map(format_rfc3339),
                    });
                }
            }
            if let Some(s) = st.filter(|_| !integration_removed) {
                // Grants without recent use, or wildcards wider than the use.
                for g in &d.granted {
                    let uses: Vec<_> = s
                        .data_types
                        .iter()
                        .filter(|u| g.matches(&u.resource, u.action))
                        .collect();
                    let last_used = uses.iter().map(|u| u.last_seen).max();
                    let recent: BTreeSet<String> = uses
                        .iter()
                        .filter(|u| u.last_seen >= horizon_start)
                        .map(|u| format!("{}:{}", u.resource, u.action.as_str()))
                        .collect();
                    let wildcard = g.resource.is_none() || g.action.is_none();
                    if recent.is_empty() || wildcard {
                        let narrow_to: Vec<String> = recent.into_iter().collect();
                        if wildcard && narrow_to.len() == 1 && narrow_to[0] == g.to_string() {
                            continue;
                        }
                        let extra = if is_sensitive_grant(g, &sensitive) {
                            2
                        } else {
                            0
                        };
                        add(
                            points::TIGHTEN + extra,
                            if narrow_to.is_empty() {
                                format!("grant {g} unused for {} days", opts.horizon_days)
                            } else {
                                format!("wildcard grant {g} wider than its use")
                            },
                        );
                        a.tighten.push(Tighten {
                            grant: g.to_string(),
                            last_used: last_used.map(format_rfc3339),
                            narrow_to,
                        });
                    }
                }
                // Uses without a grant.
                let mut ng: Vec<NotGranted> = s
                    .data_types
                    .iter()
                    .filter(|u| {
                        u.last_seen >= horizon_start && !d.is_granted(&u.resource, u.action)
                    })
                    .map(|u| {
                        let dt = format!("{}:{}", u.resource, u.action.as_str());
                        add(
                            points::NOT_GRANTED
                                + if sensitive(&u.resource) {
                                    points::SENSITIVE_EXTRA
                                } else {
                                    0
                                },
                            format!("uses {dt} without a grant"),
                        );
                        NotGranted {
                            data_type: dt,
                            count: u.count,
                            first_seen: format_rfc3339(u.first_seen),
                            last_seen: format_rfc3339(u.last_seen),
                        }
                    })
                    .collect();
                ng.sort_by(|x, y| x.data_type.cmp(&y.data_type));
                a.not_granted = ng;
            }
        }

        if let (Some(r), Some(s)) = (registry, st) {
            for k in &s.keys {
                if let Some(rv) = r
                    .key(&k.id)
                    .and_then(|d| d.revoked_at)
                    .filter(|rv| k.last_seen >= *rv)
                {
                    add(
                        points::REVOKED_IN_USE,
                        format!("revoked key {} still in use", k.id),
                    );
                    a.revoked_in_use.push(RevokedInUse {
                        credential: Credential::Key,
                        id: k.id.to_string(),
                        revoked_at: format_rfc3339(rv),
                        last_used: format_rfc3339(k.last_seen),
                    });
                }
            }
            for p in &s.principals {
                if let Some(off) = r
                    .principal(&p.id)
                    .and_then(|d| d.offboarded_at)
                    .filter(|o| p.last_seen >= *o)
                {
                    add(
                        points::REVOKED_IN_USE,
                        format!("offboarded principal {} still in use", p.id),
                    );
                    a.revoked_in_use.push(RevokedInUse {
                        credential: Credential::Principal,
                        id: p.id.to_string(),
                        revoked_at: format_rfc3339(off),
                        last_used: format_rfc3339(p.last_seen),
                    });
                }
            }
            a.revoked_in_use
                .sort_by(|x, y| (x.credential, &x.id).cmp(&(y.credential, &y.id)));
        }

        // Open alert episodes (still within their episode gap at as_of).
        if let Some(s) = st {
            for e in &s.episodes {
                let (gap, _) = engine.config().detectors.fold_ms(e.kind);
                if as_of - e.last_seen > gap || e.started > as_of {
                    continue;
                }
                let p = match e.severity {
                    Severity::Critical => points::OPEN_CRITICAL,
                    Severity::Warning => points::OPEN_WARNING,
                    Severity::Info => points::OPEN_INFO,
                };
                add(p, format!("open {} {} alert", e.severity, e.kind));
            }
        }

        if !reasons.is_empty()
            && decl.is_some_and(|d| d.sensitivity == tripline_engine::registry::Sensitivity::High)
        {
            reasons.push(RiskReason {
                points: points::HIGH_SENSITIVITY,
                reason: "registry sensitivity is high".into(),
            });
        }
        reasons.sort_by(|x, y| y.points.cmp(&x.points).then(x.reason.cmp(&y.reason)));
        a.risk = reasons.iter().map(|r| r.points).sum::<u32>().min(MAX_RISK);
        a.risk_reasons = reasons;
        integrations.push(a);
    }
    integrations.sort_by(|x, y| y.risk.cmp(&x.risk).then(x.id.cmp(&y.id)));
    AuditReport {
        as_of: format_rfc3339(as_of),
        horizon_days: opts.horizon_days,
        dormant_days: opts.dormant_days,
        rotation_days: opts.rotation_days,
        registry: registry.is_some(),
        unregistered,
        integrations,
    }
}

/// A grant on a sensitive resource, or on every resource.
fn is_sensitive_grant(g: &Grant, sensitive: &impl Fn(&str) -> bool) -> bool {
    g.resource.as_deref().is_none_or(sensitive)
}

impl AuditReport {
    /// The audit of one integration.
    pub fn integration(&self, id: &str) -> Option<&IntegrationAudit> {
        self.integrations.iter().find(|a| a.id == id)
    }
}
