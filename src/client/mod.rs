//! A client of livefeed's HTTP API, for the terminal client: blocking
//! HTTP/1.1 with `ureq` (which brings no async runtime), plus the
//! Server-Sent Events reading `tail` needs to resume ([`sse`]).
//!
//! One request per connection (`Connection: close`): nothing is pooled.
//! Plain `http://` only; put a TLS-terminating proxy in front for anything
//! else.

pub mod sse;

use sse::{Parser, SseItem};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole non-streaming exchange may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest single line of an event stream.
const MAX_LINE: u64 = 1 << 20;

/// What can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an `http://` URL with a host.
    #[error("bad server URL `{0}`: {1}")]
    Url(String, &'static str),
    /// Connecting, writing or reading failed, or timed out.
    #[error("{0}")]
    Transport(String),
    /// The server's answer is not what this client understands.
    #[error("bad response from the server: {0}")]
    Protocol(String),
    /// The server answered with an error status.
    #[error("{0}")]
    Status(ErrorResponse),
}

impl From<ureq::Error> for ClientError {
    fn from(e: ureq::Error) -> Self {
        ClientError::Transport(e.to_string())
    }
}

/// A non-2xx answer, with the API's error body when there is one.
#[derive(Debug, Clone)]
pub struct ErrorResponse {
    /// The HTTP status.
    pub status: u16,
    /// `error.code`, when the body is the API's error JSON.
    pub code: Option<String>,
    /// `error.message`, or the raw body.
    pub message: String,
    /// `error.field`, for 422s.
    pub field: Option<String>,
}

