'use strict';
// Shared helpers for livefeed's browser end-to-end tests: start/stop/restart
// the real server binary, launch Debian's Chromium through playwright-core,
// and small page/API utilities. Every wait here is bounded by a timeout.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const E2E_DIR = __dirname;
const REPO_ROOT = path.resolve(E2E_DIR, '..', '..');
const SCREENSHOT_DIR = path.join(E2E_DIR, 'screenshots');
const DOCS_DIR = path.join(REPO_ROOT, 'docs');

const LIVEFEED_BIN = process.env.LIVEFEED_BIN || path.join(REPO_ROOT, 'target', 'release', 'livefeed');
const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const IN_CI = /^(1|true|yes)$/i.test(process.env.CI || '');
// E2E_PUBLIC_DIR: serve the page (index.html, app.js, style.css) from this
// directory instead of the binary's embedded copy, e.g. to check that a test
// fails against an older page:
//   mkdir /tmp/old && for f in index.html app.js style.css; do git show HEAD:public/$f > /tmp/old/$f; done
//   E2E_PUBLIC_DIR=/tmp/old bash tests/e2e/run.sh
const PUBLIC_OVERRIDE = process.env.E2E_PUBLIC_DIR || null;

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function isExecutable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

// Why the e2e suite cannot run here, or null when it can. In CI a missing
// prerequisite must fail the run, so callers turn this into a failure there.
function missingPrerequisite() {
  if (!isExecutable(CHROMIUM_PATH)) return `Chromium not found at ${CHROMIUM_PATH} (run tests/e2e/setup.sh)`;
  if (!isExecutable(LIVEFEED_BIN)) return `livefeed binary not found at ${LIVEFEED_BIN} (cargo build --release, or set LIVEFEED_BIN)`;
  return null;
}

// Define a test suite that needs Chromium and the server binary. When one is
// missing, the suite is skipped with the reason locally, but in CI a failing
// test is registered instead: there a missing browser is never a skip.
function e2eSuite(name, options, fn) {
  const { describe, it } = require('node:test');
  const missing = missingPrerequisite();
  if (missing && IN_CI) {
    it(`${name}: prerequisites present`, () => {
      throw new Error(missing);
    });
    return;
  }
  describe(name, { ...options, skip: missing || false }, fn);
}

// The browser a suite's tests share, and the servers and pages they open,
// all closed after the suite. Call it in the suite's body (it registers the
// suite's before and after hooks).
function browserHarness() {
  const { before, after } = require('node:test');
  let browser;
  const servers = [];
  const contexts = [];

  before(async () => {
    browser = await launchBrowser();
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    if (browser) await browser.close().catch(() => {});
    for (const s of servers) await s.dispose().catch(() => {});
  });

  return {
    // A browser context of the test's own, closed with the suite's.
    async newContext(opts) {
      const context = await browser.newContext(opts);
      contexts.push(context);
      return context;
    },
    async server(opts) {
      const s = await LivefeedServer.start(opts);
      servers.push(s);
      return s;
    },
    async open(srv, opts) {
      const page = await openFeed(browser, srv.baseURL, opts);
      contexts.push(page.context());
      return page;
    },
  };
}

