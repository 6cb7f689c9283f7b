#!/usr/bin/env bash
# livefeed's fan-out benchmark: livefeed against the classic Node + Socket.IO
# server, same load generator, same machine, one run.
#
#   bench/run.sh            full run (under 10 minutes on a quiet machine), table in bench/results/latest.md
#   bench/run.sh --quick    CI smoke run (under a minute): small N, short runs, asserts only
#                           correctness (0 lost, 0 duplicated, 0 out of order, every server
#                           answered) and exits non-zero otherwise; table in bench/results/quick.md
#
# Every server runs on 127.0.0.1 on a free port, one scenario at a time, each
# scenario on a freshly started server (and a fresh data dir for livefeed).
set -euo pipefail

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { echo "[bench] $*" >&2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/livefeed-bench.XXXXXX")"
SERVER_PID=""
SERVER_ADDR=""

stop_server() {
  local pid="$SERVER_PID"
  SERVER_PID=""
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  # Bounded: 100 x 0.1 s, then SIGKILL.
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "server $pid ignored SIGTERM for 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  [ "$rc" -eq 0 ] || log "server $pid exited with status $rc"
}

cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- build
BUILD_TIMEOUT=1800
log "building release: livefeed and livefeed-bench"
timeout "$BUILD_TIMEOUT" cargo build --release -p livefeed -p livefeed-bench >&2
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LIVEFEED="$TARGET_DIR/release/livefeed"
LOADGEN="$TARGET_DIR/release/livefeed-bench"

if ! command -v node >/dev/null 2>&1; then
  echo "node is not installed: the Node baseline cannot run" >&2
  exit 1
fi
NODE_DIR="$ROOT/bench/node"
if [ ! -f "$NODE_DIR/node_modules/.package-lock.json" ] ||
   [ "$NODE_DIR/package-lock.json" -nt "$NODE_DIR/node_modules/.package-lock.json" ]; then
  log "npm ci in bench/node (from the committed lockfile)"
  (cd "$NODE_DIR" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >&2)
fi

# ---------------------------------------------------------------- servers
# start_server livefeed|node: sets SERVER_PID and SERVER_ADDR.
start_server() {
  local kind="$1" port try
  for try in 1 2 3; do
    port="$("$LOADGEN" free-port)"
    SERVER_ADDR="127.0.0.1:$port"
    case "$kind" in
      livefeed)
        local data
        data="$(mktemp -d "$WORK/data.XXXXXX")"
        # warn: per-request info logs are not what we measure (the baseline logs nothing).
        "$LIVEFEED" --addr "$SERVER_ADDR" --data-dir "$data" --log-level warn \
          >>"$WORK/livefeed.log" 2>&1 &
        ;;
      node)
        PORT="$port" HOST=127.0.0.1 node "$NODE_DIR/server.js" >>"$WORK/node.log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    if "$LOADGEN" wait-ready --addr "$SERVER_ADDR" --pid "$SERVER_PID" --timeout-s 30; then
      return 0
    fi
    log "$kind did not become ready on $SERVER_ADDR (try $try)"
    stop_server
  done
  return 1
}

RESULTS_DIR="$ROOT/bench/results"
mkdir -p "$RESULTS_DIR"
if [ "$QUICK" -eq 1 ]; then NAME=quick; else NAME=latest; fi
RES="$WORK/results.jsonl"
: >"$RES"

fail_line() { # target scenario message
  printf '{"target":"%s","scenario":"%s","ok":false,"error":"%s"}\n' "$1" "$2" "$3" >>"$RES"
}

# scenario TARGET NAME TIMEOUT_S LOADGEN-ARGS...
# TARGET is livefeed-ws, livefeed-sio or node; the server is started fresh.
scenario() {
  local target="$1" name="$2" limit="$3"
  shift 3
  local kind=livefeed proto=()
  case "$target" in
    livefeed-ws) proto=(--proto ws) ;;
    livefeed-sio) proto=(--proto sio) ;;
    node) kind=node; proto=(--proto sio) ;;
  esac
  local cmd="$1"
  shift
  [ "$cmd" = fanout ] || proto=()
  log "$target / $name: $cmd ${proto[*]} $*"
  if ! start_server "$kind"; then
    fail_line "$target" "$name" "server did not start"
    return 0
  fi
  local rc=0
  timeout -k 5 "$limit" "$LOADGEN" "$cmd" "${proto[@]}" "$@" \
    --addr "$SERVER_ADDR" --server-pid "$SERVER_PID" \
    --target "$target" --scenario "$name" --out "$RES" >/dev/null || rc=$?
  if [ "$rc" -ne 0 ]; then
    fail_line "$target" "$name" "load generator exited with status $rc"
  elif ! kill -0 "$SERVER_PID" 2>/dev/null; then
    fail_line "$target" "$name" "server died during the scenario"
  fi
  stop_server
}

# mixed TARGET TIMEOUT_S LOADGEN-ARGS...: the `mixed` scenario (creates, edits
# and deletes), for livefeed targets only: the Node baseline has no PATCH or
# DELETE, so it has no result (the report shows "—" and --check does not ask
# node for it).
mixed() {
  local target="$1"
  shift
  case "$target" in
    livefeed-*) scenario "$target" mixed "$@" ;;
    *) log "$target / mixed: skipped (no edits or deletes)" ;;
  esac
}

