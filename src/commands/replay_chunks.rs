//! The input side of `tripline replay --threads N`: raw chunks of whole
//! lines (the reader), and those chunks parsed into events whose strings
//! are spans of the chunk (the parsers).
//!
//! The reader does no per-line work: it reads about [`CHUNK_BYTES`] at a
//! time and cuts after the last newline, carrying the partial line over. A
//! line longer than [`LINE_LIMIT`] is never held: it is skipped to its end
//! and handed over as a placeholder with its length, exactly as the
//! one-thread reader (`read_bounded_line`) reports it. Everything per line —
//! the line split, trimming, parsing, the owner's hash — runs on the parser
//! threads, a whole chunk at a time, so parsing spreads over the threads
//! however the integrations are distributed.

use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context;
use tripline_engine::{Action, Event};
use tripline_ingest::{parse_event, Reject};

use super::replay::{trim_line, ReplayStats, LINE_LIMIT, MAX_REJECT_LOGS};

/// Input is cut into chunks of about this many bytes (whole lines).
pub const CHUNK_BYTES: usize = 1 << 20;
/// The least the reader asks for at once.
const MIN_READ: usize = 64 << 10;

/// Whole lines of one input, each ended by `\n`.
pub struct Chunk {
    /// Index of the input (line numbers restart with each input).
    pub file: usize,
    pub name: Arc<str>,
    pub data: Vec<u8>,
    /// The chunk's first line was too long to hold: its length (the data
    /// holds an empty line in its place).
    pub oversize_first: Option<u64>,
}

/// Cuts each input into chunks of whole lines and hands chunk `i` to
/// `send(i, chunk)`; stops early (without error) when `send` returns false.
pub fn read_chunks(
    inputs: Vec<(String, Box<dyn Read + Send>)>,
    mut send: impl FnMut(usize, Chunk) -> bool,
) -> anyhow::Result<()> {
    let mut seq = 0usize;
    for (file, (name, mut input)) in inputs.into_iter().enumerate() {
        let name: Arc<str> = Arc::from(name.as_str());
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + MIN_READ);
        // Length so far of a line too long to hold, while skipping it.
        let mut skip: Option<u64> = None;
        let mut oversize_first: Option<u64> = None;
        loop {
            let want = CHUNK_BYTES.saturating_sub(buf.len()).max(MIN_READ);
            let got = (&mut input)
                .take(want as u64)
                .read_to_end(&mut buf)
                .with_context(|| format!("reading {name}"))?;
            let eof = got < want;
            if let Some(len) = skip {
                match memchr::memchr(b'\n', &buf) {
                    None => {
                        skip = Some(len + buf.len() as u64);
                        buf.clear();
                        if !eof {
                            continue;
                        }
                        // The input ends inside the long line.
                        oversize_first = skip.take();
                        buf.push(b'\n');
                    }
                    Some(i) => {
                        oversize_first = Some(len + i as u64);
                        skip = None;
                        buf.drain(..i);
                    }
                }
            }
            if eof && buf.last().is_some_and(|b| *b != b'\n') {
                buf.push(b'\n');
            }
            let cut = memchr::memrchr(b'\n', &buf).map_or(0, |i| i + 1);
            let mut next = Vec::with_capacity(CHUNK_BYTES + MIN_READ);
            next.extend_from_slice(&buf[cut..]);
            buf.truncate(cut);
            if !buf.is_empty() {
                let chunk = Chunk {
                    file,
                    name: Arc::clone(&name),
                    data: buf,
                    oversize_first: oversize_first.take(),
                };
                if !send(seq, chunk) {
                    return Ok(());
                }
                seq += 1;
            }
            buf = next;
            if eof {
                break;
            }
            if buf.len() > LINE_LIMIT {
                skip = Some(buf.len() as u64);
                buf.clear();
            }
        }
    }
    Ok(())
}

/// A string of a parsed event: a range of the chunk's data, or of the
/// chunk's side buffer (strings the parser unescaped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    side: bool,
    start: u32,
    len: u32,
}

/// One parsed event, its strings as spans.
pub struct Parsed {
    /// Index of its line within the chunk.
    pub line: u32,
    ts_ms: i64,
    integration_id: Span,
    resource: Span,
    action: Action,
    status: u16,
    key_id: Option<Span>,
    principal: Option<Span>,
    records: u64,
    bytes: u64,
    source_ip: Option<IpAddr>,
}

