use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::Value;
use tripline_engine::registry::{ActiveHours, Grant, IntegrationDecl, KeyDecl, PrincipalDecl};
use tripline_engine::time::{parse_rfc3339, MINUTE_MS};
use tripline_engine::{Action, Alert, AlertKind, Registry, Severity};

use super::*;

fn small(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        days: 12,
        integrations: 10,
        rate_scale: 0.3,
        ..SimConfig::default()
    }
}

fn run(cfg: &SimConfig) -> (Vec<Vec<u8>>, Truth, String) {
    let mut lines = Vec::new();
    let (truth, reg) = generate(cfg, |l| lines.push(l.to_vec())).expect("generate");
    (lines, truth, reg)
}

/// A valid event per events.md, or None (what ingest would reject).
struct Ev {
    ts: i64,
    integ: String,
    resource: String,
    action: Action,
    key: Option<String>,
    principal: Option<String>,
    ip: Option<IpAddr>,
}

fn parse_event(line: &[u8]) -> Option<Ev> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let ts = match v.get("ts")? {
        Value::String(s) => parse_rfc3339(s)?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    let integ = v.get("integration_id")?.as_str()?;
    let resource = v.get("resource")?.as_str()?;
    let method = v.get("method")?.as_str()?;
    let status = v.get("status")?.as_u64()?;
    if integ.is_empty() || resource.is_empty() || !(100..=599).contains(&status) {
        return None;
    }
    let action = match v.get("action") {
        Some(a) => Action::parse(a.as_str()?)?,
        None => match method {
            "GET" | "HEAD" => Action::Read,
            "DELETE" => Action::Delete,
            _ => Action::Write,
        },
    };
    Some(Ev {
        ts,
        integ: integ.to_owned(),
        resource: resource.to_owned(),
        action,
        key: v.get("key_id").and_then(Value::as_str).map(str::to_owned),
        principal: v
            .get("principal")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ip: v
            .get("source_ip")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
    })
}

fn ts_field(t: &toml::Value, k: &str) -> Option<i64> {
    t.get(k)
        .and_then(toml::Value::as_str)
        .map(|s| parse_rfc3339(s).expect("registry timestamp"))
}

fn hhmm(s: &str) -> u32 {
    let (h, m) = s.split_once(':').expect("hh:mm");
    h.parse::<u32>().expect("hh") * 60 + m.parse::<u32>().expect("mm")
}

