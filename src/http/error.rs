//! Errors as the HTTP API reports them, mapped to status codes in one place.
//!
//! Every error response has the body
//! `{"error": {"code": string, "message": string, "field"?: string}}`.
//! The message is livefeed's own text: what went wrong inside (a storage or
//! Redis error) is logged with the request line, never sent.

use crate::feed::access::Denied;
use crate::feed::post::Invalid;
use crate::feed::publish::PublishError;
use crate::feed::FeedError;
use serde::Serialize;
use tide::{Response, StatusCode};

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable, machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The request field at fault, for 422s.
    pub field: Option<String>,
    /// What failed inside, for the log only.
    pub detail: Option<String>,
}

/// Carried by an error response to the request log: the internal cause.
#[derive(Debug, Clone)]
pub struct Detail(pub String);

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            detail: None,
        }
    }

    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BadRequest, code, message)
    }

    /// 422 naming `field`.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_owned()),
            ..Self::new(StatusCode::UnprocessableEntity, "invalid_field", message)
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NotFound, "not_found", message)
    }

    /// 503 with an internal cause for the log.
    fn unavailable(code: &'static str, message: &str, detail: String) -> Self {
        Self {
            detail: Some(detail),
            ..Self::new(StatusCode::ServiceUnavailable, code, message)
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        // Serialising strings into a String cannot fail.
        serde_json::to_string(&body).expect("error body serialises")
    }

    /// The response; an internal cause rides along for the request log.
    pub fn into_response(self) -> Response {
        let mut res = Response::builder(self.status)
            .content_type(tide::http::mime::JSON)
            .body(self.body())
            .build();
        if let Some(detail) = self.detail {
            res.insert_ext(Detail(detail));
        }
        res
    }
}

impl From<FeedError> for ApiError {
    fn from(e: FeedError) -> Self {
        match e {
            FeedError::Invalid(Invalid::Malformed(message)) => {
                Self::bad_request("malformed_json", message)
            }
            FeedError::Invalid(Invalid::Field { field, message }) => Self {
                field,
                ..Self::new(StatusCode::UnprocessableEntity, "invalid_field", message)
            },
            FeedError::BadFeed(bad) => Self::bad_request("invalid_feed", bad.0),
            FeedError::BadKey(bad) => Self::bad_request("invalid_idempotency_key", bad.0),
            FeedError::Denied(Denied::Unauthorized(why)) => Self::new(
                StatusCode::Unauthorized,
                "unauthorized",
                format!(
                    "{why}: send it as `Authorization: Bearer <token>` over HTTP, `?token=` on \
                     /ws and /events, `auth: {{token}}` to Socket.IO"
                ),
            ),
            FeedError::Denied(Denied::Forbidden(why)) => {
                Self::new(StatusCode::Forbidden, "forbidden", why)
            }
            FeedError::NotFound => Self::not_found("no such post"),
            FeedError::TooManyConnections => Self::new(
                StatusCode::ServiceUnavailable,
                "too_many_connections",
                "the server is at its connection limit; retry later",
            ),
            FeedError::Storage(e) => Self::unavailable(
                "storage_unavailable",
                "storage is unavailable; try again later",
                e.to_string(),
            ),
            FeedError::Publish(e) => publish_error(e),
        }
    }
}

fn publish_error(e: PublishError) -> ApiError {
    let (code, message) = match &e {
        PublishError::NotFound => return ApiError::not_found("no such post"),
        PublishError::KeyReused => {
            return ApiError::new(
                StatusCode::UnprocessableEntity,
                "idempotency_key_reused",
                "this Idempotency-Key was used with another request (another body, or another \
                 route or feed); send a new key for a new post",
            )
        }
        PublishError::Precondition { current } => {
            return ApiError::new(
                StatusCode::PreconditionFailed,
                "precondition_failed",
                format!(
                    "the post has changed: its ETag is \"{current}\", which If-Match does not name"
                ),
            )
        }
        PublishError::StorageUnavailable(_) => (
            "storage_unavailable",
            "storage is failing (the disk may be full); nothing was stored, try again later",
        ),
        PublishError::Storage(_) => (
            "storage_unavailable",
            "storage failed while writing; the change may or may not have been stored, \
             look before retrying",
        ),
        PublishError::Closed => (
            "unavailable",
            "the server is shutting down; nothing was stored, try again later",
        ),
        PublishError::Unavailable(_) | PublishError::Refused(_) => (
            "redis_unavailable",
            "the shared log (Redis) did not take the post; it was not stored, try again later",
        ),
        PublishError::Uncertain(_) => (
            "redis_unavailable",
            "the connection to the shared log (Redis) failed after the post was sent; \
             it may or may not have been stored",
        ),
        PublishError::Diverged(_) => (
            "replica_diverged",
            "this node's data does not match the shared log, so it takes no posts \
             (see /healthz)",
        ),
    };
    ApiError::unavailable(code, message, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_errors_map_to_statuses_without_internal_text() {
        let e = ApiError::from(FeedError::Invalid(Invalid::Malformed(
            "malformed JSON: x".into(),
        )));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BadRequest, "malformed_json")
        );
        let e = ApiError::from(FeedError::Invalid(Invalid::field("title", "t")));
        assert_eq!(e.field.as_deref(), Some("title"));
        let e = ApiError::from(FeedError::Publish(PublishError::Precondition {
            current: 9,
        }));
        assert_eq!(
            (e.status, e.code),
            (StatusCode::PreconditionFailed, "precondition_failed")
        );
        let inside = "IO error: Custom { kind: StorageFull }";
        for e in [
            PublishError::Storage(inside.into()),
            PublishError::StorageUnavailable(inside.into()),
        ] {
            let e = ApiError::from(FeedError::Publish(e));
            assert_eq!(
                (e.status, e.code),
                (StatusCode::ServiceUnavailable, "storage_unavailable")
            );
            assert!(!e.body().contains("StorageFull"), "{}", e.body());
            assert!(e.detail.unwrap().contains("StorageFull"));
        }
    }
}
