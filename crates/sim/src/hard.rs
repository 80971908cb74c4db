//! The hard cases: incidents a one-minute bucket cannot see, and benign
//! traffic that looks like them.
//!
//! Incidents (placed after the easy ones, on windows [`fits`] allows):
//! - a moderate multiple sustained for long: 3x for an hour on a low-volume
//!   integration (a handful of calls an hour), 4x for ten minutes on a
//!   medium one, 4-5x over an evening (18:00-23:00 local) or a Saturday;
//! - one key of several at 4-6x its usual share (the integration as a whole
//!   rises far less);
//! - slow exfiltration: the usual calls, 5x the records per call, three hours;
//! - credential probing inside busy traffic: a few dozen 401/403 over half an
//!   hour on the busiest integration, from its usual networks;
//! - a short-lived integration (two to five days of use) that goes silent for
//!   15-20 days and resumes at its normal rate.
//!
//! Benign look-alikes (no incident): a weekly batch job, feature rollouts
//! (a lasting x1.4-1.8 step), fluctuations of x1.3-1.8 for two to six hours,
//! small 429 bursts. The nightly batch that fills half its hour, month-end
//! runs, late onboarding and key rotation are part of [`crate::plan`].

use rand::seq::SliceRandom;
use rand::Rng;
use tripline_engine::time::{minute_of_day, weekday, DAY_MS, HOUR_MS, MINUTE_MS};
use tripline_engine::AlertKind;

use crate::catalog::Tier;
use crate::incidents::{fits, fmt_ts};
use crate::plan::{Burst, Mode, World, LEARNING_MS};
use crate::rng::{chance, uniform, SimRng};
use crate::{Difficulty, Family, Incident};

/// The weekly batch job: Sundays (UTC) from this minute of the day, this long.
pub(crate) const WEEKLY_BATCH: (u32, u32) = (4 * 60, 40);

/// Whether `t` is inside the weekly batch window.
pub(crate) fn in_weekly(t: i64) -> bool {
    let m = minute_of_day(t, 0);
    weekday(t, 0) == 6 && (WEEKLY_BATCH.0..WEEKLY_BATCH.0 + WEEKLY_BATCH.1).contains(&m)
}

/// Whether [s, e) comes within an hour of a weekly batch window.
pub(crate) fn overlaps_weekly(s: i64, e: i64) -> bool {
    let mut t = s - HOUR_MS;
    while t < e + HOUR_MS {
        if in_weekly(t) {
            return true;
        }
        t += 5 * MINUTE_MS;
    }
    false
}

/// Candidates for benign structure: used, registered, ordinary integrations.
fn ordinary(w: &World, dormant: &[usize]) -> Vec<usize> {
    (0..w.integs.len())
        .filter(|&i| {
            let it = &w.integs[i];
            it.registered
                && it.base > 0.0
                && it.batch == 0.0
                && it.silence.is_none()
                && !dormant.contains(&i)
        })
        .collect()
}

