//! The scenarios: subscribers + publishers against one running server, and
//! the JSON result line each one prints.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::client::{
    self, ClientStats, ConnectOpts, End, FeedOf, OrderKey, Proto, ReadMode, Shared, Ws,
};
use crate::hist::Histogram;
use crate::proc::{self, RssSampler};
use crate::publish::{self, Mix, Op, Pace, PubOpts, PubStats};

/// How often the RSS sampler reads /proc.
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// How many error messages of each kind a result keeps.
const KEEP_ERRORS: usize = 5;

/// Everything a fan-out style scenario needs.
#[derive(Debug, Clone)]
pub struct FanoutCfg {
    pub addr: SocketAddr,
    /// More nodes of the same feed: clients and publishers go round-robin
    /// over `addr` and these.
    pub also: Vec<SocketAddr>,
    pub proto: Proto,
    pub server_pid: Option<u32>,
    /// Healthy (reading) clients.
    pub clients: usize,
    /// Clients that connect, then never read (slow consumers).
    pub slow: usize,
    /// SO_RCVBUF for slow clients, set before connecting.
    pub slow_rcvbuf: usize,
    /// TCP_MAXSEG for slow clients, set before connecting (0 = kernel default).
    pub slow_mss: u32,
    pub connect_concurrency: usize,
    pub connect_timeout: Duration,
    /// Pause after the last welcome before reading idle RSS.
    pub settle: Duration,
    pub pace: Pace,
    /// Mixed mode: creates, edits and deletes by these weights.
    pub mix: Option<Mix>,
    pub publishers: usize,
    /// Padding bytes per post.
    pub pad: usize,
    pub http_timeout: Duration,
    /// How long to wait after publishing for deliveries to finish.
    pub drain_timeout: Duration,
    /// How long to read slow clients after the run to see whether they were cut.
    pub slow_drain: Duration,
    /// Named feeds `f0`..`f{F-1}`: client i subscribes to `f{i mod F}`,
    /// operation SEQ is posted to `f{SEQ mod F}` (creates, rate mode only).
    /// None: every client on the default feed, posts to `POST /posts`.
    pub feeds: Option<u32>,
    /// What each client's stream must be ordered by: livefeed's `seq`, or the
    /// post id for servers without one.
    pub order: OrderKey,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn summary_json(h: &Histogram) -> Value {
    let s = h.summary();
    json!({
        "count": s.count,
        "mean_ms": s.mean_us / 1000.0,
        "p50_ms": ms(s.p50_us),
        "p90_ms": ms(s.p90_us),
        "p99_ms": ms(s.p99_us),
        "p999_ms": ms(s.p999_us),
        "max_ms": ms(s.max_us),
    })
}

/// Connects `n` clients with at most `concurrency` handshakes in flight.
/// Each success is passed to `on_open` with the client's number and feed
/// (`--feeds` runs: client i subscribes to `f{i mod F}`), which may spawn a
/// reader, as soon as its welcome arrives.
async fn connect_many<F, T>(
    opts: &ConnectOpts,
    also: &[SocketAddr],
    feeds: Option<u32>,
    n: usize,
    concurrency: usize,
    mut on_open: F,
) -> (Vec<T>, Vec<String>, u64)
where
    F: FnMut(Option<FeedOf>, Ws) -> T,
{
    let mut opened = Vec::with_capacity(n);
    let mut errors = Vec::new();
    let mut failures = 0u64;
    let mut stream = futures::stream::iter(0..n)
        .map(|i| {
            // Client i goes to node i mod (1 + also.len()).
            let mut opts = opts.clone();
            if let Some(k) = (i % (also.len() + 1)).checked_sub(1) {
                opts.addr = also[k];
            }
            let feed = feeds.map(|f| FeedOf::of_client(i, f));
            opts.feed = feed.map(|f| f.name());
            async move { (feed, client::connect(&opts).await) }
        })
        .buffer_unordered(concurrency.max(1));
    // Bounded: the stream yields exactly n results, each under connect_timeout.
    while let Some((feed, r)) = stream.next().await {
        match r {
            Ok(ws) => opened.push(on_open(feed, ws)),
            Err(e) => {
                failures += 1;
                if errors.len() < KEEP_ERRORS {
                    errors.push(e);
                }
            }
        }
    }
    (opened, errors, failures)
}

/// Runs one fan-out scenario and returns its result object.
pub async fn fanout(cfg: FanoutCfg) -> Value {
    let window_cap = match cfg.pace {
        Pace::Window { max_posts, .. } => max_posts as usize,
        _ => 0,
    };
    let shared = Shared::new(window_cap);
    let opts = ConnectOpts {
        addr: cfg.addr,
        proto: cfg.proto,
        rcvbuf: None,
        mss: None,
        timeout: cfg.connect_timeout,
        feed: None,
    };
    let pid = cfg.server_pid;

    let rss_before = pid.and_then(proc::rss_kib);
    let sampler = RssSampler::start(pid, RSS_SAMPLE_EVERY);
    let (stop_tx, stop_rx) = async_std::channel::bounded::<()>(1);

    // Connect storm: healthy clients, each reader starting as soon as it is welcomed.
    let t_connect = Instant::now();
    let (readers, connect_errors, connect_failures) = connect_many(
        &opts,
        &cfg.also,
        cfg.feeds,
        cfg.clients,
        cfg.connect_concurrency,
        |feed, ws| {
            let (shared, stop) = (shared.clone(), stop_rx.clone());
            let mode = ReadMode {
                healthy: true,
                feed,
                order: cfg.order,
            };
            let reader =
                async_std::task::spawn(client::read_loop(ws, cfg.proto, shared, mode, stop));
            (feed, reader)
        },
    )
    .await;
    let connect_secs = t_connect.elapsed().as_secs_f64();
    let healthy = readers.len();
    shared.healthy.store(healthy as u32, Ordering::Relaxed);
    // Healthy subscribers of each feed (`--feeds` runs; else one entry).
    let mut subscribers = vec![0u64; cfg.feeds.unwrap_or(1) as usize];
    for (feed, _) in &readers {
        subscribers[feed.map_or(0, |f| f.index as usize)] += 1;
    }

    // Slow consumers: tiny receive buffer, and never polled after the welcome.
    let slow_opts = ConnectOpts {
        rcvbuf: Some(cfg.slow_rcvbuf),
        mss: (cfg.slow_mss > 0).then_some(cfg.slow_mss),
        ..opts.clone()
    };
    let (parked, slow_connect_errors, slow_connect_failures): (Vec<(Option<FeedOf>, Ws)>, _, _) =
        connect_many(
            &slow_opts,
            &cfg.also,
            cfg.feeds,
            cfg.slow,
            cfg.connect_concurrency,
            |feed, ws| (feed, ws),
        )
        .await;

    async_std::task::sleep(cfg.settle).await;
    let rss_idle = pid.and_then(proc::rss_kib);
    let connected = (healthy + parked.len()) as f64;
    let idle_per_client_kib = match (rss_before, rss_idle) {
        (Some(b), Some(i)) if connected > 0.0 => Some((i as f64 - b as f64) / connected),
        _ => None,
    };

    // Publish.
    let cpu_server_0 = pid.and_then(proc::cpu_seconds);
    let cpu_self_0 = proc::self_cpu_seconds();
    let machine_0 = proc::machine_cpu_seconds();
    let post_latency = Arc::new(Histogram::new());
    let pubs = publish::run(
        PubOpts {
            addr: cfg.addr,
            also: cfg.also.clone(),
            publishers: cfg.publishers,
            pad: cfg.pad,
            timeout: cfg.http_timeout,
            pace: cfg.pace,
            mix: cfg.mix,
            feeds: cfg.feeds,
        },
        shared.clone(),
        post_latency.clone(),
    )
    .await;

    // Wait (bounded) for every healthy client to get every accepted post (of its feed).
    let ok_per_feed = ok_per_feed(&pubs.ok_seqs, cfg.feeds);
    let expected: u64 = ok_per_feed
        .iter()
        .zip(&subscribers)
        .map(|(posts, subs)| posts * subs)
        .sum();
    let drain_until = Instant::now() + cfg.drain_timeout;
    while shared.delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        async_std::task::sleep(Duration::from_millis(10)).await;
    }
    let drained = shared.delivered.load(Ordering::Relaxed) >= expected;
    let cpu_server_1 = pid.and_then(proc::cpu_seconds);
    let cpu_self_1 = proc::self_cpu_seconds();
    let machine_1 = proc::machine_cpu_seconds();

