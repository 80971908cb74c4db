//! Hostile input against the engine, forged event times (issue 16, item 1):
//! the robust stream time, the witnessed time the idle sweep runs on,
//! confirmed jumps, held leads and learning on evidence (`clock.rs`). Each
//! test is an attack from the issue and asserts detection still works.
//! Caps, episode floods and id floods: `tests_hostile.rs`.

use crate::alert::{AlertKind, Outputs};
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::tests::{kinds, run, steady, t0, Ev};
use crate::time::{parse_rfc3339, DAY_MS, MINUTE_MS};

// ---- forged event times (item 1) -----------------------------------------

/// The mechanism at a skew of one hour (the default is a day).
fn one_hour_skew() -> EngineConfig {
    EngineConfig {
        max_future_skew_seconds: 3600,
        ..EngineConfig::default()
    }
}

/// Eight days of steady traffic from "a", then a call spike on it.
fn learned_then_spike(hostile: &[Ev]) -> (Engine, Outputs) {
    learned_then_spike_with(EngineConfig::default(), hostile)
}

fn learned_then_spike_with(config: EngineConfig, hostile: &[Ev]) -> (Engine, Outputs) {
    let mut e = Engine::new(config, None);
    let mut evs = steady("a", t0(), 8, 2, 2);
    let spike_at = t0() + 7 * DAY_MS + 10 * 3_600_000;
    evs.retain(|x| x.ts < spike_at);
    evs.extend(hostile.iter().cloned());
    for i in 0..400 {
        evs.push(Ev::new(spike_at + i * 100, "a"));
    }
    let out = run(&mut e, &evs);
    (e, out)
}

#[test]
fn one_event_dated_9999_from_a_new_id_cannot_evict_or_blind() {
    let (_, clean) = learned_then_spike(&[]);
    assert!(kinds(&clean).contains(&AlertKind::CallSpike));
    let (e, out) = learned_then_spike(&[Ev::new(crate::engine::MAX_TS_MS, "x")]);
    assert!(e.integration("a").is_some(), "the idle sweep evicted a");
    assert_eq!(kinds(&out), kinds(&clean), "{:#?}", out.alerts);
    assert_eq!(e.stats().ts_out_of_range, 1);
}

#[test]
fn one_event_dated_2030_does_not_resolve_its_integrations_open_episodes() {
    let (mut e, out) = learned_then_spike(&[]);
    let spike = out
        .alerts
        .iter()
        .find(|a| a.kind == AlertKind::CallSpike)
        .expect("the spike fires");
    let mut tail = Outputs::default();
    let x = Ev::new(parse_rfc3339("2030-01-01T00:00:00Z").unwrap(), "a");
    e.process(&x.as_event(), &mut tail);
    assert_eq!(e.stats().ts_out_of_range, 1);
    assert!(
        tail.resolved.iter().all(|r| r.id != spike.id),
        "a forged date resolved the open spike: {:?}",
        tail.resolved
    );
}

#[test]
fn one_event_dated_2030_on_an_existing_integration_cannot_blind_it() {
    let (_, clean) = learned_then_spike(&[]);
    // Mixed in just before the spike.
    let x = Ev::new(parse_rfc3339("2030-01-01T00:00:00Z").unwrap(), "a");
    let (e, out) = learned_then_spike(&[x]);
    let a = e.integration("a").unwrap();
    assert!(a.watermark < t0() + 8 * DAY_MS, "watermark jumped");
    assert_eq!(e.stats().ts_out_of_range, 1);
    assert!(
        a.late_events < 10,
        "{} later events counted late",
        a.late_events
    );
    assert_eq!(kinds(&out), kinds(&clean), "{:#?}", out.alerts);
}

