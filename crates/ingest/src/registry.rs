//! The registry TOML → validated [`Registry`], listing every problem with its line.
//!
//! The file is read as a generic TOML table and checked field by field (rather
//! than with `deny_unknown_fields`, which stops at the first problem), so one
//! run reports every unknown field, invalid CIDR, bad time and duplicate id.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use ipnet::IpNet;
use toml::Value;
use tripline_engine::registry::{
    ActiveHours, Grant, IntegrationDecl, KeyDecl, PrincipalDecl, Sensitivity,
};
use tripline_engine::time::parse_rfc3339;
use tripline_engine::Registry;

/// Every problem found in a registry file.
#[derive(Debug, thiserror::Error)]
pub struct RegistryError {
    pub problems: Vec<String>,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "registry has {} problem(s):", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Reads and validates a registry file.
pub fn load_registry(path: &Path) -> Result<Registry, RegistryError> {
    let text = std::fs::read_to_string(path).map_err(|e| RegistryError {
        problems: vec![format!("{}: cannot read: {e}", path.display())],
    })?;
    parse_registry(&text, &path.display().to_string())
}

// Work done locating lines, so a test can assert that loading is linear
// without timing anything.
#[cfg(test)]
thread_local!(static WORK: std::cell::Cell<usize> = const { std::cell::Cell::new(0) });
#[inline]
fn count_work(_n: usize) {
    #[cfg(test)]
    WORK.with(|w| w.set(w.get() + _n));
}

/// Where each `[[section]]` header is, in order, to locate entries.
///
/// Built in one pass; locating a key then scans only its own entry, so
/// reporting a problem (or recording where an id is) costs the entry's size,
/// not the file's.
struct Lines<'a> {
    file: &'a str,
    text: &'a str,
    /// Per section: (1-based header line, byte offset of the line after it).
    headers: HashMap<&'static str, Vec<(usize, usize)>>,
}

impl<'a> Lines<'a> {
    fn new(file: &'a str, text: &'a str) -> Self {
        let mut headers: HashMap<&'static str, Vec<(usize, usize)>> = HashMap::new();
        let mut offset = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            offset += line.len();
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("[[") {
                let rest = rest.trim_start();
                for sec in ["integrations", "keys", "principals"] {
                    if rest.starts_with(sec) {
                        headers.entry(sec).or_default().push((i + 1, offset));
                    }
                }
            }
        }
        Lines {
            file,
            text,
            headers,
        }
    }

    /// `file:line` of `key` inside entry `idx` of `section`, or of the entry header.
    fn at(&self, section: &'static str, idx: usize, key: Option<&str>) -> String {
        let Some((start, offset)) = self.headers.get(section).and_then(|v| v.get(idx)).copied()
        else {
            return self.file.to_owned();
        };
        if let Some(key) = key {
            let body = self.text.get(offset..).unwrap_or_default();
            for (i, line) in body.lines().enumerate() {
                count_work(1);
                let t = line.trim_start();
                if t.starts_with('[') {
                    break;
                }
                if let Some(rest) = t.strip_prefix(key) {
                    let rest = rest.trim_start();
                    if rest.starts_with('=') {
                        return format!("{}:{}", self.file, start + i + 1);
                    }
                }
            }
        }
        format!("{}:{}", self.file, start)
    }
}

