//! The scale run's report (`bench/run.sh --scale`): fan-out at N clients and a
//! fixed post rate, for each target, as a markdown table and as an SVG chart
//! written by hand (four panels against N: p50 and p99 delivery latency on a
//! log scale, server CPU per delivery, RSS per client; N on a log scale).
//!
//! Input: result lines whose scenario is `scale-N` (a `fanout` result, or a
//! failure line `{"ok":false,"error":…}` from run.sh for a point that timed
//! out, did not start or was skipped).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::report::{fmt_num, get, thousands};

/// Targets in legend order: (name, legend label, colour, dash pattern).
const TARGETS: [(&str, &str, &str, &str); 4] = [
    ("livefeed-ws", "livefeed /ws", "#1f5fbf", ""),
    ("livefeed-sio", "livefeed Socket.IO", "#2a9d3a", ""),
    ("limit-server", "limit-server (floor)", "#555555", "6 4"),
    ("node", "node Socket.IO", "#d0312d", ""),
];

/// One measured point: a target at N clients.
pub struct Point {
    pub target: String,
    pub n: u64,
    /// The whole result line.
    pub v: Value,
}

impl Point {
    /// A point with numbers (the load generator finished).
    fn measured(&self) -> bool {
        self.v.get("error").is_none()
    }
    fn ok(&self) -> bool {
        self.v.get("ok").and_then(Value::as_bool) == Some(true)
    }
    fn num(&self, path: &str) -> Option<f64> {
        if self.measured() {
            get(&self.v, path)
        } else {
            None
        }
    }
}

