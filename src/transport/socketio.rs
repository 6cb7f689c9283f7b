//! The Socket.IO transport: livefeed's `/` namespace, where every client
//! is a hub connection.
//!
//! Joining `/` starts a connection actor whose sink is the client's
//! socket, exactly as `/ws` does with a websocket, so one broadcast reaches
//! both kinds of clients and replay, ordering and the slow-consumer bound
//! are the hub's. The CONNECT reply is the connection's welcome (sent
//! after it joined the hub), so the recovery id it carries names the exact
//! point after which every post reaches the client.
//!
//! Events to the client: `newPost` and `postUpdated` (`{post, seq}`),
//! `postDeleted` (`{id, seq}`). From the client, with acks: `createPost`
//! (`{feed?, idempotencyKey?, title, content, author?}`),
//! `updatePost` (`{id, title?, content?, author?}`) and `deletePost`
//! (`{id}`), answered `{post}`, `{post}` and `{id}`, or `{error}` exactly
//! as the HTTP API's errors.
//!
//! Recovery: each event carries its change's seq as the offset; a client
//! that comes back with `offset` (or `auth.since`, or only the `pid`, which
//! encodes where it started) is replayed every change after that point from
//! sled (compacted), then goes live, with no gap and no duplicate.

use crate::config::SocketIoOptions;
use crate::feed::idempotency::{BadKey, Key, Keyed};
use crate::feed::name::{self, BadFeed, FeedName};
use crate::feed::publish::Expect;
use crate::feed::wire::{self, Wire};
use crate::feed::{Feed, FeedError, Liveness};
use crate::http::{ApiError, Router};
use crate::net::origin::Origins;
use crate::socketio::engine::packet::Frame;
use crate::socketio::engine::{random_id, CloseReason, Engine, EngineConfig};
use crate::socketio::socket::{ConnectError, Event, Namespace, Socket, SocketIo};
use async_trait::async_trait;
use futures::StreamExt;
use livefeed_actors::{Close, ConnectionId, Delivery, Inbound, Joined, Outbound};
use serde_json::Value;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tide::http::Method;

/// Where Socket.IO is served.
pub const PATH: &str = "/socket.io/";

/// Time a probing websocket has to complete the upgrade.
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// Limits the engine shares with the feed's connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Frames past which a client's outbox makes feed frames wait.
    pub backlog_frames: usize,
    /// Bytes past which a client's outbox makes feed frames wait.
    pub backlog_bytes: usize,
    /// Longest a single websocket write may take.
    pub write_timeout: Duration,
}

/// Adds `/socket.io/` to `app` (unless `options` disable it): an
/// Engine.IO server whose `/` namespace is the feed. Answers the engine.
pub fn mount(
    app: &mut Router,
    feed: Arc<Feed>,
    options: &SocketIoOptions,
    limits: Limits,
    origins: Origins,
) -> Option<Arc<Engine>> {
    if !options.enabled {
        return None;
    }
    let engine_config = EngineConfig {
        ping_interval: options.ping_interval,
        ping_timeout: options.ping_timeout,
        max_payload: options.max_payload,
        upgrade_timeout: UPGRADE_TIMEOUT,
        max_sessions: options.max_sessions,
        outbox_frames: limits.backlog_frames,
        outbox_bytes: limits.backlog_bytes,
        write_timeout: limits.write_timeout,
        origins,
        write_spacing: Duration::ZERO,
    };
    let namespace = Arc::new(FeedNamespace {
        feed,
        recovery: options.recovery,
    });
    let io = SocketIo::new(options.connect_timeout).namespace("/", namespace);
    let engine = Engine::new(engine_config, Arc::new(io));
    // The engine answers every method itself (refusing all but these, as
    // Engine.IO does), CORS included.
    let paths = [PATH, PATH.trim_end_matches('/')];
    let served = [Method::Get, Method::Post, Method::Options];
    engine.mount(app.own(&paths, &served), PATH);
    Some(engine)
}

