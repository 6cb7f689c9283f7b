//! Errors as the HTTP API reports them, mapped to status codes in one place.
//!
//! Every error response has the body
//! `{"error": {"code": string, "message": string, "field"?: string}}`.

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
}

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

    /// 503: the store could not take the write.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::ServiceUnavailable, "unavailable", message)
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

    /// The response.
    pub fn into_response(self) -> Response {
        Response::builder(self.status)
            .content_type(tide::http::mime::JSON)
            .body(self.body())
            .build()
    }
}

impl From<crate::cluster::PublishError> for ApiError {
    fn from(e: crate::cluster::PublishError) -> Self {
        use crate::cluster::PublishError;
        log::warn!("create failed: {e}");
        let code = match e {
            PublishError::Diverged(_) => "replica_diverged",
            _ => "redis_unavailable",
        };
        Self::new(StatusCode::ServiceUnavailable, code, e.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        log::error!("store error: {e}");
        Self::unavailable(format!("storage unavailable: {e}"))
    }
}
