//! Socket.IO at `/socket.io/` on a real server: the polling and websocket
//! transports, the feed namespace, recovery (also across a restart), the
//! engine's refusals and limits, and the flags.

use crate::common::sio::{handshake, new_post, poll, polling_url, send, SioWs, SEP};
use crate::common::{wait_until, TestServer};
use serde_json::Value;
use std::time::Duration;

#[async_std::test]
async fn polling_session_joins_the_feed_and_receives_posts() {
    let server = TestServer::start().await;
    let (sid, open) = handshake(server.addr).await;
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open["pingInterval"], 25000);
    assert_eq!(open["pingTimeout"], 20000);
    assert_eq!(open["maxPayload"], 1_000_000);

    assert_eq!(send(server.addr, &sid, "40").await.text(), "ok");
    let packets = poll(server.addr, &sid).await;
    let reply: Value = serde_json::from_str(packets[0].strip_prefix("40").unwrap()).unwrap();
    assert!(
        reply["sid"].is_string() && reply["pid"].is_string(),
        "{reply}"
    );

    let post = server.create("hello", "polling").await;
    let packets = poll(server.addr, &sid).await;
    let (got, offset) = new_post(&packets[0]);
    assert_eq!(got, post);
    assert_eq!(offset.as_deref(), Some("1"));
}

#[async_std::test]
async fn one_broadcast_reaches_ws_and_socketio_clients_in_order() {
    let server = TestServer::start().await;
    let mut plain = server.ws("").await;
    plain.welcome().await;
    let (mut sio, reply) = SioWs::connect(server.addr, "").await;
    assert!(reply["pid"].is_string());
    for i in 0..10 {
        server.create(&format!("post {i}"), "both").await;
    }
    let sio_ids: Vec<u64> = sio
        .post_ids(10)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(sio_ids, (1..=10).collect::<Vec<_>>());
    assert_eq!(plain.ids_until(10).await, sio_ids);
}

