'use strict';
// CORS in a real browser: a page served from a second origin (a tiny static
// server on another ephemeral port) talks to the livefeed API started with
// --allowed-origin naming it. From that page, Chromium preflights a JSON
// `fetch` POST /posts with Authorization and Idempotency-Key headers,
// reads the answer's Location and ETag, and follows the post over an
// EventSource on /events. A page on an origin that is not listed is
// blocked by the browser: its preflighted POST is never sent, and it can
// read neither a plain GET nor the event stream.

const http = require('node:http');
const { it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  LivefeedServer, e2eSuite, launchBrowser, listPosts, pollUntil, withTimeout,
} = require('./helpers');

const TOKEN = 'cors-e2e-token';
// Longest a page script may wait for the network.
const PAGE_WAIT_MS = 10000;

// A static site on 127.0.0.1:<ephemeral>: one blank page at `/`. Its
// origin is the page's origin. Resolves { origin, close() }.
function staticSite(name) {
  const page = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${name}</title></head><body>${name}</body></html>`;
  const server = http.createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        origin: `http://127.0.0.1:${port}`,
        close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}

// Runs in the page: creates a post with a fetch that needs a preflight
// (JSON body, Authorization, Idempotency-Key), and waits for it on an
// EventSource opened first (with `since=0`, so the post arrives whether it
// is committed before or after the stream attaches).
async function createAndFollow({ api, token, waitMs }) {
  const timeout = (what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), waitMs));
  const feed = new EventSource(`${api}/events?since=0`, { withCredentials: true });
  // Listening from the start: an event nobody listens for is lost.
  const seen = [];
  let notify = () => {};
  feed.addEventListener('newPost', (e) => {
    seen.push({ data: JSON.parse(e.data), lastEventId: e.lastEventId });
    notify();
  });
  try {
    await Promise.race([
      new Promise((resolve, reject) => {
        feed.onopen = resolve;
        feed.onerror = () => reject(new Error('EventSource failed to open'));
      }),
      timeout('EventSource open'),
    ]);
    const res = await Promise.race([
      fetch(`${api}/posts`, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Authorization: `Bearer ${token}`,
          'Idempotency-Key': `cors-e2e-${Date.now()}`,
        },
        body: JSON.stringify({ title: 'From another origin', content: 'posted cross-origin' }),
      }),
      timeout('POST /posts'),
    ]);
    const post = await res.json();
    const event = await Promise.race([
      new Promise((resolve) => {
        const look = () => {
          const found = seen.find((e) => e.data.post.id === post.id);
          if (found) resolve(found);
        };
        notify = look;
        look();
      }),
      timeout('newPost on the EventSource'),
    ]);
    return {
      status: res.status,
      location: res.headers.get('Location'),
      etag: res.headers.get('ETag'),
      post,
      event,
    };
  } finally {
    feed.close();
  }
}

// Runs in the page: what a page on a disallowed origin gets from each kind
// of request (the error's name, or what it could read).
async function tryFromOtherOrigin({ api, token, waitMs }) {
  const settle = (p) => Promise.race([
    p.then((r) => ({ read: true, status: r.status }), (e) => ({ read: false, error: e.name })),
    new Promise((resolve) => setTimeout(() => resolve({ read: false, error: 'timeout' }), waitMs)),
  ]);
  const post = await settle(fetch(`${api}/posts`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ title: 'Should never be stored', content: 'blocked by the preflight' }),
  }));
  const get = await settle(fetch(`${api}/posts`));
  const events = await new Promise((resolve) => {
    const feed = new EventSource(`${api}/events?since=0`);
    const done = (outcome) => { feed.close(); resolve(outcome); };
    feed.onopen = () => done({ opened: true });
    feed.onerror = () => done({ opened: false, readyState: feed.readyState });
    feed.addEventListener('newPost', () => done({ opened: true, readEvent: true }));
    setTimeout(() => done({ opened: false, error: 'timeout' }), waitMs);
  });
  return { post, get, events };
}

e2eSuite('CORS: pages on other origins', { timeout: 60000 }, () => {
  let api;
  let allowed;
  let other;
  let browser;
  const contexts = [];

  before(async () => {
    allowed = await staticSite('the allowed front end');
    other = await staticSite('another site');
    api = await LivefeedServer.start({
      args: ['--allowed-origin', allowed.origin, '--publish-token', TOKEN],
    });
    browser = await launchBrowser();
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    if (browser) await browser.close().catch(() => {});
    if (api) await api.dispose().catch(() => {});
    if (allowed) await allowed.close();
    if (other) await other.close();
  });

  async function pageOn(site) {
    const context = await browser.newContext();
    contexts.push(context);
    context.setDefaultTimeout(PAGE_WAIT_MS);
    const page = await context.newPage();
    page.consoleErrors = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') page.consoleErrors.push(msg.text());
    });
    await page.goto(`${site.origin}/`, { waitUntil: 'load' });
    return page;
  }

  it('an allowed origin creates a post with a preflighted fetch and follows it over EventSource', async () => {
    const page = await pageOn(allowed);
    const result = await withTimeout(
      page.evaluate(createAndFollow, { api: api.baseURL, token: TOKEN, waitMs: PAGE_WAIT_MS }),
      3 * PAGE_WAIT_MS,
      'the page to create and follow a post',
    );
    assert.equal(result.status, 201, JSON.stringify(result.post));
    assert.equal(result.post.title, 'From another origin');
    // Exposed to the page: without Access-Control-Expose-Headers both are null.
    assert.equal(result.location, `/posts/${result.post.id}`);
    assert.match(result.etag, /^"\d+"$/);
    assert.deepEqual(result.event.data.post, result.post);
    assert.equal(result.event.lastEventId, String(result.event.data.seq));
    assert.deepEqual(page.consoleErrors, [], 'no CORS errors in the console');
    // The browser did preflight the POST (the server logs every request).
    await pollUntil(async () => /OPTIONS \/posts 204/.test(api.logs), { timeout: 5000, what: 'the preflight in the server log' });
    const stored = await listPosts(api.baseURL);
    assert.deepEqual(stored.map((p) => p.id), [result.post.id]);
  });

  it('a disallowed origin is blocked: its POST is never sent, its reads are refused', async () => {
    const before = (await listPosts(api.baseURL)).length;
    const page = await pageOn(other);
    const result = await withTimeout(
      page.evaluate(tryFromOtherOrigin, { api: api.baseURL, token: TOKEN, waitMs: PAGE_WAIT_MS }),
      4 * PAGE_WAIT_MS,
      'the page on the other origin',
    );
    // fetch rejects with a TypeError: the browser refused the response.
    assert.deepEqual(result.post, { read: false, error: 'TypeError' });
    assert.deepEqual(result.get, { read: false, error: 'TypeError' });
    assert.equal(result.events.opened, false, JSON.stringify(result.events));
    assert.equal(result.events.readyState, 2, 'the EventSource is closed, not reconnecting');
    assert.ok(
      page.consoleErrors.some((m) => /CORS policy/.test(m)),
      `Chromium reports the CORS refusal: ${JSON.stringify(page.consoleErrors)}`,
    );
    // The preflight failed, so the POST was never sent: nothing stored.
    assert.equal((await listPosts(api.baseURL)).length, before);
  });
});