/// The event a client emits to create a post (with an ack for the result).
pub const CREATE_POST: &str = "createPost";
/// The field of a `createPost` that carries its idempotency key.
pub const IDEMPOTENCY_KEY: &str = "idempotencyKey";
/// The event a client emits to edit a post.
pub const UPDATE_POST: &str = "updatePost";
/// The event a client emits to delete a post.
pub const DELETE_POST: &str = "deletePost";

/// The main namespace: `recovery` turns connection state recovery (pid
/// and offsets) on.
struct FeedNamespace {
    feed: Arc<Feed>,
    recovery: bool,
}

/// Where a (re)connecting client wants its feed to start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// Replay the stored changes after this seq first.
    pub since: Option<u64>,
    /// The client's recovery id, when it is one of ours.
    pub pid: Option<String>,
}

impl Resume {
    /// Reads the CONNECT payload: `offset` (Socket.IO's recovery offset)
    /// wins over `since` (an id the application tracked), which wins over
    /// the start point encoded in `pid`. Only `since` is checked strictly:
    /// the others come from the client library and are ignored when odd.
    pub fn parse(auth: &str, recovery: bool) -> Result<Self, String> {
        let auth: Value = serde_json::from_str(auth).unwrap_or(Value::Null);
        let since = match auth.get("since") {
            None | Some(Value::Null) => None,
            Some(v) => Some(as_id(v).ok_or("since must be a seq (an unsigned integer)")?),
        };
        if !recovery {
            return Ok(Self { since, pid: None });
        }
        let offset = auth
            .get("offset")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        let pid = auth
            .get("pid")
            .and_then(Value::as_str)
            .filter(|pid| pid_start(pid).is_some())
            .map(str::to_owned);
        let start = pid.as_deref().and_then(pid_start);
        Ok(Self {
            since: offset.or(since).or(start),
            pid,
        })
    }
}

