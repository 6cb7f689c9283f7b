//! Cluster mode: several nodes share one ordered post log in a Redis stream.
//!
//! With `--redis-url`, a node no longer assigns post ids itself.
//! `POST /posts` runs one Lua script on Redis that takes the next id from a
//! counter and appends the post to the stream under entry id `<post id>-0`,
//! atomically; the 201 goes out only after Redis answered. Every node runs a
//! [tailer](tailer) that reads the stream from the last id it applied,
//! writes each post into its local sled store (flushed, through the store's
//! single writer) and only then hands it to its hub. So the stream is the
//! log of record, sled a replica that serves reads and replay, and every
//! client on every node sees the stream's order.
//!
//! Without `--redis-url` none of this is started and the node behaves as a
//! single server. `docs/cluster.md` describes the design, the guarantees
//! and the Redis settings they rely on.
//!
//! Layout:
//! - this file: the flags, [`Cluster`] (publishing, readiness, metrics);
//! - [`tailer`]: the task that replicates the stream into the local store;
//! - [`resp`]: the small Redis client both use.

pub mod resp;
pub mod tailer;

use crate::post::{NewPost, Post};
use crate::store::{Store, StoredPost};
use async_std::task::JoinHandle;
use clap::Args;
use futures::channel::oneshot;
use futures::future::AbortHandle;
use livefeed_actors::Hub;
use resp::{Cmd, Conn, RedisError, RedisUrl, Value};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use xactor::Addr;

/// How long connecting (and authenticating) to Redis may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may take before its connection is given up.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a `POST /posts` waits, after Redis acknowledged the post, for
/// this node's replica to apply it, so that reading it back from the same
/// node works at once. After that the 201 goes out anyway: the post is
/// durable in Redis and will be applied when the tailer catches up.
pub const APPLY_WAIT: Duration = Duration::from_secs(2);
/// Most Redis connections used by concurrent creates at once; more creates
/// wait for one. (Redis makes concurrent appends share an AOF fsync.)
pub const MAX_PUBLISH_CONNECTIONS: usize = 32;

/// The create script: the next id from the counter (`KEYS[2]`), then the
/// post appended to the stream (`KEYS[1]`) as entry `<id>-0` with field
/// `post` = `{"id":<id>,` + `ARGV[1]`, where `ARGV[1]` is the rest of the
/// post's JSON. Redis runs a script atomically, so ids are unique and the
/// stream's order is id order whichever node runs it. If the counter is
/// behind the stream (its key was deleted), it is moved past the stream's
/// newest entry and the append is tried once more; any other failure is
/// returned as an error and nothing is appended.
pub const APPEND_SCRIPT: &str = r#"
local id = redis.call('INCR', KEYS[2])
local function append(n)
  local ids = string.format('%d', n)
  return redis.pcall('XADD', KEYS[1], ids .. '-0', 'post', '{"id":' .. ids .. ',' .. ARGV[1])
end
local added = append(id)
if type(added) == 'table' and added.err then
  local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  local last = top[1] and tonumber(string.match(top[1][1], '^(%d+)'))
  if last == nil or last < id then return added end
  id = last + 1
  redis.call('SET', KEYS[2], id)
  added = append(id)
  if type(added) == 'table' and added.err then return added end
end
return id
"#;

/// Cluster flags.
#[derive(Debug, Clone, Args)]
pub struct ClusterConfig {
    /// Redis holding the shared post log (redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]).
    /// Setting it switches this node to cluster mode; see docs/cluster.md.
    #[arg(long, env = "LIVEFEED_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<RedisUrl>,

    /// The Redis stream that is the post log; the id counter is the key
    /// `<stream>:id`. Every node of one feed uses the same name.
    #[arg(long, env = "LIVEFEED_REDIS_STREAM", default_value = "livefeed:posts")]
    pub redis_stream: String,
}

/// Why a create could not be appended to the log. Each maps to 503.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Redis could not be reached; nothing was sent, nothing stored.
    #[error("Redis is unavailable, the post was not stored: {0}")]
    Unavailable(RedisError),
    /// Redis refused the append (an error reply); nothing was stored.
    #[error("Redis refused the post, it was not stored: {0}")]
    Refused(RedisError),
    /// The connection failed after the append was sent: Redis may or may
    /// not have stored it. If it did, it is delivered like any other post.
    #[error("the connection to Redis failed after the post was sent; it may or may not have been stored: {0}")]
    Uncertain(RedisError),
    /// This node's replica does not match the log; it takes no creates.
    #[error("this node's data does not match the Redis log: {0}")]
    Diverged(String),
}

