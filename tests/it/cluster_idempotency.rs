//! `Idempotency-Key` in cluster mode: the key's record lives in Redis,
//! written by the same script as the create's append, so a retry on any
//! node, at once or in flight together, after an edit or a Redis restart,
//! is answered with the first create and appends nothing.

use crate::cluster::two_ready_nodes;
use crate::common::redis::{redis_server, Redis, CLUSTER_WAIT, STREAM};
use crate::common::{wait_until_for, within, Api, Request, Response, Ws};
use crate::idempotency::create;
use livefeed::cluster::resp::{Cmd, Conn, RedisUrl, Value};
use livefeed::feed::Logged;
use std::net::SocketAddr;
use std::time::Duration;

const BODY: &str = r#"{"title":"Hello","content":"first"}"#;
const SAME_BODY: &str = "{\"content\" : \"first\",\n \"title\":\"Hello\"}";

async fn post(addr: SocketAddr, key: &str, body: &str) -> Response {
    create(addr, "/posts", Some(key), &[], body).await
}

/// Status, body bytes, `Location` and `ETag`.
fn answer(res: &Response) -> (u16, Vec<u8>, Option<String>, Option<String>) {
    (
        res.status,
        res.body.clone(),
        res.header("location").map(str::to_owned),
        res.header("etag").map(str::to_owned),
    )
}

async fn redis_call(redis: &Redis, cmd: Cmd) -> Value {
    let url = RedisUrl::parse(&redis.url()).unwrap();
    let mut conn = Conn::connect(&url, Duration::from_secs(2)).await.unwrap();
    conn.call(&cmd, CLUSTER_WAIT).await.unwrap()
}

#[async_std::test]
async fn a_retry_on_any_node_is_the_first_create() {
    let Some(bin) = redis_server() else { return };
    let mut redis = Redis::start(bin).await;
    let (a, b, _dirs) = two_ready_nodes(&redis).await;
    let mut on_b = Ws::connect(b.addr, "").await;
    on_b.welcome_data().await;

    // Created on A; the retry on B (the same JSON, written otherwise) is
    // answered with A's post, byte for byte.
    let first = post(a.addr, "c1", BODY).await;
    assert_eq!(first.status, 201, "{}", first.text());
    let retry = post(b.addr, "c1", SAME_BODY).await;
    assert_eq!(answer(&retry), answer(&first));
    // Edited on B: a replay on A still answers the create.
    let patch = Request::new("PATCH", "/posts/1")
        .header("Content-Type", "application/json")
        .body(br#"{"title":"Edited"}"#);
    let edited = within(Api::at(b.addr).send(&patch)).await.unwrap();
    assert_eq!(edited.status, 200, "{}", edited.text());
    assert_eq!(answer(&post(a.addr, "c1", BODY).await), answer(&first));
    // Another body, or another route, on either node: refused.
    let other = post(b.addr, "c1", r#"{"title":"Hello","content":"second"}"#).await;
    assert_eq!(
        (other.status, other.error_code().as_str()),
        (422, "idempotency_key_reused")
    );
    let other_route = create(a.addr, "/feeds/main/posts", Some("c1"), &[], BODY).await;
    assert_eq!(other_route.error_code(), "idempotency_key_reused");

    // Eight at once, spread over both nodes: one post.
    let (a_addr, b_addr) = (a.addr, b.addr);
    let together = futures::future::join_all((0..8).map(|i| {
        let addr = if i % 2 == 0 { a_addr } else { b_addr };
        async_std::task::spawn(async move { post(addr, "c2", BODY).await })
    }))
    .await;
    assert_eq!(together[0].status, 201, "{}", together[0].text());
    for res in &together {
        assert_eq!(answer(res), answer(&together[0]));
    }
    let second_id = together[0].json()["id"].as_u64().unwrap();
    assert_eq!(second_id, 3);

    // Redis restarted (on its AOF): the record survives; a client retrying
    // through the outage gets the first answer in the end.
    redis.kill();
    redis.spawn().await;
    let last = std::cell::RefCell::new(None);
    let last_ref = &last;
    wait_until_for(
        CLUSTER_WAIT,
        "a retry after the Redis restart",
        move || async move {
            let res = post(b_addr, "c2", SAME_BODY).await;
            let done = res.status != 503;
            *last_ref.borrow_mut() = Some(res);
            done
        },
    )
    .await;
    let last = last.into_inner().unwrap();
    assert_eq!(answer(&last), answer(&together[0]));

    // The log holds the two creates and the edit, nothing else; B's client
    // saw exactly them, then the next post.
    let plain = create(a.addr, "/posts", None, &[], BODY).await;
    assert_eq!(plain.json()["id"], 4);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let change = on_b.change().await;
        seen.push((change.event.clone(), change.seq()));
    }
    let expected = [
        ("newPost", 1),
        ("postUpdated", 2),
        ("newPost", 3),
        ("newPost", 4),
    ];
    assert_eq!(seen, expected.map(|(e, seq)| (e.to_owned(), seq)));
    let kinds: Vec<(u64, bool)> = redis
        .changes()
        .await
        .iter()
        .map(|c| (c.seq(), matches!(c, Logged::Created(_))))
        .collect();
    assert_eq!(kinds, [(1, true), (2, false), (3, true), (4, true)]);

    // Two records, each with a TTL of at most a day (the default).
    let records = redis_call(&redis, Cmd::new("KEYS").arg(format!("{STREAM}:idem:*"))).await;
    let records = records.into_array().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    for record in records {
        let ttl = redis_call(&redis, Cmd::new("PTTL").arg(record.as_bytes().unwrap())).await;
        let Value::Int(ms) = ttl else {
            panic!("PTTL answered {ttl:?}")
        };
        assert!(ms > 0 && ms <= 24 * 3600 * 1000, "PTTL {ms}");
    }
    let replays = |addr| crate::common::metric(addr, "livefeed_idempotent_replays_total");
    assert_eq!(replays(a.addr).await + replays(b.addr).await, 10);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
