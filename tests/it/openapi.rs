//! `/openapi.json` against the real server: every route the app registers
//! is described, every described response is produced by some request
//! here, and each real response (status, content type, headers, body)
//! validates against the document's schemas.

use crate::common::{next_event, raw_exchange, within, Request, Response, TestServer};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Mutex;

/// Described responses no test here can produce.
const NOT_EXERCISED: &[(&str, &str, &str)] = &[];

struct Contract {
    doc: Value,
    exercised: Mutex<BTreeSet<(String, String, String)>>,
}

/// Escapes a JSON pointer token.
fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

impl Contract {
    fn load() -> Self {
        let doc: Value = serde_json::from_str(livefeed::http::ops::OPENAPI).unwrap();
        Self {
            doc,
            exercised: Mutex::default(),
        }
    }

    /// Follows a local `$ref`, returning the target and its pointer.
    fn resolve(&self, value: &Value, pointer: String) -> (Value, String) {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let target = reference.strip_prefix('#').expect("local $ref");
                let found = self
                    .doc
                    .pointer(target)
                    .unwrap_or_else(|| panic!("dangling $ref {reference}"));
                self.resolve(found, target.to_owned())
            }
            None => (value.clone(), pointer),
        }
    }

    /// Validates `instance` against the schema at `pointer` in the document
    /// (so its `$ref`s resolve inside the document).
    fn validate(&self, pointer: &str, instance: &Value, what: &str) {
        let mut root = self.doc.clone();
        // A pointer in a URI fragment: braces must be percent-encoded.
        let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
        root["$ref"] = json!(format!("#{fragment}"));
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("schema at {pointer} does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}: does not match {pointer}: {errors:#?}\n{instance}"
        );
    }

    /// Holds one real response to the document.
    fn check(&self, method: &str, path: &str, response: &Response) {
        let what = format!("{} {path} -> {}", method.to_uppercase(), response.status);
        let op_pointer = format!("/paths/{}/{method}", pointer_token(path));
        let op = self
            .doc
            .pointer(&op_pointer)
            .unwrap_or_else(|| panic!("{what}: operation not described"));
        let status = response.status.to_string();
        let described = op["responses"]
            .get(&status)
            .unwrap_or_else(|| panic!("{what}: status not described"));
        let (described, pointer) =
            self.resolve(described, format!("{op_pointer}/responses/{status}"));
        self.exercised
            .lock()
            .unwrap()
            .insert((path.to_owned(), method.to_owned(), status));

        if let Some(headers) = described.get("headers").and_then(Value::as_object) {
            for name in headers.keys() {
                let value = response
                    .header(name)
                    .unwrap_or_else(|| panic!("{what}: no {name} header"));
                let schema = format!("{pointer}/headers/{}/schema", pointer_token(name));
                self.validate(&schema, &json!(value), &format!("{what} header {name}"));
            }
        }
        let Some(content) = described.get("content").and_then(Value::as_object) else {
            return;
        };
        let content_type = response
            .header("content-type")
            .unwrap_or_else(|| panic!("{what}: no Content-Type"));
        let essence = content_type
            .split(';')
            .next()
            .unwrap()
            .trim()
            .to_ascii_lowercase();
        assert!(
            content.contains_key(&essence),
            "{what}: Content-Type {content_type} not described (described: {:?})",
            content.keys().collect::<Vec<_>>()
        );
        if essence == "text/event-stream" {
            return; // an endless body; its events are checked in tests/it/sse.rs
        }
        let schema = format!("{pointer}/content/{}/schema", pointer_token(&essence));
        let body = if essence == "application/json" {
            serde_json::from_slice(&response.body)
                .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"))
        } else {
            json!(response.text())
        };
        self.validate(&schema, &body, &what);
    }

    /// Every described response was checked above, but for the ones no
    /// test can produce.
    fn assert_all_exercised(&self) {
        let exercised = self.exercised.lock().unwrap();
        let mut missing = Vec::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for status in op["responses"].as_object().unwrap().keys() {
                    let key = (path.clone(), method.clone(), status.clone());
                    let skipped = NOT_EXERCISED.contains(&(path, method, status));
                    if !exercised.contains(&key) && !skipped {
                        missing.push(key);
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "described but never produced: {missing:#?}"
        );
    }
}

