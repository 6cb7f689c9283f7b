'use strict';
// Editing and deleting posts, live on Socket.IO, with the stock
// socket.io-client against the real livefeed binary: postUpdated and
// postDeleted after PATCH / DELETE over HTTP (in seq order, the same on
// /ws), updatePost / deletePost over the socket with acks and the HTTP
// API's errors, the publish token, and connection state recovery of edits
// and deletes (seqs as offsets, compacted replay) across a disconnect and
// across a server restart.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { io } = require('socket.io-client');
const { WAIT, Livefeed, SocketChangeLog, WsChangeLog, nextEvent } = require('./helpers');

const RFC3339_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function client(server, opts = {}) {
  // No reconnection unless a test asks for it: a failing test must not
  // leave a client retrying in the background.
  return io(server.url, { reconnection: false, ...opts });
}

async function connected(socket) {
  if (!socket.connected) await nextEvent(socket, 'connect');
  return socket;
}

const ack = (socket, event, payload) => socket.timeout(WAIT).emitWithAck(event, payload);

/** Each seq greater than the one before. */
function assertAscending(seqs, what) {
  for (let i = 1; i < seqs.length; i++) {
    assert.ok(seqs[i] > seqs[i - 1], `${what}: seq ${seqs[i]} after ${seqs[i - 1]} (${JSON.stringify(seqs)})`);
  }
}

/** What a client saw, without the Socket.IO offset (for comparing with /ws). */
const withoutOffsets = (log) => log.changes.map(({ event, data }) => ({ event, data }));

/** Recovery on: every change's offset is its seq, as a string. */
function assertOffsetsAreSeqs(log) {
  assert.deepEqual(
    log.changes.map((c) => c.offset),
    log.seqs.map(String),
    'each event carries its seq as the recovery offset',
  );
}

const TRANSPORTS = [
  ['default transports', {}],
  ['polling only', { transports: ['polling'] }],
];

