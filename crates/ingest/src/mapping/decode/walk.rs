//! The fast path of [`Trie::extract`]: one pass over the record's bytes
//! that descends only into keys on some pointer and skips everything else
//! by scanning, without serde's visitor dispatch per value.
//!
//! The walker is a strict **subset** of serde_json: it accepts only what
//! serde_json accepts and fills the slots exactly as the serde walk
//! ([`super::NodeSeed`]) does. Whatever it is not sure of — an escape in a
//! key or in a string it reads, a `\u` escape anywhere (surrogates), a
//! number with an exponent or of more than 20 bytes, nesting deeper than
//! 100, a non-string attribute `key`, any syntax error — it declines with
//! [`Decline`], and the caller runs the serde walk on the same record, which
//! then decides (and words any error) exactly as before. Numbers it reads
//! are converted by serde_json itself, so their values are identical.
//!
//! Slots written before a decline are a prefix of what the serde walk
//! writes in the same document order, so the serde pass overwrites them.
//! `tests::walker_agrees_with_serde_on_arbitrary_documents` (proptest)
//! checks both walks give the same slots, and that the walker accepts only
//! documents serde_json accepts.

use std::borrow::Cow;

use serde::de::{Deserializer, Visitor};

use super::{itoa_buf, Slots, Trie, Val};

/// The walker is not sure; the serde walk decides.
#[derive(Debug)]
pub(super) struct Decline;

type R<T = ()> = Result<T, Decline>;

/// Deeper nesting declines (serde_json's own limit is 127 levels).
const MAX_DEPTH: u32 = 100;

/// Walks `json`, filling `slots` as [`Trie::extract`]'s serde walk does.
pub(super) fn extract<'de>(trie: &Trie, json: &'de str, slots: &mut Slots<'de>) -> R {
    let mut w = Walker {
        b: json.as_bytes(),
        s: json,
        i: 0,
        trie,
        slots,
    };
    w.value(0, 0)?;
    w.ws();
    if w.i == w.b.len() {
        Ok(())
    } else {
        Err(Decline)
    }
}

struct Walker<'t, 's, 'de> {
    b: &'de [u8],
    s: &'de str,
    i: usize,
    trie: &'t Trie,
    slots: &'s mut Slots<'de>,
}

