#!/usr/bin/env bash
# Real-player check, one command: hls.js in headless Chromium plays the edge's demo title
# (TS and fMP4, with CMCD) and dash.js its DASH version, through a freshly started edge, then a
# live stream (live.mjs) and a Low-Latency HLS one on two edges (lowlatency.mjs).
#
#   bash tests/player/run.sh            # from any directory
#
# Installs what is missing (Debian's chromium via apt, npm ci here), builds the edge release
# binary (cargo decides if anything is stale), starts the edge on free loopback ports with a
# temp config, runs play.mjs against both master playlists, and stops everything on exit.
# Env: EDGE_BIN=path   use this edge binary, skip the cargo build
#      PLAYER_TIMEOUT  whole-run bound in seconds (default 420; the cargo build has its own,
#                      BUILD_TIMEOUT, default 1800, as a cold release build can take minutes)
#      PLAY_SCREENSHOT_DIR=dir  save a PNG of the page per URL
#      LIVE_SECONDS    length of the live hls.js check (default 20)
#      LL_SECONDS      length of the low-latency check on two edges (default 60, 0 skips it)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export CHROMIUM

say() { echo "player: $*" >&2; }

# --- install what is missing -------------------------------------------------------------
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x "$CHROMIUM" ]; then
  say "installing chromium (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v node >/dev/null || { say "node (>= 20) is required"; exit 1; }
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
  || { say "node >= 20 is required, found $(node -v)"; exit 1; }
if [ ! -f "$HERE/node_modules/.package-lock.json" ] \
   || [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]; then
  say "npm ci"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- edge binary -------------------------------------------------------------------------
if [ -z "${EDGE_BIN:-}" ]; then
  say "cargo build --release"
  (cd "$ROOT" && timeout "${BUILD_TIMEOUT:-1800}" cargo build --release --quiet)
  TARGET_DIR="${CARGO_TARGET_DIR:-target}"
  case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
  EDGE_BIN="$TARGET_DIR/release/edge"
fi
[ -x "$EDGE_BIN" ] || { say "no edge binary at $EDGE_BIN"; exit 1; }

