//! Test support: real services started by the integration tests.

#![allow(dead_code)]

// End-to-end alerting (tests/e2e_alerting.rs): Prometheus, Alertmanager, HTTP receivers.
pub mod alertmanager;
pub mod http;
pub mod prometheus;
