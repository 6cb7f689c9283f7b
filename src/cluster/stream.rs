//! The shared log's format: what one stream entry holds, and the script
//! that appends one atomically with its seq.
//!
//! An entry's id is `<seq>-0`. Its fields are `op` and:
//! - `create`: `post`, the new post without its id
//!   (`{"feed","title","content","author","createdAt"}`); the post's id is
//!   the seq. Whoever reads it stamps it through the same function the local
//!   store uses, so every node builds the same bytes;
//! - `update`: `id`, the post's id, `patch`, the fields it changes (as
//!   `PATCH` takes them, validated) and `at`, its `updatedAt`: every
//!   replica applies the patch to the post as it stands after the entries
//!   before, so all of them build the same post;
//! - `delete`: `id`, the deleted post's id.
//!
//! Entries written before `op` existed carry a whole new post (id
//! included) in `post`; they are still read.
//!
//! Beside the stream, the hash `<stream>:seq` maps each post id to the seq
//! of its latest change (`d<seq>` once deleted), so that the script can
//! refuse an edit or delete of a post that is gone, or whose `If-Match`
//! no longer holds, atomically with the append. A post created before the
//! hash existed has no entry there, and no change since: its latest seq is
//! its id, if the stream holds its create.
//!
//! A create with an idempotency key also names the key's record,
//! `<stream>:idem:<identity>` (a string `<fingerprint> <seq>`, with the
//! key's TTL), which the script reads before it appends and sets with the
//! append: a retry finds it and is answered with the create entry it
//! names, which the stream keeps unchanged whatever edits follow.

use crate::feed::change::{Logged, Stored};
use crate::feed::name::{FeedName, DEFAULT_FEED};
use crate::feed::post::{NewPost, Patch, Post};
use serde::{Deserialize, Serialize};

/// The append script. `KEYS`: the stream, the seq counter, the hash of
/// latest seqs, and for a create with an idempotency key its record.
/// `ARGV[1]` is the op:
/// - `create`, `ARGV[2]` the new post; with a key, `ARGV[3]` the request's
///   fingerprint and `ARGV[4]` the record's TTL in milliseconds;
/// - `update`, `ARGV[2]` the post id, `ARGV[3]` the `If-Match` seqs
///   (comma-separated, or `*`), `ARGV[4]` the patch, `ARGV[5]` its time;
/// - `delete`, `ARGV[2]` the post id, `ARGV[3]` the `If-Match` seqs.
///
/// Answers the change's seq, or an error reply: `NOTFOUND` (no such live
/// post) or `PRECONDITION <seq>` (`If-Match` does not name the latest
/// seq). A keyed create whose record is live appends nothing: it answers
/// `[seq, post]` (the recorded create's seq and its entry's `post`) for
/// the same fingerprint, the error `KEYREUSED` for another, or
/// `KEYLOST <seq>` if the stream no longer holds that entry. Redis runs a script atomically, so seqs are unique and the
/// stream's order is seq order whichever node runs it. If the counter is
/// behind the stream (its key was deleted), it is moved past the stream's
/// newest entry and the append is tried once more.
pub const APPEND_SCRIPT: &str = r#"
local op = ARGV[1]
local keyed = op == 'create' and KEYS[4] ~= nil
if keyed then
  local held = redis.call('GET', KEYS[4])
  if held then
    local fingerprint, done = string.match(held, '^(%x+) (%d+)$')
    if fingerprint ~= ARGV[3] then return redis.error_reply('KEYREUSED') end
    local entry = redis.call('XRANGE', KEYS[1], done .. '-0', done .. '-0')[1]
    if entry then
      local fields = entry[2]
      for i = 1, #fields, 2 do
        if fields[i] == 'post' then return {tonumber(done), fields[i + 1]} end
      end
    end
    return redis.error_reply('KEYLOST ' .. done)
  end
end
local function latest(id)
  local cur = redis.call('HGET', KEYS[3], id)
  if cur then return cur end
  local entry = redis.call('XRANGE', KEYS[1], id .. '-0', id .. '-0')[1]
  if not entry then return nil end
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'op' and fields[i + 1] ~= 'create' then return nil end
  end
  return id
