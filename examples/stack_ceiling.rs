//! The least a server built on livefeed's stack (async-std, tide 0.16,
//! tide-websockets 0.4) can cost on this machine: the ceiling `bench/run.sh`'s
//! rows can be read against, beside the floor server written on tokio and
//! hyper.
//!
//! ```text
//! cargo run --release --example stack_ceiling -- [--addr HOST:PORT] [--http async-h1|livefeed]
//! ```
//!
//! It speaks the floor server's wire: `POST /posts` with
//! `{"title","content","author"?}` answers 201 with the post, and `/ws` sends
//! a welcome, then every post as `{"event":"newPost","data":{"post":…}}`.
//! Posts are numbered in memory and kept nowhere (no storage, no replay),
//! each post's frame is built once, and each connection has a bounded queue
//! that a client too far behind is dropped from. Everything else is the stack's
//! defaults: async-h1 serving tide's app on async-std's executor,
//! tide-websockets' upgrade and its `WebSocketConnection` writer; the one
//! change is `TCP_NODELAY` on accepted sockets. `--http livefeed` serves the
//! same app with livefeed's own HTTP/1.1 loop (`livefeed::http::h1`) instead
//! of async-h1: the most livefeed's HTTP path can carry with no storage and
//! no feed behind it.
//!
//! Run it with the load generator as the floor is run, for example
//! `livefeed-bench publish --addr HOST:PORT --target ceiling --publishers 64`.

use async_std::channel::{unbounded, Sender};
use async_std::sync::Mutex;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;
use tide::{Body, Request, Response, StatusCode};
use tide_websockets::{Message, WebSocket, WebSocketConnection};

/// Frames a connection may have queued before it is dropped.
const QUEUE_LEN: usize = 1024;
/// The largest `POST /posts` body read.
const MAX_BODY: u64 = 64 * 1024;

#[derive(Deserialize)]
struct NewPost {
    title: String,
    content: String,
    author: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Post {
    id: u64,
    title: String,
    content: String,
    author: String,
    created_at: String,
}

#[derive(Default)]
struct Hub {
    last_post_id: u64,
    conns: HashMap<u64, Sender<Arc<str>>>,
}

#[derive(Default)]
struct State {
    hub: Mutex<Hub>,
    next_conn: AtomicU64,
}

/// The one server state; the app is a `tide::Server<()>`, as livefeed's is.
fn state() -> &'static State {
    static STATE: std::sync::OnceLock<State> = std::sync::OnceLock::new();
    STATE.get_or_init(State::default)
}

#[async_std::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:8090".to_owned();
    let mut http = "async-h1".to_owned();
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--addr" => addr = value()?,
            "--http" => http = value()?,
            other => anyhow::bail!(
                "unknown argument {other}; usage: stack_ceiling [--addr HOST:PORT] [--http async-h1|livefeed]"
            ),
        }
    }
    // The backlog livefeed binds with, so a connect storm is not refused.
    let addr: std::net::SocketAddr = addr.parse()?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(livefeed::app::LISTEN_BACKLOG)?;
    let listener: std::net::TcpListener = socket.into();
    let mut app = tide::new();
    app.at("/healthz").get(|_| async { Ok("ok\n") });
    app.at("/posts").post(create);
    app.at("/ws").get(WebSocket::new(connection));
    println!("stack_ceiling listening on http://{addr} (/ws, POST /posts)");
    let listener = async_std::net::TcpListener::from(listener);
    match http.as_str() {
        "async-h1" => {}
        "livefeed" => {
            let (connections, _shutdown) = livefeed::http::h1::connections();
            livefeed::http::h1::accept_loop(app, listener, connections).await;
            return Ok(());
        }
        other => anyhow::bail!("unknown --http {other}: async-h1 or livefeed"),
    }
    loop {
        let (stream, _) = listener.accept().await?;
        // tide's own listener leaves Nagle on, which stalls each response
        // 40 ms behind the client's delayed ACK; livefeed turns it off too.
        stream.set_nodelay(true)?;
        let app = app.clone();
        async_std::task::spawn(async move {
            // Errors are a client going away mid-request: nothing to do.
            let _ = async_h1::accept(stream, |req| app.respond(req)).await;
        });
    }
}

async fn create(mut req: Request<()>) -> tide::Result {
    if req.len().is_some_and(|n| n as u64 > MAX_BODY) {
        return Ok(Response::new(StatusCode::PayloadTooLarge));
    }
    let Ok(new) = req.body_json::<NewPost>().await else {
        return Ok(Response::new(StatusCode::BadRequest));
    };
    let created_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let json = {
        let mut hub = state().hub.lock().await;
        hub.last_post_id += 1;
        let post = Post {
            id: hub.last_post_id,
            title: new.title,
            content: new.content,
            author: new.author.unwrap_or_else(|| "anonymous".into()),
            created_at,
        };
        let json = serde_json::to_string(&post)?;
        let frame: Arc<str> = format!(r#"{{"event":"newPost","data":{{"post":{json}}}}}"#).into();
        hub.conns
            .retain(|_, tx| tx.len() < QUEUE_LEN && tx.try_send(frame.clone()).is_ok());
        json
    };
    let mut resp = Response::new(StatusCode::Created);
    resp.set_body(Body::from_string(json));
    resp.set_content_type(tide::http::mime::JSON);
    Ok(resp)
}

async fn connection(_req: Request<()>, mut conn: WebSocketConnection) -> tide::Result<()> {
    let state = state();
    let id = state.next_conn.fetch_add(1, Ordering::Relaxed) + 1;
    // Unbounded, capped by hand: a bounded channel allocates all its slots
    // up front, which idle connections would pay for.
    let (tx, rx) = unbounded::<Arc<str>>();
    let last_post_id = {
        let mut hub = state.hub.lock().await;
        hub.conns.insert(id, tx);
        hub.last_post_id
    };
    let welcome = format!(
        r#"{{"event":"welcome","data":{{"connectionId":{id},"lastPostId":{last_post_id}}}}}"#
    );
    conn.send_string(welcome).await?;
    let writer = conn.clone();
    let writes = async_std::task::spawn(async move {
        while let Ok(frame) = rx.recv().await {
            if writer.send_string(frame.to_string()).await.is_err() {
                break;
            }
        }
    });
    // Read only to notice the client leaving; pings are answered by tungstenite.
    while let Some(Ok(msg)) = conn.next().await {
        if let Message::Close(_) = msg {
            break;
        }
    }
    state.hub.lock().await.conns.remove(&id);
    writes.cancel().await;
    Ok(())
}
