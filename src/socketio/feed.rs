//! livefeed's main namespace: every Socket.IO client is a hub connection.
//!
//! Joining `/` starts a [`Connection`] actor whose sink is the client's
//! socket, exactly as `/ws` does with a websocket, so one broadcast reaches
//! both kinds of clients and replay, ordering and the slow-consumer bound
//! are the hub's. The CONNECT reply is the connection's welcome (sent
//! after it joined the hub), so the recovery id it carries names the exact
//! point after which every post reaches the client.
//!
//! Recovery: each `newPost` carries its post id as the offset; a client
//! that comes back with `offset` (or `auth.since`, or only the `pid`, which
//! encodes where it started) is replayed every stored post after that point
//! from sled, then goes live, with no gap and no duplicate.

use super::engine::packet::Frame;
use super::engine::{random_id, CloseReason};
use super::socket::{Event, Namespace, Socket};
use crate::error::ApiError;
use crate::http::AppState;
use crate::post::NewPost;
use async_trait::async_trait;
use futures::StreamExt;
use livefeed_actors::{Close, Connection, ConnectionId, Delivery, Encoding, Outbound};
use serde_json::Value;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use xactor::Actor;

/// A post as a Socket.IO event with its offset (recovery on):
/// `42["newPost",{"post":…},"<id>"]`. Encoding slot 1.
pub const NEW_POST: Encoding = Encoding::new(1, |id, post| {
    format!("42[\"newPost\",{{\"post\":{post}}},\"{id}\"]")
});

/// A post as a Socket.IO event without offset (recovery off):
/// `42["newPost",{"post":…}]`. Encoding slot 3 (slot 2 is SSE's).
pub const NEW_POST_PLAIN: Encoding =
    Encoding::new(3, |_, post| format!("42[\"newPost\",{{\"post\":{post}}}]"));

/// The event a client emits to publish (with an ack for the result).
pub const CREATE_POST: &str = "createPost";

/// The main namespace.
pub struct Feed {
    state: Arc<AppState>,
    recovery: bool,
}

impl Feed {
    /// The namespace over the server's state; `recovery` turns connection
    /// state recovery (pid and offsets) on.
    pub fn new(state: Arc<AppState>, recovery: bool) -> Self {
        Self { state, recovery }
    }
}

/// Where a (re)connecting client wants its feed to start.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// Replay stored posts with a higher id first.
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
            Some(v) => Some(as_id(v).ok_or("since must be a post id (an unsigned integer)")?),
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

/// A recovery id is `<random id>-<newest post id when it was issued>`.
fn new_pid(last_post_id: Option<u64>) -> String {
    format!("{}-{}", random_id(), last_post_id.unwrap_or(0))
}

fn pid_start(pid: &str) -> Option<u64> {
    let (random, start) = pid.rsplit_once('-')?;
    (random.len() == 20).then_some(())?;
    start.parse().ok()
}

impl Namespace for Feed {
    fn connect(&self, socket: &Socket, auth: &str) -> Result<(), String> {
        let resume = Resume::parse(auth, self.recovery)?;
        let state = &self.state;
        let connected = state.metrics.connected.load(Ordering::Relaxed) as usize;
        if connected >= state.config.max_connections {
            return Err("the server is at its connection limit; retry later".into());
        }
        let id = state.next_connection_id();
        let sink = SocketSink {
            socket: socket.clone(),
            pid: resume.pid,
            recovery: self.recovery,
        };
        let inbound = futures::stream::once(socket.closed())
            .map(|()| livefeed_actors::Inbound::Closed)
            .boxed();
        let mut config = state.connection_config();
        // Liveness is the engine session's business (its own ping schedule
        // runs before any namespace is joined and is what the client
        // expects); the connection only ends when the socket does.
        config.idle_timeout = Duration::MAX;
        let actor = Connection::new(
            id,
            sink,
            inbound,
            resume.since,
            state.hub.clone(),
            state.store.clone(),
            state.metrics.clone(),
            config,
        );
        async_std::task::spawn(async move {
            match actor.start().await {
                // The address keeps the actor alive until it stops itself.
                Ok(addr) => addr.wait_for_stop().await,
                Err(e) => log::debug!("socket.io connection {id}: did not start: {e}"),
            }
        });
        Ok(())
    }

    fn event(&self, socket: &Socket, event: Event) {
        if event.name != CREATE_POST {
            return;
        }
        let state = self.state.clone();
        let socket = socket.clone();
        async_std::task::spawn(async move {
            let reply = match create_post(&state, socket.auth(), event.args.first()).await {
                Ok(post) => format!(r#"{{"post":{post}}}"#),
                Err(e) => {
                    state.http.posts_rejected.fetch_add(1, Ordering::Relaxed);
                    e.body()
                }
            };
            if let Some(ack) = event.ack {
                socket.ack(ack, &[&reply], &[]);
            }
        });
    }
}

/// `createPost`: the HTTP API's `POST /posts` over the socket. With a
/// publish token configured, the client must have connected with
/// `auth: {token}`.
async fn create_post(
    state: &AppState,
    auth: &str,
    body: Option<&String>,
) -> Result<Arc<str>, ApiError> {
    if let Some(token) = &state.config.publish_token {
        let auth: Value = serde_json::from_str(auth).unwrap_or(Value::Null);
        let given = auth.get("token").and_then(Value::as_str).unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return Err(ApiError::new(
                tide::StatusCode::Unauthorized,
                "unauthorized",
                "creating posts needs the publish token in the handshake (auth: {token})",
            ));
        }
    }
    let body = body.ok_or_else(|| {
        ApiError::invalid_field(
            "body",
            "emit createPost with the post as its first argument",
        )
    })?;
    let post = NewPost::from_json(body.as_bytes())?;
    Ok(state.create_post(post).await?.json)
}

/// The same comparison as the HTTP API's bearer check.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The connection actor's writer: the client's socket in `/`.
struct SocketSink {
    socket: Socket,
    pid: Option<String>,
    recovery: bool,
}

fn gone(reason: CloseReason) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, reason.as_str())
}

#[async_trait]
impl Outbound for SocketSink {
    async fn welcome(&mut self, _id: ConnectionId, last_post_id: Option<u64>) -> io::Result<()> {
        let pid = self
            .recovery
            .then(|| self.pid.clone().unwrap_or_else(|| new_pid(last_post_id)));
        if self.socket.accept(pid.as_deref()) {
            Ok(())
        } else {
            Err(gone(CloseReason::TransportClose))
        }
    }

    async fn deliver(&mut self, delivery: &Delivery) -> io::Result<()> {
        let encoding = if self.recovery {
            NEW_POST
        } else {
            NEW_POST_PLAIN
        };
        let frame = Frame::Text(delivery.frame(encoding).clone());
        self.socket.push(frame).await.map_err(gone)
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
    fn post_frames() {
        let d = Delivery::new(7, r#"{"id":7}"#);
        assert_eq!(
            &**d.frame(NEW_POST),
            r#"42["newPost",{"post":{"id":7}},"7"]"#
        );
        assert_eq!(
            &**d.frame(NEW_POST_PLAIN),
            r#"42["newPost",{"post":{"id":7}}]"#
        );
    }

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
