//! The application: everything built once at startup, wired together, and
//! taken down in order.
//!
//! [`run`] takes a bound listener and a shutdown future, so the binary
//! passes its signal handler and tests pass a channel. It opens the store,
//! starts the hub, picks the publisher (the store itself, or the cluster's
//! shared log), builds the [`Feed`] and the route table ([`routes`]), and
//! serves. On shutdown the server stops accepting, closes every push
//! connection with 1001 and waits (briefly) for them to go, closes idle HTTP
//! connections and lets requests in flight finish, stops the cluster tailer
//! and the hub, and closes the store: once [`run`] returns, nothing holds
//! the data directory.

mod routes;

use crate::cluster::Cluster;
use crate::feed::publish::{Posts, Publisher};
use crate::feed::{access::Access, service, Feed};
use crate::http::h1;
use crate::socketio::engine::CloseReason;
use crate::store::{self, Store, StoreError};
use crate::Config;
use async_std::future::timeout;
use futures::channel::oneshot;
use futures::FutureExt;
use livefeed_actors::{Close, CloseAll, ConnectionConfig, Hub, HubConfig, Link, Metrics};
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use xactor::Actor;

/// Pending connections the kernel queues before `accept`: a burst of
/// clients reconnecting at once must not lose SYNs.
pub const LISTEN_BACKLOG: i32 = 4096;
/// How long shutdown waits for push connections to close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or serving the listener failed.
    #[error("listener error on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The store could not be opened or closed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hub actor could not start.
    #[error("could not start the hub: {0}")]
    Hub(String),
}

/// Binds `addr` with a deep accept queue.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    use socket2::{Domain, Socket, Type};
    let err = |source| ServerError::Listen { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(LISTEN_BACKLOG).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    Ok(socket.into())
}

/// The address `listener` is bound to (`configured` names it in errors).
fn local_addr(listener: &TcpListener, configured: SocketAddr) -> Result<SocketAddr, ServerError> {
    listener.local_addr().map_err(|source| ServerError::Listen {
        addr: configured,
        source,
    })
}

/// Serves on `listener` until `shutdown` completes, then shuts down
/// gracefully.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let addr = local_addr(&listener, config.addr)?;
    let options = store::Options {
        reserve: config.storage_reserve,
        faults: config.storage_faults.clone(),
    };
    let store = Store::open_with(&config.data_dir, options)?;
    let metrics = Arc::new(Metrics::default());
    let connection = ConnectionConfig {
        idle_timeout: config.heartbeat_interval + config.heartbeat_timeout,
        write_timeout: config.heartbeat_timeout,
        max_backlog_frames: config.max_backlog_frames,
        max_backlog_bytes: config.max_backlog_bytes,
    };
    let hub_config = HubConfig {
        heartbeat_interval: config.heartbeat_interval,
        connection: connection.clone(),
    };
    let hub = Hub::new(store.clone(), metrics.clone(), hub_config)
        .map_err(|e| ServerError::Hub(e.to_string()))?
        .start()
        .await
        .map_err(|e| ServerError::Hub(e.to_string()))?;
    // Every post that becomes durable here reaches the hub from the
    // store's writer, in id order, whoever published it.
    let broadcaster = hub.clone();
    store.on_commit(move |committed| service::broadcast(&broadcaster, committed));
    // Cluster mode: creates go to Redis, and a tailer feeds the store.
    let cluster = match config.cluster.redis_url.clone() {
        Some(url) => Some(Cluster::start(
            url,
            config.cluster.redis_stream.clone(),
            store.clone(),
            hub.clone(),
        )?),
        None => None,
    };
    let publisher: Arc<dyn Publisher> = match &cluster {
        Some(cluster) => cluster.clone(),
        None => store.clone(),
    };
    let posts: Arc<dyn Posts> = store.clone();
    let link = Link {
        hub: hub.clone(),
        history: store.clone(),
        metrics,
        config: connection,
    };
    let access = Access::new(config.publish_token.clone(), config.jwt_secret.as_deref());
    let feed = Feed::new(
        publisher,
        posts,
        access,
        link,
        config.max_connections,
        config.idempotency_ttl,
    );
    let routes = routes::app(&config, feed);
    log::info!("livefeed listening on http://{addr}");

    let (connections, http_shutdown) = h1::connections();
    let listener = async_std::net::TcpListener::from(listener);
    let serving = h1::accept_loop(routes.app, listener, connections);
    futures::select! {
        () = serving.fuse() => {}
        () = shutdown.fuse() => {}
    }

    // From here on every HTTP response is the last on its connection and
    // says so; idle keep-alive connections close.
    http_shutdown.begin();
    log::info!("shutting down: closing push connections");
    if let Ok(drained) = hub.call(CloseAll(Close::GOING_AWAY)).await {
        if timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            log::warn!("some connections did not close within {SHUTDOWN_GRACE:?}");
        }
    }
    // Socket.IO sessions that never joined the feed, then every HTTP
    // connection: requests in flight finish.
    if let Some(engine) = &routes.engine {
        engine.close_all(CloseReason::ServerShutdown);
    }
    if !http_shutdown.close(SHUTDOWN_GRACE).await {
        log::warn!("some HTTP requests did not finish within {SHUTDOWN_GRACE:?}");
    }
    // The tailer first: it feeds the store.
    if let Some(cluster) = &cluster {
        cluster.stop().await;
    }
    // Stop the hub before returning: it holds the store, and the store's
    // file lock must be free once `run` is done (a restart in the same
    // process opens it again).
    let mut stopping = hub.clone();
    if stopping.stop(None).is_ok() {
        timeout(SHUTDOWN_GRACE, hub.wait_for_stop()).await.ok();
    }
    store.close()?;
    log::info!("stopped");
    Ok(())
}

/// A server running in the background, for tests and embedding.
pub struct Handle {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: async_std::task::JoinHandle<Result<(), ServerError>>,
}

impl Handle {
    /// Starts a server with `config`; its `addr` may use port 0.
    pub fn spawn(config: Config) -> Result<Self, ServerError> {
        let listener = bind(config.addr)?;
        let addr = local_addr(&listener, config.addr)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let done = async_std::task::spawn(run(config, listener, stopped.map(drop)));
        Ok(Self {
            addr,
            stop: Some(stop),
            done,
        })
    }

    /// Shuts the server down gracefully and waits for it.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        self.done.await
    }
}
