'use strict';
// The shipped nginx configuration (deploy/nginx/livefeed.conf) in front of
// two cluster nodes, started by run.sh: the stock socket.io-client with
// default transports and with polling only, /ws and /events, all through
// nginx, each get every post, whichever node took it. The Socket.IO clients
// connect from distinct loopback addresses (127.0.0.2, .3, ...), as clients
// on different machines would, so they spread over both nodes.
//
// Also: README.md and docs/cluster.md show that file verbatim.

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { io } = require('socket.io-client');
const WebSocket = require('ws');

const REPO = path.resolve(__dirname, '..', '..');
const CONF = path.join(REPO, 'deploy', 'nginx', 'livefeed.conf');
const NGINX = process.env.LIVEFEED_NGINX_URL;
const NODES = (process.env.LIVEFEED_NODE_URLS || '').split(',').filter(Boolean);
const SKIP = process.env.LIVEFEED_NGINX_SKIP || (NGINX ? false : 'LIVEFEED_NGINX_URL unset: run tests/nginx/run.sh');

/** Longest any single wait may take. */
const WAIT = 20000;
/** Socket.IO clients of each kind (default transports, polling only). */
const CLIENTS = 16;

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Marks `promise` as handled, so that one a failed test never awaited does
 * not end the run as an unhandled rejection; awaiting it still throws.
 */
function handled(promise) {
  promise.catch(() => {});
  return promise;
}

/** Retries `check` until it returns truthy; bounded by `ms`. */
async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `livefeed_connected_clients` of one node, read from it directly. */
async function connectedClients(nodeUrl) {
  const res = await fetch(`${nodeUrl}/metrics`, { signal: AbortSignal.timeout(WAIT) });
  const text = await res.text();
  const m = /^livefeed_connected_clients (\d+)$/m.exec(text);
  assert.ok(m, `no livefeed_connected_clients in ${nodeUrl}/metrics`);
  return Number(m[1]);
}

async function connectedPerNode() {
  return Promise.all(NODES.map(connectedClients));
}

/** Waits until the nodes together hold `n` push clients; resolves with each node's count. */
async function waitForClients(n, what) {
  let counts = [];
  await until(
    async () => {
      counts = await connectedPerNode();
      return counts.reduce((a, b) => a + b, 0) === n;
    },
    WAIT,
    `${n} push clients on the nodes (${what})`,
  ).catch((err) => {
    throw new Error(`${err.message}: have ${JSON.stringify(counts)}`);
  });
  return counts;
}

