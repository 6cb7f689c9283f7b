//! Durable post storage on sled, behind a narrow interface.
//!
//! One writer thread ([`writer`]) owns every write and every flush, with
//! group commit. Reads go straight to sled, through the handles the writer
//! may swap ([`shared`]). The store is the local [`Publisher`] of a single
//! server, the [`Posts`] every mode reads, and the actors' [`History`] for
//! replay. [`keys`] describes the key space: current posts, tombstones of
//! deleted ones, and indexes that keep each post's latest change, so a
//! replay is compacted by construction.
//!
//! When the disk fills up (or fails), the writer refuses writes, reopens
//! sled and takes writes again once there is room ([`recovery`], with the
//! headroom of [`reserve`]); reads go on meanwhile.
//!
//! A data dir written before edits and deletes existed (one tree of post
//! JSON by id) is migrated on open.

mod keys;
mod read;
mod recovery;
mod reserve;
mod shared;
mod writer;

pub use shared::{Faults, Stage};

use crate::feed::change::{Change, Logged, Stored};
use crate::feed::idempotency::Idempotency;
use crate::feed::name::{FeedName, DEFAULT_FEED};
use crate::feed::post::{NewPost, Patch, Post};
use crate::feed::publish::{
    Created, Expect, FeedStat, Found, Health, Metric, Page, Posts, PublishError, Publisher,
    StorageError, StorageHealth,
};
use async_trait::async_trait;
use futures::channel::oneshot;
use livefeed_actors::{Delivery, Head, History, Span};
use read::last_seq;
use shared::{Failing, Shared};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use writer::{Outcome, Refusal, WriteRequest, Writer};

/// Requests queued for the writer before callers wait for room.
const QUEUE_DEPTH: usize = 16 * 1024;
/// The tree of the first layout: post JSON by id.
const LEGACY_TREE: &str = "posts";
/// The default `--storage-reserve`: room for sled's recovery on a full
/// disk (it writes a snapshot of about 1 KiB per MiB of data, and may zero
/// the rest of one 512 KiB segment), with a margin.
pub const DEFAULT_RESERVE: u64 = 8 << 20;

/// What the writer calls with every committed batch, in seq order, once
/// it is on disk and before any of its writers is answered.
type Hook = OnceLock<Box<dyn Fn(&[Change]) + Send + Sync>>;

/// What can go wrong in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another livefeed process")]
    Locked(String),
    /// sled failed (disk full, I/O error, corruption).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// The store is failing and takes no writes until it recovers (or
    /// could not be reopened, and serves no reads either); nothing was
    /// stored.
    #[error("the store is failing and takes no writes until it recovers")]
    Unavailable,
    /// A write failed and, the store reopened, is not on disk: nothing was
    /// stored. Why it failed.
    #[error("the write failed and was not stored: {0}")]
    NotStored(String),
    /// A write failed and may or may not be on disk. Why it failed.
    #[error("the write failed and may or may not be stored: {0}")]
    Uncertain(String),
    /// A stored value is not what this version writes.
    #[error("the stored record of post {0} is unreadable")]
    Corrupt(u64),
    /// A stored idempotency key record is not what this version writes.
    #[error("a stored idempotency key record is unreadable")]
    CorruptKey,
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bytes set aside in the data directory (see [`reserve`]); 0 for none.
    pub reserve: u64,
    /// Failures to inject (tests only).
    pub faults: Option<Arc<Faults>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            reserve: DEFAULT_RESERVE,
            faults: None,
        }
    }
}

/// The post store.
pub struct Store {
    shared: Arc<Shared>,
    writer: async_channel::Sender<WriteRequest>,
    thread: Mutex<Option<JoinHandle<()>>>,
    hook: Arc<Hook>,
    /// Expired idempotency records the writer deleted.
    keys_expired: Arc<AtomicU64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Arc<Self>, StoreError> {
        Self::open_with(dir, Options::default())
    }

