//! A real `redis-server` for the cluster tests: started from `PATH` on a
//! free port with a temp dir and AOF (`appendfsync always`), and the
//! stream read back as the ground truth.
//!
//! Without `redis-server` the tests are skipped with a message
//! ([`redis_server`]), except under `CI=true`, where that is a failure.

use super::POLL;
use async_std::task;
use livefeed::cluster::resp::{Cmd, Conn, RedisError, RedisUrl, Value};
use livefeed::cluster::stream::{decode, Fields};
use livefeed::feed::Logged;
use serde_json::Value as Json;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest any single wait of a cluster test may take.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(30);
/// The default stream key.
pub const STREAM: &str = "livefeed:posts";

/// `redis-server` from `PATH`, or `None` with a message when it is missing
/// (a failure under `CI=true`).
pub fn redis_server() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        let message = "redis-server is not installed (Debian package redis-server); \
                       the cluster tests need it";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{message}");
        }
        // Written to the real stderr (the test harness captures
        // `eprintln!`), once per run.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED cluster tests: {message}; they pass without checking anything"
            );
        });
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `redis-server` with AOF on, stopped (hard) on drop.
pub struct Redis {
    bin: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub async fn start(bin: PathBuf) -> Self {
        let mut redis = Self::unstarted(bin);
        redis.spawn().await;
        redis
    }

    /// A server not running yet: its port and directory are chosen.
    pub fn unstarted(bin: PathBuf) -> Self {
        Self {
            bin,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        }
    }

    /// Starts the server (again) on the same port and directory and waits
    /// until it answers.
    pub async fn spawn(&mut self) {
        let dir = self.dir.path();
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", "", "--daemonize", "no"])
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            if let Ok(mut conn) = self.conn().await {
                if conn.call(&Cmd::new("PING"), CLUSTER_WAIT).await.is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            task::sleep(POLL).await;
        }
    }

    /// `kill -9`: acknowledged writes survive only through the AOF.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    async fn conn(&self) -> Result<Conn, RedisError> {
        let url = RedisUrl::parse(&self.url()).unwrap();
        Conn::connect(&url, Duration::from_secs(2)).await
    }

    /// Every change in the stream, in stream order, as the log records it.
    /// Each entry must be `<seq>-0` with an `op`.
    pub async fn changes(&self) -> Vec<Logged> {
        let mut conn = self.conn().await.expect("redis is up");
        let reply = conn
            .call(
                &Cmd::new("XRANGE").arg(STREAM).arg("-").arg("+"),
                CLUSTER_WAIT,
            )
            .await
            .unwrap();
        reply
            .into_array()
            .unwrap()
            .into_iter()
            .map(|entry| {
                let parts = entry.into_array().unwrap();
                let id = String::from_utf8(parts[0].as_bytes().unwrap().to_vec()).unwrap();
                let seq: u64 = id.strip_suffix("-0").unwrap().parse().unwrap();
                let values = parts[1].clone().into_array().unwrap();
                assert_eq!(values[0], Value::Bulk(b"op".to_vec()), "entry {seq}");
                let mut fields = Fields::default();
                for pair in values.chunks(2) {
                    fields.set(pair[0].as_bytes().unwrap(), pair[1].as_bytes());
                }
                let change = decode(seq, &fields)
                    .unwrap_or_else(|e| panic!("entry {seq} does not decode: {e}"));
                assert_eq!(change.seq(), seq, "the entry id is the change's seq");
                change
            })
            .collect()
    }

    /// Every post in the stream, in stream order: `(id, post)`, each post
    /// as the nodes serve it. Every entry must be a create (its id is the
    /// post's id).
    pub async fn stream(&self) -> Vec<(u64, Json)> {
        self.changes()
            .await
            .into_iter()
            .map(|change| {
                let Logged::Created(stored) = change else {
                    panic!("not a create: {change:?}");
                };
                let post: Json = serde_json::from_str(&stored.json).unwrap();
                assert_eq!(post["id"], stored.seq, "the entry id carries the post id");
                (stored.seq, post)
            })
            .collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