    drop(stop_tx);
    let mut stats: Vec<ClientStats> = Vec::with_capacity(healthy);
    for (_, r) in readers {
        stats.push(r.await);
    }

    // Read the slow clients now to learn which ones the server cut off.
    let slow_stats: Vec<ClientStats> =
        futures::future::join_all(parked.into_iter().map(|(feed, ws)| {
            let want = ok_per_feed[feed.map_or(0, |f| f.index as usize)];
            client::drain(
                ws,
                cfg.proto,
                shared.clone(),
                want,
                cfg.slow_drain,
                feed,
                cfg.order,
            )
        }))
        .await;

    let rss_peak = sampler.finish().await;
    let rss_end = pid.and_then(proc::rss_kib);

    result_json(
        &cfg,
        &shared,
        &pubs,
        &post_latency,
        Outcome {
            expected,
            ok_per_feed,
            stats,
            slow_stats,
            connect_secs,
            connect_failures: connect_failures + slow_connect_failures,
            connect_errors: connect_errors
                .into_iter()
                .chain(slow_connect_errors)
                .collect(),
            rss_before,
            rss_idle,
            rss_peak,
            rss_end,
            idle_per_client_kib,
            drained,
            server_cpu_s: cpu_server_1.zip(cpu_server_0).map(|(a, b)| a - b),
            loadgen_cpu_s: cpu_self_1 - cpu_self_0,
            machine: machine_1
                .zip(machine_0)
                .map(|(a, b)| (a.0 - b.0, a.1 - b.1)),
        },
    )
}

