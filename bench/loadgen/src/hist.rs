//! A lock-free log-linear latency histogram (HDR-style), in microseconds.
//!
//! Values below 128 µs are exact; above that each power of two is split
//! into 64 buckets, so a reported percentile is within 1/64 (1.6 %) of the
//! true value. The maximum is tracked exactly. Recording is one relaxed
//! atomic add, so every client task can share one histogram.

use std::sync::atomic::{AtomicU64, Ordering};

/// Values below this are stored one bucket per microsecond.
const LINEAR: u64 = 128;
/// Sub-buckets per power of two above `LINEAR`.
const SUB: u64 = 64;
/// Largest exponent stored (2^40 µs is 12 days; anything above is clamped).
const MAX_EXP: u64 = 40;
const BUCKETS: usize = (LINEAR + (MAX_EXP - 6) * SUB) as usize;

/// A concurrent histogram of microsecond values.
pub struct Histogram {
    counts: Box<[AtomicU64]>,
    total: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

/// A summary of a histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

fn index(v: u64) -> usize {
    if v < LINEAR {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros() as u64; // >= 7
    let exp = exp.min(MAX_EXP - 1);
    let shift = exp - 6;
    let mantissa = (v >> shift).min(2 * SUB - 1); // 64..=127
    (LINEAR + (exp - 7) * SUB + (mantissa - SUB)) as usize
}

/// Midpoint of the bucket at `i`.
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let k = i - LINEAR;
    let exp = k / SUB + 7;
    let mantissa = k % SUB + SUB;
    let shift = exp - 6;
    (mantissa << shift) + ((1u64 << shift) >> 1)
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    pub fn new() -> Self {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, v: u64) {
        self.counts[index(v).min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    pub fn summary(&self) -> Summary {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        let max = self.max.load(Ordering::Relaxed);
        if total == 0 {
            return Summary::default();
        }
        let pct = |p: f64| -> u64 {
            let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return value(i).min(max);
                }
            }
            max
        };
        Summary {
            count: total,
            mean_us: self.sum.load(Ordering::Relaxed) as f64 / total as f64,
            p50_us: pct(0.50),
            p90_us: pct(0.90),
            p99_us: pct(0.99),
            p999_us: pct(0.999),
            max_us: max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for v in (0..2_000_000u64).step_by(7) {
            let i = index(v);
            assert!(i >= last, "index went down at {v}");
            last = i;
            let back = value(i);
            let err = back.abs_diff(v) as f64 / v.max(1) as f64;
            assert!(err <= 1.0 / 64.0 + 1e-9, "v={v} back={back}");
        }
    }

    #[test]
    fn percentiles() {
        let h = Histogram::new();
        for v in 1..=1000 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.max_us, 1000);
        assert!((s.p50_us as i64 - 500).abs() <= 8, "{s:?}");
        assert!((s.p99_us as i64 - 990).abs() <= 16, "{s:?}");
    }
}
