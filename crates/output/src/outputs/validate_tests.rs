//! Tests of `validate.rs`: every problem reported, secrets resolved, names.

use super::*;
use crate::outputs::{OverflowPolicy, DEFAULT_QUEUE_CAPACITY};
use crate::secret::tests::FakeEnv;
use serde::Deserialize;
use tripline_engine::Severity;

fn parse(toml_text: &str) -> Vec<OutputConfig> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Root {
        outputs: Vec<OutputConfig>,
    }
    toml::from_str::<Root>(toml_text).unwrap().outputs
}

#[test]
fn parses_every_type_with_defaults() {
    let cfgs = parse(
        r#"
        [[outputs]]
        name = "hook"
        type = "webhook"
        url_env = "HOOK_URL"
        signing_secret_file = "/run/key"
        headers = { "X-Team" = "secops" }
        [outputs.delivery]
        queue_capacity = 5
        overflow = "drop_newest"

        [[outputs]]
        name = "am"
        type = "alertmanager"
        url = "http://127.0.0.1:9093"

        [[outputs]]
        name = "pd"
        type = "pagerduty"
        min_severity = "critical"
        routing_key_env = "PD_KEY"

        [[outputs]]
        name = "slack"
        type = "slack"
        webhook_url_env = "SLACK_URL"
        [outputs.grouping]
        max_alerts_per_integration_per_hour = 10
        "#,
    );
    let mut env = FakeEnv::default();
    env.vars.insert(
        "HOOK_URL".into(),
        "https://hooks.example/abc?token=SEKRIT".into(),
    );
    env.vars.insert("PD_KEY".into(), "R0UTINGKEY".into());
    env.vars.insert(
        "SLACK_URL".into(),
        "https://hooks.slack.com/services/T/B/SEKRIT".into(),
    );
    env.files.insert(
        "/run/key".into(),
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n".into(),
    );
    let s = validate_outputs(&cfgs, &env).unwrap();
    assert_eq!(
        s.iter().map(|s| s.kind()).collect::<Vec<_>>(),
        ["webhook", "alertmanager", "pagerduty", "slack"]
    );
    assert_eq!(s[0].delivery.queue_capacity, 5);
    assert_eq!(s[0].delivery.overflow, OverflowPolicy::DropNewest);
    assert_eq!(s[1].delivery.queue_capacity, DEFAULT_QUEUE_CAPACITY);
    assert_eq!(s[3].grouping.max_alerts_per_integration_per_hour, Some(10));
    assert_eq!(s[0].min_severity, Severity::Info);
    assert_eq!(s[2].min_severity, Severity::Critical);
    let debug = format!("{s:?}");
    for secret in ["SEKRIT", "R0UTINGKEY", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }
}

#[test]
fn unknown_fields_are_rejected() {
    #[derive(Deserialize)]
    struct Root {
        #[allow(dead_code)]
        outputs: Vec<OutputConfig>,
    }
    let bad = r#"
        [[outputs]]
        name = "x"
        type = "slack"
        webhook_url = "https://hooks.slack.com/services/inline-secret"
    "#;
    assert!(toml::from_str::<Root>(bad).is_err());
    let bad_type = r#"
        [[outputs]]
        name = "x"
        type = "email"
    "#;
    assert!(toml::from_str::<Root>(bad_type).is_err());
    let bad_common = r#"
        [[outputs]]
        name = "x"
        type = "slack"
        webhook_url_env = "U"
        min_severity = "urgent"
    "#;
    assert!(toml::from_str::<Root>(bad_common).is_err());
    let wrong_type_field = r#"
        [[outputs]]
        name = "x"
        type = "slack"
        webhook_url_env = "U"
        routing_key_env = "K"
    "#;
    assert!(toml::from_str::<Root>(wrong_type_field).is_err());
    let good = r#"
        [[outputs]]
        name = "x"
        type = "slack"
        webhook_url_env = "U"
        min_severity = "warning"
        dashboard_url = "https://g.example/d?var-i={integration_id}"
        [outputs.delivery]
        timeout_ms = 5
    "#;
    assert!(toml::from_str::<Root>(good).is_ok());
}

