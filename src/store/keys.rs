//! The store's key space, in one sled tree so that a batch of changes is
//! one atomic write.
//!
//! | key | value | what |
//! | --- | --- | --- |
//! | `P` id | seq, feed, post JSON | a live post, in its latest state |
//! | `T` id | seq, feed | a deleted post's tombstone |
//! | `C` seq | id | the latest change of each post that was edited or deleted, by seq (replay) |
//! | `F` feed `\0` id | | the live posts of a feed (listing, and replay of unedited posts) |
//! | `S` feed `\0` seq | id | like `C`, per feed |
//! | `N` feed | count | live posts of a feed |
//! | `K` identity | expiry, fingerprint, seq, post JSON | an idempotency key's record: the post as its create answered it |
//! | `E` expiry identity | | the records by expiry (the sweep) |
//!
//! Numbers are big-endian `u64`, so key order is numeric order. Feed names
//! never contain `\0`. A create takes the seq that is its post's id, so a
//! post whose latest change is its create is found in seq order by its id
//! (`P`, and `F` per feed) and needs no `C` or `S` entry: a create writes
//! two keys, which is what sled's cost per key makes worth it. A post's
//! `C` and `S` entries move to the seq of its every later change, so a
//! replay, merging both, reads each post once (a data dir from before
//! this layout also has `C` and `S` entries for creates: the merge reads
//! an entry found twice once). An identity is the 32-byte digest of a key
//! in its scope, a fingerprint that of the request; expiries are
//! milliseconds since the Unix epoch.

use std::str;

pub(super) const POST: u8 = b'P';
pub(super) const TOMBSTONE: u8 = b'T';
pub(super) const CHANGE: u8 = b'C';
pub(super) const FEED_POST: u8 = b'F';
pub(super) const FEED_CHANGE: u8 = b'S';
pub(super) const FEED_COUNT: u8 = b'N';
pub(super) const IDEMPOTENCY: u8 = b'K';
pub(super) const KEY_EXPIRY: u8 = b'E';

/// A key record's digests.
pub(super) type Digest = [u8; 32];

/// `prefix` + `n`.
pub(super) fn key(prefix: u8, n: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = prefix;
    key[1..].copy_from_slice(&n.to_be_bytes());
    key
}

/// `prefix` + `feed` + `\0`: the start of a feed's range.
pub(super) fn feed_prefix(prefix: u8, feed: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(feed.len() + 10);
    key.push(prefix);
    key.extend_from_slice(feed.as_bytes());
    key.push(0);
    key
}

/// `prefix` + `feed` + `\0` + `n`.
pub(super) fn feed_key(prefix: u8, feed: &str, n: u64) -> Vec<u8> {
    let mut key = feed_prefix(prefix, feed);
    key.extend_from_slice(&n.to_be_bytes());
    key
}

/// `N` + `feed`.
pub(super) fn count_key(feed: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(feed.len() + 1);
    key.push(FEED_COUNT);
    key.extend_from_slice(feed.as_bytes());
    key
}

/// The number a key ends with.
pub(super) fn number(bytes: &[u8]) -> u64 {
    let mut n = [0u8; 8];
    let len = bytes.len().min(8);
    n[8 - len..].copy_from_slice(&bytes[bytes.len() - len..]);
    u64::from_be_bytes(n)
}

/// A live post's value: its latest seq, its feed and its JSON.
pub(super) fn post_value(seq: u64, feed: &str, json: &str) -> Vec<u8> {
    let mut value = tombstone_value(seq, feed);
    value.extend_from_slice(json.as_bytes());
    value
}

/// A tombstone's value: the delete's seq and the post's feed.
pub(super) fn tombstone_value(seq: u64, feed: &str) -> Vec<u8> {
    // Feed names are at most 64 bytes (checked where they are made).
    let len = u8::try_from(feed.len()).unwrap_or(u8::MAX);
    let mut value = Vec::with_capacity(9 + feed.len());
    value.extend_from_slice(&seq.to_be_bytes());
    value.push(len);
    value.extend_from_slice(&feed.as_bytes()[..usize::from(len)]);
    value
}

