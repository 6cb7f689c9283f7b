//! Reading requests off a connection: the head, parsed with httparse into
//! a tide request, and the body behind it, framed by `Content-Length` or
//! chunked coding.
//!
//! Every read goes through the connection's one buffer ([`Inbound`]), so
//! bytes a client sends ahead (the next, pipelined request) stay there for
//! the next exchange instead of vanishing with a per-request buffer. The
//! body handed to the app reads from that buffer too, only as far as its
//! framing allows, and reports whether it was read to its end: a response
//! sent before that closes the connection (see [`Inbound::end_request`]).

use async_std::net::TcpStream;
use futures::io::{AsyncBufRead, AsyncRead, AsyncWrite, BufReader};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use tide::http::headers::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, TRANSFER_ENCODING};
use tide::http::{Method, Url, Version};

/// Longest request head (request line and header fields) accepted; a
/// longer one is a 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header fields a head may carry.
const MAX_HEADERS: usize = 128;
/// Longest line of chunked framing (a chunk size with its extensions, or a
/// trailer field).
const MAX_FRAMING_LINE: usize = 1024;
/// Most bytes of trailer fields after a chunked body (they are read and
/// dropped).
const MAX_TRAILERS: usize = MAX_HEAD;
/// The most a request body's reader buffers at a time.
const BODY_BUFFER: usize = 8 * 1024;
/// The interim answer to `Expect: 100-continue`, sent when the app first
/// reads the body.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Why a request head was refused before it reached the app.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// A method tide does not know (such as `QUERY`).
    #[error("unknown HTTP method {0:?}")]
    Method(String),
    /// Not HTTP/1.0 or HTTP/1.1: HTTP/2's preface, `HTTP/2.0`, `HTTP/3`.
    #[error("unsupported HTTP version")]
    Version,
    /// A head of [`MAX_HEAD`] bytes or more, or too many header fields.
    #[error("request head too large")]
    TooLarge,
    /// Anything else that is not a valid request.
    #[error("{0}")]
    Malformed(&'static str),
}

/// A parsed request head: the request (without its body yet) and what the
/// connection needs to know about it.
pub(super) struct Head {
    pub(super) request: tide::http::Request,
    pub(super) exchange: Exchange,
    framing: Framing,
    expect_continue: bool,
}

/// What the response side needs to know of its request.
#[derive(Debug, Clone)]
pub(super) struct Exchange {
    /// The request's version.
    pub(super) version: Version,
    /// The request's method (a `HEAD` response has no body).
    pub(super) method: Method,
    /// `Connection: close` was asked for.
    pub(super) close: bool,
    /// `Connection: keep-alive` was asked for (what an HTTP/1.0 client
    /// must send to keep the connection).
    pub(super) keep_alive: bool,
    /// `Upgrade` with `Connection: upgrade`.
    pub(super) upgrade: bool,
}

