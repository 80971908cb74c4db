//! Anomaly episodes: a finding either opens an episode (one alert) or folds
//! into the open episode of the same kind and subject; an episode ends — and
//! is resolved — after its quiet gap.
//!
//! One mechanism serves every detector: [`Cx::fold`] is the cheap check
//! (feedback suppression, or a repeat inside the cooldown), run before a
//! finding is built, so a flood of one ongoing violation costs no allocation
//! per event; [`Cx::fire`] is `fold` then [`Cx::open`] for detectors that
//! build their finding first. Every resolution is built by
//! [`Episode::resolved`].

use serde::{Deserialize, Serialize};

use crate::alert::{alert_id, Alert, AlertKind, Evidence, Outputs, Resolved, Severity};
use crate::budget::AlertBudget;
use crate::config::EngineConfig;
use crate::detect::Cx;
use crate::engine::EngineStats;
use crate::event::Event;
use crate::state::IntegrationState;

/// An open anomaly episode: later repeats fold into it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub kind: AlertKind,
    pub subject: Box<str>,
    pub alert_id: String,
    pub severity: Severity,
    pub score: f64,
    pub started: i64,
    pub last_alert: i64,
    pub last_seen: i64,
    pub folded: u64,
    /// Its end was already announced by [`crate::Engine::advance_to`]: the
    /// episode stays (so folding still follows this integration's own event
    /// time, exactly as in a replay) but its resolution is not sent twice.
    #[serde(default)]
    pub announced: bool,
    /// Its alert was folded into an alert-budget aggregate (`budget.rs`)
    /// instead of being sent: it is never resolved on its own.
    #[serde(default)]
    pub budgeted: bool,
}

impl Episode {
    /// The resolution of this episode, decided at `resolved_at`.
    fn resolved(&self, integration_id: &str, resolved_at: i64) -> Resolved {
        Resolved {
            id: self.alert_id.clone(),
            kind: self.kind,
            severity: self.severity,
            integration_id: integration_id.to_owned(),
            last_seen: self.last_seen,
            resolved_at,
            folded: self.folded,
        }
    }
}

/// Everything needed to describe one alert; turned into an [`Alert`] by
/// [`Cx::open`].
pub(crate) struct Finding<'a> {
    pub(crate) kind: AlertKind,
    pub(crate) subject: &'a str,
    pub(crate) key_id: Option<&'a str>,
    pub(crate) resource: Option<String>,
    pub(crate) window: (i64, i64),
    pub(crate) observed: Option<f64>,
    pub(crate) expected: Option<f64>,
    pub(crate) score: f64,
    pub(crate) sensitive: bool,
    pub(crate) summary: String,
    pub(crate) evidence: Evidence,
}

/// A repeat of an open episode (its own subject within the cooldown, or a
/// further subject folded into its kind's aggregate): counted into it, and
/// into the alert budget when the episode is budgeted.
fn fold_repeat(
    e: &mut Episode,
    stats: &mut EngineStats,
    budget: &mut AlertBudget,
    integration: &str,
    calls: u64,
    ts: i64,
    score: f64,
) {
    e.last_seen = e.last_seen.max(ts);
    e.folded += 1;
    e.score = e.score.max(score);
    stats.folded += 1;
    if e.budgeted {
        budget.call(e.kind, integration, calls);
    }
}

