//! `GET /events`: Server-Sent Events on a real server.

use crate::common::{next_event, post_ids, within, ClientError, Request, TestServer, WAIT};
use async_std::io::{ReadExt, WriteExt};
use async_std::task;
use futures::future::join_all;
use livefeed::client::sse::SseItem;
use livefeed::feed::wire::SSE_RETRY_MS;
use std::time::Duration;

/// Posters create posts concurrently while subscribers join with a replay
/// point: every subscriber gets exactly the ids after its point, once each,
/// ascending, whether it asked with `?since` or `Last-Event-ID`.
#[async_std::test]
async fn replay_joins_live_without_gap_or_duplicate_under_concurrent_posts() {
    let server = TestServer::start_with(|c| {
        c.max_backlog_frames = 10_000;
        c.max_backlog_bytes = 1 << 30;
    })
    .await;
    for i in 0..30 {
        server.create_id(&format!("stored {i}")).await;
    }

    const POSTERS: usize = 4;
    const EACH: usize = 25;
    const TOTAL: u64 = 30 + (POSTERS * EACH) as u64;
    let (started_tx, started_rx) = async_std::channel::bounded::<()>(POSTERS);
    let posters: Vec<_> = (0..POSTERS)
        .map(|p| {
            let api = server.api().clone();
            let started = started_tx.clone();
            task::spawn(async move {
                for i in 0..EACH {
                    let body = serde_json::json!({ "title": format!("p{p} #{i}"), "content": "c" });
                    within(api.create_post(&body, None)).await.unwrap();
                    if i == 2 {
                        started.send(()).await.ok();
                    }
                }
            })
        })
        .collect();
    // Subscribe while posts are being created.
    for _ in 0..POSTERS {
        within(started_rx.recv()).await.unwrap();
    }
    let by_query = [5u64, 10, 29];
    let by_header = [0u64, 17, 30];
    let mut subscribers = Vec::new();
    for since in by_query {
        let stream = within(
            server
                .api()
                .events_at(&format!("/events?since={since}"), None),
        )
        .await
        .unwrap();
        subscribers.push((since, stream));
    }
    for since in by_header {
        let stream = within(server.api().events(Some(since))).await.unwrap();
        subscribers.push((since, stream));
    }
    // Last-Event-ID (what a reconnecting EventSource sends) wins over the
    // `since` still in its URL.
    let stream = within(server.api().events_at("/events?since=3", Some(12)))
        .await
        .unwrap();
    subscribers.push((12, stream));

    join_all(posters).await;
    let checks = subscribers
        .into_iter()
        .map(|(since, mut stream)| async move {
            let want: Vec<u64> = (since + 1..=TOTAL).collect();
            let got = post_ids(&mut stream, want.len()).await;
            assert_eq!(got, want, "subscriber since {since}");
        });
    join_all(checks).await;
    server.stop().await;
}

/// Without a replay point a subscriber gets live posts only, and is told
/// where live starts with a bare `id:` (so a reconnecting browser replays
/// the gap). The `retry:` hint comes first.
#[async_std::test]
async fn live_only_subscriber_is_told_where_live_starts() {
    let server = TestServer::start().await;
    for i in 0..3 {
        server.create_id(&format!("old {i}")).await;
    }
    let mut stream = within(server.api().events(None)).await.unwrap();
    let hello = next_event(&mut stream).await;
    assert_eq!(hello.retry, Some(SSE_RETRY_MS));
    assert_eq!(hello.id.as_deref(), Some("3"));
    assert_eq!((hello.event, hello.data), (None, None));
    for i in 0..3 {
        server.create_id(&format!("new {i}")).await;
    }
    assert_eq!(post_ids(&mut stream, 3).await, vec![4, 5, 6]);

    // On an empty store the live point is 0: resuming from it replays all.
    let empty = TestServer::start().await;
    let mut stream = within(empty.api().events(None)).await.unwrap();
    assert_eq!(next_event(&mut stream).await.id.as_deref(), Some("0"));
    // With a replay point there is no bare id, only the hint.
    let mut stream = within(server.api().events(Some(6))).await.unwrap();
    let hello = next_event(&mut stream).await;
    assert_eq!((hello.retry, hello.id), (Some(SSE_RETRY_MS), None));
    empty.stop().await;
    server.stop().await;
}

/// Keep-alive comments arrive at the heartbeat interval, and a subscriber
/// that never sends anything is not closed as silent: after many times the
/// idle timeout it still gets posts.
#[async_std::test]
async fn keep_alives_flow_and_silence_does_not_close_the_stream() {
    let server = TestServer::start_with(|c| {
        c.heartbeat_interval = Duration::from_millis(40);
        c.heartbeat_timeout = Duration::from_millis(40);
    })
    .await;
    let mut stream = within(server.api().events(None)).await.unwrap();
    // 15 pings span 600 ms: a websocket peer this silent would have been
    // closed after ~80 ms.
    let mut pings = 0;
    while pings < 15 {
        match within(stream.next()).await.unwrap() {
            Some(SseItem::Comment(text)) => {
                assert_eq!(text, "ping");
                pings += 1;
            }
            Some(SseItem::Event(e)) => assert!(e.data.is_none(), "unexpected {e:?}"),
            None => panic!("stream ended"),
        }
    }
    let id = server.create_id("still here").await;
    assert_eq!(post_ids(&mut stream, 1).await, vec![id]);
    assert_eq!(server.metric("livefeed_heartbeat_timeouts_total").await, 0);
    server.stop().await;
}

