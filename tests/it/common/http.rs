//! A raw HTTP/1.1 client: requests as the tests write them, and the one
//! place responses are parsed, from a live connection ([`Api`],
//! [`EventStream`](super::sse::EventStream)) or from bytes already read
//! ([`parse_response`], [`raw_exchange`], [`request`]).
//!
//! One request per connection (`Connection: close`); bodies framed by
//! `Content-Length`, chunked encoding or the end of the connection.

use super::sse::EventStream;
use super::{within, WAIT};
use async_std::net::TcpStream;
use futures::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt};
use futures::FutureExt;
pub use livefeed::client::ErrorResponse;
use serde_json::Value;
use std::io;
use std::net::SocketAddr;

/// Longest status line plus headers accepted from the server.
const MAX_HEAD: usize = 64 * 1024;
/// Longest body of a non-streaming response accepted from the server.
const MAX_BODY: usize = 16 << 20;
/// Most bytes one read of a body asks for.
const READ_SIZE: usize = 16 * 1024;

/// What can go wrong talking to the server through [`Api`].
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed, or took longer than
    /// [`WAIT`].
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The server's answer is not HTTP this client understands.
    #[error("bad response from the server: {0}")]
    Protocol(String),
    /// The server answered with an error status.
    #[error("{0}")]
    Status(ErrorResponse),
}

fn timed_out() -> ClientError {
    io::Error::new(io::ErrorKind::TimedOut, "timed out").into()
}

/// A request to send with [`Api::send`].
#[derive(Debug, Clone)]
pub struct Request<'a> {
    method: &'a str,
    target: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// `method target` (the target is the path and query).
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
    pub status: u16,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body, decoded from its transfer encoding.
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The error code of an error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `self` when the status is 2xx, else the error it carries.
    pub fn ok(self) -> Result<Self, ClientError> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(ClientError::Status(ErrorResponse::parse(
                self.status,
                &self.text(),
            )))
        }
    }
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A response's status line and headers.
pub(super) struct Head {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
}

