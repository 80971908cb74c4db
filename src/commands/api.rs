//! The audit API (`/api/v1/...`) of a running service: the audit crate's
//! views answered by the Kafka loop's partition engines through its control
//! channel (no locks on the processing path; each request runs between
//! batches on the processing task). The API's handlers call these on
//! blocking threads, so a busy loop never stalls `/metrics` or the probes;
//! a full channel or a slow answer is [`Busy`] (503 with `Retry-After`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tripline_audit::api::{AuditDefaults, Busy, FeedbackApplier, FeedbackError, InventoryView};
use tripline_audit::inventory::{self, IntegrationDetail, IntegrationSummary};
use tripline_audit::report::{self, AuditOptions, AuditReport};
use tripline_engine::{Engine, Feedback, FeedbackRecord};
use tripline_kafka::ControlHandle;

/// How long an API request waits for the processing task.
const VISIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Inventory, audit and feedback over the live partition engines.
pub struct LiveEngines {
    pub control: ControlHandle,
    pub defaults: AuditDefaults,
    /// Answers while no partition is assigned yet (declared integrations).
    pub empty: Arc<Engine>,
}

impl InventoryView for LiveEngines {
    /// Summaries computed on each engine (no clone of engine state); an
    /// integration's summary comes from the engine that tracks it.
    fn integrations(&self) -> Result<Vec<IntegrationSummary>, Busy> {
        let empty = Arc::clone(&self.empty);
        self.control
            .visit(VISIT_TIMEOUT, move |engines| {
                if engines.is_empty() {
                    return inventory::summaries(&empty);
                }
                let mut by_id: BTreeMap<String, IntegrationSummary> = BTreeMap::new();
                for e in engines {
                    for s in inventory::summaries(e) {
                        if e.integration(&s.id).is_some() || !by_id.contains_key(&s.id) {
                            by_id.insert(s.id.clone(), s);
                        }
                    }
                }
                by_id.into_values().collect()
            })
            .ok_or(Busy)
    }

    /// From the one engine that tracks it (or any, for a declared but
    /// unseen integration): no clone of the rest.
    fn integration(&self, id: &str) -> Result<Option<IntegrationDetail>, Busy> {
        let key = id.to_owned();
        let empty = Arc::clone(&self.empty);
        self.control
            .visit(VISIT_TIMEOUT, move |engines| {
                let owner = engines
                    .iter()
                    .find(|e| e.integration(&key).is_some())
                    .or(engines.first());
                inventory::detail(owner.copied().unwrap_or(&empty), &key)
            })
            .ok_or(Busy)
    }

    /// The audit needs every integration side by side: it runs over a
    /// merged copy of the engines' state.
    fn audit(&self, as_of_ms: i64) -> Result<AuditReport, Busy> {
        let d = self.defaults;
        let opts = AuditOptions {
            as_of_ms,
            horizon_days: d.horizon_days,
            dormant_days: d.dormant_days,
            rotation_days: d.rotation_days,
        };
        let merged = self
            .control
            .visit(VISIT_TIMEOUT, Engine::merged)
            .ok_or(Busy)?
            .unwrap_or_else(|| (*self.empty).clone());
        Ok(report::audit(&merged, &opts))
    }

    fn latest_event_ms(&self) -> Result<Option<i64>, Busy> {
        self.control
            .visit(VISIT_TIMEOUT, |engines| {
                engines
                    .iter()
                    .map(|e| e.stats())
                    .filter(|s| s.events > 0)
                    .map(|s| s.stream_time_ms)
                    .max()
            })
            .ok_or(Busy)
    }
}

impl FeedbackApplier for LiveEngines {
    /// Applied to every partition's engine: feedback is keyed by integration,
    /// so this keeps detection a function of each integration's own history
    /// wherever that integration's events land.
    fn apply(&self, fb: Feedback) -> Result<FeedbackRecord, FeedbackError> {
        let known_decl = self
            .empty
            .registry()
            .is_some_and(|r| r.integration(&fb.integration_id).is_some());
        self.control
            .visit_mut(VISIT_TIMEOUT, move |engines| {
                let known = known_decl
                    || engines
                        .iter()
                        .any(|e| e.integration(&fb.integration_id).is_some());
                if !known {
                    return Err(FeedbackError::Rejected(format!(
                        "unknown integration {}",
                        fb.integration_id
                    )));
                }
                if engines.is_empty() {
                    // Nothing to apply it to yet: a retry will find one.
                    return Err(FeedbackError::Busy(Busy));
                }
                let mut record = None;
                for e in engines.iter_mut() {
                    e.apply_feedback(&fb)
                        .map_err(|e| FeedbackError::Rejected(e.to_string()))?;
                    record = e.feedback().trail().last().cloned();
                }
                record
                    .ok_or_else(|| FeedbackError::Rejected("feedback was not recorded".to_owned()))
            })
            .unwrap_or(Err(FeedbackError::Busy(Busy)))
    }

