//! The harness of the hub tests: a hub on an in-memory history, and
//! connections writing to in-memory sinks that record what they are given.

#![allow(dead_code)] // each test binary uses its own part of it

use async_std::channel::{unbounded, Receiver, Sender};
use async_std::future::timeout;
use async_trait::async_trait;
use futures::StreamExt;
use livefeed_actors::{
    Broadcast, Close, Connection, ConnectionConfig, ConnectionId, Delivery, Format, Head, History,
    Hub, HubConfig, Inbound, Joined, Kind, Link, Metrics, Outbound, Span, Stats, Subscription,
};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xactor::{Actor, Addr};

pub const WAIT: Duration = Duration::from_secs(10);

/// The one wire format of these tests: `<id>:<post JSON>`.
#[derive(Clone, Copy)]
pub struct Plain;

impl Format for Plain {
    fn slot(self) -> usize {
        0
    }
    fn encode(self, d: &Delivery) -> String {
        format!("{}:{}", d.seq, d.data)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Welcome(Option<u64>),
    Post(u64),
    Ping,
    Closed(u16),
}

/// Records what the connection writes; with a gate, each post write first
/// says it has begun (on `entered`, with the post's seq), then waits for a
/// token (or for the gate to be closed).
pub struct MemSink {
    pub events: Sender<Event>,
    pub gate: Option<Receiver<()>>,
    pub entered: Option<Sender<u64>>,
    /// The `more_pending` hint given before each post, in order.
    pub hints: Arc<Mutex<Vec<bool>>>,
}

#[async_trait]
impl Outbound for MemSink {
    async fn welcome(&mut self, _id: ConnectionId, joined: Joined) -> io::Result<()> {
        self.events.send(Event::Welcome(joined.seq)).await.ok();
        Ok(())
    }
    fn more_pending(&mut self, more: bool) {
        self.hints.lock().unwrap().push(more);
    }
    async fn deliver(&mut self, delivery: &Delivery) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            if let Some(entered) = &self.entered {
                entered.send(delivery.seq).await.ok();
            }
            gate.recv().await.ok();
        }
        let frame = delivery.frame(Plain);
        assert!(frame.starts_with(&format!("{}:", delivery.seq)));
        self.events.send(Event::Post(delivery.seq)).await.ok();
        Ok(())
    }
    async fn ping(&mut self) -> io::Result<()> {
        self.events.send(Event::Ping).await.ok();
        Ok(())
    }
    async fn close(&mut self, close: Close) -> io::Result<()> {
        self.events.send(Event::Closed(close.code)).await.ok();
        Ok(())
    }
}

/// Created posts only, each at its own id (so seq = post id).
#[derive(Default)]
pub struct MemHistory(pub Mutex<BTreeMap<u64, Arc<Delivery>>>);

pub fn created(id: u64) -> Arc<Delivery> {
    Delivery::new(
        id,
        id,
        MAIN.into(),
        Kind::Created,
        format!("{{\"id\":{id}}}"),
    )
}

/// The feed every connection of these tests follows.
pub const MAIN: &str = "main";

pub fn main_feed(since: Option<u64>) -> Subscription {
    Subscription {
        feeds: vec![Arc::<str>::from(MAIN)].into(),
        since,
    }
}

/// Following `names`, resuming after `since`.
pub fn following(names: &[&str], since: Option<u64>) -> Subscription {
    Subscription {
        feeds: names.iter().map(|n| Arc::<str>::from(*n)).collect(),
        since,
    }
}

impl MemHistory {
    pub fn store(&self, id: u64) -> Arc<Delivery> {
        let d = created(id);
        self.0.lock().unwrap().insert(id, d.clone());
        d
    }
}

impl History for MemHistory {
    fn head(&self) -> anyhow::Result<Head> {
        let last = self.0.lock().unwrap().keys().next_back().copied();
        Ok(Head {
            seq: last,
            post_id: last,
        })
    }
    fn after(&self, span: Span, _feeds: Option<&[Arc<str>]>) -> anyhow::Result<Vec<Arc<Delivery>>> {
        let map = self.0.lock().unwrap();
        Ok(map
            .range(span.from + 1..=span.upto)
            .take(span.limit)
            .map(|(_, d)| d.clone())
            .collect())
    }
}

/// [`World::slow_and_fast`]'s connections.
pub struct SlowAndFast {
    /// Dropping it lets the slow connection's writes through.
    pub gate: Sender<()>,
    pub slow_rx: Receiver<Event>,
    pub slow: Addr<Connection<MemSink>>,
    pub fast_rx: Receiver<Event>,
    /// Keeps the fast connection running.
    pub fast: Addr<Connection<MemSink>>,
}

