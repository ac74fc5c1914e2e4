//! SLO arithmetic: error-ratio windows, burn rates, the
//! multi-window multi-burn-rate alert tiers and the remaining error budget.
//!
//! Pure and synchronous with time passed in. The same constants render the
//! Prometheus rules (`rules`), so both evaluate one definition.
//!
//! Counts live in two rings of buckets: minute buckets covering the longest
//! alert window (3d), and hour buckets covering the SLO period. Each window
//! keeps running sums, updated when an event lands and when a bucket leaves
//! the window, so evaluating every window is O(windows) per tick whatever
//! their length — no rescans of days of buckets.
//!
//! Over 600 lines: the arithmetic takes about 500, and its unit tests stay
//! next to it.

use std::time::Duration;

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// The error-ratio windows, as (label, length).
pub const WINDOWS: [(&str, Duration); 7] = [
    ("5m", Duration::from_secs(5 * MINUTE)),
    ("30m", Duration::from_secs(30 * MINUTE)),
    ("1h", Duration::from_secs(HOUR)),
    ("2h", Duration::from_secs(2 * HOUR)),
    ("6h", Duration::from_secs(6 * HOUR)),
    ("1d", Duration::from_secs(DAY)),
    ("3d", Duration::from_secs(3 * DAY)),
];

/// Alert severity of a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    pub const ALL: [Severity; 2] = [Severity::Page, Severity::Ticket];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// One multi-window, multi-burn-rate alert tier (Google SRE Workbook ch. 5).
#[derive(Debug, Clone, PartialEq)]
pub struct BurnTier {
    pub severity: Severity,
    /// Index into [`WINDOWS`] of the long window.
    pub long: usize,
    /// Index into [`WINDOWS`] of the short window.
    pub short: usize,
    /// Burn rate at or above which the tier fires (both windows must reach it).
    pub factor: f64,
}

impl BurnTier {
    pub fn long_label(&self) -> &'static str {
        WINDOWS[self.long].0
    }

    pub fn short_label(&self) -> &'static str {
        WINDOWS[self.short].0
    }
}

/// (severity, long window index, short window index, fraction of the error
/// budget the tier lets burn within its long window).
const TIERS: [(Severity, usize, usize, f64); 4] = [
    (Severity::Page, 2, 0, 0.02),   // 1h & 5m: 2% of the budget
    (Severity::Page, 4, 1, 0.05),   // 6h & 30m: 5%
    (Severity::Ticket, 5, 3, 0.10), // 1d & 2h: 10%
    (Severity::Ticket, 6, 4, 0.10), // 3d & 6h: 10%
];

/// The alert tiers for an SLO `period`: factor = budget fraction × period /
/// long window, which gives 14.4, 6, 3 and 1 for 30 days. Scaling keeps the
/// budget consumed before alerting the same whatever the period.
pub fn burn_tiers(period: Duration) -> Vec<BurnTier> {
    TIERS
        .iter()
        .map(|&(severity, long, short, budget)| BurnTier {
            severity,
            long,
            short,
            factor: budget * (period.as_secs_f64() / WINDOWS[long].1.as_secs_f64()),
        })
        .collect()
}

/// The error ratio at which a tier fires: factor × (1 − objective), rounded
/// to 12 significant digits so that the Prometheus rules, which print this
/// number, and the evaluator compare against the very same value (and a
/// ratio of exactly 14.4 × 0.1% is not lost to floating-point noise).
pub fn error_threshold(factor: f64, objective: f64) -> f64 {
    let v = factor * (1.0 - objective);
    format!("{v:.11e}").parse().unwrap_or(v)
}

/// Good/total counts of one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub good: u64,
    pub total: u64,
}

impl Counts {
    /// Bad/total; `None` without events.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.total > 0)
            .then(|| (self.total - self.good.min(self.total)) as f64 / self.total as f64)
    }

    fn add(&mut self, c: Counts) {
        self.good += c.good;
        self.total += c.total;
    }

    fn sub(&mut self, c: Counts) {
        self.good = self.good.saturating_sub(c.good);
        self.total = self.total.saturating_sub(c.total);
    }
}

