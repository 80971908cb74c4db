//! Edge parsing for tripline: the JSON access-log event of
//! `docs/specs/events.md` and the TOML registry of `docs/specs/registry.md`.
//!
//! # Layout
//! - [`event`]: one JSON object → validated, borrowed [`tripline_engine::Event`],
//!   or a [`Reject`] with a bounded [`RejectReason`]. Allocation-free for
//!   ordinary (unescaped) input.
//! - [`mapping`]: declarative vendor-format profiles (Kong, Salesforce, Envoy,
//!   …) → the same borrowed events, with route tables for CRM REST paths.
//! - [`lines`]: bounded JSONL line reading (an oversize line is skipped, never
//!   buffered whole).
//! - [`series`]: `timestamp,value` CSV series (NAB layout) for
//!   `tripline score-series`, errors with their line number.
//! - [`registry`]: TOML → [`tripline_engine::Registry`], reporting every problem
//!   with its line.
#![forbid(unsafe_code)]

pub mod event;
pub mod lines;
pub mod mapping;
pub mod registry;
pub mod series;

pub use event::{parse_event, RawEvent, Reject, RejectReason, MAX_EVENT_BYTES};
pub use mapping::{load_format, read_events, Format, Mapping, MappingError};
pub use registry::{load_registry, parse_registry, RegistryError};
