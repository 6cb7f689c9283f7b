//! Starting and stopping a server.
//!
//! [`run`] takes a bound listener and a shutdown future, so the binary
//! passes its signal handler and tests pass a channel. On shutdown the
//! server stops accepting, closes every push connection with 1001, waits
//! (briefly) for them to go, and flushes the store.

use crate::http::{self, AppState};
use crate::store::{Store, StoreError};
use crate::Config;
use async_std::future::timeout;
use futures::channel::oneshot;
use futures::{FutureExt, StreamExt};
use livefeed_actors::{Close, CloseAll, Hub, HubConfig, Metrics};
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use xactor::Actor;

/// Pending connections the kernel queues before `accept`: a burst of
/// clients reconnecting at once must not lose SYNs.
pub const LISTEN_BACKLOG: i32 = 4096;
/// Pause after a failed `accept` (for example, out of file descriptors).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
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
    let store = Store::open(&config.data_dir)?;
    let metrics = Arc::new(Metrics::default());
    let hub_config = HubConfig {
        heartbeat_interval: config.heartbeat_interval,
        connection: http::connection_config(&config),
    };
    let hub = Hub::new(store.clone(), metrics.clone(), hub_config)
        .map_err(|e| ServerError::Hub(e.to_string()))?
        .start()
        .await
        .map_err(|e| ServerError::Hub(e.to_string()))?;
    // Cluster mode: creates go to Redis and a tailer feeds the store and hub.
    let cluster = match config.cluster.redis_url.clone() {
        Some(url) => Some(crate::cluster::Cluster::start(
            url,
            config.cluster.redis_stream.clone(),
            store.clone(),
            hub.clone(),
        )?),
        None => None,
    };
    let mut state = AppState::new(store.clone(), hub.clone(), metrics, config);
    state.cluster = cluster.clone();
    let state = Arc::new(state);
    let app = http::app(state);
    log::info!("livefeed listening on http://{addr}");

    let serving = accept_loop(app, async_std::net::TcpListener::from(listener));
    futures::select! {
        () = serving.fuse() => {}
        () = shutdown.fuse() => {}
    }

    log::info!("shutting down: closing push connections");
    if let Ok(drained) = hub.call(CloseAll(Close::GOING_AWAY)).await {
        if timeout(SHUTDOWN_GRACE, drained).await.is_err() {
            log::warn!("some connections did not close within {SHUTDOWN_GRACE:?}");
        }
    }
    // The tailer first: it feeds the hub and holds the store.
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

/// Accepts connections and serves HTTP/1.1 on each, as tide's own listener
/// does, plus `TCP_NODELAY`: responses and pushed frames are small, and
/// Nagle's algorithm would hold a response's second segment back until the
/// peer's delayed ACK (tens of milliseconds).
async fn accept_loop(app: tide::Server<http::State>, listener: async_std::net::TcpListener) {
    let mut incoming = listener.incoming();
    while let Some(stream) = incoming.next().await {
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of
                // spinning on accept.
                log::warn!("accept failed: {e}; pausing {ACCEPT_BACKOFF:?}");
                async_std::task::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("TCP_NODELAY: {e}");
        }
        async_std::task::spawn(crate::h1::serve_connection(app.clone(), stream));
    }
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
