//! `tripline replay --threads N` (N > 1): the same replay on N engines, each
//! owning the integrations whose id hashes to it, with stdout byte-identical
//! to one engine's.
//!
//! Why that holds: every detector is a function of one integration's ordered
//! events (the invariant `tripline run`'s per-partition engines rely on), so
//! an engine that sees all of an integration's events, in order, raises the
//! same alerts for it as one engine over everything. Each alert is tagged
//! with the position of the line that raised it and the outputs are merged
//! back in line order; within a line only its owner emits.
//!
//! Threads: one reader cuts the input into blocks of whole lines and hands
//! every block to every worker (`Arc`, no copy); each worker finds a line's
//! owner with a cheap scan of its `integration_id` and parses only its own
//! lines (a line the scan cannot place — escapes, a repeated key — is parsed
//! by every worker to find its owner); the calling thread merges.
//!
//! Caveat: what counts across integrations applies per engine — each
//! worker's engine gets `max_integrations / threads` (so the process stays
//! within the bound, deterministically), and alert budgets count per engine
//! (their end-of-input aggregates are written last, in worker order). Both
//! only act under floods; an honest stream's output is the same for any N.

use std::io::{BufReader, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use anyhow::Context;
use tripline_engine::{Engine, Outputs};
use tripline_ingest::lines::{read_bounded_line, Line};
use tripline_ingest::{parse_event, Reject};

use super::replay::{trim_line, ReplayStats, LINE_LIMIT, MAX_REJECT_LOGS};

/// Input is handed out in blocks of about this many bytes (whole lines).
const BLOCK_BYTES: usize = 1 << 20;
/// Blocks buffered per worker (reader ahead of workers, workers ahead of
/// the merger).
const QUEUE: usize = 4;
const KEY_FIELD: &[u8] = b"\"integration_id\"";

/// Whole lines of one input.
struct Block {
    name: Arc<str>,
    /// Line number of the block's first line in its input.
    first_line: u64,
    /// The lines, each ended by `\n`.
    data: Vec<u8>,
    /// Lines too long to hold (empty in `data`): (index, length), in order.
    oversize: Vec<(u32, u64)>,
}

/// One worker's alerts for one block: JSON lines, each tagged with the
/// index of the line (within the block) that raised it.
#[derive(Default)]
struct BlockOut {
    buf: Vec<u8>,
    /// (line index, end of its JSON line in `buf`)
    marks: Vec<(u32, usize)>,
}

/// Engine totals for the summary line.
#[derive(Debug, Default)]
pub struct EngineTotals {
    pub late_events: u64,
    pub tracked_integrations: usize,
}

/// Replays `inputs` on `threads` engines and writes the merged alerts to
/// `out`. `make_engine` builds one engine per worker.
pub fn replay_sharded(
    make_engine: &(dyn Fn() -> Engine + Sync),
    inputs: Vec<(String, Box<dyn Read + Send>)>,
    threads: usize,
    out: &mut dyn Write,
    stats: &mut ReplayStats,
) -> anyhow::Result<EngineTotals> {
    let n = threads.max(1);
    let reject_logs = AtomicU64::new(0);
    std::thread::scope(|s| {
        let mut block_txs: Vec<SyncSender<Arc<Block>>> = Vec::with_capacity(n);
        let mut out_rxs: Vec<Receiver<BlockOut>> = Vec::with_capacity(n);
        let mut workers = Vec::with_capacity(n);
        for me in 0..n {
            let (btx, brx) = sync_channel::<Arc<Block>>(QUEUE);
            let (otx, orx) = sync_channel::<BlockOut>(QUEUE);
            block_txs.push(btx);
            out_rxs.push(orx);
            let reject_logs = &reject_logs;
            workers.push(
                std::thread::Builder::new()
                    .name(format!("tripline-replay-{me}"))
                    .spawn_scoped(s, move || {
                        let mut w = Worker {
                            me,
                            n,
                            engine: make_engine(),
                            outputs: Outputs::default(),
                            stats: ReplayStats::default(),
                            reject_logs,
                        };
                        for block in brx {
                            let o = w.block(&block)?;
                            if otx.send(o).is_err() {
                                break;
                            }
                        }
                        // End of input: what waits for a window to close.
                        let tail = w.finish()?;
                        let es = w.engine.stats();
                        Ok::<_, anyhow::Error>((
                            w.stats,
                            es.late_events,
                            es.tracked_integrations,
                            tail,
                        ))
                    })
                    .context("starting a replay worker")?,
            );
        }
        let reader = std::thread::Builder::new()
            .name("tripline-replay-read".into())
            .spawn_scoped(s, move || read_blocks(inputs, &block_txs))
            .context("starting the replay reader")?;

        // Merge: block by block, every worker's alerts in line order.
        let mut merge_err: Option<anyhow::Error> = None;
        'blocks: loop {
            let mut parts: Vec<BlockOut> = Vec::with_capacity(n);
            for rx in &out_rxs {
                match rx.recv() {
                    Ok(o) => parts.push(o),
                    // A worker stopped: the input ended (or it failed).
                    Err(_) => break 'blocks,
                }
            }
            if let Err(e) = write_merged(&parts, out) {
                merge_err = Some(e);
                break;
            }
        }
        // Unblock everyone before joining.
        drop(out_rxs);
        let read = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the replay reader panicked"))?;
        let mut totals = EngineTotals::default();
        let mut first_err = merge_err;
        for w in workers {
            match w.join() {
                Ok(Ok((st, late, tracked, tail))) => {
                    stats.merge(st);
                    totals.late_events += late;
                    totals.tracked_integrations += tracked;
                    if first_err.is_none() {
                        if let Err(e) = out.write_all(&tail) {
                            first_err =
                                Some(anyhow::Error::new(e).context("writing alerts to stdout"));
                        }
                    }
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(anyhow::anyhow!("a replay worker panicked"));
                }
            }
        }
        read?;
        match first_err {
            Some(e) => Err(e),
            None => Ok(totals),
        }
    })
}

