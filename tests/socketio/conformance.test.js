'use strict';
// The socketio_conformance example, checked on the wire: Engine.IO v4 at
// /engine.io/ (echo) and Socket.IO v5 at /socket.io/ with the reference
// test server's behaviour (pingInterval 300, pingTimeout 200, connect
// timeout 1000). Raw HTTP and websocket exchanges, then the stock
// engine.io-client and socket.io-client.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const WebSocket = require('ws');
const { Socket: EngineSocket } = require('engine.io-client');
const { io } = require('socket.io-client');
const { WAIT, Conformance, nextEvent, withTimeout } = require('./helpers');

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;

let server;
// The same example with a heartbeat too slow to reach a test: raw
// exchanges that are not about the heartbeat run against it, so a ping
// (due 300 ms after the handshake, easily reached on a loaded machine)
// can't answer a poll that a step expects something else from.
let calm;
let base;
let wsBase;

before(async () => {
  server = await Conformance.start();
  calm = await Conformance.start(['--ping-interval', '60s', '--ping-timeout', '60s']);
  useServer(server);
});

after(async () => {
  await server?.stop();
  await calm?.stop();
});

function useServer(s) {
  base = s.url;
  wsBase = base.replace('http', 'ws');
}

/** Runs the enclosing describe's tests against the calm server. */
function withoutHeartbeat() {
  before(() => useServer(calm));
  after(() => useServer(server));
}

const get = (path) => fetch(base + path, { signal: AbortSignal.timeout(WAIT) });
const post = (path, body) => fetch(base + path, { method: 'POST', body, signal: AbortSignal.timeout(WAIT) });

async function open(prefix) {
  const res = await get(`${prefix}?EIO=4&transport=polling`);
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.equal(text[0], '0');
  return JSON.parse(text.slice(1)).sid;
}

/**
 * A raw websocket with a message queue. With `autoPong`, server pings are
 * answered and never surface; otherwise they are ordinary messages.
 */
class Raw {
  constructor(url, { autoPong = true } = {}) {
    this.ws = new WebSocket(url);
    this.ws.binaryType = 'nodebuffer';
    this.queue = [];
    this.waiters = [];
    this.ws.on('message', (data, isBinary) => {
      const msg = isBinary ? Buffer.from(data) : data.toString();
      if (autoPong && msg === '2') {
        this.ws.send('3');
        return;
      }
      const waiter = this.waiters.shift();
      if (waiter) waiter(msg);
      else this.queue.push(msg);
    });
    this.ws.on('error', () => {});
    this.closed = withTimeout(new Promise((resolve) => this.ws.on('close', (code) => resolve(code))), WAIT, 'websocket close');
    this.closed.catch(() => {});
    this.opened = withTimeout(new Promise((resolve, reject) => {
      this.ws.on('open', resolve);
      this.ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    }), WAIT, 'websocket open');
    this.opened.catch(() => {});
  }

  next(ms = WAIT) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return withTimeout(new Promise((resolve) => this.waiters.push(resolve)), ms, 'websocket message');
  }

  async nextJson(prefix) {
    const msg = await this.next();
    assert.ok(msg.startsWith(prefix), `${msg} starts with ${prefix}`);
    return JSON.parse(msg.slice(prefix.length));
  }

  send(data) {
    this.ws.send(data);
  }

  close() {
    this.ws.close();
  }
}

/** A Socket.IO connection to the main namespace over a raw websocket. */
async function sio() {
  const ws = new Raw(`${wsBase}/socket.io/?EIO=4&transport=websocket`);
  await ws.nextJson('0');
  ws.send('40');
  await ws.nextJson('40');
  assert.equal(await ws.next(), '42["auth",{}]');
  return ws;
}

