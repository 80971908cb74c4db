//! The `tripline` binary as the tests' subject: `run` as a child process
//! (config file in a temp dir, output in a log printed on failure, SIGTERM
//! through `kill -TERM`), `replay` and `simulate` as one-shot commands, and a
//! minimal HTTP/1.1 GET for the admin endpoints.
//!
//! With `TRIPLINE_TEST_GDB=1`, a `run` that does not exit in time gets its
//! thread stacks dumped with `gdb` before the test fails.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, tail};

/// A `tripline` command with the developer's `TRIPLINE__*` overrides removed.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tripline"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TRIPLINE__") {
            c.env_remove(k);
        }
    }
    c.env("TRIPLINE_LOG", "info");
    c.stdin(Stdio::null());
    c
}

/// What a test's `tripline run` consumes and writes to.
#[derive(Clone, Debug)]
pub struct KafkaConf {
    pub brokers: String,
    pub topic: String,
    pub group: String,
    pub dlq_topic: String,
    pub alerts_topic: String,
    /// Messages per batch: small values make a stream take many batches.
    pub batch_max_events: usize,
}

impl KafkaConf {
    /// Creates the input topic with `partitions` partitions, and the
    /// dead-letter and alerts topics with one each.
    pub fn create_topics(&self, partitions: i32) {
        super::kafka::create_topic(&self.brokers, &self.topic, partitions);
        super::kafka::create_topic(&self.brokers, &self.dlq_topic, 1);
        super::kafka::create_topic(&self.brokers, &self.alerts_topic, 1);
    }
}

/// Writes a config file for `conf` with a fresh loopback admin port;
/// returns its path and the admin address.
pub fn write_config(dir: &Path, conf: &KafkaConf) -> (PathBuf, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let text = format!(
        r#"[kafka]
brokers = "{brokers}"
group_id = "{group}"
topics = ["{topic}"]
dlq_topic = "{dlq}"
alerts_topic = "{alerts}"
batch_max_events = {batch}
batch_max_wait_ms = 20
commit_interval_ms = 100
lag_interval_ms = 500
# Two worker threads that take even a small batch apart (one partition per
# thread at a time), so the e2e tests run the parallel path; a run asserts
# it with `parallel_batches`.
workers = 2
min_events_per_worker = 1

[http]
listen_addr = "{addr}"

[shutdown]
deadline_seconds = 10

# The e2e tests count one unknown_integration alert per new id as their
# marker of what was processed; alert budgets would fold a burst of them.
# tests/e2e_bounds.rs turns budgets back on (TRIPLINE__ENGINE__ALERT_BUDGET__ENABLED).
[engine.alert_budget]
enabled = false
"#,
        brokers = conf.brokers,
        group = conf.group,
        topic = conf.topic,
        dlq = conf.dlq_topic,
        alerts = conf.alerts_topic,
        batch = conf.batch_max_events,
    );
    let path = dir.join(format!("{}.toml", super::unique("config")));
    std::fs::write(&path, text).expect("write config");
    (path, addr)
}

