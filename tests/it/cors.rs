//! CORS on the HTTP API and `/events`, by the `--allowed-origin` list that
//! websockets and Engine.IO polling use: to an allowed origin every
//! response (errors included) says it may read it, and its preflights are
//! answered; to any other origin nothing is said. With `*` the answer is
//! `*`, never with credentials.

use crate::common::{within, Request, Response, TestServer};
use async_std::io::{ReadExt, WriteExt};
use async_std::net::TcpStream;
use std::net::SocketAddr;

const FRONT_END: &str = "http://localhost:3000";
const EVIL: &str = "http://evil.example";

/// The request headers the API reads: each must pass a preflight.
const API_HEADERS: [&str; 5] = [
    "content-type",
    "authorization",
    "idempotency-key",
    "if-match",
    "last-event-id",
];

/// Every API route a browser page calls, the methods it serves, and one
/// method on it that needs a preflight.
const API_ROUTES: &[(&str, &str, &str)] = &[
    ("/posts", "GET, HEAD, POST, OPTIONS", "POST"),
    ("/posts/1", "GET, HEAD, PATCH, DELETE, OPTIONS", "PATCH"),
    ("/feeds", "GET, HEAD, OPTIONS", "GET"),
    ("/feeds/team-a/posts", "GET, HEAD, POST, OPTIONS", "POST"),
    ("/events", "GET, HEAD, OPTIONS", "GET"),
];

async fn send(server: &TestServer, request: Request<'_>) -> Response {
    within(server.api().send(&request))
        .await
        .expect("a response")
}

fn preflight<'a>(path: &'a str, origin: &'a str, method: &'a str) -> Request<'a> {
    Request::new("OPTIONS", path)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "content-type,authorization,idempotency-key,if-match,last-event-id",
        )
}

/// Every value of header `name`, split at commas, lower-cased.
fn list(response: &Response, name: &str) -> Vec<String> {
    response
        .headers
        .iter()
        .filter(|(n, _)| n == name)
        .flat_map(|(_, v)| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

fn cors_headers(response: &Response) -> Vec<&str> {
    response
        .headers
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with("access-control-"))
        .collect()
}

/// `response` lets `origin` read it: the origin itself (with credentials),
/// `Vary: Origin`, and `Location` and `ETag` exposed.
fn assert_readable_by(response: &Response, origin: &str, what: &str) {
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some(origin),
        "{what}"
    );
    assert_eq!(
        response.header("access-control-allow-credentials"),
        Some("true"),
        "{what}"
    );
    assert!(
        list(response, "vary").contains(&"origin".to_owned()),
        "{what}"
    );
    let exposed = list(response, "access-control-expose-headers");
    for name in ["location", "etag"] {
        assert!(exposed.contains(&name.to_owned()), "{what}: {exposed:?}");
    }
}

fn assert_no_cors(response: &Response, what: &str) {
    assert_eq!(cors_headers(response), Vec::<&str>::new(), "{what}");
}

/// The head of a `GET` (an endless `/events` stream, say) sent with
/// `headers`; the connection is dropped after it.
async fn head_of(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut stream = within(TcpStream::connect(addr)).await.unwrap();
    let mut request = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    within(stream.write_all(request.as_bytes())).await.unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        within(stream.read_exact(&mut byte)).await.unwrap();
        raw.push(byte[0]);
    }
    crate::common::http::parse_response(&raw)
}

#[async_std::test]
async fn a_preflight_from_an_allowed_origin_is_answered_on_every_api_route() {
    let server = TestServer::start_with(|c| c.allowed_origins = vec![FRONT_END.into()]).await;
    for (path, allow, method) in API_ROUTES {
        let what = format!("OPTIONS {path}");
        let response = send(&server, preflight(path, FRONT_END, method)).await;
        assert_eq!(response.status, 204, "{what}: {}", response.text());
        assert_eq!(response.header("allow"), Some(*allow), "{what}");
        assert_readable_by(&response, FRONT_END, &what);
        assert_eq!(
            response.header("access-control-allow-methods"),
            Some(*allow),
            "{what}"
        );
        let headers = list(&response, "access-control-allow-headers");
        for name in API_HEADERS {
            assert!(headers.contains(&name.to_owned()), "{what}: {headers:?}");
        }
        let max_age: u32 = response
            .header("access-control-max-age")
            .expect("Access-Control-Max-Age")
            .parse()
            .unwrap();
        assert!(max_age > 0, "{what}");
    }
    server.stop().await;
}

