//! The ceiling run (`bench/run.sh --ceiling`): what livefeed's fixed stack
//! allows on this machine, measured beside the floor and livefeed in
//! alternated rounds.
//!
//! Result lines are `publish-R` and `idle-R` scenarios of the server targets
//! and `storage-R` lines of the storage targets (`examples/store_ceiling.rs
//! --json`), R the round. Each cell is the median over the rounds, with
//! every round's value beside it.

use std::fmt::Write as _;

use crate::report::{field, fmt_num, Results, FLOOR};

/// Server targets in column order, with their headings.
pub const SERVERS: [(&str, &str); 5] = [
    (FLOOR, "limit-server (floor; memory)"),
    (ASYNC_H1, "tide + async-h1 (memory)"),
    (LIVEFEED_H1, "tide + livefeed's HTTP/1.1 (memory)"),
    ("livefeed-ws", "livefeed `/ws` (durable)"),
    ("livefeed-sio", "livefeed Socket.IO (durable)"),
];
/// `examples/stack_ceiling.rs` as tide serves it.
pub const ASYNC_H1: &str = "stack-async-h1";
/// `examples/stack_ceiling.rs --http livefeed`.
pub const LIVEFEED_H1: &str = "stack-livefeed-h1";
/// Storage targets, with their row labels.
const STORAGE: [(&str, &str); 2] = [
    (
        "store",
        "livefeed's store (group commit, every index, fsync)",
    ),
    (
        "sled",
        "sled 0.34 alone, 2 keys a post, flush + `fdatasync` a batch",
    ),
];

/// `value` of each of `target`'s `prefix-R` results (by scenario name), in round order.
fn rounds(
    r: &Results,
    target: &str,
    prefix: &str,
    value: impl Fn(&str) -> Option<f64>,
) -> Vec<f64> {
    let mut out: Vec<(u32, f64)> = r
        .keys()
        .filter(|(t, _)| t == target)
        .filter_map(|(_, s)| {
            let round = s.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()?;
            Some((round, value(s)?))
        })
        .collect();
    out.sort_by_key(|(round, _)| *round);
    out.into_iter().map(|(_, v)| v).collect()
}

fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => None,
        n if n % 2 == 1 => Some(s[n / 2]),
        n => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

/// `median (a / b / c)`, or `—` without values.
fn cell(v: &[f64]) -> String {
    match median(v) {
        None => "—".into(),
        Some(m) if v.len() == 1 => fmt_num(m),
        Some(m) => {
            let each: Vec<String> = v.iter().map(|x| fmt_num(*x)).collect();
            format!("{} ({})", fmt_num(m), each.join(" / "))
        }
    }
}

fn ratio(v: &[f64], floor: Option<f64>) -> String {
    match (median(v), floor) {
        (Some(m), Some(f)) if f > 0.0 => format!("{:.2}×", m / f),
        _ => "—".into(),
    }
}

