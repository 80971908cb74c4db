//! Detection depth, on event time: sustained shifts per integration and per
//! key, auth failures apart from rate limiting, dormancy without a learning
//! period — and the benign look-alikes that must stay quiet.

use crate::alert::{Alert, AlertKind, Outputs};
use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::event::{Action, Event};
use crate::time::{parse_rfc3339, DAY_MS, HOUR_MS, MINUTE_MS};

/// Monday 2026-10-26 00:00 UTC.
fn t0() -> i64 {
    parse_rfc3339("2026-10-26T00:00:00Z").unwrap()
}

#[derive(Clone, Debug)]
struct Call {
    ts: i64,
    status: u16,
    key: Option<&'static str>,
    records: u64,
    bytes_per_record: u64,
}

fn call(ts: i64) -> Call {
    Call {
        ts,
        status: 200,
        key: None,
        records: 10,
        bytes_per_record: 500,
    }
}

/// `per_hour` calls an hour, evenly spaced, over [from, to).
fn even(from: i64, to: i64, per_hour: f64) -> Vec<Call> {
    let step = (HOUR_MS as f64 / per_hour) as i64;
    (0..)
        .map(|i| from + i * step.max(1))
        .take_while(|&t| t < to)
        .map(call)
        .collect()
}

/// The defaults with the sustained statistic on calls switched on.
fn with_calls() -> EngineConfig {
    use crate::config::{DetectorsConfig, SustainedConfig};
    EngineConfig {
        detectors: DetectorsConfig {
            sustained: SustainedConfig {
                calls: true,
                ..SustainedConfig::default()
            },
            ..DetectorsConfig::default()
        },
        ..EngineConfig::default()
    }
}

fn run(e: &mut Engine, id: &str, calls: &mut [Call]) -> Vec<Alert> {
    calls.sort_by_key(|c| c.ts);
    let mut out = Outputs::default();
    for c in calls.iter() {
        let ev = Event {
            ts_ms: c.ts,
            integration_id: id,
            resource: "contacts",
            action: Action::Read,
            status: c.status,
            key_id: c.key,
            principal: None,
            records: c.records,
            bytes: c.records * c.bytes_per_record,
            source_ip: Some("198.51.100.7".parse().unwrap()),
        };
        e.process(&ev, &mut out);
    }
    out.alerts
}

fn of(alerts: &[Alert], kind: AlertKind) -> Vec<&Alert> {
    alerts.iter().filter(|a| a.kind == kind).collect()
}

const ANOMALY: i64 = 16 * DAY_MS + 10 * HOUR_MS; // Wednesday 10:00

/// `per_hour` calls an hour from the start until eight hours after the
/// anomaly: sixteen days learned, every hour-of-week slot seen twice.
fn learned(per_hour: f64) -> Vec<Call> {
    even(t0(), t0() + ANOMALY + 8 * HOUR_MS, per_hour)
}

#[test]
fn three_times_the_rate_for_an_hour_fires_though_no_minute_is_unusual() {
    let mut e = Engine::new(with_calls(), None);
    let mut calls = learned(30.0);
    let a = t0() + ANOMALY;
    calls.extend(even(a, a + HOUR_MS, 60.0)); // +2x: 3x in all
    let alerts = run(&mut e, "low", &mut calls);
    let spikes = of(&alerts, AlertKind::CallSpike);
    assert_eq!(spikes.len(), 1, "{alerts:#?}");
    let s = spikes[0];
    assert!(s.detected_at >= a && s.detected_at < a + HOUR_MS, "{s:?}");
    assert!(s.summary.contains("in the last"), "{}", s.summary);
    assert_eq!(
        s.evidence.get("detector"),
        Some(&crate::alert::EvidenceValue::Str("sustained".into()))
    );
    // Never more than 3 calls in a minute: the one-bucket detector cannot see it.
    assert!(s.observed.unwrap() > 2.0 * s.expected.unwrap());
}

