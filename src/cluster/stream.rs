//! The shared log's format: what one stream entry holds, and the script
//! that appends one atomically with its id.
//!
//! An entry's id is `<post id>-0`; its fields are `op` (`create`) and
//! `post`, the new post without its id:
//! `{"title","content","author","createdAt"}`. Whoever reads the entry
//! stamps the post with the entry's id through [`Stored::stamp`], the same
//! function the local store uses, so every node builds the same bytes.
//! Entries written before `op` existed carry the whole post (id included)
//! in `post`; they are still read.

use crate::feed::post::{NewPost, Post, Stored};
use serde::{Deserialize, Serialize};

/// The create script: the next id from the counter (`KEYS[2]`), then the
/// new post (`ARGV[1]`) appended to the stream (`KEYS[1]`) as entry
/// `<id>-0`. Redis runs a script atomically, so ids are unique and the
/// stream's order is id order whichever node runs it. If the counter is
/// behind the stream (its key was deleted), it is moved past the stream's
/// newest entry and the append is tried once more; any other failure is
/// returned as an error and nothing is appended.
pub const APPEND_SCRIPT: &str = r#"
local id = redis.call('INCR', KEYS[2])
local function append(n)
  local ids = string.format('%d', n)
  return redis.pcall('XADD', KEYS[1], ids .. '-0', 'op', 'create', 'post', ARGV[1])
end
local added = append(id)
if type(added) == 'table' and added.err then
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  local last = top[1] and tonumber(string.match(top[1][1], '^(%d+)'))
  if last == nil or last < id then return added end
  id = last + 1
  redis.call('SET', KEYS[2], id)
  added = append(id)
  if type(added) == 'table' and added.err then return added end
end
return id
"#;

/// A new post as an entry carries it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Unstamped {
    title: String,
    content: String,
    author: Option<String>,
    created_at: String,
}

/// The `post` field of a create entry for `post`, created at `created_at`.
pub fn encode_create(post: &NewPost, created_at: &str) -> String {
    let unstamped = Unstamped {
        title: post.title.clone(),
        content: post.content.clone(),
        author: post.author.clone(),
        created_at: created_at.to_owned(),
    };
    // A struct of strings always serialises.
    serde_json::to_string(&unstamped).expect("post serialises")
}

/// The post an entry carries: `op` and `post` are the entry's fields (`op`
/// is absent in entries of the old format), `post_id` comes from its id.
pub fn decode(post_id: u64, op: Option<&[u8]>, post: &[u8]) -> Result<Stored, String> {
    let text = std::str::from_utf8(post).map_err(|_| "the post is not UTF-8".to_owned())?;
    match op {
        Some(b"create") => {
            let u: Unstamped =
                serde_json::from_str(text).map_err(|e| format!("not a new post: {e}"))?;
            let new = NewPost {
                title: u.title,
                content: u.content,
                author: u.author,
            };
            Ok(Stored::stamp(post_id, new, u.created_at))
        }
        Some(other) => Err(format!(
            "unknown op {:?}",
            String::from_utf8_lossy(other).into_owned()
        )),
        None => {
            let old: Post = serde_json::from_str(text).map_err(|e| format!("not a post: {e}"))?;
            if old.id != post_id {
                return Err(format!("carries post {} under post id {post_id}", old.id));
            }
            Ok(Stored::new(old))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_becomes_the_same_post_as_a_local_create() {
        let new = NewPost {
            title: "Hi \"there\"".into(),
            content: "line\nbreak ✓".into(),
            author: None,
        };
        let at = "2026-11-25T21:49:37.123Z";
        let field = encode_create(&new, at);
        let decoded = decode(42, Some(b"create"), field.as_bytes()).unwrap();
        let local = Stored::stamp(42, new, at.to_owned());
        assert_eq!(decoded.json, local.json);
        assert_eq!(decoded.post.id, 42);
    }

    #[test]
    fn old_entries_and_bad_ones() {
        let old = r#"{"id":7,"title":"t","content":"c","author":null,"createdAt":"2026-01-01T00:00:00.000Z"}"#;
        assert_eq!(&*decode(7, None, old.as_bytes()).unwrap().json, old);
        assert!(decode(8, None, old.as_bytes())
            .unwrap_err()
            .contains("post 7"));
        assert!(decode(8, Some(b"create"), b"{}").is_err());
        assert!(decode(8, Some(b"drop"), b"{}").is_err());
    }
}
