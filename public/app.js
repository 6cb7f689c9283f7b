// livefeed demo client.
//
// Plain browser JavaScript, no build step and no dependencies. It talks to the
// livefeed server on the same origin:
//   GET  /posts?limit=N&before=ID   initial page and "Load older"
//   POST /posts                     the composer form
//   WS   /ws?since=ID               live posts, with replay after reconnects
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

  var els = {};

  // ---- feed state --------------------------------------------------------

  // Ids currently rendered, sorted descending (newest first); parallel to the
  // order of .post elements inside #feed.
  var ids = [];
  var byId = new Map();
  // Highest id we know we have *everything up to*: the newest post of the
  // initial GET /posts page, then every id that came over the websocket (the
  // server replays in ascending order without gaps). Posts we learned about
  // only from our own POST response do not move it, because older posts by
  // other clients may still be in flight on the socket.
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

  function isValidPost(p) {
    return p && typeof p === 'object' && Number.isSafeInteger(p.id) && p.id >= 0 &&
      typeof p.title === 'string' && typeof p.content === 'string';
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

  function refreshTimes() {
    var now = Date.now();
    var times = els.feed.querySelectorAll('time.post-time');
    for (var i = 0; i < times.length; i++) {
      var d = new Date(times[i].getAttribute('datetime'));
      times[i].textContent = relativeTime(d, now);
    }
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

  // ---- rendering --------------------------------------------------------

  function renderPost(post) {
    var article = el('article', 'post card');
    article.id = 'post-' + post.id;
    article.dataset.id = String(post.id);
    article.setAttribute('aria-labelledby', 'post-' + post.id + '-title');

    var head = el('header', 'post-head');
    var title = el('h3', 'post-title', post.title);
    title.id = 'post-' + post.id + '-title';
    var idLink = el('a', 'post-id', '#' + post.id);
    idLink.href = '#post-' + post.id;
    idLink.setAttribute('aria-label', 'Post number ' + post.id);
    head.appendChild(title);
    head.appendChild(idLink);

    var content = el('p', 'post-content', post.content);

    var meta = el('footer', 'post-meta');
    var hasAuthor = typeof post.author === 'string' && post.author.trim() !== '';
    var author = el('span', 'post-author' + (hasAuthor ? '' : ' is-anonymous'),
      hasAuthor ? post.author : 'anonymous');
    var initial = hasAuthor ? Array.from(post.author.trim())[0] : '';
    var avatar = el('span', 'avatar', /^[\p{L}\p{N}]$/u.test(initial) ? initial.toUpperCase() : '?');
    avatar.setAttribute('aria-hidden', 'true');
    var sep = el('span', 'sep', '·');
    sep.setAttribute('aria-hidden', 'true');
    var time = el('time', 'post-time');
    var created = new Date(post.createdAt);
    if (!isNaN(created.getTime())) {
      time.setAttribute('datetime', created.toISOString());
      time.title = created.toLocaleString();
      time.textContent = relativeTime(created, Date.now());
    }
    meta.appendChild(avatar);
    meta.appendChild(author);
    meta.appendChild(sep);
    meta.appendChild(time);

    article.appendChild(head);
    article.appendChild(content);
    article.appendChild(meta);
    return article;
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

  // Insert a post in id order. Returns false for duplicates (dedupe by id
  // everywhere: initial page, load older, POST response, websocket).
  function addPost(post, opts) {
    if (!isValidPost(post)) return false;
    if (byId.has(post.id)) return false;
    var node = renderPost(post);
    var idx = insertionIndex(post.id);
    var before = idx < ids.length ? byId.get(ids[idx]) : null;
    ids.splice(idx, 0, post.id);
    byId.set(post.id, node);
    if (opts && opts.highlight) {
      node.classList.add('is-new');
      node.addEventListener('animationend', function onEnd(ev) {
        if (ev.target !== node || ev.animationName !== 'post-highlight') return;
        node.classList.remove('is-new');
        node.removeEventListener('animationend', onEnd);
      });
    }
    els.feed.insertBefore(node, before);
    els.empty.hidden = true;
    return true;
  }

  function updateEmpty() {
    els.empty.hidden = !(initialLoaded && ids.length === 0);
  }

  function advanceCursor(id) {
    if (streamCursor === null || id > streamCursor) streamCursor = id;
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

  function setOlder(next) {
    olderCursor = (next === null || next === undefined) ? null : next;
    els.loadOlder.hidden = olderCursor === null;
  }

  function loadInitial() {
    els.feed.setAttribute('aria-busy', 'true');
    return fetchPage(null).then(function (body) {
      var top = null;
      body.posts.forEach(function (p) {
        addPost(p);
        if (isValidPost(p) && (top === null || p.id > top)) top = p.id;
      });
      // Everything up to the newest post of this page is stored, so the socket
      // resumes right after it: nothing created between this GET and the
      // socket opening can be missed.
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
      body.posts.forEach(function (p) { addPost(p); });
      setOlder(body.next);
    }).catch(function (err) {
      showBanner(err && err.message ? err.message : 'Could not load older posts.');
    }).finally(function () {
      loadingOlder = false;
      els.loadOlder.disabled = false;
      els.loadOlder.textContent = 'Load older';
      els.feed.setAttribute('aria-busy', 'false');
    });
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
          if (isValidPost(body)) addPost(body, { highlight: true });
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

  function wsUrl() {
    var proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return proto + '//' + location.host + '/ws?since=' + encodeURIComponent(streamCursor === null ? 0 : streamCursor);
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
    try {
      socket = new WebSocket(wsUrl());
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
      } else if (msg.event === 'newPost') {
        if (isValidPost(data.post)) {
          addPost(data.post, { highlight: true });
          advanceCursor(data.post.id);
        }
      }
    });

    socket.addEventListener('close', function (ev) {
      if (ws !== socket) return;
      ws = null;
      clearTimeout(stableTimer);
      els.status.dataset.closeCode = String(ev.code);
      // 1001 server going away, 1008 slow consumer, 1009 frame too big, 1006
      // dropped: all resume from streamCursor after a backoff.
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
