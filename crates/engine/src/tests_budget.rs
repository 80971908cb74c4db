//! Process-wide bounds and alert budgets (issue 16, item 4): a flood of new
//! ids can neither hold more than `max_integrations` across the engines of
//! a process nor page once per id.

use crate::alert::{AlertKind, EvidenceValue, Outputs};
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::population::Population;
use crate::registry::{IntegrationDecl, Registry};
use crate::tests::{run, t0, Ev};
use crate::time::MINUTE_MS;

fn registry() -> Registry {
    Registry::new(vec![IntegrationDecl::new("known")], vec![], vec![])
}

/// `n` distinct unregistered ids, one event each, `gap_ms` apart from `start`;
/// every seventh id calls three more times.
fn flood(prefix: &str, start: i64, n: usize, gap_ms: i64) -> Vec<Ev> {
    let mut v = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}-{i:05}");
        let ts = start + i as i64 * gap_ms;
        v.push(Ev::new(ts, &id));
        if i % 7 == 0 {
            for j in 1..=3 {
                v.push(Ev::new(ts + j, &id));
            }
        }
    }
    v
}

/// Three events of the registered integration from `ts`: enough to move
/// the robust stream time there.
fn known_after(ts: i64) -> Vec<Ev> {
    (0..3).map(|i| Ev::new(ts + i, "known")).collect()
}

fn unknown(out: &Outputs) -> Vec<&crate::alert::Alert> {
    out.alerts
        .iter()
        .filter(|a| a.kind == AlertKind::UnknownIntegration)
        .collect()
}

fn is_budget_aggregate(a: &crate::alert::Alert) -> bool {
    a.evidence.get("budget") == Some(&EvidenceValue::Bool(true))
}

#[test]
fn an_unknown_id_flood_pages_the_budget_then_one_aggregate_per_window() {
    let mut e = Engine::new(EngineConfig::default(), Some(registry()));
    // 1,000 new ids inside one 5-minute window (t0 is on a window edge).
    let mut evs = flood("ghost", t0(), 1_000, 200);
    // Known traffic after the window closes it (the stream time moves on
    // the third event: no single event moves it).
    evs.extend(known_after(t0() + 6 * MINUTE_MS));
    let out = run(&mut e, &evs);
    let alerts = unknown(&out);
    let (agg, single): (Vec<&crate::alert::Alert>, Vec<&crate::alert::Alert>) =
        alerts.iter().copied().partition(|a| is_budget_aggregate(a));
    assert_eq!(single.len(), 20, "the budget's alerts go out as usual");
    assert_eq!(agg.len(), 1, "{:#?}", agg);
    let a = agg[0];
    assert_eq!(a.integration_id, "*");
    assert_eq!(a.evidence["aggregate"], EvidenceValue::Bool(true));
    assert_eq!(a.evidence["alerts_folded"], EvidenceValue::Int(980));
    assert!(
        a.summary
            .starts_with("980 unregistered integrations appeared in 5 min"),
        "{}",
        a.summary
    );
    // Heavy callers (4 calls: every seventh id) lead the top 10.
    let EvidenceValue::List(top) = &a.evidence["top_integrations"] else {
        panic!("top_integrations: {:?}", a.evidence);
    };
    assert_eq!(top.len(), 10);
    let EvidenceValue::List(calls) = &a.evidence["top_calls"] else {
        panic!()
    };
    assert!(calls.iter().all(|c| c == "4"), "{calls:?}");
    assert!(top.iter().all(|id| {
        let i: usize = id.trim_start_matches("ghost-").parse().unwrap();
        i.is_multiple_of(7) && i >= 20
    }));
    assert_eq!(e.stats().alerts_over_budget, 980);
    // No folded integration is ever resolved on its own.
    let later = known_after(t0() + 120 * MINUTE_MS);
    let out2 = run(&mut e, &later);
    let singles: std::collections::BTreeSet<_> = single.iter().map(|a| a.id.clone()).collect();
    for r in &out2.resolved {
        assert!(
            singles.contains(&r.id) || r.id == a.id,
            "resolution of an alert never sent: {r:?}"
        );
    }
    assert!(out2
        .resolved
        .iter()
        .any(|r| r.id == a.id && r.folded == 980));
}

#[test]
fn a_continuing_flood_sends_only_the_aggregate_of_each_window() {
    let mut e = Engine::new(EngineConfig::default(), Some(registry()));
    // 3,000 ids over 15 minutes: three windows.
    let mut evs = flood("ghost", t0(), 3_000, 300);
    evs.extend(known_after(t0() + 16 * MINUTE_MS));
    let out = run(&mut e, &evs);
    let alerts = unknown(&out);
    let agg: Vec<_> = alerts.iter().filter(|a| is_budget_aggregate(a)).collect();
    assert_eq!(
        alerts.len() - agg.len(),
        20,
        "individually: the first window's budget"
    );
    assert_eq!(agg.len(), 3);
    let folded: i64 = agg
        .iter()
        .map(|a| match a.evidence["alerts_folded"] {
            EvidenceValue::Int(n) => n,
            _ => 0,
        })
        .sum();
    assert_eq!(folded, 2_980);
    // Each window's aggregate is resolved when the next one closes.
    assert!(out.resolved.iter().any(|r| r.id == agg[0].id));
    assert!(out.resolved.iter().any(|r| r.id == agg[1].id));
    // Ids differ per window.
    assert_ne!(agg[0].id, agg[1].id);
}

