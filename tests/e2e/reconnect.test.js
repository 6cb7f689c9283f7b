'use strict';
// (3) Restarting the livefeed server under two open pages: both show
// "reconnecting", then resume with ?since=<seq> and show every post in
// order, once. And a page cut off while posts are edited and deleted
// resumes after the highest seq it saw and ends showing exactly the
// server's posts.

const { it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  LivefeedServer, e2eSuite, createPost, createPosts, launchBrowser, openFeed,
  waitForStatus, feedIds, waitForIds, assertStrictlyDescending, recordStatusStates, screenshot,
  editPost, deletePost, waitForGone, waitForPostText, waitForServerState,
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

  it('a page cut off while posts are edited and deleted resumes with since=<highest seq> and shows the server state', async () => {
    const own = await LivefeedServer.start();
    try {
      const base = own.baseURL;
      const [p1, p2, p3, p4, p5] = await createPosts(base, 5, (i) => ({ title: `post ${i}`, content: `content ${i}`, author: `author ${i}` }));
      // An edit after the newest post: the page resumes after p5's id, so
      // this comes as a replayed postUpdated.
      const early = await editPost(base, p1.id, { content: 'content 1, edited before the page opened' });
      const page = await openFeed(browser, base);
      await waitForServerState(page, base);
      assert.equal(page.sockets[0].since, String(p5.id), 'the first socket resumes after the newest post of the first page');
      assert.equal(await page.locator(`#feed .post[data-id="${p1.id}"]`).getAttribute('data-seq'), String(early.etag));

      // Live changes while connected.
      await editPost(base, p2.id, { title: 'post 2, edited live' });
      assert.equal(await deletePost(base, p3.id), 204);
      const last = await editPost(base, p4.id, { title: 'post 4, edited live' });
      await waitForPostText(page, p4.id, { title: 'post 4, edited live' });
      await waitForGone(page, [p3.id]);
      await waitForServerState(page, base);
      const seen = Math.max(...page.sockets[0].frames.filter((f) => f.data && Number.isInteger(f.data.seq)).map((f) => f.data.seq));
      assert.equal(seen, last.etag, 'the last change the page saw is the last edit');
      assert.equal(await page.locator('#feed').getAttribute('data-cursor'), String(last.etag));

      // Cut off; meanwhile edit (several times), delete, create.
      await page.context().setOffline(true);
      await waitForStatus(page, 'offline', 5000);
      await editPost(base, p1.id, { title: 'post 1, edited offline' });
      await editPost(base, p1.id, { title: 'post 1, edited offline twice', author: null });
      assert.equal(await deletePost(base, p4.id), 204, 'delete a post the page saw edited');
      assert.equal(await deletePost(base, p5.id), 204);
      const n1 = await createPost(base, { title: 'new while offline', content: 'x' });
      await editPost(base, n1.id, { content: 'new while offline, then edited' });
      const n2 = await createPost(base, { title: 'created and deleted while offline', content: 'x' });
      assert.equal(await deletePost(base, n2.id), 204);
      await editPost(base, p2.id, { title: '<img src=x onerror=alert(1)> post 2' });
      const n3 = await createPost(base, { title: 'newest while offline', content: 'x' });

      await page.context().setOffline(false);
      await waitForStatus(page, 'connected', 10000);
      const state = await waitForServerState(page, base);
      assert.deepEqual(state.map((p) => p.id), [n3.id, n1.id, p2.id, p1.id]);
      assert.equal(page.sockets.length, 2, 'one reconnect');
      assert.equal(page.sockets[1].since, String(last.etag), 'the page resumes after the highest seq it saw');
      const replayed = page.sockets[1].frames.filter((f) => f.event !== 'welcome');
      const seqs = replayed.map((f) => f.data.seq);
      assert.ok(seqs.every((s, i) => s > last.etag && (i === 0 || s > seqs[i - 1])), `replayed seqs ascend after the cursor: ${seqs}`);
      assert.ok(replayed.some((f) => f.event === 'postDeleted') && replayed.some((f) => f.event === 'postUpdated'), 'the replay carried edits and deletes');
      assert.equal(await page.$$eval('#feed img', (n) => n.length), 0);
      assertStrictlyDescending(assert, await feedIds(page));

      // Live again after the replay.
      await editPost(base, n3.id, { title: 'newest, edited live' });
      await waitForPostText(page, n3.id, { title: 'newest, edited live' });
      await waitForServerState(page, base);
      await screenshot(page, '11-resumed-after-edits');
      assert.deepEqual(page.pageErrors, []);
      assert.deepEqual(page.dialogs, []);
      await page.context().close();
    } finally {
      await own.dispose();
    }
  });
});