    /// Feedback is applied to every partition engine, so the longest trail
    /// is the whole trail.
    fn trail(&self) -> Result<Vec<FeedbackRecord>, Busy> {
        let empty = Arc::clone(&self.empty);
        self.control
            .visit(VISIT_TIMEOUT, move |engines| {
                engines
                    .iter()
                    .max_by_key(|e| e.feedback().trail().count())
                    .map(|e| e.feedback().trail().cloned().collect())
                    .unwrap_or_else(|| empty.feedback().trail().cloned().collect())
            })
            .ok_or(Busy)
    }
}

#[cfg(test)]
mod tests {
    //! The API is isolated from the data plane: with the processing loop
    //! saturated (it never gets between batches to answer a visit) and the
    //! API flooded, `/metrics` and `/readyz` keep answering at once, and the
    //! flood gets 503 with `Retry-After` rather than queueing forever.

    use std::time::Instant;

    use tripline_output::{AdminState, Metrics, Readiness, Secret};

    use super::*;

    /// API requests in flight at once: more than the control channel holds
    /// (64), so some are refused at once and the rest wait out the visit
    /// timeout on blocking threads.
    const FLOOD: usize = 200;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_and_readyz_answer_while_the_loop_is_saturated_and_the_api_is_flooded() {
        // The receiver is held but never polled: a processing loop that is
        // busy with a batch for longer than any request waits.
        let (control, _never_polled) = tripline_kafka::control_channel();
        let live = Arc::new(LiveEngines {
            control,
            defaults: AuditDefaults::default(),
            empty: Arc::new(Engine::new(Default::default(), None)),
        });
        let token = "flood-test-token";
        let api = tripline_audit::api::router(tripline_audit::api::ApiState {
            token: Some(Secret::new(token)),
            inventory: live.clone(),
            feedback: live,
            alerts: Arc::new(tripline_audit::api::AlertLog::new(16)),
        });
        let readiness = Readiness::new();
        readiness.set_consuming(true);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tripline_output::serve(
            "127.0.0.1:0".parse().unwrap(),
            AdminState {
                metrics: Arc::new(Metrics::new("0.0.0", 5).unwrap()),
                readiness,
            },
            Some(api),
            async move {
                let _ = stop_rx.await;
            },
        )
        .unwrap();
        let base = format!("http://{}", server.local_addr());
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();

        let flood: Vec<_> = (0..FLOOD)
            .map(|i| {
                let (c, url) = (client.clone(), format!("{base}/api/v1/integrations"));
                let path = if i % 2 == 0 {
                    url
                } else {
                    url.replace("integrations", "audit")
                };
                tokio::spawn(async move {
                    let r = c.get(path).bearer_auth(token).send().await.unwrap();
                    (
                        r.status().as_u16(),
                        r.headers().get("retry-after").is_some(),
                    )
                })
            })
            .collect();
        // Let the flood reach the server and fill the control channel.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let mut slowest = Duration::ZERO;
        for path in ["/metrics", "/readyz", "/metrics", "/readyz", "/healthz"] {
            let t = Instant::now();
            let r = client.get(format!("{base}{path}")).send().await.unwrap();
            let status = r.status().as_u16();
            let _ = r.bytes().await.unwrap();
            slowest = slowest.max(t.elapsed());
            assert_eq!(status, 200, "{path} while the API is flooded");
        }
        // The property is that the probes are never queued behind the API
        // (which waits VISIT_TIMEOUT = 5 s): they answer in milliseconds. The
        // bound leaves room for a loaded CI machine; the figure is printed.
        eprintln!("slowest /metrics|/readyz|/healthz under the flood: {slowest:?}");
        assert!(slowest < Duration::from_secs(1), "probes took {slowest:?}");

        let mut refused = 0;
        for f in flood {
            let (status, retry_after) = f.await.unwrap();
            assert_eq!(status, 503, "a request the loop never answered");
            assert!(retry_after, "503 without Retry-After");
            refused += 1;
        }
        assert_eq!(refused, FLOOD);
        let _ = stop_tx.send(());
        let _ = server.wait().await;
    }
}