#[test]
fn below_the_budget_nothing_changes() {
    let mut off = EngineConfig::default();
    off.alert_budget.enabled = false;
    let evs = flood("ghost", t0(), 20, 1_000);
    let mut a = Engine::new(EngineConfig::default(), Some(registry()));
    let mut b = Engine::new(off, Some(registry()));
    let (mut oa, ob) = (run(&mut a, &evs), run(&mut b, &evs));
    a.finish(&mut oa);
    assert_eq!(oa.alerts, ob.alerts);
    assert_eq!(oa.alerts.len(), 20);
}

#[test]
fn a_kinds_own_budget_replaces_per_kind() {
    let mut cfg = EngineConfig::default();
    cfg.alert_budget
        .kinds
        .insert(AlertKind::UnknownIntegration, 3);
    let mut e = Engine::new(cfg, Some(registry()));
    let mut out = run(&mut e, &flood("ghost", t0(), 50, 1_000));
    e.finish(&mut out);
    let alerts = unknown(&out);
    assert_eq!(alerts.iter().filter(|a| !is_budget_aggregate(a)).count(), 3);
    assert_eq!(alerts.iter().filter(|a| is_budget_aggregate(a)).count(), 1);
}

#[test]
fn the_budget_survives_a_checkpoint() {
    let evs = flood("ghost", t0(), 200, 500);
    let (first, rest) = evs.split_at(100);
    let mut whole = Engine::new(EngineConfig::default(), Some(registry()));
    let mut want = run(&mut whole, &evs);
    whole.finish(&mut want);
    let mut e = Engine::new(EngineConfig::default(), Some(registry()));
    let mut got = run(&mut e, first);
    let bytes = serde_json::to_vec(&e).unwrap();
    let back: Engine = serde_json::from_slice(&bytes).unwrap();
    let mut e = back.resume(EngineConfig::default(), Some(registry()));
    let more = run(&mut e, rest);
    got.alerts.extend(more.alerts);
    e.finish(&mut got);
    assert_eq!(got.alerts, want.alerts);
}

#[test]
fn max_integrations_bounds_every_engine_of_a_population_together() {
    let cfg = EngineConfig {
        max_integrations: 100,
        ..EngineConfig::default()
    };
    let pop = Population::new();
    let mut engines: Vec<Engine> = (0..3)
        .map(|_| {
            let mut e = Engine::new(cfg.clone(), None);
            e.join_population(&pop);
            e
        })
        .collect();
    let mut out = Outputs::default();
    let mut peak = 0;
    for (i, ev) in flood("id", t0(), 3_000, 100).iter().enumerate() {
        engines[i % 3].process(&ev.as_event(), &mut out);
        peak = peak.max(pop.tracked());
    }
    let held: usize = engines.iter().map(|e| e.stats().tracked_integrations).sum();
    assert_eq!(held, pop.tracked());
    assert!(peak <= 100, "the process held {peak} > max_integrations");
    assert!(
        held > 50,
        "eviction gives up a tenth, not everything: {held}"
    );
    // Before: each engine had its own cap (3 × 100).
    let alone: usize = (0..3)
        .map(|k| {
            let mut e = Engine::new(cfg.clone(), None);
            for (i, ev) in flood("id", t0(), 3_000, 100).iter().enumerate() {
                if i % 3 == k {
                    e.process(&ev.as_event(), &mut out);
                }
            }
            e.stats().tracked_integrations
        })
        .sum();
    assert!(alone > 200, "unjoined engines cap each alone: {alone}");
    // An engine dropped (a revoked partition) leaves the count.
    engines.pop();
    let held: usize = engines.iter().map(|e| e.stats().tracked_integrations).sum();
    assert_eq!(pop.tracked(), held);
}

#[test]
fn a_flood_on_one_engine_evicts_its_own_integrations_first() {
    let cfg = EngineConfig {
        max_integrations: 100,
        ..EngineConfig::default()
    };
    let pop = Population::new();
    let mut quiet = Engine::new(cfg.clone(), None);
    quiet.join_population(&pop);
    let mut flooded = Engine::new(cfg, None);
    flooded.join_population(&pop);
    let mut out = Outputs::default();
    for i in 0..40 {
        quiet.process(
            &Ev::new(t0() + i, &format!("honest-{i}")).as_event(),
            &mut out,
        );
    }
    for ev in flood("junk", t0() + 1_000, 5_000, 10) {
        flooded.process(&ev.as_event(), &mut out);
    }
    assert_eq!(quiet.stats().tracked_integrations, 40);
    assert!(pop.tracked() <= 100);
}

#[test]
fn a_registered_integrations_alerts_are_never_budgeted() {
    // 2,000 distinct resources outside the grants of a registered
    // integration: bounded by its episodes (64 + one aggregate), not by the
    // budget, so junk cannot spend the budget its real alerts need.
    let mut e = Engine::new(
        EngineConfig::default(),
        Some(crate::tests_hostile::granted_contacts_only()),
    );
    let evs: Vec<Ev> = (0..2_000)
        .map(|i| {
            let mut x = Ev::new(t0() + i * 100, "crm");
            x.resource = format!("junk{i}");
            x
        })
        .collect();
    let mut out = run(&mut e, &evs);
    e.finish(&mut out);
    assert!(out.alerts.iter().all(|a| !is_budget_aggregate(a)));
    assert_eq!(e.stats().alerts_over_budget, 0);
    assert_eq!(
        out.alerts.len(),
        EngineConfig::default().max_open_episodes + 1
    );
}