/** `POST /posts` on `base`; resolves with the stored post. */
async function createPost(base, title) {
  const res = await fetch(`${base}/posts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ title, content: `created through ${base}` }),
    signal: AbortSignal.timeout(WAIT),
  });
  const body = await res.json();
  assert.equal(res.status, 201, `POST ${base}/posts: ${res.status} ${JSON.stringify(body)}`);
  return body;
}

/** Records a client's newPost posts; `waitFor(n)` resolves once n arrived. */
class Posts {
  constructor(name) {
    this.name = name;
    this.posts = [];
    this.waiters = [];
  }

  add(post) {
    this.posts.push(post);
    this.waiters = this.waiters.filter((w) => !w());
  }

  waitFor(n) {
    return withTimeout(
      new Promise((resolve) => {
        const check = () => this.posts.length >= n && (resolve(this.posts), true);
        if (!check()) this.waiters.push(check);
      }),
      WAIT,
      `${this.name}: ${n} newPost (have ${this.posts.length})`,
    );
  }
}

/**
 * A socket.io client through nginx from `localAddress` (`origin`: the
 * `Origin` header a browser page would send; Node sends none).
 */
function socketIoClient(name, localAddress, transports, origin) {
  const socket = io(NGINX, {
    reconnection: false,
    ...(transports ? { transports } : {}),
    // Polling goes through the agent, the websocket through localAddress.
    agent: new http.Agent({ localAddress }),
    localAddress,
    ...(origin ? { extraHeaders: { origin } } : {}),
  });
  const posts = new Posts(name);
  socket.on('newPost', (data) => posts.add(data.post));
  let upgraded = null;
  if (!transports) {
    upgraded = new Promise((resolve) => socket.io.on('open', () => socket.io.engine.once('upgrade', resolve)));
  }
  const connected = new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', (err) => reject(new Error(`${name} from ${localAddress}: ${err.message}`)));
  });
  return { name, socket, posts, upgraded, connected: handled(withTimeout(connected, WAIT, `${name} connect`)) };
}

/** A /ws client through nginx (`origin` as above); `opened` resolves with the welcome. */
function wsClient(name, origin) {
  const ws = new WebSocket(`${NGINX.replace(/^http/, 'ws')}/ws`, origin ? { origin } : {});
  const posts = new Posts(name);
  const opened = new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('unexpected-response', (_, res) => {
      const err = new Error(`${name}: HTTP ${res.statusCode} instead of an upgrade`);
      err.status = res.statusCode;
      reject(err);
      res.resume();
    });
    ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString());
      if (frame.event === 'welcome') resolve(frame.data);
      else if (frame.event === 'newPost') posts.add(frame.data.post);
    });
  });
  return { name, ws, posts, opened: handled(withTimeout(opened, WAIT, `${name} welcome`)) };
}

/** An /events (server-sent events) client through nginx; `opened` resolves on its first bytes. */
function sseClient(name) {
  const abort = new AbortController();
  const posts = new Posts(name);
  const opened = (async () => {
    const res = await fetch(`${NGINX}/events`, { signal: abort.signal });
    assert.equal(res.status, 200, `${name}: GET /events answered ${res.status}`);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let first = true;
    let signalOpen;
    const open = new Promise((resolve) => (signalOpen = resolve));
    (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        if (first) {
          first = false;
          signalOpen();
        }
        buffer += value;
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event === 'newPost') posts.add(JSON.parse(data).post);
        }
      }
    })().catch(() => {});
    await open;
  })();
  return { name, abort, posts, opened: handled(withTimeout(opened, WAIT, `${name} first bytes`)) };
}

describe('README.md and docs/cluster.md', () => {
  const conf = fs.readFileSync(CONF, 'utf8');
  for (const doc of ['README.md', 'docs/cluster.md']) {
    it(`${doc} shows deploy/nginx/livefeed.conf verbatim`, () => {
      const text = fs.readFileSync(path.join(REPO, doc), 'utf8');
      const blocks = [...text.matchAll(/^```nginx\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
      assert.equal(blocks.length, 1, `${doc}: expected one nginx block, found ${blocks.length}`);
      const shown = blocks[0].split('\n');
      const line = conf.split('\n').findIndex((l, i) => l !== shown[i]);
      assert.ok(
        blocks[0] === conf,
        `${doc}'s nginx block differs from deploy/nginx/livefeed.conf at line ${line + 1}: ` +
          `${JSON.stringify(shown[line])} instead of ${JSON.stringify(conf.split('\n')[line])}`,
      );
    });
  }
});

