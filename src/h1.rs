//! Serving one HTTP/1.1 connection, with an answer for requests that
//! can't be parsed.
//!
//! async-h1, left to itself (as in tide's listener), fails the whole
//! connection when it can't decode a request: a method it doesn't know
//! such as `QUERY`, HTTP/1.0, a head of 8 KiB or more, a header that isn't
//! UTF-8. The client sees the connection reset without a response. Here
//! such a request gets the API's error body with a fitting status first
//! (found by the schemathesis run, see `tests/fuzz_regressions.rs`).

use crate::error::ApiError;
use crate::http::State;
use async_h1::server::{ConnectionStatus, Server};
use async_std::io::{self, Read, Write};
use async_std::net::TcpStream;
use async_std::prelude::*;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
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
        async move { app.respond::<_, tide::http::Response>(req).await }
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
