//! Integration inventory, least-privilege audit and the HTTP API.
//!
//! tripline sees every call each integration makes, so it can say from
//! evidence what is connected to the CRM and what each integration really
//! touches, and compare that with what the registry grants.
//!
//! # Layout
//! - [`inventory`]: per-integration views (data types, networks, keys,
//!   principals, registry entry, open alerts, feedback) over an engine.
//! - [`report`]: the audit: unregistered integrations, grants to tighten,
//!   uses without a grant, dormant integrations and keys, keys to rotate,
//!   revoked credentials still in use, and a risk score.
//! - [`mod@render`]: the audit as a terminal table or Markdown (JSON is serde).
//! - [`api`]: the bearer-token HTTP API (`docs/openapi.yaml`), its two
//!   traits, the recent-alert ring and the in-process [`api::SharedEngine`].
#![forbid(unsafe_code)]

pub mod api;
pub mod inventory;
pub mod render;
pub mod report;

pub use api::{
    router, AlertLog, ApiState, AuditDefaults, FeedbackApplier, InventoryView, SharedEngine,
};
pub use inventory::{IntegrationDetail, IntegrationSummary};
pub use render::{render, Format};
pub use report::{audit, AuditOptions, AuditReport, IntegrationAudit};
