//! Named feeds: posts belong to one feed, each client gets exactly the
//! feeds it follows, one seq order across them, and private feeds behind
//! the publish token or JWTs.

use crate::common::sio::SioWs;
use crate::common::sse::next_change;
use crate::common::view::View;
use crate::common::{jwt, upgrade_request, within, Api, Response, TestServer, Ws};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;

const JSON: (&str, &str) = ("Content-Type", "application/json");

async fn post_to(addr: SocketAddr, feed: &str, title: &str, token: Option<&str>) -> Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![JSON];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b));
    }
    let body = json!({"title": title, "content": "c"}).to_string();
    let path = format!("/feeds/{feed}/posts");
    crate::common::request(addr, "POST", &path, &headers, body.as_bytes()).await
}

async fn get_as(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    crate::common::request(addr, "GET", path, &headers, b"").await
}

fn titles(page: &Response) -> Vec<String> {
    let page = page.json();
    page["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_owned())
        .collect()
}

#[async_std::test]
async fn posts_belong_to_one_feed() {
    let server = TestServer::start().await;
    let a = post_to(server.addr, "team-a", "for a", None).await;
    assert_eq!(a.status, 201, "{}", a.text());
    assert_eq!(a.json()["feed"], "team-a");
    assert_eq!(a.header("location"), Some("/posts/1"));
    server.create("for main", "c").await;
    post_to(server.addr, "team-a", "for a again", None).await;
    post_to(server.addr, "b_2", "for b", None).await;
    assert_eq!(server.get("/posts/2").await.json()["feed"], "main");
    assert_eq!(titles(&server.get("/posts").await), vec!["for main"]);
    assert_eq!(
        titles(&server.get("/feeds/team-a/posts").await),
        vec!["for a again", "for a"]
    );
    assert_eq!(
        titles(&server.get("/feeds/team-a/posts?limit=1&before=3").await),
        vec!["for a"]
    );
    assert!(titles(&server.get("/feeds/empty/posts").await).is_empty());
    assert_eq!(
        server.get("/posts/1").await.json()["title"],
        "for a",
        "found in any feed"
    );
    for bad in ["Team", "-x", "a%20b", &"x".repeat(65)] {
        let res = post_to(server.addr, bad, "t", None).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (400, "invalid_feed"),
            "{bad}"
        );
        let res = server.get(&format!("/feeds/{bad}/posts")).await;
        assert_eq!(res.error_code(), "invalid_feed", "{bad}");
    }
    let mut ws = server.ws("?feeds=team-a,b_2").await;
    ws.welcome_data().await;
    crate::common::wait_until("the subscriber counted", || async {
        server.metric("livefeed_connected_clients").await == 1
    })
    .await;
    // Deleting the last post of a feed drops it from the list.
    let gone = server.request("DELETE", "/posts/4", &[], b"").await;
    assert_eq!(gone.status, 204);
    let feeds = server.get("/feeds").await.json();
    assert_eq!(
        feeds,
        json!({"feeds": [
            {"name": "main", "posts": 1, "lastPostId": 2, "subscribers": 0},
            {"name": "team-a", "posts": 2, "lastPostId": 3, "subscribers": 1},
        ]})
    );
    assert_eq!(server.metric("livefeed_feeds").await, 2);
}