#[async_std::test]
async fn a_disallowed_origin_gets_no_cors_headers_and_changes_nothing() {
    let server = TestServer::start_with(|c| c.allowed_origins = vec![FRONT_END.into()]).await;
    for (path, allow, method) in API_ROUTES {
        let response = send(&server, preflight(path, EVIL, method)).await;
        assert_eq!(response.status, 204, "{path}");
        assert_eq!(response.header("allow"), Some(*allow), "{path}");
        assert_no_cors(&response, &format!("preflight of {path} from {EVIL}"));
    }
    // Its requests get their answers, without telling the browser it may
    // read them.
    let body = br#"{"title":"t","content":"c"}"#;
    let create = Request::new("POST", "/posts")
        .header("Origin", EVIL)
        .header("Content-Type", "application/json")
        .body(body);
    let created = send(&server, create).await;
    assert_eq!(created.status, 201);
    assert_no_cors(&created, "POST /posts from a disallowed origin");
    assert!(list(&created, "vary").contains(&"origin".to_owned()));
    let error = send(
        &server,
        Request::new("GET", "/posts/99").header("Origin", EVIL),
    )
    .await;
    assert_eq!(error.status, 404);
    assert_no_cors(&error, "a 404 to a disallowed origin");
    let events = head_of(server.addr, "/events", &[("Origin", EVIL)]).await;
    assert_eq!(events.status, 200);
    assert_no_cors(&events, "/events from a disallowed origin");
    // Another port is another origin.
    let other = send(
        &server,
        preflight("/posts", "http://localhost:3001", "POST"),
    )
    .await;
    assert_no_cors(&other, "another port");
    // A preflight sends no body and changes nothing.
    assert_eq!(server.metric("livefeed_posts_created_total").await, 1);
    server.stop().await;
}

