//! Websocket subscribers: connecting (livefeed `/ws` or Socket.IO over a
//! websocket), reading deliveries, and checking each client's stream.
//!
//! A created or edited post is recognised by the marker `lfb|SEQ|T_US|` that
//! the publisher puts in its content: SEQ is the benchmark's sequence number
//! of the operation, T_US the send time in microseconds since the run's
//! epoch. A delete carries no content: its frame (`postDeleted`) is
//! recognised by the post id, which the publisher recorded in
//! [`Shared::deletes`] before sending the `DELETE`. Frames are scanned, not
//! parsed as JSON, so that the load generator stays cheap next to the server
//! it loads.
//!
//! With `--feeds F` client i subscribes to feed `f{i mod F}` (`/ws?feeds=…`,
//! or the Socket.IO CONNECT packet `40{"feeds":[…]}`) and operation SEQ is
//! posted to feed `f{SEQ mod F}`, so a client knows from a marker alone
//! whether a post is of its feed; a post of another feed is counted as
//! `foreign` and fails the run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_std::net::TcpStream;
use async_tungstenite::tungstenite::protocol::WebSocketConfig;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use futures::StreamExt;

use crate::hist::Histogram;

/// Which wire protocol the subscribers speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// livefeed's own `/ws` JSON frames.
    Ws,
    /// Socket.IO v4 over a websocket (`/socket.io/?EIO=4&transport=websocket`).
    Sio,
}

/// What orders a client's stream of changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderKey {
    /// The server's change sequence number (`"seq"`, livefeed): every change
    /// frame must carry one, and a frame without it is counted as
    /// `missing_seq`, which fails the run.
    Seq,
    /// The post id (servers whose frames carry no seq: the Node baseline and
    /// limit-server, which only create posts).
    Id,
}

/// The marker that starts a benchmark post's content.
pub const MARKER: &str = "lfb|";

pub type Ws = WebSocketStream<TcpStream>;

/// State shared by all clients and publishers of one scenario.
pub struct Shared {
    /// Epoch of every timestamp in the run.
    pub epoch: Instant,
    /// Delivery latency (POST sent -> frame read) of healthy clients.
    pub latency: Histogram,
    /// Unique deliveries to healthy clients.
    pub delivered: AtomicU64,
    /// Time (µs since epoch) of the latest delivery.
    pub last_delivery_us: AtomicU64,
    /// Per-sequence count of healthy clients that got it (window mode only).
    pub per_seq: Vec<AtomicU32>,
    /// Sequences that every healthy client has received (window mode only).
    pub completed: AtomicU64,
    /// Healthy clients that a sequence must reach to count as completed.
    pub healthy: AtomicU32,
    /// Notified when `completed` grows.
    pub progress: event_listener::Event,
    /// Posts being deleted (mixed mode): post id -> (bench seq of the
    /// delete, send time µs). Filled before each `DELETE` is written, so a
    /// client can recognise the `postDeleted` frame, which has no content.
    pub deletes: RwLock<HashMap<u64, (u64, u64)>>,
}

impl Shared {
    pub fn new(window_capacity: usize) -> Arc<Self> {
        Arc::new(Shared {
            epoch: Instant::now(),
            latency: Histogram::new(),
            delivered: AtomicU64::new(0),
            last_delivery_us: AtomicU64::new(0),
            per_seq: (0..window_capacity).map(|_| AtomicU32::new(0)).collect(),
            completed: AtomicU64::new(0),
            healthy: AtomicU32::new(0),
            progress: event_listener::Event::new(),
            deletes: RwLock::new(HashMap::new()),
        })
    }

    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Records that post `id` is about to be deleted by operation `seq`,
    /// sent at `sent_us`.
    pub fn note_delete(&self, id: u64, seq: u64, sent_us: u64) {
        self.deletes
            .write()
            .expect("no panics while held")
            .insert(id, (seq, sent_us));
    }

