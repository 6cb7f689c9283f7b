//! Compaction on in-memory sinks: while posts are created, edited and
//! deleted, clients join with `since` at random moments; each must end with
//! exactly the server's state, having seen seqs strictly ascending.

use async_std::channel::{unbounded, Receiver, Sender};
use async_std::future::timeout;
use async_trait::async_trait;
use futures::StreamExt;
use livefeed_actors::{
    Broadcast, Close, Connection, ConnectionConfig, ConnectionId, Delivery, Hub, HubConfig,
    Inbound, Joined, Kind, Link, MemoryHistory, Metrics, Outbound, Subscription,
};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xactor::Actor;

const WAIT: Duration = Duration::from_secs(20);

/// What a client was sent.
#[derive(Debug, Clone)]
struct Frame {
    seq: u64,
    post_id: u64,
    kind: Kind,
    data: String,
}

struct Sink(Sender<Frame>);

#[async_trait]
impl Outbound for Sink {
    async fn welcome(&mut self, _id: ConnectionId, _joined: Joined) -> io::Result<()> {
        Ok(())
    }
    async fn deliver(&mut self, d: &Delivery) -> io::Result<()> {
        let frame = Frame {
            seq: d.seq,
            post_id: d.post_id,
            kind: d.kind,
            data: d.data.to_string(),
        };
        self.0.send(frame).await.ok();
        Ok(())
    }
    async fn ping(&mut self) -> io::Result<()> {
        Ok(())
    }
    async fn close(&mut self, _close: Close) -> io::Result<()> {
        Ok(())
    }
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The server side: the log of record, and every change broadcast.
struct Server {
    history: Arc<MemoryHistory>,
    hub: xactor::Addr<Hub>,
    /// (seq, post id, kind, data) of every change, in order.
    log: Mutex<Vec<(u64, u64, Kind, String)>>,
}

impl Server {
    fn apply(&self, post_id: Option<u64>, kind: Kind, data: &str) -> u64 {
        let mut log = self.log.lock().unwrap();
        let d = self.history.record("main", post_id, kind, data);
        log.push((d.seq, d.post_id, kind, data.to_owned()));
        self.hub.send(Broadcast::one(d.clone())).unwrap();
        d.seq
    }

    /// The posts as of `seq`.
    fn state_at(&self, seq: u64) -> BTreeMap<u64, String> {
        let mut state = BTreeMap::new();
        for (s, id, kind, data) in self.log.lock().unwrap().iter() {
            if *s > seq {
                break;
            }
            match kind {
                Kind::Deleted => state.remove(id),
                _ => state.insert(*id, data.clone()),
            };
        }
        state
    }

    fn head(&self) -> u64 {
        self.log.lock().unwrap().last().map_or(0, |e| e.0)
    }

    fn live(&self) -> Vec<u64> {
        self.state_at(u64::MAX).keys().copied().collect()
    }
}

async fn run(seed: u64) {
    let history = Arc::new(MemoryHistory::default());
    let metrics = Arc::new(Metrics::default());
    let config = ConnectionConfig {
        max_backlog_frames: 1 << 20,
        max_backlog_bytes: 1 << 30,
        ..ConnectionConfig::default()
    };
    let hub = Hub::new(
        history.clone(),
        metrics.clone(),
        HubConfig {
            heartbeat_interval: Duration::from_secs(3600),
            connection: config.clone(),
        },
    )
    .unwrap()
    .start()
    .await
    .unwrap();
    let server = Arc::new(Server {
        history: history.clone(),
        hub: hub.clone(),
        log: Mutex::default(),
    });
    let link = Link {
        hub,
        history,
        metrics,
        config,
    };

    let mut rng = Rng(seed);
    let mut clients: Vec<(u64, BTreeMap<u64, String>, Receiver<Frame>)> = Vec::new();
    let mut addrs = Vec::new();
    for step in 0..400 {
        let live = server.live();
        let roll = rng.below(10);
        if live.is_empty() || roll < 4 {
            server.apply(None, Kind::Created, &format!("new {step}"));
        } else if roll < 8 {
            let id = live[rng.below(live.len() as u64) as usize];
            server.apply(Some(id), Kind::Updated, &format!("post {id} edit {step}"));
        } else {
            let id = live[rng.below(live.len() as u64) as usize];
            server.apply(Some(id), Kind::Deleted, "deleted");
        }
        if rng.below(8) == 0 {
            // A client joins, resuming from some point it had reached.
            let since = rng.below(server.head() + 1);
            let view = server.state_at(since);
            let (tx, rx) = unbounded();
            let id = clients.len() as u64 + 1;
            let inbound = futures::stream::pending::<Inbound>().boxed();
            let subscription = Subscription {
                feeds: vec![Arc::<str>::from("main")].into(),
                since: Some(since),
            };
            let conn = Connection::new(id, Sink(tx), inbound, subscription, link.clone());
            addrs.push(conn.start().await.unwrap());
            clients.push((since, view, rx));
        }
        if rng.below(16) == 0 {
            async_std::task::yield_now().await;
        }
    }
    // A last post every client gets, live or replayed: once it has it, it
    // has everything before it.
    let end = server.apply(None, Kind::Created, "end");
    let want = server.state_at(u64::MAX);
    for (since, mut view, rx) in clients {
        let mut last = since;
        loop {
            let frame = timeout(WAIT, rx.recv())
                .await
                .expect("timed out waiting for a frame")
                .expect("sink dropped");
            assert!(
                frame.seq > last,
                "seed {seed}: seq {} after {last}",
                frame.seq
            );
            last = frame.seq;
            match frame.kind {
                Kind::Deleted => {
                    view.remove(&frame.post_id);
                }
                _ => {
                    view.insert(frame.post_id, frame.data);
                }
            }
            if frame.seq == end {
                break;
            }
        }
        assert_eq!(
            view, want,
            "seed {seed}: a client joined with since {since}"
        );
    }
    drop(addrs);
}

#[async_std::test]
async fn every_client_ends_with_the_servers_state() {
    for seed in [1, 7, 42, 1_000_003, 0xdead_beef] {
        run(seed).await;
    }
}
