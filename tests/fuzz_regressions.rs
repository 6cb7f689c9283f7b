//! What the schemathesis run (`tests/fuzz/run.sh`) found, kept as
//! regression tests: each request here once got a reset connection or an
//! answer the OpenAPI document doesn't allow.

mod support;

use support::{parse_response, raw_exchange, within, TestServer};

fn error_code(response: &livefeed::client::Response) -> String {
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json().expect("the API's error body");
    body["error"]["code"].as_str().unwrap().to_owned()
}

/// `QUERY /` (a method async-h1 doesn't know) reset the connection with no
/// response. It is now a 405 with the error body.
#[async_std::test]
async fn an_unknown_method_is_a_405_not_a_reset() {
    let server = TestServer::start().await;
    for target in ["/", "/posts", "/healthz"] {
        let request = format!("QUERY {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let response = raw_exchange(server.handle.addr, request.as_bytes()).await;
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
    let response = raw_exchange(server.handle.addr, request.as_bytes()).await;
    assert_eq!(response.status, 431);
    assert_eq!(error_code(&response), "headers_too_large");
    assert_eq!(server.create("still fine").await, 1);
    server.stop().await;
}

/// A header value that isn't UTF-8 reset the connection; now 400.
#[async_std::test]
async fn a_header_that_is_not_utf8_is_a_400() {
    let server = TestServer::start().await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Name: caf\xe9\r\n\r\n";
    let response = raw_exchange(server.handle.addr, request).await;
    assert_eq!(response.status, 400);
    assert_eq!(error_code(&response), "malformed_request");
    server.stop().await;
}

/// HTTP/1.0 isn't spoken (async-h1 is HTTP/1.1 only): 505, not a reset.
#[async_std::test]
async fn http_1_0_is_a_505() {
    let server = TestServer::start().await;
    let response = raw_exchange(server.handle.addr, b"GET /healthz HTTP/1.0\r\n\r\n").await;
    assert_eq!(response.status, 505);
    assert_eq!(error_code(&response), "http_version_not_supported");
    server.stop().await;
}

/// A multipart body to `POST /posts` (seen timing out once under load):
/// 415 at once, nothing stored, and the keep-alive connection serves the
/// next request.
#[async_std::test]
async fn a_multipart_post_is_a_415_and_the_connection_goes_on() {
    use async_std::io::{ReadExt, WriteExt};
    let server = TestServer::start().await;
    let body = "--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello\r\n--b--\r\n";
    let first = format!(
        "POST /posts HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = within(async_std::net::TcpStream::connect(server.handle.addr))
        .await
        .unwrap();
    within(stream.write_all(first.as_bytes())).await.unwrap();
    // Read exactly the first response (its body is the error JSON).
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
    let response = parse_response(&raw);
    assert_eq!(response.status, 415);
    assert_eq!(error_code(&response), "unsupported_media_type");

    // The same connection serves the next request.
    let second = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    within(stream.write_all(second.as_bytes())).await.unwrap();
    let mut raw = Vec::new();
    within(stream.read_to_end(&mut raw)).await.unwrap();
    let response = parse_response(&raw);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), r#"{"status":"ok"}"#);
    assert_eq!(server.metric("livefeed_posts_created_total").await, 0);
    server.stop().await;
}