    /// The (bench seq, send time µs) of the delete of post `id`, if any.
    pub fn delete_of(&self, id: u64) -> Option<(u64, u64)> {
        self.deletes
            .read()
            .expect("no panics while held")
            .get(&id)
            .copied()
    }
}

/// The name of feed number `k` in a `--feeds` run.
pub fn feed_name(k: u64) -> String {
    format!("f{k}")
}

/// Which of `count` feeds (`f0`..) a client subscribes to in a `--feeds`
/// run: operation SEQ belongs to feed `SEQ mod count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedOf {
    pub index: u32,
    pub count: u32,
}

impl FeedOf {
    /// Client (or slow client) number `i` of a run over `count` feeds.
    pub fn of_client(i: usize, count: u32) -> Self {
        FeedOf {
            index: (i as u64 % count as u64) as u32,
            count,
        }
    }

    /// Whether operation `seq` was posted to this feed.
    pub fn owns(&self, seq: u64) -> bool {
        seq % self.count as u64 == self.index as u64
    }

    pub fn name(&self) -> String {
        feed_name(self.index as u64)
    }
}

/// How a client's stream ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum End {
    /// Still open when the scenario told it to stop.
    #[default]
    Open,
    /// The server sent a close frame (with this code, if any).
    Closed(Option<u16>),
    /// The TCP stream ended or failed without a close frame.
    Eof(String),
}

/// What one client saw.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Bit `s` set = sequence `s` received.
    pub seen: Vec<u64>,
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    /// Frames that were neither a post nor a protocol frame we expect.
    pub other_frames: u64,
    /// `--feeds` runs: benchmark posts of a feed this client did not
    /// subscribe to (each one a failure).
    pub foreign: u64,
    /// `--feeds` runs: the feed this client subscribed to.
    pub feed: Option<FeedOf>,
    /// Change frames without the `seq` that [`OrderKey::Seq`] requires.
    pub missing_seq: u64,
    /// Highest order key seen so far: the server's `seq` of a change, or the
    /// post id ([`OrderKey::Id`]: servers whose frames carry no seq).
    pub last_order: Option<u64>,
    pub end: End,
}

impl ClientStats {
    /// Marks `seq` seen; returns false if it already was.
    fn mark(&mut self, seq: u64) -> bool {
        let w = (seq / 64) as usize;
        if w >= self.seen.len() {
            self.seen.resize(w + 1, 0);
        }
        let bit = 1u64 << (seq % 64);
        let fresh = self.seen[w] & bit == 0;
        self.seen[w] |= bit;
        fresh
    }
}

/// Parses ASCII digits at the start of `s`.
fn digits(s: &str) -> Option<(u64, &str)> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// Finds the benchmark marker in a frame: (seq, send time µs).
pub fn parse_marker(text: &str) -> Option<(u64, u64)> {
    let at = text.find(MARKER)?;
    let (seq, rest) = digits(&text[at + MARKER.len()..])?;
    let rest = rest.strip_prefix('|')?;
    let (t, _) = digits(rest)?;
    Some((seq, t))
}

/// Finds the post id (`"id":N`) in a frame: the first `"id"` key, which is
/// the post's in `newPost`/`postUpdated` (`{"post":{"id":…`) and the deleted
/// post's in `postDeleted` (`{"id":…,"seq":…}`). Inside post strings a quote
/// is escaped, so `"id":` cannot come from a title or content.
pub fn parse_id(text: &str) -> Option<u64> {
    let at = text.find("\"id\":")?;
    digits(text[at + 5..].trim_start()).map(|(v, _)| v)
}

/// Finds the server's change sequence number (`"seq":N`) in a frame. It
/// follows the post in `data`, so the last `"seq"` key is taken.
pub fn parse_seq(text: &str) -> Option<u64> {
    let at = text.rfind("\"seq\":")?;
    digits(text[at + 6..].trim_start()).map(|(v, _)| v)
}

