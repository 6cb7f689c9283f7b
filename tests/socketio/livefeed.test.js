'use strict';
// The stock socket.io-client against the real livefeed binary: every
// transport, the classic Socket.IO client snippet, acks, reconnection with connection
// state recovery (also across a server restart), and /ws + Socket.IO
// clients seeing the same posts in the same order.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { io } = require('socket.io-client');
const WebSocket = require('ws');
const { WAIT, Livefeed, PostLog, nextEvent, withTimeout } = require('./helpers');

function client(server, opts = {}) {
  // No reconnection unless a test asks for it: a failing test must not
  // leave a client retrying in the background.
  return io(server.url, { reconnection: false, ...opts });
}

async function connected(socket) {
  if (!socket.connected) await nextEvent(socket, 'connect');
  return socket;
}

describe('socket.io-client against livefeed', () => {
  let server;
  const sockets = [];
  const track = (s) => {
    sockets.push(s);
    return s;
  };

  before(async () => {
    server = await Livefeed.start();
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await server?.dispose();
  });

  it("runs the classic Socket.IO client snippet unchanged", async () => {
    // The seed: `const socket = openSocket('http://localhost:8080');
    // socket.on('newPost', data => { addToList(data.post); });`
    const openSocket = require('socket.io-client');
    const list = [];
    const addToList = (post) => list.push(post);
    const socket = track(openSocket(`http://localhost:${server.port}`));
    socket.on('newPost', (data) => {
      addToList(data.post);
    });
    await connected(socket);
    const got = nextEvent(socket, 'newPost');
    const { post, seq } = await server.create('from the seed');
    const [data] = await got;
    assert.deepEqual(list, [post]);
    assert.equal(typeof list[0].createdAt, 'string');
    assert.equal(list[0].updatedAt, null);
    // The payload is {post, seq}: a create's seq is the new post's id.
    assert.deepEqual(data, { post, seq });
    assert.equal(seq, post.id);
  });

  it('default io(url) starts with polling, upgrades to websocket and receives newPost', async () => {
    const socket = track(client(server));
    const upgraded = new Promise((resolve) => socket.io.on('open', () => socket.io.engine.once('upgrade', resolve)));
    await connected(socket);
    const log = new PostLog(socket);
    const { post, seq } = await server.create('default');
    await log.waitFor(1);
    assert.deepEqual(log.posts, [post]);
    assert.deepEqual(log.seqs, [seq]);
    // With recovery on (livefeed's default), the change's seq is its offset.
    assert.deepEqual(log.offsets, [String(seq)]);
    const transport = await withTimeout(upgraded, WAIT, 'upgrade to websocket');
    assert.equal(transport.name, 'websocket');
    const post2 = await server.publish('after upgrade');
    await log.waitFor(2);
    assert.deepEqual(log.posts, [post, post2]);
  });

  it("websocket-only client (transports: ['websocket'])", async () => {
    const socket = track(client(server, { transports: ['websocket'] }));
    await connected(socket);
    assert.equal(socket.io.engine.transport.name, 'websocket');
    const log = new PostLog(socket);
    const post = await server.publish('websocket only');
    await log.waitFor(1);
    assert.deepEqual(log.posts, [post]);
  });

  it("polling-only client (transports: ['polling'])", async () => {
    const socket = track(client(server, { transports: ['polling'] }));
    await connected(socket);
    assert.equal(socket.io.engine.transport.name, 'polling');
    const log = new PostLog(socket);
    const posts = [];
    for (let i = 0; i < 5; i++) posts.push(await server.publish(`polling ${i}`));
    await log.waitFor(5);
    assert.deepEqual(log.posts, posts);
  });

  it('acks: createPost answers with the stored post, or the error', async () => {
    const socket = track(client(server));
    await connected(socket);
    const log = new PostLog(socket);
    const reply = await socket.timeout(WAIT).emitWithAck('createPost', { title: 'over the socket', content: 'hi' });
    assert.equal(reply.post.title, 'over the socket');
    // It is broadcast like any other post, to its author too.
    await log.waitFor(1);
    assert.deepEqual(log.posts, [reply.post]);
    const bad = await socket.timeout(WAIT).emitWithAck('createPost', { content: 'no title' });
    assert.equal(bad.error.code, 'invalid_field');
    assert.equal(bad.error.field, 'title');
  });

  it('CONNECT is answered with sid and pid; auth {since} replays changes after that seq', async () => {
    const { post: first, seq: since } = await server.create('history 1');
    const second = await server.publish('history 2');
    const socket = track(client(server, { auth: { since } }));
    const log = new PostLog(socket);
    await connected(socket);
    assert.equal(typeof socket.id, 'string');
    assert.equal(typeof socket._pid, 'string', 'recovery is on: the CONNECT reply carries a pid');
    const latest = await log.waitFor(1);
    assert.equal(latest[0], second.id);
    const third = await server.publish('history 3');
    const ids = await log.waitFor(2);
    assert.deepEqual(ids.filter((id) => id > first.id && id <= third.id), ids, 'nothing at or before since');
    assert.ok(ids.includes(third.id));
    assert.ok(log.seqs.every((seq) => seq > since), 'only seqs after since');
    assert.deepEqual(log.offsets, log.seqs.map(String));
  });

  it('reconnects after its transport is killed and recovers missed posts exactly once', async () => {
    const socket = track(client(server, { transports: ['websocket'] }));
    const log = new PostLog(socket);
    await connected(socket);
    const before = await server.publish('before the cut');
    await log.waitFor(1);

    // Kill the transport; hold reconnection until posts were missed.
    const down = nextEvent(socket, 'disconnect');
    socket.io.engine.close();
    const [reason] = await down;
    assert.equal(socket.connected, false, reason);
    const missed = [await server.publish('missed 1'), await server.publish('missed 2')];
    socket.connect();
    await connected(socket);
    assert.equal(socket.recovered, true, 'the server recognised the recovery pid');
    await log.waitFor(3);
    const after = await server.publish('after reconnect');
    const ids = await log.waitFor(4);
    assert.deepEqual(ids, [before.id, missed[0].id, missed[1].id, after.id]);
    // Offsets are the creates' seqs, which are the post ids.
    assert.deepEqual(log.offsets, ids.map(String));
  });

  it('reconnects by itself (reconnection on) and misses nothing', async () => {
    const socket = track(
      client(server, { reconnection: true, reconnectionDelay: 100, randomizationFactor: 0, transports: ['polling'] }),
    );
    const log = new PostLog(socket);
    await connected(socket);
    const first = await server.publish('auto 1');
    await log.waitFor(1);
    const back = nextEvent(socket.io, 'reconnect');
    socket.io.engine.close();
    // Published during the reconnection delay (or, on a slow machine, just
    // after): either way each post arrives exactly once, in order.
    const second = await server.publish('auto 2');
    await back;
    const third = await server.publish('auto 3');
    const ids = await log.waitFor(3);
    assert.deepEqual(ids, [first.id, second.id, third.id]);
  });

  it('a /ws client and a socket.io client get the same posts in the same order', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
    const wsPosts = [];
    const wsSeqs = [];
    let wsWaiter = null;
    ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString());
      if (frame.event === 'newPost') {
        wsPosts.push(frame.data.post);
        wsSeqs.push(frame.data.seq);
        if (wsWaiter) wsWaiter();
      }
    });
    await withTimeout(new Promise((resolve, reject) => {
      ws.on('error', reject);
      ws.on('message', function welcome(raw) {
        if (JSON.parse(raw.toString()).event === 'welcome') {
          ws.off('message', welcome);
          resolve();
        }
      });
    }), WAIT, '/ws welcome');
    const socket = track(client(server));
    const log = new PostLog(socket);
    await connected(socket);

    // Concurrent publishers: the hub still delivers in id order.
    const published = await Promise.all(Array.from({ length: 20 }, (_, i) => server.publish(`both ${i}`)));
    await log.waitFor(20);
    await withTimeout(new Promise((resolve) => {
      wsWaiter = () => wsPosts.length >= 20 && resolve();
      wsWaiter();
    }), WAIT, '20 posts on /ws');
    ws.close();
    const ids = published.map((p) => p.id).sort((a, b) => a - b);
    assert.deepEqual(log.ids, ids);
    assert.deepEqual(wsPosts.map((p) => p.id), ids);
    assert.deepEqual(log.posts, wsPosts);
    // {post, seq} on both, a create's seq being its post id.
    assert.deepEqual(log.seqs, ids);
    assert.deepEqual(wsSeqs, ids);
  });
});

