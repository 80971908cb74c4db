//! A real Alertmanager (`/usr/bin/prometheus-alertmanager`) routing every
//! alert to one webhook receiver with `send_resolved: true`, killed on drop.
//!
//! Grouped by `tripline_id` so that each tripline alert is its own group:
//! Alertmanager then sends exactly one firing and (at most) one resolved
//! notification per alert, which is what the tests count.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::http::{eventually, free_port, get, require_binary, KillOnDrop};

pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

pub struct Alertmanager {
    pub port: u16,
    process: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    pub async fn start(webhook_url: &str) -> Alertmanager {
        require_binary(ALERTMANAGER, "prometheus-alertmanager");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "route:\n  receiver: test\n  group_by: ['tripline_id']\n  group_wait: 1s\n  \
                 group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: test\n    webhook_configs:\n      - url: '{webhook_url}'\n        \
                 send_resolved: true\n"
            ),
        )
        .unwrap();
        for attempt in 0..5 {
            let port = free_port();
            let log = dir.path().join(format!("alertmanager-{attempt}.log"));
            let child = Command::new(ALERTMANAGER)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--cluster.listen-address=")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {ALERTMANAGER}: {e}"));
            let mut process = KillOnDrop {
                child,
                name: "alertmanager",
                log,
            };
            let ready = eventually("Alertmanager /-/ready", Duration::from_secs(30), || {
                let exited = matches!(process.child.try_wait(), Ok(Some(_)));
                async move {
                    if exited {
                        return Ok(false);
                    }
                    match get(&format!("http://127.0.0.1:{port}/-/ready")).await {
                        Ok((200, _)) => Ok(true),
                        other => Err(format!("{other:?}")),
                    }
                }
            })
            .await;
            if ready {
                return Alertmanager {
                    port,
                    process,
                    _dir: dir,
                };
            }
            eprintln!(
                "alertmanager exited on port {port}, retrying: {}",
                process.log_tail(2000)
            );
        }
        panic!("Alertmanager did not start after 5 attempts");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail(4000)
    }

    /// The alerts Alertmanager currently holds (`GET /api/v2/alerts`).
    pub async fn alerts(&self) -> Result<Vec<serde_json::Value>, String> {
        let (status, body) = get(&format!("{}/api/v2/alerts", self.url())).await?;
        if status != 200 {
            return Err(format!("{status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
    }
}
