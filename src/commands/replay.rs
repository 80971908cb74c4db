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
use tripline_ingest::lines::{read_bounded_line, Line};
use tripline_ingest::{
    parse_event, read_events, Format, RawEvent, Reject, RejectReason, MAX_EVENT_BYTES,
};

use super::replay_sharded::EngineTotals;
use crate::{Common, FormatArgs};

/// At most this many rejected lines are described individually on stderr;
/// the rest are only counted (bad input is counted and rate-limited).
pub(crate) const MAX_REJECT_LOGS: u64 = 10;
/// Upper bound on `--threads`.
const MAX_THREADS: usize = 256;

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

impl ReplayStats {
    /// Adds another shard's counts (`replay --threads`).
    pub fn merge(&mut self, o: ReplayStats) {
        self.lines += o.lines;
        self.events += o.events;
        for (k, v) in o.rejected {
            *self.rejected.entry(k).or_insert(0) += v;
        }
        for (k, v) in o.alerts {
            *self.alerts.entry(k).or_insert(0) += v;
        }
        self.resolved += o.resolved;
        self.dropped_fields += o.dropped_fields;
    }
}

pub fn main(
    common: &Common,
    fmt: &FormatArgs,
    files: &[PathBuf],
    parse_only: bool,
    threads: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let (settings, registry) = super::load(common)?;
    let format = super::load_format(fmt)?;
    // Open every file up front: an unreadable file is a clear error before
    // any output, not a half-done replay.
    let mut inputs: Vec<(String, Box<dyn Read + Send>)> = Vec::new();
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
    // Default 1: sharded output equals one engine's only for events within
    // `max_future_skew` of each engine's stream time; a sparse shard (few
    // integrations, quiet for longer than the skew) classifies the first
    // events after the gap differently (ARCHITECTURE.md, event time).
    let threads = threads.unwrap_or(1).clamp(1, MAX_THREADS);
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let started = Instant::now();
    let mut stats = ReplayStats::default();
    // Sharding reads canonical lines; a mapped format replays on one thread.
    if threads > 1 && !parse_only && matches!(format, Format::Canonical) {
        let mut config = settings.engine_config();
        // `max_integrations` bounds the process: each shard holds its part.
        config.max_integrations = (config.max_integrations / threads).max(16);
        let make = || Engine::new(config.clone(), registry.clone());
        let totals =
            super::replay_sharded::replay_sharded(&make, inputs, threads, &mut out, &mut stats)?;
        out.flush().context("writing alerts to stdout")?;
        let secs = started.elapsed().as_secs_f64();
        print_summary(&stats, &totals, secs);
        return Ok(ExitCode::SUCCESS);
    }
    let mut engine = Engine::new(settings.engine_config(), registry);
    for (name, input) in inputs {
        let reader = BufReader::with_capacity(1 << 20, input);
        if parse_only {
            parse_floor(&format, reader, &mut stats).with_context(|| format!("reading {name}"))?;
        } else {
            replay_reader(&mut engine, &format, reader, &name, &mut out, &mut stats)
                .with_context(|| format!("reading {name}"))?;
        }
    }
    if !parse_only {
        // The input has ended: alert-budget aggregates of the last window.
        let mut outputs = Outputs::default();
        engine.finish(&mut outputs);
        for a in outputs.alerts.drain(..) {
            *stats.alerts.entry(a.kind).or_insert(0) += 1;
            serde_json::to_writer(&mut out, &a).context("writing alerts to stdout")?;
            out.write_all(b"\n").context("writing alerts to stdout")?;
        }
        stats.resolved += outputs.resolved.len() as u64;
    }
    out.flush().context("writing alerts to stdout")?;
    let secs = started.elapsed().as_secs_f64();
    let mut totals = EngineTotals::default();
    totals.add(&engine.stats());
    print_summary(&stats, &totals, secs);
    Ok(ExitCode::SUCCESS)
}

