//! Queueing, retries, overflow, rate limiting, flush and health.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;
use tripline_engine::{AlertKind, Severity};
use tripline_output::HealthCheck;

use crate::support::{alert, dispatcher, eventually, metric, resolved_of, spike, Receiver};

fn hook(url: &str, delivery: &str) -> (String, Vec<(&'static str, String)>) {
    (
        format!(
            "[[outputs]]\nname = \"hook\"\ntype = \"webhook\"\nurl_env = \"HOOK_URL\"\n\
             [outputs.delivery]\ninitial_backoff_ms = 10\nmax_backoff_ms = 40\ntimeout_ms = 2000\n{delivery}\n"
        ),
        vec![("HOOK_URL", url.to_owned())],
    )
}

fn env<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn ids(reqs: &[crate::support::Request]) -> Vec<String> {
    reqs.iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn retries_503_until_success_and_delivers_each_alert_exactly_once() {
    let rx = Receiver::start().await;
    rx.script(&[503, 503, 503]);
    let (cfg, e) = hook(&rx.url("/"), "");
    let (d, metrics) = dispatcher(&cfg, &env(&e));
    let alerts: Vec<_> = ["r1", "r2", "r3"].iter().map(|id| spike(id)).collect();
    d.submit(&alerts, &[]);
    eventually(Duration::from_secs(10), "three deliveries", || {
        rx.accepted().len() == 3
    })
    .await;
    d.flush(Instant::now() + Duration::from_secs(1)).await;

    // In order, once each, after three failed attempts of the first.
    assert_eq!(ids(&rx.accepted()), ["r1", "r2", "r3"]);
    assert_eq!(rx.requests().len(), 6);
    let text = metrics.render();
    assert_eq!(
        metric(&text, r#"tripline_output_retries_total{output="hook"}"#),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"tripline_output_deliveries_total{outcome="failure",output="hook"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"tripline_output_deliveries_total{outcome="success",output="hook"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(&text, r#"tripline_output_queue_depth{output="hook"}"#),
        Some(0.0)
    );
}

#[tokio::test]
async fn retries_408_and_429_but_not_400() {
    let rx = Receiver::start().await;
    rx.script(&[429, 408, 400]);
    let (cfg, e) = hook(&rx.url("/"), "");
    let (d, _m) = dispatcher(&cfg, &env(&e));
    d.submit(&[spike("x1"), spike("x2")], &[]);
    eventually(Duration::from_secs(10), "x2 delivered", || {
        rx.accepted().len() == 1
    })
    .await;
    d.flush(Instant::now() + Duration::from_secs(1)).await;
    let reqs = rx.requests();
    // x1: 429, 408 (both retried), 400 (given up); x2: 200.
    assert_eq!(ids(&reqs), ["x1", "x1", "x1", "x2"]);
    let s = &d.stats()[0];
    assert_eq!((s.delivered, s.failed_attempts, s.retries), (1, 3, 2));
    assert_eq!(s.dropped_expired, 0);
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let rx = Receiver::start().await;
    rx.set_default_status(400);
    let (cfg, e) = hook(&rx.url("/"), "");
    let (d, _m) = dispatcher(&cfg, &env(&e));
    d.submit(&[spike("bad")], &[]);
    eventually(Duration::from_secs(5), "one attempt", || {
        rx.requests().len() == 1
    })
    .await;
    eventually(Duration::from_secs(5), "idle", || d.is_idle()).await;
    let s = &d.stats()[0];
    assert_eq!((s.delivered, s.failed_attempts, s.retries), (0, 1, 0));
    assert_eq!(rx.requests().len(), 1);
}

#[tokio::test]
async fn max_attempts_drops_as_expired() {
    let rx = Receiver::start().await;
    rx.set_default_status(500);
    let (cfg, e) = hook(&rx.url("/"), "max_attempts = 3");
    let (d, _m) = dispatcher(&cfg, &env(&e));
    d.submit(&[spike("m1")], &[]);
    eventually(Duration::from_secs(5), "idle", || d.is_idle()).await;
    let s = &d.stats()[0];
    assert_eq!((s.failed_attempts, s.retries, s.dropped_expired), (3, 2, 1));
}

async fn overflow_case(policy: &str, expect_dropped: &[&str], expect_delivered: &[&str]) {
    let rx = Receiver::start().await;
    rx.set_default_status(503);
    let (cfg, e) = hook(
        &rx.url("/"),
        &format!("queue_capacity = 2\noverflow = \"{policy}\""),
    );
    let (d, metrics) = dispatcher(&cfg, &env(&e));
    let alerts: Vec<_> = ["o1", "o2", "o3", "o4", "o5"]
        .iter()
        .map(|id| spike(id))
        .collect();
    // One submit: the worker cannot pop in between, so the outcome is exact.
    d.submit(&alerts, &[]);
    let text = metrics.render();
    assert_eq!(
        metric(
            &text,
            r#"tripline_output_dropped_total{output="hook",reason="queue_full"}"#
        ),
        Some(expect_dropped.len() as f64),
        "{policy}"
    );
    // The receiver is down for a while, then comes back.
    eventually(Duration::from_secs(5), "a few failed attempts", || {
        rx.requests().len() >= 3
    })
    .await;
    rx.set_default_status(200);
    eventually(Duration::from_secs(5), "survivors delivered", || {
        rx.accepted().len() == expect_delivered.len()
    })
    .await;
    d.flush(Instant::now() + Duration::from_secs(1)).await;
    assert_eq!(ids(&rx.accepted()), expect_delivered, "{policy}");
    let seen: Vec<String> = ids(&rx.requests());
    for dropped in expect_dropped {
        assert!(
            !seen.iter().any(|s| s == dropped),
            "{dropped} was dropped yet sent ({policy})"
        );
    }
    assert_eq!(d.stats()[0].dropped_queue_full, expect_dropped.len() as u64);
}

#[tokio::test]
async fn overflow_drop_oldest() {
    overflow_case("drop_oldest", &["o1", "o2", "o3"], &["o4", "o5"]).await;
}

#[tokio::test]
async fn overflow_drop_newest() {
    overflow_case("drop_newest", &["o3", "o4", "o5"], &["o1", "o2"]).await;
}

#[tokio::test]
async fn rate_limit_per_integration_is_counted() {
    let rx = Receiver::start().await;
    let (cfg, e) = hook(&rx.url("/"), "");
    let cfg = format!("{cfg}[outputs.grouping]\nmax_alerts_per_integration_per_hour = 2\n");
    let (d, metrics) = dispatcher(&cfg, &env(&e));
    let mut alerts = Vec::new();
    for i in 0..4 {
        alerts.push(alert(
            &format!("n{i}"),
            "noisy",
            AlertKind::OffHours,
            Severity::Info,
        ));
    }
    alerts.push(alert("q0", "quiet", AlertKind::OffHours, Severity::Info));
    d.submit(&alerts, &[]);
    eventually(Duration::from_secs(5), "3 delivered", || {
        rx.accepted().len() == 3
    })
    .await;
    // Resolving a rate-limited alert sends nothing.
    d.submit(&[], &[crate::support::resolved_of(&alerts[3])]);
    d.flush(Instant::now() + Duration::from_secs(1)).await;
    assert_eq!(ids(&rx.accepted()), ["n0", "n1", "q0"]);
    let text = metrics.render();
    assert_eq!(
        metric(
            &text,
            r#"tripline_output_dropped_total{output="hook",reason="rate_limited"}"#
        ),
        Some(2.0)
    );
    let g = d.stats()[0].grouping;
    assert_eq!((g.rate_limited, g.suppressed_resolutions), (2, 1));
}

#[tokio::test]
async fn flush_counts_what_it_could_not_deliver() {
    let rx = Receiver::start().await;
    rx.set_default_status(503);
    let (cfg, e) = hook(&rx.url("/"), "");
    let (d, metrics) = dispatcher(&cfg, &env(&e));
    d.submit(&[spike("f1"), spike("f2")], &[]);
    let started = Instant::now();
    let outcome = d.flush(Instant::now() + Duration::from_millis(300)).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "flush overran its deadline"
    );
    assert_eq!(outcome.abandoned, 2);
    let text = metrics.render();
    assert_eq!(
        metric(
            &text,
            r#"tripline_output_dropped_total{output="hook",reason="expired"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(&text, r#"tripline_output_queue_depth{output="hook"}"#),
        Some(0.0)
    );
    // After shutdown, submits are counted as dropped, not queued.
    d.submit(&[spike("late")], &[]);
    assert_eq!(d.stats()[0].dropped_expired, 3);
}

#[tokio::test]
async fn unhealthy_when_queue_nearly_full_or_failing_too_long() {
    let rx = Receiver::start().await;
    rx.set_default_status(503);
    let (cfg, e) = hook(
        &rx.url("/"),
        "queue_capacity = 10\nunhealthy_after_seconds = 0",
    );
    let (d, _m) = dispatcher(&cfg, &env(&e));
    assert!(d.problems().is_empty());
    d.submit(&[spike("h0")], &[]);
    eventually(Duration::from_secs(5), "failing", || {
        d.problems()
            .iter()
            .any(|p| p.contains("output hook: failing for"))
    })
    .await;
    let many: Vec<_> = (1..=10).map(|i| spike(&format!("h{i}"))).collect();
    d.submit(&many, &[]);
    assert!(
        d.problems().iter().any(|p| p.contains("queue 10/10 full")),
        "{:?}",
        d.problems()
    );
    rx.set_default_status(200);
    eventually(Duration::from_secs(5), "healthy again", || {
        d.problems().is_empty() && d.is_idle()
    })
    .await;
    let counts: HashMap<String, usize> =
        ids(&rx.accepted())
            .into_iter()
            .fold(HashMap::new(), |mut m, id| {
                *m.entry(id).or_default() += 1;
                m
            });
    assert_eq!(counts.len(), 11);
    assert!(counts.values().all(|c| *c == 1));
}

/// Alertmanager resolutions waiting for `min_firing_seconds` are bounded by
/// `max_open_alerts` even when alerts churn through the open table: with
/// room for one, a second quick resolution is sent at once instead of
/// waiting (the receiver here is a capture of the pushes, not Alertmanager).
#[tokio::test]
async fn held_alertmanager_resolutions_are_bounded_by_max_open_alerts() {
    let rx = Receiver::start().await;
    let cfg = format!(
        "[[outputs]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"{}\"\n\
         max_open_alerts = 1\nmin_firing_seconds = 300\n",
        rx.url("")
    );
    let (d, _m) = dispatcher(&cfg, &[]);
    let a1 = alert(
        "q-1",
        "mailchimp-sync",
        AlertKind::CallSpike,
        Severity::Critical,
    );
    let a2 = alert(
        "q-2",
        "hubspot-etl",
        AlertKind::CallSpike,
        Severity::Critical,
    );
    let wait = Duration::from_secs(10);
    d.submit(std::slice::from_ref(&a1), &[resolved_of(&a1)]);
    eventually(wait, "q-1 fired, its resolution held", || {
        let s = &d.stats()[0];
        s.delivered == 1 && s.held_resolutions == 1
    })
    .await;
    d.submit(std::slice::from_ref(&a2), &[resolved_of(&a2)]);
    eventually(wait, "q-2 fired and resolved at once", || {
        d.stats()[0].delivered == 3
    })
    .await;
    assert_eq!(d.stats()[0].held_resolutions, 1, "{:?}", d.stats());
    let pushed: Vec<String> = rx
        .requests()
        .iter()
        .flat_map(|r| {
            r.json()
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|a| a["labels"]["tripline_id"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    assert_eq!(
        pushed,
        ["q-1", "q-2", "q-2"],
        "q-1's resolution still waits"
    );
    d.flush(Instant::now() + Duration::from_secs(1)).await;
}
