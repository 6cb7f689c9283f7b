//! The connection actor: one per connected client, the only writer of its
//! transport.
//!
//! A connection joins the hub in `started`, sends the welcome frame, replays
//! missed posts when the client asked for them, then writes every post the
//! hub forwards. The hub forwards them a commit round at a time, in one
//! [`Deliver`] message (a mailbox message costs allocations and a channel
//! trip, and a round may hold many changes); the connection writes them in
//! order, each with its own write timeout, telling the sink that more
//! follow for all but the last. Its inbound side is read by a small task
//! that only records liveness and reports the end of the stream, so nothing
//! a client sends is ever queued without bound.

use crate::delivery::Delivery;
use crate::fanout::Frames;
use crate::hub::{Hub, Join, Joined, Leave};
use crate::metrics::{Metrics, Tally};
use crate::replay::{Feeds, History, Span};
use async_trait::async_trait;
use futures::future::{AbortHandle, Abortable};
use futures::stream::BoxStream;
use futures::StreamExt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xactor::{Actor, Addr, Context, Handler, Message};

/// Identifies a connection for its whole life; unique within a process.
pub type ConnectionId = u64;

/// Changes a replay reads from history at a time.
const REPLAY_PAGE: usize = 256;

/// Why a connection is being closed, as a websocket close code and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    /// Websocket close code (RFC 6455 section 7.4).
    pub code: u16,
    /// Short human-readable reason sent with the code.
    pub reason: &'static str,
}

impl Close {
    /// The server is shutting down.
    pub const GOING_AWAY: Close = Close {
        code: 1001,
        reason: "server shutting down",
    };
    /// The client's backlog passed the bound: it reads too slowly.
    pub const SLOW_CONSUMER: Close = Close {
        code: 1008,
        reason: "slow consumer: backlog limit exceeded, reconnect with since",
    };
    /// The client sent a frame over the inbound size limit.
    pub const TOO_BIG: Close = Close {
        code: 1009,
        reason: "frame too big",
    };
    /// The client sent something the protocol does not allow.
    pub const PROTOCOL_ERROR: Close = Close {
        code: 1002,
        reason: "protocol error",
    };
    /// The client stopped answering heartbeats.
    pub const HEARTBEAT_TIMEOUT: Close = Close {
        code: 4408,
        reason: "heartbeat timeout",
    };
}

/// The writing half of a client's transport.
///
/// Implementations encode frames for their wire format; every call is made
/// by the connection actor alone, and each is bounded by the configured
/// write timeout.
#[async_trait]
pub trait Outbound: Send + 'static {
    /// The first frame: the connection's id and where the feed stood the
    /// moment it joined (replay, if any, ends there and live changes
    /// follow).
    async fn welcome(&mut self, id: ConnectionId, joined: Joined) -> io::Result<()>;
    /// One change.
    async fn deliver(&mut self, delivery: &Delivery) -> io::Result<()>;
    /// Called before each [`deliver`](Outbound::deliver) with whether more
    /// posts are already queued for this connection. A sink may then hold
    /// the frame back and write several in one system call; it must write
    /// everything held once called with `false` (or on any other method).
    fn more_pending(&mut self, _more: bool) {}
    /// A heartbeat probe; the peer is expected to answer with something
    /// that its inbound stream reports as [`Inbound::Alive`].
    async fn ping(&mut self) -> io::Result<()>;
    /// A close frame with `close`'s code; the actor stops afterwards.
    async fn close(&mut self, close: Close) -> io::Result<()>;
}

/// What the reader of a client's transport reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// The peer sent something (a pong, a frame): it is alive.
    Alive,
    /// The peer sent a frame over the size limit.
    TooBig,
    /// The peer broke the protocol.
    Invalid,
    /// The peer closed the stream, or it failed.
    Closed,
}

/// Limits and timings of one connection.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// A peer silent for longer than this is closed at the next heartbeat.
    pub idle_timeout: Duration,
    /// A single write (or close) that takes longer than this ends the
    /// connection.
    pub write_timeout: Duration,
    /// Undelivered frames after which the connection counts as slow.
    pub max_backlog_frames: usize,
    /// Undelivered bytes after which the connection counts as slow.
    pub max_backlog_bytes: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(45),
            write_timeout: Duration::from_secs(20),
            max_backlog_frames: 256,
            max_backlog_bytes: 1 << 20,
        }
    }
}