/// Each client gets every change of its feeds and nothing else, in one
/// ascending seq order across them; edits and deletes follow their post's
/// feed.
#[async_std::test]
async fn every_transport_gets_exactly_its_feeds() {
    let server = TestServer::start().await;
    let mut both = server.ws("?feeds=a,b").await;
    both.welcome_data().await;
    let mut main = server.ws("").await;
    main.welcome_data().await;
    let mut sse = within(Api::at(server.addr).events_at("/events?feeds=b", None))
        .await
        .unwrap();
    let (mut sio, reply) = SioWs::connect(server.addr, r#"{"feeds":["a"]}"#).await;
    assert!(reply["sid"].is_string(), "{reply}");

    for feed in ["a", "b", "c", "main", "a"] {
        assert_eq!(post_to(server.addr, feed, feed, None).await.status, 201);
    }
    let patch = server
        .request("PATCH", "/posts/2", &[JSON], br#"{"title":"b!"}"#)
        .await;
    assert_eq!(patch.status, 200);
    assert_eq!(
        server.request("DELETE", "/posts/1", &[], b"").await.status,
        204
    );
    assert_eq!(post_to(server.addr, "main", "end", None).await.status, 201);

    let seqs = |changes: Vec<crate::common::view::Change>| -> Vec<(String, u64)> {
        changes
            .into_iter()
            .map(|c| (c.event.clone(), c.seq()))
            .collect()
    };
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(both.change().await);
    }
    let s = |e: &str, n| (e.to_owned(), n);
    assert_eq!(
        seqs(got),
        vec![
            s("newPost", 1),
            s("newPost", 2),
            s("newPost", 5),
            s("postUpdated", 6),
            s("postDeleted", 7)
        ]
    );
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(main.change().await);
    }
    assert_eq!(seqs(got), vec![s("newPost", 4), s("newPost", 8)]);
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(next_change(&mut sse).await);
    }
    assert_eq!(seqs(got), vec![s("newPost", 2), s("postUpdated", 6)]);
    let mut sio_seqs = Vec::new();
    for _ in 0..3 {
        let packet = sio.packet().await;
        let array: Value = serde_json::from_str(packet.strip_prefix("42").unwrap()).unwrap();
        sio_seqs.push((
            array[0].as_str().unwrap().to_owned(),
            array[1]["seq"].as_u64().unwrap(),
        ));
    }
    assert_eq!(
        sio_seqs,
        vec![s("newPost", 1), s("newPost", 5), s("postDeleted", 7)]
    );
    // Nothing else reached the sse client of b before the end post (a
    // change to main) — the next event it sees is a keep-alive or nothing.
    let resumed = Ws::connect(server.addr, "?feeds=b&since=0").await;
    drop(resumed);
}

/// One `since` resumes a subscription to several feeds while posts keep
/// arriving in other feeds too: the view equals the server's state of
/// those feeds.
#[async_std::test]
async fn one_since_resumes_several_feeds_under_concurrent_posts() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let writers: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|feed| {
            async_std::task::spawn(async move {
                for i in 0..40 {
                    let res = post_to(addr, feed, &format!("{feed} {i}"), None).await;
                    assert_eq!(res.status, 201);
                    if i % 7 == 3 {
                        let id = res.json()["id"].as_u64().unwrap();
                        let path = format!("/posts/{id}");
                        crate::common::request(
                            addr,
                            "PATCH",
                            &path,
                            &[JSON],
                            br#"{"content":"edited"}"#,
                        )
                        .await;
                    }
                    if i % 11 == 5 {
                        let id = res.json()["id"].as_u64().unwrap();
                        crate::common::request(addr, "DELETE", &format!("/posts/{id}"), &[], b"")
                            .await;
                    }
                }
            })
        })
        .collect();
    let mut view = View::default();
    for round in 0..3 {
        let mut ws = Ws::connect(addr, &format!("?feeds=a,b&since={}", view.seq)).await;
        ws.welcome_data().await;
        for _ in 0..(10 + round * 5) {
            let change = ws.change().await;
            let feed = change.data["post"]["feed"].as_str().map(str::to_owned);
            assert!(
                feed.as_deref() != Some("c"),
                "a change of feed c: {change:?}"
            );
            view.apply(&change);
        }
    }
    for writer in writers {
        within(writer).await;
    }
    // Catch up to the end, marked by a last post in a.
    let end = post_to(addr, "a", "end", None).await.json()["id"]
        .as_u64()
        .unwrap();
    let mut ws = Ws::connect(addr, &format!("?feeds=a,b&since={}", view.seq)).await;
    ws.welcome_data().await;
    loop {
        let change = ws.change().await;
        let done = change.post_id() == end;
        view.apply(&change);
        if done {
            break;
        }
    }
    let mut truth = BTreeMap::new();
    for feed in ["a", "b"] {
        let page = server
            .get(&format!("/feeds/{feed}/posts?limit=100"))
            .await
            .json();
        for post in page["posts"].as_array().unwrap() {
            truth.insert(post["id"].as_u64().unwrap(), post.clone());
        }
    }
    assert_eq!(view.posts, truth);
}

