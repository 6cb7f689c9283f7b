//! The feed service: the use cases every transport shares.
//!
//! - [`Feed::create`], [`Feed::update`] and [`Feed::delete`] check who may
//!   write to the post's feed, validate the request and hand it to the
//!   [`Publisher`];
//! - [`Feed::get`], [`Feed::page`] and [`Feed::feeds`] read, showing a
//!   private feed's posts only to who may read it (to anyone else they do
//!   not exist: `404`);
//! - [`Feed::admit`] and [`Ticket::attach`](super::admission::Ticket::attach)
//!   let a push client in ([`admission`](super::admission)).
//!
//! Transports (`/ws`, `/events`, Socket.IO) are adapters around this: they
//! parse their requests, call these, and implement `Outbound` for their
//! wire format.

use super::access::{Access, Denied, Grant};
use super::admission::{Admission, Ticket};
use super::change::{Change, Stored};
use super::idempotency::{BadKey, Idempotency, Keyed};
use super::name::{BadFeed, FeedName};
use super::post::{Invalid, NewPost, Patch};
use super::publish::{
    Created, Expect, Found, Health, Page, Posts, PublishError, Publisher, StorageError,
};
use livefeed_actors::{Broadcast, Histogram, Hub, Link, Subscribers};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xactor::Addr;

