#!/usr/bin/env bash
# livefeed's Socket.IO end-to-end tests (tests/socketio/*.test.js): the
# stock socket.io-client / engine.io-client (pinned in package-lock.json)
# against the release server binary and the socketio_conformance example.
#
#   LIVEFEED_BIN              server (default: <repo>/target/release/livefeed)
#   LIVEFEED_CONFORMANCE_BIN  example (default: <repo>/target/release/examples/socketio_conformance)
#
# Idempotent: npm ci only when node_modules is missing or older than the
# lockfile; cargo builds only what is missing (CI builds both beforehand).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$HERE"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "socketio e2e: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

export LIVEFEED_BIN="${LIVEFEED_BIN:-$REPO/target/release/livefeed}"
export LIVEFEED_CONFORMANCE_BIN="${LIVEFEED_CONFORMANCE_BIN:-$REPO/target/release/examples/socketio_conformance}"
if [ ! -x "$LIVEFEED_BIN" ]; then
  (cd "$REPO" && cargo build --release --quiet --bin livefeed)
fi
if [ ! -x "$LIVEFEED_CONFORMANCE_BIN" ]; then
  (cd "$REPO" && cargo build --release --quiet --example socketio_conformance)
fi

# One file at a time (each starts its own servers; the heartbeat checks
# measure real time). TAP output: .ci/run counts its "# pass N" / "# fail N".
exec timeout --kill-after=10 600 node --test --test-reporter=tap --test-concurrency=1 --test-timeout=120000 ./*.test.js
