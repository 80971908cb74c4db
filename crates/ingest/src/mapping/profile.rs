//! Profile TOML → a compiled [`Mapping`]: the schema users write, the
//! key-by-key override of built-ins, and validation that reports every
//! problem of a profile at once.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;
use tripline_engine::Action;

use super::decode::{pointer_tokens, Envelope, Trie, MAX_SLOTS};
use super::envelope::MessagePaths;
use super::routes::{Fallback, RouteTable, DEFAULT_BASE_SEGMENTS};
use super::transform::TimeFormat;
use super::{Decoder, Field, Input, JsonDecoder, Mapping, Source, Target, ValueMap, When};

/// Why a profile could not be built: every problem, each naming its key.
#[derive(Debug, thiserror::Error)]
#[error("mapping profile `{profile}`: {}", problems.join("; "))]
pub struct MappingError {
    pub profile: String,
    pub problems: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHash {
    /// Name of the environment variable that holds the key.
    key_env: Option<String>,
    /// File whose (trimmed) content is the key.
    key_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    path: String,
    #[serde(rename = "in")]
    values: Vec<String>,
}

/// One source of a field (a path or a constant, plus its transforms).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSource {
    path: Option<OneOrMany>,
    #[serde(rename = "const")]
    konst: Option<String>,
    when: Option<RawWhen>,
    time: Option<OneOrMany>,
    strip_query: Option<bool>,
    regex: Option<String>,
    case: Option<String>,
    map: Option<String>,
    /// On a map miss: `keep` the value (default) or treat it as `null`.
    on_miss: Option<String>,
    sfid18: Option<bool>,
    hash: Option<RawHash>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    from: Option<Vec<RawSource>>,
    path: Option<OneOrMany>,
    #[serde(rename = "const")]
    konst: Option<String>,
    when: Option<RawWhen>,
    time: Option<OneOrMany>,
    strip_query: Option<bool>,
    regex: Option<String>,
    case: Option<String>,
    map: Option<String>,
    on_miss: Option<String>,
    sfid18: Option<bool>,
    hash: Option<RawHash>,
}