impl ErrorResponse {
    /// Reads the API's error body `body` of a `status` answer.
    pub fn parse(status: u16, body: &str) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |key: &str| {
            error
                .and_then(|e| e.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Self {
            status,
            code: text("code"),
            message: text("message").unwrap_or_else(|| body.trim().to_owned()),
            field: text("field"),
        }
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server answered {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`)")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A livefeed server.
#[derive(Debug, Clone)]
pub struct Client {
    /// The base URL without its trailing slash.
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the server at `base`, such as `http://127.0.0.1:8080`
    /// (a path prefix is kept: `http://host/feed` serves `/feed/posts`).
    pub fn new(base: &str) -> Result<Self, ClientError> {
        let bad = |why| ClientError::Url(base.to_owned(), why);
        let url = url::Url::parse(base).map_err(|_| bad("not a URL"))?;
        if url.scheme() != "http" {
            return Err(bad("only http:// is supported"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(concat!("livefeed/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            agent: config.into(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /posts` (or `/feeds/{feed}/posts`), with an `Idempotency-Key`
    /// when given; the created post's JSON.
    pub fn create_post(
        &self,
        feed: Option<&str>,
        post: &serde_json::Value,
        token: Option<&str>,
        idempotency_key: Option<&str>,
    ) -> Result<String, ClientError> {
        let path = match feed {
            Some(feed) => format!("/feeds/{feed}/posts"),
            None => "/posts".to_owned(),
        };
        let mut request = headers(self.agent.post(self.url(&path)), token, None);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        answer(request.send(post.to_string()))
    }

    /// `PATCH /posts/{id}` with the fields of `patch`, only if the post's
    /// latest change is `if_match` when given; the edited post's JSON.
    pub fn update_post(
        &self,
        id: u64,
        patch: &serde_json::Value,
        token: Option<&str>,
        if_match: Option<u64>,
    ) -> Result<String, ClientError> {
        let url = self.url(&format!("/posts/{id}"));
        let request = headers(self.agent.patch(url), token, if_match);
        answer(request.send(patch.to_string()))
    }

    /// `DELETE /posts/{id}`, only if the post's latest change is
    /// `if_match` when given.
    pub fn delete_post(
        &self,
        id: u64,
        token: Option<&str>,
        if_match: Option<u64>,
    ) -> Result<String, ClientError> {
        let url = self.url(&format!("/posts/{id}"));
        answer(headers(self.agent.delete(url), token, if_match).call())
    }

    /// Opens `GET /events` for `feeds` (the default feed when empty),
    /// resuming after `last_event_id` when given, with `token` for private
    /// feeds. A read that waits longer than `stall` fails the stream.
    pub fn events(
        &self,
        feeds: &[String],
        token: Option<&str>,
        last_event_id: Option<u64>,
        stall: Duration,
    ) -> Result<EventStream, ClientError> {
        let mut url = url::Url::parse(&self.url("/events"))
            .map_err(|_| ClientError::Url(self.base.clone(), "not a URL"))?;
        {
            let mut query = url.query_pairs_mut();
            if !feeds.is_empty() {
                query.append_pair("feeds", &feeds.join(","));
            }
            if let Some(token) = token {
                query.append_pair("token", token);
            }
        }
        let mut request = self
            .agent
            .get(url.as_str())
            .config()
            .timeout_global(None)
            .timeout_per_read(Some(stall))
            .build()
            // A pooled connection would carry `tail`'s reconnect back to a
            // server that is shutting down (its stream ended cleanly).
            .header("Connection", "close")
            .header("Accept", "text/event-stream")
            .header("Cache-Control", "no-cache");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.call()?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.into_body().read_to_string().unwrap_or_default();
            return Err(ClientError::Status(ErrorResponse::parse(status, &body)));
        }
        Ok(EventStream {
            reader: BufReader::new(Box::new(response.into_body().into_reader())),
            parser: Parser::default(),
        })
    }
}

/// A fresh idempotency key: 128 random bits in hex.
pub fn new_idempotency_key() -> Result<String, ClientError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| ClientError::Transport(format!("no randomness for a key: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The headers of every write: JSON both ways, the credential, the
/// precondition, and one request per connection (a pooled connection
/// could outlive the server it was made to, across a restart).
fn headers<B>(
    request: ureq::RequestBuilder<B>,
    token: Option<&str>,
    if_match: Option<u64>,
) -> ureq::RequestBuilder<B> {
    let mut request = request
        .header("Connection", "close")
        .header("Content-Type", "application/json")
        .header("Accept", "application/json");
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if let Some(seq) = if_match {
        request = request.header("If-Match", format!("\"{seq}\""));
    }
    request
}

/// The body of a 2xx answer, else the API's error.
fn answer(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<String, ClientError> {
    let response = response?;
    let status = response.status().as_u16();
    let body = response.into_body().read_to_string()?;
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(ClientError::Status(ErrorResponse::parse(status, &body)))
    }
}

/// An open `GET /events` stream.
pub struct EventStream {
    reader: BufReader<Box<dyn Read + Send>>,
    parser: Parser,
}

impl EventStream {
    /// The next comment or block; `None` when the server ended the stream.
    pub fn next_item(&mut self) -> Result<Option<SseItem>, ClientError> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut self.reader)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .map_err(|e| ClientError::Transport(e.to_string()))?;
            if n == 0 {
                return Ok(None);
            }
            if line.last() != Some(&b'\n') {
                if n as u64 == MAX_LINE {
                    return Err(ClientError::Protocol("event stream line too long".into()));
                }
                // A last line without a line break is dropped, as browsers
                // do.
                return Ok(None);
            }
            line.pop();
            if let Some(item) = self.parser.line(&String::from_utf8_lossy(&line)) {
                return Ok(Some(item));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            Client::new("http://h:9/feed/").unwrap().url("/posts"),
            "http://h:9/feed/posts"
        );
        assert!(Client::new("https://h").is_err());
        assert!(Client::new("nonsense").is_err());
    }

    #[test]
    fn error_bodies_are_read_field_by_field() {
        let body =
            r#"{"error":{"code":"invalid_field","message":"title is required","field":"title"}}"#;
        assert_eq!(
            ErrorResponse::parse(422, body).to_string(),
            "server answered 422 invalid_field (field `title`): title is required"
        );
        assert_eq!(
            ErrorResponse::parse(502, " bad gateway\n").message,
            "bad gateway"
        );
    }
}
