#!/usr/bin/env bash
# Kafka benchmark (BENCHMARKS.md, "Kafka: tripline run vs a bare consumer"):
# produces ~2.0M simulated events (seed 1, 36 days x 30 integrations) to a
# fresh broker, reads them with a bare rdkafka consumer (the floor), then with
# the tripline Kafka pipeline, and injects call spikes to time produce -> alert.
#
#   scripts/bench-kafka.sh                 # Tansu (~/.cargo/bin/tansu, in memory)
#   scripts/bench-kafka.sh --broker mock   # librdkafka's mock cluster (see BENCHMARKS.md:
#                                          # it keeps 5 MB per partition, so use --days 4)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example kafka_bench
exec ./target/release/examples/kafka_bench "$@"
