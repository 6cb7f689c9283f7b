//! HTTP publishers: `POST /posts` at a fixed rate, with a window of posts in
//! flight until every client has them, or as fast as possible.
//!
//! Each post's content carries `lfb|SEQ|T_US|` followed by padding, where
//! T_US is taken just before the request is written.
//!
//! In mixed mode (`--mix C:E:D`) every operation, numbered by its bench seq
//! as the creates are, is a create, an edit or a delete, picked by weight
//! from a hash of that seq. Each publisher keeps the ids of the posts it
//! created (from the 201 body) and edits (`PATCH /posts/{id}`, a new
//! `content` with the marker of the edit's own seq) or deletes
//! (`DELETE /posts/{id}`) one of its live posts, also picked from the seq;
//! with none live it creates. A delete is recorded in [`Shared::deletes`]
//! before it is sent, since its frame has no content to carry a marker.
//!
//! With `--feeds F` (creates only) operation SEQ is `POST
//! /feeds/f{SEQ mod F}/posts`, so the publish rate is spread evenly over
//! the feeds.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::{feed_name, parse_id, Shared, MARKER};
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

/// One kind of change a publisher makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST /posts`, answered 201.
    Create = 0,
    /// `PATCH /posts/{id}`, answered 200.
    Edit = 1,
    /// `DELETE /posts/{id}`, answered 204.
    Delete = 2,
}

impl Op {
    /// The status that counts as success.
    pub fn ok_status(self) -> u16 {
        match self {
            Op::Create => 201,
            Op::Edit => 200,
            Op::Delete => 204,
        }
    }
}

/// Weights of creates, edits and deletes in mixed mode (`C:E:D`, e.g. `6:3:1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub create: u32,
    pub edit: u32,
    pub delete: u32,
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let [c, e, d] = parts[..] else {
            return Err(format!("expected C:E:D (e.g. 6:3:1), got {s:?}"));
        };
        let num = |x: &str| {
            x.trim()
                .parse::<u32>()
                .map_err(|_| format!("bad weight {x:?} in {s:?}"))
        };
        let m = Mix {
            create: num(c)?,
            edit: num(e)?,
            delete: num(d)?,
        };
        if m.total() == 0 {
            return Err("the weights must not all be 0".into());
        }
        if m.total() > 1_000_000 {
            return Err("weights add up to more than 1,000,000".into());
        }
        Ok(m)
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.create, self.edit, self.delete)
    }
}

/// splitmix64's finaliser: a well-mixed 64-bit hash of `x`.
fn hash64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Mix {
    pub fn total(&self) -> u64 {
        self.create as u64 + self.edit as u64 + self.delete as u64
    }

    /// The operation bench seq `seq` makes (before falling back to a create
    /// when its publisher has no live post).
    pub fn pick(&self, seq: u64) -> Op {
        let r = hash64(seq) % self.total();
        if r < self.create as u64 {
            Op::Create
        } else if r < self.create as u64 + self.edit as u64 {
            Op::Edit
        } else {
            Op::Delete
        }
    }
}

/// Which of `live` (> 0) posts the edit or delete with bench seq `seq` targets.
pub fn pick_target(seq: u64, live: usize) -> usize {
    (hash64(seq ^ 0x5555_5555_5555_5555) % live as u64) as usize
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
    /// Mixed mode: creates, edits and deletes by these weights (None: creates only).
    pub mix: Option<Mix>,
    /// `--feeds F`: operation SEQ creates its post in feed `f{SEQ mod F}`
    /// (None: `POST /posts`, the default feed).
    pub feeds: Option<u32>,
}

/// The path that creates post `seq`: `/posts`, or `/feeds/f{seq mod F}/posts`.
pub fn create_path(seq: u64, feeds: Option<u32>) -> String {
    match feeds {
        None => "/posts".into(),
        Some(f) => format!("/feeds/{}/posts", feed_name(seq % f.max(1) as u64)),
    }
}

