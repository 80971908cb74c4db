//! The canonical v1 event: JSON in, validated borrowed event out.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;
use tripline_engine::text::Safe;
use tripline_engine::{Action, Event};

mod fields;
use fields::{Int, Str, StrArray, Ts};

/// Event times must fall in 1970-01-01 .. 9999-12-31 (what RFC 3339 can
/// express); anything else is `invalid_field`, which also keeps the engine's
/// time arithmetic far from overflow.
const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Largest accepted event. A CRM access-log line is a few hundred bytes; this
/// keeps one hostile message from costing more than a bounded parse.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Why an event was rejected: a bounded set, safe as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    InvalidJson,
    InvalidUtf8,
    MissingField,
    InvalidField,
    TooLarge,
    /// A mapped (vendor-format) event whose URI no route of its profile
    /// matched, so it has no `resource` (see `mapping::routes`).
    UnmappedResource,
}

impl RejectReason {
    pub const ALL: [RejectReason; 6] = [
        RejectReason::InvalidJson,
        RejectReason::InvalidUtf8,
        RejectReason::MissingField,
        RejectReason::InvalidField,
        RejectReason::TooLarge,
        RejectReason::UnmappedResource,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidJson => "invalid_json",
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::MissingField => "missing_field",
            RejectReason::InvalidField => "invalid_field",
            RejectReason::TooLarge => "too_large",
            RejectReason::UnmappedResource => "unmapped_resource",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cap, in characters, of a reject's detail.
pub const MAX_DETAIL_CHARS: usize = 512;

/// A rejected event: the bounded reason and a human detail (never the payload).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Reject {
    pub reason: RejectReason,
    pub detail: String,
}

impl Reject {
    /// An input of `len` bytes, over [`MAX_EVENT_BYTES`].
    pub fn too_large(len: u64) -> Self {
        Reject::new(
            RejectReason::TooLarge,
            format!("{len} bytes > {MAX_EVENT_BYTES}"),
        )
    }

    /// The detail is logged and dead-lettered, so whatever input text it
    /// quotes is rendered escaped here, once for every reject
    /// ([`tripline_engine::text::Safe`], at most [`MAX_DETAIL_CHARS`]).
    pub(crate) fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        let safe = Safe::new(&detail, MAX_DETAIL_CHARS);
        let detail = if safe.is_clean() {
            detail
        } else {
            safe.to_string()
        };
        Reject { reason, detail }
    }
}

#[derive(Deserialize)]
struct Wire<'a> {
    ts: Option<Ts>,
    #[serde(borrow)]
    integration_id: Option<Str<'a>>,
    #[serde(borrow)]
    resource: Option<Str<'a>>,
    #[serde(borrow)]
    method: Option<Str<'a>>,
    status: Option<Int<u16>>,
    #[serde(borrow)]
    action: Option<Str<'a>>,
    #[serde(borrow)]
    key_id: Option<Str<'a>>,
    #[serde(borrow)]
    principal: Option<Str<'a>>,
    #[serde(borrow)]
    endpoint: Option<Str<'a>>,
    fields: Option<StrArray>,
    records: Option<Int<u64>>,
    bytes: Option<Int<u64>>,
    #[serde(borrow)]
    source_ip: Option<Str<'a>>,
    #[serde(borrow)]
    user_agent: Option<Str<'a>>,
    #[serde(borrow)]
    tenant: Option<Str<'a>>,
}

/// A validated event that still owns any unescaped copies of its strings.
/// Call [`RawEvent::event`] for the engine's borrowed view.
#[derive(Debug)]
pub struct RawEvent<'a> {
    ts_ms: i64,
    integration_id: Cow<'a, str>,
    resource: Cow<'a, str>,
    method: Cow<'a, str>,
    action: Action,
    status: u16,
    key_id: Option<Cow<'a, str>>,
    principal: Option<Cow<'a, str>>,
    endpoint: Option<Cow<'a, str>>,
    records: u64,
    bytes: u64,
    source_ip: Option<IpAddr>,
    user_agent: Option<Cow<'a, str>>,
    tenant: Option<Cow<'a, str>>,
    /// Optional fields a mapping profile dropped because they failed their
    /// cast (always 0 for canonical input, which rejects instead).
    dropped_fields: u8,
}

