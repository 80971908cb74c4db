#!/usr/bin/env bash
# Memory and alert volume under a flood of distinct new integration ids
# (issue 16, item 4; docs/operations.md "Sizing under attack").
#
#   scripts/flood-memory.sh [IDS] [MAX_INTEGRATIONS]   # defaults 1000000 200000
#
# Writes IDS events, each from a new unregistered id (one every 2 ms of event
# time), replays them with a registry that lists none of them (so each would
# be an unknown_integration page) and reports peak RSS (GNU time), the
# engine's tracked integrations, and the alerts by kind. One engine holds
# the process-wide bound exactly as `tripline run`'s partitions do together.
# Uses target/debug/tripline unless TRIPLINE is set (a release build is faster,
# the memory is the same). Not run in CI.
set -euo pipefail
IDS=${1:-1000000}
MAX=${2:-200000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${TRIPLINE:-$ROOT/target/debug/tripline}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python3 - "$IDS" > "$W/flood.jsonl" <<'EOF'
import sys
n = int(sys.argv[1])
t0 = 1_790_000_000_000
w = sys.stdout.write
for i in range(n):
    w('{"ts":%d,"integration_id":"flood-%07d","resource":"contacts","method":"GET","status":200,"records":1}\n' % (t0 + 2 * i, i))
EOF
cat > "$W/registry.toml" <<'EOF'
[[integrations]]
id = "known-app"
name = "Known app"
granted = ["*:*"]
EOF
echo "flood: $IDS ids, max_integrations $MAX, binary $B" >&2
TRIPLINE__ENGINE__MAX_INTEGRATIONS=$MAX TRIPLINE_LOG=warn \
  /usr/bin/time -v "$B" replay --registry "$W/registry.toml" "$W/flood.jsonl" \
  > "$W/alerts.jsonl" 2> "$W/stderr" || { cat "$W/stderr" >&2; exit 1; }
grep -E "Maximum resident set size|Elapsed \(wall" "$W/stderr" >&2
grep -vE "^\s+(Command|User|System|Percent|Elapsed|Average|Maximum|Major|Minor|Voluntary|Involuntary|Swaps|File|Socket|Signals|Page|Exit)" "$W/stderr" | grep -iE "integrations|events" >&2 || true
python3 - "$W/alerts.jsonl" <<'EOF' >&2
import json, sys, collections
c = collections.Counter()
folded = 0
for line in open(sys.argv[1]):
    a = json.loads(line)
    agg = a["integration_id"] == "*"
    c[(a["kind"], "aggregate" if agg else "single")] += 1
    folded += a["evidence"].get("alerts_folded", 0) if agg else 0
for k, v in sorted(c.items()):
    print(f"alerts {k[0]} {k[1]}: {v}")
print(f"alerts folded into aggregates: {folded}")
EOF