/// A ring of fixed-width buckets with running sums over several windows
/// (each a whole number of buckets ending at the current one).
#[derive(Debug, Clone)]
struct Ring {
    width: u64,
    buckets: Vec<Counts>,
    /// Bucket number (time / width) of the newest bucket.
    head: u64,
    /// Window lengths in buckets, and their running sums.
    windows: Vec<(u64, Counts)>,
}

impl Ring {
    fn new(width: u64, windows: &[u64]) -> Ring {
        let len = windows.iter().copied().max().unwrap_or(1).max(1);
        Ring {
            width,
            buckets: vec![Counts::default(); len as usize],
            head: 0,
            windows: windows
                .iter()
                .map(|w| (*w.max(&1), Counts::default()))
                .collect(),
        }
    }

    fn slot(&self, bucket: u64) -> usize {
        (bucket % self.buckets.len() as u64) as usize
    }

    /// Moves the head to the bucket holding `t` (seconds), subtracting the
    /// buckets that leave each window. Earlier times stay in the head bucket.
    fn advance(&mut self, t: u64) {
        let target = t / self.width;
        if target <= self.head {
            return;
        }
        let len = self.buckets.len() as u64;
        if target - self.head >= len {
            // Everything stored has left every window.
            self.buckets.iter_mut().for_each(|b| *b = Counts::default());
            self.windows
                .iter_mut()
                .for_each(|w| w.1 = Counts::default());
            self.head = target;
            return;
        }
        for b in self.head + 1..=target {
            for (n, sum) in &mut self.windows {
                // Window (b-1-n, b-1] becomes (b-n, b]: bucket b-n leaves.
                // It is at most `len` behind, so still stored.
                if let Some(leaving) = b.checked_sub(*n) {
                    sum.sub(self.buckets[(leaving % len) as usize]);
                }
            }
            let slot = (b % len) as usize;
            self.buckets[slot] = Counts::default();
        }
        self.head = target;
    }

    fn add(&mut self, c: Counts) {
        let slot = self.slot(self.head);
        self.buckets[slot].add(c);
        for (_, sum) in &mut self.windows {
            sum.add(c);
        }
    }

    /// The stored buckets, oldest first, as (first bucket number, goods,
    /// totals); empty when nothing was ever recorded.
    fn snapshot(&self) -> RingSnapshot {
        let len = self.buckets.len() as u64;
        let first = (self.head + 1).saturating_sub(len);
        let mut good = Vec::with_capacity(len as usize);
        let mut total = Vec::with_capacity(len as usize);
        for b in first..=self.head {
            let c = self.buckets[self.slot(b)];
            good.push(c.good);
            total.push(c.total);
        }
        // Leading empty buckets carry nothing.
        let skip = total.iter().take_while(|t| **t == 0).count();
        if skip == total.len() {
            return RingSnapshot::default();
        }
        RingSnapshot {
            first: first + skip as u64,
            good: good.split_off(skip),
            total: total.split_off(skip),
        }
    }

    /// Replays `s` in bucket order: the same sums as if the events had been
    /// recorded live. Buckets the ring cannot hold any more age out as they
    /// would have.
    fn restore(&mut self, s: &RingSnapshot) {
        for (i, (good, total)) in s.good.iter().zip(&s.total).enumerate() {
            self.advance(s.first.saturating_add(i as u64).saturating_mul(self.width));
            if *total > 0 {
                self.add(Counts {
                    good: (*good).min(*total),
                    total: *total,
                });
            }
        }
    }
}

/// The most buckets two overlaid rings may span: far more than either ring
/// holds, far less than a damaged file could ask for.
const MAX_OVERLAY_BUCKETS: u64 = 1 << 20;

/// A ring's buckets for the state file: consecutive buckets from `first`
/// (bucket number, i.e. Unix time / bucket width), goods and totals as two
/// columns (compact in JSON: small numbers, no keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RingSnapshot {
    pub first: u64,
    pub good: Vec<u64>,
    pub total: Vec<u64>,
}

impl RingSnapshot {
    /// One past the newest bucket.
    fn end(&self) -> u64 {
        self.first.saturating_add(self.total.len() as u64)
    }

