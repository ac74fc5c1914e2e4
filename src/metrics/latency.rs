//! Sliding-window latency quantiles from HDR histograms.
//!
//! Prometheus histograms answer "how many under each bucket bound"; SREs at
//! 4 a.m. also want "what is p99 right now" without a PromQL detour. Each
//! output keeps a ring of short HDR histograms (one per slot); a window's
//! quantiles are read from the merge of its slots, so the numbers slide with
//! time at slot granularity and old data ages out on its own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Slot length: the granularity at which windows slide.
pub const SLOT: Duration = Duration::from_secs(15);

/// The windows exported, as (label, length). The longest one sets how many
/// slots are kept.
pub const WINDOWS: [(&str, Duration); 2] = [
    ("1m", Duration::from_secs(60)),
    ("5m", Duration::from_secs(300)),
];

/// The quantiles exported, as (label, q).
pub const QUANTILES: [(&str, f64); 4] =
    [("0.5", 0.5), ("0.9", 0.9), ("0.99", 0.99), ("0.999", 0.999)];

/// Two significant digits: 1% relative error, and histograms of a few KiB.
const SIGFIGS: u8 = 2;

pub struct LatencyWindow {
    origin: Instant,
    /// Largest value tracked, µs; anything above is clamped (it is past the
    /// deadline and therefore lost anyway).
    highest_us: u64,
    /// (slot number since `origin`, histogram), oldest first.
    slots: VecDeque<(u64, Histogram<u32>)>,
}

impl LatencyWindow {
    pub fn new(origin: Instant, highest: Duration) -> LatencyWindow {
        LatencyWindow {
            origin,
            highest_us: (highest.as_micros() as u64).max(1_000),
            slots: VecDeque::new(),
        }
    }

    fn slot_of(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_secs() / SLOT.as_secs()
    }

    fn keep() -> u64 {
        WINDOWS.iter().map(|w| w.1).max().unwrap_or(SLOT).as_secs() / SLOT.as_secs()
    }

    pub fn record(&mut self, latency: Duration, now: Instant) {
        let slot = self.slot_of(now);
        if self.slots.back().map(|s| s.0) != Some(slot) {
            // A histogram this small cannot fail to be created: the bounds are
            // valid by construction (1 ≤ 1000 ≤ highest, 2 sigfigs).
            let Ok(h) = Histogram::new_with_bounds(1, self.highest_us, SIGFIGS) else {
                return;
            };
            self.slots.push_back((slot, h));
            self.prune(slot);
        }
        if let Some((_, h)) = self.slots.back_mut() {
            let us = (latency.as_micros() as u64).clamp(1, self.highest_us);
            h.saturating_record(us);
        }
    }

    fn prune(&mut self, current: u64) {
        let keep = Self::keep();
        while let Some((slot, _)) = self.slots.front() {
            if slot + keep <= current {
                self.slots.pop_front();
            } else {
                break;
            }
        }
    }

    /// Quantiles over the last `window` (rounded up to whole slots) as
    /// seconds, in `QUANTILES` order; `None` when nothing was recorded.
    pub fn quantiles(&mut self, window: Duration, now: Instant) -> Option<[f64; 4]> {
        let current = self.slot_of(now);
        self.prune(current);
        let n = window.as_secs().div_ceil(SLOT.as_secs()).max(1);
        let mut merged: Option<Histogram<u32>> = None;
        for (slot, h) in self.slots.iter().rev() {
            if *slot + n <= current {
                break;
            }
            match &mut merged {
                None => merged = Some(h.clone()),
                Some(m) => {
                    // Same bounds everywhere, so adding cannot fail.
                    let _ = m.add(h);
                }
            }
        }
        let merged = merged.filter(|m| !m.is_empty())?;
        let mut out = [0.0; 4];
        for (o, (_, q)) in out.iter_mut().zip(QUANTILES) {
            *o = merged.value_at_quantile(q) as f64 / 1e6;
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_slide_with_time() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(t0, Duration::from_secs(30));
        assert_eq!(w.quantiles(Duration::from_secs(60), t0), None);
        for i in 1..=100u64 {
            w.record(Duration::from_millis(i), t0);
        }
        let q = w.quantiles(Duration::from_secs(60), t0).expect("data");
        assert!((q[0] - 0.050).abs() < 0.001, "{q:?}");
        assert!((q[2] - 0.099).abs() < 0.002, "{q:?}");
        // Two minutes later, slower samples: the 1m window sees only them,
        // the 5m window sees both.
        let t2 = t0 + Duration::from_secs(120);
        for _ in 0..100 {
            w.record(Duration::from_secs(1), t2);
        }
        let q1 = w.quantiles(Duration::from_secs(60), t2).expect("data");
        assert!((q1[0] - 1.0).abs() < 0.02, "{q1:?}");
        let q5 = w.quantiles(Duration::from_secs(300), t2).expect("data");
        // Half the samples are fast: the median sits at their top (~100 ms).
        assert!(q5[0] < 0.2, "{q5:?}");
        // After five more minutes without data everything has aged out.
        assert_eq!(
            w.quantiles(Duration::from_secs(300), t2 + Duration::from_secs(301)),
            None
        );
    }

    #[test]
    fn values_beyond_range_are_clamped_not_dropped() {
        let t0 = Instant::now();
        let mut w = LatencyWindow::new(t0, Duration::from_secs(1));
        w.record(Duration::from_secs(3600), t0);
        w.record(Duration::ZERO, t0);
        let q = w.quantiles(Duration::from_secs(60), t0).expect("data");
        assert!(q[3] >= 0.99 && q[3] <= 1.01, "{q:?}");
    }
}
