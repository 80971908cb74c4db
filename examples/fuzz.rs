//! A fuzzer that runs on stable Rust, without cargo-fuzz or a sanitizer:
//! mutates a corpus of real inputs (the golden vendor logs, simulated events,
//! a registry, a checkpoint) and runs every target of `fuzz/targets.rs` on
//! each mutant, catching panics. A panicking input, or one slower than
//! `--slow-ms`, is saved under `fuzz/regressions/<target>/` — where the
//! regression test `tests/fuzz_regressions.rs` replays it on every test run.
//!
//! ```sh
//! cargo run --example fuzz -- --seconds 60            # all targets
//! cargo run --example fuzz -- --seconds 300 --target event --seed 7
//! ```
//! Deterministic for a seed (up to timing: which inputs are "slow").

#![forbid(unsafe_code)]

#[path = "../fuzz/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// Fragments that matter to the parsers, spliced into mutants.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"1e999",
    b"-0",
    b"18446744073709551615",
    b"-9223372036854775808",
    b"null",
    b"true",
    b"\n",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\x1b[2J",
    b"\xe2\x80\xae",
    b"\"ts\":",
    b"\"integration_id\":",
    b"\"records\":",
    b"[[integrations]]\n",
    b"id = ",
    b"granted = [",
    b"9999-12-31T23:59:59Z",
    b"0.0.0.0/0",
    b"[[[[[[[[[[[[[[[[",
    b"TRLNCKPT",
];

struct Args {
    seconds: u64,
    seed: u64,
    target: Option<String>,
    slow_ms: u64,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 30,
        seed: 1,
        target: None,
        slow_ms: 500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        match k.as_str() {
            "--seconds" => a.seconds = v.parse().unwrap_or(a.seconds),
            "--seed" => a.seed = v.parse().unwrap_or(a.seed),
            "--slow-ms" => a.slow_ms = v.parse().unwrap_or(a.slow_ms),
            "--target" => a.target = Some(v),
            other => {
                eprintln!(
                    "unknown flag {other}; flags: --seconds N --seed N --target NAME --slow-ms N"
                );
                std::process::exit(64);
            }
        }
    }
    a
}

fn corpus(root: &Path) -> Vec<Vec<u8>> {
    let mut c: Vec<Vec<u8>> = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(root.join("crates/ingest/tests/golden")) {
        for d in dirs.flatten() {
            if let Ok(files) = std::fs::read_dir(d.path()) {
                for f in files.flatten() {
                    if let Ok(bytes) = std::fs::read(f.path()) {
                        c.extend(bytes.split(|&b| b == b'\n').take(20).map(<[u8]>::to_vec));
                        c.push(bytes.into_iter().take(16 * 1024).collect());
                    }
                }
            }
        }
    }
    let cfg = tripline_sim::SimConfig {
        days: 1,
        integrations: 3,
        ..Default::default()
    };
    let mut sim = Vec::new();
    if let Ok((_, registry)) = tripline_sim::generate(&cfg, |l| {
        if sim.len() < 4000 {
            sim.extend_from_slice(l);
            sim.push(b'\n');
        }
    }) {
        c.push(registry.into_bytes());
    }
    c.extend(sim.chunks(2000).map(<[u8]>::to_vec));
    let engine = tripline_engine::Engine::new(tripline_engine::EngineConfig::default(), None);
    if let Ok(b) = tripline_state::encode_parts("t", 0, 1, &engine) {
        c.push(b);
    }
    c
}

fn mutate(rng: &mut ChaCha8Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut m = corpus[rng.gen_range(0..corpus.len())].clone();
    for _ in 0..rng.gen_range(1..8) {
        let len = m.len();
        match rng.gen_range(0..6) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                m[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                m[i] = rng.gen();
            }
            2 => {
                let t = TOKENS[rng.gen_range(0..TOKENS.len())];
                let i = rng.gen_range(0..=len);
                let n = if rng.gen_range(0..20) == 0 {
                    rng.gen_range(1..2000)
                } else {
                    1
                };
                for _ in 0..n {
                    m.splice(i..i, t.iter().copied());
                }
            }
            3 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 64));
                m.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..=len.min(a + 256));
                let chunk = m[a..b].to_vec();
                m.splice(a..a, chunk);
            }
            _ => {
                let other = &corpus[rng.gen_range(0..corpus.len())];
                let cut = rng.gen_range(0..=m.len());
                let from = rng.gen_range(0..=other.len());
                m.truncate(cut);
                m.extend_from_slice(&other[from..]);
            }
        }
    }
    m.truncate(256 * 1024);
    m
}

fn save(root: &Path, target: &str, data: &[u8], why: &str) -> PathBuf {
    let dir = root.join("fuzz/regressions").join(target);
    let _ = std::fs::create_dir_all(&dir);
    let name = hex::encode(&Sha256::digest(data)[..8]);
    let path = dir.join(format!("{name}.bin"));
    let _ = std::fs::write(&path, data);
    eprintln!("{why}: {target} input saved to {}", path.display());
    path
}

fn main() {
    let a = args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus = corpus(&root);
    let targets: Vec<_> = targets::TARGETS
        .iter()
        .filter(|(n, _)| a.target.as_deref().is_none_or(|t| t == *n))
        .collect();
    if targets.is_empty() || corpus.is_empty() {
        eprintln!("no such target or empty corpus");
        std::process::exit(64);
    }
    // Panics are findings, not the end of the run.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let (mut execs, mut found, mut slowest) = (0u64, 0u64, Duration::ZERO);
    while Instant::now() < deadline {
        let input = mutate(&mut rng, &corpus);
        for (name, f) in &targets {
            let t = Instant::now();
            let ok = std::panic::catch_unwind(|| f(&input)).is_ok();
            let took = t.elapsed();
            slowest = slowest.max(took);
            execs += 1;
            if !ok {
                found += 1;
                save(&root, name, &input, "PANIC");
            } else if took > Duration::from_millis(a.slow_ms) {
                found += 1;
                save(
                    &root,
                    name,
                    &input,
                    &format!("SLOW ({} ms)", took.as_millis()),
                );
            }
        }
    }
    println!(
        "fuzz: {execs} executions over {} targets in {} s (seed {}), {found} findings, slowest {} ms",
        targets.len(),
        a.seconds,
        a.seed,
        slowest.as_millis()
    );
    if found > 0 {
        std::process::exit(1);
    }
}
