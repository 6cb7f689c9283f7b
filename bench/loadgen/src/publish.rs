//! HTTP publishers: `POST /posts` at a fixed rate, with a window of posts in
//! flight until every client has them, or as fast as possible.
//!
//! Each post's content carries `lfb|SEQ|T_US|` followed by padding, where
//! T_US is taken just before the request is written.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::{Shared, MARKER};
use crate::hist::Histogram;
use crate::http::HttpConn;

/// How posts are paced.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// `rate` posts per second for `duration`, spread over the publishers.
    Rate { rate: f64, duration: Duration },
    /// At most `window` posts not yet delivered to every healthy client; stop
    /// sending after `duration` or `max_posts`.
    Window {
        window: u64,
        duration: Duration,
        max_posts: u64,
        stall: Duration,
    },
    /// Every publisher posts back to back for `duration`.
    Free { duration: Duration },
}

/// Options shared by all publishers.
#[derive(Debug, Clone)]
pub struct PubOpts {
    pub addr: SocketAddr,
    /// More nodes of the same feed: publisher k posts to node k mod (1 + also.len()).
    pub also: Vec<SocketAddr>,
    pub publishers: usize,
    /// Bytes of padding after the marker in each post's content.
    pub pad: usize,
    pub timeout: Duration,
    pub pace: Pace,
}

/// What the publishers did.
#[derive(Debug, Default)]
pub struct PubStats {
    /// Bit `s` set = post `s` got a 201.
    pub ok_seqs: Vec<u64>,
    pub ok: u64,
    pub failed: u64,
    pub errors: Vec<String>,
    /// µs since epoch of the first request written.
    pub first_send_us: u64,
    /// µs since epoch when the last publisher finished.
    pub end_us: u64,
    /// The window publisher gave up waiting for deliveries.
    pub stalled: bool,
    /// New TCP connections opened by publishers (publishers at best).
    pub http_connects: u64,
    /// POSTs sent a second time because a kept-alive connection was closed.
    pub http_retries: u64,
    /// Rate mode: worst lateness of a send against its schedule, in µs
    /// (large when every publisher was waiting on a slow POST).
    pub max_send_lag_us: u64,
}

struct PubShared {
    opts: PubOpts,
    shared: Arc<Shared>,
    pad: String,
    next: AtomicU64,
    first_send_us: AtomicU64,
    abort: AtomicBool,
    /// Worst lateness of a scheduled send (rate mode).
    max_lag_us: AtomicU64,
    stats: Mutex<PubStats>,
    post_latency: Arc<Histogram>,
}

/// Builds the JSON body of post `seq` sent at `t_us`.
pub fn post_body(seq: u64, t_us: u64, pad: &str) -> Vec<u8> {
    format!(
        r#"{{"title":"bench {seq}","content":"{MARKER}{seq}|{t_us}|{pad}","author":"livefeed-bench"}}"#
    )
    .into_bytes()
}

