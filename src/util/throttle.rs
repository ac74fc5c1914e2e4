//! Log lines about repeated events, at most one per period, each carrying
//! how many events it stands for: consume errors, refused connections,
//! canaries given up as unacknowledged.

use std::time::{Duration, Instant};

/// The period every throttled warning uses.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    pending: u64,
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::new(LOG_EVERY)
    }
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            pending: 0,
        }
    }

    /// Counts `n` events at `now`; when a line is due (the first, or
    /// `every` after the last), returns the events it stands for.
    pub fn note(&mut self, n: u64, now: Instant) -> Option<u64> {
        self.pending += n;
        if self.pending == 0
            || self
                .last
                .is_some_and(|t| now.saturating_duration_since(t) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_period_with_the_count_since_the_last() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = Throttle::new(Duration::from_secs(10));
        assert_eq!(t.note(0, t0), None, "nothing to say");
        assert_eq!(t.note(1, t0), Some(1), "the first at once");
        assert_eq!(t.note(1, t0 + s), None);
        assert_eq!(t.note(3, t0 + 9 * s), None);
        assert_eq!(t.note(0, t0 + 10 * s), Some(4), "the rest when due");
        assert_eq!(t.note(0, t0 + 30 * s), None);
        assert_eq!(t.note(2, t0 + 31 * s), Some(2));
    }
}
