//! The Server-Sent Events transport at `GET /events`.
//!
//! Each subscriber is a connection actor under the same hub as the
//! websockets, with the same replay, ordering and slow-consumer rules. The
//! actor writes frames into a small bounded pipe; the pipe's receiving end
//! is the response body, which tide sends chunked as frames arrive. Closing
//! the stream is dropping the pipe's sender; a client that goes away drops
//! the body, which the actor learns through its inbound stream.
//!
//! The stream:
//! ```text
//! retry: 3000          <- on connect; with `id: <newest seq>` when the
//! id: 41                  client did not ask for a replay (see below)
//!
//! id: 42
//! event: newPost
//! data: {"post":{"id":42,...},"seq":42}
//!
//! id: 43
//! event: postUpdated   <- or postDeleted: data {"id":42,"seq":43}
//! data: {"post":{"id":42,...},"seq":43}
//!
//! : ping               <- every heartbeat interval
//! ```

use crate::feed::access::Grant;
use crate::feed::wire::{self, Wire};
use crate::feed::{Feed, Liveness};
use crate::http::{for_subject, handler, since_param, subscription, ApiError, Router};
use async_trait::async_trait;
use futures::channel::oneshot;
use futures::io::{AsyncBufRead, AsyncRead};
use futures::{FutureExt, Stream, StreamExt};
use livefeed_actors::{Close, ConnectionId, Delivery, Joined, Outbound};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tide::http::headers;
use tide::{Body, Request, Response, StatusCode};

/// Frames the pipe between a connection actor and its response body holds.
/// Past this the actor's writes wait (and time out), and the hub's backlog
/// bound takes over: a stalled reader costs at most this many frames here.
pub const PIPE_FRAMES: usize = 8;

/// The request header browsers' `EventSource` sends when it reconnects.
pub const LAST_EVENT_ID: &str = "Last-Event-ID";

/// Adds `GET /events` to `app`.
pub fn mount(app: &mut Router, feed: Arc<Feed>) {
    app.at("/events").get(handler(feed, subscribe));
}

/// Answers with an event stream fed by a new connection actor.
async fn subscribe(feed: Arc<Feed>, req: Request<()>) -> Response {
    let mut grant = Grant::Anonymous;
    let admitted = resume_point(&req).and_then(|since| {
        let (feeds, token) = subscription(&req)?;
        grant = feed.grant(token.as_deref());
        Ok((since, feed.admit(&grant, feeds)?))
    });
    let (since, ticket) = match admitted {
        Ok(admitted) => admitted,
        Err(e) => return for_subject(e.into_response(), &grant),
    };
    let (frames, pipe) = async_channel::bounded(PIPE_FRAMES);
    let (body_alive, body_gone) = oneshot::channel::<()>();
    // The body is dropped when the response ends or the client goes away;
    // the actor hears of it as the end of its inbound stream.
    let inbound = body_gone
        .into_stream()
        .map(|_| livefeed_actors::Inbound::Closed)
        .boxed();
    let sink = SseSink {
        frames,
        replaying: since.is_some(),
    };
    // The actor starts in its own task: replay writes into the pipe, which
    // only drains once this handler has returned the response.
    ticket.attach(sink, inbound, since, Liveness::Unchecked);
    let body = PipeBody {
        pipe: Box::pin(pipe),
        chunk: None,
        pos: 0,
        _alive: body_alive,
    };
    let res = Response::builder(StatusCode::Ok)
        .content_type("text/event-stream")
        .header(headers::CACHE_CONTROL, "no-cache")
        // Tells nginx-style proxies not to buffer the stream.
        .header("X-Accel-Buffering", "no")
        .body(Body::from_reader(body, None))
        .build();
    for_subject(res, &grant)
}

/// Where a replay starts (a seq): `Last-Event-ID` (what a reconnecting
/// `EventSource` sends, so it wins) or else `?since`.
fn resume_point(req: &Request<()>) -> Result<Option<u64>, ApiError> {
    let header = req
        .header(LAST_EVENT_ID)
        .map(|h| h.as_str().trim())
        .filter(|v| !v.is_empty());
    match header {
        Some(value) => value.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_last_event_id",
                "Last-Event-ID must be a seq (an unsigned integer)",
            )
        }),
        None => since_param(req),
    }
}

/// The connection actor's writer: the sending end of the pipe.
struct SseSink {
    frames: async_channel::Sender<Arc<str>>,
    /// The client asked for a replay, so it already knows its position.
    replaying: bool,
}

