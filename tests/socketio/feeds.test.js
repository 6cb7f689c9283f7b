'use strict';
// Feeds, with the stock socket.io-client against the real livefeed binary:
// a client follows the feeds of its `auth.feeds` (the default feed `main`
// without it) and gets every change of those feeds and no other, in one
// ascending seq order; `createPost` takes a `feed`; a subscription names at
// most 100 valid feeds; private feeds (`private-…`) need the publish token
// or a JWT (HS256, minted here with node:crypto) whose `subscribe` covers
// them; and connection state recovery resumes every feed of a subscription.
//
// Nothing sleeps: a client has seen everything once it saw a marker created
// after everything else in one of its feeds (changes reach it in seq order).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { io } = require('socket.io-client');
const { WAIT, Livefeed, SocketChangeLog, nextEvent, signJwt, withTimeout } = require('./helpers');

function client(server, opts = {}) {
  // No reconnection unless a test asks for it: a failing test must not
  // leave a client retrying in the background.
  return io(server.url, { reconnection: false, ...opts });
}

async function connected(socket) {
  if (!socket.connected) await nextEvent(socket, 'connect');
  return socket;
}

/**
 * How a fresh socket's connect ends: `{connected: true}`, or
 * `{connected: false, code, message}` from its connect_error.
 */
function outcome(socket) {
  return withTimeout(
    new Promise((resolve) => {
      socket.once('connect', () => resolve({ connected: true }));
      socket.once('connect_error', (err) =>
        resolve({ connected: false, code: err.data?.code, message: err.message }),
      );
    }),
    WAIT,
    'connect or connect_error',
  );
}

const ack = (socket, event, payload) => socket.timeout(WAIT).emitWithAck(event, payload);

/** Each seq greater than the one before. */
function assertAscending(seqs, what) {
  for (let i = 1; i < seqs.length; i++) {
    assert.ok(seqs[i] > seqs[i - 1], `${what}: seq ${seqs[i]} after ${seqs[i - 1]} (${JSON.stringify(seqs)})`);
  }
}

/** Recovery on: every change's offset is its seq, as a string. */
function assertOffsetsAreSeqs(log, what) {
  assert.deepEqual(log.changes.map((c) => c.offset), log.seqs.map(String), `${what}: offsets are seqs`);
}

const nowSecs = () => Math.floor(Date.now() / 1000);

/**
 * The changes a test made, in the order it made them (one at a time), each
 * with its feed. HTTP answers a create's and an edit's seq (the ETag) but
 * not a delete's: a delete's seq is known to lie after the change before
 * it and before the change after it.
 */
class History {
  constructor() {
    this.ops = [];
    this.lastSeq = 0;
  }

  /** A created post: `{post, seq}` as `create` / `createIn` answer. */
  created(feed, { post, seq }) {
    this.known(feed, 'newPost', { post, seq });
  }

  /** An edited post: `{post, seq}` as `edit` answers. */
  updated(feed, { post, seq }) {
    this.known(feed, 'postUpdated', { post, seq });
  }

  /** A deleted post. */
  deleted(feed, id) {
    this.ops.push({ feed, event: 'postDeleted', id, after: this.lastSeq, before: Infinity });
  }

  known(feed, event, data) {
    assert.equal(typeof data.seq, 'number', `${event} in ${feed}: the seq is known`);
    for (const op of this.ops) if (op.before === Infinity) op.before = data.seq;
    this.ops.push({ feed, event, data });
    this.lastSeq = data.seq;
  }

  /** The changes of `feeds`, in order. */
  of(feeds) {
    return this.ops.filter((op) => feeds.includes(op.feed));
  }
}

/**
 * `log` (from index `from`) is exactly `expected` (History ops): same
 * events, same data, each post in the right feed, seqs ascending.
 */
function assertChanges(log, expected, what, from = 0) {
  const got = log.changes.slice(from).map(({ event, data }) => ({ event, data }));
  const show = () =>
    JSON.stringify(got.map(({ event, data }) => [event, data.post?.feed ?? '-', data.post?.id ?? data.id, data.seq]));
  assert.equal(got.length, expected.length, `${what}: ${expected.length} changes expected, got ${show()}`);
  expected.forEach((op, i) => {
    const change = got[i];
    const at = `${what}, change ${i} (${op.event} in ${op.feed}); got ${show()}`;
    if (op.data) {
      assert.deepEqual(change, { event: op.event, data: op.data }, at);
      assert.equal(change.data.post.feed, op.feed, `${at}: post.feed`);
    } else {
      assert.deepEqual(change, { event: 'postDeleted', data: { id: op.id, seq: change.data.seq } }, at);
      assert.ok(
        change.data.seq > op.after && change.data.seq < op.before,
        `${at}: the delete's seq ${change.data.seq} lies between ${op.after} and ${op.before}`,
      );
    }
  });
  assertAscending(log.seqs, what);
}

