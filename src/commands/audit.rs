//! `tripline audit`: replays access logs through the engine, then prints the
//! integration audit (unregistered integrations, grants to tighten, uses
//! without a grant, dormant integrations and keys, keys to rotate, revoked
//! credentials still in use, risk) as a table, JSON or Markdown.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use tripline_audit::{AuditOptions, Format};
use tripline_engine::time::parse_rfc3339;
use tripline_engine::Engine;

use super::replay::{replay_reader, ReplayStats};
use crate::Common;

/// `tripline audit` arguments.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub common: Common,
    /// Access-log files (JSONL); none or `-` = stdin.
    pub files: Vec<PathBuf>,
    /// The instant the audit is for (RFC 3339). Default: the latest event time seen.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Output format: table, json or markdown.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// A grant is unused when nothing matched it in this many days.
    #[arg(long, default_value_t = tripline_audit::report::DEFAULT_HORIZON_DAYS)]
    pub horizon_days: u32,
    /// An integration or key is dormant after this many days without use.
    #[arg(long, default_value_t = tripline_audit::report::DEFAULT_DORMANT_DAYS)]
    pub dormant_days: u32,
    /// A key is due for rotation at this age (registry `created`).
    #[arg(long, default_value_t = tripline_audit::report::DEFAULT_ROTATION_DAYS)]
    pub rotation_days: u32,
}

pub fn main(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    let Some(format) = Format::parse(&args.format) else {
        bail!(
            "--format {:?}: expected table, json or markdown",
            args.format
        );
    };
    let as_of = match args.as_of.as_deref() {
        None => None,
        Some(s) => Some(
            parse_rfc3339(s)
                .with_context(|| format!("--as-of {s:?} is not an RFC 3339 instant"))?,
        ),
    };
    let (settings, registry) = super::load(&args.common)?;
    let mut inputs: Vec<(String, Box<dyn Read>)> = Vec::new();
    if args.files.is_empty() {
        inputs.push(("<stdin>".into(), Box::new(io::stdin())));
    }
    for f in &args.files {
        if f == Path::new("-") {
            inputs.push(("<stdin>".into(), Box::new(io::stdin())));
            continue;
        }
        let h = File::open(f).with_context(|| format!("cannot open {}", f.display()))?;
        inputs.push((f.display().to_string(), Box::new(h)));
    }
    let mut engine = Engine::new(settings.engine_config(), registry);
    let mut stats = ReplayStats::default();
    for (name, input) in inputs {
        let reader = BufReader::with_capacity(1 << 20, input);
        replay_reader(
            &mut engine,
            &tripline_ingest::Format::Canonical,
            reader,
            &name,
            &mut io::sink(),
            &mut stats,
        )
        .with_context(|| format!("reading {name}"))?;
    }
    let as_of = match as_of {
        Some(t) => t,
        None if stats.events > 0 => engine.stats().stream_time_ms,
        None => bail!("no events were read: pass --as-of to audit the registry alone"),
    };
    let report = tripline_audit::audit(
        &engine,
        &AuditOptions {
            as_of_ms: as_of,
            horizon_days: args.horizon_days,
            dormant_days: args.dormant_days,
            rotation_days: args.rotation_days,
        },
    );
    let text = tripline_audit::render(&report, format).context("rendering the audit")?;
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing the audit to stdout")?;
    let rejected: u64 = stats.rejected.values().sum();
    eprintln!(
        "tripline audit: {} events, {} rejected, {} integrations",
        stats.events,
        rejected,
        report.integrations.len()
    );
    Ok(ExitCode::SUCCESS)
}
