//! Shared by the HTTP API tests (`sse`, `cli`, `openapi`, `fuzz_regressions`):
//! a real server on `127.0.0.1:0` with a temp data dir, the project's own
//! HTTP client pointed at it, and bounded waits.

#![allow(dead_code)] // each test binary uses its own part of this

use livefeed::client::{EventStream, Server, SseEvent, SseItem};
use livefeed::{Config, Handle};
use std::future::Future;
use std::time::Duration;

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A running server and what the test needs to reach it.
pub struct TestServer {
    /// The running server.
    pub handle: Handle,
    /// Its HTTP API.
    pub api: Server,
    /// Its data directory (removed on drop).
    pub dir: tempfile::TempDir,
}

impl TestServer {
    /// A server with default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A server with settings adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir.path());
        tweak(&mut config);
        Self::spawn(config, dir)
    }

    /// Starts `config` (whose data dir is in `dir`).
    pub fn spawn(config: Config, dir: tempfile::TempDir) -> Self {
        let handle = Handle::spawn(config).expect("server starts");
        let api = Server::at(handle.addr);
        Self { handle, api, dir }
    }

    /// The base URL, for the CLI.
    pub fn url(&self) -> String {
        format!("http://{}", self.handle.addr)
    }

    /// Creates a post; its id.
    pub async fn create(&self, title: &str) -> u64 {
        self.create_with(title, "some content").await
    }

    /// Creates a post with this content; its id.
    pub async fn create_with(&self, title: &str, content: &str) -> u64 {
        let body = serde_json::json!({ "title": title, "content": content });
        let response = within(self.api.create_post(&body, None))
            .await
            .expect("post created");
        response.json().unwrap()["id"].as_u64().unwrap()
    }

    /// A counter or gauge from `/metrics`.
    pub async fn metric(&self, name: &str) -> u64 {
        let request = livefeed::client::Request::new("GET", "/metrics");
        let text = within(self.api.send(&request)).await.unwrap().text();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no metric {name}"))
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits until `metric` has `value` (it changes asynchronously, when a
    /// connection's actor notices its client is gone).
    pub async fn await_metric(&self, name: &str, value: u64) {
        within(async {
            loop {
                if self.metric(name).await == value {
                    return;
                }
                async_std::task::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
    }

    /// Stops the server gracefully, keeping its data directory.
    pub async fn stop(self) -> tempfile::TempDir {
        within(self.handle.shutdown())
            .await
            .expect("clean shutdown");
        self.dir
    }
}

/// `fut`, or a panic after [`WAIT`].
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    async_std::future::timeout(WAIT, fut)
        .await
        .expect("timed out")
}

/// The next block with fields (skipping comments), within [`WAIT`].
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
        let data: serde_json::Value =
            serde_json::from_str(event.data.as_deref().unwrap()).expect("data is JSON");
        let id = data["post"]["id"].as_u64().expect("post id");
        assert_eq!(event.id.as_deref(), Some(id.to_string().as_str()));
        ids.push(id);
    }
    ids
}

impl TestServer {
    /// Stops the server and starts a new one on the same address and data
    /// directory, with settings adjusted by `tweak`.
    pub async fn restart_with(self, tweak: impl FnOnce(&mut Config)) -> Self {
        let addr = self.handle.addr;
        let dir = self.stop().await;
        // Connection tasks of the old server may still hold the store for
        // a moment after shutdown; sled's lock goes with the last of them.
        within(async {
            loop {
                match livefeed::store::Store::open(dir.path()) {
                    Ok(store) => return store.close().expect("store closes"),
                    Err(livefeed::store::StoreError::Locked(_)) => {
                        async_std::task::sleep(Duration::from_millis(10)).await
                    }
                    Err(e) => panic!("reopening the store: {e}"),
                }
            }
        })
        .await;
        let mut config = Config::new(addr, dir.path());
        tweak(&mut config);
        Self::spawn(config, dir)
    }
}

/// Sends raw bytes on a fresh connection and reads the answer until the
/// server closes (send `Connection: close`, or a request the server
/// refuses, which it closes after).
pub async fn raw_exchange(
    addr: std::net::SocketAddr,
    request: &[u8],
) -> livefeed::client::Response {
    use async_std::io::{ReadExt, WriteExt};
    let mut stream = within(async_std::net::TcpStream::connect(addr))
        .await
        .unwrap();
    within(stream.write_all(request)).await.unwrap();
    let mut raw = Vec::new();
    within(stream.read_to_end(&mut raw)).await.unwrap();
    parse_response(&raw)
}

/// Parses one response with a `Content-Length` body.
pub fn parse_response(raw: &[u8]) -> livefeed::client::Response {
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
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    // Only what arrived: a caller may parse a head before reading the body.
    let end = raw.len().min(split + 4 + length);
    let body = raw[split + 4..end].to_vec();
    livefeed::client::Response {
        status,
        headers,
        body,
    }
}