/// The already-typed fields of an event, before the bounds of the canonical
/// schema are checked: what a mapping profile produces.
#[derive(Debug, Default)]
pub(crate) struct Parts<'a> {
    pub ts_ms: i64,
    pub integration_id: Cow<'a, str>,
    pub resource: Cow<'a, str>,
    pub method: Cow<'a, str>,
    pub status: u16,
    pub action: Option<Action>,
    pub key_id: Option<Cow<'a, str>>,
    pub principal: Option<Cow<'a, str>>,
    pub endpoint: Option<Cow<'a, str>>,
    pub records: Option<u64>,
    pub bytes: Option<u64>,
    pub source_ip: Option<IpAddr>,
    pub user_agent: Option<Cow<'a, str>>,
    pub tenant: Option<Cow<'a, str>>,
    pub dropped_fields: u8,
}

impl<'a> RawEvent<'a> {
    pub fn event(&self) -> Event<'_> {
        Event {
            ts_ms: self.ts_ms,
            integration_id: &self.integration_id,
            resource: &self.resource,
            action: self.action,
            status: self.status,
            key_id: self.key_id.as_deref(),
            principal: self.principal.as_deref(),
            records: self.records,
            bytes: self.bytes,
            source_ip: self.source_ip,
        }
    }

    pub fn integration_id(&self) -> &str {
        &self.integration_id
    }

    pub fn ts_ms(&self) -> i64 {
        self.ts_ms
    }

    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }

    /// Optional fields a mapping profile dropped (failed cast or time).
    pub fn dropped_fields(&self) -> u8 {
        self.dropped_fields
    }

    /// Appends this event as one canonical v1 JSON object (no newline):
    /// what `tripline normalize` prints. `ts` is rendered as RFC 3339 UTC.
    pub fn write_canonical_json(&self, out: &mut Vec<u8>) {
        use serde::ser::{SerializeMap, Serializer};
        let mut ts = String::with_capacity(24);
        tripline_engine::time::write_rfc3339(&mut ts, self.ts_ms);
        let mut ser = serde_json::Serializer::new(out);
        // Writing into a Vec cannot fail; the map is built by hand so that
        // absent optional fields are omitted without an intermediate struct.
        let _ = (|| -> Result<(), serde_json::Error> {
            let mut m = ser.serialize_map(None)?;
            m.serialize_entry("ts", &ts)?;
            m.serialize_entry("integration_id", &*self.integration_id)?;
            m.serialize_entry("resource", &*self.resource)?;
            m.serialize_entry("method", &*self.method)?;
            m.serialize_entry("status", &self.status)?;
            m.serialize_entry("action", self.action.as_str())?;
            for (k, v) in [
                ("key_id", &self.key_id),
                ("principal", &self.principal),
                ("endpoint", &self.endpoint),
            ] {
                if let Some(v) = v {
                    m.serialize_entry(k, &**v)?;
                }
            }
            m.serialize_entry("records", &self.records)?;
            m.serialize_entry("bytes", &self.bytes)?;
            if let Some(ip) = &self.source_ip {
                m.serialize_entry("source_ip", &ip.to_string())?;
            }
            for (k, v) in [("user_agent", &self.user_agent), ("tenant", &self.tenant)] {
                if let Some(v) = v {
                    m.serialize_entry(k, &**v)?;
                }
            }
            m.end()
        })();
    }

    /// Applies the bounds of the canonical schema to already-typed fields
    /// (the same checks, with the same reasons, as [`parse_event`]).
    pub(crate) fn from_parts(p: Parts<'a>) -> Result<RawEvent<'a>, Reject> {
        if !(0..=MAX_TS_MS).contains(&p.ts_ms) {
            return Err(Reject::new(
                RejectReason::InvalidField,
                "`ts` outside 1970..9999",
            ));
        }
        let integration_id = bounded("integration_id", Some(Str(p.integration_id)), 256)?;
        let resource = bounded("resource", Some(Str(p.resource)), 128)?;
        let method_action = action_for_method(&p.method).ok_or_else(|| {
            Reject::new(
                RejectReason::InvalidField,
                "`method` must be GET, HEAD, POST, PUT, PATCH or DELETE",
            )
        })?;
        if !(100..=599).contains(&p.status) {
            return Err(Reject::new(
                RejectReason::InvalidField,
                format!("`status` {} outside 100-599", p.status),
            ));
        }
        Ok(RawEvent {
            ts_ms: p.ts_ms,
            integration_id,
            resource,
            method: p.method,
            action: p.action.unwrap_or(method_action),
            status: p.status,
            key_id: optional("key_id", p.key_id.map(Str), 256)?,
            principal: optional("principal", p.principal.map(Str), 256)?,
            endpoint: optional("endpoint", p.endpoint.map(Str), 1024)?,
            records: p.records.unwrap_or(1),
            bytes: p.bytes.unwrap_or(0),
            source_ip: p.source_ip,
            user_agent: optional("user_agent", p.user_agent.map(Str), 1024)?,
            tenant: optional("tenant", p.tenant.map(Str), 256)?,
            dropped_fields: p.dropped_fields,
        })
    }
}

