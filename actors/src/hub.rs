//! The hub: the set of live connections and the fan-out of changes.
//!
//! The hub never awaits a client. It hands each connection pointers to the
//! shared [`Delivery`]s through the connection's mailbox after reserving room
//! in that connection's backlog; a connection whose backlog is full is
//! dropped from the set and told to close as a slow consumer.
//!
//! Changes arrive as [`Broadcast`]s, one per commit round of the store, and
//! leave the same way: each connection gets at most one message per round,
//! with its changes of the round in `seq` order, so the mailbox's cost per
//! message is paid once per round rather than once per change; the lists
//! are shared between connections (see `fanout`). The backlog still counts
//! every frame: a round that would take a connection past its bound kicks
//! it, and none of that round reaches it.
//!
//! Connections are indexed by feed: a change goes to the subscribers of its
//! feed only, so its fan-out costs in proportion to them, not to every
//! connection.
//!
//! Changes leave the hub in `seq` order. They normally arrive in that order
//! too (livefeed's store broadcasts from its one writer thread), but a
//! change whose predecessors have not been broadcast yet pulls them from
//! [`History`] first, and a change already broadcast that way is ignored
//! when its own message arrives.

use crate::connection::{Backlog, Close, ConnectionConfig, ConnectionId, Control, Deliver};
use crate::delivery::{Delivery, Kind};
use crate::fanout::{Frames, Round};
use crate::metrics::Metrics;
use crate::replay::{Feeds, Head, History, Span};
use async_trait::async_trait;
use futures::channel::oneshot;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use xactor::{Actor, Context, Handler, Message, Sender};

/// Hub settings.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// How often every connection is pinged (and checked for silence).
    pub heartbeat_interval: Duration,
    /// Backlog bounds, shared with the connections.
    pub connection: ConnectionConfig,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(25),
            connection: ConnectionConfig::default(),
        }
    }
}

/// Registers a connection. Answers where the feed stood at that moment:
/// every later change reaches the connection live, every earlier one is
/// the connection's to replay if it wants to.
pub struct Join {
    /// The connection's id.
    pub id: ConnectionId,
    /// The feeds it subscribes to.
    pub feeds: Feeds,
    pub(crate) deliver: Sender<Deliver>,
    pub(crate) control: Sender<Control>,
    pub(crate) backlog: Arc<Backlog>,
}

/// The answer to [`Join`]: the newest change broadcast (and the newest
/// post created) when the connection joined.
pub type Joined = Head;

impl Message for Join {
    type Result = Joined;
}

/// Removes a connection; sent by the connection itself when it stops.
#[derive(Debug)]
pub struct Leave(pub ConnectionId);

impl Message for Leave {
    type Result = ();
}

/// Stored changes to fan out to every connection: the changes of one
/// commit round, in ascending `seq`.
#[derive(Debug)]
pub struct Broadcast(pub Vec<Arc<Delivery>>);

impl Broadcast {
    /// A broadcast of a single change.
    pub fn one(delivery: Arc<Delivery>) -> Self {
        Self(vec![delivery])
    }
}

impl Message for Broadcast {
    type Result = ();
}

/// The heartbeat timer's tick; forwarded to every connection.
#[derive(Debug, Clone, Copy)]
pub struct Tick;

impl Message for Tick {
    type Result = ();
}

/// Closes every connection with a reason. Answers with a receiver that
/// completes once all of them have left.
#[derive(Debug, Clone, Copy)]
pub struct CloseAll(pub Close);

impl Message for CloseAll {
    type Result = oneshot::Receiver<()>;
}

/// Asks for the hub's view: connections and the newest broadcast change.
#[derive(Debug, Clone, Copy)]
pub struct Stats;

/// The answer to [`Stats`].
#[derive(Debug, Clone, Copy)]
pub struct HubStats {
    /// Connections registered.
    pub connections: usize,
    /// The newest change broadcast (or stored at start).
    pub head: Head,
}

impl Message for Stats {
    type Result = HubStats;
}

/// Asks how many connections subscribe to each of these feeds.
#[derive(Debug, Clone)]
pub struct Subscribers(pub Vec<Arc<str>>);

impl Message for Subscribers {
    type Result = Vec<usize>;
}

struct Entry {
    deliver: Sender<Deliver>,
    control: Sender<Control>,
    backlog: Arc<Backlog>,
    feeds: Feeds,
}