// No uncaught errors, no console errors but the `expected` ones (tests
// provoke some on purpose: Chromium logs every 4xx answer to fetch as
// "Failed to load resource"), no dialog left open.
function assertPageHealthy(page, expected = []) {
  const assert = require('node:assert/strict');
  assert.deepEqual(page.pageErrors, [], 'no uncaught errors in the page');
  const unexpected = page.consoleErrors.filter((m) => !expected.some((re) => re.test(m)));
  assert.deepEqual(unexpected, [], 'no console errors in the page');
  assert.deepEqual(page.dialogs, [], 'no dialog opened');
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Bind 127.0.0.1:0, read the port the kernel picked, close, return it.
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

// Poll `check` (async, returns truthy when done) until it succeeds or the
// deadline passes. This is bounded polling, not a fixed sleep.
async function pollUntil(check, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastErr;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${lastErr ? `: ${lastErr.message}` : ''}`);
    }
    await delay(interval);
  }
}

// Servers still running when this process ends are killed, so an
// interrupted run (Ctrl+C, run.sh's timeout) leaves no livefeed behind.
const liveProcs = new Set();
function killLiveProcs() {
  for (const p of liveProcs) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
  liveProcs.clear();
}
process.on('exit', killLiveProcs);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killLiveProcs();
    process.kill(process.pid, sig);
  });
}

class LivefeedServer {
  // `args`: extra command line arguments (e.g. ['--publish-token', 't']).
  constructor({ bin = LIVEFEED_BIN, port, dataDir, startTimeout = 20000, args = [] } = {}) {
    this.bin = bin;
    this.args = args;
    this.port = port;
    this.dataDir = dataDir;
    this.ownsDataDir = false;
    this.startTimeout = startTimeout;
    this.proc = null;
    this.logs = '';
    this.exits = []; // { code, signal } of every stopped run
  }

  static async start(opts = {}) {
    const server = new LivefeedServer(opts);
    if (!server.port) server.port = await freePort();
    if (!server.dataDir) {
      server.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'livefeed-e2e-'));
      server.ownsDataDir = true;
    }
    await server.start();
    return server;
  }

  get baseURL() {
    return `http://127.0.0.1:${this.port}`;
  }

  get running() {
    return this.proc !== null;
  }

  _log(chunk) {
    this.logs += chunk.toString();
    if (this.logs.length > 200000) this.logs = this.logs.slice(-100000);
  }

  async start() {
    if (this.proc) throw new Error('server already running');
    const proc = spawn(this.bin, ['--addr', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_BACKTRACE: '1' },
    });
    this.proc = proc;
    liveProcs.add(proc);
    proc.stdout.on('data', (c) => this._log(c));
    proc.stderr.on('data', (c) => this._log(c));
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        liveProcs.delete(proc);
        if (this.proc === proc) this.proc = null;
        resolve({ code, signal });
      });
      proc.on('error', (err) => {
        liveProcs.delete(proc);
        this._log(`spawn error: ${err.message}\n`);
        if (this.proc === proc) this.proc = null;
        resolve({ code: null, signal: null, error: err });
      });
    });

    let earlyExit = null;
    this.exited.then((e) => { earlyExit = e; });
    try {
      await pollUntil(async () => {
        if (earlyExit) {
          throw Object.assign(new Error(`livefeed exited during startup (${JSON.stringify(earlyExit)})`), { fatal: true });
        }
        const res = await fetch(`${this.baseURL}/healthz`, { signal: AbortSignal.timeout(1000) });
        return res.status === 200;
      }, { timeout: this.startTimeout, interval: 50, what: `${this.baseURL}/healthz` });
    } catch (err) {
      await this.stop().catch(() => {});
      err.message += `\n--- livefeed logs ---\n${this.tail()}`;
      throw err;
    }
  }

  // SIGTERM and wait for the process to exit; SIGKILL if it does not within
  // the timeout (and report that as an error). Returns { code, signal }.
  async stop({ timeout = 10000 } = {}) {
    const proc = this.proc;
    if (!proc) return this.exits[this.exits.length - 1] || null;
    proc.kill('SIGTERM');
    let result;
    try {
      result = await withTimeout(this.exited, timeout, 'livefeed to exit after SIGTERM');
    } catch (err) {
      proc.kill('SIGKILL');
      await withTimeout(this.exited, 5000, 'livefeed to exit after SIGKILL');
      this.exits.push({ code: null, signal: 'SIGKILL' });
      throw new Error(`${err.message}\n--- livefeed logs ---\n${this.tail()}`);
    }
    this.exits.push(result);
    return result;
  }

  // Stop, then start again on the same port and data dir.
  async restart() {
    const exit = await this.stop();
    await this.start();
    return exit;
  }

  async dispose() {
    try {
      if (this.proc) await this.stop();
    } finally {
      if (this.ownsDataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
    }
  }

  tail(n = 4000) {
    return this.logs.slice(-n);
  }
}

// ---- HTTP API helpers ------------------------------------------------------

// The posts collection of `feed` (null: the default feed's /posts).
function postsPath(feed) {
  return feed === null || feed === undefined ? '/posts' : `/feeds/${encodeURIComponent(feed)}/posts`;
}

