#!/usr/bin/env bash
# Soak (issue 16, item 9; docs/operations.md "Soak"): `tripline run` on a real
# Tansu broker with a webhook receiver, under a flood of simulated traffic
# plus new ids, while the receiver and then the broker are restarted.
# Reports RSS, consumer lag and losses per phase. Not run in CI; loopback only.
#
#   scripts/soak.sh [SECONDS_PER_PHASE]     # default 40; 4 phases
#
# Phases: 1 flood; 2 receiver killed for the phase, then restarted; 3 broker
# restarted; 4 flood again after the restart.
#
# Broker storage (SOAK_STORAGE):
#   memory (default)  Tansu's in-memory storage: a restart loses every topic,
#                     message and committed offset. The script recreates the
#                     topics and the report counts what that costs (events
#                     produced before the restart and not yet consumed are lost
#                     with the broker; alerts already taken from the engine are
#                     not, the outputs queue and retry them).
#   s3                Tansu's s3:// storage on a local S3 server (moto's
#                     `moto_server`, from PyPI: `pip install 'moto[server]'`;
#                     SOAK_MOTO names it if it is not on PATH), which outlives
#                     the broker: topics, messages and committed offsets survive
#                     the restart, as they do on Kafka proper.
# Uses target/debug/tripline unless TRIPLINE is set, ~/.cargo/bin/tansu
# unless TRIPLINE_TANSU is set.
set -euo pipefail
PHASE=${1:-40}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${TRIPLINE:-$ROOT/target/debug/tripline}
TANSU=${TRIPLINE_TANSU:-$HOME/.cargo/bin/tansu}
STORAGE=${SOAK_STORAGE:-memory}
W=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
KP=$(port); HP=$(port); RP=$(port)
BROKER=tcp://127.0.0.1:$KP

case "$STORAGE" in
  memory) ENGINE=memory://tansu/ ;;
  s3)
    MOTO=${SOAK_MOTO:-$(command -v moto_server || true)}
    [ -x "$MOTO" ] || { echo "soak: SOAK_STORAGE=s3 needs moto_server (pip install 'moto[server]') or SOAK_MOTO" >&2; exit 1; }
    SP=$(port)
    "$MOTO" -H 127.0.0.1 -p "$SP" >> "$W/s3.log" 2>&1 &
    PIDS+=("$!")
    for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$SP/" && break; sleep 0.2; done
    curl -sf -X PUT -o /dev/null "http://127.0.0.1:$SP/tansu"
    # object_store's S3 settings, read by Tansu's dynostore.
    export AWS_ACCESS_KEY_ID=soak AWS_SECRET_ACCESS_KEY=soak AWS_DEFAULT_REGION=us-east-1 \
      AWS_ENDPOINT="http://127.0.0.1:$SP" AWS_ALLOW_HTTP=true
    ENGINE=s3://tansu/ ;;
  *) echo "soak: SOAK_STORAGE is memory or s3, not $STORAGE" >&2; exit 64 ;;
esac

start_broker() {
  "$TANSU" broker --listener-url "$BROKER" --advertised-listener-url "$BROKER" \
    --storage-engine "$ENGINE" >> "$W/tansu.log" 2>&1 &
  BROKER_PID=$!; PIDS+=("$BROKER_PID")
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$KP) 2>/dev/null && break; sleep 0.2
  done
  for t in soak-in:3 soak-dlq:1 soak-alerts:1; do
    "$TANSU" topic create --broker "$BROKER" --partitions "${t#*:}" "${t%%:*}" >> "$W/tansu.log" 2>&1 || true
  done
}

