//! Safe retries: `Idempotency-Key` on the create routes (and Socket.IO's
//! `idempotencyKey`). A retry with the key and the same body is answered
//! exactly as the first create was, stores nothing and broadcasts nothing;
//! another body or route is refused; keys survive restarts and `kill -9`,
//! are scoped to their sender, expire, and (tests/it/cluster_idempotency.rs)
//! are shared by a cluster's nodes.

use crate::common::sio::{new_post, SioWs};
use crate::common::{within, Api, Request, Response, TestServer, Ws};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// `POST path` with `body`, an `Idempotency-Key` when given, and `extra`
/// headers.
pub(crate) async fn create(
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
    extra: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut request = Request::new("POST", path)
        .header(JSON.0, JSON.1)
        .body(body.as_bytes());
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    for (name, value) in extra {
        request = request.header(name, value);
    }
    within(Api::at(addr).send(&request))
        .await
        .expect("an answer")
}

/// `POST /posts` with `key`.
async fn post(addr: SocketAddr, key: &str, body: &str) -> Response {
    create(addr, "/posts", Some(key), &[], body).await
}

/// The ids of the live posts of `feed`, newest first.
async fn ids(server: &TestServer, feed: &str) -> Vec<u64> {
    let page = server.get(&format!("/feeds/{feed}/posts?limit=100")).await;
    assert_eq!(page.status, 200, "{}", page.text());
    page.json()["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect()
}

/// What a client compares between two answers to a create: status, body
/// bytes, `Location`, `ETag`.
fn answer(res: &Response) -> (u16, Vec<u8>, Option<String>, Option<String>) {
    (
        res.status,
        res.body.clone(),
        res.header("location").map(str::to_owned),
        res.header("etag").map(str::to_owned),
    )
}

const BODY: &str = r#"{"title":"Hello","content":"first","author":"ada"}"#;
/// The same JSON value: other key order, other white space, an escape.
const SAME_BODY: &str =
    "{ \"author\" : \"ada\",\n  \"content\": \"first\",\t\"title\": \"\\u0048ello\" }";

#[async_std::test]
async fn a_retry_is_answered_as_the_first_create_and_stores_nothing() {
    let server = TestServer::start().await;
    let mut ws = server.ws("").await;
    ws.welcome().await;

    let first = post(server.addr, "retry-1", BODY).await;
    assert_eq!(first.status, 201, "{}", first.text());
    assert_eq!(first.header("location"), Some("/posts/1"));
    let again = post(server.addr, "retry-1", BODY).await;
    assert_eq!(answer(&again), answer(&first));
    let reordered = post(server.addr, "retry-1", SAME_BODY).await;
    assert_eq!(answer(&reordered), answer(&first));

    // Edited, then deleted: a replay still answers what the first create
    // got (as Stripe does), and brings nothing back.
    let edited = server
        .request("PATCH", "/posts/1", &[JSON], br#"{"title":"Edited"}"#)
        .await;
    assert_eq!(edited.status, 200);
    assert_eq!(
        answer(&post(server.addr, "retry-1", BODY).await),
        answer(&first)
    );
    assert_eq!(
        server.request("DELETE", "/posts/1", &[], b"").await.status,
        204
    );
    assert_eq!(
        answer(&post(server.addr, "retry-1", BODY).await),
        answer(&first)
    );
    assert_eq!(server.get("/posts/1").await.status, 404);

    // The subscriber saw the create, the edit and the delete, then the
    // next post: no replay was broadcast in between.
    let next = post(server.addr, "retry-2", BODY).await;
    assert_eq!(next.json()["id"], 4, "no seq was taken by a replay");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let change = ws.change().await;
        seen.push((change.event.clone(), change.post_id(), change.seq()));
    }
    let expected = [
        ("newPost", 1, 1),
        ("postUpdated", 1, 2),
        ("postDeleted", 1, 3),
        ("newPost", 4, 4),
    ];
    assert_eq!(seen, expected.map(|(e, id, seq)| (e.to_owned(), id, seq)));
    assert_eq!(ids(&server, "main").await, vec![4]);
    assert_eq!(server.metric("livefeed_posts_created_total").await, 2);
    assert_eq!(server.metric("livefeed_idempotent_replays_total").await, 4);
    server.stop().await;
}

#[async_std::test]
async fn the_same_key_with_another_body_or_route_is_refused() {
    let server = TestServer::start().await;
    assert_eq!(post(server.addr, "k", BODY).await.status, 201);
    let refused = [
        create(
            server.addr,
            "/posts",
            Some("k"),
            &[],
            r#"{"title":"Hello","content":"second"}"#,
        )
        .await,
        // The author is part of the body: absent is not null.
        create(
            server.addr,
            "/posts",
            Some("k"),
            &[],
            r#"{"title":"Hello","content":"first"}"#,
        )
        .await,
        create(server.addr, "/feeds/team-a/posts", Some("k"), &[], BODY).await,
        // The default feed by its other route is another route.
        create(server.addr, "/feeds/main/posts", Some("k"), &[], BODY).await,
    ];
    for res in &refused {
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (422, "idempotency_key_reused"),
            "{}",
            res.text()
        );
        assert!(res.json()["error"]["message"].is_string());
    }
    assert_eq!(ids(&server, "main").await, vec![1]);
    assert!(ids(&server, "team-a").await.is_empty());
    // Keys are per route as much as per body: a key first used on a feed's
    // route replays there.
    let in_feed = create(server.addr, "/feeds/team-a/posts", Some("f"), &[], BODY).await;
    assert_eq!(in_feed.status, 201);
    let replayed = create(
        server.addr,
        "/feeds/team-a/posts",
        Some("f"),
        &[],
        SAME_BODY,
    )
    .await;
    assert_eq!(answer(&replayed), answer(&in_feed));
    // A refused body records nothing: the key is still free.
    let invalid = create(server.addr, "/posts", Some("fresh"), &[], r#"{"title":""}"#).await;
    assert_eq!(
        (invalid.status, invalid.error_code().as_str()),
        (422, "invalid_field")
    );
    assert_eq!(post(server.addr, "fresh", BODY).await.status, 201);
    assert_eq!(ids(&server, "main").await, vec![3, 1]);
    server.stop().await;
}

#[async_std::test]
async fn malformed_keys_are_refused_and_store_nothing() {
    let server = TestServer::start().await;
    let long = "k".repeat(256);
    for (path, key) in [
        ("/posts", ""),
        ("/posts", long.as_str()),
        ("/posts", "two words"),
        ("/posts", "tab\there"),
        ("/feeds/team-a/posts", ""),
    ] {
        let res = create(server.addr, path, Some(key), &[], BODY).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (400, "invalid_idempotency_key"),
            "{key:?}: {}",
            res.text()
        );
    }
    // Two keys are no key.
    let twice = create(
        server.addr,
        "/posts",
        Some("a"),
        &[("Idempotency-Key", "b")],
        BODY,
    )
    .await;
    assert_eq!(twice.error_code(), "invalid_idempotency_key");
    // Beyond ASCII: a byte that is not UTF-8 is refused before routing
    // (`malformed_request`). (UTF-8 such as `clé` in a header makes
    // async-h1 drop the connection unanswered, whatever the header; the
    // HTTP framing's own work answers it 400 `malformed_request` too.
    // Socket.IO's `idempotencyKey: "clé"` is tested below.)
    let mut raw = b"POST /posts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
    raw.extend_from_slice(b"Content-Type: application/json\r\nIdempotency-Key: caf\xe9\r\n");
    raw.extend_from_slice(format!("Content-Length: {}\r\n\r\n{BODY}", BODY.len()).as_bytes());
    assert_eq!(
        crate::common::raw_exchange(server.addr, &raw).await.status,
        400
    );
    assert!(ids(&server, "main").await.is_empty());
    assert!(ids(&server, "team-a").await.is_empty());
    assert_eq!(server.metric("livefeed_posts_rejected_total").await, 6);
    // The longest key, all of `!` to `~`, is fine.
    let edge: String = (b'!'..=b'~').map(char::from).cycle().take(255).collect();
    assert_eq!(post(server.addr, &edge, BODY).await.status, 201);
    assert_eq!(post(server.addr, &edge, BODY).await.json()["id"], 1);
    server.stop().await;
}

