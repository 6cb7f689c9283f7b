#!/usr/bin/env bash
# The shipped nginx configuration (deploy/nginx/livefeed.conf) in front of a
# real two-node cluster: starts redis-server, two release livefeed nodes on
# it and nginx (all on free ports, in one temp dir), then runs
# tests/nginx/*.test.js: the stock socket.io-client with default transports
# and polling only, /ws and /events, all through nginx. Every process is
# stopped on exit.
#
#   LIVEFEED_BIN  server (default: <repo>/target/release/livefeed)
#   NGINX_CONF    the config under test (default: deploy/nginx/livefeed.conf);
#                 it must name the nodes 127.0.0.1:8081 and 127.0.0.1:8082 and
#                 `listen 80;`, which are replaced by the test's ports
#   CI=true       a missing nginx or redis-server fails instead of skipping
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$HERE"

# Longest any process gets to start or stop, in tenths of a second.
STARTUP_TENTHS=300
STOP_TENTHS=100

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "nginx e2e: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

CONF="${NGINX_CONF:-$REPO/deploy/nginx/livefeed.conf}"
NGINX="$(command -v nginx || true)"
[ -n "$NGINX" ] || [ ! -x /usr/sbin/nginx ] || NGINX=/usr/sbin/nginx
REDIS="$(command -v redis-server || true)"
missing=()
[ -n "$NGINX" ] || missing+=(nginx)
[ -n "$REDIS" ] || missing+=(redis-server)

run_tests() {
  # TAP output: .ci/run counts its "# pass N" / "# fail N".
  timeout --kill-after=10 300 node --test --test-reporter=tap --test-concurrency=1 --test-timeout=120000 ./*.test.js
}

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "${CI:-}" = true ]; then
    echo "nginx e2e: FAILED: ${missing[*]} not installed (CI=true; .ci/run installs the Debian packages)" >&2
    exit 1
  fi
  echo "nginx e2e: SKIPPED the cluster test: ${missing[*]} not installed (Debian: apt-get install ${missing[*]})" >&2
  export LIVEFEED_NGINX_SKIP="${missing[*]} not installed"
  run_tests
  exit
fi

export LIVEFEED_BIN="${LIVEFEED_BIN:-$REPO/target/release/livefeed}"
if [ ! -x "$LIVEFEED_BIN" ]; then
  (cd "$REPO" && cargo build --release --quiet --bin livefeed)
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/livefeed-nginx.XXXXXX")"
# nginx's workers drop to an unprivileged user when it runs as root (as in
# CI): they must be able to reach their temp dirs in here.
chmod 755 "$TMP"
pids=()

stop() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < STOP_TENTHS; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$? i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do stop "${pids[i]}"; done
  if [ "$status" != 0 ]; then
    for log in "$TMP"/*.log "$TMP"/nginx/*.log; do
      [ -s "$log" ] || continue
      echo "--- $log (last 40 lines)" >&2
      tail -n 40 "$log" >&2
    done
  fi
  rm -rf "$TMP"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until `curl` gets a 2xx from $1 while process $2 runs.
wait_ready() {
  local url=$1 pid=$2 what=$3 i
  for ((i = 0; i < STARTUP_TENTHS; i++)); do
    kill -0 "$pid" 2>/dev/null || { echo "nginx e2e: $what exited during startup" >&2; return 1; }
    curl -fsS -m 1 -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nginx e2e: $what not ready at $url within $((STARTUP_TENTHS / 10)) s" >&2
  return 1
}

# Four distinct free ports (held open together so they differ).
read -r REDIS_PORT PORT_A PORT_B NGINX_PORT < <(node -e '
  const net = require("node:net");
  const servers = [0, 1, 2, 3].map(() => net.createServer());
  Promise.all(servers.map((s) => new Promise((ok) => s.listen(0, "127.0.0.1", ok)))).then(() => {
    console.log(servers.map((s) => s.address().port).join(" "));
    servers.forEach((s) => s.close());
  });')

mkdir -p "$TMP/redis" "$TMP/nginx"
"$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TMP/redis" \
  --appendonly yes --appendfsync always --save "" >"$TMP/redis.log" 2>&1 &
pids+=($!)
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"

for node in a b; do
  port=$PORT_A; [ "$node" = a ] || port=$PORT_B
  "$LIVEFEED_BIN" --addr "127.0.0.1:$port" --data-dir "$TMP/$node" --redis-url "$REDIS_URL" \
    --log-level warn >"$TMP/$node.log" 2>&1 &
  pids+=($!)
  wait_ready "http://127.0.0.1:$port/readyz" "$!" "livefeed node $node"
done

# The config under test with the test's ports, inside a minimal nginx.conf
# whose pid, logs and temp files live in $TMP/nginx.
sed -e "s/127\.0\.0\.1:8081/127.0.0.1:$PORT_A/g" \
    -e "s/127\.0\.0\.1:8082/127.0.0.1:$PORT_B/g" \
    -e "s/^\([[:space:]]*\)listen 80;/\1listen 127.0.0.1:$NGINX_PORT;/" \
    "$CONF" >"$TMP/nginx/livefeed.conf"
if grep -qE '127\.0\.0\.1:808[12]\b|listen 80;' "$TMP/nginx/livefeed.conf" \
  || ! grep -q "listen 127.0.0.1:$NGINX_PORT;" "$TMP/nginx/livefeed.conf"; then
  echo "nginx e2e: $CONF must name 127.0.0.1:8081, 127.0.0.1:8082 and 'listen 80;' (replaced by the test's ports)" >&2
  exit 1
fi
N="$TMP/nginx"
cat >"$N/nginx.conf" <<EOF
worker_processes 2;
pid $N/nginx.pid;
error_log $N/error.log notice;
events { worker_connections 1024; }
http {
    log_format upstream '\$remote_addr "\$request" \$status upstream=\$upstream_addr origin="\$http_origin"';
    access_log $N/access.log upstream;
    client_body_temp_path $N/client_body;
    proxy_temp_path $N/proxy;
    fastcgi_temp_path $N/fastcgi;
    uwsgi_temp_path $N/uwsgi;
    scgi_temp_path $N/scgi;
    include $N/livefeed.conf;
}
EOF
"$NGINX" -q -t -p "$N" -c "$N/nginx.conf" -e "$N/error.log"
"$NGINX" -p "$N" -c "$N/nginx.conf" -e "$N/error.log" -g 'daemon off;' &
pids+=($!)
wait_ready "http://127.0.0.1:$NGINX_PORT/healthz" "$!" nginx

export LIVEFEED_NGINX_URL="http://127.0.0.1:$NGINX_PORT"
export LIVEFEED_NODE_URLS="http://127.0.0.1:$PORT_A,http://127.0.0.1:$PORT_B"
echo "nginx e2e: $("$NGINX" -v 2>&1) on :$NGINX_PORT ($CONF), nodes :$PORT_A :$PORT_B, redis :$REDIS_PORT" >&2
run_tests