/// The generated TOML, read the way ingest would, into the engine's model.
fn load_registry(text: &str) -> Registry {
    let doc: toml::Value = toml::from_str(text).expect("registry.toml parses");
    let arr = |k: &str| {
        doc.get(k)
            .and_then(toml::Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut ids = BTreeSet::new();
    let integrations = arr("integrations")
        .iter()
        .map(|t| {
            let id = t["id"].as_str().expect("id");
            assert!(ids.insert(id.to_owned()), "duplicate {id}");
            for k in ["name", "vendor", "owner", "purpose"] {
                assert!(
                    t.get(k).and_then(toml::Value::as_str).is_some(),
                    "{id} lacks {k}"
                );
            }
            let mut d = IntegrationDecl::new(id);
            d.granted = t["granted"]
                .as_array()
                .expect("granted")
                .iter()
                .map(|g| Grant::parse(g.as_str().expect("str")).expect("grant"))
                .collect();
            d.networks = t
                .get("networks")
                .and_then(toml::Value::as_array)
                .map_or_else(Vec::new, |n| {
                    n.iter()
                        .map(|x| x.as_str().expect("str").parse().expect("cidr"))
                        .collect()
                });
            d.active_hours = t.get("active_hours").map(|a| {
                const D: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                let mut days = [false; 7];
                for x in a["days"].as_array().expect("days") {
                    days[D.iter().position(|d| Some(*d) == x.as_str()).expect("day")] = true;
                }
                let off = a["utc_offset"].as_str().expect("offset");
                let sign = if off.starts_with('-') { -1 } else { 1 };
                ActiveHours {
                    days,
                    start_minute: hhmm(a["start"].as_str().expect("start")),
                    end_minute: hhmm(a["end"].as_str().expect("end")),
                    utc_offset_minutes: sign * hhmm(&off[1..]) as i32,
                }
            });
            d
        })
        .collect();
    let keys = arr("keys")
        .iter()
        .map(|t| KeyDecl {
            id: t["id"].as_str().expect("id").to_owned(),
            integration: t["integration"].as_str().expect("integration").to_owned(),
            created: ts_field(t, "created"),
            revoked_at: ts_field(t, "revoked_at"),
        })
        .collect();
    let principals = arr("principals")
        .iter()
        .map(|t| PrincipalDecl {
            id: t["id"].as_str().expect("id").to_owned(),
            offboarded_at: ts_field(t, "offboarded_at"),
        })
        .collect();
    Registry::new(integrations, keys, principals)
}

#[test]
fn same_seed_same_bytes_different_seed_differs() {
    let (a, ta, ra) = run(&small(7));
    let (b, tb, rb) = run(&small(7));
    assert!(a == b, "event streams differ for the same seed");
    assert_eq!(ta, tb);
    assert_eq!(ra, rb);
    let (c, tc, _) = run(&small(8));
    assert!(a != c);
    assert_ne!(ta.incidents, tc.incidents);
}

#[test]
fn defaults_have_every_kind_at_least_three_times_and_in_range() {
    let cfg = SimConfig::default();
    let w = plan::plan(&cfg);
    let mut per: BTreeMap<AlertKind, BTreeSet<String>> = BTreeMap::new();
    let mut count: BTreeMap<AlertKind, usize> = BTreeMap::new();
    for b in &w.incidents {
        let i = &b.incident;
        *count.entry(i.kind).or_default() += 1;
        per.entry(i.kind)
            .or_default()
            .insert(i.integration_id.clone());
        assert!(
            i.start >= cfg.start_ms + plan::LEARNING_MS && i.end <= w.end,
            "{i:?}"
        );
        assert!(i.start < i.end);
    }
    for k in AlertKind::ALL {
        assert!(
            count.get(&k).copied().unwrap_or(0) >= 3,
            "{k}: {:?}",
            count.get(&k)
        );
        assert!(per[&k].len() >= 2, "{k} not spread across integrations");
    }
    let ids: BTreeSet<_> = w.incidents.iter().map(|b| b.incident.id.clone()).collect();
    assert_eq!(ids.len(), w.incidents.len());
    // Dormant integrations were active >= 10 days then silent >= 21; the
    // short-lived ones 2-5 days, then silent 15-20.
    let day = tripline_engine::time::DAY_MS;
    let (mut long, mut short) = (0, 0);
    for it in &w.integs {
        if let Some((a, b)) = it.silence {
            if a - it.onboard_ms >= 10 * day {
                assert!(b - a >= 21 * day);
                long += 1;
            } else {
                assert!((2 * day..=5 * day).contains(&(a - it.onboard_ms)));
                assert!((15 * day..=21 * day).contains(&(b - a)));
                short += 1;
            }
        }
    }
    assert!(
        long >= 3 && short >= 2,
        "{long} dormant, {short} short-lived"
    );
    // Some integrations onboard mid-run; one registered integration never used.
    assert!(w.integs.iter().any(|i| i.registered
        && i.onboard_ms > cfg.start_ms + 10 * tripline_engine::time::DAY_MS
        && i.base > 0.0));
    assert!(w.integs.iter().any(|i| i.registered && i.base == 0.0));
}

#[test]
fn out_of_order_share_and_bound() {
    let (lines, truth, _) = run(&SimConfig {
        seed: 3,
        days: 6,
        integrations: 12,
        ..SimConfig::default()
    });
    let mut max_ts = i64::MIN;
    let (mut late, mut n, mut worst) = (0u64, 0u64, 0i64);
    for l in &lines {
        let Some(e) = parse_event(l) else { continue };
        n += 1;
        if e.ts < max_ts {
            late += 1;
            worst = worst.max(max_ts - e.ts);
        }
        max_ts = max_ts.max(e.ts);
    }
    assert_eq!(n, truth.events);
    let share = late as f64 / n as f64;
    assert!(
        (0.012..0.025).contains(&share),
        "out-of-order share {share}"
    );
    assert!(worst <= 45_000, "displaced by {worst} ms");
    assert!(worst > 20_000);
}

#[test]
fn malformed_lines_are_counted_and_events_valid() {
    let (lines, truth, _) = run(&SimConfig {
        seed: 11,
        days: 6,
        integrations: 12,
        ..SimConfig::default()
    });
    let bad = lines.iter().filter(|l| parse_event(l).is_none()).count() as u64;
    assert_eq!(bad, truth.malformed_lines);
    assert_eq!(lines.len() as u64, truth.events + truth.malformed_lines);
    assert!(truth.malformed_lines > 0);
    let share = truth.malformed_lines as f64 / lines.len() as f64;
    assert!((0.0002..0.001).contains(&share), "{share}");
    // Both timestamp encodings appear.
    assert!(lines.iter().any(|l| l.starts_with(b"{\"ts\":\"")));
    assert!(lines.iter().any(|l| l.starts_with(b"{\"ts\":1")));
}

fn in_incident(truth: &Truth, kind: AlertKind, integ: &str, ts: i64) -> bool {
    truth
        .incidents
        .iter()
        .any(|i| i.kind == kind && i.integration_id == integ && ts >= i.start && ts < i.end)
}

#[test]
fn benign_traffic_never_breaks_the_registry() {
    let cfg = SimConfig {
        seed: 5,
        days: 36,
        integrations: 14,
        rate_scale: 0.15,
        ..SimConfig::default()
    };
    let (lines, truth, text) = run(&cfg);
    let reg = load_registry(&text);
    let mut broke: BTreeMap<String, usize> = BTreeMap::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    for l in &lines {
        let Some(e) = parse_event(l) else { continue };
        used.insert(e.integ.clone());
        let Some(d) = reg.integration(&e.integ) else {
            assert!(
                in_incident(&truth, AlertKind::UnknownIntegration, &e.integ, e.ts),
                "unregistered {}",
                e.integ
            );
            *broke.entry("unknown_integration".into()).or_default() += 1;
            continue;
        };
        if !d.is_granted(&e.resource, e.action) {
            assert!(
                in_incident(&truth, AlertKind::ScopeViolation, &e.integ, e.ts),
                "{} {}:{:?} at {}",
                e.integ,
                e.resource,
                e.action,
                e.ts
            );
            *broke.entry("scope_violation".into()).or_default() += 1;
        }
        if let Some(ip) = e.ip {
            assert!(d.network_allowed(ip), "{} from {ip}", e.integ);
        }
        if let Some(h) = &d.active_hours {
            if !h.contains(e.ts) {
                assert!(
                    in_incident(&truth, AlertKind::OffHours, &e.integ, e.ts),
                    "{} off hours at {}",
                    e.integ,
                    e.ts
                );
                *broke.entry("off_hours".into()).or_default() += 1;
            }
        }
        let key = e.key.as_deref().and_then(|k| reg.key(k));
        let p = e.principal.as_deref().and_then(|p| reg.principal(p));
        let revoked = key.and_then(|k| k.revoked_at).is_some_and(|r| e.ts >= r)
            || p.and_then(|p| p.offboarded_at).is_some_and(|o| e.ts >= o);
        if revoked {
            assert!(
                in_incident(&truth, AlertKind::RevokedCredential, &e.integ, e.ts),
                "{} revoked credential at {}",
                e.integ,
                e.ts
            );
            *broke.entry("revoked_credential".into()).or_default() += 1;
        }
        if let Some(k) = key {
            assert_eq!(k.integration, e.integ);
            assert!(k.created.is_none_or(|c| c <= e.ts));
        }
    }
    // Every registry-rule incident really breaks the rule.
    for k in [
        "unknown_integration",
        "scope_violation",
        "off_hours",
        "revoked_credential",
    ] {
        assert!(
            broke.get(k).copied().unwrap_or(0) > 0,
            "{k} never broken: {broke:?}"
        );
    }
    // new_data_type incidents use a granted data type (only the learned detector fires).
    for i in truth
        .incidents
        .iter()
        .filter(|i| i.kind == AlertKind::NewDataType)
    {
        let d = reg.integration(&i.integration_id).expect("registered");
        assert!(d
            .granted
            .iter()
            .any(|g| g.resource.as_deref() == i.resource.as_deref() || g.resource.is_none()));
    }
    // new_source incidents only for integrations without declared networks.
    for i in truth
        .incidents
        .iter()
        .filter(|i| i.kind == AlertKind::NewSource)
    {
        assert!(reg
            .integration(&i.integration_id)
            .expect("registered")
            .networks
            .is_empty());
    }
    // One registered integration is never used; some grants are never used.
    assert!(reg.integrations().iter().any(|d| !used.contains(&d.id)));
    assert!(reg.keys().iter().any(|k| k.revoked_at.is_some()));
    assert!(reg.principals().iter().any(|p| p.offboarded_at.is_some()));
    assert!(reg.integrations().iter().any(|d| d.active_hours.is_some()));
    assert!(reg.integrations().iter().any(|d| !d.networks.is_empty()));
}

#[test]
fn simulate_writes_three_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SimConfig {
        seed: 1,
        days: 9,
        integrations: 4,
        rate_scale: 0.1,
        ..SimConfig::default()
    };
    let s = simulate(&cfg, dir.path()).expect("simulate");
    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).expect("events");
    assert_eq!(events.lines().count() as u64, s.events + s.malformed_lines);
    let truth: Truth = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("truth.json")).expect("truth"),
    )
    .expect("truth json");
    assert_eq!(truth.events, s.events);
    assert_eq!(truth.start, DEFAULT_START_MS);
    load_registry(&std::fs::read_to_string(dir.path().join("registry.toml")).expect("registry"));
    assert!(simulate(&SimConfig { days: 0, ..cfg }, dir.path()).is_err());
}