impl<'de> Walker<'_, '_, 'de> {
    /// Skips whitespace: one compare when there is none (compact JSON).
    #[inline]
    fn ws(&mut self) {
        if self.b.get(self.i).is_some_and(|&c| c <= b' ') {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
                self.i += 1;
            }
        }
    }

    #[inline]
    fn peek(&self) -> R<u8> {
        self.b.get(self.i).copied().ok_or(Decline)
    }

    #[inline]
    fn eat(&mut self, c: u8) -> R {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Decline)
        }
    }

    #[inline(always)]
    fn put(&mut self, node: usize, v: Val<'de>) {
        if let Some(s) = self.trie.nodes[node].slot {
            self.slots[usize::from(s)] = v;
        }
    }

    /// A value at trie node `node` (NodeSeed): scalars here, inline in
    /// each caller's loop; objects and arrays in [`Walker::container`].
    #[inline]
    fn value(&mut self, node: usize, depth: u32) -> R {
        self.ws();
        match self.peek()? {
            b'{' | b'[' => self.container(node, depth),
            b'"' => {
                if self.trie.nodes[node].slot.is_some() {
                    let s = self.plain_string()?;
                    self.put(node, Val::Str(Cow::Borrowed(s)));
                    Ok(())
                } else {
                    self.skip_string()
                }
            }
            _ => {
                let v = self.scalar()?;
                self.put(node, v);
                Ok(())
            }
        }
    }

    /// The object or array at the walker's position, at trie node `node`.
    fn container(&mut self, node: usize, depth: u32) -> R {
        match self.peek()? {
            // `{…}`: keys on a pointer descend, the rest are skipped.
            b'{' => {
                self.put(node, Val::Complex);
                self.object(node, depth)
            }
            // `[…]`: indices on a pointer descend; under a node whose
            // children are named, elements are attribute `{key, value}` pairs.
            b'[' => {
                self.put(node, Val::Complex);
                let n = &self.trie.nodes[node];
                let (indexed, named) = (!n.keys.is_empty(), n.named);
                self.elements(depth, |w, idx, d| {
                    let child = if indexed {
                        let mut buf = itoa_buf(idx);
                        w.trie.child(node, buf.as_str())
                    } else {
                        None
                    };
                    match child {
                        Some(c) => w.value(c, d),
                        None if named => w.key_value(node, d),
                        None => w.skip_value(d),
                    }
                })
            }
            _ => Err(Decline),
        }
    }

    /// The object at `{` under trie node `node`: members whose key is on a
    /// pointer descend, the rest are skipped. Keys with escapes decline.
    fn object(&mut self, node: usize, depth: u32) -> R {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(Decline);
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let (key, head) = self.key()?;
            self.colon()?;
            match self.trie.child_with_head(node, key, head) {
                Some(c) => self.value(c, depth)?,
                None => self.skip_value(depth)?,
            }
            if self.end_of(b'}')? {
                return Ok(());
            }
        }
    }

    /// Skips the object at `{`, checking its syntax; its keys are skipped
    /// as strings (simple escapes allowed, as in any skipped string).
    fn skip_object(&mut self, depth: u32) -> R {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(Decline);
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            self.skip_string()?;
            self.colon()?;
            self.skip_value(depth)?;
            if self.end_of(b'}')? {
                return Ok(());
            }
        }
    }

    /// The members of the object at `{`: `member` reads each value (the
    /// walker is after the key's `:`), given the key and the nesting depth.
    /// Keys with escapes decline.
    #[inline]
    fn members(&mut self, depth: u32, mut member: impl FnMut(&mut Self, &'de str, u32) -> R) -> R {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(Decline);
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let key = self.plain_string()?;
            self.colon()?;
            member(self, key, depth)?;
            if self.end_of(b'}')? {
                return Ok(());
            }
        }
    }

    /// The elements of the array at `[`: `element` reads each, given its
    /// index and the nesting depth.
    #[inline]
    fn elements(&mut self, depth: u32, mut element: impl FnMut(&mut Self, usize, u32) -> R) -> R {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(Decline);
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(());
        }
        let mut idx = 0usize;
        loop {
            element(self, idx, depth)?;
            if self.end_of(b']')? {
                return Ok(());
            }
            idx += 1;
        }
    }

    /// The `:` after a key: one compare in compact JSON.
    #[inline(always)]
    fn colon(&mut self) -> R {
        if self.b.get(self.i) == Some(&b':') {
            self.i += 1;
            return Ok(());
        }
        self.ws();
        self.eat(b':')
    }

    /// After a member: `,` (more follow) or `close` (done).
    #[inline(always)]
    fn end_of(&mut self, close: u8) -> R<bool> {
        let c = match self.b.get(self.i) {
            Some(&c) if c > b' ' => c,
            _ => {
                self.ws();
                self.peek()?
            }
        };
        match c {
            b',' => {
                self.i += 1;
                Ok(false)
            }
            c if c == close => {
                self.i += 1;
                Ok(true)
            }
            _ => Err(Decline),
        }
    }

    /// One attribute-list element (KeyValueSeed): `{"key": K, "value": V}`
    /// in either order fills the child of `node` named K; anything other
    /// than an object is skipped.
    fn key_value(&mut self, node: usize, depth: u32) -> R {
        self.ws();
        if self.peek()? != b'{' {
            return self.skip_value(depth);
        }
        // `None`: no "key" yet; `Some(None)`: a key no pointer names.
        let mut target: Option<Option<usize>> = None;
        let mut pending: Option<(usize, u32)> = None;
        self.members(depth, |w, field, d| match field {
            "key" => {
                w.ws();
                if w.peek()? != b'"' {
                    return Err(Decline); // serde: invalid type (Data)
                }
                let k = w.plain_string()?;
                target = Some(w.trie.child(node, k));
                Ok(())
            }
            "value" => match target {
                Some(Some(c)) => w.any_value(c, d),
                Some(None) => w.skip_value(d),
                None => {
                    w.ws();
                    pending = Some((w.i, d));
                    w.skip_value(d)
                }
            },
            _ => w.skip_value(d),
        })?;
        if let (Some(Some(c)), Some((at, d))) = (target, pending) {
            let resume = self.i;
            self.i = at;
            self.any_value(c, d)?;
            self.i = resume;
        }
        Ok(())
    }

    /// An attribute's value (AnyValueSeed): `{"stringValue": …}` and the
    /// other scalar kinds unwrapped; arrays and other kinds are complex.
    fn any_value(&mut self, node: usize, depth: u32) -> R {
        self.ws();
        match self.peek()? {
            b'[' => {
                self.put(node, Val::Complex);
                self.skip_value(depth)
            }
            b'{' => self.members(depth, |w, kind, d| {
                if matches!(
                    kind,
                    "stringValue" | "intValue" | "doubleValue" | "boolValue"
                ) {
                    w.value(node, d)
                } else {
                    w.put(node, Val::Complex);
                    w.skip_value(d)
                }
            }),
            _ => self.value(node, depth),
        }
    }

    /// Skips any value, checking its syntax: scalars inline, objects and
    /// arrays in [`Walker::skip_container`].
    #[inline]
    fn skip_value(&mut self, depth: u32) -> R {
        self.ws();
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' => self.skip_container(depth),
            _ => self.scalar_end().map(|_| ()),
        }
    }

    fn skip_container(&mut self, depth: u32) -> R {
        if self.peek()? == b'{' {
            self.skip_object(depth)
        } else {
            self.elements(depth, |w, _, d| w.skip_value(d))
        }
    }

    /// A string without escapes, borrowed (at its opening quote).
    #[inline]
    fn plain_string(&mut self) -> R<&'de str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = stop(self.b, start).ok_or(Decline)?;
        if self.b[end] != b'"' {
            return Err(Decline);
        }
        self.i = end + 1;
        // Both ends are ASCII quotes of valid UTF-8, so this is a char boundary.
        self.s.get(start..end).ok_or(Decline)
    }

    /// An object key without escapes, borrowed (at its opening quote), and
    /// its first eight bytes as a word ([`super::key_head`]), taken from the
    /// scan's own first load.
    #[inline]
    fn key(&mut self) -> R<(&'de [u8], u64)> {
        self.eat(b'"')?;
        let start = self.i;
        let Some(chunk) = self.b.get(start..).and_then(|r| r.first_chunk::<8>()) else {
            // Within eight bytes of the end: the plain scan.
            self.i = start - 1;
            let key = self.plain_string()?.as_bytes();
            return Ok((key, super::key_head(key)));
        };
        let w = u64::from_le_bytes(*chunk);
        let m = specials(w);
        if m == 0 {
            // Eight bytes or more: the head is the whole word.
            let end = stop(self.b, start + 8).ok_or(Decline)?;
            if self.b[end] != b'"' {
                return Err(Decline);
            }
            self.i = end + 1;
            return Ok((self.b.get(start..end).ok_or(Decline)?, w));
        }
        let n = (m.trailing_zeros() / 8) as usize;
        if chunk[n] != b'"' {
            return Err(Decline);
        }
        self.i = start + n + 1;
        let head = if n == 0 {
            0
        } else {
            w & (u64::MAX >> (64 - 8 * n))
        };
        Ok((self.b.get(start..start + n).ok_or(Decline)?, head))
    }

    /// Skips a string (at its opening quote); simple escapes are allowed,
    /// `\u` declines (surrogate rules are serde's to apply).
    fn skip_string(&mut self) -> R {
        self.eat(b'"')?;
        loop {
            let at = stop(self.b, self.i).ok_or(Decline)?;
            self.i = at + 1;
            match self.b[at] {
                b'"' => return Ok(()),
                b'\\' => match self.b.get(self.i) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                    _ => return Err(Decline),
                },
                _ => return Err(Decline), // a raw control character
            }
        }
    }

    /// A literal or a number, converted as serde_json converts it.
    fn scalar(&mut self) -> R<Val<'de>> {
        let span = self.scalar_span()?;
        // The span is in the grammar: its first byte tells what it is.
        Ok(match span.as_bytes().first() {
            Some(b't') => Val::Bool(true),
            Some(b'f') => Val::Bool(false),
            Some(b'n') => Val::Null,
            _ => number(span)?,
        })
    }

    /// The span of `true`, `false`, `null` or a number in JSON's grammar
    /// (without an exponent, at most 20 bytes).
    #[inline]
    fn scalar_span(&mut self) -> R<&'de str> {
        let start = self.i;
        self.scalar_end()?;
        // Both ends are ASCII, so this is a char boundary.
        self.s.get(start..self.i).ok_or(Decline)
    }

    /// Moves past [`Walker::scalar_span`]'s span, checking it.
    #[inline]
    fn scalar_end(&mut self) -> R {
        let start = self.i;
        let b = self.b;
        match self.peek()? {
            c @ (b't' | b'f' | b'n') => {
                let lit: &[u8] = match c {
                    b't' => b"true",
                    b'f' => b"false",
                    _ => b"null",
                };
                if !b[start..].starts_with(lit) {
                    return Err(Decline);
                }
                self.i += lit.len();
            }
            _ => {
                let mut i = start;
                if b.get(i) == Some(&b'-') {
                    i += 1;
                }
                match b.get(i) {
                    Some(b'0') => i += 1,
                    Some(b'1'..=b'9') => {
                        while let Some(b'0'..=b'9') = b.get(i) {
                            i += 1;
                        }
                    }
                    _ => return Err(Decline),
                }
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    let digits = i;
                    while let Some(b'0'..=b'9') = b.get(i) {
                        i += 1;
                    }
                    if i == digits {
                        return Err(Decline);
                    }
                }
                if matches!(b.get(i), Some(b'e' | b'E')) || i - start > 20 {
                    return Err(Decline);
                }
                self.i = i;
            }
        }
        // A number or literal must end at a delimiter.
        match b.get(self.i) {
            None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') => Ok(()),
            _ => Err(Decline),
        }
    }
}

