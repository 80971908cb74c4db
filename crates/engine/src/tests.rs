//! Engine behaviour, detector by detector, on event time.

use crate::alert::{AlertKind, Outputs};
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::event::{Action, Event};
use crate::registry::{ActiveHours, Grant, IntegrationDecl, KeyDecl, PrincipalDecl, Registry};
use crate::time::{parse_rfc3339, DAY_MS, MINUTE_MS};

/// Monday 2026-10-26 00:00 UTC.
pub(crate) fn t0() -> i64 {
    parse_rfc3339("2026-10-26T00:00:00Z").unwrap()
}

/// An owned event, so test streams can be built up front.
#[derive(Clone, Debug)]
pub(crate) struct Ev {
    pub(crate) ts: i64,
    pub(crate) id: String,
    pub(crate) resource: String,
    pub(crate) action: Action,
    pub(crate) status: u16,
    pub(crate) key: Option<String>,
    pub(crate) principal: Option<String>,
    pub(crate) records: u64,
    pub(crate) ip: Option<std::net::IpAddr>,
}

impl Ev {
    pub(crate) fn new(ts: i64, id: &str) -> Self {
        Ev {
            ts,
            id: id.into(),
            resource: "contacts".into(),
            action: Action::Read,
            status: 200,
            key: None,
            principal: None,
            records: 10,
            ip: Some("198.51.100.7".parse().unwrap()),
        }
    }
    pub(crate) fn as_event(&self) -> Event<'_> {
        Event {
            ts_ms: self.ts,
            integration_id: &self.id,
            resource: &self.resource,
            action: self.action,
            status: self.status,
            key_id: self.key.as_deref(),
            principal: self.principal.as_deref(),
            records: self.records,
            bytes: self.records * 500,
            source_ip: self.ip,
        }
    }
}

/// Steady benign traffic: `per_min` calls every minute for `days`, plus a
/// nightly batch of `batch` calls/min 02:00-02:30.
pub(crate) fn steady(id: &str, start: i64, days: i64, per_min: u32, batch: u32) -> Vec<Ev> {
    let mut v = Vec::new();
    for m in 0..days * 1440 {
        let base = start + m * MINUTE_MS;
        let minute_of_day = m % 1440;
        let n = if (120..150).contains(&minute_of_day) {
            batch
        } else {
            per_min
        };
        for i in 0..n {
            v.push(Ev::new(
                base + i64::from(i) * (MINUTE_MS / i64::from(n.max(1))),
                id,
            ));
        }
    }
    v
}

pub(crate) fn run(engine: &mut Engine, evs: &[Ev]) -> Outputs {
    let mut out = Outputs::default();
    for e in evs {
        engine.process(&e.as_event(), &mut out);
    }
    out
}

pub(crate) fn kinds(out: &Outputs) -> Vec<AlertKind> {
    out.alerts.iter().map(|a| a.kind).collect()
}

fn registry() -> Registry {
    let mut d = IntegrationDecl::new("crm-sync");
    d.granted = vec![Grant::parse("contacts:*").unwrap()];
    d.networks = vec!["198.51.100.0/24".parse().unwrap()];
    let mut days = [true; 7];
    days[5] = false;
    days[6] = false;
    d.active_hours = Some(ActiveHours {
        days,
        start_minute: 6 * 60,
        end_minute: 22 * 60,
        utc_offset_minutes: 0,
    });
    Registry::new(
        vec![d, IntegrationDecl::new("other")],
        vec![KeyDecl {
            id: "k-old".into(),
            integration: "crm-sync".into(),
            created: None,
            revoked_at: Some(t0() + DAY_MS),
        }],
        vec![PrincipalDecl {
            id: "asha@acme.example".into(),
            offboarded_at: Some(t0() + DAY_MS),
        }],
    )
}

#[test]
fn benign_seasonal_traffic_with_a_nightly_batch_is_quiet() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let out = run(&mut e, &steady("a", t0(), 21, 2, 40));
    assert!(out.alerts.is_empty(), "{:#?}", out.alerts.first());
}

