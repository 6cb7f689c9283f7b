//! `livefeed post`, `edit` and `delete`: one request each; the post (or
//! nothing, for a delete) on standard output, or the server's error on
//! standard error with exit code 1.
//!
//! `post` sends an `Idempotency-Key` (its own `--idempotency-key`, or a
//! random one) and, when the exchange fails without an answer (timeout,
//! connection refused or cut), sends the same request once more: the
//! server stores the post once whichever attempt reached it.

use super::{fail, DeleteArgs, EditArgs, PostArgs, Target};
use crate::client::{new_idempotency_key, Client, ClientError};
use serde_json::{json, Value};
use std::process::ExitCode;

/// Runs `livefeed post`: prints the created post as JSON.
pub fn post(args: PostArgs) -> ExitCode {
    let mut body = json!({ "title": args.title, "content": args.content });
    if let Some(author) = &args.author {
        body["author"] = author.as_str().into();
    }
    let feed = args.feed.as_deref();
    let key = match args
        .idempotency_key
        .clone()
        .map_or_else(new_idempotency_key, Ok)
    {
        Ok(key) => key,
        Err(e) => return fail(&e),
    };
    let url = &args.target.url;
    run(&args.target, |client, token| {
        match client.create_post(feed, &body, token, Some(&key)) {
            Err(ClientError::Transport(e)) => {
                eprintln!("livefeed: {url}: {e}; retrying once with the same Idempotency-Key");
                client.create_post(feed, &body, token, Some(&key))
            }
            answered => answered,
        }
    })
}

/// Runs `livefeed edit`: prints the edited post as JSON.
pub fn edit(args: EditArgs) -> ExitCode {
    let mut body = serde_json::Map::new();
    if let Some(title) = &args.title {
        body.insert("title".into(), title.as_str().into());
    }
    if let Some(content) = &args.content {
        body.insert("content".into(), content.as_str().into());
    }
    if let Some(author) = &args.author {
        body.insert("author".into(), author.as_str().into());
    }
    if args.anonymous {
        body.insert("author".into(), Value::Null);
    }
    if body.is_empty() {
        return fail(&"nothing to change: give --title, --content, --author or --anonymous");
    }
    let body = Value::Object(body);
    run(&args.target, |client, token| {
        client.update_post(args.id, &body, token, args.if_match)
    })
}

/// Runs `livefeed delete`: prints nothing on success.
pub fn delete(args: DeleteArgs) -> ExitCode {
    run(&args.target, |client, token| {
        client.delete_post(args.id, token, args.if_match)
    })
}

/// Sends one request to `target` and prints what it answered.
fn run(
    target: &Target,
    send: impl FnOnce(&Client, Option<&str>) -> Result<String, ClientError>,
) -> ExitCode {
    let client = match Client::new(&target.url) {
        Ok(client) => client,
        Err(e) => return fail(&e),
    };
    match send(&client, target.token.as_deref()) {
        Ok(body) => {
            if !body.trim().is_empty() {
                println!("{}", body.trim_end());
            }
            ExitCode::SUCCESS
        }
        Err(e @ ClientError::Transport(_)) => fail(&format!("{}: {e}", target.url)),
        Err(e) => fail(&e),
    }
}
