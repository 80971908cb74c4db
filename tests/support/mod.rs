//! Real services for the integration tests: a Kafka-compatible broker process
//! (Tansu), Kafka clients that check what the service did from the outside,
//! and the `tripline` binary as a child process.
//!
//! Everything is synchronous: the tests drive processes and poll, so a runtime
//! is only spun up inside the helpers that need rdkafka's async admin API.

#![allow(dead_code)]

// End-to-end alerting (tests/e2e_alerting.rs, tests/e2e_prometheus.rs):
// `tripline demo`, Prometheus, Alertmanager, HTTP receivers.
pub mod alertmanager;
pub mod demo;
pub mod http;
pub mod kafka;
pub mod prometheus;
pub mod scenario;
pub mod tansu;
pub mod tansu_bin;
pub mod tripline;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A name no other test (or test run) uses: topics and groups are never shared.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        nanos & 0xffff_ffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `f` every `poll` until it returns `Some`, and returns that; panics
/// with `what` (and the last value `describe` gives) after `timeout`.
/// Assertions wait for a condition, never for a fixed time.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                assert!(
                    start.elapsed() < timeout,
                    "timed out after {timeout:?} waiting for: {what}\nlast observation: {last}"
                );
            }
        }
        std::thread::sleep(poll);
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// The last `max` bytes of a log file, for failure messages.
pub fn tail(path: &std::path::Path, max: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}
