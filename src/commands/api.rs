//! The audit API (`/api/v1/...`) of a running service: the audit crate's
//! views answered by the Kafka loop's partition engines through its control
//! channel (no locks on the processing path; each request runs between
//! batches on the processing task).

use std::sync::Arc;
use std::time::Duration;

use tripline_audit::api::{AuditDefaults, FeedbackApplier, InventoryView};
use tripline_audit::inventory::{self, IntegrationDetail, IntegrationSummary};
use tripline_audit::report::{self, AuditOptions, AuditReport};
use tripline_engine::{Engine, Feedback, FeedbackRecord};
use tripline_kafka::ControlHandle;

/// How long an API request waits for the processing task.
const VISIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Inventory, audit and feedback over the live partition engines.
pub struct LiveEngines {
    pub control: ControlHandle,
    pub defaults: AuditDefaults,
    /// Answers while no partition is assigned yet (declared integrations).
    pub empty: Arc<Engine>,
}

impl LiveEngines {
    /// A read-only union of the partition engines: a clone of all their
    /// state, so only the views that need every integration use it
    /// (`/integrations`, `/audit`).
    fn merged(&self) -> Engine {
        self.control
            .visit(VISIT_TIMEOUT, Engine::merged)
            .flatten()
            .unwrap_or_else(|| (*self.empty).clone())
    }
}

impl InventoryView for LiveEngines {
    fn integrations(&self) -> Vec<IntegrationSummary> {
        inventory::summaries(&self.merged())
    }

    /// From the one engine that tracks it (or any, for a declared but
    /// unseen integration): no clone of the rest.
    fn integration(&self, id: &str) -> Option<IntegrationDetail> {
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
            .unwrap_or_else(|| inventory::detail(&self.empty, id))
    }

    fn audit(&self, as_of_ms: i64) -> AuditReport {
        let d = self.defaults;
        let opts = AuditOptions {
            as_of_ms,
            horizon_days: d.horizon_days,
            dormant_days: d.dormant_days,
            rotation_days: d.rotation_days,
        };
        report::audit(&self.merged(), &opts)
    }

    fn latest_event_ms(&self) -> Option<i64> {
        self.control
            .visit(VISIT_TIMEOUT, |engines| {
                engines
                    .iter()
                    .map(|e| e.stats())
                    .filter(|s| s.events > 0)
                    .map(|s| s.max_event_time_ms)
                    .max()
            })
            .flatten()
    }
}

impl FeedbackApplier for LiveEngines {
    /// Applied to every partition's engine: feedback is keyed by integration,
    /// so this keeps detection a function of each integration's own history
    /// wherever that integration's events land.
    fn apply(&self, fb: Feedback) -> Result<FeedbackRecord, String> {
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
                    return Err(format!("unknown integration {}", fb.integration_id));
                }
                if engines.is_empty() {
                    return Err("no partition is assigned yet; try again".to_owned());
                }
                let mut record = None;
                for e in engines.iter_mut() {
                    e.apply_feedback(&fb).map_err(|e| e.to_string())?;
                    record = e.feedback().trail().last().cloned();
                }
                record.ok_or_else(|| "feedback was not recorded".to_owned())
            })
            .unwrap_or_else(|| Err("the processing loop is busy; try again".to_owned()))
    }

    /// Feedback is applied to every partition engine, so the longest trail
    /// is the whole trail.
    fn trail(&self) -> Vec<FeedbackRecord> {
        self.control
            .visit(VISIT_TIMEOUT, |engines| {
                engines
                    .iter()
                    .max_by_key(|e| e.feedback().trail().count())
                    .map(|e| e.feedback().trail().cloned().collect())
                    .unwrap_or_default()
            })
            .unwrap_or_else(|| self.empty.feedback().trail().cloned().collect())
    }
}
