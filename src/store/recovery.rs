//! What the writer does when a round fails to reach the disk, and how the
//! store gets back to taking writes, in the same process.
//!
//! sled 0.34 fails every write after an I/O error until it is reopened. So
//! when a round fails the writer
//!
//! 1. marks the store failing (`/readyz` 503, `/healthz` says why) and
//!    deletes the reserve (see [`reserve`](super::reserve)), so that the
//!    reopen has room even on a full disk;
//! 2. reopens sled (readers wait meanwhile, see [`shared`](super::shared));
//! 3. looks at what of the round is on disk ([`Writer::reconcile`]). A
//!    sled batch is atomic, so it is all of it or none of it:
//!    - none: its writers get `NotStored` (nothing was stored), and in
//!      single mode its seqs are never given again in this process, so an
//!      id a reader may have glimpsed during the flush never names another
//!      post;
//!    - all of it, and an `fdatasync` of sled's file now succeeds: the
//!      round is durable after all, so it is broadcast and its writers get
//!      their normal answers, as if nothing had failed;
//!    - all of it, but not known to be durable (or the reopen failed, so
//!      nobody can tell yet): its writers get `Uncertain`, and whatever of
//!      it is on disk is broadcast at once (or after the reopen that
//!      finally works), so that reads and push clients agree;
//! 4. refuses every write at once, without touching sled, and retries with
//!    backoff: reopen if the database is not open, then make the reserve
//!    again, with as much room to spare. Once it is back there is room
//!    again: the store takes writes.
//!
//! The seq counter is read back from the reopened store (or kept past
//! burnt seqs), the per-feed counts live in sled itself, and the hub's
//! order holds because only what is on disk is ever broadcast, in seq
//! order, before any later round.

use super::keys::{self, Value};
use super::read::last_seq;
use super::reserve::{self, Room};
use super::shared::{Failing, Stage};
use super::writer::{WriteRequest, Writer};
use super::StoreError;
use crate::feed::change::Change;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// First wait before trying to recover after a failure.
pub(super) const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two attempts: once space is back, writes are
/// taken again within about this long.
pub(super) const RETRY_MAX: Duration = Duration::from_secs(1);

/// A failing store's way back.
#[derive(Debug)]
pub(super) struct Recovery {
    /// When to try next.
    pub(super) next_try: Instant,
    delay: Duration,
    /// The failed round, while the store could not be reopened to see what
    /// of it is on disk.
    pending: Option<Pending>,
}

impl Recovery {
    pub(super) fn new() -> Self {
        Self {
            next_try: Instant::now() + RETRY_MIN,
            delay: RETRY_MIN,
            pending: None,
        }
    }

    fn back_off(&mut self) {
        self.delay = (self.delay * 2).min(RETRY_MAX);
        self.next_try = Instant::now() + self.delay;
    }
}

/// A round that failed: its changes, and (single mode) the seq below
/// which no seq is given again.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) changes: Vec<Change>,
    pub(super) burn_below: Option<u64>,
}

/// What a failed round turned out to be.
#[derive(Debug)]
pub(super) enum Verdict {
    /// On disk and durable: as if it had not failed.
    Stored,
    /// Not on disk; why the round failed (for the log).
    NotStored(String),
    /// Maybe on disk; why the round failed.
    Unknown(String),
}

impl Writer {
    /// The round `pending` (seqs from `first_seq`) failed with `error`:
    /// sends the store into recovery, reopens it and says what became of
    /// the round.
    pub(super) fn fail(&mut self, error: StoreError, first_seq: u64, pending: Pending) -> Verdict {
        let health = &self.shared.health;
        health.failures.fetch_add(1, Ordering::Relaxed);
        health.set_failing(Failing::Writes, &error);
        log::error!(
            "store: writing changes from seq {first_seq} failed; taking no writes until storage recovers: {error}"
        );
        if let Err(e) = reserve::release(&self.shared.dir) {
            log::warn!("store: could not delete the reserve: {e}");
        }
        let mut recovery = Recovery::new();
        let why = error.to_string();
        let verdict = match self.reopen() {
            Ok(()) => match self.reconcile(&pending) {
                Verdict::Unknown(_) => Verdict::Unknown(why),
                Verdict::NotStored(_) => Verdict::NotStored(why),
                Verdict::Stored => Verdict::Stored,
            },
            Err(_) => {
                recovery.pending = Some(pending);
                Verdict::Unknown(why)
            }
        };
        self.recovery = Some(recovery);
        verdict
    }