/// Whether a frame is a `postDeleted` event (`/ws` or Socket.IO).
pub fn is_post_deleted(text: &str) -> bool {
    text.contains("\"postDeleted\"")
}

/// The order key of a change frame: its server seq, or its post id.
pub fn order_key(text: &str, by: OrderKey) -> Option<u64> {
    match by {
        OrderKey::Seq => parse_seq(text),
        OrderKey::Id => parse_id(text),
    }
}

/// Identifies a change frame: (bench seq, send time µs). Creates and edits
/// carry the marker in their content; a delete is looked up by post id in
/// `deletes` (see [`Shared::delete_of`]).
pub fn identify(text: &str, deletes: impl FnOnce(u64) -> Option<(u64, u64)>) -> Option<(u64, u64)> {
    if let Some(m) = parse_marker(text) {
        return Some(m);
    }
    if is_post_deleted(text) {
        return deletes(parse_id(text)?);
    }
    None
}

/// Options for connecting one client.
#[derive(Clone)]
pub struct ConnectOpts {
    pub addr: SocketAddr,
    pub proto: Proto,
    /// SO_RCVBUF to set before connecting (slow consumers).
    pub rcvbuf: Option<usize>,
    /// TCP_MAXSEG to set before connecting (slow consumers): the MSS we
    /// announce. On loopback the peer would otherwise see a 64 KiB MSS and
    /// size its send buffer for it (up to tcp_wmem's 4 MiB), so a server
    /// could park megabytes per slow client in the kernel before its own
    /// backlog limit ever sees them; an Ethernet-sized MSS keeps that to
    /// what a real network peer would get.
    pub mss: Option<u32>,
    pub timeout: Duration,
    /// The feed to subscribe to (`--feeds` runs); None: the server's
    /// default feed, with no `feeds` in the request.
    pub feed: Option<String>,
}

/// The websocket path a client opens: livefeed's `/ws` or Socket.IO's, with
/// `?feeds=` for `/ws` when it subscribes to a named feed.
pub fn ws_path(proto: Proto, feed: Option<&str>) -> String {
    match (proto, feed) {
        (Proto::Ws, None) => "/ws".into(),
        (Proto::Ws, Some(f)) => format!("/ws?feeds={f}"),
        (Proto::Sio, _) => "/socket.io/?EIO=4&transport=websocket".into(),
    }
}

/// The Socket.IO CONNECT packet for the default namespace: `40`, or
/// `40{"feeds":["f"]}` (the `auth` of `io(url, {auth: {feeds: [f]}})`).
pub fn sio_connect_packet(feed: Option<&str>) -> String {
    match feed {
        None => "40".into(),
        Some(f) => format!(r#"40{{"feeds":["{f}"]}}"#),
    }
}

fn ws_config() -> WebSocketConfig {
    // Small buffers: 10,000 clients x tungstenite's 128 KiB defaults would be 2.5 GiB.
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
}

async fn tcp_connect(opts: &ConnectOpts) -> std::io::Result<TcpStream> {
    match opts.rcvbuf {
        None => TcpStream::connect(opts.addr).await,
        Some(size) => {
            let (addr, mss) = (opts.addr, opts.mss);
            // A blocking connect on loopback is quick; keep it off the executor anyway.
            let std =
                async_std::task::spawn_blocking(move || -> std::io::Result<std::net::TcpStream> {
                    use socket2::{Domain, Protocol, Socket, Type};
                    let s =
                        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
                    // Before connect, so the advertised window scale stays small.
                    s.set_recv_buffer_size(size)?;
                    if let Some(mss) = mss {
                        s.set_mss(mss)?;
                    }
                    s.connect_timeout(&addr.into(), Duration::from_secs(10))?;
                    s.set_nonblocking(true)?;
                    Ok(s.into())
                })
                .await?;
            Ok(TcpStream::from(std))
        }
    }
}

/// Connects one client and waits for its welcome (`/ws`) or Socket.IO connect
/// packet (`40`). Returns the open stream.
pub async fn connect(opts: &ConnectOpts) -> Result<Ws, String> {
    let fut = async {
        let tcp = tcp_connect(opts)
            .await
            .map_err(|e| format!("tcp connect: {e}"))?;
        let path = ws_path(opts.proto, opts.feed.as_deref());
        let url = format!("ws://{}{}", opts.addr, path);
        let (mut ws, _) = async_tungstenite::client_async_with_config(url, tcp, Some(ws_config()))
            .await
            .map_err(|e| format!("websocket handshake: {e}"))?;
        // Bounded: each frame read is covered by the outer timeout.
        loop {
            let msg = match ws.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(format!("before welcome: {e}")),
                None => return Err("closed before welcome".into()),
            };
            let Message::Text(t) = msg else { continue };
            let t = t.as_str();
            match opts.proto {
                Proto::Ws => {
                    if t.contains("\"welcome\"") {
                        return Ok(ws);
                    }
                }
                Proto::Sio => {
                    if t.starts_with("0{") {
                        ws.send(Message::text(sio_connect_packet(opts.feed.as_deref())))
                            .await
                            .map_err(|e| format!("send 40: {e}"))?;
                    } else if t.starts_with("40") {
                        return Ok(ws);
                    } else if t == "2" {
                        ws.send(Message::text("3"))
                            .await
                            .map_err(|e| format!("send pong: {e}"))?;
                    } else if t.starts_with("44") {
                        return Err(format!("socket.io connect error: {t}"));
                    }
                }
            }
        }
    };
    async_std::future::timeout(opts.timeout, fut)
        .await
        .unwrap_or_else(|_| Err("timed out waiting for welcome".into()))
}