#[async_std::test]
async fn a_key_belongs_to_the_credential_that_sent_it() {
    let secret = "s3cret";
    let server = TestServer::start_with(|c| c.jwt_secret = Some(secret.into())).await;
    let token = |sub: &str| {
        let jwt = crate::common::jwt(secret, json!({"sub": sub, "publish": ["main"]}), 600);
        format!("Bearer {jwt}")
    };
    let (ada, bob) = (token("ada"), token("bob"));
    let as_ada = [("Authorization", ada.as_str())];
    let mine = create(server.addr, "/posts", Some("k"), &as_ada, BODY).await;
    assert_eq!(mine.status, 201);
    // Another subject, or nobody, with the same key: their own posts.
    let theirs = create(
        server.addr,
        "/posts",
        Some("k"),
        &[("Authorization", &bob)],
        BODY,
    )
    .await;
    let anyone = create(server.addr, "/posts", Some("k"), &[], BODY).await;
    assert_eq!(
        (theirs.json()["id"].clone(), anyone.json()["id"].clone()),
        (json!(2), json!(3))
    );
    // Ada's retry, with a fresh token for the same subject, is a replay.
    let renewed = token("ada");
    let again = create(
        server.addr,
        "/posts",
        Some("k"),
        &[("Authorization", &renewed)],
        BODY,
    )
    .await;
    assert_eq!(answer(&again), answer(&mine));
    assert_eq!(ids(&server, "main").await, vec![3, 2, 1]);
    server.stop().await;
}

