//! End to end: `tripline demo` (the real service on an embedded Kafka cluster
//! with simulated traffic) delivering to a real Alertmanager and surviving a
//! webhook receiver's outage. Binaries: prometheus-alertmanager (Debian
//! package `prometheus-alertmanager`); a missing one fails the test, never
//! skips it. Prometheus and the dashboard: tests/e2e_prometheus.rs.
//!
//! Run: `cargo test --test tests e2e_alerting`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::alertmanager::Alertmanager;
use crate::support::demo::*;
use crate::support::http::{eventually, verify_standard_webhook, Answer, Receiver};

// ------------------------------------------------------------------ tests

/// Every alert tripline fires reaches Alertmanager's receiver exactly once as
/// firing, with the documented labels; re-pushes (every 2 s here) never cause
/// a second notification; episodes tripline ends arrive as resolved, and the
/// alerts still open when tripline stops resolve by themselves after
/// `alert_ttl_seconds` (docs/outputs.md, "Re-push").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_alertmanager_once_with_labels_and_resolve() {
    let t0 = Instant::now();
    let am_rx = Receiver::start(Answer::Always(200)).await;
    // The webhook output is the oracle: it carries alert ids and resolutions.
    let oracle = Receiver::start(Answer::Always(200)).await;
    let am = Alertmanager::start(&am_rx.url("/alertmanager")).await;
    let config = format!(
        r#"
[[outputs]]
name = "am"
type = "alertmanager"
url = "{}"
labels = {{ env = "e2e" }}
repush_interval_seconds = 2
alert_ttl_seconds = 10
# group_wait 1 s + group_interval 1 s of the test route, plus 1 s.
min_firing_seconds = 3

[[outputs]]
name = "oracle"
type = "webhook"
url_env = "E2E_ORACLE_URL"
"#,
        am.url()
    );
    let mut demo = Demo::start(&config, &[("E2E_ORACLE_URL", &oracle.url("/hook"))], 4).await;
    let ran = demo.wait_exit(Duration::from_secs(75)).await;
    let stopped_at = Instant::now();

    let printed = demo.printed();
    assert!(
        printed.len() >= 5,
        "the demo fires alerts of several kinds: {}",
        demo.stdout()
    );
    assert_eq!(
        demo.summary_alerts(),
        Some(printed.len() as u64),
        "summary counts what was printed:\n{}",
        demo.stdout()
    );
    let alerts = webhook_bodies(&oracle, "alert");
    let ids: BTreeSet<String> = alerts
        .iter()
        .map(|a| a["id"].as_str().expect("alert id").to_owned())
        .collect();
    assert_eq!(ids.len(), alerts.len(), "webhook: every alert id once");
    assert_eq!(
        count_by(alerts.iter().map(printed_key)),
        count_by(printed.iter().cloned()),
        "webhook received exactly the printed alerts"
    );
    let by_id: BTreeMap<String, &Value> = alerts
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a))
        .collect();
    let resolved_by_tripline: BTreeSet<String> = webhook_bodies(&oracle, "resolved")
        .iter()
        .map(|r| r["id"].as_str().expect("resolution id").to_owned())
        .collect();
    assert!(
        resolved_by_tripline.is_subset(&ids),
        "resolutions only for fired alerts"
    );

    // Every alert fires once and eventually resolves: by tripline's
    // resolution, or by endsAt (TTL 10 s) after tripline stopped re-pushing.
    let notes = eventually(
        "Alertmanager notifies firing and resolved for every alert",
        Duration::from_secs(40),
        || {
            let notes = am_notifications(&am_rx);
            let ids = ids.clone();
            async move {
                let firing: BTreeSet<_> = notes
                    .iter()
                    .filter(|n| n.status == "firing")
                    .map(|n| n.labels.get("tripline_id").cloned().unwrap_or_default())
                    .collect();
                let resolved: BTreeSet<_> = notes
                    .iter()
                    .filter(|n| n.status == "resolved")
                    .map(|n| n.labels.get("tripline_id").cloned().unwrap_or_default())
                    .collect();
                if firing == ids && resolved == ids {
                    Ok(notes)
                } else {
                    Err(format!(
                        "{} alerts; firing {} (missing {:?}, extra {:?}); resolved {} (missing {:?})",
                        ids.len(),
                        firing.len(),
                        ids.difference(&firing).collect::<Vec<_>>(),
                        firing.difference(&ids).collect::<Vec<_>>(),
                        resolved.len(),
                        ids.difference(&resolved).collect::<Vec<_>>()
                    ))
                }
            }
        },
    )
    .await;
    let all_resolved_after = stopped_at.elapsed();

    // Exactly once each way, in order, with the documented labels.
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in &notes {
        let id = n.labels["tripline_id"].clone();
        let a = by_id[&id];
        let kind = a["kind"].as_str().unwrap();
        let alertname = camel_alertname(kind);
        let want: BTreeMap<String, String> = [
            ("alertname", alertname.as_str()),
            ("kind", kind),
            ("severity", a["severity"].as_str().unwrap()),
            ("integration_id", a["integration_id"].as_str().unwrap()),
            ("tripline_id", id.as_str()),
            ("env", "e2e"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(n.labels, want, "labels of a {} notification", n.status);
        assert!(
            ["critical", "warning", "info"].contains(&want["severity"].as_str()),
            "severity {}",
            want["severity"]
        );
        assert_eq!(
            n.annotations.get("runbook_url").map(String::as_str),
            Some(
                format!(
                    "https://github.com/example/tripline/blob/main/docs/operations.md#kind-{kind}"
                )
                .as_str()
            ),
            "runbook_url of {id}"
        );
        for key in ["summary", "description", "detected_at"] {
            assert!(
                n.annotations.get(key).is_some_and(|v| !v.is_empty()),
                "annotation {key} on {id}: {:?}",
                n.annotations
            );
        }
        seen.entry(id).or_default().push(n.status.clone());
    }
    for (id, statuses) in &seen {
        assert_eq!(
            statuses,
            &["firing".to_owned(), "resolved".to_owned()],
            "alert {id}: one firing then one resolved notification"
        );
    }
    // Alertmanager holds no alert that is still active.
    let active: Vec<Value> = am
        .alerts()
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a["status"]["state"] == "active")
        .collect();
    assert!(
        active.is_empty(),
        "still active in Alertmanager: {active:?}"
    );
    eprintln!(
        "alertmanager e2e: {} alerts ({} resolved by tripline, {} by TTL); demo ran {:.1}s, \
         all resolved {:.1}s after it stopped; total {:.1}s",
        ids.len(),
        resolved_by_tripline.len(),
        ids.len() - resolved_by_tripline.len(),
        ran.as_secs_f64(),
        all_resolved_after.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    drop(am);
}

/// A webhook receiver that answers 503 for its first 5 s loses nothing:
/// every alert tripline fired arrives, exactly once after dedup by id, every
/// request (retries included) carries valid Standard Webhooks signatures for
/// both keys of a rotation (checked by the test's own implementation), a
/// resolution never shares a `webhook-id` with its alert, and the retries
/// are counted in tripline_output_retries_total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_outage_loses_no_alert() {
    let t0 = Instant::now();
    // Old and new key during a rotation (24 and 32 bytes).
    const SECRETS: [&str; 2] = [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ];
    let rx = Receiver::start(Answer::FailFirst {
        status: 503,
        for_: Duration::from_secs(5),
    })
    .await;
    let config = r#"
[[outputs]]
name = "secops-hook"
type = "webhook"
url_env = "E2E_HOOK_URL"
signing_secret_env = "E2E_HOOK_SECRETS"
[outputs.delivery]
initial_backoff_ms = 200
max_backoff_ms = 1000
"#;
    let mut demo = Demo::start(
        config,
        &[
            ("E2E_HOOK_URL", &rx.url("/hook")),
            ("E2E_HOOK_SECRETS", &SECRETS.join(" ")),
        ],
        60,
    )
    .await;

    // Wait until everything is consumed and the receiver has every printed
    // alert; read the retry counter while the process still serves /metrics.
    let (retries, failures) = eventually(
        "every printed alert delivered after the outage",
        Duration::from_secs(75),
        || async {
            let text = demo.metrics().await?;
            let lag = metric_sum(&text, "tripline_consumer_lag_messages", "");
            let depth = metric_sum(&text, "tripline_output_queue_depth", "secops-hook");
            let printed = demo.printed().len();
            let got: BTreeSet<String> = webhook_bodies(&rx, "alert")
                .iter()
                .filter_map(|a| a["id"].as_str().map(str::to_owned))
                .collect();
            if demo.produced_everything() && lag == 0.0 && depth == 0.0 && got.len() == printed {
                Ok((
                    metric_sum(&text, "tripline_output_retries_total", "secops-hook"),
                    metric_sum(
                        &text,
                        "tripline_output_deliveries_total",
                        "outcome=\"failure\"",
                    ),
                ))
            } else {
                Err(format!(
                    "lag {lag}, queue {depth}, printed {printed}, received {} distinct",
                    got.len()
                ))
            }
        },
    )
    .await;
    demo.sigterm();
    demo.wait_exit(Duration::from_secs(30)).await;

    let requests = rx.requests();
    let refused = requests.iter().filter(|r| r.status == 503).count();
    assert!(refused > 0, "the outage refused some deliveries");
    let mut notification_ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &requests {
        let nid = verify_standard_webhook(&SECRETS, r).unwrap_or_else(|e| {
            panic!(
                "bad signature on a {} request: {e}\n{}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )
        });
        let alert_id = r.json()["id"].as_str().unwrap_or_default().to_owned();
        assert_ne!(nid, alert_id, "the notification id is not the alert id");
        notification_ids.entry(nid).or_default().insert(format!(
            "{} {alert_id}",
            r.header("x-tripline-event").unwrap_or_default()
        ));
    }
    for (nid, what) in &notification_ids {
        assert_eq!(what.len(), 1, "webhook-id {nid} used for {what:?}");
    }
    let printed = demo.printed();
    let alerts = webhook_bodies(&rx, "alert");
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for a in &alerts {
        let id = a["id"].as_str().expect("alert id").to_owned();
        if let Some(prev) = by_id.insert(id.clone(), a.clone()) {
            assert_eq!(&prev, a, "a redelivery of {id} carries the same alert");
        }
    }
    assert_eq!(
        count_by(by_id.values().map(printed_key)),
        count_by(printed.iter().cloned()),
        "after dedup by id, exactly the printed alerts"
    );
    assert_eq!(
        demo.summary_alerts(),
        Some(by_id.len() as u64),
        "every alert tripline fired was received"
    );
    for r in webhook_bodies(&rx, "resolved") {
        let id = r["id"].as_str().unwrap_or_default();
        assert!(
            by_id.contains_key(id),
            "resolution of an unknown alert {id}"
        );
        assert_eq!(r["status"], "resolved");
    }
    assert!(
        retries >= 1.0 && failures >= refused as f64,
        "retries counted: tripline_output_retries_total {retries}, failures {failures}, \
         receiver refused {refused}"
    );
    eprintln!(
        "outage e2e: {} alerts ({} accepted requests incl. {} duplicates, {} refused with 503), \
         retries {retries}, failures {failures}; {:.1}s",
        by_id.len(),
        rx.accepted().len(),
        alerts.len() - by_id.len(),
        refused,
        t0.elapsed().as_secs_f64()
    );
}
