//! Durable post storage on sled, behind a narrow interface.
//!
//! One writer thread ([`writer`]) owns every insert and every flush, with
//! group commit. Reads go straight to sled. The store is the local
//! [`Publisher`] of a single server, the [`Posts`] every mode reads, and the
//! actors' [`History`] for replay.
//!
//! Keys are post ids as big-endian `u64` (so key order is id order), values
//! the post's JSON exactly as the API serves it.

mod writer;

use crate::feed::post::{NewPost, Stored};
use crate::feed::publish::{Health, Metric, Page, Posts, PublishError, Publisher, StorageError};
use async_trait::async_trait;
use futures::channel::oneshot;
use livefeed_actors::{Delivery, History};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use writer::{WriteRequest, Writer};

/// Requests queued for the writer before callers wait for room.
const QUEUE_DEPTH: usize = 16 * 1024;
/// sled's page cache; posts are small and recent ones are what is read.
const CACHE_BYTES: u64 = 64 << 20;
/// How long `open` retries a locked data directory: sled releases its lock
/// from background threads a moment after a store of this process closes,
/// so reopening at once (a restart in the same process) may find it held.
const LOCK_GRACE: Duration = Duration::from_secs(1);
/// Pause between those retries.
const LOCK_RETRY: Duration = Duration::from_millis(10);

/// What the writer calls with every committed batch, in id order, once it
/// is on disk and before any of its writers is answered.
type Hook = OnceLock<Box<dyn Fn(&[Stored]) + Send + Sync>>;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another livefeed process")]
    Locked(String),
    /// sled failed (disk full, I/O error, corruption).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value is not a post.
    #[error("stored post {id} is unreadable: {source}")]
    Corrupt {
        /// The post's id.
        id: u64,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

/// The file inside a sled 0.34 directory that holds the log.
const SLED_DATA_FILE: &str = "db";

/// The post store.
pub struct Store {
    db: sled::Db,
    posts: sled::Tree,
    writer: async_channel::Sender<WriteRequest>,
    thread: Mutex<Option<JoinHandle<()>>>,
    hook: Arc<Hook>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Arc<Self>, StoreError> {
        let started = Instant::now();
        let db = loop {
            let opened = sled::Config::new()
                .path(dir)
                .cache_capacity(CACHE_BYTES)
                .open();
            match opened {
                Ok(db) => break db,
                Err(e) if is_lock_error(&e) => {
                    if started.elapsed() >= LOCK_GRACE {
                        return Err(StoreError::Locked(dir.display().to_string()));
                    }
                    std::thread::sleep(LOCK_RETRY);
                }
                Err(e) => return Err(StoreError::Sled(e)),
            }
        };
        let posts = db.open_tree("posts")?;
        let next_id = match posts.last()? {
            Some((key, _)) => key_to_id(&key) + 1,
            None => 1,
        };
        let (tx, rx) = async_channel::bounded(QUEUE_DEPTH);
        let data_file = std::fs::File::open(dir.join(SLED_DATA_FILE))
            .map_err(|e| log::warn!("cannot open {SLED_DATA_FILE} for fdatasync: {e}"))
            .ok();
        let hook = Arc::new(Hook::new());
        let writer = Writer {
            db: db.clone(),
            posts: posts.clone(),
            next_id,
            data_file,
            hook: hook.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("livefeed-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        Ok(Arc::new(Self {
            db,
            posts,
            writer: tx,
            thread: Mutex::new(Some(thread)),
            hook,
        }))
    }

    /// Installs the commit hook: called on the writer thread with every
    /// committed batch, in id order, once it is on disk and before any of
    /// its writers is answered (livefeed broadcasts from it, so clients see
    /// posts in id order). Set once, before the first write; a second call
    /// is ignored.
    pub fn on_commit(&self, hook: impl Fn(&[Stored]) + Send + Sync + 'static) {
        if self.hook.set(Box::new(hook)).is_err() {
            log::warn!("store: the commit hook was already set");
        }
    }

    /// Stores a post durably: when this returns `Ok`, the post is flushed
    /// to disk.
    pub async fn create(&self, post: NewPost) -> Result<Stored, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(WriteRequest::Create { post, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Stores posts that already have ids (replicated from the cluster's
    /// log) through the same writer, so they share its flushes and sled is
    /// still flushed from one thread only. When this returns `Ok`, every
    /// post is on disk. Writing a post again replaces it.
    pub async fn apply(&self, posts: Vec<Stored>) -> Result<(), StoreError> {
        if posts.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(WriteRequest::Apply { posts, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The post with `id`, as JSON.
    pub fn get(&self, id: u64) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.posts.get(id.to_be_bytes())?)
    }

    /// Up to `limit` posts with ids below `before` (all when `None`),
    /// newest first.
    pub fn page(&self, before: Option<u64>, limit: usize) -> Result<Page, StoreError> {
        let range = match before {
            Some(before) => self.posts.range(..before.to_be_bytes()),
            None => self.posts.iter(),
        };
        let mut posts = Vec::with_capacity(limit.min(128));
        let mut last_id = None;
        let mut more = false;
        for entry in range.rev() {
            let (key, value) = entry?;
            if posts.len() == limit {
                more = true;
                break;
            }
            last_id = Some(key_to_id(&key));
            posts.push(value.to_vec());
        }
        Ok(Page {
            posts,
            next: if more { last_id } else { None },
        })
    }

    /// The newest post id.
    pub fn last_id(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.posts.last()?.map(|(key, _)| key_to_id(&key)))
    }

    /// Up to `limit` posts with `after < id <= upto`, oldest first.
    pub fn range(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, sled::IVec)>, StoreError> {
        if after >= upto {
            return Ok(Vec::new());
        }
        let from = (after + 1).to_be_bytes();
        let to = upto.to_be_bytes();
        self.posts
            .range(from..=to)
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                Ok((key_to_id(&key), value))
            })
            .collect()
    }

    /// Stops the writer after the creates already queued and flushes.
    pub fn close(&self) -> Result<(), StoreError> {
        self.writer.close();
        let thread = self.thread.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(thread) = thread {
            if thread.join().is_err() {
                log::error!("store writer thread panicked");
            }
        }
        self.db.flush()?;
        Ok(())
    }
}

impl History for Store {
    fn last_id(&self) -> anyhow::Result<Option<u64>> {
        Ok(Store::last_id(self)?)
    }

    fn after(&self, after: u64, upto: u64, limit: usize) -> anyhow::Result<Vec<Arc<Delivery>>> {
        self.range(after, upto, limit)?
            .into_iter()
            .map(|(id, json)| {
                let text = std::str::from_utf8(&json)
                    .map_err(|e| anyhow::anyhow!("stored post {id} is not UTF-8: {e}"))?;
                Ok(Delivery::new(id, text))
            })
            .collect()
    }
}

/// sled reports a held file lock as an I/O error with this text.
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::WouldBlock
            || io.to_string().contains("could not acquire lock"))
}