/// Successful operations per feed: `ok_seqs` split by SEQ mod F (one entry,
/// all of them, without `--feeds`).
fn ok_per_feed(ok_seqs: &[u64], feeds: Option<u32>) -> Vec<u64> {
    let n = feeds.unwrap_or(1).max(1) as u64;
    let mut per = vec![0u64; n as usize];
    for (w, &word) in ok_seqs.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let seq = w as u64 * 64 + bits.trailing_zeros() as u64;
            per[(seq % n) as usize] += 1;
            bits &= bits - 1;
        }
    }
    per
}

/// Operations that succeeded but that a client never got: every one
/// (or, subscribed to one of `--feeds`, every one of its feed) not in `seen`.
fn missing_of(ok_seqs: &[u64], st: &ClientStats) -> u64 {
    let seen = |w: usize| st.seen.get(w).copied().unwrap_or(0);
    match st.feed {
        None => ok_seqs
            .iter()
            .enumerate()
            .map(|(w, ok)| (ok & !seen(w)).count_ones() as u64)
            .sum(),
        Some(f) => {
            let end = ok_seqs.len() as u64 * 64;
            (f.index as u64..end)
                .step_by(f.count as usize)
                .filter(|&seq| {
                    let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
                    ok_seqs[w] & bit != 0 && seen(w) & bit == 0
                })
                .count() as u64
        }
    }
}

struct Outcome {
    /// Deliveries that every healthy client getting every post of its feed makes.
    expected: u64,
    /// Successful operations per feed (one entry without `--feeds`).
    ok_per_feed: Vec<u64>,
    stats: Vec<ClientStats>,
    slow_stats: Vec<ClientStats>,
    connect_secs: f64,
    connect_failures: u64,
    connect_errors: Vec<String>,
    rss_before: Option<u64>,
    rss_idle: Option<u64>,
    rss_peak: u64,
    rss_end: Option<u64>,
    idle_per_client_kib: Option<f64>,
    drained: bool,
    server_cpu_s: Option<f64>,
    loadgen_cpu_s: f64,
    /// Whole machine (busy, steal) CPU seconds over the measured phase.
    machine: Option<(f64, f64)>,
}

/// CPU seconds other processes used: machine busy time less server and load generator.
fn other_cpu(machine: Option<(f64, f64)>, server: Option<f64>, loadgen: f64) -> Option<f64> {
    machine.map(|(busy, _)| (busy - server.unwrap_or(0.0) - loadgen).max(0.0))
}

