// livefeed demo client.
//
// Plain browser JavaScript, no build step and no dependencies. It talks to the
// livefeed server on the same origin:
//   GET    /posts?limit=N&before=ID  initial page and "Load older"
//   POST   /posts                    the composer form
//   GET    /posts/{id}               a post's current version and ETag
//   PATCH  /posts/{id}               "Edit" (If-Match: the seq the page has)
//   DELETE /posts/{id}               "Delete", after an in-page confirmation
//   WS     /ws?since=SEQ             live changes, with replay after reconnects
//
// Every change to the feed has a seq (one counter for creates, edits and
// deletes; a create's seq is the new post's id). The page applies changes as
// "set this post" (newPost, postUpdated) or "remove this post" (postDeleted),
// and resumes the socket after the highest seq it has everything up to.
//
// Safety rule: post data is only ever put into the DOM with textContent /
// createElement / setAttribute. Never innerHTML.
(function () {
  'use strict';

  var PAGE_SIZE = 20;
  var BACKOFF_BASE_MS = 500;
  var BACKOFF_FACTOR = 2;
  var BACKOFF_CAP_MS = 15000;
  var STABLE_AFTER_MS = 5000; // a connection open this long resets the backoff
  var TIME_REFRESH_MS = 15000;
  var AUTHOR_KEY = 'livefeed.author';
  var FIELDS = ['title', 'content', 'author'];

  var els = {};

  // ---- feed state --------------------------------------------------------

  // Ids currently rendered, sorted descending (newest first); parallel to the
  // order of .post elements inside #feed.
  var ids = [];
  // id -> entry: { post, seq, node, parts (view elements), editor, confirm }.
  // `seq` is the seq of the post's latest change the page knows of (its
  // ETag), or 0 when unknown (an edited post that came from GET /posts).
  var entries = new Map();
  // Ids the page knows are deleted: never shown again, whatever arrives late
  // (a slow POST response, an older GET page).
  var deletedIds = new Set();
  // Changes to posts below the loaded range (older than the last page
  // fetched): kept until "Load older" brings those posts in, then they win
  // over the GET answer, which may be older than the change.
  var pendingOld = new Map();
  // Highest seq we know we have *everything up to*: the newest post id of
  // the initial GET /posts page (a create's seq is its id, so that page is at
  // least that recent), then the seq of every change that came over the
  // websocket (the server sends changes in ascending seq without gaps; a
  // replay ends at the welcome's lastSeq). Our own POST/PATCH/DELETE
  // responses do not move it: changes by other clients with lower seqs may
  // still be on their way over the socket.
  var streamCursor = null;
  var initialLoaded = false;
  var initialPending = false;
  var loadErrorShown = false; // the banner shows a failed initial load
  var olderCursor = null;
  var loadingOlder = false;

  // ---- connection state --------------------------------------------------

  var ws = null;
  var attempt = 0;
  var reconnectTimer = null;
  var countdownTimer = null;
  var stableTimer = null;
  var reconnectAt = 0;
  var connectionId = null;

  // ---- small helpers ------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function button(className, text, label) {
    var b = el('button', className, text);
    b.type = 'button';
    if (label) b.setAttribute('aria-label', label);
    return b;
  }

  function isValidPost(p) {
    return p && typeof p === 'object' && Number.isSafeInteger(p.id) && p.id >= 0 &&
      typeof p.title === 'string' && typeof p.content === 'string';
  }

  function isSeq(n) {
    return Number.isSafeInteger(n) && n > 0;
  }

  // What the page knows of a post's seq from the post alone: a post never
  // edited still has its create's seq, its id; an edited one has an unknown
  // (later) seq.
  function seqOfPlainPost(post) {
    return post.updatedAt === null || post.updatedAt === undefined ? post.id : 0;
  }

  // `ETag: "12"` -> 12, else 0.
  function etagSeq(res) {
    var m = /^"(\d+)"$/.exec((res.headers.get('ETag') || '').trim());
    var n = m ? Number(m[1]) : 0;
    return isSeq(n) ? n : 0;
  }

  function authorOf(post) {
    return typeof post.author === 'string' && post.author.trim() !== '' ? post.author : null;
  }

  function relativeTime(date, now) {
    var t = date.getTime();
    if (isNaN(t)) return '';
    var s = Math.round((now - t) / 1000);
    if (s < 10) return 'just now';
    if (s < 60) return s + ' s ago';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min ago';
    var h = Math.floor(m / 60);
    if (h < 24) return h + ' h ago';
    var d = Math.floor(h / 24);
    if (d < 7) return d + (d === 1 ? ' day ago' : ' days ago');
    return date.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
  }

  // Point a <time> at `iso`: datetime, tooltip, relative label. False when
  // `iso` is not a date.
  function setTime(time, iso, tooltipPrefix) {
    var d = new Date(iso);
    if (typeof iso !== 'string' || isNaN(d.getTime())) {
      time.removeAttribute('datetime');
      time.removeAttribute('title');
      time.textContent = '';
      return false;
    }
    time.setAttribute('datetime', d.toISOString());
    time.title = (tooltipPrefix || '') + d.toLocaleString();
    time.textContent = relativeTime(d, Date.now());
    return true;
  }

  function refreshTimes() {
    var now = Date.now();
    var times = els.feed.querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) {
      var d = new Date(times[i].getAttribute('datetime'));
      var label = relativeTime(d, now);
      if (times[i].textContent !== label) times[i].textContent = label;
    }
  }

  function highlight(node, className, animationName) {
    node.classList.remove(className);
    // Restart the animation when the class was already there.
    void node.offsetWidth;
    node.classList.add(className);
    node.addEventListener('animationend', function onEnd(ev) {
      if (ev.target !== node || ev.animationName !== animationName) return;
      node.classList.remove(className);
      node.removeEventListener('animationend', onEnd);
    });
  }

  // ---- banner ---------------------------------------------------------------

  function showBanner(message, kind) {
    loadErrorShown = false;
    els.bannerText.textContent = message;
    els.banner.dataset.kind = kind || 'error';
    els.banner.hidden = false;
  }

  function hideBanner() {
    loadErrorShown = false;
    els.banner.hidden = true;
    els.bannerText.textContent = '';
  }

  // ---- HTTP ---------------------------------------------------------------

  function errorMessage(body, fallback) {
    if (body && body.error && typeof body.error.message === 'string' && body.error.message) {
      return body.error.message;
    }
    return fallback;
  }

  function readJson(res) {
    return res.text().then(function (text) {
      if (!text) return null;
      try { return JSON.parse(text); } catch (e) { return null; }
    });
  }

  // fetch + JSON body: resolves { res, body, seq } (seq from the ETag);
  // rejects only when the server cannot be reached.
  function request(method, url, payload, ifMatch) {
    var headers = { Accept: 'application/json' };
    var init = { method: method, headers: headers, cache: 'no-store' };
    if (payload !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(payload);
    }
    if (ifMatch) headers['If-Match'] = '"' + ifMatch + '"';
    return fetch(url, init).then(function (res) {
      return readJson(res).then(function (body) {
        return { res: res, body: body, seq: etagSeq(res) };
      });
    });
  }

  function fetchPage(before) {
    var url = '/posts?limit=' + PAGE_SIZE + (before !== null && before !== undefined ? '&before=' + encodeURIComponent(before) : '');
    return fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' }).then(function (res) {
      return readJson(res).then(function (body) {
        if (!res.ok || !body || !Array.isArray(body.posts)) {
          throw new Error(errorMessage(body, 'Could not load posts (HTTP ' + res.status + ')'));
        }
        return body;
      });
    });
  }

  // The post's current version: resolves { post, seq } or { gone: true };
  // rejects with an Error carrying a message.
  function fetchCurrent(id) {
    return request('GET', '/posts/' + encodeURIComponent(id)).then(function (r) {
      if (r.res.status === 404) return { gone: true };
      if (!r.res.ok || !isValidPost(r.body)) {
        throw new Error(errorMessage(r.body, 'Could not load post #' + id + ' (HTTP ' + r.res.status + ').'));
      }
      return { post: r.body, seq: r.seq };
    }, function () {
      throw new Error('Could not reach the server.');
    });
  }

  function setOlder(next) {
    olderCursor = (next === null || next === undefined) ? null : next;
    els.loadOlder.hidden = olderCursor === null;
  }

  // Whether `id` lies in the part of the feed the page has loaded (the
  // first page and every "Load older" page so far).
  function inLoadedRange(id) {
    return olderCursor === null || id >= olderCursor;
  }

  // ---- rendering --------------------------------------------------------

  // Builds a post's card once; fillView() puts the post's data in it, now and
  // after every change, so open controls (confirmation, focus) survive
  // live edits.
  function renderPost(entry) {
    var id = entry.post.id;
    var p = {};
    var article = el('article', 'post card');
    article.id = 'post-' + id;
    article.dataset.id = String(id);
    article.tabIndex = -1; // focus target after a neighbour is deleted
    article.setAttribute('aria-labelledby', 'post-' + id + '-title');

    var view = el('div', 'post-view');
    var head = el('header', 'post-head');
    p.title = el('h3', 'post-title');
    p.title.id = 'post-' + id + '-title';
    var idLink = el('a', 'post-id', '#' + id);
    idLink.href = '#post-' + id;
    idLink.setAttribute('aria-label', 'Post number ' + id);
    head.appendChild(p.title);
    head.appendChild(idLink);

    p.content = el('p', 'post-content');

    var meta = el('footer', 'post-meta');
    var byline = el('div', 'post-byline');
    p.avatar = el('span', 'avatar');
    p.avatar.setAttribute('aria-hidden', 'true');
    p.author = el('span', 'post-author');
    var sep = el('span', 'sep', '·');
    sep.setAttribute('aria-hidden', 'true');
    p.time = el('time', 'post-time');
    p.edited = el('span', 'post-edited');
    p.edited.hidden = true;
    var sep2 = el('span', 'sep', '·');
    sep2.setAttribute('aria-hidden', 'true');
    p.updated = el('time', 'post-updated');
    p.edited.appendChild(sep2);
    p.edited.appendChild(document.createTextNode('edited '));
    p.edited.appendChild(p.updated);
    byline.appendChild(p.avatar);
    byline.appendChild(p.author);
    byline.appendChild(sep);
    byline.appendChild(p.time);
    byline.appendChild(p.edited);

    var actions = el('div', 'post-actions');
    p.editBtn = button('btn-link post-edit-btn', 'Edit', 'Edit post #' + id);
    p.editBtn.dataset.action = 'edit';
    p.deleteBtn = button('btn-link btn-link-danger post-delete-btn', 'Delete', 'Delete post #' + id);
    p.deleteBtn.dataset.action = 'delete';
    p.deleteBtn.setAttribute('aria-expanded', 'false');
    p.deleteBtn.setAttribute('aria-controls', 'post-' + id + '-confirm');
    actions.appendChild(p.editBtn);
    actions.appendChild(p.deleteBtn);
    meta.appendChild(byline);
    meta.appendChild(actions);

    // In-page delete confirmation (hidden until "Delete" is pressed).
    p.confirm = el('div', 'post-confirm');
    p.confirm.id = 'post-' + id + '-confirm';
    p.confirm.hidden = true;
    p.confirm.setAttribute('role', 'group');
    p.confirm.setAttribute('aria-labelledby', 'post-' + id + '-confirm-text');
    var question = el('p', 'post-confirm-text', 'Delete this post? This cannot be undone.');
    question.id = 'post-' + id + '-confirm-text';
    var confirmActions = el('div', 'post-confirm-actions');
    p.confirmYes = button('btn btn-danger btn-small post-confirm-delete', 'Delete', 'Yes, delete post #' + id);
    p.confirmYes.dataset.action = 'confirm-delete';
    p.confirmNo = button('btn btn-secondary btn-small post-confirm-cancel', 'Cancel', 'Keep post #' + id);
    p.confirmNo.dataset.action = 'cancel-delete';
    confirmActions.appendChild(p.confirmYes);
    confirmActions.appendChild(p.confirmNo);
    p.confirmError = el('p', 'post-error');
    p.confirmError.setAttribute('role', 'alert');
    p.confirm.appendChild(question);
    p.confirm.appendChild(confirmActions);
    p.confirm.appendChild(p.confirmError);

    view.appendChild(head);
    view.appendChild(p.content);
    view.appendChild(meta);
    view.appendChild(p.confirm);
    article.appendChild(view);
    p.view = view;

    entry.node = article;
    entry.parts = p;
    fillView(entry);
    return article;
  }

  function fillView(entry) {
    var post = entry.post;
    var p = entry.parts;
    if (p.title.textContent !== post.title) p.title.textContent = post.title;
    if (p.content.textContent !== post.content) p.content.textContent = post.content;
    var author = authorOf(post);
    p.author.className = 'post-author' + (author ? '' : ' is-anonymous');
    p.author.textContent = author || 'anonymous';
    var initial = author ? Array.from(author.trim())[0] : '';
    p.avatar.textContent = /^[\p{L}\p{N}]$/u.test(initial) ? initial.toUpperCase() : '?';
    setTime(p.time, post.createdAt);
    p.edited.hidden = !setTime(p.updated, post.updatedAt, 'Edited ');
    if (entry.seq) entry.node.dataset.seq = String(entry.seq); else delete entry.node.dataset.seq;
  }

  // Index in `ids` (descending) where `id` belongs.
  function insertionIndex(id) {
    var lo = 0;
    var hi = ids.length;
    while (lo < hi) {
      var mid = (lo + hi) >>> 1;
      if (ids[mid] > id) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  function samePost(a, b) {
    return a.title === b.title && a.content === b.content && authorOf(a) === authorOf(b) &&
      a.createdAt === b.createdAt && a.updatedAt === b.updatedAt;
  }

  // "Set this post": the one way a post gets into the feed or changes,
  // whatever the source. `seq` is the seq of the change it shows (0 when
  // unknown). Keeps the feed sorted by id, without duplicates, and never
  // goes back to an older version or brings back a deleted post.
  //   opts.ifAbsent     only add (a GET page never overrides what we have)
  //   opts.onlyInRange  a post below the loaded range waits for Load older
  //   opts.highlight    flash the card (new or changed)
  function setPost(post, seq, opts) {
    opts = opts || {};
    if (!isValidPost(post)) return false;
    var id = post.id;
    if (deletedIds.has(id)) return false;
    var entry = entries.get(id);
    if (entry) {
      if (opts.ifAbsent || !seq) return false;
      if (entry.seq && seq <= entry.seq) return false; // the same change or an older one
      var changed = !samePost(entry.post, post);
      entry.post = post;
      entry.seq = seq;
      fillView(entry);
      if (entry.editor && seq > entry.editor.baseSeq) editorSawChange(entry);
      if (changed && opts.highlight) highlight(entry.node, 'is-updated', 'post-highlight');
      return true;
    }
    if (opts.onlyInRange && !inLoadedRange(id)) {
      var waiting = pendingOld.get(id);
      if (!waiting || waiting.seq < seq) pendingOld.set(id, { post: post, seq: seq });
      return false;
    }
    entry = { post: post, seq: seq || 0, node: null, parts: null, editor: null, deleting: false };
    var node = renderPost(entry);
    var idx = insertionIndex(id);
    var before = idx < ids.length ? entries.get(ids[idx]).node : null;
    ids.splice(idx, 0, id);
    entries.set(id, entry);
    if (opts.highlight) highlight(node, 'is-new', 'post-highlight');
    els.feed.insertBefore(node, before);
    els.empty.hidden = true;
    return true;
  }

  // A post from a GET /posts page: a change that arrived over the socket
  // for it while it was not loaded wins (it is at least as recent).
  function addFromPage(post) {
    if (!isValidPost(post)) return;
    var waiting = pendingOld.get(post.id);
    if (waiting) {
      pendingOld.delete(post.id);
      setPost(waiting.post, waiting.seq);
      return;
    }
    setPost(post, seqOfPlainPost(post), { ifAbsent: true });
  }

  // "Remove this post". Focus inside the card moves to a neighbour (or the
  // feed heading) so keyboard users are not dropped to the top of the page.
  function removePost(id, opts) {
    opts = opts || {};
    deletedIds.add(id);
    pendingOld.delete(id);
    var entry = entries.get(id);
    if (!entry) return false;
    var node = entry.node;
    var hadFocus = entry.deleting || node.contains(document.activeElement);
    var lostEdit = !!entry.editor && !opts.own;
    var next = hadFocus ? (node.nextElementSibling || node.previousElementSibling || els.feedHeading) : null;
    ids.splice(ids.indexOf(id), 1);
    entries.delete(id);
    entry.editor = null;
    node.remove();
    if (next) next.focus();
    if (lostEdit) showBanner('Post #' + id + ' was deleted while you were editing it; your changes were not saved.', 'info');
    updateEmpty();
    return true;
  }

  function updateEmpty() {
    els.empty.hidden = !(initialLoaded && ids.length === 0);
  }

  function advanceCursor(seq) {
    if (streamCursor === null || seq > streamCursor) streamCursor = seq;
  }

  // ---- loading -----------------------------------------------------------

  function loadInitial() {
    els.feed.setAttribute('aria-busy', 'true');
    return fetchPage(null).then(function (body) {
      var top = null;
      body.posts.forEach(function (p) {
        addFromPage(p);
        if (isValidPost(p) && (top === null || p.id > top)) top = p.id;
      });
      // Every change up to the newest post's create (seq = its id) is in
      // this page, so the socket resumes right after it: nothing changed
      // between this GET and the socket opening can be missed (changes the
      // page already has are replayed in their latest state, which is
      // harmless).
      streamCursor = top === null ? 0 : top;
      initialLoaded = true;
      setOlder(body.next);
      updateEmpty();
    }).finally(function () {
      els.feed.setAttribute('aria-busy', 'false');
    });
  }

  function loadOlder() {
    if (loadingOlder || olderCursor === null) return;
    loadingOlder = true;
    els.loadOlder.disabled = true;
    els.loadOlder.textContent = 'Loading…';
    els.feed.setAttribute('aria-busy', 'true');
    fetchPage(olderCursor).then(function (body) {
      setOlder(body.next);
      body.posts.forEach(addFromPage);
      // Changes to posts now in range that this page did not list (created
      // after it was read) come in too.
      pendingOld.forEach(function (w, id) {
        if (inLoadedRange(id)) {
          pendingOld.delete(id);
          setPost(w.post, w.seq);
        }
      });
    }).catch(function (err) {
      showBanner(err && err.message ? err.message : 'Could not load older posts.');
    }).finally(function () {
      loadingOlder = false;
      els.loadOlder.disabled = false;
      els.loadOlder.textContent = 'Load older';
      els.feed.setAttribute('aria-busy', 'false');
    });
  }

  // ---- editing in place ----------------------------------------------------

  function editField(form, id, name, label, optional) {
    var wrap = el('div', 'field');
    var inputId = 'edit-' + id + '-' + name;
    var lab = el('label', null, label);
    lab.htmlFor = inputId;
    if (optional) {
      lab.appendChild(document.createTextNode(' '));
      lab.appendChild(el('span', 'optional', '(optional)'));
    }
    var input;
    if (name === 'content') {
      input = el('textarea');
      input.rows = 4;
      input.maxLength = 10000;
    } else {
      input = el('input');
      input.type = 'text';
      input.maxLength = name === 'title' ? 200 : 100;
    }
    input.id = inputId;
    input.name = name;
    input.className = 'post-edit-' + name;
    if (!optional) input.required = true;
    if (name === 'author') input.placeholder = 'anonymous';
    var err = el('p', 'field-error');
    err.id = inputId + '-error';
    err.dataset.field = name;
    err.setAttribute('aria-live', 'polite');
    input.setAttribute('aria-describedby', err.id);
    wrap.appendChild(lab);
    wrap.appendChild(input);
    wrap.appendChild(err);
    form.appendChild(wrap);
    return { input: input, error: err };
  }

  function openEditor(entry) {
    var id = entry.post.id;
    if (entry.editor) { entry.editor.fields.title.focus(); return; }
    if (!entry.seq) {
      // Edited before this page loaded: ask for the ETag to send as If-Match.
      var b = entry.parts.editBtn;
      b.disabled = true;
      fetchCurrent(id).then(function (cur) {
        b.disabled = false;
        if (cur.gone) {
          removePost(id);
          showBanner('Post #' + id + ' no longer exists.', 'info');
          return;
        }
        if (!cur.seq) throw new Error('The server sent no ETag for post #' + id + '.');
        setPost(cur.post, cur.seq);
        if (entries.get(id) === entry) openEditor(entry);
      }).catch(function (err) {
        b.disabled = false;
        showBanner(err.message);
      });
      return;
    }
    hideConfirm(entry, false);

    var form = el('form', 'post-edit');
    form.setAttribute('autocomplete', 'off');
    form.setAttribute('aria-label', 'Edit post #' + id);
    var heading = el('p', 'post-edit-heading', 'Editing post #' + id);
    heading.setAttribute('aria-hidden', 'true');
    form.appendChild(heading);
    var ed = { form: form, fields: {}, errors: {}, baseSeq: entry.seq, basePost: entry.post, saving: false };
    [['title', 'Title', false], ['content', 'Content', false], ['author', 'Author', true]].forEach(function (f) {
      var made = editField(form, id, f[0], f[1], f[2]);
      ed.fields[f[0]] = made.input;
      ed.errors[f[0]] = made.error;
    });
    ed.fields.title.value = entry.post.title;
    ed.fields.content.value = entry.post.content;
    ed.fields.author.value = authorOf(entry.post) || '';

    ed.message = el('p', 'post-edit-message');
    ed.message.setAttribute('role', 'alert');
    form.appendChild(ed.message);

    // Someone else's newer version, shown while editing and after a 412.
    ed.current = el('div', 'post-edit-current');
    ed.current.hidden = true;
    ed.currentLabel = el('p', 'post-edit-current-label');
    ed.currentTitle = el('p', 'post-edit-current-title');
    ed.currentContent = el('p', 'post-edit-current-content');
    ed.currentMeta = el('p', 'post-edit-current-meta');
    ed.current.appendChild(ed.currentLabel);
    ed.current.appendChild(ed.currentTitle);
    ed.current.appendChild(ed.currentContent);
    ed.current.appendChild(ed.currentMeta);
    form.appendChild(ed.current);

    var actions = el('div', 'form-actions');
    ed.save = el('button', 'btn btn-primary btn-small post-edit-save', 'Save');
    ed.save.type = 'submit';
    ed.cancel = button('btn btn-secondary btn-small post-edit-cancel', 'Cancel');
    ed.cancel.dataset.action = 'cancel-edit';
    actions.appendChild(ed.save);
    actions.appendChild(ed.cancel);
    form.appendChild(actions);

    entry.editor = ed;
    entry.parts.view.hidden = true;
    entry.node.classList.add('is-editing');
    entry.node.appendChild(form);
    ed.fields.title.focus();
  }

  function closeEditor(entry, focusEdit) {
    var ed = entry.editor;
    if (!ed) return;
    entry.editor = null;
    ed.form.remove();
    entry.parts.view.hidden = false;
    entry.node.classList.remove('is-editing');
    if (focusEdit) entry.parts.editBtn.focus();
  }

  function showCurrentVersion(ed, post, label) {
    var author = authorOf(post);
    ed.currentLabel.textContent = label;
    ed.currentTitle.textContent = post.title;
    ed.currentContent.textContent = post.content;
    var when = post.updatedAt ? new Date(post.updatedAt) : null;
    ed.currentMeta.textContent = 'by ' + (author || 'anonymous') +
      (when && !isNaN(when.getTime()) ? ' · edited ' + relativeTime(when, Date.now()) : '');
    ed.current.hidden = false;
  }

  function setEditorMessage(ed, text, kind) {
    ed.message.textContent = text || '';
    ed.message.dataset.kind = kind || 'error';
  }

  // A newer version arrived while the form is open: show it, keep what the
  // user typed and the version they started from (saving then gets a 412
  // and asks again, so nobody's edit is overwritten unseen).
  function editorSawChange(entry) {
    var ed = entry.editor;
    showCurrentVersion(ed, entry.post, 'Someone else changed this post while you were editing. Their version:');
  }

  function clearEditorErrors(ed) {
    FIELDS.forEach(function (name) {
      ed.errors[name].textContent = '';
      ed.fields[name].removeAttribute('aria-invalid');
    });
    setEditorMessage(ed, '');
  }

  function setEditorSaving(ed, saving) {
    ed.saving = saving;
    ed.form.setAttribute('aria-busy', saving ? 'true' : 'false');
    FIELDS.forEach(function (name) { ed.fields[name].readOnly = saving; });
    ed.save.disabled = saving;
    ed.save.textContent = saving ? 'Saving…' : 'Save';
  }

  function saveEdit(entry) {
    var ed = entry.editor;
    if (!ed || ed.saving) return;
    var id = entry.post.id;
    clearEditorErrors(ed);
    var values = {
      title: ed.fields.title.value,
      content: ed.fields.content.value,
      author: ed.fields.author.value.trim() || null
    };
    var base = ed.basePost;
    if (values.title === base.title && values.content === base.content && values.author === authorOf(base)) {
      closeEditor(entry, true); // nothing to save
      return;
    }
    setEditorSaving(ed, true);
    request('PATCH', '/posts/' + encodeURIComponent(id), values, ed.baseSeq).then(function (r) {
      if (entries.get(id) !== entry || entry.editor !== ed) return; // deleted or closed meanwhile
      setEditorSaving(ed, false);
      var status = r.res.status;
      if (r.res.ok && isValidPost(r.body)) {
        closeEditor(entry, true);
        setPost(r.body, r.seq, { highlight: true });
        return;
      }
      if (status === 412) { onEditConflict(entry, ed); return; }
      if (status === 404) { removePost(id); return; }
      var field = r.body && r.body.error && r.body.error.field;
      var message = errorMessage(r.body, 'Saving failed (HTTP ' + status + ').');
      if (status === 422 && FIELDS.indexOf(field) >= 0) {
        ed.errors[field].textContent = message;
        ed.fields[field].setAttribute('aria-invalid', 'true');
        ed.fields[field].focus();
        return;
      }
      if (status === 401) message = 'Not allowed to edit: ' + message;
      setEditorMessage(ed, message, 'error');
    }, function () {
      if (entry.editor !== ed) return;
      setEditorSaving(ed, false);
      setEditorMessage(ed, 'Could not reach the server. Your changes were not saved; try again.', 'error');
    });
  }

  // 412: the post changed since the version this form started from. Fetch
  // and show the current version; the next Save replaces it on purpose.
  function onEditConflict(entry, ed) {
    var id = entry.post.id;
    var conflict = 'Not saved: someone else edited this post after you started editing.';
    setEditorMessage(ed, conflict + ' Loading their version…', 'conflict');
    fetchCurrent(id).then(function (cur) {
      if (entries.get(id) !== entry || entry.editor !== ed) return;
      if (cur.gone) { removePost(id); return; }
      setPost(cur.post, cur.seq);
      // The newest version known (a live update may have beaten the GET).
      ed.basePost = entry.post;
      ed.baseSeq = entry.seq;
      showCurrentVersion(ed, entry.post, 'Current version:');
      setEditorMessage(ed, conflict + ' Their current version is shown below. Save again to replace it with yours, or Cancel to keep theirs.', 'conflict');
    }, function (err) {
      if (entry.editor !== ed) return;
      setEditorMessage(ed, conflict + ' ' + err.message, 'conflict');
    });
  }

  // ---- deleting ----------------------------------------------------------

  function showConfirm(entry) {
    var p = entry.parts;
    p.confirmError.textContent = '';
    p.confirm.hidden = false;
    p.deleteBtn.setAttribute('aria-expanded', 'true');
    // The safe choice has the focus: Enter twice does not delete.
    p.confirmNo.focus();
  }

  function hideConfirm(entry, focusDelete) {
    var p = entry.parts;
    if (p.confirm.hidden) return;
    p.confirm.hidden = true;
    p.confirmError.textContent = '';
    p.deleteBtn.setAttribute('aria-expanded', 'false');
    if (focusDelete) p.deleteBtn.focus();
  }

  function setDeleting(entry, deleting) {
    var p = entry.parts;
    entry.deleting = deleting;
    p.confirmYes.disabled = deleting;
    p.confirmNo.disabled = deleting;
    p.confirmYes.textContent = deleting ? 'Deleting…' : 'Delete';
  }

  function confirmDelete(entry) {
    if (entry.deleting) return;
    var id = entry.post.id;
    var p = entry.parts;
    p.confirmError.textContent = '';
    setDeleting(entry, true);
    request('DELETE', '/posts/' + encodeURIComponent(id), undefined, entry.seq).then(function (r) {
      if (entries.get(id) !== entry) return; // the live event removed it first
      var status = r.res.status;
      if (r.res.ok || status === 404) { // 404: already deleted by someone else
        removePost(id, { own: true });
        return;
      }
      setDeleting(entry, false);
      p.confirmNo.focus();
      if (status === 412) {
        p.confirmError.textContent = 'Not deleted: someone else edited this post just now. Check their version, then delete again if you still want to.';
        fetchCurrent(id).then(function (cur) {
          if (cur.gone) removePost(id); else setPost(cur.post, cur.seq, { highlight: true });
        }, function () { /* the live feed brings the new version */ });
        return;
      }
      var message = errorMessage(r.body, 'Deleting failed (HTTP ' + status + ').');
      if (status === 401) message = 'Not allowed to delete: ' + message;
      p.confirmError.textContent = message;
    }, function () {
      if (entries.get(id) !== entry) return;
      setDeleting(entry, false);
      p.confirmNo.focus();
      p.confirmError.textContent = 'Could not reach the server; the post was not deleted.';
    });
  }

  // One set of listeners on #feed for every card's controls.
  function entryOf(target) {
    var node = target && target.closest ? target.closest('.post[data-id]') : null;
    if (!node) return null;
    var entry = entries.get(Number(node.dataset.id));
    return entry && entry.node === node ? entry : null;
  }

  function onFeedClick(ev) {
    var b = ev.target.closest ? ev.target.closest('button[data-action]') : null;
    var entry = b && entryOf(b);
    if (!entry) return;
    switch (b.dataset.action) {
      case 'edit': openEditor(entry); break;
      case 'cancel-edit': closeEditor(entry, true); break;
      case 'delete': if (entry.parts.confirm.hidden) showConfirm(entry); else hideConfirm(entry, true); break;
      case 'confirm-delete': confirmDelete(entry); break;
      case 'cancel-delete': hideConfirm(entry, true); break;
    }
  }

  function onFeedSubmit(ev) {
    var entry = entryOf(ev.target);
    if (!entry || !entry.editor || ev.target !== entry.editor.form) return;
    ev.preventDefault();
    saveEdit(entry);
  }

  function onFeedKeydown(ev) {
    var entry = entryOf(ev.target);
    if (!entry) return;
    if (ev.key === 'Escape') {
      if (entry.editor && entry.editor.form.contains(ev.target)) {
        ev.preventDefault();
        closeEditor(entry, true);
      } else if (!entry.parts.confirm.hidden && !entry.deleting) {
        ev.preventDefault();
        hideConfirm(entry, true);
      }
    } else if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey) && entry.editor && entry.editor.form.contains(ev.target)) {
      ev.preventDefault();
      if (typeof entry.editor.form.requestSubmit === 'function') entry.editor.form.requestSubmit(); else saveEdit(entry);
    }
  }

  function onFeedInput(ev) {
    var entry = entryOf(ev.target);
    var ed = entry && entry.editor;
    if (!ed || !ev.target.name || !ed.errors[ev.target.name]) return;
    if (ed.errors[ev.target.name].textContent) {
      ed.errors[ev.target.name].textContent = '';
      ev.target.removeAttribute('aria-invalid');
    }
  }

  // ---- composer -----------------------------------------------------------

  function clearFieldErrors() {
    var errs = els.form.querySelectorAll('.field-error');
    for (var i = 0; i < errs.length; i++) errs[i].textContent = '';
    ['title', 'content', 'author'].forEach(function (name) {
      els[name].removeAttribute('aria-invalid');
    });
  }

  function showFieldError(field, message) {
    var slot = els.form.querySelector('.field-error[data-field="' + field + '"]');
    var input = els[field];
    if (!slot || !input) return false;
    slot.textContent = message;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
    return true;
  }

  function setSending(sending) {
    els.fieldset.disabled = sending;
    els.form.setAttribute('aria-busy', sending ? 'true' : 'false');
    els.submit.textContent = sending ? 'Publishing…' : 'Publish';
  }

  function updateCount() {
    var n = els.content.value.length;
    els.contentCount.textContent = n + ' / 10000';
  }

  function onSubmit(ev) {
    ev.preventDefault();
    if (els.fieldset.disabled) return;
    clearFieldErrors();
    hideBanner();

    var payload = { title: els.title.value, content: els.content.value };
    var author = els.author.value.trim();
    if (author) payload.author = author;
    try {
      if (author) localStorage.setItem(AUTHOR_KEY, author); else localStorage.removeItem(AUTHOR_KEY);
    } catch (e) { /* storage may be unavailable */ }

    setSending(true);
    fetch('/posts', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(payload)
    }).then(function (res) {
      return readJson(res).then(function (body) {
        if (res.status === 201 || (res.ok && isValidPost(body))) {
          // Shown now; the copy coming back over the socket is the same
          // change (seq = id) and is dropped.
          if (isValidPost(body)) setPost(body, etagSeq(res) || body.id, { highlight: true });
          els.title.value = '';
          els.content.value = '';
          updateCount();
          setSending(false);
          els.title.focus();
          return;
        }
        setSending(false);
        var field = body && body.error && body.error.field;
        var message = errorMessage(body, 'Publishing failed (HTTP ' + res.status + ').');
        if (res.status === 422 && typeof field === 'string' && showFieldError(field, message)) return;
        if (res.status === 401) message = 'Not allowed to publish: ' + message;
        showBanner(message);
      });
    }).catch(function () {
      setSending(false);
      showBanner('Could not reach the server. Your post was not published; try again.');
    });
  }

  // ---- connection indicator --------------------------------------------------

  function setStatus(state, text) {
    els.status.dataset.state = state;
    if (els.statusText.textContent !== text) els.statusText.textContent = text;
  }

  function renderCountdown() {
    var secs = Math.max(0, Math.ceil((reconnectAt - Date.now()) / 1000));
    setStatus('reconnecting', 'reconnecting in ' + secs + 's');
  }

  function clearTimers() {
    clearTimeout(reconnectTimer);
    clearInterval(countdownTimer);
    reconnectTimer = null;
    countdownTimer = null;
  }

  // Exponential backoff with "equal jitter": half of the capped exponential
  // step is fixed, the other half random. 0.5 s, 1 s, 2 s, ... capped at 15 s.
  function backoffDelay(n) {
    var step = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(BACKOFF_FACTOR, n));
    return step / 2 + Math.random() * (step / 2);
  }

  function scheduleReconnect() {
    clearTimers();
    if (!navigator.onLine) { setStatus('offline', 'offline'); return; }
    var delay = backoffDelay(attempt);
    attempt = Math.min(attempt + 1, 30);
    reconnectAt = Date.now() + delay;
    renderCountdown();
    countdownTimer = setInterval(renderCountdown, 250);
    reconnectTimer = setTimeout(function () {
      clearTimers();
      connect();
    }, delay);
  }

  function wsUrl(since) {
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return proto + '//' + location.host + '/ws?since=' + encodeURIComponent(since);
  }

  function connect() {
    clearTimers();
    if (ws || initialPending) return;
    if (!navigator.onLine) { setStatus('offline', 'offline'); return; }
    setStatus('connecting', 'connecting…');

    if (!initialLoaded) {
      initialPending = true;
      loadInitial().then(function () {
        initialPending = false;
        if (loadErrorShown) hideBanner();
        openSocket();
      }, function (err) {
        initialPending = false;
        showBanner(err && err.message ? err.message : 'Could not load posts.');
        loadErrorShown = true;
        scheduleReconnect();
      });
      return;
    }
    openSocket();
  }

  function openSocket() {
    if (ws) return;
    if (!navigator.onLine) { setStatus('offline', 'offline'); return; }
    var socket;
    var since = streamCursor === null ? 0 : streamCursor;
    try {
      socket = new WebSocket(wsUrl(since));
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = socket;

    socket.addEventListener('open', function () {
      if (ws !== socket) return;
      setStatus('connected', 'connected');
      clearTimeout(stableTimer);
      stableTimer = setTimeout(function () { if (ws === socket) attempt = 0; }, STABLE_AFTER_MS);
    });

    socket.addEventListener('message', function (ev) {
      if (ws !== socket || typeof ev.data !== 'string') return;
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (!msg || typeof msg.event !== 'string') return;
      var data = msg.data || {};
      if (msg.event === 'welcome') {
        connectionId = typeof data.connectionId === 'string' ? data.connectionId : null;
        if (connectionId) els.status.title = 'connection ' + connectionId;
        // The server replays the changes after `since` up to the welcome's
        // lastSeq, then goes live. The cursor reaches lastSeq through the
        // replayed frames, not from the welcome: the welcome comes *before*
        // the replay, and a socket dropped mid-replay must resume where the
        // replay stopped. (A compacted replay can end below lastSeq, when its
        // last changes were posts created and deleted since; resuming a
        // little earlier then only replays no-ops.)
      } else if (msg.event === 'newPost' || msg.event === 'postUpdated') {
        if (!isValidPost(data.post) || !isSeq(data.seq)) return;
        setPost(data.post, data.seq, { onlyInRange: true, highlight: true });
        advanceCursor(data.seq);
      } else if (msg.event === 'postDeleted') {
        if (!Number.isSafeInteger(data.id) || !isSeq(data.seq)) return;
        removePost(data.id);
        advanceCursor(data.seq);
      }
      els.feed.dataset.cursor = String(streamCursor === null ? 0 : streamCursor);
    });

    socket.addEventListener('close', function (ev) {
      if (ws !== socket) return;
      ws = null;
      clearTimeout(stableTimer);
      els.status.dataset.closeCode = String(ev.code);
      // 1001 server going away, 1008 slow consumer, 1009 frame too big, 1006
      // dropped: all resume after streamCursor (a seq) after a backoff.
      scheduleReconnect();
    });
    // 'error' is always followed by 'close'; nothing to do here.
  }

  function onOffline() {
    clearTimers();
    if (ws) {
      var s = ws;
      ws = null;
      try { s.close(1000, 'offline'); } catch (e) { /* ignore */ }
    }
    setStatus('offline', 'offline');
  }

  function onOnline() {
    attempt = 0;
    if (!ws) connect();
  }

  // ---- boot -------------------------------------------------------------------

  function init() {
    els.feed = $('feed');
    els.feedHeading = $('feed-heading');
    els.empty = $('empty');
    els.loadOlder = $('load-older');
    els.form = $('post-form');
    els.fieldset = $('post-fieldset');
    els.title = $('title');
    els.content = $('content');
    els.author = $('author');
    els.submit = $('submit');
    els.contentCount = $('content-count');
    els.status = $('status');
    els.statusText = $('status-text');
    els.banner = $('banner');
    els.bannerText = $('banner-text');

    try {
      var saved = localStorage.getItem(AUTHOR_KEY);
      if (saved) els.author.value = saved;
    } catch (e) { /* storage may be unavailable */ }

    els.form.addEventListener('submit', onSubmit);
    els.form.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        if (typeof els.form.requestSubmit === 'function') els.form.requestSubmit(); else onSubmit(ev);
      }
    });
    els.form.addEventListener('input', function (ev) {
      var name = ev.target && ev.target.name;
      if (name) {
        var slot = els.form.querySelector('.field-error[data-field="' + name + '"]');
        if (slot && slot.textContent) {
          slot.textContent = '';
          ev.target.removeAttribute('aria-invalid');
        }
      }
      if (ev.target === els.content) updateCount();
    });
    $('banner-close').addEventListener('click', hideBanner);
    els.loadOlder.addEventListener('click', loadOlder);
    els.feed.addEventListener('click', onFeedClick);
    els.feed.addEventListener('submit', onFeedSubmit);
    els.feed.addEventListener('keydown', onFeedKeydown);
    els.feed.addEventListener('input', onFeedInput);

    window.addEventListener('offline', onOffline);
    window.addEventListener('online', onOnline);
    document.addEventListener('visibilitychange', function () {
      if (!document.hidden) refreshTimes();
    });
    setInterval(refreshTimes, TIME_REFRESH_MS);

    updateCount();
    connect();
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
