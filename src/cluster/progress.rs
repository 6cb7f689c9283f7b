//! Where this node's replica stands: applied and head seqs, readiness,
//! divergence, and the writes waiting for their change to be applied.

use crate::feed::change::Change;
use crate::feed::publish::ClusterHealth;
use futures::channel::oneshot;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Where this node's replica stands, shared by the tailer, the create
/// route, `/healthz`, `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct Progress {
    /// Newest stream entry applied to the local store and broadcast.
    pub applied: AtomicU64,
    /// Newest entry known to be in the stream.
    pub head: AtomicU64,
    /// Whether the replica has caught up with the stream head seen when the
    /// node started. Stays set afterwards, unless the local store fails:
    /// then it is set again once the replica caught up after recovering.
    pub ready: AtomicBool,
    /// Whether the tailer's connection to Redis is up.
    pub connected: AtomicBool,
    /// Failed Redis commands and connections (tailer and creates).
    pub redis_errors: AtomicU64,
    /// Stream entries that were not a post and were skipped.
    pub bad_entries: AtomicU64,
    /// Why the replica is refused, when it does not match the log.
    diverged: Mutex<Option<String>>,
    /// Writes waiting for their change to be applied, by seq.
    waiters: Mutex<BTreeMap<u64, Vec<oneshot::Sender<()>>>>,
    /// The latest edits applied, by seq (at most [`RECENT_EDITS`]): what
    /// an edit's answer shows.
    recent: Mutex<BTreeMap<u64, Change>>,
}

/// How many applied edits [`Progress`] keeps for the writes waiting on
/// them; one that is gone before its writer looks is read from the store
/// instead.
pub const RECENT_EDITS: usize = 1024;

impl Progress {
    /// Records that every entry up to `id` is applied, `changes` among
    /// them, and wakes the writes waiting for them.
    pub fn set_applied(&self, id: u64, changes: &[Change]) {
        {
            let mut recent = lock(&self.recent);
            for change in changes {
                if let Change::Updated(_) = change {
                    recent.insert(change.seq(), change.clone());
                }
            }
            while recent.len() > RECENT_EDITS {
                recent.pop_first();
            }
        }
        // Stored before the waiters are taken: a waiter that registers after
        // the drain below sees the new value (see `wait_applied`).
        self.applied.store(id, Ordering::SeqCst);
        self.head.fetch_max(id, Ordering::Relaxed);
        let woken = {
            let mut waiters = lock(&self.waiters);
            let later = waiters.split_off(&(id + 1));
            std::mem::replace(&mut *waiters, later)
        };
        for sender in woken.into_values().flatten() {
            sender.send(()).ok();
        }
    }

    /// Waits (at most `limit`) until post `id` is applied; says whether it
    /// was.
    pub async fn wait_applied(&self, id: u64, limit: Duration) -> bool {
        let receiver = {
            let mut waiters = lock(&self.waiters);
            if self.applied.load(Ordering::SeqCst) >= id {
                return true;
            }
            let (tx, rx) = oneshot::channel();
            waiters.entry(id).or_default().push(tx);
            rx
        };
        matches!(
            async_std::future::timeout(limit, receiver).await,
            Ok(Ok(()))
        )
    }

    /// Waits (at most `limit`) until the edit with `seq` is applied; the
    /// post it made, if it is still at hand.
    pub async fn wait_edit(&self, seq: u64, limit: Duration) -> Option<Change> {
        if !self.wait_applied(seq, limit).await {
            return None;
        }
        lock(&self.recent).get(&seq).cloned()
    }

    /// Why the replica is refused, if it is.
    pub fn diverged(&self) -> Option<String> {
        lock(&self.diverged).clone()
    }

    pub(crate) fn set_diverged(&self, why: Option<String>) {
        *lock(&self.diverged) = why;
    }

    /// The replica's state in one word, for `/healthz`.
    pub fn state(&self) -> &'static str {
        let ready = self.ready.load(Ordering::Relaxed);
        if self.diverged().is_some() {
            "diverged"
        } else if !self.connected.load(Ordering::Relaxed) {
            if ready {
                "disconnected"
            } else {
                "connecting"
            }
        } else if ready {
            "live"
        } else {
            "catching_up"
        }
    }

    /// Entries in the stream not yet applied here.
    pub fn lag(&self) -> u64 {
        let head = self.head.load(Ordering::Relaxed);
        head.saturating_sub(self.applied.load(Ordering::Relaxed))
    }
}

impl Progress {
    /// The replica's state as data, for `/healthz`.
    pub fn health(&self, stream: &str) -> ClusterHealth {
        ClusterHealth {
            state: self.state(),
            redis_connected: self.connected.load(Ordering::Relaxed),
            stream: stream.to_owned(),
            applied_id: self.applied.load(Ordering::Relaxed),
            stream_head_id: self.head.load(Ordering::Relaxed),
            lag: self.lag(),
            error: self.diverged(),
        }
    }

    /// Whether the node should get traffic: caught up with the stream head
    /// seen at start, and its replica matches the log.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.diverged().is_none()
    }
}

/// A mutex whose holder cannot panic halfway through an update: every
/// critical section here is a map or option operation.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[async_std::test]
    async fn waiters_wake_when_their_post_is_applied() {
        let p = Arc::new(Progress::default());
        p.set_applied(3, &[]);
        assert!(p.wait_applied(2, Duration::from_millis(1)).await);
        let waiter = {
            let p = p.clone();
            async_std::task::spawn(async move { p.wait_applied(5, Duration::from_secs(10)).await })
        };
        let late = p.wait_applied(9, Duration::from_millis(10)).await;
        assert!(!late);
        p.set_applied(6, &[]);
        assert!(waiter.await);
        assert_eq!(lock(&p.waiters).len(), 1, "only the waiter for 9 is left");
    }
}
