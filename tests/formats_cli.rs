//! The format commands as a user runs them: `formats`, `normalize` on the
//! golden Kong sample, and `replay --format kong` over the simulator's
//! events rewritten as Kong records, which must find exactly the alerts of
//! canonical replay.

use std::path::Path;

use crate::support::tripline;

fn golden(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/ingest/tests/golden")
        .join(p)
}

#[test]
fn formats_lists_every_builtin_once() {
    let out = tripline::command().arg("formats").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "canonical",
            "kong",
            "salesforce-elf",
            "salesforce-apievent",
            "envoy",
            "nginx-json",
            "aws-apigateway",
            "traefik",
            "otel-http"
        ]
    );
}

#[test]
fn normalize_writes_canonical_events_to_stdout_and_escaped_rejects_to_stderr() {
    let out = tripline::command()
        .args(["normalize", "--format", "kong"])
        .arg(golden("kong/input.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout,
        std::fs::read_to_string(golden("kong/input.expected.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| !l.contains("\"reject\""))
            .map(|l| {
                // The golden files annotate dropped fields; normalize does not.
                let l = l.replace(",\"_dropped\":1", "");
                format!("{l}\n")
            })
            .collect::<String>()
    );
    let stderr = out.stderr;
    assert!(
        !stderr.contains(&0x1b),
        "a raw escape byte from the input reached stderr"
    );
    let text = String::from_utf8(stderr).unwrap();
    let rejects: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let reasons: Vec<&str> = rejects
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "missing_field",
            "unmapped_resource",
            "invalid_field",
            "invalid_field",
            "invalid_json"
        ]
    );
    assert!(text.contains("5 events, 5 rejected"), "{text}");
    // A broken profile is a config problem with every problem listed.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "extends = \"kong\"\n[fields.ts]\ntime = \"fortnights\"\n[fields.colour]\npath = \"/c\"\n",
    )
    .unwrap();
    let out = tripline::command()
        .args(["normalize", "--mapping"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("fortnights") && err.contains("colour"),
        "{err}"
    );
}

fn alert_lines(args: &[&str], events: &Path, registry: &Path) -> Vec<String> {
    let out = tripline::command()
        .arg("replay")
        .args(args)
        .arg("--registry")
        .arg(registry)
        .arg(events)
        .env("TRIPLINE_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn replay_of_the_simulation_as_kong_records_finds_exactly_the_canonical_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let out = tripline::command()
        .args([
            "simulate",
            "--seed",
            "7",
            "--days",
            "10",
            "--integrations",
            "5",
            "--rate-scale",
            "0.3",
            "--format",
            "kong",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let registry = dir.path().join("registry.toml");
    let canonical = alert_lines(&[], &dir.path().join("events.jsonl"), &registry);
    let mapping = dir.path().join("kong-sim.toml");
    let kong = alert_lines(
        &["--format", "kong", "--mapping", mapping.to_str().unwrap()],
        &dir.path().join("events.kong.jsonl"),
        &registry,
    );
    assert!(
        canonical.len() >= 3,
        "the simulation has incidents: {}",
        canonical.len()
    );
    assert_eq!(kong, canonical, "same alerts, same ids, same order");
}
