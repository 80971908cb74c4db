//! A real Prometheus (`/usr/bin/prometheus`) scraping given targets every
//! second as `job="tripline"` (the job the dashboard selects), killed on drop.

use std::process::{Command, Stdio};
use std::time::Duration;

use super::http::{eventually, free_port, get, require_binary, KillOnDrop};

pub const PROMETHEUS: &str = "/usr/bin/prometheus";
pub const PROMTOOL: &str = "/usr/bin/promtool";

pub struct Prometheus {
    pub port: u16,
    process: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (host:port) and waits until it is ready.
    pub async fn start(targets: &[String]) -> Prometheus {
        require_binary(PROMETHEUS, "prometheus");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: tripline\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .unwrap();
        // A port taken between free_port() and the bind makes Prometheus exit:
        // retry with a fresh port.
        for attempt in 0..5 {
            let port = free_port();
            let log = dir.path().join(format!("prometheus-{attempt}.log"));
            let child = Command::new(PROMETHEUS)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {PROMETHEUS}: {e}"));
            let mut process = KillOnDrop {
                child,
                name: "prometheus",
                log,
            };
            let ready = eventually("Prometheus /-/ready", Duration::from_secs(30), || {
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
                return Prometheus {
                    port,
                    process,
                    _dir: dir,
                };
            }
            eprintln!(
                "prometheus exited on port {port}, retrying: {}",
                process.log_tail(2000)
            );
        }
        panic!("Prometheus did not start after 5 attempts");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail(4000)
    }

    /// An instant query: the `data.result` array, or why not.
    pub async fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let url = format!("{}/api/v1/query?query={}", self.url(), urlencode(expr));
        let (status, body) = get(&url).await?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{status} {e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("query {expr:?} failed: {body}"));
        }
        v["data"]["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no result array: {body}"))
    }

    /// The single value of a query returning one sample.
    pub async fn scalar(&self, expr: &str) -> Result<f64, String> {
        let r = self.query(expr).await?;
        let [one] = r.as_slice() else {
            return Err(format!("{expr}: expected one series, got {r:?}"));
        };
        one["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{expr}: bad sample {one}"))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
