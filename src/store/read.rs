//! The reads, on one open database (see `Shared::read`): every function
//! here takes the tree the caller holds for the length of one read.

use super::keys::{self, Value};
use super::StoreError;
use crate::feed::publish::{FeedStat, Found, Page};
use crate::feed::wire;
use livefeed_actors::{replayed, Delivery, Head, Span};
use std::sync::Arc;

/// Post `id` as it is now, if it is live.
pub(super) fn post(tree: &sled::Tree, id: u64) -> Result<Option<Found>, StoreError> {
    let Some(bytes) = tree.get(keys::key(keys::POST, id))? else {
        return Ok(None);
    };
    let Value { seq, feed, rest } = keys::parse_value(&bytes).ok_or(StoreError::Corrupt(id))?;
    Ok(Some(Found {
        seq,
        feed: feed.to_owned(),
        json: rest.to_vec(),
    }))
}

/// Up to `limit` live posts of `feed` with ids below `before`, newest first.
pub(super) fn page(
    tree: &sled::Tree,
    feed: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<Page, StoreError> {
    let start = keys::feed_prefix(keys::FEED_POST, feed);
    let end = keys::feed_key(keys::FEED_POST, feed, before.unwrap_or(u64::MAX));
    let mut posts = Vec::with_capacity(limit.min(128));
    let mut last_id = None;
    let mut more = false;
    for entry in tree.range(start..end).rev() {
        let (key, _) = entry?;
        let id = keys::number(&key);
        if posts.len() == limit {
            more = true;
            break;
        }
        let Some(found) = post(tree, id)? else {
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
///
/// The newest change is the newest edit or delete (`C`), or the newest
/// create, whose seq is its post's id (`P`, or `T` once deleted).
pub(super) fn head(tree: &sled::Tree) -> Result<Head, StoreError> {
    let live = last_number(tree, keys::POST)?;
    let gone = last_number(tree, keys::TOMBSTONE)?;
    let post_id = live.max(gone);
    Ok(Head {
        seq: last_number(tree, keys::CHANGE)?.max(post_id),
        post_id,
    })
}

/// The newest change's seq (see [`head`]).
pub(super) fn last_seq(tree: &sled::Tree) -> Result<Option<u64>, StoreError> {
    Ok(head(tree)?.seq)
}

/// Every feed with at least one live post.
pub(super) fn feeds(tree: &sled::Tree) -> Result<Vec<FeedStat>, StoreError> {
    let mut out = Vec::new();
    for entry in tree.scan_prefix([keys::FEED_COUNT]) {
        let (key, value) = entry?;
        let name = String::from_utf8_lossy(&key[1..]).into_owned();
        let prefix = keys::feed_prefix(keys::FEED_POST, &name);
        let last = tree.scan_prefix(&prefix).next_back().transpose()?;
        out.push(FeedStat {
            posts: keys::number(&value),
            last_post_id: last.map(|(key, _)| keys::number(&key)),
            name,
        });
    }
    Ok(out)
}

/// The replay of `span`: the posts whose latest change is their create,
/// by id, and the latest-change index of the others, for every feed asked
/// for (or all of them), merged in seq order (see [`keys`]).
pub(super) fn replay(
    tree: &sled::Tree,
    span: Span,
    feeds: Option<&[Arc<str>]>,
) -> Result<Vec<Arc<Delivery>>, StoreError> {
    let mut out = Vec::new();
    if span.from >= span.upto {
        return Ok(out);
    }
    let (from, upto) = (span.from + 1, span.upto);
    let indexes: Vec<Index> = match feeds {
        None => vec![
            Index::ids(tree.range(keys::key(keys::POST, from)..=keys::key(keys::POST, upto))),
            Index::changes(
                tree.range(keys::key(keys::CHANGE, from)..=keys::key(keys::CHANGE, upto)),
            ),
        ],
        Some(feeds) => feeds
            .iter()
            .flat_map(|feed| {
                let listed = keys::feed_key(keys::FEED_POST, feed, from)
                    ..=keys::feed_key(keys::FEED_POST, feed, upto);
                let changed = keys::feed_key(keys::FEED_CHANGE, feed, from)
                    ..=keys::feed_key(keys::FEED_CHANGE, feed, upto);
                [
                    Index::ids(tree.range(listed)),
                    Index::changes(tree.range(changed)),
                ]
            })
            .collect(),
    };
    let mut merged = Merged::new(indexes)?;
    while let Some((seq, id)) = merged.next()? {
        if out.len() == span.limit {
            break;
        }
        if let Some(found) = post(tree, id)? {
            // A post changed again since the index was read (or edited
            // since its create, when found by id) is left to its later
            // entry (past `upto`, it arrives live).
            if found.seq == seq {
                if let Some(kind) = replayed(id, false, span.since) {
                    let json =
                        std::str::from_utf8(&found.json).map_err(|_| StoreError::Corrupt(id))?;
                    let data = wire::post_data(json, seq);
                    let feed = found.feed.as_str().into();
                    out.push(Delivery::new(seq, id, feed, kind, data));
                }
            }
        } else if let Some(bytes) = tree.get(keys::key(keys::TOMBSTONE, id))? {
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

/// One seq-ordered source of `(seq, post id)` for a replay.
struct Index {
    iter: sled::Iter,
    /// Keys that end with a post id whose create is its seq (`P`, `F`),
    /// rather than a seq whose value is the post id (`C`, `S`).
    by_id: bool,
}

impl Index {
    fn ids(iter: sled::Iter) -> Self {
        Self { iter, by_id: true }
    }

    fn changes(iter: sled::Iter) -> Self {
        Self { iter, by_id: false }
    }

    fn read(&mut self) -> Result<Option<(u64, u64)>, StoreError> {
        Ok(self.iter.next().transpose()?.map(|(key, value)| {
            let n = keys::number(&key);
            if self.by_id {
                (n, n)
            } else {
                (n, keys::number(&value))
            }
        }))
    }
}

/// Several seq-ordered indexes, read as one, in seq order; an entry in
/// more than one of them is read once.
struct Merged {
    heads: Vec<(Option<(u64, u64)>, Index)>,
}

impl Merged {
    fn new(indexes: Vec<Index>) -> Result<Self, StoreError> {
        let mut heads = Vec::with_capacity(indexes.len());
        for mut index in indexes {
            let head = index.read()?;
            heads.push((head, index));
        }
        Ok(Self { heads })
    }

    /// The entry with the lowest seq among the indexes' next ones.
    fn next(&mut self) -> Result<Option<(u64, u64)>, StoreError> {
        let lowest = self.heads.iter().filter_map(|(head, _)| *head).min();
        let Some(entry) = lowest else {
            return Ok(None);
        };
        for (head, index) in &mut self.heads {
            if *head == Some(entry) {
                *head = index.read()?;
            }
        }
        Ok(Some(entry))
    }
}

/// The number in the last key with `prefix`.
pub(super) fn last_number(tree: &sled::Tree, prefix: u8) -> Result<Option<u64>, StoreError> {
    let last = tree
        .range(keys::key(prefix, 0)..=keys::key(prefix, u64::MAX))
        .next_back();
    Ok(last.transpose()?.map(|(key, _)| keys::number(&key)))
}
