//! The world of one run: integrations, keys and principals, decided up front
//! from the seed. The incidents are placed by [`crate::incidents`], the hard
//! cases and benign look-alikes by [`crate::hard`]; `registry.toml` is written
//! by [`crate::registry`].

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tripline_engine::registry::{ActiveHours, Grant};
use tripline_engine::time::{weekday, DAY_MS, HOUR_MS, MINUTE_MS};
use tripline_engine::Action;

use crate::catalog::{Profile, Tier, HUMANS, NEVER_USED, PROFILES, SHADOWS};
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
    /// Weekly batch multiplier (Sundays, [`crate::hard::WEEKLY_BATCH`]); 0 = none.
    pub weekly: f64,
    /// Benign multiplicative shifts of the rate: (from, until, factor) —
    /// feature rollouts and hours-long fluctuations.
    pub shifts: Vec<(i64, i64, f64)>,
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
    /// 429 responses only (benign: the client hit the rate limit).
    RateLimited,
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
    /// More extra calls per minute, as a multiple of the integration's benign
    /// rate at that minute (sustained moderate multiples follow its daily curve).
    pub relative: f64,
    /// Multiplies the records (and bytes) of the integration's benign calls
    /// (slow exfiltration at a normal call rate); 1 = none.
    pub records_factor: f64,
}

/// Benign 429 responses: (integration, from, until, calls per minute).
pub(crate) type RateLimitBurst = (usize, i64, i64, f64);

pub(crate) struct World {
    pub start: i64,
    pub end: i64,
    pub integs: Vec<Integ>,
    pub keys: Vec<KeyPlan>,
    pub principals: Vec<PrincipalPlan>,
    pub incidents: Vec<Burst>,
    /// Benign rate-limit bursts (no incident).
    pub rate_limited: Vec<RateLimitBurst>,
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

pub(crate) fn net_for(i: usize) -> u32 {
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

pub(crate) fn parse_grant(s: &str) -> (&'static str, Action) {
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

pub(crate) fn granted_by(granted: &[String], res: &str, act: Action) -> bool {
    granted
        .iter()
        .filter_map(|g| Grant::parse(g).ok())
        .any(|g| g.matches(res, act))
}

pub(crate) fn key_id(rng: &mut SimRng, used: &mut BTreeSet<String>) -> String {
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
            weekly: 0.0,
            shifts: Vec::new(),
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
            weekly: 0.0,
            shifts: Vec::new(),
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
        rate_limited: Vec::new(),
    };
    let short_lived = crate::hard::prepare(&mut world, &mut rng, &dormant_set);
    crate::incidents::place_incidents(
        &mut world,
        &mut rng,
        k,
        n_kind,
        next_net,
        &dormant_set,
        &mut key_ids,
    );
    crate::hard::place(&mut world, &mut rng, &short_lived);
    world.incidents.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then_with(|| a.incident.integration_id.cmp(&b.incident.integration_id))
    });
    for (j, b) in world.incidents.iter_mut().enumerate() {
        b.incident.id = format!("inc-{:03}", j + 1);
    }
    world
}