#[test]
fn call_spike_fires_mid_bucket_after_learning_only() {
    let mut e = Engine::new(EngineConfig::default(), None);
    // A spike inside the learning period is learned, not alerted.
    let mut evs = steady("a", t0(), 10, 2, 2);
    let spike_at = |day: i64| t0() + day * DAY_MS + 3 * 3_600_000 + 10 * MINUTE_MS;
    for i in 0..300 {
        evs.push(Ev::new(spike_at(2) + i * 100, "a"));
    }
    evs.sort_by_key(|e| e.ts);
    assert!(run(&mut e, &evs).alerts.is_empty());
    // After learning: 300 calls in one minute at 03:10 fires once, mid-bucket.
    let mut evs = steady("a", t0() + 10 * DAY_MS, 1, 2, 2);
    for i in 0..300 {
        evs.push(Ev::new(spike_at(10) + i * 100, "a"));
    }
    evs.sort_by_key(|e| e.ts);
    let out = run(&mut e, &evs);
    assert_eq!(kinds(&out), vec![AlertKind::CallSpike], "{:#?}", out.alerts);
    let a = &out.alerts[0];
    assert!(
        a.detected_at < spike_at(10) + 10_000,
        "fired only at {}",
        a.detected_at - spike_at(10)
    );
    assert!(a.observed.unwrap() < 100.0 && a.expected.unwrap() < 5.0);
    assert!(
        a.summary.contains("calls in 1 min") && a.summary.contains("Thu 03:00"),
        "{}",
        a.summary
    );
    assert!(a.score > 0.6 && a.score <= 1.0);
}

#[test]
fn low_volume_integration_spike_uses_count_statistics() {
    // Three calls an hour, then 40 in one minute.
    let mut evs = Vec::new();
    for h in 0..24 * 14 {
        for j in 0..3 {
            evs.push(Ev::new(t0() + h * 3_600_000 + j * 17 * MINUTE_MS, "low"));
        }
    }
    let at = t0() + 14 * DAY_MS + 5 * MINUTE_MS;
    for i in 0..40 {
        evs.push(Ev::new(at + i * 1000, "low"));
    }
    let mut e = Engine::new(EngineConfig::default(), None);
    let out = run(&mut e, &evs);
    assert_eq!(kinds(&out), vec![AlertKind::CallSpike]);
}

#[test]
fn volume_and_error_bursts_fire_at_a_normal_call_rate() {
    let mut e = Engine::new(EngineConfig::default(), None);
    run(&mut e, &steady("a", t0(), 8, 3, 3));
    let at = t0() + 8 * DAY_MS + 14 * 3_600_000;
    let mut evs: Vec<Ev> = (0..3).map(|i| Ev::new(at + i * 20_000, "a")).collect();
    for ev in &mut evs {
        ev.records = 5_000; // bulk export at the usual call rate
    }
    let out = run(&mut e, &evs);
    assert_eq!(kinds(&out), vec![AlertKind::VolumeSpike]);
    let later = at + 3 * 3_600_000;
    let mut evs: Vec<Ev> = (0..60).map(|i| Ev::new(later + i * 900, "a")).collect();
    for ev in &mut evs {
        ev.status = 401;
    }
    let out = run(&mut e, &evs);
    assert!(
        kinds(&out).contains(&AlertKind::ErrorBurst),
        "{:?}",
        kinds(&out)
    );
}

#[test]
fn an_ongoing_spike_is_one_alert_and_resolves_after_the_gap() {
    let mut e = Engine::new(EngineConfig::default(), None);
    run(&mut e, &steady("a", t0(), 8, 1, 1));
    let at = t0() + 8 * DAY_MS + 3 * 3_600_000;
    // Ten minutes of 200 calls/min.
    let evs: Vec<Ev> = (0..2000).map(|i| Ev::new(at + i * 300, "a")).collect();
    let out = run(&mut e, &evs);
    assert_eq!(kinds(&out), vec![AlertKind::CallSpike]);
    // Back to normal for an hour: the episode resolves with its folded count.
    let out = run(&mut e, &steady("a", at + 20 * MINUTE_MS, 1, 1, 1)[..60]);
    assert_eq!(out.resolved.len(), 1);
    assert!(out.resolved[0].folded >= 5, "{:?}", out.resolved);
}

#[test]
fn new_data_type_after_learning_once() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let mut evs = steady("m", t0(), 2, 1, 1);
    evs[100].resource = "deals".into(); // during learning: learned quietly
    run(&mut e, &evs);
    run(&mut e, &steady("m", t0() + 2 * DAY_MS, 6, 1, 1));
    let mut x = Ev::new(t0() + 8 * DAY_MS + 60_000, "m");
    x.resource = "notes".into();
    x.action = Action::Export;
    let out = run(
        &mut e,
        &[
            x.clone(),
            Ev {
                ts: x.ts + 1000,
                ..x.clone()
            },
        ],
    );
    assert_eq!(kinds(&out), vec![AlertKind::NewDataType]);
    let a = &out.alerts[0];
    assert_eq!(a.resource.as_deref(), Some("notes"));
    assert_eq!(
        a.severity,
        crate::Severity::Critical,
        "notes is sensitive: warning raised"
    );
    assert!(
        a.summary.contains("notes:export") && a.summary.contains("contacts:read"),
        "{}",
        a.summary
    );
    let mut deals = Ev::new(x.ts + 5000, "m");
    deals.resource = "deals".into();
    assert!(run(&mut e, &[deals]).alerts.is_empty());
}

