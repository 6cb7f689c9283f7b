//! Socket.IO v4 wire compatibility: Engine.IO protocol 4 and Socket.IO
//! protocol 5 at `/socket.io/`, so the stock `socket.io-client` works
//! against livefeed unmodified (see `docs/socketio.md`).
//!
//! Layout:
//! - [`engine`]: the Engine.IO server (polling, websocket, upgrade,
//!   heartbeat), with its packet codec ([`engine::packet`]) and the
//!   sans-IO session state machine ([`engine::session`]);
//! - [`packet`]: the Socket.IO packet codec;
//! - [`socket`]: namespaces, events, acks and binary attachments;
//! - [`feed`]: livefeed's `/` namespace, which plugs each client into the
//!   hub as a connection actor (`newPost`, recovery, `createPost`).
//!
//! Encoding slots of a post's shared frames: 1 is `newPost` with its
//! offset, 3 is `newPost` without (recovery off).

pub mod engine;
pub mod feed;
pub mod packet;
pub mod socket;

use crate::http::State;
use clap::{ArgAction, Args};
use engine::{Cors, Engine, EngineConfig};
use socket::SocketIo;
use std::sync::Arc;
use std::time::Duration;

/// Where Socket.IO is served.
pub const PATH: &str = "/socket.io/";

/// Time a probing websocket has to complete the upgrade.
pub const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// Socket.IO flags (flattened into the server's configuration).
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Serve Socket.IO (Engine.IO 4 / Socket.IO 5) clients at /socket.io/.
    #[arg(id = "socketio", long = "socketio", env = "LIVEFEED_SOCKETIO", default_value_t = true, action = ArgAction::Set)]
    pub enabled: bool,

    /// Socket.IO heartbeat: time between the server's pings (pingInterval).
    #[arg(id = "socketio_ping_interval", long = "socketio-ping-interval", env = "LIVEFEED_SOCKETIO_PING_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,

    /// Time a Socket.IO client has to answer a ping (pingTimeout).
    #[arg(id = "socketio_ping_timeout", long = "socketio-ping-timeout", env = "LIVEFEED_SOCKETIO_PING_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub ping_timeout: Duration,

    /// Largest Socket.IO POST body or websocket message, in bytes
    /// (maxPayload); larger ones get 413 or close the connection.
    #[arg(
        id = "socketio_max_payload",
        long = "socketio-max-payload",
        env = "LIVEFEED_SOCKETIO_MAX_PAYLOAD",
        default_value_t = 1_000_000
    )]
    pub max_payload: usize,

    /// Time a Socket.IO client has to join a namespace after connecting.
    #[arg(id = "socketio_connect_timeout", long = "socketio-connect-timeout", env = "LIVEFEED_SOCKETIO_CONNECT_TIMEOUT", default_value = "45s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// Connection state recovery: CONNECT replies carry a pid, each
    /// newPost its offset, and reconnecting clients get what they missed.
    #[arg(id = "socketio_recovery", long = "socketio-recovery", env = "LIVEFEED_SOCKETIO_RECOVERY", default_value_t = true, action = ArgAction::Set)]
    pub recovery: bool,

    /// Most concurrent Socket.IO sessions; more handshakes get 503.
    #[arg(
        id = "socketio_max_sessions",
        long = "socketio-max-sessions",
        env = "LIVEFEED_SOCKETIO_MAX_SESSIONS",
        default_value_t = 100_000
    )]
    pub max_sessions: usize,
}

/// Adds `/socket.io/` to livefeed's app (unless disabled).
pub fn mount(app: &mut tide::Server<State>) {
    let state = app.state().clone();
    let options = &state.config.socketio;
    if !options.enabled {
        return;
    }
    let config = &state.config;
    let engine_config = EngineConfig {
        ping_interval: options.ping_interval,
        ping_timeout: options.ping_timeout,
        max_payload: options.max_payload,
        upgrade_timeout: UPGRADE_TIMEOUT,
        max_sessions: options.max_sessions,
        outbox_frames: config.max_backlog_frames,
        outbox_bytes: config.max_backlog_bytes,
        write_timeout: config.heartbeat_timeout,
        cors: Cors::Allow(config.allowed_origins.clone()),
    };
    let feed = Arc::new(feed::Feed::new(state.clone(), options.recovery));
    let io = SocketIo::new(options.connect_timeout).namespace("/", feed);
    Engine::new(engine_config, Arc::new(io)).mount(app, PATH);
}