describe('recovery across a server restart', () => {
  let server;

  before(async () => {
    server = await Livefeed.start();
  });

  after(async () => {
    await server?.dispose();
  });

  for (const transports of [['websocket'], ['polling']]) {
    it(`recovers posts created while the server was down or restarting (${transports})`, async () => {
      const socket = client(server, { transports });
      try {
        const log = new PostLog(socket);
        await connected(socket);
        const first = await server.publish('before restart');
        await log.waitFor(1);

        const down = nextEvent(socket, 'disconnect');
        await server.restart();
        await down;
        // Created after the restart, before the client is back: only sled
        // knows about them.
        const missed = [await server.publish('after restart 1'), await server.publish('after restart 2')];
        socket.connect();
        await connected(socket);
        assert.equal(socket.recovered, true);
        const later = await server.publish('live again');
        const ids = await log.waitFor(4);
        assert.deepEqual(ids, [first.id, missed[0].id, missed[1].id, later.id]);
        assert.deepEqual(log.offsets, ids.map(String));
      } finally {
        socket.disconnect();
      }
    });
  }
});

describe('livefeed flags', () => {
  it('--socketio-recovery false: CONNECT carries only sid, newPost {post, seq} but no offset', async () => {
    const server = await Livefeed.start(['--socketio-recovery', 'false']);
    const socket = client(server);
    try {
      const log = new PostLog(socket);
      await connected(socket);
      assert.equal(socket._pid, undefined);
      const { post, seq } = await server.create('plain');
      await log.waitFor(1);
      assert.deepEqual(log.posts, [post]);
      // The data still carries the seq; only the offset argument is gone.
      assert.deepEqual(log.seqs, [seq]);
      assert.deepEqual(log.offsets, [undefined]);
    } finally {
      socket.disconnect();
      await server.dispose();
    }
  });

  it('--publish-token: createPost needs auth {token}', async () => {
    const server = await Livefeed.start(['--publish-token', 's3cret']);
    const anonymous = client(server);
    const author = client(server, { auth: { token: 's3cret' } });
    try {
      await connected(anonymous);
      await connected(author);
      const refused = await anonymous.timeout(WAIT).emitWithAck('createPost', { title: 't', content: 'c' });
      assert.equal(refused.error.code, 'unauthorized');
      const ok = await author.timeout(WAIT).emitWithAck('createPost', { title: 't', content: 'c' });
      assert.equal(ok.post.id, 1);
    } finally {
      anonymous.disconnect();
      author.disconnect();
      await server.dispose();
    }
  });
});
