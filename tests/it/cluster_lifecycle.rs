//! Edits and deletes in cluster mode: they go through the shared log like
//! creates, so every node applies them in one order, checks (404, 412)
//! hold across nodes, and a node that restarts catches up on them.

use crate::cluster::{http, spawn_node, two_ready_nodes, wait_ready, ProcessNode};
use crate::common::redis::{redis_server, Redis};
use crate::common::view::{server_state, View};
use crate::common::{within, Request, Ws};
use livefeed::feed::Logged;
use std::net::SocketAddr;

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> crate::common::Response {
    let mut request = Request::new(method, path).body(body.as_bytes());
    for (k, v) in headers {
        request = request.header(k, v);
    }
    within(crate::common::Api::at(addr).send(&request))
        .await
        .unwrap()
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[async_std::test]
async fn edits_and_deletes_go_through_the_log_on_every_node() {
    let Some(bin) = redis_server() else { return };
    let redis = Redis::start(bin).await;
    let (a, b, _dirs) = two_ready_nodes(&redis).await;
    let mut on_a = Ws::connect(a.addr, "").await;
    let mut on_b = Ws::connect(b.addr, "").await;
    on_a.welcome_data().await;
    on_b.welcome_data().await;

    let (status, _) = http(
        a.addr,
        "POST",
        "/posts",
        Some(r#"{"title":"t","content":"c"}"#),
    )
    .await
    .unwrap();
    assert_eq!(status, 201);
    let (status, _) = http(
        a.addr,
        "POST",
        "/posts",
        Some(r#"{"title":"u","content":"c"}"#),
    )
    .await
    .unwrap();
    assert_eq!(status, 201);
    // Edited on B, read back on B at once (the node waits for its replica).
    let edited = request(
        b.addr,
        "PATCH",
        "/posts/1",
        &[JSON, ("If-Match", "\"1\"")],
        r#"{"title":"T"}"#,
    )
    .await;
    assert_eq!(
        (edited.status, edited.header("etag")),
        (200, Some("\"3\"")),
        "{}",
        edited.text()
    );
    assert_eq!(edited.json()["title"], "T");
    let read = request(b.addr, "GET", "/posts/1", &[], "").await;
    assert_eq!(read.json(), edited.json());
    // If-Match is checked against the log, whichever node answers.
    let stale = request(
        a.addr,
        "PATCH",
        "/posts/1",
        &[JSON, ("If-Match", "\"1\"")],
        r#"{"title":"x"}"#,
    )
    .await;
    assert_eq!(
        (stale.status, stale.error_code().as_str()),
        (412, "precondition_failed")
    );
    let stale = request(a.addr, "DELETE", "/posts/1", &[("If-Match", "\"1\"")], "").await;
    assert_eq!(stale.status, 412);
    // Deleted on A: gone on both, and 404 to a second delete on B.
    assert_eq!(
        request(a.addr, "DELETE", "/posts/2", &[], "").await.status,
        204
    );
    assert_eq!(
        request(a.addr, "GET", "/posts/2", &[], "").await.status,
        404
    );
    let again = request(b.addr, "DELETE", "/posts/2", &[], "").await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (404, "not_found")
    );
    let gone = request(b.addr, "PATCH", "/posts/2", &[JSON], r#"{"title":"x"}"#).await;
    assert_eq!(gone.status, 404);
    assert_eq!(
        request(b.addr, "PATCH", "/posts/99", &[JSON], r#"{"title":"x"}"#)
            .await
            .status,
        404
    );

    // Both nodes' clients saw the same changes in the same order, the
    // stream holds exactly them, and the nodes agree.
    let expected = [
        ("newPost", 1, 1),
        ("newPost", 2, 2),
        ("postUpdated", 3, 1),
        ("postDeleted", 4, 2),
    ];
    for ws in [&mut on_a, &mut on_b] {
        for (event, seq, id) in expected {
            let change = ws.change().await;
            assert_eq!(
                (change.event.as_str(), change.seq(), change.post_id()),
                (event, seq, id)
            );
        }
    }
    let log: Vec<(u64, u64)> = redis
        .changes()
        .await
        .iter()
        .map(|c| (c.seq(), c.post_id()))
        .collect();
    assert_eq!(log, vec![(1, 1), (2, 2), (3, 1), (4, 2)]);
    assert!(matches!(
        redis.changes().await[3],
        Logged::Deleted { id: 2, seq: 4 }
    ));
    assert_eq!(server_state(a.addr).await, server_state(b.addr).await);
}

/// Both nodes edit one post as fast as they can: every edit lands once, in
/// one order (a node whose replica is behind catches up and builds again),
/// and every replica ends identical.
#[async_std::test]
async fn concurrent_edits_from_several_nodes_converge() {
    let Some(bin) = redis_server() else { return };
    let redis = Redis::start(bin).await;
    let (a, b, _dirs) = two_ready_nodes(&redis).await;
    let (status, _) = http(
        a.addr,
        "POST",
        "/posts",
        Some(r#"{"title":"t","content":"c"}"#),
    )
    .await
    .unwrap();
    assert_eq!(status, 201);
    let editors: Vec<_> = [a.addr, b.addr, a.addr, b.addr]
        .into_iter()
        .enumerate()
        .map(|(e, addr)| {
            async_std::task::spawn(async move {
                for i in 0..15 {
                    let body = format!(r#"{{"content":"editor {e} edit {i}"}}"#);
                    let res = request(addr, "PATCH", "/posts/1", &[JSON], &body).await;
                    assert_eq!(res.status, 200, "{}", res.text());
                }
            })
        })
        .collect();
    for editor in editors {
        within(editor).await;
    }
    let log = redis.changes().await;
    assert_eq!(log.len(), 61, "one create and 60 edits");
    // Both replicas end on the last edit, byte for byte the same post.
    let mut served = Vec::new();
    for node in [a.addr, b.addr] {
        crate::common::wait_until("the node applied the last edit", || async {
            request(node, "GET", "/posts/1", &[], "")
                .await
                .header("etag")
                == Some("\"61\"")
        })
        .await;
        served.push(request(node, "GET", "/posts/1", &[], "").await.text());
    }
    assert_eq!(served[0], served[1]);
    let Logged::Updated { patch, .. } = &log[60] else {
        panic!("the last entry is an edit: {:?}", log[60]);
    };
    let last: serde_json::Value = serde_json::from_str(&served[0]).unwrap();
    assert_eq!(
        Some(last["content"].as_str().unwrap()),
        patch.content.as_deref()
    );
}

/// A node killed after edits and deletes it never saw comes back on its
/// data dir, catches up from the log, and a client resuming there from
/// before gets every change.
#[async_std::test]
async fn a_restarted_node_catches_up_on_edits_and_deletes() {
    let Some(bin) = redis_server() else { return };
    let redis = Redis::start(bin).await;
    let dir = tempfile::tempdir().unwrap();
    let mut node = ProcessNode::spawn(&redis, dir.path());
    wait_ready(node.addr).await;
    for title in ["a", "b", "c"] {
        let body = format!(r#"{{"title":"{title}","content":"c"}}"#);
        assert_eq!(
            http(node.addr, "POST", "/posts", Some(&body))
                .await
                .unwrap()
                .0,
            201
        );
    }
    node.kill9();
    // Meanwhile another node edits and deletes.
    let other_dir = tempfile::tempdir().unwrap();
    let other = spawn_node(&redis, other_dir.path());
    wait_ready(other.addr).await;
    assert_eq!(
        request(other.addr, "PATCH", "/posts/1", &[JSON], r#"{"title":"A"}"#)
            .await
            .status,
        200
    );
    assert_eq!(
        request(other.addr, "DELETE", "/posts/2", &[], "")
            .await
            .status,
        204
    );
    let node = ProcessNode::spawn(&redis, dir.path());
    wait_ready(node.addr).await;
    assert_eq!(
        server_state(node.addr).await,
        server_state(other.addr).await
    );
    let mut ws = Ws::connect(node.addr, "?since=3").await;
    assert_eq!(ws.welcome_data().await["lastSeq"], 5);
    let mut view = View {
        seq: 3,
        ..View::default()
    };
    for _ in 0..2 {
        view.apply(&ws.change().await);
    }
    assert_eq!(view.posts.get(&1).unwrap()["title"], "A");
    assert_eq!(view.seq, 5);
}
