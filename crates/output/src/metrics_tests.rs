//! Unit tests of `metrics.rs` (kept apart so that file stays readable).

use super::*;

fn alert(kind: AlertKind, severity: Severity) -> Alert {
    Alert {
        id: "00".into(),
        kind,
        severity,
        integration_id: "i".into(),
        key_id: None,
        resource: None,
        detected_at: 0,
        window_start: 0,
        window_end: 0,
        observed: None,
        expected: None,
        score: 0.5,
        summary: String::new(),
        evidence: Default::default(),
    }
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn series_exist_at_zero_and_count() {
    let m = Metrics::new("0.1.0", 3).unwrap();
    let text = m.render();
    assert_eq!(
        value(
            &text,
            r#"tripline_alerts_total{kind="off_hours",severity="info"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&text, r#"tripline_events_rejected_total{reason="other"}"#),
        Some(0.0)
    );
    let b = BuildInfo::current("0.1.0");
    assert_eq!(
        value(
            &text,
            &format!(
                r#"tripline_build_info{{revision="{}",rustc="{}",target="{}",version="0.1.0"}}"#,
                b.revision, b.rustc, b.target
            )
        ),
        Some(1.0)
    );
    assert!(!b.rustc.is_empty() && b.rustc != "unknown", "{b:?}");
    assert!(b.target.contains('-'), "{b:?}");
    assert_eq!(
        value(
            &text,
            r#"tripline_errors_total{error_type="kafka",stage="consume"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "tripline_checkpoint_last_success_timestamp_seconds"),
        Some(0.0)
    );
    #[cfg(target_os = "linux")]
    assert!(value(&text, "process_start_time_seconds").is_some_and(|v| v > 0.0));

    m.alert(&alert(AlertKind::CallSpike, Severity::Critical));
    m.alert(&alert(AlertKind::CallSpike, Severity::Critical));
    m.rejected("invalid_json");
    m.rejected("some new thing");
    m.record_batch(&BatchStats {
        received: 10,
        processed: 8,
        late: 1,
        duration: Duration::from_millis(3),
        event_delays_seconds: &[0.2, 0.3],
    });
    let text = m.render();
    assert_eq!(
        value(
            &text,
            r#"tripline_alerts_total{kind="call_spike",severity="critical"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &text,
            r#"tripline_events_rejected_total{reason="invalid_json"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"tripline_events_rejected_total{reason="other"}"#),
        Some(1.0)
    );
    assert_eq!(value(&text, "tripline_events_received_total"), Some(10.0));
    assert_eq!(
        value(&text, "tripline_event_delay_seconds_count"),
        Some(2.0)
    );
    assert!(!text.contains("some new thing"));
}

#[test]
fn top_k_keeps_at_most_k_series_and_removes_dropouts() {
    let m = Metrics::new("t", 2).unwrap();
    m.update_top_scores([("a", 0.1), ("b", 0.9), ("c", 0.5)]);
    let text = m.render();
    assert!(text.contains(r#"integration_id="b""#));
    assert!(text.contains(r#"integration_id="c""#));
    assert!(!text.contains(r#"integration_id="a""#));
    m.update_top_scores([("a", 0.95), ("c", 0.4), ("d", f64::NAN)]);
    let text = m.render();
    assert_eq!(
        value(
            &text,
            r#"tripline_integration_anomaly_score{integration_id="a"}"#
        ),
        Some(0.95)
    );
    assert_eq!(
        value(
            &text,
            r#"tripline_integration_anomaly_score{integration_id="c"}"#
        ),
        Some(0.4)
    );
    assert!(!text.contains(r#"integration_id="b""#));
    assert!(!text.contains(r#"integration_id="d""#));
}

#[test]
fn consumer_lag_series_follow_assignment() {
    let m = Metrics::new("t", 1).unwrap();
    m.set_consumer_lag("events", 3, 42);
    assert!(m
        .render()
        .contains(r#"tripline_consumer_lag_messages{partition="3",topic="events"} 42"#));
    m.remove_consumer_lag("events", 3);
    assert!(!m.render().contains(r#"partition="3""#));
}

#[test]
fn out_of_range_events_have_their_own_counter_from_zero() {
    let m = Metrics::new("0.1.0", 3).unwrap();
    let name = "tripline_events_ts_out_of_range_total";
    assert_eq!(value(&m.render(), name), Some(0.0));
    m.out_of_range(2);
    m.out_of_range(1);
    let text = m.render();
    assert_eq!(value(&text, name), Some(3.0));
    assert!(text.contains(&format!("# TYPE {name} counter")), "{text}");
    // Not a rejection: the events were processed.
    assert_eq!(
        value(&text, r#"tripline_events_rejected_total{reason="other"}"#),
        Some(0.0)
    );
}
