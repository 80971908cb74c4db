//! Minute-by-minute traffic generation and JSON line rendering.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fmt::Write as _;

use rand::{Rng, SeedableRng};
use tripline_engine::time::{
    is_month_end, minute_of_day, weekday, write_rfc3339, DAY_MS, MINUTE_MS,
};
use tripline_engine::Action;

use crate::catalog::fields_for;
use crate::plan::{Integ, Mode, World};
use crate::rng::{chance, normal, poisson, uniform, weighted, SimRng};
use crate::SimConfig;

/// Share of events displaced late.
pub(crate) const DISPLACED: f64 = 0.02;
/// Most an event is displaced, ms (below the 60 s default lateness).
pub(crate) const MAX_DISPLACEMENT_MS: i64 = 45_000;
/// Chance of a malformed line after each valid one.
pub(crate) const MALFORMED: f64 = 0.0005;
/// Share of events whose `ts` is integer epoch milliseconds.
const EPOCH_TS: f64 = 0.03;

#[derive(Clone, Debug)]
pub(crate) struct Ev {
    pub ts: i64,
    pub integ: u32,
    pub resource: &'static str,
    pub action: Action,
    pub status: u16,
    pub key: Option<u32>,
    pub principal: u32,
    pub records: u64,
    pub bytes: u64,
    pub ip: u32,
}

struct Pending {
    key: i64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key && self.seq == o.seq
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    // Reversed: BinaryHeap is a max-heap, we want the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.key.cmp(&self.key).then_with(|| o.seq.cmp(&self.seq))
    }
}

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-1.3 * x).exp())
}

/// Benign calls per minute for `it` in the minute starting at `t`.
pub(crate) fn rate(w: &World, it: &Integ, t: i64) -> f64 {
    if it.base <= 0.0 || t < it.onboard_ms {
        return 0.0;
    }
    if let Some((a, b)) = it.silence {
        if t >= a && t < b {
            return 0.0;
        }
    }
    if let Some(a) = &it.active {
        // Whole minutes: offsets are whole minutes, so the minute is all in or all out.
        if !a.hours.contains(t) {
            return 0.0;
        }
    }
    let tz_min = it.tz_h * 60;
    let h = f64::from(minute_of_day(t, tz_min)) / 60.0;
    let wd = weekday(t, tz_min);
    let diurnal = it.night + (1.0 - it.night) * sig(h - 8.0) * sig(18.0 - h);
    let mut r = it.base * diurnal;
    if wd >= 5 {
        r *= it.weekend;
    }
    if wd == 0 && (7.0..10.0).contains(&h) {
        r *= it.monday;
    }
    if it.month_end > 1.0 && is_month_end(t, 2) {
        r *= it.month_end;
    }
    let growth = 1.0 + it.growth * (t - w.start) as f64 / (w.end - w.start).max(1) as f64;
    r *= growth;
    for &(a, b, f) in &it.shifts {
        if a <= t && t < b {
            r *= f;
        }
    }
    if it.batch > 0.0 && (120..150).contains(&minute_of_day(t, 0)) {
        r = r.max(it.base.max(0.5) * it.batch * growth);
    }
    if it.weekly > 0.0 && crate::hard::in_weekly(t) {
        r = r.max(it.base.max(0.5) * it.weekly * growth);
    }
    r
}

struct Gen<'w> {
    w: &'w World,
    rng: SimRng,
}

