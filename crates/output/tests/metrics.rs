//! The rendered exposition passes `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use tripline_engine::{AlertKind, Severity};
use tripline_output::{BatchStats, Dispatcher, Metrics};

use crate::support::{alert, settings};

const PROMTOOL: &str = "promtool";

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `{PROMTOOL}` ({e}); install it (Debian: apt-get install prometheus) to run this test")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && msg.trim().is_empty(), msg)
}

#[tokio::test]
async fn rendered_metrics_pass_promtool() {
    let m = Metrics::new("0.1.0", 3).unwrap();
    let cfg = "[[outputs]]\nname = \"am\"\ntype = \"alertmanager\"\nurl = \"http://127.0.0.1:1\"\n\
               [[outputs]]\nname = \"pd\"\ntype = \"pagerduty\"\nrouting_key_env = \"K\"\n";
    let _d = Dispatcher::new(settings(cfg, &[("K", "k")]), &m).unwrap();
    m.record_batch(&BatchStats {
        received: 100,
        processed: 97,
        late: 2,
        duration: Duration::from_millis(4),
        event_delays_seconds: &[0.5, 1.5, 30.0],
    });
    m.rejected("invalid_json");
    m.rejected("mystery");
    m.dead_letter(false);
    m.alert(&alert("a", "i", AlertKind::NewSource, Severity::Critical));
    m.folded(AlertKind::NewSource, 3);
    m.set_consumer_lag("crm-access-logs", 0, 12);
    m.set_engine(1000, 200, 5_000_000);
    m.update_top_scores([("hubspot", 0.9), ("salesforce", 0.2)]);
    m.set_ready(true);
    m.error("kafka_commit", "commit");

    let text = m.render();
    for name in [
        "tripline_build_info",
        "tripline_events_received_total",
        "tripline_events_processed_total",
        "tripline_events_rejected_total",
        "tripline_events_late_total",
        "tripline_events_ts_out_of_range_total",
        "tripline_dead_letters_total",
        "tripline_alerts_total",
        "tripline_alerts_resolved_total",
        "tripline_alerts_folded_total",
        "tripline_consumer_lag_messages",
        "tripline_processing_duration_seconds",
        "tripline_event_delay_seconds",
        "tripline_batch_size_events",
        "tripline_output_deliveries_total",
        "tripline_output_retries_total",
        "tripline_output_dropped_total",
        "tripline_output_queue_depth",
        "tripline_tracked_integrations",
        "tripline_learning_integrations",
        "tripline_engine_memory_bytes",
        "tripline_integration_anomaly_score",
        "tripline_ready",
        "tripline_errors_total",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
    // Cardinality: the series count does not depend on the number of integrations.
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(series < 200, "{series} series");
    let (ok, msg) = promtool_check(&text);
    assert!(
        ok,
        "promtool check metrics is not clean:\n{msg}\n--- exposition ---\n{text}"
    );
}

/// (fixed, per output) of "**F + P + N·O + T**" in docs/specs/metrics.md.
fn documented_budget() -> (usize, usize) {
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/specs/metrics.md"
    ))
    .unwrap();
    let start = spec
        .find("exactly **")
        .expect("budget formula in metrics.md")
        + 10;
    let formula: String = spec[start..].chars().take_while(|c| *c != '*').collect();
    let nums: Vec<usize> = formula
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert_eq!(nums.len(), 2, "formula {formula:?}");
    (nums[0], nums[1])
}

fn series(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// The documented cardinality budget is what a registry really exports:
/// fixed part, per partition, per output, per top-K entry.
#[tokio::test]
async fn documented_series_budget_matches_the_registry() {
    let (fixed, per_output) = documented_budget();
    let m = Metrics::new("0.1.0", 20).unwrap();
    assert_eq!(series(&m.render()), fixed, "fixed series");
    let cfg = "[[outputs]]\nname = \"a\"\ntype = \"alertmanager\"\nurl = \"http://127.0.0.1:1\"\n\
               [[outputs]]\nname = \"b\"\ntype = \"alertmanager\"\nurl = \"http://127.0.0.1:1\"\n";
    let _d = Dispatcher::new(settings(cfg, &[]), &m).unwrap();
    for p in 0..3 {
        m.set_consumer_lag("events", p, 7);
    }
    m.update_top_scores([("x", 0.5), ("y", 0.7)]);
    assert_eq!(
        series(&m.render()),
        fixed + 3 + per_output * 2 + 2,
        "F + P + N·O + T with P = 3, O = 2, T = 2"
    );
}
