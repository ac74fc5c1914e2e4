//! The report from each SLO's event counts per bucket (pure): attainment,
//! budget spent, the worst buckets, the chart, the incidents as given.

use std::time::Duration;

use serde::Serialize;

use crate::util::format::{duration as format_duration, rfc3339};

pub(super) const MINUTE: u64 = 60;
pub(super) const HOUR: u64 = 3_600;
pub(super) const DAY: u64 = 86_400;

/// How many of the worst buckets the report lists.
const WORST: usize = 5;

/// The span a report covers and how finely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Unix seconds, `to - length`.
    pub from: u64,
    pub to: u64,
    /// The counts' bucket (seconds): an hour, a minute for periods under a
    /// day.
    pub bucket: u64,
    /// The chart's step: a day, an hour for periods under two days, a
    /// minute under two hours.
    pub chart_step: u64,
}

impl Period {
    /// The `length` up to `to` (now: the report is current to the
    /// second; a bucket of slaprobe's own windows that began before
    /// `from` is left out, one that is still counting is in).
    pub fn new(length: Duration, to: u64) -> Period {
        let length = length.as_secs().max(MINUTE);
        let bucket = if length >= DAY { HOUR } else { MINUTE };
        let chart_step = if length >= 2 * DAY {
            DAY
        } else if length >= 2 * HOUR {
            HOUR
        } else {
            MINUTE
        };
        Period {
            from: to.saturating_sub(length),
            to,
            bucket,
            chart_step,
        }
    }

    /// `hour`, `minute`.
    fn bucket_name(&self) -> &'static str {
        if self.bucket == HOUR {
            "hour"
        } else {
            "minute"
        }
    }
}

/// Good and bad events in the bucket that starts at `start`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub start: u64,
    pub good: f64,
    pub bad: f64,
}

/// A firing interval of one tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// `page 1h/5m` (severity, long and short window), or the severity
    /// alone where only that is known.
    pub tier: String,
    pub start: String,
    /// `None`: still firing at the end of the period.
    pub end: Option<String>,
    pub duration: String,
    #[serde(skip)]
    pub start_unix: u64,
}

impl Incident {
    pub fn new(tier: String, start: u64, end: u64, ongoing: bool) -> Incident {
        Incident {
            tier,
            start: rfc3339(start),
            end: (!ongoing).then(|| rfc3339(end)),
            duration: format_duration(Duration::from_secs(end.saturating_sub(start))),
            start_unix: start,
        }
    }
}

/// One SLO's counts, from any source.
#[derive(Debug, Clone, PartialEq)]
pub struct SloInput {
    pub slo: String,
    pub probe: String,
    pub output: String,
    pub sli: String,
    pub objective: f64,
    /// Buckets of the period with events (others had none).
    pub buckets: Vec<Bucket>,
    /// `None`: the source does not know them.
    pub incidents: Option<Vec<Incident>>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub period: String,
    /// Where the counts come from.
    pub source: String,
    pub generated_at: String,
    pub slos: Vec<SloReport>,
}

/// One SLO over the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloReport {
    pub slo: String,
    pub probe: String,
    pub output: String,
    pub sli: String,
    pub objective: f64,
    pub events: f64,
    pub bad: f64,
    /// good / events; `None` without events.
    pub attainment: Option<f64>,
    pub met: Option<bool>,
    /// bad / (events × (1 − objective)): 1 is the whole budget.
    pub budget_spent: Option<f64>,
    /// `hour` or `minute`: what [`SloReport::worst`] lists.
    pub worst_unit: &'static str,
    /// The buckets with the highest error ratio (bad events only).
    pub worst: Vec<Row>,
    /// Per chart step (a day, usually), oldest first, every step of the
    /// period.
    pub chart: Vec<Row>,
    pub incidents: Option<Vec<Incident>>,
}

/// Counts over one span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub start: String,
    pub events: f64,
    pub bad: f64,
    pub attainment: Option<f64>,
    #[serde(skip)]
    pub start_unix: u64,
}

impl Row {
    fn new(start: u64, good: f64, bad: f64) -> Row {
        let events = good + bad;
        Row {
            start: rfc3339(start),
            events,
            bad,
            attainment: (events > 0.0).then(|| good / events),
            start_unix: start,
        }
    }
}

/// The report of `inputs` over `period`.
pub fn build(period: &Period, inputs: Vec<SloInput>, source: &str, now: u64) -> Report {
    Report {
        from: rfc3339(period.from),
        to: rfc3339(period.to),
        period: format_duration(Duration::from_secs(period.to - period.from)),
        source: source.to_string(),
        generated_at: rfc3339(now),
        slos: inputs.into_iter().map(|i| slo_report(period, i)).collect(),
    }
}

