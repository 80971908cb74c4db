//! The world of one run: integrations, keys, principals and the incidents,
//! all decided up front from the seed; and its `registry.toml`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tripline_engine::registry::{ActiveHours, Grant};
use tripline_engine::time::{format_rfc3339, minute_of_day, weekday, DAY_MS, HOUR_MS, MINUTE_MS};
use tripline_engine::{Action, AlertKind};

use crate::catalog::{
    Profile, Tier, FORBIDDEN, HUMANS, NEVER_USED, PROFILES, SHADOWS, SHADOW_USES,
};
use crate::rng::{chance, uniform, SimRng};
use crate::{Incident, SimConfig};

/// Learned detectors need this much history before an incident is fair game.
pub(crate) const LEARNING_MS: i64 = 8 * DAY_MS;

#[derive(Clone, Debug)]
pub(crate) struct UsePlan {
    pub resource: &'static str,
    pub action: Action,
    pub weight: f64,
    /// ln of the median records per call.
    pub mu: f64,
    pub bytes_per_record: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct ActiveDecl {
    pub hours: ActiveHours,
    pub days: &'static str,
    pub start: &'static str,
    pub end: &'static str,
    pub offset: &'static str,
}

#[derive(Clone, Debug)]
pub(crate) struct Integ {
    pub id: String,
    pub profile: &'static Profile,
    pub registered: bool,
    pub uses: Vec<UsePlan>,
    pub granted: Vec<String>,
    pub declared_networks: bool,
    /// /24 bases as u32.
    pub networks: Vec<u32>,
    pub hosts: Vec<u8>,
    pub active: Option<ActiveDecl>,
    /// Business-hours calls per minute (already × rate_scale); 0 = no benign traffic.
    pub base: f64,
    /// Local time zone of its business curve, hours from UTC.
    pub tz_h: i32,
    pub night: f64,
    pub weekend: f64,
    pub monday: f64,
    pub growth: f64,
    pub month_end: f64,
    /// Nightly batch multiplier; 0 = none.
    pub batch: f64,
    pub onboard_ms: i64,
    pub silence: Option<(i64, i64)>,
    pub keys: Vec<usize>,
    pub service: usize,
    pub human: Option<(usize, f64)>,
    pub sensitivity: Option<&'static str>,
    pub agent: String,
}

#[derive(Clone, Debug)]
pub(crate) struct KeyPlan {
    pub id: String,
    pub integ: usize,
    pub created: i64,
    pub use_from: i64,
    pub use_until: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Clone, Debug)]
