//! The plain websocket transport at `GET /ws`.
//!
//! The upgrade is done here rather than by `tide_websockets::WebSocket` so
//! that inbound frames are capped at [`MAX_FRAME`] (tungstenite's default
//! is 64 MiB); the upgraded stream is then handed to tide-websockets as a
//! `WebSocketConnection`, whose writer is used by the connection actor only.

use crate::cork::{Cork, Corked};
use crate::error::ApiError;
use crate::http::State;
use async_std::task;
use async_trait::async_trait;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::WebSocketStream;
use futures::StreamExt;
use livefeed_actors::{Close, Connection, ConnectionId, Delivery, Encoding, Inbound, Outbound};
use sha1::{Digest, Sha1};
use std::borrow::Cow;
use std::io;
use std::sync::atomic::Ordering;
use tide::http::headers;
use tide::{Request, Response, StatusCode};
use tide_websockets::{Message, WebSocketConnection};
use xactor::Actor;

/// Largest inbound frame or message; larger ones close the connection with
/// 1009.
pub const MAX_FRAME: usize = 64 * 1024;

const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `/ws` wire format of a post: `{"event":"newPost","data":{"post":…}}`.
pub const NEW_POST: Encoding = Encoding::new(0, |_, post| {
    let mut frame = String::with_capacity(post.len() + 36);
    frame.push_str(r#"{"event":"newPost","data":{"post":"#);
    frame.push_str(post);
    frame.push_str("}}");
    frame
});

/// Handles `GET /ws`: checks the request, answers 101 and starts a
/// connection actor on the upgraded stream.
pub async fn upgrade(req: Request<State>) -> tide::Result {
    Ok(match accept(&req) {
        Ok((key, since)) => switch(req, &key, since).await,
        Err(e) => e.into_response(),
    })
}

fn accept(req: &Request<State>) -> Result<(String, Option<u64>), ApiError> {
    let state = req.state();
    if !header_has(req, headers::UPGRADE.as_str(), "websocket")
        || !header_has(req, headers::CONNECTION.as_str(), "upgrade")
    {
        return Err(ApiError::new(
            StatusCode::UpgradeRequired,
            "upgrade_required",
            "this route speaks websocket: send an Upgrade: websocket request",
        ));
    }
    check_origin(req, &state.config.allowed_origins)?;
    let key = req
        .header("Sec-WebSocket-Key")
        .map(|h| h.as_str().trim().to_owned())
        .ok_or_else(|| ApiError::bad_request("bad_handshake", "missing Sec-WebSocket-Key"))?;
    if req
        .header("Sec-WebSocket-Version")
        .map(|h| h.as_str().trim())
        != Some("13")
    {
        return Err(ApiError::bad_request(
            "bad_handshake",
            "Sec-WebSocket-Version must be 13",
        ));
    }
    let since = since_param(req)?;
    let connected = state.metrics.connected.load(Ordering::Relaxed) as usize;
    if connected >= state.config.max_connections {
        return Err(ApiError::new(
            StatusCode::ServiceUnavailable,
            "too_many_connections",
            "the server is at its connection limit; retry later",
        ));
    }
    Ok((key, since))
}

/// The `since` query parameter: replay posts with a higher id first.
pub fn since_param(req: &Request<State>) -> Result<Option<u64>, ApiError> {
    req.url()
        .query_pairs()
        .find(|(k, _)| k == "since")
        .map(|(_, v)| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    "since must be a post id (an unsigned integer)",
                )
            })
        })
        .transpose()
}

fn header_has(req: &Request<State>, name: &str, token: &str) -> bool {
    req.header(name).is_some_and(|values| {
        values
            .iter()
            .flat_map(|v| v.as_str().split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    })
}

/// Browsers send `Origin` with websocket upgrades; a page on another site
/// must not be able to subscribe on a visitor's behalf. Without an
/// allow-list only the server's own host is accepted; requests without
/// `Origin` (non-browser clients) are accepted.
pub fn check_origin(req: &Request<State>, allowed: &[String]) -> Result<(), ApiError> {
    let Some(origin) = req
        .header(headers::ORIGIN)
        .map(|h| h.as_str().trim().to_owned())
    else {
        return Ok(());
    };
    let ok = if allowed.is_empty() {
        let host = req.header(headers::HOST).map(|h| h.as_str().trim());
        let origin_host = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'));
        host.is_some() && origin_host.is_some_and(|o| Some(o) == host)
    } else {
        allowed
            .iter()
            .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(&origin))
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::Forbidden,
            "origin_not_allowed",
            format!("origin {origin} may not open websockets here (see --allowed-origin)"),
        ))
    }
}

