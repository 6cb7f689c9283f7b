//! The command line: `livefeed [serve]`, and the terminal client
//! `livefeed post`, `edit`, `delete` and `tail`.
//!
//! The clients talk to a running server over its HTTP API with
//! [`crate::client`]. `tail` follows `GET /events`, reconnecting with
//! exponential backoff and jitter, and resumes from the last change it has
//! seen (`Last-Event-ID`), so a server restart or a slow-consumer close
//! loses and repeats nothing.
//!
//! Layout: this file, the flags; [`write`]: `post`, `edit`, `delete`;
//! [`tail`]: `tail` and how a change is printed.

pub mod tail;
pub mod write;

use crate::config::Config;
use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;

pub use tail::tail;
pub use write::{delete, edit, post};

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
    Post(PostArgs),
    /// Edit a post on a running server and print it.
    Edit(EditArgs),
    /// Delete a post on a running server.
    Delete(DeleteArgs),
    /// Follow a running server's feed, printing each change as it arrives.
    Tail(TailArgs),
}

/// The server a client talks to when `--url` is not given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";

/// Where a client command goes, and with which credential.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The server's base URL.
    #[arg(long, env = "LIVEFEED_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// A credential for writes: the server's publish token, or a JWT whose
    /// `publish` claim covers the feed.
    #[arg(long, env = "LIVEFEED_PUBLISH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `livefeed post`: create a post.
#[derive(Debug, Clone, Args)]
pub struct PostArgs {
    /// The post's title (1 to 200 characters).
    #[arg(long)]
    pub title: String,
    /// The post's content (1 to 10000 characters).
    #[arg(long)]
    pub content: String,
    /// The author's name (up to 100 characters); anonymous when absent.
    #[arg(long)]
    pub author: Option<String>,
    /// The feed to post to (the default feed, `main`, when absent).
    #[arg(long)]
    pub feed: Option<String>,
    /// The Idempotency-Key to send (1 to 255 visible ASCII characters):
    /// running the same command again within the server's
    /// --idempotency-ttl then creates nothing new and prints the same post.
    /// A random key when absent.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Server and token.
    #[command(flatten)]
    pub target: Target,
}

/// `livefeed edit`: change some fields of a post.
#[derive(Debug, Clone, Args)]
pub struct EditArgs {
    /// The post's id.
    #[arg(long)]
    pub id: u64,
    /// A new title.
    #[arg(long)]
    pub title: Option<String>,
    /// New content.
    #[arg(long)]
    pub content: Option<String>,
    /// A new author name.
    #[arg(long, conflicts_with = "anonymous")]
    pub author: Option<String>,
    /// Make the post anonymous.
    #[arg(long)]
    pub anonymous: bool,
    /// Only if the post's latest change is this seq (its ETag).
    #[arg(long)]
    pub if_match: Option<u64>,
    /// Server and token.
    #[command(flatten)]
    pub target: Target,
}

/// `livefeed delete`: delete a post.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// The post's id.
    #[arg(long)]
    pub id: u64,
    /// Only if the post's latest change is this seq (its ETag).
    #[arg(long)]
    pub if_match: Option<u64>,
    /// Server and token.
    #[command(flatten)]
    pub target: Target,
}

/// `livefeed tail`: follow the feed.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// Print every change after this seq first (compacted: each post once,
    /// in its latest state); without it, only changes from now on.
    #[arg(long)]
    pub since: Option<u64>,
    /// The feeds to follow, comma-separated (the default feed, `main`, when
    /// absent).
    #[arg(long, value_delimiter = ',')]
    pub feeds: Vec<String>,
    /// A token for private feeds (the publish token, or a JWT).
    #[arg(long, env = "LIVEFEED_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The server's base URL.
    #[arg(long, env = "LIVEFEED_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Print each change as one line of JSON: the post as `GET /posts/{id}`
    /// shows it for a create or an edit (an edited post has `updatedAt`),
    /// `{"id":N,"seq":S,"deleted":true}` for a delete.
    #[arg(long)]
    pub json: bool,
    /// Reconnect when the server sends nothing, not even a keep-alive, for
    /// this long (set it above the server's heartbeat interval).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,
}

/// Prints `e` on standard error; the exit code of a failed command.
fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("livefeed: {e}");
    ExitCode::FAILURE
}
