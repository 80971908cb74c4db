//! End to end against a real Alertmanager process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;
use tripline_engine::{AlertKind, Severity};

use crate::support::{alert, dispatcher, eventually, eventually_async, resolved_of, Receiver};

const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A running Alertmanager, killed on drop.
struct Alertmanager {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Alertmanager {
    fn start(webhook_url: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        Alertmanager::start_with(
            dir,
            &format!(
                "route:\n  receiver: test\n  group_by: ['tripline_id']\n  group_wait: 1s\n  group_interval: 1s\n  \
                 repeat_interval: 1h\nreceivers:\n  - name: test\n    webhook_configs:\n      - url: '{webhook_url}'\n        \
                 send_resolved: true\n"
            ),
        )
    }

    /// Starts Alertmanager on `config_text`, keeping `dir` (which may hold
    /// secret files the config names) alive as long as it runs.
    fn start_with(dir: tempfile::TempDir, config_text: &str) -> Alertmanager {
        assert!(
            Path::new(ALERTMANAGER).exists(),
            "{ALERTMANAGER} not found; install it (Debian: apt-get install prometheus-alertmanager) to run this test"
        );
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, config_text).unwrap();
        let storage = dir.path().join("data");
        let log = dir.path().join("alertmanager.log");
        let port = free_port();
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {ALERTMANAGER}: {e}"));
        Alertmanager {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let ready = format!("{}/-/ready", self.url());
        eventually_async(Duration::from_secs(20), "alertmanager ready", || {
            let c = client.clone();
            let u = ready.clone();
            async move {
                c.get(&u)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false)
            }
        })
        .await;
    }
}

