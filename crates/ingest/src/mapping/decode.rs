//! Decoders: bytes → a fixed array of slot values, one slot per field path
//! a profile names. Nothing else of the input is materialised.
//!
//! - JSON: the profile's RFC 6901 pointers are compiled into a [`Trie`]; a
//!   byte walker ([`walk`]) reads a record in one pass when it is sure of
//!   it, and otherwise one serde pass walks the document, descends only into keys on some pointer
//!   and skips the rest ([`Skip`], which allocates nothing). Strings borrow from the input unless
//!   they contain escapes — the same rule as the canonical `parse_event`.
//!   A pointer step that names a key where the document has an array reads
//!   an OTLP-style attribute list: `/attributes/http.request.method` finds
//!   `{"key":"http.request.method","value":{"stringValue":"GET"}}` among
//!   the array's elements, its `AnyValue` unwrapped (`stringValue`,
//!   `intValue`, `doubleValue`, `boolValue`), as well as the flat
//!   `{"attributes":{"http.request.method":"GET"}}`.
//! - Envelopes: a root pointer (CloudWatch `/logEvents`, CometD
//!   `/data/payload`), arrays exploded into one record per element (Kong
//!   batches), and records embedded as a JSON string (CloudWatch `message`).
//! - CSV: header names → slots once per file; each row fills slots with
//!   borrowed fields of the `csv` crate's reused `ByteRecord`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The visits of a seed that looks only inside objects (a [`Visitor<'de>`]
/// with `Value = ()`): every scalar and array is skipped without
/// allocating. Shared by the raw-root walk and the attribute-list element.
macro_rules! skip_all_but_maps {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Skip)?.is_some() {}
            Ok(())
        }
    };
}

mod attributes;
mod walk;
use attributes::KeyValueSeed;

/// Most distinct paths one profile may read (a bound, so a record's slots
/// live on the stack).
pub const MAX_SLOTS: usize = 48;

/// One extracted value.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Val<'a> {
    #[default]
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An object or array where a scalar was expected.
    Complex,
}

impl<'a> Val<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as text for string transforms; scalars other than strings
    /// are rendered (rare: e.g. a JSON boolean looked up in a map).
    pub fn into_text(self) -> Option<Cow<'a, str>> {
        match self {
            Val::Str(s) => Some(s),
            Val::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
            Val::Int(i) => Some(Cow::Owned(i.to_string())),
            Val::UInt(u) => Some(Cow::Owned(u.to_string())),
            Val::Float(x) => Some(Cow::Owned(x.to_string())),
            Val::Null | Val::Complex => None,
        }
    }
}

pub type Slots<'a> = [Val<'a>; MAX_SLOTS];

pub fn empty_slots<'a>() -> Slots<'a> {
    std::array::from_fn(|_| Val::Null)
}

/// String equality for the short keys and path segments of the per-record
/// walk: lengths and first bytes first, so the common mismatch costs no
/// `memcmp` call (which perf showed as a tenth of a Kong decode).
#[inline]
pub(crate) fn short_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.first() == b.first() && bytes_eq(a, b)
}

/// Byte equality of two short slices, eight bytes per step, inline (a
/// `memcmp` call costs more than the compare on keys and path segments).
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    for (p, q) in (&mut x).zip(&mut y) {
        if key_head(p) != key_head(q) {
            return false;
        }
    }
    x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

/// RFC 6901 pointer → reference tokens (`~1` → `/`, `~0` → `~`).
pub fn pointer_tokens(p: &str) -> Result<Vec<String>, String> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = p.strip_prefix('/') else {
        return Err(format!("JSON pointer `{p}` must start with `/`"));
    };
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

/// A child key of a trie node, with its first eight bytes as a word
/// ([`key_head`]): a lookup compares the length and that word, and only a
/// longer key's remaining bytes (no `memcmp` call for the common mismatch,
/// which perf showed as a tenth of a Kong decode).
#[derive(Debug, Clone)]
struct Key {
    len: usize,
    head: u64,
    name: Box<str>,
    child: u32,
}

impl Key {
    #[inline]
    fn is(&self, key: &[u8], head: u64) -> bool {
        self.head == head
            && self.len == key.len()
            && (self.len <= 8
                || bytes_eq(
                    self.name.as_bytes().get(8..).unwrap_or_default(),
                    key.get(8..).unwrap_or_default(),
                ))
    }
}

