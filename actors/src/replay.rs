//! What a reconnecting client is sent: the stored changes it missed,
//! compacted.
//!
//! A client that has every change up to `since` and comes back is sent, in
//! ascending `seq`, each post changed after `since` once, in its latest
//! state, at the position of its latest change ([`replayed`] says as
//! what). Applied to the client's view as of `since` (`newPost` and
//! `postUpdated` set the post, `postDeleted` removes it), that gives
//! exactly the current state, however many times a post changed.
//! [`MemoryHistory`] is the rule on an in-memory log, for tests; the sled
//! store implements the same rule with an index that keeps only each
//! post's latest change.

use crate::delivery::{Delivery, Kind};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The feeds a connection subscribes to.
pub type Feeds = Arc<[Arc<str>]>;

/// Where a history stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// The newest change's seq, if there is any.
    pub seq: Option<u64>,
    /// The newest post's id (created, whatever happened to it since).
    pub post_id: Option<u64>,
}

/// A replay request: what a client that has every change up to `since` is
/// missing among the changes with `from < seq <= upto`, at most `limit` of
/// them. (`from` starts at `since` and moves along as pages are read.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// What the client has.
    pub since: u64,
    /// Changes after this one.
    pub from: u64,
    /// Up to this one.
    pub upto: u64,
    /// At most this many.
    pub limit: usize,
}

/// Read access to stored changes, for replay and for filling broadcast
/// gaps.
pub trait History: Send + Sync + 'static {
    /// Where the history stands.
    fn head(&self) -> anyhow::Result<Head>;
    /// The compacted changes of `span` to posts of `feeds` (of every feed
    /// when `None`), ascending: each post at most once, at its latest
    /// change if that lies in the span, as [`replayed`] says.
    fn after(&self, span: Span, feeds: Option<&[Arc<str>]>) -> anyhow::Result<Vec<Arc<Delivery>>>;
}

/// As what a post whose latest change is after `since` is replayed to a
/// client that has everything up to `since`: `newPost` if it was created
/// after `since`, else `postUpdated`; if it is deleted, `postDeleted` only
/// when the client may have it (created up to `since`), else nothing.
pub fn replayed(post_id: u64, deleted: bool, since: u64) -> Option<Kind> {
    match (deleted, post_id > since) {
        (false, true) => Some(Kind::Created),
        (false, false) => Some(Kind::Updated),
        (true, false) => Some(Kind::Deleted),
        (true, true) => None,
    }
}

/// A change as [`MemoryHistory`] keeps it.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    post_id: u64,
    feed: Arc<str>,
    kind: Kind,
    data: Arc<str>,
}

/// A whole log of changes in memory, replayed by the compaction rule: for
/// the actors' tests and for anyone embedding the hub without storage.
#[derive(Debug, Default)]
pub struct MemoryHistory {
    log: Mutex<Vec<Entry>>,
}

impl MemoryHistory {
    fn log(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // Pushes and reads cannot be left half done by a panic.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a change to a post of `feed` with the next seq (a created
    /// post's id is its seq); answers its delivery, to broadcast.
    pub fn record(
        &self,
        feed: &str,
        post_id: Option<u64>,
        kind: Kind,
        data: &str,
    ) -> Arc<Delivery> {
        let mut log = self.log();
        let seq = log.last().map_or(1, |e| e.seq + 1);
        let post_id = post_id.unwrap_or(seq);
        let (feed, data): (Arc<str>, Arc<str>) = (feed.into(), data.into());
        log.push(Entry {
            seq,
            post_id,
            feed: feed.clone(),
            kind,
            data: data.clone(),
        });
        Delivery::new(seq, post_id, feed, kind, data)
    }
}

impl History for MemoryHistory {
    fn head(&self) -> anyhow::Result<Head> {
        let log = self.log();
        Ok(Head {
            seq: log.last().map(|e| e.seq),
            post_id: log
                .iter()
                .rev()
                .find(|e| e.kind == Kind::Created)
                .map(|e| e.post_id),
        })
    }

    fn after(&self, span: Span, feeds: Option<&[Arc<str>]>) -> anyhow::Result<Vec<Arc<Delivery>>> {
        let log = self.log();
        // Each post's latest change, by its seq.
        let mut latest: BTreeMap<u64, &Entry> = BTreeMap::new();
        let mut by_post: BTreeMap<u64, u64> = BTreeMap::new();
        for entry in log.iter() {
            if let Some(old) = by_post.insert(entry.post_id, entry.seq) {
                latest.remove(&old);
            }
            latest.insert(entry.seq, entry);
        }
        Ok(latest
            .range(span.from + 1..=span.upto)
            .filter(|(_, e)| feeds.is_none_or(|feeds| feeds.contains(&e.feed)))
            .filter_map(|(_, e)| {
                let kind = replayed(e.post_id, e.kind == Kind::Deleted, span.since)?;
                let feed = e.feed.clone();
                Some(Delivery::new(e.seq, e.post_id, feed, kind, e.data.clone()))
            })
            .take(span.limit)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(since: u64, upto: u64) -> Span {
        Span {
            since,
            from: since,
            upto,
            limit: usize::MAX,
        }
    }

    fn kinds(history: &MemoryHistory, since: u64, upto: u64) -> Vec<(u64, u64, Kind)> {
        let got = history.after(span(since, upto), None).unwrap();
        got.iter().map(|d| (d.seq, d.post_id, d.kind)).collect()
    }

    #[test]
    fn each_post_once_in_its_latest_state() {
        let h = MemoryHistory::default();
        h.record("main", None, Kind::Created, "a1"); // 1: post 1
        h.record("main", None, Kind::Created, "b1"); // 2: post 2
        h.record("main", Some(1), Kind::Updated, "a2"); // 3
        h.record("main", None, Kind::Created, "c1"); // 4: post 4
        h.record("main", Some(2), Kind::Deleted, "b-"); // 5
        h.record("main", Some(4), Kind::Updated, "c2"); // 6
        h.record("other", None, Kind::Created, "d1"); // 7: post 7
        h.record("other", Some(7), Kind::Deleted, "d-"); // 8
                                                         // From nothing: every live post as new, deletions of posts the
                                                         // client never had left out.
        assert_eq!(
            kinds(&h, 0, 8),
            vec![(3, 1, Kind::Created), (6, 4, Kind::Created)]
        );
        // From 2: post 1 was edited, 2 deleted, 4 is new.
        assert_eq!(
            kinds(&h, 2, 8),
            vec![
                (3, 1, Kind::Updated),
                (5, 2, Kind::Deleted),
                (6, 4, Kind::Created)
            ]
        );
        // A change past `upto` is not replayed (it arrives live).
        assert_eq!(
            kinds(&h, 2, 5),
            vec![(3, 1, Kind::Updated), (5, 2, Kind::Deleted)]
        );
        // Only the feeds asked for.
        let main: Vec<Arc<str>> = vec!["main".into()];
        let got = h.after(span(0, 8), Some(&main)).unwrap();
        assert_eq!(
            got.iter().map(|d| d.post_id).collect::<Vec<_>>(),
            vec![1, 4]
        );
        let other: Vec<Arc<str>> = vec!["other".into()];
        assert!(h.after(span(0, 8), Some(&other)).unwrap().is_empty());
        assert_eq!(
            h.head().unwrap(),
            Head {
                seq: Some(8),
                post_id: Some(7)
            }
        );
    }
}
