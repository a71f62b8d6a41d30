#!/usr/bin/env bash
# Next-segment prefetch (README "Live and low latency"): one first viewer of a VOD rendition
# (the loadtest origin's /vod/480p/, 600 KB segments, each answered after ORIGIN_TTFB_MS),
# playing SEGMENTS segments one after another with THINK seconds between them, through an
# edge without and then with `[[prefetch]] segments = K`. Prints, per run, the time to first
# byte of each segment (curl's time_starttransfer), their mean and max after the first, and
# what the origin sent (requests, bytes). Everything on 127.0.0.1; stopped on exit.
#
#   bash loadtest/prefetch.sh          # EDGE_BIN=target/debug/edge (built if missing)
#   SEGMENTS=12 THINK=0.5 ORIGIN_TTFB_MS=300 K=2 bash loadtest/prefetch.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SEGMENTS=${SEGMENTS:-12}
THINK=${THINK:-0.5}
ORIGIN_TTFB_MS=${ORIGIN_TTFB_MS:-300}
K=${K:-2}
PORT_BASE=${PORT_BASE:-18390}
ORIGIN_PORT=$PORT_BASE
EDGE_PORT=$((PORT_BASE + 1))
EDGE_ADMIN=$((PORT_BASE + 2))
EDGE_BIN=${EDGE_BIN:-$ROOT/target/debug/edge}
[ -x "$EDGE_BIN" ] || (cd "$ROOT" && cargo build --bin edge)
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

wait_http() { # wait_http URL SECONDS
  for _ in $(seq 1 $(($2 * 10))); do curl -s -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done
  return 1
}

VOD_SEG_TTFB_MS=$ORIGIN_TTFB_MS python3 "$HERE/origin.py" --listen "127.0.0.1:$ORIGIN_PORT" >"$TMP/origin.log" 2>&1 &
PIDS+=($!)
ORIGIN=http://127.0.0.1:$ORIGIN_PORT
wait_http "$ORIGIN/stats" 10 || { echo "origin did not start" >&2; exit 1; }

run() { # run off|on: one first viewer through a fresh edge; prints a table row
  local mode=$1 d=$TMP/edge-$1
  mkdir -p "$d/cache"
  cat >"$d/edge.toml" <<TOML
[server]
http = "127.0.0.1:$EDGE_PORT"
admin = "127.0.0.1:$EDGE_ADMIN"
grace_period = "1s"
shutdown_timeout = "2s"

[cache]
memory = "256 MiB"
dir = "$d/cache"
disk = "64 MiB"
max_object = "8 MiB"

[[origins]]
name = "bench"
nodes = [{ addr = "127.0.0.1:$ORIGIN_PORT" }]
TOML
  if [ "$mode" = on ]; then
    printf '\n[[prefetch]]\nprefix = "/vod/"\nsegments = %s\n' "$K" >>"$d/edge.toml"
  fi
  "$EDGE_BIN" serve --config "$d/edge.toml" >"$d/log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  wait_http "http://127.0.0.1:$EDGE_ADMIN/readyz" 60 || { echo "edge did not start: $(tail -5 "$d/log")" >&2; exit 1; }
  curl -s "$ORIGIN/reset" >/dev/null
  local base=http://127.0.0.1:$EDGE_PORT/vod/480p
  curl -s -o /dev/null "$base/index.m3u8"
  local ttfbs=()
  for k in $(seq 0 $((SEGMENTS - 1))); do
    ttfbs+=("$(curl -s -o /dev/null -w '%{time_starttransfer}' "$base/seg_$(printf %04d "$k").ts")")
    sleep "$THINK"
  done
  sleep 1
  local stats
  stats=$(curl -s "$ORIGIN/stats?prefix=/vod/480p/")
  local metrics
  metrics=$(curl -s "http://127.0.0.1:$EDGE_ADMIN/metrics")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 - "$mode" "$stats" "$metrics" "${ttfbs[@]}" <<'PY'
import json, sys
mode, stats, metrics, *t = sys.argv[1:]
ms = [float(x) * 1000 for x in t]
s = json.loads(stats)
m = {}
for line in metrics.splitlines():
    if line.startswith("edge_prefetch_"):
        k, v = line.rsplit(" ", 1)
        m[k] = float(v)
rest = ms[1:]
stored = int(m.get('edge_prefetch_total{result="stored"}', 0))
used = int(m.get('edge_prefetch_total{result="used"}', 0))
print(f"| {mode} | {ms[0]:.1f} | {sum(rest)/len(rest):.1f} | {max(rest):.1f} | "
      f"{' '.join(f'{x:.0f}' for x in ms)} | {s['requests']} | {s['bytes']} | "
      f"{stored}/{used} |")
PY
}

echo "first viewer: $SEGMENTS segments of /vod/480p/ (600 KB), ${THINK}s between them, origin TTFB ${ORIGIN_TTFB_MS} ms, prefetch K=$K"
echo
echo "| prefetch | TTFB seg 0 (ms) | mean TTFB seg 1.. (ms) | max TTFB seg 1.. (ms) | per segment (ms) | origin requests | origin bytes | prefetch stored/used |"
echo "|---|---|---|---|---|---|---|---|"
run off
run on
