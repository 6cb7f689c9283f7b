//! The post wire format and the validation of requests that create or edit
//! one.
//!
//! A post is `{"id", "feed", "title", "content", "author", "createdAt",
//! "updatedAt"}`. Requests are validated field by field so a client learns
//! which field is wrong; validation trims surrounding white space and counts
//! characters, not bytes. An edit ([`Patch`]) validates each field it
//! carries exactly as a create does.

use super::name::{FeedName, DEFAULT_FEED};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::SystemTime;

/// Longest title, in characters after trimming.
pub const MAX_TITLE: usize = 200;
/// Longest content, in characters after trimming.
pub const MAX_CONTENT: usize = 10_000;
/// Longest author name, in characters after trimming.
pub const MAX_AUTHOR: usize = 100;

/// The fields a post's body may carry.
const FIELDS: &str = "title, content, author";

/// A stored post, as the HTTP API and every push transport show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Post {
    /// Server-assigned, strictly increasing.
    pub id: u64,
    /// The post's feed (posts stored before feeds existed are in the
    /// default one).
    #[serde(default = "default_feed")]
    pub feed: String,
    /// 1..=200 characters.
    pub title: String,
    /// 1..=10000 characters; line breaks are kept.
    pub content: String,
    /// Up to 100 characters, or null for anonymous posts.
    pub author: Option<String>,
    /// Creation time, RFC 3339 in UTC with milliseconds.
    pub created_at: String,
    /// The time of the latest edit, or null if it was never edited.
    #[serde(default)]
    pub updated_at: Option<String>,
}

fn default_feed() -> String {
    DEFAULT_FEED.to_owned()
}

/// The current time as posts show it: RFC 3339 in UTC, milliseconds, `Z`.
pub fn timestamp() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Why a request body is not a valid post or edit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The body is not JSON at all.
    #[error("{0}")]
    Malformed(String),
    /// The JSON is not an acceptable post: `field` names the field at
    /// fault, when one is.
    #[error("{message}")]
    Field {
        /// The field at fault.
        field: Option<String>,
        /// What is wrong, for the client.
        message: String,
    },
}

impl Invalid {
    /// `field` is wrong.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Invalid::Field {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    /// The field at fault, if one is.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            Invalid::Field { field, .. } => field.as_deref(),
            Invalid::Malformed(_) => None,
        }
    }
}

/// A validated request to create a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPost {
    /// The feed it goes to.
    pub feed: FeedName,
    /// Trimmed title.
    pub title: String,
    /// Trimmed content.
    pub content: String,
    /// Trimmed author; `None` when absent, null or blank.
    pub author: Option<String>,
}

impl NewPost {
    /// Parses and validates a request body for a post of `feed`.
    pub fn from_json(feed: FeedName, body: &[u8]) -> Result<Self, Invalid> {
        let mut fields = object(body)?;
        let title = required(&mut fields, "title", MAX_TITLE)?;
        let content = required(&mut fields, "content", MAX_CONTENT)?;
        let author = optional(&mut fields, "author", MAX_AUTHOR)?;
        no_more(&fields)?;
        Ok(Self {
            feed,
            title,
            content,
            author,
        })
    }

    /// The post this becomes with its id and creation time.
    pub fn into_post(self, id: u64, created_at: String) -> Post {
        Post {
            id,
            feed: self.feed.as_str().to_owned(),
            title: self.title,
            content: self.content,
            author: self.author,
            created_at,
            updated_at: None,
        }
    }
}

/// A validated edit: the fields it changes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    /// A new title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A new author: `Some(None)` makes the post anonymous.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub author: Option<Option<String>>,
}

impl Patch {
    /// Parses and validates an edit's body: an object with one or more of
    /// `title`, `content`, `author`, each checked as on create.
    pub fn from_json(body: &[u8]) -> Result<Self, Invalid> {
        let mut fields = object(body)?;
        if fields.is_empty() {
            return Err(Invalid::Field {
                field: None,
                message: format!("an edit must change at least one of {FIELDS}"),
            });
        }
        let title = edited(&mut fields, "title", MAX_TITLE)?;
        let content = edited(&mut fields, "content", MAX_CONTENT)?;
        let author = match fields.contains_key("author") {
            true => Some(optional(&mut fields, "author", MAX_AUTHOR)?),
            false => None,
        };
        no_more(&fields)?;
        Ok(Self {
            title,
            content,
            author,
        })
    }