describe('Engine.IO handshake', () => {
  it('polling: open packet with the reference settings', async () => {
    const res = await get('/engine.io/?EIO=4&transport=polling');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/plain/);
    const text = await res.text();
    const open = JSON.parse(text.slice(1));
    assert.deepEqual(Object.keys(open).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
    assert.deepEqual(open.upgrades, ['websocket']);
    assert.equal(open.pingInterval, PING_INTERVAL);
    assert.equal(open.pingTimeout, PING_TIMEOUT);
    assert.equal(open.maxPayload, 1000000);
  });

  it('websocket: open packet with no upgrades', async () => {
    const ws = new Raw(`${wsBase}/engine.io/?EIO=4&transport=websocket`);
    const open = await ws.nextJson('0');
    assert.deepEqual(open.upgrades, []);
    assert.equal(typeof open.sid, 'string');
    ws.close();
  });

  it('bad EIO, transport, method or sid: 400 with the engine.io error body', async () => {
    for (const [query, code] of [
      ['transport=polling', 5],
      ['EIO=abc&transport=polling', 5],
      ['EIO=3&transport=polling', 5],
      ['EIO=4', 0],
      ['EIO=4&transport=abc', 0],
      ['EIO=4&transport=polling&sid=nope', 1],
    ]) {
      const res = await get(`/engine.io/?${query}`);
      assert.equal(res.status, 400, query);
      assert.equal((await res.json()).code, code, query);
    }
    for (const method of ['POST', 'PUT']) {
      const res = await fetch(`${base}/engine.io/?EIO=4&transport=polling`, { method });
      assert.equal(res.status, 400, method);
      assert.equal((await res.json()).code, 2);
    }
    const ws = new Raw(`${wsBase}/engine.io/?EIO=4&transport=websocket&sid=nope`);
    await assert.rejects(ws.opened, /HTTP 400/);
  });

  it('CORS: preflight and allow-origin headers', async () => {
    const res = await fetch(`${base}/engine.io/?EIO=4&transport=polling`, {
      method: 'OPTIONS',
      headers: { origin: 'https://elsewhere.example', 'access-control-request-headers': 'content-type' },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), 'https://elsewhere.example');
    assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
    assert.equal(res.headers.get('access-control-allow-headers'), 'content-type');
  });
});