/// Whether a `Connection`-style header of `req` lists `token`.
fn lists(
    req: &tide::http::Request,
    name: impl Into<tide::http::headers::HeaderName>,
    token: &str,
) -> bool {
    req.header(name).is_some_and(|values| {
        values
            .iter()
            .flat_map(|v| v.as_str().split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// Parses a complete head (through its blank line). `local` names the
/// server when an HTTP/1.0 request has no `Host`.
pub(super) fn parse(raw: &[u8], local: Option<SocketAddr>) -> Result<Head, HeadError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut fields);
    match parsed.parse(raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HeadError::Malformed("incomplete request head"))
        }
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed("the request is not valid HTTP/1.1")),
    }
    let name = parsed.method.ok_or(HeadError::Malformed("no method"))?;
    let method = Method::from_str(name).map_err(|_| HeadError::Method(name.to_owned()))?;
    let version = match parsed.version {
        Some(0) => Version::Http1_0,
        Some(1) => Version::Http1_1,
        _ => return Err(HeadError::Version),
    };
    let host = parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("host"))
        .map(|h| std::str::from_utf8(h.value).map(str::trim));
    let host = match (host, version) {
        (Some(Ok(host)), _) if !host.is_empty() => host.to_owned(),
        (Some(_), _) => return Err(HeadError::Malformed("invalid Host header")),
        // RFC 9112 §3.2: a 1.1 request without Host is a 400; HTTP/1.0
        // clients (health checks) may leave it out.
        (None, Version::Http1_1) => return Err(HeadError::Malformed("missing Host header")),
        (None, _) => local.map_or_else(|| "localhost".to_owned(), |a| a.to_string()),
    };
    let target = parsed
        .path
        .ok_or(HeadError::Malformed("no request target"))?;
    let url = url(&method, target, &host)?;
    let mut request = tide::http::Request::new(method, url);
    request.set_version(Some(version));
    for field in parsed.headers.iter() {
        let value = std::str::from_utf8(field.value)
            .ok()
            .filter(|v| v.is_ascii())
            .ok_or(HeadError::Malformed("a header value is not ASCII"))?;
        request.append_header(field.name, value);
    }
    let framing = framing(&request, version)?;
    let exchange = Exchange {
        version,
        method,
        close: lists(&request, CONNECTION, "close"),
        keep_alive: lists(&request, CONNECTION, "keep-alive"),
        upgrade: request.header("Upgrade").is_some() && lists(&request, CONNECTION, "upgrade"),
    };
    let expect_continue = version == Version::Http1_1
        && request
            .header(EXPECT)
            .is_some_and(|v| v.as_str().trim().eq_ignore_ascii_case("100-continue"));
    Ok(Head {
        request,
        exchange,
        framing,
        expect_continue,
    })
}

/// The request's URL from its target (origin form, absolute form, or a
/// `CONNECT` authority) and `host`.
fn url(method: &Method, target: &str, host: &str) -> Result<Url, HeadError> {
    let bad = |_| HeadError::Malformed("invalid request target");
    if target.starts_with("http://") || target.starts_with("https://") {
        Url::parse(target).map_err(bad)
    } else if target.starts_with('/') {
        Url::parse(&format!("http://{host}{target}")).map_err(bad)
    } else if *method == Method::Connect {
        Url::parse(&format!("http://{target}/")).map_err(bad)
    } else {
        Err(HeadError::Malformed("invalid request target"))
    }
}

/// How the request's body is delimited (RFC 9112 §6.3).
fn framing(req: &tide::http::Request, version: Version) -> Result<Framing, HeadError> {
    let length = match req.header(CONTENT_LENGTH) {
        None => None,
        Some(values) => {
            // Repeated or listed values must all agree.
            let mut lengths = values.iter().flat_map(|v| v.as_str().split(','));
            let parse = |v: &str| {
                let v = v.trim();
                v.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| v.parse::<u64>().ok())
                    .flatten()
                    .ok_or(HeadError::Malformed("invalid Content-Length"))
            };
            let first = parse(lengths.next().unwrap_or_default())?;
            for other in lengths {
                if parse(other)? != first {
                    return Err(HeadError::Malformed("conflicting Content-Length values"));
                }
            }
            Some(first)
        }
    };
    match req.header(TRANSFER_ENCODING) {
        None => Ok(match length {
            None | Some(0) => Framing::Done,
            Some(n) => Framing::Length(n),
        }),
        // Both framings at once is how requests are smuggled past proxies.
        Some(_) if length.is_some() => Err(HeadError::Malformed(
            "Content-Length and Transfer-Encoding together",
        )),
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has
        // faulty framing.
        Some(_) if version == Version::Http1_0 => Err(HeadError::Malformed(
            "Transfer-Encoding in an HTTP/1.0 request",
        )),
        Some(te)
            if te.as_str().trim().eq_ignore_ascii_case("chunked") && te.iter().count() == 1 =>
        {
            Ok(Framing::Chunked(Chunk::Size))
        }
        // RFC 9112 §6.1 suggests 501; a 400 keeps every refusal before
        // routing to the documented few.
        Some(_) => Err(HeadError::Malformed(
            "only the chunked transfer coding is supported",
        )),
    }
}

