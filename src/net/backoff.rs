//! Capped exponential backoff with jitter, for every reconnect loop (the
//! cluster tailer's Redis connection, `livefeed tail`).

use std::time::Duration;

/// Delays between attempts: each between half and all of a delay that
/// doubles from `min` up to `max`, so peers cut off at the same moment do
/// not all come back at the same moment.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `min`, grows to at most `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            current: min,
        }
    }

    /// The wait before the next attempt; the one after will be longer.
    pub fn next_delay(&mut self) -> Duration {
        let delay = jitter(self.current);
        self.current = (self.current * 2).min(self.max);
        delay
    }

    /// After a success: the next failure waits the shortest delay again.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// A delay between half and all of `delay`.
fn jitter(delay: Duration) -> Duration {
    let half = delay / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_up_to_the_cap_and_reset() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(400));
        for bound in [100, 200, 400, 400] {
            let d = backoff.next_delay();
            assert!(d >= ms(bound / 2) && d <= ms(bound), "{d:?} for {bound}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= ms(100));
    }
}