start_receiver() {
  python3 - "$RP" "$W/received" <<'EOF' >> "$W/receiver.log" 2>&1 &
import http.server, sys
port, path = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(path, "a") as f:
            f.write("1\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
  RECV_PID=$!; PIDS+=("$RECV_PID")
}

metric() { # sum of a metric's series on the admin server
  curl -s "http://127.0.0.1:$HP/metrics" | awk -v m="$1" '$1==m || index($1, m"{")==1 {s+=$2} END {printf "%.0f", s}'
}
lag() { curl -s "http://127.0.0.1:$HP/metrics" | awk '/^tripline_consumer_lag_messages/ {s+=$2} END {printf "%.0f", s}'; }

# Traffic: 20 days of 30 simulated integrations, split into 4 chunks (one a
# phase), produced keyed by integration_id; each chunk also carries 2,000
# new ids. The producer is `cargo build --example soak_produce`.
(cd "$ROOT" && cargo build -q --example soak_produce)
PRODUCER=$ROOT/target/debug/examples/soak_produce
"$B" simulate --seed 16 --days 20 --integrations 30 --out "$W/sim" > /dev/null 2>&1
python3 - "$W" <<'EOF'
import json, sys
w = sys.argv[1]
evs = []
for line in open(f"{w}/sim/events.jsonl"):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if isinstance(v, dict) and isinstance(v.get("integration_id"), str) and v["integration_id"]:
        evs.append(v)
n = len(evs)
for c in range(4):
    part = evs[c * n // 4:(c + 1) * n // 4]
    t = part[-1]["ts"] if isinstance(part[-1]["ts"], int) else None
    if t is not None:
        part += [{"ts": t, "integration_id": f"flood-{c}-{k:05}", "resource": "contacts",
                  "method": "GET", "status": 200} for k in range(2000)]
    with open(f"{w}/chunk{c}.jsonl", "w") as f:
        for e in part:
            f.write(json.dumps(e) + "\n")
    with open(f"{w}/chunk{c}.count", "w") as f:
        f.write(str(len(part)))
EOF

cat > "$W/tripline.toml" <<EOF
[kafka]
brokers = "127.0.0.1:$KP"
group_id = "soak"
topics = ["soak-in"]
dlq_topic = "soak-dlq"
alerts_topic = "soak-alerts"
[http]
listen_addr = "127.0.0.1:$HP"
[registry]
path = "$W/sim/registry.toml"
[[outputs]]
name = "soak-hook"
type = "webhook"
url_env = "SOAK_HOOK_URL"
EOF

: > "$W/received"
start_broker
start_receiver
start_tripline() {
  SOAK_HOOK_URL="http://127.0.0.1:$RP/hook" TRIPLINE_LOG=warn \
    "$B" run --config "$W/tripline.toml" >> "$W/tripline.log" 2>&1 &
  TL_PID=$!; PIDS+=("$TL_PID")
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HP/healthz" > /dev/null && break; sleep 0.3; done
}
start_tripline
# A crash is reported (with the exit status) and tripline restarted, so the
# later phases still measure something; counters then start again at 0.
alive() {
  kill -0 "$TL_PID" 2>/dev/null && return 0
  local rc=0; wait "$TL_PID" 2>/dev/null || rc=$?
  echo "!! tripline died (exit status $rc); restarting it" >&2
  start_tripline
}

produce() { # chunk
  "$PRODUCER" "127.0.0.1:$KP" soak-in < "$W/chunk$1.jsonl" > /dev/null || echo "produce failed: chunk $1" >&2
}

PRODUCED=0
report() { # phase name
  alive
  local rss
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$TL_PID/status" 2>/dev/null || echo 0)
  printf "%-28s produced %7d  received %7d  lag %6s  rss %6d MB  alerts %5s  delivered %5s  at receiver %5s  dropped %s\n" \
    "$1" "$PRODUCED" "$(metric tripline_events_received_total)" "$(lag)" $((rss / 1024)) \
    "$(metric tripline_alerts_total)" \
    "$(curl -s "http://127.0.0.1:$HP/metrics" | awk '/^tripline_output_deliveries_total/ && /success/ {s+=$2} END {printf "%.0f", s}')" \
    "$(wc -l < "$W/received" 2>/dev/null || echo 0)" "$(metric tripline_output_dropped_total)"
}

phase() { # n name action
  eval "$3"
  produce "$1"
  PRODUCED=$((PRODUCED + $(cat "$W/chunk$1.count")))
  sleep "$PHASE"
  report "$2"
}

echo "soak: binary $B, $PHASE s per phase, broker $BROKER ($STORAGE storage)" >&2
phase 0 "1 flood" ":"
# The receiver is down while the chunk is processed, back halfway through.
kill "$RECV_PID"; produce 1; PRODUCED=$((PRODUCED + $(cat "$W/chunk1.count")))
sleep $((PHASE / 2)); start_receiver; sleep $((PHASE - PHASE / 2))
report "2 receiver down, restarted"
phase 2 "3 broker restarted" 'kill $BROKER_PID; wait $BROKER_PID 2>/dev/null || true; sleep 2; start_broker; sleep 3; alive'
phase 3 "4 flood after restart" ":"
echo "tripline alive: $(kill -0 "$TL_PID" 2>/dev/null && echo yes || echo no); its warnings:" >&2
grep -ciE "warn|error" "$W/tripline.log" >&2 || true
grep -iE "warn|error" "$W/tripline.log" | cut -c1-200 | sort | uniq -c | sort -rn | head -5 >&2 || true
