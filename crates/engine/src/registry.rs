//! The declared-integrations registry (`docs/specs/registry.md`), validated.
//!
//! Parsing TOML (with file and line numbers in errors) happens in
//! `tripline-ingest`; the engine only sees this already-checked model.

use std::net::IpAddr;

use ipnet::IpNet;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::event::Action;
use crate::time::{minute_of_day, weekday};

/// One `granted` entry: `resource:action`, `*` on either side a wildcard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// `None` is `*`.
    pub resource: Option<String>,
    /// `None` is `*`.
    pub action: Option<Action>,
}

impl Grant {
    /// Parses `contacts:read`, `contacts:*`, `*:read`, `*:*` or `*`.
    pub fn parse(s: &str) -> Result<Grant, String> {
        if s == "*" {
            return Ok(Grant {
                resource: None,
                action: None,
            });
        }
        let (r, a) = s
            .split_once(':')
            .ok_or_else(|| format!("grant {s:?} is not resource:action"))?;
        if r.is_empty() || r.len() > 128 {
            return Err(format!("grant {s:?}: resource must be 1-128 bytes"));
        }
        let action = match a {
            "*" => None,
            a => Some(Action::parse(a).ok_or_else(|| {
                format!("grant {s:?}: action must be read, write, delete, export or *")
            })?),
        };
        Ok(Grant {
            resource: (r != "*").then(|| r.to_owned()),
            action,
        })
    }

    pub fn matches(&self, resource: &str, action: Action) -> bool {
        self.resource.as_deref().is_none_or(|r| r == resource)
            && self.action.is_none_or(|a| a == action)
    }

    /// Whether this grant covers any use of `resource` (any action).
    pub fn covers(&self, resource: &str, action: Action) -> bool {
        self.matches(resource, action)
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}",
            self.resource.as_deref().unwrap_or("*"),
            self.action.map_or("*", Action::as_str)
        )
    }
}

/// `active_hours`: days (Monday = 0) and a local-time window. A window whose end
/// is not after its start runs over midnight and belongs to the day it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveHours {
    pub days: [bool; 7],
    pub start_minute: u32,
    /// Exclusive; 1440 for "24:00".
    pub end_minute: u32,
    pub utc_offset_minutes: i32,
}

impl ActiveHours {
    pub fn contains(&self, ts_ms: i64) -> bool {
        let wd = weekday(ts_ms, self.utc_offset_minutes) as usize;
        let m = minute_of_day(ts_ms, self.utc_offset_minutes);
        if self.start_minute < self.end_minute {
            self.days[wd] && m >= self.start_minute && m < self.end_minute
        } else {
            (self.days[wd] && m >= self.start_minute)
                || (self.days[(wd + 6) % 7] && m < self.end_minute)
        }
    }