/// The skew bounds how far an event may lead the *stream*; within it, one
/// event dated hours ahead of its integration's traffic is held as its
/// lead and contradicted by the next honest event (`clock::
/// advance_watermark`): the watermark stays, the spike is seen.
#[test]
fn one_event_hours_ahead_within_the_skew_cannot_blind_its_integration() {
    let (_, clean) = learned_then_spike(&[]);
    let spike_at = t0() + 7 * DAY_MS + 10 * 3_600_000;
    let x = Ev::new(spike_at + 20 * 3_600_000, "a");
    let (e, out) = learned_then_spike(&[x]);
    assert_eq!(e.stats().ts_out_of_range, 0, "inside the skew");
    let a = e.integration("a").unwrap();
    assert!(a.watermark < spike_at + MINUTE_MS, "watermark jumped");
    assert_eq!(a.late_events, 1, "only the forged event is not baselined");
    assert_eq!(ids(&out), ids(&clean), "{:#?}", out.alerts);
}

/// A forged lead after every 10th of the last 200 honest events (too few
/// to move the stream time, 3 of 16): each is contradicted by the next
/// honest event, so none moves the watermark and none keeps a bucket open.
#[test]
fn forged_leads_between_honest_events_keep_no_bucket_open() {
    let honest = steady("a", t0(), 1, 2, 2);
    let n = honest.len();
    let mut evs = Vec::new();
    for (i, h) in honest.iter().enumerate() {
        evs.push(h.clone());
        if let Some(k) = (i + 200).checked_sub(n).filter(|k| k % 10 == 0) {
            // Each at its own minute, 20 hours ahead.
            evs.push(Ev::new(h.ts + 20 * 3_600_000 + k as i64 * MINUTE_MS, "a"));
        }
    }
    let mut e = Engine::new(EngineConfig::default(), None);
    run(&mut e, &evs);
    let a = e.integration("a").unwrap();
    assert_eq!(a.watermark, honest[n - 1].ts, "a forged lead moved it");
    assert_eq!(e.stats().ts_out_of_range, 0, "inside the skew");
    assert_eq!(
        a.late_events, 20,
        "the contradicted leads are not baselined"
    );
    assert!(a.buckets.len() <= 4, "{} open buckets", a.buckets.len());
}

#[test]
fn a_1970_first_event_cannot_skip_the_learning_period() {
    let mut e = Engine::new(one_hour_skew(), None);
    let mut evs = steady("a", t0(), 8, 2, 2);
    let now = t0() + 8 * DAY_MS - 3_600_000;
    evs.retain(|x| x.ts < now);
    evs.push(Ev::new(0, "n"));
    for i in 0..30 {
        evs.push(Ev::new(now + i * 1000, "n"));
    }
    let mut junk = Ev::new(now + 60_000, "n");
    junk.resource = "deals".into();
    evs.push(junk);
    let out = run(&mut e, &evs);
    let n = alerts_on(&out, "n");
    assert!(n.is_empty(), "n skipped learning: {n:#?}");
    assert!(e.integration("n").unwrap().first_seen > now - DAY_MS);
}

/// The alerts of one integration.
fn alerts_on<'a>(out: &'a Outputs, integration: &str) -> Vec<&'a crate::alert::Alert> {
    out.alerts
        .iter()
        .filter(|a| a.integration_id == integration)
        .collect()
}

/// As [`learned_then_spike`], with `prefix` opening the partition (before
/// its first honest event: there is no stream time to judge it against).
fn opened_by(prefix: &[Ev]) -> (Engine, Outputs) {
    let mut e = Engine::new(EngineConfig::default(), None);
    let mut evs = prefix.to_vec();
    let spike_at = t0() + 7 * DAY_MS + 10 * 3_600_000;
    evs.extend(
        steady("a", t0(), 8, 2, 2)
            .into_iter()
            .filter(|x| x.ts < spike_at),
    );
    for i in 0..400 {
        evs.push(Ev::new(spike_at + i * 100, "a"));
    }
    let out = run(&mut e, &evs);
    (e, out)
}

fn ids(out: &Outputs) -> Vec<(&str, AlertKind)> {
    out.alerts.iter().map(|a| (a.id.as_str(), a.kind)).collect()
}