end
if op ~= 'create' then
  local cur = latest(ARGV[2])
  if cur == nil or string.sub(cur, 1, 1) == 'd' then
    return redis.error_reply('NOTFOUND')
  end
  if ARGV[3] ~= '*' then
    local found = false
    for seq in string.gmatch(ARGV[3], '%d+') do
      if seq == cur then found = true end
    end
    if not found then return redis.error_reply('PRECONDITION ' .. cur) end
  end
end
local seq = redis.call('INCR', KEYS[2])
local function append(n)
  local id = string.format('%d', n) .. '-0'
  if op == 'create' then
    return redis.pcall('XADD', KEYS[1], id, 'op', 'create', 'post', ARGV[2])
  elseif op == 'update' then
    return redis.pcall('XADD', KEYS[1], id, 'op', 'update', 'id', ARGV[2],
      'patch', ARGV[4], 'at', ARGV[5])
  else
    return redis.pcall('XADD', KEYS[1], id, 'op', 'delete', 'id', ARGV[2])
  end
end
local added = append(seq)
if type(added) == 'table' and added.err then
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  local last = top[1] and tonumber(string.match(top[1][1], '^(%d+)'))
  if last == nil or last < seq then return added end
  seq = last + 1
  redis.call('SET', KEYS[2], seq)
  added = append(seq)
  if type(added) == 'table' and added.err then return added end
end
local seqs = string.format('%d', seq)
if op == 'create' then
  redis.call('HSET', KEYS[3], seqs, seqs)
  if keyed then
    redis.call('SET', KEYS[4], ARGV[3] .. ' ' .. seqs, 'PX', ARGV[4])
  end
elseif op == 'update' then
  redis.call('HSET', KEYS[3], ARGV[2], seqs)
else
  redis.call('HSET', KEYS[3], ARGV[2], 'd' .. seqs)
end
return seq
"#;

/// A new post as an entry carries it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Unstamped {
    /// Entries written before feeds existed are in the default feed.
    #[serde(default = "default_feed")]
    feed: String,
    title: String,
    content: String,
    author: Option<String>,
    created_at: String,
}

fn default_feed() -> String {
    DEFAULT_FEED.to_owned()
}

/// The `post` field of a create entry for `post`, created at `created_at`.
pub fn encode_create(post: &NewPost, created_at: &str) -> String {
    let unstamped = Unstamped {
        feed: post.feed.as_str().to_owned(),
        title: post.title.clone(),
        content: post.content.clone(),
        author: post.author.clone(),
        created_at: created_at.to_owned(),
    };
    // A struct of strings always serialises.
    serde_json::to_string(&unstamped).expect("post serialises")
}

/// The change a create entry with `post` at `seq` is: the same post a
/// local create would store.
pub fn created(seq: u64, post: &NewPost, created_at: &str) -> Stored {
    Stored::new(post.clone().into_post(seq, created_at.to_owned()), seq)
}

/// The `patch` field of an update entry.
pub fn encode_patch(patch: &Patch) -> String {
    // A struct of optional strings always serialises.
    serde_json::to_string(patch).expect("patch serialises")
}

/// The change a create entry's `post` field at `seq` is (what a replayed
/// keyed create answers).
pub fn decode_create(seq: u64, post: &[u8]) -> Result<Stored, String> {
    let fields = Fields {
        op: Some(b"create"),
        post: Some(post),
        ..Fields::default()
    };
    match decode(seq, &fields)? {
        Logged::Created(stored) => Ok(stored),
        other => Err(format!("entry {seq} is not a create: {other:?}")),
    }
}

/// The fields of one entry, as read.
#[derive(Debug, Default)]
pub struct Fields<'a> {
    /// `op`.
    pub op: Option<&'a [u8]>,
    /// `post`.
    pub post: Option<&'a [u8]>,
    /// `id`.
    pub id: Option<&'a [u8]>,
    /// `patch`.
    pub patch: Option<&'a [u8]>,
    /// `at`.
    pub at: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    /// Takes one field of an entry; unknown names are ignored.
    pub fn set(&mut self, name: &[u8], value: Option<&'a [u8]>) {
        match name {
            b"op" => self.op = value,
            b"post" => self.post = value,
            b"id" => self.id = value,
            b"patch" => self.patch = value,
            b"at" => self.at = value,
            _ => {}
        }
    }
}

