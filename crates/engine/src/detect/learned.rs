//! Learned detectors: `new_data_type`, `new_source` on learned networks,
//! `dormant_reactivated` (integrations and keys), and the bookkeeping of the
//! per-integration lists they learn from. They stay silent while the
//! integration is learning (`learning_days` from its first event).

use std::net::IpAddr;

use super::caps::saturation;
use super::{fmt1, Cx};
use crate::alert::{round_sig, AlertKind, Evidence};
use crate::episodes::Finding;
use crate::event::Event;
use crate::state::{
    evict_least_used, learning_allowance, network_of, push_exact, track, DataTypeUse,
    IntegrationState, NetworkUse,
};
use crate::stats::score_from_p;
use crate::time::{format_rfc3339, DAY_MS};

/// Whether a silence of `gap` after `history` of activity (whose longest
/// gap was `max_gap`) is dormancy: `gap_factor` times the longest gap (at
/// least a day) and either `min_silence_days` long — whatever the history, so
/// a short-lived integration waking up is caught — or `learned_silence_days`
/// long after a full learning period of history.
fn is_dormancy(
    d: &crate::config::DormantConfig,
    gap: i64,
    max_gap: i64,
    history: i64,
    learning: i64,
) -> bool {
    let long_vs_own = gap as f64 >= d.gap_factor * max_gap.max(DAY_MS) as f64;
    let absolute = gap >= i64::from(d.min_silence_days) * DAY_MS;
    let learned = history >= learning && gap >= i64::from(d.learned_silence_days) * DAY_MS;
    long_vs_own && (absolute || learned)
}

