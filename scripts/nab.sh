#!/usr/bin/env bash
# Scores tripline on a Numenta Anomaly Benchmark data root (NAB's layout:
# DATA_ROOT/data/<category>/<file>.csv, labels/combined_windows.json,
# config/profiles.json) and prints NAB's three profile scores.
#
#   scripts/nab.sh DATA_ROOT [extra score-series args, e.g. --config FILE]
#
# Environment: TRIPLINE_BIN (default: target/release/tripline, built if
# missing), NAB_SCORER (default: ../shared/tools/nab_score.py from the
# current directory or the repository, or tools/ beside the data root's
# parent), NAB_OUT (the
# results directory; default a temporary one), NAB_VERBOSE=1 for the
# per-file breakdown, NAB_SPLIT=1 to also score the two fixed halves the
# configuration was tuned and checked on (files in sorted order: even
# positions = tune half, odd = held-out half).
set -euo pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: scripts/nab.sh DATA_ROOT [score-series args]" >&2
  exit 64
fi
# Paths are the caller's: resolve them before moving to the repository.
root=$(cd "$1" && pwd)
shift
scorer=${NAB_SCORER:-}
for cand in ../shared/tools/nab_score.py "$(dirname "$0")/../../shared/tools/nab_score.py" \
  "$root/../../tools/nab_score.py"; do
  if [ -z "$scorer" ] && [ -f "$cand" ]; then scorer=$(cd "$(dirname "$cand")" && pwd)/nab_score.py; fi
done
if [ -z "$scorer" ]; then
  echo "scripts/nab.sh: set NAB_SCORER to nab_score.py" >&2
  exit 64
fi
cd "$(dirname "$0")/.."
bin=${TRIPLINE_BIN:-target/release/tripline}
if [ ! -x "$bin" ]; then
  cargo build --release --locked --bin tripline
fi
out=${NAB_OUT:-$(mktemp -d)}
"$bin" score-series --out "$out" "$@" "$root"
verbose=()
if [ "${NAB_VERBOSE:-0}" = 1 ]; then verbose=(--verbose); fi
python3 "$scorer" --nab "$root" --results "$out" --detector tripline "${verbose[@]}"
if [ "${NAB_SPLIT:-0}" = 1 ]; then
  for half in tune held-out; do
    python3 - "$root/labels/combined_windows.json" "$out/windows-$half.json" "$half" <<'PY'
import json, sys
windows = json.load(open(sys.argv[1]))
keep = 0 if sys.argv[3] == "tune" else 1
names = sorted(windows)
json.dump({n: windows[n] for i, n in enumerate(names) if i % 2 == keep},
          open(sys.argv[2], "w"), indent=1)
PY
    echo "== $half half"
    python3 "$scorer" --nab "$root" --results "$out" --detector tripline \
      --windows "$out/windows-$half.json"
  done
fi
