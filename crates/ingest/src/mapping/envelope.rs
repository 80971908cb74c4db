//! Message paths (`$/…`): fields read from around a record rather than from
//! the record itself — OTLP resource attributes (`service.name`), the
//! CloudWatch envelope's `logGroup` — and the expansion of `*` roots that
//! keeps, for every record, the values of the elements it was found in.
//!
//! A message path is an RFC 6901 pointer from the message's root, after a
//! `$`. Its `*` steps stand for "the element this record came from": with
//! the root `/resourceLogs/*/scopeLogs/*/logRecords`, the message path
//! `$/resourceLogs/*/resource/attributes/service.name` reads, for each log
//! record, the attribute of the resource that holds it. A message path
//! without `*` is read once from the whole message. Each element is read
//! once for all its records (never once per record), and a record's slots
//! start from those values.

use super::decode::{empty_slots, find_root, Slots, Trie, Val};

/// The values an element (or the document) gave its records' message paths.
pub(crate) type Frame<'a> = Vec<(u16, Val<'a>)>;

/// Message paths compiled against a profile's roots.
#[derive(Debug, Clone, Default)]
pub(crate) struct MessagePaths {
    /// Paths without `*`: read from the whole message.
    document: Option<Trie>,
    /// Per root, per `*` step of that root: the paths below that element.
    per_root: Vec<Vec<Option<Trie>>>,
}

impl MessagePaths {
    /// `paths` are (slot, tokens after the `$`). Refuses a path whose `*`
    /// steps follow no root.
    pub(crate) fn compile(
        roots: &[Vec<String>],
        paths: &[(u16, &[String])],
    ) -> Result<MessagePaths, Vec<String>> {
        let mut mp = MessagePaths {
            document: None,
            per_root: roots
                .iter()
                .map(|r| vec![None; r.iter().filter(|t| *t == "*").count()])
                .collect(),
        };
        let mut problems = Vec::new();
        for (slot, p) in paths {
            if !p.iter().any(|t| t == "*") {
                mp.document
                    .get_or_insert_with(Trie::default)
                    .insert(p, *slot);
                continue;
            }
            let mut placed = false;
            for (ri, r) in roots.iter().enumerate() {
                let stars: Vec<usize> = (0..r.len()).filter(|&i| r[i] == "*").collect();
                // The deepest `*` of the root that the path shares its
                // prefix with, the rest of the path having no `*` of its own.
                let hit = stars.iter().enumerate().rev().find(|(_, &at)| {
                    p.len() > at && p[..=at] == r[..=at] && !p[at + 1..].iter().any(|t| t == "*")
                });
                if let Some((level, &at)) = hit {
                    mp.per_root[ri][level]
                        .get_or_insert_with(Trie::default)
                        .insert(&p[at + 1..], *slot);
                    placed = true;
                }
            }
            if !placed {
                problems.push(format!(
                    "`$/{}`: its `*` steps must be those of a root",
                    p.join("/")
                ));
            }
        }
        if problems.is_empty() {
            Ok(mp)
        } else {
            Err(problems)
        }
    }

    /// The frame of the whole message (empty when no path needs it).
    pub(crate) fn document<'a>(&self, text: &'a str) -> Result<Frame<'a>, serde_json::Error> {
        match &self.document {
            None => Ok(Vec::new()),
            Some(t) => frame(t, text, &[]),
        }
    }

    /// Expands root `ri` (whose steps may be `*`: every element of the array
    /// there) into its records, each with the index of its frame in
    /// `frames` (`frames[0]` must be the document's). False when the root is
    /// not in the message; an array step that is not an array is absent too.
    pub(crate) fn expand<'a>(
        &self,
        text: &'a str,
        roots: &[Vec<String>],
        ri: usize,
        records: &mut Vec<(&'a str, usize)>,
        frames: &mut Vec<Frame<'a>>,
    ) -> Result<bool, serde_json::Error> {
        let levels = self.per_root.get(ri).map_or(&[][..], Vec::as_slice);
        expand(text, &roots[ri], levels, 0, records, frames)
    }
}

