//! HTTP/1 framing on raw sockets: `Connection: close` said whenever the
//! server closes after a response, keep-alive and pipelining, HTTP/1.0
//! (served, never chunked, closed unless it asked for keep-alive, `/events`
//! delimited by the close), websocket upgrades refused over HTTP/1.0,
//! chunked request bodies and `Expect: 100-continue`.

use crate::common::http::parse_response;
use crate::common::{raw_exchange, within, Response, TestServer};
use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use std::net::SocketAddr;

/// One client connection, read a response at a time.
struct Conn {
    stream: TcpStream,
    /// Bytes read past the last response.
    pending: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Self {
        let stream = within(TcpStream::connect(addr)).await.unwrap();
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        within(self.stream.write_all(bytes)).await.unwrap();
    }

    /// Reads more; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        let n = within(self.stream.read(&mut buf)).await.unwrap();
        self.pending.extend_from_slice(&buf[..n]);
        n > 0
    }

    /// The head of the next response (through its blank line), parsed.
    async fn head(&mut self) -> Response {
        loop {
            if let Some(end) = find(&self.pending, b"\r\n\r\n") {
                let head: Vec<u8> = self.pending.drain(..end + 4).collect();
                return parse_response(&head);
            }
            assert!(self.fill().await, "closed before a response head");
        }
    }

    /// The next response, whose body has a `Content-Length` (or none).
    async fn response(&mut self) -> Response {
        let mut response = self.head().await;
        let length: usize = response
            .header("content-length")
            .map_or(0, |l| l.parse().unwrap());
        while self.pending.len() < length {
            assert!(self.fill().await, "closed mid-body");
        }
        response.body = self.pending.drain(..length).collect();
        response
    }

    /// Everything until the server closes the connection.
    async fn rest(&mut self) -> Vec<u8> {
        while self.fill().await {}
        std::mem::take(&mut self.pending)
    }

    /// Reads until the bytes received so far contain `needle`.
    async fn until(&mut self, needle: &str) -> String {
        while find(&self.pending, needle.as_bytes()).is_none() {
            assert!(
                self.fill().await,
                "closed before {needle:?}: {:?}",
                String::from_utf8_lossy(&self.pending)
            );
        }
        String::from_utf8_lossy(&self.pending).into_owned()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn post_request(version: &str, extra: &str) -> String {
    let body = r#"{"title":"Hello","content":"over raw HTTP"}"#;
    format!(
        "POST /posts {version}\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

#[async_std::test]
async fn connection_close_is_echoed_and_the_connection_closed() {
    let server = TestServer::start().await;
    let requests = [
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_owned(),
        post_request("HTTP/1.1", "Connection: close\r\n"),
        // Listed with other tokens, in any case.
        "GET /posts HTTP/1.1\r\nHost: x\r\nConnection: TE, Close\r\n\r\n".to_owned(),
    ];
    for request in requests {
        let mut conn = Conn::open(server.addr).await;
        conn.send(request.as_bytes()).await;
        let response = conn.response().await;
        assert!(response.status < 300, "{request}: {}", response.status);
        assert_eq!(response.header("connection"), Some("close"), "{request}");
        // The server closes: nothing more arrives, and the read ends.
        assert!(conn.rest().await.is_empty(), "{request}");
    }
    assert_eq!(server.metric("livefeed_posts_created_total").await, 1);
    server.stop().await;
}

#[async_std::test]
async fn a_kept_alive_connection_answers_pipelined_requests_in_turn() {
    let server = TestServer::start().await;
    let mut conn = Conn::open(server.addr).await;
    // Three requests in one write, the second with a body.
    let pipelined = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n{}GET /posts/1 HTTP/1.1\r\nHost: x\r\n\r\n",
        post_request("HTTP/1.1", "")
    );
    conn.send(pipelined.as_bytes()).await;
    for status in [200, 201, 200] {
        let response = conn.response().await;
        assert_eq!(response.status, status, "{}", response.text());
        assert_eq!(response.header("connection"), None);
        assert_eq!(response.header("transfer-encoding"), None);
    }
    conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(conn.response().await.status, 200);
    server.stop().await;
}

#[async_std::test]
async fn the_last_response_before_shutdown_says_connection_close() {
    let server = TestServer::start().await;
    let body = r#"{"title":"Last","content":"before shutdown"}"#;
    let head = format!(
        "POST /posts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    // A request in flight: its `100 Continue` says the app is reading
    // its body.
    let mut busy = Conn::open(server.addr).await;
    busy.send(head.as_bytes()).await;
    assert_eq!(busy.head().await.status, 100);
    // An idle kept-alive connection: it closing says shutdown has begun.
    let mut idle = Conn::open(server.addr).await;
    idle.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(idle.response().await.header("connection"), None);
    let stopping = async_std::task::spawn(server.stop());
    assert!(idle.rest().await.is_empty());
    // The request in flight is answered, and that answer is the last.
    busy.send(body.as_bytes()).await;
    let response = busy.response().await;
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.header("connection"), Some("close"));
    assert!(busy.rest().await.is_empty());
    within(stopping).await;
}

#[async_std::test]
async fn http_1_0_requests_are_served_and_closed() {
    let server = TestServer::start().await;
    // Without Host, as health checks send them.
    let mut conn = Conn::open(server.addr).await;
    conn.send(b"GET /healthz HTTP/1.0\r\n\r\n").await;
    let response = conn.response().await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["status"], "ok");
    assert_eq!(response.header("connection"), Some("close"));
    assert_eq!(response.header("transfer-encoding"), None);
    assert!(response.header("content-length").is_some());
    assert!(conn.rest().await.is_empty());

    // A body with Content-Length is read, stored, and answered.
    let mut conn = Conn::open(server.addr).await;
    conn.send(post_request("HTTP/1.0", "").as_bytes()).await;
    let response = conn.response().await;
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.json()["id"], 1);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(conn.rest().await.is_empty());
    assert_eq!(
        server.get("/posts/1").await.json()["content"],
        "over raw HTTP"
    );
    server.stop().await;
}