/// Why a feed operation failed. Texts inside are for the log, except
/// [`Invalid`]'s and [`BadFeed`]'s messages and [`Denied`]'s reason, which
/// tell the client what to fix.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FeedError {
    /// The request body is not a valid post or edit.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A feed name, or a subscription, is not valid.
    #[error(transparent)]
    BadFeed(#[from] BadFeed),
    /// An idempotency key is not valid.
    #[error(transparent)]
    BadKey(#[from] BadKey),
    /// The caller may not do this: no credential, or one that does not
    /// cover the feed.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// No such post, or none the caller may see.
    #[error("no such post")]
    NotFound,
    /// The server is at `--max-connections`.
    #[error("too many connections")]
    TooManyConnections,
    /// The change could not be made (`If-Match` failed, or it could not be
    /// made durable).
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Reading the store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A feed as `GET /feeds` lists it (its JSON, in this field order).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedInfo {
    /// Its name.
    pub name: String,
    /// Live posts in it.
    pub posts: u64,
    /// Its newest live post.
    pub last_post_id: Option<u64>,
    /// Push clients on this node that follow it.
    pub subscribers: usize,
}

/// The feed: create and read posts, let push clients in.
pub struct Feed {
    publisher: Arc<dyn Publisher>,
    posts: Arc<dyn Posts>,
    access: Access,
    /// How long a create's idempotency key is remembered.
    idempotency_ttl: Duration,
    pub(super) link: Link,
    pub(super) admission: Admission,
    pub(super) counts: Counts,
}

/// What the feed counts, for `/metrics`.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) created: AtomicU64,
    /// Keyed creates answered from their record (nothing stored).
    pub(super) replayed: AtomicU64,
    pub(super) updated: AtomicU64,
    pub(super) deleted: AtomicU64,
    pub(super) rejected: AtomicU64,
    /// Successful creates, from the request to the answer.
    pub(super) create_latency: Histogram,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// The feed over a publisher, this node's posts and its hub
    /// (`link`), admitting at most `max_connections` push clients and
    /// remembering idempotency keys for `idempotency_ttl`.
    pub fn new(
        publisher: Arc<dyn Publisher>,
        posts: Arc<dyn Posts>,
        access: Access,
        link: Link,
        max_connections: usize,
        idempotency_ttl: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            publisher,
            posts,
            access,
            idempotency_ttl,
            link,
            admission: Admission::new(max_connections),
            counts: Counts::default(),
        })
    }

    /// What a presented token (if any) grants.
    pub fn grant(&self, credential: Option<&str>) -> Grant {
        self.access.grant(credential)
    }

    /// Creates a post of `feed` from a request `body`. `Ok` means the post
    /// is durable; it reaches every push client of the feed through the
    /// store's commit hook.
    ///
    /// With `keyed`, a retry is safe: the first create with the key (in
    /// the sender's scope) records it with the post; a later one with the
    /// same route and the same JSON value stores and broadcasts nothing
    /// and answers the post as the first got it (`replayed`), one with
    /// another route or body is refused ([`PublishError::KeyReused`]). A
    /// body that is not a valid post is refused as always and records
    /// nothing.
    pub async fn create(
        &self,
        grant: &Grant,
        feed: FeedName,
        body: &[u8],
        keyed: Option<&Keyed>,
    ) -> Result<Created, FeedError> {
        let result = async {
            self.access.may_publish(grant, &feed)?;
            let post = NewPost::from_json(feed, body)?;
            let once = match keyed {
                Some(keyed) => {
                    // It parsed as a post just above.
                    let value = serde_json::from_slice(body)
                        .map_err(|e| Invalid::Malformed(format!("the body is not JSON: {e}")))?;
                    Some(Idempotency::new(grant, keyed, &value, self.idempotency_ttl))
                }
                None => None,
            };
            Ok(self.publisher.create(post, once.as_ref()).await?)
        }
        .await;
        match &result {
            Ok(Created { replayed: true, .. }) => &self.counts.replayed,
            Ok(_) => &self.counts.created,
            Err(_) => &self.counts.rejected,
        }
        .fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Edits post `id` with the fields of `body`, if `expect` allows its
    /// latest change.
    pub async fn update(
        &self,
        grant: &Grant,
        id: u64,
        body: &[u8],
        expect: Expect,
    ) -> Result<Stored, FeedError> {
        let result = async {
            self.writable(grant, id)?;
            let patch = Patch::from_json(body)?;
            Ok(self.publisher.update(id, patch, expect).await?)
        }
        .await;
        self.count(&self.counts.updated, result)
    }

    /// Deletes post `id`, if `expect` allows its latest change.
    pub async fn delete(&self, grant: &Grant, id: u64, expect: Expect) -> Result<(), FeedError> {
        let result = async {
            self.writable(grant, id)?;
            self.publisher.delete(id, expect).await?;
            Ok(())
        }
        .await;
        self.count(&self.counts.deleted, result)
    }

    /// Checks that `grant` may write to post `id`: a post it may not even
    /// read does not exist for it.
    fn writable(&self, grant: &Grant, id: u64) -> Result<(), FeedError> {
        self.may_write_at_all(grant)?;
        let found = self.get(grant, id)?;
        self.access.may_publish(grant, &feed_of(&found)?)?;
        Ok(())
    }

    /// A caller without a credential, on a server that takes writes only
    /// with one, is told so before anything else (whether a post exists
    /// included). A caller with a credential is checked against the post's
    /// own feed.
    pub fn may_write_at_all(&self, grant: &Grant) -> Result<(), FeedError> {
        match grant {
            Grant::Anonymous | Grant::Invalid(_) => {
                Ok(self.access.may_publish(grant, &FeedName::main())?)
            }
            _ => Ok(()),
        }
    }

    /// Checks `grant` may write to `feed` before a transport's own parsing,
    /// so a client without a credential learns that first (a refusal is
    /// counted).
    pub fn may_publish(&self, grant: &Grant, feed: &FeedName) -> Result<(), FeedError> {
        let checked = self
            .access
            .may_publish(grant, feed)
            .map_err(FeedError::from);
        checked.inspect_err(|_| self.reject())
    }

    /// Counts a write that succeeded in `done`, or a refused one.
    fn count<T>(&self, done: &AtomicU64, result: Result<T, FeedError>) -> Result<T, FeedError> {
        match &result {
            Ok(_) => done.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counts.rejected.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    /// Counts how long a successful create took a transport, from reading
    /// the request to its answer (an HTTP `201`, a Socket.IO ack).
    pub fn created_in(&self, took: Duration) {
        self.counts.create_latency.observe(took);
    }

    /// Counts a write refused before it reached the feed (a transport's own
    /// checks: body size, media type, a malformed id).
    pub fn reject(&self) {
        self.counts.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The live post with `id`, if `grant` may read its feed.
    pub fn get(&self, grant: &Grant, id: u64) -> Result<Found, FeedError> {
        let found = self.posts.get(id)?.ok_or(FeedError::NotFound)?;
        let feed = feed_of(&found)?;
        match self.access.may_read(grant, &feed) {
            Ok(()) => Ok(found),
            Err(_) => Err(FeedError::NotFound),
        }
    }

    /// Up to `limit` posts of `feed` below `before`, newest first.
    pub fn page(
        &self,
        grant: &Grant,
        feed: &FeedName,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, FeedError> {
        self.access.may_read(grant, feed)?;
        Ok(self.posts.page(feed, before, limit)?)
    }

    /// Every feed with at least one live post that `grant` may read.
    pub async fn feeds(&self, grant: &Grant) -> Result<Vec<FeedInfo>, FeedError> {
        let stats = self.posts.feeds()?;
        let readable: Vec<_> = stats
            .into_iter()
            .filter(|stat| {
                FeedName::parse(&stat.name)
                    .is_ok_and(|feed| self.access.may_read(grant, &feed).is_ok())
            })
            .collect();
        let names = readable.iter().map(|s| s.name.as_str().into()).collect();
        // A hub that is gone (shutting down) has no subscribers.
        let subscribers = self
            .link
            .hub
            .call(Subscribers(names))
            .await
            .unwrap_or_default();
        Ok(readable
            .into_iter()
            .enumerate()
            .map(|(i, stat)| FeedInfo {
                name: stat.name,
                posts: stat.posts,
                last_post_id: stat.last_post_id,
                subscribers: subscribers.get(i).copied().unwrap_or(0),
            })
            .collect())
    }

    /// Lets a push client of `feeds` in, if `grant` may read every one of
    /// them and the server is below its connection limit. The ticket holds
    /// its place until it is attached or dropped.
    pub fn admit(
        self: &Arc<Self>,
        grant: &Grant,
        feeds: Vec<FeedName>,
    ) -> Result<Ticket, FeedError> {
        for feed in &feeds {
            self.access.may_read(grant, feed)?;
        }
        Ticket::new(self.clone(), feeds)
    }

    /// Whether this node should get traffic.
    pub fn health(&self) -> Health {
        self.publisher.health()
    }

    pub(super) fn posts(&self) -> &dyn Posts {
        &*self.posts
    }

    pub(super) fn publisher(&self) -> &dyn Publisher {
        &*self.publisher
    }
}

/// The feed a stored post names.
fn feed_of(found: &Found) -> Result<FeedName, FeedError> {
    FeedName::parse(&found.feed).map_err(|_| {
        FeedError::Storage(StorageError(format!("a post names feed {:?}", found.feed)))
    })
}

/// Sends the changes of a committed batch to the hub, in order, as one
/// message (the hub forwards them the same way, one message per connection
/// for the whole batch): the store's commit hook, called after the batch is
/// on disk. A hub that is gone only means nobody is listening.
pub fn broadcast(hub: &Addr<Hub>, committed: &[Change]) {
    if committed.is_empty() {
        return;
    }
    let batch = committed.iter().map(Change::delivery).collect();
    hub.send(Broadcast(batch)).ok();
}
