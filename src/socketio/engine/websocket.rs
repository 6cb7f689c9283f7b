//! The websocket transport: a session opened over a websocket, or a
//! polling session's upgrade probe, then the reader and the writer that
//! drains the outbox.

use super::handle::Session;
use super::packet::{Frame, Packet};
use super::session::{CloseReason, Received, Refused, Take, Transport, Via};
use super::{Engine, EngineError};
use crate::net::websocket::{self, FrameHeader, Outbox, Upgraded};
use async_std::task;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use futures::StreamExt;
use livefeed_actors::write_within;
use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tide::http::Method;
use tide::{Request, Response};
use tide_websockets::{Message as WsMessage, WebSocketConnection};

impl Engine {
    pub(super) async fn websocket<S: Clone + Send + Sync + 'static>(
        self: &Arc<Self>,
        req: Request<S>,
        sid: Option<String>,
    ) -> Result<Response, EngineError> {
        let key = websocket_key(&req).ok_or(EngineError::BadRequest)?;
        let ws = self.next_ws.fetch_add(1, Ordering::Relaxed);
        // A probe for a polling session, or a session of its own.
        let probe = match sid {
            Some(sid) => {
                let session = self.find(&sid).ok_or(EngineError::SessionUnknown)?;
                match session.with_core(|core| core.probe_begin(ws)) {
                    Ok(()) => Probe::Session(session),
                    Err(Refused::Closed) => return Err(EngineError::SessionUnknown),
                    // Upgraded already, or another websocket is probing:
                    // as the reference server does, the handshake
                    // completes and the websocket is closed at once.
                    Err(Refused::BadRequest) => Probe::Refused,
                }
            }
            None if self.session_count() >= self.config.max_sessions => {
                return Err(EngineError::TooManySessions)
            }
            None => Probe::None,
        };
        let (res, upgraded) = websocket::switch(&key, self.config.max_payload).await;
        let engine = self.clone();
        task::spawn(async move {
            let Some(Upgraded { conn, outbox }) = upgraded.await else {
                if let Probe::Session(session) = probe {
                    session.with_core(|core| core.probe_end(ws));
                }
                return;
            };
            match probe {
                Probe::Session(session) => {
                    let timeout = engine.config.upgrade_timeout;
                    run_probe(session, conn, outbox, ws, timeout).await
                }
                Probe::Refused => close_quietly(&conn).await,
                Probe::None => match engine.open(Transport::WebSocket) {
                    Ok(session) => run_websocket(session, conn, outbox, 0).await,
                    Err(_) => close_websocket(&conn, CloseReason::SlowConsumer).await,
                },
            }
        });
        Ok(res)
    }
}

/// What a websocket handshake with a session id leads to.
enum Probe {
    /// No session id: a session of its own.
    None,
    /// Probing this polling session for an upgrade.
    Session(Arc<Session>),
    /// A session that can't take this websocket.
    Refused,
}

/// A probing websocket: answers `2probe`, waits for `5`, then carries the
/// session. Anything else, or no `5` in time, ends only the probe.
async fn run_probe(
    session: Arc<Session>,
    conn: WebSocketConnection,
    outbox: Outbox,
    ws: u64,
    upgrade_timeout: Duration,
) {
    let mut incoming = conn.clone();
    let upgrade = async {
        while let Some(Ok(message)) = incoming.next().await {
            let packet = match message {
                WsMessage::Text(text) => match Packet::decode(&text) {
                    Ok(packet) => packet,
                    Err(_) => return false,
                },
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                _ => return false,
            };
            match session.with_core(|core| core.receive(packet, Instant::now(), Via::WebSocket(ws)))
            {
                Received::ProbeReply => {
                    if send_frame(&outbox, &Frame::pong_probe(), false)
                        .await
                        .is_err()
                    {
                        return false;
                    }
                }
                Received::Upgraded => return true,
                _ => return false,
            }
        }
        false
    };
    let upgraded = async_std::future::timeout(upgrade_timeout, upgrade)
        .await
        .unwrap_or(false);
    if upgraded {
        log::debug!("engine.io session {} upgraded to websocket", session.sid);
        run_websocket(session, conn, outbox, ws).await;
    } else {
        session.with_core(|core| core.probe_end(ws));
        close_websocket(&conn, CloseReason::ProtocolError).await;
    }
}

