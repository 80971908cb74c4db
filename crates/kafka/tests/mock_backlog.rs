//! Completeness over the mock cluster with a backlog larger than its log:
//! every produced message is consumed (processed or rejected), none is
//! trimmed unread by the mock's 5 MB-per-partition retention (it still trims
//! messages once they are read, so low watermarks say nothing here).

use std::sync::Arc;
use std::time::Duration;

use tripline_kafka::mock::{produce_events_bounded, safe_unread_for, start_mock_cluster};

use crate::common::*;

const PARTITIONS: i32 = 12;
const N: usize = 60_000;

/// 60k events over 12 partitions, 80% of them one integration's (so one
/// partition alone holds over 6 MB, more than the mock keeps), produced as fast as
/// flow control allows while the group is still forming. Everything must be
/// processed or rejected. Without flow control the mock trims the hot
/// partition before the group's first assignment (3 s) and this fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_backlog_larger_than_the_mock_log_is_consumed_completely() {
    let cluster = start_mock_cluster(1).unwrap();
    let bs = cluster.bootstrap_servers();
    let (topic, dlq, group) = (unique("in"), unique("dlq"), unique("g"));
    cluster.create_topic(&topic, PARTITIONS).unwrap();
    cluster.create_topic(&dlq, 1).unwrap();

    let mut lines: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let id = if i % 5 < 4 {
                "hot-app".to_owned()
            } else {
                format!("app-{}", i % 40)
            };
            event(i, &id).into_bytes()
        })
        .collect();
    let garbage = garbage();
    for (j, g) in garbage.iter().enumerate() {
        lines.insert(j * 7_000 + 11, g.clone());
    }
    let total = lines.len() as u64;
    let max_line = lines.iter().map(Vec::len).max().unwrap();
    let hot_bytes: usize = lines
        .iter()
        .filter(|l| l.windows(7).any(|w| w == b"hot-app"))
        .map(|l| l.len())
        .sum();
    assert!(
        hot_bytes > 5 * 1024 * 1024,
        "the hot partition must exceed the mock's log ({hot_bytes} bytes)"
    );

    let sink = Arc::new(CollectingSink::default());
    let obs = Arc::new(CollectingObserver::default());
    let run = Running::start(
        settings(&bs, &topic, &group, &dlq),
        None,
        sink.clone(),
        obs.clone(),
    );
    let produced = produce_events_bounded(
        &bs,
        &topic,
        &lines,
        1_000_000,
        &group,
        safe_unread_for(max_line),
    )
    .await
    .unwrap();
    assert_eq!(produced, total);

    eventually(
        "every produced message processed or rejected",
        Duration::from_secs(120),
        || obs.processed() + obs.rejected_total() >= total,
    )
    .await;
    let summary = run.stop().await;
    assert_eq!(
        summary.processed + summary.rejected,
        total,
        "processed + rejected != produced: {summary:?}"
    );
    assert_eq!(summary.rejected, garbage.len() as u64);
    assert_eq!(summary.abandoned_batches, 0);

    drop(cluster);
}
