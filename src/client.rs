//! A small HTTP/1.1 client for livefeed's own API, on async-std.
//!
//! It is what `livefeed post` and `livefeed tail` speak, and what the
//! integration tests use: one request per connection (`Connection: close`),
//! bodies framed by `Content-Length`, chunked encoding or the end of the
//! connection, and a Server-Sent Events reader for `GET /events`. Plain
//! `http://` only; put a TLS-terminating proxy in front for anything else.

use async_std::io::BufReader;
use async_std::net::TcpStream;
use async_std::prelude::*;
use std::fmt;
use std::io;
use std::time::Duration;
use tide::http::url::{Host, Url};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole non-streaming exchange may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest status line plus headers accepted from a server.
const MAX_HEAD: usize = 64 * 1024;
/// Longest body of a non-streaming response accepted from a server.
const MAX_BODY: usize = 16 << 20;
/// Most bytes one read of a body asks for.
const READ_SIZE: usize = 16 * 1024;
/// Longest single line of an event stream.
const MAX_LINE: usize = 1 << 20;

/// What can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not an `http://` URL with a host.
    #[error("bad server URL `{0}`: {1}")]
    Url(String, &'static str),
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server's answer is not HTTP this client understands.
    #[error("bad response from the server: {0}")]
    Protocol(String),
    /// The server answered with an error status.
    #[error("{0}")]
    Status(ErrorResponse),
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
    fn from_response(response: &Response) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
        let error = parsed.as_ref().and_then(|v| v.get("error"));
        let text = |key: &str| {
            error
                .and_then(|e| e.get(key))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Self {
            status: response.status,
            code: text("code"),
            message: text("message")
                .unwrap_or_else(|| String::from_utf8_lossy(&response.body).trim().to_owned()),
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

/// A livefeed server: where to connect and the path prefix of its API.
#[derive(Debug, Clone)]
pub struct Server {
    host: String,
    port: u16,
    /// `host[:port]` for the Host header.
    authority: String,
    /// The base URL's path without its trailing slash ("" at the root).
    prefix: String,
}

impl Server {
    /// Parses a base URL such as `http://127.0.0.1:8080`.
    pub fn parse(base: &str) -> Result<Self, ClientError> {
        let bad = |why| ClientError::Url(base.to_owned(), why);
        let url = Url::parse(base).map_err(|_| bad("not a URL"))?;
        if url.scheme() != "http" {
            return Err(bad("only http:// is supported"));
        }
        let host = match url.host() {
            Some(Host::Domain(name)) => name.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(bad("no host")),
        };
        let port = url.port().unwrap_or(80);
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or(&host)),
            None => url.host_str().unwrap_or(&host).to_owned(),
        };
        Ok(Self {
            host,
            port,
            authority,
            prefix: url.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The server at a socket address (for tests).
    pub fn at(addr: std::net::SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
            authority: addr.to_string(),
            prefix: String::new(),
        }
    }

    async fn connect(&self) -> Result<TcpStream, ClientError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = async_std::future::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn send_head(
        &self,
        stream: &mut TcpStream,
        request: &Request<'_>,
    ) -> Result<(), ClientError> {
        let mut head = format!(
            "{} {}{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: livefeed/{}\r\n",
            request.method,
            self.prefix,
            request.target,
            self.authority,
            env!("CARGO_PKG_VERSION"),
        );
        for (name, value) in &request.headers {
            if name.contains(['\r', '\n']) || value.contains(['\r', '\n']) {
                return Err(ClientError::Protocol(format!("bad header {name:?}")));
            }
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = request.body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        if let Some(body) = request.body {
            stream.write_all(body).await?;
        }
        stream.flush().await?;
        Ok(())
    }

    /// Sends `request` and reads the whole response, whatever its status.
    pub async fn send(&self, request: &Request<'_>) -> Result<Response, ClientError> {
        let exchange = async {
            let mut stream = self.connect().await?;
            self.send_head(&mut stream, request).await?;
            let mut reader = BufReader::new(stream);
            let head = read_head(&mut reader).await?;
            let body = Body::new(reader, &head).read_all(MAX_BODY).await?;
            Ok(Response {
                status: head.status,
                headers: head.headers,
                body,
            })
        };
        async_std::future::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))?
    }

    /// `POST /posts` with a JSON body; the created post's JSON on 201.
    pub async fn create_post(
        &self,
        post: &serde_json::Value,
        token: Option<&str>,
    ) -> Result<Response, ClientError> {
        let body = post.to_string();
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut request = Request::new("POST", "/posts")
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(body.as_bytes());
        if let Some(auth) = &auth {
            request = request.header("Authorization", auth);
        }
        let response = self.send(&request).await?;
        response.ok()
    }

    /// Opens `GET /events`, resuming after `last_event_id` when given.
    /// A non-200 answer is a [`ClientError::Status`].
    pub async fn events(&self, last_event_id: Option<u64>) -> Result<EventStream, ClientError> {
        self.events_at("/events", last_event_id).await
    }

    /// Opens an event stream at `target` (such as `/events?since=5`),
    /// sending `Last-Event-ID` when given.
    pub async fn events_at(
        &self,
        target: &str,
        last_event_id: Option<u64>,
    ) -> Result<EventStream, ClientError> {
        let id = last_event_id.map(|id| id.to_string());
        let mut request = Request::new("GET", target)
            .header("Accept", "text/event-stream")
            .header("Cache-Control", "no-cache");
        if let Some(id) = &id {
            request = request.header("Last-Event-ID", id);
        }
        let opening = async {
            let mut stream = self.connect().await?;
            self.send_head(&mut stream, &request).await?;
            let mut reader = BufReader::new(stream);
            let head = read_head(&mut reader).await?;
            Ok::<_, ClientError>((reader, head))
        };
        let (reader, head) = async_std::future::timeout(REQUEST_TIMEOUT, opening)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))??;
        let mut body = Body::new(reader, &head);
        if head.status != 200 {
            let bytes = async_std::future::timeout(REQUEST_TIMEOUT, body.read_all(MAX_BODY))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request timed out"))??;
            let response = Response {
                status: head.status,
                headers: head.headers,
                body: bytes,
            };
            return Err(ClientError::Status(ErrorResponse::from_response(&response)));
        }
        Ok(EventStream {
            headers: head.headers,
            body,
            buf: Vec::new(),
        })
    }
}