#[test]
fn fluctuations_below_the_break_even_ratio_stay_quiet_for_hours() {
    let mut e = Engine::new(with_calls(), None);
    let mut calls = learned(600.0);
    let a = t0() + ANOMALY;
    calls.extend(even(a, a + 6 * HOUR_MS, 480.0)); // +0.8x: 1.8x for six hours
    let alerts = run(&mut e, "busy", &mut calls);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn one_key_of_three_at_five_times_its_share_fires_for_that_key() {
    let mut e = Engine::new(with_calls(), None);
    let keys = ["k1", "k2", "k3"];
    let mut calls = learned(180.0);
    for (i, c) in calls.iter_mut().enumerate() {
        c.key = Some(keys[i % 3]);
    }
    let a = t0() + ANOMALY;
    // k2 at 5x its 60 calls an hour for 45 minutes: the integration 2.3x.
    let mut extra = even(a, a + 45 * MINUTE_MS, 240.0);
    for c in &mut extra {
        c.key = Some("k2");
    }
    calls.extend(extra);
    let alerts = run(&mut e, "keyed", &mut calls);
    let spikes = of(&alerts, AlertKind::CallSpike);
    assert!(
        spikes.iter().any(|s| s.key_id.as_deref() == Some("k2")
            && s.summary.contains("key k2")
            && s.detected_at < a + 45 * MINUTE_MS),
        "{alerts:#?}"
    );
    assert!(
        spikes
            .iter()
            .all(|s| s.key_id.as_deref() != Some("k1") || !s.summary.contains("key k1")),
        "{alerts:#?}"
    );
}

#[test]
fn five_times_the_records_per_call_at_a_normal_rate_is_a_volume_spike() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let mut calls = learned(120.0);
    let a = t0() + ANOMALY;
    for c in calls
        .iter_mut()
        .filter(|c| c.ts >= a && c.ts < a + 3 * HOUR_MS)
    {
        c.records = 50;
    }
    let alerts = run(&mut e, "exfil", &mut calls);
    let v = of(&alerts, AlertKind::VolumeSpike);
    assert!(!v.is_empty(), "{alerts:#?}");
    assert!(v[0].detected_at < a + 30 * MINUTE_MS, "{:?}", v[0]);
    assert!(of(&alerts, AlertKind::CallSpike).is_empty(), "{alerts:#?}");
}

#[test]
fn a_few_dozen_auth_failures_in_busy_traffic_fire_and_429s_do_not() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let mut calls = learned(1500.0);
    // One benign 401 an hour.
    for (i, c) in calls.iter_mut().enumerate() {
        if i % 1500 == 7 {
            c.status = 401;
        }
    }
    let a = t0() + ANOMALY;
    // 40 minutes of 429s at 12 a minute first: rate limiting, not probing.
    let mut limited = even(a, a + 40 * MINUTE_MS, 720.0);
    for c in &mut limited {
        c.status = 429;
    }
    calls.extend(limited);
    let probe_at = a + 90 * MINUTE_MS;
    let mut probe = even(probe_at, probe_at + 30 * MINUTE_MS, 72.0);
    for (i, c) in probe.iter_mut().enumerate() {
        c.status = if i % 3 == 0 { 403 } else { 401 };
    }
    calls.extend(probe);
    let alerts = run(&mut e, "busy", &mut calls);
    let errs = of(&alerts, AlertKind::ErrorBurst);
    assert_eq!(errs.len(), 1, "{alerts:#?}");
    assert!(
        errs[0].detected_at >= probe_at,
        "the 429s paged: {:?}",
        errs[0]
    );
    assert!(errs[0].detected_at < probe_at + 30 * MINUTE_MS);
    assert!(errs[0].summary.contains("401/403"), "{}", errs[0].summary);
    assert!(!errs[0].summary.contains("429"), "{}", errs[0].summary);
}

#[test]
fn a_short_lived_integration_waking_up_after_two_weeks_is_dormant_reactivated() {
    let mut e = Engine::new(EngineConfig::default(), None);
    // Three days of use (less than the 7-day learning period), then 16 days
    // of silence.
    let mut calls = even(t0(), t0() + 3 * DAY_MS, 60.0);
    let wake = t0() + 19 * DAY_MS + 10 * HOUR_MS;
    calls.extend(even(wake, wake + HOUR_MS, 60.0));
    let alerts = run(&mut e, "brief", &mut calls);
    let d = of(&alerts, AlertKind::DormantReactivated);
    assert_eq!(d.len(), 1, "{alerts:#?}");
    // Alone in its engine, the integration's jump is the whole stream's:
    // confirmed by its first `clock::CONFIRM` events (one event cannot move
    // time, ARCHITECTURE "event time is not trusted").
    let confirmed = wake + i64::from(crate::clock::CONFIRM - 1) * MINUTE_MS;
    assert!((wake..=confirmed).contains(&d[0].detected_at), "{:?}", d[0]);
}

