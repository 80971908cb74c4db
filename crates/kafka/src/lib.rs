//! The Kafka source of tripline: consumes CRM access-log events, runs one
//! [`tripline_engine::Engine`] per assigned partition, dead-letters rejected
//! messages, optionally publishes alerts to a topic, and commits offsets
//! at-least-once.
//!
//! Events are keyed by `integration_id`, so all of one integration's events
//! are in one partition, in order. Every detector is a function of one
//! integration's ordered events, so engines per partition raise the same
//! alerts as `tripline replay`'s one engine over the whole stream.
//!
//! # Layout
//! - [`settings`]: [`KafkaSettings`] (`[kafka]` config), validation, the
//!   librdkafka configuration, secret redaction.
//! - [`hooks`]: the traits the binary implements: [`AlertSink`], [`Observer`]
//!   (metrics), [`StateStore`] (checkpoints); [`RunSummary`].
//! - `consumer` (private): the `BaseConsumer` poll thread and its context;
//!   rebalance callbacks hand revokes to the processing task and wait.
//! - `pipeline` (private): [`run`] with a [`RunConfig`]: batching, engines
//!   (spread over worker threads), dead letters, alerts topic, offset store,
//!   checkpoints, the control channel, bounded shutdown. Its module doc
//!   defines "processed".
//! - [`error`]: [`Error`], what `run` fails with.
//! - [`mock`]: librdkafka's in-process mock cluster and producer helpers for
//!   `tripline demo` and tests.
//!
//! # Threads
//! One OS thread polls librdkafka (rebalance callbacks run there and may
//! block); the async processing task owns the engines. They talk through one
//! bounded channel of message chunks, so per-partition order and
//! backpressure come for free. Within a batch the partitions' engines run on
//! up to `kafka.workers` threads, each partition on one thread in offset
//! order; everything else (offsets, checkpoints, control visits) happens on
//! the processing task between batches.
#![forbid(unsafe_code)]

pub mod changelog;
mod consumer;
pub mod error;
pub mod hooks;
pub mod mock;
mod pipeline;
pub mod settings;
mod util;

pub use changelog::{ChangelogStore, ChangelogTopic};
pub use error::Error;
pub use hooks::{
    AlertSink, DeadLetterOutcome, DirStateStore, NoStateStore, NoopObserver, NoopSink, Observer,
    RunSummary, StateStore,
};
pub use pipeline::{
    control_channel, run, ControlHandle, ControlReceiver, EngineVisit, RunConfig, VisitError,
    HEADER_REJECT_DETAIL, HEADER_REJECT_REASON, HEADER_SOURCE_OFFSET, HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
};
pub use settings::{KafkaSettings, SettingsError};
pub use util::WARN_INTERVAL;