    /// One attempt to get back to taking writes.
    pub(super) fn try_recover(&mut self) {
        let Some(mut recovery) = self.recovery.take() else {
            return;
        };
        if !self.shared.is_open() {
            if self.reopen().is_err() {
                recovery.back_off();
                self.recovery = Some(recovery);
                return;
            }
            if let Some(pending) = recovery.pending.take() {
                // Its writers were told it may or may not be stored.
                if let Verdict::Stored = self.reconcile(&pending) {
                    self.broadcast(&pending.changes);
                }
            }
        }
        let shared = &self.shared;
        match reserve::make(&shared.dir, shared.reserve, Room::Twice, &shared.faults) {
            Ok(()) => {
                shared.health.set_ok();
                log::info!("store: storage recovered; taking writes again");
            }
            Err(e) => {
                log::debug!("store: no room for the reserve yet: {e}");
                shared
                    .health
                    .set_failing(Failing::Writes, &sled::Error::Io(e).into());
                recovery.back_off();
                self.recovery = Some(recovery);
            }
        }
    }

    /// Drops sled's handles and opens the database again.
    fn reopen(&mut self) -> Result<(), StoreError> {
        let health = &self.shared.health;
        match self.shared.reopen() {
            Ok(()) => {
                health.reopens.fetch_add(1, Ordering::Relaxed);
                health.set_state(Failing::Writes);
                log::info!("store: reopened the database; reads are served from it");
                Ok(())
            }
            Err(e) => {
                health.set_state(Failing::Everything);
                log::warn!("store: reopening the database failed; retrying: {e}");
                Err(e)
            }
        }
    }

    /// Finds out what of the failed round `pending` the reopened store
    /// holds, and sets the seq counter from it. A round found only in part
    /// (a sled batch is atomic, so this would be a sled bug) or not known
    /// to be durable has what is there broadcast here.
    pub(super) fn reconcile(&mut self, pending: &Pending) -> Verdict {
        let faults = self.shared.faults.clone();
        let found = self.shared.read(|handles| {
            let mut present = Vec::new();
            for change in &pending.changes {
                if stored_seq(&handles.tree, change.post_id())? >= Some(change.seq()) {
                    present.push(change.clone());
                }
            }
            let next = last_seq(&handles.tree)?.map_or(1, |seq| seq + 1);
            let synced = present.is_empty()
                || (faults.check(Stage::Sync).is_ok()
                    && handles
                        .data_file
                        .as_ref()
                        .is_none_or(|file| file.sync_data().is_ok()));
            Ok((present, next, synced))
        });
        let (present, next, synced) = match found {
            Ok(found) => found,
            Err(e) => return Verdict::Unknown(e.to_string()),
        };
        self.next_seq = next.max(pending.burn_below.unwrap_or(0));
        let (first, last) = match (pending.changes.first(), pending.changes.last()) {
            (Some(first), Some(last)) => (first.seq(), last.seq()),
            _ => return Verdict::NotStored(String::new()),
        };
        if present.is_empty() {
            log::warn!(
                "store: changes {first}..={last} are not on disk; their writers were told so"
            );
            Verdict::NotStored(String::new())
        } else if present.len() == pending.changes.len() && synced {
            log::warn!(
                "store: changes {first}..={last} reached the disk after all; delivering them"
            );
            Verdict::Stored
        } else {
            log::warn!(
                "store: {} of changes {first}..={last} are on disk, not known to be durable; delivering them",
                present.len()
            );
            self.broadcast(&present);
            Verdict::Unknown(String::new())
        }
    }
}

/// Answers every request of `batch`: the store is failing, nothing is
/// written.
pub(super) fn refuse(batch: &mut Vec<WriteRequest>) {
    for request in batch.drain(..) {
        match request {
            WriteRequest::Create { reply, .. }
            | WriteRequest::Update { reply, .. }
            | WriteRequest::Delete { reply, .. } => {
                reply.send(Err(Err(StoreError::Unavailable))).ok();
            }
            WriteRequest::Apply { reply, .. } => {
                reply.send(Err(StoreError::Unavailable)).ok();
            }
        }
    }
}

