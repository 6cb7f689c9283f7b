//! An Engine.IO v4 server: sessions over HTTP long-polling and websocket,
//! with the upgrade from one to the other.
//!
//! [`Engine`] answers every request under its path and keeps the sessions;
//! each [`Session`] wraps the sans-IO [`session::Core`] in a mutex and runs
//! three small tasks around it: the heartbeat timer, and for a websocket a
//! reader and the writer that drains the outbox. What the messages mean is
//! the [`Handler`]'s business (Socket.IO, or the conformance echo).
//!
//! No lock is held across an await or across a call into the handler.

pub mod packet;
pub mod session;

use crate::cork::{Cork, Corked};
use crate::ws::accept_key;
use async_std::task;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::WebSocketStream;
use futures::StreamExt;
use livefeed_actors::write_within;
use packet::{encode_payload, Frame, Packet};
use session::{Core, Limits, Poll, Received, Refused, Take, Transport, Via};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};
use tide::http::{headers, Method};
use tide::{Request, Response, StatusCode};
use tide_websockets::{Message as WsMessage, WebSocketConnection};

pub use session::{CloseReason, Message, Pushed};

/// Engine.IO settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Time between the server's pings (`pingInterval`).
    pub ping_interval: Duration,
    /// Time the client has to answer a ping (`pingTimeout`).
    pub ping_timeout: Duration,
    /// Largest POST body or websocket message, in bytes (`maxPayload`).
    pub max_payload: usize,
    /// Time a probing websocket has to send `5` after `2probe`.
    pub upgrade_timeout: Duration,
    /// Most sessions at once; more handshakes are refused with 503.
    pub max_sessions: usize,
    /// Outbox frames past which feed frames wait for the client to read.
    pub outbox_frames: usize,
    /// Outbox bytes past which feed frames wait for the client to read.
    pub outbox_bytes: usize,
    /// Longest a single websocket write may take.
    pub write_timeout: Duration,
    /// Which browser origins may talk to the engine.
    pub cors: Cors,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            upgrade_timeout: Duration::from_secs(10),
            max_sessions: 100_000,
            outbox_frames: 256,
            outbox_bytes: 1 << 20,
            write_timeout: Duration::from_secs(20),
            cors: Cors::Any,
        }
    }
}

/// Which `Origin`s are accepted (requests without one always are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// Any origin.
    Any,
    /// These origins (`*` among them means any); when empty, only the
    /// server's own host.
    Allow(Vec<String>),
}

impl Cors {
    fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        match self {
            Cors::Any => true,
            Cors::Allow(list) if list.is_empty() => {
                let origin_host = origin
                    .split_once("://")
                    .map(|(_, rest)| rest.trim_end_matches('/'));
                host.is_some() && origin_host == host
            }
            Cors::Allow(list) => list
                .iter()
                .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin)),
        }
    }
}

/// What an engine does with new sessions.
pub trait Handler: Send + Sync + 'static {
    /// A session opened; the returned value receives its messages.
    fn open(&self, session: &Arc<Session>) -> Arc<dyn SessionHandler>;
}

/// Receives one session's messages and its end.
pub trait SessionHandler: Send + Sync + 'static {
    /// A message arrived (in order; never concurrently for one session).
    fn message(&self, session: &Arc<Session>, message: Message);
    /// The session closed.
    fn closed(&self, session: &Arc<Session>, reason: CloseReason);
}

/// An Engine.IO server.
pub struct Engine {
    config: EngineConfig,
    handler: Arc<dyn Handler>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    next_ws: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Engine.IO's error codes, sent as `{"code","message"}` with a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EngineError {
    TransportUnknown,
    SessionUnknown,
    BadHandshakeMethod,
    BadRequest,
    Forbidden,
    UnsupportedProtocol,
    TooManySessions,
    PayloadTooLarge,
}