#[test]
fn start_default_is_a_monday() {
    assert_eq!(
        tripline_engine::time::format_rfc3339(DEFAULT_START_MS),
        "2026-10-26T00:00:00.000Z"
    );
    assert_eq!(tripline_engine::time::weekday(DEFAULT_START_MS, 0), 0);
}

// ---- scorer ----

fn inc(id: &str, kind: AlertKind, integ: &str, start: i64, end: i64) -> Incident {
    Incident {
        id: id.into(),
        kind,
        integration_id: integ.into(),
        key_id: None,
        resource: None,
        start,
        end,
        description: String::new(),
        difficulty: Difficulty::Easy,
        family: Family::of(kind),
    }
}

fn alert(kind: AlertKind, integ: &str, at: i64) -> Alert {
    Alert {
        id: format!("{kind}-{integ}-{at}"),
        kind,
        severity: Severity::Warning,
        integration_id: integ.into(),
        key_id: None,
        resource: None,
        detected_at: at,
        window_start: at - MINUTE_MS,
        window_end: at,
        observed: None,
        expected: None,
        score: 0.9,
        summary: "test".into(),
        evidence: Default::default(),
    }
}

#[test]
fn scorer_counts_true_false_collateral_and_late() {
    let h = 3_600_000;
    let truth = Truth {
        seed: 0,
        days: 10,
        integrations: 2,
        start: 0,
        events: 0,
        malformed_lines: 0,
        incidents: vec![
            inc(
                "inc-001",
                AlertKind::CallSpike,
                "a",
                10 * h,
                10 * h + 20 * MINUTE_MS,
            ),
            inc("inc-002", AlertKind::VolumeSpike, "b", 20 * h, 21 * h),
            inc("inc-003", AlertKind::RevokedCredential, "b", 30 * h, 31 * h),
            inc("inc-004", AlertKind::OffHours, "a", 40 * h, 41 * h),
        ],
        integration_days: 200,
    };
    let alerts = vec![
        // TP: 2 minutes in.
        alert(AlertKind::CallSpike, "a", 10 * h + 2 * MINUTE_MS),
        // Second TP for the same incident: later, within slack.
        alert(AlertKind::CallSpike, "a", 10 * h + 30 * MINUTE_MS),
        // Collateral: a call spike during b's volume spike.
        alert(AlertKind::CallSpike, "b", 20 * h + 5 * MINUTE_MS),
        // Wrong integration during a's incident: false.
        alert(AlertKind::CallSpike, "c", 10 * h + 5 * MINUTE_MS),
        // Volume spike detected too late (end + 16 min): false, incident missed.
        alert(AlertKind::VolumeSpike, "b", 21 * h + 16 * MINUTE_MS),
        // Before the incident starts: false.
        alert(AlertKind::RevokedCredential, "b", 30 * h - 1),
        // At the very end of the slack: TP.
        alert(AlertKind::RevokedCredential, "b", 31 * h + 15 * MINUTE_MS),
    ];
    let e = evaluate(&truth, &alerts);
    assert_eq!(e.true_alerts, 3);
    assert_eq!(e.collateral, 1);
    assert_eq!(e.false_alerts, 3);
    assert_eq!(e.unmatched.len(), 3);
    assert!((e.false_alerts_per_100_integration_days - 1.5).abs() < 1e-9);
    assert_eq!(
        e.per_kind["call_spike"],
        KindScore {
            incidents: 1,
            detected: 1,
            recall: 1.0
        }
    );
    assert_eq!(e.per_kind["volume_spike"].detected, 0);
    assert_eq!(e.per_kind["revoked_credential"].detected, 1);
    assert_eq!(e.per_kind["off_hours"].recall, 0.0);
    assert_eq!(e.time_to_detect_ms["call_spike"].p50_ms, 2 * MINUTE_MS);
    assert_eq!(
        e.time_to_detect_ms["revoked_credential"].max_ms,
        h + 15 * MINUTE_MS
    );
    let missed: Vec<&str> = e.missed.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(missed, ["inc-002", "inc-004"]);
    assert!((e.overall_recall() - 0.5).abs() < 1e-9);
    let table = e.to_string();
    assert!(
        table.contains("call_spike") && table.contains("missed inc-002"),
        "{table}"
    );
}