    /// Only the buckets from bucket `from` on.
    pub fn since(&self, from: u64) -> RingSnapshot {
        let skip = from.saturating_sub(self.first).min(self.total.len() as u64) as usize;
        RingSnapshot {
            first: self.first.max(from).min(self.end()),
            good: self.good[skip..].to_vec(),
            total: self.total[skip..].to_vec(),
        }
    }

    /// These buckets with `newer`'s laid over them (a bucket in both takes
    /// `newer`'s value: it is the same bucket, counted for longer).
    pub fn overlay(&self, newer: &RingSnapshot) -> RingSnapshot {
        if newer.total.is_empty() {
            return self.clone();
        }
        if self.total.is_empty() {
            return newer.clone();
        }
        let first = self.first.min(newer.first);
        let end = self.end().max(newer.end());
        // Two rings far apart (a damaged file): the newer alone, rather
        // than the gap between them allocated.
        if end - first > MAX_OVERLAY_BUCKETS {
            return newer.clone();
        }
        let mut out = RingSnapshot {
            first,
            good: vec![0; (end - first) as usize],
            total: vec![0; (end - first) as usize],
        };
        for src in [self, newer] {
            for (i, (g, t)) in src.good.iter().zip(&src.total).enumerate() {
                let at = (src.first - first) as usize + i;
                out.good[at] = *g;
                out.total[at] = *t;
            }
        }
        out
    }
}

/// Everything [`SloWindows`] needs to go on after a restart: both rings
/// and each tier's alert state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowsSnapshot {
    pub minutes: RingSnapshot,
    pub hours: RingSnapshot,
    /// Per tier, in [`burn_tiers`] order: firing, and since when (Unix s).
    pub tiers: Vec<(bool, Option<u64>)>,
}

impl WindowsSnapshot {
    /// Only what changed at or after `t` (Unix seconds): the buckets from
    /// the ones holding `t` on, and the tier states.
    pub fn since(&self, t: u64) -> WindowsSnapshot {
        WindowsSnapshot {
            minutes: self.minutes.since(t / MINUTE),
            hours: self.hours.since(t / HOUR),
            tiers: self.tiers.clone(),
        }
    }

    /// This snapshot completed by `newer`, taken later of the same SLO
    /// (typically with [`WindowsSnapshot::since`]).
    pub fn overlay(&self, newer: &WindowsSnapshot) -> WindowsSnapshot {
        WindowsSnapshot {
            minutes: self.minutes.overlay(&newer.minutes),
            hours: self.hours.overlay(&newer.hours),
            tiers: newer.tiers.clone(),
        }
    }
}

/// The state of one tier.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierState {
    pub firing: bool,
    /// Unix seconds when it last started firing (or resolved).
    pub since: Option<u64>,
}

/// Everything the evaluator knows about one SLO at one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Per window (in [`WINDOWS`] order): counts, error ratio, burn rate.
    pub windows: Vec<(Counts, Option<f64>, Option<f64>)>,
    pub budget_remaining: f64,
    pub tiers: Vec<(BurnTier, TierState)>,
}

/// One SLO's windows, budget and alert state.
#[derive(Debug, Clone)]
pub struct SloWindows {
    objective: f64,
    min_events: u64,
    tiers: Vec<BurnTier>,
    minutes: Ring,
    hours: Ring,
    state: Vec<TierState>,
}

impl SloWindows {
    pub fn new(objective: f64, period: Duration, min_events: u64) -> SloWindows {
        let minute_windows: Vec<u64> = WINDOWS.iter().map(|w| w.1.as_secs() / MINUTE).collect();
        let period_hours = period.as_secs().div_ceil(HOUR).max(1);
        let tiers = burn_tiers(period);
        let state = vec![
            TierState {
                firing: false,
                since: None
            };
            tiers.len()
        ];
        SloWindows {
            objective,
            min_events,
            tiers,
            minutes: Ring::new(MINUTE, &minute_windows),
            hours: Ring::new(HOUR, &[period_hours]),
            state,
        }
    }