impl EngineError {
    fn response(self) -> Response {
        let (status, code, message) = match self {
            EngineError::TransportUnknown => (400, 0, "Transport unknown"),
            EngineError::SessionUnknown => (400, 1, "Session ID unknown"),
            EngineError::BadHandshakeMethod => (400, 2, "Bad handshake method"),
            EngineError::BadRequest => (400, 3, "Bad request"),
            EngineError::Forbidden => (403, 4, "Forbidden"),
            EngineError::UnsupportedProtocol => (400, 5, "Unsupported protocol version"),
            EngineError::TooManySessions => (503, 3, "Too many sessions"),
            EngineError::PayloadTooLarge => (413, 3, "Payload too large"),
        };
        let body = serde_json::json!({ "code": code, "message": message }).to_string();
        Response::builder(StatusCode::try_from(status).unwrap_or(StatusCode::BadRequest))
            .content_type(tide::http::mime::JSON)
            .body(body)
            .build()
    }
}

impl From<Refused> for EngineError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Closed => EngineError::SessionUnknown,
            Refused::BadRequest => EngineError::BadRequest,
        }
    }
}

/// The query parameters Engine.IO reads.
struct Query {
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

impl Query {
    fn of<S>(req: &Request<S>) -> Self {
        let mut q = Query {
            eio: None,
            transport: None,
            sid: None,
        };
        for (key, value) in req.url().query_pairs() {
            match &*key {
                "EIO" => q.eio = Some(value.into_owned()),
                "transport" => q.transport = Some(value.into_owned()),
                "sid" => q.sid = Some(value.into_owned()),
                _ => {}
            }
        }
        q
    }
}

impl Engine {
    /// An engine handing its sessions to `handler`.
    pub fn new(config: EngineConfig, handler: Arc<dyn Handler>) -> Arc<Self> {
        Arc::new(Self {
            config,
            handler,
            sessions: Mutex::new(HashMap::new()),
            next_ws: AtomicU64::new(1),
        })
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Sessions open now.
    pub fn session_count(&self) -> usize {
        self.registry().len()
    }

    /// Closes every session.
    pub fn close_all(&self, reason: CloseReason) {
        let sessions: Vec<_> = self.registry().values().cloned().collect();
        for session in sessions {
            session.close(reason);
        }
    }

    fn registry(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        // A panic elsewhere cannot leave the map half-updated.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn find(&self, sid: &str) -> Option<Arc<Session>> {
        self.registry().get(sid).cloned()
    }

    /// Routes every method on `path` (with and without a trailing slash)
    /// to this engine.
    pub fn mount<S: Clone + Send + Sync + 'static>(
        self: &Arc<Self>,
        app: &mut tide::Server<S>,
        path: &str,
    ) {
        let base = path.trim_end_matches('/');
        for path in [base.to_owned(), format!("{base}/")] {
            let mut route = app.at(&path);
            // Explicit methods, so catch-all GET routes do not win.
            for method in [
                Method::Get,
                Method::Post,
                Method::Options,
                Method::Put,
                Method::Delete,
                Method::Patch,
                Method::Head,
            ] {
                let engine = self.clone();
                route.method(method, move |req: Request<S>| {
                    let engine = engine.clone();
                    async move { Ok(engine.handle(req).await) }
                });
            }
        }
    }

    /// Answers one request.
    pub async fn handle<S: Clone + Send + Sync + 'static>(
        self: Arc<Self>,
        req: Request<S>,
    ) -> Response {
        let origin = req.header(headers::ORIGIN).map(|h| h.as_str().to_owned());
        if let Some(origin) = &origin {
            let host = req.header(headers::HOST).map(|h| h.as_str().trim());
            if !self.config.cors.allows(origin.trim(), host) {
                return EngineError::Forbidden.response();
            }
        }
        let mut res = if req.method() == Method::Options {
            preflight(&req)
        } else {
            match self.route(req).await {
                Ok(res) => res,
                Err(e) => e.response(),
            }
        };
        if let Some(origin) = origin {
            res.insert_header("Access-Control-Allow-Origin", origin);
            res.insert_header("Access-Control-Allow-Credentials", "true");
            res.append_header("Vary", "Origin");
        }
        res
    }

