//! The command line: `livefeed [serve]`, and the terminal client
//! `livefeed post` and `livefeed tail`.
//!
//! Both clients talk to a running server over its HTTP API with
//! [`crate::client`]. `tail` follows `GET /events`, reconnecting with
//! exponential backoff and jitter, and resumes from the last id it has seen
//! (`Last-Event-ID`), so a server restart or a slow-consumer close loses
//! and repeats nothing.

use crate::client::sse::SseItem;
use crate::client::{Client, ClientError, EventStream};
use crate::config::Config;
use crate::feed::Post;
use crate::net::backoff::Backoff;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;
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
    Post(PostArgs),
    /// Follow a running server's feed, printing each post as it arrives.
    Tail(TailArgs),
}

/// The server a client talks to when `--url` is not given.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// First reconnection delay of `tail`.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest reconnection delay of `tail`.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

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
    /// The server's base URL.
    #[arg(long, env = "LIVEFEED_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// The server's publish token, when it has one.
    #[arg(long, env = "LIVEFEED_PUBLISH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// `livefeed tail`: follow the feed.
#[derive(Debug, Clone, Args)]
pub struct TailArgs {
    /// Print every stored post with a higher id first; without it, only
    /// posts created from now on.
    #[arg(long)]
    pub since: Option<u64>,
    /// The server's base URL.
    #[arg(long, env = "LIVEFEED_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Print each post as one line of JSON (as `GET /posts/{id}` shows it).
    #[arg(long)]
    pub json: bool,
    /// Reconnect when the server sends nothing, not even a keep-alive, for
    /// this long (set it above the server's heartbeat interval).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub stall_timeout: Duration,
}

/// Runs `livefeed post`: prints the created post as JSON, or the server's
/// error on standard error with a non-zero exit code.
pub fn post(args: PostArgs) -> ExitCode {
    let server = match Client::new(&args.url) {
        Ok(server) => server,
        Err(e) => return fail(&e),
    };
    let mut body = serde_json::json!({ "title": args.title, "content": args.content });
    if let Some(author) = &args.author {
        body["author"] = author.as_str().into();
    }
    match server.create_post(&body, args.token.as_deref()) {
        Ok(post) => {
            println!("{}", post.trim_end());
            ExitCode::SUCCESS
        }
        Err(e @ ClientError::Transport(_)) => fail(&format!("{}: {e}", args.url)),
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("livefeed: {e}");
    ExitCode::FAILURE
}

/// Why one connection of `tail` ended.
enum Ended {
    /// Worth reconnecting.
    Retry(String),
    /// The server refused the request itself; retrying can't help.
    Fatal(ClientError),
}

/// Runs `livefeed tail` until interrupted (or a request the server refuses
/// outright, such as a bad `--since`).
pub fn tail(args: TailArgs) -> ExitCode {
    let server = match Client::new(&args.url) {
        Ok(server) => server,
        Err(e) => return fail(&e),
    };
    let mut cursor = args.since;
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    loop {
        let mut delivered = false;
        match follow(&server, &args, &mut cursor, &mut delivered) {
            Ended::Fatal(e) => return fail(&e),
            Ended::Retry(why) => {
                if delivered {
                    backoff.reset();
                }
                let wait = backoff.next_delay();
                eprintln!(
                    "livefeed: {why}; reconnecting in {} ms{}",
                    wait.as_millis(),
                    cursor.map_or(String::new(), |id| format!(" (resuming after post {id})"))
                );
                std::thread::sleep(wait);
            }
        }
    }
}

/// One connection: prints posts until the stream ends or fails. `cursor`
/// follows the last id seen; `delivered` is set once the stream opened.
fn follow(
    server: &Client,
    args: &TailArgs,
    cursor: &mut Option<u64>,
    delivered: &mut bool,
) -> Ended {
    let mut stream: EventStream = match server.events(*cursor, args.stall_timeout) {
        Ok(stream) => stream,
        Err(ClientError::Status(e)) if e.status < 500 => {
            return Ended::Fatal(ClientError::Status(e));
        }
        Err(e) => return Ended::Retry(format!("{}: {e}", args.url)),
    };
    *delivered = true;
    loop {
        // A read that waits past the stall timeout fails like a lost
        // connection.
        let item = match stream.next_item() {
            Err(e) => return Ended::Retry(format!("connection lost: {e}")),
            Ok(None) => return Ended::Retry("the server ended the stream".into()),
            Ok(Some(item)) => item,
        };
        let SseItem::Event(event) = item else {
            continue; // keep-alives and notes
        };
        let id = event
            .id
            .as_deref()
            .and_then(|id| id.trim().parse::<u64>().ok());
        if event.event.as_deref() == Some("newPost") {
            let Some(data) = event.data.as_deref() else {
                continue;
            };
            match serde_json::from_str::<Envelope>(data) {
                Ok(Envelope { post }) => {
                    if cursor.is_some_and(|c| post.id <= c) {
                        continue; // never print a post twice
                    }
                    if let Err(e) = print_post(&post, args.json) {
                        // Standard output is gone (a closed pipe): stop.
                        return Ended::Fatal(ClientError::Transport(format!("stdout: {e}")));
                    }
                    *cursor = Some(post.id);
                }
                Err(e) => eprintln!("livefeed: skipping an unreadable event: {e}"),
            }
        } else if let Some(id) = id {
            // A bare `id:` tells where live starts: resume from there.
            match cursor {
                Some(c) if *c >= id => {}
                _ => *cursor = Some(id),
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct Envelope {
    post: Post,
}

fn print_post(post: &Post, json: bool) -> std::io::Result<()> {
    let line = if json {
        // The same serialiser as the server's: the same bytes as the API.
        serde_json::to_string(post).map_err(std::io::Error::other)?
    } else {
        readable(post)
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// `#42 2026-11-25T21:40:00.123Z ada: Hello — First post⏎second line`,
/// with control characters neutralised so post text can't drive the
/// terminal.
pub fn readable(post: &Post) -> String {
    format!(
        "#{} {} {}: {} — {}",
        post.id,
        post.created_at,
        clean(post.author.as_deref().unwrap_or("anonymous")),
        clean(&post.title),
        clean(&post.content),
    )
}

fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push('⏎'),
            c if c.is_control() || is_bidi_control(c) => {
                out.extend(c.escape_unicode());
            }
            c => out.push(c),
        }
    }
    out
}

/// Bidirectional overrides and isolates, which could reorder what a
/// terminal shows.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_lines_neutralise_control_characters() {
        let post = Post {
            id: 3,
            title: "a\u{1b}[2Jb".into(),
            content: "one\ntwo\u{202E}".into(),
            author: None,
            created_at: "2026-11-25T21:40:00.123Z".into(),
        };
        assert_eq!(
            readable(&post),
            "#3 2026-11-25T21:40:00.123Z anonymous: a\\u{1b}[2Jb — one⏎two\\u{202e}"
        );
    }
}
