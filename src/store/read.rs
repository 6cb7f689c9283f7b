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
pub(super) fn head(tree: &sled::Tree) -> Result<Head, StoreError> {
    let live = last_number(tree, keys::POST)?;
    let gone = last_number(tree, keys::TOMBSTONE)?;
    Ok(Head {
        seq: last_number(tree, keys::CHANGE)?,
        post_id: live.max(gone),
    })
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

/// The replay of `span`: the latest-change index of each feed, merged in
/// seq order.
pub(super) fn replay(
    tree: &sled::Tree,
    span: Span,
    feeds: Option<&[Arc<str>]>,
) -> Result<Vec<Arc<Delivery>>, StoreError> {
    let mut out = Vec::new();
    if span.from >= span.upto {
        return Ok(out);
    }
    let indexes: Vec<sled::Iter> = match feeds {
        None => {
            let range = keys::key(keys::CHANGE, span.from + 1)..=keys::key(keys::CHANGE, span.upto);
            vec![tree.range(range)]
        }
        Some(feeds) => feeds
            .iter()
            .map(|feed| {
                let from = keys::feed_key(keys::FEED_CHANGE, feed, span.from + 1);
                let upto = keys::feed_key(keys::FEED_CHANGE, feed, span.upto);
                tree.range(from..=upto)
            })
            .collect(),
    };
    let mut merged = Merged::new(indexes)?;
    while let Some((seq, id)) = merged.next()? {
        if out.len() == span.limit {
            break;
        }
        if let Some(found) = post(tree, id)? {
            // A post changed again since the index was read is left to
            // its later entry (past `upto`, it arrives live).
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
pub(super) fn last_number(tree: &sled::Tree, prefix: u8) -> Result<Option<u64>, StoreError> {
    let last = tree
        .range(keys::key(prefix, 0)..=keys::key(prefix, u64::MAX))
        .next_back();
    Ok(last.transpose()?.map(|(key, _)| keys::number(&key)))
}
