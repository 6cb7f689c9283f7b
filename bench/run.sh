#!/usr/bin/env bash
# livefeed's fan-out benchmark: livefeed beside limit-server (the floor: a
# minimal fan-out server, ../shared/reference/limit-server) and the classic
# Node + Socket.IO server, same load generator, same machine, one run.
#
#   bench/run.sh            full run (under 12 minutes on a quiet machine), table in bench/results/latest.md
#   bench/run.sh --quick    CI smoke run (about 2 minutes): small N, short runs, asserts only
#                           correctness (0 lost, 0 duplicated, 0 out of order, every server
#                           answered) and exits non-zero otherwise; table in bench/results/quick.md
#   bench/run.sh --scale [--points 1000,2000,...]
#                           fan-out at N = 1,000 / 2,000 / 5,000 / 10,000 / 18,000 clients and
#                           10 posts/s for every target (under 25 minutes; each point capped);
#                           bench/results/scale.{jsonl,md,svg}
#   bench/run.sh --ceiling [--rounds 3]
#                           what the fixed stack allows (about 2.5 minutes a round): durable
#                           publish and idle RSS at 10,000 clients of the floor, of the least server
#                           tide and tide-websockets make (examples/stack_ceiling.rs, posts in
#                           memory, behind async-h1 and behind livefeed's HTTP/1.1) and of livefeed,
#                           plus storage alone (examples/store_ceiling.rs), in alternated rounds;
#                           bench/results/ceiling.{jsonl,md}
#
# LIMIT_SERVER_DIR overrides where limit-server's source is looked for
# (default: ../shared/reference/limit-server beside the checkout); without it
# the floor column is skipped and the table says so.
# Every server runs on 127.0.0.1 on a free port, one scenario at a time, each
# scenario on a freshly started server (and a fresh data dir for livefeed).
set -euo pipefail

# The header comment above, up to the first line that is not a comment.
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

QUICK=0
SCALE=0
CEILING=0
ROUNDS=3
POINTS="1000,2000,5000,10000,18000"
while [ "$#" -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --scale) SCALE=1 ;;
    --ceiling) CEILING=1 ;;
    --rounds)
      [ "$#" -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]*$ ]] || { echo "--rounds needs a count" >&2; exit 2; }
      ROUNDS="$2"
      shift
      ;;
    --points)
      [ "$#" -ge 2 ] || { echo "--points needs a value" >&2; exit 2; }
      POINTS="$2"
      shift
      ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if [ $((QUICK + SCALE + CEILING)) -gt 1 ]; then
  echo "--quick, --scale and --ceiling are separate runs: pick one" >&2
  exit 2
fi
if ! [[ "$POINTS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]]; then
  echo "--points wants client counts separated by commas, e.g. 1000,2000" >&2
  exit 2
fi

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
# Exactly .ci/run's build command, so a run after it recompiles nothing.
log "building release: cargo build --release --workspace --bins --examples"
timeout "$BUILD_TIMEOUT" cargo build --release --workspace --bins --examples >&2
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LIVEFEED="$TARGET_DIR/release/livefeed"
LOADGEN="$TARGET_DIR/release/livefeed-bench"
STACK_CEILING="$TARGET_DIR/release/examples/stack_ceiling"
STORE_CEILING="$TARGET_DIR/release/examples/store_ceiling"

# The floor: limit-server, a standalone crate (tokio, hyper, tungstenite) with
# its own Cargo.lock, built in its own target dir so that tokio never enters
# livefeed's Cargo.lock and the build is cached between runs. A cold build
# costs about 2 CPU-minutes (see bench/README.md), so --quick includes it.
LIMIT_DIR="${LIMIT_SERVER_DIR:-$ROOT/../shared/reference/limit-server}"
LIMIT_TARGET="$TARGET_DIR/limit-server"
LIMIT_BIN=""
FLOOR_NOTE=""
if [ -f "$LIMIT_DIR/Cargo.toml" ]; then
  LIMIT_DIR="$(cd "$LIMIT_DIR" && pwd)"
  log "building the floor: $LIMIT_DIR (CARGO_TARGET_DIR=$LIMIT_TARGET, --release --locked)"
  if ! (cd "$LIMIT_DIR" && CARGO_TARGET_DIR="$LIMIT_TARGET" timeout "$BUILD_TIMEOUT" \
        cargo build --release --locked --manifest-path "$LIMIT_DIR/Cargo.toml" >&2); then
    echo "limit-server in $LIMIT_DIR is present but did not build (see above)" >&2
    exit 1
  fi
  LIMIT_BIN="$LIMIT_TARGET/release/limit-server"
else
  FLOOR_NOTE="not run: $LIMIT_DIR is absent (set LIMIT_SERVER_DIR to its checkout)"
  log "limit-server (the floor) is absent ($LIMIT_DIR has no Cargo.toml): skipping the floor column"
fi

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
# start_server livefeed|limit-server|node: sets SERVER_PID and SERVER_ADDR.
start_server() {
  local kind="$1" port try ready=()
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
      limit-server)
        # It has no /healthz: its 404 for it shows it serves HTTP.
        ready=(--status 404)
        "$LIMIT_BIN" --addr "$SERVER_ADDR" --workers "$(nproc)" >>"$WORK/limit-server.log" 2>&1 &
        ;;
      node)
        PORT="$port" HOST=127.0.0.1 node "$NODE_DIR/server.js" >>"$WORK/node.log" 2>&1 &
        ;;
      stack-async-h1 | stack-livefeed-h1)
        local http=async-h1
        [ "$kind" = stack-livefeed-h1 ] && http=livefeed
        "$STACK_CEILING" --addr "$SERVER_ADDR" --http "$http" >>"$WORK/stack-ceiling.log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    if "$LOADGEN" wait-ready --addr "$SERVER_ADDR" --pid "$SERVER_PID" --timeout-s 30 "${ready[@]}"; then
      return 0
    fi
    log "$kind did not become ready on $SERVER_ADDR (try $try)"
    stop_server
  done
  return 1
}

