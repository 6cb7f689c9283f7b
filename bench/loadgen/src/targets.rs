//! Issue 14's targets: each one a ratio of a livefeed result to limit-server's
//! (the floor) in the same run, with its bound, the measured ratio and
//! whether it was met.

use std::fmt::Write as _;

use serde_json::Value;

use crate::report::{field, fmt_num, Results, FLOOR};

/// Which way a ratio has to go.
#[derive(Clone, Copy)]
enum Bound {
    /// livefeed ÷ floor at most this (latency, memory).
    AtMost(f64),
    /// livefeed ÷ floor at least this (throughput).
    AtLeast(f64),
}

struct Target {
    what: &'static str,
    target: &'static str,
    scenario: &'static str,
    path: &'static str,
    bound: Bound,
}

const WS: &str = "livefeed-ws";
const SIO: &str = "livefeed-sio";

fn targets() -> Vec<Target> {
    let t = |what, target, scenario, path, bound| Target {
        what,
        target,
        scenario,
        path,
        bound,
    };
    use Bound::{AtLeast, AtMost};
    vec![
        t(
            "fan-out: p99 delivery",
            WS,
            "fanout10k",
            "latency.p99_ms",
            AtMost(1.2),
        ),
        t(
            "fan-out: p99 delivery",
            SIO,
            "fanout10k",
            "latency.p99_ms",
            AtMost(1.5),
        ),
        t(
            "fan-out: POST p99 during it",
            WS,
            "fanout10k",
            "post_latency.p99_ms",
            AtMost(1.5),
        ),
        t(
            "fan-out: POST p99 during it",
            SIO,
            "fanout10k",
            "post_latency.p99_ms",
            AtMost(1.5),
        ),
        t(
            "burst: deliveries/s",
            WS,
            "throughput",
            "deliveries_per_sec",
            AtLeast(1.0),
        ),
        t(
            "burst: deliveries/s",
            SIO,
            "throughput",
            "deliveries_per_sec",
            AtLeast(1.0),
        ),
        t(
            "publish: livefeed's durable posts/s ÷ the floor's in-memory ones",
            WS,
            "publish",
            "posts_per_sec",
            AtLeast(0.6),
        ),
        t(
            "publish: livefeed's durable posts/s ÷ the floor's in-memory ones",
            SIO,
            "publish",
            "posts_per_sec",
            AtLeast(0.6),
        ),
        t(
            "idle RSS per client",
            WS,
            "fanout10k",
            "idle_rss_per_client_kib",
            AtMost(1.2),
        ),
        t(
            "idle RSS per client",
            SIO,
            "fanout10k",
            "idle_rss_per_client_kib",
            AtMost(1.6),
        ),
    ]
}

fn label(target: &str) -> &'static str {
    if target == WS {
        "livefeed `/ws`"
    } else {
        "livefeed Socket.IO"
    }
}

fn clients(r: &Results, scenario: &str) -> String {
    r.iter()
        .find(|((_, s), _)| s == scenario)
        .and_then(|(_, v)| v.get("clients").and_then(Value::as_f64))
        .map(fmt_num)
        .map(|n| format!(", N={n}"))
        .unwrap_or_default()
}

/// The targets table (markdown): one row per target and livefeed column.
/// Without a limit-server column it says so instead.
pub fn render(r: &Results) -> String {
    let mut md =
        String::from("\nTargets (issue 14: ratios to limit-server, the floor, in this run):\n\n");
    if !r.keys().any(|(t, _)| t == FLOOR) {
        md.push_str("No limit-server column in this run, so no target can be evaluated.\n");
        return md;
    }
    md.push_str(
        "Only a full run's verdicts count: a `--quick` run's small N and second-long runs make its timings meaningless.\n\n",
    );
    md.push_str("| target | livefeed | floor | livefeed ÷ floor | bound | result |\n");
    md.push_str("| --- | ---: | ---: | ---: | ---: | --- |\n");
    for t in targets() {
        let ran = |target: &str| r.contains_key(&(target.to_string(), t.scenario.to_string()));
        if !ran(t.target) {
            continue; // e.g. no Socket.IO column in this run
        }
        let lf = field(r, t.target, t.scenario, t.path);
        let floor = field(r, FLOOR, t.scenario, t.path);
        let ratio = match (lf, floor) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let (bound, met) = match t.bound {
            Bound::AtMost(b) => (format!("≤ {b:.1}×"), ratio.map(|x| x <= b)),
            Bound::AtLeast(b) => (format!("≥ {b:.1}×"), ratio.map(|x| x >= b)),
        };
        let cell = |x: Option<f64>| x.map(fmt_num).unwrap_or_else(|| "—".into());
        let result = match met {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "no result",
        };
        let _ = writeln!(
            md,
            "| {} ({}{}) | {} | {} | {} | {bound} | {result} |",
            t.what,
            label(t.target),
            clients(r, t.scenario),
            cell(lf),
            cell(floor),
            ratio
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "—".into()),
        );
    }
    // Nothing lost, doubled or reordered: the correctness of the fan-out runs.
    for target in [WS, SIO] {
        let Some(v) = r.get(&(target.to_string(), "fanout10k".to_string())) else {
            continue;
        };
        let ok = v.get("ok").and_then(Value::as_bool) == Some(true);
        let _ = writeln!(
            md,
            "| fan-out: nothing lost, doubled or reordered ({}{}) | {} | — | — | all | {} |",
            label(target),
            clients(r, "fanout10k"),
            if ok { "correct" } else { "incorrect" },
            if ok { "met" } else { "**not met**" },
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::load;

    #[test]
    fn prints_each_target_with_its_ratio_and_verdict() {
        let lines = [
            r#"{"target":"livefeed-ws","scenario":"fanout10k","ok":true,"clients":10000,"latency":{"p99_ms":300},"post_latency":{"p99_ms":100},"idle_rss_per_client_kib":6}"#,
            r#"{"target":"limit-server","scenario":"fanout10k","ok":true,"clients":10000,"latency":{"p99_ms":200},"post_latency":{"p99_ms":100},"idle_rss_per_client_kib":5}"#,
            r#"{"target":"livefeed-ws","scenario":"publish","ok":true,"posts_per_sec":12000}"#,
            r#"{"target":"limit-server","scenario":"publish","ok":true,"posts_per_sec":30000}"#,
        ]
        .join("\n");
        let md = render(&load(&lines).unwrap());
        let has = |s: &str| assert!(md.contains(s), "{s:?} not in\n{md}");
        has("| fan-out: p99 delivery (livefeed `/ws`, N=10,000) | 300 | 200 | 1.50 | ≤ 1.2× | **not met** |");
        has("| fan-out: POST p99 during it (livefeed `/ws`, N=10,000) | 100 | 100 | 1.00 | ≤ 1.5× | met |");
        has("| idle RSS per client (livefeed `/ws`, N=10,000) | 6 | 5 | 1.20 | ≤ 1.2× | met |");
        has("(livefeed `/ws`) | 12,000 | 30,000 | 0.40 | ≥ 0.6× | **not met** |");
        has("| fan-out: nothing lost, doubled or reordered (livefeed `/ws`, N=10,000) | correct |");
        // No throughput result: no row; no Socket.IO column: no rows for it.
        assert!(!md.contains("burst") && !md.contains("Socket.IO"), "{md}");

        let no_floor =
            r#"{"target":"livefeed-ws","scenario":"publish","ok":true,"posts_per_sec":1}"#;
        assert!(render(&load(no_floor).unwrap()).contains("No limit-server column"));
    }
}
