//! `livefeed-bench`: the load generator behind `bench/run.sh`.
//!
//! It opens many websocket subscribers (livefeed's `/ws` or Socket.IO v4 over
//! a websocket), publishes posts over a tiny keep-alive HTTP/1.1 client, and
//! measures, per delivery, the time from the POST being written to the frame
//! being read. With `--mix` the publishers also edit and delete their posts;
//! with `--feeds F` the clients and the posts are spread over F named feeds.
//! Every run checks that each healthy client got every accepted change
//! exactly once and in order (server seq, else post id), and prints one JSON
//! result line.
//!
//! Layout:
//! - `client`: connecting subscribers, reading and checking their streams;
//! - `publish`: the HTTP publishers (fixed rate, window, or back to back);
//! - `http`: the minimal HTTP/1.1 client;
//! - `hist`: a lock-free latency histogram;
//! - `proc`: server RSS / CPU from /proc, and raising our fd limit;
//! - `scenario`: the scenarios, each producing one JSON object;
//! - `report`: the markdown table and the `--quick` correctness check;
//! - `targets`: issue 14's targets, ratios to limit-server (the floor);
//! - `scale`: the `--scale` run's table and SVG chart.

#![recursion_limit = "256"]

mod ceiling;
mod client;
mod hist;
mod http;
mod proc;
mod publish;
mod report;
mod scale;
mod scenario;
mod targets;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use client::{OrderKey, Proto};
use publish::{Mix, Pace};

#[derive(Parser)]
#[command(
    name = "livefeed-bench",
    about = "Fan-out load generator for livefeed and the Node + Socket.IO baseline"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Server address (loopback only).
    #[arg(long)]
    addr: SocketAddr,
    /// Server process id, to sample its RSS and CPU time from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Name of the server under test, copied into the result line.
    #[arg(long, default_value = "server")]
    target: String,
    /// Name of the scenario, copied into the result line.
    #[arg(long, default_value = "scenario")]
    scenario: String,
    /// Append the result line to this file as well as printing it.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Padding bytes in each post's content.
    #[arg(long, default_value_t = 64)]
    pad: usize,
    /// Timeout of one HTTP request, in seconds.
    #[arg(long, default_value_t = 30.0)]
    http_timeout_s: f64,
}

#[derive(Args, Clone)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Subscriber protocol.
    #[arg(long, value_enum, default_value = "ws")]
    proto: Proto,
    /// Healthy (reading) clients.
    #[arg(short = 'n', long, default_value_t = 1000)]
    clients: usize,
    /// Extra clients that never read after their welcome (slow consumers).
    #[arg(long, default_value_t = 0)]
    slow: usize,
    /// SO_RCVBUF of slow clients, set before connect (the kernel doubles it and applies a floor).
    #[arg(long, default_value_t = 4096)]
    slow_rcvbuf: usize,
    /// TCP MSS slow clients announce (set before connect; 0 = loopback's 64 KiB).
    /// Loopback's huge MSS lets the server's kernel buffer ~4 MiB per client.
    #[arg(long, default_value_t = 1400)]
    slow_mss: u32,
    /// Websocket handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Timeout for one client's connect + welcome, in seconds.
    #[arg(long, default_value_t = 30.0)]
    connect_timeout_s: f64,
    /// Pause after the last welcome before reading idle RSS, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    settle_ms: u64,
    /// Posts per second (fixed-rate mode, the default).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Publishing time in seconds.
    #[arg(long, default_value_t = 20.0)]
    duration_s: f64,
    /// Window mode: keep at most this many posts not yet delivered to every
    /// healthy client, posting as fast as that allows (ignores --rate).
    #[arg(long)]
    window: Option<u64>,
    /// Window mode: most posts to send.
    #[arg(long, default_value_t = 2_000_000)]
    max_posts: u64,
    /// Window mode: give up if no progress for this long, in seconds.
    #[arg(long, default_value_t = 10.0)]
    stall_s: f64,
    /// Mixed mode: weights of creates, edits and deletes (e.g. 6:3:1). Each
    /// operation is picked by weight from its sequence number; edits
    /// (PATCH, new content) and deletes (DELETE) target one of the
    /// publisher's own live posts, and fall back to a create when it has none.
    #[arg(long, value_name = "C:E:D")]
    mix: Option<Mix>,
    /// Concurrent HTTP publishers (one keep-alive connection each). In rate
    /// mode, enough of them that a slow POST does not hold back the schedule.
    #[arg(long, default_value_t = 32)]
    publishers: usize,
    /// After publishing, wait at most this long for deliveries to finish, in seconds.
    #[arg(long, default_value_t = 20.0)]
    drain_timeout_s: f64,
    /// After the run, read slow clients for at most this long, in seconds.
    #[arg(long, default_value_t = 15.0)]
    slow_drain_s: f64,
    /// More nodes of the same feed (a livefeed cluster, repeatable):
    /// subscribers and publishers are spread round-robin over --addr and these.
    #[arg(long = "also-addr")]
    also_addr: Vec<SocketAddr>,
    /// Spread clients and posts over this many named feeds, f0..f{F-1}:
    /// client i subscribes to f{i mod F} (`/ws?feeds=`, or Socket.IO auth
    /// `{"feeds":[…]}`) and post SEQ goes to `POST /feeds/f{SEQ mod F}/posts`.
    /// Each client must get exactly its feed's posts. Rate mode, creates
    /// only. Without it: the default feed, `POST /posts`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    feeds: Option<u32>,
    /// What orders each client's stream: `seq` (livefeed: every change frame
    /// must carry the server's seq, a frame without one fails the run) or
    /// `id` (post id: servers whose frames have no seq, such as the Node
    /// baseline and limit-server).
    #[arg(long, value_enum, default_value = "seq")]
    order_by: OrderKey,
}