/// Adds the benign look-alikes and the short-lived integrations' silences;
/// returns the short-lived integrations (their wake-ups become incidents in
/// [`place`]). Runs before any incident is placed, so incidents avoid them.
pub(crate) fn prepare(w: &mut World, rng: &mut SimRng, dormant: &[usize]) -> Vec<usize> {
    let days = (w.end - w.start) / DAY_MS;
    let mut pool = ordinary(w, dormant);
    pool.shuffle(rng);
    let mut short_lived = Vec::new();
    if days >= 30 {
        let n = pool.len().min(2 + pool.len() / 15);
        let picked: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|&i| {
                let it = &w.integs[i];
                it.profile.tier != Tier::High && it.onboard_ms == w.start && it.active.is_none()
            })
            .take(n)
            .collect();
        for i in picked {
            let it = &w.integs[i];
            let a = it.onboard_ms + (uniform(rng, 2.0, 5.0) * DAY_MS as f64) as i64;
            let gap = (uniform(rng, 15.0, 20.0) * DAY_MS as f64) as i64;
            // Resume in the business hours of a weekday.
            let mut day = (a + gap).div_euclid(DAY_MS) + 1;
            while weekday(day * DAY_MS, 0) >= 5 {
                day += 1;
            }
            let resume = day * DAY_MS + rng.gen_range(10..15) * HOUR_MS
                - i64::from(it.tz_h) * HOUR_MS
                + rng.gen_range(0..60) * MINUTE_MS;
            if resume < w.end - 3 * HOUR_MS {
                w.integs[i].silence = Some((a, resume));
                short_lived.push(i);
            }
        }
    }
    pool.retain(|i| !short_lived.contains(i));
    let after_learning = w.start + LEARNING_MS;
    let span = |rng: &mut SimRng, lo: i64, len: i64| {
        let hi = (w.end - len - HOUR_MS).max(lo + 1);
        rng.gen_range(lo..hi).div_euclid(MINUTE_MS) * MINUTE_MS
    };
    // One or two weekly batch jobs.
    let weekly: Vec<usize> = pool
        .iter()
        .copied()
        .filter(|&i| w.integs[i].profile.tier != Tier::High && w.integs[i].active.is_none())
        .take(2)
        .collect();
    for &i in &weekly {
        w.integs[i].weekly = uniform(rng, 10.0, 20.0);
    }
    // A feature rollout on one or two others: a lasting step up.
    let rollouts: Vec<usize> = pool
        .iter()
        .copied()
        .filter(|i| !weekly.contains(i))
        .take(2)
        .collect();
    for &i in &rollouts {
        let from = span(rng, w.start + 12 * DAY_MS, 10 * DAY_MS);
        let f = uniform(rng, 1.4, 1.8);
        w.integs[i].shifts.push((from, i64::MAX, f));
    }
    // Hours-long fluctuations and small 429 bursts across the population.
    for i in 0..w.integs.len() {
        if !w.integs[i].registered || w.integs[i].base <= 0.0 || rollouts.contains(&i) {
            continue;
        }
        if chance(rng, 0.4) {
            for _ in 0..2 {
                let len = rng.gen_range(2..=6) * HOUR_MS;
                let from = span(rng, after_learning, len);
                let f = uniform(rng, 1.3, 1.8);
                w.integs[i].shifts.push((from, from + len, f));
            }
        }
        if chance(rng, 0.3) {
            for _ in 0..2 {
                let len = rng.gen_range(2..=5) * MINUTE_MS;
                let from = span(rng, w.integs[i].onboard_ms.max(w.start), len);
                let it = &w.integs[i];
                let quiet = it.silence.is_some_and(|(a, b)| from < b && from + len > a);
                let allowed = it
                    .active
                    .as_ref()
                    .is_none_or(|a| a.hours.contains(from) && a.hours.contains(from + len));
                if !quiet && allowed && from >= it.onboard_ms {
                    w.rate_limited
                        .push((i, from, from + len, uniform(rng, 3.0, 12.0)));
                }
            }
        }
    }
    short_lived
}

/// Weekday business hours (10:00-15:00) in the integration's own time zone.
fn business(w: &World, i: usize, t: i64) -> bool {
    let tz = w.integs[i].tz_h * 60;
    let h = minute_of_day(t, tz) / 60;
    weekday(t, tz) < 5 && (10..15).contains(&h)
}

/// A start in [lo, end) satisfying `when` on which the incident fits.
fn pick_when(
    w: &World,
    rng: &mut SimRng,
    i: usize,
    dur: i64,
    kind: AlertKind,
    when: impl Fn(i64) -> bool,
) -> Option<i64> {
    let lo = w.integs[i].onboard_ms.max(w.start) + LEARNING_MS;
    let hi = w.end - dur - 30 * MINUTE_MS;
    if hi <= lo {
        return None;
    }
    for _ in 0..2000 {
        let s = rng.gen_range(lo..hi).div_euclid(MINUTE_MS) * MINUTE_MS;
        if when(s) && fits(w, i, s, s + dur, kind) {
            return Some(s);
        }
    }
    None
}

struct Spec {
    kind: AlertKind,
    difficulty: Difficulty,
    dur: i64,
    rate: f64,
    relative: f64,
    records_factor: f64,
    mode: Mode,
    key: Option<String>,
    desc: String,
}