#[async_std::test]
async fn every_response_to_an_allowed_origin_says_so_errors_included() {
    let server = TestServer::start_with(|c| {
        c.allowed_origins = vec![FRONT_END.into()];
        c.publish_token = Some("s3cret".into());
    })
    .await;
    let json = "application/json";
    let body = br#"{"title":"Hello","content":"from another origin"}"#;
    let create = Request::new("POST", "/posts")
        .header("Origin", FRONT_END)
        .header("Content-Type", json)
        .header("Authorization", "Bearer s3cret")
        .body(body);
    let created = send(&server, create).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_readable_by(&created, FRONT_END, "201");
    assert_eq!(created.header("location"), Some("/posts/1"));

    let from = |r: Request<'static>| r.header("Origin", FRONT_END);
    let cases: Vec<(Request<'_>, u16)> = vec![
        (from(Request::new("GET", "/posts")), 200),
        (from(Request::new("GET", "/posts/1")), 200),
        (from(Request::new("GET", "/feeds")), 200),
        (from(Request::new("GET", "/feeds/team-a/posts")), 200),
        (from(Request::new("GET", "/posts/99")), 404),
        (from(Request::new("GET", "/posts?limit=0")), 400),
        (from(Request::new("DELETE", "/posts")), 405),
        // No token: 401; a body that isn't JSON: 415 (the token first).
        (
            from(Request::new("POST", "/posts"))
                .header("Content-Type", json)
                .body(body),
            401,
        ),
        (
            from(Request::new("POST", "/posts"))
                .header("Authorization", "Bearer s3cret")
                .header("Content-Type", "text/plain")
                .body(b"hi"),
            415,
        ),
        (
            from(Request::new("PATCH", "/posts/1"))
                .header("Authorization", "Bearer s3cret")
                .header("Content-Type", json)
                .header("If-Match", "\"7\"")
                .body(br#"{"title":"x"}"#),
            412,
        ),
        (
            from(Request::new("POST", "/posts"))
                .header("Authorization", "Bearer s3cret")
                .header("Content-Type", json)
                .body(br#"{"title":""}"#),
            422,
        ),
        (from(Request::new("GET", "/events?since=x")), 400),
        (from(Request::new("GET", "/healthz")), 200),
        (from(Request::new("GET", "/openapi.json")), 200),
    ];
    for (request, status) in cases {
        let what = format!("{request:?}");
        let response = send(&server, request).await;
        assert_eq!(response.status, status, "{what}: {}", response.text());
        assert_readable_by(&response, FRONT_END, &what);
    }
    let events = head_of(server.addr, "/events?since=0", &[("Origin", FRONT_END)]).await;
    assert_eq!(events.status, 200);
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    assert_readable_by(&events, FRONT_END, "GET /events");
    // Nothing but the one create was stored.
    assert_eq!(server.metric("livefeed_posts_created_total").await, 1);
    server.stop().await;
}

#[async_std::test]
async fn by_default_only_the_servers_own_host_is_allowed() {
    let server = TestServer::start().await;
    let own = format!("http://{}", server.addr);
    let response = send(&server, preflight("/posts", &own, "POST")).await;
    assert_readable_by(&response, &own, "own host");
    let response = send(&server, preflight("/posts", FRONT_END, "POST")).await;
    assert_no_cors(&response, "another host by default");
    // No Origin (curl, servers): no CORS, but caches learn the answer
    // depends on it.
    let plain = send(&server, Request::new("GET", "/posts")).await;
    assert_no_cors(&plain, "no Origin");
    assert!(list(&plain, "vary").contains(&"origin".to_owned()));
    server.stop().await;
}

#[async_std::test]
async fn any_origin_gets_a_star_and_never_credentials() {
    let server = TestServer::start_with(|c| c.allowed_origins = vec!["*".into()]).await;
    for origin in [FRONT_END, EVIL] {
        let response = send(&server, preflight("/posts", origin, "POST")).await;
        assert_eq!(response.status, 204);
        assert_eq!(response.header("access-control-allow-origin"), Some("*"));
        assert_eq!(response.header("access-control-allow-credentials"), None);
        assert!(response.header("access-control-allow-methods").is_some());
        let error = send(
            &server,
            Request::new("GET", "/posts/9").header("Origin", origin),
        )
        .await;
        assert_eq!(error.status, 404);
        assert_eq!(error.header("access-control-allow-origin"), Some("*"));
        assert_eq!(error.header("access-control-allow-credentials"), None);
    }
    server.stop().await;
}

/// Engine.IO polling answers CORS itself, by the same list: the origin
/// `/posts` lets read may poll, the others are refused, and `*` is `*`
/// without credentials there too.
#[async_std::test]
async fn socketio_polling_shares_the_list() {
    let handshake = "/socket.io/?EIO=4&transport=polling";
    let server = TestServer::start_with(|c| c.allowed_origins = vec![FRONT_END.into()]).await;
    let allowed = send(
        &server,
        Request::new("GET", handshake).header("Origin", FRONT_END),
    )
    .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some(FRONT_END)
    );
    assert_eq!(
        allowed.header("access-control-allow-credentials"),
        Some("true")
    );
    let refused = send(
        &server,
        Request::new("GET", handshake).header("Origin", EVIL),
    )
    .await;
    assert_eq!(refused.status, 403);
    assert_no_cors(&refused, "Engine.IO, a disallowed origin");
    let preflight = send(&server, preflight(handshake, FRONT_END, "POST")).await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("allow"), Some("GET, POST, OPTIONS"));
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(FRONT_END)
    );
    server.stop().await;

    let any = TestServer::start_with(|c| c.allowed_origins = vec!["*".into()]).await;
    let polled = send(&any, Request::new("GET", handshake).header("Origin", EVIL)).await;
    assert_eq!(polled.status, 200);
    assert_eq!(polled.header("access-control-allow-origin"), Some("*"));
    assert_eq!(polled.header("access-control-allow-credentials"), None);
    any.stop().await;
}
