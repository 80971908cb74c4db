//! Alert budgets: floods across integrations fold into one alert per window.
//!
//! Episodes bound alerts per integration and subject; nothing bounded them
//! across integrations, so 1M distinct unregistered ids raised 1M
//! `unknown_integration` pages. Budgets apply to alerts about *unregistered*
//! integrations (whose number the attacker controls); registered ones are
//! bounded by the registry and `max_open_episodes`, and a junk flood cannot
//! spend a budget their alerts need. Per engine (partition) and per kind, at most
//! `alert_budget.per_kind` alerts (or the kind's own figure in
//! `alert_budget.kinds`) go out per window of `alert_budget.window_minutes`
//! of stream time. Past it, a would-be alert opens its episode as usual (so
//! its repeats fold, and its integration's state is what it would be) but is
//! not sent: it is *folded into the window's aggregate*, which goes out once
//! when the window closes — "2,317 unregistered integrations appeared in
//! 5 min beyond the alert budget (20 alerted individually); top 10 by calls:
//! …" (evidence `aggregate: true`, `budget: true`). While a flood lasts (the
//! previous window overflowed) no individual alert of that kind goes out:
//! each window sends only its aggregate, and the aggregate of the window
//! before is resolved when the next one closes.
//!
//! The top integrations by calls (each one's calls so far, offered on every
//! folded alert and every repeat folded into one) are kept in [`TOP_SLOTS`]
//! entries: an offer updates its entry or replaces the smallest when larger.
//! A count only grows and every integration's latest count is offered, so
//! the entries are exactly the largest final counts: O(1) memory per kind.
//!
//! Windows run on the engine's robust stream time, so the budget is a
//! function of the partition's own stream: deterministic for a given
//! partitioning, and an honest stream (below the budget) gives every alert
//! it gives without budgets, in `run` and `replay` alike.

use serde::{Deserialize, Serialize};

use crate::alert::{alert_id, Alert, AlertKind, Evidence, Outputs, Resolved, Severity};
use crate::config::EngineConfig;

/// Counters for the top-integrations list of an aggregate.
const TOP_SLOTS: usize = 32;
/// Integrations named in an aggregate's summary and evidence.
const TOP_SHOWN: usize = 10;
/// The `integration_id` of a budget aggregate: it is about many.
pub const MANY: &str = "*";