#[test]
fn a_short_silence_after_a_short_history_is_not_dormancy() {
    let mut e = Engine::new(EngineConfig::default(), None);
    // Three days, ten days of silence: below min_silence_days (14), and the
    // history is too short for the learned rule.
    let mut calls = even(t0(), t0() + 3 * DAY_MS, 60.0);
    let wake = t0() + 13 * DAY_MS;
    calls.extend(even(wake, wake + HOUR_MS, 60.0));
    let alerts = run(&mut e, "brief", &mut calls);
    assert!(
        of(&alerts, AlertKind::DormantReactivated).is_empty(),
        "{alerts:#?}"
    );
}

#[test]
fn a_week_of_silence_long_against_a_mature_history_fires() {
    let mut e = Engine::new(EngineConfig::default(), None);
    // Twenty days without a gap over a few minutes, then eight days of silence.
    let mut calls = even(t0(), t0() + 20 * DAY_MS, 60.0);
    let wake = t0() + 28 * DAY_MS + 10 * HOUR_MS;
    calls.extend(even(wake, wake + HOUR_MS, 60.0));
    let alerts = run(&mut e, "steady", &mut calls);
    assert_eq!(
        of(&alerts, AlertKind::DormantReactivated).len(),
        1,
        "{alerts:#?}"
    );
}

#[test]
fn a_batch_job_filling_half_its_hour_is_not_a_spike() {
    let mut e = Engine::new(with_calls(), None);
    let mut calls = Vec::new();
    for d in 0..16 {
        let day = t0() + d * DAY_MS;
        calls.extend(even(day, day + DAY_MS, 30.0));
        // 02:00-02:30: 40 calls a minute with 30 records each.
        let b = day + 2 * HOUR_MS;
        let mut batch = even(b, b + 30 * MINUTE_MS, 2400.0);
        for c in &mut batch {
            c.records = 30;
        }
        calls.extend(batch);
    }
    let alerts = run(&mut e, "batch", &mut calls);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

/// `n` calls with `status`, spread evenly over [from, from + minutes).
fn burst(from: i64, minutes: i64, n: i64, status: u16) -> Vec<Call> {
    let step = minutes * MINUTE_MS / n;
    (0..n)
        .map(|i| Call {
            status,
            ..call(from + i * step)
        })
        .collect()
}

#[test]
fn a_small_429_burst_is_not_a_sustained_call_spike_but_the_same_calls_served_are() {
    let a = t0() + ANOMALY + 20 * MINUTE_MS;
    for (status, fires) in [(429, false), (200, true)] {
        let mut e = Engine::new(EngineConfig::default(), None);
        let mut calls = learned(6.0);
        // 7 a minute for three minutes where 0.1 a minute is usual: below
        // the one-bucket detector's excess floor.
        calls.extend(burst(a, 3, 21, status));
        let alerts = run(&mut e, "low", &mut calls);
        let spikes = of(&alerts, AlertKind::CallSpike);
        assert_eq!(spikes.len(), usize::from(fires), "{status}: {alerts:#?}");
    }
}

#[test]
fn after_an_alarm_the_statistic_starts_over_so_ordinary_traffic_stays_quiet() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let mut calls = learned(6.0);
    let a = t0() + ANOMALY + 20 * MINUTE_MS;
    calls.extend(burst(a, 3, 21, 200));
    // Eight more hours of the usual 6 calls an hour follow (in `learned`):
    // a statistic held at the threshold re-fired on them for hours.
    let alerts = run(&mut e, "low", &mut calls);
    let spikes = of(&alerts, AlertKind::CallSpike);
    assert_eq!(spikes.len(), 1, "{alerts:#?}");
    assert!(spikes[0].detected_at < a + 5 * MINUTE_MS, "{:?}", spikes[0]);
}

/// `base` calls an hour, each hour of the history at 0.6x or 1.4x (by a
/// hash of the hour, so it does not repeat weekly), until eight hours after
/// the anomaly.
fn wandering(base: f64) -> Vec<Call> {
    let end = t0() + ANOMALY + 8 * HOUR_MS;
    let mut calls = Vec::new();
    let mut h = t0();
    while h < end {
        let hour = ((h - t0()) / HOUR_MS) as u64;
        let f = if (hour.wrapping_mul(2_654_435_761) >> 7) & 1 == 0 {
            0.6
        } else {
            1.4
        };
        let f = if h >= t0() + ANOMALY { 1.0 } else { f };
        calls.extend(even(h, h + HOUR_MS, base * f));
        h += HOUR_MS;
    }
    calls
}