#[test]
fn validation_reports_every_problem_without_secrets() {
    let cfgs = parse(
        r#"
        [[outputs]]
        name = "dup"
        type = "webhook"
        url_env = "MISSING"
        hmac_key_env = "MISSING_TOO"
        runbook_url = "not a url"
        headers = { "Authorization" = "Basic x", "X-Tripline-Signature" = "no", "webhook-id" = "x" }
        [outputs.delivery]
        queue_capacity = 0
        max_backoff_ms = 1

        [[outputs]]
        name = "dup"
        type = "alertmanager"
        url = "http://user:pw@am:9093"
        repush_interval_seconds = 600
        min_firing_seconds = 90000
        labels = { alertname = "x" }
        [outputs.delivery]
        max_age_seconds = 600

        [[outputs]]
        name = "bad name!"
        type = "pagerduty"
        routing_key_env = "K"
        routing_key_file = "/k"
        events_url = "ftp://x"
        "#,
    );
    let problems = validate_outputs(&cfgs, &FakeEnv::default()).unwrap_err();
    let joined = problems.join("\n");
    for needle in [
        "url_env`: environment variable MISSING",
        "\"Authorization\" is reserved",
        "\"X-Tripline-Signature\" is reserved",
        "\"webhook-id\" is reserved",
        "runbook_url is not a valid URL",
        "queue_capacity must be at least 1",
        "max_backoff_ms must be >= initial_backoff_ms",
        "is used by another output",
        "must not embed credentials",
        "alert_ttl_seconds must be greater",
        "min_firing_seconds must be at most 86400",
        "min_firing_seconds must be less than delivery.max_age_seconds",
        "\"alertname\" is not a valid label name or is reserved",
        "name must be 1-64 characters",
        "set only one of",
        "events_url must be an http or https URL",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
    }
    assert!(!joined.contains("pw@"), "{joined}");
}

#[test]
fn alertmanager_urls_make_one_output_per_replica() {
    let cfgs = parse(
        r#"
        [[outputs]]
        name = "am"
        type = "alertmanager"
        urls = ["http://am-0.am:9093", "http://am-1.am:9093/prefix"]
        min_severity = "warning"
        "#,
    );
    let settings = validate_outputs(&cfgs, &FakeEnv::default()).unwrap();
    let got: Vec<(String, String, Severity)> = settings
        .iter()
        .map(|s| match &s.kind {
            OutputKind::Alertmanager(am) => (
                s.name.clone(),
                am.endpoint().expose().to_string(),
                s.min_severity,
            ),
            _ => panic!("not an alertmanager output"),
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "am-0".to_owned(),
                "http://am-0.am:9093/api/v2/alerts".to_owned(),
                Severity::Warning
            ),
            (
                "am-1".to_owned(),
                "http://am-1.am:9093/prefix/api/v2/alerts".to_owned(),
                Severity::Warning
            ),
        ]
    );
}

#[test]
fn alertmanager_url_and_urls_problems_are_reported_together() {
    let cfgs = parse(
        r#"
        [[outputs]]
        name = "both"
        type = "alertmanager"
        url = "http://am:9093"
        urls = ["http://am-0:9093"]

        [[outputs]]
        name = "neither"
        type = "alertmanager"

        [[outputs]]
        name = "twice"
        type = "alertmanager"
        urls = ["http://am-0:9093", "http://am-0:9093", "ftp://x"]

        [[outputs]]
        name = "twice-0"
        type = "webhook"
        url_env = "U"
        "#,
    );
    let mut env = FakeEnv::default();
    env.vars.insert("U".into(), "http://hook".into());
    let joined = validate_outputs(&cfgs, &env).unwrap_err().join("\n");
    for needle in [
        "(\"both\"): set only one of `url` and `urls`",
        "(\"neither\"): set `url` (or `urls`, one per replica)",
        "(\"twice\").urls: \"http://am-0:9093\" is listed twice",
        "(\"twice\").urls[2] must be an http or https URL",
        "(\"twice-0\").name is used by another output",
    ] {
        assert!(joined.contains(needle), "missing {needle:?} in:\n{joined}");
    }
}
