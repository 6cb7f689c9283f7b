//! An Engine.IO v4 server: sessions over HTTP long-polling and websocket,
//! with the upgrade from one to the other.
//!
//! [`Engine`] answers every request under its path (handshake and routing
//! here) and keeps the sessions; each [`Session`] wraps the sans-IO
//! [`session::Core`]. What the messages mean is the [`Handler`]'s business
//! (Socket.IO, or the conformance echo).
//!
//! Layout:
//! - this file: the engine, its routing, handshake and session registry;
//! - [`config`]: settings and CORS;
//! - [`session`]: the sans-IO session state machine;
//! - [`handle`]: a session's shared handle and heartbeat;
//! - [`polling`], [`websocket`]: the two transports;
//! - [`packet`]: the Engine.IO packet codec.
//!
//! No lock is held across an await or across a call into the handler.

pub mod config;
pub mod handle;
pub mod packet;
mod polling;
pub mod session;
mod websocket;

pub use config::EngineConfig;
use config::{allow_origin, preflight};
use handle::heartbeat;
pub use handle::Session;
use packet::Frame;
use session::{Core, Limits, Refused, Transport};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;
use tide::http::{headers, Method};
use tide::{Request, Response, StatusCode};

pub use session::{CloseReason, Message, Pushed};

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
            if !self.config.origins.allows(origin, host) {
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
            allow_origin(&mut res, &self.config.origins, &origin);
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
            write_spacing: self.config.write_spacing,
            direct: OnceLock::new(),
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
        async_std::task::spawn(heartbeat(Arc::downgrade(&session)));
        log::debug!("engine.io session {} opened ({transport:?})", session.sid);
        Ok(session)
    }
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
    fn random_ids_are_distinct_and_url_safe() {
        let a = random_id();
        assert_eq!(a.len(), 20);
        assert_ne!(a, random_id());
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
