//! Socket.IO at `/socket.io/`: a client over Engine.IO's websocket
//! transport, and the polling transport's requests.

use super::http::{request, Response};
use super::WAIT;
use async_std::future::timeout;
use async_tungstenite::async_std::{connect_async, ConnectStream};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;

/// Engine.IO's separator of packets in one polling payload.
pub const SEP: char = '\x1e';

/// The post and offset of a `42["newPost",{"post":…},"<offset>"]` packet.
pub fn new_post(packet: &str) -> (Value, Option<String>) {
    let args: Vec<Value> =
        serde_json::from_str(packet.strip_prefix("42").expect("an event")).unwrap();
    assert_eq!(args[0], "newPost", "{packet}");
    (
        args[1]["post"].clone(),
        args.get(2).and_then(|o| o.as_str()).map(str::to_owned),
    )
}

// -------------------------------------------------------------- polling --

/// Opens a polling session: its sid and the open packet.
pub async fn handshake(addr: SocketAddr) -> (String, Value) {
    let res = request(addr, "GET", "/socket.io/?EIO=4&transport=polling", &[], b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    let text = res.text();
    let open: Value = serde_json::from_str(text.strip_prefix('0').expect("open packet")).unwrap();
    (open["sid"].as_str().unwrap().to_owned(), open)
}

/// The polling URL of session `sid`.
pub fn polling_url(sid: &str) -> String {
    format!("/socket.io/?EIO=4&transport=polling&sid={sid}")
}

/// One poll: the packets it brought.
pub async fn poll(addr: SocketAddr, sid: &str) -> Vec<String> {
    let res = request(addr, "GET", &polling_url(sid), &[], b"").await;
    assert_eq!(res.status, 200, "{}", res.text());
    res.text().split(SEP).map(str::to_owned).collect()
}

/// Sends `body` (packets) to session `sid`.
pub async fn send(addr: SocketAddr, sid: &str, body: &str) -> Response {
    request(
        addr,
        "POST",
        &polling_url(sid),
        &[("Content-Type", "text/plain")],
        body.as_bytes(),
    )
    .await
}

// ------------------------------------------------------------ websocket --

/// A Socket.IO client over a raw websocket; answers pings by itself.
pub struct SioWs {
    stream: WebSocketStream<ConnectStream>,
}

impl SioWs {
    /// Opens an Engine.IO session; the open packet.
    pub async fn open(addr: SocketAddr) -> (Self, Value) {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (stream, _) = timeout(WAIT, connect_async(url))
            .await
            .expect("Socket.IO connect timed out")
            .expect("connect");
        let mut ws = Self { stream };
        let open = ws.next().await;
        let open: Value =
            serde_json::from_str(open.strip_prefix('0').expect("Engine.IO open")).unwrap();
        (ws, open)
    }

    /// Opens a session and joins `/` with `auth`; returns the CONNECT reply.
    pub async fn connect(addr: SocketAddr, auth: &str) -> (Self, Value) {
        let (mut ws, _) = Self::open(addr).await;
        ws.send(&format!("40{auth}")).await;
        let reply = ws.next().await;
        let reply: Value =
            serde_json::from_str(reply.strip_prefix("40").expect("CONNECT reply")).unwrap();
        (ws, reply)
    }

    pub async fn send(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    /// The next text packet (pings answered and skipped); "closed" at the end.
    pub async fn next(&mut self) -> String {
        timeout(WAIT, async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Text(t))) if t == "2" => self.send("3").await,
                    Some(Ok(Message::Text(t))) => return t,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        return "closed".to_owned()
                    }
                    Some(Ok(_)) => continue,
                }
            }
        })
        .await
        .expect("timed out waiting for a packet")
    }

    /// The next text packet; panics if the connection ends.
    pub async fn packet(&mut self) -> String {
        let packet = self.next().await;
        assert_ne!(packet, "closed", "the Socket.IO connection stays open");
        packet
    }

    /// The post of the next packet, a `newPost` event.
    pub async fn next_post(&mut self) -> Value {
        new_post(&self.packet().await).0
    }

    /// Ids and offsets of the next `n` packets, each a `newPost` event.
    pub async fn post_ids(&mut self, n: usize) -> Vec<(u64, Option<String>)> {
        let mut ids = Vec::new();
        while ids.len() < n {
            let (post, offset) = new_post(&self.next().await);
            ids.push((post["id"].as_u64().unwrap(), offset));
        }
        ids
    }
}
