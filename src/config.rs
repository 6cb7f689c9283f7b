//! Command line and environment configuration.
//!
//! Every flag has an environment variable; `livefeed --help` lists both.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A realtime post feed server: posts are stored durably and pushed live to
/// every connected client.
#[derive(Debug, Parser)]
#[command(name = "livefeed", version, about)]
pub struct Cli {
    /// What to do; without a subcommand livefeed serves.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server options (for plain `livefeed` as for `livefeed serve`).
    #[command(flatten)]
    pub serve: Config,
}

/// livefeed's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(Box<Config>),
    /// Create a post on a running server and print it.
    Post(crate::cli::PostArgs),
    /// Follow a running server's feed, printing each post as it arrives.
    Tail(crate::cli::TailArgs),
}

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
    #[arg(long, env = "LIVEFEED_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Directory of the sled database (created when missing).
    #[arg(long, env = "LIVEFEED_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// When set, `POST /posts` requires `Authorization: Bearer <token>`.
    #[arg(long, env = "LIVEFEED_PUBLISH_TOKEN", hide_env_values = true)]
    pub publish_token: Option<String>,

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
    #[arg(long, env = "LIVEFEED_MAX_BACKLOG_FRAMES", default_value_t = 256)]
    pub max_backlog_frames: usize,

    /// Undelivered bytes after which a client is closed as a slow consumer.
    #[arg(long, env = "LIVEFEED_MAX_BACKLOG_BYTES", default_value_t = 1 << 20)]
    pub max_backlog_bytes: usize,

    /// Most concurrent push connections; more are refused with 503.
    #[arg(long, env = "LIVEFEED_MAX_CONNECTIONS", default_value_t = 100_000)]
    pub max_connections: usize,

    /// Log format.
    #[arg(long, env = "LIVEFEED_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,

    /// Log level: error, warn, info, debug or trace.
    #[arg(long, env = "LIVEFEED_LOG", default_value = "info")]
    pub log_level: log::LevelFilter,

    /// Socket.IO at /socket.io/.
    #[command(flatten)]
    pub socketio: crate::socketio::Options,

    /// Cluster mode: `--redis-url` and `--redis-stream`.
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterConfig,
}

impl Config {
    /// Defaults with the given address and data directory; for tests and
    /// embedding.
    pub fn new(addr: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Cli::parse_from(["livefeed"]).serve;
        config.addr = addr;
        config.data_dir = data_dir.into();
        config
    }
}
