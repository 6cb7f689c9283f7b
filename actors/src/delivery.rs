//! A change on its way to many clients.
//!
//! A change (a post created, edited or deleted) is serialised to JSON once,
//! when it is stored. Each wire format (plain websocket, Socket.IO,
//! Server-Sent Events, ...) wraps that JSON in its own envelope;
//! [`Delivery::frame`] builds each envelope at most once per change and
//! every connection of that format shares the result.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// How many distinct wire formats may share one delivery.
pub const MAX_FORMATS: usize = 4;

/// A wire format: the key of a delivery's frame cache and the function that
/// fills its entry.
///
/// Implement it on a field-less enum whose [`slot`](Format::slot) is the
/// variant's discriminant: each format then owns its entry by construction,
/// and two formats can never share one (which would hand one transport's
/// frames to another).
pub trait Format: Copy + Send + Sync + 'static {
    /// The cache entry of this format, below [`MAX_FORMATS`] and distinct
    /// for every format.
    fn slot(self) -> usize;
    /// Builds this format's frame for `delivery`.
    fn encode(self, delivery: &Delivery) -> String;
}

/// What a change did to its post.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The post appeared (`newPost`).
    Created,
    /// The post changed (`postUpdated`).
    Updated,
    /// The post is gone (`postDeleted`).
    Deleted,
}

/// One change, serialised once, with its frames built lazily per format.
#[derive(Debug)]
pub struct Delivery {
    /// The change's place in the one order of every change; the hub
    /// delivers in ascending `seq`.
    pub seq: u64,
    /// The post it changed.
    pub post_id: u64,
    /// The post's feed: the change goes to that feed's subscribers.
    pub feed: Arc<str>,
    /// What it did.
    pub kind: Kind,
    /// The change as JSON: the `data` every transport's frame carries.
    pub data: Arc<str>,
    /// When the delivery was made: for a live change, when it was stored.
    pub made_at: Instant,
    frames: [OnceLock<Arc<str>>; MAX_FORMATS],
}

impl Delivery {
    /// A delivery of change `seq` to post `post_id` of `feed`, whose frames
    /// carry `data`.
    pub fn new(
        seq: u64,
        post_id: u64,
        feed: Arc<str>,
        kind: Kind,
        data: impl Into<Arc<str>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            seq,
            post_id,
            feed,
            kind,
            data: data.into(),
            made_at: Instant::now(),
            frames: Default::default(),
        })
    }

    /// The frame for `format`, built on first use and shared afterwards.
    pub fn frame<F: Format>(&self, format: F) -> &Arc<str> {
        self.frames[format.slot()].get_or_init(|| format.encode(self).into())
    }

    /// Bytes this delivery costs a connection's backlog: the JSON plus a
    /// little envelope.
    pub fn cost(&self) -> usize {
        self.data.len() + 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    #[derive(Clone, Copy)]
    enum Test {
        Plain,
        Tagged,
    }

    impl Format for Test {
        fn slot(self) -> usize {
            self as usize
        }
        fn encode(self, d: &Delivery) -> String {
            CALLS.fetch_add(1, Ordering::SeqCst);
            match self {
                Test::Plain => format!("{}:{}", d.seq, d.data),
                Test::Tagged => format!("tag {}", d.seq),
            }
        }
    }

    #[test]
    fn frame_is_built_once_per_format() {
        let d = Delivery::new(7, 7, "main".into(), Kind::Created, "{}");
        let a = d.frame(Test::Plain).clone();
        let b = d.frame(Test::Plain).clone();
        assert_eq!(&*a, "7:{}");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&**d.frame(Test::Tagged), "tag 7");
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);
    }
}