describe('feeds over socket.io-client', () => {
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

  it('each client gets exactly the changes of its feeds, in seq order (edits and deletes follow their post)', async () => {
    const subscribers = {
      a: { feeds: ['a'], opts: { auth: { feeds: ['a'] } } },
      b: { feeds: ['b'], opts: { auth: { feeds: ['b'] } } },
      ab: { feeds: ['a', 'b'], opts: { auth: { feeds: ['a', 'b'] } } },
      'ba, polling': { feeds: ['a', 'b'], opts: { transports: ['polling'], auth: { feeds: ['b', 'a'] } } },
      'main, no auth': { feeds: ['main'], opts: {} },
      'main, auth without feeds': {
        feeds: ['main'],
        opts: { transports: ['websocket'], auth: { since: null } },
      },
    };
    for (const sub of Object.values(subscribers)) {
      sub.socket = track(client(server, sub.opts));
      sub.log = new SocketChangeLog(sub.socket);
    }
    await Promise.all(Object.values(subscribers).map((s) => connected(s.socket)));

    const h = new History();
    const a1 = await server.createIn('a', 'a1');
    assert.equal(a1.post.feed, 'a');
    assert.equal(a1.location, `/posts/${a1.post.id}`);
    assert.equal(a1.seq, a1.post.id);
    h.created('a', a1);
    const b1 = await server.createIn('b', 'b1');
    h.created('b', b1);
    const c1 = await server.createIn('c', 'c1');
    h.created('c', c1);
    const m1 = await server.createIn('main', 'm1');
    assert.equal(m1.post.feed, 'main');
    h.created('main', m1);
    // POST /posts is the default feed's.
    const m2 = await server.create('m2');
    assert.equal(m2.post.feed, 'main');
    h.created('main', m2);
    const a2 = await server.createIn('a', 'a2');
    h.created('a', a2);
    // Edits and deletes go through /posts/{id}: each follows its post.
    const a1edit = await server.edit(a1.post.id, { title: 'a1, edited' });
    assert.equal(a1edit.post.feed, 'a');
    h.updated('a', a1edit);
    h.updated('c', await server.edit(c1.post.id, { content: 'c1, edited' }));
    const b1edit = await server.edit(b1.post.id, { author: 'bo' });
    assert.equal(b1edit.post.feed, 'b');
    h.updated('b', b1edit);
    await server.remove(a2.post.id);
    h.deleted('a', a2.post.id);
    await server.remove(c1.post.id);
    h.deleted('c', c1.post.id);
    await server.remove(m1.post.id);
    h.deleted('main', m1.post.id);
    h.updated('main', await server.edit(m2.post.id, { title: 'm2, edited' }));
    const b2 = await server.createIn('b', 'b2');
    h.created('b', b2);
    await server.remove(b1.post.id);
    h.deleted('b', b1.post.id);
    // Markers last, one per feed: a client that saw its feeds' markers saw
    // everything it will get of the changes above.
    const markers = {};
    for (const feed of ['a', 'b', 'c', 'main']) {
      markers[feed] = await server.createIn(feed, `marker of ${feed}`);
      h.created(feed, markers[feed]);
    }

    for (const [name, { feeds, log }] of Object.entries(subscribers)) {
      await log.waitForSeq(Math.max(...feeds.map((f) => markers[f].seq)));
      assertChanges(log, h.of(feeds), name);
      assertOffsetsAreSeqs(log, name);
    }
    assert.deepEqual(
      subscribers['ba, polling'].log.changes.map((c) => c.data),
      subscribers.ab.log.changes.map((c) => c.data),
      'the order of auth.feeds does not matter',
    );

    // Over HTTP: each feed lists its own live posts (newest first), and
    // GET /feeds counts posts and subscribers.
    const list = async (feed) => {
      const res = await server.request('GET', `/feeds/${feed}/posts`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body.posts.map((p) => [p.feed, p.id]);
    };
    assert.deepEqual(await list('a'), [['a', markers.a.post.id], ['a', a1.post.id]]);
    assert.deepEqual(await list('b'), [['b', markers.b.post.id], ['b', b2.post.id]]);
    assert.deepEqual(await list('c'), [['c', markers.c.post.id]]);
    assert.deepEqual(await list('main'), [['main', markers.main.post.id], ['main', m2.post.id]]);
    const feeds = await server.request('GET', '/feeds');
    assert.equal(feeds.status, 200);
    const byName = Object.fromEntries(feeds.body.feeds.map((f) => [f.name, f]));
    assert.deepEqual(byName.a, { name: 'a', posts: 2, lastPostId: markers.a.post.id, subscribers: 3 });
    assert.deepEqual(byName.b, { name: 'b', posts: 2, lastPostId: markers.b.post.id, subscribers: 3 });
    assert.deepEqual(byName.c, { name: 'c', posts: 1, lastPostId: markers.c.post.id, subscribers: 0 });
    assert.deepEqual(byName.main, { name: 'main', posts: 2, lastPostId: markers.main.post.id, subscribers: 2 });
  });

  it('an invalid feed in the URL is 400 invalid_feed', async () => {
    for (const feed of ['Main', '-a', '_a', 'a.b', 'é', 'a'.repeat(65)]) {
      for (const [method, body] of [['POST', { title: 't', content: 'c' }], ['GET', undefined]]) {
        const res = await server.request(method, `/feeds/${encodeURIComponent(feed)}/posts`, { body });
        assert.deepEqual([res.status, res.body?.error?.code], [400, 'invalid_feed'], `${method} ${feed}`);
      }
    }
    const longest = await server.createIn('z'.repeat(64), 'at the longest name');
    assert.equal(longest.post.feed, 'z'.repeat(64));
  });

  it('createPost with feed lands in that feed and reaches its subscribers only', async () => {
    const onX = track(client(server, { auth: { feeds: ['x'] } }));
    const onY = track(client(server, { transports: ['polling'], auth: { feeds: ['y'] } }));
    const onMain = track(client(server));
    // The author follows y and writes to x (which it does not follow).
    const author = track(client(server, { auth: { feeds: ['y'] } }));
    const logs = { x: new SocketChangeLog(onX), y: new SocketChangeLog(onY), main: new SocketChangeLog(onMain) };
    const authorLog = new SocketChangeLog(author);
    await Promise.all([onX, onY, onMain, author].map(connected));

    const h = new History();
    const reply = await ack(author, 'createPost', { feed: 'x', title: 'to x', content: 'over the socket' });
    assert.deepEqual(Object.keys(reply), ['post'], JSON.stringify(reply));
    assert.equal(reply.post.feed, 'x');
    assert.equal(reply.post.title, 'to x');
    assert.equal(reply.post.content, 'over the socket');
    h.created('x', { post: reply.post, seq: reply.post.id });
    const stored = await server.request('GET', `/posts/${reply.post.id}`);
    assert.deepEqual(stored.body, reply.post);
    assert.deepEqual(
      (await server.request('GET', '/feeds/x/posts')).body.posts.map((p) => p.id),
      [reply.post.id],
    );

    // Without feed: the default feed.
    const plain = await ack(author, 'createPost', { title: 'to main', content: 'no feed' });
    assert.equal(plain.post.feed, 'main');
    h.created('main', { post: plain.post, seq: plain.post.id });

    // A bad feed is refused, nothing is created.
    for (const feed of ['X', '', '-x', 'a'.repeat(65), 5, ['x']]) {
      const bad = await ack(author, 'createPost', { feed, title: 't', content: 'c' });
      assert.equal(bad.error?.code, 'invalid_feed', `feed ${JSON.stringify(feed)}: ${JSON.stringify(bad)}`);
      assert.equal(typeof bad.error.message, 'string');
    }

    const toY = await ack(author, 'createPost', { feed: 'y', title: 'to y', content: 'own feed' });
    assert.equal(toY.post.feed, 'y');
    h.created('y', { post: toY.post, seq: toY.post.id });
    const markers = {};
    for (const feed of ['x', 'y', 'main']) {
      markers[feed] = await server.createIn(feed, `marker of ${feed}`);
      h.created(feed, markers[feed]);
    }
    for (const [feed, log] of Object.entries(logs)) {
      await log.waitForSeq(markers[feed].seq);
      assertChanges(log, h.of([feed]), `client of ${feed}`);
    }
    await authorLog.waitForSeq(markers.y.seq);
    assertChanges(authorLog, h.of(['y']), 'the author (of y)');
  });

  it('a subscription names 1 to 100 valid feeds; anything else is connect_error invalid_feed', async () => {
    const names = (n, prefix = 'f') => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const refused = [
      ['101 feeds', names(101)],
      ['101 feeds over polling', names(101), { transports: ['polling'] }],
      ['an upper-case name', ['ok', 'Bad']],
      ['a name starting with -', ['-a']],
      ['a name starting with _', ['_a']],
      ['a dot', ['a.b']],
      ['a slash', ['a/b']],
      ['a non-ASCII letter', ['é']],
      ['an empty name', ['']],
      ['65 characters', ['a'.repeat(65)]],
      ['a number', [5]],
      ['null in the list', ['a', null]],
      ['no feed at all', []],
      ['a string instead of a list', 'a'],
      ['an object instead of a list', { a: true }],
    ];
    for (const [what, feeds, opts = {}] of refused) {
      const socket = track(client(server, { ...opts, auth: { feeds } }));
      const result = await outcome(socket);
      assert.equal(result.connected, false, `${what}: connected`);
      assert.equal(result.code, 'invalid_feed', `${what}: ${JSON.stringify(result)}`);
      assert.equal(typeof result.message, 'string');
      assert.equal(socket.connected, false);
    }

    // 100 feeds (one of them the longest name) are fine, and every one is
    // followed.
    const hundred = [...names(99, 'cap-'), 'k'.repeat(64)];
    const socket = track(client(server, { auth: { feeds: hundred } }));
    const log = new SocketChangeLog(socket);
    assert.deepEqual(await outcome(socket), { connected: true });
    const h = new History();
    for (const feed of [hundred[0], 'cap-elsewhere', hundred[50], hundred[99]]) {
      h.created(feed, await server.createIn(feed, `in ${feed}`));
    }
    await log.waitForSeq(h.lastSeq);
    assertChanges(log, h.of(hundred), '100 feeds');
  });
});

describe('private feeds over socket.io-client', () => {
  const SECRET = 'jwt-secret-for-the-tests';
  const PUBLISH = 'publish-token-for-the-tests';
  const OPERATOR = { authorization: `Bearer ${PUBLISH}` };
  let server;
  const sockets = [];
  const track = (s) => {
    sockets.push(s);
    return s;
  };
  const jwt = (claims, secret = SECRET) => signJwt(secret, { exp: nowSecs() + 600, ...claims });

  before(async () => {
    server = await Livefeed.start(['--publish-token', PUBLISH, '--jwt-secret', SECRET]);
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    await server?.dispose();
  });

  it('connecting to a private feed needs a token that covers it', async () => {
    const valid = jwt({ sub: 'ada', subscribe: ['private-ops'] });
    const [header, , signature] = valid.split('.');
    const widened = Buffer.from(JSON.stringify({ exp: nowSecs() + 600, subscribe: ['*'] })).toString('base64url');
    const none = signJwt(SECRET, { exp: nowSecs() + 600, subscribe: ['*'] }, { alg: 'none', typ: 'JWT' });
    const unsigned = `${none.split('.').slice(0, 2).join('.')}.`;
    const feeds = ['private-ops'];
    // [case, auth, expected outcome]
    const cases = [
      ['no token', { feeds }, 'unauthorized'],
      ['an empty token', { feeds, token: '' }, 'unauthorized'],
      ['an expired JWT', { feeds, token: signJwt(SECRET, { exp: nowSecs() - 60, subscribe: ['*'] }) }, 'unauthorized'],
      ['a JWT without exp', { feeds, token: signJwt(SECRET, { subscribe: ['*'] }) }, 'unauthorized'],
      ['a JWT signed with another secret', { feeds, token: jwt({ subscribe: ['*'] }, 'other') }, 'unauthorized'],
      ['a JWT whose claims were changed', { feeds, token: `${header}.${widened}.${signature}` }, 'unauthorized'],
      ['an unsigned JWT (alg none)', { feeds, token: unsigned }, 'unauthorized'],
      ['garbage', { feeds, token: 'garbage' }, 'unauthorized'],
      ['a wrong publish token', { feeds, token: `${PUBLISH}x` }, 'unauthorized'],
      [
        'a JWT for other feeds',
        { feeds, token: jwt({ subscribe: ['private-other', 'private-op', 'private-opsx'] }) },
        'forbidden',
      ],
      ['a JWT whose prefix does not match', { feeds, token: jwt({ subscribe: ['private-team-*'] }) }, 'forbidden'],
      ['a JWT that may only publish there', { feeds, token: jwt({ publish: ['private-ops'] }) }, 'forbidden'],
      [
        'a public feed and a private one not covered',
        { feeds: ['main', 'private-ops'], token: jwt({ subscribe: ['private-other'] }) },
        'forbidden',
      ],
      ['a JWT naming the feed', { feeds, token: valid }, 'connected'],
      ['a JWT with a covering prefix', { feeds, token: jwt({ subscribe: ['private-o*'] }) }, 'connected'],
      [
        'a JWT covering every feed',
        { feeds: ['private-ops', 'main', 'private-x'], token: jwt({ subscribe: ['*'] }) },
        'connected',
      ],
      ['the publish token', { feeds: ['private-ops', 'private-anything', 'main'], token: PUBLISH }, 'connected'],
      ['a public feed, no token', { feeds: ['main', 'public'] }, 'connected'],
    ];
    for (const [what, auth, expected] of cases) {
      for (const transports of [['websocket'], ['polling']]) {
        const socket = track(client(server, { transports, auth }));
        const result = await outcome(socket);
        const got = result.connected ? 'connected' : result.code;
        assert.equal(got, expected, `${what} (${transports}): ${JSON.stringify(result)}`);
        assert.equal(socket.connected, expected === 'connected');
        socket.disconnect();
      }
    }
  });

  it('a private subscriber receives the private feed live; nobody else does', async () => {
    const readerToken = jwt({ sub: 'ada', subscribe: ['private-ops'] });
    const reader = track(client(server, { auth: { feeds: ['private-ops'], token: readerToken } }));
    const operator = track(
      client(server, { transports: ['polling'], auth: { feeds: ['private-ops', 'main'], token: PUBLISH } }),
    );
    const otherToken = jwt({ subscribe: ['private-other'] });
    const other = track(client(server, { auth: { feeds: ['private-other'], token: otherToken } }));
    const anonymous = track(client(server));
    const writerToken = jwt({ sub: 'bo', subscribe: ['private-ops'], publish: ['private-ops'] });
    const writer = track(client(server, { auth: { feeds: ['private-ops'], token: writerToken } }));
    const logs = [reader, operator, other, anonymous, writer].map((s) => new SocketChangeLog(s));
    const [readerLog, operatorLog, otherLog, anonymousLog, writerLog] = logs;
    await Promise.all([reader, operator, other, anonymous, writer].map(connected));

    const h = new History();
    // Over HTTP with the publish token, and with a JWT allowed to publish.
    const p1 = await server.createIn('private-ops', 'secret 1', 'body', OPERATOR);
    assert.equal(p1.post.feed, 'private-ops');
    h.created('private-ops', p1);
    const p2 = await server.createIn('private-ops', 'secret 2', 'body', { authorization: `Bearer ${writerToken}` });
    h.created('private-ops', p2);
    // Over the socket, by the JWT holder.
    const p3 = await ack(writer, 'createPost', { feed: 'private-ops', title: 'secret 3', content: 'over the socket' });
    assert.equal(p3.post?.feed, 'private-ops', JSON.stringify(p3));
    h.created('private-ops', { post: p3.post, seq: p3.post.id });
    // The reader's token does not let it publish there.
    const refused = await ack(reader, 'createPost', { feed: 'private-ops', title: 'no', content: 'no' });
    assert.equal(refused.error?.code, 'forbidden', JSON.stringify(refused));
    const edit = await server.edit(p1.post.id, { title: 'secret 1, edited' }, OPERATOR);
    assert.equal(edit.post.feed, 'private-ops');
    h.updated('private-ops', edit);
    await server.remove(p2.post.id, OPERATOR);
    h.deleted('private-ops', p2.post.id);
    for (const feed of ['private-other', 'main', 'private-ops']) {
      h.created(feed, await server.createIn(feed, `marker of ${feed}`, 'body', OPERATOR));
    }
    const markerOf = (feed) => h.of([feed]).at(-1).data.seq;

    for (const [log, feeds, what] of [
      [readerLog, ['private-ops'], 'JWT reader'],
      [writerLog, ['private-ops'], 'JWT writer'],
      [operatorLog, ['private-ops', 'main'], 'operator'],
      [otherLog, ['private-other'], 'JWT reader of another private feed'],
      [anonymousLog, ['main'], 'anonymous'],
    ]) {
      await log.waitForSeq(Math.max(...feeds.map(markerOf)));
      assertChanges(log, h.of(feeds), what);
    }

    // Over HTTP the private feed is hidden the same way.
    const anon = await server.request('GET', '/feeds/private-ops/posts');
    assert.deepEqual([anon.status, anon.body.error.code], [401, 'unauthorized']);
    const mine = await server.request('GET', '/feeds/private-ops/posts', {
      headers: { authorization: `Bearer ${readerToken}` },
    });
    assert.equal(mine.status, 200);
    assert.ok(mine.body.posts.every((p) => p.feed === 'private-ops'));
    const listed = (await server.request('GET', '/feeds')).body.feeds.map((f) => f.name);
    assert.ok(!listed.some((name) => name.startsWith('private-')), `GET /feeds without a token: ${listed}`);
    assert.ok(listed.includes('main'));
  });
});

describe('recovery across feeds', () => {
  let server;

  before(async () => {
    server = await Livefeed.start();
  });

  after(async () => {
    await server?.dispose();
  });

  for (const transports of [['websocket'], ['polling']]) {
    it(`a multi-feed client recovers exactly the missed changes of its feeds (${transports})`, async () => {
      const tag = transports[0];
      const [r1, r2, other] = [`${tag}-r1`, `${tag}-r2`, `${tag}-other`];
      const feeds = [r1, r2];
      const socket = client(server, { transports, auth: { feeds } });
      try {
        const log = new SocketChangeLog(socket);
        await connected(socket);
        const h = new History();
        const p1 = await server.createIn(r1, 'p1');
        h.created(r1, p1);
        const p2 = await server.createIn(r2, 'p2');
        h.created(r2, p2);
        const o1 = await server.createIn(other, 'o1');
        h.created(other, o1);
        const m1 = await server.create('m1');
        h.created('main', m1);
        await log.waitForSeq(p2.seq);

        const down = nextEvent(socket, 'disconnect');
        socket.io.engine.close();
        const [reason] = await down;
        assert.equal(socket.connected, false, reason);
        const seen = log.changes.length;
        const away = h.ops.length;

        // While away: changes in its feeds, in another one and in main.
        h.updated(r1, await server.edit(p1.post.id, { title: 'p1, edited while away' }));
        h.created(other, await server.createIn(other, 'o2'));
        h.created(r1, await server.createIn(r1, 'q1'));
        h.updated(other, await server.edit(o1.post.id, { title: 'o1, edited while away' }));
        await server.remove(p2.post.id);
        h.deleted(r2, p2.post.id);
        await server.remove(m1.post.id);
        h.deleted('main', m1.post.id);
        h.created('main', await server.create('m2'));
        const q2 = await server.createIn(r2, 'q2');
        h.created(r2, q2);
        h.created(other, await server.createIn(other, 'o3'));

        socket.connect();
        await connected(socket);
        assert.equal(socket.recovered, true, 'the server recognised the recovery pid');
        await log.waitForSeq(q2.seq);
        // Each post changed at most once while away: the replay is exactly
        // the missed changes of r1 and r2, in seq order.
        const missed = h.ops.slice(away).filter((op) => feeds.includes(op.feed));
        assertChanges(log, missed, 'replay', seen);

        // Live again, still on both feeds only.
        h.created(other, await server.createIn(other, 'o4'));
        h.created(r2, await server.createIn(r2, 'q3'));
        h.created('main', await server.create('m3'));
        const last = await server.createIn(r1, 'q4');
        h.created(r1, last);
        await log.waitForSeq(last.seq);
        assertChanges(log, h.of(feeds), 'before, replay, live');
        assertOffsetsAreSeqs(log, 'before, replay, live');
      } finally {
        socket.disconnect();
      }
    });
  }
});