/// The hub actor.
pub struct Hub {
    /// The connections, by slot (a freed slot is `None` until reused).
    slots: Vec<Option<(ConnectionId, Entry)>>,
    free: Vec<usize>,
    /// The slot of each connection.
    connections: HashMap<ConnectionId, usize>,
    /// The slots of each feed's connections.
    by_feed: HashMap<Arc<str>, HashSet<usize>>,
    head: Head,
    history: Arc<dyn History>,
    metrics: Arc<Metrics>,
    config: HubConfig,
    closing: Option<Close>,
    drained: Vec<oneshot::Sender<()>>,
}

impl Hub {
    /// A hub over `history`, whose newest change is the starting point.
    pub fn new(
        history: Arc<dyn History>,
        metrics: Arc<Metrics>,
        config: HubConfig,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            slots: Vec::new(),
            free: Vec::new(),
            connections: HashMap::new(),
            by_feed: HashMap::new(),
            head: history.head()?,
            history,
            metrics,
            config,
            closing: None,
            drained: Vec::new(),
        })
    }

    /// `batch` without the changes already sent, each preceded by those
    /// before it whose own broadcasts have not arrived yet (read from
    /// history): what to fan out, in `seq` order.
    fn in_order(&self, batch: Vec<Arc<Delivery>>) -> Vec<Arc<Delivery>> {
        let mut head = self.head.seq;
        let mut changes = Vec::with_capacity(batch.len());
        for delivery in batch {
            let last = head.unwrap_or(0);
            if head.is_some() && delivery.seq <= last {
                continue; // already delivered while filling a gap
            }
            if delivery.seq > last + 1 {
                // Changes before this one are durable but their own
                // broadcasts have not arrived yet: send them first so
                // clients see seq order.
                let span = Span {
                    since: last,
                    from: last,
                    upto: delivery.seq - 1,
                    limit: usize::MAX,
                };
                match self.history.after(span, None) {
                    Ok(missing) => changes.extend(missing),
                    Err(e) => {
                        log::error!("hub: reading changes {last}..{} failed: {e}", delivery.seq)
                    }
                }
            }
            head = Some(delivery.seq);
            changes.push(delivery);
        }
        changes
    }

    /// Sends `changes` (in `seq` order) to their feeds' subscribers, one
    /// message per connection.
    fn fan_out(&mut self, changes: &[Arc<Delivery>]) {
        let round = Round::new(changes);
        let limits = &self.config.connection;
        let metrics = &self.metrics;
        let mut dropped = Vec::new();
        // Connections of several feeds may be reached through each: they
        // are served once, after the others.
        let mut several = Vec::new();
        for (feed, frames) in round.feeds() {
            let Some(subscribers) = self.by_feed.get(feed) else {
                continue;
            };
            for &slot in subscribers {
                let Some((id, entry)) = &self.slots[slot] else {
                    continue;
                };
                if entry.feeds.len() > 1 {
                    several.push(slot);
                } else if !offer(*id, entry, frames.clone(), limits, metrics) {
                    dropped.push(*id);
                }
            }
        }
        several.sort_unstable();
        several.dedup();
        for slot in several {
            let Some((id, entry)) = &self.slots[slot] else {
                continue;
            };
            if let Some(frames) = round.for_feeds(&entry.feeds) {
                if !offer(*id, entry, frames, limits, metrics) {
                    dropped.push(*id);
                }
            }
        }
        for id in dropped {
            self.remove(id);
        }
        Metrics::add(&self.metrics.posts_broadcast, changes.len() as u64);
        for delivery in changes {
            self.head.seq = Some(delivery.seq);
            if delivery.kind == Kind::Created {
                self.head.post_id = Some(delivery.post_id);
            }
        }
    }

    fn insert(&mut self, id: ConnectionId, entry: Entry) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        for feed in entry.feeds.iter() {
            self.by_feed.entry(feed.clone()).or_default().insert(slot);
        }
        self.slots[slot] = Some((id, entry));
        if let Some(old) = self.connections.insert(id, slot) {
            // The same id twice: the newer registration wins.
            self.release(old);
        }
        Metrics::set(&self.metrics.connected, self.connections.len() as u64);
    }

    fn remove(&mut self, id: ConnectionId) {
        if let Some(slot) = self.connections.remove(&id) {
            self.release(slot);
        }
        Metrics::set(&self.metrics.connected, self.connections.len() as u64);
    }

    fn release(&mut self, slot: usize) {
        let Some((_, entry)) = self.slots[slot].take() else {
            return;
        };
        for feed in entry.feeds.iter() {
            if let Some(subscribers) = self.by_feed.get_mut(feed) {
                subscribers.remove(&slot);
                if subscribers.is_empty() {
                    self.by_feed.remove(feed);
                }
            }
        }
        self.free.push(slot);
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.slots.iter().flatten().map(|(_, entry)| entry)
    }

    fn check_drained(&mut self) {
        if self.connections.is_empty() {
            for waiter in self.drained.drain(..) {
                waiter.send(()).ok();
            }
        }
    }
}

