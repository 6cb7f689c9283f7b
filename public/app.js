// livefeed demo client.
//
// Plain browser JavaScript, no build step and no dependencies. It talks to the
// livefeed server on the same origin:
//   GET    /feeds                          the feed picker
//   GET    /feeds/{feed}/posts?limit&before a feed's first page and "Load older"
//                                          (/posts for the default feed, main)
//   POST   /feeds/{feed}/posts             the composer (/posts for main)
//   GET    /posts/{id}                     a post's current version and ETag
//   PATCH  /posts/{id}                     "Edit" (If-Match: the seq the page has)
//   DELETE /posts/{id}                     "Delete", after an in-page confirmation
//   WS     /ws?feeds=FEED&since=SEQ        live changes of the shown feed, with
//                                          replay after reconnects and switches
//
// The page shows one feed at a time, named by its URL: #/feeds/NAME (no hash
// or #/ is main). Every feed the page has shown keeps its own state (posts,
// cursor, open controls) while another is shown, so switching back resumes
// that feed's stream where it stopped.
//
// Every change has a seq (one counter for creates, edits and deletes across
// every feed; a create's seq is the new post's id). The page applies changes
// as "set this post" (newPost, postUpdated) or "remove this post"
// (postDeleted), and resumes the socket after the highest seq of the feed it
// has everything up to.
//
// Safety rule: post data (and feed names) are only ever put into the DOM
// with textContent / createElement / setAttribute. Never innerHTML.
(function () {
  'use strict';

  var PAGE_SIZE = 20;
  var BACKOFF_BASE_MS = 500;
  var BACKOFF_FACTOR = 2;
  var BACKOFF_CAP_MS = 15000;
  var STABLE_AFTER_MS = 5000; // a connection open this long resets the backoff
  var TIME_REFRESH_MS = 15000;
  var FEEDS_REFRESH_MS = 30000; // the picker's periodic refresh (visible tab only)
  var FEEDS_MIN_GAP_MS = 1000; // at most one GET /feeds per second ...
  var FEEDS_LIVE_GAP_MS = 5000; // ... and one per 5 s for live creates/deletes
  var MAX_KEPT_FEEDS = 8; // feeds whose state is kept for a resume
  var AUTHOR_KEY = 'livefeed.author';
  var TOKEN_KEY = 'livefeed.token';
  var FIELDS = ['title', 'content', 'author'];
  var DEFAULT_FEED = 'main';
  var PRIVATE_PREFIX = 'private-';
  // The server's rule for feed names.
  var FEED_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
  var FEED_RULE = 'A feed name is 1 to 64 characters of a-z, 0-9, - and _, starting with a letter or a digit.';

  var els = {};

  // ---- feed state --------------------------------------------------------

  // One per feed the page has shown (at most MAX_KEPT_FEEDS, least recently
  // shown dropped first):
  //   ids          ids rendered, sorted descending (newest first); parallel
  //                to the order of the feed's .post elements
  //   entries      id -> { post, seq, node, parts, editor, st }: `seq` is the
  //                seq of the post's latest change the page knows of (its
  //                ETag), or 0 when unknown (an edited post from a GET page)
  //   deletedIds   ids known deleted: never shown again, whatever arrives
  //                late (a slow POST response, an older GET page)
  //   pendingOld   changes to posts below the loaded range, kept until "Load
  //                older" brings them in; they win over the GET answer
  //   streamCursor highest seq of this feed the page has *everything up to*:
  //                the newest post id of the first page (a create's seq is
  //                its id), then the seq of every change of the feed that
  //                came over the websocket (the server sends a feed's changes
  //                in ascending seq; a replay ends at the welcome's lastSeq).
  //                Our own POST/PATCH/DELETE answers do not move it: changes
  //                by others with lower seqs may still be on their way.
  //   parked       the feed's cards while another feed is shown
  var states = new Map();
  // The shown feed's state; null when the URL names no valid feed.
  var S = null;
  // What the URL asked for when it names no valid feed: { message }.
  var badRoute = null;
  // A post to bring into view once its feed shows it: { feed, id }.
  var focusWanted = null;
  var loadErrorShown = false; // the banner shows a failed initial load
  var sending = false; // the composer's POST is in flight

  // ---- connection state --------------------------------------------------

  var ws = null;
  var attempt = 0;
  var reconnectTimer = null;
  var countdownTimer = null;
  var stableTimer = null;
  var reconnectAt = 0;
  var connectionId = null;

  // ---- the picker's list -------------------------------------------------

  var feedsList = {
    items: [], // [{ name, posts, lastPostId, subscribers }] from GET /feeds
    loaded: false,
    error: null,
    inflight: false,
    again: false, // asked for again while in flight: false, 'soon' or 'live'
    lastAt: 0,
    timer: null,
    timerAt: 0,
    nodes: new Map() // name -> <li>
  };

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

  function isFeedName(name) {
    return typeof name === 'string' && FEED_NAME.test(name);
  }

  // Whether `post` belongs to the feed of `st` (a post without a feed is
  // from a server that has only main).
  function inFeed(post, st) {
    return typeof post.feed === 'string' ? post.feed === st.name : st.name === DEFAULT_FEED;
  }

  // A feed name as shown in a message: quoted, at most 70 characters.
  function quoted(name) {
    var s = String(name);
    var chars = Array.from(s);
    return '“' + (chars.length > 70 ? chars.slice(0, 70).join('') + '…' : s) + '”';
  }

  // The posts collection of a feed (main keeps the original /posts).
  function postsPath(name) {
    return name === DEFAULT_FEED ? '/posts' : '/feeds/' + encodeURIComponent(name) + '/posts';
  }

  function feedHash(name) {
    return '#/feeds/' + encodeURIComponent(name);
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

  // ---- access token -------------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  function withAuth(headers) {
    var t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    return headers;
  }

  // ---- HTTP ---------------------------------------------------------------

  function errorMessage(body, fallback) {
    if (body && body.error && typeof body.error.message === 'string' && body.error.message) {
      return body.error.message;
    }
    return fallback;
  }

  function errorCode(body) {
    return body && body.error && typeof body.error.code === 'string' ? body.error.code : '';
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
    var headers = withAuth({ Accept: 'application/json' });
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

  // A page of the feed of `st`. Rejects with an Error; `final` is set when
  // retrying cannot help (the server refuses the feed: 400, 401, 403).
  function fetchPage(st, before) {
    var url = postsPath(st.name) + '?limit=' + PAGE_SIZE +
      (before !== null && before !== undefined ? '&before=' + encodeURIComponent(before) : '');
    return fetch(url, { headers: withAuth({ Accept: 'application/json' }), cache: 'no-store' }).then(function (res) {
      return readJson(res).then(function (body) {
        if (!res.ok || !body || !Array.isArray(body.posts)) {
          var err = new Error(errorMessage(body, 'Could not load posts (HTTP ' + res.status + ')'));
          err.status = res.status;
          err.code = errorCode(body);
          err.final = res.status === 400 || res.status === 401 || res.status === 403;
          throw err;
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

  function setOlder(st, next) {
    st.olderCursor = (next === null || next === undefined) ? null : next;
    if (st === S) els.loadOlder.hidden = st.olderCursor === null;
  }

  // Whether `id` lies in the part of the feed the page has loaded (the
  // first page and every "Load older" page so far).
  function inLoadedRange(st, id) {
    return st.olderCursor === null || id >= st.olderCursor;
  }

  // Where the cards of `st` live: #feed while it is shown, else its
  // parking fragment.
  function container(st) {
    return st === S ? els.feed : st.parked;
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
    // A permalink: the post's feed and the post.
    idLink.href = feedHash(entry.st.name) + '/posts/' + id;
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

  // Index in `st.ids` (descending) where `id` belongs.
  function insertionIndex(st, id) {
    var ids = st.ids;
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

  // "Set this post" in the feed of `st`: the one way a post gets into a
  // feed or changes, whatever the source. `seq` is the seq of the change it
  // shows (0 when unknown). Keeps the feed sorted by id, without duplicates,
  // never goes back to an older version, never brings back a deleted post
  // and never shows a post of another feed.
  //   opts.ifAbsent     only add (a GET page never overrides what we have)
  //   opts.onlyInRange  a post below the loaded range waits for Load older
  //   opts.highlight    flash the card (new or changed)
  function setPost(st, post, seq, opts) {
    opts = opts || {};
    if (!isValidPost(post) || !inFeed(post, st)) return false;
    var id = post.id;
    if (st.deletedIds.has(id)) return false;
    var entry = st.entries.get(id);
    if (entry) {
      if (opts.ifAbsent || !seq) return false;
      if (entry.seq && seq <= entry.seq) return false; // the same change or an older one
      var changed = !samePost(entry.post, post);
      entry.post = post;
      entry.seq = seq;
      fillView(entry);
      if (entry.editor && seq > entry.editor.baseSeq) editorSawChange(entry);
      if (changed && opts.highlight && st === S) highlight(entry.node, 'is-updated', 'post-highlight');
      return true;
    }
    if (opts.onlyInRange && !inLoadedRange(st, id)) {
      var waiting = st.pendingOld.get(id);
      if (!waiting || waiting.seq < seq) st.pendingOld.set(id, { post: post, seq: seq });
      return false;
    }
    entry = { post: post, seq: seq || 0, node: null, parts: null, editor: null, deleting: false, st: st };
    var node = renderPost(entry);
    var idx = insertionIndex(st, id);
    var before = idx < st.ids.length ? st.entries.get(st.ids[idx]).node : null;
    st.ids.splice(idx, 0, id);
    st.entries.set(id, entry);
    if (opts.highlight && st === S) highlight(node, 'is-new', 'post-highlight');
    container(st).insertBefore(node, before);
    if (st === S) els.empty.hidden = true;
    return true;
  }

  // A post from a GET page: a change that arrived over the socket for it
  // while it was not loaded wins (it is at least as recent).
  function addFromPage(st, post) {
    if (!isValidPost(post)) return;
    var waiting = st.pendingOld.get(post.id);
    if (waiting) {
      st.pendingOld.delete(post.id);
      setPost(st, waiting.post, waiting.seq);
      return;
    }
    setPost(st, post, seqOfPlainPost(post), { ifAbsent: true });
  }

  // "Remove this post" from the feed of `st`. Focus inside the card moves to
  // a neighbour (or the feed heading) so keyboard users are not dropped to
  // the top of the page.
  function removePost(st, id, opts) {
    opts = opts || {};
    st.deletedIds.add(id);
    st.pendingOld.delete(id);
    var entry = st.entries.get(id);
    if (!entry) return false;
    var node = entry.node;
    var shown = st === S;
    var hadFocus = shown && (entry.deleting || node.contains(document.activeElement));
    var lostEdit = !!entry.editor && !opts.own;
    var next = hadFocus ? (node.nextElementSibling || node.previousElementSibling || els.feedHeading) : null;
    st.ids.splice(st.ids.indexOf(id), 1);
    st.entries.delete(id);
    entry.editor = null;
    node.remove();
    if (next) next.focus();
    if (lostEdit && shown) showBanner('Post #' + id + ' was deleted while you were editing it; your changes were not saved.', 'info');
    if (shown) updateEmpty();
    return true;
  }

  function updateEmpty() {
    els.empty.hidden = !(S && S.initialLoaded && !S.refused && S.ids.length === 0);
  }

  function advanceCursor(st, seq) {
    if (st.streamCursor === null || seq > st.streamCursor) st.streamCursor = seq;
  }

  function showCursor() {
    if (S && S.streamCursor !== null) els.feed.dataset.cursor = String(S.streamCursor);
    else delete els.feed.dataset.cursor;
  }

  // ---- loading -----------------------------------------------------------

  function setBusy() {
    els.feed.setAttribute('aria-busy', S && (S.loading || S.loadingOlder) ? 'true' : 'false');
  }

  function loadInitial(st) {
    st.loading = true;
    setBusy();
    return fetchPage(st, null).then(function (body) {
      var top = null;
      body.posts.forEach(function (p) {
        if (!isValidPost(p) || !inFeed(p, st)) return;
        addFromPage(st, p);
        if (top === null || p.id > top) top = p.id;
      });
      // Every change of this feed up to the newest post's create (seq = its
      // id) is in this page, so the socket resumes right after it: nothing
      // changed between this GET and the socket opening can be missed
      // (changes the page already has are replayed in their latest state,
      // which is harmless).
      st.streamCursor = top === null ? 0 : top;
      st.initialLoaded = true;
      setOlder(st, body.next);
      if (st === S) {
        updateEmpty();
        showCursor();
        bringWantedPostIntoView();
      }
    }).finally(function () {
      st.loading = false;
      setBusy();
    });
  }

  function loadOlder() {
    var st = S;
    if (!st || st.loadingOlder || st.olderCursor === null) return;
    st.loadingOlder = true;
    showLoadOlder();
    setBusy();
    fetchPage(st, st.olderCursor).then(function (body) {
      setOlder(st, body.next);
      body.posts.forEach(function (p) { addFromPage(st, p); });
      // Changes to posts now in range that this page did not list (created
      // after it was read) come in too.
      st.pendingOld.forEach(function (w, id) {
        if (inLoadedRange(st, id)) {
          st.pendingOld.delete(id);
          setPost(st, w.post, w.seq);
        }
      });
    }).catch(function (err) {
      if (st === S) showBanner(err && err.message ? err.message : 'Could not load older posts.');
    }).finally(function () {
      st.loadingOlder = false;
      if (st === S) showLoadOlder();
      setBusy();
    });
  }

  function showLoadOlder() {
    var loading = !!(S && S.loadingOlder);
    els.loadOlder.hidden = !S || S.olderCursor === null;
    els.loadOlder.disabled = loading;
    els.loadOlder.textContent = loading ? 'Loading…' : 'Load older';
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
          removePost(entry.st, id);
          if (entry.st === S) showBanner('Post #' + id + ' no longer exists.', 'info');
          return;
        }
        if (!cur.seq) throw new Error('The server sent no ETag for post #' + id + '.');
        setPost(entry.st, cur.post, cur.seq);
        if (entry.st.entries.get(id) === entry) openEditor(entry);
      }).catch(function (err) {
        b.disabled = false;
        if (entry.st === S) showBanner(err.message);
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
      if (entry.st.entries.get(id) !== entry || entry.editor !== ed) return; // deleted or closed meanwhile
      setEditorSaving(ed, false);
      var status = r.res.status;
      if (r.res.ok && isValidPost(r.body)) {
        closeEditor(entry, true);
        setPost(entry.st, r.body, r.seq, { highlight: true });
        return;
      }
      if (status === 412) { onEditConflict(entry, ed); return; }
      if (status === 404) { removePost(entry.st, id); return; }
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
      if (entry.st.entries.get(id) !== entry || entry.editor !== ed) return;
      if (cur.gone) { removePost(entry.st, id); return; }
      setPost(entry.st, cur.post, cur.seq);
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
      if (entry.st.entries.get(id) !== entry) return; // the live event removed it first
      var status = r.res.status;
      if (r.res.ok || status === 404) { // 404: already deleted by someone else
        removePost(entry.st, id, { own: true });
        return;
      }
      setDeleting(entry, false);
      p.confirmNo.focus();
      if (status === 412) {
        p.confirmError.textContent = 'Not deleted: someone else edited this post just now. Check their version, then delete again if you still want to.';
        fetchCurrent(id).then(function (cur) {
          if (cur.gone) removePost(entry.st, id); else setPost(entry.st, cur.post, cur.seq, { highlight: true });
        }, function () { /* the live feed brings the new version */ });
        return;
      }
      var message = errorMessage(r.body, 'Deleting failed (HTTP ' + status + ').');
      if (status === 401) message = 'Not allowed to delete: ' + message;
      p.confirmError.textContent = message;
    }, function () {
      if (entry.st.entries.get(id) !== entry) return;
      setDeleting(entry, false);
      p.confirmNo.focus();
      p.confirmError.textContent = 'Could not reach the server; the post was not deleted.';
    });
  }

  // One set of listeners on #feed for every card's controls.
  function entryOf(target) {
    var node = target && target.closest ? target.closest('.post[data-id]') : null;
    if (!node) return null;
    var entry = S ? S.entries.get(Number(node.dataset.id)) : undefined;
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

  // The form is usable when a feed the server lets us read is shown and no
  // POST is in flight.
  function updateComposer() {
    var usable = !!S && !S.refused;
    els.fieldset.disabled = sending || !usable;
    els.form.setAttribute('aria-busy', sending ? 'true' : 'false');
    els.submit.textContent = sending ? 'Publishing…' : 'Publish';
    els.composerFeed.textContent = S ? S.name : '—';
  }

  function setSending(value) {
    sending = value;
    updateComposer();
  }

  function updateCount() {
    var n = els.content.value.length;
    els.contentCount.textContent = n + ' / 10000';
  }

  function onSubmit(ev) {
    ev.preventDefault();
    if (els.fieldset.disabled || !S || S.refused) return;
    clearFieldErrors();
    hideBanner();
    var st = S; // the post goes to the feed shown now

    var payload = { title: els.title.value, content: els.content.value };
    var author = els.author.value.trim();
    if (author) payload.author = author;
    try {
      if (author) localStorage.setItem(AUTHOR_KEY, author); else localStorage.removeItem(AUTHOR_KEY);
    } catch (e) { /* storage may be unavailable */ }

    setSending(true);
    fetch(postsPath(st.name), {
      method: 'POST',
      headers: withAuth({ 'Content-Type': 'application/json', Accept: 'application/json' }),
      body: JSON.stringify(payload)
    }).then(function (res) {
      return readJson(res).then(function (body) {
        if (res.status === 201 || (res.ok && isValidPost(body))) {
          // Shown now (in its feed, even if another one is shown by now);
          // the copy coming back over the socket is the same change (seq =
          // id) and is dropped.
          if (isValidPost(body)) setPost(st, body, etagSeq(res) || body.id, { highlight: true });
          els.title.value = '';
          els.content.value = '';
          updateCount();
          setSending(false);
          els.title.focus();
          refreshFeeds();
          return;
        }
        setSending(false);
        var field = body && body.error && body.error.field;
        var message = errorMessage(body, 'Publishing failed (HTTP ' + res.status + ').');
        if (res.status === 422 && typeof field === 'string' && showFieldError(field, message)) return;
        if (res.status === 401) message = 'Not allowed to publish: ' + message;
        else if (res.status === 403) message = 'Not allowed to publish to ' + quoted(st.name) + ': ' + message;
        else if (res.status === 400 && errorCode(body) === 'invalid_feed') message = 'Not published: ' + message;
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

  function wsUrl(st, since) {
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    var t = token();
    return proto + '//' + location.host + '/ws?feeds=' + encodeURIComponent(st.name) +
      '&since=' + encodeURIComponent(since) + (t ? '&token=' + encodeURIComponent(t) : '');
  }

  // Load the shown feed's first page if it has none yet, then follow it.
  function connect() {
    clearTimers();
    var st = S;
    if (!st || st.refused || ws) return;
    if (!navigator.onLine) { setStatus('offline', 'offline'); return; }
    setStatus('connecting', 'connecting…');
    if (st.loading) return; // its first page is on its way; the socket follows

    if (!st.initialLoaded) {
      loadInitial(st).then(function () {
        if (st !== S) return; // loaded for later; another feed is shown now
        if (loadErrorShown) hideBanner();
        openSocket();
      }, function (err) {
        if (st !== S) return;
        if (err && err.final) { refuse(st, err); return; }
        showBanner(err && err.message ? err.message : 'Could not load posts.');
        loadErrorShown = true;
        scheduleReconnect();
      });
      return;
    }
    openSocket();
  }

  // The server will not show this feed (400 invalid_feed, 401, 403): say
  // why, and neither retry nor subscribe.
  function refuse(st, err) {
    var message;
    if (err.status === 401 || err.status === 403) {
      message = quoted(st.name) + ' is a private feed: ' + err.message +
        (token() ? ' The access token given does not open it.' : ' Enter an access token to read it.');
    } else {
      message = 'The server refused the feed ' + quoted(st.name) + ': ' + err.message;
    }
    st.refused = { status: err.status, code: err.code, message: message };
    if (st === S) showFeedUi();
  }

  function closeSocket() {
    clearTimers();
    clearTimeout(stableTimer);
    if (!ws) return;
    var s = ws;
    ws = null; // its late events are ignored from now on
    try { s.close(1000, 'feed switched'); } catch (e) { /* ignore */ }
  }

  function openSocket() {
    var st = S;
    if (ws || !st) return;
    if (!navigator.onLine) { setStatus('offline', 'offline'); return; }
    var socket;
    var since = st.streamCursor === null ? 0 : st.streamCursor;
    try {
      socket = new WebSocket(wsUrl(st, since));
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
        // The socket follows this feed only; a frame of another feed is
        // never shown and does not move this feed's cursor.
        if (!inFeed(data.post, st)) return;
        setPost(st, data.post, data.seq, { onlyInRange: true, highlight: true });
        advanceCursor(st, data.seq);
        if (msg.event === 'newPost') refreshFeeds(true);
      } else if (msg.event === 'postDeleted') {
        if (!Number.isSafeInteger(data.id) || !isSeq(data.seq)) return;
        // A delete names no feed: it removes the id from this feed only
        // (ids are unique across feeds).
        removePost(st, data.id);
        advanceCursor(st, data.seq);
        refreshFeeds(true);
      }
      if (st === S) showCursor();
    });

    socket.addEventListener('close', function (ev) {
      if (ws !== socket) return;
      ws = null;
      clearTimeout(stableTimer);
      els.status.dataset.closeCode = String(ev.code);
      // 1001 server going away, 1008 slow consumer, 1009 frame too big, 1006
      // dropped: all resume after the feed's cursor (a seq) after a backoff.
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
    if (!ws) {
      if (S && !S.refused) connect();
      else showFeedUi();
    }
  }

  // ---- feeds: switching ------------------------------------------------------

  function newState(name) {
    return {
      name: name,
      ids: [],
      entries: new Map(),
      deletedIds: new Set(),
      pendingOld: new Map(),
      streamCursor: null,
      initialLoaded: false,
      loading: false,
      olderCursor: null,
      loadingOlder: false,
      refused: null,
      parked: document.createDocumentFragment(),
      shownAt: 0
    };
  }

  // The kept state of `name` (or a new one); the least recently shown
  // feeds beyond MAX_KEPT_FEEDS are forgotten (shown again, they start
  // from a fresh first page).
  function stateFor(name) {
    var st = states.get(name);
    if (!st) {
      st = newState(name);
      states.set(name, st);
    }
    st.shownAt = Date.now();
    if (states.size > MAX_KEPT_FEEDS) {
      var oldest = null;
      states.forEach(function (s) {
        if (s !== st && s !== S && (!oldest || s.shownAt < oldest.shownAt)) oldest = s;
      });
      if (oldest) states.delete(oldest.name);
    }
    return st;
  }

  // Move the shown feed's cards out of #feed (open editors and typed text
  // stay in them).
  function park() {
    if (!S) return;
    while (els.feed.firstChild) S.parked.appendChild(els.feed.firstChild);
  }

  // Show feed `name`: close the socket, show its kept cards (or load its
  // first page), and follow it from its cursor.
  function showFeed(name, opts) {
    opts = opts || {};
    if (S && S.name === name && !badRoute && !opts.force) return false;
    closeSocket();
    attempt = 0;
    var hadFocus = els.feed.contains(document.activeElement);
    park();
    hideBanner();
    badRoute = null;
    var st = stateFor(name);
    // A refusal is asked again: the token or the server may have changed.
    if (st.refused) {
      states.delete(name);
      st = stateFor(name);
    }
    S = st;
    els.feed.appendChild(st.parked); // moves the cards back
    refreshTimes();
    if (hadFocus) els.feedHeading.focus();
    showFeedUi();
    announce('Showing feed ' + name);
    connect();
    refreshFeeds();
    return true;
  }

  // The URL names no valid feed: show why, follow nothing, post nothing.
  function showBadRoute(message) {
    closeSocket();
    park();
    hideBanner();
    S = null;
    badRoute = { message: message };
    showFeedUi();
    announce(message);
  }

  // Everything on the page that depends on the shown feed.
  function showFeedUi() {
    var name = S ? S.name : null;
    els.feed.dataset.feed = name || '';
    els.feedTitle.textContent = name || '—';
    els.emptyFeed.textContent = name || '';
    document.title = name ? 'livefeed · ' + name : 'livefeed';
    showCursor();
    showLoadOlder();
    setBusy();
    updateEmpty();
    updateComposer();
    var notice = badRoute ? badRoute.message : (S && S.refused ? S.refused.message : '');
    els.noticeText.textContent = notice;
    els.notice.hidden = !notice;
    els.notice.dataset.kind = badRoute ? 'invalid' : (S && S.refused ? 'refused' : '');
    if (!S || S.refused) {
      setStatus('idle', badRoute ? 'no feed' : 'not allowed');
      delete els.status.title;
    }
    renderFeedList();
  }

  function announce(text) {
    // Cleared first so the same text is announced again.
    els.announce.textContent = '';
    setTimeout(function () { els.announce.textContent = text; }, 50);
  }

  // ---- feeds: the URL ------------------------------------------------------------

  // #/feeds/NAME[/posts/ID] -> { feed, postId }; '' / '#' / '#/' -> main;
  // { error } for an address that names no valid feed; null for a plain
  // in-page anchor (not a route).
  function parseRoute(hash) {
    var h = (hash || '').replace(/^#/, '');
    if (h === '' || h === '/') return { feed: DEFAULT_FEED, postId: null };
    if (h.charAt(0) !== '/') return null;
    var parts = h.slice(1).split('/');
    if (parts[parts.length - 1] === '') parts.pop(); // a trailing slash
    if (parts[0] !== 'feeds' || parts.length < 2 || (parts.length !== 2 && parts.length !== 4) ||
        (parts.length === 4 && (parts[2] !== 'posts' || !/^\d{1,15}$/.test(parts[3])))) {
      return { error: 'This address (#' + h.slice(0, 80) + ') names no feed. A feed\'s address is #/feeds/NAME.' };
    }
    var name;
    try { name = decodeURIComponent(parts[1]); } catch (e) { name = parts[1]; }
    if (!isFeedName(name)) return { error: quoted(name) + ' is not a feed name. ' + FEED_RULE };
    return { feed: name, postId: parts.length === 4 ? Number(parts[3]) : null };
  }

  function route(initial) {
    var r = parseRoute(location.hash);
    if (r === null) {
      if (!initial) return; // an in-page anchor: stay on the shown feed
      r = { feed: DEFAULT_FEED, postId: null };
    }
    if (r.error) { showBadRoute(r.error); return; }
    focusWanted = r.postId === null ? null : { feed: r.feed, id: r.postId };
    showFeed(r.feed);
    bringWantedPostIntoView();
  }

  // A permalink's post, once its feed shows it.
  function bringWantedPostIntoView() {
    if (!focusWanted || !S || focusWanted.feed !== S.name) return;
    var entry = S.entries.get(focusWanted.id);
    if (!entry) {
      if (S.initialLoaded) focusWanted = null; // not in the loaded pages
      return;
    }
    focusWanted = null;
    var prev = els.feed.querySelector('.post.is-target');
    if (prev) prev.classList.remove('is-target');
    entry.node.classList.add('is-target');
    entry.node.scrollIntoView({ block: 'center' });
    entry.node.focus({ preventScroll: true });
  }

  // ---- feeds: the picker ----------------------------------------------------------

  // GET /feeds, at most one in flight and one per FEEDS_MIN_GAP_MS (per
  // FEEDS_LIVE_GAP_MS when asked for by live frames); asks made meanwhile
  // are coalesced into one later refresh.
  function refreshFeeds(live) {
    var f = feedsList;
    if (f.inflight) {
      if (!live) f.again = 'soon'; else if (!f.again) f.again = 'live';
      return;
    }
    var at = f.lastAt + (live ? FEEDS_LIVE_GAP_MS : FEEDS_MIN_GAP_MS);
    if (at > Date.now()) {
      // One timer, at the earliest time asked for.
      if (!f.timer || at < f.timerAt) {
        clearTimeout(f.timer);
        f.timerAt = at;
        f.timer = setTimeout(function () { f.timer = null; refreshFeeds(); }, at - Date.now());
      }
      return;
    }
    clearTimeout(f.timer);
    f.timer = null;
    f.inflight = true;
    f.lastAt = Date.now();
    request('GET', '/feeds').then(function (r) {
      if (!r.res.ok || !r.body || !Array.isArray(r.body.feeds)) {
        throw new Error(errorMessage(r.body, 'HTTP ' + r.res.status));
      }
      f.items = r.body.feeds.filter(function (x) { return x && isFeedName(x.name); });
      f.loaded = true;
      f.error = null;
    }, function () {
      throw new Error('the server cannot be reached');
    }).catch(function (err) {
      f.error = 'Could not refresh the list of feeds (' + err.message + ').';
    }).then(function () {
      f.inflight = false;
      renderFeedList();
      if (f.again) {
        var live = f.again === 'live';
        f.again = false;
        refreshFeeds(live);
      }
    });
  }

  function countLabel(n) {
    return n === 1 ? '1 post' : n + ' posts';
  }

  // The picker: every feed GET /feeds listed (by name), main, and the shown
  // feed even before it has a post. Nodes are kept by name so the focus
  // stays on a link while the list refreshes.
  function renderFeedList() {
    var f = feedsList;
    var byName = new Map();
    f.items.forEach(function (x) { byName.set(x.name, x); });
    if (!byName.has(DEFAULT_FEED)) byName.set(DEFAULT_FEED, { name: DEFAULT_FEED, posts: f.loaded ? 0 : null });
    if (S && !byName.has(S.name)) byName.set(S.name, { name: S.name, posts: f.loaded ? 0 : null, unlisted: true });
    var names = Array.from(byName.keys()).sort(function (a, b) {
      if (a === DEFAULT_FEED) return -1;
      if (b === DEFAULT_FEED) return 1;
      return a < b ? -1 : a > b ? 1 : 0;
    });
    var keep = new Set(names);
    f.nodes.forEach(function (li, name) {
      if (!keep.has(name)) { li.remove(); f.nodes.delete(name); }
    });
    names.forEach(function (name, i) {
      var item = byName.get(name);
      var li = f.nodes.get(name);
      if (!li) {
        li = el('li', 'feed-item');
        var a = el('a', 'feed-link');
        a.href = feedHash(name);
        a.dataset.feed = name;
        a.appendChild(el('span', 'feed-link-name', name));
        var count = el('span', 'feed-link-count');
        a.appendChild(count);
        li.appendChild(a);
        f.nodes.set(name, li);
      }
      var link = li.firstChild;
      var countEl = link.lastChild;
      var n = typeof item.posts === 'number' ? item.posts : null;
      var text = n === null ? '' : String(n);
      if (countEl.textContent !== text) countEl.textContent = text;
      countEl.hidden = n === null;
      var label = name + (n === null ? '' : ', ' + countLabel(n)) +
        (name.indexOf(PRIVATE_PREFIX) === 0 ? ', private' : '');
      link.setAttribute('aria-label', label);
      link.title = n === null ? name : name + ': ' + countLabel(n) +
        (typeof item.subscribers === 'number' ? ', ' + item.subscribers + ' following' : '');
      link.classList.toggle('is-private', name.indexOf(PRIVATE_PREFIX) === 0);
      if (S && S.name === name) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
      if (els.feedList.children[i] !== li) els.feedList.insertBefore(li, els.feedList.children[i] || null);
    });
    els.feedsError.textContent = f.error || '';
  }

  // "New feed": check the name as the server does, then go to its address.
  function onNewFeed(ev) {
    ev.preventDefault();
    var name = els.newFeedName.value.trim();
    var problem = null;
    if (name === '') problem = 'Enter a name for the feed.';
    else if (!isFeedName(name)) {
      problem = quoted(name) + ' is not a feed name. ' + FEED_RULE +
        (isFeedName(name.toLowerCase()) ? ' Did you mean ' + quoted(name.toLowerCase()) + '?' : '');
    }
    if (problem) {
      els.newFeedError.textContent = problem;
      els.newFeedName.setAttribute('aria-invalid', 'true');
      els.newFeedName.focus();
      return;
    }
    els.newFeedError.textContent = '';
    els.newFeedName.removeAttribute('aria-invalid');
    els.newFeedName.value = '';
    var hash = feedHash(name);
    // The hashchange event comes later; route now (it is then a no-op).
    if (location.hash !== hash) location.hash = hash;
    route(false);
    // Ready to write the feed's first post.
    if (S && S.name === name && !S.refused) els.title.focus();
  }

  function onTokenSubmit(ev) {
    ev.preventDefault();
    var t = els.token.value.trim();
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* storage may be unavailable */ }
    els.tokenState.textContent = t ? 'Token set for this tab.' : 'No token.';
    // What the page may read changed: forget kept feeds and reload the
    // shown one, and ask for the list again.
    states.forEach(function (st) { if (st !== S) states.delete(st.name); });
    if (S) {
      var name = S.name;
      closeSocket();
      while (els.feed.firstChild) els.feed.removeChild(els.feed.firstChild);
      states.delete(name);
      S = null;
      showFeed(name, { force: true });
    }
    feedsList.lastAt = 0;
    refreshFeeds();
  }

  // ---- boot -------------------------------------------------------------------

  function init() {
    els.feed = $('feed');
    els.feedHeading = $('feed-heading');
    els.feedTitle = $('feed-title');
    els.empty = $('empty');
    els.emptyFeed = $('empty-feed');
    els.loadOlder = $('load-older');
    els.notice = $('feed-notice');
    els.noticeText = $('feed-notice-text');
    els.announce = $('feed-announce');
    els.form = $('post-form');
    els.fieldset = $('post-fieldset');
    els.title = $('title');
    els.content = $('content');
    els.author = $('author');
    els.submit = $('submit');
    els.contentCount = $('content-count');
    els.composerFeed = $('composer-feed');
    els.status = $('status');
    els.statusText = $('status-text');
    els.banner = $('banner');
    els.bannerText = $('banner-text');
    els.feedList = $('feed-list');
    els.feedsError = $('feeds-error');
    els.newFeedForm = $('new-feed-form');
    els.newFeedName = $('new-feed-name');
    els.newFeedError = $('new-feed-error');
    els.tokenForm = $('token-form');
    els.token = $('token');
    els.tokenState = $('token-state');

    try {
      var saved = localStorage.getItem(AUTHOR_KEY);
      if (saved) els.author.value = saved;
    } catch (e) { /* storage may be unavailable */ }
    if (token()) {
      els.token.value = token();
      els.tokenState.textContent = 'Token set for this tab.';
    }

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
    els.newFeedForm.addEventListener('submit', onNewFeed);
    els.newFeedName.addEventListener('input', function () {
      if (els.newFeedError.textContent) {
        els.newFeedError.textContent = '';
        els.newFeedName.removeAttribute('aria-invalid');
      }
    });
    els.tokenForm.addEventListener('submit', onTokenSubmit);
    // The skip link moves the focus without touching the URL (the hash
    // names the feed).
    $('skip-link').addEventListener('click', function (ev) {
      ev.preventDefault();
      els.feedHeading.focus();
    });

    window.addEventListener('hashchange', function () { route(false); });
    window.addEventListener('offline', onOffline);
    window.addEventListener('online', onOnline);
    document.addEventListener('visibilitychange', function () {
      if (document.hidden) return;
      refreshTimes();
      if (Date.now() - feedsList.lastAt >= FEEDS_REFRESH_MS) refreshFeeds();
    });
    setInterval(refreshTimes, TIME_REFRESH_MS);
    setInterval(function () { if (!document.hidden) refreshFeeds(); }, FEEDS_REFRESH_MS);

    updateCount();
    route(true);
    if (!S) refreshFeeds(); // showFeed asks for the list otherwise
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
