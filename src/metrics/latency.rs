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
    /// (slot number since `origin`, its histogram), oldest first.
    slots: VecDeque<(u64, Slot)>,
}

/// One slot's latencies, in as little memory as they fit: a slot keeps
/// its latencies as they come until there are [`VALUES_MAX`] of them, and
/// only then records into a dense histogram (about 9 KiB at a 5 s
/// deadline, whatever it holds); once the next slot begins a dense one
/// keeps only its recorded (value, count) pairs when they are smaller. So
/// a probe's memory follows the canaries it has seen in the window, not the
/// window's length: a probe sending a canary a second holds 15 values per
/// slot instead of 9 KiB (the 5-minute window keeps 20 slots), the one
/// being recorded included (200 such probes held 1.7 MB in dense slots).
enum Slot {
    /// Latencies (µs) as recorded, up to [`VALUES_MAX`].
    Values(Vec<u64>),
    Dense(Histogram<u32>),
    /// Each recorded bucket's highest equivalent value (µs) and count:
    /// recorded again, they land in the same buckets.
    Sparse(Box<[(u64, u32)]>),
}

/// Latencies a slot keeps one by one (2 KiB) before it records them into a
/// dense histogram: up to 17 canaries a second per output.
const VALUES_MAX: usize = 256;

impl Slot {
    fn close(&mut self) {
        let h = match self {
            Slot::Values(v) => {
                v.shrink_to_fit();
                return;
            }
            Slot::Sparse(_) => return,
            Slot::Dense(h) => h,
        };
        let pair = std::mem::size_of::<(u64, u32)>();
        let recorded = h.iter_recorded().count();
        if recorded * pair < h.distinct_values() * std::mem::size_of::<u32>() {
            let pairs = h
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect();
            *self = Slot::Sparse(pairs);
        }
    }

    fn add_to(&self, merged: &mut Histogram<u32>) {
        match self {
            // Same bounds everywhere, so adding cannot fail.
            Slot::Dense(h) => {
                let _ = merged.add(h);
            }
            Slot::Sparse(pairs) => {
                for (value, count) in pairs.iter() {
                    merged.saturating_record_n(*value, *count);
                }
            }
            Slot::Values(values) => {
                for value in values {
                    merged.saturating_record(*value);
                }
            }
        }
    }
}

/// An empty histogram up to `highest_us`; one this small cannot fail to be
/// created (1 ≤ 1000 ≤ highest, 2 sigfigs).
fn histogram(highest_us: u64) -> Option<Histogram<u32>> {
    Histogram::new_with_bounds(1, highest_us, SIGFIGS).ok()
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
            if let Some((_, last)) = self.slots.back_mut() {
                last.close();
            }
            self.slots.push_back((slot, Slot::Values(Vec::new())));
            self.prune(slot);
        }
        let us = (latency.as_micros() as u64).clamp(1, self.highest_us);
        let highest_us = self.highest_us;
        let Some((_, current)) = self.slots.back_mut() else {
            return;
        };
        match current {
            Slot::Dense(h) => h.saturating_record(us),
            Slot::Values(values) if values.len() < VALUES_MAX => values.push(us),
            full => {
                // Full (or closed, which the slot being recorded never
                // is): from here on the slot is a histogram.
                let Some(mut h) = histogram(highest_us) else {
                    return;
                };
                full.add_to(&mut h);
                h.saturating_record(us);
                *full = Slot::Dense(h);
            }
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
        let mut merged = histogram(self.highest_us)?;
        for (slot, h) in self.slots.iter().rev() {
            if *slot + n <= current {
                break;
            }
            h.add_to(&mut merged);
        }
        if merged.is_empty() {
            return None;
        }
        let mut out = [0.0; 4];
        for (o, (_, q)) in out.iter_mut().zip(QUANTILES) {
            *o = merged.value_at_quantile(q) as f64 / 1e6;
        }
        Some(out)
    }

    /// Bytes the slots hold (their counts or pairs).
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|(_, s)| match s {
                Slot::Dense(h) => h.distinct_values() * std::mem::size_of::<u32>(),
                Slot::Sparse(p) => p.len() * std::mem::size_of::<(u64, u32)>(),
                Slot::Values(v) => v.capacity() * std::mem::size_of::<u64>(),
            })
            .sum()
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

    /// Slots kept as values or pairs give the quantiles dense ones give, and
    /// hold a few bytes per latency instead of the whole range, the slot
    /// being recorded too.
    #[test]
    fn closed_slots_keep_their_latencies_in_little_memory() {
        let t0 = Instant::now();
        let mut sparse = LatencyWindow::new(t0, Duration::from_secs(5));
        let mut dense = LatencyWindow::new(t0, Duration::from_secs(5));
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        // 20 slots of one canary a second, 1 to 60 ms; the reference gets
        // all 300 in one slot, which turns dense after 256.
        for s in 0..20u64 {
            for i in 0..15u64 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let at = t0 + SLOT * s as u32 + Duration::from_secs(i);
                let latency = Duration::from_micros(1_000 + rng % 59_000);
                sparse.record(latency, at);
                // Recorded in one slot that stays dense: the reference.
                dense.record(latency, t0 + SLOT * 19);
            }
        }
        let now = t0 + SLOT * 19;
        let (q_sparse, q_dense) = (
            sparse.quantiles(Duration::from_secs(300), now),
            dense.quantiles(Duration::from_secs(300), now),
        );
        assert!(q_sparse.is_some());
        assert_eq!(q_sparse, q_dense);
        let one_dense = dense.held_bytes();
        assert!(one_dense > 8_000, "{one_dense}");
        assert!(
            sparse.held_bytes() <= 20 * 16 * 8,
            "{} bytes for 20 slots of 15, {one_dense} for one dense slot",
            sparse.held_bytes()
        );
        // A busy slot stays dense (pairs would be larger); the next one
        // starts with its one value.
        let mut busy = LatencyWindow::new(t0, Duration::from_secs(5));
        for us in 1..5_000_000u64 {
            if us % 97 == 0 {
                busy.record(Duration::from_micros(us), t0);
            }
        }
        let before = busy.held_bytes();
        assert_eq!(before, one_dense);
        busy.record(Duration::from_millis(1), t0 + SLOT);
        assert!(busy.held_bytes() <= before + 4 * 8, "{}", busy.held_bytes());
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
