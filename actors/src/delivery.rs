//! A post on its way to many clients.
//!
//! A post is serialised to JSON once, when it is created. Each wire format
//! (plain websocket, Socket.IO, Server-Sent Events, ...) wraps that JSON in
//! its own envelope; [`Delivery::frame`] builds each envelope at most once
//! per post and every connection of that format shares the result.

use std::sync::{Arc, OnceLock};

/// How many distinct wire formats may share one delivery.
pub const MAX_ENCODINGS: usize = 4;

/// A wire format: a slot in the per-delivery frame cache and the function
/// that fills it.
///
/// Each transport declares one `const` of these with its own slot.
#[derive(Clone, Copy)]
pub struct Encoding {
    slot: usize,
    encode: fn(u64, &str) -> String,
}

impl Encoding {
    /// A format stored in `slot` (below [`MAX_ENCODINGS`]) and built by
    /// `encode(post_id, post_json)`.
    pub const fn new(slot: usize, encode: fn(u64, &str) -> String) -> Self {
        assert!(slot < MAX_ENCODINGS, "encoding slot out of range");
        Self { slot, encode }
    }
}

impl std::fmt::Debug for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoding")
            .field("slot", &self.slot)
            .finish()
    }
}

/// One post, serialised once, with its frames built lazily per format.
#[derive(Debug)]
pub struct Delivery {
    /// The post's id; the hub delivers in ascending id order.
    pub id: u64,
    /// The post as JSON (the HTTP API's representation).
    pub post: Arc<str>,
    frames: [OnceLock<Arc<str>>; MAX_ENCODINGS],
}

impl Delivery {
    /// A delivery for post `id` whose JSON is `post`.
    pub fn new(id: u64, post: impl Into<Arc<str>>) -> Arc<Self> {
        Arc::new(Self {
            id,
            post: post.into(),
            frames: Default::default(),
        })
    }

    /// The frame for `encoding`, built on first use and shared afterwards.
    pub fn frame(&self, encoding: Encoding) -> &Arc<str> {
        self.frames[encoding.slot].get_or_init(|| (encoding.encode)(self.id, &self.post).into())
    }

    /// Bytes this delivery costs a connection's backlog: the post JSON plus
    /// a little envelope.
    pub fn cost(&self) -> usize {
        self.post.len() + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    fn wrap(id: u64, post: &str) -> String {
        CALLS.fetch_add(1, Ordering::SeqCst);
        format!("{id}:{post}")
    }

    #[test]
    fn frame_is_built_once_per_encoding() {
        const E: Encoding = Encoding::new(1, wrap);
        let d = Delivery::new(7, "{}");
        let a = d.frame(E).clone();
        let b = d.frame(E).clone();
        assert_eq!(&*a, "7:{}");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    }
}