/// Reads the `scale-N` lines of a results file; later lines for the same
/// (target, N) win.
pub fn load(text: &str) -> Result<Vec<Point>, String> {
    let mut by: BTreeMap<(u64, usize, String), Point> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
        let Some(n) = v
            .get("scenario")
            .and_then(Value::as_str)
            .and_then(|s| s.strip_prefix("scale-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        let target = v
            .get("target")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let order = TARGETS
            .iter()
            .position(|(t, ..)| *t == target)
            .unwrap_or(TARGETS.len());
        by.insert((n, order, target.clone()), Point { target, n, v });
    }
    Ok(by.into_values().collect())
}

/// What a point's correctness column says.
fn verdict(p: &Point) -> String {
    if !p.measured() {
        let e = p.v.get("error").and_then(Value::as_str).unwrap_or("failed");
        return format!("**{e}**");
    }
    if p.ok() {
        return "yes".into();
    }
    let mut bad = Vec::new();
    for (k, what) in [
        ("lost", "lost"),
        ("duplicates", "duplicated"),
        ("out_of_order", "out of order"),
        ("missing_seq", "without seq"),
        ("connect_failures", "connect failures"),
        ("posts_failed", "POSTs failed"),
    ] {
        if let Some(x) = p.num(k).filter(|x| *x > 0.0) {
            bad.push(format!("{} {what}", thousands(x)));
        }
    }
    if bad.is_empty() {
        bad.push("not ok".into());
    }
    format!("**NO**: {}", bad.join(", "))
}

/// RSS per connected client (KiB), measured idle after the connect storm.
const RSS_PATH: &str = "idle_rss_per_client_kib";

/// The markdown table: one row per N and target.
pub fn table(points: &[Point]) -> String {
    let mut md = String::from(
        "| N | target | delivery p50 (ms) | delivery p99 (ms) | POST p99 (ms) | posts/s accepted | server CPU per delivery (µs) | idle RSS per client (KiB) | connect storm (s) | correct (nothing lost, doubled, reordered) |\n",
    );
    md.push_str("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
    for p in points {
        let c = |path: &str| p.num(path).map(fmt_num).unwrap_or_else(|| "—".into());
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(p.n as f64),
            p.target,
            c("latency.p50_ms"),
            c("latency.p99_ms"),
            c("post_latency.p99_ms"),
            c("posts_per_sec"),
            c("server_cpu_us_per_delivery"),
            c(RSS_PATH),
            c("connect_secs"),
            verdict(p).replace('|', "/"),
        );
    }
    md
}

// ------------------------------------------------------------------ chart

const PANEL_W: f64 = 440.0;
const PANEL_H: f64 = 260.0;
/// Space left of a panel's plot area (y labels), below it (x labels) etc.
const PAD_L: f64 = 64.0;
const PAD_R: f64 = 16.0;
const PAD_T: f64 = 30.0;
const PAD_B: f64 = 44.0;
const TITLE_H: f64 = 56.0;
const LEGEND_H: f64 = 58.0;

/// One panel: what it plots and how its y axis goes.
struct Panel {
    title: &'static str,
    y_label: &'static str,
    path: &'static str,
    log: bool,
}

const PANELS: [Panel; 4] = [
    Panel {
        title: "Delivery latency p50",
        y_label: "ms (log scale)",
        path: "latency.p50_ms",
        log: true,
    },
    Panel {
        title: "Delivery latency p99",
        y_label: "ms (log scale)",
        path: "latency.p99_ms",
        log: true,
    },
    Panel {
        title: "Server CPU per delivery",
        y_label: "µs",
        path: "server_cpu_us_per_delivery",
        log: false,
    },
    Panel {
        title: "Server RSS per connected client (idle)",
        y_label: "KiB",
        path: RSS_PATH,
        log: false,
    },
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// "Nice" linear ticks from 0 to at least `max`.
fn linear_ticks(max: f64) -> Vec<f64> {
    let max = if max > 0.0 { max } else { 1.0 };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// Decades covering [lo, hi] (both > 0).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let a = lo.log10().floor() as i32;
    let b = (hi.log10().ceil() as i32).max(a + 1);
    (a..=b).map(|e| 10f64.powi(e)).collect()
}

fn ms_label(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{} s", fmt_num(ms / 1000.0))
    } else if ms >= 1.0 {
        format!("{} ms", fmt_num(ms))
    } else {
        format!("{ms} ms")
    }
}

/// Draws one panel at (x0, y0).
fn panel(svg: &mut String, x0: f64, y0: f64, pan: &Panel, points: &[Point], ns: &[u64]) {
    let (pl, pt) = (x0 + PAD_L, y0 + PAD_T);
    let (pw, ph) = (PANEL_W - PAD_L - PAD_R, PANEL_H - PAD_T - PAD_B);
    let vals: Vec<f64> = points
        .iter()
        .filter_map(|p| p.num(pan.path))
        .filter(|v| v.is_finite() && (!pan.log || *v > 0.0))
        .collect();
    let ticks = if pan.log {
        let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = vals.iter().copied().fold(0.0, f64::max);
        if vals.is_empty() {
            vec![1.0, 10.0, 100.0, 1000.0]
        } else {
            log_ticks(lo, hi)
        }
    } else {
        linear_ticks(vals.iter().copied().fold(0.0, f64::max))
    };
    let (t0, t1) = (ticks[0], *ticks.last().expect("tick lists are never empty"));
    let y_of = |v: f64| -> f64 {
        let f = if pan.log {
            (v.log10() - t0.log10()) / (t1.log10() - t0.log10())
        } else {
            (v - t0) / (t1 - t0)
        };
        pt + ph - f.clamp(0.0, 1.0) * ph
    };
    // N on a log scale: 1,000 … 18,000 are about evenly spread on it.
    let lg = |n: u64| (n.max(1) as f64).log10();
    let (n_lo, n_hi) = (
        ns.first().map_or(0.0, |&n| lg(n)) - 0.1,
        ns.last().map_or(1.0, |&n| lg(n)) + 0.1,
    );
    let x_of = |n: u64| pl + (lg(n) - n_lo) / (n_hi - n_lo) * pw;

    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" class="title">{}</text>"##,
        x0 + PAD_L,
        y0 + 18.0,
        esc(pan.title)
    );
    // Grid and y labels.
    for &t in &ticks {
        let y = y_of(t);
        let label = if pan.log { ms_label(t) } else { fmt_num(t) };
        let _ = writeln!(
            svg,
            r##"<line x1="{pl:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="ytick">{}</text>"##,
            pl + pw,
            pl - 6.0,
            y + 4.0,
            esc(&label)
        );
    }
    // X ticks at the measured N.
    for &n in ns {
        let x = x_of(n);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" class="axis"/><text x="{x:.1}" y="{:.1}" class="xtick">{}</text>"##,
            pt + ph,
            pt + ph + 4.0,
            pt + ph + 17.0,
            thousands(n as f64)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{pl:.1}" y="{pt:.1}" width="{pw:.1}" height="{ph:.1}" class="frame"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" class="xlabel">clients (N, log scale)</text>"##,
        pl + pw / 2.0,
        pt + ph + 36.0
    );
    let _ = writeln!(
        svg,
        r##"<text transform="translate({:.1},{:.1}) rotate(-90)" class="ylabel">{}</text>"##,
        x0 + 14.0,
        pt + ph / 2.0,
        esc(pan.y_label)
    );

    // One line per target; filled dots for correct points, hollow for points
    // that lost, doubled or reordered something, a cross at the top for
    // points without numbers (timed out, failed, skipped).
    for (target, _, colour, dash) in TARGETS {
        let mine: Vec<&Point> = points.iter().filter(|p| p.target == target).collect();
        let pts: Vec<(f64, f64, bool)> = mine
            .iter()
            .filter_map(|p| {
                let v = p.num(pan.path).filter(|v| !pan.log || *v > 0.0)?;
                Some((x_of(p.n), y_of(v), p.ok()))
            })
            .collect();
        if pts.len() > 1 {
            let d: Vec<String> = pts
                .iter()
                .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
                .collect();
            let dash = if dash.is_empty() {
                String::new()
            } else {
                format!(r#" stroke-dasharray="{dash}""#)
            };
            let _ = writeln!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"##,
                d.join(" ")
            );
        }
        for (x, y, ok) in pts {
            let fill = if ok { colour } else { "#ffffff" };
            let _ = writeln!(
                svg,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{fill}" stroke="{colour}" stroke-width="1.5"/>"##
            );
        }
        for p in mine.iter().filter(|p| !p.measured()) {
            let (x, y) = (x_of(p.n), pt + 6.0);
            let _ = writeln!(
                svg,
                r##"<path d="M{:.1},{:.1}L{:.1},{:.1}M{:.1},{:.1}L{:.1},{:.1}" stroke="{colour}" stroke-width="2"/>"##,
                x - 4.0,
                y - 4.0,
                x + 4.0,
                y + 4.0,
                x - 4.0,
                y + 4.0,
                x + 4.0,
                y - 4.0
            );
        }
    }
}

