//! A real Prometheus (`/usr/bin/prometheus`) scraping given targets every
//! second as `job="tripline"` (the job the dashboard selects), killed on drop.

use super::http::{get, require_binary, start_ready, KillOnDrop};

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
        let (port, process) = start_ready(PROMETHEUS, "prometheus", dir.path(), |port| {
            vec![
                format!("--config.file={}", config.display()),
                format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--log.level=warn".to_owned(),
            ]
        })
        .await;
        Prometheus {
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