/// (status of the alert in the notification, tripline_id) for every alert of
/// every notification the receiver got, with its labels.
fn notified(rx: &Receiver) -> Vec<(String, String, serde_json::Value)> {
    rx.requests()
        .iter()
        .flat_map(|r| {
            let v = r.json();
            v["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|a| {
                    (
                        a["status"].as_str().unwrap_or("").to_owned(),
                        a["labels"]["tripline_id"].as_str().unwrap_or("").to_owned(),
                        a["labels"].clone(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn count(rx: &Receiver, status: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for (s, id, _) in notified(rx) {
        if s == status {
            *m.entry(id).or_default() += 1;
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_notifies_each_alert_once_then_resolves() {
    let rx = Receiver::start().await;
    let am = Alertmanager::start(&rx.url("/am"));
    let client = reqwest::Client::new();
    am.wait_ready().await;

    let config = format!(
        "[[outputs]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"{}\"\nlabels = {{ env = \"test\" }}\n\
         repush_interval_seconds = 1\nalert_ttl_seconds = 3\nmin_firing_seconds = 2\n\
         [outputs.delivery]\ninitial_backoff_ms = 50\nmax_backoff_ms = 500\n",
        am.url()
    );
    let (d, _m) = dispatcher(&config, &[]);
    let a1 = alert(
        "am-1",
        "mailchimp-sync",
        AlertKind::CallSpike,
        Severity::Critical,
    );
    let a2 = alert(
        "am-2",
        "hubspot-etl",
        AlertKind::ScopeViolation,
        Severity::Warning,
    );
    d.submit(&[a1.clone(), a2.clone()], &[]);

    let wait = Duration::from_secs(20);
    eventually(wait, "both alerts notified as firing", || {
        let c = count(&rx, "firing");
        c.contains_key("am-1") && c.contains_key("am-2")
    })
    .await;
    for (status, id, labels) in notified(&rx) {
        assert_eq!(status, "firing");
        let want = if id == "am-1" { &a1 } else { &a2 };
        assert_eq!(
            labels["alertname"],
            tripline_output::outputs::links::alertname(want.kind),
            "{labels}"
        );
        assert_eq!(labels["kind"], want.kind.as_str(), "{labels}");
        assert_eq!(labels["severity"], want.severity.as_str(), "{labels}");
        assert_eq!(
            labels["integration_id"],
            want.integration_id.as_str(),
            "{labels}"
        );
        assert_eq!(labels["env"], "test");
    }

    // Re-pushes keep the alerts firing past their 3 s TTL: after four of
    // them Alertmanager still has both active and sent no resolution.
    eventually(wait, "four re-pushes", || d.stats()[0].delivered >= 2 + 4).await;
    assert!(
        count(&rx, "resolved").is_empty(),
        "resolved before we resolved:\n{}",
        am.log()
    );
    let active: serde_json::Value = client
        .get(format!(
            "{}/api/v2/alerts?active=true&silenced=false&inhibited=false",
            am.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut active_ids: Vec<&str> = active
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["labels"]["tripline_id"].as_str())
        .collect();
    active_ids.sort_unstable();
    assert_eq!(active_ids, ["am-1", "am-2"], "{active}");

    d.submit(&[], &[resolved_of(&a1), resolved_of(&a2)]);
    eventually(wait, "both alerts notified as resolved", || {
        let c = count(&rx, "resolved");
        c.contains_key("am-1") && c.contains_key("am-2")
    })
    .await;

    if std::env::var_os("AM_DEBUG").is_some() {
        for r in rx.requests() {
            eprintln!("{}", String::from_utf8_lossy(&r.body));
        }
    }
    // Over several group intervals and re-pushes, each alert was notified
    // firing exactly once (no duplicate from the dispatcher, no flap).
    let firing = count(&rx, "firing");
    assert_eq!(
        firing.get("am-1"),
        Some(&1),
        "firing notifications: {firing:?}\n{}",
        am.log()
    );
    assert_eq!(
        firing.get("am-2"),
        Some(&1),
        "firing notifications: {firing:?}"
    );
    let s = &d.stats()[0];
    assert_eq!(s.failed_attempts, 0, "{s:?}\n{}", am.log());
    d.flush(Instant::now() + Duration::from_secs(2)).await;
}

/// Alertmanager never notifies an alert that fired and resolved between two
/// flushes of its group. An episode resolved at once (a backlog caught up in
/// seconds) must still page: the resolution is held until
/// `min_firing_seconds` after the first push, so the first flush sees the
/// alert firing, and the next one resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_resolved_within_group_wait_is_still_notified_firing_then_resolved() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let am = Alertmanager::start_with(
        dir,
        &format!(
            "route:\n  receiver: test\n  group_by: ['tripline_id']\n  group_wait: 3s\n  \
             group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: test\n    webhook_configs:\n      - url: '{}'\n        \
             send_resolved: true\n",
            rx.url("/am")
        ),
    );
    am.wait_ready().await;
    let config = format!(
        "[[outputs]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"{}\"\n\
         repush_interval_seconds = 60\nalert_ttl_seconds = 300\nmin_firing_seconds = 5\n",
        am.url()
    );
    let (d, m) = dispatcher(&config, &[]);
    let mut a = alert(
        "quick-1",
        "mailchimp-sync",
        AlertKind::CallSpike,
        Severity::Critical,
    );
    // A live alert: startsAt (clamped to the push) is not older than
    // group_wait, so Alertmanager waits group_wait before the first flush
    // (an older one would be flushed at once).
    a.detected_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 600_000;
    // Fired and resolved in one batch, long before group_wait (3 s) ends.
    d.submit(std::slice::from_ref(&a), &[resolved_of(&a)]);
    let wait = Duration::from_secs(30);
    eventually(wait, "the resolution held", || {
        d.stats()[0].held_resolutions == 1
    })
    .await;
    assert!(
        m.render()
            .contains("tripline_output_held_resolutions{output=\"am\"} 1"),
        "the held resolution is a metric"
    );
    eventually(wait, "the alert notified as resolved", || {
        count(&rx, "resolved").contains_key("quick-1")
    })
    .await;
    let statuses: Vec<String> = notified(&rx)
        .into_iter()
        .filter(|(_, id, _)| id == "quick-1")
        .map(|(status, _, _)| status)
        .collect();
    assert_eq!(
        statuses,
        ["firing", "resolved"],
        "one firing, then one resolved notification:\n{}",
        am.log()
    );
    let s = &d.stats()[0];
    assert_eq!((s.delivered, s.failed_attempts), (2, 0), "{s:?}");
    d.flush(Instant::now() + Duration::from_secs(2)).await;
}

/// `urls` sends every alert to every replica of an Alertmanager cluster
/// (replicas gossip silences and notifications, not alerts), each through
/// its own queue: a replica that is down does not hold the others back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_reach_every_alertmanager_replica_and_a_dead_one_blocks_none() {
    let rx = Receiver::start().await;
    let am0 = Alertmanager::start(&rx.url("/am0"));
    let am1 = Alertmanager::start(&rx.url("/am1"));
    am0.wait_ready().await;
    am1.wait_ready().await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let config = format!(
        "[[outputs]]\nname = \"am\"\ntype = \"alertmanager\"\nurls = [\"{}\", \"{}\", \"{dead}\"]\n\
         min_firing_seconds = 0\n\
         [outputs.delivery]\ninitial_backoff_ms = 50\nmax_backoff_ms = 200\n",
        am0.url(),
        am1.url()
    );
    let (d, _m) = dispatcher(&config, &[]);
    let names: Vec<String> = d.stats().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["am-0", "am-1", "am-2"]);
    let a = alert(
        "ha-1",
        "mailchimp-sync",
        AlertKind::CallSpike,
        Severity::Critical,
    );
    d.submit(std::slice::from_ref(&a), &[]);
    let wait = Duration::from_secs(20);
    let replica_notified = |path: &'static str| {
        let rx = &rx;
        move || {
            rx.requests().iter().any(|r| {
                r.path == path
                    && r.json()["alerts"]
                        .as_array()
                        .is_some_and(|v| v.iter().any(|x| x["labels"]["tripline_id"] == "ha-1"))
            })
        }
    };
    eventually(wait, "replica 0 notified", replica_notified("/am0")).await;
    eventually(wait, "replica 1 notified", replica_notified("/am1")).await;
    eventually(wait, "the dead replica retried", || {
        d.stats()[2].retries >= 2
    })
    .await;
    let s = d.stats();
    assert_eq!((s[0].delivered, s[0].failed_attempts), (1, 0), "{s:?}");
    assert_eq!((s[1].delivered, s[1].failed_attempts), (1, 0), "{s:?}");
    assert_eq!(s[2].delivered, 0, "{s:?}");
    d.flush(Instant::now() + Duration::from_secs(1)).await;
}

/// `deploy/…` of the repository.
fn deploy_file(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The shipped Alertmanager-first profile, end to end: tripline's outputs
/// from `deploy/kubernetes/config/config.toml` (only the Alertmanager URL
/// changed) push to a real Alertmanager running the shipped
/// `deploy/alertmanager/alertmanager.yml` (secret file paths and the
/// PagerDuty `url` pointed at a local capture server; timers shortened). One
/// critical incident (two kinds on one integration) is one group per
/// integration and exactly one PagerDuty trigger; resolving it sends exactly
/// one resolve with the same dedup key. A warning reaches Slack, never
/// PagerDuty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_alertmanager_first_profile_pages_once_per_incident() {
    let capture = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("pagerduty-routing-key"), "TEST-ROUTING-KEY\n").unwrap();
    std::fs::write(secrets.join("slack-webhook-url"), capture.url("/slack")).unwrap();
    let shipped = deploy_file("alertmanager/alertmanager.yml");
    let pd_key_line = "routing_key_file: /etc/alertmanager/secrets/pagerduty-routing-key";
    assert!(
        shipped.contains(pd_key_line),
        "shipped config changed shape"
    );
    let am_config = shipped
        .replace(
            pd_key_line,
            &format!(
                "{pd_key_line}\n        url: '{}'",
                capture.url("/v2/enqueue")
            ),
        )
        .replace(
            "/etc/alertmanager/secrets/",
            &format!("{}/", secrets.display()),
        )
        .replace("group_wait: 30s", "group_wait: 2s")
        .replace("group_interval: 5m", "group_interval: 2s");
    let am = Alertmanager::start_with(dir, &am_config);
    let client = reqwest::Client::new();
    am.wait_ready().await;

    // tripline's shipped outputs, Alertmanager URL pointed at the test one.
    let mut tripline: toml::Value =
        toml::from_str(&deploy_file("kubernetes/config/config.toml")).unwrap();
    let outputs = tripline["outputs"].as_array_mut().unwrap();
    let kinds: Vec<&str> = outputs
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"alertmanager"), "{kinds:?}");
    assert!(
        !kinds.contains(&"pagerduty") && !kinds.contains(&"slack"),
        "the Alertmanager-first profile must not page directly too: {kinds:?}"
    );
    for o in outputs.iter_mut() {
        if o["type"].as_str() == Some("alertmanager") {
            o["url"] = am.url().into();
            // group_wait + group_interval of the shrunk route, plus 1 s.
            o.as_table_mut()
                .unwrap()
                .insert("min_firing_seconds".into(), 5.into());
        }
    }
    let mut only_outputs = toml::map::Map::new();
    only_outputs.insert("outputs".into(), tripline["outputs"].clone());
    let config = toml::to_string(&toml::Value::Table(only_outputs)).unwrap();
    let (d, _m) = dispatcher(
        &config,
        &[
            ("WEBHOOK_URL", &capture.url("/soc")),
            (
                "WEBHOOK_SIGNING_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ],
    );

    // Live alerts. Alertmanager flushes a new group at once (no group_wait)
    // when an alert's startsAt is older than group_wait, as in a backlog
    // replay; a detection time ahead of the wall clock is clamped to the
    // time of the push, so the group waits however loaded the machine is.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 600_000;
    let live = |id: &str, integration: &str, kind: AlertKind, severity: Severity| {
        let mut a = alert(id, integration, kind, severity);
        a.detected_at = soon;
        a
    };
    let spike = live(
        "inc-1",
        "mailchimp-sync",
        AlertKind::CallSpike,
        Severity::Critical,
    );
    let volume = live(
        "inc-2",
        "mailchimp-sync",
        AlertKind::VolumeSpike,
        Severity::Critical,
    );
    let warn = live("w-1", "hubspot-etl", AlertKind::OffHours, Severity::Warning);
    d.submit(&[spike.clone(), volume.clone(), warn.clone()], &[]);

    let pd = |action: &str| -> Vec<serde_json::Value> {
        capture
            .requests()
            .iter()
            .filter(|r| r.path == "/v2/enqueue")
            .map(|r| r.json())
            .filter(|v| v["event_action"] == action)
            .collect()
    };
    let wait = Duration::from_secs(30);
    eventually(wait, "a PagerDuty trigger", || !pd("trigger").is_empty()).await;
    eventually(wait, "the warning in Slack", || {
        capture
            .requests()
            .iter()
            .any(|r| r.path == "/slack" && String::from_utf8_lossy(&r.body).contains("hubspot-etl"))
    })
    .await;

    // Grouped by integration: one group holds both alerts of the incident.
    let groups: serde_json::Value = client
        .get(format!("{}/api/v2/alerts/groups", am.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let incident: Vec<&serde_json::Value> = groups
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["labels"]["integration_id"] == "mailchimp-sync")
        .collect();
    assert!(
        !incident.is_empty(),
        "no group for the integration: {groups}"
    );
    for g in &incident {
        assert_eq!(
            g["labels"],
            serde_json::json!({"integration_id": "mailchimp-sync"}),
            "{g}"
        );
        let mut names: Vec<&str> = g["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["labels"]["alertname"].as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["TriplineCallSpike", "TriplineVolumeSpike"], "{g}");
    }

    // Several group intervals later, still exactly one trigger, and only
    // for the critical incident.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let triggers = pd("trigger");
    assert_eq!(
        triggers.len(),
        1,
        "PagerDuty triggers: {triggers:#?}\n{}",
        am.log()
    );
    let t = &triggers[0];
    assert_eq!(t["routing_key"], "TEST-ROUTING-KEY");
    assert_eq!(t["payload"]["severity"], "critical");
    let body = t.to_string();
    assert!(
        body.contains("mailchimp-sync") && !body.contains("hubspot-etl"),
        "{body}"
    );
    assert!(
        body.contains("docs/operations.md#kind-"),
        "runbook link in the page: {body}"
    );

    d.submit(&[], &[resolved_of(&spike), resolved_of(&volume)]);
    eventually(wait, "a PagerDuty resolve", || !pd("resolve").is_empty()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let resolves = pd("resolve");
    assert_eq!(resolves.len(), 1, "PagerDuty resolves: {resolves:#?}");
    assert_eq!(
        resolves[0]["dedup_key"], t["dedup_key"],
        "the resolve closes the page"
    );
    assert_eq!(pd("trigger").len(), 1, "no second trigger");
    assert_eq!(d.stats()[0].failed_attempts, 0, "{}", am.log());
    d.flush(Instant::now() + Duration::from_secs(2)).await;
}
