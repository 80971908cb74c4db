#!/usr/bin/env bash
# Runs every tripline test on a fresh Debian machine: installs what the tests
# need (apt packages, the Tansu Kafka-compatible broker, a Python validator),
# then lint, unit, integration and end-to-end tests. The tests themselves start
# the broker, Prometheus and Alertmanager as real processes on free loopback
# ports and stop them when done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# --- system packages -------------------------------------------------------
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
command -v curl >/dev/null || need+=(curl)
# librdkafka (bundled by rdkafka, built with cmake) includes curl/curl.h.
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || need+=(libcurl4-openssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
command -v bc >/dev/null || need+=(bc)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's packages start their own daemons where an init system runs; the
# tests start their own instances on free ports, so stop any that started.
pkill -x prometheus 2>/dev/null || true
pkill -f prometheus-alertmanager 2>/dev/null || true

# --- the Kafka-compatible broker ---------------------------------------------
TANSU="${TRIPLINE_TANSU:-$HOME/.cargo/bin/tansu}"
if [ ! -x "$TANSU" ]; then
  log "cargo install tansu (one-off, ~8 minutes)"
  cargo install tansu --version 0.6.0 --locked --no-default-features --features dynostore
fi
export TRIPLINE_TANSU="$TANSU"

# --- Python validator for the Kubernetes manifests --------------------------
python3 -c 'import kubernetes_validate' 2>/dev/null || python3 -m pip install -q kubernetes-validate

# --- lint --------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

# --- tests -------------------------------------------------------------------
log "cargo test --workspace"
# One test at a time per binary: the end-to-end tests run real brokers and
# services with their own timeouts, and a 2-core machine starved by parallel
# tests only adds noise (the suite stays well inside CI's time budget).
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-1}"

log "deploy tests (promtool, amtool, kubernetes-validate, dashboard)"
bash scripts/deploy-tests.sh
