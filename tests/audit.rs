//! `tripline audit`: a hand-written fixture with known answers, and the audit
//! over simulated traffic agreeing with the simulator's truth.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;
use tripline_audit::{AuditOptions, AuditReport};
use tripline_engine::{AlertKind, Engine, EngineConfig, Outputs};
use tripline_sim::{generate, SimConfig};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/audit")
        .join(name)
}

/// Runs `tripline audit` on the fixture with extra arguments.
fn audit_cli(extra: &[&str]) -> (String, String, bool) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tripline"));
    c.env("TRIPLINE_LOG", "error");
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIPLINE__") {
            c.env_remove(k);
        }
    }
    let out = c
        .arg("audit")
        .arg("--registry")
        .arg(fixture("registry.toml"))
        .args(extra)
        .arg(fixture("events.jsonl"))
        .stdin(Stdio::null())
        .output()
        .expect("run tripline audit");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{v} is not an array"))
        .iter()
        .map(|x| x[field].as_str().unwrap_or("").to_owned())
        .collect()
}

fn integration<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in the report"))
}

#[test]
fn audit_fixture_lists_exactly_the_known_findings() {
    let (stdout, stderr, ok) = audit_cli(&["--format", "json"]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("12 events, 1 rejected"), "{stderr}");
    let r: Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(
        r["as_of"], "2026-12-01T00:00:00.000Z",
        "defaults to the last event"
    );
    assert_eq!(
        (&r["horizon_days"], &r["dormant_days"], &r["rotation_days"]),
        (&Value::from(90), &Value::from(180), &Value::from(90))
    );

    // Unregistered: exactly the shadow integration, with what it touched.
    assert_eq!(strings(&r["unregistered"], "id"), ["shadow-scraper"]);
    assert_eq!(
        r["unregistered"][0]["data_types"],
        serde_json::json!(["contacts:read", "deals:read"])
    );

    // mailchimp-sync: two unused grants, one use without a grant, one dormant
    // key, one key to rotate, a revoked key and an offboarded principal.
    let m = integration(&r, "mailchimp-sync");
    assert_eq!(
        strings(&m["tighten"], "grant"),
        ["contacts:write", "deals:read"]
    );
    assert_eq!(m["tighten"][0]["last_used"], "2026-07-01T10:00:00.000Z");
    assert_eq!(m["tighten"][1]["last_used"], Value::Null);
    assert_eq!(strings(&m["not_granted"], "data_type"), ["notes:read"]);
    assert_eq!(strings(&m["remove"], "id"), ["key_mc_spare"]);
    assert_eq!(m["remove"][0]["item"], "key");
    assert_eq!(strings(&m["rotate"], "key_id"), ["key_mc_old"]);
    assert_eq!(m["rotate"][0]["age_days"], 325);
    assert_eq!(
        strings(&m["revoked_in_use"], "id"),
        ["key_mc_revoked", "asha@acme.example"]
    );
    assert_eq!(
        strings(&m["revoked_in_use"], "credential"),
        ["key", "principal"]
    );

    // zendesk-tickets: the wildcard narrows to what is used; a dormant key.
    let z = integration(&r, "zendesk-tickets");
    assert_eq!(strings(&z["tighten"], "grant"), ["tickets:*"]);
    assert_eq!(
        z["tighten"][0]["narrow_to"],
        serde_json::json!(["tickets:read"])
    );
    assert_eq!(strings(&z["remove"], "id"), ["key_zd_dormant"]);
    assert_eq!(z["remove"][0]["last_used"], "2026-05-01T10:00:00.000Z");
    assert!(z["not_granted"].as_array().unwrap().is_empty());
    assert!(z["rotate"].as_array().unwrap().is_empty());

    // Dormant and never-seen integrations: remove them and their keys; no
    // tighten items (removal covers them).
    for (id, key, last) in [
        (
            "old-exporter",
            "key_old_exp",
            Value::from("2026-04-01T10:00:00.000Z"),
        ),
        ("legacy-migration", "key_legacy", Value::Null),
    ] {
        let a = integration(&r, id);
        assert_eq!(strings(&a["remove"], "id"), [id, key], "{id}");
        assert_eq!(
            strings(&a["remove"], "item"),
            ["integration", "key"],
            "{id}"
        );
        assert_eq!(a["remove"][0]["last_used"], last, "{id}");
        assert!(a["tighten"].as_array().unwrap().is_empty(), "{id}");
        assert!(a["rotate"].as_array().unwrap().is_empty(), "{id}");
    }

    // Nothing else anywhere: the exact set of findings over all integrations.
    let mut all = BTreeSet::new();
    for a in r["integrations"].as_array().unwrap() {
        let id = a["id"].as_str().unwrap();
        for (section, field) in [
            ("tighten", "grant"),
            ("not_granted", "data_type"),
            ("remove", "id"),
            ("rotate", "key_id"),
            ("revoked_in_use", "id"),
        ] {
            for x in strings(&a[section], field) {
                all.insert(format!("{id} {section} {x}"));
            }
        }
    }
    let expected: BTreeSet<String> = [
        "legacy-migration remove key_legacy",
        "legacy-migration remove legacy-migration",
        "mailchimp-sync not_granted notes:read",
        "mailchimp-sync remove key_mc_spare",
        "mailchimp-sync revoked_in_use asha@acme.example",
        "mailchimp-sync revoked_in_use key_mc_revoked",
        "mailchimp-sync rotate key_mc_old",
        "mailchimp-sync tighten contacts:write",
        "mailchimp-sync tighten deals:read",
        "old-exporter remove key_old_exp",
        "old-exporter remove old-exporter",
        "zendesk-tickets remove key_zd_dormant",
        "zendesk-tickets tighten tickets:*",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(all, expected);

    // Ordered by risk, with the reasons; revoked credentials rank first,
    // then the shadow integration.
    let order = strings(&r["integrations"], "id");
    assert_eq!(&order[..2], ["mailchimp-sync", "shadow-scraper"]);
    let risks: Vec<u64> = r["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["risk"].as_u64().unwrap())
        .collect();
    assert!(risks.windows(2).all(|w| w[0] >= w[1]), "{risks:?}");
    assert!(strings(&m["risk_reasons"], "reason")
        .iter()
        .any(|x| x.contains("revoked key key_mc_revoked")));
}

#[test]
fn audit_options_change_the_answers_and_other_formats_render() {
    // A longer horizon (300 d before 2027-03-01 reaches back to May) makes
    // contacts:write used; a later as_of makes zendesk's current key old
    // enough to rotate.
    let (stdout, stderr, ok) = audit_cli(&[
        "--format",
        "json",
        "--horizon-days",
        "300",
        "--as-of",
        "2027-03-01T00:00:00Z",
    ]);
    assert!(ok, "{stderr}");
    let r: Value = serde_json::from_str(&stdout).unwrap();
    let m = integration(&r, "mailchimp-sync");
    assert_eq!(strings(&m["tighten"], "grant"), ["deals:read"]);
    let z = integration(&r, "zendesk-tickets");
    assert_eq!(strings(&z["rotate"], "key_id"), ["key_zd"]);

    let (table, stderr, ok) = audit_cli(&[]);
    assert!(ok, "{stderr}");
    assert!(table.contains("UNREGISTERED INTEGRATIONS (1)"), "{table}");
    assert!(
        table.contains("narrow grant tickets:* to tickets:read"),
        "{table}"
    );
    let (md, _, ok) = audit_cli(&["--format", "markdown"]);
    assert!(ok);
    assert!(md.starts_with("# tripline audit as of 2026-12-01"), "{md}");
    assert!(md.contains("| risk | integration | calls | why |"), "{md}");
    let (_, err, ok) = audit_cli(&["--format", "xml"]);
    assert!(!ok && err.contains("--format"), "{err}");
    let (_, err, ok) = audit_cli(&["--as-of", "yesterday"]);
    assert!(!ok && err.contains("--as-of"), "{err}");
}

#[test]
fn audit_over_simulated_traffic_agrees_with_the_truth() {
    let cfg = SimConfig {
        seed: 17,
        rate_scale: 0.3,
        ..SimConfig::default()
    };
    let (_, registry_toml) = generate(&cfg, |_| {}).expect("simulate");
    let registry =
        tripline_ingest::parse_registry(&registry_toml, "sim-registry.toml").expect("registry");
    let mut engine = Engine::new(EngineConfig::default(), Some(registry));
    let mut out = Outputs::default();
    let (truth, _) = generate(&cfg, |line| {
        if let Ok(raw) = tripline_ingest::parse_event(line) {
            engine.process(&raw.event(), &mut out);
        }
        out.clear();
    })
    .expect("simulate");
    let as_of = engine.stats().stream_time_ms;
    let report: AuditReport = tripline_audit::audit(&engine, &AuditOptions::new(as_of));

    // Unregistered = exactly the shadow integrations.
    let shadows: BTreeSet<&str> = truth
        .incidents
        .iter()
        .filter(|i| i.kind == AlertKind::UnknownIntegration)
        .map(|i| i.integration_id.as_str())
        .collect();
    assert!(!shadows.is_empty());
    let unregistered: BTreeSet<&str> = report.unregistered.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(unregistered, shadows);

    // Every revoked-key and offboarded-principal incident is listed under
    // the integration that did it; nothing else is.
    let revoked: Vec<_> = truth
        .incidents
        .iter()
        .filter(|i| i.kind == AlertKind::RevokedCredential)
        .collect();
    assert!(!revoked.is_empty(), "seed has revoked-credential incidents");
    let mut expected_ids = BTreeSet::new();
    for inc in &revoked {
        let a = report
            .integration(&inc.integration_id)
            .unwrap_or_else(|| panic!("{} audited", inc.integration_id));
        match &inc.key_id {
            Some(k) => {
                assert!(
                    a.revoked_in_use.iter().any(|r| &r.id == k),
                    "{inc:?} not in {:?}",
                    a.revoked_in_use
                );
                expected_ids.insert((inc.integration_id.clone(), k.clone()));
            }
            None => {
                let p = a
                    .revoked_in_use
                    .iter()
                    .find(|r| {
                        r.credential == tripline_audit::report::Credential::Principal
                            && inc.description.contains(&r.id)
                    })
                    .unwrap_or_else(|| panic!("{inc:?} not in {:?}", a.revoked_in_use));
                expected_ids.insert((inc.integration_id.clone(), p.id.clone()));
            }
        }
    }
    let listed: BTreeSet<(String, String)> = report
        .integrations
        .iter()
        .flat_map(|a| {
            a.revoked_in_use
                .iter()
                .map(|r| (a.id.clone(), r.id.clone()))
        })
        .collect();
    assert_eq!(listed, expected_ids);

    // The registered integration nobody uses is to be removed.
    let never = report
        .integration("legacy-pipedrive-migration")
        .expect("never-used integration audited");
    assert!(never.remove.iter().any(
        |r| r.item == tripline_audit::report::RemoveItem::Integration && r.last_used.is_none()
    ));
    // Shadow integrations and revoked credentials outrank quiet ones.
    let top: BTreeSet<&str> = report
        .integrations
        .iter()
        .take(shadows.len())
        .map(|a| a.id.as_str())
        .collect();
    assert!(
        top.iter()
            .all(|id| shadows.contains(id) || expected_ids.iter().any(|(i, _)| i == id)),
        "top of the list: {top:?}"
    );
}
