//! The post wire format and the validation of new posts.
//!
//! A post is `{"id", "title", "content", "author", "createdAt"}`. Requests
//! are validated field by field so a client learns which field is wrong;
//! validation trims surrounding white space and counts characters, not bytes.

use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// Malformed JSON is a 400; anything about the fields is a 422 naming
    /// the field.
    pub fn from_json(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request("malformed_json", format!("malformed JSON: {e}")))?;
        let Value::Object(mut fields) = value else {
            return Err(ApiError::invalid_field(
                "body",
                "the body must be a JSON object",
            ));
        };
        let title = required(&mut fields, "title", MAX_TITLE)?;
        let content = required(&mut fields, "content", MAX_CONTENT)?;
        let author = optional(&mut fields, "author", MAX_AUTHOR)?;
        if let Some(unknown) = fields.keys().next() {
            return Err(ApiError::invalid_field(
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

fn required(fields: &mut Map<String, Value>, name: &str, max: usize) -> Result<String, ApiError> {
    let present = fields.get(name).is_some_and(|v| !v.is_null());
    optional(fields, name, max)?.ok_or_else(|| {
        let message = if present {
            format!("{name} must not be empty")
        } else {
            format!("{name} is required")
        };
        ApiError::invalid_field(name, message)
    })
}

fn optional(
    fields: &mut Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let trimmed = text.trim();
            let chars = trimmed.chars().count();
            if chars > max {
                Err(ApiError::invalid_field(
                    name,
                    format!("{name} must be at most {max} characters (got {chars})"),
                ))
            } else if trimmed.is_empty() {
                Ok(None)
            } else {
                Ok(Some(trimmed.to_owned()))
            }
        }
        Some(other) => Err(ApiError::invalid_field(
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
        let e = NewPost::from_json(b"{").unwrap_err();
        assert_eq!(e.status, tide::StatusCode::BadRequest);
    }
}
