//! Hostile input against the engine (issue 16, engine side): junk filling
//! the learned lists, floods of episodes and ids. Each test is an attack
//! from the issue and asserts detection still works. Forged event times:
//! `tests_hostile_time.rs`.

use crate::alert::{AlertKind, EvidenceValue, Outputs};
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::tests::{kinds, run, steady, t0, Ev};
use crate::time::DAY_MS;

// ---- caps that fail closed (item 2) ---------------------------------------

/// Eight days of "a" with `junk` mixed into its first day, then `probe`
/// (after the learning period).
fn learned_with_junk(cfg: EngineConfig, junk: Vec<Ev>, probe: Ev) -> (Engine, Outputs) {
    let mut e = Engine::new(cfg, None);
    let mut evs = steady("a", t0(), 8, 1, 1);
    evs.extend(junk);
    evs.push(probe);
    evs.sort_by_key(|x| x.ts);
    let out = run(&mut e, &evs);
    (e, out)
}

fn of(out: &Outputs, kind: AlertKind) -> Vec<&crate::alert::Alert> {
    out.alerts.iter().filter(|a| a.kind == kind).collect()
}

#[test]
fn sixty_four_junk_resources_while_learning_cannot_hide_a_new_data_type() {
    let junk = (0..64)
        .map(|i| {
            let mut x = Ev::new(t0() + 3_600_000 + i * 1000, "a");
            x.resource = format!("junk{i}");
            x
        })
        .collect();
    let mut probe = Ev::new(t0() + 8 * DAY_MS - 3_600_000 + 30_000, "a");
    probe.resource = "deals".into();
    probe.action = crate::event::Action::Export;
    let (_, out) = learned_with_junk(EngineConfig::default(), junk, probe);
    let new = of(&out, AlertKind::NewDataType);
    assert!(
        new.iter().any(|a| a.resource.as_deref() == Some("deals")),
        "{new:#?}"
    );
    // The burst itself was one alert, while learning.
    let burst: Vec<_> = new
        .iter()
        .filter(|a| a.evidence.contains_key("learning_burst"))
        .collect();
    assert_eq!(burst.len(), 1, "{new:#?}");
    assert!(burst[0].detected_at < t0() + DAY_MS);
}

#[test]
fn sixty_four_junk_networks_while_learning_cannot_hide_a_new_source() {
    let junk = (0..64)
        .map(|i| {
            let mut x = Ev::new(t0() + 3_600_000 + i * 1000, "a");
            x.ip = format!("10.{i}.0.1").parse().ok();
            x
        })
        .collect();
    let mut probe = Ev::new(t0() + 8 * DAY_MS - 3_600_000 + 30_000, "a");
    probe.ip = "203.0.113.9".parse().ok();
    let (_, out) = learned_with_junk(EngineConfig::default(), junk, probe);
    let new = of(&out, AlertKind::NewSource);
    assert!(
        new.iter()
            .any(|a| a.evidence.get("network") == Some(&EvidenceValue::from("203.0.113.0/24"))),
        "{new:#?}"
    );
    assert_eq!(
        new.iter()
            .filter(|a| a.evidence.contains_key("learning_burst"))
            .count(),
        1
    );
}

