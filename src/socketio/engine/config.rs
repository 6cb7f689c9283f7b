//! Engine.IO settings and its CORS rules.
//!
//! Browsers on other origins reach the engine over polling with
//! cross-origin requests; the allowed origins are the server's one
//! [`Origins`] policy, shared with `/ws`.

use crate::net::origin::Origins;
use std::time::Duration;
use tide::{Request, Response, StatusCode};

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
    pub origins: Origins,
    /// Least time between two websocket writes of one session, each of
    /// which then carries one frame. Zero (for real clients): frames
    /// queued together leave in one write. A client that handles one
    /// message per read and only then waits for the next loses a message
    /// that arrives in the same read as the one before it; the official
    /// protocol test suites do (socket.io-protocol issue 32: a CONNECT
    /// reply and the event emitted right after it), so the conformance
    /// server spaces its writes.
    pub write_spacing: Duration,
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
            origins: Origins::Any,
            write_spacing: Duration::ZERO,
        }
    }
}

/// The answer to a CORS preflight (`OPTIONS`).
pub(super) fn preflight<S>(req: &Request<S>) -> Response {
    let mut res = Response::new(StatusCode::NoContent);
    res.insert_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    if let Some(requested) = req.header("Access-Control-Request-Headers") {
        res.insert_header("Access-Control-Allow-Headers", requested.as_str());
    }
    res
}

/// Marks `res` as readable by `origin` (an origin already allowed).
pub(super) fn allow_origin(res: &mut Response, origin: &str) {
    res.insert_header("Access-Control-Allow-Origin", origin);
    res.insert_header("Access-Control-Allow-Credentials", "true");
    res.append_header("Vary", "Origin");
}