#[test]
fn scorer_percentiles() {
    let truth = Truth {
        seed: 0,
        days: 1,
        integrations: 1,
        start: 0,
        events: 0,
        malformed_lines: 0,
        incidents: (0..10)
            .map(|i| {
                inc(
                    &format!("inc-{i}"),
                    AlertKind::ErrorBurst,
                    "a",
                    i * 10 * 3_600_000,
                    i * 10 * 3_600_000 + MINUTE_MS,
                )
            })
            .collect(),
        integration_days: 0,
    };
    let alerts: Vec<Alert> = (0..10)
        .map(|i| {
            alert(
                AlertKind::ErrorBurst,
                "a",
                i * 10 * 3_600_000 + (i + 1) * 1000,
            )
        })
        .collect();
    let e = evaluate(&truth, &alerts);
    let t = &e.time_to_detect_ms["error_burst"];
    assert_eq!((t.p50_ms, t.p90_ms, t.max_ms), (5000, 9000, 10_000));
    assert_eq!(e.false_alerts_per_100_integration_days, 0.0);
}

#[test]
fn registry_for_is_the_registry_generate_writes() {
    let cfg = small(5);
    let (_, reg) = generate(&cfg, |_| {}).expect("generate");
    assert_eq!(registry_for(&cfg).expect("registry"), reg);
}

