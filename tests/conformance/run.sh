#!/usr/bin/env bash
# The official Engine.IO and Socket.IO protocol test suites (unmodified, in
# ../shared/conformance/, see its README) against the release
# socketio_conformance example, which serves through livefeed's own accept
# loop and HTTP layer.
#
#   LIVEFEED_CONFORMANCE_BIN  example (default: <repo>/target/release/examples/socketio_conformance)
#   LIVEFEED_SHARED           the shared folder (default: <repo>/../shared, or
#                             next to the main checkout when run from a git worktree)
#
# The suites talk to http://localhost:3000 (fixed by them): the script stops
# with an error when something already listens there. Their heartbeat tests
# use 300/200 ms timers, so a failing suite is run once more (at most);
# the last run of each counts. Output ends with "# pass N" / "# fail N"
# (both suites together) for .ci/run's tally.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PORT=3000
READY_TIMEOUT=30   # seconds for the example to start answering
SUITE_TIMEOUT=300  # seconds for one mocha run

shared="${LIVEFEED_SHARED:-}"
if [ -z "$shared" ]; then
  shared="$REPO/../shared"
  if [ ! -d "$shared/conformance" ]; then
    common="$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
    [ -n "$common" ] && shared="$(dirname "$(dirname "$common")")/shared"
  fi
fi
if [ ! -d "$shared/conformance/engine.io-protocol" ] || [ ! -d "$shared/conformance/socket.io-protocol" ]; then
  echo "conformance: SKIPPED: the official suites are not here (looked for $shared/conformance;" \
    "a clone outside the livefeed workspace has no ../shared; set LIVEFEED_SHARED to run them)"
  exit 0
fi

taken() { (exec 3<>"/dev/tcp/$1/$PORT") 2>/dev/null; }
if taken 127.0.0.1 || taken ::1; then
  echo "conformance: FAILED: port $PORT on localhost is in use, and the suites only talk to" \
    "http://localhost:$PORT; stop whatever listens there and run again" >&2
  exit 1
fi

BIN="${LIVEFEED_CONFORMANCE_BIN:-$REPO/target/release/examples/socketio_conformance}"
if [ ! -x "$BIN" ]; then
  (cd "$REPO" && cargo build --release --quiet --example socketio_conformance)
fi

work="$(mktemp -d)"
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The shared folder is read-only: each suite runs from a copy.
for suite in engine.io-protocol socket.io-protocol; do
  cp -r "$shared/conformance/$suite" "$work/$suite"
  chmod -R u+w "$work/$suite"
  (cd "$work/$suite" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
done

"$BIN" --port "$PORT" >"$work/server.log" 2>&1 &
server=$!
deadline=$((SECONDS + READY_TIMEOUT))
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/engine.io/?EIO=4&transport=polling"; do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "conformance: FAILED: socketio_conformance exited:" >&2; cat "$work/server.log" >&2; exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "conformance: FAILED: socketio_conformance did not answer within ${READY_TIMEOUT}s" >&2; exit 1
  fi
  sleep 0.2 # polling for the port to open; every test waits on events
done

# Runs one suite; prints mocha's report; sets $pass and $fail.
run_suite() {
  local out="$work/$1.out" status=0
  (cd "$work/$1" && timeout --kill-after=10 "$SUITE_TIMEOUT" npx mocha --reporter spec test-suite.js) >"$out" 2>&1 || status=$?
  cat "$out"
  pass=$(sed -n 's/^ *\([0-9]*\) passing.*/\1/p' "$out" | tail -1)
  fail=$(sed -n 's/^ *\([0-9]*\) failing.*/\1/p' "$out" | tail -1)
  pass=${pass:-0}; fail=${fail:-0}
  # A run that died without a report (timeout, crash) counts as a failure.
  if [ "$status" != 0 ] && [ "$fail" = 0 ]; then fail=1; fi
  return "$status"
}

total_pass=0; total_fail=0
for suite in engine.io-protocol socket.io-protocol; do
  echo "conformance: $suite"
  if ! run_suite "$suite"; then
    echo "conformance: $suite failed ($fail); running it once more (its heartbeat tests use 300/200 ms timers)"
    run_suite "$suite" || true
  fi
  echo "conformance: $suite: $pass passing, $fail failing"
  total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail))
done

if ! kill -0 "$server" 2>/dev/null; then
  echo "conformance: socketio_conformance died during the run:" >&2; cat "$work/server.log" >&2
  total_fail=$((total_fail + 1))
fi
echo "# pass $total_pass"
echo "# fail $total_fail"
[ "$total_fail" = 0 ]
