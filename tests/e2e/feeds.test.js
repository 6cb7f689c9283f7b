'use strict';
// Named feeds on the demo page: the feed picker (GET /feeds, "new feed"),
// the URL naming the shown feed (#/feeds/NAME, deep links, back/forward),
// posting to the shown feed, pages on different feeds seeing only their
// own, and switching back to a feed resuming it with since=<its cursor>.
// Each test gets its own server; the browser is shared.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const {
  browserHarness, assertPageHealthy: assertHealthy, e2eSuite, createPost, createPosts, editPost, deletePost, listFeeds, listPosts,
  waitForStatus, feedIds, waitForIds, waitForGone, waitForPostText,
  waitForServerState, assertStrictlyDescending, pollUntil, screenshot, routePublicOverride,
} = require('./helpers');

e2eSuite('livefeed named feeds', { timeout: 240000 }, () => {
  const harness = browserHarness();
  const { server, open } = harness;

  // Every request the page sends from now on: { method, url (path+query) }.
  function recordRequests(page) {
    const seen = [];
    page.on('request', (req) => {
      const u = new URL(req.url());
      seen.push({ method: req.method(), url: u.pathname + u.search, headers: req.headers() });
    });
    return seen;
  }

  // The picker as shown: [{ name, count (number|null), current }].
  function picker(page) {
    return page.$$eval('#feed-list .feed-link', (links) => links.map((a) => {
      const count = a.querySelector('.feed-link-count');
      return {
        name: a.dataset.feed,
        count: count.hidden || count.textContent === '' ? null : Number(count.textContent),
        current: a.getAttribute('aria-current') === 'page',
      };
    }));
  }

  // Wait until the picker lists exactly `want` ([{ name, count }], in order).
  async function waitForPicker(page, want, timeout = 10000) {
    let have;
    await pollUntil(async () => {
      have = (await picker(page)).map(({ name, count }) => ({ name, count }));
      return JSON.stringify(have) === JSON.stringify(want);
    }, { timeout, interval: 50, what: `the picker to list ${JSON.stringify(want)}` }).catch((err) => {
      err.message += `\npicker: ${JSON.stringify(have)}`;
      throw err;
    });
  }

  // Wait until the page shows feed `name` and follows it (connected, on a
  // socket of that feed that is still open); returns that socket's record.
  async function waitForFeedShown(page, name, timeout = 10000) {
    await page.locator(`#feed[data-feed="${name}"]`).waitFor({ state: 'attached', timeout });
    await waitForStatus(page, 'connected', timeout);
    return pollUntil(() => {
      const open = page.sockets.filter((s) => !s.closed);
      const last = page.sockets[page.sockets.length - 1];
      return open.length === 1 && open[0] === last && last.feeds === name && last;
    }, { timeout, what: `one open socket, following ${name}; sockets: ${JSON.stringify(page.sockets.map((s) => [s.url, s.closed]))}` });
  }

  const hashOf = (page) => new URL(page.url()).hash;
  // The composer's fieldset is disabled (and so are its controls).
  const composerDisabled = (page) => page.evaluate(() => document.getElementById('post-fieldset').disabled &&
    document.getElementById('submit').matches(':disabled') && document.getElementById('title').matches(':disabled'));

  it('the picker lists the server\'s feeds; "new feed" opens #/feeds/NAME and its post lands in that feed only', async () => {
    const srv = await server();
    const base = srv.baseURL;
    await createPosts(base, 2, (i) => ({ title: `main ${i}`, content: 'x' }));
    await createPosts(base, 3, (i) => ({ title: `team-a ${i}`, content: 'x' }), 'team-a');
    await createPost(base, { title: 'b_2 1', content: 'x' }, 'b_2');

    const page = await open(srv);
    const socket = await waitForFeedShown(page, 'main');
    assert.match(socket.url, /\/ws\?feeds=main&since=\d+$/);
    assert.equal(await page.locator('#feed-title').textContent(), 'main');
    // What GET /feeds lists, main first, then by name, with post counts.
    const listed = await listFeeds(base);
    assert.deepEqual(listed.map((f) => [f.name, f.posts]).sort(), [['b_2', 1], ['main', 2], ['team-a', 3]]);
    await waitForPicker(page, [{ name: 'main', count: 2 }, { name: 'b_2', count: 1 }, { name: 'team-a', count: 3 }]);
    assert.deepEqual((await picker(page)).filter((x) => x.current).map((x) => x.name), ['main']);
    assert.equal(await page.locator('#feed-list .feed-link[data-feed="team-a"]').getAttribute('aria-label'), 'team-a, 3 posts');
    assert.equal(await page.locator('#feed-list .feed-link[data-feed="team-a"]').getAttribute('href'), '#/feeds/team-a');

    // A new feed by name, with the keyboard: the page goes to its address,
    // shows it empty, follows it from 0, and puts the focus in the form.
    const requests = recordRequests(page);
    await page.locator('#new-feed-name').focus();
    await page.keyboard.type('release-notes');
    await page.keyboard.press('Enter');
    const fresh = await waitForFeedShown(page, 'release-notes');
    assert.equal(hashOf(page), '#/feeds/release-notes');
    assert.equal(fresh.since, '0', 'an empty feed is followed from the start');
    assert.equal(fresh.feeds, 'release-notes');
    assert.equal(await page.locator('#feed-title').textContent(), 'release-notes');
    assert.equal(await page.locator('#composer-feed').textContent(), 'release-notes');
    await page.locator('#empty').waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await page.locator('#empty-feed').textContent(), 'release-notes');
    assert.deepEqual(await feedIds(page), []);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'title', 'ready to write the first post');
    assert.equal(await page.inputValue('#new-feed-name'), '');
    assert.ok(requests.some((r) => r.method === 'GET' && r.url === '/feeds/release-notes/posts?limit=20'), 'the feed\'s first page was asked for');
    // Listed (with no posts yet) and marked as the shown one.
    await waitForPicker(page, [{ name: 'main', count: 2 }, { name: 'b_2', count: 1 }, { name: 'release-notes', count: 0 }, { name: 'team-a', count: 3 }]);
    assert.deepEqual((await picker(page)).filter((x) => x.current).map((x) => x.name), ['release-notes']);

    // Publish there.
    await page.fill('#title', 'First release note');
    await page.fill('#content', 'in its own feed');
    await page.click('#submit');
    const card = page.locator('#feed .post', { hasText: 'First release note' });
    await card.waitFor({ timeout: 5000 });
    const id = Number(await card.getAttribute('data-id'));
    const posts = requests.filter((r) => r.method === 'POST');
    assert.deepEqual(posts.map((r) => r.url), ['/feeds/release-notes/posts'], 'posted to the shown feed');

    const inFeed = await listPosts(base, 'release-notes');
    assert.deepEqual(inFeed.map((p) => [p.id, p.feed, p.title]), [[id, 'release-notes', 'First release note']]);
    const inMain = await listPosts(base);
    assert.ok(!inMain.some((p) => p.id === id), 'main does not have it');
    assert.equal(inMain.length, 2);
    await waitForServerState(page, base, 10000, 'release-notes');
    // The picker catches up with the new post (refreshed after posting).
    await waitForPicker(page, [{ name: 'main', count: 2 }, { name: 'b_2', count: 1 }, { name: 'release-notes', count: 1 }, { name: 'team-a', count: 3 }]);
    assert.ok((await listFeeds(base)).some((f) => f.name === 'release-notes' && f.posts === 1));

    // Picking a feed from the list goes there (and its link is then current).
    await page.click('#feed-list .feed-link[data-feed="team-a"]');
    await waitForFeedShown(page, 'team-a');
    assert.equal(hashOf(page), '#/feeds/team-a');
    await waitForServerState(page, base, 10000, 'team-a');
    assert.equal(await page.locator('#feed-list .feed-link[data-feed="team-a"]').getAttribute('aria-current'), 'page');
    await screenshot(page, '21-feed-picker');
    assertHealthy(page);
  });

  it('two pages on different feeds each see only their own feed\'s live changes', async () => {
    const srv = await server();
    const base = srv.baseURL;
    const a = await open(srv, { path: '/#/feeds/alpha' });
    const b = await open(srv, { path: '/#/feeds/beta', viewport: { width: 375, height: 812 }, colorScheme: 'dark' });
    await waitForFeedShown(a, 'alpha');
    await waitForFeedShown(b, 'beta');

    const a1 = await createPost(base, { title: 'alpha 1', content: 'x' }, 'alpha');
    const b1 = await createPost(base, { title: 'beta 1', content: 'x' }, 'beta');
    const m1 = await createPost(base, { title: 'main 1', content: 'x' });
    const a2 = await createPost(base, { title: 'alpha 2', content: 'x' }, 'alpha');
    await editPost(base, b1.id, { title: 'beta 1, edited' });
    await editPost(base, a1.id, { title: 'alpha 1, edited' });
    const b2 = await createPost(base, { title: 'beta 2', content: 'x' }, 'beta');
    assert.equal(await deletePost(base, a2.id), 204);
    const c1 = await createPost(base, { title: 'gamma 1', content: 'x' }, 'gamma');
    // A last post in each feed: the stream is ordered, so once it is shown
    // everything before it has been applied.
    const aEnd = await createPost(base, { title: 'alpha end', content: 'x' }, 'alpha');
    const bEnd = await createPost(base, { title: 'beta end', content: 'x' }, 'beta');
    await waitForIds(a, [aEnd.id]);
    await waitForIds(b, [bEnd.id]);
    await waitForGone(a, [a2.id]);
    await waitForPostText(a, a1.id, { title: 'alpha 1, edited' });
    await waitForPostText(b, b1.id, { title: 'beta 1, edited' });

    assert.deepEqual(await feedIds(a), [aEnd.id, a1.id]);
    assert.deepEqual(await feedIds(b), [bEnd.id, b2.id, b1.id]);
    await waitForServerState(a, base, 5000, 'alpha');
    await waitForServerState(b, base, 5000, 'beta');
    for (const [page, feed, others] of [[a, 'alpha', [b1, b2, bEnd, m1, c1]], [b, 'beta', [a1, aEnd, m1, c1]]]) {
      assert.equal(page.sockets.length, 1);
      const frames = page.sockets[0].frames.filter((f) => f.data && f.data.post);
      assert.ok(frames.length > 0);
      assert.ok(frames.every((f) => f.data.post.feed === feed), `${feed}: the server sent only ${feed}'s posts`);
      for (const o of others) {
        assert.equal(await page.locator(`#feed .post[data-id="${o.id}"]`).count(), 0, `${feed} never shows post ${o.id} of ${o.feed}`);
      }
    }
    await screenshot(b, '22-beta-narrow-dark', { fullPage: true });
    assertHealthy(a);
    assertHealthy(b);
  });

  it('ignores a frame of another feed, should one arrive on the socket', async () => {
    const srv = await server();
    const base = srv.baseURL;
    const context = await harness.newContext({ baseURL: base });
    await routePublicOverride(context);
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // Between the page and the server: pass every frame on, and after the
    // welcome slip in a newPost of feed "beta".
    const foreignId = 900;
    let injected = false;
    await page.routeWebSocket(/\/ws\?/, (ws) => {
      const upstream = ws.connectToServer();
      upstream.onMessage((message) => {
        ws.send(message);
        if (!injected && /"event":"welcome"/.test(String(message))) {
          injected = true;
          ws.send(JSON.stringify({
            event: 'newPost',
            data: {
              post: { id: foreignId, feed: 'beta', title: 'not for alpha', content: 'x', author: null, createdAt: new Date().toISOString(), updatedAt: null },
              seq: foreignId,
            },
          }));
        }
      });
    });
    await page.goto('/#/feeds/alpha');
    await waitForStatus(page, 'connected');
    await pollUntil(() => injected, { what: 'the foreign frame to be sent' });
    const mine = await createPost(base, { title: 'for alpha', content: 'x' }, 'alpha');
    await waitForIds(page, [mine.id]);
    assert.deepEqual(await feedIds(page), [mine.id], 'the other feed\'s post is not shown');
    assert.equal(await page.locator('#feed').getAttribute('data-cursor'), String(mine.id), 'and does not move the cursor');
    assert.deepEqual(pageErrors, []);
  });

  it('a deep link opens its feed; picking, back and forward switch feeds; a permalink focuses its post', async () => {
    const srv = await server();
    const base = srv.baseURL;
    await createPosts(base, 2, (i) => ({ title: `main ${i}`, content: 'x' }));
    const xs = await createPosts(base, 3, (i) => ({ title: `x ${i}`, content: `x content ${i}` }), 'x');
    const ys = await createPosts(base, 2, (i) => ({ title: `y ${i}`, content: `y content ${i}` }), 'y');

    const page = await open(srv, { path: '/#/feeds/x' });
    const sx = await waitForFeedShown(page, 'x');
    assert.equal(sx.since, String(xs[2].id), 'follows x after the newest post of its first page');
    await waitForServerState(page, base, 10000, 'x');
    assert.equal(await page.title(), 'livefeed · x');
    assert.equal(await page.locator('#feed-title').textContent(), 'x');
    await waitForPicker(page, [{ name: 'main', count: 2 }, { name: 'x', count: 3 }, { name: 'y', count: 2 }]);
    assert.deepEqual((await picker(page)).filter((p) => p.current).map((p) => p.name), ['x']);

    // Keyboard: Tab to the link of y, Enter.
    await page.locator('#feed-list .feed-link[data-feed="x"]').focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.feed), 'y');
    await page.keyboard.press('Enter');
    await waitForFeedShown(page, 'y');
    assert.equal(hashOf(page), '#/feeds/y');
    await waitForServerState(page, base, 10000, 'y');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.feed), 'y', 'the focus stays on the picked link');

    // Back: x again (resumed, not loaded afresh); forward: y.
    await page.goBack();
    await waitForFeedShown(page, 'x');
    assert.equal(hashOf(page), '#/feeds/x');
    await waitForServerState(page, base, 10000, 'x');
    await page.goForward();
    await waitForFeedShown(page, 'y');
    await waitForServerState(page, base, 10000, 'y');

    // Typed addresses: #/ is main, and so is no hash at all.
    await page.evaluate(() => { location.hash = '#/'; });
    await waitForFeedShown(page, 'main');
    await waitForServerState(page, base, 10000);
    await page.evaluate(() => { location.hash = '#/feeds/x'; });
    await waitForFeedShown(page, 'x');
    await waitForServerState(page, base, 10000, 'x');

    // A post's number links to its permalink in its feed: following it
    // keeps the feed and brings the post into focus.
    const target = xs[0].id;
    await page.click(`#feed .post[data-id="${target}"] .post-id`);
    assert.equal(hashOf(page), `#/feeds/x/posts/${target}`);
    await page.waitForFunction((id) => document.activeElement && document.activeElement.dataset.id === String(id), target, { timeout: 5000 });
    assert.equal(await page.locator('#feed').getAttribute('data-feed'), 'x');
    // And opened in a new page, it opens that feed at that post.
    const deep = await open(srv, { path: `/#/feeds/y/posts/${ys[0].id}` });
    await waitForFeedShown(deep, 'y');
    await deep.waitForFunction((id) => document.activeElement && document.activeElement.dataset.id === String(id), ys[0].id, { timeout: 5000 });

    // Every socket but the last one was closed when the page switched, and
    // each followed the feed shown then.
    assert.deepEqual(page.sockets.map((s) => s.feeds), ['x', 'y', 'x', 'y', 'main', 'x']);
    assertHealthy(page);
    assertHealthy(deep);
  });

  it('switching away and back resumes the first feed with since=<its cursor> and shows exactly the server state', async () => {
    const srv = await server();
    const base = srv.baseURL;
    const [p1, p2, p3, p4] = await createPosts(base, 4, (i) => ({ title: `ops ${i}`, content: `ops content ${i}`, author: `op ${i}` }), 'ops');
    await createPosts(base, 2, (i) => ({ title: `other ${i}`, content: 'x' }), 'other');
    await editPost(base, p1.id, { content: 'ops content 1, edited before the page opened' });

    const page = await open(srv, { path: '/#/feeds/ops' });
    await waitForFeedShown(page, 'ops');
    await waitForServerState(page, base, 10000, 'ops');
    // Live changes while shown move the cursor.
    const live = await editPost(base, p3.id, { title: 'ops 3, edited live' });
    await waitForPostText(page, p3.id, { title: 'ops 3, edited live' });
    const cursor = await page.locator('#feed').getAttribute('data-cursor');
    assert.equal(cursor, String(live.etag), 'the cursor is the last change of ops the page saw');

    // Something typed in an edit form survives the switch.
    await page.click(`#feed .post[data-id="${p4.id}"] .post-edit-btn`);
    await page.fill(`#edit-${p4.id}-content`, 'half-typed edit');

    // Away to "other".
    await page.click('#feed-list .feed-link[data-feed="other"]');
    await waitForFeedShown(page, 'other');
    await waitForServerState(page, base, 10000, 'other');
    const otherLive = await createPost(base, { title: 'other, live', content: 'x' }, 'other');
    await waitForIds(page, [otherLive.id]);

    // Meanwhile in ops: edits (one twice), deletes, creates (one created
    // and deleted), through the API.
    await editPost(base, p1.id, { title: 'ops 1, edited while away' });
    await editPost(base, p1.id, { title: 'ops 1, edited twice while away', author: null });
    assert.equal(await deletePost(base, p2.id), 204);
    const n1 = await createPost(base, { title: 'ops new while away', content: 'x' }, 'ops');
    await editPost(base, n1.id, { content: 'new while away, then edited' });
    const n2 = await createPost(base, { title: 'ops created and deleted while away', content: 'x' }, 'ops');
    assert.equal(await deletePost(base, n2.id), 204);
    await editPost(base, p3.id, { title: '<img src=x onerror=alert(1)> ops 3' });
    const otherLast = await createPost(base, { title: 'other, while ops changes', content: 'x' }, 'other');
    await waitForIds(page, [otherLast.id]); // shown here, live: other's cursor moves to it

    // Back to ops: its kept posts, then the replay of what changed since
    // the cursor -- no fresh first page.
    const requests = recordRequests(page);
    await page.click('#feed-list .feed-link[data-feed="ops"]');
    const back = await waitForFeedShown(page, 'ops');
    assert.equal(back.since, cursor, 'the socket resumes ops after the cursor it had');
    const state = await waitForServerState(page, base, 10000, 'ops').catch((err) => {
      err.message += `\nframes of the resumed socket: ${JSON.stringify(back.frames)}`;
      throw err;
    });
    assert.deepEqual(state.map((p) => p.id), [n1.id, p4.id, p3.id, p1.id]);
    assertStrictlyDescending(assert, await feedIds(page));
    assert.ok(!requests.some((r) => r.method === 'GET' && r.url.startsWith('/feeds/ops/posts')), `resumed, not reloaded: ${JSON.stringify(requests.map((r) => r.url))}`);
    const replayed = back.frames.filter((f) => f.event !== 'welcome');
    const seqs = replayed.map((f) => f.data.seq);
    assert.ok(seqs.length > 0 && seqs.every((s, i) => s > Number(cursor) && (i === 0 || s > seqs[i - 1])), `replayed seqs ascend after the cursor: ${seqs}`);
    assert.ok(replayed.some((f) => f.event === 'postDeleted') && replayed.some((f) => f.event === 'postUpdated') && replayed.some((f) => f.event === 'newPost'));
    assert.ok(replayed.every((f) => !f.data.post || f.data.post.feed === 'ops'));
    assert.equal(await page.$$eval('#feed img', (n) => n.length), 0, 'an edited-in title stays text');
    // The edit form was kept, with what was typed.
    assert.equal(await page.inputValue(`#edit-${p4.id}-content`), 'half-typed edit');
    await page.click(`#feed .post[data-id="${p4.id}"] .post-edit-cancel`);

    // Live again after the replay; and "other" resumes too.
    const end = await createPost(base, { title: 'ops, live after the switch', content: 'x' }, 'ops');
    await waitForIds(page, [end.id]);
    await waitForServerState(page, base, 10000, 'ops');
    await page.click('#feed-list .feed-link[data-feed="other"]');
    const otherBack = await waitForFeedShown(page, 'other');
    assert.equal(otherBack.since, String(otherLast.id), 'other resumes after the last change it saw');
    await waitForServerState(page, base, 10000, 'other');
    await screenshot(page, '23-resumed-feed');
    assertHealthy(page);
  });

  it('an invalid feed name: a clear message, nothing followed, nothing posted', async () => {
    const srv = await server();
    const base = srv.baseURL;
    const page = await open(srv);
    await waitForFeedShown(page, 'main');
    const requests = recordRequests(page);

    // "New feed" checks the name like the server does.
    for (const bad of ['Team News', '-dash-first', 'über', 'with/slash']) {
      await page.fill('#new-feed-name', bad);
      await page.click('#new-feed-open');
      const err = page.locator('#new-feed-error');
      await page.waitForFunction(() => document.getElementById('new-feed-error').textContent !== '', null, { timeout: 5000 });
      assert.match(await err.textContent(), /is not a feed name\. A feed name is 1 to 64 characters of a-z, 0-9, - and _, starting with a letter or a digit\./);
      assert.equal(await err.isVisible(), true);
      assert.equal(await page.getAttribute('#new-feed-name', 'aria-invalid'), 'true');
      assert.equal(await page.evaluate(() => document.activeElement.id), 'new-feed-name');
      assert.equal(hashOf(page), '', 'the page stays where it was');
      assert.equal(await page.locator('#feed').getAttribute('data-feed'), 'main');
    }
    assert.match(await page.locator('#new-feed-error').textContent(), /^“with\/slash” is not a feed name/);
    await page.fill('#new-feed-name', 'Team');
    assert.equal(await page.locator('#new-feed-error').textContent(), '', 'typing clears the message');
    await page.click('#new-feed-open');
    assert.match(await page.locator('#new-feed-error').textContent(), /Did you mean “team”\?/);
    await page.fill('#new-feed-name', '');
    await page.click('#new-feed-open');
    assert.equal(await page.locator('#new-feed-error').textContent(), 'Enter a name for the feed.');
    assert.deepEqual(requests.filter((r) => r.url.startsWith('/feeds/')), [], 'nothing asked of the server');

    // An address with an invalid name: a notice, no socket, no posting.
    const socketsBefore = page.sockets.length;
    await page.evaluate(() => { location.hash = '#/feeds/Bad_Name'; });
    const notice = page.locator('#feed-notice');
    await notice.waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await page.locator('#feed-notice-text').textContent(),
      '“Bad_Name” is not a feed name. A feed name is 1 to 64 characters of a-z, 0-9, - and _, starting with a letter or a digit.');
    await waitForStatus(page, 'idle', 5000);
    assert.equal((await page.locator('#status').textContent()).trim(), 'no feed');
    assert.equal(await composerDisabled(page), true, 'nothing can be posted');
    assert.deepEqual(await feedIds(page), []);
    assert.equal(await page.locator('#empty').isVisible(), false);
    await pollUntil(() => page.sockets.every((s) => s.closed), { what: 'the main socket to close' });
    assert.deepEqual((await picker(page)).filter((p) => p.current), [], 'no feed is marked current');
    await screenshot(page, '24-invalid-feed');
    // Other addresses that name no feed.
    for (const [hash, re] of [
      [`#/feeds/${'a'.repeat(65)}`, /is not a feed name/],
      ['#/feeds/', /names no feed/],
      ['#/nothing/here', /names no feed/],
      ['#/feeds/%E2%9C%93', /^“✓” is not a feed name/],
    ]) {
      await page.evaluate((h) => { location.hash = h; }, hash);
      await page.waitForFunction((src) => new RegExp(src).test(document.getElementById('feed-notice-text').textContent), re.source, { timeout: 5000 });
    }
    // The notice's link goes back to main, which works again.
    await page.click('#feed-notice a');
    await waitForFeedShown(page, 'main');
    assert.equal(await notice.isVisible(), false);
    assert.equal(await composerDisabled(page), false);
    assert.equal(page.sockets.length, socketsBefore + 1, 'the invalid addresses opened no socket');
    assert.ok(!requests.some((r) => r.method === 'POST'), 'nothing was posted');
    assert.ok(!requests.some((r) => r.url.startsWith('/feeds/')), `no feed's posts were asked for: ${JSON.stringify(requests.map((r) => r.url))}`);

    // The server's own 400 for a name it refuses is shown as it says it
    // (simulated for a name this page accepts: the rules could differ).
    const refusal = await fetch(`${base}/feeds/Weird/posts`);
    assert.equal(refusal.status, 400);
    const refusalBody = await refusal.json();
    assert.equal(refusalBody.error.code, 'invalid_feed');
    await page.route('**/feeds/weird/posts*', (route) => route.fulfill({ status: 400, contentType: 'application/json', body: JSON.stringify(refusalBody) }));
    await page.evaluate(() => { location.hash = '#/feeds/weird'; });
    await page.waitForFunction(() => !document.getElementById('feed-notice').hidden, null, { timeout: 5000 });
    assert.equal(await page.locator('#feed-notice-text').textContent(), `The server refused the feed “weird”: ${refusalBody.error.message}`);
    assert.equal(await composerDisabled(page), true);
    await waitForStatus(page, 'idle', 5000);
    assert.equal(page.sockets.length, socketsBefore + 1, 'no socket for a refused feed');
    await page.unroute('**/feeds/weird/posts*');

    assert.deepEqual((await listFeeds(base)).map((f) => f.name), [], 'no feed was created');
    assert.deepEqual(page.pageErrors, []);
  });

  it('a private feed says why it is refused, and opens with an access token', async () => {
    const tokenValue = 'e2e-publish-token';
    const srv = await server({ args: ['--publish-token', tokenValue] });
    const base = srv.baseURL;
    await createPost(base, { title: 'ops secret', content: 'x' }, 'private-ops', { token: tokenValue });
    const page = await open(srv, { path: '/#/feeds/private-ops', waitFor: 'idle' });
    const notice = page.locator('#feed-notice');
    await notice.waitFor({ state: 'visible', timeout: 5000 });
    const res = await fetch(`${base}/feeds/private-ops/posts`);
    const body = await res.json();
    assert.ok(res.status === 401 || res.status === 403, `anonymous read of a private feed: ${res.status}`);
    assert.equal(await page.locator('#feed-notice-text').textContent(),
      `“private-ops” is a private feed: ${body.error.message} Enter an access token to read it.`);
    assert.equal(await page.locator('#feed-notice').getAttribute('data-kind'), 'refused');
    assert.equal((await page.locator('#status').textContent()).trim(), 'not allowed');
    assert.equal(await composerDisabled(page), true);
    assert.deepEqual(page.sockets, [], 'no socket for a feed the server refuses');
    assert.deepEqual(await feedIds(page), []);

    // The token (kept in sessionStorage for this tab) opens it.
    await page.click('.token summary');
    await page.fill('#token', tokenValue);
    await page.press('#token', 'Enter');
    const socket = await waitForFeedShown(page, 'private-ops');
    assert.equal(new URL(socket.url).searchParams.get('token'), tokenValue, 'the websocket presents the token as ?token=');
    await waitForServerState(page, base, 10000, 'private-ops', { token: tokenValue });
    assert.equal(await notice.isVisible(), false);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('livefeed.token')), tokenValue);
    const requests = recordRequests(page);
    await page.fill('#title', 'posted with the token');
    await page.fill('#content', 'x');
    await page.click('#submit');
    await page.locator('#feed .post', { hasText: 'posted with the token' }).waitFor({ timeout: 5000 });
    const sent = requests.find((r) => r.method === 'POST');
    assert.equal(sent.url, '/feeds/private-ops/posts');
    assert.equal(sent.headers.authorization, `Bearer ${tokenValue}`);
    await waitForPicker(page, [{ name: 'main', count: 0 }, { name: 'private-ops', count: 2 }]);
    assert.equal(await page.locator('#feed-list .feed-link[data-feed="private-ops"]').getAttribute('aria-label'), 'private-ops, 2 posts, private');
    // Still there after a reload of the tab. (Playwright reports no close
    // for the sockets of the document that goes away.)
    for (const s of page.sockets) s.closed = true;
    await page.reload({ waitUntil: 'domcontentloaded' });
    await waitForFeedShown(page, 'private-ops');
    await waitForServerState(page, base, 10000, 'private-ops', { token: tokenValue });
    assertHealthy(page, [/Failed to load resource: the server responded with a status of 40[13]/]);
  });
});
