#!/usr/bin/env bash
# Install what livefeed's browser e2e tests need. Idempotent: does nothing
# when Debian's Chromium is present and node_modules matches the lockfile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM_PATH" ]; then
  echo "e2e setup: installing Debian's chromium" >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
fi

# npm ci when node_modules is missing or older than the lockfile
# (npm writes node_modules/.package-lock.json on every install).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "e2e setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