/// The seq of post `id`'s latest change on disk (live or deleted).
fn stored_seq(tree: &sled::Tree, id: u64) -> Result<Option<u64>, StoreError> {
    for prefix in [keys::POST, keys::TOMBSTONE] {
        if let Some(bytes) = tree.get(keys::key(prefix, id))? {
            let Value { seq, .. } = keys::parse_value(&bytes).ok_or(StoreError::Corrupt(id))?;
            return Ok(Some(seq));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::super::{Options, Store};
    use super::*;
    use crate::feed::change::{Logged, Stored};
    use crate::feed::name::FeedName;
    use crate::feed::post::NewPost;
    use crate::feed::publish::{PublishError, Publisher};
    use crate::store::{Faults, Stage};
    use std::sync::{Arc, Mutex};

    /// The longest a test waits for the store to change state.
    const WAIT: Duration = Duration::from_secs(20);

    struct Fixture {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        store: Arc<Store>,
        faults: Arc<Faults>,
        /// The seqs the commit hook was called with, in order.
        broadcast: Arc<Mutex<Vec<u64>>>,
    }

    impl Fixture {
        fn open(faults: Faults) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_owned();
            let faults = Arc::new(faults);
            let options = Options {
                reserve: 64 << 10,
                faults: Some(faults.clone()),
            };
            let store = Store::open_with(&path, options).unwrap();
            let broadcast = Arc::new(Mutex::new(Vec::new()));
            let log = broadcast.clone();
            store.on_commit(move |changes| {
                log.lock().unwrap().extend(changes.iter().map(Change::seq));
            });
            Self {
                _dir: dir,
                path,
                store,
                faults,
                broadcast,
            }
        }

        async fn create(&self, title: &str) -> Result<u64, PublishError> {
            let post = NewPost {
                feed: FeedName::main(),
                title: title.into(),
                content: "c".into(),
                author: None,
            };
            self.store
                .create(post, None)
                .await
                .map(|c| c.stored.post.id)
        }

        fn state(&self) -> &'static str {
            self.store.storage_health().state
        }

        /// Waits until the store's state is `state`.
        async fn until(&self, state: &str) {
            let deadline = Instant::now() + WAIT;
            while self.state() != state {
                assert!(Instant::now() < deadline, "still {}", self.state());
                async_std::task::sleep(Duration::from_millis(10)).await;
            }
        }

        fn broadcast(&self) -> Vec<u64> {
            self.broadcast.lock().unwrap().clone()
        }

        fn metric(&self, name: &str) -> u64 {
            let mut out = Vec::new();
            self.store.storage_metrics(&mut out);
            out.iter().find(|m| m.name == name).unwrap().value
        }
    }

    #[async_std::test]
    async fn a_write_that_never_reached_the_disk_is_refused_until_space_is_back() {
        let f = Fixture::open(Faults::default());
        assert_eq!(f.create("a").await.unwrap(), 1);
        assert!(f.path.join(reserve::FILE).exists());

        f.faults.fail(&[Stage::Write, Stage::Reserve]);
        let failed = f.create("b").await;
        assert!(
            matches!(failed, Err(PublishError::StorageUnavailable(_))),
            "{failed:?}"
        );
        let health = f.store.storage_health();
        assert_eq!(
            (health.state, health.reason),
            ("failing", Some("disk_full"))
        );
        assert!(!f.store.health().ready);
        assert!(
            !f.path.join(reserve::FILE).exists(),
            "the reserve made room"
        );
        // Refused at once while failing; reads go on from the reopened store.
        let refused = f.create("c").await;
        assert!(
            matches!(refused, Err(PublishError::StorageUnavailable(_))),
            "{refused:?}"
        );
        assert!(f.store.post(1).unwrap().is_some());
        assert!(f.store.post(2).unwrap().is_none());
        assert_eq!(f.store.head().unwrap().seq, Some(1));
        assert_eq!(f.metric("livefeed_storage_healthy"), 0);

        f.faults.heal();
        f.until("ok").await;
        assert!(f.store.health().ready);
        assert!(f.path.join(reserve::FILE).exists());
        // Seq 2 was taken by the failed write: it names no other post.
        assert_eq!(f.create("d").await.unwrap(), 3);
        assert_eq!(f.broadcast(), vec![1, 3]);
        assert_eq!(f.metric("livefeed_storage_healthy"), 1);
        assert_eq!(f.metric("livefeed_storage_failures_total"), 1);
        assert_eq!(f.metric("livefeed_storage_reopens_total"), 1);

        f.store.close().unwrap();
        let store = Store::open(&f.path).unwrap();
        assert!(store.post(2).unwrap().is_none());
        assert_eq!(store.head().unwrap().post_id, Some(3));
        store.close().unwrap();
    }

    #[async_std::test]
    async fn a_write_on_disk_but_not_known_durable_is_delivered_and_kept() {
        let f = Fixture::open(Faults::default());
        f.create("a").await.unwrap();
        f.faults.fail(&[Stage::Sync, Stage::Reserve]);
        let failed = f.create("b").await;
        assert!(
            matches!(failed, Err(PublishError::Storage(_))),
            "{failed:?}"
        );
        // It is in the reopened store: readers and push clients see it.
        assert!(f.store.post(2).unwrap().is_some());
        assert_eq!(f.broadcast(), vec![1, 2]);
        assert_eq!(f.state(), "failing");

        f.faults.heal();
        f.until("ok").await;
        assert_eq!(f.create("c").await.unwrap(), 3);
        assert_eq!(f.broadcast(), vec![1, 2, 3]);
        f.store.close().unwrap();
        let store = Store::open(&f.path).unwrap();
        assert!(store.post(2).unwrap().is_some());
        store.close().unwrap();
    }

    #[async_std::test]
    async fn a_write_found_durable_after_the_reopen_succeeds() {
        let f = Fixture::open(Faults::default());
        f.faults.fail(&[Stage::Reserve]);
        f.faults.fail_once(&[Stage::Sync]);
        // The sync fails, then works after the reopen: the post is durable.
        assert_eq!(f.create("a").await.unwrap(), 1);
        assert_eq!(f.broadcast(), vec![1]);
        // The store recovers all the same before it takes writes again.
        assert_eq!(f.state(), "failing");
        let refused = f.create("b").await;
        assert!(
            matches!(refused, Err(PublishError::StorageUnavailable(_))),
            "{refused:?}"
        );
        f.faults.heal();
        f.until("ok").await;
        assert_eq!(f.create("c").await.unwrap(), 2);
        f.store.close().unwrap();
    }

    #[async_std::test]
    async fn a_store_that_cannot_be_reopened_serves_no_reads_until_it_can() {
        let f = Fixture::open(Faults::default());
        f.create("a").await.unwrap();
        f.faults.fail(&[Stage::Write, Stage::Open, Stage::Reserve]);
        let failed = f.create("b").await;
        // Nobody can look yet: may or may not be stored.
        assert!(
            matches!(failed, Err(PublishError::Storage(_))),
            "{failed:?}"
        );
        assert_eq!(f.state(), "unavailable");
        assert!(matches!(f.store.post(1), Err(StoreError::Unavailable)));
        assert!(!f.store.health().ready);

        // The open works again, the disk is still full: reads come back.
        f.faults.fail(&[Stage::Reserve]);
        f.until("failing").await;
        assert!(f.store.post(1).unwrap().is_some());
        assert!(f.store.post(2).unwrap().is_none());
        f.faults.heal();
        f.until("ok").await;
        assert_eq!(f.create("c").await.unwrap(), 3);
        assert_eq!(f.broadcast(), vec![1, 3]);
        f.store.close().unwrap();
    }

    #[async_std::test]
    async fn a_store_opened_without_room_for_its_reserve_takes_no_writes() {
        let faults = Faults::default();
        faults.fail(&[Stage::Reserve]);
        let f = Fixture::open(faults);
        assert_eq!(f.state(), "failing");
        let refused = f.create("a").await;
        assert!(
            matches!(refused, Err(PublishError::StorageUnavailable(_))),
            "{refused:?}"
        );
        f.faults.heal();
        f.until("ok").await;
        assert_eq!(f.create("a").await.unwrap(), 1);
        f.store.close().unwrap();
    }

    #[async_std::test]
    async fn replicated_changes_found_on_disk_are_not_applied_twice() {
        let f = Fixture::open(Faults::default());
        let logged = |id: u64| {
            let post = NewPost {
                feed: FeedName::main(),
                title: format!("t{id}"),
                content: "c".into(),
                author: None,
            };
            Logged::Created(Stored::new(post.into_post(id, "x".into()), id))
        };
        f.store.apply(vec![logged(1), logged(2)]).await.unwrap();
        f.faults.fail(&[Stage::Sync, Stage::Reserve]);
        assert!(f.store.apply(vec![logged(3)]).await.is_err());
        assert_eq!(f.broadcast(), vec![1, 2, 3], "on disk: delivered");
        assert!(f.store.apply(vec![logged(3)]).await.is_err(), "refused");
        f.faults.heal();
        f.until("ok").await;
        // The tailer sends 3 again, not knowing it was stored.
        let applied = f.store.apply(vec![logged(3), logged(4)]).await.unwrap();
        assert_eq!(applied.iter().map(Change::seq).collect::<Vec<_>>(), vec![4]);
        assert_eq!(f.broadcast(), vec![1, 2, 3, 4]);
        f.store.close().unwrap();
    }
}