#[async_std::test]
async fn http_1_0_keep_alive_is_echoed_and_honoured() {
    let server = TestServer::start().await;
    let mut conn = Conn::open(server.addr).await;
    conn.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let response = conn.response().await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("keep-alive"));
    conn.send(post_request("HTTP/1.0", "Connection: Keep-Alive\r\n").as_bytes())
        .await;
    let response = conn.response().await;
    assert_eq!(response.status, 201);
    assert_eq!(response.header("connection"), Some("keep-alive"));
    // Without it, the connection closes after the answer.
    conn.send(b"GET /posts/1 HTTP/1.0\r\n\r\n").await;
    let response = conn.response().await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(conn.rest().await.is_empty());
    server.stop().await;
}

#[async_std::test]
async fn http_1_0_events_are_delimited_by_the_close() {
    let server = TestServer::start().await;
    let mut conn = Conn::open(server.addr).await;
    // Keep-alive can't be granted: the stream's end is the close.
    conn.send(b"GET /events HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let head = conn.head().await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(head.header("transfer-encoding"), None);
    assert_eq!(head.header("content-length"), None);
    assert_eq!(head.header("connection"), Some("close"));
    // The stream's own bytes, no chunk sizes in between.
    assert!(conn.until("\n\n").await.starts_with("retry: 3000\n"));
    server.create("over 1.0", "raw bytes").await;
    let seen = conn.until("\"title\":\"over 1.0\"").await;
    assert!(
        seen.contains("\n\nid: 1\nevent: newPost\ndata: {"),
        "{seen}"
    );
    // Shutdown ends the stream by closing the connection.
    let stopping = async_std::task::spawn(server.stop());
    let rest = String::from_utf8_lossy(&conn.rest().await).into_owned();
    assert!(rest.ends_with("\n\n"), "{rest}");
    within(stopping).await;
}

#[async_std::test]
async fn no_chunked_coding_is_ever_sent_to_http_1_0() {
    let server = TestServer::start().await;
    server.create("one", "post").await;
    let requests = [
        "GET / HTTP/1.0",
        "GET /openapi.json HTTP/1.0",
        "GET /posts HTTP/1.0",
        "GET /metrics HTTP/1.0",
        "GET /feeds HTTP/1.0",
        "HEAD /healthz HTTP/1.0",
        "GET /nowhere HTTP/1.0",
        "DELETE /healthz HTTP/1.0",
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.0",
    ];
    for request in requests {
        let response = raw_exchange(server.addr, format!("{request}\r\n\r\n").as_bytes()).await;
        assert!(response.status < 500, "{request}: {}", response.status);
        assert_eq!(response.header("transfer-encoding"), None, "{request}");
        assert_eq!(response.header("connection"), Some("close"), "{request}");
        if !request.starts_with("HEAD") {
            let length: usize = response.header("content-length").unwrap().parse().unwrap();
            assert_eq!(response.body.len(), length, "{request}");
        }
    }
    server.stop().await;
}

#[async_std::test]
async fn a_websocket_upgrade_over_http_1_0_is_refused_clearly() {
    let server = TestServer::start().await;
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let request = format!("GET /ws HTTP/1.0\r\n{upgrade}");
    let response = raw_exchange(server.addr, request.as_bytes()).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_code(), "bad_handshake");
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("HTTP/1.1"), "{message}");
    assert_eq!(response.header("connection"), Some("close"));
    // Engine.IO's websocket transport likewise (with its own error body).
    let request = format!("GET /socket.io/?EIO=4&transport=websocket HTTP/1.0\r\n{upgrade}");
    let response = raw_exchange(server.addr, request.as_bytes()).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.json()["message"], "Bad request");
    // The same over HTTP/1.1 switches protocols.
    let request = format!("GET /ws HTTP/1.1\r\nHost: x\r\n{upgrade}");
    let mut conn = Conn::open(server.addr).await;
    conn.send(request.as_bytes()).await;
    assert_eq!(conn.head().await.status, 101);
    server.stop().await;
}

