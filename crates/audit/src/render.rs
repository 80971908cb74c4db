//! Text renderings of an [`AuditReport`]: a terminal table and Markdown (for a
//! ticket or a pull request). JSON is the report's serde form.

use std::fmt::Write;

use tripline_engine::text::{Safe, MAX_SUMMARY_CHARS};

use crate::report::{AuditReport, Credential, IntegrationAudit, RemoveItem};

/// An input string for the terminal table: controls, bidi and invisible
/// characters as `\u{…}`, capped (ids are at most 256 bytes already; the
/// cap bounds joined lists).
fn t(s: &str) -> String {
    Safe::new(s, MAX_SUMMARY_CHARS).to_string()
}

/// The same for a Markdown cell or line: `|`, newlines and inline HTML too.
fn md(s: &str) -> String {
    Safe::new(s, MAX_SUMMARY_CHARS).markdown().to_string()
}

/// Output format of `tripline audit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Markdown,
}

impl Format {
    /// Parses `table`, `json` or `markdown` (`md`).
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "table" => Some(Format::Table),
            "json" => Some(Format::Json),
            "markdown" | "md" => Some(Format::Markdown),
            _ => None,
        }
    }
}

/// Renders the report in `format`.
pub fn render(report: &AuditReport, format: Format) -> Result<String, serde_json::Error> {
    Ok(match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(report)?;
            s.push('\n');
            s
        }
        Format::Table => table(report),
        Format::Markdown => markdown(report),
    })
}

fn has_findings(a: &IntegrationAudit) -> bool {
    !(a.tighten.is_empty()
        && a.not_granted.is_empty()
        && a.remove.is_empty()
        && a.rotate.is_empty()
        && a.revoked_in_use.is_empty())
}

/// The integration's risk reasons as `reason (+points); …` (empty: none).
fn risk_why(a: &IntegrationAudit) -> String {
    let why: Vec<String> = a
        .risk_reasons
        .iter()
        .map(|x| format!("{} (+{})", x.reason, x.points))
        .collect();
    why.join("; ")
}

/// One line per finding, as `(section, text)`, input strings rendered by `e`.
fn finding_lines(a: &IntegrationAudit, e: fn(&str) -> String) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    for r in &a.revoked_in_use {
        let what = match r.credential {
            Credential::Key => "key",
            Credential::Principal => "principal",
        };
        let verb = match r.credential {
            Credential::Key => "revoked",
            Credential::Principal => "offboarded",
        };
        v.push((
            "revoked",
            format!(
                "{what} {} {verb} {} but used until {}",
                e(&r.id),
                r.revoked_at,
                r.last_used
            ),
        ));
    }
    for n in &a.not_granted {
        v.push((
            "not granted",
            format!(
                "{} used {} times ({} .. {})",
                e(&n.data_type),
                n.count,
                n.first_seen,
                n.last_seen
            ),
        ));
    }
    for r in &a.remove {
        let item = match r.item {
            RemoveItem::Integration => "integration",
            RemoveItem::Key => "key",
        };
        v.push(("remove", format!("{item} {}: {}", e(&r.id), e(&r.reason))));
    }
    for r in &a.rotate {
        v.push((
            "rotate",
            format!(
                "key {} created {} ({} days old)",
                e(&r.key_id),
                r.created,
                r.age_days
            ),
        ));
    }
    for t in &a.tighten {
        let last = t
            .last_used
            .as_deref()
            .map_or("never used".to_owned(), |l| format!("last used {l}"));
        if t.narrow_to.is_empty() {
            v.push(("tighten", format!("drop grant {} ({last})", e(&t.grant))));
        } else {
            v.push((
                "tighten",
                format!(
                    "narrow grant {} to {}",
                    e(&t.grant),
                    e(&t.narrow_to.join(", "))
                ),
            ));
        }
    }
    v
}

fn table(r: &AuditReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "tripline audit as of {} (horizon {} d, dormant {} d, rotation {} d){}",
        r.as_of,
        r.horizon_days,
        r.dormant_days,
        r.rotation_days,
        if r.registry { "" } else { "; no registry" }
    );
    let _ = writeln!(o, "\nUNREGISTERED INTEGRATIONS ({})", r.unregistered.len());
    for u in &r.unregistered {
        let _ = writeln!(
            o,
            "  {:<32} {:>8} calls  {} .. {}  uses {}",
            t(&u.id),
            u.calls,
            u.first_seen,
            u.last_seen,
            t(&u.data_types.join(", "))
        );
    }
    let _ = writeln!(o, "\nINTEGRATIONS BY RISK");
    let _ = writeln!(
        o,
        "  {:>4}  {:<32} {:>8}  WHY",
        "RISK", "INTEGRATION", "CALLS"
    );
    for a in &r.integrations {
        let why = risk_why(a);
        let _ = writeln!(
            o,
            "  {:>4}  {:<32} {:>8}  {}",
            a.risk,
            t(&a.id),
            a.calls,
            if why.is_empty() {
                "-".to_owned()
            } else {
                t(&why)
            }
        );
    }
    for a in r.integrations.iter().filter(|a| has_findings(a)) {
        let _ = writeln!(
            o,
            "\n{} (risk {}{})",
            t(&a.id),
            a.risk,
            a.owner
                .as_deref()
                .map(|x| format!(", owner {}", t(x)))
                .unwrap_or_default()
        );
        for (section, line) in finding_lines(a, t) {
            let _ = writeln!(o, "  {section:<12} {line}");
        }
    }
    o
}

fn markdown(r: &AuditReport) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# tripline audit as of {}\n", r.as_of);
    let _ = writeln!(
        o,
        "Horizon {} days, dormant after {} days, rotation after {} days{}.\n",
        r.horizon_days,
        r.dormant_days,
        r.rotation_days,
        if r.registry { "" } else { "; no registry" }
    );
    let _ = writeln!(
        o,
        "## Unregistered integrations ({})\n",
        r.unregistered.len()
    );
    if !r.unregistered.is_empty() {
        let _ = writeln!(o, "| integration | calls | first seen | last seen | uses |");
        let _ = writeln!(o, "|---|---:|---|---|---|");
        for u in &r.unregistered {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                md(&u.id),
                u.calls,
                u.first_seen,
                u.last_seen,
                md(&u.data_types.join(", "))
            );
        }
        o.push('\n');
    }
    let _ = writeln!(o, "## Integrations by risk\n");
    let _ = writeln!(o, "| risk | integration | calls | why |");
    let _ = writeln!(o, "|---:|---|---:|---|");
    for a in &r.integrations {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            a.risk,
            md(&a.id),
            a.calls,
            md(&risk_why(a))
        );
    }
    for a in r.integrations.iter().filter(|a| has_findings(a)) {
        let _ = writeln!(o, "\n### {} (risk {})\n", md(&a.id), a.risk);
        for (section, line) in finding_lines(a, md) {
            let _ = writeln!(o, "- **{section}**: {line}");
        }
    }
    o
}
