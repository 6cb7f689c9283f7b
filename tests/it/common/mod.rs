//! Test helpers: a real server on an ephemeral port with a temp data dir,
//! and clients of every kind the server speaks, all with timeouts:
//! - [`http`]: raw HTTP/1.1 requests, the one response parser, and the
//!   tests' API client ([`Api`]);
//! - [`sse`]: `GET /events` read asynchronously;
//! - [`ws`]: the `/ws` client;
//! - [`sio`]: Socket.IO over a websocket, and the polling transport;
//! - [`redis`]: a real `redis-server` for the cluster tests;
//! - [`view`]: a client's view built from change frames, and the server's
//!   state to compare it with.

pub mod http;
pub mod redis;
pub mod sio;
pub mod sse;
pub mod view;
pub mod ws;

pub use http::{post_json, raw_exchange, request, Api, ClientError, Request, Response};
pub use sse::{next_event, post_ids};
pub use ws::{upgrade_request, Frame, Ws};

use async_std::future::timeout;
use livefeed::{Config, Handle};
use serde_json::Value;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(20);
/// Interval between two looks at a condition that changes asynchronously.
pub const POLL: Duration = Duration::from_millis(10);

/// `fut`, or a panic after [`WAIT`].
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    timeout(WAIT, fut).await.expect("timed out")
}

/// Polls `check` until it holds; fails the test after [`WAIT`].
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until_for(WAIT, what, check).await
}

/// Polls `check` until it holds; fails the test after `limit`.
pub async fn wait_until_for<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        async_std::task::sleep(POLL).await;
    }
}

/// Reads one metric's value from the server's `/metrics`.
pub async fn metric(addr: SocketAddr, name: &str) -> u64 {
    let response = request(addr, "GET", "/metrics", &[], b"").await;
    assert_eq!(response.status, 200);
    response
        .text()
        .lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

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

    /// The tests' API client, pointed at this server.
    pub fn api(&self) -> Api {
        Api::at(self.addr)
    }

    /// The base URL, for the CLI.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates a post through the API client; its id.
    pub async fn create_id(&self, title: &str) -> u64 {
        self.create_with(title, "some content").await
    }

    /// Creates a post with this content through the API client; its id.
    pub async fn create_with(&self, title: &str, content: &str) -> u64 {
        let body = serde_json::json!({ "title": title, "content": content });
        let response = within(self.api().create_post(&body, None))
            .await
            .expect("post created");
        response.json()["id"].as_u64().unwrap()
    }

    /// Waits until `metric` has `value` (it changes asynchronously, when a
    /// connection's actor notices its client is gone).
    pub async fn await_metric(&self, name: &str, value: u64) {
        wait_until(&format!("{name} = {value}"), || async move {
            self.metric(name).await == value
        })
        .await
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
        post_json(self.addr, body).await
    }

    /// Reads one metric's value from /metrics.
    pub async fn metric(&self, name: &str) -> u64 {
        metric(self.addr, name).await
    }

    pub async fn ws(&self, query: &str) -> Ws {
        Ws::connect(self.addr, query).await
    }
}

/// A JWT signed HS256 with `secret`, carrying `claims` plus an `exp`
/// `ttl_secs` from now (negative: already expired).
pub fn jwt(secret: &str, mut claims: Value, ttl_secs: i64) -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    claims["exp"] = (now + ttl_secs).into();
    let key = EncodingKey::from_secret(secret.as_bytes());
    encode(&Header::default(), &claims, &key).unwrap()
}