/// What the publishers did.
#[derive(Debug, Default)]
pub struct PubStats {
    /// Bit `s` set = operation `s` succeeded (201, or 200/204 for an edit/delete).
    pub ok_seqs: Vec<u64>,
    /// Operations that succeeded (every kind).
    pub ok: u64,
    /// Operations that failed (every kind).
    pub failed: u64,
    /// Per operation kind (indexed by `Op as usize`): successes.
    pub ok_by_op: [u64; 3],
    /// Per operation kind: failures.
    pub failed_by_op: [u64; 3],
    /// Mixed mode: edits or deletes picked when their publisher had no live
    /// post, sent as creates instead (counted as creates above).
    pub fallback_creates: u64,
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

/// Builds the JSON body of edit `seq` sent at `t_us`: a new content only.
pub fn edit_body(seq: u64, t_us: u64, pad: &str) -> Vec<u8> {
    format!(r#"{{"content":"{MARKER}{seq}|{t_us}|{pad}"}}"#).into_bytes()
}

impl PubShared {
    /// Sends operation `seq`. `own` is the publisher's live posts (mixed mode).
    async fn send(&self, conn: &mut HttpConn, seq: u64, own: &mut Vec<u64>) {
        let mut fallback = false;
        let op = match self.opts.mix {
            None => Op::Create,
            Some(m) => match m.pick(seq) {
                Op::Create => Op::Create,
                _ if own.is_empty() => {
                    fallback = true;
                    Op::Create
                }
                op => op,
            },
        };
        let t_us = self.shared.now_us();
        self.first_send_us.fetch_min(t_us, Ordering::Relaxed);
        let (method, path, body) = match op {
            Op::Create => (
                "POST",
                create_path(seq, self.opts.feeds),
                post_body(seq, t_us, &self.pad),
            ),
            Op::Edit => {
                let id = own[pick_target(seq, own.len())];
                let body = edit_body(seq, t_us, &self.pad);
                ("PATCH", format!("/posts/{id}"), body)
            }
            Op::Delete => {
                // Gone from this publisher's live posts whatever the answer.
                let id = own.swap_remove(pick_target(seq, own.len()));
                // Before the request: the frame may beat the response.
                self.shared.note_delete(id, seq, t_us);
                ("DELETE", format!("/posts/{id}"), Vec::new())
            }
        };
        let content_type = (op != Op::Delete).then_some("application/json");
        let res = conn.request(method, &path, content_type, &body).await;
        let done_us = self.shared.now_us();
        self.post_latency.record(done_us.saturating_sub(t_us));
        if self.opts.mix.is_some() && op == Op::Create {
            if let Ok(r) = &res {
                if r.status == 201 {
                    if let Some(id) = std::str::from_utf8(&r.body).ok().and_then(parse_id) {
                        own.push(id);
                    }
                }
            }
        }
        // Errors of edits and deletes name their method (creates' read as before).
        let what = if op == Op::Create {
            String::new()
        } else {
            format!("{method} ")
        };
        let mut st = self.stats.lock().expect("no panics while held");
        st.fallback_creates += fallback as u64;
        match res {
            Ok(r) if r.status == op.ok_status() => {
                st.ok += 1;
                st.ok_by_op[op as usize] += 1;
                let w = (seq / 64) as usize;
                if w >= st.ok_seqs.len() {
                    st.ok_seqs.resize(w + 1, 0);
                }
                st.ok_seqs[w] |= 1 << (seq % 64);
            }
            Ok(r) => {
                st.failed += 1;
                st.failed_by_op[op as usize] += 1;
                if st.errors.len() < 5 {
                    st.errors.push(format!(
                        "{what}status {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                    ));
                }
            }
            Err(e) => {
                st.failed += 1;
                st.failed_by_op[op as usize] += 1;
                if st.errors.len() < 5 {
                    st.errors.push(format!("{what}{e}"));
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
        // This publisher's live posts (mixed mode).
        let mut own = Vec::new();
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
                    self.send(&mut conn, i, &mut own).await;
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
                self.send(&mut conn, seq, &mut own).await;
            },
            Pace::Free { duration } => loop {
                if start.elapsed() >= duration {
                    break;
                }
                let seq = self.next.fetch_add(1, Ordering::Relaxed);
                self.send(&mut conn, seq, &mut own).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mix() {
        let m: Mix = "6:3:1".parse().unwrap();
        assert_eq!(
            m,
            Mix {
                create: 6,
                edit: 3,
                delete: 1
            }
        );
        assert_eq!(m.to_string(), "6:3:1");
        assert_eq!(m.total(), 10);
        for bad in ["", "6:3", "6:3:1:0", "a:1:1", "0:0:0", "-1:1:1"] {
            assert!(bad.parse::<Mix>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn picks_by_weight_and_deterministically() {
        let m: Mix = "6:3:1".parse().unwrap();
        let n = 100_000u64;
        let mut counts = [0u64; 3];
        for seq in 0..n {
            let op = m.pick(seq);
            assert_eq!(op, m.pick(seq));
            counts[op as usize] += 1;
        }
        // Within 2 % of 60 / 30 / 10 %.
        for (got, want) in counts.iter().zip([0.6, 0.3, 0.1]) {
            let share = *got as f64 / n as f64;
            assert!((share - want).abs() < 0.02, "{counts:?}");
        }
        let creates: Mix = "1:0:0".parse().unwrap();
        assert!((0..1000).all(|s| creates.pick(s) == Op::Create));
        let deletes: Mix = "0:0:1".parse().unwrap();
        assert!((0..1000).all(|s| deletes.pick(s) == Op::Delete));
        for live in 1..20 {
            for seq in 0..200 {
                let i = pick_target(seq, live);
                assert!(i < live);
                assert_eq!(i, pick_target(seq, live));
            }
        }
        // Every live post gets picked sometimes.
        let mut hit = [false; 7];
        (0..500).for_each(|s| hit[pick_target(s, 7)] = true);
        assert!(hit.iter().all(|h| *h));
    }

    #[test]
    fn bodies_carry_the_marker() {
        let b = String::from_utf8(edit_body(12, 345, "xx")).unwrap();
        assert_eq!(b, r#"{"content":"lfb|12|345|xx"}"#);
        assert_eq!(crate::client::parse_marker(&b), Some((12, 345)));
        let p = String::from_utf8(post_body(1, 2, "")).unwrap();
        assert_eq!(crate::client::parse_marker(&p), Some((1, 2)));
        let created = r#"{"id":41,"title":"bench 1","content":"lfb|1|2|","author":"livefeed-bench","createdAt":"x","updatedAt":null}"#;
        assert_eq!(parse_id(created), Some(41));
    }

    #[test]
    fn spreads_creates_over_the_feeds() {
        assert_eq!(create_path(7, None), "/posts");
        assert_eq!(create_path(7, Some(1)), "/feeds/f0/posts");
        assert_eq!(create_path(1007, Some(1000)), "/feeds/f7/posts");
        assert_eq!(create_path(999, Some(1000)), "/feeds/f999/posts");
    }
}
