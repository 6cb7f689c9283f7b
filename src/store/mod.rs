//! Durable post storage on sled, behind a narrow interface.
//!
//! One writer thread ([`writer`]) owns every write and every flush, with
//! group commit. Reads go straight to sled. The store is the local
//! [`Publisher`] of a single server, the [`Posts`] every mode reads, and the
//! actors' [`History`] for replay. [`keys`] describes the key space:
//! current posts, tombstones of deleted ones, and indexes that keep each
//! post's latest change, so a replay is compacted by construction.
//!
//! A data dir written before edits and deletes existed (one tree of post
//! JSON by id) is migrated on open.

mod keys;
mod writer;

use crate::feed::change::{Change, Logged, Stored};
use crate::feed::idempotency::Idempotency;
use crate::feed::name::{FeedName, DEFAULT_FEED};
use crate::feed::post::{NewPost, Patch, Post};
use crate::feed::publish::{
    Created, Expect, FeedStat, Found, Health, Metric, Page, Posts, PublishError, Publisher,
    StorageError,
};
use crate::feed::wire;
use async_trait::async_trait;
use futures::channel::oneshot;
use keys::Value;
use livefeed_actors::{replayed, Delivery, Head, History, Span};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use writer::{Outcome, Refusal, WriteRequest, Writer};

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
/// The tree holding everything (see [`keys`]).
const TREE: &str = "feed";
/// The tree of the first layout: post JSON by id.
const LEGACY_TREE: &str = "posts";
/// The file inside a sled 0.34 directory that holds the log.
const SLED_DATA_FILE: &str = "db";

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