#[test]
fn a_full_list_still_alerts_and_says_it_is_saturated() {
    let cfg = EngineConfig {
        max_data_types: 4,
        ..EngineConfig::default()
    };
    // Mature, with four data types learned after learning: the list is full.
    let late = t0() + 8 * DAY_MS - 2 * 3_600_000;
    let junk = (0..3)
        .map(|i| {
            let mut x = Ev::new(late + i * 1000, "a");
            x.resource = format!("junk{i}");
            x
        })
        .collect();
    let mut probe = Ev::new(t0() + 8 * DAY_MS - 3_600_000 + 30_000, "a");
    probe.resource = "deals".into();
    let (e, out) = learned_with_junk(cfg, junk, probe);
    let deals: Vec<_> = of(&out, AlertKind::NewDataType)
        .into_iter()
        .filter(|a| a.resource.as_deref() == Some("deals"))
        .collect();
    assert_eq!(deals.len(), 1, "{out:#?}");
    assert_eq!(
        deals[0].evidence.get("list_saturated"),
        Some(&EvidenceValue::Bool(true))
    );
    assert!(
        deals[0].summary.contains("list is full"),
        "{}",
        deals[0].summary
    );
    // The least-used entry went, the integration's real one stayed.
    let a = e.integration("a").unwrap();
    assert_eq!(a.data_types.len(), 4);
    assert!(a.data_types.iter().any(|d| &*d.resource == "contacts"));
    assert!(a.data_types.iter().any(|d| &*d.resource == "deals"));
}

#[test]
fn thirty_two_junk_keys_cannot_keep_a_new_key_untracked() {
    let junk = (0..32)
        .map(|i| {
            let mut x = Ev::new(t0() + 3_600_000 + i * 1000, "a");
            x.key = Some(format!("junk-key-{i}"));
            x
        })
        .collect();
    let mut probe = Ev::new(t0() + 8 * DAY_MS - 3_600_000 + 30_000, "a");
    probe.key = Some("key-rotated".into());
    let (e, _) = learned_with_junk(EngineConfig::default(), junk, probe);
    let a = e.integration("a").unwrap();
    assert!(a.keys.len() <= 32);
    assert!(
        a.keys.iter().any(|k| &*k.id == "key-rotated"),
        "the new key is not tracked"
    );
}

// ---- linear cost: bounded episodes (item 3) --------------------------------

pub(crate) fn granted_contacts_only() -> crate::registry::Registry {
    use crate::registry::{Grant, IntegrationDecl, Registry};
    let mut d = IntegrationDecl::new("crm");
    d.granted = vec![Grant::parse("contacts:*").unwrap()];
    Registry::new(vec![d], vec![], vec![])
}

#[test]
fn distinct_resources_outside_the_grants_fold_into_one_aggregate_alert() {
    // The episode bound alone; the alert budget (which caps the same burst
    // at 20 alerts a window) is `tests_budget.rs`.
    let mut cfg = EngineConfig::default();
    cfg.alert_budget.enabled = false;
    let mut e = Engine::new(cfg, Some(granted_contacts_only()));
    let n = 2_000;
    let evs: Vec<Ev> = (0..n)
        .map(|i| {
            let mut x = Ev::new(t0() + i * 100, "crm");
            x.resource = format!("junk{i}");
            x
        })
        .collect();
    let out = run(&mut e, &evs);
    let max = EngineConfig::default().max_open_episodes;
    let scope = of(&out, AlertKind::ScopeViolation);
    // One alert per subject while the integration has room for episodes (the
    // junk also raised one learning-burst alert), then one aggregate.
    assert_eq!(out.alerts.len(), max + 1, "{:#?}", kinds(&out));
    let agg: Vec<_> = scope
        .iter()
        .filter(|a| a.evidence.get("aggregate") == Some(&EvidenceValue::Bool(true)))
        .collect();
    assert_eq!(agg.len(), 1);
    assert!(agg[0].summary.contains("folded"), "{}", agg[0].summary);
    let st = e.integration("crm").unwrap();
    assert!(
        st.episodes.len() <= max + 4,
        "{} episodes",
        st.episodes.len()
    );
    // Its resolution counts every subject folded into it (an event 20 h
    // later: past the 6 h episode gap, inside the skew).
    let mut tail = Outputs::default();
    e.process(&Ev::new(t0() + 20 * 3_600_000, "crm").as_event(), &mut tail);
    let r = tail
        .resolved
        .iter()
        .find(|r| r.id == agg[0].id)
        .expect("the aggregate resolves");
    assert_eq!(r.folded as i64, n - scope.len() as i64);
}