#[test]
fn new_source_learned_and_declared() {
    let mut e = Engine::new(EngineConfig::default(), Some(registry()));
    run(&mut e, &steady("free", t0(), 8, 1, 1));
    let mut x = Ev::new(t0() + 8 * DAY_MS + 5000, "free");
    x.ip = Some("45.155.3.7".parse().unwrap());
    let out = run(
        &mut e,
        &[
            x.clone(),
            Ev {
                ts: x.ts + 10,
                ..x.clone()
            },
        ],
    );
    let k: Vec<_> = out
        .alerts
        .iter()
        .filter(|a| a.kind == AlertKind::NewSource)
        .collect();
    assert_eq!(k.len(), 1, "{:#?}", out.alerts);
    assert!(k[0].summary.contains("45.155.3.0/24"), "{}", k[0].summary);
    // A registered integration with declared networks: from the very first event.
    let mut y = Ev::new(t0() + 9 * 3_600_000, "crm-sync");
    y.ip = Some("203.0.113.9".parse().unwrap());
    let out = run(&mut e, &[y]);
    assert_eq!(kinds(&out), vec![AlertKind::NewSource]);
    assert!(out.alerts[0]
        .summary
        .contains("outside its declared networks 198.51.100.0/24"));
}

#[test]
fn registry_detectors_fire_from_the_first_event_and_fold_repeats() {
    let mut e = Engine::new(EngineConfig::default(), Some(registry()));
    let base = t0() + 2 * DAY_MS + 10 * 3_600_000; // Wednesday 10:00, after revocation
    let mut scope = Ev::new(base, "crm-sync");
    scope.resource = "deals".into();
    let mut revoked = Ev::new(base + 1000, "crm-sync");
    revoked.key = Some("k-old".into());
    let mut offb = Ev::new(base + 2000, "crm-sync");
    offb.principal = Some("asha@acme.example".into());
    let night = Ev::new(t0() + 2 * DAY_MS + 3 * 3_600_000, "crm-sync");
    let mut shadow = Ev::new(base + 3000, "shadow-tool");
    shadow.ip = None;
    let mut evs = vec![
        night.clone(),
        scope.clone(),
        revoked.clone(),
        offb.clone(),
        shadow.clone(),
    ];
    // Repeats within minutes fold.
    for i in 1..20 {
        evs.push(Ev {
            ts: scope.ts + i * 5000,
            ..scope.clone()
        });
        evs.push(Ev {
            ts: revoked.ts + i * 5000,
            ..revoked.clone()
        });
        evs.push(Ev {
            ts: shadow.ts + i * 5000,
            ..shadow.clone()
        });
    }
    evs.sort_by_key(|e| e.ts);
    let out = run(&mut e, &evs);
    let mut k = kinds(&out);
    k.sort();
    assert_eq!(
        k,
        vec![
            AlertKind::ScopeViolation,
            AlertKind::RevokedCredential,
            AlertKind::RevokedCredential,
            AlertKind::OffHours,
            AlertKind::UnknownIntegration
        ],
        "{:#?}",
        out.alerts
    );
    let scope = out
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::ScopeViolation)
        .unwrap();
    assert_eq!(scope.severity, crate::Severity::Critical);
    assert!(scope.summary.contains("deals:read") && scope.summary.contains("contacts:*"));
    assert!(e.stats().folded >= 50);
}

#[test]
fn dormant_integration_and_key_waking_up() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let mut evs = steady("d", t0(), 12, 1, 1);
    for ev in &mut evs {
        ev.key = Some("k1".into());
    }
    run(&mut e, &evs);
    let mut wake = Ev::new(t0() + 40 * DAY_MS, "d");
    wake.key = Some("k1".into());
    let out = run(&mut e, &[wake]);
    assert!(
        kinds(&out).contains(&AlertKind::DormantReactivated),
        "{:?}",
        out.alerts
    );
    assert_eq!(
        out.alerts
            .iter()
            .filter(|a| a.kind == AlertKind::DormantReactivated)
            .count(),
        1,
        "key alert folded into integration's"
    );
    assert!(
        out.alerts[0].summary.contains("28 days"),
        "{}",
        out.alerts[0].summary
    );
}

