//! Diagnostic logging on stderr (`tracing`).
//!
//! Which filter and format apply, first match wins:
//! - filter: `--log-level`, then `TRIPLINE_LOG`, then `RUST_LOG`, then `info`;
//! - format: `--log-format`, then `TRIPLINE_LOG_FORMAT`, then `text`.
//!
//! Colour (ANSI escapes) only in `text` format, only when stderr is a
//! terminal, and never when `NO_COLOR` is set to a non-empty value
//! (<https://no-color.org>). A pipe, a file or a log collector never sees an
//! escape byte from tripline itself.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// The logging flags, accepted by every subcommand.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LogArgs {
    /// Log format on stderr [default: $TRIPLINE_LOG_FORMAT, else text].
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `warn` or `info,tripline_kafka=debug`
    /// [default: $TRIPLINE_LOG, else $RUST_LOG, else info].
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
}

/// What [`init`] decided, computed without touching the process (testable).
#[derive(Debug, PartialEq, Eq)]
pub struct Choice {
    pub filter: String,
    /// Where the filter came from (for the one warning an invalid one gets).
    pub filter_source: &'static str,
    pub format: LogFormat,
    pub ansi: bool,
    /// A problem to report once logging is up (never fatal for env vars).
    pub warning: Option<String>,
}

/// Decides filter, format and colour from the flags and an environment lookup.
pub fn choose(args: &LogArgs, env: impl Fn(&str) -> Option<String>, stderr_is_tty: bool) -> Choice {
    let mut warning = None;
    let (filter, filter_source) = if let Some(f) = &args.log_level {
        (f.clone(), "--log-level")
    } else if let Some(f) = env("TRIPLINE_LOG").filter(|v| !v.is_empty()) {
        (f, "TRIPLINE_LOG")
    } else if let Some(f) = env("RUST_LOG").filter(|v| !v.is_empty()) {
        (f, "RUST_LOG")
    } else {
        ("info".to_string(), "default")
    };
    let format = match args.log_format {
        Some(f) => f,
        None => match env("TRIPLINE_LOG_FORMAT").as_deref() {
            None | Some("") | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => {
                warning =
                    Some("TRIPLINE_LOG_FORMAT must be `text` or `json`; using text".to_string());
                LogFormat::Text
            }
        },
    };
    let no_color = env("NO_COLOR").is_some_and(|v| !v.is_empty());
    Choice {
        filter,
        filter_source,
        ansi: format == LogFormat::Text && stderr_is_tty && !no_color,
        format,
        warning,
    }
}

/// Installs the global subscriber. An invalid `--log-level` is an error (the
/// user typed it); an invalid environment filter falls back to `info` with a
/// warning, so a stray variable never stops the service.
pub fn init(args: &LogArgs) -> Result<(), String> {
    let choice = choose(
        args,
        |k| std::env::var(k).ok(),
        std::io::stderr().is_terminal(),
    );
    let mut warning = choice.warning;
    let filter = match EnvFilter::try_new(&choice.filter) {
        Ok(f) => f,
        Err(e) if choice.filter_source == "--log-level" => {
            return Err(format!("--log-level: invalid filter: {e}"));
        }
        Err(e) => {
            warning = Some(format!(
                "{}: invalid filter ({e}); using info",
                choice.filter_source
            ));
            EnvFilter::new("info")
        }
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(choice.ansi);
    match choice.format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn filter_precedence_is_flag_then_tripline_log_then_rust_log_then_info() {
        let all = [("TRIPLINE_LOG", "debug"), ("RUST_LOG", "warn")];
        let flag = LogArgs {
            log_level: Some("error".into()),
            ..Default::default()
        };
        assert_eq!(choose(&flag, env(&all), false).filter, "error");
        assert_eq!(
            choose(&LogArgs::default(), env(&all), false).filter,
            "debug"
        );
        let c = choose(&LogArgs::default(), env(&[("RUST_LOG", "warn")]), false);
        assert_eq!((c.filter.as_str(), c.filter_source), ("warn", "RUST_LOG"));
        let c = choose(&LogArgs::default(), env(&[("TRIPLINE_LOG", "")]), false);
        assert_eq!((c.filter.as_str(), c.filter_source), ("info", "default"));
    }

    #[test]
    fn colour_only_for_text_on_a_terminal_without_no_color() {
        let text = LogArgs::default();
        assert!(choose(&text, env(&[]), true).ansi);
        assert!(
            !choose(&text, env(&[]), false).ansi,
            "a pipe gets no colour"
        );
        assert!(!choose(&text, env(&[("NO_COLOR", "1")]), true).ansi);
        assert!(
            choose(&text, env(&[("NO_COLOR", "")]), true).ansi,
            "empty NO_COLOR is unset"
        );
        let json = LogArgs {
            log_format: Some(LogFormat::Json),
            ..Default::default()
        };
        assert!(!choose(&json, env(&[]), true).ansi);
    }

    #[test]
    fn format_flag_overrides_env_and_a_bad_env_value_warns() {
        let c = choose(
            &LogArgs::default(),
            env(&[("TRIPLINE_LOG_FORMAT", "json")]),
            false,
        );
        assert_eq!(c.format, LogFormat::Json);
        let flag = LogArgs {
            log_format: Some(LogFormat::Text),
            ..Default::default()
        };
        let c = choose(&flag, env(&[("TRIPLINE_LOG_FORMAT", "json")]), false);
        assert_eq!(c.format, LogFormat::Text);
        let c = choose(
            &LogArgs::default(),
            env(&[("TRIPLINE_LOG_FORMAT", "xml")]),
            false,
        );
        assert_eq!(c.format, LogFormat::Text);
        assert!(c.warning.is_some());
    }
}
