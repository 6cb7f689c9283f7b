//! The tailer: replicates the Redis stream into the local store, in order.
//!
//! One task per node. It reads the stream with `XREAD BLOCK` from the entry
//! after the last one it applied, writes each batch into sled through the
//! store's writer (one flush per batch, after which the store's commit hook
//! broadcasts it) and records the batch as applied. Any Redis failure drops
//! the connection; the tailer reconnects with capped, jittered exponential
//! backoff and resumes from its last applied entry, so nothing is skipped
//! and nothing is applied or broadcast twice.
//!
//! When the local store fails (a full disk), applying fails and the tailer
//! retries the same entries with backoff; the node is not ready until the
//! store recovered and the replica caught up again.
//!
//! On every (re)connection it first checks that the stream still holds the
//! newest post of the local store, unchanged. If not, Redis lost writes
//! (see the persistence settings in `docs/cluster.md`) or the data dir
//! belongs to another feed: the node then refuses creates and reports
//! itself not ready rather than serve a history that disagrees with the
//! other nodes.

use super::resp::{Cmd, Conn, RedisError, Value};
use super::{stream, Cluster, COMMAND_TIMEOUT, CONNECT_TIMEOUT};
use crate::feed::change::Logged;
use crate::net::backoff::Backoff;
use crate::store::{Store, StoreError};
use livefeed_actors::{Hub, Stats};
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use xactor::Addr;

/// How long one `XREAD` waits on the server for new entries.
pub const BLOCK: Duration = Duration::from_secs(5);
/// Most stream entries read, stored (one flush) and broadcast at a time.
pub const BATCH: usize = 512;
/// First wait before reconnecting after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest wait between reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often a diverged replica checks the log again.
pub const DIVERGED_RETRY: Duration = Duration::from_secs(10);
/// Failures in a row between two warnings while Redis stays down.
const WARN_EVERY: u32 = 20;

/// Why a tailing session ended.
#[derive(Debug, thiserror::Error)]
enum TailError {
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("applying posts to the local store failed: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Diverged(String),
}

/// A stream entry: its id, its seq and the change it carries (if it is
/// one).
struct Entry {
    id: String,
    seq: u64,
    change: Result<Logged, String>,
}

/// The replication task of one node.
pub(crate) struct Tailer {
    cluster: Arc<Cluster>,
    store: Arc<Store>,
    hub: Addr<Hub>,
    /// The exact id of the last entry read (`<seq>-0` for entries the
    /// append script wrote).
    cursor: String,
    /// The stream head when the node first reached Redis: readiness means
    /// having applied at least that far.
    start_head: Option<u64>,
}

impl Tailer {
    pub(crate) fn new(cluster: Arc<Cluster>, store: Arc<Store>, hub: Addr<Hub>) -> Self {
        let applied = cluster.progress.applied.load(Ordering::SeqCst);
        Self {
            cluster,
            store,
            hub,
            cursor: format!("{applied}-0"),
            start_head: None,
        }
    }

    /// Tails until aborted.
    pub(crate) async fn run(mut self) {
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        let mut failures = 0u32;
        loop {
            let error = match self.session(&mut backoff, &mut failures).await {
                Ok(never) => match never {},
                Err(error) => error,
            };
            let progress = &self.cluster.progress;
            progress.connected.store(false, Ordering::Relaxed);
            let wait = match error {
                TailError::Diverged(why) => {
                    if progress.diverged().as_deref() != Some(why.as_str()) {
                        log::error!("cluster: refusing to serve: {why}");
                    }
                    progress.set_diverged(Some(why));
                    DIVERGED_RETRY
                }
                error => {
                    if let TailError::Redis(_) = error {
                        progress.redis_errors.fetch_add(1, Ordering::Relaxed);
                        self.cluster.pool.clear();
                    }
                    if let TailError::Store(_) = error {
                        // The local store failed (a full disk): not ready
                        // until it recovered and the replica caught up with
                        // the stream as it stands then.
                        progress.ready.store(false, Ordering::Relaxed);
                        self.start_head = None;
                    }
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(WARN_EVERY) {
                        log::warn!(
                            "cluster: tailing {} failed ({failures} in a row), retrying from entry {}: {error}",
                            self.cluster.url,
                            self.cursor
                        );
                    } else {
                        log::debug!("cluster: tailing failed again: {error}");
                    }
                    backoff.next_delay()
                }
            };
            async_std::task::sleep(wait).await;
        }
    }

