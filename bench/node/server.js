// The classic Node feed server (express + socket.io 4.8) that livefeed replaces, the baseline for
// livefeed's benchmark. It is the usual "save, then io.emit('newPost')" code
// plus only what it needs to accept livefeed's request shape:
//
//   POST /posts {"title","content","author"?} -> store, io.emit('newPost', {post}), 201 post
//   POST /feeds/:feed/posts (same body)         -> store, io.to(feed).emit('newPost', {post}), 201 post
//   GET  /healthz                                -> 200
//
// Feeds are Socket.IO rooms: a socket whose CONNECT carries
// auth {feeds: ['a', 'b']} (io(url, {auth: {feeds}})) joins those rooms, and
// a post to /feeds/:feed/posts is emitted to that room only. POST /posts stays
// the classic io.emit to every socket, as before feeds.
//
// Storage: posts are kept IN MEMORY only (an array); nothing is written to
// disk, so a 201 here promises far less than livefeed's 201 (fsynced to sled).
// Listens on 127.0.0.1:$PORT (default 8080).
'use strict';

const express = require('express');

const MAX_CONTENT_CHARS = 10000;
// livefeed's feed names: 1-64 of a-z 0-9 - _, starting with a letter or digit.
const FEED_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const PORT = Number(process.env.PORT || 8080);
const HOST = process.env.HOST || '127.0.0.1';

const app = express();
app.use(express.json({ limit: '1mb' }));

// The "database": in memory, never persisted.
const posts = [];
let nextId = 1;

function addToDatabase(post) {
  posts.push(post);
  return Promise.resolve(post);
}

app.get('/healthz', (req, res) => {
  res.status(200).send('ok');
});

// Validates and stores a post, then emits it with `emit` and answers 201.
function createPost(req, res, next, feed, emit) {
  const { title, content, author } = req.body || {};
  if (typeof title !== 'string' || typeof content !== 'string' ||
      (author !== undefined && typeof author !== 'string')) {
    return res.status(400).json({ error: 'title and content must be strings' });
  }
  if (content.length > MAX_CONTENT_CHARS) {
    return res.status(413).json({ error: 'content too long' });
  }
  const post = {
    id: nextId++,
    feed,
    title,
    content,
    author: author === undefined ? 'anonymous' : author,
    createdAt: new Date().toISOString(),
  };
  addToDatabase(post)
    .then(() => {
      emit({ post });
      res.status(201).json(post);
    })
    .catch(next);
}

app.post('/posts', (req, res, next) => {
  createPost(req, res, next, 'main', (msg) => io.emit('newPost', msg));
});

app.post('/feeds/:feed/posts', (req, res, next) => {
  const { feed } = req.params;
  if (!FEED_NAME.test(feed)) {
    return res.status(400).json({ error: 'bad feed name' });
  }
  createPost(req, res, next, feed, (msg) => io.to(feed).emit('newPost', msg));
});

const server = app.listen(PORT, HOST, () => {
  console.log(`node baseline listening on http://${HOST}:${PORT} (posts stored in memory only)`);
});

const io = require('socket.io')(server);

io.on('connection', (socket) => {
  // The original logs every connection; at 10,000 clients that is only noise.
  const feeds = socket.handshake.auth && socket.handshake.auth.feeds;
  if (Array.isArray(feeds)) {
    for (const feed of feeds) {
      if (typeof feed === 'string' && FEED_NAME.test(feed)) socket.join(feed);
    }
  }
});

function shutdown() {
  io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
