#!/usr/bin/env bash
# Runs every tripline test on a fresh Debian machine, as root or as a sudo
# user: installs what the tests need (scripts/setup.sh --test: apt packages,
# the Tansu Kafka-compatible broker, a Python validator), then lint, unit,
# integration and end-to-end tests and the deployment checks. The tests themselves start
# the broker, Prometheus and Alertmanager as real processes on free loopback
# ports and stop them when done.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# --- what the tests need ------------------------------------------------------
# apt packages (after apt-get update; sudo only when not root), the Tansu
# broker, a Python venv with the Kubernetes validator: scripts/setup.sh.
log "scripts/setup.sh --test"
bash scripts/setup.sh --test
# shellcheck source=/dev/null
source "${TRIPLINE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tripline-tools}/env.sh"

# --- lint --------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo doc (the code maps' links resolve)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --document-private-items --locked

# --- tests -------------------------------------------------------------------
log "cargo test --workspace"
# One test at a time per binary: the end-to-end tests run real brokers and
# services with their own timeouts, and a 2-core machine starved by parallel
# tests only adds noise (the suite stays well inside CI's time budget).
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-1}"

log "deploy tests (promtool, amtool, kubernetes-validate, dashboard)"
bash scripts/deploy-tests.sh