/// The post store.
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
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
        let tree = db.open_tree(TREE)?;
        migrate(&db, &tree)?;
        let next_seq = last_number(&tree, keys::CHANGE)?.map_or(1, |seq| seq + 1);
        let (tx, rx) = async_channel::bounded(QUEUE_DEPTH);
        let data_file = std::fs::File::open(dir.join(SLED_DATA_FILE))
            .map_err(|e| log::warn!("cannot open {SLED_DATA_FILE} for fdatasync: {e}"))
            .ok();
        let hook = Arc::new(Hook::new());
        let keys_expired = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            db: db.clone(),
            tree: tree.clone(),
            next_seq,
            data_file,
            hook: hook.clone(),
            keys_expired: keys_expired.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("livefeed-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        Ok(Arc::new(Self {
            db,
            tree,
            writer: tx,
            thread: Mutex::new(Some(thread)),
            hook,
            keys_expired,
        }))
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
        let Some(bytes) = self.tree.get(keys::key(keys::POST, id))? else {
            return Ok(None);
        };
        let Value { seq, feed, rest } = keys::parse_value(&bytes).ok_or(StoreError::Corrupt(id))?;
        Ok(Some(Found {
            seq,
            feed: feed.to_owned(),
            json: rest.to_vec(),
        }))
    }

    /// Up to `limit` live posts of `feed` with ids below `before` (all when
    /// `None`), newest first.
    pub fn page(&self, feed: &str, before: Option<u64>, limit: usize) -> Result<Page, StoreError> {
        let start = keys::feed_prefix(keys::FEED_POST, feed);
        let end = keys::feed_key(keys::FEED_POST, feed, before.unwrap_or(u64::MAX));
        let mut posts = Vec::with_capacity(limit.min(128));
        let mut last_id = None;
        let mut more = false;
        for entry in self.tree.range(start..end).rev() {
            let (key, _) = entry?;
            let id = keys::number(&key);
            if posts.len() == limit {
                more = true;
                break;
            }
            let Some(found) = self.post(id)? else {
                continue; // deleted since the index was read
            };
            last_id = Some(id);
            posts.push(found.json);
        }
        Ok(Page {
            posts,
            next: if more { last_id } else { None },
        })
    }

    /// The newest change's seq and the newest post's id.
    pub fn head(&self) -> Result<Head, StoreError> {
        let live = last_number(&self.tree, keys::POST)?;
        let gone = last_number(&self.tree, keys::TOMBSTONE)?;
        Ok(Head {
            seq: last_number(&self.tree, keys::CHANGE)?,
            post_id: live.max(gone),
        })
    }

    /// Every feed with at least one live post: its count and newest post.
    pub fn feeds(&self) -> Result<Vec<FeedStat>, StoreError> {
        let mut out = Vec::new();
        for entry in self.tree.scan_prefix([keys::FEED_COUNT]) {
            let (key, value) = entry?;
            let name = String::from_utf8_lossy(&key[1..]).into_owned();
            let prefix = keys::feed_prefix(keys::FEED_POST, &name);
            let last = self.tree.scan_prefix(&prefix).next_back().transpose()?;
            out.push(FeedStat {
                posts: keys::number(&value),
                last_post_id: last.map(|(key, _)| keys::number(&key)),
                name,
            });
        }
        Ok(out)
    }

    /// The replay of `span` for posts of `feeds` (all when `None`; see
    /// [`History::after`]): the latest-change index of each feed, merged in
    /// seq order.
    fn replay(
        &self,
        span: Span,
        feeds: Option<&[Arc<str>]>,
    ) -> Result<Vec<Arc<Delivery>>, StoreError> {
        let mut out = Vec::new();
        if span.from >= span.upto {
            return Ok(out);
        }
        let indexes: Vec<sled::Iter> = match feeds {
            None => {
                let range =
                    keys::key(keys::CHANGE, span.from + 1)..=keys::key(keys::CHANGE, span.upto);
                vec![self.tree.range(range)]
            }
            Some(feeds) => feeds
                .iter()
                .map(|feed| {
                    let from = keys::feed_key(keys::FEED_CHANGE, feed, span.from + 1);
                    let upto = keys::feed_key(keys::FEED_CHANGE, feed, span.upto);
                    self.tree.range(from..=upto)
                })
                .collect(),
        };
        let mut merged = Merged::new(indexes)?;
        while let Some((seq, id)) = merged.next()? {
            if out.len() == span.limit {
                break;
            }
            if let Some(found) = self.post(id)? {
                // A post changed again since the index was read is left to
                // its later entry (past `upto`, it arrives live).
                if found.seq == seq {
                    if let Some(kind) = replayed(id, false, span.since) {
                        let json = std::str::from_utf8(&found.json)
                            .map_err(|_| StoreError::Corrupt(id))?;
                        let data = wire::post_data(json, seq);
                        let feed = found.feed.as_str().into();
                        out.push(Delivery::new(seq, id, feed, kind, data));
                    }
                }
            } else if let Some(bytes) = self.tree.get(keys::key(keys::TOMBSTONE, id))? {
                let gone = keys::parse_value(&bytes).ok_or(StoreError::Corrupt(id))?;
                if gone.seq == seq {
                    if let Some(kind) = replayed(id, true, span.since) {
                        let data = wire::deleted_data(id, seq);
                        out.push(Delivery::new(seq, id, gone.feed.into(), kind, data));
                    }
                }
            }
        }
        Ok(out)
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
        self.db.flush()?;
        Ok(())
    }
}

/// Several seq-ordered indexes (`seq -> post id`), read as one, in seq
/// order.
struct Merged {
    heads: Vec<(Option<(u64, u64)>, sled::Iter)>,
}

impl Merged {
    fn new(indexes: Vec<sled::Iter>) -> Result<Self, StoreError> {
        let mut heads = Vec::with_capacity(indexes.len());
        for mut index in indexes {
            let head = Self::read(&mut index)?;
            heads.push((head, index));
        }
        Ok(Self { heads })
    }

    fn read(index: &mut sled::Iter) -> Result<Option<(u64, u64)>, StoreError> {
        Ok(index
            .next()
            .transpose()?
            .map(|(key, value)| (keys::number(&key), keys::number(&value))))
    }

    /// The entry with the lowest seq among the indexes' next ones.
    fn next(&mut self) -> Result<Option<(u64, u64)>, StoreError> {
        let lowest = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, (head, _))| head.map(|h| (h, i)))
            .min();
        let Some((entry, i)) = lowest else {
            return Ok(None);
        };
        let (head, index) = &mut self.heads[i];
        *head = Self::read(index)?;
        Ok(Some(entry))
    }
}

