//! Operations routes: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`,
//! and the embedded browser demo at `/`.

use super::{handler, json_response, ApiError, RequestCount, Router};
use crate::feed::metrics::Timing;
use crate::feed::publish::{Health, Metric, MetricKind};
use crate::feed::Feed;
use rust_embed::RustEmbed;
use std::fmt::Write;
use std::sync::Arc;
use tide::http::{headers, Mime};
use tide::{Request, Response, StatusCode};

/// `/openapi.json`: the API's OpenAPI 3.1 description, one hand-kept file
/// embedded in the binary. It cannot drift from the code unnoticed: the
/// integration tests validate real responses against its schemas and check
/// that every route is described, and the fuzz run (`tests/fuzz/run.sh`)
/// holds every operation to it.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The demo's content security policy: scripts, styles and connections
/// from this origin only, so injected markup could not run anything.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

#[derive(RustEmbed)]
#[folder = "public/"]
struct Public;

/// What the operations routes read.
#[derive(Clone)]
struct Ops {
    feed: Arc<Feed>,
    requests: Arc<RequestCount>,
}

/// Adds the operations routes and the demo (`/` and each of its files) to
/// `app`.
pub fn mount(app: &mut Router, feed: Arc<Feed>, requests: Arc<RequestCount>) {
    let ops = Ops { feed, requests };
    app.at("/openapi.json")
        .get(|_req: Request<()>| async { Ok(json_response(StatusCode::Ok, OPENAPI)) });
    app.at("/healthz").get(handler(ops.clone(), healthz));
    app.at("/readyz").get(handler(ops.clone(), readyz));
    app.at("/metrics").get(handler(ops, metrics));
    // Each file its own route, not a catch-all: any other path is an
    // unknown route (404 whatever the method), not a file route refusing
    // the method.
    app.at("/").get(asset);
    for file in Public::iter() {
        app.at(&format!("/{file}")).get(asset);
    }
}

/// Liveness: 200 while the process serves; says the mode, whether storage
/// takes writes (`status` is `degraded` while it does not) and, in cluster
/// mode, the replica's state.
async fn healthz(ops: Ops, _req: Request<()>) -> Response {
    let Health {
        cluster,
        ready,
        storage,
    } = ops.feed.health();
    let status = if storage.is_ok() { "ok" } else { "degraded" };
    let storage = serde_json::json!({"state": storage.state, "reason": storage.reason});
    let body = match cluster {
        None => serde_json::json!({"status": status, "mode": "single", "storage": storage}),
        Some(c) => serde_json::json!({
            "status": status,
            "mode": "cluster",
            "storage": storage,
            "state": c.state,
            "ready": ready,
            "redis": if c.redis_connected { "connected" } else { "disconnected" },
            "stream": c.stream,
            "appliedId": c.applied_id,
            "streamHeadId": c.stream_head_id,
            "lag": c.lag,
            "error": c.error,
        }),
    };
    json_response(StatusCode::Ok, body.to_string())
}

/// Readiness, for load balancers: 503 while storage takes no writes, and
/// while a cluster node catches up with the stream (or refuses a diverged
/// replica).
async fn readyz(ops: Ops, _req: Request<()>) -> Response {
    if ops.feed.health().ready {
        json_response(StatusCode::Ok, r#"{"ready":true}"#)
    } else {
        json_response(StatusCode::ServiceUnavailable, r#"{"ready":false}"#)
    }
}

/// Every metric, in the Prometheus text format.
async fn metrics(ops: Ops, _req: Request<()>) -> Response {
    let mut rows = ops.feed.metrics();
    rows.push(Metric::counter(
        "livefeed_http_requests_total",
        "HTTP requests answered.",
        ops.requests.get(),
    ));
    let mut text = render(&rows);
    render_timings(&mut text, &ops.feed.timings());
    Response::builder(StatusCode::Ok)
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
        .build()
}

/// The Prometheus text format of `rows`.
fn render(rows: &[Metric]) -> String {
    let mut out = String::with_capacity(rows.len() * 128);
    for m in rows {
        let kind = match m.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        };
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n",
            name = m.name,
            help = m.help,
            value = m.value
        );
    }
    out
}

/// Appends `timings` to `out` as Prometheus histograms (seconds).
fn render_timings(out: &mut String, timings: &[Timing]) {
    for t in timings {
        let s = &t.snapshot;
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} histogram\n",
            name = t.name,
            help = t.help
        );
        for (bound_us, n) in &s.buckets {
            let _ = writeln!(
                out,
                "{}_bucket{{le=\"{}\"}} {n}",
                t.name,
                seconds(*bound_us)
            );
        }
        let _ = write!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}\n",
            name = t.name,
            count = s.count,
            sum = seconds(s.sum_us)
        );
    }
}

/// Microseconds as decimal seconds, exactly (`250` → `0.00025`).
fn seconds(us: u64) -> String {
    let whole = us / 1_000_000;
    let frac = us % 1_000_000;
    if frac == 0 {
        return whole.to_string();
    }
    let digits = format!("{frac:06}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Serves `/` and the files of `public/`.
async fn asset(req: Request<()>) -> tide::Result {
    let path = match req.url().path().trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let Some(file) = Public::get(path) else {
        return Ok(ApiError::not_found(format!("no file at /{path}")).into_response());
    };
    let mime = path
        .rsplit_once('.')
        .and_then(|(_, ext)| Mime::from_extension(ext))
        .unwrap_or(tide::http::mime::BYTE_STREAM);
    Ok(Response::builder(StatusCode::Ok)
        .content_type(mime)
        .header(headers::CACHE_CONTROL, "no-cache")
        .header("X-Content-Type-Options", "nosniff")
        .header("Content-Security-Policy", CSP)
        .header("Referrer-Policy", "no-referrer")
        .body(file.data.into_owned())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_json() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert!(doc["paths"].as_object().unwrap().contains_key("/events"));
    }

    #[test]
    fn histograms_render_cumulative_buckets_in_seconds() {
        let h = livefeed_actors::Histogram::default();
        h.observe(std::time::Duration::from_micros(300));
        h.observe(std::time::Duration::from_millis(2));
        let mut text = String::new();
        render_timings(
            &mut text,
            &[Timing {
                name: "x_seconds",
                help: "X.",
                snapshot: h.snapshot(),
            }],
        );
        assert!(text.starts_with("# HELP x_seconds X.\n# TYPE x_seconds histogram\n"));
        assert!(text.contains("x_seconds_bucket{le=\"0.00025\"} 0\n"));
        assert!(text.contains("x_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("x_seconds_bucket{le=\"0.0025\"} 2\n"));
        assert!(text.contains("x_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.ends_with(
            "x_seconds_bucket{le=\"+Inf\"} 2\nx_seconds_sum 0.0023\nx_seconds_count 2\n"
        ));
    }

    #[test]
    fn metrics_render_as_prometheus_text() {
        let text = render(&[Metric::gauge("a_b", "An A.", 3)]);
        assert_eq!(text, "# HELP a_b An A.\n# TYPE a_b gauge\na_b 3\n");
    }
}
