//! Connections of write-only transports (Server-Sent Events): no inbound
//! heartbeat, so silence must not close them; a peer that stops reading is
//! still closed by the backlog bound.

use async_std::channel::{unbounded, Receiver, Sender};
use async_std::future::timeout;
use async_trait::async_trait;
use futures::StreamExt;
use livefeed_actors::{
    Broadcast, Close, Connection, ConnectionConfig, ConnectionId, Delivery, History, Hub,
    HubConfig, Inbound, Metrics, Outbound,
};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use xactor::Actor;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Welcome,
    Post(u64),
    Ping,
    Closed(u16),
}

/// Records writes; with a gate, each post write waits for a token first.
struct Sink {
    events: Sender<Event>,
    gate: Option<Receiver<()>>,
}

#[async_trait]
impl Outbound for Sink {
    async fn welcome(&mut self, _id: ConnectionId, _last: Option<u64>) -> io::Result<()> {
        self.events.send(Event::Welcome).await.ok();
        Ok(())
    }
    async fn deliver(&mut self, delivery: &Delivery) -> io::Result<()> {
        if let Some(gate) = &self.gate {
            gate.recv().await.ok();
        }
        self.events.send(Event::Post(delivery.id)).await.ok();
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

struct NoHistory;

impl History for NoHistory {
    fn last_id(&self) -> anyhow::Result<Option<u64>> {
        Ok(None)
    }
    fn after(&self, _: u64, _: u64, _: usize) -> anyhow::Result<Vec<Arc<Delivery>>> {
        Ok(Vec::new())
    }
}

async fn next(rx: &Receiver<Event>) -> Event {
    timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for an event")
        .expect("sink dropped")
}

async fn start(
    heartbeat: Duration,
    config: ConnectionConfig,
    gate: Option<Receiver<()>>,
) -> (Receiver<Event>, xactor::Addr<Hub>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let history: Arc<dyn History> = Arc::new(NoHistory);
    let hub = Hub::new(
        history.clone(),
        metrics.clone(),
        HubConfig {
            heartbeat_interval: heartbeat,
            connection: config.clone(),
        },
    )
    .unwrap()
    .start()
    .await
    .unwrap();
    let (tx, rx) = unbounded();
    let conn = Connection::new(
        1,
        Sink { events: tx, gate },
        futures::stream::pending::<Inbound>().boxed(),
        None,
        hub.clone(),
        history,
        metrics.clone(),
        config,
    );
    let addr = conn.start().await.unwrap();
    // The actor lives as long as someone holds its address; the hub only
    // holds senders.
    async_std::task::spawn(async move { addr.wait_for_stop().await });
    assert_eq!(next(&rx).await, Event::Welcome);
    (rx, hub, metrics)
}

#[async_std::test]
async fn silent_write_only_peer_keeps_getting_keep_alives() {
    let idle = Duration::from_millis(30);
    let config = ConnectionConfig {
        idle_timeout: idle,
        ..ConnectionConfig::default()
    }
    .without_idle_timeout();
    let heartbeat = Duration::from_millis(20);
    let (rx, _hub, metrics) = start(heartbeat, config, None).await;
    // Ten heartbeats span far more than the original idle timeout: an
    // inbound-heartbeat connection would have been closed before the third.
    for _ in 0..10 {
        assert_eq!(next(&rx).await, Event::Ping);
    }
    assert_eq!(Metrics::get(&metrics.heartbeat_timeouts), 0);
    assert_eq!(Metrics::get(&metrics.connected), 1);
}

#[async_std::test]
async fn write_only_peer_that_stops_reading_is_closed_as_slow() {
    let config = ConnectionConfig {
        max_backlog_frames: 4,
        ..ConnectionConfig::default()
    }
    .without_idle_timeout();
    let (gate_tx, gate_rx) = unbounded::<()>();
    let (rx, hub, metrics) = start(Duration::from_secs(3600), config, Some(gate_rx)).await;
    for id in 1..=20 {
        hub.send(Broadcast(Delivery::new(id, "{}"))).unwrap();
    }
    // A barrier: the hub has handled every broadcast (and kicked the
    // connection) before the stuck write is released.
    hub.call(livefeed_actors::Stats).await.unwrap();
    drop(gate_tx);
    // Whatever was already in flight may be written (the kick can land
    // before or after the first write starts); then it closes as slow.
    let mut written = Vec::new();
    loop {
        match next(&rx).await {
            Event::Post(id) => written.push(id),
            Event::Closed(code) => {
                assert_eq!(code, Close::SLOW_CONSUMER.code);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        written.len() <= 1,
        "kicked connection kept writing: {written:?}"
    );
    assert_eq!(Metrics::get(&metrics.slow_consumer_disconnects), 1);
}
