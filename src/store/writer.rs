//! The one thread that writes to sled: assigns seqs, checks edits and
//! deletes against the current state, writes a batch, flushes, calls the
//! commit hook, answers.
//!
//! Requests queue up while a flush runs and the next round takes them all
//! at once, so concurrent clients share fsyncs (group commit), and sled's
//! `flush_async` is never called from several tasks at once (it deadlocks,
//! sled #1308). Within a round, each request sees the effect of the ones
//! before it, so an edit and a delete of one post in the same round are
//! checked in order.
//!
//! A create with an idempotency key looks the key up first (in the round,
//! then in the tree): a live record answers the create without storing
//! anything; otherwise the record goes into the same batch as the post,
//! so one flush makes both durable or neither. Each round also deletes
//! expired records, a bounded number of them.
//!
//! A round that fails to reach the disk sends the store into recovery
//! ([`recovery`](super::recovery)): the writer reopens sled, finds out
//! what of the round is on disk, answers, and refuses every write until
//! the disk has room again.

use super::keys::{self, Digest, KeyRecord, Value};
use super::recovery::{refuse, Pending, Recovery, Verdict};
use super::shared::{Handles, Shared, Stage};
use super::{Hook, StoreError};
use crate::feed::change::{Change, Logged, Stored};
use crate::feed::idempotency::Idempotency;
use crate::feed::post::{timestamp, NewPost, Patch, Post};
use crate::feed::publish::Expect;
use futures::channel::oneshot;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Most requests one flush commits; more wait for the next round.
pub(super) const MAX_BATCH: usize = 1024;
/// Fewest expired idempotency records a round deletes (when there are
/// that many); a round deletes up to twice its own requests if that is
/// more, so records expire faster than they are made.
pub(super) const SWEEP_MIN: usize = 256;

/// Why an edit or a delete was refused; nothing changed.
#[derive(Debug)]
pub(super) enum Refusal {
    /// No such post, or it is deleted.
    NotFound,
    /// `If-Match` did not match: the post's latest seq.
    Precondition(u64),
    /// The create's idempotency key has a live record of the same request:
    /// the post as that create answered it.
    Replay(Box<Stored>),
    /// The create's idempotency key has a live record of another request.
    KeyReused,
}

/// What a write request is answered with.
pub(super) type Outcome = Result<Change, Result<Refusal, StoreError>>;

/// What the writer thread is asked to do; each request is answered after
/// the flush that made it durable.
pub(super) enum WriteRequest {
    /// A new post: the writer assigns its id. With `once`, only if the key
    /// has no live record; the record is written with the post.
    Create {
        post: NewPost,
        once: Option<Idempotency>,
        reply: oneshot::Sender<Outcome>,
    },
    /// An edit of post `id`.
    Update {
        id: u64,
        patch: Patch,
        expect: Expect,
        reply: oneshot::Sender<Outcome>,
    },
    /// A delete of post `id`.
    Delete {
        id: u64,
        expect: Expect,
        reply: oneshot::Sender<Outcome>,
    },
    /// Changes whose seqs were assigned elsewhere (cluster mode: the shared
    /// log), applied in order; answered with the changes they made.
    Apply {
        entries: Vec<Logged>,
        reply: oneshot::Sender<Result<Vec<Change>, StoreError>>,
    },
}

pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) next_seq: u64,
    /// Told of every committed change, in seq order, before anyone is
    /// answered.
    pub(super) hook: Arc<Hook>,
    /// Set while the store is failing: no writes until it recovers.
    pub(super) recovery: Option<Recovery>,
    /// Expired idempotency records deleted so far.
    pub(super) keys_expired: Arc<AtomicU64>,
}

/// Per request of a round: the range of its changes in the round's
/// changes, or why it made none.
type Decided = Result<Range<usize>, Result<Refusal, StoreError>>;

/// A round as written: its changes, each request's part, whether the
/// batch reached the disk, and the expired idempotency records it deleted.
struct Written {
    committed: Vec<Change>,
    outcomes: Vec<Decided>,
    result: Result<(), StoreError>,
    expired: u64,
}

