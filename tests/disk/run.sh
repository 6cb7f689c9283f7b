#!/usr/bin/env bash
# livefeed on a real full disk: mounts a small tmpfs, runs the release
# server on it, fills the disk until creates fail, checks that the server
# says so (503 storage_unavailable, /readyz 503, /healthz, /metrics) while it
# keeps serving reads and push clients, frees the space, checks that writes
# are taken again within a bounded wait, in the same process, then restarts
# the server on the same data and checks that every post that got a 201 is
# there with its content, and nothing answered "not stored" is (check.py).
#
# Needs root (to mount) and python3; skips with a message otherwise, or
# where mounting a tmpfs is refused (a container without CAP_SYS_ADMIN).
#
#   LIVEFEED_BIN   server binary (default: <repo>/target/release/livefeed)
#   DISK_SIZE      the tmpfs's size (default: 48m)
#
# Output is TAP-like: `.ci/run` counts its "# pass N" / "# fail N".
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
BIN="${LIVEFEED_BIN:-$REPO/target/release/livefeed}"
SIZE="${DISK_SIZE:-48m}"

skip() {
  echo "disk: SKIPPED, nothing checked: $*"
  echo "# pass 0"
  echo "# fail 0"
  exit 0
}

[ "$(id -u)" = 0 ] || skip "mounting a tmpfs needs root (run as root, as CI does)"
command -v python3 >/dev/null || skip "python3 is not installed"
if [ ! -x "$BIN" ]; then
  echo "disk: no server binary at $BIN (run: cargo build --release)" >&2
  exit 1
fi

# Everything of a run in one temp dir: the mount point, the server's log
# and the pids of the servers it started.
WORK="$(mktemp -d -t livefeed-disk.XXXXXX)"
MNT="$WORK/mnt"
mkdir "$MNT"
cleanup() {
  # A server left behind by a failed check holds files on the mount.
  if [ -f "$WORK/pids" ]; then
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < "$WORK/pids"
  fi
  if mountpoint -q "$MNT"; then umount "$MNT" || umount -l "$MNT" || true; fi
  if [ "${status:-1}" = 0 ]; then rm -rf "$WORK"; else echo "disk: the server's log is $WORK/server.log"; fi
}
trap cleanup EXIT
if ! mount -t tmpfs -o "size=$SIZE,mode=0700" livefeed-disk-test "$MNT" 2>"$WORK/mount.err"; then
  why="$(cat "$WORK/mount.err")"
  status=0
  skip "mount -t tmpfs was refused ($why)"
fi
echo "disk: a $SIZE tmpfs at $MNT"

status=0
timeout --kill-after=10 300 python3 "$HERE/check.py" "$BIN" "$MNT" "$WORK/server.log" "$WORK/pids" || status=$?
exit "$status"