    async fn route<S: Clone + Send + Sync + 'static>(
        self: &Arc<Self>,
        req: Request<S>,
    ) -> Result<Response, EngineError> {
        let query = Query::of(&req);
        let transport = match query.transport.as_deref() {
            Some("polling") => Transport::Polling,
            Some("websocket") => Transport::WebSocket,
            _ => return Err(EngineError::TransportUnknown),
        };
        if query.eio.as_deref() != Some("4") {
            return Err(EngineError::UnsupportedProtocol);
        }
        match (transport, query.sid) {
            (Transport::Polling, None) => self.handshake(&req),
            (Transport::Polling, Some(sid)) => {
                let session = self.find(&sid).ok_or(EngineError::SessionUnknown)?;
                match req.method() {
                    Method::Get => session.poll().await,
                    Method::Post => session.post(req).await,
                    _ => Err(EngineError::BadRequest),
                }
            }
            (Transport::WebSocket, sid) => self.websocket(req, sid).await,
        }
    }

    fn handshake<S>(self: &Arc<Self>, req: &Request<S>) -> Result<Response, EngineError> {
        if req.method() != Method::Get {
            return Err(EngineError::BadHandshakeMethod);
        }
        let session = self.open(Transport::Polling)?;
        Ok(text_response(format!("0{}", self.handshake_json(&session))))
    }

    fn handshake_json(&self, session: &Session) -> String {
        let upgrades = match session.core().transport() {
            Transport::Polling => r#"["websocket"]"#,
            Transport::WebSocket => "[]",
        };
        // Written out to keep the reference server's key order.
        format!(
            r#"{{"sid":{},"upgrades":{upgrades},"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            serde_json::Value::from(&*session.sid),
            self.config.ping_interval.as_millis(),
            self.config.ping_timeout.as_millis(),
            self.config.max_payload,
        )
    }

    fn open(self: &Arc<Self>, transport: Transport) -> Result<Arc<Session>, EngineError> {
        let limits = Limits {
            ping_interval: self.config.ping_interval,
            ping_timeout: self.config.ping_timeout,
            max_payload: self.config.max_payload,
            outbox_frames: self.config.outbox_frames.max(1),
            outbox_bytes: self.config.outbox_bytes.max(1),
        };
        let session = Arc::new(Session {
            sid: random_id().into(),
            core: Mutex::new(Core::new(transport, Instant::now(), limits)),
            handler: OnceLock::new(),
            engine: Arc::downgrade(self),
            write_timeout: self.config.write_timeout,
        });
        {
            let mut sessions = self.registry();
            if sessions.len() >= self.config.max_sessions {
                return Err(EngineError::TooManySessions);
            }
            sessions.insert(session.sid.clone(), session.clone());
        }
        if transport == Transport::WebSocket {
            // The open packet is the websocket's first frame.
            let open = Frame::open(&self.handshake_json(&session));
            session.core().push(open, false);
        }
        let handler = self.handler.open(&session);
        session.handler.set(handler).ok();
        task::spawn(heartbeat(Arc::downgrade(&session)));
        log::debug!("engine.io session {} opened ({transport:?})", session.sid);
        Ok(session)
    }

    async fn websocket<S: Clone + Send + Sync + 'static>(
        self: &Arc<Self>,
        req: Request<S>,
        sid: Option<String>,
    ) -> Result<Response, EngineError> {
        let key = websocket_key(&req).ok_or(EngineError::BadRequest)?;
        let ws = self.next_ws.fetch_add(1, Ordering::Relaxed);
        // A probe for a polling session, or a session of its own.
        let probed = match sid {
            Some(sid) => {
                let session = self.find(&sid).ok_or(EngineError::SessionUnknown)?;
                session.with_core(|core| core.probe_begin(ws))?;
                Some(session)
            }
            None if self.session_count() >= self.config.max_sessions => {
                return Err(EngineError::TooManySessions)
            }
            None => None,
        };
        let mut res = Response::new(StatusCode::SwitchingProtocols);
        res.insert_header(headers::UPGRADE, "websocket");
        res.insert_header(headers::CONNECTION, "Upgrade");
        res.insert_header("Sec-WebSocket-Accept", accept_key(&key));
        let upgraded = AsMut::<tide::http::Response>::as_mut(&mut res)
            .recv_upgrade()
            .await;
        let engine = self.clone();
        task::spawn(async move {
            let Some(stream) = upgraded.await else {
                if let Some(session) = probed {
                    session.with_core(|core| core.probe_end(ws));
                }
                return;
            };
            let limits = WebSocketConfig {
                max_send_queue: None,
                max_message_size: Some(engine.config.max_payload),
                max_frame_size: Some(engine.config.max_payload),
                accept_unmasked_frames: false,
            };
            let cork = Cork::default();
            let stream = tide::http::upgrade::Connection::new(Corked::new(stream, cork.clone()));
            let stream = WebSocketStream::from_raw_socket(stream, Role::Server, Some(limits)).await;
            let conn = WebSocketConnection::from(stream);
            match probed {
                Some(session) => {
                    let timeout = engine.config.upgrade_timeout;
                    run_probe(session, conn, cork, ws, timeout).await
                }
                None => match engine.open(Transport::WebSocket) {
                    Ok(session) => run_websocket(session, conn, cork, 0).await,
                    Err(_) => close_websocket(&conn, CloseReason::SlowConsumer).await,
                },
            }
        });
        Ok(res)
    }
}

