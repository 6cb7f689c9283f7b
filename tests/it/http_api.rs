//! The HTTP contract of issue 2: creates, reads, every error case, and that
//! a refused request stores and broadcasts nothing.

use crate::common::TestServer;
use serde_json::json;

#[async_std::test]
async fn create_returns_the_stored_post_with_location() {
    let server = TestServer::start().await;
    let body =
        json!({"title": "  Hello ", "content": "line 1\nline 2", "author": "ana"}).to_string();
    let res = server.post_json(&body).await;
    assert_eq!(res.status, 201, "{}", res.text());
    let post = res.json();
    let id = post["id"].as_u64().unwrap();
    assert_eq!(
        res.header("location"),
        Some(format!("/posts/{id}").as_str())
    );
    assert_eq!(post["title"], "Hello");
    assert_eq!(post["content"], "line 1\nline 2");
    assert_eq!(post["author"], "ana");
    let created = post["createdAt"].as_str().unwrap();
    assert!(
        humantime::parse_rfc3339(created).is_ok() && created.ends_with('Z'),
        "{created}"
    );

    let fetched = server.get(&format!("/posts/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json(), post);

    let anonymous = server.create("t", "c").await;
    assert_eq!(anonymous["author"], serde_json::Value::Null);
    assert!(
        anonymous["id"].as_u64().unwrap() > id,
        "ids strictly increase"
    );
}

#[async_std::test]
async fn list_pages_newest_first() {
    let server = TestServer::start().await;
    for i in 1..=25 {
        server.create(&format!("post {i}"), "c").await;
    }
    let first = server.get("/posts").await.json();
    let ids: Vec<u64> = first["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (6..=25).rev().collect::<Vec<_>>());
    assert_eq!(first["next"], 6);

    let second = server.get("/posts?limit=10&before=6").await.json();
    let ids: Vec<u64> = second["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![5, 4, 3, 2, 1]);
    assert_eq!(second["next"], serde_json::Value::Null);

    let hundred = server.get("/posts?limit=100").await.json();
    assert_eq!(hundred["posts"].as_array().unwrap().len(), 25);

    for bad in [
        "/posts?limit=0",
        "/posts?limit=101",
        "/posts?limit=x",
        "/posts?before=-1",
        "/posts?before=abc",
    ] {
        let res = server.get(bad).await;
        assert_eq!(res.status, 400, "{bad}: {}", res.text());
        assert_eq!(res.error_code(), "invalid_query");
    }
}

#[async_std::test]
async fn get_unknown_or_malformed_id() {
    let server = TestServer::start().await;
    let res = server.get("/posts/42").await;
    assert_eq!(res.status, 404);
    assert_eq!(res.error_code(), "not_found");
    for bad in ["/posts/abc", "/posts/-1", "/posts/99999999999999999999999"] {
        let res = server.get(bad).await;
        assert!(matches!(res.status, 400 | 404), "{bad}: {}", res.status);
        assert!(res.json()["error"]["message"].is_string());
    }
}

/// Every refused create: status, code, the field named, nothing stored and
/// nothing pushed to a connected client.
#[async_std::test]
async fn refused_creates_change_nothing() {
    let server = TestServer::start().await;
    let mut ws = server.ws("").await;
    assert_eq!(ws.welcome().await, None);

    let json = [("Content-Type", "application/json")];
    let long = |n: usize| "x".repeat(n);
    type Case<'a> = (
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        u16,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<Case<'_>> = vec![
        (json.to_vec(), b"{".to_vec(), 400, "malformed_json", None),
        (
            json.to_vec(),
            b"not json".to_vec(),
            400,
            "malformed_json",
            None,
        ),
        (
            vec![("Content-Type", "text/plain")],
            br#"{"title":"t","content":"c"}"#.to_vec(),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            vec![],
            br#"{"title":"t","content":"c"}"#.to_vec(),
            415,
            "unsupported_media_type",
            None,
        ),
        (
            json.to_vec(),
            vec![b' '; 64 * 1024 + 1],
            413,
            "payload_too_large",
            None,
        ),
        (
            json.to_vec(),
            br#"{"content":"c"}"#.to_vec(),
            422,
            "invalid_field",
            Some("title"),
        ),
        (
            json.to_vec(),
            br#"{"title":"   ","content":"c"}"#.to_vec(),
            422,
            "invalid_field",
            Some("title"),
        ),
        (
            json.to_vec(),
            format!(r#"{{"title":"{}","content":"c"}}"#, long(201)).into_bytes(),
            422,
            "invalid_field",
            Some("title"),
        ),
        (
            json.to_vec(),
            br#"{"title":1,"content":"c"}"#.to_vec(),
            422,
            "invalid_field",
            Some("title"),
        ),
        (
            json.to_vec(),
            br#"{"title":"t"}"#.to_vec(),
            422,
            "invalid_field",
            Some("content"),
        ),
        (
            json.to_vec(),
            br#"{"title":"t","content":""}"#.to_vec(),
            422,
            "invalid_field",
            Some("content"),
        ),
        (
            json.to_vec(),
            format!(r#"{{"title":"t","content":"{}"}}"#, long(10_001)).into_bytes(),
            422,
            "invalid_field",
            Some("content"),
        ),
        (
            json.to_vec(),
            br#"{"title":"t","content":["c"]}"#.to_vec(),
            422,
            "invalid_field",
            Some("content"),
        ),
        (
            json.to_vec(),
            format!(r#"{{"title":"t","content":"c","author":"{}"}}"#, long(101)).into_bytes(),
            422,
            "invalid_field",
            Some("author"),
        ),
        (
            json.to_vec(),
            br#"{"title":"t","content":"c","author":7}"#.to_vec(),
            422,
            "invalid_field",
            Some("author"),
        ),
        (
            json.to_vec(),
            br#"{"title":"t","content":"c","likes":3}"#.to_vec(),
            422,
            "invalid_field",
            Some("likes"),
        ),
        (
            json.to_vec(),
            br#"[1,2]"#.to_vec(),
            422,
            "invalid_field",
            Some("body"),
        ),
    ];
    for (headers, body, status, code, field) in cases {
        let res = server.request("POST", "/posts", &headers, &body).await;
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        assert_eq!(res.status, status, "{shown}: {}", res.text());
        let error = &res.json()["error"];
        assert_eq!(error["code"], code, "{shown}");
        assert!(!error["message"].as_str().unwrap().is_empty());
        if let Some(field) = field {
            assert_eq!(error["field"], field, "{shown}");
        }
    }

    // A declared length over the limit is refused without reading the body.
    let res = server
        .request(
            "POST",
            "/posts",
            &[
                ("Content-Type", "application/json"),
                ("Content-Length", "10000000"),
            ],
            b"{}",
        )
        .await;
    assert_eq!(res.status, 413);

    let listed = server.get("/posts").await.json();
    assert_eq!(
        listed["posts"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
    assert_eq!(server.metric("livefeed_posts_created_total").await, 0);

    // The first post a client sees is the first valid one: nothing was
    // broadcast for the refused ones.
    let post = server.create("valid", "c").await;
    assert_eq!(post["id"], 1);
    assert_eq!(ws.post_id().await, 1);
}

#[async_std::test]
async fn publish_token_guards_creates() {
    let server = TestServer::start_with(|c| c.publish_token = Some("s3cret".into())).await;
    let body = br#"{"title":"t","content":"c"}"#;
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("s3cret"),
        Some("Basic s3cret"),
    ] {
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        let res = server.request("POST", "/posts", &headers, body).await;
        assert_eq!(res.status, 401, "{auth:?}");
        assert_eq!(res.error_code(), "unauthorized");
    }
    assert_eq!(
        server.get("/posts").await.json()["posts"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let res = server
        .request(
            "POST",
            "/posts",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", "Bearer s3cret"),
            ],
            body,
        )
        .await;
    assert_eq!(res.status, 201);
}

/// `/metrics` has the two latency histograms an operator watches: creates
/// to their `201`, and live changes from being stored to being written to
/// each client.
#[async_std::test]
async fn metrics_time_creates_and_deliveries() {
    use crate::common::wait_until;
    let server = TestServer::start().await;
    let mut a = server.ws("").await;
    let mut b = server.ws("").await;
    a.welcome().await;
    b.welcome().await;
    server.create("t", "c").await;
    assert_eq!(a.event().await["event"], "newPost");
    assert_eq!(b.event().await["event"], "newPost");
    let text = server.get("/metrics").await.text();
    for name in [
        "livefeed_post_create_duration_seconds",
        "livefeed_delivery_lag_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} histogram\n")),
            "{name}"
        );
        assert!(
            text.contains(&format!("{name}_bucket{{le=\"+Inf\"}} ")),
            "{name}"
        );
    }
    assert_eq!(
        server
            .metric("livefeed_post_create_duration_seconds_count")
            .await,
        1
    );
    // One observation per client written to (just after its frame left).
    wait_until("both deliveries timed", || async {
        server.metric("livefeed_delivery_lag_seconds_count").await == 2
    })
    .await;
    // A refused create is not timed.
    let refused = server.post_json("{}").await;
    assert_eq!(refused.status, 422);
    assert_eq!(
        server
            .metric("livefeed_post_create_duration_seconds_count")
            .await,
        1
    );
}

#[async_std::test]
async fn health_metrics_demo_and_unknown_routes() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/healthz").await.status, 200);
    server.create("t", "c").await;
    let metrics = server.get("/metrics").await;
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    for name in [
        "livefeed_connected_clients",
        "livefeed_posts_created_total",
        "livefeed_frames_delivered_total",
        "livefeed_slow_consumer_disconnects_total",
    ] {
        assert!(
            metrics.text().contains(&format!("# TYPE {name} ")),
            "{name} missing"
        );
    }
    assert_eq!(server.metric("livefeed_posts_created_total").await, 1);

    let page = server.get("/").await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page.header("content-security-policy").is_some());

    let missing = server.get("/no/such/thing").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), "not_found");
    let wrong_method = server.request("DELETE", "/posts", &[], b"").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.error_code(), "method_not_allowed");

    let not_upgrade = server.get("/ws").await;
    assert_eq!(not_upgrade.status, 426);
}

/// Shutdown closes kept-alive HTTP connections that sit between requests,
/// so `run` returns with nothing holding the data directory: the same
/// process can open it again at once.
#[async_std::test]
async fn shutdown_closes_idle_keep_alive_connections() {
    use crate::common::within;
    use async_std::io::{ReadExt, WriteExt};
    let mut server = TestServer::start().await;
    let mut conn = within(async_std::net::TcpStream::connect(server.addr))
        .await
        .unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    within(conn.write_all(request.as_bytes())).await.unwrap();
    let mut reader = async_std::io::BufReader::new(conn);
    // The whole response, however many segments it arrives in.
    let response = crate::common::http::read_response(&mut reader).await;
    assert_eq!(response.status, 200);
    // The connection stays open for another request, until shutdown.
    server.halt().await;
    let mut buf = vec![0u8; 4096];
    let rest = within(reader.read(&mut buf)).await.unwrap_or(0);
    assert_eq!(rest, 0, "the idle connection was closed");
    server.restart(|_| {}).await;
    assert_eq!(server.get("/healthz").await.status, 200);
}