impl RawField {
    fn into_sources(self) -> Result<Vec<RawSource>, String> {
        let own = RawSource {
            path: self.path,
            konst: self.konst,
            when: self.when,
            time: self.time,
            strip_query: self.strip_query,
            regex: self.regex,
            case: self.case,
            map: self.map,
            on_miss: self.on_miss,
            sfid18: self.sfid18,
            hash: self.hash,
        };
        let own_set = own.path.is_some() || own.konst.is_some();
        match self.from {
            Some(_) if own_set => Err("`from` and `path`/`const` are exclusive".into()),
            Some(v) if v.is_empty() => Err("`from` is empty".into()),
            Some(v) => Ok(v),
            None if own_set => Ok(vec![own]),
            None => Err("needs `path`, `const` or `from`".into()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path: OneOrMany,
    resource: Option<String>,
    action: Option<String>,
    aliases: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    #[serde(rename = "use", default)]
    uses: Vec<String>,
    fallback: Option<String>,
    base_segments: Option<usize>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    description: String,
    /// `json` (one document per message / line) or `csv` (header row first).
    decoder: String,
    #[serde(default)]
    root: Option<OneOrMany>,
    embedded: Option<String>,
    #[serde(default)]
    empty_values: Vec<String>,
    #[serde(default)]
    fields: BTreeMap<String, RawField>,
    #[serde(default)]
    routes: RawRoutes,
    #[serde(default)]
    maps: BTreeMap<String, BTreeMap<String, String>>,
}

/// A shared, built-in rule set (`routes.toml`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleSet {
    description: String,
    aliases: Option<String>,
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRouteFile {
    sets: BTreeMap<String, RawRuleSet>,
    maps: BTreeMap<String, BTreeMap<String, String>>,
}

/// Deep merge: tables merge key by key, anything else is replaced.
pub(crate) fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

struct Ctx<'a> {
    problems: Vec<String>,
    csv: bool,
    /// Per slot: whether it is a message path (`$/…`), and its pointer
    /// tokens (json; after the `$` for a message path) or `[column]` (csv).
    slots: Vec<(bool, Vec<String>)>,
    maps: &'a HashMap<String, usize>,
}

impl Ctx<'_> {
    fn slot(&mut self, key: &str, path: &str) -> Option<u16> {
        let (message, pointer) = match path.strip_prefix('$') {
            Some(p) if !self.csv => (true, p),
            _ => (false, path),
        };
        let tokens = if self.csv {
            vec![path.strip_prefix('/').unwrap_or(path).to_owned()]
        } else {
            match pointer_tokens(pointer) {
                Ok(t) if !t.is_empty() => t,
                Ok(_) => {
                    self.problems
                        .push(format!("{key}: the empty pointer is not a field"));
                    return None;
                }
                Err(e) => {
                    self.problems.push(format!("{key}: {e}"));
                    return None;
                }
            }
        };
        let entry = (message, tokens);
        if let Some(i) = self.slots.iter().position(|s| *s == entry) {
            return Some(i as u16);
        }
        if self.slots.len() >= MAX_SLOTS {
            self.problems
                .push(format!("{key}: more than {MAX_SLOTS} distinct paths"));
            return None;
        }
        self.slots.push(entry);
        Some((self.slots.len() - 1) as u16)
    }
}

fn parse_action(s: &str) -> Option<Action> {
    Action::parse(s)
}

fn compile_source(cx: &mut Ctx<'_>, key: &str, target: Target, raw: RawSource) -> Vec<Source> {
    let mut out = Vec::new();
    let when = raw.when.and_then(|w| {
        let slot = cx.slot(&format!("{key}.when"), &w.path)?;
        Some(When {
            slot,
            values: w.values.into_iter().map(Into::into).collect(),
        })
    });
    let time = match raw.time {
        None => Vec::new(),
        Some(t) => t
            .into_vec()
            .iter()
            .filter_map(|n| {
                let f = TimeFormat::parse_name(n);
                if f.is_none() {
                    cx.problems.push(format!(
                        "{key}.time: unknown format `{n}` (one of {})",
                        TimeFormat::NAMES
                    ));
                }
                f
            })
            .collect(),
    };
    if !time.is_empty() && target != Target::Ts {
        cx.problems
            .push(format!("{key}.time: only `ts` takes a time format"));
    }
    let regex = raw.regex.and_then(|r| match Regex::new(&r) {
        Ok(re) if re.captures_len() >= 2 => Some(re),
        Ok(_) => {
            cx.problems
                .push(format!("{key}.regex: needs one capture group"));
            None
        }
        Err(e) => {
            cx.problems.push(format!("{key}.regex: {e}"));
            None
        }
    });
    let case = match raw.case.as_deref() {
        None => None,
        Some("lower") => Some(false),
        Some("upper") => Some(true),
        Some(o) => {
            cx.problems
                .push(format!("{key}.case: `{o}` is not lower or upper"));
            None
        }
    };
    let map = raw.map.and_then(|m| match cx.maps.get(&m) {
        Some(i) => Some(*i),
        None => {
            cx.problems.push(format!("{key}.map: no map `{m}`"));
            None
        }
    });
    let miss_null = match raw.on_miss.as_deref() {
        None | Some("keep") => false,
        Some("null") => true,
        Some(o) => {
            cx.problems
                .push(format!("{key}.on_miss: `{o}` is not keep or null"));
            false
        }
    };
    let hash = raw.hash.and_then(|h| match (h.key_env, h.key_file) {
        (Some(var), None) => match std::env::var(&var) {
            Ok(k) if !k.is_empty() => Some(Arc::from(k.into_bytes())),
            _ => {
                cx.problems.push(format!(
                    "{key}.hash: environment variable `{var}` is not set"
                ));
                None
            }
        },
        (None, Some(file)) => match std::fs::read(&file) {
            Ok(k) if !k.trim_ascii().is_empty() => Some(Arc::from(k.trim_ascii().to_vec())),
            _ => {
                cx.problems.push(format!(
                    "{key}.hash: cannot read a key from {}",
                    file.display()
                ));
                None
            }
        },
        _ => {
            cx.problems
                .push(format!("{key}.hash: set exactly one of key_env, key_file"));
            None
        }
    });
    let mut inputs = Vec::new();
    match (raw.path, raw.konst) {
        (Some(p), None) => {
            for p in p.into_vec() {
                if let Some(s) = cx.slot(key, &p) {
                    inputs.push(Input::Slot(s));
                }
            }
        }
        (None, Some(c)) => inputs.push(Input::Const(c.into())),
        (Some(_), Some(_)) => cx
            .problems
            .push(format!("{key}: `path` and `const` are exclusive")),
        (None, None) => cx.problems.push(format!("{key}: needs `path` or `const`")),
    }
    for input in inputs {
        out.push(Source {
            input,
            when: when.clone(),
            time: time.clone(),
            strip_query: raw.strip_query.unwrap_or(false),
            regex: regex.clone(),
            upper: case,
            map,
            miss_null,
            sfid18: raw.sfid18.unwrap_or(false),
            hash: hash.clone(),
        });
    }
    out
}

/// Compiles a merged profile table; `route_file` supplies the shared rule
/// sets and maps.
pub(crate) fn compile(
    value: toml::Value,
    route_file: &RawRouteFile,
) -> Result<Mapping, MappingError> {
    let name_hint = value
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or("<unnamed>")
        .to_owned();
    let raw: RawProfile = value
        .try_into()
        .map_err(|e: toml::de::Error| MappingError {
            profile: name_hint.clone(),
            problems: vec![e.message().to_owned()],
        })?;
    let mut problems = Vec::new();
    let csv = match raw.decoder.as_str() {
        "json" => false,
        "csv" => true,
        o => {
            problems.push(format!("decoder: `{o}` is not json or csv"));
            false
        }
    };
    // Maps: the shared ones, overridden by the profile's own.
    let mut map_ids = HashMap::new();
    let mut maps: Vec<ValueMap> = Vec::new();
    for (name, m) in route_file.maps.iter().chain(raw.maps.iter()) {
        let table: ValueMap = m
            .iter()
            .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
            .collect();
        match map_ids.get(name) {
            Some(&i) => maps[i] = table,
            None => {
                map_ids.insert(name.clone(), maps.len());
                maps.push(table);
            }
        }
    }
    let mut cx = Ctx {
        problems,
        csv,
        slots: Vec::new(),
        maps: &map_ids,
    };
    let mut fields: [Field; Target::COUNT] = std::array::from_fn(|_| Field::default());
    for (key, f) in raw.fields {
        let Some(target) = Target::parse(&key) else {
            cx.problems.push(format!(
                "fields.{key}: not a canonical field (one of {})",
                Target::NAMES
            ));
            continue;
        };
        match f.into_sources() {
            Ok(srcs) => {
                for s in srcs {
                    let compiled = compile_source(&mut cx, &format!("fields.{key}"), target, s);
                    fields[target as usize].sources.extend(compiled);
                }
            }
            Err(e) => cx.problems.push(format!("fields.{key}: {e}")),
        }
    }
    for req in [
        Target::Ts,
        Target::IntegrationId,
        Target::Method,
        Target::Status,
    ] {
        if fields[req as usize].sources.is_empty() {
            cx.problems.push(format!("fields.{}: required", req.name()));
        }
    }
    // Routes: inline rules first, then the shared sets in the order named.
    let mut routes = RouteTable::default();
    let mut alias_ids: HashMap<String, usize> = HashMap::new();
    let mut alias = |routes: &mut RouteTable,
                     name: &Option<String>,
                     problems: &mut Vec<String>|
     -> Option<usize> {
        let n = name.as_ref()?;
        if let Some(i) = alias_ids.get(n) {
            return Some(*i);
        }
        match map_ids.get(n) {
            Some(&mi) => {
                let id = routes.add_aliases(maps[mi].clone());
                alias_ids.insert(n.clone(), id);
                Some(id)
            }
            None => {
                problems.push(format!("routes: no map `{n}` for aliases"));
                None
            }
        }
    };
    let mut add = |routes: &mut RouteTable,
                   r: &RawRule,
                   set_alias: &Option<String>,
                   problems: &mut Vec<String>| {
        let action = match r.action.as_deref() {
            None => None,
            Some(a) => match parse_action(a) {
                Some(a) => Some(a),
                None => {
                    problems.push(format!(
                        "routes: action `{a}` is not read, write, delete or export"
                    ));
                    None
                }
            },
        };
        let al = alias(
            routes,
            if r.aliases.is_some() {
                &r.aliases
            } else {
                set_alias
            },
            problems,
        );
        let paths = match &r.path {
            OneOrMany::One(p) => std::slice::from_ref(p),
            OneOrMany::Many(v) => v.as_slice(),
        };
        for p in paths {
            if let Err(e) = routes.add_rule(p, r.resource.as_deref(), action, al) {
                problems.push(format!("routes: {e}"));
            }
        }
    };
    for r in &raw.routes.rules {
        add(&mut routes, r, &None, &mut cx.problems);
    }
    for set in &raw.routes.uses {
        match route_file.sets.get(set) {
            Some(s) => {
                let _ = &s.description;
                for r in &s.rules {
                    add(&mut routes, r, &s.aliases, &mut cx.problems);
                }
            }
            None => cx.problems.push(format!(
                "routes.use: no rule set `{set}` (one of {})",
                route_file
                    .sets
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
    routes.fallback = match raw.routes.fallback.as_deref() {
        None | Some("reject") => Fallback::Reject,
        Some("first_segment") => Fallback::FirstSegment,
        Some(o) => {
            cx.problems.push(format!(
                "routes.fallback: `{o}` is not reject or first_segment"
            ));
            Fallback::Reject
        }
    };
    routes.base_segments = match raw.routes.base_segments {
        None => DEFAULT_BASE_SEGMENTS,
        Some(n) if n <= 8 => n,
        Some(n) => {
            cx.problems
                .push(format!("routes.base_segments: {n} is more than 8"));
            DEFAULT_BASE_SEGMENTS
        }
    };
    if fields[Target::Resource as usize].sources.is_empty() && routes.is_empty() {
        cx.problems
            .push("fields.resource: required (or a route table with fields.url)".into());
    }
    if !routes.is_empty() && fields[Target::Url as usize].sources.is_empty() {
        cx.problems
            .push("routes: need fields.url, the path they match".into());
    }
    let envelope = Envelope {
        roots: raw
            .root
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| match pointer_tokens(r) {
                Ok(t) => Some(t),
                Err(e) => {
                    cx.problems.push(format!("root: {e}"));
                    None
                }
            })
            .collect(),
        embedded: raw.embedded.and_then(|e| match pointer_tokens(&e) {
            Ok(t) if !t.is_empty() => Some(t),
            _ => {
                cx.problems
                    .push(format!("embedded: `{e}` is not a JSON pointer"));
                None
            }
        }),
    };
    if envelope.roots.len() > 4 {
        cx.problems.push("root: at most 4 alternatives".into());
    }
    if csv && (!envelope.roots.is_empty() || envelope.embedded.is_some()) {
        cx.problems
            .push("root/embedded apply to the json decoder only".into());
    }
    let decoder = if csv {
        Decoder::Csv {
            columns: cx.slots.iter().map(|s| s.1[0].clone()).collect(),
        }
    } else {
        let mut trie = Trie::default();
        let mut message_paths = Vec::new();
        for (i, (message, t)) in cx.slots.iter().enumerate() {
            if *message {
                message_paths.push((i as u16, &t[..]));
            } else {
                trie.insert(t, i as u16);
            }
        }
        let message = match MessagePaths::compile(&envelope.roots, &message_paths) {
            Ok(m) => m,
            Err(p) => {
                cx.problems.extend(p);
                MessagePaths::default()
            }
        };
        Decoder::Json(JsonDecoder {
            trie,
            envelope,
            message,
        })
    };
    if !cx.problems.is_empty() {
        return Err(MappingError {
            profile: raw.name,
            problems: cx.problems,
        });
    }
    for f in &mut fields {
        f.seal();
    }
    Ok(Mapping {
        name: raw.name,
        description: raw.description,
        decoder,
        empty_values: raw.empty_values.into_iter().map(Into::into).collect(),
        fields,
        routes,
        maps,
    })
}
