//! Turns the JSON result lines of a run into the markdown comparison table,
//! and checks them for correctness.
//!
//! Each line is one scenario against one target:
//! `{"target":"livefeed-ws"|"livefeed-sio"|"limit-server"|"node","scenario":"idle1k",...}`.
//! limit-server is the floor: the ratio columns to it come first, then the
//! ratios to node.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// Targets in column order, with their column headings.
const TARGETS: [(&str, &str); 4] = [
    ("livefeed-ws", "livefeed `/ws`"),
    ("livefeed-sio", "livefeed Socket.IO"),
    (FLOOR, "limit-server (floor)"),
    (NODE, "node Socket.IO"),
];

/// The reference fan-out server every livefeed column is divided by first.
pub const FLOOR: &str = "limit-server";
/// The Node + Socket.IO server livefeed replaces.
pub const NODE: &str = "node";

/// Scenarios only livefeed targets run (the Node baseline has no edits or
/// deletes): `--check` requires them of every `livefeed*` target and of no
/// other.
const LIVEFEED_ONLY: [&str; 1] = ["mixed"];

/// Scenarios limit-server cannot serve: it has no feeds (`/feeds/{feed}/posts`,
/// `?feeds=`), no edits and no deletes.
const FLOOR_CANNOT: [&str; 4] = ["mixed", "feeds1k", "onefeed", "feeds1k-posts"];

/// Whether `target` can run `scenario` (what `--check` requires of it).
pub fn serves(target: &str, scenario: &str) -> bool {
    if target.starts_with("livefeed") {
        true
    } else if target == FLOOR {
        !FLOOR_CANNOT.contains(&scenario)
    } else {
        !LIVEFEED_ONLY.contains(&scenario)
    }
}

pub type Results = BTreeMap<(String, String), Value>;

pub fn get(v: &Value, path: &str) -> Option<f64> {
    let mut cur = v;
    for p in path.split('.') {
        cur = cur.get(p)?;
    }
    cur.as_f64()
}

