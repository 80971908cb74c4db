//! Detection quality on simulated traffic, hard cases included: recall by
//! difficulty and by detector family, false alerts per 100 integration-days
//! and time to detect (event time), with floors.
//!
//! The seeds here (3, 1234, 98765) are held out: thresholds and the
//! simulator's hard cases were tuned on 7, 11 and 23 only.

use std::collections::BTreeMap;

use tripline_engine::{Alert, Engine, Outputs};
use tripline_sim::{evaluate, generate, registry_for, Evaluation, SimConfig, Truth};

/// Held-out seeds (never used for tuning).
const SEEDS: [u64; 3] = [3, 1234, 98765];

/// Replays one simulated run through the real parser and engine.
fn run(seed: u64) -> (Truth, Vec<Alert>) {
    let cfg = SimConfig {
        seed,
        ..SimConfig::default()
    };
    // The registry is needed before the first event.
    let registry_toml = registry_for(&cfg).expect("simulate");
    let registry = tripline_ingest::parse_registry(&registry_toml, "sim-registry.toml")
        .expect("sim registry is valid");
    let mut engine = Engine::new(tripline_engine::EngineConfig::default(), Some(registry));
    let mut out = Outputs::default();
    let mut rejected = 0u64;
    let (truth, _) = generate(&cfg, |line| match tripline_ingest::parse_event(line) {
        Ok(raw) => engine.process(&raw.event(), &mut out),
        Err(_) => rejected += 1,
    })
    .expect("simulate");
    assert_eq!(
        rejected, truth.malformed_lines,
        "every malformed line, and only those, is rejected"
    );
    (truth, out.alerts)
}

/// Detected / incidents and every time to detect, for one group over all seeds.
#[derive(Default)]
struct Pooled {
    incidents: usize,
    times_ms: Vec<i64>,
}

impl Pooled {
    fn recall(&self) -> f64 {
        if self.incidents == 0 {
            1.0
        } else {
            self.times_ms.len() as f64 / self.incidents as f64
        }
    }

    fn pct(&mut self, q: f64) -> i64 {
        self.times_ms.sort_unstable();
        if self.times_ms.is_empty() {
            return 0;
        }
        let rank = (q * self.times_ms.len() as f64).ceil() as usize;
        self.times_ms[rank.clamp(1, self.times_ms.len()) - 1]
    }
}

/// Pools the per-incident times of several evaluations by group name:
/// `difficulty …`, `family …`, `kind …`, `all`.
fn pool(evs: &[(Truth, Evaluation, Vec<Alert>)]) -> BTreeMap<String, Pooled> {
    let mut g: BTreeMap<String, Pooled> = BTreeMap::new();
    for (truth, ev, alerts) in evs {
        for inc in &truth.incidents {
            let first = alerts
                .iter()
                .filter(|a| tripline_sim::matches(inc, a))
                .map(|a| a.detected_at)
                .min();
            debug_assert_eq!(first.is_none(), ev.missed.iter().any(|m| m.id == inc.id));
            for name in [
                format!("difficulty {}", inc.difficulty.as_str()),
                format!("family {}", inc.family.as_str()),
                format!("kind {}", inc.kind.as_str()),
                "all".to_owned(),
            ] {
                let p = g.entry(name).or_default();
                p.incidents += 1;
                if let Some(t) = first {
                    p.times_ms.push(t - inc.start);
                }
            }
        }
    }
    g
}

fn mins(ms: i64) -> String {
    format!("{:.1}m", ms as f64 / 60_000.0)
}

#[test]
fn simulated_incidents_are_caught_with_few_false_alerts() {
    let mut evs = Vec::new();
    let (mut false_alerts, mut integration_days) = (0usize, 0u64);
    // The seeds are independent runs: one thread each.
    let runs: Vec<(Truth, Vec<Alert>)> = std::thread::scope(|s| {
        let handles: Vec<_> = SEEDS
            .iter()
            .map(|&seed| s.spawn(move || run(seed)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("seed run"))
            .collect()
    });
    for (seed, (truth, alerts)) in SEEDS.into_iter().zip(runs) {
        let ev = evaluate(&truth, &alerts);
        println!("seed {seed}:\n{ev}");
        false_alerts += ev.false_alerts;
        integration_days += ev.integration_days;
        evs.push((truth, ev, alerts));
    }
    let mut groups = pool(&evs);
    let per100 = 100.0 * false_alerts as f64 / integration_days as f64;

    println!("held-out seeds {SEEDS:?} pooled:");
    println!(
        "{:<28} {:>9} {:>8} {:>7} {:>8} {:>8}",
        "group", "incidents", "detected", "recall", "ttd p50", "ttd p90"
    );
    let names: Vec<String> = groups.keys().cloned().collect();
    for name in &names {
        let p = groups.get_mut(name).expect("group");
        let (p50, p90) = (p.pct(0.5), p.pct(0.9));
        println!(
            "{name:<28} {:>9} {:>8} {:>6.0}% {:>8} {:>8}",
            p.incidents,
            p.times_ms.len(),
            p.recall() * 100.0,
            mins(p50),
            mins(p90)
        );
    }
    println!(
        "false alerts: {false_alerts} over {integration_days} integration-days = {per100:.2} per 100"
    );

    let kinds = names.iter().filter(|n| n.starts_with("kind ")).count();
    assert_eq!(kinds, 10, "every alert kind is injected: {names:?}");
    for d in ["easy", "moderate", "hard"] {
        assert!(
            groups.contains_key(&format!("difficulty {d}")),
            "{d} incidents are injected: {names:?}"
        );
    }

    // Floors, on the held-out seeds. The targets are recall >= 0.95
    // overall and >= 0.90 where only learned detectors can see the incident,
    // <= 0.5 false alerts per 100 integration-days, time to detect p50 <= 2
    // min and p90 <= 10 min. Met here: learned-only, false alerts, time to
    // detect and easy incidents. Not met: overall (0.93 when this was
    // written) — the moderate and hard floors below are what the engine does
    // today, asserted so it cannot get worse (see BENCHMARKS.md for the
    // misses: 3x for an hour at a handful of calls an hour, and one key of
    // two at ~5x its share).
    let floors = [
        ("difficulty easy", 0.95),
        ("difficulty moderate", 0.75),
        ("difficulty hard", 0.65),
        ("family learned", 0.90),
        ("family registry", 0.95),
        ("all", 0.92),
    ];
    for (name, floor) in floors {
        let g = groups.get(name).expect("group present");
        assert!(
            g.recall() >= floor,
            "{name}: recall {:.3} below {floor}",
            g.recall()
        );
    }
    for name in ["difficulty easy", "all"] {
        let g = groups.get_mut(name).expect("group present");
        let (p50, p90) = (g.pct(0.5), g.pct(0.9));
        assert!(
            p50 <= 2 * 60_000,
            "{name}: median time to detect {p50} ms > 2 min"
        );
        assert!(
            p90 <= 10 * 60_000,
            "{name}: p90 time to detect {p90} ms > 10 min"
        );
    }
    assert!(
        per100 <= 0.5,
        "{per100:.2} false alerts per 100 integration-days (floor 0.5)"
    );
}
