//! Registry rules: `unknown_integration`, `scope_violation`, `off_hours`,
//! `revoked_credential` and `new_source` outside declared networks. They need
//! no learning and speak from an integration's first event. Each folds a
//! repeat ([`Cx::fold`]) before it builds its finding, so a flood of one
//! ongoing violation allocates nothing per event.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{fmt1, Cx};
use crate::alert::{AlertKind, Evidence};
use crate::episodes::Finding;
use crate::event::Event;
use crate::registry::{IntegrationDecl, Registry};
use crate::state::IntegrationState;
use crate::stats::score_from_p;
use crate::text::needs_escape;
use crate::time::{format_rfc3339, DAY_MS};

/// What an unregistered id looks like to a person.
struct LookAlike<'r> {
    /// The registered id it reads as, if any.
    imitates: Option<&'r str>,
    /// Controls, bidi and invisible characters in it.
    invisible: u64,
}

fn look_alike<'r>(registry: Option<&'r Registry>, id: &str) -> LookAlike<'r> {
    LookAlike {
        imitates: registry.and_then(|r| r.imitated(id)).map(|d| d.id.as_str()),
        invisible: id.chars().filter(|&c| needs_escape(c)).count() as u64,
    }
}

impl LookAlike<'_> {
    fn describe(&self) -> String {
        let hidden = match self.invisible {
            0 => String::new(),
            1 => "1 invisible character".to_owned(),
            n => format!("{n} invisible characters"),
        };
        match (self.imitates, self.invisible) {
            (Some(real), 0) => format!("; it looks like registered integration {real}"),
            (Some(real), _) => {
                format!("; it looks like registered integration {real} ({hidden})")
            }
            (None, 0) => String::new(),
            (None, _) => format!("; its id has {hidden}"),
        }
    }
}

impl Cx<'_, '_> {
    pub(super) fn unknown_integration(&mut self, st: &mut IntegrationState, ev: &Event<'_>) {
        if !self.cfg.detectors.unknown_integration.enabled
            || self.fold(st, ev, AlertKind::UnknownIntegration, &[], 0.8)
        {
            return;
        }
        let dt = format!("{}:{}", ev.resource, ev.action.as_str());
        let mut evidence = Evidence::new();
        evidence.insert("first_seen".into(), format_rfc3339(st.first_seen).into());
        evidence.insert("data_type".into(), dt.clone().into());
        evidence.insert(
            "source_ip".into(),
            ev.source_ip.map(|i| i.to_string()).into(),
        );
        // Look-alikes of a registered id (once per episode, O(id length)).
        let look = look_alike(self.registry, ev.integration_id);
        if let Some(real) = look.imitates {
            evidence.insert("imitates".into(), real.to_owned().into());
        }
        if look.invisible > 0 {
            evidence.insert("invisible_characters".into(), look.invisible.into());
        }
        let f = Finding {
            kind: AlertKind::UnknownIntegration,
            subject: "",
            key_id: ev.key_id,
            resource: Some(ev.resource.to_owned()),
            window: (st.first_seen, ev.ts_ms),
            observed: Some(st.events as f64),
            expected: None,
            score: if look.imitates.is_some() { 0.95 } else { 0.8 },
            sensitive: self.is_sensitive(ev.resource),
            summary: format!(
                "unregistered integration {} is calling the CRM ({dt}{}); it is not in the registry{}",
                ev.integration_id,
                ev.key_id.map(|k| format!(", key {k}")).unwrap_or_default(),
                look.describe()
            ),
            evidence,
        };
        self.open(st, ev, f);
    }

    pub(super) fn scope_violation(
        &mut self,
        st: &mut IntegrationState,
        ev: &Event<'_>,
        d: &IntegrationDecl,
    ) {
        if !self.cfg.detectors.scope_violation.enabled
            || d.is_granted(ev.resource, ev.action)
            || self.fold(
                st,
                ev,
                AlertKind::ScopeViolation,
                &[ev.resource, ":", ev.action.as_str()],
                0.9,
            )
        {
            return;
        }
        let dt = format!("{}:{}", ev.resource, ev.action.as_str());
        let granted: Vec<String> = d.granted.iter().map(ToString::to_string).collect();
        let mut evidence = Evidence::new();
        evidence.insert("data_type".into(), dt.clone().into());
        evidence.insert("granted".into(), granted.clone().into());
        evidence.insert("registry_entry".into(), d.id.clone().into());
        let f = Finding {
            kind: AlertKind::ScopeViolation,
            subject: &dt,
            key_id: ev.key_id,
            resource: Some(ev.resource.to_owned()),
            window: (ev.ts_ms, ev.ts_ms),
            observed: None,
            expected: None,
            score: 0.9,
            sensitive: self.is_sensitive(ev.resource),
            summary: format!(
                "{} did {dt}, which its registry grants do not allow (granted: {})",
                ev.integration_id,
                if granted.is_empty() {
                    "nothing".to_owned()
                } else {
                    granted.join(", ")
                }
            ),
            evidence,
        };
        self.open(st, ev, f);
    }