fn slo_report(period: &Period, input: SloInput) -> SloReport {
    let inside: Vec<&Bucket> = input
        .buckets
        .iter()
        .filter(|b| b.start >= period.from && b.start < period.to)
        .filter(|b| b.good.is_finite() && b.bad.is_finite())
        .collect();
    let good: f64 = inside.iter().map(|b| b.good.max(0.0)).sum();
    let bad: f64 = inside.iter().map(|b| b.bad.max(0.0)).sum();
    let events = good + bad;
    let attainment = (events > 0.0).then(|| good / events);
    let mut worst: Vec<Row> = inside
        .iter()
        .filter(|b| b.bad > 0.0)
        .map(|b| Row::new(b.start, b.good.max(0.0), b.bad))
        .collect();
    worst.sort_by(|a, b| {
        a.attainment
            .partial_cmp(&b.attainment)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.bad.total_cmp(&a.bad))
            .then(a.start_unix.cmp(&b.start_unix))
    });
    worst.truncate(WORST);
    let step = period.chart_step;
    let first = period.from / step * step;
    let chart = (first..period.to)
        .step_by(step as usize)
        .map(|s| {
            let (g, b) = inside
                .iter()
                .filter(|x| x.start >= s && x.start < s + step)
                .fold((0.0, 0.0), |(g, b), x| {
                    (g + x.good.max(0.0), b + x.bad.max(0.0))
                });
            Row::new(s, g, b)
        })
        .collect();
    let mut incidents = input.incidents;
    if let Some(i) = &mut incidents {
        i.sort_by_key(|x| x.start_unix);
    }
    SloReport {
        slo: input.slo,
        probe: input.probe,
        output: input.output,
        sli: input.sli,
        objective: input.objective,
        events,
        bad,
        attainment,
        met: attainment.map(|a| a >= input.objective),
        budget_spent: (events > 0.0).then(|| bad / (events * (1.0 - input.objective))),
        worst_unit: period.bucket_name(),
        worst,
        chart,
        incidents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(buckets: Vec<Bucket>) -> SloInput {
        SloInput {
            slo: "p:o:delivery".into(),
            probe: "p".into(),
            output: "o".into(),
            sli: "delivery".into(),
            objective: 0.99,
            buckets,
            incidents: None,
        }
    }

    #[test]
    fn a_period_of_days_counts_hours_and_charts_days() {
        let p = Period::new(Duration::from_secs(30 * DAY), 100 * DAY + 1_234);
        assert_eq!((p.bucket, p.chart_step), (HOUR, DAY));
        assert_eq!((p.from, p.to), (70 * DAY + 1_234, 100 * DAY + 1_234));
        let p = Period::new(Duration::from_secs(600), 10_000);
        assert_eq!(
            (p.bucket, p.chart_step, p.to - p.from),
            (MINUTE, MINUTE, 600)
        );
        let p = Period::new(Duration::from_secs(DAY), 10 * DAY);
        assert_eq!((p.bucket, p.chart_step), (HOUR, HOUR));
    }

    /// 30 days of 1,000 events an hour, 100 bad in one hour of day 3 and
    /// 20 in one of day 10: 99.9983% against 99%, 1.67% of the budget,
    /// the two hours worst first, day 3 the worst day.
    #[test]
    fn attainment_budget_worst_hours_and_days_come_from_the_counts() {
        let p = Period::new(Duration::from_secs(30 * DAY), 30 * DAY);
        let mut buckets: Vec<Bucket> = (0..30 * 24)
            .map(|h| Bucket {
                start: h * HOUR,
                good: 1_000.0,
                bad: 0.0,
            })
            .collect();
        buckets[3 * 24 + 5] = Bucket {
            start: (3 * 24 + 5) * HOUR,
            good: 900.0,
            bad: 100.0,
        };
        buckets[10 * 24] = Bucket {
            start: 10 * 24 * HOUR,
            good: 980.0,
            bad: 20.0,
        };
        // Outside the period: not counted.
        buckets.push(Bucket {
            start: 30 * DAY,
            good: 0.0,
            bad: 1e9,
        });
        let r = build(&p, vec![input(buckets)], "test", 30 * DAY);
        let s = &r.slos[0];
        assert_eq!((s.events, s.bad), (720_000.0, 120.0));
        let a = s.attainment.unwrap();
        assert!((a - (1.0 - 120.0 / 720_000.0)).abs() < 1e-12);
        assert_eq!(s.met, Some(true));
        assert!((s.budget_spent.unwrap() - 120.0 / 7_200.0).abs() < 1e-12);
        assert_eq!(s.worst_unit, "hour");
        let worst: Vec<(u64, f64)> = s.worst.iter().map(|w| (w.start_unix, w.bad)).collect();
        assert_eq!(
            worst,
            [((3 * 24 + 5) * HOUR, 100.0), (10 * 24 * HOUR, 20.0)]
        );
        assert_eq!(s.chart.len(), 30);
        assert_eq!(s.chart[3].bad, 100.0);
        assert_eq!(s.chart[3].start, "1970-01-04T00:00:00Z");
        assert!((s.chart[3].attainment.unwrap() - (1.0 - 100.0 / 24_000.0)).abs() < 1e-12);
        assert_eq!(s.chart[4].attainment, Some(1.0));
        assert_eq!(r.period, "30d");
    }

    #[test]
    fn no_events_is_no_attainment_not_a_division_by_zero() {
        let p = Period::new(Duration::from_secs(2 * HOUR), 10 * DAY);
        let r = build(&p, vec![input(Vec::new())], "test", 10 * DAY);
        let s = &r.slos[0];
        assert_eq!((s.attainment, s.met, s.budget_spent), (None, None, None));
        assert_eq!(s.chart.len(), 2);
        assert!(s.chart.iter().all(|c| c.attainment.is_none()));
        assert!(s.worst.is_empty());
    }
}