#[async_std::test]
async fn http_2_and_later_get_a_505() {
    let server = TestServer::start().await;
    for request in [
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
        b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/3\r\nHost: x\r\n\r\n",
    ] {
        let response = raw_exchange(server.addr, request).await;
        assert_eq!(response.status, 505, "{}", String::from_utf8_lossy(request));
        assert_eq!(response.error_code(), "http_version_not_supported");
        assert_eq!(response.header("connection"), Some("close"));
    }
    server.stop().await;
}

#[async_std::test]
async fn chunked_request_bodies_are_read_and_bad_framing_closes() {
    let server = TestServer::start().await;
    let mut conn = Conn::open(server.addr).await;
    let head = "POST /posts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    // Two chunks (one with an extension), then a trailer.
    let (a, b) = (r#"{"title":"Chun"#, r#"ked","content":"pieces"}"#);
    let body = format!(
        "{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\nX-Trailer: t\r\n\r\n",
        a.len(),
        b.len()
    );
    conn.send(format!("{head}{body}").as_bytes()).await;
    let response = conn.response().await;
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.json()["title"], "Chunked");
    assert_eq!(response.header("connection"), None);
    // The connection carries on.
    conn.send(b"GET /posts/1 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(conn.response().await.json()["content"], "pieces");

    // A chunk size that isn't hex: a 400, stored nothing, closed.
    let mut conn = Conn::open(server.addr).await;
    conn.send(format!("{head}zz\r\n{{}}\r\n0\r\n\r\n").as_bytes())
        .await;
    let response = conn.response().await;
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(response.header("connection"), Some("close"));
    assert!(conn.rest().await.is_empty());
    assert_eq!(server.metric("livefeed_posts_created_total").await, 1);
    server.stop().await;
}

#[async_std::test]
async fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let server = TestServer::start().await;
    let body = r#"{"title":"Expected","content":"after 100"}"#;
    let head = format!(
        "POST /posts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    let mut conn = Conn::open(server.addr).await;
    conn.send(head.as_bytes()).await;
    // The interim answer comes while the body is still held back.
    let interim = conn.head().await;
    assert_eq!(interim.status, 100);
    conn.send(body.as_bytes()).await;
    let response = conn.response().await;
    assert_eq!(response.status, 201, "{}", response.text());
    assert_eq!(response.json()["title"], "Expected");
    server.stop().await;
}