impl ConnectionConfig {
    /// The same limits for a transport whose peer never sends anything
    /// (Server-Sent Events): such a peer can't prove it is alive, so it is
    /// never closed for silence. A peer that stops reading is still caught:
    /// its writes (posts and keep-alives) stall and hit the write timeout,
    /// or its backlog passes the bound.
    pub fn without_idle_timeout(self) -> Self {
        Self {
            idle_timeout: Duration::MAX,
            ..self
        }
    }
}

/// Frames and bytes forwarded by the hub and not yet written, shared by the
/// hub (which reserves) and the connection (which releases).
#[derive(Debug, Default)]
pub(crate) struct Backlog {
    frames: AtomicUsize,
    bytes: AtomicUsize,
    /// Set by the hub when it drops the connection for being slow: the
    /// actor then skips whatever is still queued and closes.
    kicked: AtomicBool,
}

impl Backlog {
    /// Reserves room for one frame of `cost` bytes, or reports that the
    /// bound is passed.
    pub(crate) fn try_reserve(&self, cost: usize, config: &ConnectionConfig) -> bool {
        let frames = self.frames.fetch_add(1, Ordering::AcqRel) + 1;
        let bytes = self.bytes.fetch_add(cost, Ordering::AcqRel) + cost;
        frames <= config.max_backlog_frames && bytes <= config.max_backlog_bytes
    }

    /// Releases one frame; answers whether more are still queued.
    fn release(&self, cost: usize) -> bool {
        self.bytes.fetch_sub(cost, Ordering::AcqRel);
        self.frames.fetch_sub(1, Ordering::AcqRel) > 1
    }

    pub(crate) fn kick(&self) {
        self.kicked.store(true, Ordering::Release);
    }

    fn is_kicked(&self) -> bool {
        self.kicked.load(Ordering::Acquire)
    }
}

/// Changes forwarded by the hub: this connection's share of one commit
/// round, in ascending `seq` (a list the hub may share with other
/// connections).
pub struct Deliver(pub(crate) Frames);

impl Message for Deliver {
    type Result = ();
}

/// Control messages, from the hub or from the transport that owns the
/// connection.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// Heartbeat: ping the peer, or close it if it has been silent too long.
    Tick,
    /// Close with this reason and stop.
    Shutdown(Close),
}

impl Message for Control {
    type Result = ();
}

/// The end of the inbound stream, reported by the reader task.
struct PeerGone(Inbound);

impl Message for PeerGone {
    type Result = ();
}

/// Runs one write with a deadline: a peer that stops reading must not hold
/// its connection actor forever.
///
/// Most writes complete at once (the socket has room), so the deadline's
/// timer is only armed for a write that has to wait: a timer per frame would
/// cost more than the write.
pub async fn write_within<T>(
    timeout: Duration,
    write: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let mut write = std::pin::pin!(write);
    if let std::task::Poll::Ready(done) = futures::poll!(write.as_mut()) {
        return done;
    }
    async_std::future::timeout(timeout, write)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "write timed out")))
}

/// What every connection of one hub shares: where it registers, where it
/// replays from, what it counts and its limits.
#[derive(Clone)]
pub struct Link {
    /// The hub the connection joins.
    pub hub: Addr<Hub>,
    /// Stored changes, for replay.
    pub history: Arc<dyn History>,
    /// Counters shared with the hub.
    pub metrics: Arc<Metrics>,
    /// Limits and timings.
    pub config: ConnectionConfig,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a connection asks for: the feeds it follows, and where it resumes.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Changes to posts of these feeds (at least one).
    pub feeds: Feeds,
    /// With it, every stored change after this seq is replayed first.
    pub since: Option<u64>,
}

/// One client connection.
pub struct Connection<S: Outbound> {
    id: ConnectionId,
    sink: S,
    link: Link,
    feeds: Feeds,
    since: Option<u64>,
    /// The newest change this client has (written, or `since`): anything
    /// at or below it is skipped. The hub sends in seq order, but a client
    /// that resumes on a node whose replica is behind the `since` it brings
    /// (cluster mode) would otherwise see those changes twice.
    sent_upto: u64,
    backlog: Arc<Backlog>,
    inbound: Option<BoxStream<'static, Inbound>>,
    reader: Option<AbortHandle>,
    /// Milliseconds after `born` at which the peer was last heard from.
    last_seen_ms: Arc<AtomicU64>,
    born: Instant,
    closing: bool,
}

