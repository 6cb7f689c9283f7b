#!/usr/bin/env bash
# Run livefeed's browser end-to-end tests (tests/e2e/*.test.js) with Node's
# test runner against the real server binary.
#
#   LIVEFEED_BIN   server binary (default: <repo>/target/release/livefeed,
#                  built here with `cargo build --release` when unset; the
#                  binary embeds public/, so rebuild after editing the page)
#   CHROMIUM_PATH  browser (default: /usr/bin/chromium)
#   CI=true        a missing browser or binary fails the run instead of skipping
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

bash "$HERE/setup.sh"

if [ -z "${LIVEFEED_BIN:-}" ]; then
  (cd "$REPO" && cargo build --release --quiet --bin livefeed)
  export LIVEFEED_BIN="$REPO/target/release/livefeed"
fi

cd "$HERE"
# One file at a time: each starts its own servers and a Chromium.
# TAP output: its closing "# pass N" / "# fail N" lines are what .ci/run counts.
exec timeout --kill-after=10 420 node --test --test-reporter=tap --test-concurrency=1 --test-timeout=120000 ./*.test.js
