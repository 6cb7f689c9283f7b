'use strict';
// Editing and deleting posts on the demo page, live on every open page:
// in-place edit (PATCH with If-Match), in-page delete confirmation, changes
// made through the HTTP API, and the 412 of an edit that lost a race. Each
// test gets its own server; the browser is shared.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const {
  browserHarness, assertPageHealthy: assertHealthy, e2eSuite, createPost, createPosts, editPost, deletePost, getPost,
  feedIds, waitForIds, waitForGone, waitForPostText,
  feedState, waitForServerState, screenshot,
} = require('./helpers');

e2eSuite('livefeed edit and delete', { timeout: 120000 }, () => {
  const harness = browserHarness();
  const { server, open } = harness;

  // Requests the page sends with `method`, recorded from now on.
  function recordRequests(page, method) {
    const seen = [];
    page.on('request', (req) => {
      if (req.method() === method) seen.push({ url: req.url(), ifMatch: req.headers()['if-match'] });
    });
    return seen;
  }

  const card = (page, id) => page.locator(`#feed .post[data-id="${id}"]`);
  const activeId = (page) => page.evaluate(() => document.activeElement && document.activeElement.id);
  const activeLabel = (page) => page.evaluate(() => document.activeElement && document.activeElement.getAttribute('aria-label'));

  it('an edit made in place on page A shows live on page B, marked "edited", as literal text', async () => {
    const srv = await server();
    const post = await createPost(srv.baseURL, { title: 'Original title', content: 'original content', author: 'Ada' });
    const a = await open(srv);
    const b = await open(srv);
    await Promise.all([waitForIds(a, [post.id]), waitForIds(b, [post.id])]);
    for (const page of [a, b]) {
      assert.equal(await card(page, post.id).locator('.post-edited').isVisible(), false, 'a post never edited has no "edited" marker');
      assert.equal(await card(page, post.id).getAttribute('data-seq'), String(post.id), 'a new post\'s seq is its id');
    }
    const patches = recordRequests(a, 'PATCH');

    // Cancel first: the form closes, nothing is sent, focus returns to Edit.
    const editBtn = card(a, post.id).locator('.post-edit-btn');
    assert.equal(await editBtn.getAttribute('aria-label'), `Edit post #${post.id}`);
    await editBtn.click();
    const form = card(a, post.id).locator('form.post-edit');
    await form.waitFor();
    assert.equal(await activeId(a), `edit-${post.id}-title`, 'the title field has the focus');
    assert.equal(await card(a, post.id).locator('.post-view').isVisible(), false, 'the post turns into the form');
    await a.fill(`#edit-${post.id}-title`, 'never saved');
    await card(a, post.id).locator('.post-edit-cancel').click();
    await form.waitFor({ state: 'detached' });
    assert.equal(await card(a, post.id).locator('.post-title').textContent(), 'Original title');
    assert.equal(await activeLabel(a), `Edit post #${post.id}`, 'focus is back on the Edit button');
    // Escape cancels too.
    await editBtn.click();
    await form.waitFor();
    await a.keyboard.press('Escape');
    await form.waitFor({ state: 'detached' });
    assert.equal(await activeLabel(a), `Edit post #${post.id}`);

    // Now edit for real, with HTML in every field.
    await editBtn.click();
    await form.waitFor();
    assert.equal(await a.inputValue(`#edit-${post.id}-title`), 'Original title', 'the form holds the current values');
    assert.equal(await a.inputValue(`#edit-${post.id}-content`), 'original content');
    assert.equal(await a.inputValue(`#edit-${post.id}-author`), 'Ada');
    const title = '<img src=x onerror=alert(1)> edited';
    const content = 'new content\n<script>alert(2)</script>';
    const author = '<b onmouseover=alert(3)>Bob</b>';
    await a.fill(`#edit-${post.id}-title`, title);
    await a.fill(`#edit-${post.id}-content`, content);
    await a.fill(`#edit-${post.id}-author`, author);
    await screenshot(a, '08-edit-form');
    const saved = a.waitForResponse((res) => res.request().method() === 'PATCH');
    await card(a, post.id).locator('.post-edit-save').click();
    const res = await saved;
    assert.equal(res.status(), 200);
    assert.deepEqual(patches, [{ url: `${srv.baseURL}/posts/${post.id}`, ifMatch: `"${post.id}"` }], 'only the real save is sent, with If-Match of the seq the page had');

    await form.waitFor({ state: 'detached' });
    assert.equal(await activeLabel(a), `Edit post #${post.id}`, 'after saving, focus is back on the Edit button');
    const current = await getPost(srv.baseURL, post.id);
    assert.equal(current.body.title, title);
    assert.ok(current.body.updatedAt, 'the server has the edit time');
    await waitForPostText(b, post.id, { title, content }, 2000);
    for (const page of [a, b]) {
      const c = card(page, post.id);
      assert.equal(await c.locator('.post-title').textContent(), title);
      assert.equal(await c.locator('.post-content').innerText(), content);
      assert.equal(await c.locator('.post-author').textContent(), author);
      assert.equal(await c.getAttribute('data-seq'), String(current.etag), 'the page tracks the post\'s ETag');
      const edited = c.locator('.post-edited');
      assert.equal(await edited.isVisible(), true, 'the "edited" marker is shown');
      assert.match(await edited.innerText(), /edited (just now|\d+ s ago)$/);
      const time = edited.locator('time.post-updated');
      assert.equal(await time.getAttribute('datetime'), new Date(current.body.updatedAt).toISOString());
      assert.match(await time.getAttribute('title'), /^Edited /);
      // The creation time is unchanged.
      assert.equal(await c.locator('time.post-time').getAttribute('datetime'), new Date(post.createdAt).toISOString());
      const injected = await page.$$eval('#feed img, #feed script, #feed b', (n) => n.length);
      assert.equal(injected, 0, 'no element is created from the edited text');
      assert.deepEqual(await feedIds(page), [post.id], 'the post is replaced in place, not added again');
    }
    // Round trip through the server before checking that no dialog fired.
    const probe = await createPost(srv.baseURL, { title: 'probe', content: 'probe' });
    await Promise.all([waitForIds(a, [probe.id]), waitForIds(b, [probe.id])]);
    await screenshot(b, '08-edited-live');
    assertHealthy(a);
    assertHealthy(b);
  });

  it('delete asks first; cancelling keeps the post, confirming removes it on every page', async () => {
    const srv = await server();
    const [p1, p2, p3] = await createPosts(srv.baseURL, 3);
    const a = await open(srv);
    const b = await open(srv, { viewport: { width: 375, height: 812 }, colorScheme: 'dark' });
    await Promise.all([waitForIds(a, [p1.id, p2.id, p3.id]), waitForIds(b, [p1.id, p2.id, p3.id])]);
    const deletes = recordRequests(a, 'DELETE');
    const confirm = card(a, p2.id).locator('.post-confirm');
    const deleteBtn = card(a, p2.id).locator('.post-delete-btn');
    assert.equal(await deleteBtn.getAttribute('aria-label'), `Delete post #${p2.id}`);
    assert.equal(await confirm.isVisible(), false);

    // Cancel: nothing is deleted.
    await deleteBtn.click();
    await confirm.waitFor({ state: 'visible' });
    assert.match(await confirm.textContent(), /Delete this post\?/);
    assert.equal(await deleteBtn.getAttribute('aria-expanded'), 'true');
    assert.equal(await activeLabel(a), `Keep post #${p2.id}`, 'the safe choice has the focus');
    await confirm.locator('.post-confirm-cancel').click();
    await confirm.waitFor({ state: 'hidden' });
    assert.equal(await activeLabel(a), `Delete post #${p2.id}`, 'focus is back on Delete');
    // And with Escape.
    await deleteBtn.click();
    await confirm.waitFor({ state: 'visible' });
    await a.keyboard.press('Escape');
    await confirm.waitFor({ state: 'hidden' });
    assert.deepEqual(deletes, [], 'no DELETE was sent');
    assert.equal((await getPost(srv.baseURL, p2.id)).status, 200, 'the post still exists');
    // A later change proves B got every change before it: p2 is still there.
    const probe = await createPost(srv.baseURL, { title: 'probe', content: 'probe' });
    await Promise.all([waitForIds(a, [probe.id]), waitForIds(b, [probe.id])]);
    for (const page of [a, b]) assert.deepEqual(await feedIds(page), [probe.id, p3.id, p2.id, p1.id]);

    // Confirm: gone on both pages and on the server.
    await deleteBtn.click();
    await confirm.waitFor({ state: 'visible' });
    await screenshot(a, '09-delete-confirm');
    await confirm.locator('.post-confirm-delete').click();
    await Promise.all([waitForGone(a, [p2.id]), waitForGone(b, [p2.id], 2000)]);
    assert.deepEqual(deletes, [{ url: `${srv.baseURL}/posts/${p2.id}`, ifMatch: `"${p2.id}"` }]);
    assert.equal((await getPost(srv.baseURL, p2.id)).status, 404);
    assert.equal(await a.evaluate(() => document.activeElement.dataset.id), String(p1.id), 'focus moves to the next post');
    for (const page of [a, b]) assert.deepEqual(await feedIds(page), [probe.id, p3.id, p1.id]);

    // Deleting from the narrow dark page works the same, and nothing
    // overflows with the confirmation open.
    await card(b, p3.id).locator('.post-delete-btn').click();
    await card(b, p3.id).locator('.post-confirm').waitFor({ state: 'visible' });
    const overflow = await b.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling at 375px (overflow ${overflow}px)`);
    await screenshot(b, '09-delete-confirm-narrow-dark');
    await card(b, p3.id).locator('.post-confirm-delete').click();
    await Promise.all([waitForGone(a, [p3.id]), waitForGone(b, [p3.id])]);
    for (const page of [a, b]) assert.deepEqual(await feedIds(page), [probe.id, p1.id]);
    await waitForServerState(a, srv.baseURL);
    assertHealthy(a);
    assertHealthy(b);
  });

  it('edits and deletes made through the HTTP API appear live', async () => {
    const srv = await server();
    const [p1, p2, p3] = await createPosts(srv.baseURL, 3, (i) => ({ title: `api post ${i}`, content: `content ${i}`, author: `author ${i}` }));
    const a = await open(srv);
    const b = await open(srv);
    await Promise.all([waitForIds(a, [p1.id, p2.id, p3.id]), waitForIds(b, [p1.id, p2.id, p3.id])]);

    const edit = await editPost(srv.baseURL, p1.id, { title: 'api post 1, edited', author: null }, p1.id);
    await Promise.all([a, b].map((page) => waitForPostText(page, p1.id, { title: 'api post 1, edited' }, 2000)));
    assert.equal(await deletePost(srv.baseURL, p2.id), 204);
    await Promise.all([waitForGone(a, [p2.id], 2000), waitForGone(b, [p2.id], 2000)]);
    const fresh = await createPost(srv.baseURL, { title: 'fresh', content: 'fresh' });
    await Promise.all([waitForIds(a, [fresh.id]), waitForIds(b, [fresh.id])]);

    for (const page of [a, b]) {
      const c = card(page, p1.id);
      assert.equal(await c.locator('.post-author').textContent(), 'anonymous', 'a null author shows as anonymous');
      assert.equal(await c.locator('.post-content').textContent(), 'content 1', 'fields left out of the PATCH are kept');
      assert.equal(await c.locator('.post-edited time').getAttribute('datetime'), new Date(edit.post.updatedAt).toISOString());
      assert.equal(await c.getAttribute('data-seq'), String(edit.etag));
      assert.deepEqual(await feedIds(page), [fresh.id, p3.id, p1.id]);
      await waitForServerState(page, srv.baseURL);
    }
    // The edited post can be edited again from the page, with its new ETag.
    const patches = recordRequests(a, 'PATCH');
    await card(a, p1.id).locator('.post-edit-btn').click();
    await a.fill(`#edit-${p1.id}-content`, 'content 1, edited on the page');
    await card(a, p1.id).locator('.post-edit-save').click();
    await Promise.all([a, b].map((page) => waitForPostText(page, p1.id, { content: 'content 1, edited on the page' })));
    assert.equal(patches[0].ifMatch, `"${edit.etag}"`);
    await waitForServerState(b, srv.baseURL);
    assertHealthy(a);
    assertHealthy(b);
  });

  it('a post edited before the page loaded is edited with its current ETag', async () => {
    const srv = await server();
    const old = await createPost(srv.baseURL, { title: 'old', content: 'old' });
    const edited = await editPost(srv.baseURL, old.id, { title: 'old, edited' });
    const newer = await createPost(srv.baseURL, { title: 'newer', content: 'newer' });
    // The page resumes after the newest post's id, so nothing about the
    // edit (seq below it) comes over the socket: the page learns the
    // post's ETag when the edit starts.
    const page = await open(srv);
    await waitForIds(page, [old.id, newer.id]);
    assert.equal(await card(page, old.id).locator('.post-edited').isVisible(), true, 'the marker comes from updatedAt');
    const patches = recordRequests(page, 'PATCH');
    await card(page, old.id).locator('.post-edit-btn').click();
    await card(page, old.id).locator('form.post-edit').waitFor();
    assert.equal(await page.inputValue(`#edit-${old.id}-title`), 'old, edited');
    await page.fill(`#edit-${old.id}-title`, 'old, edited twice');
    await page.keyboard.press('Control+Enter');
    await waitForPostText(page, old.id, { title: 'old, edited twice' });
    assert.equal(patches.length, 1);
    assert.equal(patches[0].ifMatch, `"${edited.etag}"`);
    await waitForServerState(page, srv.baseURL);
    assertHealthy(page);
  });

  it('a 412 (someone else edited the post meanwhile) says so and shows the current version', async () => {
    const srv = await server();
    const post = await createPost(srv.baseURL, { title: 'shared', content: 'shared content', author: 'Ada' });
    const a = await open(srv);
    const b = await open(srv);
    await Promise.all([waitForIds(a, [post.id]), waitForIds(b, [post.id])]);

    // A starts editing...
    await card(a, post.id).locator('.post-edit-btn').click();
    await a.fill(`#edit-${post.id}-title`, 'A\'s title');
    await a.fill(`#edit-${post.id}-content`, 'A\'s content');
    // ...while B saves its own edit first.
    await card(b, post.id).locator('.post-edit-btn').click();
    await b.fill(`#edit-${post.id}-title`, 'B\'s title');
    await card(b, post.id).locator('.post-edit-save').click();
    await waitForPostText(b, post.id, { title: 'B\'s title' });
    const afterB = await getPost(srv.baseURL, post.id);

    // A hears about it while still editing; its form is left alone.
    const current = card(a, post.id).locator('.post-edit-current');
    await current.waitFor({ state: 'visible' });
    assert.match(await current.textContent(), /B's title/);
    assert.equal(await a.inputValue(`#edit-${post.id}-title`), 'A\'s title');

    // Saving answers 412 and says what happened.
    const answered = a.waitForResponse((res) => res.request().method() === 'PATCH');
    await card(a, post.id).locator('.post-edit-save').click();
    const res = await answered;
    assert.equal(res.status(), 412);
    assert.equal(res.request().headers()['if-match'], `"${post.id}"`, 'If-Match is the version A started from');
    const message = card(a, post.id).locator('.post-edit-message');
    await a.waitForFunction((id) => /shown below/.test(document.querySelector(`#feed .post[data-id="${id}"] .post-edit-message`).textContent), post.id);
    assert.match(await message.textContent(), /someone else edited this post/i);
    assert.equal(await message.getAttribute('role'), 'alert');
    assert.equal(await current.locator('.post-edit-current-title').textContent(), 'B\'s title', 'the current version is shown');
    assert.equal(await current.locator('.post-edit-current-content').textContent(), 'shared content');
    assert.equal(await a.inputValue(`#edit-${post.id}-title`), 'A\'s title', 'what A typed is kept');
    assert.equal((await getPost(srv.baseURL, post.id)).body.title, 'B\'s title', 'B\'s edit was not overwritten');
    await screenshot(a, '10-edit-conflict');

    // Saving again, now knowingly, replaces B's version.
    const again = a.waitForResponse((r) => r.request().method() === 'PATCH');
    await card(a, post.id).locator('.post-edit-save').click();
    const res2 = await again;
    assert.equal(res2.status(), 200);
    assert.equal(res2.request().headers()['if-match'], `"${afterB.etag}"`);
    await Promise.all([a, b].map((page) => waitForPostText(page, post.id, { title: 'A\'s title', content: 'A\'s content' })));
    assert.equal(await card(a, post.id).locator('form.post-edit').count(), 0, 'the form is closed after the save');
    for (const page of [a, b]) {
      const [shown] = await feedState(page);
      assert.deepEqual([shown.title, shown.content, shown.author], ['A\'s title', 'A\'s content', 'Ada']);
      await waitForServerState(page, srv.baseURL);
    }
    assertHealthy(a, [/status of 412 \(Precondition Failed\)/]);
    assertHealthy(b);
  });

  it('a post deleted while it is being edited goes away with a notice', async () => {
    const srv = await server();
    const [keep, doomed] = await createPosts(srv.baseURL, 2);
    const page = await open(srv);
    await waitForIds(page, [keep.id, doomed.id]);
    await card(page, doomed.id).locator('.post-edit-btn').click();
    await page.fill(`#edit-${doomed.id}-title`, 'lost edit');
    assert.equal(await deletePost(srv.baseURL, doomed.id), 204);
    await waitForGone(page, [doomed.id]);
    await page.locator('#banner:not([hidden])').waitFor();
    assert.match(await page.locator('#banner-text').textContent(), new RegExp(`Post #${doomed.id} was deleted while you were editing it`));
    assert.equal(await page.evaluate(() => document.activeElement.dataset.id), String(keep.id), 'focus moves to the next post');
    assert.deepEqual(await feedIds(page), [keep.id]);
    assertHealthy(page);
  });
});
