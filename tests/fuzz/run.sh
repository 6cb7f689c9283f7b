#!/usr/bin/env bash
# Fuzz livefeed's HTTP API with schemathesis, driven by the server's own
# GET /openapi.json: every operation, positive and negative inputs, with
# every check schemathesis has (`--checks all`): no response is a 5xx;
# every status, content type, header and body matches the document;
# schema-valid requests are accepted and invalid ones refused; a method a
# path does not describe gets 405 with `Allow`, and `OPTIONS` lists the
# described methods. The few statuses the protocols give to requests the
# fuzzer cannot make succeed are named, with the reasons, in
# schemathesis.toml; hooks.py keeps the client from reusing a connection
# a websocket upgrade took over. Then the server must still answer /healthz and shut
# down cleanly.
#
# Needs the release binary: cargo build --release
#
#   LIVEFEED_BIN        server binary (default: <repo>/target/release/livefeed)
#   FUZZ_MAX_EXAMPLES   generated cases per operation and phase (default: 100)
#   FUZZ_SEED           hypothesis seed (default: fixed, so runs repeat)
#   FUZZ_TIME_LIMIT     seconds the schemathesis run may take (default: 170)
#
# /events is left out: it is an endless stream, which schemathesis would
# wait on until its request timeout. tests/it/sse.rs covers it, and
# tests/it/openapi.rs holds its responses (including the 400s) to the document.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BIN="${LIVEFEED_BIN:-$REPO/target/release/livefeed}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-100}"
SEED="${FUZZ_SEED:-20261125}"
TIME_LIMIT="${FUZZ_TIME_LIMIT:-170}"

if [ ! -x "$BIN" ]; then
  echo "fuzz: no server binary at $BIN (run: cargo build --release)" >&2
  exit 1
fi

# The virtualenv, (re)built when the pinned requirements change.
VENV="$HERE/.venv"
if ! cmp -s "$HERE/requirements.txt" "$VENV/.installed-requirements" 2>/dev/null; then
  echo "fuzz: installing schemathesis into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  cp "$HERE/requirements.txt" "$VENV/.installed-requirements"
fi

DATA="$(mktemp -d)"
LOG="$DATA.log"
SERVER=""
cleanup() {
  if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
    kill -TERM "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
  fi
  if [ -f "$LOG" ]; then
    mkdir -p "$HERE/report"
    cp "$LOG" "$HERE/report/server.log"
  fi
  rm -rf "$DATA" "$LOG"
}
trap cleanup EXIT

# Port 0: the server picks a free port and logs it.
# A JWT secret, so every Authorization header and ?token= the fuzzer makes
# up goes through the token checks.
"$BIN" serve --addr 127.0.0.1:0 --data-dir "$DATA" --jwt-secret fuzz-secret --log-format pretty --log-level info >"$LOG" 2>&1 &
SERVER=$!
URL=""
for _ in $(seq 1 100); do
  URL="$(grep -o 'listening on http://[0-9.:]*' "$LOG" | head -n1 | sed 's/listening on //' || true)"
  [ -n "$URL" ] && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$LOG" >&2; echo "fuzz: the server did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { cat "$LOG" >&2; echo "fuzz: the server did not report its address" >&2; exit 1; }
echo "fuzz: server $URL (pid $SERVER), data in $DATA"

status=0
# schemathesis keeps a cache in the working directory: keep it here.
cd "$HERE"
SCHEMATHESIS_HOOKS="$HERE/hooks.py" \
  timeout --kill-after=10 "$TIME_LIMIT" "$VENV/bin/st" --config-file "$HERE/schemathesis.toml" run "$URL/openapi.json" \
  --checks all \
  --exclude-path /events \
  --phases ${FUZZ_PHASES:-examples,coverage,fuzzing} \
  --mode all \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --workers 1 \
  --request-timeout 30 \
  --suppress-health-check all \
  --report "${FUZZ_REPORTS:-junit}" --report-dir "$HERE/report" \
  || status=$?

# Whatever happened, the server must still be up and answering.
if ! kill -0 "$SERVER" 2>/dev/null; then
  echo "fuzz: the server died" >&2
  tail -n 50 "$LOG" >&2
  exit 1
fi
health="$("$VENV/bin/python" -c 'import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
except Exception as e:
    print(e)' "$URL/healthz")"
if [ "$health" != "200" ]; then
  echo "fuzz: /healthz answered '$health' after the run" >&2
  exit 1
fi
echo "fuzz: /healthz still answers 200"

kill -TERM "$SERVER"
server_exit=0
wait "$SERVER" || server_exit=$?
SERVER=""
if [ "$server_exit" -ne 0 ]; then
  echo "fuzz: the server exited with $server_exit on SIGTERM" >&2
  tail -n 50 "$LOG" >&2
  exit 1
fi
if grep -q 'panicked' "$LOG"; then
  echo "fuzz: the server panicked during the run" >&2
  grep -B2 -A5 'panicked' "$LOG" >&2
  exit 1
fi

if [ "$status" -ne 0 ]; then
  echo "fuzz: schemathesis found problems (exit $status); report in $HERE/report" >&2
  exit "$status"
fi
echo "fuzz: passed"
