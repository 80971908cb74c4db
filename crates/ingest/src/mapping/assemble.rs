//! Slot values → a validated [`RawEvent`], with the reject rules of
//! `docs/specs/events.md`: a required field still null after its fallbacks
//! is `missing_field`; one that fails its cast or time format is
//! `invalid_field`; a path no route matches is `unmapped_resource`; an
//! optional field that fails is dropped and counted on the event.

use std::borrow::Cow;

use tripline_engine::Action;

use super::decode::{Slots, Val};
use super::transform::{self, cast_ip, cast_u64, parse_time, TimeFormat};
use super::{Field, Input, Mapping, Source, Target};
use crate::event::{Parts, RawEvent, Reject, RejectReason};

/// Bounds for optional strings (an over-long one is dropped, not fatal).
const MAX_OPTIONAL: usize = 256;
const MAX_TEXT: usize = 1024;
/// How much of an unmatched path a reject detail carries.
const MAX_DETAIL_PATH: usize = 128;
const DEFAULT_TIME: [TimeFormat; 2] = [TimeFormat::Rfc3339, TimeFormat::EpochMs];

/// A route's (resource, action, endpoint template).
type Routed<'x> = (Option<Cow<'x, str>>, Option<Action>, Option<&'x str>);

/// Result of evaluating one field.
enum Picked<'x> {
    Absent,
    Value(Val<'x>),
    /// A source produced a value its transforms could not handle.
    Bad(&'static str),
}

impl Mapping {
    fn is_empty_value(&self, v: &Val<'_>) -> bool {
        match v {
            Val::Null => true,
            Val::Str(s) => s.is_empty() || self.empty_values.iter().any(|e| **e == **s),
            _ => false,
        }
    }

    fn pick<'x>(&'x self, field: &'x Field, slots: &Slots<'x>) -> (Picked<'x>, Option<&'x Source>) {
        if let Some(i) = field.plain {
            // The loop below for a field with one plain source.
            let v = &slots[usize::from(i)];
            if self.is_empty_value(v) {
                return (Picked::Absent, None);
            }
            return (Picked::Value(v.clone()), field.sources.first());
        }
        for src in &field.sources {
            if let Some(w) = &src.when {
                let ok = slots[usize::from(w.slot)]
                    .as_str()
                    .is_some_and(|s| w.values.iter().any(|v| **v == *s));
                if !ok {
                    continue;
                }
            }
            let v = match &src.input {
                Input::Slot(i) => slots[usize::from(*i)].clone(),
                Input::Const(c) => Val::Str(Cow::Borrowed(c)),
            };
            if self.is_empty_value(&v) {
                continue;
            }
            match self.apply(src, v) {
                Picked::Absent => continue,
                p => return (p, Some(src)),
            }
        }
        (Picked::Absent, None)
    }

    /// The string transforms of one source, in a fixed order:
    /// strip_query → regex → map → case → sfid18 → hash
    /// (map before case, so an alias table can name `Contact` → `contacts`
    /// and anything it misses is still lower-cased).
    fn apply<'x>(&'x self, src: &'x Source, v: Val<'x>) -> Picked<'x> {
        if !src.has_text_ops() {
            return Picked::Value(v);
        }
        let Some(mut s) = v.into_text() else {
            return Picked::Bad("not a scalar");
        };
        if src.strip_query {
            s = match s {
                Cow::Borrowed(b) => Cow::Borrowed(transform::strip_query(b)),
                Cow::Owned(o) => Cow::Owned(transform::strip_query(&o).to_owned()),
            };
        }
        if let Some(re) = &src.regex {
            let range = match re.captures(&s).and_then(|c| c.get(1)) {
                Some(m) => m.range(),
                None => return Picked::Absent,
            };
            s = match s {
                Cow::Borrowed(b) => Cow::Borrowed(&b[range]),
                Cow::Owned(o) => Cow::Owned(o[range].to_owned()),
            };
        }
        if let Some(m) = src.map.and_then(|i| self.maps.get(i)) {
            match m.get(&*s) {
                Some(hit) => s = Cow::Borrowed(hit),
                None if src.miss_null => return Picked::Absent,
                None => {}
            }
        }
        match src.upper {
            Some(true) => s = transform::upper(s),
            Some(false) => s = transform::lower(s),
            None => {}
        }
        if src.sfid18 {
            match transform::sfid18(s) {
                Some(id) => s = id,
                None => return Picked::Bad("not a 15- or 18-character Salesforce id"),
            }
        }
        if let Some(key) = &src.hash {
            s = Cow::Owned(transform::keyed_hash(key, &s));
        }
        if s.is_empty() {
            return Picked::Absent;
        }
        Picked::Value(Val::Str(s))
    }

    fn field<'x>(&'x self, t: Target, slots: &Slots<'x>) -> (Picked<'x>, Option<&'x Source>) {
        self.pick(&self.fields[t as usize], slots)
    }

    fn required_text<'x>(&'x self, t: Target, slots: &Slots<'x>) -> Result<Cow<'x, str>, Reject> {
        match self.field(t, slots).0 {
            Picked::Absent => Err(missing(t)),
            Picked::Bad(why) => Err(invalid(t, why)),
            Picked::Value(Val::Str(s)) => Ok(s),
            Picked::Value(_) => Err(invalid(t, "not a string")),
        }
    }

    /// An optional string: absent, or dropped (and counted) when unusable.
    fn optional_text<'x>(
        &'x self,
        t: Target,
        slots: &Slots<'x>,
        dropped: &mut u8,
    ) -> Option<Cow<'x, str>> {
        let max = if matches!(t, Target::UserAgent | Target::Endpoint | Target::Url) {
            MAX_TEXT
        } else {
            MAX_OPTIONAL
        };
        match self.field(t, slots).0 {
            Picked::Absent => None,
            Picked::Value(Val::Str(s)) if s.len() <= max => Some(s),
            // Ids that are numbers in the source (e.g. a numeric consumer id).
            Picked::Value(v @ (Val::Int(_) | Val::UInt(_))) => v.into_text(),
            _ => {
                *dropped = dropped.saturating_add(1);
                None
            }
        }
    }

    fn optional_u64(&self, t: Target, slots: &Slots<'_>, dropped: &mut u8) -> Option<u64> {
        match self.field(t, slots).0 {
            Picked::Absent => None,
            Picked::Value(v) => {
                let n = cast_u64(&v);
                if n.is_none() {
                    *dropped = dropped.saturating_add(1);
                }
                n
            }
            Picked::Bad(_) => {
                *dropped = dropped.saturating_add(1);
                None
            }
        }
    }

    /// Builds the event of one record.
    pub(crate) fn assemble<'x>(&'x self, slots: &mut Slots<'x>) -> Result<RawEvent<'x>, Reject> {
        let slots: &Slots<'x> = slots;
        let mut dropped = 0u8;
        let ts_ms = match self.field(Target::Ts, slots) {
            (Picked::Absent, _) => return Err(missing(Target::Ts)),
            (Picked::Bad(why), _) => return Err(invalid(Target::Ts, why)),
            (Picked::Value(v), src) => {
                let formats = src.map_or(&DEFAULT_TIME[..], |s| {
                    if s.time.is_empty() {
                        &DEFAULT_TIME[..]
                    } else {
                        &s.time[..]
                    }
                });
                parse_time(&v, formats)
                    .ok_or_else(|| invalid(Target::Ts, "not a time in the profile's formats"))?
            }
        };
        let integration_id = self.required_text(Target::IntegrationId, slots)?;
        let method = transform::upper(self.required_text(Target::Method, slots)?);
        let status = match self.field(Target::Status, slots).0 {
            Picked::Absent => return Err(missing(Target::Status)),
            Picked::Bad(why) => return Err(invalid(Target::Status, why)),
            Picked::Value(v) => cast_u64(&v)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| invalid(Target::Status, "not an integer status"))?,
        };
        let url = self.optional_text(Target::Url, slots, &mut dropped);
        // A route borrows from the URL; an unescaped URL (the usual case) is
        // borrowed from the input, an escaped one is local, so its capture is
        // copied out.
        let mut routed: Option<Routed<'x>> = match &url {
            None => None,
            Some(_) if self.routes.is_empty() => None,
            Some(Cow::Borrowed(u)) => self.routes.route(u).map(|r| {
                (
                    r.resource,
                    r.action,
                    r.rule.and_then(|i| self.routes.template(i)),
                )
            }),
            Some(Cow::Owned(u)) => self.routes.route(u).map(|r| {
                (
                    r.resource.map(|c| Cow::Owned(c.into_owned())),
                    r.action,
                    r.rule.and_then(|i| self.routes.template(i)),
                )
            }),
        };
        let resource = match self.field(Target::Resource, slots).0 {
            Picked::Value(Val::Str(s)) => s,
            Picked::Value(_) => return Err(invalid(Target::Resource, "not a string")),
            Picked::Bad(why) => return Err(invalid(Target::Resource, why)),
            Picked::Absent => match routed.as_mut().and_then(|r| r.0.take()) {
                Some(r) => r,
                None if self.routes.is_empty() => return Err(missing(Target::Resource)),
                None => match &url {
                    None => return Err(missing(Target::Url)),
                    Some(u) => return Err(unmapped(u)),
                },
            },
        };
        let action = match self.field(Target::Action, slots).0 {
            Picked::Value(Val::Str(s)) => match Action::parse(&s) {
                Some(a) => Some(a),
                None => {
                    dropped = dropped.saturating_add(1);
                    None
                }
            },
            Picked::Absent => None,
            _ => {
                dropped = dropped.saturating_add(1);
                None
            }
        }
        .or_else(|| routed.as_ref().and_then(|r| r.1));
        let endpoint = self
            .optional_text(Target::Endpoint, slots, &mut dropped)
            .or_else(|| routed.as_ref().and_then(|r| r.2).map(Cow::Borrowed));
        let source_ip = match self.field(Target::SourceIp, slots).0 {
            Picked::Absent => None,
            Picked::Value(v) => {
                let ip = cast_ip(&v);
                if ip.is_none() {
                    dropped = dropped.saturating_add(1);
                }
                ip
            }
            Picked::Bad(_) => {
                dropped = dropped.saturating_add(1);
                None
            }
        };
        let parts = Parts {
            ts_ms,
            integration_id,
            resource,
            method,
            status,
            action,
            key_id: self.optional_text(Target::KeyId, slots, &mut dropped),
            principal: self.optional_text(Target::Principal, slots, &mut dropped),
            endpoint,
            records: self.optional_u64(Target::Records, slots, &mut dropped),
            bytes: self.optional_u64(Target::Bytes, slots, &mut dropped),
            source_ip,
            user_agent: self.optional_text(Target::UserAgent, slots, &mut dropped),
            tenant: self.optional_text(Target::Tenant, slots, &mut dropped),
            dropped_fields: dropped,
        };
        RawEvent::from_parts(parts)
    }
}

fn missing(t: Target) -> Reject {
    Reject::new(
        RejectReason::MissingField,
        format!(
            "missing field `{}` (no source of the profile has a value)",
            t.name()
        ),
    )
}

fn invalid(t: Target, why: &str) -> Reject {
    Reject::new(RejectReason::InvalidField, format!("`{}`: {why}", t.name()))
}

fn unmapped(url: &str) -> Reject {
    let path = transform::strip_query(url);
    let mut end = path.len().min(MAX_DETAIL_PATH);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    Reject::new(
        RejectReason::UnmappedResource,
        format!("no route matches path {:?}", &path[..end]),
    )
}