    pub fn describe(&self) -> String {
        const D: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let days: Vec<&str> = (0..7).filter(|i| self.days[*i]).map(|i| D[i]).collect();
        let sign = if self.utc_offset_minutes < 0 {
            '-'
        } else {
            '+'
        };
        let off = self.utc_offset_minutes.unsigned_abs();
        format!(
            "{} {:02}:{:02}-{:02}:{:02} UTC{}{:02}:{:02}",
            days.join(","),
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60,
            sign,
            off / 60,
            off % 60
        )
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sensitivity {
    #[default]
    Normal,
    High,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IntegrationDecl {
    pub id: String,
    pub name: Option<String>,
    pub vendor: Option<String>,
    pub owner: Option<String>,
    pub purpose: Option<String>,
    pub granted: Vec<Grant>,
    /// Empty: no declared networks (only learned `new_source` applies).
    pub networks: Vec<IpNet>,
    pub active_hours: Option<ActiveHours>,
    pub sensitivity: Sensitivity,
}

impl IntegrationDecl {
    pub fn new(id: &str) -> Self {
        IntegrationDecl {
            id: id.to_owned(),
            name: None,
            vendor: None,
            owner: None,
            purpose: None,
            granted: Vec::new(),
            networks: Vec::new(),
            active_hours: None,
            sensitivity: Sensitivity::Normal,
        }
    }

    pub fn is_granted(&self, resource: &str, action: Action) -> bool {
        self.granted.iter().any(|g| g.matches(resource, action))
    }

    pub fn network_allowed(&self, ip: IpAddr) -> bool {
        self.networks.is_empty() || self.networks.iter().any(|n| n.contains(&ip))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyDecl {
    pub id: String,
    pub integration: String,
    /// Epoch ms.
    pub created: Option<i64>,
    /// Epoch ms; any use at or after it is an alert.
    pub revoked_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrincipalDecl {
    pub id: String,
    /// Epoch ms; any call as this principal at or after it is an alert.
    pub offboarded_at: Option<i64>,
}

/// The validated registry. Look-ups are by borrowed id, allocation-free.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    integrations: Vec<IntegrationDecl>,
    keys: Vec<KeyDecl>,
    principals: Vec<PrincipalDecl>,
    #[serde(skip)]
    index: Index,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Index {
    integrations: FxHashMap<String, usize>,
    keys: FxHashMap<String, usize>,
    principals: FxHashMap<String, usize>,
    /// Skeletons ([`crate::confusable::skeletons`]) of every registered
    /// integration id → the first integration with that skeleton.
    skeletons: FxHashMap<String, usize>,
}

impl Registry {
    /// Builds a registry. Duplicate ids are the caller's to reject (ingest does,
    /// with line numbers); here the last one wins.
    pub fn new(
        integrations: Vec<IntegrationDecl>,
        keys: Vec<KeyDecl>,
        principals: Vec<PrincipalDecl>,
    ) -> Self {
        let mut r = Registry {
            integrations,
            keys,
            principals,
            index: Index::default(),
        };
        r.reindex();
        r
    }

    fn reindex(&mut self) {
        self.index.integrations = self
            .integrations
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        self.index.keys = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        self.index.principals = self
            .principals
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        let mut skeletons = FxHashMap::default();
        for (i, d) in self.integrations.iter().enumerate() {
            for s in crate::confusable::skeletons(&d.id) {
                if !s.is_empty() {
                    skeletons.entry(s).or_insert(i);
                }
            }
        }
        self.index.skeletons = skeletons;
    }

    pub fn integration(&self, id: &str) -> Option<&IntegrationDecl> {
        self.index
            .integrations
            .get(id)
            .map(|&i| &self.integrations[i])
    }

    /// The registered integration an unregistered `id` reads as (same
    /// look-alike skeleton, [`crate::confusable`]): `mailchimp\u{200b}-sync`
    /// or `MailChimp-Sync` for `mailchimp-sync`. `None` for a registered id
    /// or one that looks like none. Two skeletons and two hash look-ups.
    pub fn imitated(&self, id: &str) -> Option<&IntegrationDecl> {
        if self.index.integrations.contains_key(id) {
            return None;
        }
        crate::confusable::skeletons(id)
            .iter()
            .filter_map(|s| self.index.skeletons.get(s))
            .min()
            .map(|&i| &self.integrations[i])
    }

    pub fn key(&self, id: &str) -> Option<&KeyDecl> {
        self.index.keys.get(id).map(|&i| &self.keys[i])
    }

    pub fn principal(&self, id: &str) -> Option<&PrincipalDecl> {
        self.index.principals.get(id).map(|&i| &self.principals[i])
    }

    pub fn integrations(&self) -> &[IntegrationDecl] {
        &self.integrations
    }

    pub fn keys(&self) -> &[KeyDecl] {
        &self.keys
    }

    pub fn principals(&self) -> &[PrincipalDecl] {
        &self.principals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    #[test]
    fn unregistered_look_alikes_name_the_id_they_imitate() {
        let r = Registry::new(
            vec![
                IntegrationDecl::new("mailchimp-sync"),
                IntegrationDecl::new("hubspot"),
            ],
            vec![],
            vec![],
        );
        let im = |id: &str| r.imitated(id).map(|d| d.id.as_str());
        assert_eq!(im("mailchimp\u{200b}-sync"), Some("mailchimp-sync"));
        assert_eq!(im("MailChimp-Sync"), Some("mailchimp-sync"));
        assert_eq!(im("hub\u{0455}\u{0440}\u{043e}t"), Some("hubspot"));
        assert_eq!(im("hubsp0t"), Some("hubspot"));
        assert_eq!(
            im("mailchimp-sync"),
            None,
            "a registered id imitates nothing"
        );
        assert_eq!(im("zendesk"), None);
        assert_eq!(
            im("\u{200b}"),
            None,
            "an invisible-only id imitates nothing"
        );
    }

    #[test]
    fn grants_match_with_wildcards() {
        let g = Grant::parse("contacts:*").unwrap();
        assert!(g.matches("contacts", Action::Export));
        assert!(!g.matches("deals", Action::Read));
        let g = Grant::parse("*:read").unwrap();
        assert!(g.matches("deals", Action::Read));
        assert!(!g.matches("deals", Action::Write));
        assert!(Grant::parse("*").unwrap().matches("x", Action::Delete));
        assert!(Grant::parse("contacts:steal").is_err());
        assert!(Grant::parse("contacts").is_err());
    }

    #[test]
    fn active_hours_handle_offsets_and_overnight_windows() {
        // Mon-Fri 06:00-22:00 at +05:30.
        let mut days = [false; 7];
        days[..5].fill(true);
        let h = ActiveHours {
            days,
            start_minute: 360,
            end_minute: 1320,
            utc_offset_minutes: 330,
        };
        // 2026-11-30 is a Monday. 01:00Z = 06:30 local: inside.
        assert!(h.contains(parse_rfc3339("2026-11-30T01:00:00Z").unwrap()));
        // 00:00Z = 05:30 local: outside.
        assert!(!h.contains(parse_rfc3339("2026-11-30T00:00:00Z").unwrap()));
        // Saturday midday local: outside.
        assert!(!h.contains(parse_rfc3339("2026-12-05T06:00:00Z").unwrap()));
        // Overnight 22:00-06:00 UTC on Mondays: Tuesday 03:00 belongs to Monday's window.
        let mut mon = [false; 7];
        mon[0] = true;
        let n = ActiveHours {
            days: mon,
            start_minute: 1320,
            end_minute: 360,
            utc_offset_minutes: 0,
        };
        assert!(n.contains(parse_rfc3339("2026-12-01T03:00:00Z").unwrap()));
        assert!(!n.contains(parse_rfc3339("2026-12-02T03:00:00Z").unwrap()));
        assert!(n.contains(parse_rfc3339("2026-11-30T23:00:00Z").unwrap()));
    }
}