impl PubShared {
    async fn send(&self, conn: &mut HttpConn, seq: u64) {
        let t_us = self.shared.now_us();
        self.first_send_us.fetch_min(t_us, Ordering::Relaxed);
        let body = post_body(seq, t_us, &self.pad);
        let res = conn
            .request("POST", "/posts", Some("application/json"), &body)
            .await;
        let done_us = self.shared.now_us();
        self.post_latency.record(done_us.saturating_sub(t_us));
        let mut st = self.stats.lock().expect("no panics while held");
        match res {
            Ok(r) if r.status == 201 => {
                st.ok += 1;
                let w = (seq / 64) as usize;
                if w >= st.ok_seqs.len() {
                    st.ok_seqs.resize(w + 1, 0);
                }
                st.ok_seqs[w] |= 1 << (seq % 64);
            }
            Ok(r) => {
                st.failed += 1;
                if st.errors.len() < 5 {
                    st.errors.push(format!(
                        "status {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                    ));
                }
            }
            Err(e) => {
                st.failed += 1;
                if st.errors.len() < 5 {
                    st.errors.push(e.to_string());
                }
            }
        }
    }

    /// Waits until at most `window` posts before `seq` are undelivered.
    async fn wait_window(&self, seq: u64, window: u64, stall: Duration) -> bool {
        if seq < window {
            return true;
        }
        let need = seq + 1 - window;
        let until = std::time::Instant::now() + stall;
        loop {
            if self.shared.completed.load(Ordering::Acquire) >= need {
                return true;
            }
            let listener = self.shared.progress.listen();
            if self.shared.completed.load(Ordering::Acquire) >= need {
                return true;
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() || self.abort.load(Ordering::Relaxed) {
                return false;
            }
            let _ = async_std::future::timeout(left, listener).await;
        }
    }

    async fn run_one(self: Arc<Self>, k: usize) -> (u64, u64) {
        let addr = match (k % (self.opts.also.len() + 1)).checked_sub(1) {
            Some(i) => self.opts.also[i],
            None => self.opts.addr,
        };
        let mut conn = HttpConn::new(addr, self.opts.timeout);
        let start = std::time::Instant::now();
        let n = self.opts.publishers as u64;
        match self.opts.pace {
            Pace::Rate { rate, duration } => {
                let total = (rate * duration.as_secs_f64()).ceil() as u64;
                let mut i = k as u64;
                while i < total {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    let now = std::time::Instant::now();
                    if due > now {
                        async_std::task::sleep(due - now).await;
                    } else {
                        // Every publisher was busy: the offered rate slipped.
                        let lag = (now - due).as_micros() as u64;
                        self.max_lag_us.fetch_max(lag, Ordering::Relaxed);
                    }
                    self.send(&mut conn, i).await;
                    i += n;
                }
            }
            Pace::Window {
                window,
                duration,
                max_posts,
                stall,
            } => loop {
                if start.elapsed() >= duration || self.abort.load(Ordering::Relaxed) {
                    break;
                }
                let seq = self.next.fetch_add(1, Ordering::Relaxed);
                if seq >= max_posts {
                    break;
                }
                if !self.wait_window(seq, window, stall).await {
                    self.abort.store(true, Ordering::Relaxed);
                    self.stats.lock().expect("no panics while held").stalled = true;
                    // This seq was never sent; later seqs are not sent either.
                    break;
                }
                self.send(&mut conn, seq).await;
            },
            Pace::Free { duration } => loop {
                if start.elapsed() >= duration {
                    break;
                }
                let seq = self.next.fetch_add(1, Ordering::Relaxed);
                self.send(&mut conn, seq).await;
            },
        }
        (conn.connects, conn.retries)
    }
}

/// Runs the publishers to completion. Latency of each POST (request written to
/// response read) goes to `post_latency`.
pub async fn run(opts: PubOpts, shared: Arc<Shared>, post_latency: Arc<Histogram>) -> PubStats {
    let pad = "x".repeat(opts.pad);
    let ps = Arc::new(PubShared {
        opts: opts.clone(),
        shared: shared.clone(),
        pad,
        next: AtomicU64::new(0),
        first_send_us: AtomicU64::new(u64::MAX),
        abort: AtomicBool::new(false),
        max_lag_us: AtomicU64::new(0),
        stats: Mutex::new(PubStats::default()),
        post_latency,
    });
    let handles: Vec<_> = (0..opts.publishers.max(1))
        .map(|k| async_std::task::spawn(ps.clone().run_one(k)))
        .collect();
    let (mut connects, mut retries) = (0, 0);
    for h in handles {
        let (c, r) = h.await;
        connects += c;
        retries += r;
    }
    let mut st = std::mem::take(&mut *ps.stats.lock().expect("no panics while held"));
    st.first_send_us = ps.first_send_us.load(Ordering::Relaxed);
    if st.first_send_us == u64::MAX {
        st.first_send_us = shared.now_us();
    }
    st.end_us = shared.now_us();
    st.http_connects = connects;
    st.http_retries = retries;
    st.max_send_lag_us = ps.max_lag_us.load(Ordering::Relaxed);
    st
}
