'use strict';
// Helpers for livefeed's Socket.IO end-to-end tests: start/stop the real
// server binary (or the conformance example) on a free port with a temp
// data dir, create, edit and delete posts over HTTP, and record the change
// events (newPost, postUpdated, postDeleted) clients receive. Every wait has a
// timeout; nothing sleeps to synchronise.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');

const REPO = path.resolve(__dirname, '..', '..');
const LIVEFEED_BIN = process.env.LIVEFEED_BIN || path.join(REPO, 'target', 'release', 'livefeed');
const CONFORMANCE_BIN =
  process.env.LIVEFEED_CONFORMANCE_BIN || path.join(REPO, 'target', 'release', 'examples', 'socketio_conformance');

/** Longest any single wait may take. */
const WAIT = 15000;

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves with the arguments of the next `event` on a socket.io-style emitter. */
function nextEvent(emitter, event, ms = WAIT) {
  let listener;
  const p = new Promise((resolve) => {
    listener = (...args) => resolve(args);
    emitter.once(event, listener);
  });
  return withTimeout(p, ms, `event ${event}`).finally(() => emitter.off?.(event, listener));
}

/** Bind 127.0.0.1:0, read the port, close. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Retries `check` until it returns truthy; bounded by `ms`. */
async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A process serving HTTP on 127.0.0.1:port, started and stopped on demand. */
class Proc {
  constructor(bin, args, port) {
    this.bin = bin;
    this.args = args;
    this.port = port;
    this.proc = null;
    this.logs = '';
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(readyPath) {
    if (!fs.existsSync(this.bin)) {
      throw new Error(`${this.bin} not found: run cargo build --release --bins --examples (or set LIVEFEED_BIN / LIVEFEED_CONFORMANCE_BIN)`);
    }
    const proc = spawn(this.bin, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const log = (c) => {
      this.logs += c.toString();
      if (this.logs.length > 100000) this.logs = this.logs.slice(-50000);
    };
    proc.stdout.on('data', log);
    proc.stderr.on('data', log);
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    let gone = null;
    this.exited.then((e) => { gone = e; });
    await until(async () => {
      if (gone) throw Object.assign(new Error(`exited during startup: ${JSON.stringify(gone)}\n${this.logs}`));
      const res = await fetch(this.url + readyPath, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return true;
    }, WAIT, `${this.bin} to answer on ${this.url}`);
  }

  /** SIGTERM, then SIGKILL if it does not exit in time. */
  async stop() {
    const proc = this.proc;
    if (!proc) return null;
    this.proc = null;
    proc.kill('SIGTERM');
    try {
      return await withTimeout(this.exited, 10000, 'exit after SIGTERM');
    } catch (err) {
      proc.kill('SIGKILL');
      await withTimeout(this.exited, 5000, 'exit after SIGKILL');
      throw err;
    }
  }
}

/** The livefeed binary on a free port with a temp data dir (kept across restarts). */
class Livefeed extends Proc {
  static async start(extraArgs = []) {
    const port = await freePort();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'livefeed-sio-'));
    const server = new Livefeed(
      LIVEFEED_BIN,
      ['--addr', `127.0.0.1:${port}`, '--data-dir', dataDir, '--log-level', 'warn', ...extraArgs],
      port,
    );
    server.dataDir = dataDir;
    await server.start('/healthz');
    return server;
  }

  async restart() {
    await this.stop();
    await this.start('/healthz');
  }

  async dispose() {
    try {
      await this.stop();
    } finally {
      fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
  }

  /** Creates a post over HTTP; resolves with the stored post. */
  async publish(title, content = 'body', headers = {}) {
    return (await this.create(title, content, headers)).post;
  }

  /**
   * One HTTP request: resolves with `{status, body, seq, headers}`, `body`
   * the parsed JSON (null when empty), `seq` the number in the `ETag`
   * (`"<seq>"`), or null without one, and `headers` the response's.
   */
  async request(method, urlPath, { body, headers = {} } = {}) {
    const res = await fetch(this.url + urlPath, {
      method,
      headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(WAIT),
    });
    const text = await res.text();
    const etag = res.headers.get('etag');
    const m = etag && /^"(\d+)"$/.exec(etag);
    return {
      status: res.status,
      body: text ? JSON.parse(text) : null,
      seq: m ? Number(m[1]) : null,
      headers: res.headers,
    };
  }

  /** `POST /posts`; resolves with `{post, seq}` (its seq is its id). */
  async create(title, content = 'body', headers = {}) {
    const res = await this.request('POST', '/posts', { body: { title, content }, headers });
    if (res.status !== 201) throw new Error(`publish failed: ${res.status} ${JSON.stringify(res.body)}`);
    return { post: res.body, seq: res.seq };
  }

  /**
   * `POST /feeds/{feed}/posts`; resolves with `{post, seq, location}`
   * (`location` the `Location` header).
   */
  async createIn(feed, title, content = 'body', headers = {}) {
    const res = await this.request('POST', `/feeds/${feed}/posts`, { body: { title, content }, headers });
    if (res.status !== 201) throw new Error(`publish to ${feed} failed: ${res.status} ${JSON.stringify(res.body)}`);
    return { post: res.body, seq: res.seq, location: res.headers.get('location') };
  }

  /** `PATCH /posts/{id}`; resolves with `{post, seq}` (the edit's seq). */
  async edit(id, fields, headers = {}) {
    const res = await this.request('PATCH', `/posts/${id}`, { body: fields, headers });
    if (res.status !== 200) throw new Error(`edit of ${id} failed: ${res.status} ${JSON.stringify(res.body)}`);
    return { post: res.body, seq: res.seq };
  }

  /** `DELETE /posts/{id}` (204 expected). */
  async remove(id, headers = {}) {
    const res = await this.request('DELETE', `/posts/${id}`, { headers });
    if (res.status !== 204) throw new Error(`delete of ${id} failed: ${res.status} ${JSON.stringify(res.body)}`);
  }

  /** Every live post (`GET /posts`, all pages), in ascending id order. */
  async allPosts() {
    const posts = [];
    let query = '?limit=100';
    for (;;) {
      const res = await this.request('GET', `/posts${query}`);
      if (res.status !== 200) throw new Error(`GET /posts failed: ${res.status} ${JSON.stringify(res.body)}`);
      posts.push(...res.body.posts);
      if (res.body.next == null) break;
      query = `?limit=100&before=${res.body.next}`;
    }
    return posts.sort((a, b) => a.id - b.id);
  }
}

/** The socketio_conformance example on a free port. */
class Conformance extends Proc {
  /** `args`: more flags, such as `--ping-interval 60s`. */
  static async start(args = []) {
    const port = await freePort();
    const server = new Conformance(CONFORMANCE_BIN, ['--port', String(port), ...args], port);
    await server.start('/engine.io/?EIO=4&transport=polling');
    return server;
  }
}

/**
 * Records every newPost a socket.io client receives (`{post, seq}`, then
 * the seq as the recovery offset); `waitFor(n)` resolves once n posts
 * arrived.
 */
class PostLog {
  constructor(socket) {
    this.posts = [];
    this.seqs = [];
    this.offsets = [];
    this.waiters = [];
    socket.on('newPost', (data, offset) => {
      this.posts.push(data.post);
      this.seqs.push(data.seq);
      this.offsets.push(offset);
      this.waiters = this.waiters.filter((w) => !w());
    });
  }

  get ids() {
    return this.posts.map((p) => p.id);
  }

  waitFor(n, ms = WAIT) {
    return withTimeout(
      new Promise((resolve) => {
        const check = () => {
          if (this.posts.length >= n) {
            resolve(this.ids);
            return true;
          }
          return false;
        };
        if (!check()) this.waiters.push(check);
      }),
      ms,
      `${n} newPost events (have ${this.posts.length})`,
    );
  }
}

/** The three events a change reaches a client as. */
const CHANGE_EVENTS = ['newPost', 'postUpdated', 'postDeleted'];

/**
 * Records every change event in arrival order, as `{event, data, offset}`
 * (`offset` is what Socket.IO passes after the data; undefined on /ws), and
 * the view they build: newPost and postUpdated set the post, postDeleted
 * removes it. Subclasses feed `record`.
 */
class ChangeLog {
  constructor() {
    this.changes = [];
    this.view = new Map();
    this.waiters = [];
  }

  record(event, data, offset) {
    this.changes.push({ event, data, offset });
    if (event === 'postDeleted') this.view.delete(data.id);
    else this.view.set(data.post.id, data.post);
    this.waiters = this.waiters.filter((w) => !w());
  }

  get seqs() {
    return this.changes.map((c) => c.data.seq);
  }

  /** The view's posts in ascending id order (as `allPosts` lists them). */
  get posts() {
    return [...this.view.values()].sort((a, b) => a.id - b.id);
  }

  /** Resolves once `check()` holds after some change (or already holds). */
  waitUntil(check, what, ms = WAIT) {
    return withTimeout(
      new Promise((resolve) => {
        const w = () => {
          if (check()) {
            resolve(this.changes);
            return true;
          }
          return false;
        };
        if (!w()) this.waiters.push(w);
      }),
      ms,
      `${what} (have ${this.changes.length} changes, last seq ${this.seqs.at(-1)})`,
    );
  }

  /** Resolves once n changes arrived. */
  waitFor(n, ms = WAIT) {
    return this.waitUntil(() => this.changes.length >= n, `${n} changes`, ms);
  }

  /** Resolves once a change with seq >= `seq` arrived. */
  waitForSeq(seq, ms = WAIT) {
    return this.waitUntil(() => this.changes.some((c) => c.data.seq >= seq), `a change with seq >= ${seq}`, ms);
  }
}

/** A socket.io client's change events. */
class SocketChangeLog extends ChangeLog {
  constructor(socket) {
    super();
    for (const event of CHANGE_EVENTS) socket.on(event, (data, offset) => this.record(event, data, offset));
  }
}

/**
 * A /ws client (the `ws` package) recording its change frames; `opened`
 * resolves with the welcome's data.
 */
class WsChangeLog extends ChangeLog {
  constructor(url) {
    super();
    this.ws = new WebSocket(url);
    this.opened = withTimeout(
      new Promise((resolve, reject) => {
        this.ws.on('error', reject);
        this.ws.on('message', (raw) => {
          const frame = JSON.parse(raw.toString());
          if (frame.event === 'welcome') resolve(frame.data);
          else if (CHANGE_EVENTS.includes(frame.event)) this.record(frame.event, frame.data, undefined);
        });
      }),
      WAIT,
      `/ws welcome from ${url}`,
    );
  }

  close() {
    this.ws.close();
  }
}

/**
 * An HS256 JWT of `claims` signed with `secret` (`header` replaces the
 * standard one, to forge odd tokens).
 */
function signJwt(secret, claims, header = { alg: 'HS256', typ: 'JWT' }) {
  const encode = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signed = `${encode(header)}.${encode(claims)}`;
  const signature = crypto.createHmac('sha256', secret).update(signed).digest('base64url');
  return `${signed}.${signature}`;
}

module.exports = {
  WAIT,
  CHANGE_EVENTS,
  Livefeed,
  Conformance,
  PostLog,
  ChangeLog,
  SocketChangeLog,
  WsChangeLog,
  freePort,
  nextEvent,
  signJwt,
  until,
  withTimeout,
};
