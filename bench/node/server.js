// The classic Node feed server (express + socket.io 4.8) that livefeed replaces, the baseline for
// livefeed's benchmark. It is the usual "save, then io.emit('newPost')" code
// plus only what it needs to accept livefeed's request shape:
//
//   POST /posts {"title","content","author"?} -> store, io.emit('newPost', {post}), 201 post
//   GET  /healthz                                -> 200
//
// Storage: posts are kept IN MEMORY only (an array); nothing is written to
// disk, so a 201 here promises far less than livefeed's 201 (fsynced to sled).
// Listens on 127.0.0.1:$PORT (default 8080).
'use strict';

const express = require('express');

const MAX_CONTENT_CHARS = 10000;
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

app.post('/posts', (req, res, next) => {
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
    title,
    content,
    author: author === undefined ? 'anonymous' : author,
    createdAt: new Date().toISOString(),
  };
  addToDatabase(post)
    .then(() => {
      io.emit('newPost', { post });
      res.status(201).json(post);
    })
    .catch(next);
});

const server = app.listen(PORT, HOST, () => {
  console.log(`node baseline listening on http://${HOST}:${PORT} (posts stored in memory only)`);
});

const io = require('socket.io')(server);

io.on('connection', () => {
  // The original logs every connection; at 10,000 clients that is only noise.
});

function shutdown() {
  io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