pub struct World {
    pub hub: Addr<Hub>,
    pub history: Arc<MemHistory>,
    pub metrics: Arc<Metrics>,
    pub config: ConnectionConfig,
    pub next_id: ConnectionId,
    pub hints: Arc<Mutex<Vec<bool>>>,
    /// The seqs gated connections have begun to write, in order.
    pub entered: Receiver<u64>,
    entered_tx: Sender<u64>,
}

impl World {
    pub async fn new(config: ConnectionConfig) -> Self {
        let history = Arc::new(MemHistory::default());
        Self::with_history(history, config).await
    }

    /// A world whose history has posts 1 to `n`, with default limits.
    pub async fn with_posts(n: u64) -> Self {
        let history = Arc::new(MemHistory::default());
        for id in 1..=n {
            history.store(id);
        }
        Self::with_history(history, ConnectionConfig::default()).await
    }

    pub async fn with_history(history: Arc<MemHistory>, config: ConnectionConfig) -> Self {
        Self::build(history, config, Duration::from_secs(3600)).await
    }

    pub async fn build(
        history: Arc<MemHistory>,
        config: ConnectionConfig,
        heartbeat: Duration,
    ) -> Self {
        let metrics = Arc::new(Metrics::default());
        let (entered_tx, entered) = unbounded();
        let hub_config = HubConfig {
            heartbeat_interval: heartbeat,
            connection: config.clone(),
        };
        let hub = Hub::new(history.clone(), metrics.clone(), hub_config)
            .unwrap()
            .start()
            .await
            .unwrap();
        Self {
            hub,
            history,
            metrics,
            config,
            next_id: 0,
            hints: Arc::default(),
            entered,
            entered_tx,
        }
    }

    /// A slow connection (each write waits for a token of the gate
    /// returned) and a fast one, both on the main feed and welcomed, with
    /// writes that never time out and a backlog bound of `max_frames`.
    pub async fn slow_and_fast(max_frames: usize) -> (Self, SlowAndFast) {
        let config = ConnectionConfig {
            max_backlog_frames: max_frames,
            write_timeout: Duration::from_secs(60),
            ..ConnectionConfig::default()
        };
        let mut w = World::new(config).await;
        let (gate, gate_rx) = unbounded::<()>();
        let (slow_rx, slow) = w.connect(None, Some(gate_rx)).await;
        let (fast_rx, fast) = w.connect(None, None).await;
        assert_eq!(next(&slow_rx).await, Event::Welcome(None));
        assert_eq!(next(&fast_rx).await, Event::Welcome(None));
        let pair = SlowAndFast {
            gate,
            slow_rx,
            slow,
            fast_rx,
            fast,
        };
        (w, pair)
    }

    /// Starts a connection to the main feed; returns its event stream and
    /// address.
    pub async fn connect(
        &mut self,
        since: Option<u64>,
        gate: Option<Receiver<()>>,
    ) -> (Receiver<Event>, Addr<Connection<MemSink>>) {
        self.connect_to(main_feed(since), gate).await
    }

    /// Starts a connection for `subscription`.
    pub async fn connect_to(
        &mut self,
        subscription: Subscription,
        gate: Option<Receiver<()>>,
    ) -> (Receiver<Event>, Addr<Connection<MemSink>>) {
        let (tx, rx) = unbounded();
        self.next_id += 1;
        let conn = Connection::new(
            self.next_id,
            MemSink {
                events: tx,
                entered: gate.as_ref().map(|_| self.entered_tx.clone()),
                gate,
                hints: self.hints.clone(),
            },
            futures::stream::pending::<Inbound>().boxed(),
            subscription,
            Link {
                hub: self.hub.clone(),
                history: self.history.clone(),
                metrics: self.metrics.clone(),
                config: self.config.clone(),
            },
        );
        let addr = conn.start().await.unwrap();
        (rx, addr)
    }

    pub async fn publish(&self, id: u64) {
        let d = self.history.store(id);
        self.hub.send(Broadcast::one(d)).unwrap();
    }

    /// Stores posts `ids` and broadcasts them as one commit round.
    pub async fn publish_round(&self, ids: impl IntoIterator<Item = u64>) {
        let round = ids.into_iter().map(|id| self.history.store(id)).collect();
        self.hub.send(Broadcast(round)).unwrap();
    }

    pub async fn connections(&self) -> usize {
        self.hub.call(Stats).await.unwrap().connections
    }
}

pub async fn next(rx: &Receiver<Event>) -> Event {
    timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for an event")
        .expect("sink dropped")
}

pub async fn posts(rx: &Receiver<Event>, n: usize) -> Vec<u64> {
    let mut ids = Vec::new();
    while ids.len() < n {
        match next(rx).await {
            Event::Post(id) => ids.push(id),
            Event::Ping => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    ids
}
