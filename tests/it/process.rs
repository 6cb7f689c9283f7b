//! The binary as an operator runs it: durability across `kill -9`, the
//! data-dir lock, and graceful exit on SIGTERM.

use crate::common;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    log: mpsc::Receiver<String>,
}

/// Starts the binary on an ephemeral port and reads the address it logs.
pub(crate) fn spawn(data_dir: &std::path::Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_livefeed"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--log-format",
            "pretty",
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + common::WAIT;
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the server logged its address");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().parse().expect("an address");
        }
    };
    Proc {
        child,
        addr,
        log: rx,
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process did not exit in {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[async_std::test]
async fn a_201_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = spawn(dir.path());
    let body = br#"{"title":"durable","content":"on disk"}"#;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let res = common::request(
            proc.addr,
            "POST",
            "/posts",
            &[("Content-Type", "application/json")],
            body,
        )
        .await;
        assert_eq!(res.status, 201);
        ids.push(res.json()["id"].as_u64().unwrap());
    }
    proc.child.kill().unwrap(); // SIGKILL
    proc.child.wait().unwrap();

    let mut again = spawn(dir.path());
    for id in ids {
        let res = common::request(again.addr, "GET", &format!("/posts/{id}"), &[], b"").await;
        assert_eq!(res.status, 200, "post {id} lost");
    }
    again.child.kill().unwrap();
    again.child.wait().unwrap();
}

/// An edit's 200 and a delete's 204 mean on disk too: after `kill -9` the
/// edited posts come back edited, the deleted ones stay deleted, and a
/// client resuming from before learns of both.
#[async_std::test]
async fn edits_and_deletes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = spawn(dir.path());
    let json = [("Content-Type", "application/json")];
    for i in 0..10 {
        let body = format!(r#"{{"title":"post {i}","content":"c"}}"#);
        let res = common::request(proc.addr, "POST", "/posts", &json, body.as_bytes()).await;
        assert_eq!(res.status, 201);
    }
    let mut edited = Vec::new();
    for id in (1..=10u64).step_by(2) {
        let body = format!(r#"{{"title":"edited {id}"}}"#);
        let path = format!("/posts/{id}");
        let res = common::request(proc.addr, "PATCH", &path, &json, body.as_bytes()).await;
        assert_eq!(res.status, 200, "{}", res.text());
        edited.push(res.json());
        let res =
            common::request(proc.addr, "DELETE", &format!("/posts/{}", id + 1), &[], b"").await;
        assert_eq!(res.status, 204);
    }
    proc.child.kill().unwrap(); // SIGKILL
    proc.child.wait().unwrap();

    let mut again = spawn(dir.path());
    for post in &edited {
        let id = post["id"].as_u64().unwrap();
        let res = common::request(again.addr, "GET", &format!("/posts/{id}"), &[], b"").await;
        assert_eq!(&res.json(), post, "edit of post {id} lost");
        let res = common::request(again.addr, "GET", &format!("/posts/{}", id + 1), &[], b"").await;
        assert_eq!(res.status, 404, "delete of post {} lost", id + 1);
    }
    let mut ws = common::Ws::connect(again.addr, "?since=10").await;
    assert_eq!(ws.welcome_data().await["lastSeq"], 20);
    let mut events = Vec::new();
    for _ in 0..10 {
        let change = ws.change().await;
        events.push((change.event.clone(), change.post_id()));
    }
    let expected: Vec<_> = (1..=10u64)
        .step_by(2)
        .flat_map(|id| {
            [
                ("postUpdated".to_owned(), id),
                ("postDeleted".to_owned(), id + 1),
            ]
        })
        .collect();
    assert_eq!(events, expected);
    again.child.kill().unwrap();
    again.child.wait().unwrap();
}

#[test]
fn a_second_instance_on_the_same_data_dir_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = spawn(dir.path());
    let second = Command::new(env!("CARGO_BIN_EXE_livefeed"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--log-format",
            "pretty",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another livefeed process"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    first.child.kill().unwrap();
    first.child.wait().unwrap();
}

#[async_std::test]
async fn sigterm_closes_clients_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = spawn(dir.path());
    let mut ws = common::Ws::connect(proc.addr, "").await;
    ws.welcome().await;
    let pid = proc.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(ws.next().await, common::Frame::Closed(Some(1001)));
    let status = wait_exit(&mut proc.child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let log: Vec<String> = proc.log.try_iter().collect();
    assert!(log.iter().any(|l| l.contains("stopped")), "{log:?}");
}