describe('post edits and deletes over socket.io-client', () => {
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

  for (const [name, opts] of TRANSPORTS) {
    it(`PATCH and DELETE over HTTP reach the client live as postUpdated / postDeleted, in seq order (${name})`, async () => {
      const socket = track(client(server, opts));
      await connected(socket);
      const log = new SocketChangeLog(socket);

      const a = await server.create('a', 'first');
      const b = await server.create('b', 'second');
      const editA = await server.edit(a.post.id, { title: 'a, edited' });
      const editB = await server.edit(b.post.id, { author: 'ann', content: 'second, edited' });
      await server.remove(a.post.id);
      const c = await server.create('c', 'third');
      await log.waitForSeq(c.seq);

      assert.equal(editA.post.title, 'a, edited');
      assert.equal(editA.post.createdAt, a.post.createdAt);
      assert.match(editA.post.updatedAt, RFC3339_MS_UTC);
      assert.equal(editB.post.author, 'ann');
      // Nobody else writes: the delete took the number after editB's, the
      // create the one after that.
      const deleteSeq = editB.seq + 1;
      assert.equal(c.seq, deleteSeq + 1);
      assert.deepEqual(log.changes, [
        { event: 'newPost', data: { post: a.post, seq: a.seq }, offset: String(a.seq) },
        { event: 'newPost', data: { post: b.post, seq: b.seq }, offset: String(b.seq) },
        { event: 'postUpdated', data: { post: editA.post, seq: editA.seq }, offset: String(editA.seq) },
        { event: 'postUpdated', data: { post: editB.post, seq: editB.seq }, offset: String(editB.seq) },
        { event: 'postDeleted', data: { id: a.post.id, seq: deleteSeq }, offset: String(deleteSeq) },
        { event: 'newPost', data: { post: c.post, seq: c.seq }, offset: String(c.seq) },
      ]);
      assertAscending(log.seqs, 'newPost, postUpdated and postDeleted');
      // The edited post is what GET /posts/{id} now answers, with its seq as ETag.
      const got = await server.request('GET', `/posts/${b.post.id}`);
      assert.deepEqual([got.status, got.body, got.seq], [200, editB.post, editB.seq]);
      assert.equal((await server.request('GET', `/posts/${a.post.id}`)).status, 404);
    });
  }

  it('a /ws client and socket.io clients get the same creates, edits and deletes in the same order', async () => {
    const ws = new WsChangeLog(`ws://127.0.0.1:${server.port}/ws`);
    await ws.opened;
    const sioSocket = track(client(server));
    const pollingSocket = track(client(server, { transports: ['polling'] }));
    const sio = new SocketChangeLog(sioSocket);
    const polling = new SocketChangeLog(pollingSocket);
    await connected(sioSocket);
    await connected(pollingSocket);
    try {
      // Concurrent writers: the hub still delivers in seq order.
      const created = await Promise.all(Array.from({ length: 10 }, (_, i) => server.create(`mixed ${i}`)));
      const ids = created.map((c) => c.post.id).sort((x, y) => x - y);
      const firstSeq = Math.min(...created.map((c) => c.seq));
      await Promise.all([
        ...ids.slice(0, 5).flatMap((id) => [
          server.edit(id, { title: `mixed ${id}, edited` }),
          server.edit(id, { content: `body of ${id}, edited` }),
        ]),
        ...ids.slice(5).map((id) => server.remove(id)),
        ...Array.from({ length: 5 }, (_, i) => server.create(`mixed late ${i}`)),
      ]);
      const marker = await server.create('mixed marker');
      await Promise.all([ws, sio, polling].map((log) => log.waitForSeq(marker.seq)));
      ws.close();

      // 10 creates, 10 edits, 5 deletes, 5 creates, the marker: every seq
      // from the first create's to the marker's, once each, ascending.
      const expected = Array.from({ length: marker.seq - firstSeq + 1 }, (_, i) => firstSeq + i);
      assert.equal(expected.length, 31);
      for (const [name, log] of [['/ws', ws], ['socket.io', sio], ['socket.io polling', polling]]) {
        assert.deepEqual(log.seqs, expected, `${name}: every change once, in seq order`);
        assert.deepEqual(
          log.changes.map((c) => c.event).filter((e) => e === 'postUpdated').length,
          10,
          `${name}: 10 postUpdated`,
        );
      }
      assertOffsetsAreSeqs(sio);
      assertOffsetsAreSeqs(polling);
      assert.deepEqual(withoutOffsets(sio), withoutOffsets(ws));
      assert.deepEqual(withoutOffsets(polling), withoutOffsets(ws));
      // What they built is the server's state (the posts of this test).
      const state = (await server.allPosts()).filter((p) => p.id >= ids[0]);
      assert.deepEqual(ws.posts, state);
      assert.deepEqual(sio.posts, state);
      assert.deepEqual(polling.posts, state);
      for (const id of ids.slice(0, 5)) {
        const post = state.find((p) => p.id === id);
        assert.deepEqual([post.title, post.content], [`mixed ${id}, edited`, `body of ${id}, edited`]);
      }
    } finally {
      ws.close();
    }
  });

  for (const [name, opts] of TRANSPORTS) {
    it(`updatePost / deletePost answer {post} / {id} and are broadcast to every client (${name})`, async () => {
      const author = track(client(server, opts));
      const other = track(client(server));
      await connected(author);
      await connected(other);
      const authorLog = new SocketChangeLog(author);
      const otherLog = new SocketChangeLog(other);
      const { post } = await ack(author, 'createPost', { title: 'to edit', content: 'before' });
      await otherLog.waitFor(1);

      const edited = await ack(author, 'updatePost', { id: post.id, title: 'edited', content: 'after', author: 'bo' });
      assert.deepEqual(Object.keys(edited), ['post']);
      assert.deepEqual(edited.post, {
        ...post,
        title: 'edited',
        content: 'after',
        author: 'bo',
        updatedAt: edited.post.updatedAt,
      });
      assert.match(edited.post.updatedAt, RFC3339_MS_UTC);
      const stored = await server.request('GET', `/posts/${post.id}`);
      assert.deepEqual(stored.body, edited.post);
      // A blank author makes the post anonymous again.
      const anonymous = await ack(author, 'updatePost', { id: post.id, author: '  ' });
      assert.equal(anonymous.post.author, null);
      const latest = await server.request('GET', `/posts/${post.id}`);

      const deleted = await ack(author, 'deletePost', { id: post.id });
      assert.deepEqual(deleted, { id: post.id });
      assert.equal((await server.request('GET', `/posts/${post.id}`)).status, 404);

      await otherLog.waitFor(4);
      await authorLog.waitFor(4);
      const expected = [
        { event: 'newPost', data: { post, seq: post.id } },
        { event: 'postUpdated', data: { post: edited.post, seq: stored.seq } },
        { event: 'postUpdated', data: { post: anonymous.post, seq: latest.seq } },
        { event: 'postDeleted', data: { id: post.id, seq: latest.seq + 1 } },
      ];
      assert.deepEqual(withoutOffsets(otherLog), expected);
      assert.deepEqual(withoutOffsets(authorLog), expected, 'the author gets its own changes too');
      assertOffsetsAreSeqs(otherLog);
      assertOffsetsAreSeqs(authorLog);
      assertAscending(otherLog.seqs, 'socket writes');
    });
  }

  it('updatePost / deletePost errors are the HTTP API errors, and change nothing', async () => {
    const socket = track(client(server));
    const watcher = track(client(server, { transports: ['polling'] }));
    await connected(socket);
    await connected(watcher);
    const log = new SocketChangeLog(watcher);
    const kept = await server.create('kept', 'unchanged');
    const gone = await server.create('gone');
    await server.remove(gone.post.id);
    await log.waitForSeq(gone.seq + 1);
    const seen = log.changes.length;
    const id = kept.post.id;
    const missing = gone.post.id + 1000;

    // [event, payload, the same request over HTTP, expected code, field]
    const cases = [
      ['updatePost', { id: missing, title: 'x' }, ['PATCH', missing, { title: 'x' }], 'not_found'],
      ['updatePost', { id: gone.post.id, title: 'x' }, ['PATCH', gone.post.id, { title: 'x' }], 'not_found'],
      ['deletePost', { id: missing }, ['DELETE', missing], 'not_found'],
      ['deletePost', { id: gone.post.id }, ['DELETE', gone.post.id], 'not_found'],
      ['updatePost', { id, title: 5 }, ['PATCH', id, { title: 5 }], 'invalid_field', 'title'],
      ['updatePost', { id, title: '' }, ['PATCH', id, { title: '' }], 'invalid_field', 'title'],
      ['updatePost', { id, content: null }, ['PATCH', id, { content: null }], 'invalid_field', 'content'],
      ['updatePost', { id, author: 7 }, ['PATCH', id, { author: 7 }], 'invalid_field', 'author'],
      ['updatePost', { id, colour: 'red' }, ['PATCH', id, { colour: 'red' }], 'invalid_field', 'colour'],
      ['updatePost', { id }, ['PATCH', id, {}], 'invalid_field'],
    ];
    for (const [event, payload, [method, httpId, body], code, field] of cases) {
      const what = `${event} ${JSON.stringify(payload)}`;
      const reply = await ack(socket, event, payload);
      const http = await server.request(method, `/posts/${httpId}`, { body });
      assert.equal(reply.error?.code, code, `${what}: ${JSON.stringify(reply)}`);
      assert.equal(reply.error.field, field, `${what}: field`);
      assert.equal(typeof reply.error.message, 'string');
      assert.deepEqual(reply, http.body, `${what}: the same error as ${method} over HTTP`);
    }

    // A missing or non-numeric id: HTTP's invalid_id (400 for /posts/abc).
    const http = await server.request('PATCH', '/posts/abc', { body: { title: 'x' } });
    assert.deepEqual([http.status, http.body.error.code], [400, 'invalid_id']);
    for (const [event, payload] of [
      ['updatePost', { title: 'x' }],
      ['updatePost', { id: 'abc', title: 'x' }],
      ['updatePost', { id: -1, title: 'x' }],
      ['updatePost', { id: 1.5, title: 'x' }],
      ['deletePost', {}],
      ['deletePost', { id: 'abc' }],
      ['deletePost', { id: null }],
    ]) {
      const reply = await ack(socket, event, payload);
      assert.deepEqual(Object.keys(reply), ['error'], `${event} ${JSON.stringify(payload)}: ${JSON.stringify(reply)}`);
      assert.equal(reply.error.code, 'invalid_id', `${event} ${JSON.stringify(payload)}`);
      assert.equal(typeof reply.error.message, 'string');
    }

    // Nothing changed and nothing was broadcast: the next change the
    // watcher sees is the marker.
    assert.deepEqual((await server.request('GET', `/posts/${id}`)).body, kept.post);
    const marker = await server.create('after the errors');
    await log.waitForSeq(marker.seq);
    assert.deepEqual(withoutOffsets(log).slice(seen), [
      { event: 'newPost', data: { post: marker.post, seq: marker.seq } },
    ]);
  });
});

