//! Serving one HTTP/1.1 connection, with an answer for requests that
//! can't be parsed.
//!
//! async-h1, left to itself (as in tide's listener), fails the whole
//! connection when it can't decode a request: a method it doesn't know
//! such as `QUERY`, HTTP/1.0, a head of 8 KiB or more, a header that isn't
//! UTF-8. The client sees the connection reset without a response. Here
//! such a request gets the API's error body with a fitting status first
//! (found by the schemathesis run, see `tests/fuzz_regressions.rs`). A
//! response sent without reading its request's body closes the
//! connection (see [`track_body`]).

use crate::error::ApiError;
use crate::http::State;
use async_h1::server::{ConnectionStatus, Server};
use async_std::io::{self, Read, Write};
use async_std::net::TcpStream;
use async_std::prelude::*;
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

/// Serves `stream`'s requests with `app` until the connection closes.
pub async fn serve_connection(app: tide::Server<State>, stream: TcpStream) {
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
        ApiError::new(
            StatusCode::MethodNotAllowed,
            "method_not_allowed",
            "livefeed does not support this method",
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
        ApiError::bad_request("malformed_request", format!("malformed request: {message}"))
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
        assert_eq!(status("Invalid HTTP method"), StatusCode::MethodNotAllowed);
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
