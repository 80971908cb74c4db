//! `tripline demo` as a child process, and readers of what it printed and
//! what reached the receivers: shared by the end-to-end alerting tests
//! (tests/e2e_alerting.rs, tests/e2e_prometheus.rs).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{eventually, free_port, get, KillOnDrop, Receiver, Request};

/// Small enough for a test, big enough that every detector kind can fire:
/// 8 history days at full speed, then 4 live days (~30k events) at 3000/s.
pub const DEMO_ARGS: [&str; 6] = ["--days", "12", "--integrations", "6", "--rate", "3000"];

/// One alert line `tripline demo` printed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Printed {
    pub kind: String,
    pub integration: String,
    pub severity: String,
    /// `YYYY-MM-DD HH:MM` of detected_at.
    pub minute: String,
}

/// `tripline demo` as a child process.
pub struct Demo {
    pub process: KillOnDrop,
    stdout: PathBuf,
    pub http: String,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// Starts `tripline demo` with `config` (TOML) and `env`, stopping by
    /// itself `exit_after` seconds after the last event was produced. Waits
    /// until its admin server answers.
    pub async fn start(config: &str, env: &[(&str, &str)], exit_after: u64) -> Demo {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("tripline.toml");
        std::fs::write(&config_path, config).unwrap();
        for attempt in 0..5 {
            let http = format!("127.0.0.1:{}", free_port());
            let stdout = dir.path().join(format!("demo-{attempt}.out"));
            let log = dir.path().join(format!("demo-{attempt}.log"));
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_tripline"));
            for (k, _) in std::env::vars() {
                if k.starts_with("TRIPLINE__") {
                    cmd.env_remove(k);
                }
            }
            cmd.env("TRIPLINE_LOG", "warn")
                .env("TRIPLINE__HTTP__LISTEN_ADDR", &http)
                .envs(env.iter().copied())
                .arg("demo")
                .arg("--config")
                .arg(&config_path)
                .args(DEMO_ARGS)
                .arg("--exit-after")
                .arg(exit_after.to_string())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&stdout).unwrap())
                .stderr(std::fs::File::create(&log).unwrap());
            let child = cmd.spawn().expect("spawn tripline demo");
            let mut process = KillOnDrop {
                child,
                name: "tripline demo",
                log,
            };
            let url = format!("http://{http}/healthz");
            let up = eventually("tripline demo /healthz", Duration::from_secs(30), || {
                let exited = matches!(process.child.try_wait(), Ok(Some(_)));
                let url = url.clone();
                async move {
                    if exited {
                        return Ok(false);
                    }
                    match get(&url).await {
                        Ok((200, _)) => Ok(true),
                        other => Err(format!("{other:?}")),
                    }
                }
            })
            .await;
            if up {
                return Demo {
                    process,
                    stdout,
                    http,
                    _dir: dir,
                };
            }
            let log = process.log_tail(4000);
            assert!(
                log.contains("serving HTTP") || log.contains("in use"),
                "tripline demo exited at startup:\n{log}"
            );
            eprintln!("tripline demo could not bind {http}, retrying");
        }
        panic!("tripline demo did not start after 5 attempts");
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Every alert line printed so far.
    pub fn printed(&self) -> Vec<Printed> {
        self.stdout()
            .lines()
            .filter(|l| {
                l.starts_with("CRITICAL ") || l.starts_with("WARNING  ") || l.starts_with("INFO ")
            })
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Printed {
                    severity: f[0].to_ascii_lowercase(),
                    kind: f[1].into(),
                    integration: f[2].into(),
                    minute: format!("{} {}", f[3], f[4]),
                }
            })
            .collect()
    }

    pub fn produced_everything(&self) -> bool {
        self.stdout().contains("all simulated traffic produced")
    }

    /// The final line's alert count, once the demo stopped.
    pub fn summary_alerts(&self) -> Option<u64> {
        let out = self.stdout();
        let line = out
            .lines()
            .find(|l| l.starts_with("tripline demo stopped:"))?;
        let before = line.split(" alerts (").next()?;
        before.rsplit(' ').next()?.parse().ok()
    }

    pub async fn metrics(&self) -> Result<String, String> {
        match get(&format!("http://{}/metrics", self.http)).await? {
            (200, body) => Ok(body),
            (s, body) => Err(format!("/metrics answered {s}: {body}")),
        }
    }

    pub fn sigterm(&self) {
        let pid = self.process.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "could not SIGTERM tripline demo (pid {pid})");
    }

    /// Waits for the process to exit by itself; asserts it exited 0.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if let Some(status) = self.process.child.try_wait().expect("try_wait") {
                assert!(
                    status.success(),
                    "tripline demo exited with {status}:\n{}\n{}",
                    self.stdout(),
                    self.process.log_tail(4000)
                );
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "tripline demo still running after {timeout:?}:\n{}",
                self.process.log_tail(4000)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail(4000)
    }
}

/// Sum of every series of `name` in a text exposition (optionally only those
/// whose label set contains `with`).
pub fn metric_sum(text: &str, name: &str, with: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| l.contains(with))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn printed_key(a: &Value) -> Printed {
    let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
    let detected = s("detected_at");
    Printed {
        kind: s("kind"),
        integration: s("integration_id"),
        severity: s("severity"),
        minute: detected.get(..16).unwrap_or(&detected).replace('T', " "),
    }
}

/// `Tripline` + the kind in CamelCase (`call_spike` → `TriplineCallSpike`),
/// the label contract of docs/outputs.md.
pub fn camel_alertname(kind: &str) -> String {
    let mut out = String::from("Tripline");
    for word in kind.split('_') {
        let mut c = word.chars();
        if let Some(first) = c.next() {
            out.push(first.to_ascii_uppercase());
            out.push_str(c.as_str());
        }
    }
    out
}

/// One alert inside an Alertmanager webhook notification.
#[derive(Clone, Debug)]
pub struct AmNotification {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

pub fn am_notifications(rx: &Receiver) -> Vec<AmNotification> {
    let mut out = Vec::new();
    for r in rx.requests() {
        let v = r.json();
        for a in v["alerts"].as_array().cloned().unwrap_or_default() {
            let map = |x: &Value| -> BTreeMap<String, String> {
                x.as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            out.push(AmNotification {
                status: a["status"].as_str().unwrap_or_default().to_owned(),
                labels: map(&a["labels"]),
                annotations: map(&a["annotations"]),
            });
        }
    }
    out
}

/// Webhook bodies by `X-Tripline-Event` (`alert` / `resolved`), accepted ones only.
pub fn webhook_bodies(rx: &Receiver, event: &str) -> Vec<Value> {
    rx.accepted()
        .iter()
        .filter(|r| r.header("x-tripline-event") == Some(event))
        .map(Request::json)
        .collect()
}

pub fn count_by<K: Ord>(items: impl IntoIterator<Item = K>) -> BTreeMap<K, usize> {
    let mut m = BTreeMap::new();
    for k in items {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}
