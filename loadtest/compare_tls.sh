#!/usr/bin/env bash
# compare_tls.sh: edge vs nginx on hot hits over HTTPS (HTTP/2 and HTTP/1.1 over TLS) and plain
# HTTP/1.1, with h2load, in the same run, with the same certificate; all traffic on 127.0.0.1.
# See loadtest/README.md ("HTTPS and HTTP/2: compare_tls.sh").
#
#   bash loadtest/compare_tls.sh              # 3 rounds x 10 s per cell; appends to loadtest/results.md
#   RUNS=1 DURATION=3 bash loadtest/compare_tls.sh   # smoke run
#
# Each round starts both servers fresh (edge and nginx, both pinned to PROXY_CPUS), then for every
# cell (protocol x object) runs h2load (pinned to LOAD_CPUS) against the edge and then against
# nginx, back to back, and measures each server's CPU (utime+stime of its process tree, from
# /proc) over the h2load run. The figure compared is requests per CPU-second of the server; the
# ratio edge/nginx is taken per round, and the table reports every round and the median.
# Token cells (edge only): the same hot object under a prefix that needs a signed token, fetched
# with a query token (`?token=`, verified on every request), against the same object without one.
# 1 MiB cells also run against a copy baseline (nginx serving the file itself, sendfile); each round
# ends with the memory per open connection of both servers (MEM_CONNS idle TLS connections).
#
# Knobs (env): RUNS=3, DURATION=10 (seconds per cell), CELLS (default: all; names below),
# H2_CONNS=8, H2_STREAMS=10, H1_CONNS=32, SEG_STREAMS=1, EDGE_THREADS=2, EDGE_FAST_HITS=true,
# NGINX_WORKERS=2, PIN=1, LOAD_CPUS=0, PROXY_CPUS=1, ORIGIN_CPUS=0, PORT_BASE=18180,
# EDGE_BIN (default: a private copy of target/release/edge), RESULTS (default
# loadtest/results.md: the section is appended), PERF=1 (profile the edge during one more
# h2 1 KiB run: loadtest/perf-edge-h2-hot_playlist.txt), MEM_CONNS=500 (0: skip), KEEP_TMP=1,
# SYSCALLS=1 (count each server's system calls per request with perf's tracepoints; logged,
# and appended to the report).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
COMMAND="$(for v in SYSCALLS MEM_CONNS RUNS DURATION CELLS H2_CONNS H2_STREAMS H1_CONNS SEG_STREAMS EDGE_THREADS EDGE_FAST_HITS NGINX_WORKERS PIN LOAD_CPUS PROXY_CPUS ORIGIN_CPUS PORT_BASE EDGE_BIN RESULTS PERF; do [ -n "${!v:-}" ] && printf '%s=%q ' "$v" "${!v}"; done; true)bash loadtest/compare_tls.sh"
T0=$(date +%s)

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
H2_CONNS=${H2_CONNS:-8}
H2_STREAMS=${H2_STREAMS:-10}
H1_CONNS=${H1_CONNS:-32}
SEG_STREAMS=${SEG_STREAMS:-1}
NGINX_WORKERS=${NGINX_WORKERS:-2}
RESULTS=${RESULTS:-$HERE/results.md}
PIN=${PIN:-1}
PORT_BASE=${PORT_BASE:-18180}
ORIGIN_PORT=$PORT_BASE
EDGE_HTTP=$((PORT_BASE + 1))
EDGE_ADMIN=$((PORT_BASE + 2))
EDGE_HTTPS=$((PORT_BASE + 3))
NGINX_HTTP=$((PORT_BASE + 4))
NGINX_HTTPS=$((PORT_BASE + 5))
# cell = protocol:object[:token]; protocol h2 (HTTP/2 over TLS), h1tls (HTTP/1.1 over TLS),
# h1 (plain HTTP/1.1); object pl (1 KiB playlist) or seg (1 MiB segment); token cells: edge only.
CELLS=${CELLS:-"h2:pl h1tls:pl h1:pl h2:seg h1tls:seg h1:seg h2:pl:token h1tls:pl:token h1:pl:token h2:seg:token"}

LOG_TAG=compare_tls
TRACKED_PIDS="EDGE_PID NGINX_PID"
# shellcheck source=loadtest/lib.sh
. "$HERE/lib.sh"

