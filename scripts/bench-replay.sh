#!/usr/bin/env bash
# End-to-end `tripline replay` throughput against its parse-only floor, in the
# same run on the same file (ratios survive a noisy shared machine).
#   scripts/bench-replay.sh [SEED] [DAYS] [INTEGRATIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
seed=${1:-1}; days=${2:-36}; n=${3:-30}
dir=${BENCH_DIR:-/tmp/tripline-bench-$seed-$days-$n}
cargo build --release --quiet
bin=target/release/tripline
[ -f "$dir/events.jsonl" ] || $bin simulate --seed "$seed" --days "$days" --integrations "$n" --out "$dir"
lines=$(wc -l < "$dir/events.jsonl")
cat "$dir/events.jsonl" > /dev/null   # warm the page cache
t() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
best_floor=999999; best_full=999999
for i in 1 2 3; do
  f=$(t $bin replay --parse-only --registry "$dir/registry.toml" "$dir/events.jsonl")
  r=$(t $bin replay --registry "$dir/registry.toml" "$dir/events.jsonl")
  best_floor=$(echo "if ($f < $best_floor) $f else $best_floor" | bc -l)
  best_full=$(echo "if ($r < $best_full) $r else $best_full" | bc -l)
done
floor_rate=$(echo "$lines / $best_floor" | bc -l)
full_rate=$(echo "$lines / $best_full" | bc -l)
printf 'lines: %d\nparse-only floor: %.2fs = %.0f events/s\nfull replay:      %.2fs = %.0f events/s\nratio (full / floor): %.3f\n' \
  "$lines" "$best_floor" "$floor_rate" "$best_full" "$full_rate" "$(echo "$full_rate / $floor_rate" | bc -l)"
