//! `tripline score-series`: anomaly scores for univariate `timestamp,value`
//! CSV series (the Numenta Anomaly Benchmark layout), one
//! `timestamp,value,anomaly_score` row per input row.
//!
//! The I/O edge of [`tripline_engine::series`]: files and directories in,
//! CSV out. A directory is a data root: every `*.csv` under it (under its
//! `data/` folder when it has one, as a NAB checkout does) is scored and
//! written to `--out` mirroring the layout, `OUT/<category>/tripline_<file>`.
//! A file is written to `OUT/<its folder>/tripline_<file>`, or to stdout when
//! it is the only input and there is no `--out`.
//!
//! Bad rows are skipped (no output row) and reported on stderr with their
//! file and line — the first few per file, then a count — and processing goes
//! on; the exit status is 65 when anything was refused.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use tripline_engine::series::{SeriesConfig, SeriesScorer};
use tripline_ingest::lines::{read_bounded_line, Line};
use tripline_ingest::series::{parse_header, parse_row, SeriesCsvError};

use super::ConfigProblem;

/// Output file prefix NAB's scorer expects (`<detector>_<file>`).
pub const DETECTOR: &str = "tripline";
/// Longest line read; a longer one is refused without being buffered.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Row errors reported per file before only counting.
const MAX_REPORTED_PER_FILE: u64 = 10;
/// sysexits EX_DATAERR: some input was refused.
const EXIT_DATA: u8 = 65;

/// `tripline score-series` arguments.
#[derive(clap::Args, Debug)]
pub struct ScoreSeriesArgs {
    /// Config file (TOML; its `[series]` section). TRIPLINE__SERIES__KEY env
    /// vars override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output root: `OUT/<category>/tripline_<file>.csv`. Without it a single
    /// file is written to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// CSV files, or data roots scanned for `*.csv`.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// What scoring one input produced.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileStats {
    pub rows: u64,
    pub refused: u64,
}

pub fn main(args: &ScoreSeriesArgs) -> anyhow::Result<ExitCode> {
    let settings = crate::settings::load(args.config.as_deref()).map_err(|e| {
        ConfigProblem(format!(
            "{} problem(s):\n  - {}",
            e.0.len(),
            e.0.iter()
                .map(|p| format!("config: {p}"))
                .collect::<Vec<_>>()
                .join("\n  - ")
        ))
    })?;
    let cfg = settings.series;
    let jobs = plan(&args.paths, args.out.as_deref())?;
    let stderr = io::stderr();
    let mut err = stderr.lock();
    let (mut files, mut rows, mut refused, mut failed) = (0u64, 0u64, 0u64, 0u64);
    for (input, output) in &jobs {
        let name = input.display().to_string();
        let result = match output {
            Some(path) => score_to_file(&cfg, input, path, &name, &mut err),
            None => {
                let stdout = io::stdout();
                let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
                open(input).and_then(|r| {
                    let s = score_reader(&cfg, r, &mut out, &name, &mut err)?;
                    out.flush().context("writing stdout")?;
                    Ok(s)
                })
            }
        };
        match result {
            Ok(s) => {
                files += 1;
                rows += s.rows;
                refused += s.refused;
            }
            Err(e) => {
                failed += 1;
                writeln!(err, "tripline score-series: {e:#}").ok();
            }
        }
    }
    writeln!(
        err,
        "tripline score-series: {files} series, {rows} rows scored, {refused} rows refused, {failed} files failed"
    )
    .ok();
    Ok(if refused > 0 || failed > 0 {
        ExitCode::from(EXIT_DATA)
    } else {
        ExitCode::SUCCESS
    })
}

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 16, f))
}

fn score_to_file(
    cfg: &SeriesConfig,
    input: &Path,
    output: &Path,
    name: &str,
    err: &mut impl Write,
) -> anyhow::Result<FileStats> {
    let reader = open(input)?;
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let f = File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let mut out = BufWriter::with_capacity(1 << 16, f);
    let s = score_reader(cfg, reader, &mut out, name, err)?;
    out.flush()
        .with_context(|| format!("writing {}", output.display()))?;
    Ok(s)
}