pub(crate) struct PrincipalPlan {
    pub id: String,
    /// Benign traffic uses it strictly before this instant.
    pub use_until: i64,
    pub offboarded_at: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mode {
    /// The integration's usual data types, keys and networks.
    Normal,
    /// Usual calls with records × factor on one data type (bulk export).
    Records(f64, usize),
    /// 401/403/429 responses.
    Errors,
    DataType(&'static str, Action),
    Source(u32),
    Key(usize),
    Principal(usize),
}

/// One injected incident and the extra traffic that realises it.
#[derive(Clone, Debug)]
pub(crate) struct Burst {
    pub integ: usize,
    pub start: i64,
    pub end: i64,
    /// Extra calls per minute (0 for dormancy, realised by the silence).
    pub rate: f64,
    pub mode: Mode,
    pub incident: Incident,
}

pub(crate) struct World {
    pub start: i64,
    pub end: i64,
    pub integs: Vec<Integ>,
    pub keys: Vec<KeyPlan>,
    pub principals: Vec<PrincipalPlan>,
    pub incidents: Vec<Burst>,
}

impl World {
    /// Keys of `integ` benign traffic may use at `t`.
    pub fn active_keys(&self, integ: usize, t: i64) -> impl Iterator<Item = usize> + '_ {
        self.integs[integ]
            .keys
            .iter()
            .copied()
            .filter(move |&k| self.keys[k].use_from <= t && t < self.keys[k].use_until)
    }
}

fn net_for(i: usize) -> u32 {
    const TEST_NETS: [u32; 3] = [0xC633_6400, 0xCB00_7100, 0xC000_0200];
    if i < 3 {
        TEST_NETS[i]
    } else {
        let j = (i - 3) as u32 % 16_384;
        if j % 2 == 1 && j / 2 < 512 {
            // 198.18.0.0/15 (benchmarking range).
            let h = j / 2;
            (198 << 24) | ((18 + h / 256) << 16) | ((h % 256) << 8)
        } else {
            // 100.64.0.0/10 shared address space.
            (100 << 24) | ((64 + j / 256) << 16) | ((j % 256) << 8)
        }
    }
}

pub(crate) fn ip_string(ip: u32) -> String {
    format!(
        "{}.{}.{}.{}",
        ip >> 24,
        (ip >> 16) & 255,
        (ip >> 8) & 255,
        ip & 255
    )
}

fn parse_grant(s: &str) -> (&'static str, Action) {
    // Only called on catalog literals; fall back to a harmless pair.
    let (r, a) = s.split_once(':').unwrap_or((s, "*"));
    let res: &'static str = RESOURCES
        .iter()
        .copied()
        .find(|x| *x == r)
        .unwrap_or("contacts");
    (res, Action::parse(a).unwrap_or(Action::Delete))
}

const RESOURCES: &[&str] = &[
    "contacts",
    "companies",
    "deals",
    "notes",
    "payments",
    "invoices",
    "tickets",
    "attachments",
    "activities",
    "tasks",
    "products",
    "lists",
    "conversations",
    "users",
];

fn granted_by(granted: &[String], res: &str, act: Action) -> bool {
    granted
        .iter()
        .filter_map(|g| Grant::parse(g).ok())
        .any(|g| g.matches(res, act))
}

fn key_id(rng: &mut SimRng, used: &mut BTreeSet<String>) -> String {
    loop {
        let id = format!("key_{:06x}", rng.gen_range(0..0x100_0000u32));
        if used.insert(id.clone()) {
            return id;
        }
    }
}

const AH_DAYS: [(&str, [bool; 7]); 2] = [
    (
        "\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"",
        [true, true, true, true, true, false, false],
    ),
    (
        "\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\"",
        [true, true, true, true, true, true, false],
    ),
];
const AH_START: [(&str, u32); 3] = [("06:00", 360), ("07:00", 420), ("08:00", 480)];
const AH_END: [(&str, u32); 3] = [("19:00", 1140), ("20:00", 1200), ("22:00", 1320)];
const AH_OFFSET: [(&str, i32); 4] = [
    ("+00:00", 0),
    ("-05:00", -300),
    ("+01:00", 60),
    ("+05:30", 330),
];

/// Builds the world for `cfg` (already validated).
pub(crate) fn plan(cfg: &SimConfig) -> World {
    let mut rng = SimRng::seed_from_u64(cfg.seed);
    let start = cfg.start_ms;
    let end = start + i64::from(cfg.days) * DAY_MS;
    let k = cfg.integrations as usize;
    let mut key_ids = BTreeSet::new();
    let mut integs = Vec::with_capacity(k + 1 + SHADOWS.len());
    let mut keys = Vec::new();
    let mut principals: Vec<PrincipalPlan> = Vec::new();
    let mut next_net = 0usize;
    let mut next_human = 0usize;

    let n_kind = ((k as f64 * f64::from(cfg.days)) / 270.0).round().max(3.0) as usize;
    let dormant_ok = cfg.days >= 34;
    // Dormant candidates: medium, onboard at start, no hours, no batch.
    let mediums: Vec<usize> = (0..k)
        .filter(|&i| PROFILES[i % PROFILES.len()].tier == Tier::Medium)
        .collect();
    let mut dormant_set: Vec<usize> = Vec::new();
    if dormant_ok {
        let mut m = mediums.clone();
        m.shuffle(&mut rng);
        dormant_set = m
            .into_iter()
            .filter(|&i| !PROFILES[i % PROFILES.len()].batch)
            .take(n_kind)
            .collect();
        dormant_set.sort_unstable();
    }

    for i in 0..k {
        let p = &PROFILES[i % PROFILES.len()];
        let id = if i < PROFILES.len() {
            p.slug.to_owned()
        } else {
            format!("{}-{}", p.slug, i / PROFILES.len() + 1)
        };
        let dormant = dormant_set.contains(&i);
        let late = !dormant && cfg.days >= 24 && p.tier != Tier::High && i % 13 == 7;
        let onboard_ms = if late {
            start + (uniform(&mut rng, 10.2, 14.0) * DAY_MS as f64) as i64
        } else {
            start
        };
        let uses: Vec<UsePlan> = p
            .uses
            .iter()
            .map(|&(resource, action, weight, median)| UsePlan {
                resource,
                action,
                weight,
                mu: median.ln(),
                bytes_per_record: uniform(&mut rng, 200.0, 2000.0),
            })
            .collect();
        let mut granted: Vec<String> = Vec::new();
        for u in &uses {
            let g = format!("{}:{}", u.resource, u.action.as_str());
            if !granted.contains(&g) {
                granted.push(g);
            }
        }
        for x in p.unused {
            granted.push((*x).to_owned());
        }
        let n_nets = rng.gen_range(1..=3usize);
        let networks: Vec<u32> = (0..n_nets).map(|j| net_for(next_net + j)).collect();
        next_net += n_nets;
        let hosts: Vec<u8> = (0..rng.gen_range(2..=6))
            .map(|_| rng.gen_range(2..=250))
            .collect();
        let declared_networks = i % 2 == 1;
        let active = if !dormant && !p.batch && p.tier != Tier::High && i % 6 == 2 {
            let d = AH_DAYS[rng.gen_range(0..AH_DAYS.len())];
            let s = AH_START[rng.gen_range(0..AH_START.len())];
            let e = AH_END[rng.gen_range(0..AH_END.len())];
            let o = AH_OFFSET[rng.gen_range(0..AH_OFFSET.len())];
            Some(ActiveDecl {
                hours: ActiveHours {
                    days: d.1,
                    start_minute: s.1,
                    end_minute: e.1,
                    utc_offset_minutes: o.1,
                },
                days: d.0,
                start: s.0,
                end: e.0,
                offset: o.0,
            })
        } else {
            None
        };
        let tz_h = match &active {
            Some(a) => a.hours.utc_offset_minutes / 60,
            None => rng.gen_range(-2..=2),
        };
        let base = match p.tier {
            Tier::Low => uniform(&mut rng, 2.0, 8.0) / 60.0,
            Tier::Medium => uniform(&mut rng, 1.0, 3.5),
            Tier::High => uniform(&mut rng, 20.0, 30.0),
        } * cfg.rate_scale;
        let silence = if dormant {
            let a = start + (uniform(&mut rng, 10.2, 12.0) * DAY_MS as f64) as i64;
            // Resume in the business hours of a weekday at least 21.5 days later.
            let mut day = (a + (21.5 * DAY_MS as f64) as i64).div_euclid(DAY_MS) + 1;
            while weekday(day * DAY_MS, 0) >= 5 {
                day += 1;
            }
            let resume = day * DAY_MS + rng.gen_range(10..15) * HOUR_MS - i64::from(tz_h) * HOUR_MS
                + rng.gen_range(0..60) * MINUTE_MS;
            (resume < end - 3 * HOUR_MS).then_some((a, resume))
        } else {
            None
        };
        let idx = integs.len();
        // Keys: 1-3; with 2+ the first may be rotated out and revoked.
        let n_keys = [1usize, 1, 2, 2, 3][rng.gen_range(0..5)];
        let mut ks = Vec::new();
        let created0 = onboard_ms - rng.gen_range(1..300) * DAY_MS;
        let span_lo = onboard_ms + 4 * DAY_MS;
        let span_hi = end - 8 * DAY_MS;
        let rotate = n_keys >= 2 && span_hi > span_lo;
        let r = if rotate {
            rng.gen_range(span_lo..span_hi)
        } else {
            end
        };
        for j in 0..n_keys {
            let id = key_id(&mut rng, &mut key_ids);
            let (created, use_from, use_until, revoked_at) = match j {
                0 if rotate => {
                    let rv = chance(&mut rng, 0.85).then(|| r + rng.gen_range(HOUR_MS..3 * DAY_MS));
                    (created0, onboard_ms, r, rv)
                }
                1 if rotate => {
                    let c = r - rng.gen_range(0..2 * DAY_MS);
                    (c, r, i64::MAX, None)
                }
                _ => (
                    created0 + rng.gen_range(0..DAY_MS),
                    onboard_ms,
                    i64::MAX,
                    None,
                ),
            };
            ks.push(keys.len());
            keys.push(KeyPlan {
                id,
                integ: idx,
                created,
                use_from,
                use_until,
                revoked_at,
            });
        }
        let service = principals.len();
        principals.push(PrincipalPlan {
            id: format!("svc-{id}@acme.example"),
            use_until: i64::MAX,
            offboarded_at: None,
        });
        let human = if chance(&mut rng, 0.35) && span_hi > span_lo + DAY_MS {
            let h = rng.gen_range(span_lo..span_hi);
            let name = HUMANS[next_human % HUMANS.len()];
            let hid = if next_human < HUMANS.len() {
                format!("{name}@acme.example")
            } else {
                format!("{name}{}@acme.example", next_human / HUMANS.len() + 1)
            };
            next_human += 1;
            let off = chance(&mut rng, 0.8).then(|| h + rng.gen_range(2 * HOUR_MS..2 * DAY_MS));
            principals.push(PrincipalPlan {
                id: hid,
                use_until: h,
                offboarded_at: off,
            });
            Some((principals.len() - 1, uniform(&mut rng, 0.1, 0.3)))
        } else {
            None
        };
        let sensitivity = if p.billing || p.uses.iter().any(|u| matches!(u.0, "notes" | "payments"))
        {
            Some("high")
        } else if i % 3 == 0 {
            Some("normal")
        } else {
            None
        };
        integs.push(Integ {
            id,
            profile: p,
            registered: true,
            uses,
            granted,
            declared_networks,
            networks,
            hosts,
            active,
            base,
            tz_h,
            night: if p.tier == Tier::High {
                uniform(&mut rng, 0.15, 0.25)
            } else {
                uniform(&mut rng, 0.04, 0.12)
            },
            weekend: uniform(&mut rng, 0.2, 0.5),
            monday: uniform(&mut rng, 1.4, 2.0),
            growth: uniform(&mut rng, 0.0, 0.2),
            month_end: if p.billing {
                uniform(&mut rng, 2.0, 3.0)
            } else {
                1.0
            },
            batch: if p.batch {
                uniform(&mut rng, 10.0, 20.0)
            } else {
                0.0
            },
            onboard_ms,
            silence,
            keys: ks,
            service,
            human,
            sensitivity,
            agent: p.agent.to_owned(),
        });
    }

    // The registered integration nobody uses.
    {
        let idx = integs.len();
        let id = key_id(&mut rng, &mut key_ids);
        keys.push(KeyPlan {
            id,
            integ: idx,
            created: start - 400 * DAY_MS,
            use_from: i64::MAX,
            use_until: i64::MAX,
            revoked_at: None,
        });
        principals.push(PrincipalPlan {
            id: "svc-pipedrive@acme.example".into(),
            use_until: i64::MIN,
            offboarded_at: None,
        });
        integs.push(Integ {
            id: NEVER_USED.slug.to_owned(),
            profile: &NEVER_USED,
            registered: true,
            uses: Vec::new(),
            granted: ["contacts:write", "contacts:read", "deals:write"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            declared_networks: false,
            networks: vec![net_for(next_net)],
            hosts: vec![10],
            active: None,
            base: 0.0,
            tz_h: 0,
            night: 0.0,
            weekend: 0.0,
            monday: 1.0,
            growth: 0.0,
            month_end: 1.0,
            batch: 0.0,
            onboard_ms: i64::MAX,
            silence: None,
            keys: vec![keys.len() - 1],
            service: principals.len() - 1,
            human: None,
            sensitivity: None,
            agent: NEVER_USED.agent.to_owned(),
        });
        next_net += 1;
    }
    // Other humans, not tied to any integration, some long gone.
    for (j, name) in HUMANS.iter().enumerate().skip(next_human.min(HUMANS.len())) {
        let off = (j % 3 == 0).then(|| start - rng.gen_range(1..200) * DAY_MS);
        principals.push(PrincipalPlan {
            id: format!("{name}@acme.example"),
            use_until: i64::MIN,
            offboarded_at: off,
        });
    }

    let mut world = World {
        start,
        end,
        integs,
        keys,
        principals,
        incidents: Vec::new(),
    };
    place_incidents(
        &mut world,
        &mut rng,
        k,
        n_kind,
        next_net,
        &dormant_set,
        &mut key_ids,
    );
    world
}

fn fmt_ts(t: i64) -> String {
    format_rfc3339(t)
}

fn overlaps_batch(s: i64, e: i64) -> bool {
    let mut t = s;
    while t < e {
        let m = minute_of_day(t, 0);
        if (90..195).contains(&m) {
            return true;
        }
        t += 5 * MINUTE_MS;
    }
    (90..195).contains(&minute_of_day(e - 1, 0))
}

/// Whether an incident of `kind` on `integ` may occupy [s, e).
fn fits(w: &World, integ: usize, s: i64, e: i64, kind: AlertKind) -> bool {
    let it = &w.integs[integ];
    let lo = if it.registered {
        it.onboard_ms
    } else {
        w.start
    };
    if s < lo.saturating_add(LEARNING_MS) || e > w.end - 30 * MINUTE_MS {
        return false;
    }
    if let Some((a, b)) = it.silence {
        if s < b + 3 * HOUR_MS && e > a - 3 * HOUR_MS {
            return false;
        }
    }
    let margin = 3 * HOUR_MS;
    if w.incidents
        .iter()
        .any(|b| b.integ == integ && s < b.end + margin && e > b.start - margin)
    {
        return false;
    }
    if it.batch > 0.0 && overlaps_batch(s, e) {
        return false;
    }
    match (&it.active, kind) {
        (Some(a), AlertKind::OffHours) => {
            let mut t = s;
            while t < e {
                if a.hours.contains(t) {
                    return false;
                }
                t += MINUTE_MS;
            }
            true
        }
        (None, AlertKind::OffHours) => false,
        (Some(a), _) => {
            let mut t = s;
            while t < e {
                if !a.hours.contains(t) {
                    return false;
                }
                t += 10 * MINUTE_MS;
            }
            a.hours.contains(e - 1)
        }
        (None, _) => true,
    }
}

fn pick_window(
    w: &World,
    rng: &mut SimRng,
    integ: usize,
    dur: i64,
    lo: i64,
    kind: AlertKind,
) -> Option<i64> {
    let lo = lo.max(w.start);
    let hi = w.end - dur - 30 * MINUTE_MS;
    if hi <= lo {
        return None;
    }
    for _ in 0..400 {
        let s = rng.gen_range(lo..hi).div_euclid(MINUTE_MS) * MINUTE_MS;
        if fits(w, integ, s, s + dur, kind) {
            return Some(s);
        }
    }
    None
}

#[allow(clippy::too_many_lines)]
#[allow(clippy::too_many_arguments)]
fn place_incidents(
    w: &mut World,
    rng: &mut SimRng,
    k: usize,
    n: usize,
    mut next_net: usize,
    dormant: &[usize],
    key_ids: &mut BTreeSet<String>,
) {
    use AlertKind as K;
    let mut load = vec![0usize; w.integs.len()];
    let mut injected_types: Vec<Vec<(&'static str, Action)>> = vec![Vec::new(); w.integs.len()];
    let mut new_net = 0u32;
    let push = |w: &mut World, load: &mut Vec<usize>, b: Burst| {
        load[b.integ] += 1;
        w.incidents.push(b);
    };
    let mk = |w: &World,
              kind,
              integ: usize,
              s: i64,
              e: i64,
              key: Option<String>,
              res: Option<&str>,
              desc: String| Incident {
        id: String::new(),
        kind,
        integration_id: w.integs[integ].id.clone(),
        key_id: key,
        resource: res.map(str::to_owned),
        start: s,
        end: e,
        description: desc,
    };

    // Dormancy first: the silence is already in the plan.
    for &i in dormant {
        if let Some((a, b)) = w.integs[i].silence {
            let e = b + HOUR_MS;
            let desc = format!(
                "{} silent from {} after {:.1} days of traffic, resumes after {:.1} days",
                w.integs[i].id,
                fmt_ts(a),
                (a - w.integs[i].onboard_ms) as f64 / DAY_MS as f64,
                (b - a) as f64 / DAY_MS as f64
            );
            let inc = mk(w, K::DormantReactivated, i, b, e, None, None, desc);
            push(
                w,
                &mut load,
                Burst {
                    integ: i,
                    start: b,
                    end: e,
                    rate: 0.0,
                    mode: Mode::Normal,
                    incident: inc,
                },
            );
        }
    }

    // Shadow integrations.
    for j in 0..n {
        let (name, agent) = SHADOWS[j % SHADOWS.len()];
        let id = if j < SHADOWS.len() {
            name.to_owned()
        } else {
            format!("{name}-{}", j / SHADOWS.len() + 1)
        };
        let idx = w.integs.len();
        let mut shadow = w.integs[0].clone();
        shadow.id = id;
        shadow.registered = false;
        shadow.uses = SHADOW_USES
            .iter()
            .map(|&(resource, action, weight, median)| UsePlan {
                resource,
                action,
                weight,
                mu: median.ln(),
                bytes_per_record: 800.0,
            })
            .collect();
        shadow.granted = Vec::new();
        shadow.networks = vec![net_for(next_net)];
        next_net += 1;
        shadow.active = None;
        shadow.base = 0.0;
        shadow.onboard_ms = i64::MAX;
        shadow.silence = None;
        shadow.batch = 0.0;
        let kid = key_id(rng, key_ids);
        w.keys.push(KeyPlan {
            id: kid,
            integ: idx,
            created: w.start,
            use_from: i64::MAX,
            use_until: i64::MAX,
            revoked_at: None,
        });
        shadow.keys = vec![w.keys.len() - 1];
        shadow.human = None;
        let who = HUMANS[(HUMANS.len() - 1 - j % HUMANS.len()) % HUMANS.len()];
        w.principals.push(PrincipalPlan {
            id: format!("{who}.{}@contractor.example", j + 1),
            use_until: i64::MIN,
            offboarded_at: None,
        });
        shadow.service = w.principals.len() - 1;
        shadow.agent = agent.to_owned();
        w.integs.push(shadow);
        load.push(0);
        injected_types.push(Vec::new());
        let dur = rng.gen_range(20..=90) * MINUTE_MS;
        if let Some(s) = pick_window(
            w,
            rng,
            idx,
            dur,
            w.start + LEARNING_MS,
            K::UnknownIntegration,
        ) {
            let desc = format!(
                "unregistered integration {} pulls contacts and deals",
                w.integs[idx].id
            );
            let inc = mk(w, K::UnknownIntegration, idx, s, s + dur, None, None, desc);
            let rate = uniform(rng, 1.0, 5.0);
            push(
                w,
                &mut load,
                Burst {
                    integ: idx,
                    start: s,
                    end: s + dur,
                    rate,
                    mode: Mode::Normal,
                    incident: inc,
                },
            );
        }
    }

    // The rest: pick the least-loaded eligible integration each time.
    let kinds = [
        K::OffHours,
        K::RevokedCredential,
        K::NewSource,
        K::CallSpike,
        K::VolumeSpike,
        K::ErrorBurst,
        K::NewDataType,
        K::ScopeViolation,
    ];
    for kind in kinds {
        for inst in 0..n {
            let mut cands: Vec<usize> = (0..k)
                .filter(|&i| {
                    let it = &w.integs[i];
                    match kind {
                        K::OffHours => it.active.is_some(),
                        K::NewSource => !it.declared_networks,
                        K::CallSpike | K::VolumeSpike => it.profile.tier != Tier::Low,
                        K::RevokedCredential => {
                            if inst % 2 == 0 {
                                it.keys.iter().any(|&k| w.keys[k].revoked_at.is_some())
                            } else {
                                it.human
                                    .is_some_and(|(p, _)| w.principals[p].offboarded_at.is_some())
                            }
                        }
                        K::NewDataType => it.profile.unused.iter().any(|g| {
                            let t = parse_grant(g);
                            !injected_types[i].contains(&t)
                                && !it.uses.iter().any(|u| u.resource == t.0 && u.action == t.1)
                        }),
                        _ => true,
                    }
                })
                .collect();
            cands.shuffle(rng);
            cands.sort_by_key(|&i| load[i]);
            for i in cands {
                let it = &w.integs[i];
                let base = it.base.max(0.05);
                let (dur, rate, mode, lo, key, res, desc): (
                    i64,
                    f64,
                    Mode,
                    i64,
                    Option<String>,
                    Option<&'static str>,
                    String,
                ) = match kind {
                    K::CallSpike => {
                        let m = uniform(rng, 10.0, 50.0);
                        let rate = (m * base).max(60.0);
                        (
                            rng.gen_range(5..=30),
                            rate,
                            Mode::Normal,
                            0,
                            None,
                            None,
                            format!(
                                "{} calls at ~{rate:.0}/min, {m:.0}x its business-hours rate",
                                it.id
                            ),
                        )
                    }
                    K::VolumeSpike => {
                        let m = uniform(rng, 50.0, 200.0);
                        let u = (0..it.uses.len())
                            .max_by(|&a, &b| it.uses[a].mu.total_cmp(&it.uses[b].mu))
                            .unwrap_or(0);
                        let res = it.uses.get(u).map(|u| u.resource);
                        let desc = format!(
                            "bulk pull: records per call x{m:.0} on {} at a normal call rate",
                            res.unwrap_or("?")
                        );
                        (
                            rng.gen_range(10..=30),
                            base.clamp(2.0, 5.0),
                            Mode::Records(m, u),
                            0,
                            None,
                            res,
                            desc,
                        )
                    }
                    K::ErrorBurst => {
                        let rate = uniform(rng, 20.0, 60.0);
                        (rng.gen_range(5..=15), rate, Mode::Errors, 0, None, None, format!("~{rate:.0}/min 401/403 responses: a stale or leaked key being probed"))
                    }
                    K::NewDataType => {
                        let Some(t) = it.profile.unused.iter().map(|g| parse_grant(g)).find(|t| {
                            !injected_types[i].contains(t)
                                && !it.uses.iter().any(|u| u.resource == t.0 && u.action == t.1)
                        }) else {
                            continue;
                        };
                        let desc = format!(
                            "starts using {}:{} (granted, never used before)",
                            t.0,
                            t.1.as_str()
                        );
                        (
                            rng.gen_range(10..=40),
                            uniform(rng, 1.0, 3.0),
                            Mode::DataType(t.0, t.1),
                            0,
                            None,
                            Some(t.0),
                            desc,
                        )
                    }
                    K::ScopeViolation => {
                        let opts: Vec<(&'static str, Action)> = FORBIDDEN
                            .iter()
                            .copied()
                            .filter(|&(r, a)| {
                                !granted_by(&it.granted, r, a)
                                    && !injected_types[i].contains(&(r, a))
                            })
                            .collect();
                        let Some(&t) = opts.choose(rng) else { continue };
                        let desc = format!(
                            "touches {}:{}, which is not in its granted list",
                            t.0,
                            t.1.as_str()
                        );
                        (
                            rng.gen_range(5..=20),
                            uniform(rng, 1.0, 3.0),
                            Mode::DataType(t.0, t.1),
                            0,
                            None,
                            Some(t.0),
                            desc,
                        )
                    }
                    K::NewSource => {
                        let net = (45 << 24) | (155 << 16) | ((10 + (new_net * 37) % 240) << 8);
                        new_net += 1;
                        let desc =
                            format!("calls from {}/24, a network it never used", ip_string(net));
                        (
                            rng.gen_range(30..=120),
                            base.clamp(1.0, 3.0),
                            Mode::Source(net),
                            0,
                            None,
                            None,
                            desc,
                        )
                    }
                    K::RevokedCredential => {
                        if inst % 2 == 0 {
                            let Some(&kk) =
                                it.keys.iter().find(|&&kk| w.keys[kk].revoked_at.is_some())
                            else {
                                continue;
                            };
                            let rv = w.keys[kk].revoked_at.unwrap_or(i64::MAX - DAY_MS);
                            let desc = format!(
                                "revoked key {} used again (revoked {})",
                                w.keys[kk].id,
                                fmt_ts(rv)
                            );
                            (
                                rng.gen_range(5..=20),
                                uniform(rng, 1.0, 3.0),
                                Mode::Key(kk),
                                rv + HOUR_MS,
                                Some(w.keys[kk].id.clone()),
                                None,
                                desc,
                            )
                        } else {
                            let Some((p, _)) = it.human else { continue };
                            let off = w.principals[p].offboarded_at.unwrap_or(i64::MAX - DAY_MS);
                            let desc = format!(
                                "offboarded principal {} (offboarded {}) makes calls",
                                w.principals[p].id,
                                fmt_ts(off)
                            );
                            (
                                rng.gen_range(5..=20),
                                uniform(rng, 1.0, 3.0),
                                Mode::Principal(p),
                                off + HOUR_MS,
                                None,
                                None,
                                desc,
                            )
                        }
                    }
                    K::OffHours => {
                        let desc = match &it.active {
                            Some(a) => {
                                format!("calls outside its active hours ({})", a.hours.describe())
                            }
                            None => continue,
                        };
                        (
                            rng.gen_range(10..=40),
                            uniform(rng, 1.0, 5.0),
                            Mode::Normal,
                            0,
                            None,
                            None,
                            desc,
                        )
                    }
                    _ => continue,
                };
                let dur = dur * MINUTE_MS;
                let lo = lo.max(it.onboard_ms.saturating_add(LEARNING_MS));
                let Some(s) = pick_window(w, rng, i, dur, lo, kind) else {
                    continue;
                };
                if let Mode::DataType(r, a) = mode {
                    injected_types[i].push((r, a));
                }
                let desc = format!("{}: {desc}", w.integs[i].id);
                let inc = mk(w, kind, i, s, s + dur, key, res, desc);
                push(
                    w,
                    &mut load,
                    Burst {
                        integ: i,
                        start: s,
                        end: s + dur,
                        rate,
                        mode,
                        incident: inc,
                    },
                );
                break;
            }
        }
    }

    w.incidents.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then_with(|| a.incident.integration_id.cmp(&b.incident.integration_id))
    });
    for (j, b) in w.incidents.iter_mut().enumerate() {
        b.incident.id = format!("inc-{:03}", j + 1);
    }
}

fn toml_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn toml_ts(t: i64) -> String {
    let s = format_rfc3339(t);
    toml_str(
        s.strip_suffix(".000Z")
            .map_or(s.clone(), |x| format!("{x}Z"))
            .as_str(),
    )
}

/// `registry.toml` for the world, per `docs/specs/registry.md`.
pub(crate) fn registry_toml(w: &World) -> String {
    let mut o = String::new();
    o.push_str("# Generated by tripline-sim. Declared integrations, keys and principals.\n");
    for it in w.integs.iter().filter(|i| i.registered) {
        let p = it.profile;
        let _ = writeln!(o, "\n[[integrations]]");
        let _ = writeln!(o, "id = {}", toml_str(&it.id));
        let _ = writeln!(o, "name = {}", toml_str(p.name));
        let _ = writeln!(o, "vendor = {}", toml_str(p.vendor));
        let _ = writeln!(o, "owner = {}", toml_str(p.owner));
        let _ = writeln!(o, "purpose = {}", toml_str(p.purpose));
        let g: Vec<String> = it.granted.iter().map(|g| toml_str(g)).collect();
        let _ = writeln!(o, "granted = [{}]", g.join(", "));
        if it.declared_networks {
            let n: Vec<String> = it
                .networks
                .iter()
                .map(|&n| toml_str(&format!("{}/24", ip_string(n))))
                .collect();
            let _ = writeln!(o, "networks = [{}]", n.join(", "));
        }
        if let Some(a) = &it.active {
            let _ = writeln!(
                o,
                "active_hours = {{ days = [{}], start = \"{}\", end = \"{}\", utc_offset = \"{}\" }}",
                a.days, a.start, a.end, a.offset
            );
        }
        if let Some(s) = it.sensitivity {
            let _ = writeln!(o, "sensitivity = \"{s}\"");
        }
    }
    for key in &w.keys {
        if !w.integs[key.integ].registered {
            continue;
        }
        let _ = writeln!(o, "\n[[keys]]");
        let _ = writeln!(o, "id = {}", toml_str(&key.id));
        let _ = writeln!(o, "integration = {}", toml_str(&w.integs[key.integ].id));
        let _ = writeln!(o, "created = {}", toml_ts(key.created));
        if let Some(r) = key.revoked_at {
            let _ = writeln!(o, "revoked_at = {}", toml_ts(r));
        }
    }
    for p in &w.principals {
        let _ = writeln!(o, "\n[[principals]]");
        let _ = writeln!(o, "id = {}", toml_str(&p.id));
        if let Some(t) = p.offboarded_at {
            let _ = writeln!(o, "offboarded_at = {}", toml_ts(t));
        }
    }
    o
}
