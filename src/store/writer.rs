//! The one thread that writes to sled: assigns ids, inserts a batch,
//! flushes, calls the commit hook, answers.
//!
//! Creates (and, in cluster mode, posts replicated from the shared log)
//! queue up while a flush runs and the next round takes them all at once,
//! so concurrent clients share fsyncs (group commit), and sled's
//! `flush_async` is never called from several tasks at once (it deadlocks,
//! sled #1308).

use super::{Hook, StoreError};
use crate::feed::post::{timestamp, NewPost, Stored};
use futures::channel::oneshot;
use std::sync::Arc;

/// Most requests one flush commits; more wait for the next round.
pub(super) const MAX_BATCH: usize = 1024;

/// What the writer thread is asked to do; each request is answered after
/// the flush that made it durable.
pub(super) enum WriteRequest {
    /// A new post: the writer assigns its id.
    Create {
        post: NewPost,
        reply: oneshot::Sender<Result<Stored, StoreError>>,
    },
    /// Posts whose ids were assigned elsewhere (cluster mode: the shared
    /// log), written as they are, in order.
    Apply {
        posts: Vec<Stored>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

pub(super) struct Writer {
    pub(super) db: sled::Db,
    pub(super) posts: sled::Tree,
    pub(super) next_id: u64,
    /// sled's data file. sled 0.34's flush ends with `sync_file_range`,
    /// which neither forces the drive's cache nor the file's size to disk;
    /// an `fdatasync` of this file after each flush does, so a 201 also
    /// survives a power loss, not only a killed process.
    pub(super) data_file: Option<std::fs::File>,
    /// Told of every committed post, in id order, before anyone is
    /// answered.
    pub(super) hook: Arc<Hook>,
}

impl Writer {
    pub(super) fn run(mut self, rx: async_channel::Receiver<WriteRequest>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = rx.recv_blocking() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
        }
    }

    fn commit(&mut self, batch: &mut Vec<WriteRequest>) {
        let created_at = timestamp();
        let mut writes = sled::Batch::default();
        // Every post of the batch in commit order, and for each create the
        // index of its post there.
        let mut committed = Vec::with_capacity(batch.len());
        let mut created = Vec::with_capacity(batch.len());
        for request in batch.iter() {
            match request {
                WriteRequest::Create { post, .. } => {
                    let stored = Stored::stamp(self.next_id, post.clone(), created_at.clone());
                    self.next_id += 1;
                    writes.insert(&stored.post.id.to_be_bytes(), stored.json.as_bytes());
                    created.push(committed.len());
                    committed.push(stored);
                }
                WriteRequest::Apply { posts, .. } => {
                    for stored in posts {
                        writes.insert(&stored.post.id.to_be_bytes(), stored.json.as_bytes());
                        self.next_id = self.next_id.max(stored.post.id + 1);
                        committed.push(stored.clone());
                    }
                }
            }
        }
        let result = self
            .posts
            .apply_batch(writes)
            .and_then(|()| self.db.flush().map(drop))
            .and_then(|()| match &self.data_file {
                Some(file) => file.sync_data().map_err(sled::Error::Io),
                None => Ok(()),
            });
        if result.is_ok() {
            if let Some(hook) = self.hook.get() {
                hook(&committed);
            }
        }
        let mut created = created.into_iter();
        for request in batch.drain(..) {
            match request {
                WriteRequest::Create { reply, .. } => {
                    // One post was committed per create, in order.
                    let index = created.next().expect("a post per create");
                    let answer = match &result {
                        Ok(()) => Ok(committed[index].clone()),
                        Err(e) => Err(StoreError::Sled(e.clone())),
                    };
                    reply.send(answer).ok();
                }
                WriteRequest::Apply { reply, .. } => {
                    let answer = result.clone().map_err(StoreError::Sled);
                    reply.send(answer).ok();
                }
            }
        }
    }
}
