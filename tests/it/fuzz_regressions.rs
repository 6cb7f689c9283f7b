//! What the schemathesis run (`tests/fuzz/run.sh`) found, kept as
//! regression tests: each request here once got a reset connection or an
//! answer the OpenAPI document doesn't allow.

use crate::common::http::parse_response;
use crate::common::{raw_exchange, within, Response, TestServer};

fn error_code(response: &Response) -> String {
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    body["error"]["code"].as_str().unwrap().to_owned()
}

/// `QUERY /` (a method async-h1 doesn't know) reset the connection with no
/// response. It is now a 405 with the error body.
#[async_std::test]
async fn an_unknown_method_is_a_405_not_a_reset() {
    let server = TestServer::start().await;
    for target in ["/", "/posts", "/healthz"] {
        let request = format!("QUERY {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let response = raw_exchange(server.addr, request.as_bytes()).await;
        assert_eq!(response.status, 405, "{target}");
        assert_eq!(error_code(&response), "method_not_allowed");
    }
    server.stop().await;
}

/// `GET /posts?limit=...` with a query of many kilobytes: async-h1 refuses
/// heads of 8 KiB or more, which also reset the connection; now 431.
#[async_std::test]
async fn an_oversized_request_head_is_a_431() {
    let server = TestServer::start().await;
    let query = "limit=5451175810122612.0&".repeat(400);
    let request = format!("GET /posts?{query} HTTP/1.1\r\nHost: x\r\n\r\n");
    let response = raw_exchange(server.addr, request.as_bytes()).await;
    assert_eq!(response.status, 431);
    assert_eq!(error_code(&response), "headers_too_large");
    assert_eq!(server.create_id("still fine").await, 1);
    server.stop().await;
}

/// A header value that isn't UTF-8 reset the connection; now 400.
#[async_std::test]
async fn a_header_that_is_not_utf8_is_a_400() {
    let server = TestServer::start().await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Name: caf\xe9\r\n\r\n";
    let response = raw_exchange(server.addr, request).await;
    assert_eq!(response.status, 400);
    assert_eq!(error_code(&response), "malformed_request");
    server.stop().await;
}

/// HTTP/1.0 reset the connection (async-h1 is HTTP/1.1 only); it is
/// served now (`tests/it/http1.rs`). A version livefeed doesn't speak is a
/// 505, not a reset.
#[async_std::test]
async fn an_unspoken_http_version_is_a_505() {
    let server = TestServer::start().await;
    let response = raw_exchange(server.addr, b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n").await;
    assert_eq!(response.status, 505);
    assert_eq!(error_code(&response), "http_version_not_supported");
    server.stop().await;
}

/// Reads exactly one response with a `Content-Length` body.
async fn read_one(stream: &mut async_std::net::TcpStream) -> Response {
    use async_std::io::ReadExt;
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        within(stream.read_exact(&mut byte)).await.unwrap();
        raw.push(byte[0]);
    }
    let length = parse_response(&raw)
        .header("content-length")
        .unwrap()
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    within(stream.read_exact(&mut body)).await.unwrap();
    raw.extend_from_slice(&body);
    parse_response(&raw)
}

/// A response sent before its request's body was read used to leave the
/// connection open, and async-h1, reading the rest of that body only after
/// the response, swallowed the client's next request with it: the next
/// request never got an answer (schemathesis: `OPTIONS /posts` after a
/// `PATCH /posts` with a body timed out, as did a multipart `POST /posts`).
/// Such a response now closes the connection.
#[async_std::test]
async fn a_response_to_an_unread_body_closes_the_connection() {
    use async_std::io::{ReadExt, WriteExt};
    let server = TestServer::start().await;
    let cases = [
        (
            "PATCH /posts",
            "application/json",
            405,
            "method_not_allowed",
        ),
        (
            "POST /posts",
            "multipart/form-data; boundary=b",
            415,
            "unsupported_media_type",
        ),
    ];
    for (request_line, content_type, status, code) in cases {
        let body = r#"{"title":"Hello","content":"First post"}"#;
        let head = format!(
            "{request_line} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut stream = within(async_std::net::TcpStream::connect(server.addr))
            .await
            .unwrap();
        // The head alone: the server answers without waiting for the body.
        within(stream.write_all(head.as_bytes())).await.unwrap();
        let response = read_one(&mut stream).await;
        assert_eq!(response.status, status, "{request_line}");
        assert_eq!(error_code(&response), code);
        assert_eq!(
            response.header("connection"),
            Some("close"),
            "{request_line}"
        );

        // The body and a next request, as a client that ignored the close
        // would send them: the server ends the connection, it doesn't
        // leave the next request hanging.
        let next = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        within(stream.write_all(format!("{body}{next}").as_bytes()))
            .await
            .unwrap();
        let mut after = Vec::new();
        within(stream.read_to_end(&mut after)).await.unwrap();
        assert!(after.is_empty(), "{}", String::from_utf8_lossy(&after));
    }

    // A body the handler reads keeps the connection alive.
    let body = r#"{"title":"Hello","content":"First post"}"#;
    let post = format!(
        "POST /posts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = within(async_std::net::TcpStream::connect(server.addr))
        .await
        .unwrap();
    within(stream.write_all(post.as_bytes())).await.unwrap();
    let response = read_one(&mut stream).await;
    assert_eq!(response.status, 201);
    assert_eq!(response.header("connection"), None);
    let next = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    within(stream.write_all(next.as_bytes())).await.unwrap();
    assert_eq!(read_one(&mut stream).await.status, 200);
    assert_eq!(server.metric("livefeed_posts_created_total").await, 1);
    server.stop().await;
}