    /// Opens (or creates) the store in `dir`. Without room for the reserve
    /// it opens failing: reads are served, writes refused until there is.
    pub fn open_with(dir: &Path, options: Options) -> Result<Arc<Self>, StoreError> {
        let faults = options.faults.unwrap_or_default();
        let handles = shared::open(dir, &faults)?;
        migrate(&handles.db, &handles.tree)?;
        let next_seq = last_seq(&handles.tree)?.map_or(1, |seq| seq + 1);
        let shared = Arc::new(Shared::new(dir, handles, options.reserve, faults));
        let (tx, rx) = async_channel::bounded(QUEUE_DEPTH);
        let hook = Arc::new(Hook::new());
        let keys_expired = Arc::new(AtomicU64::new(0));
        let mut writer = Writer {
            shared: shared.clone(),
            next_seq,
            hook: hook.clone(),
            recovery: None,
            keys_expired: keys_expired.clone(),
        };
        if let Err(e) = reserve::make(dir, options.reserve, reserve::Room::Reserve, &shared.faults)
        {
            log::warn!(
                "store: no room for the {}-byte reserve in {}; taking no writes until there is: {e}",
                options.reserve,
                dir.display()
            );
            shared
                .health
                .set_failing(Failing::Writes, &sled::Error::Io(e).into());
            writer.recovery = Some(recovery::Recovery::new());
        }
        let thread = std::thread::Builder::new()
            .name("livefeed-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        Ok(Arc::new(Self {
            shared,
            writer: tx,
            thread: Mutex::new(Some(thread)),
            hook,
            keys_expired,
        }))
    }

    /// Whether the store takes writes, and why not.
    pub fn storage_health(&self) -> StorageHealth {
        self.shared.health.get()
    }

    /// The store's metrics, appended to `out`.
    pub fn storage_metrics(&self, out: &mut Vec<Metric>) {
        let health = &self.shared.health;
        out.extend([
            Metric::gauge(
                "livefeed_storage_healthy",
                "1 while the store takes writes; 0 while it is failing (disk full, I/O error).",
                u64::from(self.storage_health().is_ok()),
            ),
            Metric::counter(
                "livefeed_storage_failures_total",
                "Writes to the disk that failed, each sending the store into recovery.",
                health.failures.load(Ordering::Relaxed),
            ),
            Metric::counter(
                "livefeed_storage_reopens_total",
                "Times the database was reopened after a failure.",
                health.reopens.load(Ordering::Relaxed),
            ),
        ]);
    }

    /// Installs the commit hook: called on the writer thread with every
    /// committed batch of changes, in seq order, once it is on disk and
    /// before any of its writers is answered (livefeed broadcasts from it,
    /// so clients see changes in seq order). Set once, before the first
    /// write; a second call is ignored.
    pub fn on_commit(&self, hook: impl Fn(&[Change]) + Send + Sync + 'static) {
        if self.hook.set(Box::new(hook)).is_err() {
            log::warn!("store: the commit hook was already set");
        }
    }

    async fn write(
        &self,
        request: impl FnOnce(oneshot::Sender<Outcome>) -> WriteRequest,
    ) -> Result<Change, Result<Refusal, StoreError>> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(request(reply))
            .await
            .map_err(|_| Err(StoreError::Closed))?;
        answer.await.map_err(|_| Err(StoreError::Closed))?
    }

    /// Applies changes whose seqs were assigned elsewhere (replicated from
    /// the cluster's log) through the same writer, so they share its
    /// flushes and sled is still flushed from one thread only. When this
    /// returns `Ok`, every change is on disk; it answers what they did.
    pub async fn apply(&self, entries: Vec<Logged>) -> Result<Vec<Change>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(WriteRequest::Apply { entries, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Post `id` as it is now, if it is live.
    pub fn post(&self, id: u64) -> Result<Option<Found>, StoreError> {
        self.shared.read(|h| read::post(&h.tree, id))
    }

    /// Up to `limit` live posts of `feed` with ids below `before` (all when
    /// `None`), newest first.
    pub fn page(&self, feed: &str, before: Option<u64>, limit: usize) -> Result<Page, StoreError> {
        self.shared
            .read(|h| read::page(&h.tree, feed, before, limit))
    }

    /// The newest change's seq and the newest post's id.
    pub fn head(&self) -> Result<Head, StoreError> {
        self.shared.read(|h| read::head(&h.tree))
    }

    /// Every feed with at least one live post: its count and newest post.
    pub fn feeds(&self) -> Result<Vec<FeedStat>, StoreError> {
        self.shared.read(|h| read::feeds(&h.tree))
    }

    /// The replay of `span` for posts of `feeds` (all when `None`; see
    /// [`History::after`]).
    fn replay(
        &self,
        span: Span,
        feeds: Option<&[Arc<str>]>,
    ) -> Result<Vec<Arc<Delivery>>, StoreError> {
        self.shared.read(|h| read::replay(&h.tree, span, feeds))
    }

    /// Stops the writer after the requests already queued and flushes.
    pub fn close(&self) -> Result<(), StoreError> {
        self.writer.close();
        let thread = self.thread.lock().map(|mut t| t.take()).unwrap_or(None);
        if let Some(thread) = thread {
            if thread.join().is_err() {
                log::error!("store writer thread panicked");
            }
        }
        self.shared.close()
    }
}

/// Moves a data dir of the first layout (one tree of post JSON by id,
/// posts never edited) into the current one: each post becomes live in the
/// default feed at the seq of its id. Runs once; the old tree is dropped
/// after the new one is flushed.
fn migrate(db: &sled::Db, tree: &sled::Tree) -> Result<(), StoreError> {
    if !db
        .tree_names()
        .iter()
        .any(|n| &n[..] == LEGACY_TREE.as_bytes())
    {
        return Ok(());
    }
    let legacy = db.open_tree(LEGACY_TREE)?;
    if !legacy.is_empty() && tree.is_empty() {
        let mut count = 0u64;
        let mut batch = sled::Batch::default();
        for entry in legacy.iter() {
            let (key, json) = entry?;
            let id = keys::number(&key);
            let post: Post = serde_json::from_slice(&json).map_err(|_| StoreError::Corrupt(id))?;
            let stored = Stored::new(post, id);
            let feed = DEFAULT_FEED;
            batch.insert(
                &keys::key(keys::POST, id),
                keys::post_value(id, feed, &stored.json),
            );
            batch.insert(keys::feed_key(keys::FEED_POST, feed, id), &[]);
            count += 1;
        }
        batch.insert(keys::count_key(DEFAULT_FEED), &count.to_be_bytes());
        tree.apply_batch(batch)?;
        db.flush()?;
        log::info!("store: migrated {count} posts to the current layout");
    }
    db.drop_tree(LEGACY_TREE)?;
    db.flush()?;
    Ok(())
}

impl History for Store {
    fn head(&self) -> anyhow::Result<Head> {
        Ok(Store::head(self)?)
    }

    fn after(&self, span: Span, feeds: Option<&[Arc<str>]>) -> anyhow::Result<Vec<Arc<Delivery>>> {
        Ok(self.replay(span, feeds)?)
    }
}

fn publish_error(e: Result<Refusal, StoreError>) -> PublishError {
    match e {
        Ok(Refusal::NotFound) => PublishError::NotFound,
        Ok(Refusal::Precondition(current)) => PublishError::Precondition { current },
        Ok(Refusal::KeyReused) => PublishError::KeyReused,
        // Answered as a success by `create`, the only request that gets it.
        Ok(Refusal::Replay(_)) => PublishError::Closed,
        Err(StoreError::Closed) => PublishError::Closed,
        Err(e @ (StoreError::Unavailable | StoreError::NotStored(_))) => {
            PublishError::StorageUnavailable(e.to_string())
        }
        Err(e) => PublishError::Storage(e.to_string()),
    }
}

#[async_trait]
impl Publisher for Store {
    async fn create(
        &self,
        post: NewPost,
        once: Option<&Idempotency>,
    ) -> Result<Created, PublishError> {
        let once = once.cloned();
        let written = self
            .write(|reply| WriteRequest::Create { post, once, reply })
            .await;
        match written {
            Ok(change) => Ok(Created {
                stored: change.stored().cloned().ok_or(PublishError::Closed)?,
                replayed: false,
            }),
            Err(Ok(Refusal::Replay(stored))) => Ok(Created {
                stored: *stored,
                replayed: true,
            }),
            Err(e) => Err(publish_error(e)),
        }
    }

    async fn update(&self, id: u64, patch: Patch, expect: Expect) -> Result<Stored, PublishError> {
        let change = self
            .write(|reply| WriteRequest::Update {
                id,
                patch,
                expect,
                reply,
            })
            .await
            .map_err(publish_error)?;
        change.stored().cloned().ok_or(PublishError::Closed)
    }

    async fn delete(&self, id: u64, expect: Expect) -> Result<u64, PublishError> {
        let change = self
            .write(|reply| WriteRequest::Delete { id, expect, reply })
            .await
            .map_err(publish_error)?;
        Ok(change.seq())
    }

    fn health(&self) -> Health {
        let storage = self.storage_health();
        Health {
            ready: storage.is_ok(),
            storage,
            cluster: None,
        }
    }

    fn metrics(&self, out: &mut Vec<Metric>) {
        self.storage_metrics(out);
        out.push(Metric::counter(
            "livefeed_idempotency_keys_expired_total",
            "Idempotency-Key records deleted after their TTL (a single node; Redis expires a cluster's).",
            self.keys_expired.load(Ordering::Relaxed),
        ));
    }
}

impl Posts for Store {
    fn get(&self, id: u64) -> Result<Option<Found>, StorageError> {
        Ok(self.post(id)?)
    }

    fn page(
        &self,
        feed: &FeedName,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, StorageError> {
        Ok(Store::page(self, feed.as_str(), before, limit)?)
    }

    fn feeds(&self) -> Result<Vec<FeedStat>, StorageError> {
        Ok(Store::feeds(self)?)
    }

    fn head(&self) -> Result<Head, StorageError> {
        Ok(Store::head(self)?)
    }
}

impl From<StoreError> for StorageError {
    fn from(e: StoreError) -> Self {
        StorageError(e.to_string())
    }
}

#[cfg(test)]
mod tests;