RESULTS_DIR="$ROOT/bench/results"
mkdir -p "$RESULTS_DIR"
if [ "$QUICK" -eq 1 ]; then NAME=quick; elif [ "$SCALE" -eq 1 ]; then NAME=scale; else NAME=latest; fi
RES="$WORK/results.jsonl"
: >"$RES"

fail_line() { # target scenario message
  printf '{"target":"%s","scenario":"%s","ok":false,"error":"%s"}\n' "$1" "$2" "$3" >>"$RES"
}

# serves TARGET SCENARIO: whether the target can run it. The Node baseline
# has no PATCH or DELETE (no `mixed`); limit-server has no feeds either (no
# `feeds1k`, `onefeed`, `feeds1k-posts`). A scenario it cannot serve has no
# result: the report shows "—" and --check does not ask it for one.
serves() {
  case "$1:$2" in
    livefeed-*) return 0 ;;
    node:mixed) return 1 ;;
    limit-server:mixed | limit-server:feeds1k | limit-server:onefeed | limit-server:feeds1k-posts) return 1 ;;
    *) return 0 ;;
  esac
}

# scenario TARGET NAME TIMEOUT_S LOADGEN-ARGS...
# TARGET is livefeed-ws, livefeed-sio, limit-server or node; the server is
# started fresh. Servers without livefeed's `seq` (node, limit-server) are
# checked for order by post id; livefeed's frames must each carry their seq.
scenario() {
  local target="$1" name="$2" limit="$3"
  shift 3
  if ! serves "$target" "$name"; then
    log "$target / $name: skipped (it has no feeds, edits or deletes)"
    return 0
  fi
  local kind=livefeed proto=()
  case "$target" in
    livefeed-ws) proto=(--proto ws) ;;
    livefeed-sio) proto=(--proto sio) ;;
    limit-server) kind=limit-server; proto=(--proto ws --order-by id) ;;
    node) kind=node; proto=(--proto sio --order-by id) ;;
    stack-*) kind="$target"; proto=(--proto ws --order-by id) ;;
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
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    fail_line "$target" "$name" "timed out after $limit s"
  elif [ "$rc" -ne 0 ]; then
    fail_line "$target" "$name" "load generator exited with status $rc"
  elif ! kill -0 "$SERVER_PID" 2>/dev/null; then
    fail_line "$target" "$name" "server died during the scenario"
  fi
  stop_server
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
    scenario "$t" mixed 30 fanout -n 200 --rate 40 --duration-s 1.5 --publishers 4 --mix 6:3:1 "${SETTLE[@]}"
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
    scenario "$t" mixed 120 fanout -n 1000 --rate 50 --duration-s 10 --publishers 16 --mix 6:3:1
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
[ -z "$LIMIT_BIN" ] || TARGETS+=(limit-server)
TARGETS+=(node)