    /// Adds `good` and `bad` events observed at `t` (Unix seconds).
    pub fn record(&mut self, t: u64, good: u64, bad: u64) {
        self.minutes.advance(t);
        self.hours.advance(t);
        let c = Counts {
            good,
            total: good + bad,
        };
        self.minutes.add(c);
        self.hours.add(c);
    }

    /// Counts over window `i` of [`WINDOWS`].
    pub fn counts(&self, i: usize) -> Counts {
        self.minutes.windows.get(i).map(|w| w.1).unwrap_or_default()
    }

    /// Burn rate over window `i`: error ratio / (1 − objective).
    pub fn burn_rate(&self, i: usize) -> Option<f64> {
        self.counts(i)
            .error_ratio()
            .map(|r| r / (1.0 - self.objective))
    }

    /// Share of the period's error budget left: 1 − (bad / allowed bad);
    /// negative once overspent, 1 without events.
    pub fn budget_remaining(&self) -> f64 {
        let c = self.hours.windows[0].1;
        match c.error_ratio() {
            Some(r) => 1.0 - r / (1.0 - self.objective),
            None => 1.0,
        }
    }

    /// Whether window `i` may take part in an alert: enough events, and an
    /// error ratio at or above the tier's threshold.
    fn burning(&self, i: usize, factor: f64) -> bool {
        let c = self.counts(i);
        c.total >= self.min_events.max(1)
            && c.error_ratio()
                .is_some_and(|r| r >= error_threshold(factor, self.objective))
    }

    /// Advances to `t` (Unix seconds) and re-evaluates every tier.
    pub fn evaluate(&mut self, t: u64) -> Evaluation {
        self.minutes.advance(t);
        self.hours.advance(t);
        for (k, tier) in self.tiers.iter().enumerate() {
            let firing =
                self.burning(tier.long, tier.factor) && self.burning(tier.short, tier.factor);
            let s = &mut self.state[k];
            if firing != s.firing {
                *s = TierState {
                    firing,
                    since: Some(t),
                };
            }
        }
        Evaluation {
            windows: (0..WINDOWS.len())
                .map(|i| {
                    (
                        self.counts(i),
                        self.counts(i).error_ratio(),
                        self.burn_rate(i),
                    )
                })
                .collect(),
            budget_remaining: self.budget_remaining(),
            tiers: self
                .tiers
                .iter()
                .cloned()
                .zip(self.state.iter().copied())
                .collect(),
        }
    }

    /// The rings and tier states, to be saved.
    pub fn snapshot(&self) -> WindowsSnapshot {
        WindowsSnapshot {
            minutes: self.minutes.snapshot(),
            hours: self.hours.snapshot(),
            tiers: self.state.iter().map(|t| (t.firing, t.since)).collect(),
        }
    }

    /// Windows restored from `s`, saved by an earlier run of the same SLO
    /// (same objective and period), at `now` (Unix seconds): the time in
    /// between counts as no events. A tier firing at the save keeps its
    /// `since` (its alert stays one alert); the next
    /// [`SloWindows::evaluate`] resolves it if the windows no longer burn.
    ///
    /// Saved data newer than `now` means the wall clock is behind the one
    /// that saved it (stepped back across the restart): the data is moved
    /// back by the difference, keeping its age, so that new events are not
    /// all heaped into one future bucket. Returns that shift in seconds.
    pub fn restore(&mut self, s: &WindowsSnapshot, now: u64) -> u64 {
        let newest = |r: &RingSnapshot, width: u64| {
            (!r.total.is_empty()).then(|| (r.end() - 1).saturating_mul(width))
        };
        let newest = newest(&s.minutes, MINUTE)
            .into_iter()
            .chain(newest(&s.hours, HOUR))
            .chain(s.tiers.iter().filter_map(|t| t.1))
            .max()
            .unwrap_or(0);
        let shift = newest.saturating_sub(now);
        let moved = |r: &RingSnapshot, width: u64| RingSnapshot {
            first: r.first.saturating_sub(shift.div_ceil(width)),
            good: r.good.clone(),
            total: r.total.clone(),
        };
        self.minutes.restore(&moved(&s.minutes, MINUTE));
        self.hours.restore(&moved(&s.hours, HOUR));
        if s.tiers.len() == self.state.len() {
            for (state, (firing, since)) in self.state.iter_mut().zip(&s.tiers) {
                *state = TierState {
                    firing: *firing,
                    since: since.map(|t| t.saturating_sub(shift)),
                };
            }
        }
        shift
    }