/// A request to send.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    method: &'a str,
    target: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// `method target` (the target is the path and query below the base
    /// URL's path).
    pub fn new(method: &'a str, target: &'a str) -> Self {
        Self {
            method,
            target,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sets the body (its length is sent as `Content-Length`).
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = Some(body);
        self
    }
}

/// A whole response.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from its transfer encoding.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ClientError::Protocol(format!("body is not JSON: {e}")))
    }

    /// `self` when the status is 2xx, else the error it carries.
    pub fn ok(self) -> Result<Self, ClientError> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(ClientError::Status(ErrorResponse::from_response(&self)))
        }
    }
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

async fn read_head(reader: &mut BufReader<TcpStream>) -> Result<Head, ClientError> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = reader.read_until(b'\n', &mut raw).await?;
        if n == 0 {
            return Err(ClientError::Protocol(
                "connection closed before a response".into(),
            ));
        }
        if raw.len() > MAX_HEAD {
            return Err(ClientError::Protocol("response head too large".into()));
        }
        let line = &raw[before..];
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let mut lines = text.lines();
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| ClientError::Protocol(format!("bad status line {status_line:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Head { status, headers })
}

/// How a response body is delimited.
enum Framing {
    Length(u64),
    /// Bytes left in the current chunk; `None` before a chunk-size line.
    Chunked(Option<u64>),
    UntilClose,
    Done,
}

/// A response body, decoded from its framing.
///
/// Its reads are not cancel-safe: a read abandoned half way (by a timeout)
/// leaves the body unusable, and callers drop it.
struct Body {
    inner: BufReader<TcpStream>,
    framing: Framing,
}

impl Body {
    fn new(inner: BufReader<TcpStream>, head: &Head) -> Self {
        let chunked = header(&head.headers, "transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = header(&head.headers, "content-length").and_then(|v| v.parse::<u64>().ok());
        let framing = if matches!(head.status, 204 | 304) || head.status < 200 {
            Framing::Done
        } else if chunked {
            Framing::Chunked(None)
        } else if let Some(length) = length {
            Framing::Length(length)
        } else {
            Framing::UntilClose
        };
        Self { inner, framing }
    }

    /// Appends the next decoded bytes to `out`; `false` at the end of the
    /// body.
    async fn read_some(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
        loop {
            match self.framing {
                Framing::Done => return Ok(false),
                Framing::Length(0) => self.framing = Framing::Done,
                Framing::Length(left) => {
                    let n = read_at_most(&mut self.inner, left, out).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    self.framing = Framing::Length(left - n);
                    return Ok(true);
                }
                Framing::UntilClose => {
                    if read_at_most(&mut self.inner, u64::MAX, out).await? == 0 {
                        self.framing = Framing::Done;
                        return Ok(false);
                    }
                    return Ok(true);
                }
                Framing::Chunked(None) => {
                    let line = framing_line(&mut self.inner).await?;
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = u64::from_str_radix(size, 16).map_err(|_| {
                        io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                    })?;
                    // livefeed sends no trailers, and the connection closes
                    // after the last chunk.
                    self.framing = match size {
                        0 => Framing::Done,
                        size => Framing::Chunked(Some(size)),
                    };
                }
                Framing::Chunked(Some(0)) => {
                    // The line break after a chunk's data.
                    framing_line(&mut self.inner).await?;
                    self.framing = Framing::Chunked(None);
                }
                Framing::Chunked(Some(left)) => {
                    let n = read_at_most(&mut self.inner, left, out).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    self.framing = Framing::Chunked(Some(left - n));
                    return Ok(true);
                }
            }
        }
    }

    /// The rest of the body, at most `max` bytes.
    async fn read_all(&mut self, max: usize) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::new();
        while self.read_some(&mut body).await? {
            if body.len() > max {
                return Err(ClientError::Protocol("response body too large".into()));
            }
        }
        Ok(body)
    }
}

/// Appends up to `limit` bytes (and at most what one read gives) to `out`.
async fn read_at_most(
    inner: &mut BufReader<TcpStream>,
    limit: u64,
    out: &mut Vec<u8>,
) -> io::Result<u64> {
    let max = usize::try_from(limit).map_or(READ_SIZE, |l| l.min(READ_SIZE));
    let start = out.len();
    out.resize(start + max, 0);
    let read = inner.read(&mut out[start..]).await;
    let n = *read.as_ref().unwrap_or(&0);
    out.truncate(start + n);
    read.map(|n| n as u64)
}

/// One line of chunk framing (a size, or the empty line after data).
async fn framing_line(inner: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = Vec::new();
    (&mut *inner)
        .take(1024)
        .read_until(b'\n', &mut line)
        .await?;
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated or overlong chunk framing",
        ));
    }
    Ok(String::from_utf8_lossy(&line).trim().to_owned())
}

