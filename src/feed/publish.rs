//! The publish seam: where a new post goes to become durable and ordered.
//!
//! One [`Publisher`] is chosen at startup: the local sled store (a single
//! server), or the Redis log shared by a cluster. Either way each change
//! takes the next seq in one order for everybody and, once durable in this
//! node's store, is broadcast by the store's commit hook in seq order; the
//! publisher only answers when the change is durable. Each publisher
//! reports its health and metrics as data, which the HTTP layer renders.

use super::change::Stored;
use super::idempotency::Idempotency;
use super::name::FeedName;
use super::post::{NewPost, Patch};
use async_trait::async_trait;
use livefeed_actors::Head;

/// Where changes go.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Makes `post` durable and gives it the next seq, which is its id.
    /// `Ok` means it is on disk (or, in cluster mode, in the fsynced
    /// shared log). With `once`, the key is recorded atomically with the
    /// post, unless a live record of it is found first: then nothing is
    /// stored and the answer is the recorded post (the same fingerprint)
    /// or [`PublishError::KeyReused`] (another one).
    async fn create(
        &self,
        post: NewPost,
        once: Option<&Idempotency>,
    ) -> Result<Created, PublishError>;
    /// Edits post `id` if it is live and `expect` allows its latest seq;
    /// answers the post as edited.
    async fn update(&self, id: u64, patch: Patch, expect: Expect) -> Result<Stored, PublishError>;
    /// Deletes post `id` if it is live and `expect` allows its latest seq;
    /// answers the delete's seq.
    async fn delete(&self, id: u64, expect: Expect) -> Result<u64, PublishError>;
    /// Whether this node should get traffic, and why not.
    fn health(&self) -> Health;
    /// This publisher's own metrics, appended to `out`.
    fn metrics(&self, out: &mut Vec<Metric>);
}

/// A create's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The post as it was created (for a replay: as the first request got
    /// it, whatever happened to it since).
    pub stored: Stored,
    /// Whether this is a retry of a create recorded earlier with the same
    /// idempotency key: nothing was stored or broadcast.
    pub replayed: bool,
}

/// What an edit or a delete requires of the post (`If-Match`): it must be
/// live either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Any live post (no `If-Match`, or `If-Match: *`).
    Live,
    /// A live post whose latest change is one of these seqs.
    Seqs(Vec<u64>),
}

impl Expect {
    /// Whether a live post whose latest change is `seq` qualifies.
    pub fn allows(&self, seq: u64) -> bool {
        match self {
            Expect::Live => true,
            Expect::Seqs(seqs) => seqs.contains(&seq),
        }
    }
}

/// Read access to stored posts: this node's store, in every mode.
pub trait Posts: Send + Sync + 'static {
    /// The live post with `id`.
    fn get(&self, id: u64) -> Result<Option<Found>, StorageError>;
    /// Up to `limit` live posts of `feed` with ids below `before` (all
    /// when `None`), newest first.
    fn page(
        &self,
        feed: &FeedName,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Page, StorageError>;
    /// The newest change's seq and the newest post's id.
    fn head(&self) -> Result<Head, StorageError>;
    /// Every feed with at least one live post.
    fn feeds(&self) -> Result<Vec<FeedStat>, StorageError>;
}

/// A feed as the store counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedStat {
    /// Its name.
    pub name: String,
    /// Live posts in it.
    pub posts: u64,
    /// Its newest live post.
    pub last_post_id: Option<u64>,
}

/// A live post as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The seq of its latest change (its `ETag`).
    pub seq: u64,
    /// Its feed.
    pub feed: String,
    /// Its JSON.
    pub json: Vec<u8>,
}

/// A page of posts, newest first.
#[derive(Debug, Default)]
pub struct Page {
    /// Post JSON documents, newest first.
    pub posts: Vec<Vec<u8>>,
    /// The `before` cursor of the next (older) page, if there is one.
    pub next: Option<u64>,
}