#[test]
fn a_1970_event_opening_the_partition_sets_neither_its_time_nor_a_learning_start() {
    let (_, clean) = opened_by(&[]);
    assert!(kinds(&clean).contains(&AlertKind::CallSpike));
    let (e, out) = opened_by(&[Ev::new(DAY_MS, "a")]);
    let a = e.integration("a").unwrap();
    assert_eq!(a.first_seen, t0(), "learning started in 1970");
    assert_eq!(ids(&out), ids(&clean), "{:#?}", out.alerts);
    assert_eq!(e.stats().ts_out_of_range, 1);
    assert!(e.stats().stream_time_ms >= t0() + 7 * DAY_MS);
}

#[test]
fn a_9999_event_opening_the_partition_cannot_blind_its_integration() {
    let (_, clean) = opened_by(&[]);
    let (e, out) = opened_by(&[Ev::new(crate::engine::MAX_TS_MS, "a")]);
    let a = e.integration("a").unwrap();
    assert!(a.watermark < t0() + 8 * DAY_MS, "watermark stayed in 9999");
    assert_eq!(a.late_events, 0);
    assert_eq!(ids(&out), ids(&clean), "{:#?}", out.alerts);
    assert!(e.stats().stream_time_ms < t0() + 8 * DAY_MS);
}

/// The restart is for what lies beyond the stale horizon
/// (`idle_evict_days`): a sparse integration seen months before keeps its
/// history, as do two honest partitions' worth of quiet.
#[test]
fn a_sparse_integration_within_the_stale_horizon_keeps_its_history() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let months = [0, 40, 150, 300].map(|d| Ev::new(t0() + d * DAY_MS, "sparse"));
    run(&mut e, &months);
    let st = e.integration("sparse").unwrap();
    assert_eq!(st.first_seen, t0());
    assert_eq!(st.events, 4);
    // Beyond the horizon from a clock of fewer than 3 events: restarted.
    let later = t0() + 300 * DAY_MS + 401 * DAY_MS;
    run(
        &mut e,
        &[
            Ev::new(later, "lone"),
            Ev::new(later + 500 * DAY_MS, "lone"),
        ],
    );
    assert_eq!(
        e.integration("lone").unwrap().first_seen,
        later + 500 * DAY_MS
    );
}

/// Learning ends on evidence, not on the age of the first event: a new
/// integration's first event dated six days before its real traffic (within
/// a learning period of the stream time, so accepted like any delayed
/// event) used to end its learning a day into the real traffic.
#[test]
fn a_first_event_backdated_days_cannot_shorten_the_learning_period() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let start = t0() + 7 * DAY_MS;
    // "a" carries the partition's stream time for ten days.
    let (mut evs, mut rest): (Vec<Ev>, Vec<Ev>) = steady("a", t0(), 10, 1, 1)
        .into_iter()
        .partition(|x| x.ts < start);
    evs.push(Ev::new(start - 6 * DAY_MS, "n"));
    rest.extend((0..3 * 1440).map(|m| Ev::new(start + m * MINUTE_MS + 7, "n")));
    // Two days into n's real traffic: a new data type and a burst.
    let mut probe = Ev::new(start + 2 * DAY_MS + 1, "n");
    probe.resource = "deals".into();
    rest.push(probe);
    rest.extend((0..300).map(|i| Ev::new(start + 2 * DAY_MS + 100 + i * 100, "n")));
    rest.sort_by_key(|x| x.ts);
    evs.extend(rest);
    let out = run(&mut e, &evs);
    let n = alerts_on(&out, "n");
    assert!(n.is_empty(), "n skipped learning: {n:#?}");
    let st = e.integration("n").unwrap();
    assert_eq!(st.first_seen, start - 6 * DAY_MS, "first seen is kept");
    // Its first real event, rounded up to the minute.
    assert!((start..=start + MINUTE_MS).contains(&st.learning_start()));
    assert_eq!(e.stats().learning_integrations, 1, "n is still learning");
}