    /// One connection's worth of tailing; returns only with the error that
    /// ended it.
    async fn session(
        &mut self,
        backoff: &mut Backoff,
        failures: &mut u32,
    ) -> Result<Infallible, TailError> {
        let mut conn = Conn::connect(&self.cluster.url, CONNECT_TIMEOUT).await?;
        self.check_resume_point(&mut conn).await?;
        let top = self.top_id(&mut conn).await?;
        let progress = self.cluster.progress.clone();
        progress.head.fetch_max(top, Ordering::Relaxed);
        let start_head = *self.start_head.get_or_insert(top);
        progress.set_diverged(None);
        progress.connected.store(true, Ordering::Relaxed);
        if *failures > 0 {
            log::info!(
                "cluster: reconnected to {}, resuming after entry {}",
                self.cluster.url,
                self.cursor
            );
        }
        backoff.reset();
        *failures = 0;
        self.check_ready(start_head, false);

        let read_timeout = BLOCK + COMMAND_TIMEOUT;
        loop {
            let xread = Cmd::new("XREAD")
                .arg("COUNT")
                .arg(BATCH.to_string())
                .arg("BLOCK")
                .arg(BLOCK.as_millis().to_string())
                .arg("STREAMS")
                .arg(&self.cluster.stream)
                .arg(&self.cursor);
            let reply = conn.call(&xread, read_timeout).await?;
            let entries = parse_xread(reply)?;
            let full = entries.len() == BATCH;
            self.apply(entries).await?;
            if full {
                // More is waiting: learn how much, for the lag metric, and
                // let the hub fan this batch out before reading the next,
                // so that a node catching up on a long stream does not pile
                // the backlog into the hub's (unbounded) mailbox. A batch
                // that came back short needs no such wait: the stream's own
                // rate bounds what the next read brings.
                let top = self.top_id(&mut conn).await?;
                progress.head.fetch_max(top, Ordering::Relaxed);
                self.hub.call(Stats).await.ok();
            }
            // A read that came back short reached the end of the stream.
            self.check_ready(start_head, !full);
        }
    }

    /// Stores a batch (one flush; the store's hook broadcasts it) and
    /// records it as applied.
    async fn apply(&mut self, entries: Vec<Entry>) -> Result<(), TailError> {
        let Some(last) = entries.last() else {
            return Ok(());
        };
        let (cursor, last_seq) = (last.id.clone(), last.seq);
        let progress = &self.cluster.progress;
        let mut changes = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry.change {
                Ok(change) => changes.push(change),
                Err(why) => {
                    progress.bad_entries.fetch_add(1, Ordering::Relaxed);
                    log::error!(
                        "cluster: skipping stream entry {} of {}: {why}",
                        entry.id,
                        self.cluster.stream
                    );
                }
            }
        }
        let applied = self.store.apply(changes).await?;
        self.cursor = cursor;
        let upto = last_seq.max(progress.applied.load(Ordering::SeqCst));
        progress.set_applied(upto, &applied);
        Ok(())
    }

    fn check_ready(&self, start_head: u64, caught_up: bool) {
        let progress = &self.cluster.progress;
        let applied = progress.applied.load(Ordering::SeqCst);
        if (caught_up || applied >= start_head) && !progress.ready.swap(true, Ordering::Relaxed) {
            log::info!("cluster: caught up with the stream at change {applied}; ready");
        }
    }

