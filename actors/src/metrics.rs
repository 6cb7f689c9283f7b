//! Counters and histograms the actors update and the HTTP layer renders on
//! `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// From a change being stored to its frame being written to a client,
    /// for every live delivery (replayed frames are not counted: their
    /// age is the client's absence, not the server's lag).
    pub delivery_lag: Histogram,
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

/// Upper bounds of [`Histogram`]'s buckets, in microseconds: 250 µs to
/// 10 s, roughly ×2.5 apart, which resolves both a quiet server's
/// sub-millisecond answers and an overloaded one's seconds.
pub const BUCKETS_US: [u64; 15] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// A Prometheus histogram of durations with the fixed [`BUCKETS_US`]:
/// lock-free, a few relaxed atomic adds per observation.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket, not cumulative; the last one counts those
    /// above every bound.
    buckets: [AtomicU64; BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `(upper bound in µs, observations at or below it)`, cumulative, in
    /// the order of [`BUCKETS_US`].
    pub buckets: Vec<(u64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    /// The sum of every observation, in microseconds.
    pub sum_us: u64,
}

/// The bucket of `d`, and `d` in microseconds.
fn bucket_of(d: Duration) -> (usize, u64) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    (BUCKETS_US.partition_point(|&bound| bound < us), us)
}

/// Observations counted locally, then added to a [`Histogram`] at once:
/// a connection writing a round of frames touches the shared counters
/// once per round, not once per frame (they are shared by every thread).
#[derive(Debug, Default)]
pub struct Tally {
    buckets: [u64; BUCKETS_US.len() + 1],
    sum_us: u64,
}

impl Tally {
    /// Counts one duration.
    pub fn observe(&mut self, d: Duration) {
        let (bucket, us) = bucket_of(d);
        self.buckets[bucket] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }
}

impl Histogram {
    /// Counts one duration.
    pub fn observe(&self, d: Duration) {
        let (bucket, us) = bucket_of(d);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Counts what `tally` counted.
    pub fn add(&self, tally: &Tally) {
        for (shared, &n) in self.buckets.iter().zip(&tally.buckets) {
            if n > 0 {
                shared.fetch_add(n, Ordering::Relaxed);
            }
        }
        if tally.sum_us > 0 {
            self.sum_us.fetch_add(tally.sum_us, Ordering::Relaxed);
        }
    }

    /// The counts so far. Read bucket by bucket while others observe, so
    /// the count is the sum of the buckets as read, never less than them.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut buckets = Vec::with_capacity(BUCKETS_US.len());
        for (bound, n) in BUCKETS_US.iter().zip(&self.buckets) {
            total += n.load(Ordering::Relaxed);
            buckets.push((*bound, total));
        }
        total += self.buckets[BUCKETS_US.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count: total,
            sum_us: self.sum_us.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(250)); // on a bound: that bucket
        h.observe(Duration::from_micros(251));
        h.observe(Duration::from_millis(30));
        h.observe(Duration::from_secs(60)); // above every bound
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.sum_us, 250 + 251 + 30_000 + 60_000_000);
        let at = |bound| s.buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(250), 1);
        assert_eq!(at(500), 2);
        assert_eq!(at(25_000), 2);
        assert_eq!(at(50_000), 3);
        assert_eq!(at(10_000_000), 3);
    }

    #[test]
    fn a_tally_adds_what_single_observations_would() {
        let one_by_one = Histogram::default();
        let tallied = Histogram::default();
        let mut tally = Tally::default();
        for us in [100, 250, 251, 30_000, 30_001, 60_000_000] {
            one_by_one.observe(Duration::from_micros(us));
            tally.observe(Duration::from_micros(us));
        }
        tallied.add(&tally);
        assert_eq!(tallied.snapshot(), one_by_one.snapshot());
    }
}