/// The first eight bytes of `b` as a little-endian word, zero-padded.
#[inline]
pub(crate) fn key_head(b: &[u8]) -> u64 {
    let mut h = [0u8; 8];
    for (d, s) in h.iter_mut().zip(b) {
        *d = *s;
    }
    u64::from_le_bytes(h)
}

#[derive(Debug, Default, Clone)]
struct Node {
    keys: Vec<Key>,
    slot: Option<u16>,
    /// Some child key is not an array index: an array here may be an
    /// attribute list of `{"key":…,"value":…}` elements.
    named: bool,
}

/// Pointers compiled into a tree of object keys / array indices.
#[derive(Debug, Clone)]
pub struct Trie {
    nodes: Vec<Node>,
}

impl Default for Trie {
    fn default() -> Self {
        Trie {
            nodes: vec![Node::default()],
        }
    }
}

impl Trie {
    /// Adds a pointer that fills `slot`.
    pub fn insert(&mut self, tokens: &[String], slot: u16) {
        let mut n = 0usize;
        for t in tokens {
            let next = self.nodes[n]
                .keys
                .iter()
                .find(|k| *k.name == **t)
                .map(|k| k.child as usize);
            n = match next {
                Some(c) => c,
                None => {
                    let c = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[n].keys.push(Key {
                        len: t.len(),
                        head: key_head(t.as_bytes()),
                        name: t.as_str().into(),
                        child: c as u32,
                    });
                    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                        self.nodes[n].named = true;
                    }
                    c
                }
            };
        }
        self.nodes[n].slot = Some(slot);
    }

    fn child(&self, node: usize, key: &str) -> Option<usize> {
        self.child_with_head(node, key.as_bytes(), key_head(key.as_bytes()))
    }

    /// [`Trie::child`] given the key's [`key_head`] (the walker has the
    /// word from its string scan).
    #[inline]
    fn child_with_head(&self, node: usize, key: &[u8], head: u64) -> Option<usize> {
        self.nodes[node]
            .keys
            .iter()
            .find(|k| k.is(key, head))
            .map(|k| k.child as usize)
    }

    /// Fills `slots` from one JSON document (a record): the byte walker
    /// ([`walk`]) when it is sure, else the serde walk, which then decides.
    pub fn extract<'de>(
        &self,
        json: &'de str,
        slots: &mut Slots<'de>,
    ) -> Result<(), serde_json::Error> {
        self.extract_walked(json, slots).map(|_| ())
    }

    /// [`Trie::extract`], telling whether the byte walker read the record:
    /// then every string it put in `slots` is borrowed (only the serde walk
    /// unescapes into owned ones).
    pub(crate) fn extract_walked<'de>(
        &self,
        json: &'de str,
        slots: &mut Slots<'de>,
    ) -> Result<bool, serde_json::Error> {
        if walk::extract(self, json, slots).is_ok() {
            return Ok(true);
        }
        self.extract_serde(json, slots).map(|()| false)
    }

    /// The serde walk: every document serde_json accepts, its errors.
    fn extract_serde<'de>(
        &self,
        json: &'de str,
        slots: &mut Slots<'de>,
    ) -> Result<(), serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(json);
        NodeSeed {
            trie: self,
            node: 0,
            slots,
        }
        .deserialize(&mut de)?;
        de.end()
    }
}

struct NodeSeed<'t, 's, 'de> {
    trie: &'t Trie,
    node: usize,
    slots: &'s mut Slots<'de>,
}

