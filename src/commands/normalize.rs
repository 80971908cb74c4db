//! `tripline normalize` and `tripline formats`: see what a mapping makes of
//! your logs before trusting it.
//!
//! Canonical events go to stdout as JSONL; every reject goes to stderr as
//! one JSON object (`file`, `line`, `reason`, `detail`), so nothing from the
//! input reaches a terminal unescaped. A summary line ends stderr.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use tripline_ingest::read_events;

use crate::FormatArgs;

pub fn main(fmt: &FormatArgs, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let format = super::load_format(fmt)?;
    let mut inputs: Vec<(String, Box<dyn Read>)> = Vec::new();
    if files.is_empty() {
        inputs.push(("<stdin>".into(), Box::new(io::stdin())));
    }
    for f in files {
        if f.as_os_str() == "-" {
            inputs.push(("<stdin>".into(), Box::new(io::stdin())));
            continue;
        }
        let h = File::open(f).with_context(|| format!("cannot open {}", f.display()))?;
        inputs.push((f.display().to_string(), Box::new(h)));
    }
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let stderr = io::stderr();
    let mut err = BufWriter::new(stderr.lock());
    let (mut events, mut dropped) = (0u64, 0u64);
    let mut rejected: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut buf = Vec::with_capacity(1024);
    let mut io_err: Option<io::Error> = None;
    for (name, input) in inputs {
        read_events(
            &format,
            BufReader::with_capacity(1 << 20, input),
            |line, r| {
                let res = match r {
                    Ok(ev) => {
                        events += 1;
                        dropped += u64::from(ev.dropped_fields());
                        buf.clear();
                        ev.write_canonical_json(&mut buf);
                        buf.push(b'\n');
                        out.write_all(&buf)
                    }
                    Err(rej) => {
                        *rejected.entry(rej.reason.as_str()).or_insert(0) += 1;
                        let j = serde_json::json!({
                            "file": name, "line": line,
                            "reason": rej.reason.as_str(), "detail": rej.detail,
                        });
                        writeln!(err, "{j}")
                    }
                };
                if let (Err(e), None) = (res, &io_err) {
                    io_err = Some(e);
                }
            },
        )
        .with_context(|| format!("reading {name}"))?;
        if let Some(e) = io_err.take() {
            return Err(e).context("writing output");
        }
    }
    out.flush().context("writing stdout")?;
    let n_rej: u64 = rejected.values().sum();
    let by: Vec<String> = rejected.iter().map(|(k, v)| format!("{k}={v}")).collect();
    writeln!(
        err,
        "tripline normalize ({}): {events} events, {n_rej} rejected{}{}",
        format.name(),
        if by.is_empty() {
            String::new()
        } else {
            format!(" ({})", by.join(", "))
        },
        if dropped > 0 {
            format!(", {dropped} optional fields dropped")
        } else {
            String::new()
        },
    )
    .context("writing stderr")?;
    err.flush().context("writing stderr")?;
    Ok(ExitCode::SUCCESS)
}

pub fn formats() -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    for p in tripline_ingest::mapping::builtin_profiles() {
        writeln!(out, "{:<20} {:<5} {}", p.name, p.decoder, p.description)?;
    }
    Ok(ExitCode::SUCCESS)
}