impl<S: Outbound> Connection<S> {
    /// A connection writing to `sink` and reading liveness from `inbound`,
    /// joining `link`'s hub for the changes `subscription` asks for.
    ///
    /// With a `since`, every stored change after it is sent (compacted)
    /// before live changes, with no gap and no duplicate between the two.
    pub fn new(
        id: ConnectionId,
        sink: S,
        inbound: BoxStream<'static, Inbound>,
        subscription: Subscription,
        link: Link,
    ) -> Self {
        let Subscription { feeds, since } = subscription;
        Self {
            id,
            sink,
            link,
            feeds,
            since,
            sent_upto: since.unwrap_or(0),
            backlog: Arc::default(),
            inbound: Some(inbound),
            reader: None,
            last_seen_ms: Arc::default(),
            born: Instant::now(),
            closing: false,
        }
    }

    /// Writes `delivery` unless the client has it; whether it did. The
    /// caller counts it in `frames_delivered`.
    async fn write(&mut self, delivery: &Delivery) -> io::Result<bool> {
        if delivery.seq <= self.sent_upto {
            return Ok(false);
        }
        write_within(self.link.config.write_timeout, self.sink.deliver(delivery)).await?;
        self.sent_upto = delivery.seq;
        Ok(true)
    }

    /// Sends what a client that has everything up to `since` missed among
    /// the changes up to `upto`, compacted, oldest first.
    async fn replay(&mut self, since: u64, upto: u64) -> anyhow::Result<()> {
        // Each page is read before the last frame of the one before it is
        // written, so that frame is only marked "more pending" when more
        // really follows: a sink holding it back would otherwise keep it
        // until the next live change or heartbeat (the last change may be
        // in a feed this client does not follow).
        let mut page = self.replay_page(since, since, upto)?;
        while let Some(last) = page.last() {
            let next = self.replay_page(since, last.seq, upto)?;
            for (i, delivery) in page.iter().enumerate() {
                self.sink
                    .more_pending(i + 1 < page.len() || !next.is_empty());
                if self.write(delivery).await? {
                    Metrics::add(&self.link.metrics.frames_delivered, 1);
                }
            }
            page = next;
        }
        Ok(())
    }

    /// The stored changes of this client's feeds after `from`, up to
    /// `upto`, for a replay that started at `since`: one page.
    fn replay_page(&self, since: u64, from: u64, upto: u64) -> anyhow::Result<Vec<Arc<Delivery>>> {
        if from >= upto {
            return Ok(Vec::new());
        }
        let span = Span {
            since,
            from,
            upto,
            limit: REPLAY_PAGE,
        };
        self.link.history.after(span, Some(&self.feeds))
    }

    async fn close(&mut self, ctx: &mut Context<Self>, close: Close) {
        if self.closing {
            return;
        }
        self.closing = true;
        if let Err(e) = write_within(self.link.config.write_timeout, self.sink.close(close)).await {
            log::debug!("connection {}: close failed: {e}", self.id);
        }
        ctx.stop(None);
    }

    fn silent_for(&self) -> Duration {
        let now = self.born.elapsed();
        now.saturating_sub(Duration::from_millis(
            self.last_seen_ms.load(Ordering::Relaxed),
        ))
    }
}

