//! The feed service: the use cases every transport shares.
//!
//! - [`Feed::create`], [`Feed::update`] and [`Feed::delete`] check the
//!   publish credential, validate the request and hand it to the
//!   [`Publisher`];
//! - [`Feed::admit`] and [`Ticket::attach`] let a push client in: admission
//!   against `--max-connections` with a [`Permit`] that lives exactly as
//!   long as the client's connection actor (it is dropped with the actor,
//!   whichever way the actor ends, so the count cannot drift), then the
//!   actor's wiring, replay and start.
//!
//! Transports (`/ws`, `/events`, Socket.IO) are adapters around this: they
//! parse their requests, call these, and implement [`Outbound`] for their
//! wire format.

use super::access::{Access, Denied};
use super::change::{Change, Stored};
use super::post::{Invalid, NewPost, Patch};
use super::publish::{
    Expect, Found, Health, Metric, Page, Posts, PublishError, Publisher, StorageError,
};
use async_trait::async_trait;
use futures::stream::BoxStream;
use livefeed_actors::{
    Broadcast, Close, Connection, ConnectionId, Delivery, Hub, Inbound, Joined, Link, Metrics,
    Outbound,
};
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xactor::{Actor, Addr};

/// Why a feed operation failed. Texts inside are for the log, except
/// [`Invalid`]'s message, which tells the client what to fix.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FeedError {
    /// The request body is not a valid post.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The publish credential is missing or wrong.
    #[error(transparent)]
    Unauthorized(#[from] Denied),
    /// The server is at `--max-connections`.
    #[error("too many connections")]
    TooManyConnections,
    /// The change could not be made (no such post, `If-Match` failed, or
    /// it could not be made durable).
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Reading the store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// How a transport's peer shows it is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It answers the connection's pings; a peer silent for a heartbeat
    /// interval plus timeout is closed.
    Heartbeat,
    /// It never speaks (Server-Sent Events), or its transport runs its own
    /// heartbeat (Socket.IO's engine): silence never closes it. A peer
    /// that stops reading is still caught by the write timeout and the
    /// backlog bound.
    Unchecked,
}