#[async_std::test]
async fn concurrent_requests_with_one_key_make_one_post() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let answers = futures::future::join_all((0..16).map(|i| {
        // Half of them write the body another way.
        let body = if i % 2 == 0 { BODY } else { SAME_BODY };
        async_std::task::spawn(async move { post(addr, "together", body).await })
    }))
    .await;
    for res in &answers {
        assert_eq!(answer(res), answer(&answers[0]));
    }
    assert_eq!(answers[0].status, 201);
    assert_eq!(ids(&server, "main").await, vec![1]);
    assert_eq!(server.metric("livefeed_posts_created_total").await, 1);
    assert_eq!(server.metric("livefeed_idempotent_replays_total").await, 15);
    server.stop().await;
}

#[async_std::test]
async fn keys_survive_a_restart() {
    let server = TestServer::start().await;
    let first = post(server.addr, "across", BODY).await;
    assert_eq!(first.status, 201);
    let server = server.restart_with(|_| {}).await;
    assert_eq!(
        answer(&post(server.addr, "across", SAME_BODY).await),
        answer(&first)
    );
    let other = post(server.addr, "across", r#"{"title":"t","content":"c"}"#).await;
    assert_eq!(other.error_code(), "idempotency_key_reused");
    assert_eq!(ids(&server, "main").await, vec![1]);
    server.stop().await;
}

#[async_std::test]
async fn keys_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = crate::process::spawn(dir.path());
    let mut firsts = Vec::new();
    for i in 0..10 {
        let res = post(proc.addr, &format!("kill-{i}"), BODY).await;
        assert_eq!(res.status, 201);
        firsts.push(res);
    }
    proc.child.kill().unwrap(); // SIGKILL
    proc.child.wait().unwrap();

    let mut again = crate::process::spawn(dir.path());
    for (i, first) in firsts.iter().enumerate() {
        let retry = post(again.addr, &format!("kill-{i}"), SAME_BODY).await;
        assert_eq!(answer(&retry), answer(first), "key kill-{i} lost");
    }
    let page = crate::common::request(again.addr, "GET", "/posts?limit=100", &[], b"").await;
    assert_eq!(page.json()["posts"].as_array().unwrap().len(), 10);
    again.child.kill().unwrap();
    again.child.wait().unwrap();
}

