//! Declarative mappings from vendor log formats to the canonical event.
//!
//! A **profile** (TOML) names a decoder, where each canonical field comes
//! from (RFC 6901 pointers or CSV column names, with fallback chains: the
//! first non-null source wins), a closed set of transforms, and a **route
//! table** that derives `resource`, `endpoint` and `action` from a URI.
//! There is no scripting: a profile compiles into a [`Mapping`] whose
//! decode is one borrowed serde pass per record plus table lookups.
//!
//! # Layout
//! - [`profile`]: TOML schema, key-by-key override of built-ins, validation.
//! - [`decode`]: JSON pointer trie, envelopes, CSV → slot values.
//! - `envelope`: message paths (`$/…`, e.g. OTLP resource attributes) and
//!   the expansion of `*` roots that carries them to each record.
//! - [`assemble`]: slot values → validated [`RawEvent`] with reject reasons.
//! - [`transform`]: time formats, casts, text ops, hashing, Salesforce ids.
//! - [`routes`]: URI path templates → resource / endpoint / action.
//! - [`builtin`]: the profiles embedded in the binary.
//! - [`stream`]: files and stdin (JSONL or CSV) → events.

mod assemble;
pub mod builtin;
pub mod decode;
mod envelope;
pub mod profile;
pub mod routes;
pub mod stream;
pub mod transform;

use std::sync::Arc;

use regex::Regex;

pub use builtin::{builtin_profiles, load_format, BuiltinProfile};
pub use profile::MappingError;
pub use stream::{read_events, StreamStats};

use crate::event::{parse_event, RawEvent, Reject, RejectReason, MAX_EVENT_BYTES};
use decode::{Envelope, Trie};
use envelope::{Frame, MessagePaths};
use routes::RouteTable;

/// Largest message a mapped format accepts (a Kong batch or a CloudWatch
/// envelope holds many records); each record is still held to
/// [`MAX_EVENT_BYTES`].
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The canonical fields a profile can fill, plus `url`, the route input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Ts,
    IntegrationId,
    Resource,
    Method,
    Status,
    Action,
    KeyId,
    Principal,
    Endpoint,
    Records,
    Bytes,
    SourceIp,
    UserAgent,
    Tenant,
    Url,
}

impl Target {
    pub const COUNT: usize = 15;
    const ALL: [Target; Target::COUNT] = [
        Target::Ts,
        Target::IntegrationId,
        Target::Resource,
        Target::Method,
        Target::Status,
        Target::Action,
        Target::KeyId,
        Target::Principal,
        Target::Endpoint,
        Target::Records,
        Target::Bytes,
        Target::SourceIp,
        Target::UserAgent,
        Target::Tenant,
        Target::Url,
    ];
    pub const NAMES: &'static str = "ts, integration_id, resource, method, status, action, key_id, principal, endpoint, records, bytes, source_ip, user_agent, tenant, url";

    pub fn name(self) -> &'static str {
        match self {
            Target::Ts => "ts",
            Target::IntegrationId => "integration_id",
            Target::Resource => "resource",
            Target::Method => "method",
            Target::Status => "status",
            Target::Action => "action",
            Target::KeyId => "key_id",
            Target::Principal => "principal",
            Target::Endpoint => "endpoint",
            Target::Records => "records",
            Target::Bytes => "bytes",
            Target::SourceIp => "source_ip",
            Target::UserAgent => "user_agent",
            Target::Tenant => "tenant",
            Target::Url => "url",
        }
    }

    pub fn parse(s: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == s)
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Input {
    Slot(u16),
    Const(Box<str>),
}

/// A source applies only when another slot holds one of these values
/// (e.g. a synthetic `method` for Salesforce SOAP rows only).
#[derive(Debug, Clone)]
pub(crate) struct When {
    pub slot: u16,
    pub values: Vec<Box<str>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub input: Input,
    pub when: Option<When>,
    pub time: Vec<transform::TimeFormat>,
    pub strip_query: bool,
    pub regex: Option<Regex>,
    /// `Some(true)` upper-case, `Some(false)` lower-case.
    pub upper: Option<bool>,
    pub map: Option<usize>,
    pub miss_null: bool,
    pub sfid18: bool,
    pub hash: Option<Arc<[u8]>>,
}

