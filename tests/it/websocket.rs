//! The `/ws` contract of issue 2: welcome, live posts, `since` replay joined
//! to live under concurrency, restarts, slow consumers, frame limits,
//! heartbeats, origins and shutdown.

use crate::common::{self, Frame, TestServer, Ws, WAIT};
use async_std::future::timeout;
use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use async_tungstenite::tungstenite::Message;
use futures::future::join_all;
use std::time::Duration;

#[async_std::test]
async fn welcome_then_live_posts() {
    let server = TestServer::start().await;
    server.create("before", "c").await;
    let mut a = server.ws("").await;
    let mut b = server.ws("").await;
    assert_eq!(a.welcome().await, Some(1));
    assert_eq!(b.welcome().await, Some(1));
    let post = server.create("live", "hello").await;
    for ws in [&mut a, &mut b] {
        let frame = ws.event().await;
        assert_eq!(frame["event"], "newPost");
        assert_eq!(
            frame["data"]["post"], post,
            "the pushed post equals the stored post"
        );
    }
    assert_eq!(server.metric("livefeed_connected_clients").await, 2);
}

#[async_std::test]
async fn since_replays_then_goes_live_without_gap_or_duplicate() {
    let server = TestServer::start().await;
    for i in 0..30 {
        server.create(&format!("old {i}"), "c").await;
    }
    let mut ws = server.ws("?since=10").await;
    assert_eq!(ws.welcome().await, Some(30));
    server.create("new", "c").await;
    assert_eq!(ws.ids_until(31).await, (11..=31).collect::<Vec<_>>());

    let res = common::upgrade_request(server.addr, "/ws?since=abc", &[]).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.error_code(), "invalid_query");
}