/// A value read back: seq, feed, and what follows (a post's JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Value<'a> {
    pub(super) seq: u64,
    pub(super) feed: &'a str,
    pub(super) rest: &'a [u8],
}

/// Parses a post or tombstone value; `None` if it is not one.
pub(super) fn parse_value(bytes: &[u8]) -> Option<Value<'_>> {
    let seq = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let len = usize::from(*bytes.get(8)?);
    let feed = str::from_utf8(bytes.get(9..9 + len)?).ok()?;
    Some(Value {
        seq,
        feed,
        rest: &bytes[9 + len..],
    })
}

/// `K` + `identity`.
pub(super) fn idempotency_key(identity: &Digest) -> Vec<u8> {
    let mut key = Vec::with_capacity(33);
    key.push(IDEMPOTENCY);
    key.extend_from_slice(identity);
    key
}

/// `E` + `expires` + `identity`.
pub(super) fn expiry_key(expires: u64, identity: &Digest) -> Vec<u8> {
    let mut key = Vec::with_capacity(41);
    key.extend_from_slice(&self::key(KEY_EXPIRY, expires));
    key.extend_from_slice(identity);
    key
}

/// An idempotency key's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyRecord {
    /// When it expires (ms since the epoch).
    pub(super) expires: u64,
    /// The request it was recorded with.
    pub(super) fingerprint: Digest,
    /// The post's create (its id).
    pub(super) seq: u64,
    /// The post's JSON as the create answered it.
    pub(super) json: String,
}

impl KeyRecord {
    /// The value stored under `K`.
    pub(super) fn value(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(48 + self.json.len());
        value.extend_from_slice(&self.expires.to_be_bytes());
        value.extend_from_slice(&self.fingerprint);
        value.extend_from_slice(&self.seq.to_be_bytes());
        value.extend_from_slice(self.json.as_bytes());
        value
    }

    /// Reads a value stored under `K`; `None` if it is not one.
    pub(super) fn parse(bytes: &[u8]) -> Option<Self> {
        let expires = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let fingerprint = bytes.get(8..40)?.try_into().ok()?;
        let seq = u64::from_be_bytes(bytes.get(40..48)?.try_into().ok()?);
        let json = str::from_utf8(&bytes[48..]).ok()?.to_owned();
        Some(Self {
            expires,
            fingerprint,
            seq,
            json,
        })
    }
}

/// The identity an `E` key ends with, and its expiry.
pub(super) fn parse_expiry_key(key: &[u8]) -> Option<(u64, Digest)> {
    let expires = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
    Some((expires, key.get(9..41)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_numerically_and_values_round_trip() {
        assert!(key(CHANGE, 2) < key(CHANGE, 10));
        assert!(feed_key(FEED_POST, "a", 9) < feed_key(FEED_POST, "a", 10));
        assert!(feed_key(FEED_POST, "a", u64::MAX) < feed_prefix(FEED_POST, "a-b"));
        assert_eq!(number(&feed_key(FEED_CHANGE, "main", 77)), 77);
        let v = post_value(5, "main", r#"{"id":3}"#);
        assert_eq!(
            parse_value(&v),
            Some(Value {
                seq: 5,
                feed: "main",
                rest: br#"{"id":3}"#
            })
        );
        assert_eq!(parse_value(&tombstone_value(6, "x")).unwrap().rest, b"");
        assert_eq!(parse_value(b"short"), None);
        let record = KeyRecord {
            expires: 77,
            fingerprint: [9; 32],
            seq: 5,
            json: r#"{"id":5}"#.into(),
        };
        assert_eq!(KeyRecord::parse(&record.value()), Some(record));
        assert_eq!(KeyRecord::parse(b"short"), None);
        assert!(expiry_key(2, &[0xff; 32]) < expiry_key(3, &[0; 32]));
        assert_eq!(
            parse_expiry_key(&expiry_key(3, &[7; 32])),
            Some((3, [7; 32]))
        );
    }
}