pub fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let (neg, digits) = s
        .strip_prefix('-')
        .map_or((false, s.as_str()), |d| (true, d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 10_000.0 || (x.fract() == 0.0 && a < 1e15) {
        thousands(x)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

struct Row {
    scenario: &'static str,
    label: fn(&Value) -> String,
    value: fn(&Results, &str) -> Option<f64>,
}

fn param(v: &Value, path: &str) -> String {
    get(v, path).map(thousands).unwrap_or_else(|| "?".into())
}

/// `C:E:D` of a mixed result's weights.
fn mix_param(v: &Value) -> String {
    ["mix.create", "mix.edit", "mix.delete"]
        .iter()
        .map(|p| param(v, p))
        .collect::<Vec<_>>()
        .join(":")
}

/// `N over F feeds (K each)` of a `--feeds` result.
fn feeds_param(v: &Value) -> String {
    let (n, f) = (get(v, "clients"), get(v, "feeds"));
    let each = match (n, f) {
        (Some(n), Some(f)) if f > 0.0 && (n / f).fract() == 0.0 => thousands(n / f),
        (Some(n), Some(f)) if f > 0.0 => format!("~{}", fmt_num(n / f)),
        _ => "?".into(),
    };
    let feeds = if f == Some(1.0) {
        "1 feed".to_string()
    } else {
        format!("{} feeds", param(v, "feeds"))
    };
    format!("N={} over {feeds} ({each} each)", param(v, "clients"))
}

pub fn field(r: &Results, target: &str, scenario: &str, path: &str) -> Option<f64> {
    let v = r.get(&(target.to_string(), scenario.to_string()))?;
    if v.get("error").is_some() {
        return None;
    }
    get(v, path)
}

/// Server CPU per delivery of `scenario` less what its posts cost on their
/// own: (server CPU − accepted posts × the CPU per post of `feeds1k-posts`,
/// the same posts with no subscribers) ÷ deliveries, in µs.
fn fanout_cpu_per_delivery(r: &Results, target: &str, scenario: &str) -> Option<f64> {
    let cpu = field(r, target, scenario, "server_cpu_s")?;
    let posts = field(r, target, scenario, "posts_ok")?;
    let deliveries = field(r, target, scenario, "deliveries").filter(|d| *d > 0.0)?;
    let per_post = field(r, target, "feeds1k-posts", "server_cpu_us_per_post")?;
    Some(((cpu * 1e6 - posts * per_post) / deliveries).max(0.0))
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            scenario: "idle1k",
            label: |v| format!("Idle RSS per client, N={} (KiB)", param(v, "clients")),
            value: |r, t| field(r, t, "idle1k", "idle_rss_per_client_kib"),
        },
        Row {
            scenario: "fanout10k",
            label: |v| format!("Idle RSS per client, N={} (KiB)", param(v, "clients")),
            value: |r, t| field(r, t, "fanout10k", "idle_rss_per_client_kib"),
        },
        Row {
            scenario: "fanout10k",
            label: |v| {
                format!(
                    "Connect storm: N={} connected and welcomed (s)",
                    param(v, "clients")
                )
            },
            value: |r, t| field(r, t, "fanout10k", "connect_secs"),
        },
        Row {
            scenario: "fanout10k",
            label: |v| {
                format!(
                    "Fan-out latency p50, N={}, {} posts/s for {} s (ms)",
                    param(v, "clients"),
                    param(v, "pace.rate"),
                    param(v, "pace.duration_s")
                )
            },
            value: |r, t| field(r, t, "fanout10k", "latency.p50_ms"),
        },
        Row {
            scenario: "fanout10k",
            label: |_| "Fan-out latency p99 (ms)".into(),
            value: |r, t| field(r, t, "fanout10k", "latency.p99_ms"),
        },
        Row {
            scenario: "fanout10k",
            label: |_| "Fan-out latency max (ms)".into(),
            value: |r, t| field(r, t, "fanout10k", "latency.max_ms"),
        },
        Row {
            scenario: "fanout10k",
            label: |_| "Fan-out: POST latency p99, part of the delivery latency above (ms)".into(),
            value: |r, t| field(r, t, "fanout10k", "post_latency.p99_ms"),
        },
        Row {
            scenario: "fanout10k",
            label: |_| "Fan-out: posts/s actually accepted (offered: the rate above)".into(),
            value: |r, t| field(r, t, "fanout10k", "posts_per_sec"),
        },
        Row {
            scenario: "fanout10k",
            label: |v| {
                format!(
                    "Fan-out: server CPU per delivery, {} deliveries/s offered (µs)",
                    thousands(
                        get(v, "clients").unwrap_or(0.0) * get(v, "pace.rate").unwrap_or(0.0)
                    )
                )
            },
            value: |r, t| field(r, t, "fanout10k", "server_cpu_us_per_delivery"),
        },
        Row {
            scenario: "feeds1k",
            label: |v| {
                format!(
                    "Feeds: {}, {} posts/s spread over the feeds for {} s (deliveries/s)",
                    feeds_param(v),
                    param(v, "pace.rate"),
                    param(v, "pace.duration_s")
                )
            },
            value: |r, t| field(r, t, "feeds1k", "deliveries_per_sec"),
        },
        Row {
            scenario: "feeds1k",
            label: |_| "Feeds: delivery latency p50 (ms)".into(),
            value: |r, t| field(r, t, "feeds1k", "latency.p50_ms"),
        },
        Row {
            scenario: "feeds1k",
            label: |_| "Feeds: delivery latency p99 (ms)".into(),
            value: |r, t| field(r, t, "feeds1k", "latency.p99_ms"),
        },
        Row {
            scenario: "feeds1k",
            label: |_| "Feeds: POST latency p99, part of the delivery latency above (ms)".into(),
            value: |r, t| field(r, t, "feeds1k", "post_latency.p99_ms"),
        },
        Row {
            scenario: "feeds1k",
            label: |_| "Feeds: posts/s actually accepted (offered: the rate above)".into(),
            value: |r, t| field(r, t, "feeds1k", "posts_per_sec"),
        },
        Row {
            scenario: "feeds1k",
            label: |_| "Feeds: server CPU per delivery, all of it: posts and fan-out (µs)".into(),
            value: |r, t| field(r, t, "feeds1k", "server_cpu_us_per_delivery"),
        },
        Row {
            scenario: "onefeed",
            label: |v| {
                format!(
                    "One feed, same clients and deliveries/s: {}, {} post/s for {} s (deliveries/s)",
                    feeds_param(v),
                    param(v, "pace.rate"),
                    param(v, "pace.duration_s")
                )
            },
            value: |r, t| field(r, t, "onefeed", "deliveries_per_sec"),
        },
        Row {
            scenario: "onefeed",
            label: |_| "One feed: delivery latency p50 (ms)".into(),
            value: |r, t| field(r, t, "onefeed", "latency.p50_ms"),
        },
        Row {
            scenario: "onefeed",
            label: |_| "One feed: delivery latency p99 (ms)".into(),
            value: |r, t| field(r, t, "onefeed", "latency.p99_ms"),
        },
        Row {
            scenario: "onefeed",
            label: |_| "One feed: server CPU per delivery, all of it (µs)".into(),
            value: |r, t| field(r, t, "onefeed", "server_cpu_us_per_delivery"),
        },
        Row {
            scenario: "feeds1k-posts",
            label: |v| {
                format!(
                    "Posts alone: the same {} posts/s over {} feeds for {} s, no subscribers: server CPU per post (µs)",
                    param(v, "pace.rate"),
                    param(v, "feeds"),
                    param(v, "pace.duration_s")
                )
            },
            value: |r, t| field(r, t, "feeds1k-posts", "server_cpu_us_per_post"),
        },
        Row {
            // Listed under feeds1k-posts so that runs without it (--quick) skip the row.
            scenario: "feeds1k-posts",
            label: |_| "Feeds: server CPU per delivery, less its posts' own cost (µs)".into(),
            value: |r, t| fanout_cpu_per_delivery(r, t, "feeds1k"),
        },
        Row {
            scenario: "feeds1k-posts",
            label: |_| "One feed: server CPU per delivery, less its posts' own cost (µs)".into(),
            value: |r, t| fanout_cpu_per_delivery(r, t, "onefeed"),
        },
        Row {
            scenario: "feeds1k-posts",
            label: |_| {
                "Server CPU per delivery less posts' cost, feeds ÷ one feed (≤ 1: no cost per connection of other feeds)".into()
            },
            value: |r, t| {
                Some(
                    fanout_cpu_per_delivery(r, t, "feeds1k")?
                        / fanout_cpu_per_delivery(r, t, "onefeed")?,
                )
            },
        },
        Row {
            scenario: "throughput",
            label: |v| {
                format!(
                    "Fan-out throughput, N={}, {} posts in flight (deliveries/s)",
                    param(v, "clients"),
                    param(v, "pace.window")
                )
            },
            value: |r, t| field(r, t, "throughput", "deliveries_per_sec"),
        },
        Row {
            scenario: "throughput",
            label: |_| "Fan-out throughput: p99 delivery latency (ms)".into(),
            value: |r, t| field(r, t, "throughput", "latency.p99_ms"),
        },
        Row {
            scenario: "publish",
            label: |v| {
                format!(
                    "Durable publish, {} publishers, no subscribers (posts/s)",
                    param(v, "publishers")
                )
            },
            value: |r, t| field(r, t, "publish", "posts_per_sec"),
        },
        Row {
            scenario: "publish",
            label: |_| "Durable publish: p99 POST latency (ms)".into(),
            value: |r, t| field(r, t, "publish", "post_latency.p99_ms"),
        },
        Row {
            scenario: "slow-base",
            label: |v| {
                format!(
                    "Slow consumer: healthy p99, {} clients, no slow ones, {} posts/s × {} B (ms)",
                    param(v, "clients"),
                    param(v, "pace.rate"),
                    param(v, "pad_bytes")
                )
            },
            value: |r, t| field(r, t, "slow-base", "latency.p99_ms"),
        },
        Row {
            scenario: "slow",
            label: |v| {
                format!(
                    "Slow consumer: healthy p99 with {} never-reading clients (ms)",
                    param(v, "slow")
                )
            },
            value: |r, t| field(r, t, "slow", "latency.p99_ms"),
        },
        Row {
            // Listed under slow-base so that runs without it (--quick) skip the row.
            scenario: "slow-base",
            label: |_| "Slow consumer: healthy p99 with ÷ without (target ≤ 2)".into(),
            value: |r, t| {
                Some(
                    field(r, t, "slow", "latency.p99_ms")?
                        / field(r, t, "slow-base", "latency.p99_ms")?,
                )
            },
        },
        Row {
            scenario: "slow-base",
            label: |_| "Slow consumer: server RSS peak without slow clients (MiB)".into(),
            value: |r, t| Some(field(r, t, "slow-base", "rss_peak_kib")? / 1024.0),
        },
        Row {
            scenario: "slow",
            label: |_| "Slow consumer: server RSS peak with slow clients (MiB)".into(),
            value: |r, t| Some(field(r, t, "slow", "rss_peak_kib")? / 1024.0),
        },
        Row {
            scenario: "slow",
            label: |v| {
                format!(
                    "Slow consumer: slow clients disconnected by the server (of {})",
                    param(v, "slow")
                )
            },
            value: |r, t| field(r, t, "slow", "slow_disconnected"),
        },
        Row {
            scenario: "mixed",
            label: |v| {
                format!(
                    "Mixed changes, N={}, {} changes/s for {} s, create:edit:delete {} (deliveries/s)",
                    param(v, "clients"),
                    param(v, "pace.rate"),
                    param(v, "pace.duration_s"),
                    mix_param(v)
                )
            },
            value: |r, t| field(r, t, "mixed", "deliveries_per_sec"),
        },
        Row {
            scenario: "mixed",
            label: |_| "Mixed: delivery latency p50, creates + edits + deletes (ms)".into(),
            value: |r, t| field(r, t, "mixed", "latency.p50_ms"),
        },
        Row {
            scenario: "mixed",
            label: |_| "Mixed: delivery latency p99 (ms)".into(),
            value: |r, t| field(r, t, "mixed", "latency.p99_ms"),
        },
        Row {
            scenario: "mixed",
            label: |_| "Mixed: request p99, POST + PATCH + DELETE (ms)".into(),
            value: |r, t| field(r, t, "mixed", "post_latency.p99_ms"),
        },
        Row {
            scenario: "mixed",
            label: |_| "Mixed: creates accepted (201)".into(),
            value: |r, t| field(r, t, "mixed", "creates_ok"),
        },
        Row {
            scenario: "mixed",
            label: |_| "Mixed: edits accepted (200)".into(),
            value: |r, t| field(r, t, "mixed", "edits_ok"),
        },
        Row {
            scenario: "mixed",
            label: |_| "Mixed: deletes accepted (204)".into(),
            value: |r, t| field(r, t, "mixed", "deletes_ok"),
        },
    ]
}

/// Parses result lines; later lines for the same (target, scenario) win.
pub fn load(text: &str) -> Result<Results, String> {
    let mut out = Results::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let t = v
            .get("target")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let s = v
            .get("scenario")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        out.insert((t, s), v);
    }
    Ok(out)
}

