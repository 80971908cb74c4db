#!/usr/bin/env bash
# Kafka benchmark (BENCHMARKS.md, "Kafka: tripline run vs a bare consumer"):
# produces ~2.0M simulated events (seed 1, 36 days x 30 integrations) to a
# fresh broker, reads them with a bare rdkafka consumer (the floor), then with
# the tripline Kafka pipeline, and injects call spikes to time produce -> alert.
#
#   scripts/bench-kafka.sh                 # Tansu (~/.cargo/bin/tansu, in memory)
#   scripts/bench-kafka.sh --broker mock --partitions 256 --keys none
#       librdkafka's mock cluster keeps 5 MB per partition, so 2M keyed events
#       do not fit; see BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example kafka_bench
exec ./target/release/examples/kafka_bench "$@"