fn key_to_id(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[8 - n..].copy_from_slice(&key[key.len() - n..]);
    u64::from_be_bytes(bytes)
}

#[async_trait]
impl Publisher for Store {
    async fn create(&self, post: NewPost) -> Result<Stored, PublishError> {
        Store::create(self, post).await.map_err(|e| match e {
            StoreError::Closed => PublishError::Closed,
            e => PublishError::Storage(e.to_string()),
        })
    }

    fn health(&self) -> Health {
        Health {
            ready: true,
            cluster: None,
        }
    }

    fn metrics(&self, _out: &mut Vec<Metric>) {}
}

impl Posts for Store {
    fn get(&self, id: u64) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(Store::get(self, id)?.map(|v| v.to_vec()))
    }

    fn page(&self, before: Option<u64>, limit: usize) -> Result<Page, StorageError> {
        Ok(Store::page(self, before, limit)?)
    }

    fn last_id(&self) -> Result<Option<u64>, StorageError> {
        Ok(Store::last_id(self)?)
    }
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        StorageError(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Post;

    fn new_post(title: &str) -> NewPost {
        NewPost {
            title: title.into(),
            content: "c".into(),
            author: None,
        }
    }

    #[async_std::test]
    async fn ids_increase_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let a = store.create(new_post("a")).await.unwrap();
            let b = store.create(new_post("b")).await.unwrap();
            assert_eq!((a.post.id, b.post.id), (1, 2));
            store.close().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.last_id().unwrap(), Some(2));
        assert_eq!(store.create(new_post("c")).await.unwrap().post.id, 3);
        let page = store.page(None, 2).unwrap();
        assert_eq!(page.posts.len(), 2);
        assert_eq!(page.next, Some(2));
        let older = store.page(page.next, 2).unwrap();
        assert_eq!(older.posts.len(), 1);
        assert_eq!(older.next, None);
        store.close().unwrap();
    }

    #[async_std::test]
    async fn second_open_of_a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _store = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err:?}");
    }

    #[async_std::test]
    async fn concurrent_creates_get_distinct_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                async_std::task::spawn(async move {
                    store
                        .create(new_post(&i.to_string()))
                        .await
                        .unwrap()
                        .post
                        .id
                })
            })
            .collect();
        let mut ids = futures::future::join_all(tasks).await;
        ids.sort_unstable();
        assert_eq!(ids, (1..=200).collect::<Vec<_>>());
        store.close().unwrap();
    }

    #[async_std::test]
    async fn applied_posts_keep_their_ids_and_creates_follow_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let posts: Vec<Stored> = [3u64, 7]
            .iter()
            .map(|&id| {
                let post = Post {
                    id,
                    title: format!("t{id}"),
                    content: "c".into(),
                    author: None,
                    created_at: "2026-01-01T00:00:00.000Z".into(),
                };
                Stored::new(post)
            })
            .collect();
        store.apply(posts.clone()).await.unwrap();
        assert_eq!(store.last_id().unwrap(), Some(7));
        assert_eq!(&*store.get(3).unwrap().unwrap(), posts[0].json.as_bytes());
        assert_eq!(store.create(new_post("next")).await.unwrap().post.id, 8);
        store.close().unwrap();
    }
}
