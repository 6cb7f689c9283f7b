//! Admission under churn: clients join and leave every way a client can
//! while posts flow, and afterwards no connection is left counted and new
//! clients get in. The count of admitted connections is a permit that lives
//! inside each connection's actor, so it cannot drift.

use crate::common::{within, TestServer};
use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use async_std::task;
use async_tungstenite::tungstenite::Message;
use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the churn runs.
const CHURN: Duration = Duration::from_secs(4);

/// Ways a client leaves.
#[derive(Debug, Clone, Copy)]
enum Exit {
    /// A websocket close frame.
    CloseFrame,
    /// A TCP reset (SO_LINGER 0) right after the first frame.
    Reset,
    /// The TCP connection closed without a close frame.
    SilentDrop,
    /// The connection dropped halfway through the upgrade request.
    DuringHandshake,
    /// An SSE stream whose reader goes away.
    DroppedSse,
    /// A Socket.IO polling session that joins the feed and stops polling.
    AbandonedPolling,
}

const EXITS: [Exit; 6] = [
    Exit::CloseFrame,
    Exit::Reset,
    Exit::SilentDrop,
    Exit::DuringHandshake,
    Exit::DroppedSse,
    Exit::AbandonedPolling,
];

/// A plain TCP connection, optionally reset on close instead of a FIN.
async fn tcp(addr: SocketAddr, reset: bool) -> TcpStream {
    let stream = std::net::TcpStream::connect(addr).expect("connect");
    if reset {
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER");
    }
    TcpStream::from(stream)
}

/// Reads whatever the server sends first (up to a little), or nothing.
async fn read_some(stream: &mut TcpStream) -> usize {
    let mut buf = [0u8; 4096];
    async_std::future::timeout(Duration::from_secs(2), stream.read(&mut buf))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0)
}

/// One client that joins and leaves by `exit`. Refusals at the limit (503)
/// are expected and just end the attempt.
async fn one_client(addr: SocketAddr, exit: Exit) {
    match exit {
        Exit::CloseFrame | Exit::Reset | Exit::SilentDrop => {
            let stream = tcp(addr, matches!(exit, Exit::Reset)).await;
            let url = format!("ws://{addr}/ws");
            let Ok((mut ws, _)) = async_tungstenite::client_async(url, stream).await else {
                return; // refused at the limit
            };
            let _ = async_std::future::timeout(Duration::from_secs(2), ws.next()).await;
            if let Exit::CloseFrame = exit {
                let _ = ws.send(Message::Close(None)).await;
                let _ = async_std::future::timeout(Duration::from_secs(2), ws.next()).await;
            }
            drop(ws);
        }
        Exit::DuringHandshake => {
            let mut stream = tcp(addr, false).await;
            let head = format!(
                "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            drop(stream);
        }
        Exit::DroppedSse => {
            let mut stream = tcp(addr, false).await;
            let head = format!("GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            read_some(&mut stream).await;
            drop(stream);
        }
        Exit::AbandonedPolling => {
            let res = crate::common::request(
                addr,
                "GET",
                "/socket.io/?EIO=4&transport=polling",
                &[],
                b"",
            )
            .await;
            if res.status != 200 {
                return;
            }
            let open: serde_json::Value = serde_json::from_str(&res.text()[1..]).unwrap();
            let sid = open["sid"].as_str().unwrap().to_owned();
            let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
            crate::common::request(
                addr,
                "POST",
                &path,
                &[("Content-Type", "text/plain")],
                b"40",
            )
            .await;
            // One poll for the CONNECT reply, then never again.
            crate::common::request(addr, "GET", &path, &[], b"").await;
        }
    }
}

async fn churn_then_admit(max_connections: usize, clients: usize) {
    let server = TestServer::start_with(|c| {
        c.max_connections = max_connections;
        c.heartbeat_interval = Duration::from_millis(200);
        c.heartbeat_timeout = Duration::from_millis(200);
        c.socketio.ping_interval = Duration::from_millis(200);
        c.socketio.ping_timeout = Duration::from_millis(200);
    })
    .await;
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));

    // Posts flow all along.
    let poster = {
        let stop = stop.clone();
        task::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = format!(r#"{{"title":"churn {n}","content":"c"}}"#);
                let res = crate::common::post_json(addr, &body).await;
                assert_eq!(res.status, 201, "{}", res.text());
                task::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let churners: Vec<_> = (0..clients)
        .map(|i| {
            let stop = stop.clone();
            let rounds = rounds.clone();
            task::spawn(async move {
                let mut k = i;
                while !stop.load(Ordering::Relaxed) {
                    one_client(addr, EXITS[k % EXITS.len()]).await;
                    rounds.fetch_add(1, Ordering::Relaxed);
                    k += 1;
                }
            })
        })
        .collect();
    let started = Instant::now();
    while started.elapsed() < CHURN {
        task::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    within(poster).await;
    for churner in churners {
        within(churner).await;
    }
    assert!(
        rounds.load(Ordering::Relaxed) >= EXITS.len() * clients,
        "every way of leaving was tried"
    );

    // Every client is gone: nothing stays counted, neither by the hub nor
    // against the limit ...
    server.await_metric("livefeed_connected_clients", 0).await;
    server
        .await_metric("livefeed_admitted_connections", 0)
        .await;
    // ... and the limit admits new clients, up to the limit.
    let mut held = Vec::new();
    for _ in 0..max_connections.min(8) {
        let mut ws = server.ws("").await;
        ws.welcome().await;
        held.push(ws);
    }
    assert!(within(server.metric("livefeed_admitted_connections")).await >= held.len() as u64);
}

#[async_std::test]
async fn churn_leaves_no_phantom_connections() {
    churn_then_admit(100_000, 24).await;
}

#[async_std::test]
async fn churn_at_a_small_limit_leaves_every_slot_free() {
    churn_then_admit(8, 24).await;
}
