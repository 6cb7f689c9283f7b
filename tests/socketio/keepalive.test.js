'use strict';
// Node's own HTTP client with a keep-alive agent (Node 20's default
// global agent is one) against the real livefeed binary. A request that
// says `Connection: close` must get a response that says it too: Node
// returns the socket to its pool unless the response says close, and the
// next request on that socket, which the server has closed, fails with
// "socket hang up" (what node-fetch 3, which sends `Connection: close`,
// and the official Socket.IO protocol suites ran into).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const { WAIT, Livefeed } = require('./helpers');

const ROUNDS = 10;

let server;

before(async () => {
  server = await Livefeed.start();
});

after(async () => {
  await server?.dispose();
});

/**
 * One request through `agent`: resolves with `{status, headers, body,
 * reused}`, `reused` whether the agent took the socket from its pool.
 */
function request(agent, method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: server.port, method, path, agent, headers, timeout: WAIT },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({
          status: res.statusCode,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
          reused: req.reusedSocket,
        }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timed out after ${WAIT} ms: ${method} ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}

describe('a keep-alive agent and Connection: close', () => {
  it(`${ROUNDS} POST /posts in a row on one pooled socket: every one answered, none hangs up`, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < ROUNDS; i++) {
        const body = JSON.stringify({ title: `close ${i}`, content: 'keep-alive agent' });
        const res = await request(agent, 'POST', '/posts', {
          headers: { 'content-type': 'application/json', connection: 'close' },
          body,
        });
        assert.equal(res.status, 201, res.body);
        assert.equal(res.headers.connection, 'close');
        assert.equal(JSON.parse(res.body).title, `close ${i}`);
        // Told the connection closes, the agent pooled none of them.
        assert.equal(res.reused, false, `request ${i} went out on a pooled socket`);
      }
    } finally {
      agent.destroy();
    }
    const listed = await request(undefined, 'GET', '/posts?limit=100');
    assert.equal(JSON.parse(listed.body).posts.length, ROUNDS);
  });

  it('without Connection: close the agent keeps one socket for every request', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < ROUNDS; i++) {
        const res = await request(agent, 'GET', '/healthz');
        assert.equal(res.status, 200);
        assert.notEqual(res.headers.connection, 'close');
        assert.equal(res.reused, i > 0, `request ${i}`);
      }
    } finally {
      agent.destroy();
    }
  });
});