// POST /posts, or POST /feeds/{feed}/posts when `feed` is given.
async function createPost(baseURL, body, feed = null, { token = null } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${baseURL}${postsPath(feed)}`, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`POST ${postsPath(feed)} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

// Create posts one after the other (ids ascend in creation order).
async function createPosts(baseURL, n, make = (i) => ({ title: `post ${i}`, content: `content of post ${i}` }), feed = null) {
  const out = [];
  for (let i = 1; i <= n; i++) out.push(await createPost(baseURL, make(i), feed));
  return out;
}

// GET /feeds: the list of feeds ({ name, posts, lastPostId, subscribers }).
async function listFeeds(baseURL, { token = null } = {}) {
  const res = await fetch(`${baseURL}/feeds`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(5000),
  });
  if (res.status !== 200) throw new Error(`GET /feeds answered ${res.status}`);
  return (await res.json()).feeds;
}

// PATCH /posts/{id}. `ifMatch` is a seq (sent as If-Match: "<seq>"), '*' or
// omitted. Resolves { status, body, etag } (etag as a number, or null).
async function patchPost(baseURL, id, body, ifMatch) {
  const headers = { 'content-type': 'application/json' };
  if (ifMatch !== undefined && ifMatch !== null) headers['if-match'] = ifMatch === '*' ? '*' : `"${ifMatch}"`;
  const res = await fetch(`${baseURL}/posts/${id}`, {
    method: 'PATCH', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, etag: etagOf(res) };
}

// PATCH that must succeed: resolves { post, etag }.
async function editPost(baseURL, id, body, ifMatch) {
  const r = await patchPost(baseURL, id, body, ifMatch);
  if (r.status !== 200) throw new Error(`PATCH /posts/${id} answered ${r.status}: ${JSON.stringify(r.body)}`);
  return { post: r.body, etag: r.etag };
}

// DELETE /posts/{id}; resolves the status.
async function deletePost(baseURL, id) {
  const res = await fetch(`${baseURL}/posts/${id}`, { method: 'DELETE', signal: AbortSignal.timeout(5000) });
  await res.text();
  return res.status;
}

// GET /posts/{id}: { status, body, etag }.
async function getPost(baseURL, id) {
  const res = await fetch(`${baseURL}/posts/${id}`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, etag: etagOf(res) };
}

function etagOf(res) {
  const m = /^"(\d+)"$/.exec(res.headers.get('etag') || '');
  return m ? Number(m[1]) : null;
}

// Every live post, newest first, following `next` (GET /posts, or GET
// /feeds/{feed}/posts when `feed` is given).
async function listPosts(baseURL, feed = null, { token = null } = {}) {
  const out = [];
  let before = null;
  for (;;) {
    const res = await fetch(`${baseURL}${postsPath(feed)}?limit=100${before === null ? '' : `&before=${before}`}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(5000),
    });
    if (res.status !== 200) throw new Error(`GET ${postsPath(feed)} answered ${res.status}`);
    const body = await res.json();
    out.push(...body.posts);
    if (body.next === null) return out;
    before = body.next;
  }
}

// ---- browser helpers ----------------------------------------------------------

async function launchBrowser() {
  const { chromium } = require('playwright-core');
  // A page fulfilled by a route has no local address, so Chromium's Local
  // Network Access checks would block its websocket to 127.0.0.1: relax
  // them, only for the E2E_PUBLIC_DIR override.
  const args = PUBLIC_OVERRIDE ? [...CHROMIUM_ARGS, '--disable-features=LocalNetworkAccessChecks'] : CHROMIUM_ARGS;
  return chromium.launch({ executablePath: CHROMIUM_PATH, args, timeout: 30000 });
}

// Serve the page from E2E_PUBLIC_DIR instead of the binary, when set.
async function routePublicOverride(context) {
  if (!PUBLIC_OVERRIDE) return;
  const files = { '/': 'index.html', '/index.html': 'index.html', '/app.js': 'app.js', '/style.css': 'style.css' };
  const types = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };
  await context.route((url) => Object.prototype.hasOwnProperty.call(files, url.pathname), (route) => {
    const file = files[new URL(route.request().url()).pathname];
    return route.fulfill({
      status: 200,
      contentType: types[file.split('.').pop()],
      body: fs.readFileSync(path.join(PUBLIC_OVERRIDE, file)),
    });
  });
}

// A fresh context+page on the demo page (at `path`, e.g. '/#/feeds/x'),
// waiting until its websocket is up (`waitFor`: another #status state, or
// null for none). Uncaught page errors are collected in page.pageErrors,
// console errors in page.consoleErrors (Chromium logs refused websocket
// connects there, so only tests that keep the server up can insist on
// none). page.sockets lists the page's websockets in opening order:
// { url, since, feeds, frames, closed } (frames: the parsed JSON text frames
// received; closed: set when the socket closed), and page.dialogs every
// dialog's message (dialogs are dismissed).
async function openFeed(browser, baseURL, { viewport = { width: 1280, height: 860 }, colorScheme = 'light', reducedMotion = 'no-preference', path: at = '/', waitFor = 'connected' } = {}) {
  const context = await browser.newContext({ baseURL, viewport, colorScheme, reducedMotion });
  context.setDefaultTimeout(10000);
  await routePublicOverride(context);
  const page = await context.newPage();
  page.pageErrors = [];
  page.consoleErrors = [];
  page.sockets = [];
  page.dialogs = [];
  page.on('pageerror', (err) => page.pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.consoleErrors.push(msg.text());
  });
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  page.on('websocket', (socket) => {
    const url = new URL(socket.url());
    const record = {
      url: socket.url(), since: url.searchParams.get('since'), feeds: url.searchParams.get('feeds'), frames: [], closed: false,
    };
    page.sockets.push(record);
    socket.on('framereceived', ({ payload }) => {
      try { record.frames.push(JSON.parse(typeof payload === 'string' ? payload : payload.toString())); } catch { /* not JSON */ }
    });
    socket.on('close', () => { record.closed = true; });
  });
  // window.__postSeenAt[id]: wall-clock ms when a post first appeared in #feed.
  await page.addInitScript(() => {
    window.__postSeenAt = {};
    document.addEventListener('DOMContentLoaded', () => {
      const feed = document.getElementById('feed');
      new MutationObserver((records) => {
        const now = Date.now();
        for (const r of records) {
          for (const n of r.addedNodes) {
            if (n.dataset && n.dataset.id && !(n.dataset.id in window.__postSeenAt)) window.__postSeenAt[n.dataset.id] = now;
          }
        }
      }).observe(feed, { childList: true });
    });
  });
  await page.goto(at, { waitUntil: 'domcontentloaded' });
  if (waitFor) await waitForStatus(page, waitFor);
  return page;
}

async function waitForStatus(page, state, timeout = 10000) {
  await page.locator(`#status[data-state="${state}"]`).waitFor({ state: 'attached', timeout });
}

// Ids of the posts shown in #feed, in DOM order.
function feedIds(page) {
  return page.$$eval('#feed .post[data-id]', (nodes) => nodes.map((n) => Number(n.dataset.id)));
}

// Wait until every id in `expected` is shown on the page.
async function waitForIds(page, expected, timeout = 10000) {
  await page.waitForFunction(
    (want) => {
      const have = new Set(Array.from(document.querySelectorAll('#feed .post[data-id]'), (n) => Number(n.dataset.id)));
      return want.every((id) => have.has(id));
    },
    expected,
    { timeout, polling: 50 },
  );
}

// Wait until no id in `gone` is shown on the page.
async function waitForGone(page, gone, timeout = 10000) {
  await page.waitForFunction(
    (ids) => ids.every((id) => !document.querySelector(`#feed .post[data-id="${id}"]`)),
    gone,
    { timeout, polling: 50 },
  );
}

// Wait until post `id` shows `title` (and, when given, `content`).
async function waitForPostText(page, id, { title, content } = {}, timeout = 10000) {
  await page.waitForFunction(
    ({ id, title, content }) => {
      const card = document.querySelector(`#feed .post[data-id="${id}"]`);
      if (!card) return false;
      return (title === undefined || card.querySelector('.post-title').textContent === title) &&
        (content === undefined || card.querySelector('.post-content').textContent === content);
    },
    { id, title, content },
    { timeout, polling: 50 },
  );
}

// What the page shows, in DOM order, in the shape of the API's posts:
// { id, title, content, author, createdAt, updatedAt } (author null for
// "anonymous", the times as the <time datetime> attributes, updatedAt null
// when the "edited" marker is hidden).
function feedState(page) {
  return page.$$eval('#feed .post[data-id]', (nodes) => nodes.map((n) => {
    const author = n.querySelector('.post-author');
    const edited = n.querySelector('.post-edited');
    return {
      id: Number(n.dataset.id),
      title: n.querySelector('.post-title').textContent,
      content: n.querySelector('.post-content').textContent,
      author: author.classList.contains('is-anonymous') ? null : author.textContent,
      createdAt: n.querySelector('time.post-time').getAttribute('datetime'),
      updatedAt: edited && !edited.hidden ? edited.querySelector('time.post-updated').getAttribute('datetime') : null,
    };
  }));
}

// The server's posts (GET /posts, or GET /feeds/{feed}/posts) in
// feedState's shape.
async function serverState(baseURL, feed = null, opts = {}) {
  return (await listPosts(baseURL, feed, opts)).map((p) => ({
    id: p.id,
    title: p.title,
    content: p.content,
    author: p.author === null || p.author === undefined || p.author.trim() === '' ? null : p.author,
    createdAt: new Date(p.createdAt).toISOString(),
    updatedAt: p.updatedAt ? new Date(p.updatedAt).toISOString() : null,
  }));
}

// Wait until the page shows exactly the server's posts (of `feed`, when
// given); returns that state.
async function waitForServerState(page, baseURL, timeout = 10000, feed = null, opts = {}) {
  let want;
  let have;
  await pollUntil(async () => {
    want = await serverState(baseURL, feed, opts);
    have = await feedState(page);
    return JSON.stringify(want) === JSON.stringify(have);
  }, { timeout, interval: 100, what: 'the page to show the server state' }).catch((err) => {
    err.message += `\nserver: ${JSON.stringify(want)}\npage:   ${JSON.stringify(have)}`;
    throw err;
  });
  return want;
}

// The feed is newest first, without duplicates: strictly descending ids.
function assertStrictlyDescending(assert, ids, label = 'feed ids') {
  for (let i = 1; i < ids.length; i++) {
    assert.ok(ids[i - 1] > ids[i], `${label} must be strictly descending and unique, got ${JSON.stringify(ids)}`);
  }
}

// Record every value #status[data-state] takes from now on into
// window.__statusStates (and websocket close codes into window.__closeCodes),
// so short-lived states cannot be missed by polling.
async function recordStatusStates(page) {
  await page.evaluate(() => {
    const status = document.getElementById('status');
    window.__statusStates = [status.dataset.state];
    window.__statusTexts = [status.textContent.trim()];
    window.__closeCodes = [];
    new MutationObserver((records) => {
      window.__statusStates.push(status.dataset.state);
      window.__statusTexts.push(status.textContent.trim());
      if (records.some((r) => r.attributeName === 'data-close-code')) window.__closeCodes.push(Number(status.dataset.closeCode));
    }).observe(status, { attributes: true, childList: true, subtree: true, characterData: true });
  });
}

async function screenshot(page, name, { fullPage = false, docsName = null } = {}) {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const file = path.join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage, animations: 'disabled' });
  // Refresh the committed screenshots in docs/ only when asked to.
  if (docsName && process.env.UPDATE_DOCS_SCREENSHOTS === '1') {
    fs.mkdirSync(DOCS_DIR, { recursive: true });
    fs.copyFileSync(file, path.join(DOCS_DIR, docsName));
  }
  return file;
}

module.exports = {
  browserHarness,
  assertPageHealthy,
  REPO_ROOT,
  SCREENSHOT_DIR,
  LIVEFEED_BIN,
  CHROMIUM_PATH,
  IN_CI,
  LivefeedServer,
  missingPrerequisite,
  e2eSuite,
  freePort,
  pollUntil,
  withTimeout,
  postsPath,
  createPost,
  createPosts,
  listFeeds,
  patchPost,
  editPost,
  deletePost,
  getPost,
  listPosts,
  launchBrowser,
  openFeed,
  routePublicOverride,
  waitForStatus,
  feedIds,
  waitForIds,
  waitForGone,
  waitForPostText,
  feedState,
  serverState,
  waitForServerState,
  assertStrictlyDescending,
  recordStatusStates,
  screenshot,
};
