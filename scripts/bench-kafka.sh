#!/usr/bin/env bash
# Kafka benchmark (BENCHMARKS.md, "Kafka: tripline run vs a bare consumer"):
# produces ~2.0M simulated events (seed 1, 36 days x 30 integrations) to a
# fresh broker, reads them with a bare rdkafka consumer (the floor), then with
# the tripline Kafka pipeline, and injects call spikes to time produce -> alert.
#
#   scripts/bench-kafka.sh                 # Tansu (~/.cargo/bin/tansu, in memory)
#   scripts/bench-kafka.sh --broker mock   # keyed, 12 partitions, produced while consumed
#   scripts/bench-kafka.sh --broker mock --partitions 256 --keys none
#       the whole 2M backlog first (spike latency while it drains)
#
# Keyed input is produced while it is consumed (--produce during, the default
# when keyed): at most --window events (20000) ahead of the consumer, so
# librdkafka's mock cluster, which keeps 5 MB per partition read or not,
# never trims unread data (the bare consumer fails on any offset gap). Each
# phase prints its CPU by thread group and events per CPU-second.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example kafka_bench
exec ./target/release/examples/kafka_bench "$@"