    /// The id of the stream's newest entry (0 when it is empty).
    async fn top_id(&self, conn: &mut Conn) -> Result<u64, TailError> {
        let newest = Cmd::new("XREVRANGE")
            .arg(&self.cluster.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg("1");
        let entries = parse_entries(conn.call(&newest, COMMAND_TIMEOUT).await?)?;
        Ok(entries.last().map_or(0, |e| e.seq))
    }

    /// Checks that the stream still holds this node's newest change, the
    /// same as here.
    async fn check_resume_point(&self, conn: &mut Conn) -> Result<(), TailError> {
        let Some(local) = self.store.head()?.seq else {
            return Ok(());
        };
        let id = format!("{local}-0");
        let entry = Cmd::new("XRANGE")
            .arg(&self.cluster.stream)
            .arg(&id)
            .arg(&id);
        let found = parse_entries(conn.call(&entry, COMMAND_TIMEOUT).await?)?;
        let stream = &self.cluster.stream;
        let Some(remote) = found.into_iter().next() else {
            return Err(TailError::Diverged(format!(
                "this node holds change {local} but stream {stream} has no such entry: Redis \
                 lost acknowledged writes, or the data dir belongs to another feed; start this \
                 node on an empty data dir to rebuild it from the stream"
            )));
        };
        let same = match &remote.change {
            Ok(logged) => {
                let here = self.store.post(logged.post_id())?;
                match (logged, here) {
                    (Logged::Created(remote), Some(here)) => {
                        here.seq == local && remote.json.as_bytes() == &here.json[..]
                    }
                    (Logged::Updated { .. }, Some(here)) => here.seq == local,
                    (Logged::Deleted { .. }, None) => true,
                    _ => false,
                }
            }
            Err(_) => false,
        };
        if same {
            Ok(())
        } else {
            Err(TailError::Diverged(format!(
                "change {local} differs between this node and stream {stream}: the data dir \
                 belongs to another feed, or Redis lost writes and reused the seq; start this \
                 node on an empty data dir to rebuild it from the stream"
            )))
        }
    }
}

/// The entries of an `XREAD` reply for one stream (none on timeout).
fn parse_xread(reply: Value) -> Result<Vec<Entry>, RedisError> {
    let Some(stream) = reply.into_array()?.into_iter().next() else {
        return Ok(Vec::new());
    };
    let mut parts = stream.into_array()?.into_iter();
    let _key = parts.next();
    match parts.next() {
        Some(entries) => parse_entries(entries),
        None => Err(RedisError::Protocol("XREAD reply without entries".into())),
    }
}

/// Entries as `XRANGE`, `XREVRANGE` and `XREAD` return them:
/// `[[id, [field, value, ...]], ...]`.
fn parse_entries(reply: Value) -> Result<Vec<Entry>, RedisError> {
    reply.into_array()?.into_iter().map(parse_entry).collect()
}

fn parse_entry(entry: Value) -> Result<Entry, RedisError> {
    let protocol = |what: &str| RedisError::Protocol(format!("malformed stream entry: {what}"));
    let mut parts = entry.into_array()?.into_iter();
    let id = parts
        .next()
        .and_then(|id| {
            id.as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        })
        .ok_or_else(|| protocol("no id"))?;
    let seq = id
        .split('-')
        .next()
        .and_then(|ms| ms.parse::<u64>().ok())
        .ok_or_else(|| protocol("bad id"))?;
    let fields = parts.next().ok_or_else(|| protocol("no fields"))?;
    let values = fields.into_array()?;
    let mut fields = stream::Fields::default();
    for pair in values.chunks(2) {
        let [name, value] = pair else { break };
        if let Some(name) = name.as_bytes() {
            fields.set(name, value.as_bytes());
        }
    }
    let change = if id.ends_with("-0") {
        stream::decode(seq, &fields)
    } else {
        Err("not written by livefeed (sequence part is not 0)".to_owned())
    };
    Ok(Entry { id, seq, change })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(s.as_bytes().to_vec())
    }

    fn entry(id: &str, post: &str) -> Value {
        Value::Array(vec![bulk(id), Value::Array(vec![bulk("post"), bulk(post)])])
    }

    fn create_entry(id: &str, post: &str) -> Value {
        let fields = vec![bulk("op"), bulk("create"), bulk("post"), bulk(post)];
        Value::Array(vec![bulk(id), Value::Array(fields)])
    }

    const NEW: &str =
        r#"{"title":"n","content":"c","author":null,"createdAt":"2026-01-01T00:00:00.000Z"}"#;
    const POST_7: &str = r#"{"id":7,"title":"t","content":"c","author":null,"createdAt":"2026-01-01T00:00:00.000Z"}"#;

    #[test]
    fn reads_changes_from_an_xread_reply() {
        let delete = Value::Array(vec![
            bulk("11-0"),
            Value::Array(vec![bulk("op"), bulk("delete"), bulk("id"), bulk("10")]),
        ]);
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("livefeed:posts"),
            Value::Array(vec![
                entry("7-0", POST_7),
                entry("8-0", "{}"),
                entry("9-1", POST_7),
                create_entry("10-0", NEW),
                delete,
            ]),
        ])]);
        let entries = parse_xread(reply).unwrap();
        assert_eq!(entries.len(), 5);
        let Ok(Logged::Created(created)) = &entries[3].change else {
            panic!("a create: {:?}", entries[3].change);
        };
        assert_eq!((created.post.id, created.seq), (10, 10));
        assert_eq!(created.post.title, "n");
        let Ok(Logged::Created(first)) = &entries[0].change else {
            panic!("a create: {:?}", entries[0].change);
        };
        assert_eq!((first.post.id, first.post.title.as_str()), (7, "t"));
        assert!(entries[1].change.is_err(), "not a post");
        assert!(entries[2].change.is_err(), "not livefeed's");
        assert_eq!((entries[2].id.as_str(), entries[2].seq), ("9-1", 9));
        assert_eq!(
            entries[4].change.as_ref().unwrap(),
            &Logged::Deleted { id: 10, seq: 11 }
        );
        assert!(parse_xread(Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn an_entry_must_carry_its_own_post() {
        let reply = Value::Array(vec![entry("8-0", POST_7)]);
        let entries = parse_entries(reply).unwrap();
        assert!(entries[0].change.as_ref().unwrap_err().contains("post 7"));
    }
}