impl Source {
    /// Whether any string transform applies (the value is used as read
    /// otherwise).
    pub fn has_text_ops(&self) -> bool {
        self.strip_query
            || self.regex.is_some()
            || self.upper.is_some()
            || self.map.is_some()
            || self.sfid18
            || self.hash.is_some()
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Field {
    pub sources: Vec<Source>,
    /// The slot of a field read as it is — one source, a path, no `when`,
    /// no string transform — so a record's value is picked without walking
    /// the source list (set by [`Field::seal`] once the sources are final).
    pub plain: Option<u16>,
}

impl Field {
    /// Computes [`Field::plain`] from the sources.
    pub fn seal(&mut self) {
        self.plain = match self.sources.as_slice() {
            [s] if s.when.is_none() && !s.has_text_ops() => match s.input {
                Input::Slot(i) => Some(i),
                Input::Const(_) => None,
            },
            _ => None,
        };
    }
}

/// The JSON decoder of a profile: the record's paths, where records are,
/// and the paths read from around them.
#[derive(Debug, Clone)]
pub(crate) struct JsonDecoder {
    pub trie: Trie,
    pub envelope: Envelope,
    pub message: MessagePaths,
}

#[derive(Debug, Clone)]
pub(crate) enum Decoder {
    Json(JsonDecoder),
    Csv { columns: Vec<String> },
}

/// A compiled profile.
#[derive(Debug, Clone)]
pub struct Mapping {
    name: String,
    description: String,
    decoder: Decoder,
    empty_values: Vec<Box<str>>,
    fields: [Field; Target::COUNT],
    routes: RouteTable,
    maps: Vec<ValueMap>,
}

impl Mapping {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// True for CSV profiles, whose files are read as a whole (header row).
    pub fn is_csv(&self) -> bool {
        matches!(self.decoder, Decoder::Csv { .. })
    }

    /// Decodes one message (a JSON document, or for CSV profiles a CSV text
    /// with its header row) and hands each record's outcome to `sink`.
    pub fn decode<F>(&self, input: &[u8], sink: &mut F)
    where
        F: FnMut(Result<RawEvent<'_>, Reject>),
    {
        if input.len() > MAX_MESSAGE_BYTES {
            sink(Err(too_large(input.len(), MAX_MESSAGE_BYTES)));
            return;
        }
        let text = match std::str::from_utf8(input) {
            Ok(t) => t,
            Err(e) => {
                sink(Err(Reject::new(
                    RejectReason::InvalidUtf8,
                    format!("invalid UTF-8 at byte {}", e.valid_up_to()),
                )));
                return;
            }
        };
        match &self.decoder {
            Decoder::Json(json) => self.decode_json(json, text, sink),
            Decoder::Csv { columns } => stream::decode_csv(self, columns, text.as_bytes(), sink),
        }
    }

    fn decode_json<F>(&self, json: &JsonDecoder, text: &str, sink: &mut F)
    where
        F: FnMut(Result<RawEvent<'_>, Reject>),
    {
        let JsonDecoder {
            trie,
            envelope: env,
            message,
        } = json;
        // The frame of the whole message: its `$` paths without `*` (an
        // empty Vec, not allocated, when the profile has none).
        let document = match message.document(text) {
            Ok(f) => f,
            Err(e) => return sink(Err(json_reject(&e))),
        };
        // A document without any of the envelope roots is itself a record
        // (e.g. an API Gateway line read from a file, not from CloudWatch);
        // `embedded` applies only to records found under a root.
        if env.roots.iter().any(|r| r.iter().any(|t| t == "*")) {
            // Nested envelopes (OTLP: every log record of every scope of
            // every resource): the first root present gives the records,
            // each with the frame of the elements it was found in.
            let mut found = Vec::new();
            let mut frames = vec![document];
            for ri in 0..env.roots.len() {
                match message.expand(text, &env.roots, ri, &mut found, &mut frames) {
                    Ok(true) => {
                        for (at, f) in found {
                            self.decode_records(trie, env, &frames[f], at, sink);
                        }
                        return;
                    }
                    Ok(false) => {
                        found.clear();
                        frames.truncate(1);
                    }
                    Err(e) => return sink(Err(json_reject(&e))),
                }
            }
            return self.decode_records(trie, &NO_ENVELOPE, &frames[0], text, sink);
        }
        let (root, env) = if env.roots.is_empty() {
            (text, env)
        } else {
            match decode::find_root(text, &env.roots) {
                Ok(Some(raw)) => (raw.get(), env),
                Ok(None) => (text, &NO_ENVELOPE),
                Err(e) => return sink(Err(json_reject(&e))),
            }
        };
        self.decode_records(trie, env, &document, root, sink);
    }

    /// One record, or one per element when `root` is an array (a batch).
    fn decode_records<F>(
        &self,
        trie: &Trie,
        env: &Envelope,
        frame: &Frame<'_>,
        root: &str,
        sink: &mut F,
    ) where
        F: FnMut(Result<RawEvent<'_>, Reject>),
    {
        if root.trim_start().starts_with('[') {
            match decode::array_elements(root) {
                Ok(els) => {
                    for el in els {
                        self.decode_record(trie, env, frame, el.get(), sink);
                    }
                }
                Err(e) => sink(Err(json_reject(&e))),
            }
        } else {
            self.decode_record(trie, env, frame, root, sink);
        }
    }

    fn decode_record<F>(
        &self,
        trie: &Trie,
        env: &Envelope,
        frame: &Frame<'_>,
        text: &str,
        sink: &mut F,
    ) where
        F: FnMut(Result<RawEvent<'_>, Reject>),
    {
        if text.len() > MAX_EVENT_BYTES {
            return sink(Err(too_large(text.len(), MAX_EVENT_BYTES)));
        }
        if let Some(ptr) = &env.embedded {
            match decode::string_at(text, ptr) {
                Ok(Some(inner)) => self.extract_and_assemble(trie, frame, &inner, sink),
                Ok(None) => sink(Err(Reject::new(
                    RejectReason::MissingField,
                    "missing the embedded record string",
                ))),
                Err(e) => sink(Err(json_reject(&e))),
            }
        } else {
            self.extract_and_assemble(trie, frame, text, sink);
        }
    }

    /// The record's slots start from its frame (the message paths), then
    /// its own paths fill the rest.
    fn extract_and_assemble<F>(&self, trie: &Trie, frame: &Frame<'_>, text: &str, sink: &mut F)
    where
        F: FnMut(Result<RawEvent<'_>, Reject>),
    {
        let mut slots = decode::empty_slots();
        let mut owned = false;
        for (i, v) in frame {
            owned |= matches!(v, decode::Val::Str(std::borrow::Cow::Owned(_)));
            slots[usize::from(*i)] = v.clone();
        }
        match trie.extract_walked(text, &mut slots) {
            Ok(walked) => {
                sink(self.assemble(&mut slots));
                if walked && !owned {
                    // Nothing in the slots owns memory (the walker borrows
                    // every string, the frame's were borrowed too), so
                    // dropping them would be a loop over all MAX_SLOTS that
                    // frees nothing (~290 instructions per record).
                    debug_assert!(!slots
                        .iter()
                        .any(|v| matches!(v, decode::Val::Str(std::borrow::Cow::Owned(_)))));
                    std::mem::forget(slots);
                }
            }
            Err(e) => sink(Err(json_reject(&e))),
        }
    }
}

static NO_ENVELOPE: Envelope = Envelope {
    roots: Vec::new(),
    embedded: None,
};

fn too_large(n: usize, max: usize) -> Reject {
    Reject::new(RejectReason::TooLarge, format!("{n} bytes > {max}"))
}

fn json_reject(e: &serde_json::Error) -> Reject {
    let reason = match e.classify() {
        serde_json::error::Category::Data => RejectReason::InvalidField,
        _ => RejectReason::InvalidJson,
    };
    Reject::new(reason, e.to_string())
}

/// A lookup table of a profile (`[maps.…]`, route aliases): keys come from
/// the profile, lookups from every record, so a fast non-keyed hash (the
/// table's contents are fixed before any input is read).
pub type ValueMap = rustc_hash::FxHashMap<Box<str>, Box<str>>;

/// How events of one input are read: the canonical schema, or a profile.
#[derive(Debug, Clone, Default)]
pub enum Format {
    /// `docs/specs/events.md` as it is (the default).
    #[default]
    Canonical,
    Mapped(Arc<Mapping>),
}

impl Format {
    pub fn name(&self) -> &str {
        match self {
            Format::Canonical => "canonical",
            Format::Mapped(m) => m.name(),
        }
    }

    pub fn is_csv(&self) -> bool {
        matches!(self, Format::Mapped(m) if m.is_csv())
    }

    /// Decodes one message; `sink` sees every record's outcome in order.
    #[inline]
    pub fn decode<F>(&self, input: &[u8], sink: &mut F)
    where
        F: FnMut(Result<RawEvent<'_>, Reject>),
    {
        match self {
            Format::Canonical => sink(parse_event(input)),
            Format::Mapped(m) => m.decode(input, sink),
        }
    }
}