impl Cx<'_, '_> {
    /// `dormant_reactivated` for the integration: `gap` is the silence this
    /// event ends, judged before the event updates anything.
    pub(super) fn check_dormant(&mut self, st: &mut IntegrationState, ev: &Event<'_>, gap: i64) {
        let d = &self.cfg.detectors.dormant_reactivated;
        if !d.enabled {
            return;
        }
        let learning = self.cfg.learning_ms();
        let usual = st.max_gap_ms.max(DAY_MS);
        if !is_dormancy(
            d,
            gap,
            st.max_gap_ms,
            st.last_seen - st.first_seen,
            learning,
        ) {
            return;
        }
        let days = gap as f64 / DAY_MS as f64;
        let p = (usual as f64 / gap as f64).powi(2).min(1.0);
        let mut evidence = Evidence::new();
        evidence.insert("silence_days".into(), days.into());
        evidence.insert(
            "longest_previous_gap_days".into(),
            (st.max_gap_ms as f64 / DAY_MS as f64).into(),
        );
        evidence.insert("last_seen".into(), format_rfc3339(st.last_seen).into());
        evidence.insert(
            "active_days_before".into(),
            ((st.last_seen - st.first_seen) as f64 / DAY_MS as f64).into(),
        );
        let f = Finding {
            kind: AlertKind::DormantReactivated,
            subject: "",
            key_id: ev.key_id,
            resource: None,
            window: (st.last_seen, ev.ts_ms),
            observed: Some(round_sig(days)),
            expected: Some(round_sig(st.max_gap_ms as f64 / DAY_MS as f64)),
            score: score_from_p(p * 1e-3),
            sensitive: false,
            summary: format!(
                "{} woke up after {} days of silence (last call {}); its longest gap before was {} days",
                ev.integration_id,
                fmt1(days),
                format_rfc3339(st.last_seen),
                fmt1(st.max_gap_ms as f64 / DAY_MS as f64)
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }

    /// `new_data_type`: a (resource, action) pair the integration never used.
    pub(super) fn data_type(&mut self, st: &mut IntegrationState, ev: &Event<'_>, learning: i64) {
        let ts = ev.ts_ms;
        if let Some(d) = st
            .data_types
            .iter_mut()
            .find(|d| d.action == ev.action && &*d.resource == ev.resource)
        {
            d.count += 1;
            d.last_seen = d.last_seen.max(ts);
            d.first_seen = d.first_seen.min(ts);
            return;
        }
        let mature = st.mature(ts.min(self.bound), learning);
        let cap = self.cfg.max_data_types;
        if !mature && st.data_types.len() >= learning_allowance(cap) {
            let enabled = self.cfg.detectors.new_data_type.enabled;
            return self.learning_burst(st, ev, AlertKind::NewDataType, enabled, cap);
        }
        let evicted = if st.data_types.len() >= cap {
            evict_least_used(&mut st.data_types, |d| (d.count, d.last_seen))
                .map(|d| format!("{}:{}", d.resource, d.action.as_str()))
        } else {
            None
        };
        let known: Vec<String> = if mature && self.cfg.detectors.new_data_type.enabled {
            let mut v: Vec<String> = st
                .data_types
                .iter()
                .map(|d| format!("{}:{}", d.resource, d.action.as_str()))
                .collect();
            v.sort();
            v
        } else {
            Vec::new()
        };
        push_exact(
            &mut st.data_types,
            DataTypeUse {
                resource: ev.resource.into(),
                action: ev.action,
                first_seen: ts,
                last_seen: ts,
                count: 1,
            },
        );
        if !mature || !self.cfg.detectors.new_data_type.enabled {
            return;
        }
        let dt = format!("{}:{}", ev.resource, ev.action.as_str());
        // Rule of succession: after N events without it, P(new) ≈ 1/(N+2).
        let p = 1.0 / (st.events as f64 + 1.0);
        let history_days = (ts - st.first_seen) as f64 / DAY_MS as f64;
        let sensitive = self.is_sensitive(ev.resource);
        let mut evidence = Evidence::new();
        evidence.insert("data_type".into(), dt.clone().into());
        evidence.insert("known_data_types".into(), known.clone().into());
        evidence.insert("history_days".into(), history_days.into());
        evidence.insert("history_events".into(), (st.events - 1).into());
        evidence.insert("sensitive_resource".into(), sensitive.into());
        let saturated = saturation(&mut evidence, evicted.as_deref(), "data-type");
        let f = Finding {
            kind: AlertKind::NewDataType,
            subject: &dt,
            key_id: ev.key_id,
            resource: Some(ev.resource.to_owned()),
            window: (st.first_seen, ts),
            observed: None,
            expected: None,
            score: score_from_p(p),
            sensitive,
            summary: format!(
                "{} touched {dt} for the first time in {} days of history ({} calls); it normally uses {}{saturated}",
                ev.integration_id,
                fmt1(history_days),
                st.events - 1,
                if known.is_empty() { "nothing else".to_owned() } else { known.join(", ") }
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }

    /// `new_source`: a call from outside the declared networks (a registry
    /// rule, see [`Cx::outside_declared_networks`]), or — without declared
    /// networks — from a network the integration was never seen from.
    pub(super) fn source(&mut self, st: &mut IntegrationState, ev: &Event<'_>, learning: i64) {
        let Some(ip) = ev.source_ip else { return };
        let net = network_of(ip, self.cfg.network_prefix_v4, self.cfg.network_prefix_v6);
        let ts = ev.ts_ms;
        if let Some(d) = self.decl {
            self.outside_declared_networks(st, ev, d, ip, net);
        }
        if let Some(n) = st.networks.iter_mut().find(|n| n.network == net) {
            n.count += 1;
            n.last_seen = n.last_seen.max(ts);
            return;
        }
        let mature = st.mature(ts.min(self.bound), learning);
        let cap = self.cfg.max_networks;
        let declared = self.decl.is_some_and(|d| !d.networks.is_empty());
        if !mature && st.networks.len() >= learning_allowance(cap) {
            let enabled = self.cfg.detectors.new_source.enabled && !declared;
            return self.learning_burst(st, ev, AlertKind::NewSource, enabled, cap);
        }
        let evicted = if st.networks.len() >= cap {
            evict_least_used(&mut st.networks, |n| (n.count, n.last_seen))
                .map(|n| n.network.to_string())
        } else {
            None
        };
        let known: Vec<String> = st.networks.iter().map(|n| n.network.to_string()).collect();
        push_exact(
            &mut st.networks,
            NetworkUse {
                network: net,
                first_seen: ts,
                last_seen: ts,
                count: 1,
            },
        );
        if declared || !mature || !self.cfg.detectors.new_source.enabled {
            return;
        }
        self.new_learned_source(st, ev, ip, &net.to_string(), &known, evicted.as_deref());
    }

    fn new_learned_source(
        &mut self,
        st: &mut IntegrationState,
        ev: &Event<'_>,
        ip: IpAddr,
        subject: &str,
        known: &[String],
        evicted: Option<&str>,
    ) {
        let p = 1.0 / (st.events as f64 + 1.0) * (known.len() as f64 + 1.0);
        let mut evidence = Evidence::new();
        evidence.insert("source_ip".into(), ip.to_string().into());
        evidence.insert("network".into(), subject.into());
        evidence.insert("known_networks".into(), known.to_vec().into());
        evidence.insert("source".into(), "learned".into());
        let saturated = saturation(&mut evidence, evicted, "network");
        let f = Finding {
            kind: AlertKind::NewSource,
            subject,
            key_id: ev.key_id,
            resource: None,
            window: (st.first_seen, ev.ts_ms),
            observed: None,
            expected: None,
            score: score_from_p(p.min(1.0)),
            sensitive: false,
            summary: format!(
                "{} called from new network {subject} ({ip}){}; it was only seen from {}{saturated}",
                ev.integration_id,
                ev.key_id
                    .map(|k| format!(" with key {k}"))
                    .unwrap_or_default(),
                if known.is_empty() {
                    "no network".to_owned()
                } else {
                    known.join(", ")
                }
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }

    /// Key and principal bookkeeping, revocation/offboarding (registry
    /// rules, [`Cx::revoked`]), key dormancy.
    pub(super) fn credentials(&mut self, st: &mut IntegrationState, ev: &Event<'_>, learning: i64) {
        let ts = ev.ts_ms;
        if let Some(k) = ev.key_id {
            let prev = track(&mut st.keys, k, ts, self.cfg.max_keys);
            if let Some(key) = self.registry.and_then(|r| r.key(k)) {
                if let Some(rev) = key.revoked_at.filter(|r| ts >= *r) {
                    self.revoked(st, ev, "key", k, rev);
                }
            }
            if let Some((last, max_gap)) = prev {
                self.key_dormant(st, ev, k, last, max_gap, learning);
            }
        }
        if let Some(p) = ev.principal {
            track(&mut st.principals, p, ts, self.cfg.max_keys);
            if let Some(off) = self
                .registry
                .and_then(|r| r.principal(p))
                .and_then(|d| d.offboarded_at)
                .filter(|o| ts >= *o)
            {
                self.revoked(st, ev, "principal", p, off);
            }
        }
    }

    /// A key silent far longer than usual, on an integration that is not
    /// itself waking up (that alert already covers it).
    fn key_dormant(
        &mut self,
        st: &mut IntegrationState,
        ev: &Event<'_>,
        k: &str,
        last: i64,
        max_gap: i64,
        learning: i64,
    ) {
        let ts = ev.ts_ms;
        let d = &self.cfg.detectors.dormant_reactivated;
        let gap = ts - last;
        let integration_woke = st
            .episodes
            .iter()
            .any(|e| e.kind == AlertKind::DormantReactivated && e.last_seen == ts);
        if !d.enabled
            || integration_woke
            || !is_dormancy(d, gap, max_gap, last - st.first_seen, learning)
        {
            return;
        }
        let days = gap as f64 / DAY_MS as f64;
        let mut evidence = Evidence::new();
        evidence.insert("silence_days".into(), days.into());
        evidence.insert("key_last_seen".into(), format_rfc3339(last).into());
        evidence.insert(
            "longest_previous_gap_days".into(),
            (max_gap as f64 / DAY_MS as f64).into(),
        );
        let f = Finding {
            kind: AlertKind::DormantReactivated,
            subject: k,
            key_id: Some(k),
            resource: None,
            window: (last, ts),
            observed: Some(round_sig(days)),
            expected: Some(round_sig(max_gap as f64 / DAY_MS as f64)),
            score: score_from_p(1e-3 * (max_gap.max(DAY_MS) as f64 / gap as f64).powi(2)),
            sensitive: false,
            summary: format!(
                "{}: key {k} was used again after {} days unused (last use {})",
                ev.integration_id,
                fmt1(days),
                format_rfc3339(last)
            ),
            evidence,
        };
        self.fire(st, ev, f);
    }
}