describe('--publish-token and socket edits', () => {
  it('updatePost / deletePost need auth {token}, exactly as HTTP needs a bearer token', async () => {
    const server = await Livefeed.start(['--publish-token', 's3cret']);
    const anonymous = client(server);
    const wrong = client(server, { transports: ['polling'], auth: { token: 'nope' } });
    const author = client(server, { auth: { token: 's3cret' } });
    try {
      await Promise.all([anonymous, wrong, author].map(connected));
      const log = new SocketChangeLog(anonymous);
      const { post, seq } = await server.create('guarded', 'body', { authorization: 'Bearer s3cret' });
      await log.waitForSeq(seq);

      for (const [socket, headers] of [[anonymous, {}], [wrong, { authorization: 'Bearer nope' }]]) {
        // The same answer as HTTP with the same credential (none, or the wrong one).
        const httpEdit = await server.request('PATCH', `/posts/${post.id}`, { body: { title: 'x' }, headers });
        const httpDelete = await server.request('DELETE', `/posts/${post.id}`, { headers });
        assert.deepEqual([httpEdit.status, httpDelete.status], [401, 401]);
        const edit = await ack(socket, 'updatePost', { id: post.id, title: 'x' });
        assert.equal(edit.error?.code, 'unauthorized', JSON.stringify(edit));
        assert.deepEqual(edit, httpEdit.body);
        const del = await ack(socket, 'deletePost', { id: post.id });
        assert.equal(del.error?.code, 'unauthorized', JSON.stringify(del));
        assert.deepEqual(del, httpDelete.body);
      }
      assert.deepEqual((await server.request('GET', `/posts/${post.id}`)).body, post);

      const edited = await ack(author, 'updatePost', { id: post.id, title: 'by the author' });
      assert.equal(edited.post.title, 'by the author');
      assert.deepEqual(await ack(author, 'deletePost', { id: post.id }), { id: post.id });
      // Reading needs no token: the anonymous client saw both changes.
      await log.waitFor(3);
      assert.deepEqual(
        withoutOffsets(log).map(({ event }) => event),
        ['newPost', 'postUpdated', 'postDeleted'],
      );
      assert.deepEqual(log.changes[1].data.post, edited.post);
      assert.deepEqual(log.changes[2].data, { id: post.id, seq: log.changes[1].data.seq + 1 });
    } finally {
      for (const s of [anonymous, wrong, author]) s.disconnect();
      await server.dispose();
    }
  });
});