/// A rejected line, kept for the (rate-limited) log.
pub struct Rejected {
    pub line: u32,
    pub reason: &'static str,
    pub detail: String,
}

/// A chunk after parsing: its events by owning engine, in line order.
pub struct ParsedChunk {
    pub chunk: Chunk,
    side: String,
    /// `owners[k]`: the events of the integrations engine `k` owns.
    pub owners: Vec<Vec<Parsed>>,
    /// Lines in the chunk (for line numbers of later chunks).
    pub lines: u64,
    /// Rejected lines, rejected in total.
    pub rejected: u64,
    /// The first rejected lines (at most `MAX_REJECT_LOGS + 1`).
    pub rejects: Vec<Rejected>,
}

impl ParsedChunk {
    fn str(&self, s: Span) -> anyhow::Result<&str> {
        let (start, end) = (s.start as usize, s.start as usize + s.len as usize);
        if s.side {
            self.side
                .get(start..end)
                .context("replay sharding: a side span out of range")
        } else {
            let bytes = self
                .chunk
                .data
                .get(start..end)
                .context("replay sharding: a span out of range")?;
            // Parsed from this very range: valid UTF-8.
            std::str::from_utf8(bytes).context("replay sharding: a span is not UTF-8")
        }
    }

    /// The engine's view of a parsed event.
    pub fn event(&self, p: &Parsed) -> anyhow::Result<Event<'_>> {
        let opt = |s: Option<Span>| s.map(|s| self.str(s)).transpose();
        Ok(Event {
            ts_ms: p.ts_ms,
            integration_id: self.str(p.integration_id)?,
            resource: self.str(p.resource)?,
            action: p.action,
            status: p.status,
            key_id: opt(p.key_id)?,
            principal: opt(p.principal)?,
            records: p.records,
            bytes: p.bytes,
            source_ip: p.source_ip,
        })
    }
}

/// Parses every line of `chunk`, placing each event with the engine that
/// owns its integration (`owner`, of `n` engines); counts into `stats`.
pub fn parse_chunk(
    chunk: Chunk,
    n: usize,
    owner: impl Fn(&[u8]) -> usize,
    stats: &mut ReplayStats,
) -> anyhow::Result<ParsedChunk> {
    let mut owners: Vec<Vec<Parsed>> = (0..n).map(|_| Vec::new()).collect();
    let mut side = String::new();
    let mut rejects = Vec::new();
    let mut rejected = 0u64;
    let mut lines = 0u64;
    let data = &chunk.data;
    let mut start = 0usize;
    for end in memchr::memchr_iter(b'\n', data) {
        let line = &data[start..end];
        start = end + 1;
        let idx = u32::try_from(lines).context("replay chunk line index")?;
        lines += 1;
        let parsed = if idx == 0 && chunk.oversize_first.is_some() {
            Err(Reject::too_large(chunk.oversize_first.unwrap_or_default()))
        } else if line.len() > LINE_LIMIT {
            Err(Reject::too_large(line.len() as u64))
        } else {
            let text = trim_line(line);
            if text.is_empty() {
                continue;
            }
            parse_event(text)
        };
        stats.lines += 1;
        match parsed {
            Ok(raw) => {
                stats.events += 1;
                let ev = raw.event();
                let mut span = |s: &str| span(s, data, &mut side);
                let p = Parsed {
                    line: idx,
                    ts_ms: ev.ts_ms,
                    integration_id: span(ev.integration_id),
                    resource: span(ev.resource),
                    action: ev.action,
                    status: ev.status,
                    key_id: ev.key_id.map(&mut span),
                    principal: ev.principal.map(&mut span),
                    records: ev.records,
                    bytes: ev.bytes,
                    source_ip: ev.source_ip,
                };
                owners[owner(ev.integration_id.as_bytes()) % n].push(p);
            }
            Err(rej) => {
                *stats.rejected.entry(rej.reason.as_str()).or_insert(0) += 1;
                rejected += 1;
                if rejects.len() as u64 <= MAX_REJECT_LOGS {
                    rejects.push(Rejected {
                        line: idx,
                        reason: rej.reason.as_str(),
                        detail: rej.detail,
                    });
                }
            }
        }
    }
    Ok(ParsedChunk {
        chunk,
        side,
        owners,
        lines,
        rejected,
        rejects,
    })
}

