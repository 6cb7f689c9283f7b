//! Write coalescing for push connections, and whole frames written
//! without tungstenite.
//!
//! tungstenite 0.13 writes and flushes every frame with its own system
//! call, and takes each frame as an owned `String`, so a post pushed to
//! 10,000 clients would be copied 10,000 times and formatted 10,000 times.
//! A push connection's stream is therefore a [`Corked`] stream with an
//! [`Outbox`] beside it:
//!
//! - the connection's writer puts each frame, already formatted (the
//!   shared text of the change behind a header of a few bytes), in the
//!   outbox: while more frames follow it is held, and the run leaves in one
//!   `write`;
//! - tungstenite (the welcome, pings, pongs, close frames) writes through
//!   the same held bytes: behind whatever is held, or straight to the
//!   stream when nothing is, so its frames keep their place in the stream.
//!
//! Both take the one lock of the stream's write side for one poll at a
//! time, and every write adds whole frames: a short write keeps its rest
//! at the head of the held bytes, so no frame is ever cut by another. An
//! idle connection holds no buffer (it is only allocated while in use).

use futures::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

/// Most bytes held back before they are written regardless.
pub const CORK_LIMIT: usize = 32 * 1024;

/// A frame at most this big that meets nothing held goes out from the
/// stack, with no buffer allocated.
const DIRECT_LIMIT: usize = 2048;

/// The stream and the bytes held back for it.
#[derive(Debug)]
struct Held<S> {
    inner: S,
    bytes: Vec<u8>,
}

impl<S: AsyncWrite + Unpin> Held<S> {
    /// Writes everything held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut written = 0;
        let done = loop {
            if written == self.bytes.len() {
                break Ok(());
            }
            match Pin::new(&mut self.inner).poll_write(cx, &self.bytes[written..]) {
                Poll::Ready(Ok(0)) => break Err(io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => break Err(e),
                Poll::Pending => {
                    self.bytes.drain(..written);
                    return Poll::Pending;
                }
            }
        };
        // Give the buffer back: idle connections should cost nothing.
        self.bytes = Vec::new();
        Poll::Ready(done)
    }