/**
 * While the client is away: edits `a` twice, deletes `b`, edits `c`,
 * creates and edits `d`, creates and deletes `e`, then creates a marker.
 * Answers what a compacted replay must show.
 */
async function changeWhileAway(server, { a, b, c }) {
  await server.edit(a, { title: 'a, edit 1' });
  const lastA = await server.edit(a, { content: 'a, edit 2' });
  await server.remove(b);
  const lastC = await server.edit(c, { author: 'cy' });
  const d = await server.create('d, new while away');
  const lastD = await server.edit(d.post.id, { title: 'd, edited while away' });
  const e = await server.create('e, gone while away');
  await server.remove(e.post.id);
  const marker = await server.create('marker');
  return { lastA, lastC, d, lastD, e, marker };
}

/** The replay after `from` (an index in log.changes) is compacted. */
function assertCompacted(log, from, { a, b, c }, { lastA, lastC, lastD, e, marker }) {
  const replay = withoutOffsets(log).slice(from);
  const about = (id) => replay.filter(({ data }) => (data.post?.id ?? data.id) === id);
  // Changed several times: once, in its latest state, at its latest seq.
  assert.deepEqual(about(a), [{ event: 'postUpdated', data: { post: lastA.post, seq: lastA.seq } }]);
  assert.deepEqual(about(c), [{ event: 'postUpdated', data: { post: lastC.post, seq: lastC.seq } }]);
  assert.deepEqual(about(b).map((x) => [x.event, x.data.id]), [['postDeleted', b]]);
  // Created after the offset: a newPost, in its latest state.
  assert.deepEqual(about(lastD.post.id), [{ event: 'newPost', data: { post: lastD.post, seq: lastD.seq } }]);
  // Created and deleted after the offset: at most its delete.
  const ofE = about(e.post.id);
  assert.ok(ofE.length <= 1 && ofE.every((x) => x.event === 'postDeleted'), JSON.stringify(ofE));
  assert.deepEqual(about(marker.post.id), [{ event: 'newPost', data: { post: marker.post, seq: marker.seq } }]);
}