/// Runs a websocket that carries the session: the writer drains the
/// outbox, this task reads.
async fn run_websocket(session: Arc<Session>, conn: WebSocketConnection, outbox: Outbox, ws: u64) {
    let (bell, rung) = async_channel::bounded(1);
    session.direct.set(outbox.clone()).ok();
    session.with_core(|core| core.set_bell(bell));
    task::spawn(write_loop(session.clone(), conn.clone(), outbox, rung));
    let mut incoming = conn;
    while let Some(item) = incoming.next().await {
        let packet = match item {
            Ok(WsMessage::Text(text)) => match Packet::decode(&text) {
                Ok(packet) => packet,
                Err(_) => {
                    session.close(CloseReason::ProtocolError);
                    return;
                }
            },
            Ok(WsMessage::Binary(bytes)) => Packet::Binary(bytes),
            Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => continue,
            Ok(WsMessage::Close(_)) => break,
            Err(tide_websockets::Error::Capacity(_)) => {
                session.close(CloseReason::PayloadTooLarge);
                return;
            }
            Err(_) => break,
        };
        let received =
            session.with_core(|core| core.receive(packet, Instant::now(), Via::WebSocket(ws)));
        if received == Received::ProbeFailed || !session.dispatch(received) {
            return;
        }
    }
    session.with_core(|core| {
        if core.websocket() == ws {
            core.close(CloseReason::TransportClose);
        }
    });
}

async fn write_loop(
    session: Arc<Session>,
    conn: WebSocketConnection,
    outbox: Outbox,
    rung: async_channel::Receiver<()>,
) {
    let spacing = session.write_spacing;
    let most = if spacing.is_zero() { usize::MAX } else { 1 };
    let mut last_write: Option<Instant> = None;
    loop {
        match session.with_core(|core| core.take_at_most(most)) {
            Take::Frames(frames) => {
                let wait =
                    last_write.map(|at| (at + spacing).saturating_duration_since(Instant::now()));
                if let Some(wait) = wait.filter(|wait| !wait.is_zero()) {
                    task::sleep(wait).await;
                }
                for (i, frame) in frames.iter().enumerate() {
                    // Frames taken together leave in as few writes as the
                    // outbox allows.
                    let more = i + 1 < frames.len();
                    let sent =
                        write_within(session.write_timeout, send_frame(&outbox, frame, more)).await;
                    if sent.is_err() {
                        session.close(CloseReason::TransportClose);
                        break;
                    }
                }
                session.with_core(|core| core.wrote());
                if !spacing.is_zero() {
                    last_write = Some(Instant::now());
                }
            }
            Take::Idle => {
                if rung.recv().await.is_err() {
                    return;
                }
            }
            Take::Close(reason) => {
                close_websocket(&conn, reason).await;
                return;
            }
        }
    }
}

/// Sends `frame` through the outbox (see [`net::cork`](crate::net::cork)):
/// the shared text behind a header, with no copy per client.
pub(super) async fn send_frame(outbox: &Outbox, frame: &Frame, more: bool) -> std::io::Result<()> {
    let (header, payload) = match frame {
        Frame::Text(text) => (FrameHeader::text(text.len()), text.as_bytes()),
        Frame::Binary(bytes) => (FrameHeader::binary(bytes.len()), &bytes[..]),
    };
    outbox.send(&[header.as_bytes(), payload], more).await
}

async fn close_websocket(conn: &WebSocketConnection, reason: CloseReason) {
    let (code, text) = reason.ws_close();
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: Cow::Borrowed(text),
    };
    // Best effort: the peer may be gone already.
    let close = conn.send(WsMessage::Close(Some(frame)));
    async_std::future::timeout(Duration::from_secs(1), close)
        .await
        .ok();
}

/// Closes a websocket that never carried a session: a close frame without
/// a status, as the reference server's `websocket.close()` sends.
async fn close_quietly(conn: &WebSocketConnection) {
    let close = conn.send(WsMessage::Close(None));
    async_std::future::timeout(Duration::from_secs(1), close)
        .await
        .ok();
}

/// The key of a websocket handshake Engine.IO accepts (a GET with valid
/// upgrade headers), if `req` is one.
fn websocket_key<S>(req: &Request<S>) -> Option<String> {
    if req.method() != Method::Get {
        return None;
    }
    websocket::check_upgrade(req).ok()?;
    websocket::handshake_key(req).ok()
}
