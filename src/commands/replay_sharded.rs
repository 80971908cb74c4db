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
//! Threads (a pipeline over chunks of whole lines, `replay_chunks`):
//! - one reader cuts the input into chunks (no per-line work) and deals
//!   chunk `i` to parser `i mod N`;
//! - N parsers parse whole chunks — parsing is most of replay's cost and is
//!   spread evenly whatever the integrations' sizes — and sort each chunk's
//!   events by owning engine, strings left as spans of the chunk (no copy);
//! - N engines take every chunk in order (chunk `i` from parser `i mod N`)
//!   and process their own events of it;
//! - the calling thread merges the engines' alerts chunk by chunk in line
//!   order and logs rejected lines in line order, as one thread would.
//!
//! Caveat: what counts across integrations applies per engine — each
//! engine gets `max_integrations / threads` (so the process stays within
//! the bound, deterministically), alert budgets count per engine (their
//! end-of-input aggregates are written last, in engine order), and the
//! robust stream time (whether an event is out of range) is per engine.

use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use anyhow::Context;
use tripline_engine::{Engine, Outputs};

use super::replay::{ReplayStats, MAX_REJECT_LOGS};
use super::replay_chunks::{parse_chunk, read_chunks, Chunk, ParsedChunk};

/// Chunks buffered per channel (reader ahead of parsers, parsers ahead of
/// engines, engines ahead of the merger).
const QUEUE: usize = 4;

/// One engine's alerts for one chunk: JSON lines, each tagged with the
/// index of the line (within the chunk) that raised it.
#[derive(Default)]
struct BlockOut {
    buf: Vec<u8>,
    /// (line index, end of its JSON line in `buf`)
    marks: Vec<(u32, usize)>,
    /// The chunk itself, from engine 0 only (line counts, rejected lines).
    chunk: Option<Arc<ParsedChunk>>,
}

/// Engine totals for the summary line.
#[derive(Debug, Default)]
pub struct EngineTotals {
    pub late_events: u64,
    pub tracked_integrations: usize,
    /// `EngineStats::ts_out_of_range`, summed.
    pub ts_out_of_range: u64,
}

impl EngineTotals {
    /// Adds one engine's counters.
    pub fn add(&mut self, es: &tripline_engine::EngineStats) {
        self.late_events += es.late_events;
        self.tracked_integrations += es.tracked_integrations;
        self.ts_out_of_range += es.ts_out_of_range;
    }
}

type Joined<T> = std::thread::Result<anyhow::Result<T>>;

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
    std::thread::scope(|s| {
        let spawn_err = |what: &str| format!("starting the replay {what}");
        // parse_txs[p]: chunks to parser p; to_engine[p][k]: parser p's
        // parsed chunks to engine k.
        let mut parse_txs: Vec<SyncSender<Chunk>> = Vec::with_capacity(n);
        let mut parse_rxs: Vec<Receiver<Chunk>> = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = sync_channel::<Chunk>(QUEUE);
            parse_txs.push(tx);
            parse_rxs.push(rx);
        }
        let mut engine_rxs: Vec<Vec<Receiver<Arc<ParsedChunk>>>> =
            (0..n).map(|_| Vec::with_capacity(n)).collect();
        let mut parsers = Vec::with_capacity(n);
        for (p, rx) in parse_rxs.into_iter().enumerate() {
            let mut txs: Vec<SyncSender<Arc<ParsedChunk>>> = Vec::with_capacity(n);
            for rxs in engine_rxs.iter_mut() {
                let (tx, erx) = sync_channel::<Arc<ParsedChunk>>(QUEUE);
                txs.push(tx);
                rxs.push(erx);
            }
            parsers.push(
                std::thread::Builder::new()
                    .name(format!("tripline-parse-{p}"))
                    .spawn_scoped(s, move || {
                        let mut st = ReplayStats::default();
                        'chunks: for chunk in rx {
                            let pc = Arc::new(parse_chunk(chunk, n, |id| shard(id, n), &mut st)?);
                            for tx in &txs {
                                if tx.send(Arc::clone(&pc)).is_err() {
                                    break 'chunks;
                                }
                            }
                        }
                        Ok::<_, anyhow::Error>(st)
                    })
                    .with_context(|| spawn_err("parser"))?,
            );
        }
        let mut out_rxs: Vec<Receiver<BlockOut>> = Vec::with_capacity(n);
        let mut engines = Vec::with_capacity(n);
        for (me, rxs) in engine_rxs.into_iter().enumerate() {
            let (otx, orx) = sync_channel::<BlockOut>(QUEUE);
            out_rxs.push(orx);
            engines.push(
                std::thread::Builder::new()
                    .name(format!("tripline-replay-{me}"))
                    .spawn_scoped(s, move || {
                        let mut w = Worker {
                            me,
                            engine: make_engine(),
                            outputs: Outputs::default(),
                            stats: ReplayStats::default(),
                        };
                        // Chunk i comes from parser i mod n: every chunk,
                        // in order.
                        for i in 0.. {
                            let Ok(pc) = rxs[i % n].recv() else { break };
                            let o = w.chunk(pc)?;
                            if otx.send(o).is_err() {
                                break;
                            }
                        }
                        // End of input: what waits for a window to close.
                        let tail = w.finish()?;
                        Ok::<_, anyhow::Error>((w.stats, w.engine.stats(), tail))
                    })
                    .with_context(|| spawn_err("engine"))?,
            );
        }
        let reader = std::thread::Builder::new()
            .name("tripline-replay-read".into())
            .spawn_scoped(s, move || {
                read_chunks(inputs, |i, chunk| parse_txs[i % n].send(chunk).is_ok())
            })
            .with_context(|| spawn_err("reader"))?;

        let merged = merge(&out_rxs, out);
        // Unblock everyone before joining.
        drop(out_rxs);
        let read: Joined<()> = reader.join();
        let mut first_err = merged.err();
        let mut totals = EngineTotals::default();
        for p in parsers {
            if let Some(st) = take(&mut first_err, "parser", p.join()) {
                stats.merge(st);
            }
        }
        for w in engines {
            if let Some((st, es, tail)) = take(&mut first_err, "engine", w.join()) {
                stats.merge(st);
                totals.add(&es);
                if first_err.is_none() {
                    if let Err(e) = out.write_all(&tail) {
                        first_err = Some(anyhow::Error::new(e).context("writing alerts to stdout"));
                    }
                }
            }
        }
        take(&mut first_err, "reader", read);
        match first_err {
            Some(e) => Err(e),
            None => Ok(totals),
        }
    })
}