/// Where the body of the request being served stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    /// Chunked, at this point of its framing.
    Chunked(Chunk),
    /// Read to its end (or there is none).
    Done,
    /// Cut short or malformed: the connection cannot carry another
    /// request.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// In a chunk's data, with this many bytes left.
    Data(u64),
    /// Before the line break that ends a chunk's data.
    DataEnd,
    /// In the trailer section, after the last chunk.
    Trailers,
}

/// The reading side of one connection, shared by the connection loop and
/// the body of the request being served (each locks it for one poll at a
/// time; nobody holds it across an await).
pub(super) struct Inbound {
    reader: BufReader<TcpStream>,
    /// For `100 Continue`.
    writer: TcpStream,
    framing: Framing,
    /// Bumped per request: a body of an earlier request reads nothing.
    generation: u64,
    /// Bytes of [`CONTINUE`] still to write before the body is read.
    continue_left: Option<usize>,
    /// A framing line being read.
    line: Vec<u8>,
    trailer_bytes: usize,
}

/// [`Inbound`] as the connection and its current body share it.
pub(super) type Shared = Arc<Mutex<Inbound>>;

/// A new connection's reading side.
pub(super) fn shared(stream: TcpStream) -> Shared {
    Arc::new(Mutex::new(Inbound {
        reader: BufReader::new(stream.clone()),
        writer: stream,
        framing: Framing::Done,
        generation: 0,
        continue_left: None,
        line: Vec::new(),
        trailer_bytes: 0,
    }))
}

