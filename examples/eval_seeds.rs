//! Detection quality on chosen simulator seeds, for tuning: every false
//! alert and every miss, per seed, then the pooled recall by difficulty and
//! family. The held-out seeds (3, 1234, 98765) are the eval test's; tune on
//! others (7, 11, 23).
//!
//! ```sh
//! cargo run --example eval_seeds -- 7 11 23
//! TRIPLINE_EVAL_ENGINE=$'[detectors.sustained]\ncalls = false' cargo run --example eval_seeds -- 7
//! ```
//!
//! `TRIPLINE_EVAL_ENGINE` is engine configuration (TOML, the `[engine]`
//! table's keys) laid over the defaults.

use std::collections::BTreeMap;

use anyhow::Context;
use tripline_engine::{Engine, EngineConfig, Outputs};
use tripline_sim::{evaluate, generate, registry_for, SimConfig};

fn main() -> anyhow::Result<()> {
    let seeds: Vec<u64> = std::env::args()
        .skip(1)
        .map(|s| s.parse().context("seeds are integers"))
        .collect::<anyhow::Result<_>>()?;
    let cfg: EngineConfig = match std::env::var("TRIPLINE_EVAL_ENGINE") {
        Ok(t) => toml::from_str(&t).context("TRIPLINE_EVAL_ENGINE")?,
        Err(_) => EngineConfig::default(),
    };
    let runs: Vec<anyhow::Result<String>> = std::thread::scope(|s| {
        let hs: Vec<_> = seeds
            .iter()
            .map(|&seed| {
                let cfg = cfg.clone();
                s.spawn(move || run(seed, cfg))
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))
            })
            .collect()
    });
    let mut pooled: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut fa, mut days) = (0usize, 0u64);
    for r in runs {
        let text = r?;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("#group ") {
                let v: Vec<&str> = rest.split(' ').collect();
                if let [name, n, d] = v[..] {
                    let e = pooled.entry(name.to_owned()).or_default();
                    e.0 += n.parse::<usize>()?;
                    e.1 += d.parse::<usize>()?;
                }
            } else if let Some(rest) = line.strip_prefix("#false ") {
                let v: Vec<&str> = rest.split(' ').collect();
                fa += v[0].parse::<usize>()?;
                days += v[1].parse::<u64>()?;
            } else {
                println!("{line}");
            }
        }
    }
    println!("pooled over seeds {seeds:?}:");
    for (name, (n, d)) in &pooled {
        println!(
            "{name:<20} {d:>4}/{n:<4} {:>5.1}%",
            100.0 * *d as f64 / *n as f64
        );
    }
    println!(
        "false alerts {fa} over {days} integration-days = {:.2} per 100",
        100.0 * fa as f64 / days.max(1) as f64
    );
    Ok(())
}

fn run(seed: u64, cfg: EngineConfig) -> anyhow::Result<String> {
    let sim = SimConfig {
        seed,
        ..SimConfig::default()
    };
    let registry = tripline_ingest::parse_registry(&registry_for(&sim)?, "sim-registry.toml")?;
    let mut engine = Engine::new(cfg, Some(registry));
    let mut out = Outputs::default();
    let (truth, _) = generate(&sim, |line| {
        if let Ok(raw) = tripline_ingest::parse_event(line) {
            engine.process(&raw.event(), &mut out);
        }
    })?;
    let ev = evaluate(&truth, &out.alerts);
    let mut s = format!("seed {seed}:\n");
    for a in &ev.unmatched {
        s += &format!(
            "FALSE {} {} at {}: {} | {}\n",
            a.kind,
            a.integration_id,
            tripline_engine::time::format_rfc3339(a.detected_at),
            a.summary,
            serde_json::to_string(&a.evidence)?
        );
    }
    for m in &ev.missed {
        s += &format!(
            "MISS {} {} {} at {}: {}\n",
            m.difficulty.as_str(),
            m.kind,
            m.integration_id,
            tripline_engine::time::format_rfc3339(m.start),
            m.description
        );
    }
    for (k, g) in ev
        .per_difficulty
        .iter()
        .map(|(k, g)| (format!("difficulty-{k}"), g))
        .chain(
            ev.per_family
                .iter()
                .map(|(k, g)| (format!("family-{k}"), g)),
        )
        .chain(std::iter::once(("all".to_owned(), &ev.overall)))
    {
        s += &format!("#group {k} {} {}\n", g.incidents, g.detected);
    }
    s += &format!("#false {} {}\n", ev.false_alerts, ev.integration_days);
    Ok(s)
}
