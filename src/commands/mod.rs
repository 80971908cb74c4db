//! One module per subcommand; shared loading of config and registry.

pub mod api;
pub mod audit;
pub mod demo;
pub mod normalize;
pub mod replay;
pub mod replay_chunks;
pub mod replay_sharded;
pub mod run;
pub mod score_series;
pub mod to_kong;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use tripline_engine::Registry;

use crate::settings::{self, Settings};
use crate::{Common, FormatArgs};

/// Configuration or registry that cannot be used: exit 64 with every problem.
#[derive(Debug)]
pub struct ConfigProblem(pub String);

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigProblem {}

/// Loads settings and the registry (from `--registry` or `registry.path`),
/// collecting the problems of both before failing.
pub fn load(common: &Common) -> anyhow::Result<(Settings, Option<Registry>)> {
    let mut problems = Vec::new();
    let settings = match settings::load(common.config.as_deref()) {
        Ok(s) => Some(s),
        Err(e) => {
            problems.extend(e.0.into_iter().map(|p| format!("config: {p}")));
            None
        }
    };
    let path = common
        .registry
        .clone()
        .or_else(|| settings.as_ref().and_then(|s| s.registry.path.clone()));
    let registry = match path {
        None => None,
        Some(p) => match tripline_ingest::load_registry(&p) {
            Ok(r) => Some(r),
            Err(e) => {
                problems.extend(e.problems.into_iter().map(|p| format!("registry: {p}")));
                None
            }
        },
    };
    match settings {
        Some(s) if problems.is_empty() => Ok((s, registry)),
        _ => {
            let n = problems.len();
            Err(ConfigProblem(format!("{n} problem(s):\n  - {}", problems.join("\n  - "))).into())
        }
    }
}

/// The input format named by `--format` / `--mapping` (a problem is a
/// config problem: exit 64 with every problem of the profile).
pub fn load_format(fmt: &FormatArgs) -> anyhow::Result<tripline_ingest::Format> {
    tripline_ingest::load_format(fmt.format.as_deref(), fmt.mapping.as_deref()).map_err(|e| {
        ConfigProblem(format!(
            "{} problem(s) in mapping `{}`:\n  - {}",
            e.problems.len(),
            e.profile,
            e.problems.join("\n  - ")
        ))
        .into()
    })
}

pub fn check_config(common: &Common) -> anyhow::Result<ExitCode> {
    let (_, registry) = load(common)?;
    let n = registry.as_ref().map_or(0, |r| r.integrations().len());
    println!(
        "config ok{}",
        if registry.is_some() {
            format!("; registry ok ({n} integrations)")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub fn simulate(
    seed: u64,
    days: u32,
    integrations: u32,
    rate_scale: f64,
    out: &Path,
    format: Option<&str>,
) -> anyhow::Result<ExitCode> {
    if !matches!(format, None | Some("canonical") | Some("kong")) {
        return Err(ConfigProblem(format!(
            "--format {format:?}: simulate writes canonical or kong"
        ))
        .into());
    }
    let cfg = tripline_sim::SimConfig {
        seed,
        days,
        integrations,
        rate_scale,
        ..Default::default()
    };
    let s = tripline_sim::simulate(&cfg, out)
        .with_context(|| format!("simulating into {}", out.display()))?;
    eprintln!(
        "wrote {} events (+{} malformed lines), {} incidents over {} integration-days:\n  {}\n  {}\n  {}",
        s.events, s.malformed_lines, s.incidents, s.integration_days, s.events_path, s.registry_path, s.truth_path
    );
    if format == Some("kong") {
        let events = Path::new(&s.events_path);
        let kong = events.with_extension("kong.jsonl");
        let n = to_kong::convert(events, &kong)?;
        let mapping = out.join("kong-sim.toml");
        std::fs::write(&mapping, to_kong::KONG_SIM_MAPPING)
            .with_context(|| format!("writing {}", mapping.display()))?;
        eprintln!(
            "  {} ({n} Kong kafka-log records; read them with --mapping {})",
            kong.display(),
            mapping.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