/// Parses registry text; `file` names it in messages.
pub fn parse_registry(text: &str, file: &str) -> Result<Registry, RegistryError> {
    let mut problems = Vec::new();
    let root: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let msg = e.message().to_owned();
            return Err(RegistryError {
                problems: vec![match line {
                    Some(l) => format!("{file}:{l}: {msg}"),
                    None => format!("{file}: {msg}"),
                }],
            });
        }
    };
    let lines = Lines::new(file, text);
    for k in root.keys() {
        if !matches!(k.as_str(), "integrations" | "keys" | "principals") {
            problems.push(format!(
                "{file}: unknown top-level field `{k}` (expected integrations, keys, principals)"
            ));
        }
    }
    let entries = |name: &'static str, problems: &mut Vec<String>| -> Vec<&toml::Table> {
        match root.get(name) {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::Table(t) => Some(t),
                    _ => {
                        problems.push(format!(
                            "{}: {name} entry {} must be a table",
                            lines.at(name, i, None),
                            i + 1
                        ));
                        None
                    }
                })
                .collect(),
            Some(_) => {
                problems.push(format!(
                    "{file}: `{name}` must be an array of tables ([[{name}]])"
                ));
                Vec::new()
            }
        }
    };

    let mut integrations = Vec::new();
    let mut integration_ids: HashMap<String, String> = HashMap::new();
    for (i, t) in entries("integrations", &mut problems).iter().enumerate() {
        let at = |k: Option<&str>| lines.at("integrations", i, k);
        let mut p = Fields {
            t,
            problems: &mut problems,
            at: &at,
        };
        p.unknown(&[
            "id",
            "name",
            "vendor",
            "owner",
            "purpose",
            "granted",
            "networks",
            "active_hours",
            "sensitivity",
        ]);
        let Some(id) = p.id() else { continue };
        let mut d = IntegrationDecl::new(&id);
        d.name = p.opt_str("name");
        d.vendor = p.opt_str("vendor");
        d.owner = p.opt_str("owner");
        d.purpose = p.opt_str("purpose");
        for g in p.str_list("granted") {
            match Grant::parse(&g) {
                Ok(g) => d.granted.push(g),
                Err(e) => p.problem(Some("granted"), e),
            }
        }
        for n in p.str_list("networks") {
            match parse_network(&n) {
                Some(net) => d.networks.push(net),
                None => p.problem(Some("networks"), format!("invalid CIDR {n:?}")),
            }
        }
        if let Some(v) = t.get("active_hours") {
            match parse_active_hours(v) {
                Ok(h) => d.active_hours = Some(h),
                Err(errs) => {
                    for e in errs {
                        p.problem(Some("active_hours"), e);
                    }
                }
            }
        }
        match p.opt_str("sensitivity").as_deref() {
            None | Some("normal") => {}
            Some("high") => d.sensitivity = Sensitivity::High,
            Some(o) => p.problem(
                Some("sensitivity"),
                format!("sensitivity {o:?} must be \"normal\" or \"high\""),
            ),
        }
        if let Some(prev) = integration_ids.insert(id.clone(), at(Some("id"))) {
            problems.push(format!(
                "{}: duplicate integration id {id:?} (first at {prev})",
                at(Some("id"))
            ));
            continue;
        }
        integrations.push(d);
    }

    let mut keys = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, t) in entries("keys", &mut problems).iter().enumerate() {
        let at = |k: Option<&str>| lines.at("keys", i, k);
        let mut p = Fields {
            t,
            problems: &mut problems,
            at: &at,
        };
        p.unknown(&["id", "integration", "created", "revoked_at"]);
        let Some(id) = p.id() else { continue };
        let integration = p.opt_str("integration").unwrap_or_default();
        if integration.is_empty() {
            p.problem(
                Some("integration"),
                format!("key {id:?} needs `integration`"),
            );
        } else if !integration_ids.contains_key(&integration) {
            p.problem(
                Some("integration"),
                format!("key {id:?} names unknown integration {integration:?}"),
            );
        }
        let created = p.opt_time("created");
        let revoked_at = p.opt_time("revoked_at");
        if let (Some(c), Some(r)) = (created, revoked_at) {
            if r < c {
                p.problem(
                    Some("revoked_at"),
                    format!("key {id:?} is revoked before it was created"),
                );
            }
        }
        if let Some(prev) = seen.insert(id.clone(), at(Some("id"))) {
            problems.push(format!(
                "{}: duplicate key id {id:?} (first at {prev})",
                at(Some("id"))
            ));
            continue;
        }
        keys.push(KeyDecl {
            id,
            integration,
            created,
            revoked_at,
        });
    }

    let mut principals = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, t) in entries("principals", &mut problems).iter().enumerate() {
        let at = |k: Option<&str>| lines.at("principals", i, k);
        let mut p = Fields {
            t,
            problems: &mut problems,
            at: &at,
        };
        p.unknown(&["id", "offboarded_at"]);
        let Some(id) = p.id() else { continue };
        let offboarded_at = p.opt_time("offboarded_at");
        if let Some(prev) = seen.insert(id.clone(), at(Some("id"))) {
            problems.push(format!(
                "{}: duplicate principal id {id:?} (first at {prev})",
                at(Some("id"))
            ));
            continue;
        }
        principals.push(PrincipalDecl { id, offboarded_at });
    }

    if problems.is_empty() {
        Ok(Registry::new(integrations, keys, principals))
    } else {
        Err(RegistryError { problems })
    }
}

fn parse_network(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

fn parse_hhmm(s: &str, allow_24: bool) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24)) {
        return None;
    }
    Some(h * 60 + m)
}