/// A partition's first event dated a month before its real stream (within
/// the stale horizon, so it is not forgotten like a 1970 one) neither
/// starts its integration's learning a month early nor fills its baselines
/// with a month of zeros. It adds, by design, the one alert a real call
/// that old would raise: "a" woke up after the month of silence it forged.
#[test]
fn a_first_event_a_month_before_the_partition_cannot_skip_learning() {
    let (_, clean) = opened_by(&[]);
    let forged = t0() - 30 * DAY_MS;
    let (e, mut out) = opened_by(&[Ev::new(forged, "a")]);
    let woke =
        |a: &crate::alert::Alert| a.kind == AlertKind::DormantReactivated && a.window_start < t0();
    assert_eq!(out.alerts.iter().filter(|a| woke(a)).count(), 1);
    out.alerts.retain(|a| !woke(a));
    let a = e.integration("a").unwrap();
    assert_eq!(a.first_seen, t0() - 30 * DAY_MS);
    assert!(
        (t0()..t0() + 10 * MINUTE_MS).contains(&a.learning_start()),
        "learning started {} min before the real traffic",
        (t0() - a.learning_start()) / MINUTE_MS
    );
    assert_eq!(kinds(&out), kinds(&clean), "{:#?}", out.alerts);
}

/// What a thin history costs an honest integration: a daily job (jitter
/// of hours) learns as before; one that calls once a week restarts its
/// learning at most twice (at its 2nd and 3rd calls), then matures. An
/// hourly integration carries the partition's stream time.
#[test]
fn sparse_integrations_restart_learning_at_most_twice() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let mut evs: Vec<Ev> = (0..36 * 24)
        .map(|h| Ev::new(t0() + h * 3_600_000, "carrier"))
        .collect();
    evs.extend((0..9).map(|d| Ev::new(t0() + d * DAY_MS + (d % 3) * 3 * 3_600_000 + 1, "daily")));
    evs.extend((0..5).map(|w| Ev::new(t0() + w * 7 * DAY_MS + 2, "weekly")));
    evs.sort_by_key(|x| x.ts);
    run(&mut e, &evs);
    let d = e.integration("daily").unwrap();
    assert_eq!(d.learning_start(), d.first_seen);
    let w = e.integration("weekly").unwrap();
    assert_eq!(w.first_seen, t0() + 2);
    let third = t0() + 14 * DAY_MS + 2;
    assert!((third..third + MINUTE_MS).contains(&w.learning_start()));
    let learning = EngineConfig::default().learning_ms();
    assert!(!w.mature(third + learning - MINUTE_MS, learning));
    assert!(w.mature(t0() + 28 * DAY_MS, learning));
}

#[test]
fn a_sparse_stream_that_jumps_a_day_is_followed_after_confirm_events() {
    let mut e = Engine::new(one_hour_skew(), None);
    let mut evs: Vec<Ev> = (0..60)
        .map(|i| Ev::new(t0() + i * MINUTE_MS, "a"))
        .collect();
    let later = t0() + DAY_MS;
    evs.extend((0..5).map(|i| Ev::new(later + i * MINUTE_MS, "a")));
    run(&mut e, &evs);
    let a = e.integration("a").unwrap();
    assert_eq!(a.watermark, later + 4 * MINUTE_MS);
    let confirm = i64::from(crate::clock::CONFIRM);
    assert_eq!(e.stats().ts_out_of_range, (confirm - 1) as u64);
    assert_eq!(a.last_seen, later + 4 * MINUTE_MS);
    assert!(e.stats().stream_time_ms >= later);
}

#[test]
fn a_one_event_a_day_stream_keeps_its_clock_moving() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let evs: Vec<Ev> = (0..30)
        .map(|d| Ev::new(t0() + d * DAY_MS, "daily"))
        .collect();
    run(&mut e, &evs);
    let st = e.integration("daily").unwrap();
    assert_eq!(st.watermark, t0() + 29 * DAY_MS);
    assert!(e.stats().ts_out_of_range <= 3, "{:?}", e.stats());
}

