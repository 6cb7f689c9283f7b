//! A full disk, through the HTTP API: writes are refused with `503
//! storage_unavailable` (and no internal text), `/readyz` says 503,
//! `/healthz` and `/metrics` say storage is failing, reads and push clients
//! go on, and once space is back writes are taken again, in the same
//! process. The failures are injected into the store (`storage_faults`);
//! `tests/disk/run.sh` does the same on a real, full tmpfs.

use crate::common::{wait_until, TestServer};
use livefeed::store::{Faults, Stage};
use serde_json::Value;
use std::sync::Arc;

async fn start(faults: &Arc<Faults>) -> TestServer {
    let faults = faults.clone();
    TestServer::start_with(|c| {
        c.storage_faults = Some(faults);
        c.storage_reserve = 64 << 10;
    })
    .await
}

const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

/// Asserts a 503 `storage_unavailable` with livefeed's own message; the
/// message.
fn storage_unavailable(res: &crate::common::Response) -> String {
    assert_eq!(res.status, 503, "{}", res.text());
    assert_eq!(res.error_code(), "storage_unavailable");
    let message = res.json()["error"]["message"].as_str().unwrap().to_owned();
    for inside in ["os error", "No space", "sled", "StorageFull"] {
        assert!(!message.contains(inside), "internal text: {message}");
    }
    message
}

async fn health(server: &TestServer) -> Value {
    let res = server.get("/healthz").await;
    assert_eq!(res.status, 200);
    res.json()
}

