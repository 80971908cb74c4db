//! tripline's integration tests: one binary, one module per concern
//! (ripgrep's layout). Services (Kafka-compatible broker, Prometheus,
//! Alertmanager) are real processes started by `support`.

mod adversarial;
mod audit;
mod cli;
mod e2e_alerting;
mod e2e_api;
mod e2e_bounds;
mod e2e_formats;
mod e2e_kafka;
mod e2e_prometheus;
mod e2e_state;
mod eval;
mod formats_cli;
mod fuzz_regressions;
#[path = "../fuzz/targets.rs"]
mod fuzz_targets;
mod input_hygiene;
mod score_series;
mod support;
mod text_safety;
