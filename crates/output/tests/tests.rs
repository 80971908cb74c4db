//! Integration tests of tripline-output: real HTTP on 127.0.0.1, a real
//! Alertmanager process and `promtool`.

mod support;

mod alertmanager;
mod delivery;
mod http;
mod metrics;
mod receivers;
mod webhook;