/// Many posters and many clients joining at different points: every client
/// sees exactly the ids after its `since`, ascending, once.
#[async_std::test]
async fn replay_joins_live_under_concurrent_posts() {
    const POSTERS: u64 = 8;
    const EACH: u64 = 25;
    const TOTAL: u64 = POSTERS * EACH;
    let server = TestServer::start().await;
    let addr = server.addr;

    let posters = (0..POSTERS).map(|p| {
        async_std::task::spawn(async move {
            for i in 0..EACH {
                let body = format!(r#"{{"title":"p{p} #{i}","content":"c"}}"#);
                let res = common::post_json(addr, &body).await;
                assert_eq!(res.status, 201);
            }
        })
    });
    let clients = (0..12u64).map(|c| {
        async_std::task::spawn(async move {
            // Stagger joins by waiting for posts to exist, not by sleeping.
            let since = c * 10;
            let mut ws = loop {
                let mut ws = Ws::connect(addr, &format!("?since={since}")).await;
                if ws.welcome().await.unwrap_or(0) >= since {
                    break ws;
                }
            };
            let ids = ws.ids_until(TOTAL).await;
            assert_eq!(
                ids,
                (since + 1..=TOTAL).collect::<Vec<_>>(),
                "client since={since}"
            );
        })
    });
    let clients: Vec<_> = clients.collect();
    join_all(posters).await;
    timeout(Duration::from_secs(60), join_all(clients))
        .await
        .expect("clients finished");
}

#[async_std::test]
async fn posts_survive_a_restart_and_replay_from_disk() {
    let mut server = TestServer::start().await;
    for i in 1..=3 {
        server.create(&format!("p{i}"), "c").await;
    }
    server.restart(|_| {}).await;
    let listed = server.get("/posts").await.json();
    assert_eq!(listed["posts"].as_array().unwrap().len(), 3);
    let mut ws = server.ws("?since=1").await;
    assert_eq!(ws.welcome().await, Some(3));
    assert_eq!(
        server.create("p4", "c").await["id"],
        4,
        "ids continue after a restart"
    );
    assert_eq!(ws.ids_until(4).await, vec![2, 3, 4]);
}

/// A client that stops reading is closed with 1008 while a healthy client
/// still gets every post; it can catch up with `since`.
#[async_std::test]
async fn slow_consumer_is_closed_with_1008() {
    let server = TestServer::start_with(|c| {
        c.max_backlog_frames = 16;
    })
    .await;
    let addr = server.addr;

    // The slow client: a tiny receive buffer, and nobody reads it for now.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let std_stream: std::net::TcpStream = socket.into();
    let stream = TcpStream::from(std_stream);
    let (slow, _) = async_tungstenite::client_async(format!("ws://{addr}/ws"), stream)
        .await
        .unwrap();
    let mut slow = Ws { stream: slow };

    let mut healthy = server.ws("").await;
    assert_eq!(healthy.welcome().await, None);

    let content = "x".repeat(10_000);
    let mut last = 0;
    while server
        .metric("livefeed_slow_consumer_disconnects_total")
        .await
        == 0
    {
        last = server.create("bulk", &content).await["id"]
            .as_u64()
            .unwrap();
        assert_eq!(healthy.post_id().await, last, "the healthy client keeps up");
        assert!(last < 5_000, "the slow client was never disconnected");
    }
    let after = server.create("after", "c").await["id"].as_u64().unwrap();
    assert_eq!(healthy.post_id().await, after);

    // Now read the slow client: a prefix of the posts, then 1008.
    assert_eq!(slow.welcome().await, None);
    let mut seen = Vec::new();
    let code = loop {
        match slow.next().await {
            Frame::Event(v) => seen.push(v["data"]["post"]["id"].as_u64().unwrap()),
            Frame::Closed(code) => break code,
        }
    };
    assert_eq!(code, Some(1008));
    assert!(!seen.is_empty() && seen.len() < last as usize);
    assert_eq!(seen, (1..=seen.len() as u64).collect::<Vec<_>>());

    // Reconnecting with since catches up exactly.
    let resume_from = *seen.last().unwrap();
    let mut again = server.ws(&format!("?since={resume_from}")).await;
    again.welcome().await;
    assert_eq!(
        again.ids_until(after).await,
        (resume_from + 1..=after).collect::<Vec<_>>()
    );
}

#[async_std::test]
async fn oversized_inbound_frame_closes_with_1009() {
    let server = TestServer::start().await;
    let mut ws = server.ws("").await;
    ws.welcome().await;
    // The server answers pings.
    ws.send(Message::Ping(b"are you there".to_vec())).await;
    let pong = timeout(WAIT, async {
        loop {
            match futures::StreamExt::next(&mut ws.stream).await {
                Some(Ok(Message::Pong(payload))) => return payload,
                Some(Ok(_)) => continue,
                other => panic!("no pong: {other:?}"),
            }
        }
    })
    .await
    .expect("a pong");
    assert_eq!(pong, b"are you there");
    // Small unknown frames are ignored.
    ws.send(Message::Text("hello?".into())).await;
    ws.send(Message::Text("x".repeat(70 * 1024))).await;
    assert_eq!(ws.next().await, Frame::Closed(Some(1009)));
    // The server is unharmed.
    let mut other = server.ws("").await;
    other.welcome().await;
    server.create("still", "here").await;
    other.post_id().await;
}

/// A raw client that never answers pings is closed; one that does stays.
#[async_std::test]
async fn heartbeat_closes_a_silent_peer() {
    let server = TestServer::start_with(|c| {
        c.heartbeat_interval = Duration::from_millis(100);
        c.heartbeat_timeout = Duration::from_millis(300);
    })
    .await;

    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    raw.write_all(handshake.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    timeout(WAIT, raw.read_to_end(&mut bytes))
        .await
        .expect("the server closed the silent peer")
        .ok();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "accept key");
    let frames = &bytes[text.find("\r\n\r\n").unwrap() + 4..];
    let opcodes = opcodes(frames);
    assert!(opcodes.contains(&0x9), "pinged first: {opcodes:?}");
    assert_eq!(
        opcodes.last(),
        Some(&0x8),
        "ended with a close frame: {opcodes:?}"
    );
    assert_eq!(server.metric("livefeed_heartbeat_timeouts_total").await, 1);

    // A client that answers pings (tungstenite does while reading) stays:
    // it sees several heartbeats, longer than the idle timeout, and then a
    // post.
    let mut ws = server.ws("").await;
    ws.welcome().await;
    let mut pings = 0;
    while pings < 6 {
        match timeout(WAIT, futures::StreamExt::next(&mut ws.stream))
            .await
            .unwrap()
        {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    server.create("alive", "c").await;
    assert_eq!(ws.post_id().await, 1);
}

/// Opcodes of the server frames in `data` (unmasked, as servers send).
fn opcodes(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while data.len() >= 2 {
        out.push(data[0] & 0x0f);
        let (len, header) = match data[1] & 0x7f {
            126 => (u16::from_be_bytes([data[2], data[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(data[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        data = &data[(header + len).min(data.len())..];
    }
    out
}

#[async_std::test]
async fn cross_site_upgrades_are_refused() {
    let server = TestServer::start().await;
    let evil =
        common::upgrade_request(server.addr, "/ws", &[("Origin", "http://evil.example")]).await;
    assert_eq!(evil.status, 403);
    assert_eq!(evil.error_code(), "origin_not_allowed");
    let own_origin = format!("http://{}", server.addr);
    let own = common::upgrade_request(server.addr, "/ws", &[("Origin", &own_origin)]).await;
    assert_eq!(own.status, 101);

    let listed =
        TestServer::start_with(|c| c.allowed_origins = vec!["https://app.example".into()]).await;
    let ok =
        common::upgrade_request(listed.addr, "/ws", &[("Origin", "https://app.example")]).await;
    assert_eq!(ok.status, 101);
    let other = common::upgrade_request(listed.addr, "/ws", &[("Origin", &own_origin)]).await;
    assert_eq!(other.status, 403);
}

#[async_std::test]
async fn shutdown_closes_clients_with_1001() {
    let server = TestServer::start().await;
    let mut ws = server.ws("").await;
    ws.welcome().await;
    let stopping = async_std::task::spawn(server.stop());
    assert_eq!(ws.next().await, Frame::Closed(Some(1001)));
    timeout(WAIT, stopping).await.unwrap();
}
