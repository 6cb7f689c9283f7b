//! Hub and connection actors on in-memory sinks: registration, fan-out,
//! ordering, replay and the slow-consumer bound.

mod common;

use async_std::channel::unbounded;
use async_std::future::timeout;
use common::*;
use futures::StreamExt;
use livefeed_actors::{
    Broadcast, Close, CloseAll, Connection, ConnectionConfig, Delivery, Hub, HubConfig, Inbound,
    Kind, Link, Metrics, Stats, Subscribers, Subscription,
};
use std::sync::Arc;
use std::time::Duration;
use xactor::Actor;

#[async_std::test]
async fn registration_and_removal() {
    let mut w = World::new(ConnectionConfig::default()).await;
    let (rx_a, mut a) = w.connect(None, None).await;
    let (_rx_b, _b) = w.connect(None, None).await;
    assert_eq!(next(&rx_a).await, Event::Welcome(None));
    assert_eq!(w.connections().await, 2);

    a.stop(None).unwrap();
    a.wait_for_stop().await;
    // The connection's Leave is sent from `stopped`; a call queued after it
    // is answered after it.
    assert_eq!(w.connections().await, 1);
    assert_eq!(Metrics::get(&w.metrics.connected), 1);
}

#[async_std::test]
async fn broadcast_reaches_every_connection_in_order() {
    let mut w = World::new(ConnectionConfig::default()).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        let (rx, addr) = w.connect(None, None).await;
        assert_eq!(next(&rx).await, Event::Welcome(None));
        clients.push((rx, addr));
    }
    for id in 1..=50 {
        w.publish(id).await;
    }
    let want: Vec<u64> = (1..=50).collect();
    for (rx, _) in &clients {
        assert_eq!(posts(rx, 50).await, want);
    }
    // The counter moves after each write returns: stop the connections (a
    // stop is handled after the message in progress) before reading it.
    for (_, mut addr) in clients {
        addr.stop(None).unwrap();
        timeout(WAIT, addr.wait_for_stop()).await.unwrap();
    }
    assert_eq!(Metrics::get(&w.metrics.frames_delivered), 20 * 50);
}

#[async_std::test]
async fn out_of_order_broadcasts_are_delivered_in_id_order_once() {
    let mut w = World::new(ConnectionConfig::default()).await;
    let (rx, _addr) = w.connect(None, None).await;
    next(&rx).await;
    // Posts 1..=3 are stored; their broadcasts arrive as 3, 1, 2.
    let d1 = w.history.store(1);
    let d2 = w.history.store(2);
    let d3 = w.history.store(3);
    w.hub.send(Broadcast::one(d3)).unwrap();
    w.hub.send(Broadcast::one(d1)).unwrap();
    w.hub.send(Broadcast::one(d2)).unwrap();
    w.publish(4).await;
    assert_eq!(posts(&rx, 4).await, vec![1, 2, 3, 4]);
    // A barrier: everything sent before it has been handled by the hub.
    w.hub.call(Stats).await.unwrap();
    assert!(rx.is_empty(), "a post was delivered twice");
}

#[async_std::test]
async fn replay_joins_live_without_gap_or_duplicate() {
    let history = Arc::new(MemHistory::default());
    for id in 1..=600 {
        history.store(id);
    }
    let mut w = World::with_history(
        history,
        ConnectionConfig {
            max_backlog_frames: 10_000,
            max_backlog_bytes: 1 << 30,
            ..ConnectionConfig::default()
        },
    )
    .await;
    let (rx, _addr) = w.connect(Some(100), None).await;
    for id in 601..=700 {
        w.publish(id).await;
    }
    assert_eq!(next(&rx).await, Event::Welcome(Some(600)));
    let got = posts(&rx, 600).await;
    assert_eq!(got, (101..=700).collect::<Vec<_>>());
}

