//! `livefeed tail`: follows `GET /events` and prints every change, one
//! line each, resuming after the last change printed whenever the stream
//! ends.

use super::{fail, TailArgs};
use crate::client::sse::{SseEvent, SseItem};
use crate::client::{Client, ClientError, EventStream};
use crate::feed::{Post, DEFAULT_FEED};
use crate::net::backoff::Backoff;
use serde::Deserialize;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// First reconnection delay.
pub const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest reconnection delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Why one connection ended.
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
                    cursor.map_or(String::new(), |seq| format!(
                        " (resuming after change {seq})"
                    ))
                );
                std::thread::sleep(wait);
            }
        }
    }
}

/// One connection: prints changes until the stream ends or fails. `cursor`
/// follows the last seq seen; `delivered` is set once the stream opened.
fn follow(
    server: &Client,
    args: &TailArgs,
    cursor: &mut Option<u64>,
    delivered: &mut bool,
) -> Ended {
    let token = args.token.as_deref();
    let opened = server.events(&args.feeds, token, *cursor, args.stall_timeout);
    let mut stream: EventStream = match opened {
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
        let Some(seq) = event
            .id
            .as_deref()
            .and_then(|id| id.trim().parse::<u64>().ok())
        else {
            continue;
        };
        if cursor.is_some_and(|c| seq <= c) {
            continue; // never print a change twice
        }
        if event.data.is_some() {
            match line(&event, args.json) {
                Ok(Some(line)) => {
                    if let Err(e) = print(&line) {
                        // Standard output is gone (a closed pipe): stop.
                        return Ended::Fatal(ClientError::Transport(format!("stdout: {e}")));
                    }
                }
                Ok(None) => {}
                Err(e) => eprintln!("livefeed: skipping an unreadable event: {e}"),
            }
        }
        // A bare `id:` tells where live starts: resume from there too.
        *cursor = Some(seq);
    }
}

/// The `data` of a change event.
#[derive(Deserialize)]
struct Data {
    post: Option<Post>,
    id: Option<u64>,
    seq: u64,
}

/// The line to print for `event`; `None` for an event `tail` ignores.
fn line(event: &SseEvent, json: bool) -> Result<Option<String>, serde_json::Error> {
    let data: Data = serde_json::from_str(event.data.as_deref().unwrap_or("null"))?;
    Ok(match (event.event.as_deref(), data.post, data.id) {
        (Some("newPost" | "postUpdated"), Some(post), _) => Some(if json {
            // The same serialiser as the server's: the same bytes as the API.
            serde_json::to_string(&post)?
        } else {
            readable(&post)
        }),
        (Some("postDeleted"), _, Some(id)) => Some(if json {
            format!(r#"{{"id":{id},"seq":{},"deleted":true}}"#, data.seq)
        } else {
            format!("#{id} deleted")
        }),
        _ => None,
    })
}

fn print(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

/// `#42 2026-11-25T21:40:00.123Z ada: Hello — First post⏎second line`
/// (with `[feed]` after the id for a feed other than `main`, and
/// `edited <time>` after the time once the post was edited), with control
/// characters neutralised so post text can't drive the terminal.
pub fn readable(post: &Post) -> String {
    let feed = if post.feed == DEFAULT_FEED {
        String::new()
    } else {
        format!("[{}] ", clean(&post.feed))
    };
    let edited = post
        .updated_at
        .as_deref()
        .map_or(String::new(), |at| format!(" edited {at}"));
    format!(
        "#{} {feed}{}{edited} {}: {} — {}",
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

    fn post(updated_at: Option<&str>) -> Post {
        Post {
            id: 3,
            feed: "main".into(),
            title: "a\u{1b}[2Jb".into(),
            content: "one\ntwo\u{202E}".into(),
            author: None,
            created_at: "2026-11-25T21:40:00.123Z".into(),
            updated_at: updated_at.map(str::to_owned),
        }
    }

    #[test]
    fn readable_lines_neutralise_control_characters() {
        assert_eq!(
            readable(&post(None)),
            "#3 2026-11-25T21:40:00.123Z anonymous: a\\u{1b}[2Jb — one⏎two\\u{202e}"
        );
        assert!(readable(&post(Some("2026-11-26T00:00:00.000Z")))
            .starts_with("#3 2026-11-25T21:40:00.123Z edited 2026-11-26T00:00:00.000Z anonymous:"));
        let mut other = post(None);
        other.feed = "team-a".into();
        assert!(readable(&other).starts_with("#3 [team-a] 2026-11-25T21:40:00.123Z anonymous:"));
    }

    #[test]
    fn every_change_has_a_line() {
        let event = |name: &str, data: &str| SseEvent {
            id: Some("9".into()),
            event: Some(name.into()),
            data: Some(data.into()),
            retry: None,
        };
        let json = serde_json::to_string(&post(None)).unwrap();
        let data = format!(r#"{{"post":{json},"seq":9}}"#);
        assert_eq!(
            line(&event("postUpdated", &data), true).unwrap(),
            Some(json)
        );
        assert_eq!(
            line(&event("postDeleted", r#"{"id":3,"seq":9}"#), false).unwrap(),
            Some("#3 deleted".into())
        );
        let deleted = line(&event("postDeleted", r#"{"id":3,"seq":9}"#), true).unwrap();
        assert_eq!(
            deleted.as_deref(),
            Some(r#"{"id":3,"seq":9,"deleted":true}"#)
        );
        assert_eq!(line(&event("other", r#"{"seq":9}"#), true).unwrap(), None);
    }
}