# ---------------------------------------------------------------- install what is missing
command -v nginx >/dev/null || PATH=$PATH:/usr/sbin
command -v h2load >/dev/null || { log "installing h2load (nghttp2-client)"; apt_install nghttp2-client; }
command -v nginx >/dev/null || { log "installing nginx"; apt_install nginx; }
command -v curl >/dev/null || apt_install curl
command -v taskset >/dev/null || apt_install util-linux
if { [ "${PERF:-0}" = 1 ] || [ "${SYSCALLS:-0}" = 1 ]; } && ! command -v perf >/dev/null; then apt_install linux-perf; fi

TMP=$(mktemp -d /tmp/edge-tls.XXXXXX)
EDGE_PID=""
NGINX_PID=""
place_cpus
for port in $ORIGIN_PORT $EDGE_HTTP $EDGE_ADMIN $EDGE_HTTPS $NGINX_HTTP $NGINX_HTTPS; do
  port_free "$port" || die "127.0.0.1:$port is in use; set PORT_BASE to a free range"
done

# ---------------------------------------------------------------- edge binary, certificate, token
EDGE_GIVEN="${EDGE_BIN:-}"
if [ -z "$EDGE_GIVEN" ]; then
  if [ ! -x "$ROOT/target/release/edge" ]; then
    log "building the edge (cargo build --release)"
    (cd "$ROOT" && cargo build --release)
  fi
  cp "$ROOT/target/release/edge" "$TMP/edge-bin"
  EDGE_BIN=$TMP/edge-bin
  EDGE_DESC="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] && echo ' (+ uncommitted changes in src/)'), binary built $(date -r "$ROOT/target/release/edge" '+%F %T')"
else
  EDGE_DESC="EDGE_BIN=$EDGE_GIVEN, binary built $(date -r "$EDGE_GIVEN" '+%F %T' 2>/dev/null || echo '?')"
fi
# One certificate for both servers: the edge's development CA and leaf (ECDSA P-256).
"$EDGE_BIN" certs --out "$TMP/certs" --names localhost,127.0.0.1 >/dev/null 2>&1 || die "edge certs failed"
CERT=$TMP/certs/edge.pem
KEY=$TMP/certs/edge-key.pem
openssl rand -hex 32 >"$TMP/token.hex"

# ---------------------------------------------------------------- origin
taskset -c "$ORIGIN_CPUS" python3 "$HERE/origin.py" --listen "127.0.0.1:$ORIGIN_PORT" >"$TMP/origin.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$ORIGIN_PORT/stats" 20 || die "origin did not start: $(cat "$TMP/origin.log")"

start_edge() {
  local d=$TMP/edge; rm -rf "$d"; mkdir -p "$d/cache"
  cat >"$d/edge.toml" <<EOF
[server]
http = "127.0.0.1:$EDGE_HTTP"
https = "127.0.0.1:$EDGE_HTTPS"
admin = "127.0.0.1:$EDGE_ADMIN"
threads = ${EDGE_THREADS:-2}
fast_hits = ${EDGE_FAST_HITS:-true}
max_connections_per_ip = 0
grace_period = "1s"
shutdown_timeout = "2s"

[cache]
memory = "128 MiB"
dir = "$d/cache"
disk = "1024 MiB"
max_object = "64 MiB"
default_ttl = "1h"

[tokens]
required = true
param = "token"
current = "bench"
keys = [{ id = "bench", secret_file = "$TMP/token.hex" }]
public = ["/hot/"]

[tls]
certs = [{ cert = "$CERT", key = "$KEY" }]

[[origins]]
name = "bench"
nodes = [{ addr = "127.0.0.1:$ORIGIN_PORT" }]
EOF
  "$EDGE_BIN" check --config "$d/edge.toml" >&2 || die "edge check failed"
  taskset -c "$PROXY_CPUS" "$EDGE_BIN" serve --config "$d/edge.toml" >"$d/log" 2>&1 &
  EDGE_PID=$!
  wait_http "http://127.0.0.1:$EDGE_ADMIN/readyz" 60 || die "edge did not start: $(tail -5 "$d/log")"
}