/// One Engine.IO session.
pub struct Session {
    sid: Arc<str>,
    core: Mutex<Core>,
    handler: OnceLock<Arc<dyn SessionHandler>>,
    engine: Weak<Engine>,
    write_timeout: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    fn core(&self) -> MutexGuard<'_, Core> {
        // The core's methods do not panic halfway through an update.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the core; if that closed the session, unregisters it
    /// and tells the handler (after the lock is released).
    fn with_core<R>(self: &Arc<Self>, f: impl FnOnce(&mut Core) -> R) -> R {
        let (result, closed) = {
            let mut core = self.core();
            let result = f(&mut core);
            (result, core.take_just_closed())
        };
        if let Some(reason) = closed {
            self.finish(reason);
        }
        result
    }

    fn finish(self: &Arc<Self>, reason: CloseReason) {
        log::debug!("engine.io session {} closed: {reason:?}", self.sid);
        if let Some(engine) = self.engine.upgrade() {
            engine.registry().remove(&self.sid);
        }
        if let Some(handler) = self.handler.get() {
            handler.closed(self, reason);
        }
    }

    /// Whether the session has closed.
    pub fn is_closed(&self) -> bool {
        self.core().closed().is_some()
    }

    /// Queues control frames together (a packet and its attachments stay
    /// adjacent). False when the session is closed.
    pub fn send(self: &Arc<Self>, frames: impl IntoIterator<Item = Frame>) -> bool {
        self.with_core(|core| {
            frames
                .into_iter()
                .all(|frame| core.push(frame, false) == Pushed::Queued)
        })
    }

    /// Queues a bulk frame, waiting while the outbox is full. Fails once
    /// the session is closed.
    pub async fn push(self: &Arc<Self>, frame: Frame) -> Result<(), CloseReason> {
        loop {
            let room = self.with_core(|core| match core.push(frame.clone(), true) {
                Pushed::Queued => Ok(None),
                Pushed::Full => Ok(Some(core.room())),
                Pushed::Closed => Err(core.closed().unwrap_or(CloseReason::TransportClose)),
            })?;
            match room {
                None => return Ok(()),
                // A dropped sender means the session closed; the next
                // push says so.
                Some(room) => room.await.ok().unwrap_or(()),
            }
        }
    }