/// What a reader does with each post it receives.
#[derive(Clone, Copy)]
pub struct ReadMode {
    /// Healthy clients feed the shared latency histogram and counters.
    pub healthy: bool,
    /// `--feeds` runs: the client's feed; posts of other feeds are foreign.
    pub feed: Option<FeedOf>,
    /// What the stream must be ordered by.
    pub order: OrderKey,
}

/// Handles one text frame. Returns a reply to send, if any.
fn on_text(
    t: &str,
    proto: Proto,
    st: &mut ClientStats,
    shared: &Shared,
    mode: ReadMode,
    now_us: u64,
) -> Option<&'static str> {
    if proto == Proto::Sio && t == "2" {
        return Some("3");
    }
    let Some((seq, sent_us)) = identify(t, |id| shared.delete_of(id)) else {
        st.other_frames += 1;
        return None;
    };
    if mode.feed.is_some_and(|f| !f.owns(seq)) {
        // Another feed's post: never a delivery, and never its seq.
        st.foreign += 1;
        return None;
    }
    if !st.mark(seq) {
        st.duplicates += 1;
        return None;
    }
    // Changes must arrive in ascending server seq (post id for servers without one).
    match order_key(t, mode.order) {
        Some(key) => {
            if let Some(last) = st.last_order {
                if key <= last {
                    st.out_of_order += 1;
                }
            }
            st.last_order = Some(st.last_order.map_or(key, |l| l.max(key)));
        }
        None => st.missing_seq += 1,
    }
    st.unique += 1;
    if mode.healthy {
        shared.latency.record(now_us.saturating_sub(sent_us));
        shared.delivered.fetch_add(1, Ordering::Relaxed);
        shared.last_delivery_us.fetch_max(now_us, Ordering::Relaxed);
        if let Some(c) = shared.per_seq.get(seq as usize) {
            let got = c.fetch_add(1, Ordering::AcqRel) + 1;
            if got == shared.healthy.load(Ordering::Relaxed) {
                shared.completed.fetch_add(1, Ordering::AcqRel);
                shared.progress.notify(usize::MAX);
            }
        }
    }
    None
}

