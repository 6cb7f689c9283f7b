#!/usr/bin/env bash
# livefeed's cluster benchmark: what the Redis hop costs.
#
#   bench/cluster.sh           full run (about 2 minutes), table in bench/results/cluster.md
#   bench/cluster.sh --quick   smoke run (small N, short runs); asserts correctness only
#
# Three setups, each started fresh for every scenario, same load generator:
#   single     one livefeed node, sled only (no Redis)
#   cluster-1  one node in cluster mode + redis-server (the hop alone)
#   cluster-3  three nodes + redis-server; subscribers and publishers are
#              spread round-robin over the three (--also-addr)
# Redis runs with AOF and APPENDFSYNC (default always: a 201 is then fsynced
# by Redis, as it is by sled in the single setup). SETUPS (default
# "single cluster-1 cluster-3") picks setups. Everything is on 127.0.0.1,
# on free ports, on the same cores as the load generator.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done
APPENDFSYNC="${APPENDFSYNC:-always}"
read -r -a SETUP_LIST <<<"${SETUPS:-single cluster-1 cluster-3}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { echo "[cluster-bench] $*" >&2; }

command -v redis-server >/dev/null || { echo "redis-server is not installed (Debian package redis-server)" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/livefeed-cluster-bench.XXXXXX")"
PIDS=()

stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    # Bounded: 100 x 0.1 s, then SIGKILL.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
cleanup() { stop_all; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Exactly .ci/run's build command, so a run after it recompiles nothing.
log "building release: cargo build --release --workspace --bins --examples"
timeout 1800 cargo build --release --workspace --bins --examples >&2
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LIVEFEED="$TARGET_DIR/release/livefeed"
LOADGEN="$TARGET_DIR/release/livefeed-bench"

# wait_readyz ADDR: until GET /readyz answers 200 (30 s at most).
wait_readyz() {
  python3 - "$1" <<'EOF'
import sys, time, urllib.request
deadline = time.time() + 30
while time.time() < deadline:
    try:
        if urllib.request.urlopen(f"http://{sys.argv[1]}/readyz", timeout=2).status == 200:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.05)
sys.exit(1)
EOF
}

REDIS_URL=""
start_redis() {
  local port dir
  port="$("$LOADGEN" free-port)"
  dir="$(mktemp -d "$WORK/redis.XXXXXX")"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
    --appendfsync "$APPENDFSYNC" --save "" --daemonize no --logfile "$dir/redis.log" &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && { REDIS_URL="redis://127.0.0.1:$port/0"; return 0; }
    sleep 0.1
  done
  log "redis-server did not start"; return 1
}

# start_node [REDIS_URL]: appends the node's address to ADDRS and pid to NODE_PIDS.
ADDRS=(); NODE_PIDS=()
start_node() {
  local addr data
  addr="127.0.0.1:$("$LOADGEN" free-port)"
  data="$(mktemp -d "$WORK/data.XXXXXX")"
  "$LIVEFEED" --addr "$addr" --data-dir "$data" --log-level warn ${1:+--redis-url "$1"} \
    >>"$WORK/livefeed.log" 2>&1 &
  PIDS+=($!); NODE_PIDS+=($!)
  "$LOADGEN" wait-ready --addr "$addr" --pid "$!" --timeout-s 30 && wait_readyz "$addr" ||
    { log "node $addr did not become ready"; return 1; }
  ADDRS+=("$addr")
}

# setup NAME: starts the servers of one setup.
setup() {
  ADDRS=(); NODE_PIDS=()
  case "$1" in
    single) start_node ;;
    cluster-1) start_redis && start_node "$REDIS_URL" ;;
    cluster-3) start_redis && start_node "$REDIS_URL" && start_node "$REDIS_URL" && start_node "$REDIS_URL" ;;
  esac
}

RES="$WORK/results.jsonl"
: >"$RES"