#[async_std::test]
async fn a_subscription_follows_at_most_100_feeds() {
    let server = TestServer::start().await;
    let names = |n: usize| (0..n).map(|i| format!("f{i}")).collect::<Vec<_>>();
    let hundred = names(100).join(",");
    let mut ws = server.ws(&format!("?feeds={hundred}")).await;
    ws.welcome_data().await;
    let many = names(101).join(",");
    for path in [
        format!("/ws?feeds={many}"),
        "/ws?feeds=UP".to_owned(),
        "/ws?feeds=".to_owned(),
    ] {
        let res = upgrade_request(server.addr, &path, &[]).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (400, "invalid_feed"),
            "{path}"
        );
    }
    let res = server.get(&format!("/events?feeds={many}")).await;
    assert_eq!(
        (res.status, res.error_code().as_str()),
        (400, "invalid_feed")
    );
    let feeds: Vec<String> = names(101);
    let auth = json!({ "feeds": feeds }).to_string();
    let (mut sio, _) = SioWs::open(server.addr).await;
    sio.send(&format!("40{auth}")).await;
    let refused = sio.packet().await;
    let refused: Value =
        serde_json::from_str(refused.strip_prefix("44").expect("CONNECT_ERROR")).unwrap();
    assert_eq!(refused["data"]["code"], "invalid_feed", "{refused}");
}