    pub(super) fn off_hours(
        &mut self,
        st: &mut IntegrationState,
        ev: &Event<'_>,
        d: &IntegrationDecl,
    ) {
        let Some(h) = &d.active_hours else { return };
        if !self.cfg.detectors.off_hours.enabled
            || h.contains(ev.ts_ms)
            || self.fold(st, ev, AlertKind::OffHours, &[], 0.6)
        {
            return;
        }
        let local = format_rfc3339(ev.ts_ms + i64::from(h.utc_offset_minutes) * 60_000);
        let local = local.get(..16).unwrap_or(&local).replace('T', " ");
        let mut evidence = Evidence::new();
        evidence.insert("active_hours".into(), h.describe().into());
        evidence.insert("local_time".into(), local.clone().into());
        let f = Finding {
            kind: AlertKind::OffHours,
            subject: "",
            key_id: ev.key_id,
            resource: Some(ev.resource.to_owned()),
            window: (ev.ts_ms, ev.ts_ms),
            observed: None,
            expected: None,
            score: 0.6,
            sensitive: self.is_sensitive(ev.resource),
            summary: format!(
                "{} called at {local} local time, outside its active hours ({})",
                ev.integration_id,
                h.describe()
            ),
            evidence,
        };
        self.open(st, ev, f);
    }

    /// `new_source` from the registry: any call from outside the declared
    /// networks, from the first event.
    pub(super) fn outside_declared_networks(
        &mut self,
        st: &mut IntegrationState,
        ev: &Event<'_>,
        d: &IntegrationDecl,
        ip: IpAddr,
        net: IpNet,
    ) {
        if d.network_allowed(ip) || !self.cfg.detectors.new_source.enabled {
            return;
        }
        let declared: Vec<String> = d.networks.iter().map(ToString::to_string).collect();
        let subject = net.to_string();
        let mut evidence = Evidence::new();
        evidence.insert("source_ip".into(), ip.to_string().into());
        evidence.insert("network".into(), subject.clone().into());
        evidence.insert("declared_networks".into(), declared.clone().into());
        evidence.insert("source".into(), "registry".into());
        let f = Finding {
            kind: AlertKind::NewSource,
            subject: &subject,
            key_id: ev.key_id,
            resource: None,
            window: (ev.ts_ms, ev.ts_ms),
            observed: None,
            expected: None,
            score: score_from_p(1e-6),
            sensitive: false,
            summary: format!(
                "{} called from {ip}{}, outside its declared networks {}",
                ev.integration_id,
                ev.key_id
                    .map(|k| format!(" with key {k}"))
                    .unwrap_or_default(),
                declared.join(", ")
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }

    /// `revoked_credential`: a key used at or after its `revoked_at`, or a
    /// principal acting at or after its `offboarded_at`.
    pub(super) fn revoked(
        &mut self,
        st: &mut IntegrationState,
        ev: &Event<'_>,
        what: &str,
        id: &str,
        at: i64,
    ) {
        if !self.cfg.detectors.revoked_credential.enabled
            || self.fold(st, ev, AlertKind::RevokedCredential, &[what, ":", id], 0.95)
        {
            return;
        }
        let ago = (ev.ts_ms - at) as f64 / DAY_MS as f64;
        let mut evidence = Evidence::new();
        evidence.insert("credential_type".into(), what.into());
        evidence.insert(
            if what == "key" {
                "revoked_at"
            } else {
                "offboarded_at"
            }
            .into(),
            format_rfc3339(at).into(),
        );
        evidence.insert("days_since".into(), ago.into());
        evidence.insert(
            "source_ip".into(),
            ev.source_ip.map(|i| i.to_string()).into(),
        );
        let subject = format!("{what}:{id}");
        let summary = if what == "key" {
            format!(
                "{} used key {id}, revoked at {} ({} days ago)",
                ev.integration_id,
                format_rfc3339(at),
                fmt1(ago)
            )
        } else {
            evidence.insert("principal".into(), id.into());
            format!(
                "{} ran a call as {id}, offboarded at {} ({} days ago)",
                ev.integration_id,
                format_rfc3339(at),
                fmt1(ago)
            )
        };
        let f = Finding {
            kind: AlertKind::RevokedCredential,
            subject: &subject,
            key_id: ev.key_id,
            resource: Some(ev.resource.to_owned()),
            window: (at, ev.ts_ms),
            observed: None,
            expected: None,
            score: 0.95,
            sensitive: true,
            summary,
            evidence,
        };
        self.open(st, ev, f);
    }
}
