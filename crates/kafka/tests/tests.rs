//! Integration tests of the Kafka source, one module per concern.
//!
//! `mock_cluster`, `mock_backlog`, `mock_shutdown` and `mock_workers` use
//! librdkafka's in-process mock brokers; `tansu` spawns a real
//! Kafka-compatible broker process (`~/.cargo/bin/tansu`).

mod common;
mod mock_backlog;
mod mock_cluster;
mod mock_shutdown;
mod mock_workers;
mod tansu;
