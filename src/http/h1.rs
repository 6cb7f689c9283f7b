//! The accept loop, and serving HTTP/1.0 and HTTP/1.1 on each connection
//! with livefeed's own framing ([`request`] reads, [`response`] writes),
//! tide answering the requests.
//!
//! tide's own listener (async-h1) speaks HTTP/1.1 only, fails the whole
//! connection when it can't decode a request (a method it doesn't know
//! such as `QUERY`, a head of 8 KiB or more, a header that isn't UTF-8:
//! the client saw a reset), closes after `Connection: close` without
//! saying so, and reads each request through a buffer of its own. Here:
//! - a request that can't be parsed gets the API's error body with a
//!   fitting status (found by the schemathesis run, see
//!   `tests/it/fuzz_regressions.rs`), and the connection closes;
//! - HTTP/1.0 is served (what nginx proxies with and HAProxy health
//!   checks send), HTTP/2 and later get a 505;
//! - a response after which the connection closes says `Connection:
//!   close`: the client asked for it, its request body was not read to
//!   the end, the server is shutting down, or an HTTP/1.0 stream;
//! - one buffer per connection, so pipelined requests are answered in
//!   turn.

mod request;
mod response;

use super::ApiError;
pub use request::{HeadError, MAX_HEAD};
use request::{Inbound, Shared};
use response::After;

use async_std::io::{self, Read, Write};
use async_std::net::TcpStream;
use async_std::prelude::*;
use futures::future::poll_fn;
use futures::FutureExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tide::StatusCode;

/// How long a request head may take to arrive once its first byte has:
/// a client trickling a head byte by byte is cut off after this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// After a response that closes the connection, how long what the client
/// still sends (the rest of an unread body) is read and dropped before
/// the socket closes: closing with unread bytes makes the kernel reset the
/// connection, which can destroy the response before the client reads it.
const LINGER_TIME: Duration = Duration::from_secs(2);
/// The most bytes read and dropped while lingering.
const LINGER_BYTES: usize = 256 * 1024;

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
    /// Starts shutting down: idle keep-alive connections close, and every
    /// response from now on says `Connection: close` and is the last on
    /// its connection. Call once the accept loop has stopped, before
    /// ending push connections (their last poll answers then say close).
    pub fn begin(&self) {
        self.stop.close();
    }

    /// [`Shutdown::begin`], then waits (at most `grace`) until every
    /// connection task has ended (so none still holds the app), letting
    /// requests in flight finish. Answers whether all ended in time.
    pub async fn close(self, grace: Duration) -> bool {
        self.begin();
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
        http_executor()
            .spawn(serve_connection(app.clone(), stream, connections.clone()))
            .detach();
    }
}

/// The executor HTTP connections run on: one thread of its own, beside
/// async-std's, which run the actors. A fan-out to thousands of clients
/// makes thousands of actor tasks runnable at once; a request's task queued
/// behind them would wait for the whole fan-out (the next post's `201`,
/// and so its delivery, with it). On a thread of its own, mostly asleep,
/// the kernel schedules it as soon as its socket is readable.
fn http_executor() -> &'static async_executor::Executor<'static> {
    static EXECUTOR: async_executor::Executor<'static> = async_executor::Executor::new();
    static THREAD: std::sync::Once = std::sync::Once::new();
    THREAD.call_once(|| {
        std::thread::Builder::new()
            .name("livefeed-http".into())
            .spawn(|| async_io::block_on(EXECUTOR.run(futures::future::pending::<()>())))
            .expect("spawning the HTTP thread");
    });
    &EXECUTOR
}

/// Serves `stream`'s requests with `app` until the connection closes, or
/// until shutdown finds it idle between requests.
pub async fn serve_connection(app: super::Server, stream: TcpStream, connections: Connections) {
    let local = stream.local_addr().ok();
    let peer = stream.peer_addr().ok();
    let inbound = request::shared(stream.clone());
    let mut writer = stream;
    loop {
        // Idle until the next request's first byte arrives (or is already
        // buffered): that is where shutdown may close the connection
        // without cutting a request.
        if request::lock(&inbound).buffered().is_empty() {
            let more = poll_fn(|cx| request::lock(&inbound).poll_more(cx));
            let next = futures::select! {
                more = more.fuse() => more,
                _ = connections.stop.recv().fuse() => return,
            };
            if !matches!(next, Ok(n) if n > 0) {
                return; // closed by the client, or failed
            }
        }
        let head = match io::timeout(HEAD_TIMEOUT, read_head(&inbound).map(Ok)).await {
            Ok(Ok(Some(raw))) => raw,
            // Closed before a request, or the head took too long.
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => return refuse(writer, &inbound, e, peer).await,
        };
        let head = match request::parse(&head, local) {
            Ok(head) => head,
            Err(e) => return refuse(writer, &inbound, e, peer).await,
        };
        let exchange = head.exchange.clone();
        let (body, _) = Inbound::start_request(&inbound, &head);
        let mut req = head.request;
        request::set_body(&mut req, body);
        req.set_local_addr(local);
        req.set_peer_addr(peer);
        let res: tide::http::Response = match app.respond(req).await {
            Ok(res) => res,
            Err(e) => {
                log::error!("the app failed a request from {peer:?}: {e}");
                ApiError::new(
                    StatusCode::InternalServerError,
                    "internal",
                    "the server failed to answer",
                )
                .into_response()
                .into()
            }
        };
        // A body left unread can't be skipped safely (it may be huge, or
        // never come after an unanswered `Expect: 100-continue`), and
        // shutdown takes no new requests: either way this is the last
        // response on the connection.
        let body_read = request::lock(&inbound).end_request();
        let may_keep = body_read && !connections.stop.is_closed();
        let written = if res.len().is_none() && res.status() != StatusCode::SwitchingProtocols {
            // A body streamed for as long as the client stays (`/events`)
            // is written by async-std's threads, with the actors that feed
            // it: this thread stays free for requests.
            let mut stream = writer.clone();
            let exchange = exchange.clone();
            async_std::task::spawn(async move {
                response::write(&mut stream, res, &exchange, may_keep).await
            })
            .await
        } else {
            response::write(&mut writer, res, &exchange, may_keep).await
        };
        match written {
            Ok(After::KeepAlive) => continue,
            Ok(After::Close) => return linger(writer, &inbound).await,
            Ok(After::Upgrade(sender)) => {
                let rest = request::lock(&inbound).take_buffered();
                let upgraded = Upgraded {
                    rest,
                    pos: 0,
                    stream: writer,
                };
                sender
                    .send(tide::http::upgrade::Connection::new(upgraded))
                    .await;
                return;
            }
            Err(e) => {
                log::debug!("HTTP connection from {peer:?} ended: {e}");
                return;
            }
        }
    }
}