/// The change an entry at `seq` with `fields` is.
pub fn decode(seq: u64, fields: &Fields<'_>) -> Result<Logged, String> {
    let text = |what: &str, bytes: Option<&[u8]>| -> Result<String, String> {
        let bytes = bytes.ok_or_else(|| format!("the entry has no `{what}` field"))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("its {what} is not UTF-8"))
    };
    match fields.op {
        Some(b"create") => {
            let json = text("post", fields.post)?;
            let u: Unstamped =
                serde_json::from_str(&json).map_err(|e| format!("not a new post: {e}"))?;
            let feed = FeedName::parse(&u.feed).map_err(|e| e.0)?;
            let new = NewPost {
                feed,
                title: u.title,
                content: u.content,
                author: u.author,
            };
            Ok(Logged::Created(created(seq, &new, &u.created_at)))
        }
        Some(b"update") => {
            let id = post_id(&text("id", fields.id)?)?;
            let json = text("patch", fields.patch)?;
            let patch = serde_json::from_str(&json).map_err(|e| format!("not a patch: {e}"))?;
            let at = text("at", fields.at)?;
            Ok(Logged::Updated { seq, id, patch, at })
        }
        Some(b"delete") => {
            let id = post_id(&text("id", fields.id)?)?;
            Ok(Logged::Deleted { id, seq })
        }
        Some(other) => Err(format!("unknown op {:?}", String::from_utf8_lossy(other))),
        None => {
            let json = text("post", fields.post)?;
            let old: Post = serde_json::from_str(&json).map_err(|e| format!("not a post: {e}"))?;
            if old.id != seq {
                return Err(format!("carries post {} under entry {seq}", old.id));
            }
            Ok(Logged::Created(Stored::new(old, seq)))
        }
    }
}

fn post_id(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not a post id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(pairs: &[(&str, &'a str)]) -> Fields<'a> {
        let mut fields = Fields::default();
        for (name, value) in pairs {
            fields.set(name.as_bytes(), Some(value.as_bytes()));
        }
        fields
    }

    #[test]
    fn an_entry_becomes_the_same_change_as_a_local_one() {
        let new = NewPost {
            feed: FeedName::parse("team-a").unwrap(),
            title: "Hi \"there\"".into(),
            content: "line\nbreak ✓".into(),
            author: None,
        };
        let at = "2026-11-25T21:49:37.123Z";
        let field = encode_create(&new, at);
        let decoded = decode(42, &fields(&[("op", "create"), ("post", &field)])).unwrap();
        assert_eq!(decoded, Logged::Created(created(42, &new, at)));
        // What a replayed keyed create answers: the same bytes.
        let replayed = decode_create(42, field.as_bytes()).unwrap();
        assert_eq!(replayed.json, created(42, &new, at).json);
        let patch = Patch {
            author: Some(None),
            ..Patch::default()
        };
        let json = encode_patch(&patch);
        let update = fields(&[("op", "update"), ("id", "42"), ("patch", &json), ("at", at)]);
        assert_eq!(
            decode(45, &update).unwrap(),
            Logged::Updated {
                seq: 45,
                id: 42,
                patch,
                at: at.into()
            }
        );
        let delete = decode(46, &fields(&[("op", "delete"), ("id", "42")])).unwrap();
        assert_eq!(delete, Logged::Deleted { id: 42, seq: 46 });
    }

    #[test]
    fn old_entries_and_bad_ones() {
        let old = r#"{"id":7,"title":"t","content":"c","author":null,"createdAt":"2026-01-01T00:00:00.000Z"}"#;
        let change = decode(7, &fields(&[("post", old)])).unwrap();
        assert_eq!(change.post_id(), 7);
        assert!(decode(8, &fields(&[("post", old)]))
            .unwrap_err()
            .contains("post 7"));
        assert!(decode(8, &fields(&[("op", "create"), ("post", "{}")])).is_err());
        assert!(decode(8, &fields(&[("op", "drop"), ("post", "{}")])).is_err());
        assert!(decode(8, &fields(&[("op", "delete"), ("id", "x")])).is_err());
        assert!(decode(8, &fields(&[("op", "update"), ("id", "1")])).is_err());
        let bad_patch = fields(&[
            ("op", "update"),
            ("id", "1"),
            ("patch", r#"{"nope":1}"#),
            ("at", "t"),
        ]);
        assert!(decode(8, &bad_patch).is_err());
    }
}