/// After a real gap in a sparse partition (a week without events, say
/// after an outage), an integration that first appears in the jump must
/// learn for a whole period from its real start — not from the bounded time
/// it was created with, which would let it skip learning.
#[test]
fn a_new_integration_first_seen_in_a_confirmed_jump_still_learns_a_whole_period() {
    let mut e = Engine::new(EngineConfig::default(), None);
    run(
        &mut e,
        &[Ev::new(t0(), "a"), Ev::new(t0() + MINUTE_MS, "a")],
    );
    let later = t0() + 8 * DAY_MS;
    let b: Vec<Ev> = (0..5)
        .map(|i| Ev::new(later + i * MINUTE_MS, "b"))
        .collect();
    run(&mut e, &b);
    let st = e.integration("b").unwrap();
    assert!(
        st.first_seen >= later,
        "b's learning started {} min before its first event",
        (later - st.first_seen) / MINUTE_MS
    );
    // "a" is a week past its learning period; "b" has just begun.
    assert_eq!(e.stats().learning_integrations, 1);
}

/// A new integration that arrives in a jump of a month (a partition opened
/// by a forged event a month before the stream, say) was created at the
/// bounded time: when the jump confirms it starts at the confirming event,
/// so it neither looks dormant for the month nor folds it into its
/// baselines as silent hours.
#[test]
fn a_new_integration_arriving_in_a_month_long_jump_does_not_look_dormant() {
    let mut e = Engine::new(EngineConfig::default(), None);
    run(&mut e, &[Ev::new(t0(), "a")]);
    let later = t0() + 30 * DAY_MS;
    let b: Vec<Ev> = (0..10)
        .map(|i| Ev::new(later + i * MINUTE_MS, "b"))
        .collect();
    let out = run(&mut e, &b);
    assert!(out.alerts.is_empty(), "{:#?}", out.alerts);
    let st = e.integration("b").unwrap();
    assert!(st.first_seen >= later && st.last_seen >= later);
    assert_eq!(st.max_gap_ms, MINUTE_MS, "{st:?} {:?}", e.stats());
}

#[test]
fn forged_future_events_interleaved_with_live_traffic_never_confirm() {
    let (_, clean) = learned_then_spike(&[]);
    // Ten events dated 2030 on "a", each right after an honest event of
    // another integration (a live partition).
    let forged = parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
    let at = t0() + 7 * DAY_MS + 9 * 3_600_000;
    let mut hostile = Vec::new();
    for i in 0..10 {
        hostile.push(Ev::new(at + i * MINUTE_MS, "other"));
        hostile.push(Ev::new(forged + i, "a"));
    }
    let (e, out) = learned_then_spike(&hostile);
    let a = e.integration("a").unwrap();
    assert!(a.watermark < t0() + 8 * DAY_MS, "watermark jumped");
    assert_eq!(e.stats().ts_out_of_range, 10);
    assert!(e.stats().stream_time_ms < t0() + 8 * DAY_MS);
    assert_eq!(kinds(&out), kinds(&clean), "{:#?}", out.alerts);
}

#[test]
fn the_accepted_event_time_ignores_a_forged_maximum() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let mut evs = steady("a", t0(), 1, 2, 2);
    let honest = evs.last().unwrap().ts;
    evs.push(Ev::new(crate::engine::MAX_TS_MS, "a"));
    run(&mut e, &evs);
    let s = e.stats();
    assert_eq!(s.max_event_time_ms, crate::engine::MAX_TS_MS);
    assert!(s.stream_time_ms <= honest, "{s:?}");
}