#[async_std::test]
async fn stalled_connection_is_disconnected_without_delaying_others() {
    let (
        w,
        SlowAndFast {
            gate: gate_tx,
            slow_rx,
            slow,
            fast_rx,
            fast: _fast,
        },
    ) = World::slow_and_fast(8).await;

    // The healthy client gets every post while the slow one is stuck in
    // its first write.
    w.publish(1).await;
    assert_eq!(posts(&fast_rx, 1).await, vec![1]);
    assert_eq!(timeout(WAIT, w.entered.recv()).await.unwrap(), Ok(1));
    for id in 2..=100 {
        w.publish(id).await;
        assert_eq!(posts(&fast_rx, 1).await, vec![id]);
    }
    assert_eq!(w.connections().await, 1);
    assert_eq!(Metrics::get(&w.metrics.slow_consumer_disconnects), 1);

    // Unstick it: it finishes the frame in flight, skips the rest of its
    // backlog and closes with 1008.
    drop(gate_tx);
    assert_eq!(next(&slow_rx).await, Event::Post(1));
    assert_eq!(next(&slow_rx).await, Event::Closed(1008));
    timeout(WAIT, slow.wait_for_stop()).await.unwrap();
}

#[async_std::test]
async fn close_all_closes_every_connection_and_reports_drained() {
    let mut w = World::new(ConnectionConfig::default()).await;
    let mut rxs = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..5 {
        let (rx, addr) = w.connect(None, None).await;
        next(&rx).await;
        rxs.push(rx);
        addrs.push(addr);
    }
    let drained = w.hub.call(CloseAll(Close::GOING_AWAY)).await.unwrap();
    timeout(WAIT, drained).await.unwrap().unwrap();
    for rx in &rxs {
        assert_eq!(next(rx).await, Event::Closed(1001));
    }
    assert_eq!(w.connections().await, 0);
}

