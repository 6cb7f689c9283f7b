//! One commit round's changes, grouped for fan-out.
//!
//! livefeed's store commits changes in group-commit rounds, and a round
//! under load holds many of them. Each xactor message costs a boxed
//! envelope, a boxed handler future and a trip through an unbounded
//! channel, so the hub sends a connection at most one message per round,
//! holding all of that connection's changes of the round in `seq` order,
//! instead of one message per change.
//!
//! Those lists are shared, not built per connection: a [`Round`] holds one
//! [`Frames`] list per feed, and a connection that follows one feed (nearly
//! every connection) is handed that feed's list itself, an `Arc` clone. Only
//! a connection following several feeds, more than one of which changed in
//! the round, gets a list of its own, merged in `seq` order.

use crate::delivery::Delivery;
use std::collections::HashMap;
use std::sync::Arc;

/// Changes bound for one connection, in ascending `seq`.
pub(crate) type Frames = Arc<[Arc<Delivery>]>;

/// A round's changes by feed, each feed's in `seq` order.
#[derive(Debug, Default)]
pub(crate) struct Round {
    by_feed: HashMap<Arc<str>, Frames>,
}

impl Round {
    /// Groups `changes` (in ascending `seq`) by feed.
    pub(crate) fn new(changes: &[Arc<Delivery>]) -> Self {
        let mut lists: HashMap<Arc<str>, Vec<Arc<Delivery>>> = HashMap::new();
        for change in changes {
            lists
                .entry(change.feed.clone())
                .or_default()
                .push(change.clone());
        }
        let by_feed = lists
            .into_iter()
            .map(|(feed, list)| (feed, Frames::from(list)))
            .collect();
        Self { by_feed }
    }

    /// Each feed that changed in the round, with its changes.
    pub(crate) fn feeds(&self) -> impl Iterator<Item = (&Arc<str>, &Frames)> {
        self.by_feed.iter()
    }

    /// The changes of the round in any of `feeds`, in `seq` order: the
    /// shared list of the one feed that changed when there is only one,
    /// a merged list otherwise; `None` when none of them changed.
    pub(crate) fn for_feeds(&self, feeds: &[Arc<str>]) -> Option<Frames> {
        let mut changed: Vec<&Frames> = Vec::new();
        for list in feeds.iter().filter_map(|feed| self.by_feed.get(feed)) {
            if !changed.iter().any(|seen| Arc::ptr_eq(seen, list)) {
                changed.push(list);
            }
        }
        match changed[..] {
            [] => None,
            [one] => Some(one.clone()),
            _ => {
                let mut merged: Vec<Arc<Delivery>> = changed
                    .iter()
                    .flat_map(|list| list.iter().cloned())
                    .collect();
                merged.sort_unstable_by_key(|d| d.seq);
                Some(merged.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::Kind;

    fn change(seq: u64, feed: &str) -> Arc<Delivery> {
        Delivery::new(seq, seq, feed.into(), Kind::Created, "{}")
    }

    fn seqs(list: &Frames) -> Vec<u64> {
        list.iter().map(|d| d.seq).collect()
    }

    fn feeds(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|&n| n.into()).collect()
    }

    #[test]
    fn a_round_is_grouped_by_feed_in_seq_order() {
        let changes: Vec<_> = [(1, "a"), (2, "b"), (3, "a"), (4, "c"), (5, "a")]
            .into_iter()
            .map(|(seq, feed)| change(seq, feed))
            .collect();
        let round = Round::new(&changes);
        let mut got: Vec<(String, Vec<u64>)> = round
            .feeds()
            .map(|(feed, list)| (feed.to_string(), seqs(list)))
            .collect();
        got.sort();
        let want = [("a", vec![1, 3, 5]), ("b", vec![2]), ("c", vec![4])]
            .map(|(feed, seqs)| (feed.to_string(), seqs));
        assert_eq!(got, want);
        // The changes themselves are shared, not copied.
        let a = round.for_feeds(&feeds(&["a"])).unwrap();
        assert!(Arc::ptr_eq(&a[0], &changes[0]));
    }

    #[test]
    fn one_changed_feed_is_shared_and_several_are_merged() {
        let changes: Vec<_> = [(1, "a"), (2, "b"), (3, "a"), (4, "b")]
            .into_iter()
            .map(|(seq, feed)| change(seq, feed))
            .collect();
        let round = Round::new(&changes);
        let a = round.for_feeds(&feeds(&["a"])).unwrap();
        // A connection of one feed, or of several of which one changed,
        // gets the feed's list itself.
        assert!(Arc::ptr_eq(&a, &round.for_feeds(&feeds(&["a"])).unwrap()));
        assert!(Arc::ptr_eq(
            &a,
            &round.for_feeds(&feeds(&["z", "a"])).unwrap()
        ));
        assert!(Arc::ptr_eq(
            &a,
            &round.for_feeds(&feeds(&["a", "a"])).unwrap()
        ));
        let merged = round.for_feeds(&feeds(&["b", "a", "z"])).unwrap();
        assert_eq!(seqs(&merged), vec![1, 2, 3, 4]);
        assert!(round.for_feeds(&feeds(&["z"])).is_none());
    }
}