async fn send(server: &TestServer, request: Request<'_>) -> Response {
    within(server.api().send(&request))
        .await
        .expect("a response")
}

async fn get(server: &TestServer, target: &str) -> Response {
    send(server, Request::new("GET", target)).await
}

const JSON: &str = "application/json";

fn post_json(body: &[u8]) -> Request<'_> {
    Request::new("POST", "/posts")
        .header("Content-Type", JSON)
        .body(body)
}

/// Whether `request` is a websocket upgrade.
fn request_is_ws(request: &Request<'_>) -> bool {
    format!("{request:?}").contains("websocket")
}

fn upgrade(target: &str) -> Request<'_> {
    Request::new("GET", target)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "13")
}

#[async_std::test]
async fn real_responses_match_the_document() {
    let contract = Contract::load();
    let server = TestServer::start_with(|c| c.socketio.max_payload = 64).await;
    let c = &contract;

    // The served document is the embedded one.
    let served = get(&server, "/openapi.json").await;
    c.check("get", "/openapi.json", &served);
    assert_eq!(served.text(), livefeed::http::ops::OPENAPI);

    // Posts.
    let created = send(
        &server,
        post_json(br#"{"title":" Hi ","content":"there","author":"ada"}"#),
    )
    .await;
    c.check("post", "/posts", &created);
    let anonymous = send(&server, post_json(br#"{"title":"t","content":"c"}"#)).await;
    c.check("post", "/posts", &anonymous);
    let cases: [(&[u8], u16); 5] = [
        (b"{", 400),
        (br#"{"content":"c"}"#, 422),
        (br#"{"title":"t","content":"c","extra":1}"#, 422),
        (b"[]", 422),
        (br#"{"title":"t","content":"c","author":7}"#, 422),
    ];
    for (body, status) in cases {
        let response = send(&server, post_json(body)).await;
        assert_eq!(response.status, status, "{}", String::from_utf8_lossy(body));
        c.check("post", "/posts", &response);
    }
    let big = vec![b' '; 70 * 1024];
    let too_large = send(&server, post_json(&big)).await;
    assert_eq!(too_large.status, 413);
    c.check("post", "/posts", &too_large);
    let text = Request::new("POST", "/posts")
        .header("Content-Type", "text/plain")
        .body(b"hi");
    let unsupported = send(&server, text).await;
    assert_eq!(unsupported.status, 415);
    c.check("post", "/posts", &unsupported);

    for target in ["/posts", "/posts?limit=1", "/posts?limit=1&before=2"] {
        let page = get(&server, target).await;
        assert_eq!(page.status, 200);
        c.check("get", "/posts", &page);
    }
    for target in ["/posts?limit=0", "/posts?limit=101", "/posts?before=x"] {
        let bad = get(&server, target).await;
        assert_eq!(bad.status, 400, "{target}");
        c.check("get", "/posts", &bad);
    }
    for (target, status) in [("/posts/1", 200), ("/posts/99", 404), ("/posts/x", 400)] {
        let response = get(&server, target).await;
        assert_eq!(response.status, status, "{target}");
        c.check("get", "/posts/{id}", &response);
    }

    // Edits and deletes (post 1 is Hi, post 2 the anonymous one).
    let patch = |target: &'static str, body: &'static [u8]| {
        Request::new("PATCH", target)
            .header("Content-Type", JSON)
            .body(body)
    };
    let edits: [(Request<'_>, u16); 10] = [
        (patch("/posts/1", br#"{"title":"Hi again"}"#), 200),
        (
            patch("/posts/1", br#"{"author":null}"#).header("If-Match", "\"3\""),
            200,
        ),
        (
            patch("/posts/1", br#"{"title":"x"}"#).header("If-Match", "\"1\""),
            412,
        ),
        (patch("/posts/99", br#"{"title":"x"}"#), 404),
        (patch("/posts/x", br#"{"title":"x"}"#), 400),
        (patch("/posts/1", b"{"), 400),
        (patch("/posts/1", b"{}"), 422),
        (patch("/posts/1", br#"{"title":""}"#), 422),
        (
            Request::new("PATCH", "/posts/1")
                .header("Content-Type", "text/plain")
                .body(b"x"),
            415,
        ),
        (patch("/posts/1", &[b' '; 70 * 1024]), 413),
    ];
    for (request, status) in edits {
        let response = send(&server, request).await;
        assert_eq!(response.status, status, "{}", response.text());
        c.check("patch", "/posts/{id}", &response);
    }
    let deletes: [(Request<'_>, u16); 5] = [
        (
            Request::new("DELETE", "/posts/2").header("If-Match", "\"1\""),
            412,
        ),
        (
            Request::new("DELETE", "/posts/2").header("If-Match", "\"2\""),
            204,
        ),
        (Request::new("DELETE", "/posts/2"), 404),
        (Request::new("DELETE", "/posts/x"), 400),
        (
            Request::new("DELETE", "/posts/99").header("If-Match", "*"),
            404,
        ),
    ];
    for (request, status) in deletes {
        let response = send(&server, request).await;
        assert_eq!(response.status, status, "{}", response.text());
        c.check("delete", "/posts/{id}", &response);
    }

    // Feeds.
    let in_feed = |feed: &'static str, body: &'static [u8]| {
        Request::new("POST", feed)
            .header("Content-Type", JSON)
            .body(body)
    };
    let feed_posts: [(Request<'_>, u16); 6] = [
        (
            in_feed("/feeds/team-a/posts", br#"{"title":"t","content":"c"}"#),
            201,
        ),
        (
            in_feed("/feeds/Bad!/posts", br#"{"title":"t","content":"c"}"#),
            400,
        ),
        (in_feed("/feeds/team-a/posts", b"{"), 400),
        (in_feed("/feeds/team-a/posts", br#"{"title":""}"#), 422),
        (in_feed("/feeds/team-a/posts", &[b' '; 70 * 1024]), 413),
        (
            Request::new("POST", "/feeds/team-a/posts")
                .header("Content-Type", "text/plain")
                .body(b"x"),
            415,
        ),
    ];
    for (request, status) in feed_posts {
        let response = send(&server, request).await;
        assert_eq!(response.status, status, "{}", response.text());
        c.check("post", "/feeds/{feed}/posts", &response);
    }
    for (target, status) in [
        ("/feeds/team-a/posts", 200),
        ("/feeds/team-a/posts?limit=1&before=99", 200),
        ("/feeds/Bad!/posts", 400),
        ("/feeds/team-a/posts?limit=0", 400),
        // A private feed on a server without a JWT secret.
        ("/feeds/private-x/posts", 403),
    ] {
        let response = get(&server, target).await;
        assert_eq!(response.status, status, "{target}: {}", response.text());
        c.check("get", "/feeds/{feed}/posts", &response);
    }
    let listed = get(&server, "/feeds").await;
    assert_eq!(listed.status, 200);
    c.check("get", "/feeds", &listed);
    let many: String = (0..101)
        .map(|i| format!("f{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let too_many = format!("/events?feeds={many}");
    for (target, status) in [
        ("/events?feeds=No", 400),
        (too_many.as_str(), 400),
        ("/events?feeds=private-x", 403),
    ] {
        let response = get(&server, target).await;
        assert_eq!(response.status, status, "{target}");
        c.check("get", "/events", &response);
    }
    let ws_feed = send(&server, upgrade("/ws?feeds=private-x")).await;
    assert_eq!(ws_feed.status, 403);
    c.check("get", "/ws", &ws_feed);

    // Streams.
    let mut events = within(server.api().events(None)).await.unwrap();
    let head = Response {
        status: 200,
        headers: events.headers().to_vec(),
        body: Vec::new(),
    };
    c.check("get", "/events", &head);
    next_event(&mut events).await;
    drop(events);
    let bad_since = get(&server, "/events?since=-1").await;
    c.check("get", "/events", &bad_since);
    let bad_id = send(
        &server,
        Request::new("GET", "/events").header("Last-Event-ID", "x"),
    )
    .await;
    assert_eq!(bad_id.status, 400);
    c.check("get", "/events", &bad_id);

    let switching = send(&server, upgrade("/ws?since=0")).await;
    assert_eq!(switching.status, 101);
    c.check("get", "/ws", &switching);
    for (request, status) in [
        (Request::new("GET", "/ws"), 426),
        (upgrade("/ws").header("Origin", "http://evil.example"), 403),
        (upgrade("/ws?since=x"), 400),
    ] {
        let response = send(&server, request).await;
        assert_eq!(response.status, status);
        c.check("get", "/ws", &response);
    }

    // Socket.IO (its packets are tested in tests/it/socketio.rs).
    let sio = "/socket.io/";
    let handshake = get(&server, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(handshake.status, 200);
    c.check("get", sio, &handshake);
    let open: Value = serde_json::from_str(&handshake.text()[1..]).unwrap();
    let sid = open["sid"].as_str().unwrap();
    let polled = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let text = "text/plain;charset=UTF-8";
    let sent = Request::new("POST", &polled)
        .header("Content-Type", text)
        .body(b"40");
    let sent = send(&server, sent).await;
    assert_eq!(sent.status, 200);
    c.check("post", sio, &sent);
    let big = vec![b'4'; 200];
    let too_big = Request::new("POST", &polled)
        .header("Content-Type", text)
        .body(&big);
    let too_big = send(&server, too_big).await;
    assert_eq!(too_big.status, 413);
    c.check("post", sio, &too_big);
    let evil = "http://evil.example";
    for (method, request, status) in [
        ("get", Request::new("GET", sio), 400),
        ("get", Request::new("GET", sio).header("Origin", evil), 403),
        ("get", upgrade("/socket.io/?EIO=4&transport=websocket"), 101),
        (
            "post",
            Request::new("POST", "/socket.io/?EIO=4&transport=polling"),
            400,
        ),
        (
            "post",
            Request::new("POST", sio).header("Origin", evil),
            403,
        ),
        ("options", Request::new("OPTIONS", sio), 204),
        (
            "options",
            Request::new("OPTIONS", sio).header("Origin", evil),
            403,
        ),
    ] {
        let response = send(&server, request).await;
        assert_eq!(response.status, status, "{method} {sio}");
        c.check(method, sio, &response);
    }

    // Operations and the demo.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/",
        "/index.html",
        "/app.js",
        "/style.css",
    ] {
        let response = get(&server, path).await;
        assert_eq!(response.status, 200, "{path}");
        c.check("get", path, &response);
    }

    // Idempotency-Key on both create routes: a first create and its
    // replay, the key reused with another body, a malformed key.
    for (route, path, key) in [
        ("/posts", "/posts", "oa-1"),
        ("/feeds/{feed}/posts", "/feeds/team-a/posts", "oa-2"),
    ] {
        let keyed = |key: &'static str, body: &'static [u8]| {
            Request::new("POST", path)
                .header("Content-Type", JSON)
                .header("Idempotency-Key", key)
                .body(body)
        };
        for (request, status) in [
            (keyed(key, br#"{"title":"t","content":"c"}"#), 201),
            (keyed(key, br#"{"content":"c","title":"t"}"#), 201),
            (keyed(key, br#"{"title":"t","content":"other"}"#), 422),
            (keyed("", br#"{"title":"t","content":"c"}"#), 400),
        ] {
            let response = send(&server, request).await;
            assert_eq!(response.status, status, "{path}: {}", response.text());
            c.check("post", route, &response);
        }
    }

    // Refusals before routing, possible on every operation: an
    // unparseable header, a head of 8 KiB or more, HTTP/2.0.
    let paths = c.doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let target = path.replace("{id}", "1");
            let m = method.to_uppercase();
            let mut bad_header =
                format!("{m} {target} HTTP/1.1\r\nHost: x\r\nX-Name: ").into_bytes();
            bad_header.extend_from_slice(b"caf\xe9\r\n\r\n");
            let long = "a=b&".repeat(2100);
            let requests = [
                (bad_header, 400),
                (
                    format!("{m} {target}?{long} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes(),
                    431,
                ),
                (format!("{m} {target} HTTP/2.0\r\n\r\n").into_bytes(), 505),
            ];
            for (request, status) in requests {
                let response = raw_exchange(server.addr, &request).await;
                assert_eq!(response.status, status, "{m} {path}");
                c.check(method, path, &response);
            }
        }
    }
    server.stop().await;

    // A publish token and a full server.
    let guarded = TestServer::start_with(|c| {
        c.publish_token = Some("t0ken".into());
        c.max_connections = 0;
        c.socketio.max_sessions = 0;
    })
    .await;
    let refused = send(&guarded, post_json(br#"{"title":"t","content":"c"}"#)).await;
    assert_eq!(refused.status, 401);
    c.check("post", "/posts", &refused);
    let edit = Request::new("PATCH", "/posts/1")
        .header("Content-Type", JSON)
        .body(br#"{"title":"t"}"#);
    let refused = send(&guarded, edit).await;
    assert_eq!(refused.status, 401);
    c.check("patch", "/posts/{id}", &refused);
    let refused = send(&guarded, Request::new("DELETE", "/posts/1")).await;
    assert_eq!(refused.status, 401);
    c.check("delete", "/posts/{id}", &refused);
    let full = get(&guarded, "/events").await;
    assert_eq!(full.status, 503);
    c.check("get", "/events", &full);
    let full = send(&guarded, upgrade("/ws")).await;
    assert_eq!(full.status, 503);
    c.check("get", "/ws", &full);
    let full = get(&guarded, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(full.status, 503);
    c.check("get", "/socket.io/", &full);
    let refused = send(
        &guarded,
        in_feed("/feeds/team-a/posts", br#"{"title":"t","content":"c"}"#),
    )
    .await;
    assert_eq!(refused.status, 401);
    c.check("post", "/feeds/{feed}/posts", &refused);
    guarded.stop().await;

    // Private feeds behind JWTs.
    let secret = "jwt-secret";
    let private = TestServer::start_with(|c| {
        c.publish_token = Some("op".into());
        c.jwt_secret = Some(secret.into());
    })
    .await;
    let op = [("Content-Type", JSON), ("Authorization", "Bearer op")];
    let made = private
        .request(
            "POST",
            "/feeds/private-a/posts",
            &op,
            br#"{"title":"t","content":"c"}"#,
        )
        .await;
    assert_eq!(made.status, 201);
    let reader = crate::common::jwt(secret, json!({"subscribe": ["private-a"]}), 60);
    let bearer = format!("Bearer {reader}");
    let as_reader = |r: Request<'static>| -> Request<'_> { r.header("Authorization", &bearer) };
    let forbidden = send(
        &private,
        as_reader(in_feed("/posts", br#"{"title":"t","content":"c"}"#)),
    )
    .await;
    assert_eq!(forbidden.status, 403);
    c.check("post", "/posts", &forbidden);
    let forbidden = send(
        &private,
        as_reader(in_feed(
            "/feeds/private-a/posts",
            br#"{"title":"t","content":"c"}"#,
        )),
    )
    .await;
    assert_eq!(forbidden.status, 403);
    c.check("post", "/feeds/{feed}/posts", &forbidden);
    let edit = Request::new("PATCH", "/posts/1")
        .header("Content-Type", JSON)
        .body(br#"{"title":"x"}"#);
    let forbidden = send(&private, as_reader(edit)).await;
    assert_eq!(forbidden.status, 403);
    c.check("patch", "/posts/{id}", &forbidden);
    let forbidden = send(&private, as_reader(Request::new("DELETE", "/posts/1"))).await;
    assert_eq!(forbidden.status, 403);
    c.check("delete", "/posts/{id}", &forbidden);
    let unauthorized = get(&private, "/feeds/private-a/posts").await;
    assert_eq!(unauthorized.status, 401);
    c.check("get", "/feeds/{feed}/posts", &unauthorized);
    let read = send(
        &private,
        as_reader(Request::new("GET", "/feeds/private-a/posts")),
    )
    .await;
    assert_eq!(read.status, 200);
    c.check("get", "/feeds/{feed}/posts", &read);
    let wrong = crate::common::jwt(secret, json!({"subscribe": ["private-b"]}), 60);
    let wrong_bearer = format!("Bearer {wrong}");
    let forbidden = send(
        &private,
        Request::new("GET", "/feeds/private-a/posts").header("Authorization", &wrong_bearer),
    )
    .await;
    assert_eq!(forbidden.status, 403);
    c.check("get", "/feeds/{feed}/posts", &forbidden);
    for (request, status) in [
        (Request::new("GET", "/events?feeds=private-a"), 401),
        (upgrade("/ws?feeds=private-a"), 401),
    ] {
        let path = if status == 401 && request_is_ws(&request) {
            "/ws"
        } else {
            "/events"
        };
        let response = send(&private, request).await;
        assert_eq!(response.status, status, "{path}");
        c.check("get", path, &response);
    }
    private.stop().await;

    // Storage failing (injected: the disk is full and the store cannot be
    // reopened): every route's 503, readiness and health.
    let faults = std::sync::Arc::new(livefeed::store::Faults::default());
    let failing = TestServer::start_with(|config| {
        config.storage_faults = Some(faults.clone());
        config.storage_reserve = 64 << 10;
    })
    .await;
    let created = send(&failing, post_json(br#"{"title":"t","content":"c"}"#)).await;
    assert_eq!(created.status, 201);
    use livefeed::store::Stage;
    faults.fail(&[Stage::Write, Stage::Open, Stage::Reserve]);
    let body: &[u8] = br#"{"title":"t","content":"c"}"#;
    for (method, path, target, body) in [
        ("post", "/posts", "/posts", Some(body)),
        ("post", "/feeds/{feed}/posts", "/feeds/a/posts", Some(body)),
        ("patch", "/posts/{id}", "/posts/1", Some(body)),
        ("delete", "/posts/{id}", "/posts/1", None),
        ("get", "/posts", "/posts", None),
        ("get", "/posts/{id}", "/posts/1", None),
        ("get", "/feeds", "/feeds", None),
        ("get", "/feeds/{feed}/posts", "/feeds/a/posts", None),
        ("get", "/readyz", "/readyz", None),
    ] {
        let verb = method.to_uppercase();
        let mut request = Request::new(&verb, target);
        if let Some(body) = body {
            request = request.header("Content-Type", JSON).body(body);
        }
        let response = send(&failing, request).await;
        assert_eq!(response.status, 503, "{verb} {target}: {}", response.text());
        c.check(method, path, &response);
    }
    let degraded = get(&failing, "/healthz").await;
    assert_eq!(degraded.json()["status"], "degraded");
    c.check("get", "/healthz", &degraded);
    faults.heal();
    failing.stop().await;

    contract.assert_all_exercised();
}

/// Every route the app registers is described, and every described path
/// is a route (or one of the embedded demo files the fallback serves).
#[test]
fn every_route_is_described_and_every_description_is_a_route() {
    let contract = Contract::load();
    let described: BTreeSet<String> = contract.doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();

    // Routes registered with a literal anywhere in src/, plus Socket.IO's,
    // mounted from a constant (also without its trailing slash, an alias).
    let mut sources = String::new();
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
    }
    let mut routes = BTreeSet::from([livefeed::transport::socketio::PATH.to_owned()]);
    for piece in sources.split(".at(\"").skip(1) {
        let route = piece.split('"').next().unwrap();
        // tide's `:name` and `*name` are OpenAPI's `{name}`.
        let route: Vec<String> = route
            .split('/')
            .map(|seg| match seg.strip_prefix([':', '*']) {
                Some(name) => format!("{{{name}}}"),
                None => seg.to_owned(),
            })
            .collect();
        routes.insert(route.join("/"));
    }
    assert!(routes.len() >= 8, "route scan broke: {routes:?}");

    // The catch-all serves the embedded demo files, each described.
    let fallback = "/{path}";
    assert!(routes.remove(fallback), "the demo fallback moved");
    let public = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("public");
    for file in std::fs::read_dir(public).unwrap() {
        let name = file.unwrap().file_name().into_string().unwrap();
        routes.insert(format!("/{name}"));
    }

    let undescribed: Vec<_> = routes.difference(&described).collect();
    assert!(
        undescribed.is_empty(),
        "routes missing from src/http/openapi.json: {undescribed:?}"
    );
    let unrouted: Vec<_> = described.difference(&routes).collect();
    assert!(
        unrouted.is_empty(),
        "src/http/openapi.json describes paths the app doesn't serve: {unrouted:?}"
    );
}

/// The checker itself: wrong bodies, statuses and content types fail.
#[test]
fn the_checker_rejects_what_the_document_does_not_allow() {
    let contract = Contract::load();
    let response = |status: u16, content_type: &str, body: &str| Response {
        status,
        headers: vec![
            ("content-type".into(), content_type.into()),
            ("location".into(), "/posts/1".into()),
            ("etag".into(), "\"1\"".into()),
        ],
        body: body.as_bytes().to_vec(),
    };
    let fails = |method: &str, path: &str, r: Response| {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            contract.check(method, path, &r)
        }));
        assert!(
            outcome.is_err(),
            "accepted {} {path}: {}",
            r.status,
            r.text()
        );
    };
    let good = r#"{"id":1,"feed":"main","title":"t","content":"c","author":null,"createdAt":"2026-11-25T21:40:00.123Z","updatedAt":null}"#;
    contract.check("get", "/posts/{id}", &response(200, JSON, good));
    fails("get", "/posts/{id}", response(200, JSON, r#"{"id":1}"#));
    let bad_time = good.replace("2026-11-25T21:40:00.123Z", "yesterday");
    fails("get", "/posts/{id}", response(200, JSON, &bad_time));
    fails("get", "/posts/{id}", response(200, "text/plain", good));
    fails("get", "/posts/{id}", response(418, JSON, good));
    let wrong_code = r#"{"error":{"code":"not_found","message":"m"}}"#;
    fails("post", "/posts", response(400, JSON, wrong_code));
    let no_field = r#"{"error":{"code":"invalid_field","message":"m"}}"#;
    fails("post", "/posts", response(422, JSON, no_field));
    let mut bad_location = response(201, JSON, good);
    bad_location.headers[1].1 = "/elsewhere".into();
    fails("post", "/posts", bad_location);
    let mut bad_etag = response(200, JSON, good);
    bad_etag.headers[2].1 = "W/\"1\"".into();
    fails("get", "/posts/{id}", bad_etag);
}
