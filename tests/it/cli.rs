//! `livefeed post` and `livefeed tail`: the built binary against a real
//! server.

use crate::common::{within, Request, TestServer, WAIT};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

const BIN: &str = env!("CARGO_BIN_EXE_livefeed");

/// Runs the binary to completion (off the async runtime's threads).
pub(crate) async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("LIVEFEED_PUBLISH_TOKEN")
        .env_remove("LIVEFEED_URL");
    for (k, v) in env {
        command.env(k, v);
    }
    within(async_std::task::spawn_blocking(move || {
        command.output().expect("the binary runs")
    }))
    .await
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `tail` process whose output lines arrive on a channel.
struct Tail {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Tail {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("tail")
            .args(args)
            .env_remove("LIVEFEED_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tail starts");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line printed, within [`WAIT`].
    fn line(&self) -> String {
        self.lines
            .recv_timeout(WAIT)
            .expect("tail printed a line in time")
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The post exactly as `GET /posts/{id}` serves it.
async fn served(server: &TestServer, id: u64) -> String {
    let path = format!("/posts/{id}");
    let response = within(server.api().send(&Request::new("GET", &path)))
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    response.text()
}

#[async_std::test]
async fn post_prints_the_created_post() {
    let server = TestServer::start().await;
    let url = server.url();
    let out = run(
        &[
            "post",
            "--url",
            &url,
            "--title",
            "Hello",
            "--content",
            "line one\nline two",
            "--author",
            "ada",
        ],
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let post: serde_json::Value = serde_json::from_str(printed.trim()).unwrap();
    assert_eq!(post["title"], "Hello");
    assert_eq!(post["content"], "line one\nline two");
    assert_eq!(post["author"], "ada");
    let id = post["id"].as_u64().unwrap();
    assert_eq!(printed.trim(), served(&server, id).await);

    // The URL may also come from the environment.
    let out = run(
        &["post", "--title", "Env", "--content", "c"],
        &[("LIVEFEED_URL", &url)],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    server.stop().await;
}

#[async_std::test]
async fn post_shows_the_servers_error_and_fails() {
    let server = TestServer::start().await;
    let url = server.url();
    let out = run(
        &["post", "--url", &url, "--title", "   ", "--content", "c"],
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(err.contains("422"), "{err}");
    assert!(err.contains("invalid_field"), "{err}");
    assert!(err.contains("title"), "{err}");
    assert_eq!(server.metric("livefeed_posts_created_total").await, 0);

    // Nobody listening: a plain error, not a panic.
    let dead = "http://127.0.0.1:1";
    let out = run(
        &["post", "--url", dead, "--title", "t", "--content", "c"],
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).starts_with("livefeed: http://127.0.0.1:1"));
    server.stop().await;
}

#[async_std::test]
async fn post_sends_the_publish_token() {
    let server = TestServer::start_with(|c| c.publish_token = Some("s3cret".into())).await;
    let url = server.url();
    let args = ["post", "--url", &url, "--title", "t", "--content", "c"];
    let out = run(&args, &[]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    let out = run(&args, &[("LIVEFEED_PUBLISH_TOKEN", "s3cret")]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let mut with_flag = args.to_vec();
    with_flag.extend(["--token", "s3cret"]);
    assert!(run(&with_flag, &[]).await.status.success());
    server.stop().await;
}

/// `tail --json` prints each post as the API serves it, and carries on
/// after the server restarts: nothing missed, nothing twice.
#[async_std::test]
async fn tail_prints_json_lines_and_resumes_after_a_restart() {
    let server = TestServer::start().await;
    for i in 1..=3 {
        server.create_id(&format!("before {i}")).await;
    }
    let tail = Tail::spawn(&["--url", &server.url(), "--since", "1", "--json"]);
    let mut lines = vec![tail.line(), tail.line()];

    let server = server.restart_with(|_| {}).await;
    for i in 4..=5 {
        server.create_id(&format!("after {i}")).await;
    }
    lines.push(tail.line());
    lines.push(tail.line());
    for (line, id) in lines.iter().zip(2..=5) {
        assert_eq!(line, &served(&server, id).await);
    }
    // Nothing else came: the next post is the next line.
    let id = server.create_id("last").await;
    assert_eq!(id, 6);
    assert_eq!(tail.line(), served(&server, 6).await);
    server.stop().await;
}

/// Without `--since`, `tail` prints posts created from now on, one readable
/// line each, with post text unable to drive the terminal.
#[async_std::test]
async fn tail_prints_readable_lines_of_live_posts() {
    let server = TestServer::start().await;
    server.create_id("old").await;
    let tail = Tail::spawn(&["--url", &server.url()]);
    server.await_metric("livefeed_connected_clients", 1).await;
    server.create_with("new \u{1b}[31mred", "a\nb").await;
    let line = tail.line();
    assert!(line.starts_with("#2 "), "{line}");
    assert!(
        line.ends_with("anonymous: new \\u{1b}[31mred — a⏎b"),
        "{line}"
    );
    server.stop().await;
}

/// `livefeed edit` and `livefeed delete` change the post as `PATCH` and
/// `DELETE` do (with `--if-match`, and the token), and `tail` prints both
/// changes, the edit as the post now is.
#[async_std::test]
async fn edit_and_delete_and_tail_prints_them() {
    let server = TestServer::start_with(|c| c.publish_token = Some("tok".into())).await;
    let url = server.url();
    let auth = [
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer tok"),
    ];
    let body = br#"{"title":"t","content":"c","author":"ada"}"#;
    let created = server.request("POST", "/posts", &auth, body).await;
    assert_eq!(created.status, 201);
    let tail = Tail::spawn(&["--url", &url, "--json", "--since", "0"]);
    assert_eq!(tail.line(), served(&server, 1).await);
    let human = Tail::spawn(&["--url", &url, "--since", "1"]);

    let no_token = run(&["edit", "--url", &url, "--id", "1", "--title", "x"], &[]).await;
    assert!(!no_token.status.success());
    assert!(
        stderr(&no_token).contains("401 unauthorized"),
        "{}",
        stderr(&no_token)
    );
    let stale = [
        "edit",
        "--url",
        &url,
        "--token",
        "tok",
        "--id",
        "1",
        "--title",
        "x",
        "--if-match",
        "7",
    ];
    let out = run(&stale, &[]).await;
    assert!(
        stderr(&out).contains("412 precondition_failed"),
        "{}",
        stderr(&out)
    );
    let args = [
        "edit",
        "--url",
        &url,
        "--token",
        "tok",
        "--id",
        "1",
        "--title",
        "New",
        "--anonymous",
        "--if-match",
        "1",
    ];
    let out = run(&args, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let edited: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(
        (edited["title"].as_str(), edited["author"].clone()),
        (Some("New"), serde_json::Value::Null)
    );
    assert_eq!(
        tail.line(),
        served(&server, 1).await,
        "tail prints the edited post"
    );
    let line = human.line();
    assert!(
        line.starts_with("#1 ") && line.contains(" edited ") && line.contains("anonymous: New"),
        "{line}"
    );

    let args = ["delete", "--url", &url, "--id", "1"];
    let out = run(&args, &[("LIVEFEED_PUBLISH_TOKEN", "tok")]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "a delete prints nothing");
    assert_eq!(tail.line(), r#"{"id":1,"seq":3,"deleted":true}"#);
    assert_eq!(human.line(), "#1 deleted");
    let again = run(&args, &[("LIVEFEED_PUBLISH_TOKEN", "tok")]).await;
    assert!(
        stderr(&again).contains("404 not_found"),
        "{}",
        stderr(&again)
    );
    let nothing = run(&["edit", "--url", &url, "--id", "1"], &[]).await;
    assert!(
        stderr(&nothing).contains("nothing to change"),
        "{}",
        stderr(&nothing)
    );
}

/// `post --feed` posts to a named feed, `tail --feeds` follows exactly the
/// feeds it names, and `--token` carries a JWT for private feeds.
#[async_std::test]
async fn post_and_tail_name_their_feeds_and_carry_a_jwt() {
    let server = TestServer::start_with(|c| c.jwt_secret = Some("sh".into())).await;
    let url = server.url();
    let reader = crate::common::jwt("sh", serde_json::json!({"subscribe": ["private-*"]}), 60);
    let writer = crate::common::jwt(
        "sh",
        serde_json::json!({"subscribe": ["private-x"], "publish": ["private-x"]}),
        60,
    );
    let tail = Tail::spawn(&[
        "--url",
        &url,
        "--feeds",
        "team,private-x",
        "--token",
        &reader,
    ]);
    server.await_metric("livefeed_connected_clients", 1).await;
    // Refused: tail says why and stops instead of retrying forever.
    let refused = run(&["tail", "--url", &url, "--feeds", "private-x"], &[]).await;
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("401 unauthorized"),
        "{}",
        stderr(&refused)
    );
    let bad = run(&["tail", "--url", &url, "--feeds", "a,Bad"], &[]).await;
    assert!(
        stderr(&bad).contains("400 invalid_feed"),
        "{}",
        stderr(&bad)
    );

    let post = |feed: &'static str, title: &'static str, token: Option<String>| {
        let url = url.clone();
        async move {
            let mut args = vec![
                "post",
                "--url",
                &url,
                "--feed",
                feed,
                "--title",
                title,
                "--content",
                "c",
            ];
            if let Some(t) = &token {
                args.extend(["--token", t]);
            }
            run(&args, &[]).await
        }
    };
    let out = post("team", "for team", None).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(created["feed"], "team");
    assert!(post("other", "not followed", None).await.status.success());
    let out = post("private-x", "secret", None).await;
    assert!(
        stderr(&out).contains("401 unauthorized"),
        "{}",
        stderr(&out)
    );
    let out = post("private-x", "secret", Some(reader.clone())).await;
    assert!(stderr(&out).contains("403 forbidden"), "{}", stderr(&out));
    let out = post("private-x", "secret", Some(writer)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = post("Bad", "t", None).await;
    assert!(
        stderr(&out).contains("400 invalid_feed"),
        "{}",
        stderr(&out)
    );

    let first = tail.line();
    assert!(
        first.starts_with("#1 [team] ") && first.ends_with("for team — c"),
        "{first}"
    );
    let second = tail.line();
    assert!(
        second.starts_with("#3 [private-x] ") && second.ends_with("secret — c"),
        "{second}"
    );
}