start_nginx() {
  local d=$TMP/nginx; rm -rf "$d"; mkdir -p "$d/cache" "$d/tmp" "$d/logs" "$d/static"
  head -c 1048576 /dev/urandom >"$d/static/segment.ts"
  cat >"$d/nginx.conf" <<EOF
# nginx as an equivalent caching proxy with TLS (generated by loadtest/compare_tls.sh)
user $(id -un) $(id -gn);
worker_processes $NGINX_WORKERS;
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
  ssl_certificate $CERT;
  ssl_certificate_key $KEY;
  ssl_session_cache shared:SSL:10m;
  client_body_temp_path $d/tmp/client;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
  proxy_cache_path $d/cache levels=1:2 keys_zone=bench:32m max_size=1024m inactive=1h use_temp_path=off;
  server {
    listen 127.0.0.1:$NGINX_HTTP backlog=4096;
    listen 127.0.0.1:$NGINX_HTTPS ssl http2 backlog=4096;
    # The copy baseline: the same 1 MiB file served from disk by nginx itself (sendfile on
    # plain HTTP; read + encrypt over TLS), no proxy, no cache.
    location /static/ {
      root $d;
    }
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_cache bench;
      proxy_cache_key \$host\$uri;
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
      add_header X-Cache \$upstream_cache_status always;
    }
  }
}
EOF
  nginx -t -q -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" || die "nginx config test failed"
  taskset -c "$PROXY_CPUS" nginx -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" >"$d/logs/stdout" 2>&1 &
  NGINX_PID=$!
  wait_http "http://127.0.0.1:$NGINX_HTTP/" 30 || die "nginx did not start: $(tail -5 "$d/logs/error.log")"
}

stop_servers() {
  for p in $EDGE_PID $NGINX_PID; do kill -TERM "$p" 2>/dev/null || true; done
  for p in $EDGE_PID $NGINX_PID; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  EDGE_PID=""; NGINX_PID=""
}

# url SERVER PROTO OBJECT TOKEN
url() {
  local scheme=https port path q
  case $2 in h1) scheme=http ;; esac
  case $1:$scheme in
    edge:https) port=$EDGE_HTTPS ;; edge:http) port=$EDGE_HTTP ;;
    nginx:https|base:https) port=$NGINX_HTTPS ;; nginx:http|base:http) port=$NGINX_HTTP ;;
  esac
  if [ "$1" = base ]; then echo "$scheme://127.0.0.1:$port/static/segment.ts"; return; fi
  case $3 in pl) path=playlist.m3u8; q="size=1024" ;; seg) path=segment.ts; q="size=1048576" ;; esac
  if [ "$4" = token ]; then
    # A query token for /sec/ (the edge removes it from the cache key and the origin request).
    "$EDGE_BIN" sign --config "$TMP/edge/edge.toml" --acl /sec/ --ttl 2h --style query \
      "$scheme://127.0.0.1:$port/sec/$path?$q"
  else
    echo "$scheme://127.0.0.1:$port/hot/$path?$q"
  fi
}

# load PROTO OBJECT URL OUT: one h2load run of DURATION seconds
load() {
  local args=(-D "$DURATION" -t 1)
  case $1:$2 in
    h2:pl) args+=(-c "$H2_CONNS" -m "$H2_STREAMS") ;;
    h2:seg) args+=(-c "$H2_CONNS" -m "$SEG_STREAMS") ;;
    h1tls:*|h1:*) args+=(--h1 -c "$H1_CONNS") ;;
  esac
  taskset -c "$LOAD_CPUS" h2load "${args[@]}" "$3" >"$4" 2>&1 || true
}