#[derive(Subcommand)]
enum Cmd {
    /// Subscribers + publishers: idle RSS, connect storm, fan-out latency,
    /// throughput (--window) and slow consumers (--slow).
    Fanout(FanoutArgs),
    /// Durable publish: concurrent publishers, no subscribers.
    Publish {
        #[command(flatten)]
        common: Common,
        /// Concurrent publishers (one keep-alive connection each).
        #[arg(long, default_value_t = 64)]
        publishers: usize,
        /// Publishing time in seconds.
        #[arg(long, default_value_t = 10.0)]
        duration_s: f64,
    },
    /// Waits until GET /healthz answers 200, or --status (exit 1 on timeout or if --pid dies).
    WaitReady {
        #[arg(long)]
        addr: SocketAddr,
        /// The status that shows the server is up: limit-server has no
        /// /healthz, and its 404 shows it is serving HTTP.
        #[arg(long, default_value_t = 200)]
        status: u16,
        #[arg(long, default_value_t = 30.0)]
        timeout_s: f64,
        /// Fail at once if this process exits.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Exit 0 if the server speaks Engine.IO v4 (GET /socket.io/?EIO=4&transport=polling).
    ProbeSio {
        #[arg(long)]
        addr: SocketAddr,
    },
    /// Prints a free loopback TCP port.
    FreePort,
    /// Renders the markdown table from result lines.
    Report {
        /// File of JSON result lines.
        results: PathBuf,
        /// Exit 1 unless every result is correct and each --require target ran every scenario.
        #[arg(long)]
        check: bool,
        /// Targets that must have run every scenario (comma separated).
        #[arg(long, value_delimiter = ',')]
        require: Vec<String>,
    },
    /// Renders the scale run (`scale-N` result lines) as a markdown table and
    /// an SVG chart: p50/p99 latency, CPU per delivery and RSS per client
    /// against N, one line per target.
    Chart {
        /// File of JSON result lines.
        results: PathBuf,
        /// Write the markdown table here.
        #[arg(long)]
        md: PathBuf,
        /// Write the SVG chart here.
        #[arg(long)]
        svg: PathBuf,
        /// A line under the chart's title (date, machine, command).
        #[arg(long, default_value = "")]
        subtitle: String,
    },
    /// Renders the ceiling run (`publish-R`, `idle-R` and `storage-R` result
    /// lines) as markdown: medians over the rounds, ratios to the floor, and
    /// the least CPU a durable create can cost on this stack.
    Ceiling {
        /// File of JSON result lines.
        results: PathBuf,
        /// The cores the bound is computed for (default: this machine's).
        #[arg(long)]
        cores: Option<usize>,
    },
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn check_loopback(addr: &SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "refusing to load {addr}: the benchmark only targets loopback addresses"
        ))
    }
}