/// The whole chart: a title, four panels in a 2 × 2 grid, and a legend.
pub fn chart(points: &[Point], subtitle: &str) -> String {
    let mut ns: Vec<u64> = points.iter().map(|p| p.n).collect();
    ns.sort_unstable();
    ns.dedup();
    let (w, h) = (2.0 * PANEL_W, TITLE_H + 2.0 * PANEL_H + LEGEND_H);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="Helvetica, Arial, sans-serif">"##
    );
    svg.push_str(
        "<style>.title{font-size:14px;font-weight:bold;fill:#222}.sub{font-size:11px;fill:#555}\
.ytick{font-size:11px;text-anchor:end;fill:#333}.xtick{font-size:11px;text-anchor:middle;fill:#333}\
.xlabel,.ylabel{font-size:12px;text-anchor:middle;fill:#333}.legend{font-size:12px;fill:#222}\
.grid{stroke:#e3e3e3;stroke-width:1}.axis{stroke:#888;stroke-width:1}.frame{fill:none;stroke:#888;stroke-width:1}</style>\n",
    );
    // An opaque background keeps the chart readable on dark themes.
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="16" y="24" class="title">livefeed fan-out against N clients at a fixed post rate (bench/run.sh --scale)</text>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="16" y="42" class="sub">{}</text>"##,
        esc(subtitle)
    );
    for (i, pan) in PANELS.iter().enumerate() {
        let (col, row) = ((i % 2) as f64, (i / 2) as f64);
        panel(
            &mut svg,
            col * PANEL_W,
            TITLE_H + row * PANEL_H,
            pan,
            points,
            &ns,
        );
    }
    // Legend: targets, then what the markers mean.
    let ly = TITLE_H + 2.0 * PANEL_H + 18.0;
    let mut x = 16.0;
    for (target, label, colour, dash) in TARGETS {
        if !points.iter().any(|p| p.target == target) {
            continue;
        }
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"{dash}/><circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"/><text x="{:.1}" y="{:.1}" class="legend">{}</text>"##,
            ly - 4.0,
            x + 28.0,
            ly - 4.0,
            x + 14.0,
            ly - 4.0,
            x + 34.0,
            ly,
            esc(label)
        );
        x += 40.0 + 7.5 * label.len() as f64;
    }
    let _ = writeln!(
        svg,
        r##"<text x="16" y="{:.1}" class="sub">filled dot: correct (nothing lost, doubled or reordered); hollow dot: something lost, doubled or reordered; × at the top: no result (timed out, failed or skipped)</text>"##,
        ly + 22.0
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> String {
        [
            r#"{"target":"livefeed-ws","scenario":"scale-2000","ok":true,"clients":2000,"latency":{"p50_ms":20,"p99_ms":80},"server_cpu_us_per_delivery":9.5,"idle_rss_per_client_kib":7.5}"#,
            r#"{"target":"livefeed-ws","scenario":"scale-1000","ok":true,"clients":1000,"latency":{"p50_ms":10,"p99_ms":40},"server_cpu_us_per_delivery":9,"idle_rss_per_client_kib":8}"#,
            r#"{"target":"node","scenario":"scale-1000","ok":false,"lost":12,"clients":1000,"latency":{"p50_ms":900,"p99_ms":4000},"server_cpu_us_per_delivery":40,"idle_rss_per_client_kib":15}"#,
            r#"{"target":"node","scenario":"scale-2000","ok":false,"error":"timed out after 120 s"}"#,
            r#"{"target":"node","scenario":"fanout10k","ok":true}"#,
        ]
        .join("\n")
    }

    #[test]
    fn tables_every_point_in_n_then_target_order_with_its_verdict() {
        let pts = load(&lines()).unwrap();
        assert_eq!(pts.len(), 4, "only scale-N lines count");
        let order: Vec<(u64, &str)> = pts.iter().map(|p| (p.n, p.target.as_str())).collect();
        assert_eq!(
            order,
            [
                (1000, "livefeed-ws"),
                (1000, "node"),
                (2000, "livefeed-ws"),
                (2000, "node")
            ]
        );
        let md = table(&pts);
        assert!(md.contains("| 1,000 | livefeed-ws | 10 | 40 |"), "{md}");
        assert!(md.contains("| **NO**: 12 lost |"), "{md}");
        assert!(md.contains("| 2,000 | node | — | — |"), "{md}");
        assert!(md.contains("| **timed out after 120 s** |"), "{md}");
    }

    #[test]
    fn charts_a_line_per_target_and_marks_points_without_numbers() {
        let svg = chart(&load(&lines()).unwrap(), "test run");
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        // Four panels, each with one livefeed line (two points); node has
        // one measured point (no line) and one cross per panel.
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("<path ").count(), 4);
        assert_eq!(svg.matches(r##"<path d="M"##).count(), 4);
        // Node's point lost posts: hollow.
        assert_eq!(
            svg.matches(r##"fill="#ffffff" stroke="#d0312d""##).count(),
            4
        );
        for label in [
            "livefeed /ws",
            "node Socket.IO",
            "clients (N, log scale)",
            "ms (log scale)",
            "1 s",
        ] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(
            !svg.contains("limit-server (floor)"),
            "no legend entry without points"
        );
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn ticks_cover_the_data() {
        assert_eq!(linear_ticks(9.5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(log_ticks(10.0, 4000.0), vec![10.0, 100.0, 1000.0, 10000.0]);
        assert_eq!(log_ticks(3.0, 3.0), vec![1.0, 10.0]);
    }
}