/// Where this node's replica stands, shared by the tailer, the create
/// route, `/healthz`, `/readyz` and `/metrics`.
#[derive(Debug, Default)]
pub struct Progress {
    /// Newest stream entry applied to the local store and broadcast.
    pub applied: AtomicU64,
    /// Newest entry known to be in the stream.
    pub head: AtomicU64,
    /// Whether the replica has caught up with the stream head seen when the
    /// node started. Stays set afterwards.
    pub ready: AtomicBool,
    /// Whether the tailer's connection to Redis is up.
    pub connected: AtomicBool,
    /// Failed Redis commands and connections (tailer and creates).
    pub redis_errors: AtomicU64,
    /// Stream entries that were not a post and were skipped.
    pub bad_entries: AtomicU64,
    /// Why the replica is refused, when it does not match the log.
    diverged: Mutex<Option<String>>,
    /// Creates waiting for their post to be applied, by post id.
    waiters: Mutex<BTreeMap<u64, Vec<oneshot::Sender<()>>>>,
}

impl Progress {
    /// Records that every entry up to `id` is applied and wakes the creates
    /// waiting for them.
    pub fn set_applied(&self, id: u64) {
        // Stored before the waiters are taken: a waiter that registers after
        // the drain below sees the new value (see `wait_applied`).
        self.applied.store(id, Ordering::SeqCst);
        self.head.fetch_max(id, Ordering::Relaxed);
        let woken = {
            let mut waiters = lock(&self.waiters);
            let later = waiters.split_off(&(id + 1));
            std::mem::replace(&mut *waiters, later)
        };
        for sender in woken.into_values().flatten() {
            sender.send(()).ok();
        }
    }

    /// Waits (at most `limit`) until post `id` is applied; says whether it
    /// was.
    pub async fn wait_applied(&self, id: u64, limit: Duration) -> bool {
        let receiver = {
            let mut waiters = lock(&self.waiters);
            if self.applied.load(Ordering::SeqCst) >= id {
                return true;
            }
            let (tx, rx) = oneshot::channel();
            waiters.entry(id).or_default().push(tx);
            rx
        };
        matches!(
            async_std::future::timeout(limit, receiver).await,
            Ok(Ok(()))
        )
    }

    /// Why the replica is refused, if it is.
    pub fn diverged(&self) -> Option<String> {
        lock(&self.diverged).clone()
    }

    pub(crate) fn set_diverged(&self, why: Option<String>) {
        *lock(&self.diverged) = why;
    }

    /// The replica's state in one word, for `/healthz`.
    pub fn state(&self) -> &'static str {
        let ready = self.ready.load(Ordering::Relaxed);
        if self.diverged().is_some() {
            "diverged"
        } else if !self.connected.load(Ordering::Relaxed) {
            if ready {
                "disconnected"
            } else {
                "connecting"
            }
        } else if ready {
            "live"
        } else {
            "catching_up"
        }
    }

    /// Entries in the stream not yet applied here.
    pub fn lag(&self) -> u64 {
        let head = self.head.load(Ordering::Relaxed);
        head.saturating_sub(self.applied.load(Ordering::Relaxed))
    }
}

/// A mutex whose holder cannot panic halfway through an update: every
/// critical section here is a map or option operation.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Idle connections for creates, and a bound on how many are open.
struct Pool {
    url: RedisUrl,
    idle: Mutex<Vec<Conn>>,
    /// A counting semaphore: sending takes one of the
    /// [`MAX_PUBLISH_CONNECTIONS`] slots, receiving gives one back.
    permits: async_channel::Sender<()>,
    returned: async_channel::Receiver<()>,
}

/// A permit to use one publish connection; released on drop.
struct Permit<'a>(&'a Pool);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.returned.try_recv().ok();
    }
}

impl Pool {
    fn new(url: RedisUrl) -> Self {
        let (permits, returned) = async_channel::bounded(MAX_PUBLISH_CONNECTIONS);
        Self {
            url,
            idle: Mutex::new(Vec::new()),
            permits,
            returned,
        }
    }

    /// Waits (at most [`COMMAND_TIMEOUT`]) for a free connection slot: when
    /// Redis hangs, creates fail after a bounded time instead of queueing.
    async fn permit(&self) -> Result<Permit<'_>, RedisError> {
        match async_std::future::timeout(COMMAND_TIMEOUT, self.permits.send(())).await {
            // The channel never closes: both ends live in `self`.
            Ok(_) => Ok(Permit(self)),
            Err(_) => Err(RedisError::Timeout(COMMAND_TIMEOUT)),
        }
    }

    async fn get(&self) -> Result<Conn, RedisError> {
        let idle = lock(&self.idle).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => Conn::connect(&self.url, CONNECT_TIMEOUT).await,
        }
    }

    fn put(&self, conn: Conn) {
        if !conn.is_broken() {
            lock(&self.idle).push(conn);
        }
    }

    /// Drops every idle connection: after a failure they are most likely
    /// all dead (Redis restarted), and a create should not find out by
    /// failing.
    pub(crate) fn clear(&self) {
        lock(&self.idle).clear();
    }
}