/// Reads `trie` from `text` into a frame that extends `parent`.
fn frame<'a>(
    trie: &Trie,
    text: &'a str,
    parent: &[(u16, Val<'a>)],
) -> Result<Frame<'a>, serde_json::Error> {
    let mut slots: Slots<'a> = empty_slots();
    trie.extract(text, &mut slots)?;
    let mut f: Frame<'a> = parent.to_vec();
    for (i, v) in slots.into_iter().enumerate() {
        if !matches!(v, Val::Null) {
            f.push((i as u16, v));
        }
    }
    Ok(f)
}

fn expand<'a>(
    text: &'a str,
    tokens: &[String],
    levels: &[Option<Trie>],
    frame_at: usize,
    records: &mut Vec<(&'a str, usize)>,
    frames: &mut Vec<Frame<'a>>,
) -> Result<bool, serde_json::Error> {
    let (head, rest) = match tokens.iter().position(|t| t == "*") {
        Some(i) => (&tokens[..i], Some(&tokens[i + 1..])),
        None => (tokens, None),
    };
    let at = if head.is_empty() {
        text
    } else {
        match find_root(text, std::slice::from_ref(&head.to_vec()))? {
            Some(raw) => raw.get(),
            None => return Ok(false),
        }
    };
    let Some(rest) = rest else {
        records.push((at, frame_at));
        return Ok(true);
    };
    if !at.trim_start().starts_with('[') {
        return Ok(false);
    }
    let (level, deeper) = match levels.split_first() {
        Some((l, d)) => (l.as_ref(), d),
        None => (None, &[][..]),
    };
    for el in super::decode::array_elements(at)? {
        let el = el.get();
        let f = match level {
            Some(trie) => {
                let f = frame(trie, el, &frames[frame_at])?;
                frames.push(f);
                frames.len() - 1
            }
            None => frame_at,
        };
        expand(el, rest, deeper, f, records, frames)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::decode::pointer_tokens;

    fn toks(p: &str) -> Vec<String> {
        pointer_tokens(p).unwrap()
    }

    #[test]
    fn star_steps_bind_to_the_element_each_record_came_from() {
        let roots = vec![toks("/r/*/s/*/recs")];
        let (svc, scope, doc) = (toks("/r/*/res/svc"), toks("/r/*/s/*/name"), toks("/kind"));
        let mp = MessagePaths::compile(&roots, &[(0, &svc[..]), (1, &scope[..]), (2, &doc[..])])
            .unwrap();
        let text = r#"{"kind":"k","r":[
            {"res":{"svc":"a"},"s":[{"name":"x","recs":[1,2]},{"recs":[3]}]},
            {"s":[{"name":"y","recs":[4]}]}
        ]}"#;
        let mut frames = vec![mp.document(text).unwrap()];
        let mut recs = Vec::new();
        assert!(mp.expand(text, &roots, 0, &mut recs, &mut frames).unwrap());
        assert_eq!(recs.len(), 3);
        let vals = |i: usize| {
            let mut v: Vec<(u16, String)> = frames[recs[i].1]
                .iter()
                .map(|(s, v)| (*s, v.as_str().unwrap_or("?").to_owned()))
                .collect();
            v.sort();
            v
        };
        let kv = |s: &[(u16, &str)]| -> Vec<(u16, String)> {
            s.iter().map(|(a, b)| (*a, (*b).to_owned())).collect()
        };
        assert_eq!(recs[0].0, "[1,2]");
        assert_eq!(vals(0), kv(&[(0, "a"), (1, "x"), (2, "k")]));
        assert_eq!(vals(1), kv(&[(0, "a"), (2, "k")]));
        assert_eq!(vals(2), kv(&[(1, "y"), (2, "k")]));
    }

    #[test]
    fn a_star_path_outside_every_root_is_refused() {
        let roots = vec![toks("/r/*/recs")];
        let bad = toks("/other/*/x");
        let err = MessagePaths::compile(&roots, &[(0, &bad[..])]).unwrap_err();
        assert!(err[0].contains("`$/other/*/x`"), "{err:?}");
    }
}