/// Renders the comparison and correctness tables.
pub fn render(r: &Results) -> String {
    let present: Vec<(&str, &str)> = TARGETS
        .iter()
        .copied()
        .filter(|(t, _)| r.keys().any(|(rt, _)| rt == t))
        .collect();
    let livefeeds: Vec<(&str, &str)> = present
        .iter()
        .copied()
        .filter(|(t, _)| t.starts_with("livefeed"))
        .collect();
    // Ratio columns: to the floor first, then to node; each only when it ran.
    let bases: Vec<(&str, &str)> = [(FLOOR, "floor"), (NODE, "node")]
        .into_iter()
        .filter(|(b, _)| present.iter().any(|(t, _)| t == b))
        .collect();
    let mut md = String::new();

    let _ = write!(md, "| scenario |");
    for (_, h) in &present {
        let _ = write!(md, " {h} |");
    }
    for (_, base) in &bases {
        for (t, _) in &livefeeds {
            let short = if *t == "livefeed-ws" {
                "`/ws`"
            } else {
                "Socket.IO"
            };
            let _ = write!(md, " livefeed {short} ÷ {base} |");
        }
    }
    md.push('\n');
    let cols = 1 + present.len() + bases.len() * livefeeds.len();
    md.push('|');
    for i in 0..cols {
        md.push_str(if i == 0 { " --- |" } else { " ---: |" });
    }
    md.push('\n');

    for row in rows() {
        // Take the labels' parameters from any target that ran the scenario.
        let Some(sample) = present
            .iter()
            .find_map(|(t, _)| r.get(&(t.to_string(), row.scenario.to_string())))
        else {
            continue;
        };
        let _ = write!(md, "| {} |", (row.label)(sample));
        for (t, _) in &present {
            let cell = if r.contains_key(&(t.to_string(), row.scenario.to_string())) {
                (row.value)(r, t)
                    .map(fmt_num)
                    .unwrap_or_else(|| "failed".into())
            } else {
                "—".into()
            };
            let _ = write!(md, " {cell} |");
        }
        for (base, _) in &bases {
            let b = (row.value)(r, base);
            for (t, _) in &livefeeds {
                let ratio = match ((row.value)(r, t), b) {
                    (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
                    _ => "—".into(),
                };
                let _ = write!(md, " {ratio} |");
            }
        }
        md.push('\n');
    }

    md.push_str("\nCorrectness (every healthy client must get every accepted change exactly once, in server seq order for livefeed, where every change frame must carry its seq; in post id order for node and limit-server, whose frames carry none):\n\n");
    md.push_str(
        "| target | scenario | ok | clients | changes | lost | duplicated | out of order | connect failures | request failures | CPU-s server / loadgen / other processes / steal | notes |\n",
    );
    md.push_str(
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for ((t, s), v) in r {
        let n = |k: &str| get(v, k).map(thousands).unwrap_or_else(|| "—".into());
        let mut notes = Vec::new();
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            notes.push(e.to_string());
        }
        if let Some(n) = get(v, "http_retries").filter(|n| *n > 0.0) {
            notes.push(format!(
                "{n} POSTs resent after the server closed an idle keep-alive connection"
            ));
        }
        if v.get("drained").and_then(Value::as_bool) == Some(false) {
            notes.push("deliveries still missing when the drain timeout ended".into());
        }
        if v.get("publisher_stalled").and_then(Value::as_bool) == Some(true) {
            notes.push("publisher stalled".into());
        }
        if get(v, "healthy_disconnected").unwrap_or(0.0) > 0.0 {
            notes.push(format!(
                "healthy clients disconnected: {}",
                v["healthy_disconnect_reasons"]
            ));
        }
        if let Some(errs) = v.get("connect_errors").and_then(Value::as_array) {
            if let Some(e) = errs.first().and_then(Value::as_str) {
                notes.push(format!("connect: {e}"));
            }
        }
        if let Some(errs) = v.get("post_errors").and_then(Value::as_array) {
            if let Some(e) = errs.first().and_then(Value::as_str) {
                notes.push(format!("post: {e}"));
            }
        }
        if v.get("mix").is_some() {
            notes.push(format!(
                "creates / edits / deletes accepted: {} / {} / {} (failed {} / {} / {}; {} edits or deletes sent as creates: no live post)",
                n("creates_ok"),
                n("edits_ok"),
                n("deletes_ok"),
                n("creates_failed"),
                n("edits_failed"),
                n("deletes_failed"),
                n("fallback_creates"),
            ));
            if v.get("mix_covered").and_then(Value::as_bool) == Some(false) {
                notes.push("a kind of change with a weight never succeeded".into());
            }
        }
        if let Some(f) = get(v, "feeds") {
            notes.push(format!(
                "{} feed{}: {}–{} healthy subscribers and {}–{} accepted posts per feed",
                thousands(f),
                if f == 1.0 { "" } else { "s" },
                n("subscribers_per_feed.min"),
                n("subscribers_per_feed.max"),
                n("posts_per_feed.min"),
                n("posts_per_feed.max"),
            ));
        }
        if let Some(m) = get(v, "missing_seq").filter(|m| *m > 0.0) {
            notes.push(format!("{} change frames without a seq", thousands(m)));
        }
        let foreign = get(v, "foreign").unwrap_or(0.0) + get(v, "slow_foreign").unwrap_or(0.0);
        if foreign > 0.0 {
            notes.push(format!(
                "{} posts of other feeds delivered to clients not subscribed to them",
                thousands(foreign)
            ));
        }
        if s == "slow" {
            if let Some(states) = v.get("slow_end_states") {
                notes.push(format!("slow clients' end states: {states}"));
            }
        }
        let ok = v.get("ok").and_then(Value::as_bool) == Some(true);
        let _ = writeln!(
            md,
            "| {t} | {s} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            if ok { "yes" } else { "**NO**" },
            n("clients"),
            n("posts_ok"),
            n("lost"),
            n("duplicates"),
            n("out_of_order"),
            n("connect_failures"),
            n("posts_failed"),
            [
                "server_cpu_s",
                "loadgen_cpu_s",
                "other_cpu_s",
                "steal_cpu_s"
            ]
            .iter()
            .map(|k| get(v, k)
                .map(|x| format!("{x:.1}"))
                .unwrap_or_else(|| "—".into()))
            .collect::<Vec<_>>()
            .join(" / "),
            notes.join("; ").replace('|', "/")
        );
    }
    md
}

/// Correctness check for `--quick`: every required target ran every scenario
/// any target ran that it [`serves`] (livefeed targets also every
/// [`LIVEFEED_ONLY`] one), and every result present is ok. Returns the
/// problems found.
pub fn check(r: &Results, required: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let ran: std::collections::BTreeSet<&str> = r.keys().map(|(_, s)| s.as_str()).collect();
    for t in required {
        let mut want = ran.clone();
        if t.starts_with("livefeed") {
            want.extend(LIVEFEED_ONLY);
        }
        want.retain(|s| serves(t, s));
        for s in want {
            if !r.contains_key(&(t.clone(), s.to_string())) {
                problems.push(format!("{t}: scenario {s} has no result"));
            }
        }
    }
    for ((t, s), v) in r {
        if v.get("ok").and_then(Value::as_bool) != Some(true) {
            problems.push(format!(
                "{t}: scenario {s} failed (lost {}, duplicated {}, out of order {}, without seq {}, of other feeds {}, connect failures {}, request failures {}{})",
                get(v, "lost").unwrap_or(-1.0),
                get(v, "duplicates").unwrap_or(-1.0),
                get(v, "out_of_order").unwrap_or(-1.0),
                get(v, "missing_seq").unwrap_or(0.0),
                get(v, "foreign").unwrap_or(0.0) + get(v, "slow_foreign").unwrap_or(0.0),
                get(v, "connect_failures").unwrap_or(-1.0),
                get(v, "posts_failed").unwrap_or(-1.0),
                v.get("error").and_then(Value::as_str).map(|e| format!(", error: {e}")).unwrap_or_default()
                    + if v.get("mix_covered").and_then(Value::as_bool) == Some(false) {
                        ", a kind of change in --mix never succeeded"
                    } else {
                        ""
                    }
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(t: &str, s: &str) -> String {
        format!(r#"{{"target":"{t}","scenario":"{s}","ok":true,"lost":0}}"#)
    }

    #[test]
    fn check_requires_mixed_of_livefeed_targets_only() {
        let req: Vec<String> = ["livefeed-ws", "node"].map(String::from).to_vec();
        let all = [
            line("livefeed-ws", "idle1k"),
            line("livefeed-ws", "mixed"),
            line("node", "idle1k"),
        ]
        .join("\n");
        assert_eq!(check(&load(&all).unwrap(), &req), Vec::<String>::new());

        let no_mixed = [line("livefeed-ws", "idle1k"), line("node", "idle1k")].join("\n");
        assert_eq!(
            check(&load(&no_mixed).unwrap(), &req),
            vec!["livefeed-ws: scenario mixed has no result".to_string()]
        );
    }

    #[test]
    fn floor_ratio_columns_come_before_node_ones() {
        let row = |t: &str, p99: f64| {
            format!(
                r#"{{"target":"{t}","scenario":"fanout10k","ok":true,"clients":10000,"pace":{{"rate":10,"duration_s":20}},"latency":{{"p99_ms":{p99}}}}}"#
            )
        };
        let text = [
            row("livefeed-ws", 300.0),
            row("livefeed-sio", 450.0),
            row("limit-server", 200.0),
            row("node", 3000.0),
        ]
        .join("\n");
        let md = render(&load(&text).unwrap());
        assert!(md.contains("| scenario | livefeed `/ws` | livefeed Socket.IO | limit-server (floor) | node Socket.IO | livefeed `/ws` ÷ floor | livefeed Socket.IO ÷ floor | livefeed `/ws` ÷ node | livefeed Socket.IO ÷ node |"), "{md}");
        assert!(
            md.contains("| Fan-out latency p99 (ms) | 300 | 450 | 200 | 3,000 | 1.50 | 2.25 | 0.10 | 0.15 |"),
            "{md}"
        );
        // A run without the floor has no floor columns.
        let md =
            render(&load(&[row("livefeed-ws", 300.0), row("node", 3000.0)].join("\n")).unwrap());
        assert!(!md.contains("floor"), "{md}");
        assert!(md.contains("| 300 | 3,000 | 0.10 |"), "{md}");
    }

    #[test]
    fn check_asks_the_floor_only_for_what_it_serves() {
        let req: Vec<String> = ["livefeed-ws", "limit-server"].map(String::from).to_vec();
        let all = ["idle1k", "mixed", "feeds1k"]
            .iter()
            .map(|s| line("livefeed-ws", s))
            .chain([line("limit-server", "idle1k")])
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(check(&load(&all).unwrap(), &req), Vec::<String>::new());
        let no_idle = [line("livefeed-ws", "idle1k"), line("livefeed-ws", "mixed")].join("\n");
        assert_eq!(
            check(&load(&no_idle).unwrap(), &req),
            vec!["limit-server: scenario idle1k has no result".to_string()]
        );
        assert!(serves("node", "feeds1k") && !serves("node", "mixed"));
        assert!(!serves("limit-server", "onefeed") && serves("limit-server", "slow"));
    }

    #[test]
    fn mixed_rows_show_a_dash_for_node() {
        let mixed = r#"{"target":"livefeed-ws","scenario":"mixed","ok":true,"clients":200,
            "pace":{"mode":"rate","rate":40,"duration_s":2},"mix":{"create":6,"edit":3,"delete":1},
            "deliveries_per_sec":8000,"latency":{"p50_ms":2.5,"p99_ms":9},"post_latency":{"p99_ms":4},
            "creates_ok":50,"edits_ok":20,"deletes_ok":10}"#
            .replace('\n', "");
        let text = [mixed, line("node", "idle1k")].join("\n");
        let md = render(&load(&text).unwrap());
        assert!(
            md.contains("| Mixed changes, N=200, 40 changes/s for 2 s, create:edit:delete 6:3:1 (deliveries/s) | 8,000 | — | — |"),
            "{md}"
        );
        assert!(
            md.contains("| Mixed: deletes accepted (204) | 10 | — | — |"),
            "{md}"
        );
    }

    #[test]
    fn feeds_rows_sit_beside_the_one_feed_rows() {
        let feeds = r#"{"target":"livefeed-ws","scenario":"feeds1k","ok":true,"clients":10000,"feeds":1000,
            "pace":{"mode":"rate","rate":1000,"duration_s":20},"deliveries_per_sec":10000,
            "latency":{"p50_ms":2,"p99_ms":9},"post_latency":{"p99_ms":4},"posts_per_sec":1000,
            "server_cpu_us_per_delivery":60,"server_cpu_s":12.0,"posts_ok":20000,"deliveries":200000,
            "subscribers_per_feed":{"min":10,"max":10},"posts_per_feed":{"min":20,"max":20},"foreign":0}"#
            .replace('\n', "");
        let one =
            r#"{"target":"livefeed-ws","scenario":"onefeed","ok":true,"clients":10000,"feeds":1,
            "pace":{"mode":"rate","rate":1,"duration_s":20},"deliveries_per_sec":10000,
            "latency":{"p50_ms":50,"p99_ms":90},"server_cpu_us_per_delivery":10,
            "server_cpu_s":2.0,"posts_ok":20,"deliveries":200000}"#
                .replace('\n', "");
        let alone = r#"{"target":"livefeed-ws","scenario":"feeds1k-posts","ok":true,"clients":0,"feeds":1000,
            "pace":{"mode":"rate","rate":1000,"duration_s":20},"server_cpu_us_per_post":500}"#
            .replace('\n', "");
        let md = render(&load(&[feeds.clone(), one.clone()].join("\n")).unwrap());
        let has = |md: &str, s: &str| assert!(md.contains(s), "{s:?} not in\n{md}");
        has(&md, "| Feeds: N=10,000 over 1,000 feeds (10 each), 1,000 posts/s spread over the feeds for 20 s (deliveries/s) | 10,000 |");
        has(&md, "| One feed, same clients and deliveries/s: N=10,000 over 1 feed (10,000 each), 1 post/s for 20 s (deliveries/s) | 10,000 |");
        has(
            &md,
            "| Feeds: server CPU per delivery, all of it: posts and fan-out (µs) | 60 |",
        );
        has(
            &md,
            "1,000 feeds: 10–10 healthy subscribers and 20–20 accepted posts per feed",
        );
        // Without the posts-alone control there is nothing to subtract: no net rows.
        assert!(!md.contains("less its posts"), "{md}");

        let md = render(&load(&[feeds, one, alone].join("\n")).unwrap());
        // Feeds: (12 s − 20,000 × 500 µs) / 200,000 = 10 µs;
        // one feed: (2 s − 20 × 500 µs) / 200,000 = 9.95 µs.
        has(
            &md,
            "| Feeds: server CPU per delivery, less its posts' own cost (µs) | 10 |",
        );
        has(
            &md,
            "| One feed: server CPU per delivery, less its posts' own cost (µs) | 9.95 |",
        );
        has(&md, "no cost per connection of other feeds) | 1.01 |");
        has(&md, "server CPU per post (µs) | 500 |");

        // A client that got another feed's post fails the check, and says why.
        let bad = r#"{"target":"node","scenario":"feeds1k","ok":false,"foreign":3,"lost":0}"#;
        let p = check(&load(bad).unwrap(), &[]);
        assert!(p[0].contains("of other feeds 3"), "{p:?}");
    }
}