async fn switch(req: Request<State>, key: &str, since: Option<u64>) -> Response {
    let mut res = Response::new(StatusCode::SwitchingProtocols);
    res.insert_header(headers::UPGRADE, "websocket");
    res.insert_header(headers::CONNECTION, "Upgrade");
    res.insert_header("Sec-WebSocket-Accept", accept_key(key));
    let upgraded = AsMut::<tide::http::Response>::as_mut(&mut res)
        .recv_upgrade()
        .await;
    let state = req.state().clone();
    task::spawn(async move {
        let Some(stream) = upgraded.await else {
            return;
        };
        let cork = Cork::default();
        let stream = tide::http::upgrade::Connection::new(Corked::new(stream, cork.clone()));
        let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(frame_limits())).await;
        let conn = WebSocketConnection::from(ws);
        let inbound = conn.clone().map(classify).boxed();
        let id = state.next_connection_id();
        let actor = Connection::new(
            id,
            WsSink { conn, cork },
            inbound,
            since,
            state.hub.clone(),
            state.store.clone(),
            state.metrics.clone(),
            state.connection_config(),
        );
        match actor.start().await {
            // The address is what keeps the actor alive; hold it until the
            // actor stops itself.
            Ok(addr) => addr.wait_for_stop().await,
            Err(e) => log::debug!("connection {id}: did not start: {e}"),
        }
    });
    res
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &str) -> String {
    use base64::Engine;
    let digest = Sha1::new()
        .chain_update(key.as_bytes())
        .chain_update(WEBSOCKET_GUID.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

fn frame_limits() -> WebSocketConfig {
    WebSocketConfig {
        max_send_queue: None,
        max_message_size: Some(MAX_FRAME),
        max_frame_size: Some(MAX_FRAME),
        accept_unmasked_frames: false,
    }
}

fn classify(item: Result<Message, tide_websockets::Error>) -> Inbound {
    use tide_websockets::Error;
    match item {
        Ok(Message::Close(_)) => Inbound::Closed,
        Ok(_) => Inbound::Alive,
        Err(Error::Capacity(_)) => Inbound::TooBig,
        Err(Error::Protocol(_) | Error::Utf8) => Inbound::Invalid,
        Err(_) => Inbound::Closed,
    }
}

/// The connection actor's writer: tide-websockets' connection over a
/// [`Corked`] stream.
struct WsSink {
    conn: WebSocketConnection,
    cork: Cork,
}

fn to_io(e: tide_websockets::Error) -> io::Error {
    match e {
        tide_websockets::Error::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

#[async_trait]
impl Outbound for WsSink {
    fn more_pending(&mut self, more: bool) {
        self.cork.set(more);
    }

    async fn welcome(&mut self, id: ConnectionId, last_post_id: Option<u64>) -> io::Result<()> {
        self.cork.set(false);
        let frame = serde_json::json!({
            "event": "welcome",
            "data": { "connectionId": format!("c{id}"), "lastPostId": last_post_id },
        });
        self.conn
            .send_string(frame.to_string())
            .await
            .map_err(to_io)
    }

    async fn deliver(&mut self, delivery: &Delivery) -> io::Result<()> {
        // tungstenite 0.13 takes owned text: one copy of the shared frame.
        let frame = delivery.frame(NEW_POST).to_string();
        self.conn.send_string(frame).await.map_err(to_io)
    }

    async fn ping(&mut self) -> io::Result<()> {
        self.cork.set(false);
        self.conn
            .send(Message::Ping(Vec::new()))
            .await
            .map_err(to_io)
    }

    async fn close(&mut self, close: Close) -> io::Result<()> {
        self.cork.set(false);
        let frame = CloseFrame {
            code: CloseCode::from(close.code),
            reason: Cow::Borrowed(close.reason),
        };
        self.conn
            .send(Message::Close(Some(frame)))
            .await
            .map_err(to_io)
    }
}