fn end_label(e: &End) -> String {
    match e {
        End::Open => "open".into(),
        End::Closed(Some(c)) => format!("close {c}"),
        End::Closed(None) => "close (no code)".into(),
        End::Eof(_) => "eof/error".into(),
    }
}

fn result_json(
    cfg: &FanoutCfg,
    shared: &Shared,
    pubs: &PubStats,
    post_latency: &Histogram,
    o: Outcome,
) -> Value {
    let mut lost = 0u64;
    let mut dups = 0u64;
    let mut ooo = 0u64;
    let mut other = 0u64;
    let mut foreign = 0u64;
    let mut missing_seq = 0u64;
    let mut clients_missing = 0u64;
    let mut healthy_cut = 0u64;
    let mut cut_reasons: std::collections::BTreeMap<String, u64> = Default::default();
    for st in &o.stats {
        // Posts (of its feed) that got a 201 but never reached this client.
        let missing = missing_of(&pubs.ok_seqs, st);
        lost += missing;
        clients_missing += (missing > 0) as u64;
        dups += st.duplicates;
        ooo += st.out_of_order;
        other += st.other_frames;
        foreign += st.foreign;
        missing_seq += st.missing_seq;
        if st.end != End::Open {
            healthy_cut += 1;
            *cut_reasons.entry(end_label(&st.end)).or_default() += 1;
        }
    }
    let mut slow_cut = 0u64;
    let mut slow_reasons: std::collections::BTreeMap<String, u64> = Default::default();
    let mut slow_received = 0u64;
    let mut slow_dups = 0u64;
    let mut slow_ooo = 0u64;
    let mut slow_foreign = 0u64;
    for st in &o.slow_stats {
        slow_received += st.unique;
        slow_dups += st.duplicates;
        slow_ooo += st.out_of_order;
        slow_foreign += st.foreign;
        *slow_reasons.entry(end_label(&st.end)).or_default() += 1;
        let want = o.ok_per_feed[st.feed.map_or(0, |f| f.index as usize)];
        if st.end != End::Open && st.unique < want {
            slow_cut += 1;
        }
    }

    let delivered = shared.delivered.load(Ordering::Relaxed);
    let last = shared.last_delivery_us.load(Ordering::Relaxed);
    let span_s = last.saturating_sub(pubs.first_send_us) as f64 / 1e6;
    let pub_span_s = pubs.end_us.saturating_sub(pubs.first_send_us) as f64 / 1e6;
    let healthy = o.stats.len() as u64;
    // Mixed mode: every kind of change with a weight must have happened.
    let mix_covered = match cfg.mix {
        None => true,
        Some(m) => [
            (m.create, Op::Create),
            (m.edit, Op::Edit),
            (m.delete, Op::Delete),
        ]
        .iter()
        .all(|&(w, op)| w == 0 || pubs.ok_by_op[op as usize] > 0),
    };
    let ok = o.connect_failures == 0
        && mix_covered
        && pubs.failed == 0
        && !pubs.stalled
        && lost == 0
        && dups == 0
        && ooo == 0
        && foreign == 0
        && missing_seq == 0
        && slow_foreign == 0
        && healthy_cut == 0
        && healthy == cfg.clients as u64
        && pubs.ok > 0;

    let pace = match cfg.pace {
        Pace::Rate { rate, duration } => {
            json!({"mode": "rate", "rate": rate, "duration_s": duration.as_secs_f64()})
        }
        Pace::Window {
            window,
            duration,
            max_posts,
            ..
        } => {
            json!({"mode": "window", "window": window, "duration_s": duration.as_secs_f64(), "max_posts": max_posts})
        }
        Pace::Free { duration } => json!({"mode": "free", "duration_s": duration.as_secs_f64()}),
    };
    let mut v = json!({
        "ok": ok,
        "proto": cfg.proto,
        "clients": cfg.clients,
        "slow": cfg.slow,
        "slow_rcvbuf": cfg.slow_rcvbuf,
        "slow_mss": cfg.slow_mss,
        "publishers": cfg.publishers,
        "pad_bytes": cfg.pad,
        "pace": pace,
        "connected": healthy,
        "connect_failures": o.connect_failures,
        "connect_errors": o.connect_errors,
        "connect_secs": o.connect_secs,
        "connects_per_sec": if o.connect_secs > 0.0 { healthy as f64 / o.connect_secs } else { 0.0 },
        "rss_before_kib": o.rss_before,
        "rss_idle_kib": o.rss_idle,
        "rss_peak_kib": o.rss_peak,
        "rss_end_kib": o.rss_end,
        "idle_rss_per_client_kib": o.idle_per_client_kib,
        "posts_ok": pubs.ok,
        "posts_failed": pubs.failed,
        "post_errors": pubs.errors,
        "publisher_stalled": pubs.stalled,
        "max_send_lag_ms": ms(pubs.max_send_lag_us),
        "http_connects": pubs.http_connects,
        "http_retries": pubs.http_retries,
        "posts_per_sec": if pub_span_s > 0.0 { pubs.ok as f64 / pub_span_s } else { 0.0 },
        "post_latency": summary_json(post_latency),
        "latency": summary_json(&shared.latency),
        "deliveries": delivered,
        "expected_deliveries": o.expected,
        "deliveries_per_sec": if span_s > 0.0 { delivered as f64 / span_s } else { 0.0 },
        "drained": o.drained,
        "lost": lost,
        "clients_missing_posts": clients_missing,
        "duplicates": dups,
        "out_of_order": ooo,
        "other_frames": other,
        "foreign": foreign,
        "order_key": cfg.order,
        "missing_seq": missing_seq,
        "healthy_disconnected": healthy_cut,
        "healthy_disconnect_reasons": cut_reasons,
        "slow_disconnected": slow_cut,
        "slow_end_states": slow_reasons,
        "slow_posts_received": slow_received,
        "slow_duplicates": slow_dups,
        "slow_out_of_order": slow_ooo,
        "slow_foreign": slow_foreign,
        "server_cpu_s": o.server_cpu_s,
        // Server CPU from the first POST to the last delivery (or the drain
        // timeout), over the deliveries to healthy clients in that time.
        "server_cpu_us_per_delivery": o.server_cpu_s.filter(|_| delivered > 0).map(|c| c * 1e6 / delivered as f64),
        "server_cpu_us_per_post": o.server_cpu_s.filter(|_| pubs.ok > 0).map(|c| c * 1e6 / pubs.ok as f64),
        "loadgen_cpu_s": o.loadgen_cpu_s,
        "other_cpu_s": other_cpu(o.machine, o.server_cpu_s, o.loadgen_cpu_s),
        "steal_cpu_s": o.machine.map(|m| m.1),
        "measured_secs": pubs.end_us.saturating_sub(pubs.first_send_us) as f64 / 1e6,
    });
    if let (Some(f), Some(obj)) = (cfg.feeds, v.as_object_mut()) {
        // Healthy subscribers per feed, and posts accepted per feed.
        let mut subs = vec![0u64; f as usize];
        for st in &o.stats {
            if let Some(feed) = st.feed {
                subs[feed.index as usize] += 1;
            }
        }
        let range = |xs: &[u64]| {
            json!({
                "min": xs.iter().min().copied().unwrap_or(0),
                "max": xs.iter().max().copied().unwrap_or(0),
            })
        };
        obj.insert("feeds".into(), json!(f));
        obj.insert("subscribers_per_feed".into(), range(&subs));
        obj.insert("posts_per_feed".into(), range(&o.ok_per_feed));
    }
    if let (Some(m), Some(o)) = (cfg.mix, v.as_object_mut()) {
        let by = |a: &[u64; 3], op: Op| a[op as usize];
        let extra = json!({
            "mix": {"create": m.create, "edit": m.edit, "delete": m.delete},
            "mix_covered": mix_covered,
            "creates_ok": by(&pubs.ok_by_op, Op::Create),
            "edits_ok": by(&pubs.ok_by_op, Op::Edit),
            "deletes_ok": by(&pubs.ok_by_op, Op::Delete),
            "creates_failed": by(&pubs.failed_by_op, Op::Create),
            "edits_failed": by(&pubs.failed_by_op, Op::Edit),
            "deletes_failed": by(&pubs.failed_by_op, Op::Delete),
            "fallback_creates": pubs.fallback_creates,
        });
        if let Value::Object(extra) = extra {
            o.extend(extra);
        }
    }
    v
}