/// Scores one CSV series from `input` into `out`; row problems go to `err`.
pub fn score_reader(
    cfg: &SeriesConfig,
    mut input: impl BufRead,
    out: &mut impl Write,
    name: &str,
    err: &mut impl Write,
) -> anyhow::Result<FileStats> {
    let mut buf = Vec::with_capacity(256);
    let mut stats = FileStats::default();
    let header = read_bounded_line(&mut input, &mut buf, MAX_LINE_BYTES)
        .with_context(|| format!("reading {name}"))?;
    if header != Line::Ok {
        bail!("{name}: {}", SeriesCsvError::Header);
    }
    let cols = parse_header(&buf).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    out.write_all(b"timestamp,value,anomaly_score\n")
        .context("writing output")?;
    let mut scorer = SeriesScorer::new(cfg);
    let mut line_no: u64 = 1;
    let mut line = Vec::with_capacity(128);
    loop {
        let l = read_bounded_line(&mut input, &mut buf, MAX_LINE_BYTES)
            .with_context(|| format!("reading {name}"))?;
        line_no += 1;
        let parsed = match l {
            Line::Eof => break,
            Line::Oversize { .. } => Err(tripline_ingest::series::RowError::TooLong),
            Line::Ok => parse_row(&buf, cols),
        };
        match parsed {
            Ok(None) => {}
            Ok(Some(row)) => {
                let score = scorer.push(row.ts_ms, row.value);
                line.clear();
                line.extend_from_slice(row.timestamp);
                line.push(b',');
                line.extend_from_slice(row.value_text);
                line.push(b',');
                write_score(&mut line, score);
                line.push(b'\n');
                out.write_all(&line).context("writing output")?;
                stats.rows += 1;
            }
            Err(kind) => {
                stats.refused += 1;
                if stats.refused <= MAX_REPORTED_PER_FILE {
                    let e = SeriesCsvError::Row {
                        line: line_no,
                        kind,
                    };
                    writeln!(err, "tripline score-series: {name}: {e}").ok();
                }
            }
        }
    }
    if stats.refused > MAX_REPORTED_PER_FILE {
        writeln!(
            err,
            "tripline score-series: {name}: {} more refused rows not shown",
            stats.refused - MAX_REPORTED_PER_FILE
        )
        .ok();
    }
    Ok(stats)
}

/// Scores are in [0, 1]; six decimals are more resolution than any
/// threshold needs and keep the files small.
fn write_score(out: &mut Vec<u8>, score: f64) {
    let micro = (score.clamp(0.0, 1.0) * 1e6).round() as u32;
    if micro >= 1_000_000 {
        out.extend_from_slice(b"1");
        return;
    }
    out.extend_from_slice(b"0.");
    let mut digits = [b'0'; 6];
    let mut m = micro;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    out.extend_from_slice(&digits);
}

/// Input file → output file (`None`: stdout).
fn plan(paths: &[PathBuf], out: Option<&Path>) -> anyhow::Result<Vec<(PathBuf, Option<PathBuf>)>> {
    let mut jobs = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot open {}", p.display()))?;
        if meta.is_dir() {
            let Some(out) = out else {
                return Err(
                    ConfigProblem(format!("{}: a directory needs --out DIR", p.display())).into(),
                );
            };
            let root = if p.join("data").is_dir() {
                p.join("data")
            } else {
                p.clone()
            };
            let mut found = Vec::new();
            walk(&root, &mut found)?;
            found.sort();
            for f in found {
                let rel = f.strip_prefix(&root).unwrap_or(&f);
                jobs.push((f.clone(), Some(output_path(out, rel))));
            }
        } else {
            let rel = match (p.parent().and_then(Path::file_name), p.file_name()) {
                (Some(dir), Some(file)) => Path::new(dir).join(file),
                (None, Some(file)) => PathBuf::from(file),
                _ => bail!("{}: not a file name", p.display()),
            };
            jobs.push((p.clone(), out.map(|o| output_path(o, &rel))));
        }
    }
    if out.is_none() && jobs.len() > 1 {
        return Err(ConfigProblem("several series need --out DIR".into()).into());
    }
    Ok(jobs)
}

/// `OUT/<dirs of rel>/tripline_<file of rel>`.
fn output_path(out: &Path, rel: &Path) -> PathBuf {
    let mut p = out.join(rel);
    if let Some(file) = rel.file_name() {
        let mut name = std::ffi::OsString::from(format!("{DETECTOR}_"));
        name.push(file);
        p.set_file_name(name);
    }
    p
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        let path = e.path();
        let ty = e
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if ty.is_dir() {
            walk(&path, found)?;
        } else if ty.is_file()
            && path
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("csv"))
        {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_print_with_six_decimals() {
        let f = |s: f64| {
            let mut v = Vec::new();
            write_score(&mut v, s);
            String::from_utf8(v).unwrap_or_default()
        };
        assert_eq!(f(0.0), "0.000000");
        assert_eq!(f(0.5), "0.500000");
        assert_eq!(f(0.1234567), "0.123457");
        assert_eq!(f(0.9999999), "1");
        assert_eq!(f(2.0), "1");
    }

    #[test]
    fn outputs_mirror_the_layout_with_the_detector_prefix() {
        assert_eq!(
            output_path(Path::new("/o"), Path::new("realAdExchange/x.csv")),
            PathBuf::from("/o/realAdExchange/tripline_x.csv")
        );
    }
}