impl Cx<'_, '_> {
    /// Handles a finding of `kind` about `subject` without building it, if it
    /// can be: analyst feedback makes it expected (until its event-time
    /// expiry), or it repeats an open episode within the cooldown (folded).
    /// `subject` is given in parts (compared without concatenating). Returns
    /// whether the event was handled; if not, the caller builds the finding
    /// and calls [`Cx::open`].
    pub(crate) fn fold(
        &mut self,
        st: &mut IntegrationState,
        ev: &Event<'_>,
        kind: AlertKind,
        subject: &[&str],
        score: f64,
    ) -> bool {
        let ts = ev.ts_ms;
        if !self.feedback.is_empty()
            && self.feedback.suppresses(
                ev.integration_id,
                kind,
                ev.resource,
                ev.action,
                ev.source_ip,
                ts,
            )
        {
            return true;
        }
        let (_gap, cooldown) = self.cfg.detectors.fold_ms(kind);
        let full = st.episodes.len() >= self.cfg.max_open_episodes;
        match st
            .episodes
            .iter_mut()
            .find(|e| e.kind == kind && subject_is(&e.subject, subject))
        {
            Some(e) if ts - e.last_alert < cooldown => {
                fold_repeat(
                    e,
                    self.stats,
                    self.budget,
                    ev.integration_id,
                    st.events,
                    ts,
                    score,
                );
                true
            }
            Some(_) => false,
            // A new subject past the bound folds into its kind's aggregate
            // without building a finding (a flood costs no allocation).
            None if full => {
                match st
                    .episodes
                    .iter_mut()
                    .find(|e| e.kind == kind && &*e.subject == AGGREGATE)
                {
                    Some(e) => {
                        fold_repeat(
                            e,
                            self.stats,
                            self.budget,
                            ev.integration_id,
                            st.events,
                            ts,
                            score,
                        );
                        true
                    }
                    None => false,
                }
            }
            None => false,
        }
    }

    /// [`Cx::fold`], else [`Cx::open`]: for detectors that build the finding
    /// before they know whether it repeats.
    pub(crate) fn fire(&mut self, st: &mut IntegrationState, ev: &Event<'_>, f: Finding<'_>) {
        if !self.fold(st, ev, f.kind, &[f.subject], f.score) {
            self.open(st, ev, f);
        }
    }

    /// Opens a new episode and emits its alert. Call only after
    /// [`Cx::fold`] returned false for the same kind and subject.
    pub(crate) fn open(&mut self, st: &mut IntegrationState, ev: &Event<'_>, f: Finding<'_>) {
        let ts = ev.ts_ms;
        if st.episodes.len() >= self.cfg.max_open_episodes && f.subject != AGGREGATE {
            return self.aggregate(st, ev, f);
        }
        // A cooldown re-alert replaces the old episode: resolve the old id so
        // stateful receivers do not keep it open.
        let out = &mut *self.out;
        st.episodes.retain(|e| {
            let same = e.kind == f.kind && &*e.subject == f.subject;
            if same && !e.announced && !e.budgeted {
                out.resolved.push(e.resolved(ev.integration_id, ts));
            }
            !same
        });
        let mut severity = self.cfg.detectors.severity(f.kind);
        if f.sensitive
            || self
                .decl
                .is_some_and(|d| d.sensitivity == crate::registry::Sensitivity::High)
        {
            severity = severity.raised();
        }
        let id = alert_id(&[
            f.kind.as_str(),
            ev.integration_id,
            f.subject,
            &ts.to_string(),
        ]);
        let (gap, _) = self.cfg.detectors.fold_ms(f.kind);
        st.episodes_close_after = if st.episodes.is_empty() {
            ts + gap
        } else {
            st.episodes_close_after.min(ts + gap)
        };
        // Past the kind's alert budget the episode opens as usual (its
        // repeats fold) but its alert folds into the window's aggregate.
        // Registered integrations are exempt: their number is the
        // registry's, not an attacker's, and a flood of junk must not spend
        // the budget that their alerts would need.
        let budgeted = !st.registered && !self.budget.admit(self.cfg, f.kind);
        crate::state::push_exact(
            &mut st.episodes,
            Episode {
                kind: f.kind,
                subject: f.subject.into(),
                alert_id: id.clone(),
                severity,
                score: f.score,
                started: ts,
                last_alert: ts,
                last_seen: ts,
                folded: 0,
                announced: false,
                budgeted,
            },
        );
        if budgeted {
            self.budget.folded(f.kind, ev.integration_id, st.events);
            self.stats.alerts_over_budget += 1;
            return;
        }
        let mut evidence = f.evidence;
        if let Some(d) = self.decl {
            if let Some(o) = &d.owner {
                evidence.insert("owner".into(), o.clone().into());
            }
        }
        self.stats.alerts += 1;
        self.out.alerts.push(Alert {
            id,
            kind: f.kind,
            severity,
            integration_id: ev.integration_id.to_owned(),
            key_id: f.key_id.map(str::to_owned),
            resource: f.resource,
            detected_at: ts,
            window_start: f.window.0,
            window_end: f.window.1,
            observed: f.observed,
            expected: f.expected,
            score: f.score,
            summary: f.summary,
            evidence,
        });
    }
}