/// The budgets of one engine: the current window and, per kind used, its
/// count and folded alerts. Checkpointed with the engine.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AlertBudget {
    /// Start of the current window (stream time); `None` before the first.
    window: Option<i64>,
    kinds: Vec<KindBudget>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct KindBudget {
    kind: AlertKind,
    /// Alerts sent this window.
    sent: u32,
    /// Alerts folded this window (past the budget).
    folded: u64,
    /// The first folded integration: names the aggregate's id, so the
    /// aggregates of two partitions never share an id.
    first: Option<Box<str>>,
    /// The largest (integration, calls so far) offered this window.
    top: Vec<(Box<str>, u64)>,
    /// The previous window overflowed: this one sends nothing individually.
    flooding: bool,
    /// The last aggregate sent, resolved when the next window closes.
    open: Option<OpenAggregate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct OpenAggregate {
    id: String,
    severity: Severity,
    last_seen: i64,
    folded: u64,
}

impl KindBudget {
    fn new(kind: AlertKind) -> Self {
        KindBudget {
            kind,
            sent: 0,
            folded: 0,
            first: None,
            top: Vec::new(),
            flooding: false,
            open: None,
        }
    }

    /// `id` has made `calls` calls so far.
    fn offer(&mut self, id: &str, calls: u64) {
        if let Some(e) = self.top.iter_mut().find(|e| &*e.0 == id) {
            e.1 = e.1.max(calls);
            return;
        }
        if self.top.len() < TOP_SLOTS {
            self.top.push((id.into(), calls));
            return;
        }
        // Replace the smallest entry (ties: the greatest id) if larger.
        if let Some(min) = self
            .top
            .iter_mut()
            .min_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        {
            if (calls, id) > (min.1, &*min.0) {
                *min = (id.into(), calls);
            }
        }
    }
}

impl AlertBudget {
    fn kind_mut(&mut self, kind: AlertKind) -> &mut KindBudget {
        let i = match self.kinds.iter().position(|k| k.kind == kind) {
            Some(i) => i,
            None => {
                self.kinds.push(KindBudget::new(kind));
                self.kinds.len() - 1
            }
        };
        &mut self.kinds[i]
    }

    /// Whether an alert of `kind` may go out now (counted if so).
    pub(crate) fn admit(&mut self, cfg: &EngineConfig, kind: AlertKind) -> bool {
        let b = &cfg.alert_budget;
        if !b.enabled {
            return true;
        }
        let limit = b.limit(kind);
        let k = self.kind_mut(kind);
        if k.flooding || k.sent >= limit {
            return false;
        }
        k.sent += 1;
        true
    }

    /// An alert of `kind` about `integration` (which has made `calls` calls
    /// so far) was folded into the window's aggregate.
    pub(crate) fn folded(&mut self, kind: AlertKind, integration: &str, calls: u64) {
        let k = self.kind_mut(kind);
        k.folded += 1;
        if k.first.is_none() {
            k.first = Some(integration.into());
        }
        k.offer(integration, calls);
    }

    /// A repeat folded into an episode whose alert of `kind` was folded:
    /// `integration` has made `calls` calls so far.
    pub(crate) fn call(&mut self, kind: AlertKind, integration: &str, calls: u64) {
        self.kind_mut(kind).offer(integration, calls);
    }

    /// Moves to the window holding `now`: closes the current one (its
    /// aggregates out) if `now` is past it.
    pub(crate) fn roll(&mut self, cfg: &EngineConfig, now: i64, out: &mut Outputs) {
        let width = cfg.alert_budget.window_ms();
        let start = now.div_euclid(width) * width;
        match self.window {
            None => self.window = Some(start),
            Some(w) if start > w => {
                // Flooding carries over only to the window right after.
                self.close(cfg, w, start == w + width, out);
                self.window = Some(start);
            }
            Some(_) => {}
        }
    }

    /// Closes the current window as if the stream ended (end of a replay's
    /// input): its aggregates go out.
    pub(crate) fn finish(&mut self, cfg: &EngineConfig, out: &mut Outputs) {
        if let Some(w) = self.window {
            self.close(cfg, w, false, out);
        }
    }

    /// The stream time restarted (`clock.rs`: a partition's first event was
    /// forged or stale): the current window closes as at the end of the
    /// input, and the next event opens the window holding it, even earlier.
    pub(crate) fn restart(&mut self, cfg: &EngineConfig, out: &mut Outputs) {
        self.finish(cfg, out);
        self.window = None;
    }

    fn close(&mut self, cfg: &EngineConfig, window: i64, next_adjacent: bool, out: &mut Outputs) {
        let width = cfg.alert_budget.window_ms();
        let end = window + width - 1;
        for k in &mut self.kinds {
            if let Some(o) = k.open.take() {
                out.resolved.push(Resolved {
                    id: o.id,
                    kind: k.kind,
                    severity: o.severity,
                    integration_id: MANY.to_owned(),
                    last_seen: o.last_seen,
                    resolved_at: end,
                    folded: o.folded,
                });
            }
            if k.folded > 0 {
                let alert = aggregate(cfg, k, window, end);
                k.open = Some(OpenAggregate {
                    id: alert.id.clone(),
                    severity: alert.severity,
                    last_seen: end,
                    folded: k.folded,
                });
                out.alerts.push(alert);
            }
            k.flooding = k.folded > 0 && next_adjacent;
            k.sent = 0;
            k.folded = 0;
            k.first = None;
            k.top.clear();
        }
        // Kinds with nothing open and no flood cost nothing to keep.
        self.kinds.retain(|k| k.open.is_some() || k.flooding);
    }
}

/// The aggregate alert of one kind's closed window.
fn aggregate(cfg: &EngineConfig, k: &KindBudget, window: i64, end: i64) -> Alert {
    let minutes = cfg.alert_budget.window_minutes;
    let limit = cfg.alert_budget.limit(k.kind);
    let mut top: Vec<&(Box<str>, u64)> = k.top.iter().collect();
    top.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(TOP_SHOWN);
    let listed: Vec<String> = top.iter().map(|e| format!("{} ({})", e.0, e.1)).collect();
    let first = k.first.as_deref().unwrap_or("");
    let id = alert_id(&[k.kind.as_str(), MANY, first, &window.to_string()]);
    let individually = if k.flooding {
        "none alerted individually: the flood continues from the window before".to_owned()
    } else {
        format!("{} alerted individually", k.sent)
    };
    let n = k.folded;
    let what = match k.kind {
        AlertKind::UnknownIntegration => format!("{n} unregistered integrations appeared"),
        kind => format!("{n} more {kind} alerts were raised"),
    };
    let summary = format!(
        "{what} in {minutes} min beyond the alert budget of {limit} ({individually}); top {} by calls: {}",
        listed.len(),
        listed.join(", ")
    );
    let mut evidence = Evidence::new();
    evidence.insert("aggregate".into(), true.into());
    evidence.insert("budget".into(), true.into());
    evidence.insert("alerts_folded".into(), n.into());
    evidence.insert("alerts_sent".into(), u64::from(k.sent).into());
    evidence.insert("alert_budget".into(), u64::from(limit).into());
    evidence.insert("window_minutes".into(), u64::from(minutes).into());
    evidence.insert("first_integration".into(), first.into());
    evidence.insert(
        "top_integrations".into(),
        top.iter()
            .map(|e| e.0.to_string())
            .collect::<Vec<_>>()
            .into(),
    );
    evidence.insert(
        "top_calls".into(),
        top.iter()
            .map(|e| e.1.to_string())
            .collect::<Vec<_>>()
            .into(),
    );
    Alert {
        id,
        kind: k.kind,
        severity: cfg.detectors.severity(k.kind),
        integration_id: MANY.to_owned(),
        key_id: None,
        resource: None,
        detected_at: end,
        window_start: window,
        window_end: end,
        observed: Some(n as f64),
        expected: Some(f64::from(limit)),
        score: 0.9,
        summary,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_entries_are_the_largest_final_counts() {
        let mut k = KindBudget::new(AlertKind::UnknownIntegration);
        let (mut a, mut b) = (0, 0);
        for i in 0..10_000u64 {
            k.offer(&format!("light-{i}"), 1 + i % 5);
            if i % 10 == 0 {
                a += 3;
                k.offer("heavy-a", a);
            }
            if i % 20 == 0 {
                b += 3;
                k.offer("heavy-b", b);
            }
        }
        assert_eq!(k.top.len(), TOP_SLOTS);
        let mut top = k.top.clone();
        top.sort_unstable_by_key(|e| std::cmp::Reverse(e.1));
        assert_eq!((&*top[0].0, top[0].1), ("heavy-a", 3_000));
        assert_eq!((&*top[1].0, top[1].1), ("heavy-b", 1_500));
        assert!(top[2..].iter().all(|e| e.1 == 5));
    }
}