/// Reads a client's stream until `stop` fires or the stream ends.
pub async fn read_loop(
    mut ws: Ws,
    proto: Proto,
    shared: Arc<Shared>,
    mode: ReadMode,
    stop: async_std::channel::Receiver<()>,
) -> ClientStats {
    let mut st = ClientStats {
        feed: mode.feed,
        ..Default::default()
    };
    let stop_fut = stop.recv();
    futures::pin_mut!(stop_fut);
    loop {
        let msg = match futures::future::select(ws.next(), stop_fut.as_mut()).await {
            futures::future::Either::Left((m, _)) => m,
            // Stop was signalled (the sender was dropped).
            futures::future::Either::Right(_) => break,
        };
        let now_us = shared.now_us();
        match msg {
            Some(Ok(Message::Text(t))) => {
                if let Some(reply) = on_text(t.as_str(), proto, &mut st, &shared, mode, now_us) {
                    if let Err(e) = ws.send(Message::text(reply)).await {
                        st.end = End::Eof(format!("send: {e}"));
                        return st;
                    }
                }
            }
            Some(Ok(Message::Close(frame))) => {
                st.end = End::Closed(frame.map(|f| u16::from(f.code)));
                return st;
            }
            Some(Ok(_)) => {} // ping/pong/binary: tungstenite answers pings itself
            Some(Err(e)) => {
                st.end = End::Eof(e.to_string());
                return st;
            }
            None => {
                st.end = End::Eof("stream ended".into());
                return st;
            }
        }
    }
    // Close politely but don't wait long for the server's answer.
    let _ = async_std::future::timeout(Duration::from_millis(200), ws.close(None)).await;
    st
}

