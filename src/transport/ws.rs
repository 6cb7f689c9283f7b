//! The plain websocket transport at `GET /ws`: route handler and sink.
//!
//! The handler checks the handshake, the origin, `since` and the connection
//! limit, answers 101 ([`net::websocket`](crate::net::websocket)) and
//! attaches the upgraded socket to the feed; the connection actor is then
//! the only writer of the socket.

use crate::feed::access::Grant;
use crate::feed::{wire, Feed, Liveness};
use crate::http::{for_subject, handler, since_param, subscription, ApiError, Router};
use crate::net::origin::Origins;
use crate::net::websocket::{self, FrameHeader, HandshakeError, Outbox, Upgraded};
use async_trait::async_trait;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use futures::StreamExt;
use livefeed_actors::{Close, ConnectionId, Delivery, Inbound, Joined, Outbound};
use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use tide::{Request, Response, StatusCode};
use tide_websockets::{Message, WebSocketConnection};

/// Largest inbound frame or message; larger ones close the connection with
/// 1009.
pub const MAX_FRAME: usize = 64 * 1024;

#[derive(Clone)]
struct Route {
    feed: Arc<Feed>,
    origins: Arc<Origins>,
}

/// Adds `GET /ws` to `app`.
pub fn mount(app: &mut Router, feed: Arc<Feed>, origins: Arc<Origins>) {
    app.at("/ws").get(handler(Route { feed, origins }, upgrade));
}

async fn upgrade(route: Route, req: Request<()>) -> Response {
    let mut grant = Grant::Anonymous;
    let mut checked = || {
        websocket::check_upgrade(&req).map_err(refusal)?;
        route.origins.check(&req).map_err(|origin| {
            ApiError::new(
                StatusCode::Forbidden,
                "origin_not_allowed",
                format!("origin {origin} may not open websockets here (see --allowed-origin)"),
            )
        })?;
        let key = websocket::handshake_key(&req).map_err(refusal)?;
        let since = since_param(&req)?;
        let (feeds, token) = subscription(&req)?;
        grant = route.feed.grant(token.as_deref());
        let ticket = route.feed.admit(&grant, feeds)?;
        Ok((key, since, ticket))
    };
    let (key, since, ticket) = match checked() {
        Ok(checked) => checked,
        Err(e) => return for_subject(ApiError::into_response(e), &grant),
    };
    let (res, upgraded) = websocket::switch(&key, MAX_FRAME).await;
    async_std::task::spawn(async move {
        // A client gone before the upgrade drops its ticket here.
        if let Some(Upgraded { conn, outbox }) = upgraded.await {
            let inbound = conn.clone().map(classify).boxed();
            let sink = WsSink {
                conn,
                outbox,
                more: false,
            };
            ticket.attach(sink, inbound, since, Liveness::Heartbeat);
        }
    });
    for_subject(res, &grant)
}

fn refusal(e: HandshakeError) -> ApiError {
    match e {
        HandshakeError::NotUpgrade => ApiError::new(
            StatusCode::UpgradeRequired,
            "upgrade_required",
            "this route speaks websocket: send an Upgrade: websocket request",
        ),
        e => ApiError::bad_request("bad_handshake", e.to_string()),
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

/// The connection actor's writer: changes go through the outbox, as a
/// header and the frame text every `/ws` client shares; the welcome and
/// control frames through tide-websockets' connection, over the same
/// stream.
struct WsSink {
    conn: WebSocketConnection,
    outbox: Outbox,
    /// More changes follow the next one at once.
    more: bool,
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
        self.more = more;
    }

    async fn welcome(&mut self, id: ConnectionId, joined: Joined) -> io::Result<()> {
        let frame = wire::ws_welcome(id, joined);
        self.conn.send_string(frame).await.map_err(to_io)
    }

    async fn deliver(&mut self, delivery: &Delivery) -> io::Result<()> {
        let text = delivery.frame(wire::Wire::Ws).as_bytes();
        let header = FrameHeader::text(text.len());
        let more = std::mem::take(&mut self.more);
        self.outbox.send(&[header.as_bytes(), text], more).await
    }

    async fn ping(&mut self) -> io::Result<()> {
        self.conn
            .send(Message::Ping(Vec::new()))
            .await
            .map_err(to_io)
    }

    async fn close(&mut self, close: Close) -> io::Result<()> {
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