/// Cuts each input into blocks of whole lines (read with the same bounded
/// line reader as one-thread replay) and gives every block to every worker.
fn read_blocks(
    inputs: Vec<(String, Box<dyn Read + Send>)>,
    txs: &[SyncSender<Arc<Block>>],
) -> anyhow::Result<()> {
    let mut line = Vec::with_capacity(4096);
    for (name, input) in inputs {
        let name: Arc<str> = Arc::from(name.as_str());
        let mut reader = BufReader::with_capacity(1 << 20, input);
        let mut next_line = 1u64;
        let mut eof = false;
        while !eof {
            let mut block = Block {
                name: Arc::clone(&name),
                first_line: next_line,
                data: Vec::with_capacity(BLOCK_BYTES + LINE_LIMIT),
                oversize: Vec::new(),
            };
            let mut idx = 0u32;
            while block.data.len() < BLOCK_BYTES {
                match read_bounded_line(&mut reader, &mut line, LINE_LIMIT)
                    .with_context(|| format!("reading {name}"))?
                {
                    Line::Eof => {
                        eof = true;
                        break;
                    }
                    Line::Ok => block.data.extend_from_slice(&line),
                    Line::Oversize { len } => block.oversize.push((idx, len)),
                }
                block.data.push(b'\n');
                idx += 1;
            }
            next_line += u64::from(idx);
            if idx == 0 {
                break;
            }
            let block = Arc::new(block);
            for tx in txs {
                if tx.send(Arc::clone(&block)).is_err() {
                    // A worker failed; its error is reported by join.
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

fn write_merged(parts: &[BlockOut], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut pos = vec![(0usize, 0usize); parts.len()]; // (next mark, start in buf)
    loop {
        // The worker whose next alert comes from the earliest line. Lines
        // have one owner, so ties only occur within one worker.
        let mut best: Option<(u32, usize)> = None;
        for (w, p) in parts.iter().enumerate() {
            if let Some(&(line, _)) = p.marks.get(pos[w].0) {
                if best.is_none_or(|(l, _)| line < l) {
                    best = Some((line, w));
                }
            }
        }
        let Some((line, w)) = best else {
            return Ok(());
        };
        // Everything this worker has for that line, in its order.
        let p = &parts[w];
        while let Some(&(l, end)) = p.marks.get(pos[w].0) {
            if l != line {
                break;
            }
            out.write_all(&p.buf[pos[w].1..end])
                .context("writing alerts to stdout")?;
            pos[w] = (pos[w].0 + 1, end);
        }
    }
}

struct Worker<'a> {
    me: usize,
    n: usize,
    engine: Engine,
    outputs: Outputs,
    stats: ReplayStats,
    reject_logs: &'a AtomicU64,
}

impl Worker<'_> {
    /// The engine's end-of-input alerts ([`Engine::finish`]), serialized.
    fn finish(&mut self) -> anyhow::Result<Vec<u8>> {
        self.outputs.clear();
        self.engine.finish(&mut self.outputs);
        let mut buf = Vec::new();
        for a in self.outputs.alerts.drain(..) {
            *self.stats.alerts.entry(a.kind).or_insert(0) += 1;
            serde_json::to_writer(&mut buf, &a)?;
            buf.push(b'\n');
        }
        self.stats.resolved += self.outputs.resolved.len() as u64;
        self.outputs.resolved.clear();
        Ok(buf)
    }

    fn block(&mut self, block: &Block) -> anyhow::Result<BlockOut> {
        let mut o = BlockOut::default();
        let mut oversize = block.oversize.iter().peekable();
        for (idx, line) in block.data.split(|b| *b == b'\n').enumerate() {
            let text = trim_line(line);
            let too_long = match oversize.peek() {
                Some(&&(i, len)) if i as usize == idx => {
                    oversize.next();
                    Some(len)
                }
                _ => None,
            };
            if text.is_empty() && too_long.is_none() {
                continue;
            }
            let key = if too_long.is_some() {
                None
            } else {
                quick_key(text)
            };
            if key.is_some_and(|k| shard(k, self.n) != self.me) {
                continue;
            }
            let parsed = match too_long {
                Some(len) => Err(Reject::too_large(len)),
                None => parse_event(text),
            };
            match parsed {
                Ok(raw) => {
                    let ev = raw.event();
                    let owner = shard(ev.integration_id.as_bytes(), self.n);
                    if let Some(k) = key {
                        // The scan only places lines where it must agree
                        // with the parser; a disagreement is a bug here.
                        anyhow::ensure!(
                            k == ev.integration_id.as_bytes(),
                            "replay sharding: the integration_id scan disagrees with the parser"
                        );
                    } else if owner != self.me {
                        continue;
                    }
                    self.stats.lines += 1;
                    self.stats.events += 1;
                    self.engine.process(&ev, &mut self.outputs);
                }
                Err(rej) => {
                    // Rejected lines are counted once, by worker 0 (or the
                    // owner the scan named).
                    if key.is_none() && self.me != 0 {
                        continue;
                    }
                    self.stats.lines += 1;
                    *self.stats.rejected.entry(rej.reason.as_str()).or_insert(0) += 1;
                    let logged = self.reject_logs.fetch_add(1, Ordering::Relaxed) + 1;
                    if logged <= MAX_REJECT_LOGS {
                        tracing::warn!(file = &*block.name, line = block.first_line + idx as u64, reason = rej.reason.as_str(), detail = %rej.detail, "Rejected event.");
                    } else if logged == MAX_REJECT_LOGS + 1 {
                        tracing::warn!("Further rejected events are counted, not logged.");
                    }
                }
            }
            if !self.outputs.is_empty() {
                let idx = u32::try_from(idx).context("block line index")?;
                for a in self.outputs.alerts.drain(..) {
                    *self.stats.alerts.entry(a.kind).or_insert(0) += 1;
                    serde_json::to_writer(&mut o.buf, &a)?;
                    o.buf.push(b'\n');
                    o.marks.push((idx, o.buf.len()));
                }
                self.stats.resolved += self.outputs.resolved.len() as u64;
                self.outputs.resolved.clear();
            }
        }
        Ok(o)
    }
}

/// Which worker owns an integration: FNV-1a of its id.
fn shard(id: &[u8], n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % n as u64) as usize
}

/// The `integration_id` of a canonical JSON line, found without parsing —
/// only where it must equal what the parser finds: the line has no
/// backslash (so no escapes anywhere), the key occurs exactly once, and its
/// value is a string. Otherwise `None`: every worker parses the line.
fn quick_key(line: &[u8]) -> Option<&[u8]> {
    if line.contains(&b'\\') {
        return None;
    }
    let at = find(line, KEY_FIELD)?;
    let rest = &line[at + KEY_FIELD.len()..];
    if find(rest, KEY_FIELD).is_some() {
        return None;
    }
    let rest = skip_ws(rest).strip_prefix(b":")?;
    let rest = skip_ws(rest).strip_prefix(b"\"")?;
    let end = rest.iter().position(|b| *b == b'"')?;
    Some(&rest[..end])
}

fn skip_ws(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    &s[n..]
}

/// First position of `pat` (which starts with `"`) in `s`.
fn find(s: &[u8], pat: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = s[from..].iter().position(|b| *b == pat[0]) {
        let at = from + i;
        if s[at..].starts_with(pat) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_key_only_places_lines_the_parser_agrees_on() {
        let ok = br#"{"ts":0,"integration_id" : "app-1","resource":"x"}"#;
        assert_eq!(quick_key(ok), Some(&b"app-1"[..]));
        // Escapes anywhere, a repeated key, or a non-string value: no.
        assert_eq!(quick_key(br#"{"integration_id":"a\u0062c"}"#), None);
        assert_eq!(
            quick_key(br#"{"m":{"integration_id":"x"},"integration_id":"y"}"#),
            None
        );
        assert_eq!(quick_key(br#"{"integration_id":7}"#), None);
        assert_eq!(quick_key(b"not json"), None);
    }

    #[test]
    fn shard_is_stable_and_in_range() {
        assert_eq!(shard(b"app-1", 1), 0);
        for n in 1..8 {
            assert!(shard(b"app-1", n) < n);
            assert_eq!(shard(b"app-1", n), shard(b"app-1", n));
        }
    }

    #[test]
    fn merge_orders_by_line_across_workers() {
        let a = BlockOut {
            buf: b"a1\na3\n".to_vec(),
            marks: vec![(1, 3), (3, 6)],
        };
        let b = BlockOut {
            buf: b"b2\nb2x\nb4\n".to_vec(),
            marks: vec![(2, 3), (2, 7), (4, 10)],
        };
        let mut out = Vec::new();
        write_merged(&[a, b], &mut out).unwrap();
        assert_eq!(out, b"a1\nb2\nb2x\na3\nb4\n");
    }
}