impl NodeSeed<'_, '_, '_> {
    fn put<'de>(slots: &mut Slots<'de>, slot: Option<u16>, v: Val<'de>) {
        if let Some(s) = slot {
            slots[usize::from(s)] = v;
        }
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Self::put(self.slots, self.trie.nodes[self.node].slot, Val::Bool(v));
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Self::put(self.slots, self.trie.nodes[self.node].slot, Val::Int(v));
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        Self::put(self.slots, self.trie.nodes[self.node].slot, Val::UInt(v));
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Self::put(self.slots, self.trie.nodes[self.node].slot, Val::Float(v));
        Ok(())
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        Self::put(
            self.slots,
            self.trie.nodes[self.node].slot,
            Val::Str(Cow::Borrowed(v)),
        );
        Ok(())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let slot = self.trie.nodes[self.node].slot;
        if slot.is_some() {
            Self::put(self.slots, slot, Val::Str(Cow::Owned(v.to_owned())));
        }
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Self::put(self.slots, self.trie.nodes[self.node].slot, Val::Null);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let NodeSeed { trie, node, slots } = self;
        Self::put(slots, trie.nodes[node].slot, Val::Complex);
        while let Some(child) = map.next_key_seed(KeySeed { trie, node })? {
            match child {
                Some(c) => map.next_value_seed(NodeSeed {
                    trie,
                    node: c,
                    slots: &mut *slots,
                })?,
                None => map.next_value_seed(Skip)?,
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let NodeSeed { trie, node, slots } = self;
        Self::put(slots, trie.nodes[node].slot, Val::Complex);
        let mut i = 0usize;
        loop {
            let child = if trie.nodes[node].keys.is_empty() {
                None
            } else {
                let mut buf = itoa_buf(i);
                trie.child(node, buf.as_str())
            };
            let more = match child {
                Some(c) => seq
                    .next_element_seed(NodeSeed {
                        trie,
                        node: c,
                        slots: &mut *slots,
                    })?
                    .is_some(),
                None if trie.nodes[node].named => seq
                    .next_element_seed(KeyValueSeed {
                        trie,
                        node,
                        slots: &mut *slots,
                    })?
                    .is_some(),
                None => seq.next_element_seed(Skip)?.is_some(),
            };
            if !more {
                return Ok(());
            }
            i += 1;
        }
    }
}

/// Skips a value the profile does not read. Unlike `IgnoredAny` (whose
/// serde_json fast path keeps a stack of nested containers in a buffer that
/// a new deserializer, one per record, allocates again), the recursion goes
/// through serde_json's own depth-limited `deserialize_any`, so skipping a
/// nested object allocates nothing. Strings borrow (an escaped one is
/// unescaped into the deserializer's buffer, as in `parse_event`).
pub(super) struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    skip_all_but_maps!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}

/// A small stack rendering of an array index, to compare with trie keys.
struct IdxBuf {
    b: [u8; 20],
    start: usize,
}

impl IdxBuf {
    fn as_str(&mut self) -> &str {
        std::str::from_utf8(&self.b[self.start..]).unwrap_or("")
    }
}

fn itoa_buf(mut i: usize) -> IdxBuf {
    let mut b = [0u8; 20];
    let mut start = 20;
    loop {
        start -= 1;
        b[start] = b'0' + (i % 10) as u8;
        i /= 10;
        if i == 0 {
            break;
        }
    }
    IdxBuf { b, start }
}

/// An object key, matched against the node's children without allocating.
struct KeySeed<'t> {
    trie: &'t Trie,
    node: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.trie.child(self.node, v))
    }
}

/// Where the records of a message are, for envelope formats.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// Alternative root pointers (first present wins); empty = the document.
    pub roots: Vec<Vec<String>>,
    /// Pointer inside each record element to a string holding the record.
    pub embedded: Option<Vec<String>>,
}

/// Finds the value at the first root pointer present, borrowed raw.
pub fn find_root<'de>(
    json: &'de str,
    roots: &[Vec<String>],
) -> Result<Option<&'de RawValue>, serde_json::Error> {
    let mut trie = Trie::default();
    for (i, r) in roots.iter().enumerate() {
        trie.insert(r, i as u16);
    }
    let mut found: [Option<&'de RawValue>; 4] = [None; 4];
    let mut de = serde_json::Deserializer::from_str(json);
    RawSeed {
        trie: &trie,
        node: 0,
        found: &mut found,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(found.into_iter().flatten().next())
}

struct RawSeed<'t, 'f, 'de> {
    trie: &'t Trie,
    node: usize,
    found: &'f mut [Option<&'de RawValue>; 4],
}

impl<'de> DeserializeSeed<'de> for RawSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let n = &self.trie.nodes[self.node];
        if let Some(slot) = n.slot {
            let raw = <&'de RawValue as serde::Deserialize>::deserialize(d)?;
            if let Some(f) = self.found.get_mut(usize::from(slot)) {
                *f = Some(raw);
            }
            return Ok(());
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RawSeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    skip_all_but_maps!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let RawSeed { trie, node, found } = self;
        while let Some(child) = map.next_key_seed(KeySeed { trie, node })? {
            match child {
                Some(c) => map.next_value_seed(RawSeed {
                    trie,
                    node: c,
                    found: &mut *found,
                })?,
                None => map.next_value_seed(Skip)?,
            }
        }
        Ok(())
    }
}

