#!/usr/bin/env bash
# Installs what tripline needs on a Debian or Ubuntu machine that has the Rust
# toolchain, installing only what is missing:
#
#   scripts/setup.sh          what building tripline needs: the bundled
#                             librdkafka is compiled from source, so a C/C++
#                             toolchain, cmake and the curl and zlib headers;
#   scripts/setup.sh --test   also what the tests need: prometheus, promtool,
#                             prometheus-alertmanager, amtool, curl, bc, a
#                             Python venv with kubernetes-validate and pyyaml,
#                             and the Tansu Kafka-compatible broker (cargo
#                             install, about 8 minutes once).
#
# Works as root (no sudo needed) and as a user with sudo. Package lists are
# refreshed (apt-get update) before anything is installed, so a machine whose
# lists are stale installs cleanly.
#
# With --test, the locations of the tools it provides are written to
# "$TOOLS_DIR/env.sh" (TRIPLINE_TANSU, PATH with the venv), which
# scripts/test.sh sources. TOOLS_DIR is $TRIPLINE_TOOLS_DIR, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/tripline-tools: outside the checkout, so a
# fresh clone reuses what an earlier one installed.
set -euo pipefail

want_test=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    -h | --help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown argument: $a (try --help)" >&2; exit 64 ;;
  esac
done

log() { printf '==> %s\n' "$*" >&2; }

# Run a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "setup.sh: '$*' needs root; run as root or install sudo" >&2
    exit 1
  fi
}

# --- Debian packages -----------------------------------------------------------
pkgs=()
need_cmd() { command -v "$1" >/dev/null || pkgs+=("$2"); }
need_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed' || pkgs+=("$1"); }

need_cmd cc build-essential
need_cmd c++ build-essential
need_cmd make build-essential
need_cmd cmake cmake
need_pkg libcurl4-openssl-dev
need_pkg zlib1g-dev
if [ "$want_test" = 1 ]; then
  need_cmd prometheus prometheus
  need_cmd promtool prometheus
  need_cmd prometheus-alertmanager prometheus-alertmanager
  need_cmd amtool prometheus-alertmanager
  need_cmd curl curl
  need_cmd bc bc
  # The tests signal the processes they start (kill); minimal images lack procps.
  need_cmd kill procps
  need_cmd pkill procps
  python3 -c 'import venv, ensurepip' 2>/dev/null || pkgs+=(python3-venv)
fi

if [ ${#pkgs[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "setup.sh: missing ${pkgs[*]} and no apt-get here; install them by hand" >&2
    exit 1
  fi
  # Unique, in order.
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | awk '!seen[$0]++')
  log "apt-get update && apt-get install ${pkgs[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  # Debian's prometheus packages start their own daemons where an init system
  # runs; the tests start their own instances on free ports, so stop the ones
  # this install started.
  for p in "${pkgs[@]}"; do
    case "$p" in
      prometheus) as_root pkill -x prometheus 2>/dev/null || true ;;
      prometheus-alertmanager) as_root pkill -f prometheus-alertmanager 2>/dev/null || true ;;
    esac
  done
fi

[ "$want_test" = 1 ] || exit 0

# --- tools outside Debian --------------------------------------------------------
TOOLS_DIR="${TRIPLINE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tripline-tools}"
mkdir -p "$TOOLS_DIR"

# Tansu, the Kafka-compatible broker of the end-to-end tests. An existing
# binary is reused: $TRIPLINE_TANSU, the usual cargo bin, this CARGO_HOME's, ours.
TANSU="${TRIPLINE_TANSU:-}"
if [ -z "$TANSU" ]; then
  for c in "$HOME/.cargo/bin/tansu" "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" "$TOOLS_DIR/bin/tansu"; do
    if [ -x "$c" ]; then TANSU="$c"; break; fi
  done
fi
if [ -z "$TANSU" ]; then
  log "cargo install tansu 0.6.0 into $TOOLS_DIR (one-off, ~8 minutes)"
  cargo install --quiet --root "$TOOLS_DIR" tansu --version 0.6.0 --locked \
    --no-default-features --features dynostore
  TANSU="$TOOLS_DIR/bin/tansu"
fi

# Python tools in a venv of our own: a system Python may refuse pip installs
# (PEP 668) and a user's site-packages is none of our business.
VENV="$TOOLS_DIR/venv"
if ! "$VENV/bin/python3" -c 'import kubernetes_validate, yaml' 2>/dev/null; then
  log "python venv with kubernetes-validate and pyyaml in $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python3" -m pip install -q --disable-pip-version-check kubernetes-validate pyyaml
fi

cat >"$TOOLS_DIR/env.sh" <<EOF
# Written by scripts/setup.sh --test; sourced by scripts/test.sh.
export TRIPLINE_TANSU="$TANSU"
export PATH="$VENV/bin:\$PATH"
EOF
log "tools ready: $TOOLS_DIR/env.sh"
