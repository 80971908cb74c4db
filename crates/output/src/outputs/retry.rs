//! Retry timing for the outputs: full-jitter exponential backoff with a
//! server's `Retry-After` as a floor.

use std::time::Duration;

use super::Delivery;

/// Full-jitter exponential backoff: uniform in `[0, min(max, initial·2^(n-1))]`
/// for the `n`th failure; a server's `Retry-After` is a floor (capped by `max`).
pub(super) fn backoff(
    delivery: &Delivery,
    failures: u32,
    retry_after: Option<Duration>,
    jitter: f64,
) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let cap = delivery
        .initial_backoff
        .saturating_mul(1u32 << exp)
        .min(delivery.max_backoff);
    let d = cap.mul_f64(jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(r) => d.max(r.min(delivery.max_backoff)),
        None => d,
    }
}

pub(super) fn parse_retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::OverflowPolicy;

    fn delivery(initial_ms: u64, max_ms: u64) -> Delivery {
        Delivery {
            queue_capacity: 1,
            overflow: OverflowPolicy::DropOldest,
            initial_backoff: Duration::from_millis(initial_ms),
            max_backoff: Duration::from_millis(max_ms),
            max_attempts: None,
            max_age: Duration::from_secs(60),
            timeout: Duration::from_secs(1),
            unhealthy_after: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_grows_exponentially_with_full_jitter_and_caps() {
        let d = delivery(100, 1000);
        let check = |failures, retry_after, jitter, expect_ms| {
            assert_eq!(
                backoff(&d, failures, retry_after, jitter),
                Duration::from_millis(expect_ms),
                "failures {failures} jitter {jitter}"
            );
        };
        check(1, None, 1.0, 100);
        check(2, None, 1.0, 200);
        check(3, None, 1.0, 400);
        check(4, None, 1.0, 800);
        check(5, None, 1.0, 1000);
        check(200, None, 1.0, 1000);
        check(3, None, 0.5, 200);
        check(3, None, 0.0, 0);
        check(1, Some(Duration::from_millis(700)), 0.0, 700);
        check(1, Some(Duration::from_secs(3600)), 0.0, 1000);
    }
}