/// Durable publish: publishers only, no subscribers.
pub async fn publish_only(
    addr: SocketAddr,
    server_pid: Option<u32>,
    publishers: usize,
    duration: Duration,
    pad: usize,
    http_timeout: Duration,
) -> Value {
    let shared = Shared::new(0);
    let sampler = RssSampler::start(server_pid, RSS_SAMPLE_EVERY);
    let cpu0 = server_pid.and_then(proc::cpu_seconds);
    let self0 = proc::self_cpu_seconds();
    let machine0 = proc::machine_cpu_seconds();
    let lat = Arc::new(Histogram::new());
    let pubs = publish::run(
        PubOpts {
            addr,
            also: Vec::new(),
            publishers,
            pad,
            timeout: http_timeout,
            pace: Pace::Free { duration },
            mix: None,
            feeds: None,
        },
        shared.clone(),
        lat.clone(),
    )
    .await;
    let cpu1 = server_pid.and_then(proc::cpu_seconds);
    let self1 = proc::self_cpu_seconds();
    let machine = proc::machine_cpu_seconds()
        .zip(machine0)
        .map(|(a, b)| (a.0 - b.0, a.1 - b.1));
    let server_cpu = cpu1.zip(cpu0).map(|(a, b)| a - b);
    let rss_peak = sampler.finish().await;
    let span = pubs.end_us.saturating_sub(pubs.first_send_us) as f64 / 1e6;
    json!({
        "ok": pubs.failed == 0 && pubs.ok > 0,
        "publishers": publishers,
        "pad_bytes": pad,
        "duration_s": duration.as_secs_f64(),
        "posts_ok": pubs.ok,
        "posts_failed": pubs.failed,
        "post_errors": pubs.errors,
        "http_connects": pubs.http_connects,
        "http_retries": pubs.http_retries,
        "posts_per_sec": if span > 0.0 { pubs.ok as f64 / span } else { 0.0 },
        "post_latency": summary_json(&lat),
        "rss_peak_kib": rss_peak,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_post": server_cpu.filter(|_| pubs.ok > 0).map(|c| c * 1e6 / pubs.ok as f64),
        "loadgen_cpu_s": self1 - self0,
        "loadgen_cpu_us_per_post": (pubs.ok > 0).then(|| (self1 - self0) * 1e6 / pubs.ok as f64),
        "other_cpu_s": other_cpu(machine, server_cpu, self1 - self0),
        "steal_cpu_s": machine.map(|m| m.1),
        "measured_secs": span,
        "lost": 0, "duplicates": 0, "out_of_order": 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_accepted_posts_by_feed_and_finds_a_feed_clients_missing_ones() {
        // Operations 0..10 succeeded except 4; 70 succeeded (second word).
        let ok = vec![0b11_1110_1111u64, 1 << 6];
        assert_eq!(ok_per_feed(&ok, None), vec![10]);
        // Feed k of 3 owns seq ≡ k (mod 3): {0,3,6,9}, {1,7,70}, {2,5,8}.
        assert_eq!(ok_per_feed(&ok, Some(3)), vec![4, 3, 3]);

        let client = |index, seen: Vec<u64>| ClientStats {
            seen,
            feed: Some(FeedOf { index, count: 3 }),
            ..Default::default()
        };
        // Feed 1 got 1 and 7 but not 70; posts of other feeds are not its loss.
        assert_eq!(missing_of(&ok, &client(1, vec![1 << 1 | 1 << 7])), 1);
        assert_eq!(
            missing_of(&ok, &client(1, vec![1 << 1 | 1 << 7, 1 << 6])),
            0
        );
        // 4 failed, so feed 1 is not owed it either way.
        assert_eq!(
            missing_of(&ok, &client(1, vec![1 << 1 | 1 << 7 | 1 << 4, 1 << 6])),
            0
        );
        assert_eq!(missing_of(&ok, &client(0, vec![])), 4);
        // Without feeds a client is owed every accepted operation.
        let all = ClientStats {
            seen: vec![0b11_1110_1111],
            ..Default::default()
        };
        assert_eq!(missing_of(&ok, &all), 1);
    }
}