impl Gen<'_> {
    fn records(&mut self, mu: f64) -> u64 {
        (mu + 0.9 * normal(&mut self.rng))
            .exp()
            .round()
            .clamp(1.0, 100.0) as u64
    }

    fn ip(&mut self, it: &Integ, net: Option<u32>) -> u32 {
        let j = self.rng.gen_range(0..it.networks.len().max(1));
        let n = net
            .or_else(|| it.networks.get(j).copied())
            .unwrap_or(0xC000_0200);
        let host = it
            .hosts
            .get(self.rng.gen_range(0..it.hosts.len().max(1)))
            .copied()
            .unwrap_or(10);
        n | u32::from(host)
    }

    fn key(&mut self, integ: usize, t: i64) -> Option<u32> {
        let w = self.w;
        let n = w.active_keys(integ, t).count();
        if n == 0 {
            return w.integs[integ].keys.first().map(|&k| k as u32);
        }
        let j = self.rng.gen_range(0..n);
        w.active_keys(integ, t).nth(j).map(|k| k as u32)
    }

    fn principal(&mut self, it: &Integ, t: i64) -> u32 {
        if let Some((p, share)) = it.human {
            if t < self.w.principals[p].use_until && chance(&mut self.rng, share) {
                return p as u32;
            }
        }
        it.service as u32
    }

    fn status_ok(&mut self, a: Action) -> u16 {
        match a {
            Action::Read | Action::Export => 200,
            Action::Write => {
                if chance(&mut self.rng, 0.5) {
                    201
                } else {
                    200
                }
            }
            Action::Delete => 204,
        }
    }

    /// A call of `integ` at `t`, with the incident `mode` applied.
    fn event(&mut self, integ: usize, t: i64, mode: Mode) -> Ev {
        let it = &self.w.integs[integ];
        let u = match mode {
            Mode::Records(_, u) => u,
            _ => weighted(&mut self.rng, it.uses.iter().map(|u| u.weight)),
        };
        let (resource, action, mu, bpr) = match (mode, it.uses.get(u)) {
            (Mode::DataType(r, a), _) => (r, a, 2.0, 600.0),
            (_, Some(x)) => (x.resource, x.action, x.mu, x.bytes_per_record),
            (_, None) => ("contacts", Action::Read, 1.0, 500.0),
        };
        let key = match mode {
            Mode::Key(k) => Some(k as u32),
            _ => self.key(integ, t),
        };
        let principal = match mode {
            Mode::Principal(p) => p as u32,
            _ => self.principal(it, t),
        };
        let net = match mode {
            Mode::Source(n) => Some(n),
            _ => None,
        };
        let ip = self.ip(it, net);
        let x: f64 = self.rng.gen();
        let status = if mode == Mode::RateLimited {
            429
        } else if mode == Mode::Errors {
            let y: f64 = self.rng.gen();
            if y < 0.7 {
                401
            } else if y < 0.95 {
                403
            } else {
                429
            }
        } else if x < 0.005 {
            [401, 401, 403, 403, 429][self.rng.gen_range(0..5)]
        } else if x < 0.008 {
            [404, 409, 422, 500, 503][self.rng.gen_range(0..5)]
        } else {
            self.status_ok(action)
        };
        let (records, bytes) = if status >= 400 {
            (0, self.rng.gen_range(80..400))
        } else {
            let mut r = self.records(mu);
            if let Mode::Records(m, _) = mode {
                r = (r as f64 * m).round() as u64;
            }
            let b = (r as f64 * bpr * uniform(&mut self.rng, 0.8, 1.2)) as u64 + 200;
            (r, b)
        };
        Ev {
            ts: t,
            integ: integ as u32,
            resource,
            action,
            status,
            key,
            principal,
            records,
            bytes,
            ip,
        }
    }

    fn render(&mut self, ev: &Ev, out: &mut String) {
        let w = self.w;
        let it = &w.integs[ev.integ as usize];
        out.clear();
        out.push_str("{\"ts\":");
        if chance(&mut self.rng, EPOCH_TS) {
            let _ = write!(out, "{}", ev.ts);
        } else {
            out.push('"');
            write_rfc3339(out, ev.ts);
            out.push('"');
        }
        let _ = write!(out, ",\"integration_id\":\"{}\"", it.id);
        if let Some(k) = ev.key {
            let _ = write!(out, ",\"key_id\":\"{}\"", w.keys[k as usize].id);
        }
        let _ = write!(
            out,
            ",\"principal\":\"{}\"",
            w.principals[ev.principal as usize].id
        );
        let (method, endpoint_item) = match ev.action {
            Action::Read => ("GET", chance(&mut self.rng, 0.3)),
            Action::Export => ("POST", false),
            Action::Delete => ("DELETE", true),
            Action::Write => match self.rng.gen_range(0..10) {
                0..=5 => ("POST", false),
                6..=8 => ("PATCH", true),
                _ => ("PUT", true),
            },
        };
        let _ = write!(out, ",\"method\":\"{method}\"");
        if ev.action == Action::Export {
            let _ = write!(out, ",\"endpoint\":\"/crm/v3/exports/{}\"", ev.resource);
        } else if endpoint_item {
            let _ = write!(
                out,
                ",\"endpoint\":\"/crm/v3/objects/{}/{{id}}\"",
                ev.resource
            );
        } else {
            let _ = write!(out, ",\"endpoint\":\"/crm/v3/objects/{}\"", ev.resource);
        }
        let _ = write!(out, ",\"resource\":\"{}\"", ev.resource);
        if ev.action == Action::Export || chance(&mut self.rng, 0.3) {
            let _ = write!(out, ",\"action\":\"{}\"", ev.action.as_str());
        }
        if ev.action == Action::Read && ev.status < 400 && chance(&mut self.rng, 0.2) {
            let f = fields_for(ev.resource);
            let n = self.rng.gen_range(1..=f.len());
            out.push_str(",\"fields\":[");
            for (j, name) in f[..n].iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                let _ = write!(out, "\"{name}\"");
            }
            out.push(']');
        }
        let _ = write!(
            out,
            ",\"records\":{},\"bytes\":{},\"status\":{}",
            ev.records, ev.bytes, ev.status
        );
        let ip = ev.ip;
        let _ = write!(
            out,
            ",\"source_ip\":\"{}.{}.{}.{}\"",
            ip >> 24,
            (ip >> 16) & 255,
            (ip >> 8) & 255,
            ip & 255
        );
        let _ = write!(out, ",\"user_agent\":\"{}\"}}", it.agent);
    }

    /// A line that ingest must reject, shaped like `ev`.
    fn malformed(&mut self, ev: &Ev, out: &mut String) {
        let id = &self.w.integs[ev.integ as usize].id;
        let mut ts = String::new();
        write_rfc3339(&mut ts, ev.ts);
        out.clear();
        match self.rng.gen_range(0..5) {
            0 => {
                // Invalid JSON: a line cut short.
                let _ = write!(
                    out,
                    "{{\"ts\":\"{ts}\",\"integration_id\":\"{id}\",\"resource\":\"{}\",\"meth",
                    ev.resource
                );
            }
            1 => {
                let _ = write!(out, "{{\"ts\":\"{ts}\",\"integration_id\":\"{id}\",\"method\":\"GET\",\"status\":200}}");
            }
            2 => {
                let _ = write!(out, "{{\"ts\":\"{ts}\",\"integration_id\":\"{id}\",\"resource\":\"{}\",\"method\":\"GET\",\"status\":\"200\"}}", ev.resource);
            }
            3 => {
                let _ = write!(out, "{{\"ts\":\"{ts}\",\"integration_id\":\"{id}\",\"resource\":\"{}\",\"method\":\"GET\",\"status\":999}}", ev.resource);
            }
            _ => {
                let _ = write!(out, "{{\"ts\":\"{ts}\",\"integration_id\":\"\",\"resource\":\"{}\",\"method\":\"GET\",\"status\":200}}", ev.resource);
            }
        }
    }
}