fn parse_offset(s: &str) -> Option<i32> {
    if s == "Z" || s == "UTC" {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let m = parse_hhmm(rest, false)?;
    (m <= 14 * 60).then_some(sign * m as i32)
}

fn parse_active_hours(v: &Value) -> Result<ActiveHours, Vec<String>> {
    let Value::Table(t) = v else {
        return Err(vec![
            "active_hours must be a table {days, start, end, utc_offset}".into(),
        ]);
    };
    let mut errs = Vec::new();
    for k in t.keys() {
        if !matches!(k.as_str(), "days" | "start" | "end" | "utc_offset") {
            errs.push(format!("active_hours: unknown field `{k}`"));
        }
    }
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let mut days = [false; 7];
    match t.get("days") {
        None => days = [true; 7],
        Some(Value::Array(a)) => {
            for d in a {
                match d
                    .as_str()
                    .and_then(|s| DAYS.iter().position(|x| x.eq_ignore_ascii_case(s)))
                {
                    Some(i) => days[i] = true,
                    None => errs.push(format!("active_hours: bad day {d} (use mon..sun)")),
                }
            }
        }
        Some(_) => errs.push("active_hours.days must be an array of day names".into()),
    }
    let time = |k: &str, allow_24: bool, errs: &mut Vec<String>| -> u32 {
        match t
            .get(k)
            .and_then(Value::as_str)
            .and_then(|s| parse_hhmm(s, allow_24))
        {
            Some(m) => m,
            None => {
                errs.push(format!("active_hours.{k} must be \"HH:MM\""));
                0
            }
        }
    };
    let start = time("start", false, &mut errs);
    let end = time("end", true, &mut errs);
    let offset = match t.get("utc_offset") {
        None => 0,
        Some(v) => match v.as_str().and_then(parse_offset) {
            Some(o) => o,
            None => {
                errs.push(format!(
                    "active_hours.utc_offset {v} must be like \"+05:30\""
                ));
                0
            }
        },
    };
    if errs.is_empty() && start == end {
        errs.push("active_hours: start and end are equal (empty window)".into());
    }
    if errs.is_empty() {
        Ok(ActiveHours {
            days,
            start_minute: start,
            end_minute: end,
            utc_offset_minutes: offset,
        })
    } else {
        Err(errs)
    }
}

struct Fields<'t, 'p, F: Fn(Option<&str>) -> String> {
    t: &'t toml::Table,
    problems: &'p mut Vec<String>,
    at: &'t F,
}

impl<F: Fn(Option<&str>) -> String> Fields<'_, '_, F> {
    fn problem(&mut self, key: Option<&str>, msg: impl fmt::Display) {
        let at = (self.at)(key);
        self.problems.push(format!("{at}: {msg}"));
    }

    fn unknown(&mut self, known: &[&str]) {
        let unknown: Vec<String> = self
            .t
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in unknown {
            self.problem(Some(&k), format!("unknown field `{k}`"));
        }
    }

    fn id(&mut self) -> Option<String> {
        match self.t.get("id") {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
            Some(_) => {
                self.problem(Some("id"), "`id` must be a string of 1-256 bytes");
                None
            }
            None => {
                self.problem(None, "missing `id`");
                None
            }
        }
    }

    fn opt_str(&mut self, k: &str) -> Option<String> {
        match self.t.get(k) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.problem(Some(k), format!("`{k}` must be a string"));
                None
            }
        }
    }

    fn str_list(&mut self, k: &str) -> Vec<String> {
        match self.t.get(k) {
            None => Vec::new(),
            Some(Value::Array(a)) if a.iter().all(Value::is_str) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(_) => {
                self.problem(Some(k), format!("`{k}` must be an array of strings"));
                Vec::new()
            }
        }
    }

    fn opt_time(&mut self, k: &str) -> Option<i64> {
        match self.t.get(k) {
            None => None,
            Some(Value::String(s)) => match parse_rfc3339(s) {
                Some(t) => Some(t),
                None => {
                    self.problem(Some(k), format!("`{k}` = {s:?} is not an RFC 3339 time"));
                    None
                }
            },
            Some(Value::Datetime(d)) => match parse_rfc3339(&d.to_string()) {
                Some(t) => Some(t),
                None => {
                    self.problem(
                        Some(k),
                        format!("`{k}` = {d} needs a date, time and offset"),
                    );
                    None
                }
            },
            Some(_) => {
                self.problem(Some(k), format!("`{k}` must be an RFC 3339 time"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tripline_engine::Action;

    const SPEC: &str = r#"
[[integrations]]
id = "mailchimp-sync"                  # matches event.integration_id
name = "Mailchimp audience sync"
vendor = "Intuit Mailchimp"
owner = "marketing-ops@acme.example"
purpose = "Sync newsletter subscribers"
granted = ["contacts:read", "contacts:write"]   # resource:action; "*" on either side is a wildcard
networks = ["198.51.100.0/24"]                  # optional: where its calls may come from
active_hours = { days = ["mon","tue","wed","thu","fri"], start = "06:00", end = "22:00", utc_offset = "+05:30" }  # optional
sensitivity = "high"                            # optional: "normal" (default) or "high"

[[keys]]
id = "key_3f9a12"
integration = "mailchimp-sync"
created = "2026-01-10T00:00:00Z"
revoked_at = "2026-11-01T00:00:00Z"             # optional: any use at or after this instant is an alert

[[principals]]
id = "asha@acme.example"
offboarded_at = "2026-10-15T00:00:00Z"          # optional: any call as this principal at or after this instant is an alert
"#;

    #[test]
    fn spec_example_loads() {
        let r = parse_registry(SPEC, "registry.toml").unwrap();
        let d = r.integration("mailchimp-sync").unwrap();
        assert!(d.is_granted("contacts", Action::Write));
        assert!(!d.is_granted("deals", Action::Read));
        assert_eq!(d.sensitivity, Sensitivity::High);
        assert!(d.network_allowed("198.51.100.9".parse().unwrap()));
        assert!(!d.network_allowed("203.0.113.9".parse().unwrap()));
        assert_eq!(d.active_hours.as_ref().unwrap().utc_offset_minutes, 330);
        assert_eq!(
            r.key("key_3f9a12").unwrap().revoked_at,
            parse_rfc3339("2026-11-01T00:00:00Z")
        );
        assert!(r
            .principal("asha@acme.example")
            .unwrap()
            .offboarded_at
            .is_some());
    }

    #[test]
    fn every_problem_is_listed_with_its_line() {
        let bad = r#"
[[integrations]]
id = "a"
granted = ["contacts:steal"]
networks = ["10.0.0.0/33"]
colour = "blue"

[[integrations]]
id = "a"
active_hours = { start = "25:00", end = "22:00" }

[[keys]]
id = "k1"
integration = "ghost"
revoked_at = "last tuesday"
"#;
        let err = parse_registry(bad, "r.toml").unwrap_err();
        let all = err.problems.join("\n");
        assert!(
            all.contains("r.toml:4:") && all.contains("contacts:steal"),
            "{all}"
        );
        assert!(
            all.contains("r.toml:5:") && all.contains("invalid CIDR"),
            "{all}"
        );
        assert!(
            all.contains("r.toml:6:") && all.contains("unknown field `colour`"),
            "{all}"
        );
        assert!(
            all.contains("r.toml:9:") && all.contains("duplicate integration id"),
            "{all}"
        );
        assert!(
            all.contains("r.toml:10:") && all.contains("active_hours.start"),
            "{all}"
        );
        assert!(
            all.contains("r.toml:14:") && all.contains("unknown integration"),
            "{all}"
        );
        assert!(
            all.contains("r.toml:15:") && all.contains("RFC 3339"),
            "{all}"
        );
        assert_eq!(err.problems.len(), 7, "{all}");
    }

    /// A registry of `n` integrations, each with a key and a principal.
    fn big_registry(n: usize) -> String {
        let mut s = String::new();
        for i in 0..n {
            s.push_str(&format!(
                "[[integrations]]\nid = \"int-{i}\"\nname = \"n\"\ngranted = [\"contacts:read\"]\nnetworks = [\"10.0.0.0/8\"]\n\n"
            ));
        }
        for i in 0..n {
            s.push_str(&format!(
                "[[keys]]\nid = \"key-{i}\"\nintegration = \"int-{i}\"\ncreated = \"2026-01-10T00:00:00Z\"\n\n"
            ));
        }
        for i in 0..n {
            s.push_str(&format!("[[principals]]\nid = \"p-{i}\"\n\n"));
        }
        s
    }

    /// Loading must be linear in the file (issue 16: `Lines::at` rescanned the
    /// file from its start for every key and key entries looked their
    /// integration up linearly — 100k integrations took > 20 min). Counts the
    /// lines scanned and ids compared instead of timing.
    #[test]
    fn loading_does_work_linear_in_the_file() {
        for n in [500, 2_000] {
            let text = big_registry(n);
            let total_lines = text.lines().count();
            WORK.with(|w| w.set(0));
            let r = parse_registry(&text, "r.toml").unwrap();
            let work = WORK.with(|w| w.get());
            assert!(r.integration(&format!("int-{}", n - 1)).is_some());
            assert!(
                work <= 4 * total_lines,
                "{n} integrations: {work} units of work for {total_lines} lines"
            );
        }
    }

    #[test]
    fn problems_in_a_large_file_still_name_their_line() {
        let mut text = big_registry(300);
        text.push_str("[[keys]]\nid = \"key-x\"\nintegration = \"ghost\"\n");
        let line = text.lines().count() - 1 + 1;
        let err = parse_registry(&text, "r.toml").unwrap_err();
        assert_eq!(err.problems.len(), 1, "{:?}", err.problems);
        assert!(
            err.problems[0].starts_with(&format!("r.toml:{line}: ")),
            "{:?} (want line {line})",
            err.problems
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err =
            parse_registry("[[integrations]]\nid = \"a\"\ngranted = [\n", "r.toml").unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(err.problems[0].starts_with("r.toml:"), "{:?}", err.problems);
    }
}