    /// `post` with this edit applied at `updated_at`.
    pub fn apply(&self, post: &Post, updated_at: String) -> Post {
        let mut edited = post.clone();
        if let Some(title) = &self.title {
            edited.title = title.clone();
        }
        if let Some(content) = &self.content {
            edited.content = content.clone();
        }
        if let Some(author) = &self.author {
            edited.author = author.clone();
        }
        edited.updated_at = Some(updated_at);
        edited
    }
}

/// A required field of an edit: absent is no change, but present it must
/// be a non-empty string.
fn edited(
    fields: &mut Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Option<String>, Invalid> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::Null) => Err(Invalid::field(name, format!("{name} must not be null"))),
        Some(_) => required(fields, name, max).map(Some),
    }
}

/// `Option<Option<T>>` that tells an absent field (`None`) from a null one
/// (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<Option<String>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value
            .as_ref()
            .and_then(Option::as_ref)
            .serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(deserializer).map(Some)
    }
}

/// The body as a JSON object.
fn object(body: &[u8]) -> Result<Map<String, Value>, Invalid> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Invalid::Malformed(format!("malformed JSON: {e}")))?;
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(Invalid::field("body", "the body must be a JSON object")),
    }
}

/// Refuses whatever field is left.
fn no_more(fields: &Map<String, Value>) -> Result<(), Invalid> {
    match fields.keys().next() {
        Some(unknown) => Err(Invalid::field(
            unknown,
            format!("unknown field `{unknown}`; allowed: {FIELDS}"),
        )),
        None => Ok(()),
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
        NewPost::from_json(FeedName::main(), body.as_bytes())
            .unwrap_err()
            .field_name()
            .unwrap()
            .to_owned()
    }

    fn patch_error(body: &str) -> Invalid {
        Patch::from_json(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn trims_and_accepts() {
        let p = NewPost::from_json(
            FeedName::main(),
            br#"{"title":"  Hi ","content":"a\nb","author":"  "}"#,
        )
        .unwrap();
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
        assert!(NewPost::from_json(FeedName::main(), ok.as_bytes()).is_ok());
    }

    #[test]
    fn malformed_json_is_a_bad_request() {
        // No field at fault: the HTTP layer answers 400, not 422.
        let e = NewPost::from_json(FeedName::main(), b"{").unwrap_err();
        assert!(matches!(e, Invalid::Malformed(_)), "{e:?}");
    }

    #[test]
    fn patches_validate_what_they_carry() {
        let p = Patch::from_json(br#"{"title":" New ","author":null}"#).unwrap();
        assert_eq!(p.title.as_deref(), Some("New"));
        assert_eq!(p.content, None);
        assert_eq!(p.author, Some(None));
        let p = Patch::from_json(br#"{"author":"  "}"#).unwrap();
        assert_eq!(p.author, Some(None), "a blank author means anonymous");
        assert_eq!(patch_error("{}").field_name(), None);
        assert!(matches!(patch_error("{}"), Invalid::Field { .. }));
        assert_eq!(patch_error(r#"{"title":""}"#).field_name(), Some("title"));
        assert_eq!(patch_error(r#"{"title":null}"#).field_name(), Some("title"));
        assert_eq!(
            patch_error(r#"{"content":7}"#).field_name(),
            Some("content")
        );
        assert_eq!(patch_error(r#"{"id":7}"#).field_name(), Some("id"));
        assert_eq!(patch_error("[1]").field_name(), Some("body"));
        assert!(matches!(patch_error("{"), Invalid::Malformed(_)));
    }

    #[test]
    fn a_patch_changes_only_its_fields_and_round_trips() {
        let post = NewPost {
            feed: FeedName::main(),
            title: "t".into(),
            content: "c".into(),
            author: Some("a".into()),
        }
        .into_post(3, "2026-01-01T00:00:00.000Z".into());
        let patch = Patch {
            content: Some("c2".into()),
            author: Some(None),
            ..Patch::default()
        };
        let edited = patch.apply(&post, "2026-01-02T00:00:00.000Z".into());
        assert_eq!(
            (edited.title.as_str(), edited.content.as_str()),
            ("t", "c2")
        );
        assert_eq!(edited.author, None);
        assert_eq!(
            edited.updated_at.as_deref(),
            Some("2026-01-02T00:00:00.000Z")
        );
        let json = serde_json::to_string(&patch).unwrap();
        assert_eq!(json, r#"{"content":"c2","author":null}"#);
        assert_eq!(serde_json::from_str::<Patch>(&json).unwrap(), patch);
        assert_eq!(
            serde_json::from_str::<Patch>(r#"{"title":"x"}"#)
                .unwrap()
                .author,
            None
        );
    }
}
