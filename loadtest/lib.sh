# loadtest/lib.sh: the shell compare.sh and compare_tls.sh share (sourced, not run): logging,
# installing what is missing, the temp folder and its cleanup, CPU placement, waiting for a
# server, and the CPU and memory of a server's process tree read from /proc.
#
# Before sourcing, a script sets LOG_TAG (its name in log lines). It then keeps every process
# it starts in PIDS (an array) or in one of the variables named by TRACKED_PIDS (e.g.
# "EDGE_PID NGINX_PID"): on exit, cleanup stops them all (TERM, then KILL after 10 s) and
# removes TMP (unless KEEP_TMP=1).

log() { printf '[%s %s] %s\n' "${LOG_TAG:-loadtest}" "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- install what is missing
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
APT_UPDATED=0
apt_install() { # apt_install PKG... ; then stop any service apt auto-started for them
  if [ "$APT_UPDATED" = 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
  for svc in "$@"; do
    # Installed just now by us: the distro's default instance (nginx on :80, varnish on :6081)
    # is not wanted; we run our own instances on our own ports.
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
      log "stopping the $svc service that apt started (we run our own instance)"
      $SUDO systemctl stop "$svc" || true
      $SUDO systemctl disable "$svc" >/dev/null 2>&1 || true
    elif command -v service >/dev/null && [ -x "/etc/init.d/$svc" ] && $SUDO service "$svc" status >/dev/null 2>&1; then
      log "stopping the $svc service that apt started (we run our own instance)"
      $SUDO service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
}

# ---------------------------------------------------------------- temp folder, cleanup
PIDS=()
tracked_pids() { # every process this script started and still knows of
  local v
  echo "${PIDS[@]}"
  for v in ${TRACKED_PIDS:-}; do echo "${!v:-}"; done
}
cleanup() {
  local rc=$? p
  set +e
  for p in $(tracked_pids); do kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 1 50); do
    local alive=0
    for p in $(tracked_pids); do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.2
  done
  for p in $(tracked_pids); do kill -KILL "$p" 2>/dev/null; done
  if [ -n "${TMP:-}" ]; then
    if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- CPU placement
# With PIN=1 on 2 or more CPUs: the load generator and the origin on CPU 0, the server under
# test alone on CPU 1; otherwise everything on every CPU. Each can be set (LOAD_CPUS,
# PROXY_CPUS, ORIGIN_CPUS); NPROC is the machine's CPU count.
NPROC=$(nproc)
place_cpus() {
  if [ "${PIN:-1}" = 1 ] && [ "$NPROC" -ge 2 ]; then
    LOAD_CPUS=${LOAD_CPUS:-0}; PROXY_CPUS=${PROXY_CPUS:-1}; ORIGIN_CPUS=${ORIGIN_CPUS:-0}
  else
    local all=0-$((NPROC - 1))
    LOAD_CPUS=${LOAD_CPUS:-$all}; PROXY_CPUS=${PROXY_CPUS:-$all}; ORIGIN_CPUS=${ORIGIN_CPUS:-$all}
  fi
}

# ---------------------------------------------------------------- ports, readiness
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() { # wait_http URL SECONDS: until it answers (any HTTP status; any certificate)
  local n=$(($2 * 10))
  for _ in $(seq 1 "$n"); do
    curl -sk -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- CPU and memory from /proc
CLK_TCK=$(getconf CLK_TCK)
# Whole-machine busy ticks (user+nice+system+irq+softirq+steal), to show how much CPU went to
# processes outside the benchmark (e.g. a compiler) during a run.
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
# utime+stime of one process, in clock ticks (0 once it is gone).
pid_ticks() { [ -r "/proc/$1/stat" ] && sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}' || echo 0; }
proc_tree() { echo "$1"; local c; for c in $(pgrep -P "$1" 2>/dev/null); do proc_tree "$c"; done; }
tree_cpu() { # lines "pid utime+stime" for the process tree of $1
  local p
  for p in $(proc_tree "$1"); do
    [ -r "/proc/$p/stat" ] && echo "$p $(pid_ticks "$p")"
  done
  return 0
}
tree_ticks() { # utime+stime of the process tree of $1, in clock ticks
  local p t=0
  for p in $(proc_tree "$1"); do t=$((t + $(pid_ticks "$p"))); done
  echo "$t"
}
tree_rss_kib() { # resident memory of the process tree of $1 (sum of VmRSS), KiB
  local p t=0 r
  for p in $(proc_tree "$1"); do
    r=$(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    t=$((t + ${r:-0}))
  done
  echo "$t"
}
