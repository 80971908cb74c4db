//! Registry loading (criterion): TOML text → validated `Registry`, linear in
//! the file (issue 16: it was quadratic — 10k integrations took 37 s).
//!
//! Run: `cargo bench -p tripline-ingest --bench registry`
//! End to end (file on disk, the CLI): see BENCHMARKS.md, "Registry loading".

use std::fmt::Write as _;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// `n` integrations, each with one key and one principal, in the spec's shape.
fn registry_text(n: usize) -> String {
    let mut s = String::with_capacity(n * 400);
    for i in 0..n {
        let _ = write!(
            s,
            "[[integrations]]\nid = \"int-{i}\"\nname = \"Integration {i}\"\nowner = \"ops@acme.example\"\n\
             granted = [\"contacts:read\", \"deals:write\"]\nnetworks = [\"10.{}.{}.0/24\"]\n\
             active_hours = {{ days = [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"], start = \"06:00\", end = \"22:00\" }}\n\n",
            (i / 256) % 256,
            i % 256
        );
    }
    for i in 0..n {
        let _ = write!(
            s,
            "[[keys]]\nid = \"key-{i}\"\nintegration = \"int-{i}\"\ncreated = \"2026-01-10T00:00:00Z\"\n\n"
        );
    }
    for i in 0..n {
        let _ = write!(s, "[[principals]]\nid = \"p{i}@acme.example\"\n\n");
    }
    s
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("registry_load");
    g.sample_size(10);
    for n in [1_000, 10_000, 100_000] {
        let text = registry_text(n);
        g.throughput(Throughput::Elements(n as u64));
        // The floor: the TOML parse alone (no validation, no line lookup).
        g.bench_function(BenchmarkId::new("toml_only", n), |b| {
            b.iter(|| text.parse::<toml::Table>().expect("toml").len())
        });
        g.bench_function(BenchmarkId::new("load", n), |b| {
            b.iter(|| {
                tripline_ingest::parse_registry(&text, "bench")
                    .expect("registry")
                    .integrations()
                    .len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
