'use strict';
// (3) Restarting the livefeed server under two open pages: both show
// "reconnecting", then resume with ?since=<id> and show every post in order,
// once.

const { it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  LivefeedServer, e2eSuite, createPost, createPosts, launchBrowser, openFeed,
  waitForStatus, feedIds, waitForIds, assertStrictlyDescending, recordStatusStates, screenshot,
} = require('./helpers');


e2eSuite('livefeed reconnect', { timeout: 120000 }, () => {
  let browser;
  let srv;

  before(async () => {
    browser = await launchBrowser();
    srv = await LivefeedServer.start();
  });

  after(async () => {
    if (browser) await browser.close().catch(() => {});
    if (srv) await srv.dispose().catch(() => {});
  });

  async function expectAll(pages, expected, timeout) {
    const want = [...expected].sort((x, y) => y - x);
    await Promise.all(pages.map((p) => waitForIds(p, want, timeout)));
    for (const p of pages) {
      const ids = await feedIds(p);
      assertStrictlyDescending(assert, ids);
      assert.deepEqual(ids, want, 'every post, newest first, exactly once');
    }
  }

  it('(3) both pages reconnect after a server restart and show every post once, in order', async () => {
    const initial = await createPosts(srv.baseURL, 3, (i) => ({ title: `before restart ${i}`, content: 'x' }));
    const a = await openFeed(browser, srv.baseURL);
    const b = await openFeed(browser, srv.baseURL, { viewport: { width: 375, height: 812 } });
    const pages = [a, b];
    const expected = initial.map((p) => p.id);
    await expectAll(pages, expected, 5000);

    for (let round = 1; round <= 2; round++) {
      for (const p of pages) await recordStatusStates(p);

      const exit = await srv.stop();
      assert.deepEqual(exit, { code: 0, signal: null }, 'SIGTERM stops the server gracefully with exit code 0');

      // Both pages notice the drop and count down to the next attempt.
      for (const p of pages) {
        await p.waitForFunction(() => window.__statusStates.includes('reconnecting'), null, { timeout: 5000, polling: 50 });
        const texts = await p.evaluate(() => window.__statusTexts);
        assert.ok(texts.some((t) => /^reconnecting in \d+s$/.test(t)), `countdown text shown, saw ${JSON.stringify(texts)}`);
        const codes = await p.evaluate(() => window.__closeCodes);
        assert.equal(codes[0], 1001, `the server closes with 1001 (going away) on shutdown, saw ${JSON.stringify(codes)}`);
      }
      if (round === 1) await screenshot(a, '03-reconnecting');

      // Same port, same data dir; create posts right after it is back up,
      // most likely before the pages have reconnected.
      await srv.start();
      const during = await createPosts(srv.baseURL, 4, (i) => ({ title: `round ${round} post ${i}`, content: `created right after restart ${round}` }));
      expected.push(...during.map((p) => p.id));

      await Promise.all(pages.map((p) => waitForStatus(p, 'connected', 20000)));
      await expectAll(pages, expected, 10000);

      // Live updates flow again after the replay.
      const live = await createPost(srv.baseURL, { title: `live after round ${round}`, content: 'x' });
      expected.push(live.id);
      await expectAll(pages, expected, 5000);
    }

    // Ids survived the restarts (same data dir): all unique and ascending in
    // creation order.
    assertStrictlyDescending(assert, [...expected].reverse());
    await screenshot(a, '03-after-restart', { fullPage: true });
    await screenshot(b, '03-after-restart-narrow', { fullPage: true });
    for (const p of pages) assert.deepEqual(p.pageErrors, []);
  });
});