/// The number in the last key with `prefix`.
fn last_number(tree: &sled::Tree, prefix: u8) -> Result<Option<u64>, StoreError> {
    let last = tree
        .range(keys::key(prefix, 0)..=keys::key(prefix, u64::MAX))
        .next_back();
    Ok(last.transpose()?.map(|(key, _)| keys::number(&key)))
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
            batch.insert(&keys::key(keys::CHANGE, id), &id.to_be_bytes());
            batch.insert(keys::feed_key(keys::FEED_POST, feed, id), &[]);
            batch.insert(
                keys::feed_key(keys::FEED_CHANGE, feed, id),
                &id.to_be_bytes(),
            );
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

/// sled reports a held file lock as an I/O error with this text.
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::WouldBlock
            || io.to_string().contains("could not acquire lock"))
}

fn publish_error(e: Result<Refusal, StoreError>) -> PublishError {
    match e {
        Ok(Refusal::NotFound) => PublishError::NotFound,
        Ok(Refusal::Precondition(current)) => PublishError::Precondition { current },
        Ok(Refusal::KeyReused) => PublishError::KeyReused,
        // Answered as a success by `create`, the only request that gets it.
        Ok(Refusal::Replay(_)) => PublishError::Closed,
        Err(StoreError::Closed) => PublishError::Closed,
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
        Health {
            ready: true,
            cluster: None,
        }
    }

    fn metrics(&self, out: &mut Vec<Metric>) {
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
mod tests {
    use super::*;

    fn new_post(title: &str) -> NewPost {
        NewPost {
            feed: FeedName::main(),
            title: title.into(),
            content: "c".into(),
            author: None,
        }
    }

    impl Store {
        /// A create without an idempotency key: its post.
        async fn create_post(&self, post: NewPost) -> Result<Stored, PublishError> {
            Ok(self.create(post, None).await?.stored)
        }
    }

    fn titled(title: &str) -> Patch {
        Patch {
            title: Some(title.into()),
            ..Patch::default()
        }
    }

    #[async_std::test]
    async fn ids_increase_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let a = store.create_post(new_post("a")).await.unwrap();
            let b = store.create_post(new_post("b")).await.unwrap();
            assert_eq!((a.post.id, b.post.id), (1, 2));
            store.close().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.head().unwrap().post_id, Some(2));
        assert_eq!(store.create_post(new_post("c")).await.unwrap().post.id, 3);
        let page = Store::page(&store, DEFAULT_FEED, None, 2).unwrap();
        assert_eq!(page.posts.len(), 2);
        assert_eq!(page.next, Some(2));
        let older = Store::page(&store, DEFAULT_FEED, page.next, 2).unwrap();
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
                        .create_post(new_post(&i.to_string()))
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
    async fn applied_changes_keep_their_seqs_and_creates_follow_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stored: Vec<Stored> = [3u64, 7]
            .iter()
            .map(|&id| Stored::new(new_post(&format!("t{id}")).into_post(id, "x".into()), id))
            .collect();
        let changes = stored.iter().cloned().map(Logged::Created).collect();
        store.apply(changes).await.unwrap();
        assert_eq!(store.head().unwrap().seq, Some(7));
        assert_eq!(
            store.post(3).unwrap().unwrap().json,
            stored[0].json.as_bytes()
        );
        assert_eq!(
            store.create_post(new_post("next")).await.unwrap().post.id,
            8
        );
        store.close().unwrap();
    }

    #[async_std::test]
    async fn edits_and_deletes_take_seqs_and_check_the_current_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.create_post(new_post("a")).await.unwrap();
        let b = store.create_post(new_post("b")).await.unwrap();
        let edited = store
            .update(a.post.id, titled("A"), Expect::Live)
            .await
            .unwrap();
        assert_eq!((edited.seq, edited.post.title.as_str()), (3, "A"));
        assert!(edited.post.updated_at.is_some());
        // An If-Match on the old seq is refused, and changes nothing.
        let stale = store
            .update(a.post.id, titled("x"), Expect::Seqs(vec![1]))
            .await;
        assert!(matches!(
            stale,
            Err(PublishError::Precondition { current: 3 })
        ));
        assert_eq!(
            store
                .delete(b.post.id, Expect::Seqs(vec![2]))
                .await
                .unwrap(),
            4
        );
        assert!(matches!(
            store.delete(b.post.id, Expect::Live).await,
            Err(PublishError::NotFound)
        ));
        assert!(matches!(
            store.update(b.post.id, titled("x"), Expect::Live).await,
            Err(PublishError::NotFound)
        ));
        assert!(store.post(b.post.id).unwrap().is_none());
        assert_eq!(
            Store::page(&store, DEFAULT_FEED, None, 10)
                .unwrap()
                .posts
                .len(),
            1
        );
        assert_eq!(
            store.head().unwrap(),
            Head {
                seq: Some(4),
                post_id: Some(2)
            }
        );
        // Replay from 0: post 1 once, as new, at its edit; post 2 (created
        // and deleted since) left out. From 2: post 1 edited, 2 deleted.
        let span = |since| Span {
            since,
            from: since,
            upto: 4,
            limit: 100,
        };
        let kinds = |since| {
            store
                .replay(span(since), None)
                .unwrap()
                .iter()
                .map(|d| (d.seq, d.kind))
                .collect::<Vec<_>>()
        };
        use livefeed_actors::Kind;
        assert_eq!(kinds(0), vec![(3, Kind::Created)]);
        assert_eq!(kinds(2), vec![(3, Kind::Updated), (4, Kind::Deleted)]);
        store.close().unwrap();
        drop(store);
        // All of it survives a restart.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.head().unwrap().seq, Some(4));
        assert_eq!(store.create_post(new_post("c")).await.unwrap().post.id, 5);
        store.close().unwrap();
    }

    #[async_std::test]
    async fn one_round_checks_its_requests_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.create_post(new_post("a")).await.unwrap();
        // Queued together: the edit sees the create's seq, the delete the
        // edit's, the second delete finds nothing.
        let (e, d1, d2) = futures::join!(
            store.update(a.post.id, titled("A"), Expect::Seqs(vec![1])),
            store.delete(a.post.id, Expect::Seqs(vec![2])),
            store.delete(a.post.id, Expect::Live),
        );
        assert_eq!(e.unwrap().seq, 2);
        assert_eq!(d1.unwrap(), 3);
        assert!(matches!(d2, Err(PublishError::NotFound)));
        store.close().unwrap();
    }

    #[async_std::test]
    async fn feeds_keep_their_own_pages_counts_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let in_feed = |feed: &str, title: &str| NewPost {
            feed: FeedName::parse(feed).unwrap(),
            ..new_post(title)
        };
        for (feed, title) in [
            ("a", "a1"),
            ("b", "b1"),
            ("a", "a2"),
            ("c", "c1"),
            ("b", "b2"),
        ] {
            store.create_post(in_feed(feed, title)).await.unwrap();
        }
        store.update(2, titled("B1"), Expect::Live).await.unwrap(); // 6
        store.delete(1, Expect::Live).await.unwrap(); // 7
        let titles = |feed: &str| -> Vec<String> {
            let page = Store::page(&store, feed, None, 10).unwrap();
            page.posts
                .iter()
                .map(|json| serde_json::from_slice::<Post>(json).unwrap().title)
                .collect()
        };
        assert_eq!(titles("a"), vec!["a2"]);
        assert_eq!(titles("b"), vec!["b2", "B1"]);
        assert!(titles("nothing").is_empty());
        let stats = store.feeds().unwrap();
        let counts: Vec<_> = stats
            .iter()
            .map(|f| (f.name.as_str(), f.posts, f.last_post_id))
            .collect();
        assert_eq!(
            counts,
            vec![("a", 1, Some(3)), ("b", 2, Some(5)), ("c", 1, Some(4))]
        );
        // Replay of feeds a and b from 0: merged in seq order, compacted,
        // nothing of c.
        let span = Span {
            since: 0,
            from: 0,
            upto: 7,
            limit: 100,
        };
        let feeds: Vec<Arc<str>> = vec!["a".into(), "b".into()];
        let got: Vec<_> = store
            .replay(span, Some(&feeds))
            .unwrap()
            .iter()
            .map(|d| (d.seq, d.post_id, d.feed.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![(3, 3, "a".into()), (5, 5, "b".into()), (6, 2, "b".into())]
        );
        // From 2 the delete of post 1 (feed a) is replayed to a's readers.
        let span = Span {
            since: 2,
            from: 2,
            upto: 7,
            limit: 100,
        };
        let a: Vec<Arc<str>> = vec!["a".into()];
        let got: Vec<_> = store
            .replay(span, Some(&a))
            .unwrap()
            .iter()
            .map(|d| (d.seq, d.kind))
            .collect();
        use livefeed_actors::Kind;
        assert_eq!(got, vec![(3, Kind::Created), (7, Kind::Deleted)]);
        store.close().unwrap();
    }

    fn once(key: &str, body: &str, ttl: Duration) -> Idempotency {
        use crate::feed::idempotency::{Key, Keyed};
        let keyed = Keyed {
            key: Key::parse(key).unwrap(),
            route: "/posts".into(),
        };
        let body = serde_json::from_str(body).unwrap();
        Idempotency::new(&crate::feed::access::Grant::Anonymous, &keyed, &body, ttl)
    }

    /// The idempotency records in the tree: `K` and `E` entries.
    fn key_entries(store: &Store) -> (usize, usize) {
        let count = |prefix| store.tree.scan_prefix([prefix]).count();
        (count(keys::IDEMPOTENCY), count(keys::KEY_EXPIRY))
    }

    #[async_std::test]
    async fn a_keyed_create_is_stored_once_and_its_answer_kept() {
        let dir = tempfile::tempdir().unwrap();
        let day = Duration::from_secs(86_400);
        let first = once("k", r#"{"title":"a","content":"c"}"#, day);
        let other = once("k", r#"{"title":"b","content":"c"}"#, day);
        {
            let store = Store::open(dir.path()).unwrap();
            // Three at once with one key (one round, or rounds in a row):
            // one post, the others its replays; another body is refused.
            let (a, b, c) = futures::join!(
                store.create(new_post("a"), Some(&first)),
                store.create(new_post("a"), Some(&first)),
                store.create(new_post("b"), Some(&other)),
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a.stored, b.stored);
            assert_eq!([a.replayed, b.replayed], [false, true]);
            assert!(matches!(c, Err(PublishError::KeyReused)), "{c:?}");
            assert_eq!(store.head().unwrap().seq, Some(1));
            // An edit does not change what a replay answers.
            store.update(1, titled("A"), Expect::Live).await.unwrap();
            store.close().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let again = store.create(new_post("a"), Some(&first)).await.unwrap();
        assert!(again.replayed);
        assert_eq!(again.stored.post.title, "a");
        assert_eq!((again.stored.seq, again.stored.post.updated_at), (1, None));
        assert_eq!(store.head().unwrap().seq, Some(2));
        assert_eq!(key_entries(&store), (1, 1));
        store.close().unwrap();
    }

    #[async_std::test]
    async fn expired_keys_are_forgotten_and_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Expired as soon as its round is over.
        let gone = once("k", r#"{"title":"a","content":"c"}"#, Duration::ZERO);
        let made = store.create(new_post("a"), Some(&gone)).await.unwrap();
        assert_eq!(key_entries(&store), (1, 1));
        // The key is free again: a new post, a new record in place of the
        // old one (whose expiry entry goes with it).
        let fresh = store.create(new_post("a"), Some(&gone)).await.unwrap();
        assert!(!fresh.replayed);
        assert_ne!(fresh.stored.post.id, made.stored.post.id);
        assert_eq!(key_entries(&store), (1, 1));
        // The next round (any write) deletes the expired record.
        store.create_post(new_post("x")).await.unwrap();
        assert_eq!(key_entries(&store), (0, 0));
        assert_eq!(store.keys_expired.load(Ordering::Relaxed), 1);
        // A live key is kept by the sweep.
        let kept = once(
            "k2",
            r#"{"title":"a","content":"c"}"#,
            Duration::from_secs(60),
        );
        store.create(new_post("a"), Some(&kept)).await.unwrap();
        store.create_post(new_post("y")).await.unwrap();
        assert_eq!(key_entries(&store), (1, 1));
        store.close().unwrap();
    }

    #[test]
    fn a_data_dir_of_the_first_layout_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let legacy = db.open_tree(LEGACY_TREE).unwrap();
            for id in [1u64, 2] {
                let json = format!(
                    r#"{{"id":{id},"title":"t","content":"c","author":null,"createdAt":"2026-01-01T00:00:00.000Z"}}"#
                );
                legacy.insert(id.to_be_bytes(), json.as_bytes()).unwrap();
            }
            db.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let found = store.post(2).unwrap().unwrap();
        assert_eq!(found.seq, 2);
        let post: serde_json::Value = serde_json::from_slice(&found.json).unwrap();
        assert_eq!(post["updatedAt"], serde_json::Value::Null);
        assert_eq!(store.head().unwrap().seq, Some(2));
        store.close().unwrap();
    }
}
