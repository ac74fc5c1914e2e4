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
}