/// The post's JSON after its id: what the script appends to `{"id":N,`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PostTail<'a> {
    title: &'a str,
    content: &'a str,
    author: Option<&'a str>,
    created_at: &'a str,
}

/// `post` without its id, as the script's argument: the JSON of
/// [`Post`] minus its leading `{"id":N,`.
fn post_tail(post: &NewPost, created_at: &str) -> String {
    let tail = PostTail {
        title: &post.title,
        content: &post.content,
        author: post.author.as_deref(),
        created_at,
    };
    // A struct of strings always serialises, and its JSON starts with `{`.
    let json = serde_json::to_string(&tail).expect("post serialises");
    json[1..].to_owned()
}

/// A node's membership in the cluster: creates go to Redis, a tailer keeps
/// the local store in step with the stream.
pub struct Cluster {
    /// Where the replica stands.
    pub progress: Arc<Progress>,
    url: RedisUrl,
    stream: String,
    counter: String,
    script_sha: String,
    pool: Pool,
    tailer: Mutex<Option<(AbortHandle, JoinHandle<()>)>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("url", &self.url)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Joins the cluster at `url`: starts the tailer, which replicates the
    /// stream into `store` and broadcasts each post through `hub`. Redis
    /// need not be up yet; the tailer keeps trying.
    pub fn start(
        url: RedisUrl,
        stream: String,
        store: Arc<Store>,
        hub: Addr<Hub>,
    ) -> Result<Arc<Self>, crate::store::StoreError> {
        let progress = Arc::new(Progress::default());
        let applied = store.last_id()?.unwrap_or(0);
        progress.applied.store(applied, Ordering::SeqCst);
        progress.head.store(applied, Ordering::Relaxed);
        let script_sha = {
            use sha1::{Digest, Sha1};
            let digest = Sha1::digest(APPEND_SCRIPT.as_bytes());
            digest.iter().fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            })
        };
        let cluster = Arc::new(Self {
            progress,
            counter: format!("{stream}:id"),
            pool: Pool::new(url.clone()),
            url,
            stream,
            script_sha,
            tailer: Mutex::new(None),
        });
        log::info!(
            "cluster mode: replicating stream {} from {} (applied up to {applied})",
            cluster.stream,
            cluster.url
        );
        let (abort, registration) = AbortHandle::new_pair();
        let tail = tailer::Tailer::new(cluster.clone(), store, hub);
        // The tailer runs on a thread of its own rather than as one task
        // among thousands of connection tasks: its Redis replies and the
        // store's flush acknowledgements then wake it directly, instead of
        // queueing behind busy connections on the shared executor.
        let task = async_std::task::spawn_blocking(move || {
            async_std::task::block_on(futures::future::Abortable::new(tail.run(), registration))
                .ok();
        });
        *lock(&cluster.tailer) = Some((abort, task));
        Ok(cluster)
    }

    /// The Redis URL (password hidden when displayed).
    pub fn url(&self) -> &RedisUrl {
        &self.url
    }

    /// The stream's key.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// Stops the tailer and waits for it; posts it already handed to the
    /// store are still written.
    pub async fn stop(&self) {
        let tailer = lock(&self.tailer).take();
        if let Some((abort, task)) = tailer {
            abort.abort();
            task.await;
        }
    }

    /// Appends a new post to the log. `Ok` means Redis acknowledged it;
    /// the call then waits (up to [`APPLY_WAIT`]) for this node to apply
    /// it, so that reading it back here works at once.
    pub async fn publish(&self, post: NewPost) -> Result<StoredPost, PublishError> {
        if let Some(why) = self.progress.diverged() {
            return Err(PublishError::Diverged(why));
        }
        let created_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let tail = post_tail(&post, &created_at);
        let id = self.append(&tail).await.inspect_err(|_| {
            self.progress.redis_errors.fetch_add(1, Ordering::Relaxed);
            self.pool.clear();
        })?;
        let json: Arc<str> = format!("{{\"id\":{id},{tail}").into();
        let stored = StoredPost {
            post: Post {
                id,
                title: post.title,
                content: post.content,
                author: post.author,
                created_at,
            },
            json,
        };
        if !self.progress.wait_applied(id, APPLY_WAIT).await {
            log::warn!("post {id} is in the log but not yet applied on this node after {APPLY_WAIT:?}; answering anyway");
        }
        Ok(stored)
    }

    /// Runs the append script on a pooled connection; returns the new id.
    async fn append(&self, tail: &str) -> Result<u64, PublishError> {
        let _permit = self
            .pool
            .permit()
            .await
            .map_err(PublishError::Unavailable)?;
        let mut conn = self.pool.get().await.map_err(PublishError::Unavailable)?;
        let evalsha = Cmd::new("EVALSHA")
            .arg(&self.script_sha)
            .arg("2")
            .arg(&self.stream)
            .arg(&self.counter)
            .arg(tail);
        let mut reply = conn.call(&evalsha, COMMAND_TIMEOUT).await;
        if matches!(&reply, Err(RedisError::Reply(m)) if m.starts_with("NOSCRIPT")) {
            // Redis restarted (or flushed its script cache): send the source,
            // which also caches it again.
            let eval = Cmd::new("EVAL")
                .arg(APPEND_SCRIPT)
                .arg("2")
                .arg(&self.stream)
                .arg(&self.counter)
                .arg(tail);
            reply = conn.call(&eval, COMMAND_TIMEOUT).await;
        }
        let result = match reply {
            Ok(Value::Int(id)) if id > 0 => Ok(id as u64),
            Ok(other) => Err(PublishError::Uncertain(RedisError::Protocol(format!(
                "unexpected reply to the append script: {other:?}"
            )))),
            Err(e) if e.is_reply() => Err(PublishError::Refused(e)),
            Err(e) => Err(PublishError::Uncertain(e)),
        };
        self.pool.put(conn);
        result
    }

    /// The cluster fields of `/healthz`.
    pub fn health(&self) -> serde_json::Value {
        let p = &self.progress;
        serde_json::json!({
            "mode": "cluster",
            "state": p.state(),
            "ready": self.is_ready(),
            "redis": if p.connected.load(Ordering::Relaxed) { "connected" } else { "disconnected" },
            "stream": self.stream,
            "appliedId": p.applied.load(Ordering::Relaxed),
            "streamHeadId": p.head.load(Ordering::Relaxed),
            "lag": p.lag(),
            "error": p.diverged(),
        })
    }

    /// Whether the node should get traffic: caught up with the stream head
    /// seen at start, and its replica matches the log.
    pub fn is_ready(&self) -> bool {
        self.progress.ready.load(Ordering::Relaxed) && self.progress.diverged().is_none()
    }

    /// Appends the cluster's rows to a `/metrics` body.
    pub fn render_metrics(&self, out: &mut String) {
        let p = &self.progress;
        let rows: [(&str, &str, &str, u64); 6] = [
            (
                "livefeed_cluster_applied_id",
                "gauge",
                "Newest post id of the Redis stream applied on this node.",
                p.applied.load(Ordering::Relaxed),
            ),
            (
                "livefeed_cluster_stream_head_id",
                "gauge",
                "Newest post id known to be in the Redis stream.",
                p.head.load(Ordering::Relaxed),
            ),
            (
                "livefeed_cluster_lag",
                "gauge",
                "Posts in the stream not yet applied on this node.",
                p.lag(),
            ),
            (
                "livefeed_cluster_redis_errors_total",
                "counter",
                "Failed Redis connections and commands (tailer and creates).",
                p.redis_errors.load(Ordering::Relaxed),
            ),
            (
                "livefeed_cluster_redis_connected",
                "gauge",
                "1 while the tailer's Redis connection is up.",
                u64::from(p.connected.load(Ordering::Relaxed)),
            ),
            (
                "livefeed_cluster_ready",
                "gauge",
                "1 once caught up with the stream (what /readyz reports).",
                u64::from(self.is_ready()),
            ),
        ];
        for (name, kind, help, value) in rows {
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_builds_exactly_the_json_of_a_post() {
        let new = NewPost {
            title: "Hi \"there\"".into(),
            content: "line\nbreak ✓".into(),
            author: None,
        };
        let created_at = "2026-11-25T21:49:37.123Z";
        let tail = post_tail(&new, created_at);
        let post = Post {
            id: 42,
            title: new.title.clone(),
            content: new.content.clone(),
            author: None,
            created_at: created_at.into(),
        };
        assert_eq!(
            format!("{{\"id\":42,{tail}"),
            serde_json::to_string(&post).unwrap()
        );
    }

    #[async_std::test]
    async fn waiters_wake_when_their_post_is_applied() {
        let p = Arc::new(Progress::default());
        p.set_applied(3);
        assert!(p.wait_applied(2, Duration::from_millis(1)).await);
        let waiter = {
            let p = p.clone();
            async_std::task::spawn(async move { p.wait_applied(5, Duration::from_secs(10)).await })
        };
        let late = p.wait_applied(9, Duration::from_millis(10)).await;
        assert!(!late);
        p.set_applied(6);
        assert!(waiter.await);
        assert_eq!(lock(&p.waiters).len(), 1, "only the waiter for 9 is left");
    }
}