ROWS=$TMP/rows.tsv
: >"$ROWS"
run_cell() { # run_cell ROUND SERVER PID CELL
  local round=$1 server=$2 pid=$3 cell=$4 proto obj tok u out c0 c1 b0 b1 w0 w1
  IFS=: read -r proto obj tok <<<"$cell"
  u=$(url "$server" "$proto" "$obj" "${tok:-}")
  # Warm: two GETs, the second must be a hit (the copy baseline has no cache).
  curl -sk -o /dev/null "$u"
  local xc; xc=$(curl -sk -o /dev/null -D - "$u" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')
  case $server:$xc in base:*|*:HIT*) ;; *) log "warning: $server $cell: warm-up answered X-Cache: ${xc:-none}" ;; esac
  out=$TMP/$round-$server-${cell//:/-}.txt
  local stat_pid=""
  if [ "${SYSCALLS:-0}" = 1 ]; then
    # System calls of the server's whole process tree during the cell (perf's tracepoints).
    perf stat -x, -e "$SYSCALL_EVENTS" -p "$(proc_tree "$pid" | paste -sd,)" -o "$out.syscalls" \
      -- sleep "$DURATION" >/dev/null 2>&1 &
    stat_pid=$!
  fi
  c0=$(tree_ticks "$pid"); b0=$(busy_ticks); w0=$(date +%s%N)
  load "$proto" "$obj" "$u" "$out"
  c1=$(tree_ticks "$pid"); b1=$(busy_ticks); w1=$(date +%s%N)
  local done_ failed non2xx rps rss
  done_=$(awk '/^requests:/{for(i=1;i<=NF;i++) if ($(i+1) ~ /^succeeded/) print $i}' "$out")
  failed=$(awk '/^requests:/{for(i=1;i<=NF;i++) if ($(i+1) ~ /^(failed|errored|timeout)/) s += $i} END {print s + 0}' "$out")
  non2xx=$(awk '/^status codes:/{s = 0; for(i=1;i<=NF;i++) if ($(i+1) ~ /^[345]xx/) s += $i; print s}' "$out")
  rps=$(awk '/^finished in/{gsub(",", "", $4); print $4}' "$out")
  rss=$(tree_rss_kib "$pid")
  [ -n "$done_" ] || { log "h2load failed for $server $cell: $(tail -3 "$out")"; done_=0; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$server" "$cell" "$done_" "${rps:-0}" \
    "$failed" "${non2xx:-0}" $((c1 - c0)) $((b1 - b0)) $(((w1 - w0) / 1000000)) "$rss" >>"$ROWS"
  log "round $round $server $cell: $done_ ok, ${rps:-0} req/s, $(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.2f", t/hz}') CPU s, failed $failed, non-2xx ${non2xx:-0}"
  if [ -n "$stat_pid" ]; then
    wait "$stat_pid" 2>/dev/null || true
    # Per request (h2load's count over perf's window of the same length: roughly).
    awk -F, -v n="${done_:-0}" -v who="$server $cell" '
      $3 ~ /^syscalls:sys_enter_/ { sub("syscalls:sys_enter_", "", $3); if ($1 + 0 > 0 && n > 0) line = line sprintf(" %s %.2f", $3, $1 / n) }
      END { print "syscalls per request, " who ":" line }' "$out.syscalls" | tee -a "$TMP/syscalls.txt" >&2
  fi
}
SYSCALL_EVENTS=syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_readv,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex

# Memory per open connection: MEM_CONNS idle keep-alive HTTP/1.1-over-TLS connections, each
# having fetched the hot playlist once, held open while the server's RSS is read; the
# difference to its RSS before, per connection.
MEM_CONNS=${MEM_CONNS:-500}
MEM=$TMP/mem.tsv
: >"$MEM"
conn_memory() { # conn_memory ROUND SERVER PID
  local round=$1 server=$2 pid=$3 u port path before after ready
  ready=$TMP/ready-$server
  u=$(url "$server" h1tls pl "")
  port=${u#https://127.0.0.1:}; path=/${port#*/}; port=${port%%/*}
  rm -f "$ready"
  before=$(tree_rss_kib "$pid")
  taskset -c "$LOAD_CPUS" python3 - "$MEM_CONNS" "$port" "$path" "$ready" <<'PY' &
import socket, ssl, sys, time
n, port, path, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["http/1.1"])
conns = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    s.recv(65536)
    conns.append(s)
open(ready, "w").close()
time.sleep(3)
PY
  local client=$!
  PIDS+=("$client")
  for _ in $(seq 1 300); do [ -e "$ready" ] && break; sleep 0.1; done
  sleep 1
  after=$(tree_rss_kib "$pid")
  wait "$client" 2>/dev/null || true
  [ -e "$ready" ] || { log "warning: $server: the $MEM_CONNS connections did not open"; return 0; }
  printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$server" "$MEM_CONNS" "$before" "$after" >>"$MEM"
  log "round $round $server: RSS $((before / 1024)) MiB, with $MEM_CONNS open connections $((after / 1024)) MiB"
}

profile_edge() {
  local u out=$TMP/perf-load.txt
  u=$(url edge h2 pl "")
  log "profiling the edge (perf record -g) during one more h2 1 KiB run"
  perf record -q -F 999 -g -p "$EDGE_PID" -o "$TMP/perf.data" -- sleep "$DURATION" >/dev/null 2>&1 &
  local perf_pid=$!
  PIDS+=($perf_pid)
  load h2 pl "$u" "$out"
  wait "$perf_pid" 2>/dev/null || true
  {
    echo "# perf record -F 999 -g -p <edge> during h2load h2 1 KiB hot hits (-c $H2_CONNS -m $H2_STREAMS, ${DURATION}s), $(date -u '+%F %T UTC'), edge $EDGE_DESC"
    echo "# self time by symbol ([k] = kernel), then by shared object, then inclusive (with children)"
    perf report -i "$TMP/perf.data" --stdio --no-children --sort symbol --percent-limit 0.5 -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -70
    echo
    perf report -i "$TMP/perf.data" --stdio --no-children --sort dso --percent-limit 0.5 -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -20
    echo
    perf report -i "$TMP/perf.data" --stdio --children --sort symbol --percent-limit 3 -g none 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -70
  } >"$HERE/perf-edge-h2-hot_playlist.txt" || true
  log "wrote loadtest/perf-edge-h2-hot_playlist.txt"
}