    /// Whether any tier of `severity` fires (as of the last evaluation).
    pub fn firing(&self, severity: Severity) -> bool {
        self.tiers
            .iter()
            .zip(&self.state)
            .any(|(t, s)| t.severity == severity && s.firing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000 - 1_700_000_000 % DAY;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn tiers_scale_with_the_period() {
        let f30: Vec<f64> = burn_tiers(Duration::from_secs(30 * DAY))
            .iter()
            .map(|t| t.factor)
            .collect();
        assert!(
            close(f30[0], 14.4) && close(f30[1], 6.0) && close(f30[2], 3.0) && close(f30[3], 1.0),
            "{f30:?}"
        );
        let f7: Vec<f64> = burn_tiers(Duration::from_secs(7 * DAY))
            .iter()
            .map(|t| t.factor)
            .collect();
        assert!(
            close(f7[0], 3.36) && close(f7[1], 1.4) && close(f7[2], 0.7),
            "{f7:?}"
        );
        assert!(close(f7[3], 0.1 * 7.0 / 3.0), "{f7:?}");
        let t = &burn_tiers(Duration::from_secs(30 * DAY))[1];
        assert_eq!(
            (t.long_label(), t.short_label(), t.severity),
            ("6h", "30m", Severity::Page)
        );
    }

    #[test]
    fn window_sums_slide_and_roll_over() {
        let mut w = SloWindows::new(0.99, Duration::from_secs(30 * DAY), 1);
        // One bad event a minute for 10 minutes.
        for m in 0..10 {
            w.record(T0 + m * MINUTE, 0, 1);
        }
        w.evaluate(T0 + 9 * MINUTE);
        assert_eq!(
            w.counts(0).total,
            5,
            "5m holds the last five minute buckets"
        );
        assert_eq!(w.counts(1).total, 10);
        // An hour later only the long windows remember them: at minute 68
        // the 1h window is minutes 9..=68.
        w.evaluate(T0 + 68 * MINUTE);
        assert_eq!(w.counts(0).total, 0);
        assert_eq!(
            w.counts(2).total,
            1,
            "1h: only the last minute bucket of the ten is left"
        );
        assert_eq!(w.counts(3).total, 10);
        // Four days later even 3d has forgotten; the 30d budget has not.
        w.evaluate(T0 + 4 * DAY);
        assert_eq!(w.counts(6).total, 0);
        assert!(
            w.budget_remaining() < 0.0,
            "10 bad of 10 overspends a 1% budget"
        );
        // A jump past the whole ring, then new data: sums start clean.
        w.record(T0 + 10 * DAY, 5, 0);
        assert_eq!(w.counts(0), Counts { good: 5, total: 5 });
        assert_eq!(w.counts(6), Counts { good: 5, total: 5 });
    }

    #[test]
    fn burn_rate_and_budget() {
        let mut w = SloWindows::new(0.999, Duration::from_secs(30 * DAY), 1);
        w.record(T0, 990, 10);
        let e = w.evaluate(T0);
        assert!(close(e.windows[0].1.unwrap_or(0.0), 0.01));
        assert!(close(e.windows[0].2.unwrap_or(0.0), 10.0));
        assert!(close(e.budget_remaining, -9.0));
        assert!(close(
            SloWindows::new(0.999, Duration::from_secs(DAY), 1).budget_remaining(),
            1.0
        ));
    }

    /// Feeds `minutes` of traffic at `rate` events/min with the given error
    /// ratio and evaluates at the end.
    fn run(w: &mut SloWindows, start: u64, minutes: u64, rate: u64, errors: f64) -> u64 {
        let bad = (rate as f64 * errors).round() as u64;
        for m in 0..minutes {
            w.record(start + m * MINUTE, rate - bad, bad);
        }
        let end = start + minutes * MINUTE - 1;
        w.evaluate(end);
        end
    }

    #[test]
    fn each_tier_fires_at_its_threshold_and_not_just_below() {
        let objective = 0.999;
        for (k, tier) in burn_tiers(Duration::from_secs(30 * DAY)).iter().enumerate() {
            let long_minutes = WINDOWS[tier.long].1.as_secs() / MINUTE;
            let at = tier.factor * (1.0 - objective);
            // 100,000 events a minute makes the error ratio exact enough.
            let mut w = SloWindows::new(objective, Duration::from_secs(30 * DAY), 1);
            run(&mut w, T0, long_minutes, 100_000, at);
            assert!(w.state[k].firing, "tier {k} fires at {}x", tier.factor);
            let mut w = SloWindows::new(objective, Duration::from_secs(30 * DAY), 1);
            run(&mut w, T0, long_minutes, 100_000, at * 0.99);
            assert!(
                !w.state[k].firing,
                "tier {k} silent just below {}x",
                tier.factor
            );
        }
    }

    #[test]
    fn both_windows_must_burn() {
        let mut w = SloWindows::new(0.999, Duration::from_secs(30 * DAY), 1);
        // An hour at 20x, then 5 clean minutes: the 1h window still burns,
        // the 5m window does not, so the fast page resolves.
        let end = run(&mut w, T0, 60, 1000, 0.02);
        assert!(w.firing(Severity::Page));
        assert_eq!(w.state[0].since, Some(end));
        run(&mut w, end + 1, 5, 1000, 0.0);
        assert!(!w.state[0].firing);
    }

    #[test]
    fn too_few_events_do_not_alert() {
        let mut w = SloWindows::new(0.999, Duration::from_secs(30 * DAY), 10);
        // Everything fails, but only nine events in the 5m window.
        for m in 0..60 {
            w.record(T0 + m * MINUTE, 0, u64::from(m >= 51));
        }
        w.evaluate(T0 + 59 * MINUTE);
        assert_eq!(w.counts(0).total, 5);
        assert!(!w.firing(Severity::Page));
        let mut w = SloWindows::new(0.999, Duration::from_secs(30 * DAY), 5);
        for m in 0..60 {
            w.record(T0 + m * MINUTE, 0, u64::from(m >= 51));
        }
        w.evaluate(T0 + 59 * MINUTE);
        assert!(
            w.firing(Severity::Page),
            "five events are enough when min_events is 5"
        );
    }

    #[test]
    fn a_restored_snapshot_continues_every_window_the_budget_and_the_alerts() {
        let period = Duration::from_secs(30 * DAY);
        let mut live = SloWindows::new(0.999, period, 10);
        // Two days of 0.1% errors, then an hour at 20x: the fast page fires.
        let mut t = run(&mut live, T0, 2 * 24 * 60, 1000, 0.001);
        t = run(&mut live, t + 1, 60, 1000, 0.02);
        assert!(live.firing(Severity::Page));
        let saved = live.snapshot();
        let json = serde_json::to_string(&saved).expect("serializes");
        let back: WindowsSnapshot = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, saved);

        let mut restored = SloWindows::new(0.999, period, 10);
        assert_eq!(restored.restore(&back, t), 0);
        // Same instant: same evaluation, same alert since-times.
        assert_eq!(restored.evaluate(t), live.evaluate(t));
        // Ten minutes of downtime count as no events, in both.
        let later = t + 10 * MINUTE;
        let (a, b) = (restored.evaluate(later), live.evaluate(later));
        assert_eq!(a, b);
        assert!(a.budget_remaining < 1.0);
        // 5m is empty now: the fast page resolved, at the first evaluation.
        assert_eq!(
            a.tiers[0].1,
            TierState {
                firing: false,
                since: Some(later)
            }
        );
    }

    /// Damaged snapshots (rings far apart, bucket numbers near the end of
    /// the range, columns of different lengths) neither allocate the gap
    /// nor overflow.
    #[test]
    fn damaged_snapshots_are_bounded() {
        let ring = |first, n: usize| RingSnapshot {
            first,
            good: vec![1; n],
            total: vec![2; n + 1],
        };
        let far = ring(u64::MAX - 1, 1);
        assert_eq!(ring(0, 2).overlay(&far), far);
        let s = WindowsSnapshot {
            minutes: far.clone(),
            hours: ring(u64::MAX / 2, 3),
            tiers: vec![(true, Some(u64::MAX))],
        };
        let mut r = SloWindows::new(0.99, Duration::from_secs(7 * DAY), 10);
        r.restore(&s, T0);
        r.restore(&s.overlay(&s), T0);
        let _ = r.evaluate(T0);
    }

    #[test]
    fn a_snapshot_of_nothing_is_empty_and_restores_to_nothing() {
        let w = SloWindows::new(0.99, Duration::from_secs(7 * DAY), 10);
        let s = w.snapshot();
        assert!(s.minutes.total.is_empty() && s.hours.total.is_empty());
        let mut r = SloWindows::new(0.99, Duration::from_secs(7 * DAY), 10);
        r.restore(&s, T0);
        assert_eq!(r.evaluate(T0).budget_remaining, 1.0);
    }

    #[test]
    fn a_snapshot_older_than_every_window_restores_as_empty_windows() {
        let period = Duration::from_secs(30 * DAY);
        let mut w = SloWindows::new(0.999, period, 10);
        let t = run(&mut w, T0, 60, 1000, 0.5);
        let mut r = SloWindows::new(0.999, period, 10);
        r.restore(&w.snapshot(), t + 4 * DAY);
        // Four days later the minute windows are empty; the period still
        // holds the hour of errors.
        let e = r.evaluate(t + 4 * DAY);
        assert!(e.windows.iter().all(|(c, _, _)| c.total == 0));
        assert!(e.budget_remaining < 0.0);
        assert!(e.tiers.iter().all(|(_, s)| !s.firing));
    }

    #[test]
    fn a_wall_clock_stepped_back_across_a_restart_shifts_the_restored_data() {
        let period = Duration::from_secs(30 * DAY);
        let mut w = SloWindows::new(0.999, period, 10);
        let t = run(&mut w, T0, 120, 1000, 0.02);
        assert!(w.firing(Severity::Page));
        let mut r = SloWindows::new(0.999, period, 10);
        // The new run's clock reads an hour earlier than the saver's.
        let now = t - HOUR;
        assert_eq!(r.restore(&w.snapshot(), now), HOUR);
        let e = r.evaluate(now);
        assert_eq!(
            e.windows,
            w.evaluate(t).windows,
            "the same windows, an hour earlier"
        );
        assert!(e.tiers[0].1.firing);
        assert!(e.tiers[0].1.since.is_some_and(|s| s <= now));
        // New events land in the present minute, not in one an hour ahead:
        // five clean minutes later the 5m window holds only them.
        for m in 1..=5 {
            r.record(now + m * MINUTE, 1000, 0);
        }
        let e = r.evaluate(now + 5 * MINUTE);
        assert_eq!(
            e.windows[0].0,
            Counts {
                good: 5000,
                total: 5000
            }
        );
        assert!(!e.tiers[0].1.firing, "the fast page resolves");
    }

    #[test]
    fn a_full_snapshot_overlaid_with_a_later_partial_one_equals_a_later_full_one() {
        let period = Duration::from_secs(30 * DAY);
        let mut w = SloWindows::new(0.999, period, 10);
        let t = run(&mut w, T0, 3 * 60, 1000, 0.001);
        let full = w.snapshot();
        // 100 more minutes (a bucket that was current at `t` grows too).
        w.record(t, 7, 1);
        let t2 = run(&mut w, t + 1, 100, 1000, 0.02);
        let later = w.snapshot();
        let partial = later.since(t);
        assert!(partial.minutes.total.len() <= 101 && partial.hours.total.len() <= 3);
        assert_eq!(full.overlay(&partial), later);
        let mut r = SloWindows::new(0.999, period, 10);
        r.restore(&full.overlay(&partial), t2);
        assert_eq!(r.evaluate(t2), w.evaluate(t2));
    }
}