/// The feed: create and read posts, let push clients in.
pub struct Feed {
    publisher: Arc<dyn Publisher>,
    posts: Arc<dyn Posts>,
    access: Access,
    link: Link,
    max_connections: usize,
    admitted: Arc<AtomicUsize>,
    next_connection: AtomicU64,
    created: AtomicU64,
    updated: AtomicU64,
    deleted: AtomicU64,
    rejected: AtomicU64,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("access", &self.access)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// The feed over a publisher, this node's posts and its hub
    /// (`link`), admitting at most `max_connections` push clients.
    pub fn new(
        publisher: Arc<dyn Publisher>,
        posts: Arc<dyn Posts>,
        access: Access,
        link: Link,
        max_connections: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            publisher,
            posts,
            access,
            link,
            max_connections,
            admitted: Arc::default(),
            next_connection: AtomicU64::new(1),
            created: AtomicU64::new(0),
            updated: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        })
    }

    /// Creates a post from a request `body`, for a client presenting
    /// `credential` (a publish token, if it sent one). `Ok` means the post
    /// is durable; it reaches every push client through the store's commit
    /// hook.
    pub async fn create(&self, credential: Option<&str>, body: &[u8]) -> Result<Stored, FeedError> {
        let result = async {
            self.access.may_publish(credential)?;
            let post = NewPost::from_json(body)?;
            Ok(self.publisher.create(post).await?)
        }
        .await;
        self.count(&self.created, result)
    }

    /// Edits post `id` with the fields of `body`, if `expect` allows its
    /// latest change.
    pub async fn update(
        &self,
        credential: Option<&str>,
        id: u64,
        body: &[u8],
        expect: Expect,
    ) -> Result<Stored, FeedError> {
        let result = async {
            self.access.may_publish(credential)?;
            let patch = Patch::from_json(body)?;
            Ok(self.publisher.update(id, patch, expect).await?)
        }
        .await;
        self.count(&self.updated, result)
    }

    /// Deletes post `id`, if `expect` allows its latest change.
    pub async fn delete(
        &self,
        credential: Option<&str>,
        id: u64,
        expect: Expect,
    ) -> Result<(), FeedError> {
        let result = async {
            self.access.may_publish(credential)?;
            self.publisher.delete(id, expect).await?;
            Ok(())
        }
        .await;
        self.count(&self.deleted, result)
    }

    /// Checks a publish credential before a transport's own parsing, so a
    /// client without one learns that first (a refusal is counted).
    pub fn may_publish(&self, credential: Option<&str>) -> Result<(), FeedError> {
        self.access
            .may_publish(credential)
            .map_err(FeedError::from)
            .inspect_err(|_| self.reject())
    }

    /// Counts a write that succeeded in `done`, or a refused one.
    fn count<T>(&self, done: &AtomicU64, result: Result<T, FeedError>) -> Result<T, FeedError> {
        match &result {
            Ok(_) => done.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.rejected.fetch_add(1, Ordering::Relaxed),
        };
        result
    }

    /// Counts a write refused before it reached the feed (a transport's own
    /// checks: body size, media type, a malformed id).
    pub fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The live post with `id`.
    pub fn get(&self, id: u64) -> Result<Option<Found>, FeedError> {
        Ok(self.posts.get(id)?)
    }

    /// Up to `limit` posts below `before`, newest first.
    pub fn page(&self, before: Option<u64>, limit: usize) -> Result<Page, FeedError> {
        Ok(self.posts.page(before, limit)?)
    }

    /// Lets a push client in, or refuses it at the connection limit. The
    /// ticket holds its place until it is attached or dropped.
    pub fn admit(self: &Arc<Self>) -> Result<Ticket, FeedError> {
        let taken = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_connections).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(FeedError::TooManyConnections);
        }
        Ok(Ticket {
            feed: self.clone(),
            permit: Permit(self.admitted.clone()),
            id: self.next_connection.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Push clients admitted (counted against the connection limit) and
    /// not yet gone.
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Whether this node should get traffic.
    pub fn health(&self) -> Health {
        self.publisher.health()
    }

    /// Every metric of the feed, its connections and its publisher.
    pub fn metrics(&self) -> Vec<Metric> {
        let m = &self.link.metrics;
        let head = self.posts.head().unwrap_or_default();
        let mut out = vec![
            // The hub's count (clients registered for broadcasts), which
            // drops in the same step that closes a slow consumer; the
            // admission count (`connected`) lags until the actor is gone.
            Metric::gauge(
                "livefeed_connected_clients",
                "Push clients currently connected.",
                Metrics::get(&m.connected),
            ),
            Metric::gauge(
                "livefeed_admitted_connections",
                "Push connections counted against --max-connections, from admission until their actor is gone.",
                self.admitted() as u64,
            ),
            Metric::counter(
                "livefeed_connections_total",
                "Push connections accepted since start.",
                Metrics::get(&m.connections_total),
            ),
            Metric::counter(
                "livefeed_posts_created_total",
                "Posts created through the HTTP API.",
                self.created.load(Ordering::Relaxed),
            ),
            Metric::counter(
                "livefeed_posts_updated_total",
                "Posts edited.",
                self.updated.load(Ordering::Relaxed),
            ),
            Metric::counter(
                "livefeed_posts_deleted_total",
                "Posts deleted.",
                self.deleted.load(Ordering::Relaxed),
            ),
            Metric::counter(
                "livefeed_posts_rejected_total",
                "Create, edit and delete requests refused with an error.",
                self.rejected.load(Ordering::Relaxed),
            ),
            Metric::counter(
                "livefeed_posts_broadcast_total",
                "Changes (creates, edits, deletes) fanned out by the hub.",
                Metrics::get(&m.posts_broadcast),
            ),
            Metric::counter(
                "livefeed_frames_delivered_total",
                "Change frames written to clients, live and replayed.",
                Metrics::get(&m.frames_delivered),
            ),
            Metric::counter(
                "livefeed_slow_consumer_disconnects_total",
                "Clients closed for falling too far behind (1008).",
                Metrics::get(&m.slow_consumer_disconnects),
            ),
            Metric::counter(
                "livefeed_heartbeat_timeouts_total",
                "Clients closed for not answering heartbeats.",
                Metrics::get(&m.heartbeat_timeouts),
            ),
            Metric::gauge(
                "livefeed_last_post_id",
                "The newest stored post id.",
                head.post_id.unwrap_or(0),
            ),
            Metric::gauge(
                "livefeed_last_seq",
                "The seq of the newest stored change.",
                head.seq.unwrap_or(0),
            ),
        ];
        self.publisher.metrics(&mut out);
        out
    }
}

/// Sends every change of a committed batch to the hub, in order: the
/// store's commit hook, called after the batch is on disk. A hub that is
/// gone only means nobody is listening.
pub fn broadcast(hub: &Addr<Hub>, committed: &[Change]) {
    for change in committed {
        hub.send(Broadcast(change.delivery())).ok();
    }
}

/// One admitted connection's place under the connection limit; given back
/// when dropped.
#[derive(Debug)]
pub struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A push client let in and not yet attached (a websocket still upgrading,
/// say). Dropping it gives its place back.
#[derive(Debug)]
pub struct Ticket {
    feed: Arc<Feed>,
    permit: Permit,
    id: ConnectionId,
}

impl Ticket {
    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Starts the client's connection actor: it joins the hub, sends the
    /// welcome, replays the changes after `since` when given (compacted),
    /// then writes every change to `sink` until `inbound` ends or the hub
    /// drops it. The
    /// permit lives inside the actor, so it is given back exactly when the
    /// actor is gone.
    pub fn attach<S: Outbound>(
        self,
        sink: S,
        inbound: BoxStream<'static, Inbound>,
        since: Option<u64>,
        liveness: Liveness,
    ) {
        let Ticket { feed, permit, id } = self;
        let mut link = feed.link.clone();
        if liveness == Liveness::Unchecked {
            link.config.idle_timeout = Duration::MAX;
        }
        let sink = Admitted {
            sink,
            _permit: permit,
        };
        let actor = Connection::new(id, sink, inbound, since, link);
        async_std::task::spawn(async move {
            match actor.start().await {
                // The address is what keeps the actor alive; hold it until
                // the actor stops itself.
                Ok(addr) => addr.wait_for_stop().await,
                Err(e) => log::debug!("connection {id}: did not start: {e}"),
            }
        });
    }
}

/// A transport's sink together with its connection's permit: the actor
/// owns both, so the permit goes when the actor does.
struct Admitted<S> {
    sink: S,
    _permit: Permit,
}

#[async_trait]
impl<S: Outbound> Outbound for Admitted<S> {
    async fn welcome(&mut self, id: ConnectionId, joined: Joined) -> io::Result<()> {
        self.sink.welcome(id, joined).await
    }

    async fn deliver(&mut self, delivery: &Delivery) -> io::Result<()> {
        self.sink.deliver(delivery).await
    }

    fn more_pending(&mut self, more: bool) {
        self.sink.more_pending(more);
    }

    async fn ping(&mut self) -> io::Result<()> {
        self.sink.ping().await
    }

    async fn close(&mut self, close: Close) -> io::Result<()> {
        self.sink.close(close).await
    }
}