/// Where `s` lies: inside `data` (borrowed by the parser), else copied to
/// `side` (unescaped by the parser).
fn span(s: &str, data: &[u8], side: &mut String) -> Span {
    let base = data.as_ptr() as usize;
    let at = s.as_ptr() as usize;
    if s.is_empty() {
        return Span {
            side: false,
            start: 0,
            len: 0,
        };
    }
    // Chunks and lines are bounded far below 4 GiB (u32 spans).
    if at >= base && at + s.len() <= base + data.len() {
        Span {
            side: false,
            start: (at - base) as u32,
            len: s.len() as u32,
        }
    } else {
        let start = side.len() as u32;
        side.push_str(s);
        Span {
            side: true,
            start,
            len: s.len() as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn chunks(input: &[u8]) -> Vec<(Vec<u8>, Option<u64>)> {
        let mut out = Vec::new();
        read_chunks(
            vec![("t".into(), Box::new(Cursor::new(input.to_vec())))],
            |i, c| {
                assert_eq!(i, out.len());
                out.push((c.data, c.oversize_first));
                true
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn chunks_hold_whole_lines_and_end_the_last_one() {
        let mut input = Vec::new();
        for i in 0..200_000 {
            input.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        input.extend_from_slice(b"no newline");
        let got = chunks(&input);
        assert!(got.len() > 1, "several chunks");
        let mut joined = Vec::new();
        for (data, over) in &got {
            assert_eq!(*over, None);
            assert_eq!(data.last(), Some(&b'\n'));
            joined.extend_from_slice(data);
        }
        input.push(b'\n');
        assert_eq!(joined, input);
    }

    #[test]
    fn a_line_too_long_to_hold_becomes_a_placeholder_with_its_length() {
        let long = LINE_LIMIT + 3 * CHUNK_BYTES + 5;
        let mut input = b"a\n".to_vec();
        input.extend(vec![b'x'; long]);
        input.extend_from_slice(b"\nb\n");
        let got = chunks(&input);
        let over: Vec<_> = got.iter().filter_map(|c| c.1).collect();
        assert_eq!(over, vec![long as u64]);
        let joined: Vec<u8> = got.iter().flat_map(|c| c.0.clone()).collect();
        assert_eq!(joined, b"a\n\nb\n");
        // Ending inside the long line: still one placeholder.
        let got = chunks(&input[..input.len() - 3]);
        let over: Vec<_> = got.iter().filter_map(|c| c.1).collect();
        assert_eq!(over, vec![long as u64]);
    }

    #[test]
    fn parsed_events_borrow_the_chunk_or_the_side_buffer() {
        let data = concat!(
            r#"{"ts":"2026-11-29T14:03:12Z","integration_id":"app-1","resource":"contacts","method":"GET","status":200}"#,
            "\n\n   \nnot json\n",
            r#"{"ts":"2026-11-29T14:03:13Z","integration_id":"app\u002d2","resource":"deals","method":"POST","status":201,"key_id":"k"}"#,
            "\n"
        );
        let chunk = Chunk {
            file: 0,
            name: Arc::from("t"),
            data: data.as_bytes().to_vec(),
            oversize_first: None,
        };
        let mut stats = ReplayStats::default();
        let owner = |id: &[u8]| usize::from(id == b"app-2");
        let pc = parse_chunk(chunk, 2, owner, &mut stats).unwrap();
        assert_eq!(
            (pc.lines, pc.rejected, stats.lines, stats.events),
            (5, 1, 3, 2)
        );
        assert_eq!(pc.rejects[0].line, 3);
        let a = pc.event(&pc.owners[0][0]).unwrap();
        assert_eq!(
            (a.integration_id, a.resource, a.key_id),
            ("app-1", "contacts", None)
        );
        let b = pc.event(&pc.owners[1][0]).unwrap();
        assert_eq!((b.integration_id, b.key_id), ("app-2", Some("k")));
        assert_eq!(b.ts_ms - a.ts_ms, 1000);
        assert_eq!(pc.owners[1][0].line, 4);
        assert!(pc.owners[1][0].integration_id.side);
    }
}
