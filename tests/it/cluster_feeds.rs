//! Feeds in cluster mode: a post's feed travels with it through the shared
//! log, so every node delivers it to that feed's subscribers only, private
//! feeds are guarded the same on every node, and `GET /feeds` counts the
//! subscribers of the node that answers.

use crate::cluster::{node_config, wait_ready};
use crate::common::redis::{redis_server, Redis};
use crate::common::{jwt, within, Api, Request, Response, Ws};
use livefeed::Handle;
use serde_json::json;
use std::net::SocketAddr;

const SECRET: &str = "cluster-secret";
const OPERATOR: &str = "operator";

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut request = Request::new(method, path)
        .header("Content-Type", "application/json")
        .body(body.as_bytes());
    if let Some(b) = &bearer {
        request = request.header("Authorization", b);
    }
    within(Api::at(addr).send(&request)).await.unwrap()
}

async fn post(addr: SocketAddr, feed: &str, title: &str, token: Option<&str>) -> u64 {
    let body = json!({"title": title, "content": "c"}).to_string();
    let res = send(addr, "POST", &format!("/feeds/{feed}/posts"), token, &body).await;
    assert_eq!(res.status, 201, "{feed}: {}", res.text());
    assert_eq!(res.json()["feed"], feed);
    res.json()["id"].as_u64().unwrap()
}

fn guarded_node(redis: &Redis, dir: &std::path::Path) -> Handle {
    let mut config = node_config(redis, dir);
    config.publish_token = Some(OPERATOR.into());
    config.jwt_secret = Some(SECRET.into());
    Handle::spawn(config).expect("node starts")
}

#[async_std::test]
async fn feeds_and_private_feeds_work_across_nodes() {
    let Some(bin) = redis_server() else { return };
    let redis = Redis::start(bin).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = guarded_node(&redis, dirs[0].path());
    let b = guarded_node(&redis, dirs[1].path());
    wait_ready(a.addr).await;
    wait_ready(b.addr).await;
    let reader = jwt(
        SECRET,
        json!({"sub": "ada", "subscribe": ["private-*"]}),
        60,
    );
    let writer = jwt(
        SECRET,
        json!({"subscribe": ["private-x"], "publish": ["private-x", "team"]}),
        60,
    );

    let mut team_on_a = Ws::connect(a.addr, "?feeds=team").await;
    team_on_a.welcome_data().await;
    let mut private_on_b = Ws::connect(b.addr, &format!("?feeds=private-x&token={reader}")).await;
    private_on_b.welcome_data().await;
    let mut main_on_b = Ws::connect(b.addr, "").await;
    main_on_b.welcome_data().await;

    let team = post(b.addr, "team", "team post", Some(&writer)).await;
    let secret = post(a.addr, "private-x", "secret", Some(&writer)).await;
    let main = post(a.addr, "main", "public", Some(OPERATOR)).await;
    assert!(
        team < secret && secret < main,
        "one id order across feeds and nodes"
    );
    assert_eq!(team_on_a.change().await.post_id(), team);
    assert_eq!(private_on_b.change().await.post_id(), secret);
    assert_eq!(main_on_b.change().await.post_id(), main);
    // The next change each sees is of its own feed too.
    let edited = send(
        b.addr,
        "PATCH",
        &format!("/posts/{secret}"),
        Some(&writer),
        r#"{"title":"s2"}"#,
    )
    .await;
    assert_eq!(edited.status, 200, "{}", edited.text());
    post(a.addr, "team", "team again", Some(&writer)).await;
    let change = private_on_b.change().await;
    assert_eq!(
        (change.event.as_str(), change.post_id()),
        ("postUpdated", secret)
    );
    assert_eq!(team_on_a.change().await.data["post"]["title"], "team again");

    // Private posts stay invisible on the node that did not store them
    // first; writes are checked there too.
    for node in [a.addr, b.addr] {
        let path = format!("/posts/{secret}");
        assert_eq!(send(node, "GET", &path, None, "").await.status, 404);
        assert_eq!(
            send(node, "GET", &path, Some(&reader), "").await.status,
            200
        );
        assert_eq!(
            send(node, "DELETE", &path, Some(&reader), "").await.status,
            403
        );
        let listed = send(node, "GET", "/feeds", None, "").await.json();
        let names: Vec<_> = listed["feeds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].clone())
            .collect();
        assert_eq!(names, vec![json!("main"), json!("team")]);
    }
    // Subscribers are counted per node.
    let subscribers = |addr| async move {
        let listed = send(addr, "GET", "/feeds", Some(OPERATOR), "").await.json();
        listed["feeds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().unwrap().to_owned(),
                    f["subscribers"].as_u64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let s = |n: &str, c| (n.to_owned(), c);
    assert_eq!(
        subscribers(a.addr).await,
        vec![s("main", 0), s("private-x", 0), s("team", 1)]
    );
    assert_eq!(
        subscribers(b.addr).await,
        vec![s("main", 1), s("private-x", 1), s("team", 0)]
    );

    // A resume on the other node replays only the subscribed feed.
    let mut resumed = Ws::connect(b.addr, "?feeds=team&since=0").await;
    resumed.welcome_data().await;
    let first = resumed.change().await;
    let second = resumed.change().await;
    assert_eq!(
        (first.post_id(), second.data["post"]["title"].as_str()),
        (team, Some("team again"))
    );
}