# ---------------------------------------------------------------- scenarios
if [ "$QUICK" -eq 1 ]; then
  SETTLE=(--settle-ms 300)
  run_all() {
    local t="$1"
    scenario "$t" idle1k 30 fanout -n 200 --rate 20 --duration-s 0.5 "${SETTLE[@]}"
    scenario "$t" fanout10k 30 fanout -n 500 --rate 20 --duration-s 1.5 "${SETTLE[@]}"
    scenario "$t" throughput 30 fanout -n 200 --window 32 --publishers 32 --duration-s 1.5 "${SETTLE[@]}"
    scenario "$t" publish 30 publish --publishers 16 --duration-s 1
    scenario "$t" slow 40 fanout -n 200 --slow 10 --rate 50 --duration-s 1.5 --pad 2000 \
      --slow-drain-s 5 "${SETTLE[@]}"
    mixed "$t" 30 fanout -n 200 --rate 40 --duration-s 1.5 --publishers 4 --mix 6:3:1 "${SETTLE[@]}"
    # Named feeds: each client gets exactly its feed's posts, none of the others'.
    scenario "$t" feeds1k 30 fanout -n 200 --feeds 20 --rate 100 --duration-s 1 "${SETTLE[@]}"
  }
else
  run_all() {
    local t="$1"
    scenario "$t" idle1k 120 fanout -n 1000 --rate 10 --duration-s 1
    scenario "$t" fanout10k 240 fanout -n 10000 --rate 10 --duration-s 20
    scenario "$t" throughput 120 fanout -n 1000 --window 64 --publishers 64 --duration-s 10
    scenario "$t" publish 120 publish --publishers 64 --duration-s 10
    scenario "$t" slow-base 120 fanout -n 1000 --rate 50 --duration-s 12 --pad 2000
    scenario "$t" slow 180 fanout -n 1000 --slow 50 --rate 50 --duration-s 12 --pad 2000
    mixed "$t" 120 fanout -n 1000 --rate 50 --duration-s 10 --publishers 16 --mix 6:3:1
    # Named feeds: the same 10,000 clients and 10,000 deliveries/s, once spread
    # over 1,000 feeds (10 each, 1,000 posts/s) and once on one feed (1 post/s);
    # then the same 1,000 posts/s with no subscribers, for what posts alone cost.
    scenario "$t" feeds1k 180 fanout -n 10000 --feeds 1000 --rate 1000 --duration-s 10
    scenario "$t" onefeed 180 fanout -n 10000 --feeds 1 --rate 1 --duration-s 10
    scenario "$t" feeds1k-posts 120 fanout -n 0 --feeds 1000 --rate 1000 --duration-s 10 --settle-ms 0
  }
fi

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date +%s)
TARGETS=(livefeed-ws)
# livefeed's Socket.IO endpoint, when it has one.
if start_server livefeed; then
  if "$LOADGEN" probe-sio --addr "$SERVER_ADDR"; then
    TARGETS+=(livefeed-sio)
    log "livefeed speaks Socket.IO: running its Socket.IO rows too"
  else
    log "livefeed has no Socket.IO endpoint yet (probe of /socket.io/?EIO=4&transport=polling failed): /ws only"
  fi
  stop_server
else
  log "livefeed did not start"
fi
TARGETS+=(node)

for t in "${TARGETS[@]}"; do
  run_all "$t"
done
ELAPSED=$(( $(date +%s) - START ))
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report
OUT="$RESULTS_DIR/$NAME.md"
{
  if [ "$QUICK" -eq 1 ]; then
    echo "# livefeed benchmark (quick smoke run: small N, short runs; timings are not meaningful)"
  else
    echo "# livefeed benchmark"
  fi
  echo
  echo "- command: \`bench/run.sh$([ "$QUICK" -eq 1 ] && echo ' --quick')\` (scenarios took ${ELAPSED} s)"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
  echo "- kernel: $(uname -r); $(rustc -V); node $(node -v); socket.io $(node -p "require('$NODE_DIR/node_modules/socket.io/package.json').version"), express $(node -p "require('$NODE_DIR/node_modules/express/package.json').version")"
  echo "- livefeed: release build, \`--log-level warn\`, fresh sled data dir per scenario; a 201 means the post is fsynced (group commit)"
  echo "- node: bench/node/server.js, posts stored in memory only (no disk); a 201 means it was pushed to the socket.io emit"
  echo "- load generator and server share the same $(nproc) cores on loopback; ratio = livefeed / node"
  echo "- load average (1/5/15 min) before the scenarios: $LOAD_START; after: $LOAD_END (anything else running skews timings: see 'other processes' below)"
  echo
} >"$OUT"

RC=0
if [ "$QUICK" -eq 1 ]; then
  REQUIRE="$(IFS=,; echo "${TARGETS[*]}")"
  "$LOADGEN" report "$RES" --check --require "$REQUIRE" >>"$OUT" || RC=$?
else
  "$LOADGEN" report "$RES" >>"$OUT" || RC=$?
fi
cp "$RES" "$RESULTS_DIR/$NAME.jsonl"
cat "$OUT"
log "wrote $OUT and $RESULTS_DIR/$NAME.jsonl"
if [ "$RC" -ne 0 ]; then
  log "FAILED (see the correctness table above)"
  exit "$RC"
fi
if [ "$QUICK" -eq 1 ]; then
  log "quick run passed: every scenario correct against: ${TARGETS[*]}"
fi
