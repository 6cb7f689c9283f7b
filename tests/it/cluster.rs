//! Cluster mode against a real `redis-server`: several livefeed nodes share
//! one post log; every client on every node must see the same ids, once
//! each, ascending, through node crashes and a Redis outage.
//!
//! Each test starts its own `redis-server` (from `PATH`) on a free port,
//! with a temp dir and AOF (`appendfsync always`), and its nodes on
//! ephemeral ports with temp data dirs: in-process servers, plus a real
//! `livefeed` process where a test needs `kill -9`. Without `redis-server`
//! the tests are skipped with a message, except under `CI=true`, where that
//! is a failure.
//!
//! Ground truth is the stream itself, read with livefeed's own RESP client:
//! every acknowledged post must be in it, and every client's sequence must
//! be exactly its ids.

use crate::common::redis::{redis_server, Redis, CLUSTER_WAIT as WAIT};
use crate::common::sio::SioWs;
use crate::common::ws::Recorder;
use crate::common::{self, wait_until_for, Api, ClientError, Request};
use async_std::future::timeout;
use async_std::task;
use livefeed::cluster::resp::RedisUrl;
use livefeed::{Config, Handle};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader as StdBufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Pause of a poster after a failed create, so an outage is not a busy loop.
const RETRY_PAUSE: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------- nodes --

pub(crate) fn node_config(redis: &Redis, dir: &Path) -> Config {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), dir);
    config.cluster.redis_url = Some(RedisUrl::parse(&redis.url()).unwrap());
    config
}

/// An in-process node.
pub(crate) fn spawn_node(redis: &Redis, dir: &Path) -> Handle {
    Handle::spawn(node_config(redis, dir)).expect("node starts")
}

/// A node in its own `livefeed` process, so that it can be killed with -9.
pub(crate) struct ProcessNode {
    pub(crate) addr: SocketAddr,
    child: Child,
}

impl ProcessNode {
    pub(crate) fn spawn(redis: &Redis, dir: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_livefeed"))
            .args(["--addr", "127.0.0.1:0", "--log-format", "pretty"])
            .arg("--data-dir")
            .arg(dir)
            .args(["--redis-url", &redis.url()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("livefeed starts");
        // The log says where it listens; keep draining it afterwards so the
        // node never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in StdBufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                tx.send(line).ok();
            }
        });
        let deadline = Instant::now() + WAIT;
        let mut log = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(left) else {
                panic!(
                    "the node did not log its address; it wrote:\n{}",
                    log.join("\n")
                );
            };
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                break addr.parse().unwrap();
            }
            log.push(line);
        };
        Self { addr, child }
    }

    pub(crate) fn kill9(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for ProcessNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Two nodes on their own data dirs, both ready; the dirs live as long as
/// the returned guard.
pub(crate) async fn two_ready_nodes(redis: &Redis) -> (Handle, Handle, [tempfile::TempDir; 2]) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = spawn_node(redis, dirs[0].path());
    let b = spawn_node(redis, dirs[1].path());
    wait_ready(a.addr).await;
    wait_ready(b.addr).await;
    (a, b, dirs)
}

/// Waits for `/readyz` to answer 200.
pub(crate) async fn wait_ready(addr: SocketAddr) {
    wait_until_for(WAIT, "node ready", || async move {
        matches!(http(addr, "GET", "/readyz", None).await, Ok((200, _)))
    })
    .await;
}

// ----------------------------------------------------------------- http --

/// One request with a JSON body (empty without `body`) through the tests'
/// API client: `(status, body)`; a killed node is an error, not a panic.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), ClientError> {
    let request = Request::new(method, path)
        .header("Content-Type", "application/json")
        .body(body.unwrap_or("").as_bytes());
    let response = Api::at(addr).send(&request).await?;
    Ok((response.status, response.text()))
}

async fn metric(addr: SocketAddr, name: &str) -> u64 {
    common::metric(addr, name).await
}

// ---------------------------------------------------------------- load --