/// Generates the whole stream into `sink`; returns (events, malformed lines,
/// integration-days).
pub(crate) fn run(cfg: &SimConfig, w: &World, mut sink: impl FnMut(&[u8])) -> (u64, u64, u64) {
    let mut g = Gen {
        w,
        rng: SimRng::seed_from_u64(cfg.seed ^ 0x7472_6970_6c69_6e65),
    };
    let minutes = i64::from(cfg.days) * 1440;
    let days = cfg.days as usize;
    let mut seen = vec![false; w.integs.len() * days];
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    let mut batch: Vec<Ev> = Vec::new();
    let mut line = String::with_capacity(512);
    let (mut seq, mut events, mut malformed) = (0u64, 0u64, 0u64);

    let mut emit = |g: &mut Gen<'_>, ev: Ev, line: &mut String| {
        g.render(&ev, line);
        sink(line.as_bytes());
        events += 1;
        let d = (ev.ts - w.start).div_euclid(DAY_MS) as usize;
        if let Some(s) = seen.get_mut(ev.integ as usize * days + d.min(days.saturating_sub(1))) {
            *s = true;
        }
        if chance(&mut g.rng, MALFORMED) {
            g.malformed(&ev, line);
            sink(line.as_bytes());
            malformed += 1;
        }
    };

    // (integration, factor) of the exfiltration incidents active this minute.
    let mut inflate: Vec<(usize, f64)> = Vec::new();
    for m in 0..minutes {
        let t0 = w.start + m * MINUTE_MS;
        batch.clear();
        inflate.clear();
        inflate.extend(
            w.incidents
                .iter()
                .filter(|b| b.records_factor != 1.0 && b.start <= t0 && t0 < b.end)
                .map(|b| (b.integ, b.records_factor)),
        );
        for (i, it) in w.integs.iter().enumerate() {
            let n = poisson(&mut g.rng, rate(w, it, t0));
            let factor = inflate.iter().find(|x| x.0 == i).map_or(1.0, |x| x.1);
            for _ in 0..n {
                let t = t0 + g.rng.gen_range(0..MINUTE_MS);
                let mut ev = g.event(i, t, Mode::Normal);
                if factor != 1.0 && ev.status < 400 {
                    ev.records = (ev.records as f64 * factor).round() as u64;
                    ev.bytes = (ev.bytes as f64 * factor).round() as u64;
                }
                batch.push(ev);
            }
        }
        for b in &w.incidents {
            if b.start <= t0 && t0 < b.end && (b.rate > 0.0 || b.relative > 0.0) {
                let extra = b.rate + b.relative * rate(w, &w.integs[b.integ], t0);
                let n = poisson(&mut g.rng, extra);
                for _ in 0..n {
                    let t = t0 + g.rng.gen_range(0..MINUTE_MS);
                    let ev = g.event(b.integ, t, b.mode);
                    batch.push(ev);
                }
            }
        }
        for &(integ, a, b, r) in &w.rate_limited {
            if a <= t0 && t0 < b {
                let n = poisson(&mut g.rng, r);
                for _ in 0..n {
                    let t = t0 + g.rng.gen_range(0..MINUTE_MS);
                    let ev = g.event(integ, t, Mode::RateLimited);
                    batch.push(ev);
                }
            }
        }
        batch.sort_by_key(|e| e.ts);
        for ev in batch.drain(..) {
            let key = if chance(&mut g.rng, DISPLACED) {
                ev.ts + g.rng.gen_range(1_000..=MAX_DISPLACEMENT_MS)
            } else {
                ev.ts
            };
            heap.push(Pending { key, seq, ev });
            seq += 1;
        }
        let horizon = t0 + MINUTE_MS;
        while heap.peek().is_some_and(|p| p.key < horizon) {
            if let Some(p) = heap.pop() {
                emit(&mut g, p.ev, &mut line);
            }
        }
    }
    while let Some(p) = heap.pop() {
        emit(&mut g, p.ev, &mut line);
    }
    let integration_days = seen.iter().filter(|&&s| s).count() as u64;
    (events, malformed, integration_days)
}
