//! `tripline replay`: files (or stdin) in, alerts as JSONL on stdout in
//! detection order, a summary on stderr. Deterministic: the same input and
//! config give byte-identical stdout.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use tripline_engine::{AlertKind, Engine, Outputs};
use tripline_ingest::{read_events, Format, RejectReason};

use crate::{Common, FormatArgs};

/// At most this many rejected lines are described individually on stderr;
/// the rest are only counted (bad input is counted and rate-limited).
const MAX_REJECT_LOGS: u64 = 10;

/// What a replay saw, for the summary and tests.
#[derive(Debug, Default)]
pub struct ReplayStats {
    pub lines: u64,
    pub events: u64,
    pub rejected: BTreeMap<&'static str, u64>,
    /// Optional fields a mapping profile dropped (failed cast), in events
    /// that were still processed.
    pub dropped_fields: u64,
    pub alerts: BTreeMap<AlertKind, u64>,
    pub resolved: u64,
}

pub fn main(
    common: &Common,
    fmt: &FormatArgs,
    files: &[PathBuf],
    parse_only: bool,
) -> anyhow::Result<ExitCode> {
    let (settings, registry) = super::load(common)?;
    let format = super::load_format(fmt)?;
    // Open every file up front: an unreadable file is a clear error before
    // any output, not a half-done replay.
    let mut inputs: Vec<(String, Box<dyn Read>)> = Vec::new();
    if files.is_empty() || files.iter().any(|f| f == Path::new("-")) && files.len() == 1 {
        inputs.push(("<stdin>".into(), Box::new(io::stdin())));
    } else {
        for f in files {
            if f == Path::new("-") {
                inputs.push(("<stdin>".into(), Box::new(io::stdin())));
                continue;
            }
            let h = File::open(f).with_context(|| format!("cannot open {}", f.display()))?;
            inputs.push((f.display().to_string(), Box::new(h)));
        }
    }
    let mut engine = Engine::new(settings.engine_config(), registry);
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let started = Instant::now();
    let mut stats = ReplayStats::default();
    for (name, input) in inputs {
        let reader = BufReader::with_capacity(1 << 20, input);
        if parse_only {
            parse_floor(&format, reader, &mut stats).with_context(|| format!("reading {name}"))?;
        } else {
            replay_reader(&mut engine, &format, reader, &name, &mut out, &mut stats)
                .with_context(|| format!("reading {name}"))?;
        }
    }
    out.flush().context("writing alerts to stdout")?;
    let secs = started.elapsed().as_secs_f64();
    print_summary(&stats, &engine, secs);
    Ok(ExitCode::SUCCESS)
}

/// Replays one reader in `format`; alerts are written to `out` as they
/// are detected.
pub fn replay_reader(
    engine: &mut Engine,
    format: &Format,
    input: impl BufRead,
    name: &str,
    out: &mut impl Write,
    stats: &mut ReplayStats,
) -> anyhow::Result<()> {
    let mut outputs = Outputs::default();
    let mut write_err: Option<io::Error> = None;
    let read = read_events(format, input, |lineno, r| {
        match r {
            Ok(raw) => {
                stats.events += 1;
                stats.dropped_fields += u64::from(raw.dropped_fields());
                engine.process(&raw.event(), &mut outputs);
            }
            Err(rej) => count_reject(stats, name, lineno, &rej),
        }
        if !outputs.is_empty() {
            for a in outputs.alerts.drain(..) {
                *stats.alerts.entry(a.kind).or_insert(0) += 1;
                if write_err.is_none() {
                    if let Err(e) = serde_json::to_writer(&mut *out, &a)
                        .map_err(io::Error::from)
                        .and_then(|()| out.write_all(b"\n"))
                    {
                        write_err = Some(e);
                    }
                }
            }
            stats.resolved += outputs.resolved.len() as u64;
            outputs.resolved.clear();
        }
    })?;
    stats.lines += read.records;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    Ok(())
}

/// Counts a reject; the first few are described (escaped) on stderr.
pub fn count_reject(
    stats: &mut ReplayStats,
    name: &str,
    lineno: u64,
    rej: &tripline_ingest::Reject,
) {
    *stats.rejected.entry(rej.reason.as_str()).or_insert(0) += 1;
    let total: u64 = stats.rejected.values().sum();
    if total <= MAX_REJECT_LOGS {
        tracing::warn!(file = name, line = lineno, reason = rej.reason.as_str(), detail = ?rej.detail, "Rejected event.");
    } else if total == MAX_REJECT_LOGS + 1 {
        tracing::warn!("Further rejected events are counted, not logged.");
    }
}

/// The benchmark floor: the same reading and decoding, nothing else.
fn parse_floor(
    format: &Format,
    input: impl BufRead,
    stats: &mut ReplayStats,
) -> anyhow::Result<()> {
    let read = read_events(format, input, |_, r| match r {
        Ok(raw) => stats.events += u64::from(std::hint::black_box(raw.event()).status > 0),
        Err(rej) => *stats.rejected.entry(rej.reason.as_str()).or_insert(0) += 1,
    })?;
    stats.lines += read.records;
    Ok(())
}

fn print_summary(stats: &ReplayStats, engine: &Engine, secs: f64) {
    let es = engine.stats();
    let rejected: u64 = stats.rejected.values().sum();
    let mut s = format!(
        "tripline replay: {} lines, {} events, {} rejected, {} late, {} alerts, {} resolved, {} integrations tracked; {:.2}s ({:.0} events/s)\n",
        stats.lines,
        stats.events,
        rejected,
        es.late_events,
        stats.alerts.values().sum::<u64>(),
        stats.resolved,
        es.tracked_integrations,
        secs,
        stats.lines as f64 / secs.max(1e-9)
    );
    if stats.dropped_fields > 0 {
        s.push_str(&format!(
            "  dropped optional fields  {}\n",
            stats.dropped_fields
        ));
    }
    for r in RejectReason::ALL {
        if let Some(n) = stats.rejected.get(r.as_str()) {
            s.push_str(&format!("  rejected {:<16} {n}\n", r.as_str()));
        }
    }
    for k in AlertKind::ALL {
        if let Some(n) = stats.alerts.get(&k) {
            s.push_str(&format!("  alerts   {:<20} {n}\n", k.as_str()));
        }
    }
    eprint!("{s}");
}