impl Cx<'_, '_> {
    /// A new subject on an integration that already has `max_open_episodes`
    /// open: folded into the one aggregate episode of its kind, opened (one
    /// alert) on the first such subject. Bounds the episodes — hence the
    /// cost of every fold and close — whatever the number of subjects.
    fn aggregate(&mut self, st: &mut IntegrationState, ev: &Event<'_>, f: Finding<'_>) {
        let ts = ev.ts_ms;
        if let Some(e) = st
            .episodes
            .iter_mut()
            .find(|e| e.kind == f.kind && &*e.subject == AGGREGATE)
        {
            e.last_seen = e.last_seen.max(ts);
            e.folded += 1;
            e.score = e.score.max(f.score);
            self.stats.folded += 1;
            return;
        }
        let max = self.cfg.max_open_episodes;
        let mut evidence = Evidence::new();
        evidence.insert("aggregate".into(), true.into());
        evidence.insert("open_episodes".into(), (max as u64).into());
        evidence.insert("first_subject".into(), f.subject.into());
        let summary = format!(
            "{}: more than {max} open {} episodes at once; {} and every further one are folded into this alert (its resolution counts them)",
            ev.integration_id,
            f.kind.as_str(),
            if f.subject.is_empty() { "this one" } else { f.subject },
        );
        let agg = Finding {
            kind: f.kind,
            subject: AGGREGATE,
            key_id: f.key_id,
            resource: None,
            window: f.window,
            observed: None,
            expected: None,
            score: f.score,
            sensitive: f.sensitive,
            summary,
            evidence,
        };
        self.open(st, ev, agg);
    }
}

/// The subject of the aggregate episode of a kind (see [`Cx::aggregate`]).
pub(crate) const AGGREGATE: &str = "*";

/// Ends the integration's episodes whose quiet gap has passed at `now`.
/// With `announce_only` (time from outside the integration, see
/// [`crate::Engine::advance_to`]) the resolution is sent but the episode
/// stays, so only the integration's own events end it.
pub(crate) fn close_episodes(
    cfg: &EngineConfig,
    id: &str,
    st: &mut IntegrationState,
    now: i64,
    out: &mut Outputs,
    announce_only: bool,
) {
    // Folding only moves an episode's end later, so the cached bound is
    // conservative: the scan runs only when some episode may end.
    if st.episodes.is_empty() || now <= st.episodes_close_after {
        return;
    }
    let mut next = i64::MAX;
    st.episodes.retain_mut(|e| {
        let (gap, _) = cfg.detectors.fold_ms(e.kind);
        if now - e.last_seen <= gap {
            next = next.min(e.last_seen + gap);
            return true;
        }
        if !e.announced && !e.budgeted {
            out.resolved.push(e.resolved(id, e.last_seen + gap));
            e.announced = true;
        }
        // Kept (announce only): it ends on the integration's own event.
        if announce_only {
            next = next.min(e.last_seen + gap);
        }
        announce_only
    });
    st.episodes_close_after = next;
}

/// The earliest event time after which one of `st`'s episodes not yet
/// announced ends (`i64::MAX` if none): [`crate::Engine::advance_to`] finds
/// nothing to announce for `st` until then.
pub(crate) fn next_announcement(cfg: &EngineConfig, st: &IntegrationState) -> i64 {
    st.episodes
        .iter()
        .filter(|e| !e.announced && !e.budgeted)
        .map(|e| e.last_seen.saturating_add(cfg.detectors.fold_ms(e.kind).0))
        .min()
        .unwrap_or(i64::MAX)
}

/// Whether `s` equals the concatenation of `parts`.
fn subject_is(s: &str, parts: &[&str]) -> bool {
    let mut rest = s;
    for p in parts {
        match rest.strip_prefix(p) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}