fn as_id(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A recovery id is `<random id>-<newest seq when it was issued>`.
fn new_pid(last_seq: Option<u64>) -> String {
    format!("{}-{}", random_id(), last_seq.unwrap_or(0))
}

fn pid_start(pid: &str) -> Option<u64> {
    let (random, start) = pid.rsplit_once('-')?;
    (random.len() == 20).then_some(())?;
    start.parse().ok()
}

/// A CONNECT refused as the HTTP API would refuse it: its message, and
/// `data.code` its error code.
fn refused(e: ApiError) -> ConnectError {
    ConnectError {
        message: e.message,
        data: Some(serde_json::json!({ "code": e.code })),
    }
}

/// The feeds of a CONNECT payload (`auth.feeds`, the default feed when
/// absent) and its token (`auth.token`).
fn subscription(auth: &Value) -> Result<(Vec<FeedName>, Option<&str>), ApiError> {
    let feeds = match auth.get("feeds") {
        None | Some(Value::Null) => vec![FeedName::main()],
        Some(Value::Array(names)) => {
            let names: Option<Vec<&str>> = names.iter().map(Value::as_str).collect();
            let names = names.ok_or_else(|| {
                ApiError::from(FeedError::BadFeed(BadFeed(
                    "auth.feeds must be an array of feed names".into(),
                )))
            })?;
            name::subscription(names).map_err(FeedError::from)?
        }
        Some(_) => {
            let bad = BadFeed("auth.feeds must be an array of feed names".into());
            return Err(FeedError::BadFeed(bad).into());
        }
    };
    Ok((feeds, auth.get("token").and_then(Value::as_str)))
}

impl Namespace for FeedNamespace {
    fn connect(&self, socket: &Socket, auth: &str) -> Result<(), ConnectError> {
        let resume = Resume::parse(auth, self.recovery)
            .map_err(|m| refused(ApiError::bad_request("invalid_query", m)))?;
        let auth: Value = serde_json::from_str(auth).unwrap_or(Value::Null);
        let (feeds, token) = subscription(&auth).map_err(refused)?;
        let grant = self.feed.grant(token);
        let ticket = self
            .feed
            .admit(&grant, feeds)
            .map_err(|e| refused(ApiError::from(e)))?;
        let sink = SocketSink {
            socket: socket.clone(),
            pid: resume.pid,
            recovery: self.recovery,
            more: false,
        };
        let inbound = futures::stream::once(socket.closed())
            .map(|()| Inbound::Closed)
            .boxed();
        // Liveness is the engine session's business (its own ping schedule
        // runs before any namespace is joined and is what the client
        // expects); the connection only ends when the socket does.
        ticket.attach(sink, inbound, resume.since, Liveness::Unchecked);
        Ok(())
    }

    fn event(&self, socket: &Socket, event: Event) {
        if ![CREATE_POST, UPDATE_POST, DELETE_POST].contains(&event.name.as_str()) {
            return;
        }
        let feed = self.feed.clone();
        let socket = socket.clone();
        async_std::task::spawn(async move {
            let auth: Value = serde_json::from_str(socket.auth()).unwrap_or(Value::Null);
            let token = auth.get("token").and_then(Value::as_str);
            // No argument is refused like a JSON `null` body: credential
            // first, then a 422 naming the body.
            let body = event.args.first().map_or("null", String::as_str);
            let reply = match write(&feed, &event.name, token, body).await {
                Ok(reply) => reply,
                Err(e) => {
                    if let Some(detail) = &e.detail {
                        log::warn!("socket.io {} failed: {detail}", event.name);
                    }
                    e.body()
                }
            };
            if let Some(ack) = event.ack {
                socket.ack(ack, &[&reply], &[]);
            }
        });
    }
}

/// `createPost`, `updatePost` or `deletePost`: the HTTP API's `POST
/// /posts`, `PATCH` and `DELETE /posts/{id}` over the socket, with the same
/// validation and errors. With a publish token configured, the client must
/// have connected with `auth: {token}`. Answers the ack's JSON.
async fn write(
    feed: &Feed,
    event: &str,
    token: Option<&str>,
    body: &str,
) -> Result<String, ApiError> {
    let started = std::time::Instant::now();
    let grant = feed.grant(token);
    if event == CREATE_POST {
        // `{feed?, idempotencyKey?, title, content, author?}`: the post goes
        // to `feed`, the default one when it is absent or null; a key makes
        // a retry safe, as `Idempotency-Key` does over HTTP (the route being
        // `createPost <feed>`).
        let mut key = None;
        let (target, body) = match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(mut fields)) => {
                key = fields.remove(IDEMPOTENCY_KEY);
                let target = match fields.remove("feed") {
                    Some(Value::String(name)) => FeedName::parse(&name).map_err(FeedError::from)?,
                    Some(Value::Null) | None => FeedName::main(),
                    Some(_) => {
                        let bad = BadFeed("feed must be a feed name".into());
                        return Err(FeedError::BadFeed(bad).into());
                    }
                };
                (target, Value::Object(fields).to_string())
            }
            _ => (FeedName::main(), body.to_owned()),
        };
        feed.may_publish(&grant, &target)?;
        let keyed = match key {
            None | Some(Value::Null) => None,
            Some(Value::String(key)) => Some(Keyed {
                key: Key::parse(&key)
                    .map_err(FeedError::from)
                    .inspect_err(|_| feed.reject())?,
                route: format!("{CREATE_POST} {target}"),
            }),
            Some(_) => {
                feed.reject();
                let bad = BadKey(format!("{IDEMPOTENCY_KEY} must be a string"));
                return Err(FeedError::from(bad).into());
            }
        };
        let created = feed
            .create(&grant, target, body.as_bytes(), keyed.as_ref())
            .await?;
        if !created.replayed {
            feed.created_in(started.elapsed());
        }
        return Ok(wire::post_ack(&created.stored.json));
    }
    // The credential first, as over HTTP (against the default feed, which
    // is all a client without one could write to); then `{id, ...fields}`:
    // the id names the post, the rest is the edit.
    feed.may_write_at_all(&grant)
        .inspect_err(|_| feed.reject())?;
    let mut fields = match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(fields)) => fields,
        _ => {
            return Err(ApiError::invalid_field(
                "body",
                format!("emit {event} with {{id, ...}}"),
            ))
        }
    };
    let id = match fields.remove("id") {
        Some(v) if as_id(&v).is_some() => as_id(&v).unwrap_or_default(),
        other => {
            let shown = other.map_or_else(|| "nothing".to_owned(), |v| v.to_string());
            return Err(ApiError::bad_request(
                "invalid_id",
                format!("`{shown}` is not a post id"),
            ));
        }
    };
    if event == UPDATE_POST {
        let patch = Value::Object(fields).to_string();
        let stored = feed
            .update(&grant, id, patch.as_bytes(), Expect::Live)
            .await?;
        Ok(wire::post_ack(&stored.json))
    } else {
        feed.delete(&grant, id, Expect::Live).await?;
        Ok(wire::deleted_ack(id))
    }
}