#[async_std::test]
async fn silent_peer_is_closed_on_heartbeat() {
    let config = ConnectionConfig {
        idle_timeout: Duration::from_millis(100),
        ..ConnectionConfig::default()
    };
    let metrics = Arc::new(Metrics::default());
    let history = Arc::new(MemHistory::default());
    let hub = Hub::new(
        history.clone(),
        metrics.clone(),
        HubConfig {
            heartbeat_interval: Duration::from_millis(50),
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
        MemSink {
            events: tx,
            gate: None,
            entered: None,
            hints: Arc::default(),
        },
        futures::stream::pending::<Inbound>().boxed(),
        main_feed(None),
        Link {
            hub,
            history,
            metrics: metrics.clone(),
            config,
        },
    );
    let _addr = conn.start().await.unwrap();
    assert_eq!(next(&rx).await, Event::Welcome(None));
    loop {
        match next(&rx).await {
            Event::Ping => continue,
            Event::Closed(code) => {
                assert_eq!(code, Close::HEARTBEAT_TIMEOUT.code);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(Metrics::get(&metrics.heartbeat_timeouts), 1);
}

/// A sink learns whether more posts are queued behind the one it writes, so
/// it can coalesce them; the last of a run is always marked as the last.
#[async_std::test]
async fn sink_is_told_when_more_posts_are_queued() {
    let mut w = World::new(ConnectionConfig::default()).await;
    let (gate_tx, gate_rx) = unbounded::<()>();
    let (rx, _addr) = w.connect(None, Some(gate_rx)).await;
    next(&rx).await;
    for id in 1..=5 {
        w.publish(id).await;
    }
    // A barrier: all five are queued at the connection.
    w.hub.call(Stats).await.unwrap();
    drop(gate_tx);
    assert_eq!(posts(&rx, 5).await, vec![1, 2, 3, 4, 5]);
    let hints = w.hints.lock().unwrap().clone();
    assert_eq!(hints.len(), 5);
    assert_eq!(hints.last(), Some(&false), "the last of the run flushes");
    assert!(hints[1..4].iter().all(|&more| more), "{hints:?}");
}

#[async_std::test]
async fn since_ahead_of_the_hub_skips_posts_the_client_has() {
    // A client resuming with `since = 5` on a hub (a cluster node whose
    // replica lags) that has only reached post 3: posts 4 and 5 arrive
    // live later and must not reach the client a second time.
    let mut w = World::with_posts(3).await;
    let (rx, _addr) = w.connect(Some(5), None).await;
    assert_eq!(next(&rx).await, Event::Welcome(Some(3)));
    for id in 4..=7 {
        w.publish(id).await;
    }
    assert_eq!(posts(&rx, 2).await, vec![6, 7]);
    w.hub.call(Stats).await.unwrap();
    assert!(rx.is_empty(), "a post the client had was delivered");
}

/// A write-only transport (Server-Sent Events) has no inbound heartbeat:
/// silence must not close it.
#[async_std::test]
async fn silent_write_only_peer_keeps_getting_keep_alives() {
    let config = ConnectionConfig {
        idle_timeout: Duration::from_millis(30),
        ..ConnectionConfig::default()
    }
    .without_idle_timeout();
    let mut w = World::build(Arc::default(), config, Duration::from_millis(20)).await;
    let (rx, _addr) = w.connect(None, None).await;
    assert_eq!(next(&rx).await, Event::Welcome(None));
    // Ten heartbeats span far more than the original idle timeout: an
    // inbound-heartbeat connection would have been closed before the third.
    for _ in 0..10 {
        assert_eq!(next(&rx).await, Event::Ping);
    }
    assert_eq!(Metrics::get(&w.metrics.heartbeat_timeouts), 0);
    assert_eq!(Metrics::get(&w.metrics.connected), 1);
}

/// A write-only peer that stops reading is still closed by the backlog bound.
#[async_std::test]
async fn write_only_peer_that_stops_reading_is_closed_as_slow() {
    let config = ConnectionConfig {
        max_backlog_frames: 4,
        ..ConnectionConfig::default()
    }
    .without_idle_timeout();
    let mut w = World::new(config).await;
    let (gate_tx, gate_rx) = unbounded::<()>();
    let (rx, _addr) = w.connect(None, Some(gate_rx)).await;
    assert_eq!(next(&rx).await, Event::Welcome(None));
    for id in 1..=20 {
        w.hub.send(Broadcast::one(created(id))).unwrap();
    }
    // A barrier: the hub has handled every broadcast (and kicked the
    // connection) before the stuck write is released.
    w.hub.call(Stats).await.unwrap();
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
    assert_eq!(Metrics::get(&w.metrics.slow_consumer_disconnects), 1);
}

/// A change reaches the subscribers of its feed and nobody else; a
/// connection of several feeds gets each of their changes once.
#[async_std::test]
async fn changes_reach_only_their_feeds_subscribers() {
    let w = World::new(ConnectionConfig::default()).await;
    let feeds = |names: &[&str]| -> Subscription {
        Subscription {
            feeds: names.iter().map(|n| Arc::<str>::from(*n)).collect(),
            since: None,
        }
    };
    let mut clients = Vec::new();
    for (i, names) in [&["a"][..], &["b"], &["a", "b"], &["c"]].iter().enumerate() {
        let (tx, rx) = unbounded();
        let sink = MemSink {
            events: tx,
            gate: None,
            entered: None,
            hints: Arc::default(),
        };
        let inbound = futures::stream::pending::<Inbound>().boxed();
        let link = Link {
            hub: w.hub.clone(),
            history: w.history.clone(),
            metrics: w.metrics.clone(),
            config: w.config.clone(),
        };
        let addr = Connection::new(i as u64 + 100, sink, inbound, feeds(names), link)
            .start()
            .await
            .unwrap();
        assert_eq!(next(&rx).await, Event::Welcome(None));
        clients.push((rx, addr));
    }
    for (seq, feed) in [(1, "a"), (2, "b"), (3, "a"), (4, "d")] {
        let d = Delivery::new(seq, seq, feed.into(), Kind::Created, "{}");
        w.hub.send(Broadcast::one(d)).unwrap();
    }
    let counts = w
        .hub
        .call(Subscribers(vec![
            "a".into(),
            "b".into(),
            "c".into(),
            "d".into(),
        ]))
        .await
        .unwrap();
    assert_eq!(counts, vec![2, 2, 1, 0]);
    assert_eq!(posts(&clients[0].0, 2).await, vec![1, 3]);
    assert_eq!(posts(&clients[1].0, 1).await, vec![2]);
    assert_eq!(posts(&clients[2].0, 3).await, vec![1, 2, 3]);
    for (rx, _) in &clients {
        assert!(rx.is_empty(), "a change reached a client of another feed");
    }
}
