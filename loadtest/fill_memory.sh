#!/usr/bin/env bash
# fill_memory.sh: the edge's RSS under N concurrent cold misses of SIZE-byte objects (issue 13,
# item 5: fills in flight hold their bodies in memory until stored).
#
#   bash loadtest/fill_memory.sh                       # target/release/edge, 300 x 4 MiB
#   EDGE_BIN=/path/to/edge CACHE_EXTRA='fill_memory = "64 MiB"' bash loadtest/fill_memory.sh
#
# Knobs (env): EDGE_BIN, N (300), SIZE (4194304), PACE_MS (2000: each origin body takes this
# long, so the misses overlap), MEMORY ("64 MiB", the memory tier), CACHE_EXTRA (lines added to
# [cache]), SERVER_EXTRA (lines added to [server]). Prints the edge's peak RSS (VmHWM), its RSS 5 s after the last response, how many
# responses were complete, and the fill metrics. Everything runs on 127.0.0.1 and is stopped on
# exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
EDGE_BIN=${EDGE_BIN:-$here/../target/release/edge}
N=${N:-300}
SIZE=${SIZE:-4194304}
PACE_MS=${PACE_MS:-2000}
MEMORY=${MEMORY:-64 MiB}
CACHE_EXTRA=${CACHE_EXTRA:-}
# All N clients come from 127.0.0.1: no per-address cap (an edge older than the caps: SERVER_EXTRA=).
SERVER_EXTRA=${SERVER_EXTRA-max_connections_per_ip = 0}
TMP=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; return 1; }

origin_port=$(free_port); http_port=$(free_port); admin_port=$(free_port)
python3 "$here/origin.py" --listen "127.0.0.1:$origin_port" >"$TMP/origin.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$origin_port/stats" || { echo "origin did not start" >&2; exit 1; }
cat >"$TMP/edge.toml" <<EOF
[server]
http = "127.0.0.1:$http_port"
admin = "127.0.0.1:$admin_port"
threads = 2
$SERVER_EXTRA
[cache]
dir = "$TMP/cache"
memory = "$MEMORY"
disk = "256 MiB"
max_object = "8 MiB"
$CACHE_EXTRA
[[origins]]
name = "o"
nodes = [{ addr = "127.0.0.1:$origin_port" }]
read_timeout = "30s"
EOF
"$EDGE_BIN" serve --config "$TMP/edge.toml" >"$TMP/edge.log" 2>&1 &
edge=$!
pids+=($edge)
wait_http "http://127.0.0.1:$admin_port/readyz" || { echo "edge did not start: $(tail -5 "$TMP/edge.log")" >&2; exit 1; }
rss() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$edge/status"; }
echo "edge RSS at start: $(rss VmRSS) kB"

run=$RANDOM
# One curl, N transfers at once; each body is counted and dropped (`output` per URL).
for i in $(seq 1 "$N"); do
  printf 'url = "http://127.0.0.1:%s/m/%s/obj%s.ts?size=%s&pace=%s"\noutput = "/dev/null"\n' "$http_port" "$run" "$i" "$SIZE" "$PACE_MS"
done >"$TMP/urls"
start=$(date +%s.%N)
curl -s --parallel --parallel-immediate --parallel-max "$N" --max-time 120 -K "$TMP/urls" \
  -w '%{http_code} %{size_download}\n' >"$TMP/results" 2>/dev/null || true
end=$(date +%s.%N)
complete=$(awk -v s="$SIZE" '$1 == 200 && $2 == s' "$TMP/results" | wc -l)
peak=$(rss VmHWM)
sleep 5
after=$(rss VmRSS)
metrics=$(curl -s "http://127.0.0.1:$admin_port/metrics")
echo "$N misses of $SIZE bytes, origin pace ${PACE_MS} ms, memory = \"$MEMORY\", [cache] extra: ${CACHE_EXTRA:-none}"
echo "complete responses: $complete / $N in $(echo "$end - $start" | bc) s (status, bytes of the others: $(awk -v s="$SIZE" '!($1 == 200 && $2 == s)' "$TMP/results" | sort | uniq -c | tr -s ' \n' ' '))"
echo "edge RSS peak (VmHWM): $((peak / 1024)) MiB; 5 s after the last response: $((after / 1024)) MiB"
echo "$metrics" | grep -E '^edge_cache_(fill_bytes|fills_over_budget_total|admitted_bytes_total|fill_failures_total)|^edge_upstream_requests_total' || true