describe('the shipped nginx config in front of two nodes', { skip: SKIP }, () => {
  const sio = [];
  const push = [];
  const expected = [];

  after(() => {
    for (const c of sio) c.socket.disconnect();
    for (const c of push) {
      if (c.ws) c.ws.close();
      if (c.abort) c.abort.abort();
    }
  });

  it('every stock socket.io-client connects: default transports (upgraded to websocket) and polling only', async () => {
    assert.equal(NODES.length, 2, 'LIVEFEED_NODE_URLS names two nodes');
    assert.deepEqual(await connectedPerNode(), [0, 0], 'the nodes start with no push clients');
    for (let i = 0; i < CLIENTS; i++) {
      sio.push(socketIoClient(`default #${i}`, `127.0.0.${2 + i}`));
      sio.push(socketIoClient(`polling #${i}`, `127.0.0.${2 + CLIENTS + i}`, ['polling']));
    }
    const results = await Promise.allSettled(sio.map((c) => c.connected));
    const failed = results.filter((r) => r.status === 'rejected').map((r) => r.reason.message);
    const ok = (kind) => sio.filter((c, i) => c.name.startsWith(kind) && results[i].status === 'fulfilled').length;
    assert.deepEqual(
      failed,
      [],
      `connected through nginx: ${ok('default')} of ${CLIENTS} with default transports, ` +
        `${ok('polling')} of ${CLIENTS} with polling only`,
    );
    for (const c of sio) {
      if (c.upgraded) {
        const transport = await withTimeout(c.upgraded, WAIT, `${c.name}: upgrade to websocket`);
        assert.equal(transport.name, 'websocket', c.name);
      } else {
        assert.equal(c.socket.io.engine.transport.name, 'polling', c.name);
      }
    }
  });

  it('the Socket.IO clients are spread over both nodes', async () => {
    const counts = await waitForClients(sio.length, 'Socket.IO clients');
    assert.ok(
      counts.every((n) => n > 0),
      `clients from ${sio.length} addresses all landed on one node: ${JSON.stringify(counts)}`,
    );
  });

  it('/ws and /events clients connect, spread over both nodes', async () => {
    const before = await connectedPerNode();
    // One at a time, so that least_conn sees each one's predecessors.
    const clients = [
      () => wsClient('/ws #0'),
      () => wsClient('/ws #1'),
      () => sseClient('/events #0'),
      () => sseClient('/events #1'),
    ];
    for (const make of clients) {
      const c = make();
      push.push(c);
      await c.opened;
      await waitForClients(before[0] + before[1] + push.length, c.name);
    }
    const now = await connectedPerNode();
    assert.ok(
      now.every((n, i) => n > before[i]),
      `/ws and /events clients through nginx all landed on one node: ${JSON.stringify(before)} -> ${JSON.stringify(now)}`,
    );
  });

  it('a post created through nginx, on each node, and over Socket.IO polling reaches every client', async () => {
    // Every client is registered with its node's hub (counted): none can miss a post.
    await waitForClients(sio.length + push.length, 'all clients');
    expected.push(await createPost(NGINX, 'through nginx'));
    for (const [i, node] of NODES.entries()) expected.push(await createPost(node, `on node ${i}`));
    const author = sio.find((c) => c.name.startsWith('polling'));
    const reply = await author.socket
      .timeout(WAIT)
      .emitWithAck('createPost', { title: 'over polling', content: 'via nginx' });
    assert.ok(reply.post, `createPost over polling: ${JSON.stringify(reply)}`);
    expected.push(reply.post);
    assert.deepEqual(
      expected.map((p) => p.id),
      [...expected.map((p) => p.id)].sort((a, b) => a - b),
    );
    for (const c of [...sio, ...push]) {
      const got = await c.posts.waitFor(expected.length);
      assert.deepEqual(got, expected, `${c.name} got every post once, in order`);
    }
  });

  it('a page served through nginx may open /ws and Socket.IO; a page on another site may not', async () => {
    // livefeed accepts a browser's Origin when it names the Host nginx passes on.
    const page = socketIoClient('page', '127.0.0.200', undefined, NGINX);
    const ws = wsClient('page /ws', NGINX);
    const evil = 'http://evil.example';
    const evilSocket = socketIoClient('other site', '127.0.0.201', ['polling'], evil);
    const evilWs = wsClient('other site /ws', evil);
    try {
      await page.connected;
      const transport = await withTimeout(page.upgraded, WAIT, 'page: upgrade to websocket');
      assert.equal(transport.name, 'websocket');
      await ws.opened;
      await assert.rejects(evilSocket.connected, /other site/);
      await assert.rejects(evilWs.opened, (err) => err.status === 403);
    } finally {
      for (const c of [page, evilSocket]) c.socket.disconnect();
      for (const c of [ws, evilWs]) c.ws.terminate();
    }
  });
});