#[test]
fn hard_cases_are_injected_and_labelled() {
    let cfg = SimConfig::default();
    let w = plan::plan(&cfg);
    let mut by: BTreeMap<(Difficulty, AlertKind), usize> = BTreeMap::new();
    for b in &w.incidents {
        *by.entry((b.incident.difficulty, b.incident.kind))
            .or_default() += 1;
        assert_eq!(b.incident.family, Family::of(b.incident.kind));
    }
    use AlertKind as K;
    use Difficulty as D;
    for (d, k, n) in [
        (D::Hard, K::CallSpike, 2),          // 3x for an hour, low volume
        (D::Moderate, K::CallSpike, 6),      // 4x 10 min, evening/Saturday, per key
        (D::Moderate, K::VolumeSpike, 2),    // 5x records per call, 3 h
        (D::Hard, K::ErrorBurst, 2),         // probing inside busy traffic
        (D::Hard, K::DormantReactivated, 2), // short-lived integrations
    ] {
        let got = by.get(&(d, k)).copied().unwrap_or(0);
        assert!(got >= n, "{d:?} {k}: {got} < {n}: {by:?}");
    }
    // Per-key incidents name their key, and it belongs to the integration.
    let per_key: Vec<_> = w
        .incidents
        .iter()
        .filter(|b| b.incident.kind == K::CallSpike && b.incident.key_id.is_some())
        .collect();
    assert!(!per_key.is_empty());
    for b in per_key {
        let key = b.incident.key_id.as_deref().unwrap_or_default();
        assert!(w.integs[b.integ].keys.iter().any(|&k| w.keys[k].id == key));
    }
    // Benign look-alikes are present.
    assert!(w.integs.iter().any(|i| i.weekly > 0.0));
    assert!(w
        .integs
        .iter()
        .any(|i| i.shifts.iter().any(|s| s.1 == i64::MAX)));
    assert!(w
        .integs
        .iter()
        .any(|i| i.shifts.iter().any(|s| s.1 < i64::MAX)));
    assert!(!w.rate_limited.is_empty());
}

#[test]
fn exfiltration_inflates_records_not_calls() {
    // The slow-exfiltration incident keeps the call rate and multiplies the
    // records per call.
    let cfg = SimConfig::default();
    let w = plan::plan(&cfg);
    let b = w
        .incidents
        .iter()
        .find(|b| b.records_factor > 1.0)
        .expect("an exfiltration incident");
    assert_eq!((b.rate, b.relative), (0.0, 0.0));
    assert!(b.end - b.start >= 3 * tripline_engine::time::HOUR_MS);
}