/// The connection actor's writer: the client's socket in `/`.
struct SocketSink {
    socket: Socket,
    pid: Option<String>,
    recovery: bool,
    /// More changes follow the next one at once.
    more: bool,
}

fn gone(reason: CloseReason) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, reason.as_str())
}

#[async_trait]
impl Outbound for SocketSink {
    fn more_pending(&mut self, more: bool) {
        self.more = more;
    }

    async fn welcome(&mut self, _id: ConnectionId, joined: Joined) -> io::Result<()> {
        let pid = self
            .recovery
            .then(|| self.pid.clone().unwrap_or_else(|| new_pid(joined.seq)));
        if self.socket.accept(pid.as_deref()) {
            Ok(())
        } else {
            Err(gone(CloseReason::TransportClose))
        }
    }

    async fn deliver(&mut self, delivery: &Delivery) -> io::Result<()> {
        let format = if self.recovery {
            Wire::SocketIo
        } else {
            Wire::SocketIoPlain
        };
        let frame = Frame::Text(delivery.frame(format).clone());
        let more = std::mem::take(&mut self.more);
        self.socket.push(frame, more).await.map_err(gone)
    }

    async fn ping(&mut self) -> io::Result<()> {
        // The engine session pings on its own schedule.
        Ok(())
    }

    async fn close(&mut self, close: Close) -> io::Result<()> {
        let reason = match close {
            Close::GOING_AWAY => CloseReason::ServerShutdown,
            Close::PROTOCOL_ERROR | Close::TOO_BIG => CloseReason::ProtocolError,
            _ => CloseReason::SlowConsumer,
        };
        self.socket.close_connection(reason);
        Ok(())
    }
}

impl Drop for SocketSink {
    fn drop(&mut self) {
        // The connection ended while the client is still there (it was too
        // slow, or a write failed): end its session so it reconnects and
        // recovers what it missed.
        if !self.socket.is_gone() {
            self.socket.close_connection(CloseReason::SlowConsumer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_points() {
        let pid = new_pid(Some(41));
        assert_eq!(pid_start(&pid), Some(41));
        assert_eq!(pid_start("short-3"), None);
        assert_eq!(Resume::parse("{}", true).unwrap(), Resume::default());
        // offset > since > pid.
        let auth = format!(r#"{{"pid":"{pid}","offset":"50","since":45}}"#);
        let r = Resume::parse(&auth, true).unwrap();
        assert_eq!((r.since, r.pid.as_deref()), (Some(50), Some(pid.as_str())));
        let auth = format!(r#"{{"pid":"{pid}","since":"45"}}"#);
        assert_eq!(Resume::parse(&auth, true).unwrap().since, Some(45));
        let auth = format!(r#"{{"pid":"{pid}"}}"#);
        assert_eq!(Resume::parse(&auth, true).unwrap().since, Some(41));
        // A pid that is not ours is ignored, not trusted.
        let r = Resume::parse(r#"{"pid":"someone-else","offset":"x"}"#, true).unwrap();
        assert_eq!(r, Resume::default());
        assert!(Resume::parse(r#"{"since":"abc"}"#, true).is_err());
        assert!(Resume::parse(r#"{"since":-1}"#, false).is_err());
        // Without recovery only since counts.
        let auth = format!(r#"{{"pid":"{pid}","offset":"50","since":3}}"#);
        assert_eq!(
            Resume::parse(&auth, false).unwrap(),
            Resume {
                since: Some(3),
                pid: None
            }
        );
    }
}
