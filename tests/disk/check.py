#!/usr/bin/env python3
"""livefeed on a full disk, for real: run by tests/disk/run.sh on a small
tmpfs it mounted.

    check.py BIN MOUNT LOG PIDFILE

Starts BIN with its data on MOUNT, creates posts, connects a websocket
client, fills the disk with a filler file and creates posts (from several
threads at once) until one is refused, then checks what the server says
while it cannot write (503 storage_unavailable without internal text,
/readyz 503, /healthz degraded, /metrics), that it serves reads and keeps
its websocket client meanwhile (a reader polls all along), frees the space
and waits (bounded) for writes to be taken again, does it all once more (a
second full disk), and finally restarts the server on the same data and
checks that every post that got a 201 is there with its content, that no
post answered "nothing was stored" is, and that nothing else is but a post
answered "may or may not have been stored", with its own content.

Python's standard library only. Output: one `ok N - ...` / `not ok N - ...`
line per check, then `# pass N` and `# fail N`.
"""

import base64
import errno
import http.client
import json
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

WAIT = 30.0  # the longest any single wait may take, in seconds
RECOVERY_WAIT = 20.0  # the bound on writes coming back once space is freed
MAX_POSTS = 20000  # creates tried before giving up on filling the disk
WRITERS = 4  # concurrent creators while the disk fills: failing rounds of several writes
CONTENT = "x" * 1500  # a post's padding: the disk fills in fewer posts
INTERNAL = ("os error", "No space", "sled", "StorageFull", "Io(")


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        n = self.passed + self.failed + 1
        if ok:
            self.passed += 1
            print(f"ok {n} - {what}", flush=True)
        else:
            self.failed += 1
            print(f"not ok {n} - {what}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def finish(self):
        print(f"# pass {self.passed}")
        print(f"# fail {self.failed}")
        sys.exit(1 if self.failed else 0)


class Abort(Exception):
    pass


class Server:
    """The release binary, writing its log to `log`."""

    def __init__(self, binary, data, log, pidfile):
        self.log_path = log
        self.log = open(log, "ab")
        # The log is shared by both servers of a run: look for the address past what
        # earlier servers wrote.
        start = self.log.tell()
        self.proc = subprocess.Popen(
            [binary, "serve", "--addr", "127.0.0.1:0", "--data-dir", data,
             "--log-format", "pretty", "--log-level", "info"],
            stdout=self.log, stderr=self.log)
        with open(pidfile, "a") as f:
            f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + WAIT
        self.addr = None
        while self.addr is None:
            if self.proc.poll() is not None:
                raise Abort(f"the server exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise Abort("the server did not report its address")
            found = re.findall(rb"listening on http://([0-9.]+):([0-9]+)", open(log, "rb").read()[start:])
            if found:
                host, port = found[-1]
                self.addr = (host.decode(), int(port))
            else:
                time.sleep(0.05)

    def tail(self):
        return open(self.log_path, "rb").read()[-4000:].decode(errors="replace")

    def stop(self):
        """SIGTERM; the exit code (None if it did not exit in time)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


def request(addr, method, path, body=None):
    """(status, body bytes); one connection per request."""
    conn = http.client.HTTPConnection(*addr, timeout=WAIT)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=headers)
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def as_json(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return None


class Ws:
    """A minimal websocket client of /ws: a thread reads frames into a
    queue and answers pings."""

    def __init__(self, addr, query=""):
        self.sock = socket.create_connection(addr, timeout=WAIT)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (f"GET /ws{query} HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\n"
             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
             f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Abort("the websocket handshake was cut")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise Abort(f"websocket refused: {head[:200]!r}")
        self.sock.settimeout(None)
        self.events = queue.Queue()
        self.closed = None  # the close code, once closed
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        with self.lock:
            self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def _read(self):
        try:
            while True:
                b0, b1 = self._exact(2)
                opcode, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._exact(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._exact(8))[0]
                payload = self._exact(n)
                if opcode == 0x1:
                    self.events.put(json.loads(payload))
                elif opcode == 0x9:
                    self._send(0xA, payload)
                elif opcode == 0x8:
                    self.closed = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                    break
        except (EOFError, OSError):
            if self.closed is None:
                self.closed = 1006
        self.events.put(None)

    def next(self, timeout=WAIT):
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            raise Abort("no websocket frame in time")
        if event is None:
            raise Abort(f"the websocket closed ({self.closed})")
        return event

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def fill(path):
    """Writes `path` until the disk is full; how many bytes it took."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 64 << 10, 4 << 10, 512):
            block = os.urandom(size)
            while True:
                try:
                    f.write(block)
                    written += size
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    return written


def until_refused(addr, create):
    """Creates posts from WRITERS threads until one is refused; that
    (status, reply), or None if none was."""
    refused = []
    done = threading.Event()

    def writer():
        for _ in range(MAX_POSTS // WRITERS):
            if done.is_set():
                return
            status, reply = create(addr)
            if status != 201:
                refused.append((status, reply))
                done.set()
                return

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 4)
    return refused[0] if refused else None


class Reader(threading.Thread):
    """Reads a page of posts over and over until stopped; counts answers
    that were not 200."""

    def __init__(self, addr):
        super().__init__(daemon=True)
        self.addr = addr
        self.reads = 0
        self.failures = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                status, body = request(self.addr, "GET", "/posts?limit=5")
                if status != 200:
                    self.failures.append(f"{status} {body[:200]!r}")
            except OSError as e:
                self.failures.append(repr(e))
            self.reads += 1
            self.stopping.wait(0.02)

    def stop(self):
        self.stopping.set()
        self.join(WAIT)


def metric(addr, name):
    status, body = request(addr, "GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return None


def all_posts(addr):
    """Every post of feed main, by id, paging with `before`."""
    posts, before = {}, None
    while True:
        path = "/posts?limit=100" + (f"&before={before}" if before else "")
        status, body = request(addr, "GET", path)
        if status != 200:
            raise Abort(f"GET {path} -> {status} {body[:200]!r}")
        page = json.loads(body)
        for post in page["posts"]:
            posts[post["id"]] = post
        before = page["next"]
        if before is None:
            return posts


def main():
    binary, mount, log, pidfile = sys.argv[1:5]
    data = os.path.join(mount, "data")
    filler = os.path.join(mount, "filler")
    t = Checks()
    acked = {}  # id -> (title, content): answered 201
    not_stored = {}  # title -> message: answered "nothing was stored"
    maybe = {}  # title -> content: answered "may or may not have been stored"
    counter = [0]
    counting = threading.Lock()

    def create(addr):
        with counting:
            counter[0] += 1
            n = counter[0]
        title, content = f"post {n}", f"{n} {CONTENT}"
        status, body = request(addr, "POST", "/posts", {"title": title, "content": content})
        reply = as_json(body) or {}
        if status == 201:
            acked[reply["id"]] = (title, content)
        elif status == 503 and reply.get("error", {}).get("code") == "storage_unavailable":
            message = reply["error"]["message"]
            if "may or may not" in message:
                maybe[title] = content
            else:
                not_stored[title] = message
        return status, reply

    server = None
    try:
        server = Server(binary, data, log, pidfile)
        addr = server.addr
        print(f"# server at {addr[0]}:{addr[1]}, data in {data}", flush=True)
        for _ in range(5):
            create(addr)
        t.check(len(acked) == 5, "posts are created while there is room")
        before_ws = set(acked)  # the websocket client has these already
        ws = Ws(addr)
        welcome = ws.next()
        t.check(welcome["event"] == "welcome", "a websocket client connects", welcome)
        reader = Reader(addr)
        reader.start()

        filled = fill(filler)
        print(f"# the filler took {filled} bytes", flush=True)
        refused = until_refused(addr, create)
        if not t.check(refused is not None, "creates fail once the disk is full",
                       f"{len(acked)} posts created"):
            raise Abort("the disk never filled up")
        status, reply = refused
        error = reply.get("error", {})
        t.check(status == 503 and error.get("code") == "storage_unavailable",
                "the failed create is 503 storage_unavailable", f"{status} {reply}")
        message = error.get("message", "")
        t.check(message and not any(s in message for s in INTERNAL),
                "its message is livefeed's own, without internal text", message)
        print(f"# {len(acked)} posts created before the disk filled up; then: {message}", flush=True)

        status, reply = create(addr)
        t.check(status == 503 and "nothing was stored" in reply.get("error", {}).get("message", ""),
                "later creates are refused: nothing stored", f"{status} {reply}")
        first = min(acked)
        status, body = request(addr, "PATCH", f"/posts/{first}", {"title": "edited"})
        t.check(status == 503 and (as_json(body) or {}).get("error", {}).get("code") == "storage_unavailable",
                "edits are refused with 503 storage_unavailable", f"{status} {body[:200]!r}")
        status, body = request(addr, "DELETE", f"/posts/{first}")
        t.check(status == 503, "deletes are refused with 503", f"{status} {body[:200]!r}")
        status, body = request(addr, "GET", "/readyz")
        t.check(status == 503 and as_json(body) == {"ready": False}, "/readyz answers 503",
                f"{status} {body!r}")
        status, body = request(addr, "GET", "/healthz")
        health = as_json(body) or {}
        t.check(status == 200 and health.get("status") == "degraded"
                and health.get("storage") == {"state": "failing", "reason": "disk_full"},
                "/healthz says storage is failing: the disk is full", f"{status} {health}")
        t.check(metric(addr, "livefeed_storage_healthy") == 0, "/metrics: livefeed_storage_healthy 0")
        failures = metric(addr, "livefeed_storage_failures_total")
        t.check(failures is not None and failures >= 1, "/metrics counts the failure",
                f"livefeed_storage_failures_total {failures}")
        status, body = request(addr, "GET", f"/posts/{first}")
        post = as_json(body) or {}
        t.check(status == 200 and post.get("content") == acked[first][1],
                "reads are served while writes fail", f"{status} {body[:200]!r}")
        resumed = Ws(addr, "?since=0")
        resumed.next()  # welcome
        replayed = []
        while not replayed or replayed[-1] < max(acked):
            event = resumed.next()
            replayed.append(event["data"]["post"]["id"])
        t.check(set(acked) <= set(replayed),
                "a websocket client resuming with since=0 meanwhile gets every stored post",
                f"missing {sorted(set(acked) - set(replayed))[:10]}")

        os.remove(filler)
        freed = time.monotonic()
        deadline = freed + RECOVERY_WAIT
        while request(addr, "GET", "/readyz")[0] != 200:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        ready = request(addr, "GET", "/readyz")[0] == 200
        t.check(ready, f"/readyz is 200 again within {RECOVERY_WAIT:.0f} s of freeing space",
                f"still not ready; log:\n{server.tail()}")
        print(f"# writes were taken again {time.monotonic() - freed:.1f} s after freeing space", flush=True)
        status, reply = create(addr)
        t.check(status == 201, "creates succeed again, in the same process", f"{status} {reply}")
        last = reply.get("id", 0)
        status, body = request(addr, "GET", "/healthz")
        health = as_json(body) or {}
        t.check(health.get("status") == "ok" and health.get("storage", {}).get("state") == "ok",
                "/healthz says ok again", health)
        t.check(metric(addr, "livefeed_storage_healthy") == 1, "/metrics: livefeed_storage_healthy 1")

        # The disk fills up again: handled the same way, and again undone.
        fill(filler)
        refused = until_refused(addr, create)
        t.check(refused is not None and refused[0] == 503
                and refused[1].get("error", {}).get("code") == "storage_unavailable",
                "the disk full a second time: 503 storage_unavailable again", refused)
        t.check(request(addr, "GET", "/readyz")[0] == 503, "/readyz 503 again")
        os.remove(filler)
        deadline = time.monotonic() + RECOVERY_WAIT
        while request(addr, "GET", "/readyz")[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        status, reply = create(addr)
        t.check(status == 201, "and creates succeed again after that", f"{status} {reply}")
        last = reply.get("id", 0)
        failures = metric(addr, "livefeed_storage_failures_total")
        t.check(failures is not None and failures >= 2, "/metrics counts both failures",
                f"livefeed_storage_failures_total {failures}")

        # The first client saw every stored post once, in order, and
        # nothing answered "not stored".
        seen = []
        while not seen or seen[-1] < last:
            event = ws.next()
            if event["event"] == "newPost":
                seen.append(event["data"]["post"]["id"])
        t.check(ws.closed is None, "the websocket client stayed connected throughout", ws.closed)
        live = set(acked) - before_ws
        extra = [i for i in seen if i not in acked]
        t.check(seen == sorted(seen) and len(seen) == len(set(seen)), "it got every post once, in order")
        t.check(live <= set(seen), "it got every post that got a 201 since it connected",
                f"missing {sorted(live - set(seen))[:10]}")
        reader.stop()
        t.check(not reader.failures, f"every read while the disk was full and after got a 200 ({reader.reads} reads)",
                reader.failures[:5])

        code = server.stop()
        t.check(code == 0, "SIGTERM: the server exits 0", f"exit {code}")
        server = Server(binary, data, log, pidfile)
        addr = server.addr
        posts = all_posts(addr)
        lost = [i for i, (title, content) in acked.items()
                if posts.get(i, {}).get("title") != title or posts.get(i, {}).get("content") != content]
        t.check(not lost, f"after a restart every post that got a 201 is there, unchanged ({len(acked)})",
                f"lost or changed: {lost[:10]}")
        ghosts = [p["id"] for p in posts.values() if p["title"] in not_stored]
        t.check(not ghosts, "no post answered \"nothing was stored\" is there", ghosts[:10])
        others = [p for i, p in posts.items() if i not in acked]
        unexplained = [p["id"] for p in others if maybe.get(p["title"]) != p["content"]]
        t.check(not unexplained, "nothing else is there but posts answered \"may or may not\", "
                f"with their own content ({len(others)} of them)", unexplained[:10])
        t.check(sorted(posts) == sorted(set(posts)) and set(extra) <= set(posts),
                "what the websocket client got beyond the 201s is stored", extra[:10])
        code = server.stop()
        server = None
        t.check(code == 0, "SIGTERM after the restart: exit 0", f"exit {code}")
    except (Abort, OSError) as e:
        t.check(False, "the run went through", e)
        if server is not None:
            print("# server log:\n" + "\n".join("# " + l for l in server.tail().splitlines()))
    finally:
        if server is not None:
            server.stop()
    t.finish()


if __name__ == "__main__":
    main()