/// Reads one request head: `None` if the client closed before sending
/// one.
async fn read_head(inbound: &Shared) -> Result<Option<Vec<u8>>, HeadError> {
    let mut head = Vec::new();
    let mut skipped = 0;
    let whole = poll_fn(|cx| request::lock(inbound).poll_head(cx, &mut head, &mut skipped)).await?;
    Ok(whole.then_some(head))
}

/// The answer to a request head that can't be served.
fn rejection(error: &HeadError) -> ApiError {
    match error {
        // A method livefeed does not know at all: RFC 9110 §9.1 asks for a
        // 501 (a 405 is for a known method the route doesn't serve, and
        // carries the route's `Allow`).
        HeadError::Method(_) => ApiError::new(
            StatusCode::NotImplemented,
            "not_implemented",
            "livefeed does not implement this method",
        ),
        HeadError::Version => ApiError::new(
            StatusCode::HttpVersionNotSupported,
            "http_version_not_supported",
            "livefeed speaks HTTP/1.1 and HTTP/1.0",
        ),
        HeadError::TooLarge => ApiError::new(
            StatusCode::RequestHeaderFieldsTooLarge,
            "headers_too_large",
            format!("the request head must be under {} KiB", MAX_HEAD / 1024),
        ),
        HeadError::Malformed(why) => ApiError::bad_request(
            "malformed_request",
            format!("the request is not valid HTTP: {why}"),
        ),
    }
}

/// Answers a head that can't be served with its error, and closes.
async fn refuse(
    mut stream: TcpStream,
    inbound: &Shared,
    error: HeadError,
    peer: Option<std::net::SocketAddr>,
) {
    let error = rejection(&error);
    let status = error.status as u16;
    log::info!(status = status; "unparseable request from {peer:?} answered {status}: {}", error.message);
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
    if io::timeout(REFUSAL_WRITE_TIMEOUT, write).await.is_ok() {
        linger(stream, inbound).await;
    }
}

/// Closes the connection after its last response: half-closes, then reads
/// and drops what the client still sends (bounded by [`LINGER_TIME`] and
/// [`LINGER_BYTES`]) so that the close does not reset the connection
/// under the response.
async fn linger(stream: TcpStream, inbound: &Shared) {
    if stream.shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut dropped = 0;
    while dropped < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        let more = poll_fn(|cx| {
            let mut inbound = request::lock(inbound);
            let n = match inbound.poll_more(cx) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(_)) => 0,
                Poll::Pending => return Poll::Pending,
            };
            inbound.take_buffered();
            Poll::Ready(n)
        });
        match io::timeout(left, more.map(Ok)).await {
            Ok(n) if n > 0 => dropped += n,
            _ => return,
        }
    }
}

/// An upgraded connection: what the client sent after the handshake that
/// is already buffered, then the socket.
struct Upgraded {
    rest: Vec<u8>,
    pos: usize,
    stream: TcpStream,
}

impl Read for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.pos < self.rest.len() {
            let n = buf.len().min(self.rest.len() - self.pos);
            buf[..n].copy_from_slice(&self.rest[self.pos..self.pos + n]);
            self.pos += n;
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl Write for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
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
    fn head_errors_get_fitting_statuses() {
        let status = |e: HeadError| rejection(&e).status;
        assert_eq!(
            status(HeadError::Method("QUERY".into())),
            StatusCode::NotImplemented
        );
        assert_eq!(
            status(HeadError::Version),
            StatusCode::HttpVersionNotSupported
        );
        assert_eq!(
            status(HeadError::TooLarge),
            StatusCode::RequestHeaderFieldsTooLarge
        );
        assert_eq!(status(HeadError::Malformed("x")), StatusCode::BadRequest);
    }
}