/// The index of the first `"`, `\\` or raw control character (which a
/// JSON string may not hold) at or after `i`: eight bytes per step (SWAR;
/// record strings are short, so this beats a SIMD search's setup).
#[inline]
fn stop(b: &[u8], i: usize) -> Option<usize> {
    let mut chunks = b.get(i..)?.chunks_exact(8);
    let mut at = i;
    for chunk in &mut chunks {
        let m = specials(u64::from_le_bytes(chunk.try_into().ok()?));
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|p| at + p)
}

/// The high bit of each byte of the little-endian word `w` that is a `"`,
/// a `\\` or below 0x20, and possibly of bytes above such a one (borrows
/// propagate upwards): the lowest flagged byte is always a true one.
#[inline]
fn specials(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const QUOTE: u64 = LO * b'"' as u64;
    const BACKSLASH: u64 = LO * b'\\' as u64;
    let (q, s) = (w ^ QUOTE, w ^ BACKSLASH);
    ((q.wrapping_sub(LO) & !q) | (s.wrapping_sub(LO) & !s) | (w.wrapping_sub(LO * 0x20) & !w)) & HI
}

/// A number span (already in JSON's grammar) as serde_json's own
/// deserializer reads it: i64 for negatives, u64 otherwise, f64 for
/// fractions and integers out of range.
fn number<'de>(span: &str) -> R<Val<'de>> {
    // A non-negative integer of at most 19 digits always fits a u64, which
    // is what serde_json makes of it; everything else is serde_json's.
    let b = span.as_bytes();
    if b.len() <= 19 && b.iter().all(u8::is_ascii_digit) {
        let v = b.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
        return Ok(Val::UInt(v));
    }
    struct NumVisitor;
    impl Visitor<'_> for NumVisitor {
        type Value = Val<'static>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a number")
        }
        fn visit_i64<E>(self, v: i64) -> Result<Val<'static>, E> {
            Ok(Val::Int(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Val<'static>, E> {
            Ok(Val::UInt(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Val<'static>, E> {
            Ok(Val::Float(v))
        }
    }
    let mut de = serde_json::Deserializer::from_str(span);
    (&mut de).deserialize_any(NumVisitor).map_err(|_| Decline)
}

#[cfg(test)]
mod tests;
