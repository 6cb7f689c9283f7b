//! Counters the actors update and the HTTP layer renders on `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide counters for one hub and its connections.
///
/// Plain relaxed atomics: they are read for reporting only, never to
/// synchronise anything.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Connections currently registered with the hub: the size of its set,
    /// stored after every change (never counted up and down, so no exit
    /// path can leave it wrong).
    pub connected: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Posts the hub fanned out.
    pub posts_broadcast: AtomicU64,
    /// Frames written to clients (live and replayed posts).
    pub frames_delivered: AtomicU64,
    /// Connections closed because their backlog passed the bound.
    pub slow_consumer_disconnects: AtomicU64,
    /// Connections closed because the peer stopped answering heartbeats.
    pub heartbeat_timeouts: AtomicU64,
}

impl Metrics {
    /// Adds `n` to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets `gauge` to `value`.
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    /// Reads `counter`.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