# scenario SETUP NAME LOADGEN-FANOUT-ARGS...
scenario() {
  local target="$1" name="$2"
  shift 2
  log "$target / $name: fanout $*"
  if ! setup "$target"; then
    printf '{"target":"%s","scenario":"%s","ok":false,"error":"servers did not start"}\n' "$target" "$name" >>"$RES"
    stop_all; return 0
  fi
  local also=() a rc=0
  for a in "${ADDRS[@]:1}"; do also+=(--also-addr "$a"); done
  # --server-pid: the first node only (RSS and CPU columns are that node's).
  timeout -k 5 180 "$LOADGEN" fanout --proto ws --addr "${ADDRS[0]}" "${also[@]}" \
    --server-pid "${NODE_PIDS[0]}" --target "$target" --scenario "$name" --out "$RES" "$@" \
    >/dev/null || rc=$?
  [ "$rc" -eq 0 ] || printf '{"target":"%s","scenario":"%s","ok":false,"error":"load generator exited with status %s"}\n' "$target" "$name" "$rc" >>"$RES"
  stop_all
}

if [ "$QUICK" -eq 1 ]; then
  THROUGHPUT=(-n 99 --window 16 --publishers 6 --duration-s 1.5 --settle-ms 300)
  LATENCY=(-n 99 --rate 20 --duration-s 1.5 --publishers 6 --settle-ms 300)
else
  THROUGHPUT=(-n 999 --window 64 --publishers 15 --duration-s 10)
  LATENCY=(-n 999 --rate 50 --duration-s 10 --publishers 15)
fi

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date +%s)
for target in "${SETUP_LIST[@]}"; do
  scenario "$target" throughput "${THROUGHPUT[@]}"
  scenario "$target" latency "${LATENCY[@]}"
done
ELAPSED=$(( $(date +%s) - START ))
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p "$ROOT/bench/results"
NAME=cluster; [ "$QUICK" -eq 1 ] && NAME=cluster-quick
OUT="$ROOT/bench/results/$NAME.md"
cp "$RES" "$ROOT/bench/results/$NAME.jsonl"
{
  echo "# livefeed cluster benchmark$([ "$QUICK" -eq 1 ] && echo ' (quick smoke run; timings are not meaningful)')"
  echo
  echo "- command: \`bench/cluster.sh$([ "$QUICK" -eq 1 ] && echo ' --quick')\` (scenarios took ${ELAPSED} s); Redis appendfsync $APPENDFSYNC"
  echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1); $(redis-server --version | cut -d' ' -f1-3)"
  echo "- load average before: $LOAD_START; after: $LOAD_END (servers, Redis and the load generator share these cores)"
  echo "- throughput: ${THROUGHPUT[*]}; latency: ${LATENCY[*]}"
  echo
} >"$OUT"
RC=0
python3 - "$RES" >>"$OUT" <<'EOF' || RC=$?
import json, sys
rows = {}
for line in open(sys.argv[1]):
    v = json.loads(line)
    rows[(v["target"], v["scenario"])] = v
def g(v, path):
    for p in path.split("."):
        if not isinstance(v, dict) or p not in v:
            return None
        v = v[p]
    return v
def f(x, fmt="{:,.0f}"):
    return "?" if x is None else fmt.format(x)
print("| setup | deliveries/s (throughput) | posts/s (throughput) | delivery p50 ms (latency) | delivery p99 ms (latency) | POST p99 ms (latency) | correct |")
print("| --- | --- | --- | --- | --- | --- | --- |")
bad = False
for t in dict.fromkeys(t for t, _ in rows):
    tp, lat = rows.get((t, "throughput"), {}), rows.get((t, "latency"), {})
    ok = all(r.get("ok") for r in (tp, lat))
    bad |= not ok
    why = "yes" if ok else "NO: " + "; ".join(
        str(r.get("error") or f'lost {r.get("lost")}, dup {r.get("duplicates")}, ooo {r.get("out_of_order")}, failed posts {r.get("posts_failed")}')
        for r in (tp, lat) if not r.get("ok"))
    print(f'| {t} | {f(g(tp, "deliveries_per_sec"))} | {f(g(tp, "posts_per_sec"))} | '
          f'{f(g(lat, "latency.p50_ms"), "{:.2f}")} | {f(g(lat, "latency.p99_ms"), "{:.2f}")} | '
          f'{f(g(lat, "post_latency.p99_ms"), "{:.2f}")} | {why} |')
sys.exit(1 if bad else 0)
EOF
cat "$OUT"
log "wrote $OUT"
exit "$RC"