describe('recovery of edits and deletes', () => {
  let server;

  before(async () => {
    server = await Livefeed.start();
  });

  after(async () => {
    await server?.dispose();
  });

  for (const transports of [['websocket'], ['polling']]) {
    it(`after a disconnect the client's view is GET /posts, recovered with seq offsets (${transports})`, async () => {
      // auth {since: 0}: the whole history first (compacted), so the view
      // covers every post; then offsets take over.
      const socket = client(server, { transports, auth: { since: 0 } });
      try {
        const log = new SocketChangeLog(socket);
        await connected(socket);
        const [a, b, c] = [await server.create('a'), await server.create('b'), await server.create('c')];
        const edit = await server.edit(b.post.id, { title: 'b, edited' });
        await log.waitForSeq(edit.seq);
        assert.deepEqual(log.posts, await server.allPosts());

        const down = nextEvent(socket, 'disconnect');
        socket.io.engine.close();
        const [reason] = await down;
        assert.equal(socket.connected, false, reason);
        const seen = log.changes.length;
        const ids = { a: a.post.id, b: b.post.id, c: c.post.id };
        const away = await changeWhileAway(server, ids);
        socket.connect();
        await connected(socket);
        assert.equal(socket.recovered, true, 'the server recognised the recovery pid');
        await log.waitForSeq(away.marker.seq);
        assert.deepEqual(log.posts, await server.allPosts());
        assertCompacted(log, seen, ids, away);

        // Live again: no gap, no duplicate.
        const live = await server.edit(ids.c, { title: 'c, live' });
        await server.remove(ids.a);
        const last = await server.create('last');
        await log.waitForSeq(last.seq);
        assert.deepEqual(log.posts, await server.allPosts());
        assert.deepEqual(withoutOffsets(log).slice(-3), [
          { event: 'postUpdated', data: { post: live.post, seq: live.seq } },
          { event: 'postDeleted', data: { id: ids.a, seq: live.seq + 1 } },
          { event: 'newPost', data: { post: last.post, seq: last.seq } },
        ]);
        assertAscending(log.seqs, 'replay then live');
        assertOffsetsAreSeqs(log);
      } finally {
        socket.disconnect();
      }
    });
  }
});

describe('recovery of edits and deletes across a server restart', () => {
  let server;

  before(async () => {
    server = await Livefeed.start();
  });

  after(async () => {
    await server?.dispose();
  });

  for (const transports of [['websocket'], ['polling']]) {
    it(`recovers edits and deletes made after the restart (${transports})`, async () => {
      const socket = client(server, { transports, auth: { since: 0 } });
      try {
        const log = new SocketChangeLog(socket);
        await connected(socket);
        const [a, b, c] = [await server.create('a'), await server.create('b'), await server.create('c')];
        const edit = await server.edit(a.post.id, { title: 'a, before restart' });
        await log.waitForSeq(edit.seq);
        assert.deepEqual(log.posts, await server.allPosts());

        const down = nextEvent(socket, 'disconnect');
        await server.restart();
        await down;
        const seen = log.changes.length;
        // Made after the restart, before the client is back: only sled
        // knows about them.
        const ids = { a: a.post.id, b: b.post.id, c: c.post.id };
        const away = await changeWhileAway(server, ids);
        socket.connect();
        await connected(socket);
        assert.equal(socket.recovered, true);
        await log.waitForSeq(away.marker.seq);
        assert.deepEqual(log.posts, await server.allPosts());
        assertCompacted(log, seen, ids, away);

        const later = await server.edit(ids.c, { content: 'live again' });
        await log.waitForSeq(later.seq);
        assert.deepEqual(log.changes.at(-1), {
          event: 'postUpdated',
          data: { post: later.post, seq: later.seq },
          offset: String(later.seq),
        });
        assert.deepEqual(log.posts, await server.allPosts());
        assertAscending(log.seqs, 'before, replay after the restart, live');
        assertOffsetsAreSeqs(log);
      } finally {
        socket.disconnect();
      }
    });
  }
});