# --- from here on, bounded in time ---------------------------------------------------------
# (re-enter under timeout; timeout signals its whole process group: node, the edge, us)
if [ -z "${_PLAYER_BOUNDED:-}" ]; then
  export _PLAYER_BOUNDED=1 EDGE_BIN
  exec timeout -k 10 "${PLAYER_TIMEOUT:-420}" bash "${BASH_SOURCE[0]}" "$@"
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/edge-player.XXXXXX")"
EDGE_PID=""
cleanup() {
  local rc=$?
  if [ -n "$EDGE_PID" ] && kill -0 "$EDGE_PID" 2>/dev/null; then
    kill -TERM "$EDGE_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$EDGE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$EDGE_PID" 2>/dev/null || true
    wait "$EDGE_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$TMP/edge.log" ]; then
    say "edge log (last 40 lines):"; tail -n 40 "$TMP/edge.log" >&2
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# Four distinct free loopback ports (held open together so they differ).
read -r HTTP_PORT ADMIN_PORT DEMO_PORT HTTPS_PORT < <(node -e '
  const net = require("net"); const s = [0,1,2,3].map(() => net.createServer());
  Promise.all(s.map((x) => new Promise((ok) => x.listen(0, "127.0.0.1", ok)))).then(() => {
    console.log(s.map((x) => x.address().port).join(" ")); s.forEach((x) => x.close()); });')

cat > "$TMP/edge.toml" <<TOML
[server]
http = "127.0.0.1:$HTTP_PORT"
https = "127.0.0.1:$HTTPS_PORT"
admin = "127.0.0.1:$ADMIN_PORT"
grace_period = "1s"     # the edge drains for the whole grace period on SIGTERM; keep exit quick
shutdown_timeout = "2s"
[cache]
dir = "$TMP/cache"
disk = "64 MiB"
max_object = "8 MiB"
[demo]
listen = "127.0.0.1:$DEMO_PORT"
media = "$ROOT/tests/fixtures/media"
[tokens]
required = true
current = "demo"
keys = [{ id = "demo", secret_file = "$ROOT/certs/demo-token.TEST-KEY.hex" }]   # public TEST key
[cmcd]
prefixes = ["/demo/"]
[tls]
certs = [{ cert = "$TMP/certs/edge.pem", key = "$TMP/certs/edge-key.pem" }]
dev_names = ["127.0.0.1"]      # a development certificate, made at start
[log]
access = "$TMP/access.log"
format = "json"
TOML

say "starting edge on 127.0.0.1:$HTTP_PORT (admin $ADMIN_PORT, demo origin $DEMO_PORT)"
"$EDGE_BIN" serve --config "$TMP/edge.toml" >"$TMP/edge.log" 2>&1 &
EDGE_PID=$!
for i in $(seq 150); do
  kill -0 "$EDGE_PID" 2>/dev/null || { say "edge exited during startup"; exit 1; }
  curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/readyz" 2>/dev/null && break
  [ "$i" -eq 150 ] && { say "edge not ready after 15 s"; exit 1; }
  sleep 0.1
done

# The edge prints the demo URL signed in both token styles; play each, TS and fMP4.
PATH_URL="$(sed -n 's/^edge: play \(http[^ ]*\)$/\1/p' "$TMP/edge.log" | head -n 1)"
QUERY_URL="$(sed -n 's/^edge: play (query token) \(http[^ ]*\)$/\1/p' "$TMP/edge.log" | head -n 1)"
[ -n "$PATH_URL" ] && [ -n "$QUERY_URL" ] || { say "the edge printed no signed demo URLs"; exit 1; }
node "$HERE/play.mjs" "$PATH_URL" "$QUERY_URL" "${PATH_URL/\/ts\//\/fmp4\/}" "${QUERY_URL/\/ts\//\/fmp4\/}"
# HTTP/2 over TLS, as browsers fetch from a CDN: the same two signed URLs on the HTTPS
# listener (the development certificate, which Chromium is told to accept here). The edge's
# access log must show the player's requests there as HTTP/2 (many streams per connection,
# answered together: the batched writes of src/limits/guard.rs).
h2_before="$(grep -c '"proto":"HTTP/2"' "$TMP/access.log" || true)"
PLAY_INSECURE_TLS=1 node "$HERE/play.mjs" "${PATH_URL/http:\/\/127.0.0.1:$HTTP_PORT/https://127.0.0.1:$HTTPS_PORT}" \
  "${QUERY_URL/http:\/\/127.0.0.1:$HTTP_PORT/https://127.0.0.1:$HTTPS_PORT}"
sleep 1   # the access log's writer flushes in the background
h2_lines="$(( $(grep -c '"proto":"HTTP/2"' "$TMP/access.log" || true) - h2_before ))"
say "HTTP/2 over TLS: $h2_lines player requests over HTTP/2 in the access log"
[ "$h2_lines" -ge 10 ] || { say "the HTTPS plays made $h2_lines HTTP/2 requests, want at least 10"; exit 1; }
# CMCD (CTA-5004): hls.js puts different player data in the query of every request. Played
# twice, the second play must be all cache hits: CMCD never splits the cache.
content() {  # sum of edge_requests_total{kind="content"} samples, optionally of one cache result
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v c="${1:-}" '
    $1 ~ /^edge_requests_total\{/ && $1 ~ /kind="content"/ && (c == "" || index($1, "cache=\"" c "\"")) { s += $2 }
    END { printf "%d\n", s }'
}
PLAY_CMCD=1 node "$HERE/play.mjs" "$QUERY_URL" >"$TMP/cmcd1.json"
cat "$TMP/cmcd1.json"
all_before="$(content)"; hits_before="$(content HIT)"
PLAY_CMCD=1 node "$HERE/play.mjs" "$QUERY_URL" >"$TMP/cmcd2.json"
cat "$TMP/cmcd2.json"
all_after="$(content)"; hits_after="$(content HIT)"
requests=$((all_after - all_before)); hits=$((hits_after - hits_before))
say "CMCD second play: $hits of $requests requests were cache hits"
[ "$requests" -gt 0 ] && [ "$hits" -eq "$requests" ] || { say "CMCD split the cache: want every request of the second play to be a hit"; exit 1; }
# The edge read the players' CMCD: every request that carried it is counted under /demo/ (a
# request the browser aborted may never reach the edge: at most the player's count), with
# manifests and segments told apart, startup requests, requested bitrates and throughputs.
sample() {  # sum of the samples of metric $1 whose labels contain every "k=v" in $2.. ("" for none)
  local name="$1"; shift
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v n="$name" -v want="$*" '
    { split($1, a, "{") } a[1] == n {
      ok = 1; k = split(want, w, " "); for (i = 1; i <= k; i++) if (!index($1, w[i])) ok = 0
      if (ok) s += $2 }
    END { printf "%d\n", s }'
}
sent="$(node -e 'let s = 0; for (const f of process.argv.slice(1)) s += JSON.parse(require("fs").readFileSync(f, "utf8")).cmcdRequests; console.log(s)' "$TMP/cmcd1.json" "$TMP/cmcd2.json")"
counted="$(sample edge_cmcd_requests_total 'prefix="/demo/"')"
manifests="$(sample edge_cmcd_requests_total 'prefix="/demo/"' 'ot="m"')"
startup="$(sample edge_cmcd_startup_total 'prefix="/demo/"')"
bitrates="$(sample edge_cmcd_bitrate_bytes_per_second_count 'prefix="/demo/"')"
throughputs="$(sample edge_cmcd_throughput_bytes_per_second_count 'prefix="/demo/"')"
cmcd_hits="$(sample edge_cmcd_requests_total 'prefix="/demo/"' 'cache="HIT"')"
say "CMCD metrics: $counted of $sent requests with CMCD counted ($manifests manifests, $cmcd_hits hits), $startup startup, $bitrates bitrates, $throughputs throughputs"
[ "$counted" -gt 0 ] && [ "$counted" -le "$sent" ] && [ "$manifests" -gt 0 ] && [ "$startup" -gt 0 ] \
  && [ "$bitrates" -gt 0 ] && [ "$throughputs" -gt 0 ] && [ "$cmcd_hits" -ge "$hits" ] \
  || { say "the CMCD metrics did not move as the players' requests say they should"; exit 1; }
[ "$(sample edge_cmcd_requests_total 'prefix="other"')" -eq 0 ] || { say "CMCD counted outside /demo/"; exit 1; }

# DASH: dash.js plays the demo title's MPD with a path token; with a 240p tier (--max-height),
# the MPD it gets lists 240p only and it plays 240p, with no request refused.
DASH_URL="${PATH_URL/\/ts\/master.m3u8/\/dash\/manifest.mpd}"
TIER_URL="$("$EDGE_BIN" sign --config "$TMP/edge.toml" --acl /demo/ --ttl 1h --max-height 240 "http://127.0.0.1:$HTTP_PORT/demo/dash/manifest.mpd")"
PLAY_DASH=1 node "$HERE/play.mjs" "$DASH_URL" "$TIER_URL" >"$TMP/dash.json"
cat "$TMP/dash.json"
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const tier = lines[1];
  const levels = tier.levels || [];
  // (The 240p track is marked 16:9, so the element may show it 427 wide.)
  if (!tier.video.endsWith("x240") || levels.length === 0 || levels.some((l) => !l.startsWith("426x240@"))) {
    console.error(`player: the 240p viewer got ${tier.video} from ${levels}`); process.exit(1);
  }' "$TMP/dash.json"
code="$(curl -s -o /dev/null -w '%{http_code}' "${TIER_URL/manifest.mpd/480p\/seg_001.m4s}")"
[ "$code" = "403" ] || { say "a 480p DASH segment under a 240p token answered $code, want 403"; exit 1; }
# Unsigned, the title must be refused: the player check above really used the tokens.
code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/demo/ts/master.m3u8")"
[ "$code" = "403" ] || { say "unsigned request answered $code, want 403"; exit 1; }
# Live: ffmpeg encodes live behind a second edge (tokens required); hls.js plays it through the
# edge and from the origin side by side, no stall allowed; latency behind live of both printed.
say "live: hls.js plays a live stream through the edge for ${LIVE_SECONDS:-20} s (LIVE_SECONDS)"
LIVE_SECONDS="${LIVE_SECONDS:-20}" EDGE_BIN="$EDGE_BIN" node "$HERE/live.mjs"
# Low latency: an LL-HLS origin (decodable fMP4 parts on the wall clock) behind two edges;
# hls.js in lowLatencyMode plays through each edge and from the origin, 17 light LL-HLS
# clients block on every part: latency under 5 s and within 0.5 s of the origin's, no stall,
# one origin request per part and blocking step per edge, the two edges' players converge.
# 60 s by default (the issue's length; LL_SECONDS=0 skips it). It failed now and then until
# the edge stopped counting Date's sub-second truncation and a blocking reload's hold as age
# (README "Live and low latency").
LL_DONE=""
LL_SECONDS="${LL_SECONDS:-60}"
if [ "$LL_SECONDS" -gt 0 ]; then
  say "low latency: hls.js (lowLatencyMode) plays LL-HLS through two edges for $LL_SECONDS s (LL_SECONDS)"
  LL_SECONDS="$LL_SECONDS" EDGE_BIN="$EDGE_BIN" node "$HERE/lowlatency.mjs"
  LL_DONE=", and LL-HLS in lowLatencyMode through two edges"
else
  say "low latency: skipped (LL_SECONDS=0)"
fi
say "ok: hls.js played the signed demo (path and query tokens, TS and fMP4, and over HTTP/2 with TLS; CMCD twice, all hits the second time, CMCD metrics moved); dash.js played its DASH version (path token; a 240p tier got 240p only); hls.js played a live stream through the edge with no stall$LL_DONE"