#[test]
fn late_events_within_lateness_count_in_their_bucket_and_later_ones_are_counted_late() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let mut out = Outputs::default();
    e.process(&Ev::new(t0() + 120_000, "a").as_event(), &mut out);
    e.process(&Ev::new(t0() + 70_000, "a").as_event(), &mut out); // 50 s late: fine
    assert_eq!(e.stats().late_events, 0);
    e.process(&Ev::new(t0(), "a").as_event(), &mut out); // 120 s late
    assert_eq!(e.stats().late_events, 1);
    assert_eq!(e.integration("a").unwrap().events, 3);
}

#[test]
fn replay_is_deterministic_and_partitioning_by_integration_changes_nothing() {
    let reg = registry();
    let mut evs = steady("a", t0(), 9, 1, 5);
    evs.extend(steady("b", t0() + 3_600_000, 9, 2, 2));
    let spike = t0() + 8 * DAY_MS + 4 * 3_600_000;
    evs.extend((0..500).map(|i| Ev::new(spike + i * 50, "a")));
    evs.extend((0..500).map(|i| Ev::new(spike + i * 50, "b")));
    let mut odd = Ev::new(spike, "crm-sync");
    odd.resource = "deals".into();
    evs.push(odd);
    evs.sort_by_key(|e| e.ts);
    let one = run(
        &mut Engine::new(EngineConfig::default(), Some(reg.clone())),
        &evs,
    );
    let again = run(
        &mut Engine::new(EngineConfig::default(), Some(reg.clone())),
        &evs,
    );
    assert_eq!(one.alerts, again.alerts);
    assert!(one.alerts.len() >= 3);
    // Two "partitions": a,crm-sync in one engine, b in another.
    let (p0, p1): (Vec<Ev>, Vec<Ev>) = evs.iter().cloned().partition(|e| e.id != "b");
    let mut split = run(
        &mut Engine::new(EngineConfig::default(), Some(reg.clone())),
        &p0,
    )
    .alerts;
    split.extend(run(&mut Engine::new(EngineConfig::default(), Some(reg)), &p1).alerts);
    let mut ids: Vec<_> = one.alerts.iter().map(|a| a.id.clone()).collect();
    let mut split_ids: Vec<_> = split.iter().map(|a| a.id.clone()).collect();
    ids.sort();
    split_ids.sort();
    assert_eq!(ids, split_ids);
}