#[test]
fn a_busy_integration_is_judged_against_its_own_level_variability() {
    let a = t0() + ANOMALY;
    // 2.5x for three hours: far beyond a steady integration's level, within
    // the reach of one whose hours stray by ±40% (v ≈ 0.16).
    for (steady, fires) in [(true, true), (false, false)] {
        let mut e = Engine::new(EngineConfig::default(), None);
        let mut calls = if steady {
            learned(600.0)
        } else {
            wandering(600.0)
        };
        calls.extend(even(a, a + 3 * HOUR_MS, 900.0));
        let alerts = run(&mut e, "busy", &mut calls);
        let spikes = of(&alerts, AlertKind::CallSpike);
        assert_eq!(!spikes.is_empty(), fires, "steady {steady}: {alerts:#?}");
    }
}

#[test]
fn five_times_the_bytes_per_record_at_normal_calls_and_records_is_a_sustained_volume_spike() {
    let mut e = Engine::new(EngineConfig::default(), None);
    let mut calls = learned(120.0);
    let a = t0() + ANOMALY;
    // Wider rows (every field pulled): 2.5 KB a record instead of 500 B, two
    // calls a minute, for three hours. No minute is over the one-bucket
    // floors on its own.
    for c in calls
        .iter_mut()
        .filter(|c| c.ts >= a && c.ts < a + 3 * HOUR_MS)
    {
        c.bytes_per_record = 2_500;
    }
    let alerts = run(&mut e, "wide", &mut calls);
    let v = of(&alerts, AlertKind::VolumeSpike);
    assert!(!v.is_empty(), "{alerts:#?}");
    assert_eq!(
        v[0].evidence.get("series"),
        Some(&crate::alert::EvidenceValue::Str("bytes".into())),
        "{:?}",
        v[0]
    );
    assert!(v[0].detected_at < a + HOUR_MS, "{:?}", v[0]);
}

#[test]
fn three_times_the_rate_for_ten_minutes_fires_on_the_exact_tail_the_cusum_misses() {
    // 120 calls an hour (2 a minute), then 6 a minute for ten minutes: 60
    // calls against 20. The k = 4 CUSUM collects ≈ 23 nats over the window
    // against a threshold of ≈ 20.7 × its level factor; no minute is over
    // the one-bucket floors. The exact tail is ≈ 1e-13.
    let a = t0() + ANOMALY;
    let mut found = Vec::new();
    for exact_p_value in [crate::config::DEFAULT_EXACT_P_VALUE, 0.0] {
        let mut cfg = EngineConfig::default();
        cfg.detectors.sustained.exact_p_value = exact_p_value;
        let mut e = Engine::new(cfg, None);
        let mut calls = learned(120.0);
        calls.extend(even(a, a + 10 * MINUTE_MS, 240.0));
        let alerts = run(&mut e, "medium", &mut calls);
        let spikes: Vec<Alert> = of(&alerts, AlertKind::CallSpike)
            .into_iter()
            .cloned()
            .collect();
        found.push(spikes);
    }
    let with = &found[0];
    assert_eq!(with.len(), 1, "{with:#?}");
    let s = &with[0];
    assert!(
        s.detected_at >= a && s.detected_at < a + 15 * MINUTE_MS,
        "{s:?}"
    );
    assert_eq!(
        s.evidence.get("test"),
        Some(&crate::alert::EvidenceValue::Str("exact_tail".into())),
        "{s:?}"
    );
    assert!(found[1].is_empty(), "the CUSUM alone: {:#?}", found[1]);
}

/// `calls` with keys `k1`, `k2`, `k3` in turn.
fn round_robin_keys(calls: &mut [Call]) {
    let keys = ["k1", "k2", "k3"];
    for (i, c) in calls.iter_mut().enumerate() {
        c.key = Some(keys[i % 3]);
    }
}

#[test]
fn a_rise_every_key_shares_is_the_integrations_not_a_key_spike() {
    let a = t0() + ANOMALY;
    // With the share test off (p = 1) the keys fire behind the integration;
    // with the default each key's share of the window's calls is as usual.
    for (share_p, keys_fire) in [(1.0, true), (0.01, false)] {
        let mut cfg = with_calls();
        cfg.detectors.sustained.key_share_p_value = share_p;
        let mut e = Engine::new(cfg, None);
        let mut calls = learned(180.0);
        // The whole integration at 3x for an hour, every key alike.
        calls.extend(even(a + 7_000, a + HOUR_MS, 360.0));
        calls.sort_by_key(|c| c.ts);
        round_robin_keys(&mut calls);
        let alerts = run(&mut e, "keyed", &mut calls);
        let spikes = of(&alerts, AlertKind::CallSpike);
        assert!(
            spikes.iter().any(|s| !s.summary.contains(": key ")),
            "{share_p}: the integration's rise is its own alert: {alerts:#?}"
        );
        let key_spikes = spikes
            .iter()
            .filter(|s| s.summary.contains(": key "))
            .count();
        assert_eq!(key_spikes > 0, keys_fire, "{share_p}: {alerts:#?}");
    }
}

