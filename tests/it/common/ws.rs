//! The `/ws` client: frames as a test sees them, and a client that records
//! the posts it receives.

use super::http::{request, Response};
use super::WAIT;
use async_std::future::timeout;
use async_tungstenite::async_std::{connect_async, ConnectStream};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;

/// A websocket upgrade request for `path`, plus `extra` headers, as plain
/// HTTP: for checking refusals.
pub async fn upgrade_request(addr: SocketAddr, path: &str, extra: &[(&str, &str)]) -> Response {
    let mut headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    headers.extend_from_slice(extra);
    request(addr, "GET", path, &headers, b"").await
}

/// A websocket client of `/ws`.
pub struct Ws {
    pub stream: WebSocketStream<ConnectStream>,
}

/// What a test sees on a websocket.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Event(Value),
    Closed(Option<u16>),
}

impl Ws {
    /// Connects to `/ws{query}` (`query` is empty or starts with `?`).
    pub async fn connect(addr: SocketAddr, query: &str) -> Self {
        let url = format!("ws://{addr}/ws{query}");
        let (stream, _) = timeout(WAIT, connect_async(url))
            .await
            .expect("ws connect timed out")
            .expect("ws connect");
        Self { stream }
    }

    /// The next event or close, skipping pings and pongs.
    pub async fn next(&mut self) -> Frame {
        timeout(WAIT, async {
            loop {
                match self.stream.next().await {
                    Some(Ok(Message::Text(text))) => {
                        return Frame::Event(serde_json::from_str(&text).expect("frame is JSON"))
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Frame::Closed(frame.map(|f| f.code.into()))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Frame::Closed(None),
                }
            }
        })
        .await
        .expect("timed out waiting for a websocket frame")
    }

    /// The next event; panics on close.
    pub async fn event(&mut self) -> Value {
        match self.next().await {
            Frame::Event(v) => v,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// The welcome frame's lastPostId.
    pub async fn welcome(&mut self) -> Option<u64> {
        let v = self.event().await;
        assert_eq!(v["event"], "welcome", "{v}");
        assert!(v["data"]["connectionId"].is_string(), "{v}");
        v["data"]["lastPostId"].as_u64()
    }

    /// The next post's id; panics on anything else.
    pub async fn post_id(&mut self) -> u64 {
        let v = self.event().await;
        assert_eq!(v["event"], "newPost", "{v}");
        v["data"]["post"]["id"].as_u64().expect("post id")
    }

    /// The next change frame (`newPost`, `postUpdated`, `postDeleted`).
    pub async fn change(&mut self) -> super::view::Change {
        let v = self.event().await;
        let event = v["event"].as_str().unwrap_or_default().to_owned();
        assert!(
            ["newPost", "postUpdated", "postDeleted"].contains(&event.as_str()),
            "{v}"
        );
        super::view::Change {
            event,
            data: v["data"].clone(),
        }
    }

    /// The welcome frame's data.
    pub async fn welcome_data(&mut self) -> Value {
        let v = self.event().await;
        assert_eq!(v["event"], "welcome", "{v}");
        v["data"].clone()
    }

    /// Post ids until `last` is seen.
    pub async fn ids_until(&mut self, last: u64) -> Vec<u64> {
        let mut ids = Vec::new();
        loop {
            let id = self.post_id().await;
            ids.push(id);
            if id >= last {
                return ids;
            }
        }
    }

    pub async fn send(&mut self, message: Message) {
        self.stream.send(message).await.expect("ws send");
    }
}

/// A `/ws` client recording the posts it receives, whole.
pub struct Recorder {
    ws: Ws,
    pub posts: Vec<Value>,
}

impl Recorder {
    /// Connects, resuming after `since` when given, and reads the welcome.
    pub async fn connect(addr: SocketAddr, since: Option<u64>) -> Self {
        let query = since.map(|s| format!("?since={s}")).unwrap_or_default();
        let mut ws = Ws::connect(addr, &query).await;
        let welcome = ws.event().await;
        assert_eq!(welcome["event"], "welcome");
        Self {
            ws,
            posts: Vec::new(),
        }
    }

    /// Records the next `newPost`; panics on anything else, or a close.
    async fn record(&mut self) {
        let frame = self.ws.event().await;
        assert_eq!(frame["event"], "newPost", "{frame}");
        self.posts.push(frame["data"]["post"].clone());
    }

    /// Reads `newPost` frames until the post with id `last` arrived.
    pub async fn read_through(&mut self, last: u64) {
        while self.last_id() < Some(last) {
            self.record().await;
        }
    }

    /// Reads until at least `n` posts arrived.
    pub async fn read_count(&mut self, n: usize) {
        while self.posts.len() < n {
            self.record().await;
        }
    }

    pub fn last_id(&self) -> Option<u64> {
        self.posts.last().map(|p| p["id"].as_u64().unwrap())
    }

    /// Closes the connection; the posts it received.
    pub async fn close(mut self) -> Vec<Value> {
        self.ws.stream.send(Message::Close(None)).await.ok();
        self.posts
    }
}