fn action_for_method(m: &str) -> Option<Action> {
    // Upper case, as mapped formats always and canonical events usually
    // send it, without a case-insensitive compare per candidate.
    match m {
        "GET" | "HEAD" | "OPTIONS" => return Some(Action::Read),
        "POST" | "PUT" | "PATCH" => return Some(Action::Write),
        "DELETE" => return Some(Action::Delete),
        _ => {}
    }
    const READ: [&str; 3] = ["GET", "HEAD", "OPTIONS"];
    const WRITE: [&str; 3] = ["POST", "PUT", "PATCH"];
    if READ.iter().any(|x| x.eq_ignore_ascii_case(m)) {
        Some(Action::Read)
    } else if WRITE.iter().any(|x| x.eq_ignore_ascii_case(m)) {
        Some(Action::Write)
    } else if "DELETE".eq_ignore_ascii_case(m) {
        Some(Action::Delete)
    } else {
        None
    }
}

fn bounded<'a>(name: &str, v: Option<Str<'a>>, max: usize) -> Result<Cow<'a, str>, Reject> {
    let v = v
        .ok_or_else(|| {
            Reject::new(
                RejectReason::MissingField,
                format!("missing field `{name}`"),
            )
        })?
        .0;
    if v.is_empty() || v.len() > max {
        return Err(Reject::new(
            RejectReason::InvalidField,
            format!("`{name}` must be 1-{max} bytes, got {}", v.len()),
        ));
    }
    Ok(v)
}

fn optional<'a>(
    name: &str,
    v: Option<Str<'a>>,
    max: usize,
) -> Result<Option<Cow<'a, str>>, Reject> {
    match v {
        Some(Str(s)) if s.len() > max => Err(Reject::new(
            RejectReason::InvalidField,
            format!("`{name}` longer than {max} bytes"),
        )),
        Some(Str(s)) if s.is_empty() => Ok(None),
        Some(Str(s)) => Ok(Some(s)),
        None => Ok(None),
    }
}