#[async_trait]
impl<S: Outbound> Actor for Connection<S> {
    async fn started(&mut self, ctx: &mut Context<Self>) -> xactor::Result<()> {
        let addr = ctx.address();
        let joined = self
            .link
            .hub
            .call(Join {
                id: self.id,
                feeds: self.feeds.clone(),
                deliver: addr.sender::<Deliver>(),
                control: addr.sender::<Control>(),
                backlog: self.backlog.clone(),
            })
            .await?;
        let id = self.id;
        let welcomed = write_within(
            self.link.config.write_timeout,
            self.sink.welcome(id, joined),
        )
        .await;
        let replayed = match (welcomed, self.since, joined.seq) {
            (Err(e), _, _) => Err(e.into()),
            (Ok(()), Some(since), Some(last)) => self.replay(since, last).await,
            (Ok(()), _, _) => Ok(()),
        };
        if let Err(e) = replayed {
            log::debug!("connection {id}: closed during welcome or replay: {e}");
            self.link.hub.send(Leave(id)).ok();
            return Err(e);
        }

        let (handle, registration) = AbortHandle::new_pair();
        self.reader = Some(handle);
        if let Some(mut inbound) = self.inbound.take() {
            let gone = addr.sender::<PeerGone>();
            let last_seen = self.last_seen_ms.clone();
            let born = self.born;
            async_std::task::spawn(Abortable::new(
                async move {
                    let end = loop {
                        match inbound.next().await {
                            Some(Inbound::Alive) => {
                                let now = born.elapsed().as_millis() as u64;
                                last_seen.store(now, Ordering::Relaxed);
                            }
                            Some(other) => break other,
                            None => break Inbound::Closed,
                        }
                    };
                    gone.send(PeerGone(end)).ok();
                },
                registration,
            ));
        }
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
        self.link.hub.send(Leave(self.id)).ok();
    }
}

#[async_trait]
impl<S: Outbound> Handler<Deliver> for Connection<S> {
    async fn handle(&mut self, ctx: &mut Context<Self>, Deliver(frames): Deliver) {
        // The frames written, counted once the round is out (the last of
        // them releases those held back before it). They are one run: the
        // ones the client had come first, and nothing is written after a
        // failure or a kick.
        let mut written: Option<(usize, usize)> = None;
        for (i, delivery) in frames.iter().enumerate() {
            // Released frame by frame, so the backlog tracks what is left.
            let more = self.backlog.release(delivery.cost());
            if self.closing || self.backlog.is_kicked() {
                continue;
            }
            if delivery.seq <= self.sent_upto {
                // The client has it (see `sent_upto`). Seqs only grow, so
                // such changes come before the first one written live and
                // the sink holds nothing back that a later hint would have
                // to release.
                continue;
            }
            // The rest of the round is still reserved: `more` covers it.
            self.sink.more_pending(more);
            match self.write(delivery).await {
                Ok(true) => {
                    let first = written.map_or(i, |(first, _)| first);
                    written = Some((first, i));
                }
                Ok(false) => {}
                Err(e) => {
                    log::debug!("connection {}: write failed: {e}", self.id);
                    self.closing = true;
                    ctx.stop(None);
                }
            }
        }
        if let Some((first, last)) = written {
            let metrics = &self.link.metrics;
            let run = &frames[first..=last];
            Metrics::add(&metrics.frames_delivered, run.len() as u64);
            let now = Instant::now();
            let mut lags = Tally::default();
            for delivery in run {
                lags.observe(now.saturating_duration_since(delivery.made_at));
            }
            metrics.delivery_lag.add(&lags);
        }
    }
}

#[async_trait]
impl<S: Outbound> Handler<Control> for Connection<S> {
    async fn handle(&mut self, ctx: &mut Context<Self>, msg: Control) {
        match msg {
            Control::Shutdown(close) => self.close(ctx, close).await,
            Control::Tick if self.closing => {}
            Control::Tick => {
                if self.silent_for() > self.link.config.idle_timeout {
                    Metrics::add(&self.link.metrics.heartbeat_timeouts, 1);
                    log::info!("connection {}: heartbeat timeout", self.id);
                    self.close(ctx, Close::HEARTBEAT_TIMEOUT).await;
                } else if let Err(e) =
                    write_within(self.link.config.write_timeout, self.sink.ping()).await
                {
                    log::debug!("connection {}: ping failed: {e}", self.id);
                    self.closing = true;
                    ctx.stop(None);
                }
            }
        }
    }
}

#[async_trait]
impl<S: Outbound> Handler<PeerGone> for Connection<S> {
    async fn handle(&mut self, ctx: &mut Context<Self>, PeerGone(why): PeerGone) {
        match why {
            Inbound::TooBig => self.close(ctx, Close::TOO_BIG).await,
            Inbound::Invalid => self.close(ctx, Close::PROTOCOL_ERROR).await,
            Inbound::Alive | Inbound::Closed => {
                self.closing = true;
                ctx.stop(None);
            }
        }
    }
}