/// Every token case on every transport.
#[async_std::test]
async fn private_feeds_need_a_token_that_covers_them() {
    let secret = "sh";
    let server = TestServer::start_with(|c| {
        c.publish_token = Some("operator".into());
        c.jwt_secret = Some(secret.into());
    })
    .await;
    let addr = server.addr;
    let op = Some("operator");
    assert_eq!(
        post_to(addr, "private-team-a", "secret", op).await.status,
        201
    ); // 1
    assert_eq!(post_to(addr, "main", "public", op).await.status, 201); // 2

    let reader = jwt(
        secret,
        json!({"sub": "ada", "subscribe": ["private-team-*"]}),
        60,
    );
    let writer = jwt(
        secret,
        json!({"subscribe": ["private-team-a"], "publish": ["private-team-a"]}),
        60,
    );
    let other = jwt(secret, json!({"subscribe": ["private-b"]}), 60);
    let expired = jwt(secret, json!({"subscribe": ["*"]}), -10);
    let forged = jwt("not-the-secret", json!({"subscribe": ["*"]}), 60);

    // Reading the feed's page.
    let cases = [
        (None, 401),
        (Some(expired.as_str()), 401),
        (Some(forged.as_str()), 401),
        (Some("garbage"), 401),
        (Some(other.as_str()), 403),
        (Some(reader.as_str()), 200),
        (op, 200),
    ];
    for (token, status) in cases {
        let res = get_as(addr, "/feeds/private-team-a/posts", token).await;
        assert_eq!(res.status, status, "{token:?}: {}", res.text());
        // The same answer before any websocket upgrade, and for SSE.
        let query = token.map(|t| format!("&token={t}")).unwrap_or_default();
        let path = format!("/ws?feeds=private-team-a{query}");
        let res = upgrade_request(addr, &path, &[]).await;
        let want = if status == 200 { 101 } else { status };
        assert_eq!(res.status, want, "ws {token:?}");
        let sse = format!("/events?feeds=private-team-a{query}");
        if status == 200 {
            within(Api::at(addr).events_at(&sse, None))
                .await
                .unwrap_or_else(|e| panic!("sse {token:?}: {e}"));
        } else {
            assert_eq!(
                get_as(addr, &sse, None).await.status,
                status,
                "sse {token:?}"
            );
        }
        // Socket.IO: a CONNECT_ERROR with the same code.
        let auth = match token {
            Some(t) => json!({"feeds": ["private-team-a"], "token": t}),
            None => json!({"feeds": ["private-team-a"]}),
        };
        let (mut sio, _) = SioWs::open(addr).await;
        sio.send(&format!("40{auth}")).await;
        let reply = sio.packet().await;
        match status {
            200 => assert!(reply.starts_with("40{"), "{reply}"),
            401 | 403 => {
                let refused: Value =
                    serde_json::from_str(reply.strip_prefix("44").unwrap()).unwrap();
                let code = if status == 401 {
                    "unauthorized"
                } else {
                    "forbidden"
                };
                assert_eq!(refused["data"]["code"], code, "{token:?}: {refused}");
            }
            _ => unreachable!(),
        }
    }
    // A private post does not exist for who may not read it; a reader may
    // not write; a writer may.
    for token in [None, Some(other.as_str())] {
        assert_eq!(get_as(addr, "/posts/1", token).await.status, 404);
    }
    assert_eq!(get_as(addr, "/posts/1", Some(&reader)).await.status, 200);
    let edit = |token: String| async move {
        let bearer = format!("Bearer {token}");
        let headers = [JSON, ("Authorization", bearer.as_str())];
        crate::common::request(addr, "PATCH", "/posts/1", &headers, br#"{"title":"x"}"#)
            .await
            .status
    };
    assert_eq!(edit(other.clone()).await, 404);
    assert_eq!(edit(reader.clone()).await, 403);
    assert_eq!(edit(writer.clone()).await, 200);
    assert_eq!(
        post_to(addr, "private-team-a", "more", Some(&reader))
            .await
            .status,
        403
    );
    assert_eq!(
        post_to(addr, "private-team-a", "more", Some(&writer))
            .await
            .status,
        201
    );
    assert_eq!(
        post_to(addr, "private-team-a", "more", None).await.status,
        401
    );
    // The public feed: a publish token is set, so writing needs it or a
    // JWT allowing it.
    assert_eq!(post_to(addr, "main", "x", None).await.status, 401);
    assert_eq!(post_to(addr, "main", "x", Some(&writer)).await.status, 403);
    // GET /feeds shows private feeds only to who may read them.
    let listed = |token| async move {
        let feeds = get_as(addr, "/feeds", token).await.json();
        feeds["feeds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(None).await, vec!["main"]);
    assert_eq!(listed(Some(other.as_str())).await, vec!["main"]);
    assert_eq!(
        listed(Some(reader.as_str())).await,
        vec!["main", "private-team-a"]
    );
    // A subscriber of the private feed gets its changes live.
    let mut ws = Ws::connect(addr, &format!("?feeds=private-team-a,main&token={reader}")).await;
    ws.welcome_data().await;
    assert_eq!(
        post_to(addr, "private-team-a", "live", Some(&writer))
            .await
            .status,
        201
    );
    assert_eq!(ws.change().await.data["post"]["title"], "live");
}

/// Without `--jwt-secret`, private feeds are the publish token's alone.
#[async_std::test]
async fn without_a_jwt_secret_private_feeds_are_the_operators() {
    let server = TestServer::start_with(|c| c.publish_token = Some("operator".into())).await;
    let addr = server.addr;
    assert_eq!(
        post_to(addr, "private-x", "t", Some("operator"))
            .await
            .status,
        201
    );
    assert_eq!(
        get_as(addr, "/feeds/private-x/posts", Some("operator"))
            .await
            .status,
        200
    );
    for token in [None, Some("a.b.c")] {
        let res = get_as(addr, "/feeds/private-x/posts", token).await;
        assert_eq!(
            (res.status, res.error_code().as_str()),
            (403, "forbidden"),
            "{token:?}"
        );
        assert_eq!(get_as(addr, "/posts/1", token).await.status, 404);
    }
    let res = upgrade_request(addr, "/ws?feeds=private-x", &[]).await;
    assert_eq!(res.status, 403);
    let open = TestServer::start().await;
    assert_eq!(post_to(open.addr, "private-x", "t", None).await.status, 403);
}

/// A replay of one feed that ends below the newest change (which is in
/// another feed) still delivers its last frame at once, not with the next
/// heartbeat or live change.
#[async_std::test]
async fn a_replay_ending_before_the_newest_change_is_delivered_at_once() {
    let server = TestServer::start_with(|c| {
        c.heartbeat_interval = std::time::Duration::from_secs(3600);
    })
    .await;
    assert_eq!(post_to(server.addr, "ops", "o", None).await.status, 201);
    assert_eq!(post_to(server.addr, "other", "x", None).await.status, 201);
    let mut ws = server.ws("?feeds=ops&since=0").await;
    ws.welcome_data().await;
    let change = ws.change().await;
    assert_eq!((change.event.as_str(), change.post_id()), ("newPost", 1));
}
