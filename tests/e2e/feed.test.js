'use strict';
// End-to-end tests of the livefeed demo page against the real server binary,
// in Debian's Chromium. Each test gets its own server (fresh data dir, free
// port); the browser is shared.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const {
  browserHarness, e2eSuite, createPost, createPosts, editPost,
  waitForStatus, feedIds, waitForIds, assertStrictlyDescending, screenshot,
} = require('./helpers');


e2eSuite('livefeed demo page', { timeout: 120000 }, () => {
  const harness = browserHarness();
  const { server, open } = harness;

  function assertHealthy(page) {
    assert.deepEqual(page.pageErrors, [], 'no uncaught errors in the page');
    assert.deepEqual(page.consoleErrors, [], 'no console errors in the page');
  }

  it('(1) a post submitted from page A shows once on A and within a second on B', async () => {
    const srv = await server();
    const a = await open(srv);
    const b = await open(srv);

    // Hold the POST until we have seen the form disabled while sending.
    let release;
    const held = new Promise((r) => { release = r; });
    await a.route('**/posts', async (route) => {
      if (route.request().method() === 'POST') await held;
      await route.continue();
    });

    await a.fill('#title', 'Hello from page A');
    await a.fill('#content', 'First line\nSecond line');
    await a.fill('#author', 'Ada');
    await a.click('#submit');
    await a.locator('#post-fieldset:disabled').waitFor({ timeout: 5000 });
    assert.equal(await a.locator('#submit').textContent(), 'Publishing…');
    release();

    const postA = a.locator('#feed .post', { hasText: 'Hello from page A' });
    await postA.first().waitFor({ timeout: 5000 });
    const id = Number(await postA.first().getAttribute('data-id'));
    assert.ok(Number.isSafeInteger(id));
    await waitForIds(b, [id], 2000);
    // Compare the moments the post appeared on A (POST response) and on B
    // (websocket), as both pages recorded them.
    const seenA = await a.evaluate((i) => window.__postSeenAt[i], id);
    const seenB = await b.evaluate((i) => window.__postSeenAt[i], id);
    assert.ok(seenB - seenA < 1000, `B shows the post within a second of A (A ${seenA}, B ${seenB})`);
    await a.unroute('**/posts');

    // Form re-enabled, title and content cleared, author kept.
    await a.locator('#post-fieldset:not(:disabled)').waitFor({ timeout: 5000 });
    assert.equal(await a.inputValue('#title'), '');
    assert.equal(await a.inputValue('#content'), '');
    assert.equal(await a.inputValue('#author'), 'Ada');

    // A also receives its own post over the socket; a later post proves that
    // event has arrived (the stream is ordered), then A must still show it once.
    const later = await createPost(srv.baseURL, { title: 'later', content: 'later' });
    await waitForIds(a, [later.id]);
    await waitForIds(b, [later.id]);
    for (const page of [a, b]) {
      const ids = await feedIds(page);
      assert.equal(ids.filter((x) => x === id).length, 1, 'the submitted post is shown exactly once');
      assert.deepEqual(ids, [later.id, id]);
      const card = page.locator(`#feed .post[data-id="${id}"]`);
      assert.equal(await card.locator('.post-title').textContent(), 'Hello from page A');
      assert.equal(await card.locator('.post-author').textContent(), 'Ada');
      assert.equal(await card.locator('.post-id').textContent(), `#${id}`);
      // Line breaks are kept.
      assert.equal(await card.locator('.post-content').innerText(), 'First line\nSecond line');
    }

    // The author is remembered across reloads (localStorage).
    await a.reload({ waitUntil: 'domcontentloaded' });
    await waitForStatus(a, 'connected');
    assert.equal(await a.inputValue('#author'), 'Ada');
    await waitForIds(a, [later.id, id]);

    await screenshot(a, '01-submit-page-a');
    await screenshot(b, '01-submit-page-b');
    assertHealthy(a);
    assertHealthy(b);
  });

  it('(2) a post created over the HTTP API appears on both pages', async () => {
    const srv = await server();
    const a = await open(srv);
    const b = await open(srv);
    assert.equal(await a.locator('#empty').isVisible(), true, 'empty feed shows the empty state');

    const post = await createPost(srv.baseURL, { title: 'From the API', content: 'line 1\nline 2\n\nline 4' });
    await Promise.all([waitForIds(a, [post.id], 2000), waitForIds(b, [post.id], 2000)]);

    for (const page of [a, b]) {
      const card = page.locator(`#feed .post[data-id="${post.id}"]`);
      assert.equal(await card.locator('.post-title').textContent(), 'From the API');
      assert.equal(await card.locator('.post-content').innerText(), 'line 1\nline 2\n\nline 4');
      assert.equal(await card.locator('.post-author').textContent(), 'anonymous');
      assert.equal(await card.locator('.post-id').textContent(), `#${post.id}`);
      assert.match(await card.locator('time.post-time').textContent(), /^(just now|\d+ s ago)$/);
      assert.equal(await card.locator('time.post-time').getAttribute('datetime'), new Date(post.createdAt).toISOString());
      assert.equal(await page.locator('#empty').isVisible(), false);
      assert.deepEqual(await feedIds(page), [post.id]);
    }
    await screenshot(a, '02-api-post');
    assertHealthy(a);
    assertHealthy(b);
  });

  it('(4) an empty title shows the server\'s field error next to the title', async () => {
    const srv = await server();
    const page = await open(srv);

    // What the server says about an empty title, straight from the API.
    const res = await fetch(`${srv.baseURL}/posts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: '', content: 'some content' }),
    });
    assert.equal(res.status, 422);
    const body = await res.json();
    assert.equal(body.error.code, 'invalid_field');
    assert.equal(body.error.field, 'title');

    // Turn off the browser's own `required` check so the server answers.
    await page.$eval('#post-form', (f) => { f.noValidate = true; });
    await page.fill('#title', '');
    await page.fill('#content', 'some content');
    await page.click('#submit');

    const err = page.locator('.field-error[data-field="title"]');
    await page.waitForFunction(() => document.querySelector('.field-error[data-field="title"]').textContent !== '', null, { timeout: 5000 });
    assert.equal(await err.textContent(), body.error.message);
    assert.equal(await err.isVisible(), true);
    assert.equal(await page.getAttribute('#title', 'aria-invalid'), 'true');
    assert.equal(await page.locator('#banner').isVisible(), false, 'field errors do not use the banner');
    assert.equal(await page.inputValue('#content'), 'some content', 'content is kept after an error');
    assert.equal(await page.locator('#post-fieldset').isDisabled(), false);
    assert.deepEqual(await feedIds(page), []);
    await screenshot(page, '04-field-error');

    // Typing in the field clears its error.
    await page.fill('#title', 'fixed');
    assert.equal(await err.textContent(), '');

    // A non-field error goes to the banner (server answer simulated: 503).
    await page.route('**/posts', (route) => route.request().method() === 'POST'
      ? route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: { code: 'unavailable', message: 'storage is unavailable' } }) })
      : route.continue());
    await page.click('#submit');
    await page.locator('#banner:not([hidden])').waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#banner-text').textContent(), 'storage is unavailable');
    await page.unroute('**/posts');
    await page.click('#banner-close');
    assert.equal(await page.locator('#banner').isVisible(), false);
    assert.deepEqual(page.pageErrors, []);
  });

  it('(5) an XSS payload renders literally', async () => {
    const srv = await server();
    const page = await open(srv);
    const dialogs = [];
    page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });

    const title = '<img src=x onerror=alert(1)>';
    const content = '<script>alert(2)</script>\n<b onmouseover=alert(3)>bold</b> &amp; <a href="javascript:alert(4)">x</a>';
    const author = '<svg onload=alert(5)>';
    // Through the form, and through the API (arrives over the websocket).
    await page.fill('#title', title);
    await page.fill('#content', content);
    await page.fill('#author', author);
    await page.click('#submit');
    const viaApi = await createPost(srv.baseURL, { title, content, author });
    await waitForIds(page, [viaApi.id]);
    const ids = await feedIds(page);
    assert.equal(ids.length, 2);

    for (const id of ids) {
      const card = page.locator(`#feed .post[data-id="${id}"]`);
      assert.equal(await card.locator('.post-title').textContent(), title);
      assert.equal(await card.locator('.post-content').textContent(), content);
      assert.equal(await card.locator('.post-author').textContent(), author);
    }
    const injected = await page.$$eval('#feed img, #feed script, #feed svg, #feed b, #feed iframe, #feed a[href^="javascript"]', (n) => n.length);
    assert.equal(injected, 0, 'no element is created from post data');
    // Round trip through the server once more before checking for dialogs.
    const probe = await createPost(srv.baseURL, { title: 'probe', content: 'probe' });
    await waitForIds(page, [probe.id]);
    assert.deepEqual(dialogs, [], 'no dialog fired');
    await screenshot(page, '05-xss-literal');
    assert.deepEqual(page.pageErrors, []);
  });

  it('(6) "Load older" pages back', async () => {
    const srv = await server();
    const created = await createPosts(srv.baseURL, 25);
    const allIds = created.map((p) => p.id).sort((x, y) => y - x);
    const page = await open(srv);

    await waitForIds(page, allIds.slice(0, 20));
    let ids = await feedIds(page);
    assert.deepEqual(ids, allIds.slice(0, 20), 'the first page is the newest 20');
    const button = page.locator('#load-older');
    assert.equal(await button.isVisible(), true);

    await button.click();
    await waitForIds(page, allIds);
    ids = await feedIds(page);
    assert.deepEqual(ids, allIds, 'all 25 posts, newest first');
    assertStrictlyDescending(assert, ids);
    await button.waitFor({ state: 'hidden', timeout: 5000 }); // next was null: nothing older
    // Live posts still go to the top.
    const fresh = await createPost(srv.baseURL, { title: 'fresh', content: 'fresh' });
    await waitForIds(page, [fresh.id]);
    assert.deepEqual(await feedIds(page), [fresh.id, ...allIds]);
    await screenshot(page, '06-load-older', { fullPage: true });
    assertHealthy(page);
  });

  it('shows "offline" when the browser goes offline and catches up when back', async () => {
    const srv = await server();
    const page = await open(srv);
    const first = await createPost(srv.baseURL, { title: 'before offline', content: 'x' });
    await waitForIds(page, [first.id]);

    await page.context().setOffline(true);
    await waitForStatus(page, 'offline', 5000);
    assert.equal((await page.locator('#status').textContent()).trim(), 'offline');
    const whileOffline = await createPost(srv.baseURL, { title: 'while offline', content: 'x' });

    await page.context().setOffline(false);
    await waitForStatus(page, 'connected', 10000);
    await waitForIds(page, [whileOffline.id]);
    assert.deepEqual(await feedIds(page), [whileOffline.id, first.id]);
    await screenshot(page, '07-back-online');
    assert.deepEqual(page.pageErrors, []);
  });

  it('retries a failed initial load, then goes live', async () => {
    const srv = await server();
    const existing = await createPost(srv.baseURL, { title: 'already there', content: 'x' });
    const context = await harness.newContext({ baseURL: srv.baseURL });
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // The first GET /posts fails as if the network dropped; later ones pass.
    let failures = 0;
    await page.route('**/posts?*', (route) => {
      if (route.request().method() === 'GET' && failures === 0) {
        failures++;
        return route.abort('connectionrefused');
      }
      return route.continue();
    });
    // Record the banner's and the status's every change from page load on.
    await page.addInitScript(() => {
      window.__seen = [];
      document.addEventListener('DOMContentLoaded', () => {
        const status = document.getElementById('status');
        const banner = document.getElementById('banner');
        new MutationObserver(() => {
          window.__seen.push(`${status.dataset.state}|${banner.hidden ? '' : banner.textContent.trim()}`);
        }).observe(document.body, { attributes: true, childList: true, subtree: true, characterData: true });
      });
    });
    await page.goto('/');
    await waitForStatus(page, 'connected', 10000);
    const seen = await page.evaluate(() => window.__seen);
    assert.ok(seen.some((s) => /^reconnecting\|.+/.test(s)), `a banner and a reconnect countdown were shown, saw ${JSON.stringify(seen)}`);
    await waitForIds(page, [existing.id]);
    assert.equal(await page.locator('#banner').isVisible(), false, 'the load error goes away once loaded');
    const live = await createPost(srv.baseURL, { title: 'live', content: 'x' });
    await waitForIds(page, [live.id]);
    assert.deepEqual(await feedIds(page), [live.id, existing.id]);
    assert.deepEqual(pageErrors, []);
  });

  it('looks right wide/light and narrow/dark (docs screenshots)', async () => {
    const srv = await server();
    const seed = [
      { title: 'Welcome to livefeed', content: 'Posts appear here in real time, newest first.\nOpen this page in two windows and publish from one of them.', author: 'livefeed team' },
      { title: 'Release notes 0.1', content: 'Durable storage, websocket fan-out, resume with ?since=ID after a reconnect.', author: 'Grace' },
      { title: 'Lunch?', content: 'Anyone up for ramen at 12:30?', author: null },
      { title: 'Deploy finished', content: 'All green.\nNo downtime, 0 errors, p99 latency 4 ms.', author: 'ci-bot' },
      { title: 'Tip: keyboard shortcut', content: 'Press Ctrl+Enter in the form to publish without reaching for the mouse.', author: 'Ada' },
    ];
    const seeded = [];
    for (const p of seed) {
      const body = { title: p.title, content: p.content };
      if (p.author) body.author = p.author;
      seeded.push((await createPost(srv.baseURL, body)).id);
    }
    // Other feeds, so the picker shows a few.
    await createPosts(srv.baseURL, 3, (i) => ({ title: `Release ${i}`, content: 'Notes.' }), 'release-notes');
    await createPosts(srv.baseURL, 2, (i) => ({ title: `Standup ${i}`, content: 'Done, doing, blocked.' }), 'team-ops');
    // One post edited, so the screenshots show the "edited" marker.
    await editPost(srv.baseURL, seeded[1], {
      title: 'Release notes 0.2',
      content: 'Durable storage, websocket fan-out, edit and delete live on every page, resume with ?since=SEQ after a reconnect.',
    });

    const wide = await open(srv, { viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
    await waitForIds(wide, seeded);
    await wide.locator('#feed-list .feed-link[data-feed="team-ops"]').waitFor({ timeout: 5000 });
    await wide.fill('#author', 'Ada');
    await wide.locator('#author').blur();
    await screenshot(wide, 'wide-light', { docsName: 'screenshot-demo.png' });

    const narrow = await open(srv, { viewport: { width: 375, height: 812 }, colorScheme: 'dark' });
    await waitForIds(narrow, seeded);
    await narrow.locator('#feed-list .feed-link[data-feed="team-ops"]').waitFor({ timeout: 5000 });
    const overflow = await narrow.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at 375px (overflow ${overflow}px)`);
    const bg = await narrow.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(bg, 'rgb(244, 245, 249)', 'dark scheme uses the dark palette');
    await screenshot(narrow, 'narrow-dark', { docsName: 'screenshot-mobile-dark.png', fullPage: true });
    assertHealthy(wide);
    assertHealthy(narrow);
  });
});