#[async_std::test]
async fn expired_keys_are_forgotten_and_purged() {
    // A key that expires as soon as it is written (a test setting: the
    // flag takes only durations above zero).
    let server = TestServer::start_with(|c| c.idempotency_ttl = Duration::ZERO).await;
    let first = post(server.addr, "brief", BODY).await;
    let second = post(server.addr, "brief", r#"{"title":"other","content":"c"}"#).await;
    assert_eq!(
        (first.status, second.status),
        (201, 201),
        "{}",
        second.text()
    );
    assert_eq!(second.json()["id"], 2, "the key was free again");
    // The record of the second is deleted by the next write.
    assert_eq!(
        server
            .metric("livefeed_idempotency_keys_expired_total")
            .await,
        0
    );
    assert_eq!(server.create("plain", "c").await["id"], 3);
    assert_eq!(
        server
            .metric("livefeed_idempotency_keys_expired_total")
            .await,
        1
    );
    server.stop().await;
}

/// Socket.IO's `createPost` takes `idempotencyKey`, with the HTTP rules.
#[async_std::test]
async fn socketio_creates_take_an_idempotency_key() {
    let server = TestServer::start().await;
    let (mut sio, _) = SioWs::connect(server.addr, "").await;
    let mut ws = Ws::connect(server.addr, "").await;
    ws.welcome().await;
    let acks = [
        r#"421["createPost",{"idempotencyKey":"s1","title":"t","content":"c"}]"#,
        r#"422["createPost",{"content":"c","title":"t","idempotencyKey":"s1","feed":null}]"#,
        r#"423["createPost",{"idempotencyKey":"s1","title":"t","content":"other"}]"#,
        r#"424["createPost",{"idempotencyKey":"","title":"t","content":"c"}]"#,
        r#"425["createPost",{"idempotencyKey":7,"title":"t","content":"c"}]"#,
        r#"426["createPost",{"idempotencyKey":"clé","title":"t","content":"c"}]"#,
    ];
    let mut answers = Vec::new();
    for (i, emit) in acks.iter().enumerate() {
        sio.send(emit).await;
        let prefix = format!("43{}", i + 1);
        loop {
            let packet = sio.packet().await;
            if let Some(ack) = packet.strip_prefix(&prefix) {
                let args: Vec<Value> = serde_json::from_str(ack).unwrap();
                answers.push(args[0].clone());
                break;
            }
            assert_eq!(new_post(&packet).0["id"], 1, "only the first is broadcast");
        }
    }
    assert_eq!(answers[0]["post"]["id"], 1);
    assert_eq!(answers[1], answers[0]);
    let codes: Vec<&str> = answers[2..]
        .iter()
        .map(|a| a["error"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "idempotency_key_reused",
            "invalid_idempotency_key",
            "invalid_idempotency_key",
            "invalid_idempotency_key"
        ]
    );
    // The same key over HTTP is another route.
    let http = post(server.addr, "s1", r#"{"title":"t","content":"c"}"#).await;
    assert_eq!(http.error_code(), "idempotency_key_reused");
    assert_eq!(ws.post_id().await, 1);
    assert_eq!(server.create("barrier", "c").await["id"], 2);
    assert_eq!(ws.post_id().await, 2, "nothing was broadcast in between");
    server.stop().await;
}

/// A proxy in front of `server` that forwards each request and answer,
/// except that it drops the first answer (the connection closes unanswered,
/// as when a response is lost or a client times out after the server
/// stored the post). Counts the connections it took.
struct LossyProxy {
    addr: SocketAddr,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl LossyProxy {
    async fn start(server: SocketAddr) -> Self {
        use async_std::net::{TcpListener, TcpStream};
        use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = connections.clone();
        async_std::task::spawn(async move {
            let mut incoming = listener.incoming();
            while let Some(Ok(mut client)) = incoming.next().await {
                let nth = count.fetch_add(1, Ordering::SeqCst);
                // The client sends `Connection: close` and a Content-Length:
                // a whole request is its head and that many bytes.
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                let complete = |r: &[u8]| {
                    let text = String::from_utf8_lossy(r);
                    let (head, body) = text.split_once("\r\n\r\n")?;
                    let length = head.lines().find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    });
                    (body.len() >= length.unwrap_or(0)).then_some(())
                };
                while complete(&request).is_none() {
                    let n = within(client.read(&mut buf)).await.unwrap();
                    assert!(n > 0, "the client closed mid-request");
                    request.extend_from_slice(&buf[..n]);
                }
                let mut upstream = TcpStream::connect(server).await.unwrap();
                upstream.write_all(&request).await.unwrap();
                let mut response = Vec::new();
                within(upstream.read_to_end(&mut response)).await.unwrap();
                if nth > 0 {
                    client.write_all(&response).await.ok();
                }
                // Dropped: closes (the first one unanswered).
            }
        });
        Self { addr, connections }
    }
}

#[async_std::test]
async fn livefeed_post_retries_once_with_its_key_when_an_answer_is_lost() {
    let server = TestServer::start().await;
    let proxy = LossyProxy::start(server.addr).await;
    let url = format!("http://{}", proxy.addr);
    let args = ["post", "--url", &url, "--title", "Hello", "--content", "c"];
    let out = crate::cli::run(&args, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("retrying once"), "{stderr}");
    assert_eq!(
        proxy.connections.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    // The first attempt stored the post; the retry was its replay.
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["id"], 1);
    assert_eq!(ids(&server, "main").await, vec![1]);
    assert_eq!(server.metric("livefeed_idempotent_replays_total").await, 1);

    // `--idempotency-key`: running the command again prints the same post
    // and stores nothing.
    let url = server.url();
    let keyed = [
        "post",
        "--url",
        &url,
        "--title",
        "Again",
        "--content",
        "c",
        "--idempotency-key",
        "job-42",
    ];
    let first = crate::cli::run(&keyed, &[]).await;
    let second = crate::cli::run(&keyed, &[]).await;
    assert!(first.status.success() && second.status.success());
    assert_eq!(first.stdout, second.stdout);
    assert_eq!(ids(&server, "main").await, vec![2, 1]);
    let bad = ["post", "--url", &url, "--title", "t", "--content", "c"];
    let bad = crate::cli::run(&[&bad[..], &["--idempotency-key", "a b"]].concat(), &[]).await;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid_idempotency_key"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    server.stop().await;
}