    /// Writes `parts` (one or more whole frames) now, with nothing held
    /// before them; what the stream does not take is held, so the frames
    /// stay whole. Pending only if nothing was taken: the caller offers
    /// the same frames again.
    fn poll_write_whole(&mut self, cx: &mut Context<'_>, parts: &[&[u8]]) -> Poll<io::Result<()>> {
        debug_assert!(self.bytes.is_empty());
        if let [one] = parts {
            return self.poll_write_direct(cx, one);
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > DIRECT_LIMIT {
            return self.hold(cx, parts);
        }
        let mut stack = [0u8; DIRECT_LIMIT];
        let mut at = 0;
        for part in parts {
            stack[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        self.poll_write_direct(cx, &stack[..len])
    }

    /// Writes `whole` to the stream; the rest of a short write is held.
    fn poll_write_direct(&mut self, cx: &mut Context<'_>, whole: &[u8]) -> Poll<io::Result<()>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, whole))?;
        if n == 0 && !whole.is_empty() {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        if n < whole.len() {
            return self.hold(cx, &[&whole[n..]]);
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `parts` into the held bytes and writes what the stream takes
    /// of them now; the rest leaves at the next drain. Ready unless the
    /// stream failed.
    fn hold(&mut self, cx: &mut Context<'_>, parts: &[&[u8]]) -> Poll<io::Result<()>> {
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
        match self.poll_drain(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

type Shared<S> = Arc<Mutex<Held<S>>>;

fn lock<S>(shared: &Shared<S>) -> MutexGuard<'_, Held<S>> {
    // A panic while holding the lock leaves whole frames behind: go on.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A stream whose writes queue behind the bytes an [`Outbox`] holds back,
/// so that the two writers' frames stay whole and in order.
#[derive(Debug)]
pub struct Corked<S> {
    shared: Shared<S>,
}

/// Writes whole, already formatted frames to a [`Corked`] stream.
#[derive(Debug)]
pub struct Outbox<S> {
    shared: Shared<S>,
}

impl<S> Clone for Outbox<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S> Corked<S> {
    /// Wraps `inner`, with the outbox that writes to it.
    pub fn new(inner: S) -> (Self, Outbox<S>) {
        let shared = Arc::new(Mutex::new(Held {
            inner,
            bytes: Vec::new(),
        }));
        let outbox = Outbox {
            shared: shared.clone(),
        };
        (Self { shared }, outbox)
    }
}

impl<S: AsyncWrite + Unpin> Outbox<S> {
    /// Sends one frame made of `parts` (a header and a payload). With
    /// `more`, more frames follow at once: the frame may be held (up to
    /// [`CORK_LIMIT`]) and leave with them. Without, everything held is
    /// written before this returns.
    pub async fn send(&self, parts: &[&[u8]], more: bool) -> io::Result<()> {
        let mut frame = Some(parts);
        futures::future::poll_fn(|cx| {
            let mut held = lock(&self.shared);
            if let Some(parts) = frame {
                if more || !held.bytes.is_empty() {
                    for part in parts {
                        held.bytes.extend_from_slice(part);
                    }
                    frame = None;
                    if more && held.bytes.len() < CORK_LIMIT {
                        return Poll::Ready(Ok(()));
                    }
                } else {
                    ready!(held.poll_write_whole(cx, parts))?;
                    frame = None;
                    if held.bytes.is_empty() {
                        return Pin::new(&mut held.inner).poll_flush(cx);
                    }
                }
            }
            ready!(held.poll_drain(cx))?;
            Pin::new(&mut held.inner).poll_flush(cx)
        })
        .await
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut held = lock(&self.shared);
        if held.bytes.is_empty() {
            ready!(held.poll_write_whole(cx, &[buf]))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if held.bytes.len() + buf.len() > CORK_LIMIT {
            // Make room first; nothing of `buf` is taken until there is.
            ready!(held.poll_drain(cx))?;
            ready!(held.poll_write_whole(cx, &[buf]))?;
            return Poll::Ready(Ok(buf.len()));
        }
        // Behind what is held, and sent with it.
        ready!(held.hold(cx, &[buf]))?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut held = lock(&self.shared);
        ready!(held.poll_drain(cx))?;
        Pin::new(&mut held.inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut held = lock(&self.shared);
        ready!(held.poll_drain(cx))?;
        Pin::new(&mut held.inner).poll_close(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Corked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut held = lock(&self.shared);
        Pin::new(&mut held.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::AsyncWriteExt;
    use std::future::Future;

    /// Counts the writes that reach the inner stream; takes at most
    /// `chunk` bytes a write (0: all), and refuses writes while `full`.
    #[derive(Default)]
    struct Counting {
        data: Vec<u8>,
        writes: usize,
        chunk: usize,
        full: bool,
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            if self.full {
                return Poll::Pending;
            }
            let n = match self.chunk {
                0 => buf.len(),
                chunk => chunk.min(buf.len()),
            };
            self.writes += 1;
            self.data.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn inner<R>(outbox: &Outbox<Counting>, f: impl FnOnce(&mut Held<Counting>) -> R) -> R {
        f(&mut lock(&outbox.shared))
    }

    #[async_std::test]
    async fn writes_with_nothing_held_go_straight_through() {
        let (mut stream, outbox) = Corked::new(Counting::default());
        stream.write_all(b"a").await.unwrap();
        stream.write_all(b"b").await.unwrap();
        assert_eq!(inner(&outbox, |h| h.inner.writes), 2);
    }

    #[async_std::test]
    async fn the_limit_bounds_what_is_held() {
        let (_stream, outbox) = Corked::new(Counting::default());
        let big = vec![7u8; CORK_LIMIT / 2 + 1];
        outbox.send(&[&big], true).await.unwrap();
        assert_eq!(inner(&outbox, |h| h.inner.writes), 0, "held");
        outbox.send(&[&big], true).await.unwrap();
        inner(&outbox, |h| {
            assert!(h.bytes.len() <= CORK_LIMIT);
            assert_eq!(h.inner.data.len() + h.bytes.len(), big.len() * 2);
        });
    }

    #[async_std::test]
    async fn outbox_frames_run_together_and_leave_with_the_last() {
        let (_stream, outbox) = Corked::new(Counting::default());
        outbox.send(&[b"h1", b"one "], true).await.unwrap();
        outbox.send(&[b"h2", b"two "], true).await.unwrap();
        assert_eq!(inner(&outbox, |h| h.inner.writes), 0);
        outbox.send(&[b"h3", b"three"], false).await.unwrap();
        inner(&outbox, |h| {
            assert_eq!(h.inner.writes, 1);
            assert_eq!(h.inner.data, b"h1one h2two h3three");
            assert_eq!(h.bytes.capacity(), 0, "buffer released");
        });
        outbox.send(&[b"h4", b"four"], false).await.unwrap();
        assert_eq!(
            inner(&outbox, |h| h.inner.writes),
            2,
            "one write, from the stack"
        );
    }

    #[async_std::test]
    async fn short_writes_never_cut_a_frame_with_another() {
        // The stream takes 3 bytes a write: each writer's frames must still
        // reach it whole and in the order they were sent.
        let inner_stream = Counting {
            chunk: 3,
            ..Counting::default()
        };
        let (mut stream, outbox) = Corked::new(inner_stream);
        outbox.send(&[b"<a", b"aaaa>"], false).await.unwrap();
        stream.write_all(b"<ping>").await.unwrap();
        outbox.send(&[b"<b", b"bbbbbbbbbbb>"], true).await.unwrap();
        stream.write_all(b"<pong>").await.unwrap();
        stream.flush().await.unwrap();
        outbox.send(&[b"<c", b">"], false).await.unwrap();
        let data = inner(&outbox, |h| h.inner.data.clone());
        assert_eq!(data, b"<aaaaa><ping><bbbbbbbbbbbb><pong><c>");
    }

    #[async_std::test]
    async fn a_big_frame_that_waits_for_room_is_sent_once() {
        let (_stream, outbox) = Corked::new(Counting::default());
        inner(&outbox, |h| h.inner.full = true);
        let payload = vec![b'x'; DIRECT_LIMIT + 1];
        let parts: [&[u8]; 2] = [b"<", &payload];
        let mut send = Box::pin(outbox.send(&parts, false));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        // Polled while the stream has no room, then once it has.
        assert!(send.as_mut().poll(&mut cx).is_pending());
        assert!(send.as_mut().poll(&mut cx).is_pending());
        inner(&outbox, |h| h.inner.full = false);
        assert!(matches!(send.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        let data = inner(&outbox, |h| h.inner.data.clone());
        assert_eq!(data.len(), 1 + payload.len(), "the frame once");
    }

    #[async_std::test]
    async fn a_full_stream_holds_tungstenites_frames_whole() {
        let (mut stream, outbox) = Corked::new(Counting::default());
        outbox.send(&[b"<a", b">"], true).await.unwrap();
        inner(&outbox, |h| h.inner.full = true);
        // Held bytes ahead of it: tungstenite's frame is taken whole.
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let taken = Pin::new(&mut stream).poll_write(&mut cx, b"<pong>");
        assert!(matches!(taken, Poll::Ready(Ok(6))));
        inner(&outbox, |h| h.inner.full = false);
        outbox.send(&[b"<b", b">"], false).await.unwrap();
        let data = inner(&outbox, |h| h.inner.data.clone());
        assert_eq!(data, b"<a><pong><b>");
    }
}
