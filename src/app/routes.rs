//! The route table: every route livefeed serves, in one place.

use crate::config::Config;
use crate::feed::Feed;
use crate::http::{self, RequestLog, Router, Server};
use crate::net::origin::Origins;
use crate::socketio::engine::Engine;
use crate::transport::{socketio, sse, ws};
use std::sync::Arc;

/// The application's routes, and what shutdown needs of them.
pub(super) struct Routes {
    /// The tide application.
    pub(super) app: Server,
    /// The Engine.IO server, unless Socket.IO is off.
    pub(super) engine: Option<Arc<Engine>>,
}

/// The tide application over `feed`.
pub(super) fn app(config: &Config, feed: Arc<Feed>) -> Routes {
    let mut server = tide::new();
    let log = RequestLog::default();
    let requests = log.0.clone();
    server.with(log);
    let mut app = Router::new(server);
    let origins = Origins::from_flags(&config.allowed_origins);
    http::posts::mount(&mut app, feed.clone());
    ws::mount(&mut app, feed.clone(), Arc::new(origins.clone()));
    let limits = socketio::Limits {
        backlog_frames: config.max_backlog_frames,
        backlog_bytes: config.max_backlog_bytes,
        write_timeout: config.heartbeat_timeout,
    };
    let engine = socketio::mount(
        &mut app,
        feed.clone(),
        &config.socketio,
        limits,
        origins.clone(),
    );
    sse::mount(&mut app, feed.clone());
    http::ops::mount(&mut app, feed, requests);
    // CORS for every route but Socket.IO's (which has its own), by the
    // same origin policy.
    let app = app.finish(origins);
    Routes { app, engine }
}
