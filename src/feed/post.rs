//! The post wire format and the validation of new posts.
//!
//! A post is `{"id", "title", "content", "author", "createdAt"}`. Requests
//! are validated field by field so a client learns which field is wrong;
//! validation trims surrounding white space and counts characters, not bytes.
//! A post is stamped (given its id and time) and serialised in one place,
//! [`Stored::stamp`], whoever assigns the id (the local store's writer or,
//! in cluster mode, the shared log).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::SystemTime;

/// Longest title, in characters after trimming.
pub const MAX_TITLE: usize = 200;
/// Longest content, in characters after trimming.
pub const MAX_CONTENT: usize = 10_000;
/// Longest author name, in characters after trimming.
pub const MAX_AUTHOR: usize = 100;

/// A stored post, as the HTTP API and every push transport show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Post {
    /// Server-assigned, strictly increasing.
    pub id: u64,
    /// 1..=200 characters.
    pub title: String,
    /// 1..=10000 characters; line breaks are kept.
    pub content: String,
    /// Up to 100 characters, or null for anonymous posts.
    pub author: Option<String>,
    /// Creation time, RFC 3339 in UTC.
    pub created_at: String,
}

/// A post and its JSON, serialised once: the bytes every response and
/// every frame carry.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The post.
    pub post: Post,
    /// `post` as JSON, exactly as stored and served.
    pub json: Arc<str>,
}

impl Stored {
    /// The post `new` becomes once it has an id and a creation time.
    pub fn stamp(id: u64, new: NewPost, created_at: String) -> Self {
        Self::new(Post {
            id,
            title: new.title,
            content: new.content,
            author: new.author,
            created_at,
        })
    }

    /// `post` with its JSON.
    pub fn new(post: Post) -> Self {
        // A struct of strings and an integer always serialises.
        let json = serde_json::to_string(&post).expect("post serialises");
        Self {
            post,
            json: json.into(),
        }
    }
}

/// The current time as posts show it: RFC 3339 in UTC, milliseconds, `Z`.
pub fn timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Why a request body is not a valid post.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// The field at fault; `None` when the body is not JSON at all.
    pub field: Option<String>,
    /// What is wrong, for the client.
    pub message: String,
}

impl Invalid {
    /// The body is not JSON.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }

    /// `field` is wrong.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }
}

/// A validated request to create a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    /// Trimmed title.
    pub title: String,
    /// Trimmed content.
    pub content: String,
    /// Trimmed author; `None` when absent, null or blank.
    pub author: Option<String>,
}

impl NewPost {
    /// Parses and validates a request body.
    ///
    /// Malformed JSON has no field; anything about the fields names the
    /// field (the HTTP API answers 400 and 422).
    pub fn from_json(body: &[u8]) -> Result<Self, Invalid> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| Invalid::malformed(format!("malformed JSON: {e}")))?;
        let Value::Object(mut fields) = value else {
            return Err(Invalid::field("body", "the body must be a JSON object"));
        };
        let title = required(&mut fields, "title", MAX_TITLE)?;
        let content = required(&mut fields, "content", MAX_CONTENT)?;
        let author = optional(&mut fields, "author", MAX_AUTHOR)?;
        if let Some(unknown) = fields.keys().next() {
            return Err(Invalid::field(
                unknown,
                format!("unknown field `{unknown}`; allowed: title, content, author"),
            ));
        }
        Ok(Self {
            title,
            content,
            author,
        })
    }
}

fn required(fields: &mut Map<String, Value>, name: &str, max: usize) -> Result<String, Invalid> {
    let present = fields.get(name).is_some_and(|v| !v.is_null());
    optional(fields, name, max)?.ok_or_else(|| {
        let message = if present {
            format!("{name} must not be empty")
        } else {
            format!("{name} is required")
        };
        Invalid::field(name, message)
    })
}

fn optional(
    fields: &mut Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Option<String>, Invalid> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let trimmed = text.trim();
            let chars = trimmed.chars().count();
            if chars > max {
                Err(Invalid::field(
                    name,
                    format!("{name} must be at most {max} characters (got {chars})"),
                ))
            } else if trimmed.is_empty() {
                Ok(None)
            } else {
                Ok(Some(trimmed.to_owned()))
            }
        }
        Some(other) => Err(Invalid::field(
            name,
            format!("{name} must be a string, not {}", json_type(&other)),
        )),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> String {
        NewPost::from_json(body.as_bytes())
            .unwrap_err()
            .field
            .unwrap()
    }

    #[test]
    fn trims_and_accepts() {
        let p = NewPost::from_json(br#"{"title":"  Hi ","content":"a\nb","author":"  "}"#).unwrap();
        assert_eq!(p.title, "Hi");
        assert_eq!(p.content, "a\nb");
        assert_eq!(p.author, None);
    }

    #[test]
    fn names_the_wrong_field() {
        assert_eq!(field_of(r#"{"content":"x"}"#), "title");
        assert_eq!(field_of(r#"{"title":" ","content":"x"}"#), "title");
        assert_eq!(field_of(r#"{"title":"t","content":5}"#), "content");
        assert_eq!(
            field_of(r#"{"title":"t","content":"c","extra":1}"#),
            "extra"
        );
        assert_eq!(
            field_of(r#"{"title":"t","content":"c","author":[]}"#),
            "author"
        );
        let long = format!(r#"{{"title":"{}","content":"c"}}"#, "é".repeat(201));
        assert_eq!(field_of(&long), "title");
        assert_eq!(field_of("[]"), "body");
    }

    #[test]
    fn counts_characters_not_bytes() {
        let ok = format!(r#"{{"title":"{}","content":"c"}}"#, "é".repeat(200));
        assert!(NewPost::from_json(ok.as_bytes()).is_ok());
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        // No field at fault: the HTTP layer answers 400, not 422.
        let e = NewPost::from_json(b"{").unwrap_err();
        assert_eq!(e.field, None);
    }
}
