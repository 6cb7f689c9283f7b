//! The feed's metrics, as data for `/metrics`.
//!
//! Per-feed numbers are not labels: feed names are chosen by clients, so a
//! label per feed would let them grow the metrics without bound.
//! `GET /feeds` has the per-feed counts instead; `/metrics` has the number
//! of feeds.

use super::publish::Metric;
use super::service::Feed;
use livefeed_actors::{HistogramSnapshot, Metrics};
use std::sync::atomic::Ordering;

/// One Prometheus histogram of durations, as read at one moment.
#[derive(Debug, Clone)]
pub struct Timing {
    /// The metric's name, ending in `_seconds`.
    pub name: &'static str,
    /// The `# HELP` text.
    pub help: &'static str,
    /// Its buckets, count and sum.
    pub snapshot: HistogramSnapshot,
}

impl Feed {
    /// Every metric of the feed, its connections and its publisher.
    pub fn metrics(&self) -> Vec<Metric> {
        let m = &self.link.metrics;
        let head = self.posts().head().unwrap_or_default();
        let feeds = self.posts().feeds().map_or(0, |f| f.len()) as u64;
        let mut out = vec![
            Metric::gauge(
                "livefeed_feeds",
                "Feeds with at least one live post.",
                feeds,
            ),
            // The hub's count (clients registered for broadcasts), which
            // drops in the same step that closes a slow consumer; the
            // admission count (`connected`) lags until the actor is gone.
            Metric::gauge(
                "livefeed_connected_clients",
                "Push clients currently connected.",
                Metrics::get(&m.connected),
            ),
            Metric::gauge(
                "livefeed_admitted_connections",
                "Push connections counted against --max-connections, from admission until their actor is gone.",
                self.admission.admitted() as u64,
            ),
            Metric::counter(
                "livefeed_connections_total",
                "Push connections accepted since start.",
                Metrics::get(&m.connections_total),
            ),
            Metric::counter(
                "livefeed_posts_created_total",
                "Posts created (HTTP and Socket.IO; replays of a create are not counted).",
                self.counts.created.load(Ordering::Relaxed),
            ),
            Metric::counter(
                "livefeed_idempotent_replays_total",
                "Creates answered from their Idempotency-Key's record: retries, nothing stored.",
                self.counts.replayed.load(Ordering::Relaxed),
            ),
            Metric::counter(
                "livefeed_posts_updated_total",
                "Posts edited.",
                self.counts.updated.load(Ordering::Relaxed),
            ),
            Metric::counter(
                "livefeed_posts_deleted_total",
                "Posts deleted.",
                self.counts.deleted.load(Ordering::Relaxed),
            ),
            Metric::counter(
                "livefeed_posts_rejected_total",
                "Create, edit and delete requests refused with an error.",
                self.counts.rejected.load(Ordering::Relaxed),
            ),
            Metric::counter(
                "livefeed_posts_broadcast_total",
                "Changes (creates, edits, deletes) fanned out by the hub.",
                Metrics::get(&m.posts_broadcast),
            ),
            Metric::counter(
                "livefeed_frames_delivered_total",
                "Change frames written to clients, live and replayed.",
                Metrics::get(&m.frames_delivered),
            ),
            Metric::counter(
                "livefeed_slow_consumer_disconnects_total",
                "Clients closed for falling too far behind (1008).",
                Metrics::get(&m.slow_consumer_disconnects),
            ),
            Metric::counter(
                "livefeed_heartbeat_timeouts_total",
                "Clients closed for not answering heartbeats.",
                Metrics::get(&m.heartbeat_timeouts),
            ),
            Metric::gauge(
                "livefeed_last_post_id",
                "The newest stored post id.",
                head.post_id.unwrap_or(0),
            ),
            Metric::gauge(
                "livefeed_last_seq",
                "The seq of the newest stored change.",
                head.seq.unwrap_or(0),
            ),
        ];
        self.publisher().metrics(&mut out);
        out
    }

    /// The feed's latency histograms.
    pub fn timings(&self) -> Vec<Timing> {
        vec![
            Timing {
                name: "livefeed_post_create_duration_seconds",
                help: "Successful creates, from the request being read to its answer (HTTP 201 or Socket.IO ack), durable by then.",
                snapshot: self.counts.create_latency.snapshot(),
            },
            Timing {
                name: "livefeed_delivery_lag_seconds",
                help: "Live changes, from being stored to their frame being written to a client (one observation per client).",
                snapshot: self.link.metrics.delivery_lag.snapshot(),
            },
        ]
    }
}
