//! The terminal client: `livefeed post` and `livefeed tail`.
//!
//! Both talk to a running server over its HTTP API with [`crate::client`].
//! `tail` follows `GET /events`, reconnecting with exponential backoff and
//! jitter, and resumes from the last id it has seen (`Last-Event-ID`), so a
//! server restart or a slow-consumer close loses and repeats nothing.

use crate::client::{ClientError, EventStream, Server, SseItem};
use crate::post::Post;
use clap::Args;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

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
pub async fn post(args: PostArgs) -> ExitCode {
    let server = match Server::parse(&args.url) {
        Ok(server) => server,
        Err(e) => return fail(&e),
    };
    let mut body = serde_json::json!({ "title": args.title, "content": args.content });
    if let Some(author) = &args.author {
        body["author"] = author.as_str().into();
    }
    match server.create_post(&body, args.token.as_deref()).await {
        Ok(response) => {
            println!("{}", response.text().trim_end());
            ExitCode::SUCCESS
        }
        Err(e @ ClientError::Io(_)) => fail(&format!("{}: {e}", args.url)),
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
pub async fn tail(args: TailArgs) -> ExitCode {
    let server = match Server::parse(&args.url) {
        Ok(server) => server,
        Err(e) => return fail(&e),
    };
    let mut cursor = args.since;
    let mut backoff = BACKOFF_MIN;
    loop {
        let mut delivered = false;
        match follow(&server, &args, &mut cursor, &mut delivered).await {
            Ended::Fatal(e) => return fail(&e),
            Ended::Retry(why) => {
                if delivered {
                    backoff = BACKOFF_MIN;
                }
                let wait = jitter(backoff);
                eprintln!(
                    "livefeed: {why}; reconnecting in {} ms{}",
                    wait.as_millis(),
                    cursor.map_or(String::new(), |id| format!(" (resuming after post {id})"))
                );
                async_std::task::sleep(wait).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// One connection: prints posts until the stream ends or fails. `cursor`
/// follows the last id seen; `delivered` is set once the stream opened.
async fn follow(
    server: &Server,
    args: &TailArgs,
    cursor: &mut Option<u64>,
    delivered: &mut bool,
) -> Ended {
    let mut stream: EventStream = match server.events(*cursor).await {
        Ok(stream) => stream,
        Err(ClientError::Status(e)) if e.status < 500 => {
            return Ended::Fatal(ClientError::Status(e));
        }
        Err(e) => return Ended::Retry(format!("{}: {e}", args.url)),
    };
    *delivered = true;
    loop {
        let item = match async_std::future::timeout(args.stall_timeout, stream.next()).await {
            Err(_) => {
                return Ended::Retry(format!("nothing received for {:?}", args.stall_timeout))
            }
            Ok(Err(e)) => return Ended::Retry(format!("connection lost: {e}")),
            Ok(Ok(None)) => return Ended::Retry("the server ended the stream".into()),
            Ok(Ok(Some(item))) => item,
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
                        return Ended::Fatal(ClientError::Io(e));
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

/// A delay between half and all of `backoff`, so many clients cut off at
/// once don't all come back at once.
fn jitter(backoff: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = backoff / 2;
    half + Duration::from_nanos(random % (half.as_nanos() as u64).max(1))
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

    #[test]
    fn jitter_stays_within_half_and_all_of_the_backoff() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(500) && d < Duration::from_millis(1000));
        }
    }
}
