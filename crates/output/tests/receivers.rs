//! PagerDuty and Slack payloads against a local receiver.

use std::time::Duration;

use tokio::time::Instant;
use tripline_engine::{AlertKind, Severity};

use crate::support::{alert, dispatcher, eventually, resolved_of, Receiver};

#[tokio::test]
async fn pagerduty_trigger_and_resolve() {
    let rx = Receiver::start().await;
    rx.script(&[429]); // PagerDuty's rate limit is retried.
    let config = format!(
        "[[outputs]]\nname = \"pd\"\ntype = \"pagerduty\"\nrouting_key_env = \"PD_KEY\"\nevents_url = \"{}\"\n\
         [outputs.delivery]\ninitial_backoff_ms = 10\nmax_backoff_ms = 20\n",
        rx.url("/v2/enqueue")
    );
    let (d, _m) = dispatcher(&config, &[("PD_KEY", "R0UTING-KEY")]);
    let a = alert(
        "pd1",
        "hubspot-etl",
        AlertKind::RevokedCredential,
        Severity::Critical,
    );
    d.submit(std::slice::from_ref(&a), &[resolved_of(&a)]);
    eventually(Duration::from_secs(5), "trigger + resolve", || {
        rx.accepted().len() == 2
    })
    .await;
    d.flush(Instant::now() + Duration::from_secs(1)).await;

    let reqs = rx.accepted();
    assert!(reqs.iter().all(|r| r.path == "/v2/enqueue"));
    let t = reqs[0].json();
    assert_eq!(t["routing_key"], "R0UTING-KEY");
    assert_eq!(t["event_action"], "trigger");
    assert_eq!(t["dedup_key"], "pd1");
    assert_eq!(t["payload"]["summary"], a.summary);
    assert_eq!(t["payload"]["source"], "hubspot-etl");
    assert_eq!(t["payload"]["severity"], "critical");
    assert_eq!(t["payload"]["class"], "revoked_credential");
    assert_eq!(t["payload"]["timestamp"], "2026-11-18T11:06:40.000Z");
    // The alert object plus the shared `alertname`.
    let mut details = serde_json::to_value(&a).unwrap();
    details["alertname"] = "TriplineRevokedCredential".into();
    assert_eq!(t["payload"]["custom_details"], details);
    assert_eq!(
        t["links"][0]["href"],
        "https://github.com/example/tripline/blob/main/docs/operations.md#kind-revoked_credential"
    );
    let r = reqs[1].json();
    assert_eq!(
        r,
        serde_json::json!({"routing_key": "R0UTING-KEY", "event_action": "resolve", "dedup_key": "pd1"})
    );
    assert_eq!(d.stats()[0].retries, 1);
}

#[tokio::test]
async fn slack_message_is_readable() {
    let rx = Receiver::start().await;
    let config =
        "[[outputs]]\nname = \"slack\"\ntype = \"slack\"\nwebhook_url_env = \"SLACK_URL\"\n";
    let url = rx.url("/services/T000/B000/XXXXSECRET");
    let (d, _m) = dispatcher(config, &[("SLACK_URL", &url)]);
    let a = alert(
        "s1",
        "salesforce-backup",
        AlertKind::VolumeSpike,
        Severity::Warning,
    );
    d.submit(std::slice::from_ref(&a), &[resolved_of(&a)]);
    eventually(Duration::from_secs(5), "two messages", || {
        rx.accepted().len() == 2
    })
    .await;

    let reqs = rx.accepted();
    let m = reqs[0].json();
    let text = m["text"].as_str().unwrap();
    assert!(
        text.starts_with(":warning: *WARNING* volume_spike on `salesforce-backup`"),
        "{text}"
    );
    assert!(text.contains(&a.summary), "{text}");
    let blocks = serde_json::to_string(&m["blocks"]).unwrap();
    for needle in [
        "Integration",
        "salesforce-backup",
        "Observed vs expected",
        "812 vs 38.5",
        "volume_spike",
    ] {
        assert!(blocks.contains(needle), "{needle} missing from {blocks}");
    }
    // The only link is the runbook (no dashboard configured).
    assert_eq!(blocks.matches("http").count(), 1, "{blocks}");
    assert!(
        blocks.contains("operations.md#kind-volume_spike|Runbook>"),
        "{blocks}"
    );
    assert_eq!(m["unfurl_links"], false);
    let r = reqs[1].json();
    assert!(
        r["text"]
            .as_str()
            .unwrap()
            .starts_with(":white_check_mark: *RESOLVED* volume_spike"),
        "{r}"
    );
}