/// One integration's forged events, three at a time and each inside the
/// skew of the stream time they find, ratchet the stream time a skew per
/// triplet (the stream time counts events). Thirty triplets 23 hours apart
/// drag it 29 days ahead of "a", which is quiet meanwhile: on the stream
/// time the idle sweep (here after 20 days) evicted "a", learning restarted
/// and its spike went unseen. The sweep runs on the witnessed time
/// (`clock::Witnesses`: each integration counted once), which "m" alone
/// cannot move past "a".
#[test]
fn one_integrations_forged_triplets_cannot_make_the_sweep_evict_the_others() {
    let config = EngineConfig {
        idle_evict_days: 20,
        ..EngineConfig::default()
    };
    let start = t0() + 7 * DAY_MS + 9 * 3_600_000;
    let mut hostile = Vec::new();
    for k in 1..=30 {
        for i in 0..3 {
            hostile.push(Ev::new(start + k * 23 * 3_600_000 + i, "m"));
        }
    }
    let (_, clean) = learned_then_spike_with(config.clone(), &[]);
    let (e, out) = learned_then_spike_with(config, &hostile);
    assert!(
        e.stats().stream_time_ms > start + 25 * DAY_MS,
        "the triplets no longer ratchet the stream time; this test needs a new attack"
    );
    assert!(e.integration("a").is_some(), "the idle sweep evicted a");
    assert_eq!(e.stats().evicted_integrations, 0);
    assert!(kinds(&clean).contains(&AlertKind::CallSpike));
    assert_eq!(ids(&out), ids(&clean), "{:#?}", out.alerts);
}

/// The same ratchet, ten triplets: the stream time is ten days ahead of
/// the honest traffic, and a new integration's honest first event was then
/// "older than a learning period" and counted out of range. Judged against
/// the witnessed time, it is the newcomer's first event, on time.
#[test]
fn one_integrations_forged_triplets_cannot_put_a_newcomer_out_of_range() {
    let spike_at = t0() + 7 * DAY_MS + 10 * 3_600_000;
    let newcomer = Ev::new(spike_at - 20_000, "newcomer");
    let mut hostile = Vec::new();
    for k in 1..=10 {
        // The live integration goes on between the triplets.
        hostile.push(Ev::new(spike_at - 30_000 + k, "a"));
        for i in 0..3 {
            hostile.push(Ev::new(spike_at + k * 23 * 3_600_000 + i, "m"));
        }
    }
    hostile.push(newcomer.clone());
    let (e, _) = learned_then_spike(&hostile);
    assert!(e.stats().stream_time_ms > spike_at + 9 * DAY_MS);
    let n = e.integration("newcomer");
    assert!(
        n.is_some_and(|n| n.first_seen == newcomer.ts && n.accepted == 1),
        "the newcomer's first event was out of range ({} in all)",
        e.stats().ts_out_of_range
    );
}

/// Three forged events opening a partition, dated three weeks ahead, set
/// its stream time (they are all it has seen: a residual, ARCHITECTURE).
/// The first honest integration's first event then counts out of range,
/// but its second is accepted and becomes a witness, so the witnessed time
/// is back with the honest stream: a later newcomer's first event is on
/// time, though the stream time stays three weeks ahead.
#[test]
fn three_forged_opening_events_put_only_the_first_honest_event_out_of_range() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let t = t0();
    let mut evs: Vec<Ev> = (0..3).map(|i| Ev::new(t + 21 * DAY_MS + i, "m")).collect();
    evs.push(Ev::new(t, "a"));
    evs.push(Ev::new(t + MINUTE_MS, "a"));
    let newcomer = Ev::new(t + 2 * MINUTE_MS, "b");
    evs.push(newcomer.clone());
    run(&mut e, &evs);
    assert!(e.stats().stream_time_ms >= t + 21 * DAY_MS);
    assert_eq!(e.stats().ts_out_of_range, 1, "only a's first event");
    let b = e.integration("b").expect("b is tracked");
    assert_eq!((b.first_seen, b.accepted), (newcomer.ts, 1));
}

/// The sweep still forgets what is idle once three integrations agree on
/// the time: "old" was seen once, then three others run for 30 days.
#[test]
fn the_idle_sweep_evicts_an_integration_idle_past_the_witnessed_horizon() {
    let config = EngineConfig {
        idle_evict_days: 20,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(config, None);
    let mut evs = vec![Ev::new(t0(), "old")];
    for h in 1..=30 * 24 {
        for id in ["a", "b", "c"] {
            evs.push(Ev::new(t0() + h * 3_600_000, id));
        }
    }
    run(&mut e, &evs);
    assert!(e.integration("old").is_none(), "old was kept");
    assert_eq!(e.stats().evicted_integrations, 1);
    assert!(e.integration("c").is_some());
}
