//! Small shared pieces: rate-limited warnings, bounded error kinds, readiness.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::hooks::Observer;

/// At most one warning per error kind per this interval: a broker outage must
/// not turn into a log flood.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Decides whether a warning of a given kind may be logged now, and how many
/// were suppressed since the last one.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    every: Duration,
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimiter {
    pub(crate) fn new(every: Duration) -> Self {
        LogLimiter {
            every,
            last: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(suppressed)` if a warning of `kind` should be logged now.
    pub(crate) fn allow(&self, kind: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut map = match self.last.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        match map.get_mut(kind) {
            Some((at, suppressed)) if now.duration_since(*at) < self.every => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                let n = *suppressed;
                *at = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                map.insert(kind, (now, 0));
                Some(0)
            }
        }
    }
}

/// A bounded label for a Kafka error (`errors_total{error_type}`).
pub(crate) fn error_kind(e: &KafkaError) -> &'static str {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::AllBrokersDown) => "all_brokers_down",
        Some(RDKafkaErrorCode::BrokerTransportFailure) => "broker_transport",
        Some(RDKafkaErrorCode::Resolve) => "resolve",
        Some(RDKafkaErrorCode::MessageTimedOut) => "timed_out",
        Some(RDKafkaErrorCode::QueueFull) => "queue_full",
        Some(RDKafkaErrorCode::UnknownTopicOrPartition)
        | Some(RDKafkaErrorCode::UnknownTopic)
        | Some(RDKafkaErrorCode::UnknownPartition) => "unknown_topic",
        Some(RDKafkaErrorCode::Authentication)
        | Some(RDKafkaErrorCode::SaslAuthenticationFailed) => "authentication",
        Some(RDKafkaErrorCode::TopicAuthorizationFailed)
        | Some(RDKafkaErrorCode::GroupAuthorizationFailed) => "authorization",
        Some(_) => "kafka",
        None => "client",
    }
}

/// Whether an error means "no broker to talk to right now".
pub(crate) fn is_connectivity(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::AllBrokersDown)
            | Some(RDKafkaErrorCode::BrokerTransportFailure)
            | Some(RDKafkaErrorCode::Resolve)
    )
}

const UNKNOWN: u8 = 0;
const READY: u8 = 1;
const NOT_READY: u8 = 2;

/// Readiness with change-only reporting to the observer.
pub(crate) struct Health {
    state: AtomicU8,
    observer: Arc<dyn Observer>,
}

impl Health {
    pub(crate) fn new(observer: Arc<dyn Observer>) -> Self {
        Health {
            state: AtomicU8::new(UNKNOWN),
            observer,
        }
    }

    pub(crate) fn set(&self, ready: bool) {
        let new = if ready { READY } else { NOT_READY };
        if self.state.swap(new, Ordering::AcqRel) != new {
            tracing::info!(ready, "Kafka consumer readiness changed.");
            self.observer.ready(ready);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_allows_one_per_interval_and_counts_the_rest() {
        let l = LogLimiter::new(Duration::from_millis(50));
        assert_eq!(l.allow("a"), Some(0));
        assert_eq!(l.allow("a"), None);
        assert_eq!(l.allow("a"), None);
        assert_eq!(l.allow("b"), Some(0));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(l.allow("a"), Some(2));
    }
}