/// The store failed; the text is for the log, never for a client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

/// Why a change could not be made. Nothing was stored, unless the variant
/// says it may have been. The texts are for the log.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// No such post, or it is deleted.
    #[error("no such post")]
    NotFound,
    /// The idempotency key was recorded with another request (another
    /// body or route).
    #[error("the idempotency key was used with another request")]
    KeyReused,
    /// `If-Match` names another seq than the post's latest.
    #[error("the post's latest change is {current}")]
    Precondition {
        /// The post's latest seq.
        current: u64,
    },
    /// The local store failed while writing the change and could not tell
    /// afterwards whether it reached the disk: it may have (then it is kept
    /// and delivered like any other change once the store recovers).
    #[error("storage failed: {0}")]
    Storage(String),
    /// The local store is failing (the disk is full, or an I/O error) and
    /// the change was not stored: refused before it was written, or found
    /// missing when the store was reopened.
    #[error("storage is unavailable: {0}")]
    StorageUnavailable(String),
    /// The server is shutting down.
    #[error("the store is closed")]
    Closed,
    /// Cluster mode: Redis could not be reached; nothing was sent.
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    /// Cluster mode: Redis refused the append.
    #[error("Redis refused the post: {0}")]
    Refused(String),
    /// Cluster mode: the connection failed after the append was sent, so
    /// Redis may or may not have stored it; if it did, it is delivered like
    /// any other post.
    #[error("the connection to Redis failed after the post was sent: {0}")]
    Uncertain(String),
    /// Cluster mode: this node's replica does not match the log, so it
    /// takes no creates.
    #[error("this node's data does not match the shared log: {0}")]
    Diverged(String),
}

impl From<StorageError> for PublishError {
    fn from(e: StorageError) -> Self {
        PublishError::Storage(e.0)
    }
}

/// A node's health, as `/healthz` and `/readyz` report it.
#[derive(Debug, Clone)]
pub struct Health {
    /// Whether the node should get traffic (`/readyz`): never while its
    /// store takes no writes.
    pub ready: bool,
    /// Whether this node's store takes writes, in every mode.
    pub storage: StorageHealth,
    /// Cluster mode's replica state; `None` for a single server.
    pub cluster: Option<ClusterHealth>,
}

/// Where this node's store stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageHealth {
    /// `ok`; `failing`: writes are refused, reads are served; or
    /// `unavailable`: the store could not be reopened, reads fail too.
    pub state: &'static str,
    /// Why it is not `ok`: `disk_full` or `io_error`.
    pub reason: Option<&'static str>,
}

impl StorageHealth {
    /// A store that takes writes.
    pub const OK: Self = Self {
        state: "ok",
        reason: None,
    };

    /// Whether the store takes writes.
    pub fn is_ok(&self) -> bool {
        self.state == "ok"
    }
}

/// Where a cluster node's replica stands.
#[derive(Debug, Clone)]
pub struct ClusterHealth {
    /// `connecting`, `catching_up`, `live`, `disconnected` or `diverged`.
    pub state: &'static str,
    /// Whether the tailer's connection to Redis is up.
    pub redis_connected: bool,
    /// The stream holding the log.
    pub stream: String,
    /// Newest entry applied here.
    pub applied_id: u64,
    /// Newest entry known to be in the stream.
    pub stream_head_id: u64,
    /// Entries not yet applied here.
    pub lag: u64,
    /// Why the replica is refused, when it is.
    pub error: Option<String>,
}

/// One Prometheus sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The metric's name.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// The `# HELP` text.
    pub help: &'static str,
    /// The value.
    pub value: u64,
}

/// Prometheus metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Metric {
    /// A counter.
    pub const fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            name,
            kind: MetricKind::Counter,
            help,
            value,
        }
    }

    /// A gauge.
    pub const fn gauge(name: &'static str, help: &'static str, value: u64) -> Self {
        Self {
            name,
            kind: MetricKind::Gauge,
            help,
            value,
        }
    }
}