/// A thread's result; its error (or panic) kept if it is the first.
fn take<T>(first_err: &mut Option<anyhow::Error>, what: &str, r: Joined<T>) -> Option<T> {
    match r {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            first_err.get_or_insert(e);
            None
        }
        Err(_) => {
            first_err.get_or_insert(anyhow::anyhow!("a replay {what} panicked"));
            None
        }
    }
}

/// Chunk by chunk: the rejected lines' log, then every engine's alerts in
/// line order.
fn merge(out_rxs: &[Receiver<BlockOut>], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut file = usize::MAX;
    let mut next_line = 1u64;
    let mut rejected = 0u64;
    loop {
        let mut parts: Vec<BlockOut> = Vec::with_capacity(out_rxs.len());
        for rx in out_rxs {
            match rx.recv() {
                Ok(o) => parts.push(o),
                // An engine stopped: the input ended (or it failed).
                Err(_) => return Ok(()),
            }
        }
        if let Some(pc) = parts.first().and_then(|p| p.chunk.as_ref()) {
            if pc.chunk.file != file {
                file = pc.chunk.file;
                next_line = 1;
            }
            for r in &pc.rejects {
                rejected += 1;
                if rejected <= MAX_REJECT_LOGS {
                    tracing::warn!(file = &*pc.chunk.name, line = next_line + u64::from(r.line), reason = r.reason, detail = %r.detail, "Rejected event.");
                } else if rejected == MAX_REJECT_LOGS + 1 {
                    tracing::warn!("Further rejected events are counted, not logged.");
                }
            }
            // Lines rejected beyond those kept only count.
            rejected += pc.rejected - pc.rejects.len() as u64;
            next_line += pc.lines;
        }
        write_merged(&parts, out)?;
    }
}

fn write_merged(parts: &[BlockOut], out: &mut dyn Write) -> anyhow::Result<()> {
    let mut pos = vec![(0usize, 0usize); parts.len()]; // (next mark, start in buf)
    loop {
        // The engine whose next alert comes from the earliest line. Lines
        // have one owner, so ties only occur within one engine.
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
        // Everything this engine has for that line, in its order.
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

struct Worker {
    me: usize,
    engine: Engine,
    outputs: Outputs,
    stats: ReplayStats,
}

impl Worker {
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

    fn chunk(&mut self, pc: Arc<ParsedChunk>) -> anyhow::Result<BlockOut> {
        let mut o = BlockOut::default();
        for p in &pc.owners[self.me] {
            self.engine.process(&pc.event(p)?, &mut self.outputs);
            if !self.outputs.is_empty() {
                for a in self.outputs.alerts.drain(..) {
                    *self.stats.alerts.entry(a.kind).or_insert(0) += 1;
                    serde_json::to_writer(&mut o.buf, &a)?;
                    o.buf.push(b'\n');
                    o.marks.push((p.line, o.buf.len()));
                }
                self.stats.resolved += self.outputs.resolved.len() as u64;
                self.outputs.resolved.clear();
            }
        }
        if self.me == 0 {
            o.chunk = Some(pc);
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

#[cfg(test)]
mod tests {
    use super::*;

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
            chunk: None,
        };
        let b = BlockOut {
            buf: b"b2\nb2x\nb4\n".to_vec(),
            marks: vec![(2, 3), (2, 7), (4, 10)],
            chunk: None,
        };
        let mut out = Vec::new();
        write_merged(&[a, b], &mut out).unwrap();
        assert_eq!(out, b"a1\nb2\nb2x\na3\nb4\n");
    }
}