fn emit(common: &Common, mut v: Value) -> ExitCode {
    if let Some(o) = v.as_object_mut() {
        o.insert("target".into(), json!(common.target));
        o.insert("scenario".into(), json!(common.scenario));
    }
    let line = v.to_string();
    println!("{line}");
    if let Some(path) = &common.out {
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = res {
            eprintln!("cannot append to {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    eprintln!("{}", human(&v));
    ExitCode::SUCCESS
}

fn human(v: &Value) -> String {
    let g = |p: &str| {
        let mut c = v;
        for k in p.split('.') {
            c = match c.get(k) {
                Some(x) => x,
                None => return "-".to_string(),
            };
        }
        match c.as_f64() {
            Some(f) if f.fract() != 0.0 => format!("{f:.2}"),
            _ => c.to_string(),
        }
    };
    let mix = if v.get("mix").is_some() {
        format!(
            " creates={} edits={} deletes={} (fallback creates={})",
            g("creates_ok"),
            g("edits_ok"),
            g("deletes_ok"),
            g("fallback_creates")
        )
    } else {
        String::new()
    };
    let feeds = if v.get("feeds").is_some() {
        format!(
            " feeds={} subscribers/feed={}..{} foreign={}",
            g("feeds"),
            g("subscribers_per_feed.min"),
            g("subscribers_per_feed.max"),
            g("foreign")
        )
    } else {
        String::new()
    };
    format!(
        "[{} {}] ok={} clients={} connect={}s idle/client={}KiB posts={} ({}/s) deliveries/s={} latency p50={}ms p99={}ms max={}ms post p99={}ms lost={} dup={} ooo={} rss_peak={}KiB slow_cut={} server_cpu/delivery={}us{feeds}{mix}",
        g("target"),
        g("scenario"),
        g("ok"),
        g("clients"),
        g("connect_secs"),
        g("idle_rss_per_client_kib"),
        g("posts_ok"),
        g("posts_per_sec"),
        g("deliveries_per_sec"),
        g("latency.p50_ms"),
        g("latency.p99_ms"),
        g("latency.max_ms"),
        g("post_latency.p99_ms"),
        g("lost"),
        g("duplicates"),
        g("out_of_order"),
        g("rss_peak_kib"),
        g("slow_disconnected"),
        g("server_cpu_us_per_delivery"),
    )
}

async fn wait_ready(addr: SocketAddr, status: u16, timeout: Duration, pid: Option<u32>) -> bool {
    let until = Instant::now() + timeout;
    // Bounded by `until`.
    while Instant::now() < until {
        if let Some(p) = pid {
            if !std::path::Path::new(&format!("/proc/{p}")).exists() {
                eprintln!("server process {p} exited before it was ready");
                return false;
            }
        }
        let mut c = http::HttpConn::new(addr, Duration::from_secs(2));
        if let Ok(r) = c.get("/healthz").await {
            if r.status == status {
                return true;
            }
        }
        async_std::task::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[async_std::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Fanout(a) => {
            let addrs = std::iter::once(&a.common.addr).chain(&a.also_addr);
            if let Err(e) = addrs.map(check_loopback).collect::<Result<Vec<_>, _>>() {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
            if a.feeds.is_some() && (a.mix.is_some() || a.window.is_some()) {
                eprintln!("--feeds runs creates at a fixed rate: it cannot be combined with --mix or --window");
                return ExitCode::from(2);
            }
            let limit = proc::raise_fd_limit();
            let need = (a.clients + a.slow + a.publishers + 64) as u64;
            if limit < need {
                eprintln!("fd limit {limit} is below the {need} this run needs");
                return ExitCode::from(2);
            }
            let pace = match a.window {
                Some(w) => Pace::Window {
                    window: w.max(1),
                    duration: secs(a.duration_s),
                    max_posts: a.max_posts,
                    stall: secs(a.stall_s),
                },
                None => Pace::Rate {
                    rate: a.rate,
                    duration: secs(a.duration_s),
                },
            };
            let cfg = scenario::FanoutCfg {
                addr: a.common.addr,
                also: a.also_addr.clone(),
                proto: a.proto,
                server_pid: a.common.server_pid,
                clients: a.clients,
                slow: a.slow,
                slow_rcvbuf: a.slow_rcvbuf,
                slow_mss: a.slow_mss,
                connect_concurrency: a.connect_concurrency,
                connect_timeout: secs(a.connect_timeout_s),
                settle: Duration::from_millis(a.settle_ms),
                pace,
                mix: a.mix,
                publishers: a.publishers,
                pad: a.common.pad,
                http_timeout: secs(a.common.http_timeout_s),
                drain_timeout: secs(a.drain_timeout_s),
                slow_drain: secs(a.slow_drain_s),
                feeds: a.feeds,
                order: a.order_by,
            };
            let v = scenario::fanout(cfg).await;
            emit(&a.common, v)
        }
        Cmd::Publish {
            common,
            publishers,
            duration_s,
        } => {
            if let Err(e) = check_loopback(&common.addr) {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
            proc::raise_fd_limit();
            let v = scenario::publish_only(
                common.addr,
                common.server_pid,
                publishers,
                secs(duration_s),
                common.pad,
                secs(common.http_timeout_s),
            )
            .await;
            emit(&common, v)
        }
        Cmd::WaitReady {
            addr,
            status,
            timeout_s,
            pid,
        } => {
            if wait_ready(addr, status, secs(timeout_s), pid).await {
                ExitCode::SUCCESS
            } else {
                eprintln!("{addr} did not answer GET /healthz with {status} within {timeout_s} s");
                ExitCode::FAILURE
            }
        }
        Cmd::ProbeSio { addr } => {
            let mut c = http::HttpConn::new(addr, Duration::from_secs(5));
            match c.get("/socket.io/?EIO=4&transport=polling").await {
                Ok(r) if r.status == 200 && r.body.starts_with(b"0{") => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
        Cmd::FreePort => {
            match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
                Ok(a) => {
                    println!("{}", a.port());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Report {
            results,
            check,
            require,
        } => {
            let text = match std::fs::read_to_string(&results) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("cannot read {}: {e}", results.display());
                    return ExitCode::from(2);
                }
            };
            let r = match report::load(&text) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{}: {e}", results.display());
                    return ExitCode::from(2);
                }
            };
            print!("{}", report::render(&r));
            print!("{}", targets::render(&r));
            if check {
                let problems = report::check(&r, &require);
                if !problems.is_empty() {
                    eprintln!("correctness check FAILED:");
                    for p in &problems {
                        eprintln!("  - {p}");
                    }
                    return ExitCode::FAILURE;
                }
                eprintln!(
                    "correctness check passed: {} results, 0 lost, 0 duplicated, 0 out of order",
                    r.len()
                );
            }
            ExitCode::SUCCESS
        }
        Cmd::Chart {
            results,
            md,
            svg,
            subtitle,
        } => {
            let points = match std::fs::read_to_string(&results)
                .map_err(|e| e.to_string())
                .and_then(|t| scale::load(&t))
            {
                Ok(p) if !p.is_empty() => p,
                Ok(_) => {
                    eprintln!("{}: no scale-N results", results.display());
                    return ExitCode::from(2);
                }
                Err(e) => {
                    eprintln!("{}: {e}", results.display());
                    return ExitCode::from(2);
                }
            };
            for (path, text) in [
                (&md, scale::table(&points)),
                (&svg, scale::chart(&points, &subtitle)),
            ] {
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("cannot write {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::Ceiling { results, cores } => {
            let cores = cores
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            match std::fs::read_to_string(&results)
                .map_err(|e| e.to_string())
                .and_then(|t| report::load(&t))
            {
                Ok(r) => {
                    print!("{}", ceiling::render(&r, cores));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{}: {e}", results.display());
                    ExitCode::from(2)
                }
            }
        }
    }
}