/// Reads a parked (slow) client for at most `deadline`, until it ends or has
/// `want` posts. Used after the measured phase to learn whether the server
/// disconnected it.
pub async fn drain(
    mut ws: Ws,
    proto: Proto,
    shared: Arc<Shared>,
    want: u64,
    deadline: Duration,
    feed: Option<FeedOf>,
    order: OrderKey,
) -> ClientStats {
    let mut st = ClientStats {
        feed,
        ..Default::default()
    };
    let mode = ReadMode {
        healthy: false,
        feed,
        order,
    };
    let until = Instant::now() + deadline;
    while st.unique < want {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let msg = match async_std::future::timeout(left, ws.next()).await {
            Ok(m) => m,
            Err(_) => break,
        };
        let now_us = shared.now_us();
        match msg {
            Some(Ok(Message::Text(t))) => {
                if let Some(reply) = on_text(t.as_str(), proto, &mut st, &shared, mode, now_us) {
                    let _ = ws.send(Message::text(reply)).await;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                st.end = End::Closed(frame.map(|f| u16::from(f.code)));
                return st;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                st.end = End::Eof(e.to_string());
                return st;
            }
            None => {
                st.end = End::Eof("stream ended".into());
                return st;
            }
        }
    }
    let _ = async_std::future::timeout(Duration::from_millis(200), ws.close(None)).await;
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_marker_and_id() {
        let ws = r#"{"event":"newPost","data":{"post":{"id":42,"title":"b","content":"lfb|7|123456|xxxx","author":"a","createdAt":"x"}}}"#;
        assert_eq!(parse_marker(ws), Some((7, 123456)));
        assert_eq!(parse_id(ws), Some(42));
        let sio =
            r#"42["newPost",{"post":{"id":9,"title":"b","content":"lfb|0|5|","author":"a"}},"9"]"#;
        assert_eq!(parse_marker(sio), Some((0, 5)));
        assert_eq!(parse_id(sio), Some(9));
        assert_eq!(
            parse_marker(r#"{"event":"welcome","data":{"connectionId":"c","lastPostId":null}}"#),
            None
        );
        assert_eq!(
            parse_id(r#"{"event":"welcome","data":{"connectionId":"c","lastPostId":3}}"#),
            None
        );
    }

    #[test]
    fn finds_server_seq() {
        let upd = r#"{"event":"postUpdated","data":{"post":{"id":3,"title":"bench 3","content":"lfb|9|77|x","author":"a","createdAt":"x","updatedAt":"y"},"seq":12}}"#;
        assert_eq!(parse_seq(upd), Some(12));
        assert_eq!(parse_id(upd), Some(3));
        assert_eq!(parse_marker(upd), Some((9, 77)));
        assert_eq!(order_key(upd, OrderKey::Seq), Some(12));
        assert_eq!(order_key(upd, OrderKey::Id), Some(3));
        let sio = r#"42["newPost",{"post":{"id":5,"content":"lfb|1|2|"},"seq":5},"5"]"#;
        assert_eq!(parse_seq(sio), Some(5));
        // The Node baseline's frames carry no seq: order by post id.
        let node = r#"42["newPost",{"post":{"id":8,"content":"lfb|1|2|"}}]"#;
        assert_eq!(parse_seq(node), None);
        assert_eq!(order_key(node, OrderKey::Id), Some(8));
        assert_eq!(order_key(node, OrderKey::Seq), None);
    }

    #[test]
    fn orders_limit_server_frames_by_post_id_and_livefeed_frames_only_by_seq() {
        // limit-server's frames: no seq, no lastSeq in the welcome.
        let welcome = r#"{"event":"welcome","data":{"connectionId":3,"lastPostId":0}}"#;
        let post = |id: u64, seq: u64| {
            format!(
                r#"{{"event":"newPost","data":{{"post":{{"id":{id},"title":"t","content":"lfb|{seq}|10|x","author":"a","createdAt":"x"}}}}}}"#
            )
        };
        let shared = Shared::new(0);
        let by_id = ReadMode {
            healthy: true,
            feed: None,
            order: OrderKey::Id,
        };
        let mut st = ClientStats::default();
        assert_eq!(
            on_text(welcome, Proto::Ws, &mut st, &shared, by_id, 20),
            None
        );
        for (id, seq) in [(1, 0), (2, 1), (4, 2)] {
            on_text(&post(id, seq), Proto::Ws, &mut st, &shared, by_id, 20);
        }
        assert_eq!((st.unique, st.out_of_order, st.missing_seq), (3, 0, 0));
        assert_eq!(st.other_frames, 1);
        // An older id after a newer one is out of order in id mode too.
        on_text(&post(3, 3), Proto::Ws, &mut st, &shared, by_id, 20);
        assert_eq!(st.out_of_order, 1);

        // The same frames from a target ordered by seq: each is a missing seq,
        // never silently ordered by id.
        let by_seq = ReadMode {
            order: OrderKey::Seq,
            ..by_id
        };
        let mut st = ClientStats::default();
        for (id, seq) in [(1, 0), (2, 1)] {
            on_text(&post(id, seq), Proto::Ws, &mut st, &shared, by_seq, 20);
        }
        assert_eq!((st.unique, st.missing_seq, st.last_order), (2, 2, None));
    }

    #[test]
    fn recognises_deletes_by_post_id() {
        let ws = r#"{"event":"postDeleted","data":{"id":7,"seq":10}}"#;
        let sio = r#"42["postDeleted",{"id":7,"seq":10},"10"]"#;
        let map = |id| (id == 7).then_some((4, 1234));
        for f in [ws, sio] {
            assert!(is_post_deleted(f));
            assert_eq!(parse_id(f), Some(7));
            assert_eq!(parse_seq(f), Some(10));
            assert_eq!(identify(f, map), Some((4, 1234)));
            // A delete nobody recorded is not ours.
            assert_eq!(identify(f, |_| None), None);
        }
        // A marker wins without consulting the map.
        let new = r#"{"event":"newPost","data":{"post":{"id":7,"content":"lfb|2|3|"},"seq":7}}"#;
        assert_eq!(identify(new, |_| panic!("no lookup")), Some((2, 3)));
        assert!(!is_post_deleted(new));
        let welcome =
            r#"{"event":"welcome","data":{"connectionId":"c1","lastPostId":null,"lastSeq":null}}"#;
        assert_eq!(identify(welcome, map), None);
    }

    #[test]
    fn checks_a_mixed_stream() {
        let shared = Shared::new(0);
        shared.healthy.store(1, Ordering::Relaxed);
        shared.note_delete(1, 2, 100);
        let mode = ReadMode {
            healthy: true,
            feed: None,
            order: OrderKey::Seq,
        };
        let mut st = ClientStats::default();
        let frames = [
            r#"{"event":"newPost","data":{"post":{"id":1,"content":"lfb|0|10|"},"seq":1}}"#,
            r#"{"event":"postUpdated","data":{"post":{"id":1,"content":"lfb|1|20|"},"seq":2}}"#,
            r#"{"event":"postDeleted","data":{"id":1,"seq":3}}"#,
        ];
        for f in frames {
            assert_eq!(on_text(f, Proto::Ws, &mut st, &shared, mode, 500), None);
        }
        assert_eq!((st.unique, st.duplicates, st.out_of_order), (3, 0, 0));
        assert_eq!(st.seen, vec![0b111]);
        assert_eq!(shared.delivered.load(Ordering::Relaxed), 3);
        assert_eq!(shared.latency.summary().max_us, 490);
        // Again: duplicates. An older seq after a newer one: out of order.
        on_text(frames[2], Proto::Ws, &mut st, &shared, mode, 600);
        assert_eq!(st.duplicates, 1);
        let late = r#"{"event":"newPost","data":{"post":{"id":2,"content":"lfb|3|30|"},"seq":2}}"#;
        on_text(late, Proto::Ws, &mut st, &shared, mode, 600);
        assert_eq!(st.out_of_order, 1);
        // Edits reuse a post id but advance the seq: in order.
        let edit =
            r#"{"event":"postUpdated","data":{"post":{"id":1,"content":"lfb|4|40|"},"seq":9}}"#;
        on_text(edit, Proto::Ws, &mut st, &shared, mode, 600);
        assert_eq!((st.unique, st.out_of_order), (5, 1));
    }

    #[test]
    fn feed_clients_subscribe_by_index_and_count_foreign_posts() {
        assert_eq!(ws_path(Proto::Ws, None), "/ws");
        assert_eq!(ws_path(Proto::Ws, Some("f7")), "/ws?feeds=f7");
        assert_eq!(
            ws_path(Proto::Sio, Some("f7")),
            "/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(sio_connect_packet(None), "40");
        assert_eq!(sio_connect_packet(Some("f7")), r#"40{"feeds":["f7"]}"#);
        let f = FeedOf::of_client(23, 10);
        assert_eq!((f.index, f.name()), (3, "f3".to_string()));
        assert!(f.owns(3) && f.owns(13) && !f.owns(4));

        let shared = Shared::new(0);
        let mode = ReadMode {
            healthy: true,
            feed: Some(f),
            order: OrderKey::Seq,
        };
        let mut st = ClientStats::default();
        let mine = r#"{"event":"newPost","data":{"post":{"id":4,"feed":"f3","content":"lfb|13|10|"},"seq":4}}"#;
        let other = r#"{"event":"newPost","data":{"post":{"id":5,"feed":"f4","content":"lfb|14|10|"},"seq":5}}"#;
        let sio_other =
            r#"42["newPost",{"post":{"id":6,"feed":"f5","content":"lfb|15|10|"},"seq":6}]"#;
        on_text(mine, Proto::Ws, &mut st, &shared, mode, 50);
        on_text(other, Proto::Ws, &mut st, &shared, mode, 50);
        on_text(sio_other, Proto::Sio, &mut st, &shared, mode, 50);
        assert_eq!((st.unique, st.foreign, st.out_of_order), (1, 2, 0));
        assert_eq!(shared.delivered.load(Ordering::Relaxed), 1);
        // A foreign post neither marks its seq nor moves the order key.
        assert_eq!(st.seen, vec![1 << 13]);
        assert_eq!(st.last_order, Some(4));
    }
}