/// `parallel_batches` (batches whose engines ran on more than one worker
/// thread) from the "Kafka source stopped." line of a stopped run's log, text
/// (`parallel_batches=3`) or JSON (`"parallel_batches":3`).
pub fn parallel_batches(log: &str) -> Option<u64> {
    let key = "parallel_batches";
    let at = log.rfind(key)? + key.len();
    let digits: String = log[at..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Panics (with the log) unless the stopped run used more than one worker
/// thread for some batch.
pub fn assert_parallel(run: &Run) {
    let log = run.log();
    let n = parallel_batches(&log);
    assert!(
        n.is_some_and(|n| n > 0),
        "expected batches on more than one worker (parallel_batches = {n:?}):\n{log}"
    );
}

/// A running `tripline run`.
pub struct Run {
    child: Child,
    log: PathBuf,
    /// The admin server's `host:port`.
    pub http: String,
    status: Option<ExitStatus>,
}

impl Run {
    /// `tripline run --config <config> --registry <registry>`, output to a log
    /// file next to the config.
    pub fn start(config: &Path, registry: &Path, http: &str) -> Run {
        let log = config.with_extension(format!("{}.log", super::unique("run")));
        let out = std::fs::File::create(&log).expect("run log");
        let err = out.try_clone().expect("run log");
        let child = command()
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--registry")
            .arg(registry)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawning tripline run");
        Run {
            child,
            log,
            http: http.to_owned(),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM with the `kill` utility (no unsafe, no libc).
    pub fn sigterm(&self) {
        let st = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(st.success(), "kill -TERM {} failed: {st}", self.pid());
    }

    /// Panics (with the log) if the process has already exited.
    pub fn assert_running(&mut self) {
        if let Some(st) = self.child.try_wait().expect("try_wait") {
            self.status = Some(st);
            panic!("tripline run exited early ({st}):\n{}", self.log());
        }
    }

    /// Waits for the process to exit; panics with the log after `timeout`.
    /// Returns the exit status and how long it took.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                self.status = Some(st);
                return (st, start.elapsed());
            }
            // A hung shutdown is easiest to diagnose from its threads' stacks.
            if start.elapsed() >= timeout && std::env::var_os("TRIPLINE_TEST_GDB").is_some() {
                let bt = Command::new("gdb")
                    .args([
                        "-p",
                        &self.pid().to_string(),
                        "-batch",
                        "-ex",
                        "thread apply all bt",
                    ])
                    .output();
                if let Ok(o) = bt {
                    eprintln!("---- gdb ----\n{}", String::from_utf8_lossy(&o.stdout));
                }
            }
            assert!(
                start.elapsed() < timeout,
                "tripline run (pid {}) still running {timeout:?} after being asked to stop:\n{}",
                self.pid(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then an exit within `timeout` with status 0 (else a panic
    /// with the log). Returns how long the shutdown took.
    pub fn stop(&mut self, timeout: Duration) -> Duration {
        self.sigterm();
        let (st, took) = self.wait_exit(timeout);
        assert!(
            st.success(),
            "tripline run exited with {st} after SIGTERM:\n{}",
            self.log()
        );
        took
    }

    pub fn log(&self) -> String {
        tail(&self.log, 16 * 1024)
    }

    /// GET `path` on the admin server.
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        http_get(&self.http, path)
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- tripline run log (pid {}) ----\n{}\n---- end of tripline run log ----",
                self.child.id(),
                self.log()
            );
        }
    }
}

/// `tripline simulate` into `dir`; returns (events.jsonl, registry.toml).
pub fn simulate(dir: &Path, seed: u64) -> (PathBuf, PathBuf) {
    let out = command()
        .args(["simulate", "--seed", &seed.to_string()])
        .args(["--days", "10", "--integrations", "5", "--rate-scale", "0.3"])
        .arg("--out")
        .arg(dir)
        .env("TRIPLINE_LOG", "warn")
        .output()
        .expect("run tripline simulate");
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir.join("events.jsonl"), dir.join("registry.toml"))
}

/// Alert ids `tripline replay` finds in `events` with the same config and
/// registry as a run.
pub fn replay_alert_ids(config: &Path, registry: &Path, events: &Path) -> BTreeSet<String> {
    let out = command()
        .arg("replay")
        .arg("--config")
        .arg(config)
        .arg("--registry")
        .arg(registry)
        .arg(events)
        .env("TRIPLINE_LOG", "warn")
        .output()
        .expect("run tripline replay");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("replay output is UTF-8")
        .lines()
        .map(|l| alert_id(l.as_bytes()))
        .collect()
}

/// The `id` of an alert as JSON (replay's stdout line, alerts-topic payload).
pub fn alert_id(json: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(json)
        .unwrap_or_else(|e| panic!("alert is not JSON ({e}): {}", String::from_utf8_lossy(json)));
    v.get("id")
        .and_then(|i| i.as_str())
        .unwrap_or_else(|| panic!("alert without a string id: {v}"))
        .to_owned()
}

/// A minimal HTTP/1.1 GET (`Connection: close`): status code and body.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no header end in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// The value of one exposition-format series (`name` or `name{labels}`
/// exactly as exported).
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}
