//! Cluster mode: several nodes share one ordered post log in a Redis stream.
//!
//! With `--redis-url`, a node no longer assigns post ids itself. A create
//! runs one Lua script on Redis that takes the next id from a counter and
//! appends the post to the stream under entry id `<post id>-0`, atomically
//! ([`stream`]); the 201 goes out only after Redis answered. Every node runs a
//! [tailer](tailer) that reads the stream from the last id it applied and
//! writes each post into its local sled store through the store's single
//! writer, whose commit hook broadcasts it once it is on disk. So the
//! stream is the log of record, sled a replica that serves reads and
//! replay, and every client on every node sees the stream's order.
//!
//! [`Cluster`] is the node's [`Publisher`]; without `--redis-url` none of
//! this is started and the store publishes directly. `docs/cluster.md`
//! describes the design, the guarantees and the Redis settings they rely
//! on.
//!
//! Layout:
//! - this file: [`Cluster`], publishing;
//! - [`stream`]: the stream's entry format and the append script;
//! - [`pool`]: the creates' Redis connections;
//! - [`progress`]: where the replica stands (readiness, lag, divergence);
//! - [`tailer`]: the task that replicates the stream into the local store;
//! - [`resp`]: the small Redis client all of them use.

pub mod pool;
pub mod progress;
pub mod resp;
pub mod stream;
pub mod tailer;

use crate::feed::change::{Change, Stored};
use crate::feed::idempotency::Idempotency;
use crate::feed::post::{timestamp, NewPost, Patch};
use crate::feed::publish::{Created, Expect, Health, Metric, PublishError, Publisher};
use crate::store::{Store, StoreError};
use async_std::task::JoinHandle;
use async_trait::async_trait;
use futures::future::AbortHandle;
use livefeed_actors::Hub;
use pool::Pool;
use progress::{lock, Progress};
use resp::{Cmd, RedisError, RedisUrl, Value};
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use xactor::Addr;

/// How long connecting (and authenticating) to Redis may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may take before its connection is given up.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a create waits, after Redis acknowledged the post, for this
/// node's replica to apply it, so that reading it back from the same node
/// works at once. After that the 201 goes out anyway: the post is durable
/// in Redis and will be applied when the tailer catches up.
pub const APPLY_WAIT: Duration = Duration::from_secs(2);
/// Most Redis connections used by concurrent writes at once; more writes
/// wait for one. (Redis makes concurrent appends share an AOF fsync.)
pub const MAX_PUBLISH_CONNECTIONS: usize = 32;