#[test]
fn a_flood_of_distinct_ids_cannot_exhaust_memory_and_registered_ones_stay() {
    let cfg = EngineConfig {
        max_integrations: 1000,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(cfg, Some(registry()));
    let mut out = Outputs::default();
    e.process(
        &Ev::new(t0() + 10 * 3_600_000, "crm-sync").as_event(),
        &mut out,
    );
    for i in 0..20_000 {
        let id = format!("flood-{i}");
        e.process(
            &Ev::new(t0() + 10 * 3_600_000 + i, &id).as_event(),
            &mut out,
        );
    }
    let s = e.stats();
    assert!(s.tracked_integrations <= 1000, "{}", s.tracked_integrations);
    assert!(s.evicted_integrations >= 19_000);
    assert!(e.integration("crm-sync").is_some());
}

#[test]
fn state_round_trips_through_serde() {
    let mut e = Engine::new(EngineConfig::default(), None);
    run(&mut e, &steady("a", t0(), 2, 1, 3));
    let json = serde_json::to_string(&e).unwrap();
    let back: Engine = serde_json::from_str(&json).unwrap();
    assert_eq!(back, e);
}

#[test]
fn hostile_counts_and_times_do_not_overflow() {
    let mut e = Engine::new(EngineConfig::default(), None);
    run(&mut e, &steady("a", t0(), 8, 1, 1));
    let mut out = Outputs::default();
    for ts in [i64::MIN, -1, i64::MAX, t0() + 8 * DAY_MS + 1] {
        let mut ev = Event::new(ts, "a", "contacts", Action::Read);
        ev.records = u64::MAX;
        ev.bytes = u64::MAX;
        e.process(&ev, &mut out);
        e.process(&ev, &mut out);
    }
    assert_eq!(e.integration("a").unwrap().records, u64::MAX);
}

#[test]
fn advancing_time_from_outside_announces_ends_but_folding_follows_the_integration() {
    // Same events, one engine advanced by another partition's clock between
    // them, one not: identical alerts (ids), and the end announced once.
    let mut evs = steady("a", t0(), 8, 1, 1);
    let at = t0() + 8 * DAY_MS + 3 * 3_600_000;
    evs.extend((0..300).map(|i| Ev::new(at + i * 100, "a")));
    evs.extend((0..300).map(|i| Ev::new(at + 5 * MINUTE_MS + i * 100, "a")));
    let mut plain = Engine::new(EngineConfig::default(), None);
    let mut advanced = Engine::new(EngineConfig::default(), None);
    let (mut a, mut b) = (Outputs::default(), Outputs::default());
    for (i, e) in evs.iter().enumerate() {
        plain.process(&e.as_event(), &mut a);
        advanced.process(&e.as_event(), &mut b);
        if i == evs.len() - 301 {
            // Another partition is a day ahead.
            advanced.advance_to(at + DAY_MS, &mut b);
        }
    }
    let ids = |o: &Outputs| o.alerts.iter().map(|x| x.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(b.resolved.len(), 1, "{:?}", b.resolved);
    // The integration's own later traffic ends it without a second resolution.
    advanced.process(&Ev::new(at + 2 * 3_600_000, "a").as_event(), &mut b);
    assert_eq!(b.resolved.len(), 1);
}

#[test]
fn learning_coverage_counts_integrations_inside_their_learning_period_at_the_stream_time() {
    let cfg = EngineConfig::default();
    let learning = cfg.learning_ms();
    let mut e = Engine::new(cfg, None);
    // A ticker keeps the stream time moving (one event every 30 min).
    let tick = |from: i64, to: i64| -> Vec<Ev> {
        (from..to)
            .step_by(30 * MINUTE_MS as usize)
            .map(|ts| Ev::new(ts, "ticker"))
            .collect()
    };
    run(&mut e, &[Ev::new(t0(), "old")]);
    run(&mut e, &tick(t0(), t0() + 3 * DAY_MS));
    run(&mut e, &[Ev::new(t0() + 3 * DAY_MS, "young")]);
    let s = e.stats();
    assert_eq!((s.tracked_integrations, s.learning_integrations), (3, 3));
    // One learning period after the start, "old" and the ticker are past it
    // ("old" though it sent nothing since); "young" joined later.
    run(&mut e, &tick(t0() + 3 * DAY_MS, t0() + learning + DAY_MS));
    let s = e.stats();
    assert_eq!(s.tracked_integrations, 3);
    assert_eq!(s.learning_integrations, 1, "only young still learns");
    run(
        &mut e,
        &tick(
            t0() + learning + DAY_MS,
            t0() + 3 * DAY_MS + learning + DAY_MS,
        ),
    );
    assert_eq!(e.stats().learning_integrations, 0);
}

#[test]
fn an_episode_opened_after_advance_found_nothing_to_announce_is_still_announced() {
    // `advance_to` skips its walk until some episode may end; an episode
    // opened after a walk (a new unregistered integration) lowers that bound.
    let mut e = Engine::new(EngineConfig::default(), Some(registry()));
    let mut out = Outputs::default();
    e.process(&Ev::new(t0(), "ghost-a").as_event(), &mut out);
    e.advance_to(t0() + DAY_MS, &mut out);
    assert_eq!(
        out.resolved.len(),
        1,
        "ghost-a's episode ends: {:?}",
        out.resolved
    );
    // Nothing left to announce: these calls find nothing.
    e.advance_to(t0() + DAY_MS + 1, &mut out);
    e.advance_to(t0() + 2 * DAY_MS, &mut out);
    assert_eq!(out.resolved.len(), 1);
    e.process(&Ev::new(t0() + 2 * DAY_MS, "ghost-b").as_event(), &mut out);
    let kinds: Vec<_> = out
        .alerts
        .iter()
        .map(|a| (a.integration_id.as_str(), a.kind))
        .collect();
    assert!(
        kinds.contains(&("ghost-b", AlertKind::UnknownIntegration)),
        "{kinds:?}"
    );
    e.advance_to(t0() + 3 * DAY_MS, &mut out);
    let ended: Vec<_> = out
        .resolved
        .iter()
        .map(|r| r.integration_id.as_str())
        .collect();
    assert_eq!(
        ended,
        ["ghost-a", "ghost-b"],
        "ghost-b's end is announced too"
    );
}
