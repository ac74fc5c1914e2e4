//! Exponential backoff with equal jitter (each wait uniform in the upper
//! half of its cap), for retries against a cluster or an Alertmanager that
//! is not answering: spreads many probers' retries instead of syncing
//! them, while never retrying much sooner than the cap says.

use std::time::Duration;

pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next wait: uniform in [cap/2, cap], cap = min(max, base × 2^attempt).
    pub fn next_wait(&mut self) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        cap.mul_f64(0.5 + rand::random::<f64>() * 0.5)
    }

    /// Back to the first, shortest wait (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_wait();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..30 {
            let d = b.next_wait();
            assert!(d <= Duration::from_secs(2), "{d:?}");
        }
        let d = b.next_wait();
        assert!(d >= Duration::from_secs(1), "{d:?}");
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(100));
    }
}