#[async_std::test]
async fn a_full_disk_refuses_writes_keeps_serving_and_recovers_in_process() {
    let faults = Arc::new(Faults::default());
    let server = start(&faults).await;
    let first = server.create("before", "the disk filled up").await;
    assert_eq!(first["id"], 1);
    let mut live = server.ws("").await;
    live.welcome().await;
    assert_eq!(health(&server).await["storage"]["state"], "ok");

    faults.fail(&[Stage::Write, Stage::Reserve]);
    let failed = server
        .post_json(r#"{"title":"during","content":"x"}"#)
        .await;
    assert!(storage_unavailable(&failed).contains("nothing was stored"));
    let edit = server
        .request("PATCH", "/posts/1", JSON, br#"{"title":"x"}"#)
        .await;
    storage_unavailable(&edit);
    storage_unavailable(&server.request("DELETE", "/posts/1", &[], b"").await);
    let feed_post = server
        .request(
            "POST",
            "/feeds/other/posts",
            JSON,
            br#"{"title":"t","content":"c"}"#,
        )
        .await;
    storage_unavailable(&feed_post);

    // Honest about it: not ready, degraded, and the metrics say so.
    let ready = server.get("/readyz").await;
    assert_eq!(
        (ready.status, ready.json()),
        (503, serde_json::json!({"ready": false}))
    );
    let h = health(&server).await;
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["storage"]["state"], "failing");
    assert_eq!(h["storage"]["reason"], "disk_full");
    assert_eq!(server.metric("livefeed_storage_healthy").await, 0);
    assert_eq!(server.metric("livefeed_storage_failures_total").await, 1);

    // Reads and push clients go on.
    let read = server.get("/posts/1").await;
    assert_eq!(read.status, 200);
    assert_eq!(read.json()["title"], "before");
    assert_eq!(server.get("/posts/2").await.status, 404);
    assert_eq!(server.get("/posts").await.json()["posts"][0]["id"], 1);
    let mut resumed = server.ws("?since=0").await;
    resumed.welcome().await;
    assert_eq!(resumed.post_id().await, 1);

    faults.heal();
    wait_until("ready again", || async {
        server.get("/readyz").await.status == 200
    })
    .await;
    let after = server.create("after", "space is back").await;
    // The failed create's id is never given to another post.
    assert_eq!(after["id"], 3);
    assert_eq!(server.get("/posts/2").await.status, 404);
    // Both push clients were connected throughout and get it, and nothing
    // of the failed writes.
    assert_eq!(live.post_id().await, 3);
    assert_eq!(resumed.post_id().await, 3);
    let h = health(&server).await;
    assert_eq!(
        (h["status"].as_str(), h["storage"]["state"].as_str()),
        (Some("ok"), Some("ok"))
    );
    assert_eq!(server.metric("livefeed_storage_healthy").await, 1);

    // After a restart: what got a 201 is there, nothing else.
    let server = server.restart_with(|_| {}).await;
    assert_eq!(server.get("/posts/1").await.json()["title"], "before");
    assert_eq!(server.get("/posts/3").await.json()["title"], "after");
    assert_eq!(server.get("/posts/2").await.status, 404);
    server.stop().await;
}

#[async_std::test]
async fn a_write_that_may_have_been_stored_says_so_and_is_delivered_if_it_was() {
    let faults = Arc::new(Faults::default());
    let server = start(&faults).await;
    server.create("first", "c").await;
    let mut live = server.ws("").await;
    live.welcome().await;

    // The batch reaches sled's file but its fdatasync fails: the store
    // cannot promise it is durable, and says so; it is on disk when the
    // store is reopened, so every reader and push client sees it.
    faults.fail(&[Stage::Sync, Stage::Reserve]);
    let failed = server.post_json(r#"{"title":"maybe","content":"c"}"#).await;
    assert!(storage_unavailable(&failed).contains("may or may not"));
    assert_eq!(live.post_id().await, 2);
    assert_eq!(server.get("/posts/2").await.json()["title"], "maybe");

    faults.heal();
    wait_until("ready again", || async {
        server.get("/readyz").await.status == 200
    })
    .await;
    assert_eq!(server.create("next", "c").await["id"], 3);
    assert_eq!(live.post_id().await, 3);
    server.stop().await;
}

#[async_std::test]
async fn a_store_that_cannot_be_reopened_answers_reads_with_503_until_it_can() {
    let faults = Arc::new(Faults::default());
    let server = start(&faults).await;
    server.create("first", "c").await;
    faults.fail(&[Stage::Write, Stage::Open, Stage::Reserve]);
    storage_unavailable(&server.post_json(r#"{"title":"lost","content":"c"}"#).await);
    assert_eq!(health(&server).await["storage"]["state"], "unavailable");
    storage_unavailable(&server.get("/posts/1").await);
    storage_unavailable(&server.get("/posts").await);

    // The database opens again while the disk is still full: reads first.
    faults.fail(&[Stage::Reserve]);
    wait_until("reads again", || async {
        server.get("/posts/1").await.status == 200
    })
    .await;
    assert_eq!(server.get("/readyz").await.status, 503);
    faults.heal();
    wait_until("ready again", || async {
        server.get("/readyz").await.status == 200
    })
    .await;
    assert_eq!(server.create("next", "c").await["id"], 3);
    server.stop().await;
}

#[async_std::test]
async fn a_cluster_replica_with_a_full_disk_is_not_ready_and_catches_up_from_the_log() {
    use crate::cluster::{http, node_config, wait_ready};
    use crate::common::redis::{redis_server, Redis};
    use crate::common::Ws;
    let Some(bin) = redis_server() else { return };
    let redis = Redis::start(bin).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = livefeed::Handle::spawn(node_config(&redis, dirs[0].path())).unwrap();
    let faults = Arc::new(Faults::default());
    let mut config = node_config(&redis, dirs[1].path());
    config.storage_faults = Some(faults.clone());
    config.storage_reserve = 64 << 10;
    let b = livefeed::Handle::spawn(config).unwrap();
    wait_ready(a.addr).await;
    wait_ready(b.addr).await;
    let body = r#"{"title":"t","content":"c"}"#;
    let create = |addr| async move { http(addr, "POST", "/posts", Some(body)).await.unwrap() };
    assert_eq!(create(a.addr).await.0, 201);
    wait_until("b has post 1", || async {
        http(b.addr, "GET", "/posts/1", None).await.unwrap().0 == 200
    })
    .await;
    let mut on_b = Ws::connect(b.addr, "").await;
    on_b.welcome().await;

    // b's disk fills up: it cannot apply what the others append.
    faults.fail(&[Stage::Write, Stage::Reserve]);
    assert_eq!(create(a.addr).await.0, 201);
    wait_until("b not ready", || async {
        http(b.addr, "GET", "/readyz", None).await.unwrap().0 == 503
    })
    .await;
    let (status, health) = http(b.addr, "GET", "/healthz", None).await.unwrap();
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(
        (status, health["storage"]["state"].as_str()),
        (200, Some("failing"))
    );
    // It takes no writes itself, serves what it has, and stays up for its
    // push clients.
    let (status, error) = create(b.addr).await;
    assert_eq!(status, 503);
    assert!(error.contains("storage_unavailable"), "{error}");
    assert_eq!(http(b.addr, "GET", "/posts/1", None).await.unwrap().0, 200);
    assert_eq!(create(a.addr).await.0, 201);

    // Space is back: b catches up from the log, then is ready again.
    faults.heal();
    wait_ready(b.addr).await;
    assert_eq!(on_b.ids_until(3).await, vec![2, 3]);
    assert_eq!(http(b.addr, "GET", "/posts/3", None).await.unwrap().0, 200);
    let (status, created) = create(b.addr).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(on_b.post_id().await, 4);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