/// Reads a response head, through its blank line.
pub(super) async fn read_head<R>(reader: &mut R) -> Result<Head, ClientError>
where
    R: AsyncBufRead + Unpin,
{
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        let n = reader.read_until(b'\n', &mut raw).await?;
        if n == 0 {
            return Err(ClientError::Protocol(format!(
                "connection closed before a whole response head: {:?}",
                String::from_utf8_lossy(&raw)
            )));
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
/// leaves the body unusable.
pub(super) struct Body<R> {
    inner: R,
    framing: Framing,
}

impl<R: AsyncBufRead + Unpin> Body<R> {
    pub(super) fn new(inner: R, head: &Head) -> Self {
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
    pub(super) async fn read_some(&mut self, out: &mut Vec<u8>) -> io::Result<bool> {
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
                    // livefeed sends no trailers.
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

    /// The rest of the body, at most [`MAX_BODY`] bytes.
    async fn read_all(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::new();
        while self.read_some(&mut body).await? {
            if body.len() > MAX_BODY {
                return Err(ClientError::Protocol("response body too large".into()));
            }
        }
        Ok(body)
    }
}

/// Appends up to `limit` bytes (and at most what one read gives) to `out`.
async fn read_at_most<R: AsyncRead + Unpin>(
    inner: &mut R,
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
async fn framing_line<R: AsyncBufRead + Unpin>(inner: &mut R) -> io::Result<String> {
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

/// Parses one response from bytes already read. The body is what arrived
/// of it, decoded: a caller may parse a head before reading the body, or a
/// response whose connection was cut.
pub fn parse_response(raw: &[u8]) -> Response {
    let parsing = async {
        let mut reader = raw;
        let head = read_head(&mut reader).await?;
        let mut body = Vec::new();
        let mut decoder = Body::new(reader, &head);
        while let Ok(true) = decoder.read_some(&mut body).await {}
        Ok::<_, ClientError>(Response {
            status: head.status,
            headers: head.headers,
            body,
        })
    };
    parsing
        .now_or_never()
        .expect("reading from memory never waits")
        .unwrap_or_else(|e| panic!("no response in {:?}: {e}", String::from_utf8_lossy(raw)))
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`), with
/// `Content-Length` added unless `headers` has it. The body is sent even
/// if the server answers first, then the connection is half-closed (a
/// server draining a declared-but-unsent body sees EOF), and the answer is
/// read until the server closes. Panics on a connection failure or after
/// `POST /posts` with a JSON `body`, on a fresh connection.
pub async fn post_json(addr: SocketAddr, body: &str) -> Response {
    request(
        addr,
        "POST",
        "/posts",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
}

/// [`WAIT`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    async_std::future::timeout(WAIT, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("write head");
        // The server may answer (413) before reading everything.
        let _ = stream.write_all(body).await;
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        parse_response(&raw)
    })
    .await
    .expect("HTTP request timed out")
}

/// Reads one whole response from a kept-alive connection, leaving the
/// connection at the start of whatever follows it.
pub async fn read_response<R: AsyncBufRead + Unpin>(reader: &mut R) -> Response {
    within(async {
        let head = read_head(&mut *reader).await.expect("a response head");
        let mut body = Vec::new();
        let mut decoder = Body::new(&mut *reader, &head);
        while decoder.read_some(&mut body).await.expect("a response body") {}
        Response {
            status: head.status,
            headers: head.headers,
            body,
        }
    })
    .await
}

/// Sends raw bytes on a fresh connection and reads the answer until the
/// server closes (send `Connection: close`, or a request the server
/// refuses, which it closes after).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let mut stream = within(TcpStream::connect(addr)).await.unwrap();
    within(stream.write_all(request)).await.unwrap();
    let mut raw = Vec::new();
    within(stream.read_to_end(&mut raw)).await.unwrap();
    parse_response(&raw)
}

/// The tests' API client: [`Request`]s on fresh connections to one server,
/// each exchange within [`WAIT`]; failures are errors, not panics.
#[derive(Debug, Clone)]
pub struct Api {
    addr: SocketAddr,
}

impl Api {
    pub fn at(addr: SocketAddr) -> Self {
        Self { addr }
    }

    async fn connect(&self) -> Result<TcpStream, ClientError> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Connects and sends `request`'s head and body; the connection, to
    /// read the answer from.
    async fn start(&self, request: &Request<'_>) -> Result<TcpStream, ClientError> {
        let mut stream = self.connect().await?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: livefeed-tests\r\n",
            request.method, request.target, self.addr,
        );
        for (name, value) in &request.headers {
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
        Ok(stream)
    }

    /// Sends `request` and reads the whole response, whatever its status.
    pub async fn send(&self, request: &Request<'_>) -> Result<Response, ClientError> {
        let exchange = async {
            let mut reader = futures::io::BufReader::new(self.start(request).await?);
            let head = read_head(&mut reader).await?;
            let body = Body::new(reader, &head).read_all().await?;
            Ok(Response {
                status: head.status,
                headers: head.headers,
                body,
            })
        };
        async_std::future::timeout(WAIT, exchange)
            .await
            .map_err(|_| timed_out())?
    }

    /// `POST /posts` with a JSON body; the response when it is a 2xx.
    pub async fn create_post(
        &self,
        post: &Value,
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
        self.send(&request).await?.ok()
    }

    /// Opens `GET /events`, resuming after `last_event_id` when given. A
    /// non-200 answer is a [`ClientError::Status`].
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
            let mut reader = futures::io::BufReader::new(self.start(&request).await?);
            let head = read_head(&mut reader).await?;
            let mut body = Body::new(reader, &head);
            if head.status != 200 {
                let text = String::from_utf8_lossy(&body.read_all().await?).into_owned();
                return Err(ClientError::Status(ErrorResponse::parse(
                    head.status,
                    &text,
                )));
            }
            Ok(EventStream::new(head.headers, body))
        };
        async_std::future::timeout(WAIT, opening)
            .await
            .map_err(|_| timed_out())?
    }
}