impl SseSink {
    async fn send(&mut self, frame: Arc<str>) -> io::Result<()> {
        self.frames
            .send(frame)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "event stream closed"))
    }
}

#[async_trait]
impl Outbound for SseSink {
    async fn welcome(&mut self, _id: ConnectionId, joined: Joined) -> io::Result<()> {
        let hello = wire::sse_hello(self.replaying, joined);
        self.send(hello.into()).await
    }

    async fn deliver(&mut self, delivery: &Delivery) -> io::Result<()> {
        self.send(delivery.frame(Wire::Sse).clone()).await
    }

    async fn ping(&mut self) -> io::Result<()> {
        self.send(wire::SSE_PING.into()).await
    }

    async fn close(&mut self, close: Close) -> io::Result<()> {
        // Best effort and never waiting: a slow consumer's pipe is full.
        // The stream ends when the actor, and with it this sender, is gone.
        let note = wire::sse_closed(close.reason, close.code);
        self.frames.try_send(note.into()).ok();
        self.frames.close();
        Ok(())
    }
}

/// The response body: reads frames from the pipe as they come.
struct PipeBody {
    pipe: Pin<Box<async_channel::Receiver<Arc<str>>>>,
    chunk: Option<Arc<str>>,
    pos: usize,
    /// Dropped with the body: tells the actor the stream is over.
    _alive: oneshot::Sender<()>,
}

impl AsyncBufRead for PipeBody {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        loop {
            if let Some(chunk) = &this.chunk {
                if this.pos < chunk.len() {
                    break;
                }
            }
            match this.pipe.as_mut().poll_next(cx) {
                Poll::Ready(Some(frame)) => {
                    this.chunk = Some(frame);
                    this.pos = 0;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(&[])),
                Poll::Pending => return Poll::Pending,
            }
        }
        let chunk = this.chunk.as_deref().unwrap_or_default();
        Poll::Ready(Ok(&chunk.as_bytes()[this.pos..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().pos += amt;
    }
}

impl AsyncRead for PipeBody {
    /// Copies every frame already waiting, up to `buf`'s size: a burst of
    /// posts goes out as one chunk and one write.
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut filled = 0;
        while filled < buf.len() {
            let available = match self.as_mut().poll_fill_buf(cx) {
                Poll::Ready(Ok(bytes)) => bytes,
                Poll::Ready(Err(e)) if filled == 0 => return Poll::Ready(Err(e)),
                Poll::Pending if filled == 0 => return Poll::Pending,
                Poll::Ready(Err(_)) | Poll::Pending => break,
            };
            if available.is_empty() {
                break; // the end: reported by the next call
            }
            let n = available.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&available[..n]);
            self.as_mut().consume(n);
            filled += n;
        }
        Poll::Ready(Ok(filled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::AsyncReadExt;

    #[async_std::test]
    async fn the_body_streams_frames_and_ends_when_the_sender_goes() {
        let (tx, rx) = async_channel::bounded::<Arc<str>>(2);
        let (alive, mut gone) = oneshot::channel::<()>();
        let mut body = PipeBody {
            pipe: Box::pin(rx),
            chunk: None,
            pos: 0,
            _alive: alive,
        };
        tx.send("abc".into()).await.unwrap();
        tx.send("defg".into()).await.unwrap();
        let mut two = [0u8; 2];
        body.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"ab");
        drop(tx);
        let mut rest = String::new();
        body.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "cdefg");
        assert!(gone.try_recv().unwrap().is_none(), "body still alive");
        drop(body);
        assert!(gone.try_recv().is_err(), "dropping the body is seen");
    }

    #[async_std::test]
    async fn frames_waiting_together_are_read_together() {
        let (tx, rx) = async_channel::bounded::<Arc<str>>(4);
        let (alive, _gone) = oneshot::channel::<()>();
        let mut body = PipeBody {
            pipe: Box::pin(rx),
            chunk: None,
            pos: 0,
            _alive: alive,
        };
        for frame in ["one\n", "two\n", "three\n"] {
            tx.send(frame.into()).await.unwrap();
        }
        let mut buf = [0u8; 64];
        let n = body.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one\ntwo\nthree\n");
        let mut small = [0u8; 2];
        tx.send("four".into()).await.unwrap();
        assert_eq!(body.read(&mut small).await.unwrap(), 2);
        assert_eq!(&small, b"fo");
    }
}