/// A UTF-8 byte-order mark, as editors on some platforms save files.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses and validates one event. Never panics on any input.
///
/// A leading UTF-8 byte-order mark is ignored; anything but a JSON object
/// (an array, a number, …) is `invalid_json`.
pub fn parse_event(bytes: &[u8]) -> Result<RawEvent<'_>, Reject> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(Reject::too_large(bytes.len() as u64));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Reject::new(
            RejectReason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    // serde would read a top-level array as the struct's fields by position.
    if text.trim_start().as_bytes().first() != Some(&b'{') {
        return Err(Reject::new(
            RejectReason::InvalidJson,
            "an event must be a JSON object",
        ));
    }
    let w: Wire<'_> = serde_json::from_str(text).map_err(|e| {
        let reason = match e.classify() {
            serde_json::error::Category::Data => RejectReason::InvalidField,
            _ => RejectReason::InvalidJson,
        };
        Reject::new(reason, e.to_string())
    })?;
    let ts_ms =
        w.ts.ok_or_else(|| Reject::new(RejectReason::MissingField, "missing field `ts`"))?
            .0;
    if !(0..=MAX_TS_MS).contains(&ts_ms) {
        return Err(Reject::new(
            RejectReason::InvalidField,
            "`ts` outside 1970..9999",
        ));
    }
    let integration_id = bounded("integration_id", w.integration_id, 256)?;
    let resource = bounded("resource", w.resource, 128)?;
    let method = w
        .method
        .ok_or_else(|| Reject::new(RejectReason::MissingField, "missing field `method`"))?
        .0;
    let method_action = action_for_method(&method).ok_or_else(|| {
        Reject::new(
            RejectReason::InvalidField,
            "`method` must be GET, HEAD, POST, PUT, PATCH or DELETE",
        )
    })?;
    let status = w
        .status
        .map(|i| i.0)
        .ok_or_else(|| Reject::new(RejectReason::MissingField, "missing field `status`"))?;
    if !(100..=599).contains(&status) {
        return Err(Reject::new(
            RejectReason::InvalidField,
            format!("`status` {status} outside 100-599"),
        ));
    }
    let action = match w.action {
        None => method_action,
        Some(Str(a)) => Action::parse(&a).ok_or_else(|| {
            Reject::new(
                RejectReason::InvalidField,
                "`action` must be read, write, delete or export",
            )
        })?,
    };
    let source_ip = match w.source_ip {
        None => None,
        Some(Str(s)) => Some(s.parse::<IpAddr>().map_err(|_| {
            Reject::new(
                RejectReason::InvalidField,
                "`source_ip` is not an IPv4 or IPv6 address",
            )
        })?),
    };
    let _ = w.fields;
    Ok(RawEvent {
        ts_ms,
        integration_id,
        resource,
        method,
        action,
        status,
        key_id: optional("key_id", w.key_id, 256)?,
        principal: optional("principal", w.principal, 256)?,
        // Not bounded by the schema; kept (borrowed) only for `normalize`.
        endpoint: w.endpoint.map(|s| s.0),
        records: w.records.map_or(1, |i| i.0),
        bytes: w.bytes.map_or(0, |i| i.0),
        source_ip,
        user_agent: w.user_agent.map(|s| s.0),
        tenant: optional("tenant", w.tenant, 256)?,
        dropped_fields: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tripline_engine::time::parse_rfc3339;

    const SPEC_EXAMPLE: &str = r#"{"ts":"2026-11-29T14:03:12.345Z","integration_id":"mailchimp-sync","key_id":"key_3f9a12",
 "principal":"svc-mailchimp@acme.example","method":"GET","endpoint":"/crm/v3/objects/contacts",
 "resource":"contacts","fields":["email"],"records":100,"bytes":20480,"status":200,
 "source_ip":"198.51.100.23","user_agent":"mailchimp-connector/4.2"}"#;

    #[test]
    fn spec_example_parses_with_defaults_applied() {
        let raw = parse_event(SPEC_EXAMPLE.as_bytes()).unwrap();
        let ev = raw.event();
        assert_eq!(ev.integration_id, "mailchimp-sync");
        assert_eq!(ev.action, Action::Read);
        assert_eq!(ev.records, 100);
        assert_eq!(ev.ts_ms, parse_rfc3339("2026-11-29T14:03:12.345Z").unwrap());
        assert_eq!(ev.source_ip, Some("198.51.100.23".parse().unwrap()));
        let min = parse_event(br#"{"ts":1764424992345,"integration_id":"a","resource":"deals","method":"DELETE","status":204,"extra":{"x":[1]}}"#).unwrap();
        let ev = min.event();
        assert_eq!((ev.action, ev.records, ev.bytes), (Action::Delete, 1, 0));
        let exp = parse_event(br#"{"ts":0,"integration_id":"a","resource":"notes","method":"POST","action":"export","status":200}"#).unwrap();
        assert_eq!(exp.event().action, Action::Export);
    }

    /// serde's messages quote input (`invalid type: string "…"`); a detail
    /// reaches logs and the DLQ, so it must carry no raw controls. (A
    /// regression guard: serde quotes with `Debug`, which already escapes.)
    #[test]
    fn reject_details_never_carry_raw_controls() {
        let rej = parse_event(
            br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":"\u001b[2J\u202e\n"}"#,
        )
        .unwrap_err();
        assert_eq!(rej.reason, RejectReason::InvalidField);
        assert!(
            !tripline_engine::text::has_invisible(&rej.detail),
            "{:?}",
            rej.detail
        );
        assert!(rej.detail.contains("\\u{1b}[2J"), "{}", rej.detail);
    }

    /// Every reject detail (parser, mapped formats) is escaped and capped
    /// where it is built, whatever it quotes.
    #[test]
    fn every_reject_detail_is_escaped_and_capped() {
        let r = Reject::new(
            RejectReason::UnmappedResource,
            format!(
                "path /a\u{1b}]0;t\u{7}\r\u{8}\0\u{202e}\n{}",
                "y".repeat(2000)
            ),
        );
        assert!(
            !tripline_engine::text::has_invisible(&r.detail),
            "{:?}",
            r.detail
        );
        assert!(
            r.detail.starts_with("path /a\\u{1b}]0;t\\u{7}\\u{d}"),
            "{}",
            r.detail
        );
        assert!(r.detail.chars().count() <= MAX_DETAIL_CHARS);
        assert_eq!(
            Reject::new(RejectReason::InvalidJson, "plain").detail,
            "plain"
        );
    }

    #[test]
    fn a_leading_byte_order_mark_is_ignored() {
        let with_bom = format!("\u{feff}{SPEC_EXAMPLE}");
        let raw = parse_event(with_bom.as_bytes()).unwrap();
        assert_eq!(raw.event().integration_id, "mailchimp-sync");
        // Only one, and only leading.
        let two = format!("\u{feff}\u{feff}{SPEC_EXAMPLE}");
        assert_eq!(reason(two.as_bytes()), RejectReason::InvalidJson);
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let raw = parse_event(
            br#"{"ts":0,"integration_id":"a\u0062c","resource":"x","method":"GET","status":200}"#,
        )
        .unwrap();
        assert_eq!(raw.event().integration_id, "abc");
    }

    fn reason(s: &[u8]) -> RejectReason {
        parse_event(s).unwrap_err().reason
    }

    #[test]
    fn bad_input_is_rejected_with_the_right_reason() {
        use RejectReason::*;
        let cases: &[(&[u8], RejectReason)] = &[
            (b"not json", InvalidJson),
            (b"{\"ts\":0,", InvalidJson),
            (b"", InvalidJson),
            (b"[1,2]", InvalidJson),
            (br#"[1764424992345,"a","deals","GET",200]"#, InvalidJson),
            (b" [0]", InvalidJson),
            (b"5", InvalidJson),
            (b"null", InvalidJson),
            (b"\xff\xfe", InvalidUtf8),
            (br#"{"integration_id":"a","resource":"x","method":"GET","status":200}"#, MissingField),
            (br#"{"ts":0,"resource":"x","method":"GET","status":200}"#, MissingField),
            (br#"{"ts":0,"integration_id":"a","method":"GET","status":200}"#, MissingField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","status":200}"#, MissingField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET"}"#, MissingField),
            (br#"{"ts":"yesterday","integration_id":"a","resource":"x","method":"GET","status":200}"#, InvalidField),
            (br#"{"ts":-9223372036854775808,"integration_id":"a","resource":"x","method":"GET","status":200}"#, InvalidField),
            (br#"{"ts":18446744073709551615,"integration_id":"a","resource":"x","method":"GET","status":200}"#, InvalidField),
            (br#"{"ts":253402300800000,"integration_id":"a","resource":"x","method":"GET","status":200}"#, InvalidField),
            (br#"{"ts":0,"integration_id":"","resource":"x","method":"GET","status":200}"#, InvalidField),
            (br#"{"ts":0,"integration_id":7,"resource":"x","method":"GET","status":200}"#, InvalidField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","method":"BREW","status":200}"#, InvalidField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":999}"#, InvalidField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":200,"records":-1}"#, InvalidField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":200,"records":1.5}"#, InvalidField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":200,"records":"7"}"#, InvalidField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":70000.0}"#, InvalidField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":200,"bytes":-0.5}"#, InvalidField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":200,"action":"steal"}"#, InvalidField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":200,"source_ip":"nope"}"#, InvalidField),
            (br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":200,"fields":[1]}"#, InvalidField),
        ];
        for (input, want) in cases {
            assert_eq!(reason(input), *want, "{}", String::from_utf8_lossy(input));
        }
        let long = format!(
            r#"{{"ts":0,"integration_id":"{}","resource":"x","method":"GET","status":200}}"#,
            "a".repeat(257)
        );
        assert_eq!(reason(long.as_bytes()), InvalidField);
        let huge = vec![b' '; MAX_EVENT_BYTES + 1];
        assert_eq!(reason(&huge), TooLarge);
    }

    #[test]
    fn integral_floats_and_any_case_actions_are_accepted() {
        let ev = parse_event(br#"{"ts":0,"integration_id":"a","resource":"x","method":"GET","status":200.0,"records":100.0,"bytes":2048.0,"action":"EXPORT"}"#).unwrap();
        let ev = ev.event();
        assert_eq!((ev.status, ev.records, ev.bytes), (200, 100, 2048));
        assert_eq!(ev.action, Action::Export);
    }
}