machine_lines() {
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
  echo "- kernel: $(uname -r); $(rustc -V); node $(node -v); socket.io $(node -p "require('$NODE_DIR/node_modules/socket.io/package.json').version"), express $(node -p "require('$NODE_DIR/node_modules/express/package.json').version")"
  echo "- livefeed: release build, \`--log-level warn\`, fresh sled data dir per scenario; a 201 means the post is fsynced (group commit)"
  if [ -n "$LIMIT_BIN" ]; then
    echo "- limit-server (the floor): $LIMIT_DIR, release build, \`--workers $(nproc)\`; posts in memory only, no history, no Socket.IO, no feeds, no edits or deletes; its 201 promises nothing about disk"
  else
    echo "- limit-server (the floor): $FLOOR_NOTE"
  fi
  echo "- node: bench/node/server.js, posts stored in memory only (no disk); a 201 means it was pushed to the socket.io emit"
  echo "- load generator and server share the same $(nproc) cores on loopback"
}

# ---------------------------------------------------------------- scale run
# One fan-out point per target and N: N clients, SCALE_RATE posts/s for
# SCALE_SECS s, each on a fresh server and capped in time; a point that times
# out is recorded as such, and a target's larger points are then skipped.
if [ "$SCALE" -eq 1 ]; then
  SCALE_RATE=10
  SCALE_SECS=12
  # Per-point caps (s): connect, settle, publish, drain and close fit well
  # inside them on a quiet machine; node is slow at large N (p50 of seconds).
  CAP_FAST=50
  CAP_NODE=100
  IFS=, read -r -a NS <<<"$POINTS"
  soft="$(ulimit -Sn)"; hard="$(ulimit -Hn)"
  worst=0; typical=0
  for t in "${TARGETS[@]}"; do
    for n in "${NS[@]}"; do
      if [ "$t" = node ]; then worst=$((worst + CAP_NODE)); else worst=$((worst + CAP_FAST)); fi
      typical=$((typical + 6 + SCALE_SECS + n / 2000))
    done
  done
  log "scale run: ${#NS[@]} points (N = $POINTS) x ${#TARGETS[@]} targets (${TARGETS[*]}), $SCALE_RATE posts/s for $SCALE_SECS s each"
  log "estimate: about $(( (typical + 59) / 60 )) min on a quiet machine (node's large N take longer), at most $(( (worst + 59) / 60 )) min (every point at its cap)"
  log "fd limits: soft $soft, hard $hard (the servers get the soft one, the load generator raises its own to the hard one)"
  for t in "${TARGETS[@]}"; do
    cap=$CAP_FAST; [ "$t" = node ] && cap=$CAP_NODE
    gave_up=""
    for n in "${NS[@]}"; do
      name="scale-$n"
      # The load generator needs N + publishers + 64 fds, the server N + 64.
      if [ "$((n + 32 + 64))" -gt "$hard" ] || [ "$((n + 64))" -gt "$soft" ]; then
        log "$t / $name: skipped: $n clients do not fit the fd limit (soft $soft, hard $hard)"
        fail_line "$t" "$name" "skipped: fd limit $soft"
        continue
      fi
      if [ -n "$gave_up" ]; then
        log "$t / $name: skipped: $gave_up"
        fail_line "$t" "$name" "skipped: $gave_up"
        continue
      fi
      scenario "$t" "$name" "$cap" fanout -n "$n" --rate "$SCALE_RATE" --duration-s "$SCALE_SECS" \
        --connect-timeout-s 30 --drain-timeout-s 20
      if tail -n 1 "$RES" | grep -q "\"scenario\":\"$name\",\"ok\":false,\"error\":\"timed out"; then
        gave_up="timed out at N=$n"
      fi
    done
  done
  ELAPSED=$(( $(date +%s) - START ))
  LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
  cp "$RES" "$RESULTS_DIR/scale.jsonl"
  STAMP="$(date -u '+%Y-%m-%d %H:%M UTC')"
  SUB="$STAMP, $(nproc) cores, bench/run.sh --scale$([ "$POINTS" = 1000,2000,5000,10000,18000 ] || echo " --points $POINTS"): $SCALE_RATE posts/s for $SCALE_SECS s per point, load average $LOAD_START at the start"
  "$LOADGEN" chart "$RESULTS_DIR/scale.jsonl" --md "$WORK/scale-table.md" \
    --svg "$RESULTS_DIR/scale.svg" --subtitle "$SUB"
  {
    echo "# livefeed scale run: fan-out against N clients"
    echo
    echo "- command: \`bench/run.sh --scale$([ "$POINTS" = 1000,2000,5000,10000,18000 ] || echo " --points $POINTS")\` (points took ${ELAPSED} s)"
    echo "- each point: N clients connected (the connect storm), $SCALE_RATE posts/s for $SCALE_SECS s on a fresh server, every client checked for every post once and in order; capped at $CAP_FAST s ($CAP_NODE s for node), and a target that times out skips its larger N"
    machine_lines
    echo "- load average (1/5/15 min) before the points: $LOAD_START; after: $LOAD_END"
    echo "- server CPU per delivery: the server's CPU time from the first POST to the last delivery, over the deliveries; idle RSS per client: (RSS after the connect storm and a 2 s settle − RSS before) ÷ N"
    echo
    echo "![scale chart](scale.svg)"
    echo
    cat "$WORK/scale-table.md"
  } >"$RESULTS_DIR/scale.md"
  cat "$RESULTS_DIR/scale.md"
  log "wrote $RESULTS_DIR/scale.md, scale.svg and scale.jsonl"
  exit 0
