//! The accept loop, and serving one HTTP/1.1 connection with an answer for
//! requests that can't be parsed.
//!
//! async-h1, left to itself (as in tide's listener), fails the whole
//! connection when it can't decode a request: a method it doesn't know
//! such as `QUERY`, HTTP/1.0, a head of 8 KiB or more, a header that isn't
//! UTF-8. The client sees the connection reset without a response. Here
//! such a request gets the API's error body with a fitting status first
//! (found by the schemathesis run, see `tests/it/fuzz_regressions.rs`). A
//! response sent without reading its request's body closes the
//! connection (see [`track_body`]).

use super::ApiError;

use async_h1::server::{ConnectionStatus, Server};
use async_std::io::{self, Read, Write};
use async_std::net::TcpStream;
use async_std::prelude::*;
use futures::FutureExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tide::http::headers::CONTENT_TYPE;
use tide::StatusCode;

/// How long writing a refusal may take: a client that sent garbage and
/// stopped reading gets no longer.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (for example, out of file descriptors).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The HTTP connections being served, as each connection task sees them:
/// shutdown tells it to close while idle, and it stays counted until it
/// ends. Cheap to clone (one clone per connection).
#[derive(Clone)]
pub struct Connections {
    stop: async_channel::Receiver<()>,
    _alive: async_channel::Sender<()>,
}

/// The other end of [`Connections`], held by whoever shuts the server down.
pub struct Shutdown {
    stop: async_channel::Sender<()>,
    alive: async_channel::Receiver<()>,
}

/// A fresh pair: connections to hand to [`accept_loop`], and their
/// shutdown.
pub fn connections() -> (Connections, Shutdown) {
    let (stop_tx, stop_rx) = async_channel::bounded(1);
    let (alive_tx, alive_rx) = async_channel::bounded(1);
    let connections = Connections {
        stop: stop_rx,
        _alive: alive_tx,
    };
    let shutdown = Shutdown {
        stop: stop_tx,
        alive: alive_rx,
    };
    (connections, shutdown)
}

impl Shutdown {
    /// Closes every idle keep-alive connection, lets requests in flight
    /// finish, and waits (at most `grace`) until every connection task has
    /// ended (so none still holds the app). Call after the accept loop has
    /// stopped. Answers whether all ended in time.
    pub async fn close(self, grace: Duration) -> bool {
        self.stop.close();
        // Nobody sends: `recv` fails once every sender (one per live
        // connection) is gone.
        io::timeout(grace, async {
            self.alive.recv().await.ok();
            Ok(())
        })
        .await
        .is_ok()
    }
}

/// Accepts connections and serves HTTP/1.1 on each, as tide's own listener
/// does, plus `TCP_NODELAY`: responses and pushed frames are small, and
/// Nagle's algorithm would hold a response's second segment back until the
/// peer's delayed ACK (tens of milliseconds). A connection's failure ends
/// that connection only.
pub async fn accept_loop(
    app: super::Server,
    listener: async_std::net::TcpListener,
    connections: Connections,
) {
    let mut incoming = listener.incoming();
    while let Some(stream) = incoming.next().await {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of
                // spinning on accept.
                log::warn!("accept failed: {e}; pausing {ACCEPT_BACKOFF:?}");
                async_std::task::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("TCP_NODELAY: {e}");
        }
        async_std::task::spawn(serve_connection(app.clone(), stream, connections.clone()));
    }
}

/// Serves `stream`'s requests with `app` until the connection closes, or
/// until shutdown finds it idle between requests.
pub async fn serve_connection(app: super::Server, stream: TcpStream, connections: Connections) {
    let local = stream.local_addr().ok();
    let peer = stream.peer_addr().ok();
    let io = Counted {
        stream,
        written: Arc::default(),
    };
    let mut server = Server::new(io.clone(), |mut req: tide::http::Request| {
        req.set_local_addr(local);
        req.set_peer_addr(peer);
        let app = app.clone();
        async move {
            let body_read = track_body(&mut req);
            let mut res: tide::http::Response = app.respond(req).await?;
            if body_read.is_some_and(|read| !read.load(Ordering::Acquire)) {
                res.insert_header(tide::http::headers::CONNECTION, "close");
            }
            Ok(res)
        }
    });
    loop {
        // Idle until the next request's first byte arrives: that is where
        // shutdown may close the connection without cutting a request.
        let mut first = [0u8; 1];
        let next = futures::select! {
            peeked = io.stream.peek(&mut first).fuse() => peeked,
            _ = connections.stop.recv().fuse() => return,
        };
        if !matches!(next, Ok(n) if n > 0) {
            return; // closed by the client, or failed
        }
        let written = io.written();
        match server.accept_one().await {
            Ok(ConnectionStatus::KeepAlive) => continue,
            Ok(ConnectionStatus::Close) => return,
            // Nothing of a response went out: the request itself failed.
            Err(e) if io.written() == written => {
                let error = rejection(&e.to_string());
                let status = error.status as u16;
                log::info!(status = status; "unparseable request from {peer:?} answered {status}: {e}");
                refuse(io.stream.clone(), error).await;
                return;
            }
            Err(e) => {
                log::debug!("HTTP connection from {peer:?} ended: {e}");
                return;
            }
        }
    }
}

