//! `tripline`: streaming API-traffic anomaly detection for CRM integrations.
//!
//! The binary is thin: parse arguments, init tracing, load config (exit 64 on
//! a config problem), build the pieces from the library crates, run until done
//! or signalled, drain.
#![forbid(unsafe_code)]

mod commands;
mod logging;
mod settings;
#[cfg(test)]
mod settings_props;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for unusable configuration (sysexits EX_USAGE/EX_CONFIG family).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "tripline",
    version,
    about = "Streaming API-traffic anomaly detector for CRM integrations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: logging::LogArgs,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Config file (TOML). Defaults apply for anything it leaves out;
    /// TRIPLINE__SECTION__KEY env vars override both.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Integration registry (TOML, `docs/specs/registry.md`).
    #[arg(long, global = true)]
    pub registry: Option<PathBuf>,
}

/// How input events are read (docs/formats.md).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FormatArgs {
    /// Input format: `canonical` (default) or a built-in vendor profile
    /// (`tripline formats` lists them).
    #[arg(long)]
    pub format: Option<String>,
    /// A mapping profile (TOML). With --format, or with `extends = "NAME"`
    /// in the file, it overrides that built-in key by key.
    #[arg(long)]
    pub mapping: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay access-log files (JSONL; none or `-` = stdin); alerts as JSONL on stdout.
    Replay {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        fmt: FormatArgs,
        /// Input files.
        files: Vec<PathBuf>,
        /// Benchmark floor: only deserialize each line into the event type
        /// (no detection, no output). See BENCHMARKS.md.
        #[arg(long, hide = true)]
        parse_only: bool,
        /// Threads to parse on and engines to spread the integrations over
        /// (default 1). Output is byte-identical to one thread's for events
        /// within `max_future_skew` of the stream (see BENCHMARKS.md).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: Option<u16>,
    },
    /// Run the Kafka sidecar service until SIGTERM/SIGINT.
    Run {
        #[command(flatten)]
        common: Common,
        /// Seed a new deployment: partitions without a checkpoint learn from
        /// the retained topic from this RFC 3339 time, alerts suppressed,
        /// then go live (same as `kafka.seed_from`).
        #[arg(long)]
        seed_from: Option<String>,
        /// Seed from exported history first: these files (read with
        /// --format/--mapping, e.g. a month of Salesforce ELF CSVs) are learnt
        /// with alerts suppressed before the sidecar goes live on Kafka.
        #[arg(long, num_args = 1..)]
        seed_file: Vec<PathBuf>,
        /// Format of the --seed-file files.
        #[command(flatten)]
        fmt: FormatArgs,
    },
    /// Map vendor logs to canonical events: JSONL on stdout, each reject
    /// (with its reason, escaped) on stderr. Files, or stdin when none.
    Normalize {
        #[command(flatten)]
        fmt: FormatArgs,
        files: Vec<PathBuf>,
    },
    /// List the built-in input formats, one line each.
    Formats,
    /// Everything on an embedded Kafka cluster with simulated traffic.
    Demo(commands::demo::DemoArgs),
    /// Audit integrations from access logs: unregistered ones, grants to
    /// tighten, uses without a grant, dormant items, stale and revoked keys.
    Audit(commands::audit::AuditArgs),
    /// Score univariate `timestamp,value` CSV series (NAB layout): writes
    /// `timestamp,value,anomaly_score` per row, causally.
    ScoreSeries(commands::score_series::ScoreSeriesArgs),
    /// Validate the config and registry, printing every problem.
    CheckConfig {
        #[command(flatten)]
        common: Common,
    },
    /// Write simulated CRM traffic with labelled incidents.
    Simulate {
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 36)]
        days: u32,
        #[arg(long, default_value_t = 30)]
        integrations: u32,
        /// Multiplies every benign rate.
        #[arg(long, default_value_t = 1.0)]
        rate_scale: f64,
        #[arg(long)]
        out: PathBuf,
        /// `kong`: also write the events as Kong kafka-log records
        /// (`events.kong.jsonl`) and the mapping that reads them back.
        #[arg(long)]
        format: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(&cli.log) {
        eprintln!("tripline: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let result = match cli.command {
        Command::Replay {
            common,
            fmt,
            files,
            parse_only,
            threads,
        } => commands::replay::main(&common, &fmt, &files, parse_only, threads.map(usize::from)),
        Command::Run {
            common,
            seed_from,
            seed_file,
            fmt,
        } => commands::run::main(&common, seed_from, &seed_file, &fmt),
        Command::Normalize { fmt, files } => commands::normalize::main(&fmt, &files),
        Command::Formats => commands::normalize::formats(),
        Command::Demo(args) => commands::demo::main(&args),
        Command::Audit(args) => commands::audit::main(&args),
        Command::ScoreSeries(args) => commands::score_series::main(&args),
        Command::CheckConfig { common } => commands::check_config(&common),
        Command::Simulate {
            seed,
            days,
            integrations,
            rate_scale,
            out,
            format,
        } => commands::simulate(
            seed,
            days,
            integrations,
            rate_scale,
            &out,
            format.as_deref(),
        ),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if let Some(cfg) = e.downcast_ref::<commands::ConfigProblem>() {
                eprintln!("tripline: {cfg}");
                return ExitCode::from(EXIT_CONFIG);
            }
            eprintln!("tripline: {e:#}");
            ExitCode::FAILURE
        }
    }
}