/// A subscriber that stops reading is closed once its backlog passes the
/// bound, counted in metrics, and costs the others nothing; what it did
/// get is a gap-free prefix, so it can resume with Last-Event-ID.
#[async_std::test]
async fn slow_subscriber_is_closed_and_others_get_everything() {
    let server = TestServer::start_with(|c| {
        // Room for a burst of eight big posts, not for a stalled reader.
        c.max_backlog_frames = 32;
        c.max_backlog_bytes = 1 << 20;
    })
    .await;
    let mut healthy = within(server.api().events(Some(0))).await.unwrap();
    // The healthy subscriber reads all along.
    let (ids_tx, ids_rx) = async_std::channel::unbounded::<u64>();
    let reader = task::spawn(async move {
        loop {
            let id = post_ids(&mut healthy, 1).await[0];
            if ids_tx.send(id).await.is_err() {
                return;
            }
        }
    });

    // A raw client with a tiny receive window that reads nothing.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stalled = async_std::net::TcpStream::from(std::net::TcpStream::from(socket));
    let request = format!(
        "GET /events?since=0 HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    );
    within(stalled.write_all(request.as_bytes())).await.unwrap();
    server.await_metric("livefeed_connected_clients", 2).await;

    // Posts of ~60 KB of JSON each (control characters are escaped to six
    // bytes), created eight at a time until the stalled client is dropped.
    let content: String = "\u{1}".repeat(10_000);
    let mut created = 0u64;
    while server
        .metric("livefeed_slow_consumer_disconnects_total")
        .await
        == 0
    {
        assert!(created < 400, "the stalled subscriber was never closed");
        let batch = (0..8).map(|_| server.create_with("big", &content));
        created += join_all(batch).await.len() as u64;
    }
    assert_eq!(server.metric("livefeed_connected_clients").await, 1);

    // The healthy subscriber got every post, in order.
    let mut got = Vec::new();
    while (got.len() as u64) < created {
        got.push(within(ids_rx.recv()).await.unwrap());
    }
    assert_eq!(got, (1..=created).collect::<Vec<_>>());
    drop(ids_rx);
    reader.cancel().await;

    // The stalled one, reading at last, finds a prefix and then the end.
    let mut raw = Vec::new();
    within(stalled.read_to_end(&mut raw)).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..80.min(text.len())]
    );
    assert!(
        text.contains("\r\n0\r\n\r\n"),
        "the chunked body was not ended"
    );
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: ")?.trim().parse().ok())
        .collect();
    assert!((ids.len() as u64) < created, "it was not cut short");
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    server.stop().await;
}

/// Subscribers count in `livefeed_connected_clients` while connected, and
/// stop counting once they are gone.
#[async_std::test]
async fn subscribers_are_counted_in_metrics() {
    let server = TestServer::start_with(|c| c.heartbeat_interval = Duration::from_millis(50)).await;
    let mut a = within(server.api().events(None)).await.unwrap();
    let mut b = within(server.api().events(None)).await.unwrap();
    next_event(&mut a).await;
    next_event(&mut b).await;
    assert_eq!(server.metric("livefeed_connected_clients").await, 2);
    assert_eq!(server.metric("livefeed_connections_total").await, 2);
    drop(a);
    // Noticed at the next write that fails (the keep-alive at the latest).
    server.await_metric("livefeed_connected_clients", 1).await;
    let id = server.create_id("after").await;
    assert_eq!(post_ids(&mut b, 1).await, vec![id]);
    assert!(server.metric("livefeed_frames_delivered_total").await >= 1);
    server.stop().await;
}

/// Shutdown ends every stream promptly (the client then reconnects).
#[async_std::test]
async fn shutdown_ends_the_stream() {
    let server = TestServer::start().await;
    let mut stream = within(server.api().events(None)).await.unwrap();
    next_event(&mut stream).await;
    let stopping = task::spawn(async move { server.stop().await });
    loop {
        match within(stream.next()).await.unwrap() {
            None => break,
            Some(SseItem::Comment(note)) => assert!(note.starts_with("closed"), "{note}"),
            Some(SseItem::Event(e)) => panic!("unexpected {e:?}"),
        }
    }
    async_std::future::timeout(WAIT, stopping).await.unwrap();
}

/// Bad resume points are 400s with the API's error body.
#[async_std::test]
async fn bad_resume_points_are_rejected() {
    let server = TestServer::start().await;
    let code = |e: ClientError| match e {
        ClientError::Status(e) => (e.status, e.code.unwrap_or_default()),
        other => panic!("{other}"),
    };
    let e = within(server.api().events_at("/events?since=x", None))
        .await
        .err()
        .unwrap();
    assert_eq!(code(e), (400, "invalid_query".into()));
    let request = Request::new("GET", "/events").header("Last-Event-ID", "-1");
    let response = within(server.api().send(&request)).await.unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["error"]["code"], "invalid_last_event_id");
    // An empty Last-Event-ID means none (browsers never send one, but
    // proxies might pass it through empty).
    let request = Request::new("GET", "/events?since=x").header("Last-Event-ID", " ");
    let response = within(server.api().send(&request)).await.unwrap();
    assert_eq!(response.status, 400, "falls back to the bad since");
    server.stop().await;
}