/// What concurrent posters saw.
#[derive(Default)]
struct Load {
    /// Ids of acknowledged (201) posts.
    acked: Mutex<Vec<u64>>,
    /// 503 answers, and the last 503 body.
    unavailable: AtomicUsize,
    last_unavailable: Mutex<String>,
    /// Connection failures (a killed node).
    failed: AtomicUsize,
    /// Creates whose immediate read-back on the same node failed.
    unread: AtomicUsize,
    /// Any other answer.
    unexpected: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Load {
    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    async fn wait_acked(&self, n: usize) {
        wait_until_for(WAIT, &format!("{n} acknowledged posts"), || async move {
            self.acked() >= n
        })
        .await;
    }

    fn sorted_acked(&self) -> Vec<u64> {
        let mut ids = self.acked.lock().unwrap().clone();
        ids.sort_unstable();
        ids
    }
}

/// Where posters send creates; a restarted node gets a new address.
type Targets = Arc<RwLock<Vec<SocketAddr>>>;

/// `tasks` posters, each creating posts on random nodes until `load.stop`
/// or, with `each`, after that many attempts. Every 201 is read back at
/// once from the node that answered.
fn start_posters(
    tasks: usize,
    each: Option<usize>,
    targets: Targets,
    load: Arc<Load>,
) -> Vec<task::JoinHandle<()>> {
    (0..tasks)
        .map(|t| {
            let targets = targets.clone();
            let load = load.clone();
            task::spawn(async move {
                let mut n = 0;
                while !load.stop.load(Ordering::Relaxed) && each.is_none_or(|e| n < e) {
                    n += 1;
                    let addr = {
                        let targets = targets.read().unwrap();
                        targets[fastrand::usize(..targets.len())]
                    };
                    let body = format!(r#"{{"title":"post {t}.{n}","content":"from poster {t}"}}"#);
                    match http(addr, "POST", "/posts", Some(&body)).await {
                        Ok((201, created)) => {
                            let post: Json = serde_json::from_str(&created).unwrap();
                            let id = post["id"].as_u64().unwrap();
                            load.acked.lock().unwrap().push(id);
                            let path = format!("/posts/{id}");
                            match http(addr, "GET", &path, None).await {
                                Ok((200, read)) if read == created => {}
                                _ => {
                                    load.unread.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                        Ok((503, error)) => {
                            load.unavailable.fetch_add(1, Ordering::Relaxed);
                            *load.last_unavailable.lock().unwrap() = error;
                            task::sleep(RETRY_PAUSE).await;
                        }
                        Ok((status, other)) => {
                            load.unexpected
                                .lock()
                                .unwrap()
                                .push(format!("{status} {other}"));
                        }
                        Err(_) => {
                            load.failed.fetch_add(1, Ordering::Relaxed);
                            task::sleep(RETRY_PAUSE).await;
                        }
                    }
                }
            })
        })
        .collect()
}

async fn stop_posters(load: &Load, posters: Vec<task::JoinHandle<()>>) {
    load.stop.store(true, Ordering::Relaxed);
    for poster in posters {
        timeout(WAIT, poster).await.expect("posters stop");
    }
    assert!(
        load.unexpected.lock().unwrap().is_empty(),
        "unexpected answers: {:?}",
        load.unexpected.lock().unwrap()
    );
}

// --------------------------------------------------------------- checks --

fn ids(posts: &[(u64, Json)]) -> Vec<u64> {
    posts.iter().map(|(id, _)| *id).collect()
}

/// Every acknowledged post is in the stream.
fn assert_all_acked_in(truth: &[(u64, Json)], load: &Load) {
    let truth = ids(truth);
    let missing: Vec<_> = load
        .sorted_acked()
        .into_iter()
        .filter(|id| truth.binary_search(id).is_err())
        .collect();
    assert!(missing.is_empty(), "acknowledged posts lost: {missing:?}");
}

/// A client saw exactly the stream's posts (all of them, or those after
/// `since`), once each, in order, byte for byte the same.
fn assert_saw_exactly(who: &str, got: &[Json], truth: &[(u64, Json)], since: u64) {
    let want: Vec<&Json> = truth
        .iter()
        .filter(|(id, _)| *id > since)
        .map(|(_, p)| p)
        .collect();
    let got_ids: Vec<_> = got.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    let want_ids: Vec<_> = want.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(got_ids, want_ids, "{who}: wrong id sequence");
    assert!(
        got.iter().zip(&want).all(|(g, w)| g == *w),
        "{who}: a post differs from the log"
    );
}

// ---------------------------------------------------------------- tests --

#[async_std::test]
async fn three_nodes_deliver_one_global_order_to_every_client() {
    let Some(bin) = redis_server() else { return };
    let redis = Redis::start(bin).await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes: Vec<Handle> = dirs.iter().map(|d| spawn_node(&redis, d.path())).collect();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    for &addr in &addrs {
        wait_ready(addr).await;
    }
    let (status, health) = http(addrs[0], "GET", "/healthz", None).await.unwrap();
    assert_eq!(status, 200);
    assert!(health.contains(r#""mode":"cluster""#), "{health}");

    let mut clients = Vec::new();
    for &addr in &addrs {
        for _ in 0..3 {
            clients.push(Recorder::connect(addr, None).await);
        }
    }
    let load = Arc::new(Load::default());
    let targets: Targets = Arc::new(RwLock::new(addrs.clone()));
    let posters = start_posters(8, Some(40), targets, load.clone());
    for poster in posters {
        timeout(WAIT, poster).await.expect("posters finish");
    }
    assert_eq!(load.acked(), 320, "every create acknowledged");
    assert_eq!(load.unread.load(Ordering::Relaxed), 0, "read-your-writes");
    assert!(load.unexpected.lock().unwrap().is_empty());

    let truth = redis.stream().await;
    assert_eq!(
        ids(&truth),
        load.sorted_acked(),
        "the log is the acked posts"
    );
    let last = truth.last().unwrap().0;
    for (i, mut client) in clients.into_iter().enumerate() {
        client.read_through(last).await;
        let posts = client.close().await;
        assert_saw_exactly(&format!("client {i}"), &posts, &truth, 0);
    }
    let mut pages = Vec::new();
    for &addr in &addrs {
        assert_eq!(metric(addr, "livefeed_cluster_applied_id").await, last);
        assert_eq!(metric(addr, "livefeed_cluster_lag").await, 0);
        pages.push(http(addr, "GET", "/posts?limit=100", None).await.unwrap());
    }
    assert!(pages.windows(2).all(|w| w[0] == w[1]), "replicas differ");

    // A node that joins late starts empty: once it says it is ready it has
    // the whole log, and serves it like the others.
    let late_dir = tempfile::tempdir().unwrap();
    let late = spawn_node(&redis, late_dir.path());
    wait_ready(late.addr).await;
    assert_eq!(metric(late.addr, "livefeed_cluster_applied_id").await, last);
    let page = http(late.addr, "GET", "/posts?limit=100", None)
        .await
        .unwrap();
    assert_eq!(page, pages[0], "the late node's replica differs");
    late.shutdown().await.unwrap();
    for node in nodes {
        node.shutdown().await.unwrap();
    }
}

#[async_std::test]
async fn a_client_resumes_on_another_node_without_gap_or_duplicate() {
    let Some(bin) = redis_server() else { return };
    let redis = Redis::start(bin).await;
    let (a, b, _dirs) = two_ready_nodes(&redis).await;

    let mut on_a = Recorder::connect(a.addr, None).await;
    let load = Arc::new(Load::default());
    let targets: Targets = Arc::new(RwLock::new(vec![a.addr, b.addr]));
    let posters = start_posters(4, None, targets, load.clone());

    on_a.read_count(30).await;
    let seen = on_a.close().await;
    let since = seen.last().unwrap()["id"].as_u64().unwrap();
    // Posts go on while the client is away.
    load.wait_acked(load.acked() + 30).await;
    let mut on_b = Recorder::connect(b.addr, Some(since)).await;
    load.wait_acked(load.acked() + 100).await;
    stop_posters(&load, posters).await;

    let truth = redis.stream().await;
    assert_all_acked_in(&truth, &load);
    on_b.read_through(truth.last().unwrap().0).await;
    let mut all = seen;
    all.extend(on_b.close().await);
    assert_saw_exactly("resumed client", &all, &truth, 0);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[async_std::test]
async fn a_node_killed_mid_load_catches_up_and_its_clients_resume() {
    let Some(bin) = redis_server() else { return };
    let redis = Redis::start(bin).await;
    let (dir_a, dir_c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = spawn_node(&redis, dir_a.path());
    let mut c = ProcessNode::spawn(&redis, dir_c.path());
    wait_ready(a.addr).await;
    wait_ready(c.addr).await;

    let mut on_a = Recorder::connect(a.addr, None).await;
    let mut on_c: Vec<Recorder> = Vec::new();
    for _ in 0..2 {
        on_c.push(Recorder::connect(c.addr, None).await);
    }
    let load = Arc::new(Load::default());
    let targets: Targets = Arc::new(RwLock::new(vec![a.addr, c.addr]));
    let posters = start_posters(4, None, targets.clone(), load.clone());

    load.wait_acked(60).await;
    for client in &mut on_c {
        client.read_count(10).await;
    }
    c.kill9();
    let seen: Vec<Vec<Json>> = on_c.into_iter().map(|client| client.posts).collect();
    // Creates go on (those sent to the dead node fail).
    load.wait_acked(load.acked() + 50).await;

    let c = ProcessNode::spawn(&redis, dir_c.path());
    targets.write().unwrap()[1] = c.addr;
    wait_ready(c.addr).await;
    let mut resumed = Vec::new();
    for posts in &seen {
        let since = posts.last().unwrap()["id"].as_u64().unwrap();
        resumed.push(Recorder::connect(c.addr, Some(since)).await);
    }
    load.wait_acked(load.acked() + 60).await;
    stop_posters(&load, posters).await;

    let truth = redis.stream().await;
    assert_all_acked_in(&truth, &load);
    let last = truth.last().unwrap().0;
    on_a.read_through(last).await;
    assert_saw_exactly("client on A", &on_a.close().await, &truth, 0);
    for (i, (mut before, mut client)) in seen.into_iter().zip(resumed).enumerate() {
        client.read_through(last).await;
        before.extend(client.close().await);
        assert_saw_exactly(
            &format!("client {i} of the killed node"),
            &before,
            &truth,
            0,
        );
    }
    // The restarted node serves every post from its own replica.
    assert_eq!(metric(c.addr, "livefeed_cluster_applied_id").await, last);
    for (id, post) in &truth {
        let (status, body) = http(c.addr, "GET", &format!("/posts/{id}"), None)
            .await
            .unwrap();
        assert_eq!(status, 200, "post {id} on the restarted node");
        assert_eq!(&serde_json::from_str::<Json>(&body).unwrap(), post);
    }
    a.shutdown().await.unwrap();
}

#[async_std::test]
async fn a_redis_outage_fails_creates_and_loses_nothing_acknowledged() {
    let Some(bin) = redis_server() else { return };
    let mut redis = Redis::start(bin).await;
    let (a, b, _dirs) = two_ready_nodes(&redis).await;

    let mut clients = vec![
        Recorder::connect(a.addr, None).await,
        Recorder::connect(b.addr, Some(0)).await,
    ];
    let load = Arc::new(Load::default());
    let targets: Targets = Arc::new(RwLock::new(vec![a.addr, b.addr]));
    let posters = start_posters(4, None, targets, load.clone());

    load.wait_acked(60).await;
    redis.kill();
    let failed_before = load.unavailable.load(Ordering::Relaxed);
    wait_until_for(WAIT, "503s while Redis is down", || {
        let load = load.clone();
        async move { load.unavailable.load(Ordering::Relaxed) >= failed_before + 5 }
    })
    .await;
    let error: Json = serde_json::from_str(&load.last_unavailable.lock().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "redis_unavailable", "{error}");
    wait_until_for(WAIT, "healthz reports the outage", || async {
        let (_, health) = http(a.addr, "GET", "/healthz", None).await.unwrap();
        health.contains(r#""redis":"disconnected""#)
    })
    .await;
    // Still serving what it has: reads and the open websockets.
    assert_eq!(http(a.addr, "GET", "/posts", None).await.unwrap().0, 200);

    redis.spawn().await;
    load.wait_acked(load.acked() + 60).await;
    stop_posters(&load, posters).await;

    let truth = redis.stream().await;
    assert_all_acked_in(&truth, &load);
    let last = truth.last().unwrap().0;
    for (i, mut client) in clients.drain(..).enumerate() {
        // The same connections as before the outage.
        client.read_through(last).await;
        assert_saw_exactly(&format!("client {i}"), &client.close().await, &truth, 0);
    }
    assert!(metric(a.addr, "livefeed_cluster_redis_errors_total").await > 0);
    assert_eq!(metric(b.addr, "livefeed_cluster_applied_id").await, last);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[async_std::test]
async fn a_node_is_not_ready_until_it_has_caught_up_with_redis() {
    let Some(bin) = redis_server() else { return };
    let mut redis = Redis::unstarted(bin);
    let dir = tempfile::tempdir().unwrap();
    let node = spawn_node(&redis, dir.path());
    // Redis is not there yet: the node serves, but is not ready and
    // refuses creates.
    let (status, health) = http(node.addr, "GET", "/healthz", None).await.unwrap();
    assert_eq!(status, 200);
    assert!(health.contains(r#""state":"connecting""#), "{health}");
    assert_eq!(
        http(node.addr, "GET", "/readyz", None).await.unwrap().0,
        503
    );
    let body = r#"{"title":"t","content":"c"}"#;
    let (status, error) = http(node.addr, "POST", "/posts", Some(body)).await.unwrap();
    assert_eq!(status, 503, "{error}");
    assert!(error.contains("redis_unavailable"), "{error}");

    redis.spawn().await;
    wait_ready(node.addr).await;
    let (status, created) = http(node.addr, "POST", "/posts", Some(body)).await.unwrap();
    assert_eq!(status, 201, "{created}");
    let truth = redis.stream().await;
    assert_eq!(
        ids(&truth),
        vec![1],
        "the refused create left nothing behind"
    );
    node.shutdown().await.unwrap();
}

#[async_std::test]
async fn socketio_creates_go_through_the_log_and_reach_every_transport() {
    let Some(bin) = redis_server() else { return };
    let redis = Redis::start(bin).await;
    let (a, b, _dirs) = two_ready_nodes(&redis).await;
    let mut ws_on_b = Recorder::connect(b.addr, None).await;
    let mut sio_on_b = SioWs::connect(b.addr, "").await.0;
    let mut sio_on_a = SioWs::connect(a.addr, "").await.0;

    let body = r#"{"title":"over http","content":"c"}"#;
    assert_eq!(
        http(b.addr, "POST", "/posts", Some(body)).await.unwrap().0,
        201
    );
    sio_on_a
        .send(r#"421["createPost",{"title":"over socket.io","content":"c"}]"#)
        .await;
    let created = loop {
        let packet = sio_on_a.packet().await;
        if let Some(ack) = packet.strip_prefix("431") {
            let args: Vec<Json> = serde_json::from_str(ack).unwrap();
            break args[0]["post"].clone();
        }
    };
    assert_eq!(created["title"], "over socket.io");
    assert_eq!(
        http(a.addr, "POST", "/posts", Some(body)).await.unwrap().0,
        201
    );

    let truth = redis.stream().await;
    assert_eq!(ids(&truth).len(), 3);
    assert_eq!(truth[1].1, created, "the Socket.IO create is in the log");
    ws_on_b.read_through(truth[2].0).await;
    assert_saw_exactly("/ws client", &ws_on_b.close().await, &truth, 0);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(sio_on_b.next_post().await);
    }
    assert_saw_exactly("Socket.IO client", &seen, &truth, 0);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