/// A live post as a round sees it.
#[derive(Debug, Clone)]
struct Live {
    feed: String,
    stored: Stored,
}

/// What an idempotency key holds when a create looks it up.
enum Lookup {
    /// A live record: the create is answered with this.
    Refused(Refusal),
    /// No live record (the expired one, if any, is to be replaced).
    Absent(Option<KeyRecord>),
}

/// One round's writes, and the state they leave, for the requests after.
struct Round<'a> {
    tree: &'a sled::Tree,
    writes: sled::Batch,
    /// Posts this round changed: their state now (`None`: deleted).
    touched: HashMap<u64, Option<Live>>,
    /// Live posts gained (or lost) per feed.
    counts: HashMap<String, i64>,
    /// Idempotency records this round wrote.
    keys: HashMap<Digest, KeyRecord>,
    /// The round's time, for idempotency records (ms since the epoch).
    now_ms: u64,
}

impl<'a> Round<'a> {
    fn new(tree: &'a sled::Tree) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            tree,
            writes: sled::Batch::default(),
            touched: HashMap::new(),
            counts: HashMap::new(),
            keys: HashMap::new(),
            now_ms,
        }
    }

    /// The record of `identity` as the round stands, live or expired.
    fn key_record(&self, identity: &Digest) -> Result<Option<KeyRecord>, StoreError> {
        if let Some(record) = self.keys.get(identity) {
            return Ok(Some(record.clone()));
        }
        let Some(bytes) = self.tree.get(keys::idempotency_key(identity))? else {
            return Ok(None);
        };
        let record = KeyRecord::parse(&bytes).ok_or(StoreError::CorruptKey)?;
        Ok(Some(record))
    }

    /// What the key of a create with `once` holds: a live record of the
    /// same request (replay it), of another one (refuse it), or none, maybe
    /// in place of an expired record.
    fn lookup(&self, once: &Idempotency) -> Result<Lookup, StoreError> {
        let record = match self.key_record(&once.identity)? {
            Some(record) if record.expires > self.now_ms => record,
            expired => return Ok(Lookup::Absent(expired)),
        };
        if record.fingerprint != once.fingerprint {
            return Ok(Lookup::Refused(Refusal::KeyReused));
        }
        let corrupt = || StoreError::Corrupt(record.seq);
        let post: Post = serde_json::from_str(&record.json).map_err(|_| corrupt())?;
        Ok(Lookup::Refused(Refusal::Replay(Box::new(Stored {
            post,
            seq: record.seq,
            json: record.json.into(),
        }))))
    }

    /// Writes the record of `once` for the created `stored`, in place of
    /// the `expired` one.
    fn record_key(&mut self, once: &Idempotency, expired: Option<KeyRecord>, stored: &Stored) {
        if let Some(old) = expired {
            self.writes
                .remove(keys::expiry_key(old.expires, &once.identity));
        }
        let ttl = u64::try_from(once.ttl.as_millis()).unwrap_or(u64::MAX);
        let record = KeyRecord {
            expires: self.now_ms.saturating_add(ttl),
            fingerprint: once.fingerprint,
            seq: stored.seq,
            json: stored.json.to_string(),
        };
        self.writes
            .insert(keys::idempotency_key(&once.identity), record.value());
        self.writes
            .insert(keys::expiry_key(record.expires, &once.identity), &[]);
        self.keys.insert(once.identity, record);
    }

    /// Deletes up to `limit` records expired by now (not those this round
    /// wrote); how many.
    fn sweep(&mut self, limit: usize) -> Result<u64, StoreError> {
        let start = keys::key(keys::KEY_EXPIRY, 0).to_vec();
        let end = keys::expiry_key(self.now_ms, &[0xff; 32]);
        let mut deleted = 0;
        for entry in self.tree.range(start..=end).take(limit) {
            let (key, _) = entry?;
            let Some((expires, identity)) = keys::parse_expiry_key(&key) else {
                continue;
            };
            if self.keys.contains_key(&identity) {
                continue;
            }
            self.writes.remove(&*key);
            // The record is deleted with the last index entry that names
            // its expiry.
            let record = self.tree.get(keys::idempotency_key(&identity))?;
            if record
                .and_then(|bytes| KeyRecord::parse(&bytes))
                .map(|r| r.expires)
                == Some(expires)
            {
                self.writes.remove(keys::idempotency_key(&identity));
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// Post `id` as the round stands, if it is live.
    fn live(&self, id: u64) -> Result<Option<Live>, StoreError> {
        if let Some(state) = self.touched.get(&id) {
            return Ok(state.clone());
        }
        let Some(bytes) = self.tree.get(keys::key(keys::POST, id))? else {
            return Ok(None);
        };
        let corrupt = || StoreError::Corrupt(id);
        let Value { seq, feed, rest } = keys::parse_value(&bytes).ok_or_else(corrupt)?;
        let json = std::str::from_utf8(rest).map_err(|_| corrupt())?;
        let post: Post = serde_json::from_str(json).map_err(|_| corrupt())?;
        Ok(Some(Live {
            feed: feed.to_owned(),
            stored: Stored {
                post,
                seq,
                json: json.into(),
            },
        }))
    }

    /// Writes `change` and what it does to every index. A `fresh` change
    /// creates a post under an id this writer just assigned: nothing is
    /// stored under it to look up.
    fn put(&mut self, change: &Change, fresh: bool) -> Result<(), StoreError> {
        let id = change.post_id();
        let seq = change.seq();
        let before = if fresh { None } else { self.live(id)? };
        let feed = change.feed().to_owned();
        if let Some(old) = &before {
            // The post's change entries move to this change (an unedited
            // post has none: removing them does nothing).
            self.writes.remove(&keys::key(keys::CHANGE, old.stored.seq));
            self.writes
                .remove(keys::feed_key(keys::FEED_CHANGE, &feed, old.stored.seq));
        }
        let created = matches!(change, Change::Created(_));
        debug_assert!(!created || id == seq, "a create's seq is its post's id");
        if !created {
            // A create is found by its id, which is its seq (see `keys`).
            self.writes
                .insert(&keys::key(keys::CHANGE, seq), &id.to_be_bytes());
            self.writes.insert(
                keys::feed_key(keys::FEED_CHANGE, &feed, seq),
                &id.to_be_bytes(),
            );
        }
        match change.stored() {
            Some(stored) => {
                let value = keys::post_value(seq, &feed, &stored.json);
                self.writes.insert(&keys::key(keys::POST, id), value);
                if before.is_none() {
                    self.writes
                        .insert(keys::feed_key(keys::FEED_POST, &feed, id), &[]);
                    *self.counts.entry(feed.clone()).or_default() += 1;
                }
                let live = Live {
                    feed,
                    stored: stored.clone(),
                };
                self.touched.insert(id, Some(live));
            }
            None => {
                self.writes.remove(&keys::key(keys::POST, id));
                self.writes.insert(
                    &keys::key(keys::TOMBSTONE, id),
                    keys::tombstone_value(seq, &feed),
                );
                if before.is_some() {
                    self.writes
                        .remove(keys::feed_key(keys::FEED_POST, &feed, id));
                    *self.counts.entry(feed).or_default() -= 1;
                }
                self.touched.insert(id, None);
            }
        }
        Ok(())
    }

    /// Adds the per-feed counts to the batch.
    fn finish(mut self) -> Result<sled::Batch, StoreError> {
        for (feed, delta) in &self.counts {
            let key = keys::count_key(feed);
            let now = self.tree.get(&key)?.map_or(0, |v| keys::number(&v)) as i64;
            match now + delta {
                n if n > 0 => self.writes.insert(key, &(n as u64).to_be_bytes()),
                _ => self.writes.remove(key),
            }
        }
        Ok(self.writes)
    }
}

impl Writer {
    pub(super) fn run(mut self, rx: async_channel::Receiver<WriteRequest>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = match &self.recovery {
                None => rx.recv_blocking().ok(),
                Some(recovery) => {
                    // Failing: wait for a request, or for the next attempt
                    // to recover, whichever comes first.
                    let wait = recovery.next_try.saturating_duration_since(Instant::now());
                    match async_std::task::block_on(async_std::future::timeout(wait, rx.recv())) {
                        Ok(request) => request.ok(),
                        Err(_) => {
                            self.try_recover();
                            continue;
                        }
                    }
                }
            };
            let Some(first) = first else { break }; // closed
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            match &self.recovery {
                None => self.commit(&mut batch),
                Some(recovery) => {
                    let due = recovery.next_try <= Instant::now();
                    refuse(&mut batch);
                    if due {
                        self.try_recover();
                    }
                }
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<WriteRequest>) {
        let shared = self.shared.clone();
        let first_seq = self.next_seq;
        let written = shared
            .read(|handles| Ok(self.write(handles, batch)))
            .unwrap_or_else(|e| Written {
                committed: Vec::new(),
                outcomes: batch.iter().map(|_| Err(Err(e.clone()))).collect(),
                result: Err(e),
                expired: 0,
            });
        let Written {
            committed,
            outcomes,
            result,
            expired,
        } = written;
        let verdict = match result {
            Ok(()) => {
                self.keys_expired.fetch_add(expired, Ordering::Relaxed);
                Verdict::Stored
            }
            Err(error) => {
                let local = batch
                    .iter()
                    .any(|r| !matches!(r, WriteRequest::Apply { .. }));
                let pending = Pending {
                    changes: committed.clone(),
                    // Local seqs the round took are never given again in
                    // this process, whether it is on disk or not.
                    burn_below: local.then_some(self.next_seq),
                };
                self.fail(error, first_seq, pending)
            }
        };
        if let Verdict::Stored = verdict {
            self.broadcast(&committed);
        }
        for (request, outcome) in batch.drain(..).zip(outcomes) {
            let answer = match (&verdict, outcome) {
                (Verdict::Stored, Ok(range)) => Ok(committed[range].to_vec()),
                (Verdict::Stored, Err(why)) => Err(why),
                (Verdict::NotStored(why), _) => Err(Err(StoreError::NotStored(why.clone()))),
                (Verdict::Unknown(why), _) => Err(Err(StoreError::Uncertain(why.clone()))),
            };
            match request {
                WriteRequest::Create { reply, .. }
                | WriteRequest::Update { reply, .. }
                | WriteRequest::Delete { reply, .. } => {
                    // One change per local write.
                    let answer = answer.and_then(|changes| {
                        changes.into_iter().next().ok_or(Err(StoreError::Closed))
                    });
                    reply.send(answer).ok();
                }
                WriteRequest::Apply { reply, .. } => {
                    // A replicated batch refuses nothing: it only fails.
                    let answer = answer.map_err(|e| e.err().unwrap_or(StoreError::Closed));
                    reply.send(answer).ok();
                }
            }
        }
    }

    /// Decides every request of `batch` against the store, writes the
    /// changes as one batch, flushes and syncs.
    fn write(&mut self, handles: &Handles, batch: &[WriteRequest]) -> Written {
        let now = timestamp();
        let faults = self.shared.faults.clone();
        let mut round = Round::new(&handles.tree);
        let mut committed = Vec::with_capacity(batch.len());
        let mut outcomes = Vec::with_capacity(batch.len());
        for request in batch {
            let first = committed.len();
            let outcome = self
                .decide(&mut round, request, &now, &mut committed)
                .map(|()| first..committed.len());
            outcomes.push(outcome);
        }
        let mut expired = 0;
        let result = round
            .sweep(SWEEP_MIN.max(2 * batch.len()))
            .and_then(|n| {
                expired = n;
                round.finish()
            })
            .and_then(|writes| {
                faults.check(Stage::Write).map_err(sled::Error::Io)?;
                Ok(handles.tree.apply_batch(writes)?)
            })
            .and_then(|()| Ok(handles.db.flush().map(drop)?))
            .and_then(|()| {
                faults.check(Stage::Sync).map_err(sled::Error::Io)?;
                match &handles.data_file {
                    Some(file) => Ok(file.sync_data().map_err(sled::Error::Io)?),
                    None => Ok(()),
                }
            });
        Written {
            committed,
            outcomes,
            result,
            expired,
        }
    }

    /// Hands committed changes to the commit hook, in seq order.
    pub(super) fn broadcast(&self, committed: &[Change]) {
        if let Some(hook) = self.hook.get() {
            hook(committed);
        }
    }

    /// Makes the changes `request` asks for, given the round so far, and
    /// adds them to `committed` and the round.
    fn decide(
        &mut self,
        round: &mut Round<'_>,
        request: &WriteRequest,
        now: &str,
        committed: &mut Vec<Change>,
    ) -> Result<(), Result<Refusal, StoreError>> {
        let checked = |round: &Round<'_>, id: u64, expect: &Expect| {
            let live = round.live(id).map_err(Err)?.ok_or(Ok(Refusal::NotFound))?;
            if expect.allows(live.stored.seq) {
                Ok(live)
            } else {
                Err(Ok(Refusal::Precondition(live.stored.seq)))
            }
        };
        let mut put = |round: &mut Round<'_>, change: Change, fresh: bool| {
            round.put(&change, fresh).map_err(Err)?;
            committed.push(change);
            Ok(())
        };
        match request {
            WriteRequest::Create { post, once, .. } => {
                let expired = match once {
                    Some(once) => match round.lookup(once).map_err(Err)? {
                        Lookup::Refused(refusal) => return Err(Ok(refusal)),
                        Lookup::Absent(expired) => expired,
                    },
                    None => None,
                };
                let seq = self.take_seq();
                let post = post.clone().into_post(seq, now.to_owned());
                let stored = Stored::new(post, seq);
                put(round, Change::Created(stored.clone()), true)?;
                // After the post: nothing past this point fails, so the
                // record is written exactly when the post is.
                if let Some(once) = once {
                    round.record_key(once, expired, &stored);
                }
                Ok(())
            }
            WriteRequest::Update {
                id, patch, expect, ..
            } => {
                let live = checked(round, *id, expect)?;
                let seq = self.take_seq();
                let post = patch.apply(&live.stored.post, now.to_owned());
                put(round, Change::Updated(Stored::new(post, seq)), false)
            }
            WriteRequest::Delete { id, expect, .. } => {
                let live = checked(round, *id, expect)?;
                let seq = self.take_seq();
                let feed = live.feed;
                put(round, Change::Deleted { id: *id, seq, feed }, false)
            }
            WriteRequest::Apply { entries, .. } => {
                for entry in entries {
                    if entry.seq() < self.next_seq {
                        // Already here: stored by a round whose answer was
                        // a storage failure, found on disk at the reopen.
                        continue;
                    }
                    self.next_seq = entry.seq() + 1;
                    let change = match entry {
                        Logged::Created(stored) => Change::Created(stored.clone()),
                        Logged::Updated { seq, id, patch, at } => {
                            let Some(live) = round.live(*id).map_err(Err)? else {
                                log::error!("store: change {seq} edits post {id}, which is not here; skipped");
                                continue;
                            };
                            let post = patch.apply(&live.stored.post, at.clone());
                            Change::Updated(Stored::new(post, *seq))
                        }
                        Logged::Deleted { seq, id } => {
                            let Some(live) = round.live(*id).map_err(Err)? else {
                                log::error!("store: change {seq} deletes post {id}, which is not here; skipped");
                                continue;
                            };
                            let feed = live.feed;
                            Change::Deleted {
                                id: *id,
                                seq: *seq,
                                feed,
                            }
                        }
                    };
                    put(round, change, false)?;
                }
                Ok(())
            }
        }
    }

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }
}
