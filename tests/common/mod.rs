//! Test helpers: a real server on an ephemeral port with a temp data dir,
//! a raw HTTP client, the project's own HTTP client pointed at the server,
//! a websocket client and SSE helpers, all with timeouts.

#![allow(dead_code)]

use async_std::future::timeout;
use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use async_tungstenite::async_std::{connect_async, ConnectStream};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures::{SinkExt, StreamExt};
use livefeed::client::{EventStream, SseEvent, SseItem};
use livefeed::{Config, Handle};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running server and the temp dir holding its data.
pub struct TestServer {
    pub handle: Option<Handle>,
    pub addr: SocketAddr,
    pub dir: TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path());
        tweak(&mut config);
        let handle = Handle::spawn(config).expect("server starts");
        let addr = handle.addr;
        Self {
            handle: Some(handle),
            addr,
            dir,
        }
    }

    /// Restarts on the same address and data dir.
    pub async fn restart(&mut self, tweak: impl FnOnce(&mut Config)) {
        self.halt().await;
        let mut config = Config::new(self.addr, self.dir.path());
        tweak(&mut config);
        let handle = Handle::spawn(config).expect("server restarts");
        self.addr = handle.addr;
        self.handle = Some(handle);
    }

    /// [`restart`](Self::restart), by value.
    pub async fn restart_with(mut self, tweak: impl FnOnce(&mut Config)) -> Self {
        self.restart(tweak).await;
        self
    }

    /// Stops the server gracefully; the data dir stays (it is returned).
    pub async fn stop(mut self) -> TempDir {
        self.halt().await;
        self.dir
    }

    /// Stops the server gracefully, keeping this value for a restart.
    pub async fn halt(&mut self) {
        if let Some(handle) = self.handle.take() {
            timeout(WAIT, handle.shutdown())
                .await
                .expect("shutdown timed out")
                .expect("clean shutdown");
        }
    }

    /// The project's HTTP client, pointed at this server.
    pub fn api(&self) -> livefeed::client::Server {
        livefeed::client::Server::at(self.addr)
    }

    /// The base URL, for the CLI.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates a post through the project's client; its id.
    pub async fn create_id(&self, title: &str) -> u64 {
        self.create_with(title, "some content").await
    }

    /// Creates a post with this content through the project's client; its id.
    pub async fn create_with(&self, title: &str, content: &str) -> u64 {
        let body = serde_json::json!({ "title": title, "content": content });
        let response = within(self.api().create_post(&body, None))
            .await
            .expect("post created");
        response.json().unwrap()["id"].as_u64().unwrap()
    }

    /// Waits until `metric` has `value` (it changes asynchronously, when a
    /// connection's actor notices its client is gone).
    pub async fn await_metric(&self, name: &str, value: u64) {
        within(async {
            while self.metric(name).await != value {
                async_std::task::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(self.addr, method, path, headers, body).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], b"").await
    }

    /// Creates a post; panics unless the answer is 201.
    pub async fn create(&self, title: &str, content: &str) -> Value {
        let body = serde_json::json!({ "title": title, "content": content }).to_string();
        let res = self.post_json(&body).await;
        assert_eq!(res.status, 201, "create failed: {}", res.text());
        res.json()
    }

    pub async fn post_json(&self, body: &str) -> Response {
        self.request(
            "POST",
            "/posts",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
    }

    /// Reads one metric's value from /metrics.
    pub async fn metric(&self, name: &str) -> u64 {
        let text = self.get("/metrics").await.text();
        text.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("metric {name} missing"))
    }

    pub async fn ws(&self, query: &str) -> Ws {
        Ws::connect(self.addr, query).await
    }
}

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

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error code of an error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    timeout(WAIT, async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("write head");
        // The server may answer (413) before reading everything.
        let _ = stream.write_all(body).await;
        // Half-close: a server draining a declared-but-unsent body sees EOF.
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw).await;
        parse_response(&raw)
    })
    .await
    .expect("HTTP request timed out")
}

/// Status, headers and where the body starts, of a raw response.
fn parse_head(raw: &[u8]) -> (u16, Vec<(String, String)>, usize) {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, split + 4)
}

fn parse_response(raw: &[u8]) -> Response {
    let (status, headers, start) = parse_head(raw);
    let mut body = raw[start..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = std::str::from_utf8(&data[..eol]).unwrap().trim();
        let size = usize::from_str_radix(size_text, 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

/// A websocket client.
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

/// `fut`, or a panic after [`WAIT`].
pub async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    timeout(WAIT, fut).await.expect("timed out")
}

/// The next SSE block with fields (skipping comments), within [`WAIT`].
pub async fn next_event(stream: &mut EventStream) -> SseEvent {
    loop {
        match within(stream.next()).await.expect("stream readable") {
            Some(SseItem::Event(event)) => return event,
            Some(SseItem::Comment(_)) => continue,
            None => panic!("stream ended"),
        }
    }
}

/// Post ids of the next `n` `newPost` events, checking each event's shape:
/// the `id:` field equals the post's id.
pub async fn post_ids(stream: &mut EventStream, n: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let event = next_event(stream).await;
        if event.data.is_none() {
            continue; // the connect block
        }
        assert_eq!(event.event.as_deref(), Some("newPost"), "{event:?}");
        let data: Value =
            serde_json::from_str(event.data.as_deref().unwrap()).expect("data is JSON");
        let id = data["post"]["id"].as_u64().expect("post id");
        assert_eq!(event.id.as_deref(), Some(id.to_string().as_str()));
        ids.push(id);
    }
    ids
}

/// Sends raw bytes on a fresh connection and reads the answer until the
/// server closes (send `Connection: close`, or a request the server
/// refuses, which it closes after).
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> livefeed::client::Response {
    let mut stream = within(TcpStream::connect(addr)).await.unwrap();
    within(stream.write_all(request)).await.unwrap();
    let mut raw = Vec::new();
    within(stream.read_to_end(&mut raw)).await.unwrap();
    parse_client_response(&raw)
}

/// Parses one response with a `Content-Length` body into the project's
/// client type.
pub fn parse_client_response(raw: &[u8]) -> livefeed::client::Response {
    let (status, headers, start) = parse_head(raw);
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    // Only what arrived: a caller may parse a head before reading the body.
    let end = raw.len().min(start + length);
    livefeed::client::Response {
        status,
        headers,
        body: raw[start..end].to_vec(),
    }
}
