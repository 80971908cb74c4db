//! `tripline score-series` per-row cost (criterion): NAB-shaped CSV lines
//! (`YYYY-MM-DD HH:MM:SS,value`, 5-minute rows, a daily pattern, noise and
//! spikes) → parsed rows → anomaly scores. Target (issue 15): ≥ 1M rows/s
//! per core. `parse_only` is the floor; `parse_and_score` is everything
//! score-series does per row except writing the output line.
//!
//! Run: `cargo bench -p tripline-ingest --bench series`
//! End to end (files on disk, the CLI): see BENCHMARKS.md, "NAB".

use std::fmt::Write as _;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tripline_engine::series::{SeriesConfig, SeriesScorer};
use tripline_ingest::series::{parse_header, parse_row};

/// `n` rows of a NAB-like series, one line each.
fn lines(n: usize) -> Vec<String> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state % 10_000) as f64 / 5_000.0 - 1.0;
            let minutes = i * 5;
            let day = minutes / 1440;
            let (h, m) = ((minutes / 60) % 24, minutes % 60);
            let base = if (8..18).contains(&h) { 80.0 } else { 20.0 };
            let spike = if i % 1777 == 0 { 150.0 } else { 0.0 };
            let mut s = String::with_capacity(32);
            let _ = write!(
                s,
                "2014-{:02}-{:02} {h:02}:{m:02}:00,{:.6}",
                1 + (day / 28) % 12,
                1 + day % 28,
                base + 5.0 * noise + spike
            );
            s
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rows = lines(200_000);
    let cols = parse_header(b"timestamp,value").expect("header");
    let cfg = SeriesConfig::default();
    let mut g = c.benchmark_group("score_series");
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("parse_only", rows.len()), |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for l in &rows {
                if let Ok(Some(r)) = parse_row(l.as_bytes(), cols) {
                    sum += r.value;
                }
            }
            sum
        })
    });
    g.bench_function(BenchmarkId::new("parse_and_score", rows.len()), |b| {
        b.iter(|| {
            let mut scorer = SeriesScorer::new(&cfg);
            let mut sum = 0.0;
            for l in &rows {
                if let Ok(Some(r)) = parse_row(l.as_bytes(), cols) {
                    sum += scorer.push(r.ts_ms, r.value);
                }
            }
            sum
        })
    });
    g.bench_function(BenchmarkId::new("score_only", rows.len()), |b| {
        let parsed: Vec<(i64, f64)> = rows
            .iter()
            .filter_map(|l| parse_row(l.as_bytes(), cols).ok().flatten())
            .map(|r| (r.ts_ms, r.value))
            .collect();
        b.iter(|| {
            let mut scorer = SeriesScorer::new(&cfg);
            parsed.iter().map(|&(t, v)| scorer.push(t, v)).sum::<f64>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