log "placement: h2load on CPU $LOAD_CPUS, edge and nginx on CPU $PROXY_CPUS, origin on CPU $ORIGIN_CPUS"
for round in $(seq 1 "$RUNS"); do
  start_edge
  start_nginx
  for cell in $CELLS; do
    run_cell "$round" edge "$EDGE_PID" "$cell"
    [[ $cell == *:token ]] || run_cell "$round" nginx "$NGINX_PID" "$cell"
    if [[ $cell == *:seg ]]; then run_cell "$round" base "$NGINX_PID" "$cell"; fi
  done
  if [ "$MEM_CONNS" -gt 0 ]; then
    conn_memory "$round" edge "$EDGE_PID"
    conn_memory "$round" nginx "$NGINX_PID"
  fi
  if [ "$round" = "$RUNS" ] && [ "${PERF:-0}" = 1 ]; then profile_edge; fi
  stop_servers
done

# ---------------------------------------------------------------- report
ELAPSED=$(($(date +%s) - T0))
{
  echo
  echo "## HTTPS and HTTP/2 hot hits (compare_tls.sh)"
  echo
  echo "- date: $(date -u '+%F %T UTC')"
  echo "- command: \`$COMMAND\` (from the repository root; took ${ELAPSED} s)"
  echo "- machine: $NPROC CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), kernel $(uname -r); h2load on CPU $LOAD_CPUS, both servers on CPU $PROXY_CPUS, origin on CPU $ORIGIN_CPUS (PIN=$PIN)"
  echo "- edge: $EDGE_DESC; threads=${EDGE_THREADS:-2}, fast_hits=${EDGE_FAST_HITS:-true}; nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $NGINX_WORKERS workers, proxy_cache, sendfile; same certificate (edge certs: ECDSA P-256 leaf + dev CA)"
  echo "- load: $(h2load --version | head -1); ${DURATION} s per cell; h2: -c $H2_CONNS -m $H2_STREAMS (1 MiB: -m $SEG_STREAMS); h1tls and h1: --h1 -c $H1_CONNS; one h2load thread"
  echo
  python3 - "$ROWS" "$CLK_TCK" "$MEM" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
hz = float(sys.argv[2])
names = {"h2": "HTTP/2 over TLS", "h1tls": "HTTP/1.1 over TLS", "h1": "HTTP/1.1 (plain)"}
objs = {"pl": "1 KiB playlist", "seg": "1 MiB segment"}
def label(cell):
    p = cell.split(":")
    return f"{names[p[0]]}, {objs[p[1]]}" + (", query token" if len(p) > 2 else "")
r = {}
print("| round | cell | server | requests ok | req/s | failed / non-2xx | server CPU s | req per CPU-s | machine busy CPU s | RSS MiB |")
print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
for rnd, server, cell, ok, rps, failed, non2xx, cpu, busy, ms, rss in rows:
    cpu_s = int(cpu) / hz
    per = int(ok) / cpu_s if cpu_s > 0 else 0.0
    r[(rnd, server, cell)] = per
    print(f"| {rnd} | {label(cell)} | {server} | {ok} | {float(rps):.0f} | {failed} / {non2xx} | {cpu_s:.2f} | {per:.0f} | {int(busy) / hz:.2f} | {int(rss) / 1024:.0f} |")
print()
rounds = sorted({k[0] for k in r}, key=int)
cells = []
for k in r:
    if k[2] not in cells:
        cells.append(k[2])
print("Edge / nginx, requests per server CPU-second (every round, then the median of the rounds' ratios):")
print()
print("| cell | edge req/CPU-s (median) | nginx req/CPU-s (median) | edge/nginx by round | median edge/nginx |")
print("|---|---:|---:|---|---:|")
for c in cells:
    if c.endswith(":token"):
        continue
    e = [r[(x, "edge", c)] for x in rounds if (x, "edge", c) in r]
    n = [r[(x, "nginx", c)] for x in rounds if (x, "nginx", c) in r]
    ratios = [r[(x, "edge", c)] / r[(x, "nginx", c)] for x in rounds
              if (x, "edge", c) in r and (x, "nginx", c) in r and r[(x, "nginx", c)] > 0]
    if e and n and ratios:
        print(f"| {label(c)} | {statistics.median(e):.0f} | {statistics.median(n):.0f} | "
              f"{', '.join(f'{x:.2f}' for x in ratios)} | **{statistics.median(ratios):.2f}x** |")
print()
print("1 MiB hits: server CPU per byte sent, against the copy baseline (nginx serving the same-size file")
print("from disk itself, no proxy or cache: sendfile on plain HTTP, read + encrypt over TLS):")
print()
print("| cell | edge CPU-ms per MiB (median) | nginx proxy_cache | copy baseline | edge/baseline by round | median edge/baseline |")
print("|---|---:|---:|---:|---|---:|")
cpu_ms = {k: 1000.0 / v for k, v in r.items() if v > 0}  # 1 MiB per request: CPU-ms per MiB
for c in cells:
    if not c.endswith(":seg"):
        continue
    e = [cpu_ms[(x, "edge", c)] for x in rounds if (x, "edge", c) in cpu_ms]
    n = [cpu_ms[(x, "nginx", c)] for x in rounds if (x, "nginx", c) in cpu_ms]
    b = [cpu_ms[(x, "base", c)] for x in rounds if (x, "base", c) in cpu_ms]
    ratios = [cpu_ms[(x, "edge", c)] / cpu_ms[(x, "base", c)] for x in rounds
              if (x, "edge", c) in cpu_ms and (x, "base", c) in cpu_ms]
    if e and b and ratios:
        med = lambda v: f"{statistics.median(v):.2f}" if v else "-"
        print(f"| {label(c)} | {med(e)} | {med(n)} | {med(b)} | "
              f"{', '.join(f'{x:.2f}' for x in ratios)} | **{statistics.median(ratios):.2f}x** |")
print()
mem = [l.rstrip("\n").split("\t") for l in open(sys.argv[3]) if l.strip()]
if mem:
    print("Memory per open connection (idle HTTP/1.1-over-TLS keep-alive connections, each after one hot")
    print("playlist request; the server's RSS with them open minus before):")
    print()
    print("| round | server | connections | RSS before MiB | RSS with them MiB | KiB per connection |")
    print("|---:|---|---:|---:|---:|---:|")
    for rnd, server, n, before, after in mem:
        print(f"| {rnd} | {server} | {n} | {int(before) / 1024:.0f} | {int(after) / 1024:.0f} | "
              f"{(int(after) - int(before)) / int(n):.1f} |")
    print()
print("Query token verified on every request vs the same hit without a token (edge only):")
print()
print("| cell | with token req/CPU-s (median) | without (median) | with/without by round | median |")
print("|---|---:|---:|---|---:|")
for c in cells:
    if not c.endswith(":token"):
        continue
    base = c[: -len(":token")]
    ratios = [r[(x, "edge", c)] / r[(x, "edge", base)] for x in rounds
              if (x, "edge", c) in r and (x, "edge", base) in r and r[(x, "edge", base)] > 0]
    w = [r[(x, "edge", c)] for x in rounds if (x, "edge", c) in r]
    wo = [r[(x, "edge", base)] for x in rounds if (x, "edge", base) in r]
    if ratios:
        print(f"| {label(c)} | {statistics.median(w):.0f} | {statistics.median(wo):.0f} | "
              f"{', '.join(f'{x:.2f}' for x in ratios)} | **{statistics.median(ratios):.2f}** |")
PY
  if [ -s "$TMP/syscalls.txt" ]; then
    echo
    echo "System calls per request (SYSCALLS=1; perf stat on each server's process tree):"
    echo
    sed 's/^/    /' "$TMP/syscalls.txt"
  fi
  echo
  echo "\"machine busy CPU s\" is the whole machine's busy time over the run (h2load, origin and anything else included): it cannot exceed 2 x the wall time on 2 cores; near that bound, other work competed with the servers and the ratios are rougher."
} >"$TMP/section.md"
cat "$TMP/section.md"
cat "$TMP/section.md" >>"$RESULTS"
cp "$ROWS" "$HERE/results-tls.tsv"
log "appended to ${RESULTS#"$ROOT"/} (rows in loadtest/results-tls.tsv) in ${ELAPSED} s"