#[test]
fn a_burst_followed_by_a_quiet_hour_is_judged_with_the_quiet_minutes() {
    // Every night 00:00-00:03 at 75 calls a minute, then one call an hour
    // at :56: the call at 01:56 closes a window whose expectation must hold
    // the rest of the batch hour (3.8 a minute learned), not just the
    // burst's three minutes.
    // The control: the same stream with 90 calls in half an hour at noon
    // on the last day still fires, so the quiet run is not a blind one.
    let noon = t0() + 17 * DAY_MS + 12 * HOUR_MS;
    for rise in [false, true] {
        let mut e = Engine::new(with_calls(), None);
        let mut calls = Vec::new();
        for d in 0..18 {
            let day = t0() + d * DAY_MS;
            calls.extend(even(day, day + 3 * MINUTE_MS, 4500.0));
            calls.extend(even(day + 56 * MINUTE_MS, day + DAY_MS, 1.0));
        }
        if rise {
            calls.extend(even(noon + 5 * MINUTE_MS, noon + 35 * MINUTE_MS, 180.0));
        }
        let alerts = run(&mut e, "nightly", &mut calls);
        if rise {
            assert!(
                of(&alerts, AlertKind::CallSpike)
                    .iter()
                    .any(|a| a.detected_at >= noon && a.detected_at < noon + HOUR_MS),
                "{alerts:#?}"
            );
        } else {
            assert!(alerts.is_empty(), "{alerts:#?}");
        }
    }
}

#[test]
fn a_few_calls_with_their_usual_rows_in_an_empty_slot_are_not_a_volume_spike() {
    // Weekdays 09:00-17:00 only, 60 rows a call; then, on a Saturday
    // afternoon (a slot learned as empty), two calls. At 150 rows each they
    // are the integration's usual calls; at 3,000 rows each, an export.
    let sat = t0() + 19 * DAY_MS + 15 * HOUR_MS;
    for (rows, fires) in [(150, false), (3_000, true)] {
        let mut e = Engine::new(EngineConfig::default(), None);
        let mut calls = Vec::new();
        for d in 0..19 {
            if d % 7 >= 5 {
                continue;
            }
            let day = t0() + d * DAY_MS;
            calls.extend(even(day + 9 * HOUR_MS, day + 17 * HOUR_MS, 30.0));
        }
        for c in &mut calls {
            c.records = 60;
        }
        for i in 0..2 {
            calls.push(Call {
                records: rows,
                ..call(sat + i * 20_000)
            });
        }
        let alerts = run(&mut e, "weekdays", &mut calls);
        let volume = of(&alerts, AlertKind::VolumeSpike);
        assert_eq!(!volume.is_empty(), fires, "{rows} rows: {alerts:#?}");
    }
}

#[test]
fn a_quiet_key_of_a_steady_integration_is_judged_on_its_integrations_slot() {
    // Three calls an hour, one per key: each key expects half a call in 30
    // minutes — below the exact test's floor of one expected call when the
    // floor was applied to the key's own window, though the integration's
    // slot (1.5 calls in the window, learned over two weeks) is a rate a
    // tail can rest on. k2 makes 13 calls in 30 minutes: the CUSUM (tuned
    // to 4x) collects ≈ 16.5 of its 20.7 nats; the exact tail is far below
    // 1e-7. A control: 13 calls spread over the whole day on top of the
    // usual traffic stay quiet.
    let a = t0() + ANOMALY;
    for (minutes, fires) in [(30, true), (24 * 60, false)] {
        let mut e = Engine::new(with_calls(), None);
        let mut calls = learned(3.0);
        calls.sort_by_key(|c| c.ts);
        round_robin_keys(&mut calls);
        let step = minutes * MINUTE_MS / 13;
        calls.extend((0..13).map(|i| Call {
            key: Some("k2"),
            ..call(a + 60_000 + i * step)
        }));
        let alerts = run(&mut e, "quiet-keys", &mut calls);
        let k2 = of(&alerts, AlertKind::CallSpike)
            .into_iter()
            .filter(|s| s.key_id.as_deref() == Some("k2"))
            .count();
        assert_eq!(k2 > 0, fires, "13 calls in {minutes} min: {alerts:#?}");
    }
}