/// A node's membership in the cluster: creates go to Redis, a tailer keeps
/// the local store in step with the stream.
pub struct Cluster {
    /// Where the replica stands.
    pub progress: Arc<Progress>,
    url: RedisUrl,
    stream: String,
    counter: String,
    /// `<stream>:seq`: each post's latest seq.
    latest: String,
    script_sha: String,
    pool: Pool,
    store: Arc<Store>,
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
    /// Joins the cluster at `url`: starts the tailer, which replicates
    /// `stream` into `store` (whose commit hook broadcasts each post) and
    /// paces itself on `hub`. Redis need not be up yet; the tailer keeps
    /// trying.
    pub fn start(
        url: RedisUrl,
        stream: String,
        store: Arc<Store>,
        hub: Addr<Hub>,
    ) -> Result<Arc<Self>, StoreError> {
        let progress = Arc::new(Progress::default());
        let applied = store.head()?.seq.unwrap_or(0);
        progress.applied.store(applied, Ordering::SeqCst);
        progress.head.store(applied, Ordering::Relaxed);
        let script_sha = {
            use sha1::{Digest, Sha1};
            let digest = Sha1::digest(stream::APPEND_SCRIPT.as_bytes());
            digest.iter().fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            })
        };
        let cluster = Arc::new(Self {
            progress,
            counter: format!("{stream}:id"),
            latest: format!("{stream}:seq"),
            pool: Pool::new(url.clone()),
            store: store.clone(),
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

    /// Runs the append script with `args` on a pooled connection; answers
    /// the change's seq.
    async fn append(&self, args: &[&str]) -> Result<u64, Appended> {
        match self.append_keyed(None, args).await? {
            Answer::Appended(seq) => Ok(seq),
            Answer::Replay(..) => Err(Appended::Failed(PublishError::Uncertain(
                "the append script replayed a change that named no idempotency key".into(),
            ))),
        }
    }

    /// [`append`](Self::append), with the key of an idempotency record
    /// (the script's fourth key) when there is one.
    async fn append_keyed(&self, record: Option<&str>, args: &[&str]) -> Result<Answer, Appended> {
        let result = self.run_script(record, args).await;
        match &result {
            // A reused key is the client's error, not Redis failing.
            Err(Appended::Failed(PublishError::KeyReused)) | Ok(_) => {}
            Err(Appended::Failed(_)) => {
                self.progress.redis_errors.fetch_add(1, Ordering::Relaxed);
                self.pool.clear();
            }
        }
        result
    }

    async fn run_script(&self, record: Option<&str>, args: &[&str]) -> Result<Answer, Appended> {
        let unavailable =
            |e: RedisError| Appended::Failed(PublishError::Unavailable(e.to_string()));
        let _permit = self.pool.permit().await.map_err(unavailable)?;
        let mut conn = self.pool.get().await.map_err(unavailable)?;
        let run = |command: &str, script: &str| {
            let cmd = Cmd::new(command)
                .arg(script)
                .arg(if record.is_some() { "4" } else { "3" })
                .arg(&self.stream)
                .arg(&self.counter)
                .arg(&self.latest);
            let cmd = record.into_iter().fold(cmd, |cmd, key| cmd.arg(key));
            args.iter().fold(cmd, |cmd, arg| cmd.arg(arg))
        };
        let mut reply = conn
            .call(&run("EVALSHA", &self.script_sha), COMMAND_TIMEOUT)
            .await;
        if matches!(&reply, Err(RedisError::Reply(m)) if m.starts_with("NOSCRIPT")) {
            // Redis restarted (or flushed its script cache): send the source,
            // which also caches it again.
            reply = conn
                .call(&run("EVAL", stream::APPEND_SCRIPT), COMMAND_TIMEOUT)
                .await;
        }
        self.pool.put(conn);
        match reply {
            Ok(Value::Int(seq)) if seq > 0 => Ok(Answer::Appended(seq as u64)),
            Ok(Value::Array(items)) => match items.as_slice() {
                [Value::Int(seq), Value::Bulk(post)] if *seq > 0 => {
                    Ok(Answer::Replay(*seq as u64, post.clone()))
                }
                _ => Err(Appended::Failed(PublishError::Uncertain(format!(
                    "unexpected reply to the append script: {items:?}"
                )))),
            },
            Ok(other) => Err(Appended::Failed(PublishError::Uncertain(format!(
                "unexpected reply to the append script: {other:?}"
            )))),
            Err(RedisError::Reply(m)) => Err(refusal(&m)),
            Err(e) => Err(Appended::Failed(PublishError::Uncertain(e.to_string()))),
        }
    }

    /// Waits (up to [`APPLY_WAIT`]) for this node to apply change `seq`,
    /// so that reading it back here works at once; the answer goes out
    /// either way, the change being in the log.
    async fn applied(&self, seq: u64) {
        if !self.progress.wait_applied(seq, APPLY_WAIT).await {
            log::warn!("change {seq} is in the log but not yet applied on this node after {APPLY_WAIT:?}; answering anyway");
        }
    }

    /// Refuses writes while this node's replica disagrees with the log, or
    /// its store is failing: it could not apply (nor serve) what it sends.
    fn check_replica(&self) -> Result<(), PublishError> {
        if let Some(why) = self.progress.diverged() {
            return Err(PublishError::Diverged(why));
        }
        let storage = self.store.storage_health();
        if !storage.is_ok() {
            let why = format!("this node's store is {}", storage.state);
            return Err(PublishError::StorageUnavailable(why));
        }
        Ok(())
    }
}

/// What the append script did.
enum Answer {
    /// Appended the change with this seq.
    Appended(u64),
    /// Found the create's idempotency key recorded with the same request:
    /// the recorded create's seq and its entry's `post` field.
    Replay(u64, Vec<u8>),
}

/// Why the append script did not append.
enum Appended {
    /// It refused the change, or failed.
    Failed(PublishError),
}

/// The script's error replies (Redis puts `ERR ` before an error reply
/// that is one word).
fn refusal(message: &str) -> Appended {
    let message = message.strip_prefix("ERR ").unwrap_or(message);
    let current = message
        .strip_prefix("PRECONDITION")
        .and_then(|rest| rest.trim().parse::<u64>().ok());
    Appended::Failed(match (message, current) {
        ("NOTFOUND", _) => PublishError::NotFound,
        ("KEYREUSED", _) => PublishError::KeyReused,
        (_, Some(current)) => PublishError::Precondition { current },
        _ => PublishError::Refused(message.to_owned()),
    })
}

/// `If-Match` as the script takes it.
fn expect_arg(expect: &Expect) -> String {
    match expect {
        Expect::Live => "*".to_owned(),
        Expect::Seqs(seqs) => {
            let seqs: Vec<String> = seqs.iter().map(u64::to_string).collect();
            seqs.join(",")
        }
    }
}

fn failed(e: Appended) -> PublishError {
    let Appended::Failed(e) = e;
    e
}

#[async_trait]
impl Publisher for Cluster {
    /// Appends the post to the log. `Ok` means Redis acknowledged it; the
    /// call then waits (up to [`APPLY_WAIT`]) for this node to apply it, so
    /// that reading it back here works at once.
    ///
    /// With `once`, the same script first looks for the key's record
    /// (shared by every node): a live one of the same request answers with
    /// the create it names, read back from its entry in the stream (the
    /// bytes every node built for it), and nothing is appended.
    async fn create(
        &self,
        post: NewPost,
        once: Option<&Idempotency>,
    ) -> Result<Created, PublishError> {
        self.check_replica()?;
        let created_at = timestamp();
        let field = stream::encode_create(&post, &created_at);
        let answer = match once {
            None => Answer::Appended(self.append(&["create", &field]).await.map_err(failed)?),
            Some(once) => {
                let record = format!("{}:idem:{}", self.stream, once.identity_hex());
                // Redis refuses a zero TTL.
                let ttl = once
                    .ttl
                    .as_millis()
                    .clamp(1, u128::from(u64::MAX))
                    .to_string();
                let args = ["create", &field, &once.fingerprint_hex(), &ttl];
                self.append_keyed(Some(&record), &args)
                    .await
                    .map_err(failed)?
            }
        };
        match answer {
            Answer::Appended(seq) => {
                self.applied(seq).await;
                Ok(Created {
                    stored: stream::created(seq, &post, &created_at),
                    replayed: false,
                })
            }
            Answer::Replay(seq, field) => {
                let stored = stream::decode_create(seq, &field).map_err(|e| {
                    PublishError::Refused(format!("the recorded create {seq}: {e}"))
                })?;
                self.applied(seq).await;
                Ok(Created {
                    stored,
                    replayed: true,
                })
            }
        }
    }

    /// Appends the edit (the patch and its time) if the log's latest
    /// change of the post is live and `expect` allows it; every replica
    /// applies it to the post as it stands there, in the log's order. The
    /// answer is the post as this node's replica built it.
    async fn update(&self, id: u64, patch: Patch, expect: Expect) -> Result<Stored, PublishError> {
        self.check_replica()?;
        let (id_arg, at) = (id.to_string(), timestamp());
        let patch_arg = stream::encode_patch(&patch);
        let args = ["update", &id_arg, &expect_arg(&expect), &patch_arg, &at];
        let seq = self.append(&args).await.map_err(failed)?;
        if let Some(Change::Updated(stored)) = self.progress.wait_edit(seq, APPLY_WAIT).await {
            return Ok(stored);
        }
        // Not applied in time (or long ago): the edit is in the log all the
        // same; answer with the post as it is here, patched.
        log::warn!("change {seq} is in the log but not yet applied on this node after {APPLY_WAIT:?}; answering with this node's view");
        let found = self
            .store
            .post(id)
            .map_err(|e| PublishError::Storage(e.to_string()))?
            .ok_or(PublishError::NotFound)?;
        let post = serde_json::from_slice(&found.json)
            .map_err(|e| PublishError::Storage(format!("post {id}: {e}")))?;
        Ok(Stored::new(patch.apply(&post, at), seq))
    }

    async fn delete(&self, id: u64, expect: Expect) -> Result<u64, PublishError> {
        self.check_replica()?;
        let id_arg = id.to_string();
        let args = ["delete", &id_arg, &expect_arg(&expect)];
        let seq = self.append(&args).await.map_err(failed)?;
        self.applied(seq).await;
        Ok(seq)
    }

    fn health(&self) -> Health {
        let storage = self.store.storage_health();
        Health {
            ready: self.progress.is_ready() && storage.is_ok(),
            storage,
            cluster: Some(self.progress.health(&self.stream)),
        }
    }

    fn metrics(&self, out: &mut Vec<Metric>) {
        let p = &self.progress;
        out.extend([
            Metric::gauge(
                "livefeed_cluster_applied_id",
                "Newest post id of the Redis stream applied on this node.",
                p.applied.load(Ordering::Relaxed),
            ),
            Metric::gauge(
                "livefeed_cluster_stream_head_id",
                "Newest post id known to be in the Redis stream.",
                p.head.load(Ordering::Relaxed),
            ),
            Metric::gauge(
                "livefeed_cluster_lag",
                "Posts in the stream not yet applied on this node.",
                p.lag(),
            ),
            Metric::counter(
                "livefeed_cluster_redis_errors_total",
                "Failed Redis connections and commands (tailer and creates).",
                p.redis_errors.load(Ordering::Relaxed),
            ),
            Metric::gauge(
                "livefeed_cluster_redis_connected",
                "1 while the tailer's Redis connection is up.",
                u64::from(p.connected.load(Ordering::Relaxed)),
            ),
            Metric::gauge(
                "livefeed_cluster_ready",
                "1 once caught up with the stream, with storage that takes writes (what /readyz reports).",
                u64::from(p.is_ready() && self.store.storage_health().is_ok()),
            ),
        ]);
        self.store.storage_metrics(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_refusals() {
        assert!(matches!(
            refusal("ERR NOTFOUND"),
            Appended::Failed(PublishError::NotFound)
        ));
        assert!(matches!(
            refusal("NOTFOUND"),
            Appended::Failed(PublishError::NotFound)
        ));
        assert!(matches!(
            refusal("PRECONDITION 7"),
            Appended::Failed(PublishError::Precondition { current: 7 })
        ));
        assert!(matches!(
            refusal("KEYREUSED"),
            Appended::Failed(PublishError::KeyReused)
        ));
        assert!(matches!(
            refusal("KEYLOST 4"),
            Appended::Failed(PublishError::Refused(_))
        ));
        assert!(matches!(
            refusal("ERR boom"),
            Appended::Failed(PublishError::Refused(_))
        ));
        assert_eq!(expect_arg(&Expect::Seqs(vec![3, 5])), "3,5");
        assert_eq!(expect_arg(&Expect::Live), "*");
    }
}
