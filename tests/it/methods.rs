//! Methods per route: every 405 carries `Allow` with the route's methods
//! (RFC 9110 §15.5.6), `OPTIONS` answers 204 with `Allow` on every route,
//! `HEAD` is served wherever `GET` is, an unknown path is a 404 whatever
//! the method. (A method livefeed doesn't know at all is a 501: see
//! `fuzz_regressions.rs`.)

use crate::common::{raw_exchange, Request, Response, TestServer};
use serde_json::Value;

const POSTS: &str = "GET, HEAD, POST, OPTIONS";
const POST: &str = "GET, HEAD, PATCH, DELETE, OPTIONS";
const READ_ONLY: &str = "GET, HEAD, OPTIONS";
const ENGINE: &str = "GET, POST, OPTIONS";

/// Every route, a path on it, and what its `Allow` must say.
const ROUTES: &[(&str, &str)] = &[
    ("/posts", POSTS),
    ("/posts/1", POST),
    ("/posts/not-an-id", POST),
    ("/feeds", READ_ONLY),
    ("/feeds/team-a/posts", POSTS),
    ("/events", READ_ONLY),
    ("/ws", READ_ONLY),
    ("/healthz", READ_ONLY),
    ("/readyz", READ_ONLY),
    ("/metrics", READ_ONLY),
    ("/openapi.json", READ_ONLY),
    ("/", READ_ONLY),
    ("/index.html", READ_ONLY),
    ("/app.js", READ_ONLY),
    ("/style.css", READ_ONLY),
    ("/socket.io/", ENGINE),
    ("/socket.io", ENGINE),
];

/// Methods a route may not serve: the usual ones, and some livefeed's HTTP
/// stack knows but no route serves.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "TRACE", "PROPFIND", "MKCOL",
];

async fn send(server: &TestServer, method: &str, path: &str) -> Response {
    let request = Request::new(method, path);
    crate::common::within(server.api().send(&request))
        .await
        .expect("a response")
}

fn assert_405(response: &Response, allow: &str, what: &str) {
    assert_eq!(response.status, 405, "{what}: {}", response.text());
    assert_eq!(response.header("allow"), Some(allow), "{what}");
    assert_eq!(response.error_code(), "method_not_allowed", "{what}");
}

#[async_std::test]
async fn every_405_carries_allow_with_the_routes_methods() {
    let server = TestServer::start().await;
    for (path, allow) in ROUTES {
        let served: Vec<&str> = allow.split(", ").collect();
        for method in METHODS {
            if served.contains(method) {
                continue;
            }
            // Engine.IO answers these itself, as its protocol says (400).
            if allow == &ENGINE && ["HEAD", "PUT", "PATCH", "DELETE"].contains(method) {
                continue;
            }
            let response = send(&server, method, path).await;
            assert_405(&response, allow, &format!("{method} {path}"));
        }
    }
    // Nothing was created or changed by any of it.
    assert_eq!(server.metric("livefeed_posts_created_total").await, 0);
    server.stop().await;
}

#[async_std::test]
async fn options_answers_204_with_allow_on_every_route() {
    let server = TestServer::start().await;
    for (path, allow) in ROUTES {
        let response = send(&server, "OPTIONS", path).await;
        assert_eq!(response.status, 204, "OPTIONS {path}: {}", response.text());
        assert_eq!(response.header("allow"), Some(*allow), "OPTIONS {path}");
        assert!(response.body.is_empty(), "OPTIONS {path}");
    }
    server.stop().await;
}

/// What the document says each path serves is what `Allow` says, but for
/// `HEAD` and `OPTIONS` (which it leaves implicit, as OpenAPI tools do),
/// and each path is one of [`ROUTES`].
#[async_std::test]
async fn allow_matches_the_openapi_document() {
    let doc: Value = serde_json::from_str(livefeed::http::ops::OPENAPI).unwrap();
    let server = TestServer::start().await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let target = path.replace("{id}", "1").replace("{feed}", "team-a");
        let known = ROUTES.iter().find(|(p, _)| *p == target);
        let (_, expected) = known.unwrap_or_else(|| panic!("{path} is not in ROUTES"));
        let response = send(&server, "OPTIONS", &target).await;
        let allow = response.header("allow").expect("Allow").to_owned();
        assert_eq!(&allow, expected, "{path}");
        let mut described: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .filter(|m| m != "HEAD" && m != "OPTIONS")
            .collect();
        let mut advertised: Vec<String> = allow
            .split(", ")
            .map(str::to_owned)
            .filter(|m| m != "HEAD" && m != "OPTIONS")
            .collect();
        described.sort();
        advertised.sort();
        assert_eq!(described, advertised, "{path}");
    }
    server.stop().await;
}

#[async_std::test]
async fn head_is_served_wherever_get_is() {
    let server = TestServer::start().await;
    server.create_id("one").await;
    for path in [
        "/posts",
        "/posts/1",
        "/feeds",
        "/healthz",
        "/openapi.json",
        "/",
    ] {
        let get = send(&server, "GET", path).await;
        // Read to the end of the connection: the head announces the GET's
        // Content-Length, and no body follows.
        let request = format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let head = raw_exchange(server.addr, request.as_bytes()).await;
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "HEAD {path}"
        );
        assert_eq!(
            head.header("content-length"),
            get.header("content-length"),
            "HEAD {path}"
        );
        assert!(head.body.is_empty(), "HEAD {path} has a body");
    }
    server.stop().await;
}

#[async_std::test]
async fn an_unknown_path_is_a_404_whatever_the_method() {
    let server = TestServer::start().await;
    for path in [
        "/nope",
        "/posts/1/x",
        "/feeds/a",
        "/index.htm",
        "/socket.iox",
    ] {
        for method in ["GET", "POST", "DELETE", "OPTIONS", "TRACE"] {
            let response = send(&server, method, path).await;
            assert_eq!(response.status, 404, "{method} {path}");
            assert_eq!(response.error_code(), "not_found", "{method} {path}");
            assert_eq!(response.header("allow"), None, "{method} {path}");
        }
    }
    server.stop().await;
}
