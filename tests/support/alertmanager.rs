//! A real Alertmanager (`/usr/bin/prometheus-alertmanager`) routing every
//! alert to one webhook receiver with `send_resolved: true`, killed on drop.
//!
//! Grouped by `tripline_id` so that each tripline alert is its own group:
//! Alertmanager then sends exactly one firing and (at most) one resolved
//! notification per alert, which is what the tests count.

use super::http::{get, require_binary, start_ready, KillOnDrop};

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
        let (port, process) = start_ready(ALERTMANAGER, "alertmanager", dir.path(), |port| {
            vec![
                format!("--config.file={}", config.display()),
                format!("--storage.path={}", dir.path().join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--cluster.listen-address=".to_owned(),
            ]
        })
        .await;
        Alertmanager {
            port,
            process,
            _dir: dir,
        }
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
