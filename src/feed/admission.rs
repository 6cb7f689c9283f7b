//! Letting push clients in: admission against `--max-connections` with a
//! [`Permit`] that lives exactly as long as the client's connection actor
//! (it is dropped with the actor, whichever way the actor ends, so the
//! count cannot drift), then the actor's wiring, replay and start.

use super::name::FeedName;
use super::service::{Feed, FeedError};
use async_trait::async_trait;
use futures::stream::BoxStream;
use livefeed_actors::{
    Close, Connection, ConnectionId, Delivery, Inbound, Joined, Outbound, Subscription,
};
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xactor::Actor;

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

/// The connection limit and the count against it.
#[derive(Debug)]
pub(super) struct Admission {
    limit: usize,
    admitted: Arc<AtomicUsize>,
    next_connection: AtomicU64,
}

impl Admission {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            admitted: Arc::default(),
            next_connection: AtomicU64::new(1),
        }
    }

    /// Push clients admitted and not yet gone.
    pub(super) fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
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
    feeds: Vec<FeedName>,
}

impl Ticket {
    /// A place under the connection limit for a client of `feeds`, or the
    /// refusal at the limit.
    pub(super) fn new(feed: Arc<Feed>, feeds: Vec<FeedName>) -> Result<Self, FeedError> {
        let admission = &feed.admission;
        let taken = admission
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < admission.limit).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(FeedError::TooManyConnections);
        }
        let permit = Permit(admission.admitted.clone());
        let id = admission.next_connection.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            feed,
            permit,
            id,
            feeds,
        })
    }

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
        let Ticket {
            feed,
            permit,
            id,
            feeds,
        } = self;
        let mut link = feed.link.clone();
        if liveness == Liveness::Unchecked {
            link.config.idle_timeout = Duration::MAX;
        }
        let sink = Admitted {
            sink,
            _permit: permit,
        };
        let subscription = Subscription {
            feeds: feeds.iter().map(FeedName::shared).collect(),
            since,
        };
        let actor = Connection::new(id, sink, inbound, subscription, link);
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