/// The elements of a JSON array, borrowed raw (one allocation per message,
/// not per event).
pub fn array_elements(json: &str) -> Result<Vec<&RawValue>, serde_json::Error> {
    serde_json::from_str(json)
}

/// The string at `pointer` inside `json`, unescaped (one allocation per
/// record when the record is embedded as a string, which always has escapes).
pub fn string_at<'de>(
    json: &'de str,
    pointer: &[String],
) -> Result<Option<Cow<'de, str>>, serde_json::Error> {
    let mut trie = Trie::default();
    trie.insert(pointer, 0);
    let mut slots = empty_slots();
    trie.extract(json, &mut slots)?;
    Ok(match std::mem::take(&mut slots[0]) {
        Val::Str(s) => Some(s),
        _ => None,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A trie of `paths`, slot i for path i (also the walker's tests').
    pub(in crate::mapping::decode) fn trie(paths: &[&str]) -> Trie {
        let mut t = Trie::default();
        for (i, p) in paths.iter().enumerate() {
            t.insert(&pointer_tokens(p).unwrap(), i as u16);
        }
        t
    }

    #[test]
    fn pointers_pick_nested_values_and_array_indices_borrowing_strings() {
        let t = trie(&["/a/b", "/c/1", "/x~1y", "/n", "/missing", "/obj"]);
        let doc = r#"{"skip":{"a":[1,2]},"a":{"b":"hi","z":3},"c":[10,"ten"],"x/y":2.5,"n":null,"obj":{"k":1}}"#;
        let mut s = empty_slots();
        t.extract(doc, &mut s).unwrap();
        assert!(matches!(&s[0], Val::Str(Cow::Borrowed("hi"))));
        assert_eq!(s[1], Val::Str(Cow::Borrowed("ten")));
        assert_eq!(s[2], Val::Float(2.5));
        assert_eq!(s[3], Val::Null);
        assert_eq!(s[4], Val::Null);
        assert_eq!(s[5], Val::Complex);
        assert!(t.extract("{\"a\":", &mut empty_slots()).is_err());
        assert!(t.extract("{} trailing", &mut empty_slots()).is_err());
    }

    #[test]
    fn attribute_lists_are_read_like_maps_in_either_field_order() {
        let t = trie(&[
            "/attributes/m",
            "/attributes/s",
            "/attributes/a",
            "/attributes/x",
        ]);
        let list = r#"{"attributes":[
            {"key":"m","value":{"stringValue":"GET"}},
            {"value":{"intValue":"200"},"key":"s"},
            {"key":"other","value":{"stringValue":"skipped"}},
            {"key":"a","value":{"arrayValue":{"values":[]}}},
            {"key":"x","value":7},
            "not an attribute", 3, null
        ]}"#;
        let mut s = empty_slots();
        t.extract(list, &mut s).unwrap();
        assert!(matches!(&s[0], Val::Str(Cow::Borrowed("GET"))));
        assert_eq!(s[1], Val::Str(Cow::Borrowed("200")));
        assert_eq!(s[2], Val::Complex);
        assert_eq!(s[3], Val::UInt(7));
        // The flat shape still reads the same pointers.
        let mut s = empty_slots();
        t.extract(r#"{"attributes":{"m":"GET","s":200}}"#, &mut s)
            .unwrap();
        assert_eq!(s[0], Val::Str(Cow::Borrowed("GET")));
        assert_eq!(s[1], Val::UInt(200));
        // Array indices keep their meaning where the pointer has one.
        let mut s = empty_slots();
        trie(&["/a/1"])
            .extract(r#"{"a":[{"key":"1","value":"no"},"yes"]}"#, &mut s)
            .unwrap();
        assert_eq!(s[0], Val::Str(Cow::Borrowed("yes")));
    }

    #[test]
    fn roots_and_embedded_records() {
        let doc =
            r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"1","message":"{\"a\":1}"}]}"#;
        let roots = vec![
            pointer_tokens("/records").unwrap(),
            pointer_tokens("/logEvents").unwrap(),
        ];
        let root = find_root(doc, &roots).unwrap().unwrap();
        let els = array_elements(root.get()).unwrap();
        assert_eq!(els.len(), 1);
        let inner = string_at(els[0].get(), &pointer_tokens("/message").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(inner, r#"{"a":1}"#);
        assert!(find_root(r#"{"x":1}"#, &roots).unwrap().is_none());
    }
}