/// Replays one reader in `format`; alerts are written to `out` as they
/// are detected.
pub fn replay_reader(
    engine: &mut Engine,
    format: &Format,
    mut input: impl BufRead,
    name: &str,
    out: &mut impl Write,
    stats: &mut ReplayStats,
) -> anyhow::Result<()> {
    if let Format::Mapped(_) = format {
        return replay_mapped(engine, format, input, name, out, stats);
    }
    let mut line = Vec::with_capacity(4096);
    let mut outputs = Outputs::default();
    let mut lineno = 0u64;
    loop {
        let read = read_bounded_line(&mut input, &mut line, LINE_LIMIT)?;
        if read == Line::Eof {
            break;
        }
        lineno += 1;
        let text = trim_line(&line);
        if text.is_empty() && read == Line::Ok {
            continue;
        }
        stats.lines += 1;
        match parsed(read, text) {
            Ok(raw) => {
                stats.events += 1;
                engine.process(&raw.event(), &mut outputs);
            }
            Err(rej) => {
                let n = stats.rejected.entry(rej.reason.as_str()).or_insert(0);
                *n += 1;
                let total: u64 = stats.rejected.values().sum();
                if total <= MAX_REJECT_LOGS {
                    tracing::warn!(file = name, line = lineno, reason = rej.reason.as_str(), detail = %rej.detail, "Rejected event.");
                } else if total == MAX_REJECT_LOGS + 1 {
                    tracing::warn!("Further rejected events are counted, not logged.");
                }
            }
        }
        if !outputs.is_empty() {
            for a in outputs.alerts.drain(..) {
                *stats.alerts.entry(a.kind).or_insert(0) += 1;
                serde_json::to_writer(&mut *out, &a)?;
                out.write_all(b"\n")?;
            }
            stats.resolved += outputs.resolved.len() as u64;
            outputs.resolved.clear();
        }
    }
    Ok(())
}

/// A mapped format: records (JSONL lines, which may hold several events,
/// or CSV rows) decoded by the profile, then the same engine.
fn replay_mapped(
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
            Err(rej) => {
                *stats.rejected.entry(rej.reason.as_str()).or_insert(0) += 1;
                let total: u64 = stats.rejected.values().sum();
                if total <= MAX_REJECT_LOGS {
                    tracing::warn!(file = name, line = lineno, reason = rej.reason.as_str(), detail = ?rej.detail, "Rejected event.");
                } else if total == MAX_REJECT_LOGS + 1 {
                    tracing::warn!("Further rejected events are counted, not logged.");
                }
            }
        }
        if !outputs.is_empty() {
            for a in outputs.alerts.drain(..) {
                *stats.alerts.entry(a.kind).or_insert(0) += 1;
                if write_err.is_none() {
                    let w = serde_json::to_writer(&mut *out, &a)
                        .map_err(io::Error::from)
                        .and_then(|()| out.write_all(b"\n"));
                    write_err = w.err();
                }
            }
            stats.resolved += outputs.resolved.len() as u64;
            outputs.resolved.clear();
        }
    })?;
    stats.lines += read.records;
    match write_err {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// The benchmark floor: the same reading and decoding, nothing else.
fn parse_floor(
    format: &Format,
    mut input: impl BufRead,
    stats: &mut ReplayStats,
) -> anyhow::Result<()> {
    if let Format::Mapped(_) = format {
        let read = read_events(format, input, |_, r| match r {
            Ok(raw) => stats.events += u64::from(std::hint::black_box(raw.event()).status > 0),
            Err(rej) => *stats.rejected.entry(rej.reason.as_str()).or_insert(0) += 1,
        })?;
        stats.lines += read.records;
        return Ok(());
    }
    let mut line = Vec::with_capacity(4096);
    loop {
        let read = read_bounded_line(&mut input, &mut line, LINE_LIMIT)?;
        if read == Line::Eof {
            return Ok(());
        }
        let text = trim_line(&line);
        if text.is_empty() && read == Line::Ok {
            continue;
        }
        stats.lines += 1;
        match parsed(read, text) {
            Ok(raw) => stats.events += u64::from(std::hint::black_box(raw.event()).status > 0),
            Err(rej) => *stats.rejected.entry(rej.reason.as_str()).or_insert(0) += 1,
        }
    }
}

/// The most of one line ever held: an event's limit plus a `\r`.
pub(crate) const LINE_LIMIT: usize = MAX_EVENT_BYTES + 1;

/// A line that was too long to hold is `too_large` without being parsed.
fn parsed(read: Line, text: &[u8]) -> Result<RawEvent<'_>, Reject> {
    match read {
        Line::Oversize { len } => Err(Reject::too_large(len)),
        _ => parse_event(text),
    }
}

pub(crate) fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let mut start = 0;
    while start < end && line[start].is_ascii_whitespace() {
        start += 1;
    }
    &line[start..end]
}

fn print_summary(stats: &ReplayStats, totals: &EngineTotals, secs: f64) {
    let rejected: u64 = stats.rejected.values().sum();
    let mut s = format!(
        "tripline replay: {} lines, {} events, {} rejected, {} late, {} alerts, {} resolved, {} integrations tracked; {:.2}s ({:.0} events/s)\n",
        stats.lines,
        stats.events,
        rejected,
        totals.late_events,
        stats.alerts.values().sum::<u64>(),
        stats.resolved,
        totals.tracked_integrations,
        secs,
        stats.lines as f64 / secs.max(1e-9)
    );
    if totals.ts_out_of_range > 0 {
        // Valid events too far from the stream time to move a clock
        // (ARCHITECTURE.md, "event time is not trusted").
        s.push_str(&format!(
            "  ts_out_of_range          {}\n",
            totals.ts_out_of_range
        ));
    }
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