describe('Engine.IO messages', () => {
  withoutHeartbeat();

  it('polling: one packet, several packets, text and binary are echoed', async () => {
    const sid = await open('/engine.io/');
    const url = `/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    for (const body of ['4hello', '4test1\x1e4test2\x1e4test3', '4hello\x1ebAQIDBA==']) {
      const res = await post(url, body);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'ok');
      const poll = await get(url);
      assert.equal(await poll.text(), body);
    }
  });

  it('polling: a malformed packet is a 400 and ends the session', async () => {
    const sid = await open('/engine.io/');
    const url = `/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    assert.equal((await post(url, 'abc')).status, 400);
    assert.equal((await get(url)).status, 400);
  });

  it('polling: a second concurrent poll is a 400, the first gets close, the session ends', async () => {
    const sid = await open('/engine.io/');
    const url = `/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    const first = get(url);
    // The first poll is waiting once the server has answered something
    // else on the session: a POST is handled after the poll started.
    assert.equal((await post(url, '4x')).status, 200);
    const firstRes = await first;
    assert.equal(await firstRes.text(), '4x');
    // Two concurrent polls: whichever the server saw second is refused,
    // the one already waiting is answered with the close packet.
    const [a, b] = await Promise.all([get(url), get(url)]);
    const [waited, refused] = a.status === 200 ? [a, b] : [b, a];
    assert.ok([400, 500].includes(refused.status));
    assert.equal(waited.status, 200);
    assert.equal(await waited.text(), '1');
    assert.equal((await get(url)).status, 400);
  });

  it('polling: a body over maxPayload is a 413', async () => {
    const sid = await open('/engine.io/');
    const url = `/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    const res = await post(url, '4' + 'x'.repeat(1000000));
    assert.equal(res.status, 413);
    assert.equal((await get(url)).status, 400);
  });

  it('websocket: text and binary are echoed; a malformed packet closes', async () => {
    const ws = new Raw(`${wsBase}/engine.io/?EIO=4&transport=websocket`);
    await ws.nextJson('0');
    ws.send('4hello');
    assert.equal(await ws.next(), '4hello');
    ws.send(Uint8Array.from([1, 2, 3, 4]));
    assert.deepEqual(await ws.next(), Buffer.from([1, 2, 3, 4]));
    ws.send('abc');
    await ws.closed;
  });

  it('websocket: 1 closes the session', async () => {
    const ws = new Raw(`${wsBase}/engine.io/?EIO=4&transport=websocket`);
    await ws.nextJson('0');
    ws.send('1');
    await ws.closed;
  });

  it('polling: 1 closes the session; a waiting poll gets noop', async () => {
    const sid = await open('/engine.io/');
    const url = `/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    const waiting = get(url);
    // Give the poll a head start of one round trip on another connection.
    await (await get('/engine.io/?EIO=4&transport=polling')).text();
    assert.equal((await post(url, '1')).status, 200);
    // A poll the server saw first is released with a noop; one that lost
    // the race to the close finds the session gone.
    const res = await waiting;
    assert.ok(res.status === 400 || (await res.text()) === '6');
    assert.equal((await get(url)).status, 400);
  });
});

describe('Engine.IO heartbeat', () => {
  it('polling: the server pings, the client pongs, three times', async () => {
    const sid = await open('/engine.io/');
    const url = `/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    for (let i = 0; i < 3; i++) {
      assert.equal(await (await get(url)).text(), '2');
      assert.equal((await post(url, '3')).status, 200);
    }
  });

  it('polling: an unanswered ping closes the session', async () => {
    const sid = await open('/engine.io/');
    const url = `/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    const started = Date.now();
    assert.equal(await (await get(url)).text(), '2');
    // The next poll waits until the ping timeout closes the session.
    const res = await get(url);
    assert.ok(res.status === 400 || (await res.text()) === '1');
    assert.ok(Date.now() - started >= PING_INTERVAL + PING_TIMEOUT - 50);
    assert.equal((await get(url)).status, 400);
  });

  it('websocket: pings every pingInterval; an unanswered one closes', async () => {
    const ws = new Raw(`${wsBase}/engine.io/?EIO=4&transport=websocket`, { autoPong: false });
    await ws.nextJson('0');
    for (let i = 0; i < 3; i++) {
      assert.equal(await ws.next(), '2');
      ws.send('3');
    }
    assert.equal(await ws.next(), '2');
    await ws.closed;
  });

  it('a client ping is a protocol error in v4', async () => {
    const ws = new Raw(`${wsBase}/engine.io/?EIO=4&transport=websocket`);
    await ws.nextJson('0');
    ws.send('2');
    await ws.closed;
  });
});

describe('Engine.IO upgrade', () => {
  withoutHeartbeat();

  it('probe, noop to the poll, upgrade, then the websocket carries the session', async () => {
    const sid = await open('/engine.io/');
    const url = `/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    const ws = new Raw(`${wsBase}/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
    await ws.opened;
    ws.send('2probe');
    assert.equal(await ws.next(), '3probe');
    assert.equal(await (await get(url)).text(), '6');
    ws.send('5');
    ws.send('4hello');
    assert.equal(await ws.next(), '4hello');
    // Polling is over for this session, and so are other websockets.
    assert.equal((await get(url)).status, 400);
    // As the reference server does: the handshake completes and the
    // second websocket is closed at once, without touching the session.
    const second = new Raw(`${wsBase}/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
    await second.opened;
    await second.closed;
    ws.send('4still here');
    assert.equal(await ws.next(), '4still here');
    ws.close();
  });

  it('frames queued during the upgrade go out on the websocket', async () => {
    const sid = await open('/engine.io/');
    const url = `/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    const ws = new Raw(`${wsBase}/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
    await ws.opened;
    ws.send('2probe');
    assert.equal(await ws.next(), '3probe');
    assert.equal((await post(url, '4queued')).status, 200);
    ws.send('5');
    assert.equal(await ws.next(), '4queued');
    ws.close();
  });

  it('a probe that sends anything else is dropped; polling goes on', async () => {
    const sid = await open('/engine.io/');
    const url = `/engine.io/?EIO=4&transport=polling&sid=${sid}`;
    const ws = new Raw(`${wsBase}/engine.io/?EIO=4&transport=websocket&sid=${sid}`);
    await ws.opened;
    ws.send('4too early');
    await ws.closed;
    assert.equal((await post(url, '4still polling')).status, 200);
    assert.equal(await (await get(url)).text(), '4still polling');
  });
});

describe('Socket.IO connect and disconnect', () => {
  it('main namespace: CONNECT reply with exactly sid, then auth {}', async () => {
    const ws = new Raw(`${wsBase}/socket.io/?EIO=4&transport=websocket`);
    await ws.nextJson('0');
    ws.send('40');
    const reply = await ws.nextJson('40');
    assert.deepEqual(Object.keys(reply), ['sid']);
    assert.equal(await ws.next(), '42["auth",{}]');
    ws.close();
  });

  it('main namespace with a payload', async () => {
    const ws = new Raw(`${wsBase}/socket.io/?EIO=4&transport=websocket`);
    await ws.nextJson('0');
    ws.send('40{"token":"123"}');
    assert.deepEqual(Object.keys(await ws.nextJson('40')), ['sid']);
    assert.equal(await ws.next(), '42["auth",{"token":"123"}]');
    ws.close();
  });

  it('custom namespace, with and without trailing comma and payload', async () => {
    for (const [connect, auth] of [
      ['40/custom,', '{}'],
      ['40/custom', '{}'],
      ['40/custom,{"token":"abc"}', '{"token":"abc"}'],
    ]) {
      const ws = new Raw(`${wsBase}/socket.io/?EIO=4&transport=websocket`);
      await ws.nextJson('0');
      ws.send(connect);
      assert.deepEqual(Object.keys(await ws.nextJson('40/custom,')), ['sid']);
      assert.equal(await ws.next(), `42/custom,["auth",${auth}]`);
      ws.close();
    }
  });

  it('unknown namespace: CONNECT_ERROR', async () => {
    const ws = new Raw(`${wsBase}/socket.io/?EIO=4&transport=websocket`);
    await ws.nextJson('0');
    ws.send('40/random');
    assert.equal(await ws.next(), '44/random,{"message":"Invalid namespace"}');
    ws.close();
  });

  it('an invalid handshake closes the connection', async () => {
    const ws = new Raw(`${wsBase}/socket.io/?EIO=4&transport=websocket`);
    await ws.nextJson('0');
    ws.send('4abc');
    await ws.closed;
  });

  it('no CONNECT within the connect timeout closes the connection', async () => {
    const ws = new Raw(`${wsBase}/socket.io/?EIO=4&transport=websocket`);
    const started = Date.now();
    await ws.nextJson('0');
    await ws.closed;
    assert.ok(Date.now() - started >= 900);
  });

  it('leaving the main namespace keeps the connection (pings go on)', async () => {
    const ws = new Raw(`${wsBase}/socket.io/?EIO=4&transport=websocket`, { autoPong: false });
    await ws.nextJson('0');
    ws.send('40');
    await ws.nextJson('40');
    await ws.next(); // auth
    ws.send('41');
    assert.equal(await ws.next(), '2');
    ws.close();
  });

  it('connect then leave a custom namespace; the main one still works', async () => {
    const ws = await sio();
    ws.send('40/custom');
    await ws.nextJson('40/custom,');
    await ws.next(); // auth
    ws.send('41/custom');
    ws.send('42["message","message to main namespace",1,2]');
    assert.equal(await ws.next(), '42["message-back","message to main namespace",1,2]');
    ws.close();
  });

  it('a packet for a namespace not joined closes the connection', async () => {
    const ws = await sio();
    ws.send('42/custom,["message",1]');
    await ws.closed;
  });

  it('polling: CONNECT over POST, reply and auth over GET', async () => {
    const sid = await open('/socket.io/');
    const url = `/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    assert.equal((await post(url, '40{"token":"p"}')).status, 200);
    const body = await (await get(url)).text();
    const [reply, auth] = body.split('\x1e');
    assert.deepEqual(Object.keys(JSON.parse(reply.slice(2))), ['sid']);
    assert.equal(auth, '42["auth",{"token":"p"}]');
  });
});

describe('Socket.IO messages and acks', () => {
  it('plain-text event is emitted back', async () => {
    const ws = await sio();
    ws.send('42["message",1,"2",{"3":[true]}]');
    assert.equal(await ws.next(), '42["message-back",1,"2",{"3":[true]}]');
    ws.close();
  });

  it('binary attachments are emitted back', async () => {
    const ws = await sio();
    ws.send('452-["message",1,{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    ws.send(Uint8Array.from([1, 2, 3]));
    ws.send(Uint8Array.from([4, 5, 6]));
    assert.equal(await ws.next(), '452-["message-back",1,{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    assert.deepEqual(await ws.next(), Buffer.from([1, 2, 3]));
    assert.deepEqual(await ws.next(), Buffer.from([4, 5, 6]));
    ws.close();
  });

  it('client ack request is acked, plain and binary', async () => {
    const ws = await sio();
    ws.send('42456["message-with-ack",1,"2",{"3":[false]}]');
    assert.equal(await ws.next(), '43456[1,"2",{"3":[false]}]');
    ws.send('452-789["message-with-ack",1,{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    ws.send(Uint8Array.from([1, 2, 3]));
    ws.send(Uint8Array.from([4, 5, 6]));
    assert.equal(await ws.next(), '462-789[1,{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    assert.deepEqual(await ws.next(), Buffer.from([1, 2, 3]));
    assert.deepEqual(await ws.next(), Buffer.from([4, 5, 6]));
    ws.close();
  });

  it('server emit with ack: the client acks, the server emits the ack back', async () => {
    const ws = await sio();
    ws.send('42["emit-with-ack",1,"2",{"3":[true]}]');
    assert.equal(await ws.next(), '421["emit-with-ack",1,"2",{"3":[true]}]');
    ws.send('431[1,"2",{"3":[true]}]');
    assert.equal(await ws.next(), '42["emit-with-ack",1,"2",{"3":[true]}]');
    ws.close();
  });

  it('server emit with a binary ack', async () => {
    const ws = await sio();
    const DATA = '{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},"test"';
    ws.send(`452-["emit-with-ack",${DATA}]`);
    ws.send(Uint8Array.from([1, 2, 3]));
    ws.send(Uint8Array.from([4, 5, 6]));
    assert.equal(await ws.next(), `452-1["emit-with-ack",${DATA}]`);
    assert.deepEqual(await ws.next(), Buffer.from([1, 2, 3]));
    assert.deepEqual(await ws.next(), Buffer.from([4, 5, 6]));
    ws.send(`462-1[${DATA}]`);
    ws.send(Uint8Array.from([1, 2, 3]));
    ws.send(Uint8Array.from([4, 5, 6]));
    assert.equal(await ws.next(), `452-["emit-with-ack",${DATA}]`);
    assert.deepEqual(await ws.next(), Buffer.from([1, 2, 3]));
    assert.deepEqual(await ws.next(), Buffer.from([4, 5, 6]));
    ws.close();
  });

  for (const [what, packet] of [
    ['unknown packet type', '4abc'],
    ['invalid payload format', '42{}'],
    ['invalid ack id', '42abc["message-with-ack",1,"2",{"3":[false]}]'],
    ['reserved event name', '42["disconnect"]'],
    ['text while attachments are due', '451-["message",{"_placeholder":true,"num":0}]'],
    ['binary without a binary packet', Uint8Array.from([1])],
  ]) {
    it(`closes the connection upon invalid format (${what})`, async () => {
      const ws = await sio();
      ws.send(packet);
      if (what.startsWith('text while')) ws.send('42["message"]');
      await ws.closed;
    });
  }
});

describe('stock clients against the conformance server', () => {
  it('engine.io-client: text and binary echo over the default transports', async () => {
    const socket = new EngineSocket(base, { path: '/engine.io/' });
    try {
      await nextEvent(socket, 'open');
      socket.send('hello');
      assert.deepEqual(await nextEvent(socket, 'message'), ['hello']);
      socket.send(Buffer.from([1, 2, 3]));
      const [echo] = await nextEvent(socket, 'message');
      assert.deepEqual(Buffer.from(echo), Buffer.from([1, 2, 3]));
    } finally {
      socket.close();
    }
  });

  it('socket.io-client: auth, message-back with binary, acks both ways, custom namespace', async () => {
    const socket = io(base, { auth: { token: 'xyz' }, reconnection: false });
    const custom = io(`${base}/custom`, { reconnection: false });
    // Both listeners first: the two share one Engine.IO connection, and
    // one poll may carry both namespaces' auth events.
    const auths = [nextEvent(socket, 'auth'), nextEvent(custom, 'auth')];
    try {
      const [[auth], [customAuth]] = await Promise.all(auths);
      assert.deepEqual(auth, { token: 'xyz' });
      assert.deepEqual(customAuth, {});
      socket.emit('message', 1, 'two', Buffer.from([3]));
      const back = await nextEvent(socket, 'message-back');
      assert.deepEqual(back.slice(0, 2), [1, 'two']);
      assert.deepEqual(Buffer.from(back[2]), Buffer.from([3]));
      assert.deepEqual(await socket.timeout(WAIT).emitWithAck('message-with-ack', 'a', { b: [1] }), 'a');
      // The server's first emit-with-ack asks for an ack; the second
      // carries the ack's arguments.
      const echoed = new Promise((resolve) => {
        socket.on('emit-with-ack', (arg, ack) => {
          if (typeof ack === 'function') ack(`${arg}!`);
          else resolve(arg);
        });
      });
      socket.emit('emit-with-ack', 'ping');
      assert.equal(await withTimeout(echoed, WAIT, 'emit-with-ack echo'), 'ping!');
      assert.equal(custom.connected, true);
    } finally {
      socket.disconnect();
      custom.disconnect();
    }
  });
});
