//! The server's configuration: every flag, its environment variable and its
//! default.
//!
//! The structs here are plain data. clap reads them from the command line
//! and the environment (`livefeed --help` lists both); [`Config::new`]
//! builds the same defaults without reading either, for tests and
//! embedding, so a `LIVEFEED_*` variable in the shell never leaks into a
//! test server.

use crate::cluster::resp::RedisUrl;
use crate::feed::idempotency::DEFAULT_TTL as DEFAULT_IDEMPOTENCY_TTL;
use crate::store::Faults;
use clap::{ArgAction, Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default `--addr`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Default `--data-dir`.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default `--heartbeat-interval`.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(25);
/// Default `--heartbeat-timeout`.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default `--max-backlog-frames`.
pub const DEFAULT_MAX_BACKLOG_FRAMES: usize = 256;
/// Default `--max-backlog-bytes`.
pub const DEFAULT_MAX_BACKLOG_BYTES: usize = 1 << 20;
/// Default `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
/// Default `--redis-stream`.
pub const DEFAULT_REDIS_STREAM: &str = "livefeed:posts";
/// Default `--storage-reserve`.
pub const DEFAULT_STORAGE_RESERVE: u64 = crate::store::DEFAULT_RESERVE;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Pretty when standard error is a terminal, JSON otherwise.
    Auto,
    /// One human-readable line per event.
    Pretty,
    /// Newline-delimited JSON (femme's ndjson).
    Json,
}

/// Server configuration.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LIVEFEED_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,

    /// Directory of the sled database (created when missing).
    #[arg(long, env = "LIVEFEED_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// When set, creating, editing and deleting posts requires
    /// `Authorization: Bearer <token>` (or a JWT allowing it); the token
    /// reads and writes every feed, private ones included.
    #[arg(long, env = "LIVEFEED_PUBLISH_TOKEN", hide_env_values = true)]
    pub publish_token: Option<String>,

    /// The secret of the HS256 JWTs that grant access to private feeds
    /// (named `private-…`). Without it, private feeds are the publish
    /// token's alone.
    #[arg(long, env = "LIVEFEED_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Origins allowed to open websockets (repeatable, or comma-separated in
    /// the environment). Default: only the server's own host.
    #[arg(
        long = "allowed-origin",
        env = "LIVEFEED_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// How often the server pings each client.
    #[arg(long, env = "LIVEFEED_HEARTBEAT_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,

    /// How long after a ping a silent client is closed; also the limit on
    /// one write to a client.
    #[arg(long, env = "LIVEFEED_HEARTBEAT_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub heartbeat_timeout: Duration,

    /// Undelivered frames after which a client is closed as a slow consumer
    /// (close code 1008).
    #[arg(long, env = "LIVEFEED_MAX_BACKLOG_FRAMES", default_value_t = DEFAULT_MAX_BACKLOG_FRAMES)]
    pub max_backlog_frames: usize,

    /// Undelivered bytes after which a client is closed as a slow consumer.
    #[arg(long, env = "LIVEFEED_MAX_BACKLOG_BYTES", default_value_t = DEFAULT_MAX_BACKLOG_BYTES)]
    pub max_backlog_bytes: usize,

    /// Most concurrent push connections; more are refused with 503.
    #[arg(long, env = "LIVEFEED_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// How long a create's Idempotency-Key is remembered: a retry within
    /// it is answered with the first create's post instead of storing
    /// another.
    #[arg(long, env = "LIVEFEED_IDEMPOTENCY_TTL", default_value = "24h", value_parser = positive_duration)]
    pub idempotency_ttl: Duration,

    /// Log format.
    #[arg(long, env = "LIVEFEED_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// Bytes kept aside in the data directory (the file
    /// `livefeed.reserve`) while writes are taken: when the disk fills up,
    /// deleting it gives the store room to recover. 0 keeps none.
    #[arg(long, env = "LIVEFEED_STORAGE_RESERVE", default_value_t = DEFAULT_STORAGE_RESERVE)]
    pub storage_reserve: u64,

    /// Storage failures to inject: tests only, never set from the command
    /// line.
    #[arg(skip)]
    pub storage_faults: Option<Arc<Faults>>,

    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "LIVEFEED_LOG", default_value = "info")]
    pub log_level: log::LevelFilter,

    /// Socket.IO at /socket.io/.
    #[command(flatten)]
    pub socketio: SocketIoOptions,

    /// Cluster mode: `--redis-url` and `--redis-stream`.
    #[command(flatten)]
    pub cluster: ClusterOptions,
}

/// Socket.IO flags.
#[derive(Debug, Clone, Args)]
pub struct SocketIoOptions {
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

impl Default for SocketIoOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            connect_timeout: Duration::from_secs(45),
            recovery: true,
            max_sessions: 100_000,
        }
    }
}

/// Cluster flags.
#[derive(Debug, Clone, Args)]
pub struct ClusterOptions {
    /// Redis holding the shared post log (redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]).
    /// Setting it switches this node to cluster mode; see docs/cluster.md.
    #[arg(long, env = "LIVEFEED_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<RedisUrl>,

    /// The Redis stream that is the post log; the id counter is the key
    /// `<stream>:id`. Every node of one feed uses the same name.
    #[arg(long, env = "LIVEFEED_REDIS_STREAM", default_value = DEFAULT_REDIS_STREAM)]
    pub redis_stream: String,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_stream: DEFAULT_REDIS_STREAM.to_owned(),
        }
    }
}

impl Config {
    /// The defaults, listening on `addr` with data in `data_dir`; reads
    /// neither the command line nor the environment.
    pub fn new(addr: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            addr,
            data_dir: data_dir.into(),
            publish_token: None,
            jwt_secret: None,
            allowed_origins: Vec::new(),
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            heartbeat_timeout: DEFAULT_HEARTBEAT_TIMEOUT,
            max_backlog_frames: DEFAULT_MAX_BACKLOG_FRAMES,
            max_backlog_bytes: DEFAULT_MAX_BACKLOG_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            storage_reserve: DEFAULT_STORAGE_RESERVE,
            storage_faults: None,
            idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
            log_format: LogFormat::Auto,
            log_level: log::LevelFilter::Info,
            socketio: SocketIoOptions::default(),
            cluster: ClusterOptions::default(),
        }
    }
}

/// A duration above zero (`24h`, `90m`, `1h 30m`).
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be longer than zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

impl Default for Config {
    fn default() -> Self {
        // A constant that parses.
        let addr = DEFAULT_ADDR.parse().expect("the default address parses");
        Self::new(addr, DEFAULT_DATA_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        config: Config,
    }

    /// The hand-written defaults are clap's defaults. (Skipped when the
    /// shell running the tests sets `LIVEFEED_*`, which clap would read.)
    #[test]
    fn defaults_match_the_flags() {
        if std::env::vars().any(|(k, _)| k.starts_with("LIVEFEED_")) {
            eprintln!("skipped: LIVEFEED_* is set in the environment");
            return;
        }
        let parsed = Flags::parse_from(["livefeed"]).config;
        assert_eq!(format!("{parsed:?}"), format!("{:?}", Config::default()));
    }
}