/// One item of an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A comment line (`: ping`), without the colon and leading space.
    Comment(String),
    /// A block of fields ended by a blank line. A block with `id` but no
    /// `data` dispatches no event in a browser but still moves its
    /// Last-Event-ID.
    Event(SseEvent),
}

/// The fields of one block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`, if the block had one.
    pub id: Option<String>,
    /// `event:`, if the block had one.
    pub event: Option<String>,
    /// `data:` lines joined with `\n`, if the block had any.
    pub data: Option<String>,
    /// `retry:` in milliseconds, if the block had a valid one.
    pub retry: Option<u64>,
}

/// An open `GET /events` stream.
pub struct EventStream {
    headers: Vec<(String, String)>,
    body: Body,
    /// Decoded bytes not yet parsed.
    buf: Vec<u8>,
}

impl EventStream {
    /// The response headers, names lower-cased.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The next line, without its line break; `None` at the end of the
    /// stream (a last line without a line break is dropped, as browsers
    /// do).
    async fn line(&mut self) -> Result<Option<String>, ClientError> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.buf[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + i;
                let line = String::from_utf8_lossy(&self.buf[..end])
                    .trim_end_matches('\r')
                    .to_owned();
                self.buf.drain(..=end);
                return Ok(Some(line));
            }
            searched = self.buf.len();
            if searched > MAX_LINE {
                return Err(ClientError::Protocol("event stream line too long".into()));
            }
            if !self.body.read_some(&mut self.buf).await? {
                return Ok(None);
            }
        }
    }

    /// The next comment or block; `None` when the server ended the stream.
    ///
    /// Not cancel-safe: after a timeout around it, drop the stream.
    pub async fn next(&mut self) -> Result<Option<SseItem>, ClientError> {
        let mut event = SseEvent::default();
        let mut fields = false;
        loop {
            let Some(line) = self.line().await? else {
                return Ok(None);
            };
            if line.is_empty() {
                if fields {
                    return Ok(Some(SseItem::Event(event)));
                }
                continue;
            }
            if let Some(comment) = line.strip_prefix(':') {
                if !fields {
                    let comment = comment.strip_prefix(' ').unwrap_or(comment);
                    return Ok(Some(SseItem::Comment(comment.to_owned())));
                }
                continue;
            }
            let (name, value) = match line.split_once(':') {
                Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_str(), ""),
            };
            fields = true;
            match name {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                "data" => match &mut event.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => event.data = Some(value.to_owned()),
                },
                "retry" => event.retry = value.parse().ok(),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls() {
        let s = Server::parse("http://example.com:9000/feed/").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("example.com", 9000));
        assert_eq!(s.authority, "example.com:9000");
        assert_eq!(s.prefix, "/feed");
        let s = Server::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (s.host.as_str(), s.authority.as_str()),
            ("::1", "[::1]:8080")
        );
        assert_eq!(Server::parse("http://h").unwrap().port, 80);
        assert!(Server::parse("https://h").is_err());
        assert!(Server::parse("nonsense").is_err());
    }

    #[test]
    fn error_bodies_are_read_field_by_field() {
        let response = Response {
            status: 422,
            headers: Vec::new(),
            body: br#"{"error":{"code":"invalid_field","message":"title is required","field":"title"}}"#
                .to_vec(),
        };
        let e = ErrorResponse::from_response(&response);
        assert_eq!(
            e.to_string(),
            "server answered 422 invalid_field (field `title`): title is required"
        );
    }
}