/// Locks `shared`; a panic elsewhere cannot leave it half-updated in a
/// way that matters (the connection would just close).
pub(super) fn lock(shared: &Shared) -> MutexGuard<'_, Inbound> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inbound {
    /// Bytes received but not yet consumed.
    pub(super) fn buffered(&self) -> &[u8] {
        self.reader.buffer()
    }

    /// Waits for more bytes from the client; `Ok(0)` at the end of the
    /// stream. Cancel-safe: nothing is lost if the wait is dropped.
    pub(super) fn poll_more(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.reader)
            .poll_fill_buf(cx)
            .map_ok(|buf| buf.len())
    }

    /// Reads towards the end of a head into `head`: `Ready(Ok(true))` once
    /// it holds a whole head, `Ready(Ok(false))` if the client closed
    /// before sending anything. Blank lines before the request line are
    /// skipped (RFC 9112 §2.2) but count towards [`MAX_HEAD`].
    pub(super) fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
        head: &mut Vec<u8>,
        skipped: &mut usize,
    ) -> Poll<Result<bool, HeadError>> {
        loop {
            let available = ready!(Pin::new(&mut self.reader).poll_fill_buf(cx))
                .map_err(|_| HeadError::Malformed("the request head could not be read"))?;
            if available.is_empty() {
                return Poll::Ready(if head.is_empty() {
                    Ok(false)
                } else {
                    Err(HeadError::Malformed("the connection closed mid-head"))
                });
            }
            let (take, line_end) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            head.extend_from_slice(&available[..take]);
            Pin::new(&mut self.reader).consume(take);
            if head.len() + *skipped >= MAX_HEAD {
                return Poll::Ready(Err(HeadError::TooLarge));
            }
            if !line_end {
                continue;
            }
            if head == b"\r\n" || head == b"\n" {
                *skipped += head.len();
                head.clear();
            } else if head.ends_with(b"\n\r\n") || head.ends_with(b"\n\n") {
                return Poll::Ready(Ok(true));
            }
        }
    }

    /// Starts serving `head`'s body; answers the body to hand the app and
    /// its length, if known.
    pub(super) fn start_request(shared: &Shared, head: &Head) -> (tide::http::Body, Option<usize>) {
        let mut inbound = lock(shared);
        inbound.generation += 1;
        inbound.framing = head.framing;
        inbound.continue_left =
            (head.expect_continue && head.framing != Framing::Done).then_some(0);
        inbound.line.clear();
        inbound.trailer_bytes = 0;
        let len = match head.framing {
            Framing::Length(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Framing::Done => Some(0),
            _ => None,
        };
        let reader = BodyReader {
            shared: shared.clone(),
            generation: inbound.generation,
        };
        drop(inbound);
        let body = match len {
            Some(0) => tide::http::Body::empty(),
            // The connection's reader buffers already: this one only gives
            // tide the `AsyncBufRead` it wants. Sized to the body, a post's
            // few hundred bytes cost no zeroed 8 KiB a request.
            _ => {
                let capacity = len.map_or(BODY_BUFFER, |n| n.min(BODY_BUFFER));
                tide::http::Body::from_reader(BufReader::with_capacity(capacity, reader), len)
            }
        };
        (body, len)
    }

    /// Ends the request being served (its body reads nothing from now on,
    /// and sends no `100 Continue`); answers whether its body was read to
    /// its end, so that the connection can carry another request.
    pub(super) fn end_request(&mut self) -> bool {
        self.generation += 1;
        self.continue_left = None;
        self.framing == Framing::Done
    }

    /// What is left in the buffer, for the protocol a connection upgrades
    /// to.
    pub(super) fn take_buffered(&mut self) -> Vec<u8> {
        let rest = self.reader.buffer().to_vec();
        Pin::new(&mut self.reader).consume(rest.len());
        rest
    }

    fn fail(&mut self, why: &'static str) -> io::Error {
        self.framing = Framing::Failed;
        io::Error::new(io::ErrorKind::InvalidData, why)
    }

    fn poll_body(&mut self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            match self.framing {
                Framing::Done => return Poll::Ready(Ok(0)),
                Framing::Failed => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the request body was cut short or malformed",
                    )))
                }
                Framing::Length(left) => {
                    let n = ready!(self.poll_copy(cx, out, left))?;
                    self.framing = match left - n as u64 {
                        0 => Framing::Done,
                        left => Framing::Length(left),
                    };
                    return Poll::Ready(Ok(n));
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    let n = ready!(self.poll_copy(cx, out, left))?;
                    self.framing = Framing::Chunked(match left - n as u64 {
                        0 => Chunk::DataEnd,
                        left => Chunk::Data(left),
                    });
                    return Poll::Ready(Ok(n));
                }
                Framing::Chunked(Chunk::Size) => {
                    let line = ready!(self.poll_line(cx))?;
                    let size = line.split(|&b| b == b';').next().unwrap_or_default();
                    let size = std::str::from_utf8(size)
                        .ok()
                        .map(|s| s.trim_matches([' ', '\t']))
                        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
                        .and_then(|s| u64::from_str_radix(s, 16).ok());
                    self.framing = match size {
                        Some(0) => Framing::Chunked(Chunk::Trailers),
                        Some(size) => Framing::Chunked(Chunk::Data(size)),
                        None => return Poll::Ready(Err(self.fail("invalid chunk size"))),
                    };
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    if !ready!(self.poll_line(cx))?.is_empty() {
                        return Poll::Ready(Err(self.fail("chunk data longer than its size")));
                    }
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    let line = ready!(self.poll_line(cx))?;
                    if line.is_empty() {
                        self.framing = Framing::Done;
                    } else {
                        self.trailer_bytes += line.len();
                        if self.trailer_bytes > MAX_TRAILERS {
                            return Poll::Ready(Err(self.fail("trailer section too large")));
                        }
                    }
                }
            }
        }
    }

    /// Copies at most `left` body bytes into `out`.
    fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut [u8],
        left: u64,
    ) -> Poll<io::Result<usize>> {
        let available = match ready!(Pin::new(&mut self.reader).poll_fill_buf(cx)) {
            Ok(available) => available,
            Err(_) => return Poll::Ready(Err(self.fail("the request body could not be read"))),
        };
        if available.is_empty() {
            return Poll::Ready(Err(self.fail("the connection closed mid-body")));
        }
        let n = available
            .len()
            .min(out.len())
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        out[..n].copy_from_slice(&available[..n]);
        Pin::new(&mut self.reader).consume(n);
        Poll::Ready(Ok(n))
    }

    /// One line of chunked framing, without its line break.
    fn poll_line(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Vec<u8>>> {
        loop {
            let available = match ready!(Pin::new(&mut self.reader).poll_fill_buf(cx)) {
                Ok(available) if !available.is_empty() => available,
                _ => return Poll::Ready(Err(self.fail("the connection closed mid-body"))),
            };
            let (take, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            self.line.extend_from_slice(&available[..take]);
            Pin::new(&mut self.reader).consume(take);
            if self.line.len() > MAX_FRAMING_LINE {
                return Poll::Ready(Err(self.fail("chunked framing line too long")));
            }
            if done {
                let mut line = std::mem::take(&mut self.line);
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Poll::Ready(Ok(line));
            }
        }
    }

    /// Writes what is left of `100 Continue`, if the client asked for it.
    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(done) = self.continue_left {
            if done == CONTINUE.len() {
                self.continue_left = None;
                break;
            }
            let n = ready!(Pin::new(&mut &self.writer).poll_write(cx, &CONTINUE[done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.continue_left = Some(done + n);
        }
        Poll::Ready(Ok(()))
    }
}

/// The body of one request, read from the connection's buffer.
struct BodyReader {
    shared: Shared,
    generation: u64,
}

impl AsyncRead for BodyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut inbound = lock(&self.shared);
        if inbound.generation != self.generation || buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(inbound.poll_continue(cx))?;
        inbound.poll_body(cx, buf)
    }
}

/// Gives `request` its body; a client without `Content-Type` keeps having
/// none (setting a body makes http-types fill one in).
pub(super) fn set_body(request: &mut tide::http::Request, body: tide::http::Body) {
    let had_content_type = request.header(CONTENT_TYPE).is_some();
    request.set_body(body);
    if !had_content_type {
        request.remove_header(CONTENT_TYPE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Head, HeadError> {
        parse(raw.as_bytes(), "127.0.0.1:8080".parse().ok())
    }

    #[test]
    fn versions_one_zero_and_one_one_are_parsed_others_refused() {
        let h = head("GET /healthz HTTP/1.0\r\n\r\n")
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(h.exchange.version, Version::Http1_0);
        assert_eq!(h.request.url().as_str(), "http://127.0.0.1:8080/healthz");
        let h = head("GET /x HTTP/1.1\r\nHost: a:1\r\nConnection: Keep-Alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(h.exchange.version, Version::Http1_1);
        assert!(h.exchange.keep_alive && h.exchange.upgrade && !h.exchange.close);
        for preface in [
            "PRI * HTTP/2.0\r\n\r\n",
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            "GET / HTTP/3\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(head(preface).err(), Some(HeadError::Version), "{preface:?}");
        }
    }

    #[test]
    fn bad_heads_are_refused() {
        let cases = [
            ("QUERY / HTTP/1.1\r\nHost: a\r\n\r\n", "unknown HTTP method \"QUERY\""),
            ("GET / HTTP/1.1\r\n\r\n", "missing Host header"),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: caf\u{e9}\r\n\r\n", "a header value is not ASCII"),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "Content-Length and Transfer-Encoding together"),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", "conflicting Content-Length values"),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", "invalid Content-Length"),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 request"),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "only the chunked transfer coding is supported"),
            ("GET nowhere HTTP/1.1\r\nHost: a\r\n\r\n", "invalid request target"),
        ];
        for (raw, why) in cases {
            assert_eq!(
                head(raw).err().map(|e| e.to_string()).as_deref(),
                Some(why),
                "{raw:?}"
            );
        }
    }
}