#[async_std::test]
async fn reconnecting_with_pid_and_offset_replays_exactly_the_missed_posts() {
    let mut server = TestServer::start().await;
    let (mut ws, reply) = SioWs::connect(server.addr, "").await;
    let pid = reply["pid"].as_str().unwrap().to_owned();
    server.create("seen", "1").await;
    assert_eq!(ws.post_ids(1).await, [(1, Some("1".to_owned()))]);
    drop(ws);

    server.create("missed", "2").await;
    server.create("missed", "3").await;
    let auth = format!(r#"{{"pid":"{pid}","offset":"1"}}"#);
    let (mut ws, reply) = SioWs::connect(server.addr, &auth).await;
    assert_eq!(
        reply["pid"],
        pid.as_str(),
        "the same pid: the client counts as recovered"
    );
    assert_eq!(
        ws.post_ids(2).await,
        [(2, Some("2".into())), (3, Some("3".into()))]
    );
    server.create("live", "4").await;
    assert_eq!(ws.post_ids(1).await, [(4, Some("4".into()))]);
    drop(ws);

    // Across a restart, from sled: only the pid (no offset yet), or since.
    server.restart(|_| {}).await;
    server.create("after restart", "5").await;
    let (mut ws, _) =
        SioWs::connect(server.addr, &format!(r#"{{"pid":"{pid}","offset":"4"}}"#)).await;
    assert_eq!(ws.post_ids(1).await, [(5, Some("5".into()))]);
    let (mut ws, _) = SioWs::connect(server.addr, r#"{"since":3}"#).await;
    assert_eq!(
        ws.post_ids(2).await.iter().map(|p| p.0).collect::<Vec<_>>(),
        [4, 5]
    );
}

#[async_std::test]
async fn a_pid_without_offset_resumes_where_the_client_joined() {
    let server = TestServer::start().await;
    server.create("before", "1").await;
    let (ws, reply) = SioWs::connect(server.addr, "").await;
    let pid = reply["pid"].as_str().unwrap().to_owned();
    assert!(pid.ends_with("-1"), "{pid}");
    drop(ws);
    server.create("missed", "2").await;
    let (mut ws, _) = SioWs::connect(server.addr, &format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert_eq!(ws.post_ids(1).await[0].0, 2);
}

#[async_std::test]
async fn create_post_over_the_socket_is_acked_and_broadcast() {
    let server = TestServer::start().await;
    let (mut ws, _) = SioWs::connect(server.addr, "").await;
    ws.send(r#"427["createPost",{"title":"t","content":"c"}]"#)
        .await;
    let mut saw_ack = false;
    let mut saw_post = false;
    while !(saw_ack && saw_post) {
        let packet = ws.next().await;
        if let Some(ack) = packet.strip_prefix("437") {
            let args: Vec<Value> = serde_json::from_str(ack).unwrap();
            assert_eq!(args[0]["post"]["title"], "t");
            saw_ack = true;
        } else {
            assert_eq!(new_post(&packet).0["title"], "t");
            saw_post = true;
        }
    }
    ws.send(r#"428["createPost",{"content":"c"}]"#).await;
    let ack = ws.next().await;
    let args: Vec<Value> = serde_json::from_str(ack.strip_prefix("438").unwrap()).unwrap();
    assert_eq!(args[0]["error"]["field"], "title");
}

#[async_std::test]
async fn engine_refusals_and_limits() {
    let server = TestServer::start_with(|c| c.socketio.max_payload = 100).await;
    for (query, code) in [
        ("EIO=3&transport=polling", 5),
        ("transport=polling", 5),
        ("EIO=4&transport=carrier-pigeon", 0),
        ("EIO=4&transport=polling&sid=unknown", 1),
    ] {
        let res = server.get(&format!("/socket.io/?{query}")).await;
        assert_eq!(res.status, 400, "{query}");
        assert_eq!(res.json()["code"], code, "{query}");
    }
    let res = server
        .request("PUT", "/socket.io/?EIO=4&transport=polling", &[], b"")
        .await;
    assert_eq!((res.status, res.json()["code"].as_u64()), (400, Some(2)));

    let (sid, open) = handshake(server.addr).await;
    assert_eq!(open["maxPayload"], 100);
    let res = send(server.addr, &sid, &format!("4{}", "x".repeat(200))).await;
    assert_eq!(res.status, 413);
    assert_eq!(
        server.get(&polling_url(&sid)).await.status,
        400,
        "the session ended"
    );

    // Another origin is refused unless allowed.
    let res = server
        .request(
            "GET",
            "/socket.io/?EIO=4&transport=polling",
            &[("Origin", "http://evil.example")],
            b"",
        )
        .await;
    assert_eq!(res.status, 403);
}

#[async_std::test]
async fn allowed_origins_get_cors_headers() {
    let server =
        TestServer::start_with(|c| c.allowed_origins = vec!["http://app.example".into()]).await;
    let res = server
        .request(
            "GET",
            "/socket.io/?EIO=4&transport=polling",
            &[("Origin", "http://app.example")],
            b"",
        )
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
}

#[async_std::test]
async fn session_cap_and_disabled_flag() {
    let server = TestServer::start_with(|c| c.socketio.max_sessions = 1).await;
    handshake(server.addr).await;
    let res = server.get("/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(res.status, 503);

    let off = TestServer::start_with(|c| c.socketio.enabled = false).await;
    assert_eq!(
        off.get("/socket.io/?EIO=4&transport=polling").await.status,
        404
    );
}

#[async_std::test]
async fn a_polling_client_that_stops_polling_is_dropped_as_slow() {
    let server = TestServer::start_with(|c| {
        c.max_backlog_frames = 4;
        c.heartbeat_timeout = Duration::from_millis(500);
    })
    .await;
    let (sid, _) = handshake(server.addr).await;
    send(server.addr, &sid, "40").await;
    poll(server.addr, &sid).await; // the CONNECT reply
    assert_eq!(server.metric("livefeed_connected_clients").await, 1);
    for i in 0..20 {
        server.create(&format!("unread {i}"), "c").await;
    }
    // Bounded wait for the server to give up on the client.
    wait_until("the stalled poller to be dropped", || async {
        server.metric("livefeed_connected_clients").await == 0
    })
    .await;
    // The session ends right after the write in flight: polls see what was
    // queued, then the close packet (or, once it is gone, a 400).
    for _ in 0..10 {
        let res = server.get(&polling_url(&sid)).await;
        if res.status == 400 || res.text().rsplit(SEP).next() == Some("1") {
            return;
        }
    }
    panic!("the slow poller's session did not end");
}

#[async_std::test]
async fn shutdown_closes_socketio_clients_going_away() {
    let server = TestServer::start().await;
    let (mut ws, _) = SioWs::connect(server.addr, "").await;
    let _dir = server.stop().await;
    assert_eq!(ws.next().await, "closed");
}
