//! `GET /metrics` in the Prometheus text format.

use crate::http::State;
use livefeed_actors::Metrics;
use std::fmt::Write;
use std::sync::atomic::AtomicU64;
use tide::{Request, Response, StatusCode};

/// Renders every counter.
pub async fn render(req: Request<State>) -> tide::Result {
    let state = req.state();
    let m = &state.metrics;
    let h = &state.http;
    let mut out = String::with_capacity(2048);
    let rows: [(&str, &str, &str, &AtomicU64); 9] = [
        (
            "livefeed_connected_clients",
            "gauge",
            "Push clients currently connected.",
            &m.connected,
        ),
        (
            "livefeed_connections_total",
            "counter",
            "Push connections accepted since start.",
            &m.connections_total,
        ),
        (
            "livefeed_posts_created_total",
            "counter",
            "Posts created through the HTTP API.",
            &h.posts_created,
        ),
        (
            "livefeed_posts_rejected_total",
            "counter",
            "Create requests refused with an error.",
            &h.posts_rejected,
        ),
        (
            "livefeed_posts_broadcast_total",
            "counter",
            "Posts fanned out by the hub.",
            &m.posts_broadcast,
        ),
        (
            "livefeed_frames_delivered_total",
            "counter",
            "Post frames written to clients, live and replayed.",
            &m.frames_delivered,
        ),
        (
            "livefeed_slow_consumer_disconnects_total",
            "counter",
            "Clients closed for falling too far behind (1008).",
            &m.slow_consumer_disconnects,
        ),
        (
            "livefeed_heartbeat_timeouts_total",
            "counter",
            "Clients closed for not answering heartbeats.",
            &m.heartbeat_timeouts,
        ),
        (
            "livefeed_http_requests_total",
            "counter",
            "HTTP requests answered.",
            &h.requests,
        ),
    ];
    for (name, kind, help, value) in rows {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n",
            Metrics::get(value)
        );
    }
    let last = state.store.last_id().ok().flatten().unwrap_or(0);
    let _ = write!(
        out,
        "# HELP livefeed_last_post_id The newest stored post id.\n# TYPE livefeed_last_post_id gauge\nlivefeed_last_post_id {last}\n"
    );
    if let Some(cluster) = &state.cluster {
        cluster.render_metrics(&mut out);
    }
    Ok(Response::builder(StatusCode::Ok)
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(out)
        .build())
}