/// Reserves backlog room for each of `frames` and sends them to the
/// connection in one message; answers false if the connection is to be
/// dropped: it is slow (then it is kicked and told to close, and gets none
/// of them) or gone.
fn offer(
    id: ConnectionId,
    entry: &Entry,
    frames: Frames,
    limits: &ConnectionConfig,
    metrics: &Metrics,
) -> bool {
    let fits = frames
        .iter()
        .all(|delivery| entry.backlog.try_reserve(delivery.cost(), limits));
    if !fits {
        log::info!("connection {id}: slow consumer, disconnecting");
        entry.backlog.kick();
        entry
            .control
            .send(Control::Shutdown(Close::SLOW_CONSUMER))
            .ok();
        Metrics::add(&metrics.slow_consumer_disconnects, 1);
        return false;
    }
    entry.deliver.send(Deliver(frames)).is_ok()
}

#[async_trait]
impl Actor for Hub {
    async fn started(&mut self, ctx: &mut Context<Self>) -> xactor::Result<()> {
        ctx.send_interval(Tick, self.config.heartbeat_interval);
        Ok(())
    }
}

#[async_trait]
impl Handler<Join> for Hub {
    async fn handle(&mut self, _ctx: &mut Context<Self>, join: Join) -> Joined {
        if let Some(close) = self.closing {
            join.control.send(Control::Shutdown(close)).ok();
        } else {
            Metrics::add(&self.metrics.connections_total, 1);
            let entry = Entry {
                deliver: join.deliver,
                control: join.control,
                backlog: join.backlog,
                feeds: join.feeds,
            };
            self.insert(join.id, entry);
        }
        self.head
    }
}

#[async_trait]
impl Handler<Leave> for Hub {
    async fn handle(&mut self, _ctx: &mut Context<Self>, Leave(id): Leave) {
        self.remove(id);
        self.check_drained();
    }
}

#[async_trait]
impl Handler<Broadcast> for Hub {
    async fn handle(&mut self, _ctx: &mut Context<Self>, Broadcast(batch): Broadcast) {
        let changes = self.in_order(batch);
        if !changes.is_empty() {
            self.fan_out(&changes);
        }
    }
}

#[async_trait]
impl Handler<Tick> for Hub {
    async fn handle(&mut self, _ctx: &mut Context<Self>, _: Tick) {
        for entry in self.entries() {
            entry.control.send(Control::Tick).ok();
        }
    }
}

#[async_trait]
impl Handler<CloseAll> for Hub {
    async fn handle(
        &mut self,
        _ctx: &mut Context<Self>,
        CloseAll(close): CloseAll,
    ) -> oneshot::Receiver<()> {
        self.closing = Some(close);
        for entry in self.entries() {
            entry.control.send(Control::Shutdown(close)).ok();
        }
        let (tx, rx) = oneshot::channel();
        self.drained.push(tx);
        self.check_drained();
        rx
    }
}

#[async_trait]
impl Handler<Subscribers> for Hub {
    async fn handle(&mut self, _ctx: &mut Context<Self>, feeds: Subscribers) -> Vec<usize> {
        let count = |feed: &Arc<str>| self.by_feed.get(feed).map_or(0, HashSet::len);
        feeds.0.iter().map(count).collect()
    }
}

#[async_trait]
impl Handler<Stats> for Hub {
    async fn handle(&mut self, _ctx: &mut Context<Self>, _: Stats) -> HubStats {
        HubStats {
            connections: self.connections.len(),
            head: self.head,
        }
    }
}
