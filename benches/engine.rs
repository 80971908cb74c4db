//! Engine benchmarks (criterion). Ratios matter more than absolutes on a
//! shared machine: compare `parse_only` (the floor: serde_json into the event
//! type) with `parse_and_detect` in the same run.
//!
//! Run: `cargo bench --bench engine`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tripline_engine::{Engine, EngineConfig, Outputs};
use tripline_sim::{generate, SimConfig};

/// ~200k simulated lines of the default benchmark world (30 integrations,
/// realistic mix), held in memory.
fn lines() -> (Vec<Vec<u8>>, String) {
    let cfg = SimConfig {
        seed: 1,
        days: 36,
        integrations: 30,
        ..SimConfig::default()
    };
    let mut v = Vec::new();
    let (_, reg) = generate(&cfg, |l| {
        if v.len() < 200_000 {
            v.push(l.to_vec());
        }
    })
    .expect("simulate");
    (v, reg)
}

fn bench(c: &mut Criterion) {
    let (lines, reg) = lines();
    let registry = tripline_ingest::parse_registry(&reg, "bench").expect("registry");
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("parse_only", lines.len()), |b| {
        b.iter(|| {
            let mut ok = 0u64;
            for l in &lines {
                if let Ok(raw) = tripline_ingest::parse_event(l) {
                    ok += raw.event().records;
                }
            }
            ok
        })
    });
    g.bench_function(BenchmarkId::new("parse_and_detect", lines.len()), |b| {
        b.iter(|| {
            let mut engine = Engine::new(EngineConfig::default(), Some(registry.clone()));
            let mut out = Outputs::default();
            for l in &lines {
                if let Ok(raw) = tripline_ingest::parse_event(l) {
                    engine.process(&raw.event(), &mut out);
                }
                out.clear();
            }
            engine.stats().events
        })
    });
    g.finish();

    // Pre-parsed events through the engine alone: the engine's own cost.
    let raws: Vec<_> = lines
        .iter()
        .filter_map(|l| tripline_ingest::parse_event(l).ok())
        .collect();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(raws.len() as u64));
    g.sample_size(10);
    g.bench_function("process", |b| {
        b.iter(|| {
            let mut engine = Engine::new(EngineConfig::default(), Some(registry.clone()));
            let mut out = Outputs::default();
            for r in &raws {
                engine.process(&r.event(), &mut out);
                out.clear();
            }
            engine.stats().events
        })
    });
    g.finish();
}

/// A flood from one unregistered integration (a shadow tool hammering the
/// CRM): every event repeats an open `unknown_integration` episode and folds.
fn flood(c: &mut Criterion) {
    let reg = tripline_ingest::parse_registry("[[integrations]]\nid = \"known\"\n", "bench")
        .expect("registry");
    let t0 = 1_792_972_800_000i64;
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(100_000));
    g.sample_size(10);
    g.bench_function("flood_unregistered", |b| {
        b.iter(|| {
            let mut engine = Engine::new(EngineConfig::default(), Some(reg.clone()));
            let mut out = Outputs::default();
            for i in 0..100_000i64 {
                let ev = tripline_engine::Event::new(
                    t0 + i * 10,
                    "shadow-tool",
                    "contacts",
                    tripline_engine::Action::Read,
                );
                engine.process(&ev, &mut out);
                out.clear();
            }
            engine.stats().folded
        })
    });
    g.finish();
}

/// An idle partition's engine moved forward once per batch
/// (`Engine::advance_to`, what the Kafka pipeline does for partitions without
/// messages): 10,000 integrations, each with one `unknown_integration`
/// episode, announced by the first call; the bench then times 1,000 more
/// calls, one a second of event time, with nothing left to announce.
fn idle_advance(c: &mut Criterion) {
    let reg = tripline_ingest::parse_registry("[[integrations]]\nid = \"known\"\n", "bench")
        .expect("registry");
    let t0 = 1_792_972_800_000i64;
    let ids: Vec<String> = (0..10_000).map(|i| format!("shadow-{i:05}")).collect();
    let mut engine = Engine::new(EngineConfig::default(), Some(reg));
    let mut out = Outputs::default();
    for (i, id) in ids.iter().enumerate() {
        let ev = tripline_engine::Event::new(
            t0 + i as i64,
            id,
            "contacts",
            tripline_engine::Action::Read,
        );
        engine.process(&ev, &mut out);
        out.clear();
    }
    let later = t0 + 3_600_000;
    engine.advance_to(later, &mut out);
    out.clear();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1_000));
    g.sample_size(10);
    let mut now = later;
    g.bench_function("advance_idle_10k_integrations", |b| {
        b.iter(|| {
            for _ in 0..1_000 {
                now += 1_000;
                engine.advance_to(now, &mut out);
            }
            let n = out.resolved.len();
            out.clear();
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench, flood, idle_advance);
criterion_main!(benches);