    /// Closes the session.
    pub fn close(self: &Arc<Self>, reason: CloseReason) {
        self.with_core(|core| core.close(reason));
    }

    fn dispatch(self: &Arc<Self>, received: Received) -> bool {
        match received {
            Received::Message(message) => {
                if let Some(handler) = self.handler.get() {
                    handler.message(self, message);
                }
                true
            }
            Received::Closed => false,
            _ => true,
        }
    }

    async fn poll(self: &Arc<Self>) -> Result<Response, EngineError> {
        let frames = match self.with_core(|core| core.poll())? {
            Poll::Ready(frames) => frames,
            // A dropped sender without an answer only happens at close.
            Poll::Wait(rx) => rx.await.unwrap_or_else(|_| vec![Frame::close()]),
        };
        Ok(text_response(encode_payload(&frames)))
    }

    async fn post<S>(self: &Arc<Self>, mut req: Request<S>) -> Result<Response, EngineError> {
        self.with_core(|core| core.post_begin())?;
        let result = self.read_post(&mut req).await;
        self.with_core(|core| core.post_end());
        result.map(|()| {
            Response::builder(StatusCode::Ok)
                .content_type("text/html")
                .body("ok")
                .build()
        })
    }

    async fn read_post<S>(self: &Arc<Self>, req: &mut Request<S>) -> Result<(), EngineError> {
        use async_std::io::ReadExt;
        let max = self.engine.upgrade().map_or(0, |e| e.config.max_payload);
        let mut body = Vec::new();
        if req.len().is_some_and(|len| len > max) {
            self.close(CloseReason::PayloadTooLarge);
            return Err(EngineError::PayloadTooLarge);
        }
        let read = req
            .take_body()
            .take(max as u64 + 1)
            .read_to_end(&mut body)
            .await;
        if read.is_err() {
            self.close(CloseReason::TransportClose);
            return Err(EngineError::BadRequest);
        }
        if body.len() > max {
            self.close(CloseReason::PayloadTooLarge);
            return Err(EngineError::PayloadTooLarge);
        }
        let Ok(packets) = Packet::decode_payload(&body) else {
            self.close(CloseReason::ProtocolError);
            return Err(EngineError::BadRequest);
        };
        for packet in packets {
            let received =
                self.with_core(|core| core.receive(packet, Instant::now(), Via::Polling));
            if !self.dispatch(received) {
                break;
            }
        }
        Ok(())
    }
}

/// Pings on schedule and closes the session when a ping goes unanswered.
/// Holds the session weakly, so a closed session is freed meanwhile.
async fn heartbeat(session: Weak<Session>) {
    loop {
        let Some(strong) = session.upgrade() else {
            return;
        };
        let next = strong.with_core(|core| core.tick(Instant::now()));
        drop(strong);
        let Some(next) = next else { return };
        task::sleep(next.saturating_duration_since(Instant::now())).await;
    }
}

/// A probing websocket: answers `2probe`, waits for `5`, then carries the
/// session. Anything else, or no `5` in time, ends only the probe.
async fn run_probe(
    session: Arc<Session>,
    conn: WebSocketConnection,
    cork: Cork,
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
                    if send_frame(&conn, &Frame::pong_probe()).await.is_err() {
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
        run_websocket(session, conn, cork, ws).await;
    } else {
        session.with_core(|core| core.probe_end(ws));
        close_websocket(&conn, CloseReason::ProtocolError).await;
    }
}