/// The markdown tables and the CPU bound they give, for `cores` cores.
pub fn render(r: &Results, cores: usize) -> String {
    let publish = |t: &str| rounds(r, t, "publish", |s| field(r, t, s, "posts_per_sec"));
    let server_cpu = |t: &str| {
        rounds(r, t, "publish", |s| {
            field(r, t, s, "server_cpu_us_per_post")
        })
    };
    let loadgen_cpu = |t: &str| {
        rounds(r, t, "publish", |s| {
            field(r, t, s, "loadgen_cpu_us_per_post")
        })
    };
    let rss = |t: &str| rounds(r, t, "idle", |s| field(r, t, s, "idle_rss_per_client_kib"));
    let floor_publish = median(&publish(FLOOR));
    let floor_rss = median(&rss(FLOOR));

    let mut out = String::new();
    out.push_str("| | ");
    out.push_str(&SERVERS.map(|(_, h)| h).join(" | "));
    out.push_str(" |\n|---|");
    out.push_str(&"---:|".repeat(SERVERS.len()));
    out.push('\n');
    type Line<'a> = (&'a str, Box<dyn Fn(&str) -> String + 'a>);
    let lines: Vec<Line> = vec![
        (
            "publish, 64 publishers: posts/s",
            Box::new(|t| cell(&publish(t))),
        ),
        ("÷ floor", Box::new(|t| ratio(&publish(t), floor_publish))),
        (
            "server CPU per post (µs)",
            Box::new(|t| cell(&server_cpu(t))),
        ),
        (
            "load generator CPU per post (µs)",
            Box::new(|t| cell(&loadgen_cpu(t))),
        ),
        (
            "idle RSS per client at 10,000 (KiB)",
            Box::new(|t| cell(&rss(t))),
        ),
        ("÷ floor", Box::new(|t| ratio(&rss(t), floor_rss))),
    ];
    for (label, value) in &lines {
        let cells: Vec<String> = SERVERS.iter().map(|(t, _)| value(t)).collect();
        let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
    }

    out.push_str("\n| storage alone, 64 concurrent creates, no HTTP | posts/s | CPU per post (µs) |\n|---|---:|---:|\n");
    let storage_rate = |t: &str| rounds(r, t, "storage", |s| field(r, t, s, "posts_per_sec"));
    let storage_cpu = |t: &str| rounds(r, t, "storage", |s| field(r, t, s, "cpu_us_per_post"));
    for (t, label) in STORAGE {
        let _ = writeln!(
            out,
            "| {label} | {} | {} |",
            cell(&storage_rate(t)),
            cell(&storage_cpu(t))
        );
    }

    // The least CPU a durable create can take on this stack: the stack's
    // HTTP path with nothing behind it, storage with no HTTP in front, and
    // the load generator's share of the same cores.
    let parts = [
        median(&server_cpu(LIVEFEED_H1)),
        median(&storage_cpu("sled")),
        median(&loadgen_cpu(FLOOR)),
    ];
    if let ([Some(http), Some(disk), Some(gen)], Some(floor)) = (parts, floor_publish) {
        let sum = http + disk + gen;
        let most = cores as f64 * 1e6 / sum;
        let _ = writeln!(
            out,
            "\nThe least CPU a durable create can cost on this stack: {} µs (tide + livefeed's HTTP/1.1 with \
             nothing behind it) + {} µs (sled alone) + {} µs (the load generator, from the floor's run) = {} µs. \
             On {cores} cores that is at most {} posts/s, {:.2}× the floor's {} posts/s, even if every \
             thread ran in parallel with no wait; the target is 0.6×.",
            fmt_num(http),
            fmt_num(disk),
            fmt_num(gen),
            fmt_num(sum),
            fmt_num(most),
            most / floor,
            fmt_num(floor),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::load;

    #[test]
    fn cells_are_medians_with_every_round_and_ratios_to_the_floor() {
        let mut text = String::new();
        for (round, floor, stack) in [
            (1, 40_000.0, 20_000.0),
            (2, 50_000.0, 18_000.0),
            (3, 45_000.0, 22_000.0),
        ] {
            for (t, rate, cpu) in [(FLOOR, floor, 0.9), (LIVEFEED_H1, stack, 0.8)] {
                let posts = rate * 10.0;
                let _ = writeln!(
                    text,
                    r#"{{"target":"{t}","scenario":"publish-{round}","ok":true,"posts_ok":{posts},"posts_per_sec":{rate},"server_cpu_us_per_post":{},"loadgen_cpu_us_per_post":20}}"#,
                    cpu * 10.0 * 1e6 / posts,
                );
            }
            let _ = writeln!(
                text,
                r#"{{"target":"sled","scenario":"storage-{round}","ok":true,"posts_per_sec":30000,"cpu_us_per_post":30}}"#
            );
        }
        let md = render(&load(&text).unwrap(), 2);
        assert!(
            md.contains(
                "| 45,000 (40,000 / 50,000 / 45,000) | — | 20,000 (20,000 / 18,000 / 22,000) |"
            ),
            "{md}"
        );
        assert!(md.contains("| 1.00× | — | 0.44× |"), "{md}");
        // 2 × 10⁶ / (HTTP + sled + load generator) µs.
        let http = 8e6 / 200_000.0;
        let bound = 2e6 / (http + 30.0 + 20.0);
        assert!(
            md.contains(&format!("at most {} posts/s", fmt_num(bound))),
            "{md}"
        );
    }
}
