//! Measures engine state per tracked integration: 100,000 integrations, each
//! given a day of traffic (so every structure is populated: baselines, data
//! types, networks, keys), then the engine is serialized and its own estimate
//! reported.
//!
//! Run: `cargo run --release --example engine_memory [-- N]`

use tripline_engine::time::{parse_rfc3339, MINUTE_MS};
use tripline_engine::{Action, Engine, EngineConfig, Event, Outputs};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let t0 = parse_rfc3339("2026-11-02T00:00:00Z").unwrap_or(0);
    let cfg = EngineConfig {
        max_integrations: n + 16,
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(cfg, None);
    let ids: Vec<String> = (0..n).map(|i| format!("integration-{i:06}")).collect();
    let keys: Vec<String> = (0..n).map(|i| format!("key-{i:06}")).collect();
    let resources = ["contacts", "deals", "notes"];
    let mut out = Outputs::default();
    // 26 hours, one call per integration every 20 minutes, 3 data types,
    // 2 networks, 1 key: a realistic small integration.
    for step in 0..(26 * 3) {
        let ts = t0 + step * 20 * MINUTE_MS;
        for (i, id) in ids.iter().enumerate() {
            let mut ev = Event::new(
                ts + (i % 1000) as i64,
                id,
                resources[(step as usize + i) % 3],
                Action::Read,
            );
            ev.key_id = Some(&keys[i]);
            ev.source_ip = Some(if step % 2 == 0 {
                "198.51.100.7".parse().unwrap()
            } else {
                "203.0.113.9".parse().unwrap()
            });
            engine.process(&ev, &mut out);
            out.clear();
        }
    }
    let stats = engine.stats();
    println!(
        "tracked integrations: {}\nestimated engine memory: {} bytes = {:.0} bytes per integration ({:.2} KiB)",
        stats.tracked_integrations,
        stats.approx_memory_bytes,
        stats.approx_memory_bytes as f64 / stats.tracked_integrations as f64,
        stats.approx_memory_bytes as f64 / stats.tracked_integrations as f64 / 1024.0
    );
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for l in status
            .lines()
            .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        {
            println!("{l}");
        }
    }
}