/// Wraps a request's body so that reading it to the end is seen, and
/// answers the flag; `None` for a request without a body.
///
/// A response sent before its request's body was read (a 405, a 415, a
/// 413 ...) must close the connection: async-h1 reads the rest of the body
/// only after the response, through a buffer that swallows whatever the
/// client sent next, and that next request would never be answered (found
/// by schemathesis as a request timing out on a kept-alive connection).
fn track_body(req: &mut tide::http::Request) -> Option<Arc<AtomicBool>> {
    if req.len() == Some(0) {
        return None;
    }
    let had_content_type = req.header(CONTENT_TYPE).is_some();
    let body = req.take_body();
    let len = body.len();
    let read = Arc::new(AtomicBool::new(false));
    let tracked = ReadToEnd {
        inner: body,
        left: len,
        done: read.clone(),
    };
    req.set_body(tide::Body::from_reader(io::BufReader::new(tracked), len));
    // Swapping bodies makes http-types fill in a Content-Type the client
    // never sent.
    if !had_content_type {
        req.remove_header(CONTENT_TYPE);
    }
    Some(read)
}

/// A reader that records reaching its end: its known length, or the end
/// of a body of unknown length. (A body of known length is not read past
/// it, so its end of stream may never be asked for.)
struct ReadToEnd<R> {
    inner: R,
    left: Option<usize>,
    done: Arc<AtomicBool>,
}

impl<R: Read + Unpin> Read for ReadToEnd<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            let ended = match &mut self.left {
                Some(left) => {
                    *left = left.saturating_sub(n);
                    *left == 0
                }
                None => n == 0 && !buf.is_empty(),
            };
            if ended {
                self.done.store(true, Ordering::Release);
            }
        }
        result
    }
}

/// The answer to a request async-h1 could not decode, from its message.
fn rejection(message: &str) -> ApiError {
    if message.contains("HTTP method") {
        // A method livefeed does not know at all: RFC 9110 §9.1 asks for a
        // 501 (a 405 is for a known method the route doesn't serve, and
        // carries the route's `Allow`).
        ApiError::new(
            StatusCode::NotImplemented,
            "not_implemented",
            "livefeed does not implement this method",
        )
    } else if message.contains("HTTP version") {
        ApiError::new(
            StatusCode::HttpVersionNotSupported,
            "http_version_not_supported",
            "livefeed speaks HTTP/1.1",
        )
    } else if message.contains("8kb") {
        ApiError::new(
            StatusCode::RequestHeaderFieldsTooLarge,
            "headers_too_large",
            "the request head must be under 8 KiB",
        )
    } else {
        ApiError::bad_request("malformed_request", "the request is not valid HTTP/1.1")
    }
}

/// Writes `error` as a complete response and closes.
async fn refuse(mut stream: TcpStream, error: ApiError) {
    let body = error.body();
    let status = error.status;
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status as u16,
        status.canonical_reason(),
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.flush().await
    };
    let _ = io::timeout(REFUSAL_WRITE_TIMEOUT, write).await;
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// A connection that counts the bytes written to it, so the loop knows
/// whether a failed exchange had started its response.
#[derive(Clone)]
struct Counted {
    stream: TcpStream,
    written: Arc<AtomicU64>,
}

impl Counted {
    fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

impl Read for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl Write for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_failures_get_fitting_statuses() {
        let status = |m: &str| rejection(m).status;
        assert_eq!(status("Invalid HTTP method"), StatusCode::NotImplemented);
        assert_eq!(
            status("Unsupported HTTP version 1.0"),
            StatusCode::HttpVersionNotSupported
        );
        assert_eq!(
            status("Head byte length should be less than 8kb"),
            StatusCode::RequestHeaderFieldsTooLarge
        );
        assert_eq!(status("invalid utf-8"), StatusCode::BadRequest);
    }
}
