//! Placing the incidents: one window per incident on an integration where it
//! is fair (learned history, no overlap with another incident or a batch job,
//! inside declared active hours), the least-loaded integration first.

use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::Rng;
use tripline_engine::time::{format_rfc3339, minute_of_day, DAY_MS, HOUR_MS, MINUTE_MS};
use tripline_engine::{Action, AlertKind};

use crate::catalog::{Tier, FORBIDDEN, HUMANS, SHADOWS, SHADOW_USES};
use crate::plan::{
    granted_by, ip_string, key_id, net_for, parse_grant, Burst, KeyPlan, Mode, PrincipalPlan,
    UsePlan, World, LEARNING_MS,
};
use crate::rng::{uniform, SimRng};
use crate::Incident;

pub(crate) fn fmt_ts(t: i64) -> String {
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
pub(crate) fn fits(w: &World, integ: usize, s: i64, e: i64, kind: AlertKind) -> bool {
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
    if it.weekly > 0.0 && crate::hard::overlaps_weekly(s, e) {
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

pub(crate) fn pick_window(
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
pub(crate) fn place_incidents(
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
              kind: AlertKind,
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
        difficulty: crate::Difficulty::Easy,
        family: crate::Family::of(kind),
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
                    relative: 0.0,
                    records_factor: 1.0,
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
                    relative: 0.0,
                    records_factor: 1.0,
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
                        relative: 0.0,
                        records_factor: 1.0,
                    },
                );
                break;
            }
        }
    }
}