/// Runs a websocket that carries the session: the writer drains the
/// outbox, this task reads.
async fn run_websocket(session: Arc<Session>, conn: WebSocketConnection, cork: Cork, ws: u64) {
    let (bell, rung) = async_channel::bounded(1);
    session.with_core(|core| core.set_bell(bell));
    task::spawn(write_loop(session.clone(), conn.clone(), cork, rung));
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
    cork: Cork,
    rung: async_channel::Receiver<()>,
) {
    loop {
        match session.with_core(|core| core.take()) {
            Take::Frames(frames) => {
                for (i, frame) in frames.iter().enumerate() {
                    // Frames taken together leave in as few writes as the
                    // cork allows.
                    cork.set(i + 1 < frames.len());
                    let sent = write_within(session.write_timeout, async {
                        send_frame(&conn, frame)
                            .await
                            .map_err(std::io::Error::other)
                    })
                    .await;
                    if sent.is_err() {
                        cork.set(false);
                        session.close(CloseReason::TransportClose);
                        break;
                    }
                }
            }
            Take::Idle => {
                if rung.recv().await.is_err() {
                    return;
                }
            }
            Take::Close(reason) => {
                cork.set(false);
                close_websocket(&conn, reason).await;
                return;
            }
        }
    }
}

async fn send_frame(
    conn: &WebSocketConnection,
    frame: &Frame,
) -> async_tungstenite::tungstenite::Result<()> {
    match frame {
        // tungstenite 0.13 takes owned buffers: one copy of the shared frame.
        Frame::Text(text) => conn.send_string(text.to_string()).await,
        Frame::Binary(bytes) => conn.send_bytes(bytes.to_vec()).await,
    }
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

fn websocket_key<S>(req: &Request<S>) -> Option<String> {
    let has = |name: &str, token: &str| {
        req.header(name).is_some_and(|values| {
            values
                .iter()
                .flat_map(|v| v.as_str().split(','))
                .any(|v| v.trim().eq_ignore_ascii_case(token))
        })
    };
    if req.method() != Method::Get
        || !has(headers::UPGRADE.as_str(), "websocket")
        || !has(headers::CONNECTION.as_str(), "upgrade")
        || req
            .header("Sec-WebSocket-Version")
            .map(|h| h.as_str().trim())
            != Some("13")
    {
        return None;
    }
    req.header("Sec-WebSocket-Key")
        .map(|h| h.as_str().trim().to_owned())
}

fn preflight<S>(req: &Request<S>) -> Response {
    let mut res = Response::new(StatusCode::NoContent);
    res.insert_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    if let Some(requested) = req.header("Access-Control-Request-Headers") {
        res.insert_header("Access-Control-Allow-Headers", requested.as_str());
    }
    res
}

fn text_response(body: String) -> Response {
    Response::builder(StatusCode::Ok)
        .content_type("text/plain; charset=UTF-8")
        .body(body)
        .build()
}

/// 20 URL-safe characters from 15 random bytes: session, socket and
/// recovery ids, unguessable because a session id is all a request needs.
pub fn random_id() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 15];
    if getrandom::getrandom(&mut bytes).is_err() {
        // The OS generator does not fail on supported platforms; if it
        // ever did, fall back to a non-repeating (but guessable) id.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&n.to_be_bytes());
        bytes[8..].copy_from_slice(&(std::process::id() as u64).to_be_bytes()[1..]);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_rules() {
        assert!(Cors::Any.allows("http://evil.example", Some("a:1")));
        let same = Cors::Allow(Vec::new());
        assert!(same.allows("http://a:1", Some("a:1")));
        assert!(!same.allows("http://b:1", Some("a:1")));
        assert!(!same.allows("http://a:1", None));
        let list = Cors::Allow(vec!["https://x.example/".into()]);
        assert!(list.allows("https://x.example", Some("a")));
        assert!(!list.allows("https://y.example", Some("a")));
        assert!(Cors::Allow(vec!["*".into()]).allows("https://y.example", None));
    }

    #[test]
    fn random_ids_are_distinct_and_url_safe() {
        let a = random_id();
        assert_eq!(a.len(), 20);
        assert_ne!(a, random_id());
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
