//! Write coalescing for push connections.
//!
//! tungstenite writes and flushes every frame with its own system call. When
//! a connection already has more posts queued, [`Corked`] keeps the bytes in
//! a small buffer instead and writes them together with the last frame of
//! the run: under load a client gets many frames per `write`, and an idle
//! client pays nothing (the buffer is only allocated while in use).

use futures::io::{AsyncRead, AsyncWrite};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

/// Most bytes held back before they are written regardless.
pub const CORK_LIMIT: usize = 32 * 1024;

/// Turns holding back on and off; shared by the writer that knows whether
/// more frames follow.
#[derive(Debug, Clone, Default)]
pub struct Cork(Arc<AtomicBool>);

impl Cork {
    /// Hold writes back (`true`) or write through (`false`).
    pub fn set(&self, corked: bool) {
        self.0.store(corked, Ordering::Relaxed);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A stream whose writes are held back while its [`Cork`] is set.
#[derive(Debug)]
pub struct Corked<S> {
    inner: S,
    held: Vec<u8>,
    cork: Cork,
}

impl<S> Corked<S> {
    /// Wraps `inner`, controlled by `cork`.
    pub fn new(inner: S, cork: Cork) -> Self {
        Self {
            inner,
            held: Vec::new(),
            cork,
        }
    }
}

impl<S: AsyncWrite + Unpin> Corked<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..n);
        }
        // Give the buffer back: idle connections should cost nothing.
        self.held = Vec::new();
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.cork.is_set() && this.held.len() + buf.len() <= CORK_LIMIT {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        if !this.held.is_empty() {
            // Send what is held together with this write.
            if this.held.len() + buf.len() <= CORK_LIMIT {
                this.held.extend_from_slice(buf);
                ready!(this.poll_drain(cx))?;
                return Poll::Ready(Ok(buf.len()));
            }
            ready!(this.poll_drain(cx))?;
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.cork.is_set() {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_close(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Corked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::AsyncWriteExt;

    /// Counts the writes that reach the inner stream.
    #[derive(Default)]
    struct Counting {
        data: Vec<u8>,
        writes: usize,
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.writes += 1;
            self.data.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[async_std::test]
    async fn corked_frames_leave_in_one_write_in_order() {
        let cork = Cork::default();
        let mut stream = Corked::new(Counting::default(), cork.clone());
        cork.set(true);
        for frame in [&b"one "[..], b"two ", b"three "] {
            stream.write_all(frame).await.unwrap();
            stream.flush().await.unwrap();
        }
        assert_eq!(stream.inner.writes, 0, "held while corked");
        cork.set(false);
        stream.write_all(b"four").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(stream.inner.writes, 1);
        assert_eq!(stream.inner.data, b"one two three four");
        assert_eq!(stream.held.capacity(), 0, "buffer released");
    }

    #[async_std::test]
    async fn uncorked_writes_go_straight_through() {
        let mut stream = Corked::new(Counting::default(), Cork::default());
        stream.write_all(b"a").await.unwrap();
        stream.write_all(b"b").await.unwrap();
        assert_eq!(stream.inner.writes, 2);
    }

    #[async_std::test]
    async fn the_limit_bounds_what_is_held() {
        let cork = Cork::default();
        let mut stream = Corked::new(Counting::default(), cork.clone());
        cork.set(true);
        let big = vec![7u8; CORK_LIMIT / 2 + 1];
        stream.write_all(&big).await.unwrap();
        stream.write_all(&big).await.unwrap();
        assert!(stream.held.len() <= CORK_LIMIT);
        assert_eq!(stream.inner.data.len() + stream.held.len(), big.len() * 2);
    }
}
