//! Commit rounds: the changes of one round reach each connection in one
//! message, in seq order, with the backlog bound still counted per frame
//! and the sink told which frames have more behind them.

mod common;

use async_std::channel::{unbounded, Receiver};
use async_std::future::timeout;
use common::*;
use livefeed_actors::{
    Broadcast, Close, Connection, ConnectionConfig, Delivery, Kind, Metrics, Stats,
};
use std::sync::Arc;
use xactor::Addr;

fn change(seq: u64, feed: &str) -> Arc<Delivery> {
    Delivery::new(
        seq,
        seq,
        feed.into(),
        Kind::Created,
        format!("{{\"id\":{seq}}}"),
    )
}

/// One commit round of `changes`, as `(seq, feed)`.
fn round(changes: &[(u64, &str)]) -> Broadcast {
    Broadcast(
        changes
            .iter()
            .map(|&(seq, feed)| change(seq, feed))
            .collect(),
    )
}

/// Stops a connection and waits until it has: everything it was sent is
/// written (or skipped) by then.
async fn stop(mut addr: Addr<Connection<MemSink>>) {
    addr.stop(None).unwrap();
    timeout(WAIT, addr.wait_for_stop()).await.unwrap();
}

/// Reads to the close frame; answers the posts written before it.
async fn until_closed(rx: &Receiver<Event>, code: u16) -> Vec<u64> {
    let mut written = Vec::new();
    loop {
        match next(rx).await {
            Event::Post(id) => written.push(id),
            Event::Closed(got) => {
                assert_eq!(got, code);
                return written;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[async_std::test]
async fn a_round_over_two_feeds_reaches_each_connection_in_seq_order() {
    let mut w = World::new(ConnectionConfig::default()).await;
    let mut clients = Vec::new();
    for names in [&["a"][..], &["a", "b"], &["b"], &["c"]] {
        let (rx, addr) = w.connect_to(following(names, None), None).await;
        assert_eq!(next(&rx).await, Event::Welcome(None));
        clients.push((rx, addr));
    }
    let [(a, _), (ab, _), (b, _), (_c, _)] = &clients[..] else {
        unreachable!()
    };
    w.hub
        .send(round(&[(1, "a"), (2, "b"), (3, "a"), (4, "b"), (5, "a")]))
        .unwrap();
    assert_eq!(posts(a, 3).await, vec![1, 3, 5]);
    assert_eq!(posts(ab, 5).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(posts(b, 2).await, vec![2, 4]);

    // A round of one feed: the two-feed connection gets that feed's list.
    w.hub.send(round(&[(6, "a"), (7, "a")])).unwrap();
    assert_eq!(posts(a, 2).await, vec![6, 7]);
    assert_eq!(posts(ab, 2).await, vec![6, 7]);
    // `b` got nothing of that round: its next post is the next round's.
    w.hub.send(round(&[(8, "b"), (9, "c"), (10, "d")])).unwrap();
    assert_eq!(posts(b, 1).await, vec![8]);
    assert_eq!(posts(ab, 1).await, vec![8]);

    let stats = w.hub.call(Stats).await.unwrap();
    assert_eq!(stats.head.seq, Some(10));
    assert_eq!(Metrics::get(&w.metrics.posts_broadcast), 10);
    let mut rxs = Vec::new();
    for (rx, addr) in clients {
        stop(addr).await;
        rxs.push(rx);
    }
    assert_eq!(posts(&rxs[3], 1).await, vec![9]);
    for rx in &rxs {
        assert!(
            rx.is_empty(),
            "a change reached a client twice, or of another feed"
        );
    }
    // a: 5, ab: 8, b: 3, c: 1.
    assert_eq!(Metrics::get(&w.metrics.frames_delivered), 17);
}

#[async_std::test]
async fn a_round_past_the_backlog_bound_kicks_that_connection_only() {
    let (
        mut w,
        SlowAndFast {
            gate: gate_tx,
            slow_rx,
            slow,
            fast_rx,
            fast: _fast,
        },
    ) = World::slow_and_fast(3).await;

    // The slow client is stuck on the first round; the second fits the
    // fast one's bound exactly but not the slow one's, still holding the
    // first.
    w.publish_round(1..=2).await;
    assert_eq!(posts(&fast_rx, 2).await, vec![1, 2]);
    w.publish_round(3..=5).await;
    assert_eq!(posts(&fast_rx, 3).await, vec![3, 4, 5]);
    assert_eq!(w.connections().await, 1);
    assert_eq!(Metrics::get(&w.metrics.slow_consumer_disconnects), 1);
    // Unstuck, it ends the write in flight (if the kick did not come
    // first), skips the rest and closes: none of the second round.
    drop(gate_tx);
    let written = until_closed(&slow_rx, Close::SLOW_CONSUMER.code).await;
    assert!(written.is_empty() || written == [1], "{written:?}");
    timeout(WAIT, slow.wait_for_stop()).await.unwrap();

    // A round that is over the bound by itself: four frames for the
    // connection of two feeds, one for the other feed's, three for main's.
    let (both_rx, both) = w.connect_to(following(&[MAIN, "b"], None), None).await;
    let (b_rx, _b) = w.connect_to(following(&["b"], None), None).await;
    assert_eq!(next(&both_rx).await, Event::Welcome(Some(5)));
    assert_eq!(next(&b_rx).await, Event::Welcome(Some(5)));
    w.hub
        .send(round(&[(6, MAIN), (7, MAIN), (8, "b"), (9, MAIN)]))
        .unwrap();
    assert_eq!(until_closed(&both_rx, Close::SLOW_CONSUMER.code).await, []);
    assert_eq!(posts(&fast_rx, 3).await, vec![6, 7, 9]);
    assert_eq!(posts(&b_rx, 1).await, vec![8]);
    timeout(WAIT, both.wait_for_stop()).await.unwrap();
    assert_eq!(w.connections().await, 2);
    assert_eq!(Metrics::get(&w.metrics.slow_consumer_disconnects), 2);
}

#[async_std::test]
async fn the_sink_is_told_more_follows_for_all_but_the_last_of_a_round() {
    let mut w = World::new(ConnectionConfig::default()).await;
    let (rx, _addr) = w.connect(None, None).await;
    next(&rx).await;
    w.publish_round(1..=4).await;
    assert_eq!(posts(&rx, 4).await, vec![1, 2, 3, 4]);
    w.publish_round([5]).await;
    assert_eq!(posts(&rx, 1).await, vec![5]);
    let hints = std::mem::take(&mut *w.hints.lock().unwrap());
    assert_eq!(hints, [true, true, true, false, false]);
}

#[async_std::test]
async fn the_last_of_a_round_is_marked_when_another_round_is_queued() {
    let mut w = World::new(ConnectionConfig::default()).await;
    let (gate_tx, gate_rx) = unbounded::<()>();
    let (rx, _addr) = w.connect(None, Some(gate_rx)).await;
    next(&rx).await;
    w.publish_round(1..=2).await;
    w.publish_round(3..=4).await;
    // A barrier: both rounds are queued at the connection.
    w.hub.call(Stats).await.unwrap();
    drop(gate_tx);
    assert_eq!(posts(&rx, 4).await, vec![1, 2, 3, 4]);
    let hints = w.hints.lock().unwrap().clone();
    assert_eq!(hints, [true, true, true, false]);
}

#[async_std::test]
async fn a_round_skips_what_the_client_has_and_hints_from_what_it_writes() {
    // A client resuming with `since = 5` on a hub that is at 3 (a lagging
    // replica): of the round 4..=7 it gets 6 and 7.
    let mut w = World::with_posts(3).await;
    let (rx, addr) = w.connect(Some(5), None).await;
    assert_eq!(next(&rx).await, Event::Welcome(Some(3)));
    w.publish_round(4..=7).await;
    assert_eq!(posts(&rx, 2).await, vec![6, 7]);
    stop(addr).await;
    assert!(rx.is_empty(), "a post the client had was delivered");
    assert_eq!(*w.hints.lock().unwrap(), [true, false]);
}

#[async_std::test]
async fn a_round_after_a_gap_is_preceded_by_the_changes_it_skipped() {
    let mut w = World::new(ConnectionConfig::default()).await;
    let (rx, addr) = w.connect(None, None).await;
    next(&rx).await;
    // 1..=3 are stored, their round's broadcast comes after the next one.
    for id in 1..=3 {
        w.history.store(id);
    }
    w.publish_round(4..=5).await;
    assert_eq!(posts(&rx, 5).await, vec![1, 2, 3, 4, 5]);
    w.hub
        .send(round(&[(1, MAIN), (2, MAIN), (3, MAIN)]))
        .unwrap();
    // A round that overlaps what was sent, with a gap inside it.
    w.history.store(7);
    w.hub
        .send(round(&[(5, MAIN), (6, MAIN), (8, MAIN)]))
        .unwrap();
    assert_eq!(posts(&rx, 3).await, vec![6, 7, 8]);
    stop(addr).await;
    assert!(rx.is_empty(), "a post was delivered twice");
    assert_eq!(w.hub.call(Stats).await.unwrap().head.seq, Some(8));
    assert_eq!(Metrics::get(&w.metrics.posts_broadcast), 8);
}
