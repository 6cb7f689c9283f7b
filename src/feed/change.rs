//! Changes: a post created, edited or deleted, each with its place in the
//! one order of every change (`seq`).
//!
//! One counter orders every change: a create takes the next number, which
//! is also the post's id; an edit or a delete takes the next number too. A
//! change is serialised once, when it is stored, into the `data` every
//! transport's frame carries ([`wire`](super::wire)).

use super::post::{Patch, Post};
use super::wire;
use livefeed_actors::{Delivery, Kind};
use std::sync::Arc;

/// A post, its JSON serialised once, and the seq of its latest change
/// (its `ETag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The post.
    pub post: Post,
    /// The seq of the post's latest change.
    pub seq: u64,
    /// `post` as JSON, exactly as stored and served.
    pub json: Arc<str>,
}

impl Stored {
    /// `post` at change `seq`, with its JSON.
    pub fn new(post: Post, seq: u64) -> Self {
        // A struct of strings and integers always serialises.
        let json = serde_json::to_string(&post).expect("post serialises");
        Self {
            post,
            seq,
            json: json.into(),
        }
    }
}

/// One change to the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new post; its seq is its id.
    Created(Stored),
    /// An edited post, in its new state.
    Updated(Stored),
    /// A deleted post.
    Deleted {
        /// The post's id.
        id: u64,
        /// The delete's seq.
        seq: u64,
        /// The post's feed.
        feed: String,
    },
}

impl Change {
    /// The change's place in the one order.
    pub fn seq(&self) -> u64 {
        match self {
            Change::Created(s) | Change::Updated(s) => s.seq,
            Change::Deleted { seq, .. } => *seq,
        }
    }

    /// The post it changed.
    pub fn post_id(&self) -> u64 {
        match self {
            Change::Created(s) | Change::Updated(s) => s.post.id,
            Change::Deleted { id, .. } => *id,
        }
    }

    /// What it did.
    pub fn kind(&self) -> Kind {
        match self {
            Change::Created(_) => Kind::Created,
            Change::Updated(_) => Kind::Updated,
            Change::Deleted { .. } => Kind::Deleted,
        }
    }

    /// The feed of the post it changed.
    pub fn feed(&self) -> &str {
        match self {
            Change::Created(s) | Change::Updated(s) => &s.post.feed,
            Change::Deleted { feed, .. } => feed,
        }
    }

    /// The post as it is after the change (none after a delete).
    pub fn stored(&self) -> Option<&Stored> {
        match self {
            Change::Created(s) | Change::Updated(s) => Some(s),
            Change::Deleted { .. } => None,
        }
    }

    /// The change ready to fan out: its `data` serialised once.
    pub fn delivery(&self) -> Arc<Delivery> {
        let data = match self.stored() {
            Some(stored) => wire::post_data(&stored.json, stored.seq),
            None => wire::deleted_data(self.post_id(), self.seq()),
        };
        Delivery::new(
            self.seq(),
            self.post_id(),
            self.feed().into(),
            self.kind(),
            data,
        )
    }
}

/// A change as a shared log records it, before a replica applies it: an
/// edit is the patch and its time, so every replica, applying the same
/// entries in the same order, builds the same post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logged {
    /// A new post, stamped (its seq is its id).
    Created(Stored),
    /// An edit of post `id`.
    Updated {
        /// The edit's seq.
        seq: u64,
        /// The post edited.
        id: u64,
        /// What it changes.
        patch: Patch,
        /// Its `updatedAt`.
        at: String,
    },
    /// A delete of post `id`.
    Deleted {
        /// The delete's seq.
        seq: u64,
        /// The post deleted.
        id: u64,
    },
}

impl Logged {
    /// The change's place in the one order.
    pub fn seq(&self) -> u64 {
        match self {
            Logged::Created(s) => s.seq,
            Logged::Updated { seq, .. } | Logged::Deleted { seq, .. } => *seq,
        }
    }

    /// The post it changes.
    pub fn post_id(&self) -> u64 {
        match self {
            Logged::Created(s) => s.post.id,
            Logged::Updated { id, .. } | Logged::Deleted { id, .. } => *id,
        }
    }
}