fi

# ---------------------------------------------------------------- ceiling run
# Rounds of: each server's durable publish and its idle RSS at 10,000
# clients, then storage alone; targets alternate within a round, so a busy
# moment of the machine touches every column alike.
if [ "$CEILING" -eq 1 ]; then
  CEIL_TARGETS=()
  for t in "${TARGETS[@]}"; do
    [ "$t" = node ] || CEIL_TARGETS+=("$t")
  done
  CEIL_TARGETS+=(stack-async-h1 stack-livefeed-h1)
  [ -n "$LIMIT_BIN" ] || log "the floor is absent ($FLOOR_NOTE): the table has no ratios"
  log "ceiling run: $ROUNDS rounds x (${CEIL_TARGETS[*]}) + storage alone; about $((ROUNDS * 5 / 2)) min"
  for r in $(seq 1 "$ROUNDS"); do
    for t in "${CEIL_TARGETS[@]}"; do
      # Socket.IO changes nothing in a publish (no clients): /ws's row has it.
      [ "$t" = livefeed-sio ] || scenario "$t" "publish-$r" 120 publish --publishers 64 --duration-s 10
      scenario "$t" "idle-$r" 120 fanout -n 10000 --rate 1 --duration-s 1
    done
    for args in "store 64 5" "sled 64 5 2"; do
      storage_target="${args%% *}"
      log "storage alone / store_ceiling $args, round $r"
      dir="$(mktemp -d "$WORK/storage.XXXXXX")"
      # shellcheck disable=SC2086 # the words are store_ceiling's arguments
      if line="$(cd "$dir" && timeout 60 "$STORE_CEILING" $args --json)"; then
        echo "$line" | sed "s/^{/{\"target\":\"$storage_target\",\"scenario\":\"storage-$r\",/" >>"$RES"
      else
        fail_line "$storage_target" "storage-$r" "store_ceiling failed"
      fi
      rm -rf "$dir"
    done
  done
  ELAPSED=$(( $(date +%s) - START ))
  LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"
  cp "$RES" "$RESULTS_DIR/ceiling.jsonl"
  {
    echo "# livefeed ceiling run: what the stack allows"
    echo
    echo "- command: \`bench/run.sh --ceiling$([ "$ROUNDS" = 3 ] || echo " --rounds $ROUNDS")\` (took ${ELAPSED} s)"
    echo "- each cell: the median of $ROUNDS rounds, each round's value in brackets; every server fresh per scenario, targets alternated within each round"
    echo "- publish: \`publish --publishers 64 --duration-s 10\`; idle RSS: \`fanout -n 10000 --rate 1 --duration-s 1\`, (RSS after the connect storm and a 2 s settle − RSS before) ÷ N"
    echo "- tide + async-h1 / tide + livefeed's HTTP/1.1: examples/stack_ceiling.rs (tide 0.16 and tide-websockets 0.4 with their defaults, posts in memory, one frame per post shared by every connection, bounded queues), served by async-h1 or by livefeed's own HTTP/1.1 loop"
    echo "- storage alone: examples/store_ceiling.rs \`store 64 5\` and \`sled 64 5 2\`, in a temporary dir on the same disk as livefeed's data dirs"
    machine_lines
    echo "- load average (1/5/15 min) before: $LOAD_START; after: $LOAD_END"
    echo
    "$LOADGEN" ceiling "$RES"
  } >"$RESULTS_DIR/ceiling.md"
  cat "$RESULTS_DIR/ceiling.md"
  log "wrote $RESULTS_DIR/ceiling.md and ceiling.jsonl"
  exit 0
fi

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
  machine_lines
  echo "- ratio columns: livefeed ÷ limit-server (the floor) first, then livefeed ÷ node; lower is better except for throughput and publish rows"
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