fn push(w: &mut World, i: usize, s: i64, sp: Spec) {
    let incident = Incident {
        id: String::new(),
        kind: sp.kind,
        integration_id: w.integs[i].id.clone(),
        key_id: sp.key,
        resource: None,
        start: s,
        end: s + sp.dur,
        description: format!("{}: {}", w.integs[i].id, sp.desc),
        difficulty: sp.difficulty,
        family: Family::of(sp.kind),
    };
    w.incidents.push(Burst {
        integ: i,
        start: s,
        end: s + sp.dur,
        rate: sp.rate,
        mode: sp.mode,
        incident,
        relative: sp.relative,
        records_factor: sp.records_factor,
    });
}

/// Candidates of `tier` (any when None), least loaded first.
fn by_load(w: &World, rng: &mut SimRng, pred: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut c: Vec<usize> = (0..w.integs.len())
        .filter(|&i| w.integs[i].registered && w.integs[i].base > 0.0 && pred(i))
        .collect();
    c.shuffle(rng);
    c.sort_by_key(|&i| w.incidents.iter().filter(|b| b.integ == i).count());
    c
}

/// Places the hard incidents (see the module docs).
pub(crate) fn place(w: &mut World, rng: &mut SimRng, short_lived: &[usize]) {
    use AlertKind as K;
    let k = w.integs.iter().filter(|i| i.registered).count();
    let days = (w.end - w.start) / DAY_MS;
    let n = ((k as f64 * days as f64) / 540.0).round().max(2.0) as usize;
    let tier = |w: &World, i: usize| w.integs[i].profile.tier;

    for &i in short_lived {
        if let Some((a, b)) = w.integs[i].silence {
            let it = &w.integs[i];
            let desc = format!(
                "short-lived: {:.1} days of traffic, silent from {} for {:.1} days, resumes at its normal rate",
                (a - it.onboard_ms) as f64 / DAY_MS as f64,
                fmt_ts(a),
                (b - a) as f64 / DAY_MS as f64
            );
            let sp = Spec {
                kind: K::DormantReactivated,
                difficulty: Difficulty::Hard,
                dur: HOUR_MS,
                rate: 0.0,
                relative: 0.0,
                records_factor: 1.0,
                mode: Mode::Normal,
                key: None,
                desc,
            };
            push(w, i, b, sp);
        }
    }

    for inst in 0..n {
        // 3x for an hour where a handful of calls an hour are usual.
        for i in by_load(w, rng, |i| tier(w, i) == Tier::Low) {
            let dur = HOUR_MS;
            if let Some(s) = pick_when(w, rng, i, dur, K::CallSpike, |s| business(w, i, s)) {
                let per_hour = w.integs[i].base * 60.0;
                let sp = Spec {
                    kind: K::CallSpike,
                    difficulty: Difficulty::Hard,
                    dur,
                    rate: 0.0,
                    relative: 2.0,
                    records_factor: 1.0,
                    mode: Mode::Normal,
                    key: None,
                    desc: format!(
                        "3x its usual rate for an hour (usually ~{per_hour:.0} calls an hour in business hours)"
                    ),
                };
                push(w, i, s, sp);
                break;
            }
        }
        // 4x for ten minutes on a medium-volume integration.
        for i in by_load(w, rng, |i| tier(w, i) == Tier::Medium) {
            let dur = 10 * MINUTE_MS;
            if let Some(s) = pick_when(w, rng, i, dur, K::CallSpike, |s| business(w, i, s)) {
                let sp = Spec {
                    kind: K::CallSpike,
                    difficulty: Difficulty::Moderate,
                    dur,
                    rate: 0.0,
                    relative: 3.0,
                    records_factor: 1.0,
                    mode: Mode::Normal,
                    key: None,
                    desc: "4x its usual rate for ten minutes".to_owned(),
                };
                push(w, i, s, sp);
                break;
            }
        }
        // 4-5x over an evening (even instances) or a Saturday (odd ones).
        for i in by_load(w, rng, |i| tier(w, i) != Tier::Low) {
            let tz = w.integs[i].tz_h * 60;
            let (dur, when, label) = if inst % 2 == 0 {
                (5 * HOUR_MS, 18 * 60, "an evening (18:00-23:00 local)")
            } else {
                (8 * HOUR_MS, 9 * 60, "a Saturday (09:00-17:00 local)")
            };
            let day_ok = move |s: i64| {
                let wd = weekday(s, tz);
                if inst % 2 == 0 {
                    wd < 5
                } else {
                    wd == 5
                }
            };
            let m = uniform(rng, 4.0, 5.0);
            if let Some(s) = pick_when(w, rng, i, dur, K::CallSpike, |s| {
                day_ok(s) && (when..when + 30).contains(&minute_of_day(s, tz))
            }) {
                let sp = Spec {
                    kind: K::CallSpike,
                    difficulty: Difficulty::Moderate,
                    dur,
                    rate: 0.0,
                    relative: m - 1.0,
                    records_factor: 1.0,
                    mode: Mode::Normal,
                    key: None,
                    desc: format!("{m:.1}x its usual rate over {label}: a leaked key"),
                };
                push(w, i, s, sp);
                break;
            }
        }
        // One key of several at 4-6x its share.
        'key: for i in by_load(w, rng, |i| w.integs[i].keys.len() >= 2) {
            let dur = rng.gen_range(30..=60) * MINUTE_MS;
            let Some(s) = pick_when(w, rng, i, dur, K::CallSpike, |s| {
                business(w, i, s) && w.active_keys(i, s).count() >= 2 && {
                    let a: Vec<usize> = w.active_keys(i, s).collect();
                    let b: Vec<usize> = w.active_keys(i, s + dur).collect();
                    a == b && a.iter().all(|&k| w.keys[k].revoked_at.is_none())
                }
            }) else {
                continue;
            };
            let active: Vec<usize> = w.active_keys(i, s).collect();
            let Some(&key) = active.choose(rng) else {
                continue 'key;
            };
            let m = uniform(rng, 4.0, 6.0);
            let share = 1.0 / active.len() as f64;
            let sp = Spec {
                kind: K::CallSpike,
                difficulty: Difficulty::Moderate,
                dur,
                rate: 0.0,
                relative: (m - 1.0) * share,
                records_factor: 1.0,
                mode: Mode::Key(key),
                key: Some(w.keys[key].id.clone()),
                desc: format!(
                    "key {} (one of {} in use) at {m:.1}x its usual share; the integration rises {:.1}x",
                    w.keys[key].id,
                    active.len(),
                    1.0 + (m - 1.0) * share
                ),
            };
            push(w, i, s, sp);
            break;
        }
        // Slow exfiltration: normal calls, 5x the records, three hours.
        for i in by_load(w, rng, |i| tier(w, i) != Tier::Low) {
            let dur = 3 * HOUR_MS;
            if let Some(s) = pick_when(w, rng, i, dur, K::VolumeSpike, |s| business(w, i, s)) {
                let sp = Spec {
                    kind: K::VolumeSpike,
                    difficulty: Difficulty::Moderate,
                    dur,
                    rate: 0.0,
                    relative: 0.0,
                    records_factor: 5.0,
                    mode: Mode::Normal,
                    key: None,
                    desc: "5x the records per call at its normal call rate for three hours"
                        .to_owned(),
                };
                push(w, i, s, sp);
                break;
            }
        }
        // A few dozen 401/403 over half an hour inside busy traffic.
        let mut busy = by_load(w, rng, |i| tier(w, i) == Tier::High);
        busy.sort_by(|&a, &b| w.integs[b].base.total_cmp(&w.integs[a].base));
        for i in busy {
            let dur = 30 * MINUTE_MS;
            if let Some(s) = pick_when(w, rng, i, dur, K::ErrorBurst, |s| business(w, i, s)) {
                let r = uniform(rng, 0.8, 1.6);
                let sp = Spec {
                    kind: K::ErrorBurst,
                    difficulty: Difficulty::Hard,
                    dur,
                    rate: r,
                    relative: 0.0,
                    records_factor: 1.0,
                    mode: Mode::Errors,
                    key: None,
                    desc: format!(
                        "~{:.0} 401/403 over 30 min from its usual networks, among ~{:.0} calls a minute",
                        r * 30.0,
                        w.integs[i].base
                    ),
                };
                push(w, i, s, sp);
                break;
            }
        }
    }
}
