//! Which broker a heartbeat SLO's burn comes from: the `broker` annotation
//! of its burn-rate alerts names the broker that led the partitions of
//! more than half of the SLI's bad events over the tier's short window
//! (none when no broker did: the whole cluster, or no majority). Canaries
//! whose leader was not known (`unknown`) count in the whole but are never
//! named.
//!
//! One definition, evaluated twice: by the evaluator for the alerts it
//! pushes ([`BrokerHistory`]), and by Prometheus for the generated rules'
//! alerts ([`annotation_template`], a `query` in the annotation's
//! template). Both read the same `slaprobe_sli_events_total{broker}`
//! series, so the two alerts carry the same annotation while one broker
//! stands out (at the margin, scraped and in-process counts may differ by
//! a scrape interval).

use std::collections::VecDeque;
use std::time::Duration;

use super::WINDOWS;

/// The annotation's name.
pub const ANNOTATION: &str = "broker";

/// The broker label of canaries whose leader was not known.
const UNKNOWN: &str = "unknown";

/// The longest short window of any tier (6h): how far back the history
/// must reach.
const REACH: Duration = WINDOWS[4].1;

/// A heartbeat SLO's bad events per broker over time: a snapshot of the
/// counts at most once a minute, and only when they changed (a healthy SLO
/// holds one), back to [`REACH`].
#[derive(Debug, Default)]
pub struct BrokerHistory {
    /// (Unix seconds, bad events so far per broker label), oldest first.
    snapshots: VecDeque<(u64, Vec<(String, u64)>)>,
}

impl BrokerHistory {
    /// The bad events so far per broker at `now` (Unix seconds).
    pub fn record(&mut self, now: u64, bad: Vec<(String, u64)>) {
        let news = match self.snapshots.back() {
            None => true,
            Some((t, last)) => *last != bad && now / 60 > t / 60,
        };
        if news {
            self.snapshots.push_back((now, bad));
        }
        // Keep the newest snapshot at or before the reach: the base of the
        // longest window.
        let reach = now.saturating_sub(REACH.as_secs());
        while self.snapshots.get(1).is_some_and(|(t, _)| *t <= reach) {
            self.snapshots.pop_front();
        }
    }

    /// The broker with more than half of the bad events in the `window`
    /// before `now`, given the counts `current` now.
    pub fn culprit(&self, now: u64, window: Duration, current: &[(String, u64)]) -> Option<String> {
        let from = now.saturating_sub(window.as_secs());
        // The counts at the window's start: the last snapshot taken by
        // then, or the first one (a history shorter than the window).
        let base = self
            .snapshots
            .iter()
            .rev()
            .find(|(t, _)| *t <= from)
            .or(self.snapshots.front())
            .map_or(&[][..], |(_, b)| b.as_slice());
        let before = |broker: &str| {
            base.iter()
                .find(|(b, _)| b == broker)
                .map_or(0, |(_, n)| *n)
        };
        let deltas: Vec<(&str, u64)> = current
            .iter()
            .map(|(b, n)| (b.as_str(), n.saturating_sub(before(b))))
            .collect();
        let total: u64 = deltas.iter().map(|(_, n)| n).sum();
        deltas
            .iter()
            .find(|(b, n)| *b != UNKNOWN && *n > 0 && 2 * n > total)
            .map(|(b, _)| b.to_string())
    }
}

/// The annotation's template in a generated rule: a query of the SLI's bad
/// events per broker over `window` (`selector`: the SLO's labels, e.g.
/// `job="slaprobe",probe="hb",output="heartbeat",sli="latency"`, without
/// braces) on the alert's own instance, keeping the broker above half of
/// them.
pub fn annotation_template(selector: &str, window: &str) -> String {
    let bad = format!("slaprobe_sli_events_total{{{selector},instance=%q,outcome=\"bad\"");
    let query = format!(
        "sum by (broker) (increase({bad},broker!=\"{UNKNOWN}\"}}[{window}])) \
         > 0.5 * scalar(sum(increase({bad}}}[{window}])))"
    );
    format!("{{{{ range query (printf `{query}` $labels.instance $labels.instance) }}}}{{{{ .Labels.broker }}}}{{{{ end }}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(c: &[(&str, u64)]) -> Vec<(String, u64)> {
        c.iter().map(|(b, n)| (b.to_string(), *n)).collect()
    }

    const FIVE: Duration = Duration::from_secs(300);

    #[test]
    fn the_broker_with_most_of_the_window_s_bad_events_is_named() {
        let mut h = BrokerHistory::default();
        let t0 = 1_800_000_000;
        // An old burn on broker 1, then broker 2 goes bad.
        h.record(t0, counts(&[("1", 0), ("2", 0), ("3", 0)]));
        h.record(t0 + 60, counts(&[("1", 500), ("2", 0), ("3", 0)]));
        let now = t0 + 3600;
        let current = counts(&[("1", 500), ("2", 90), ("3", 10)]);
        h.record(now - 240, counts(&[("1", 500), ("2", 5), ("3", 1)]));
        h.record(now, current.clone());
        assert_eq!(h.culprit(now, FIVE, &current).as_deref(), Some("2"));
        // Over 6h broker 1's old burn dominates.
        assert_eq!(
            h.culprit(now, Duration::from_secs(6 * 3600), &current)
                .as_deref(),
            Some("1")
        );
    }

    #[test]
    fn no_broker_without_a_majority_without_errors_or_when_unknown() {
        let mut h = BrokerHistory::default();
        let t0 = 1_800_000_000;
        h.record(t0, counts(&[("1", 0), ("2", 0)]));
        let even = counts(&[("1", 50), ("2", 50)]);
        assert_eq!(h.culprit(t0 + 60, FIVE, &even), None, "half is not more");
        assert_eq!(h.culprit(t0 + 60, FIVE, &counts(&[("1", 0)])), None);
        let unknown = counts(&[("unknown", 90), ("1", 10)]);
        assert_eq!(h.culprit(t0 + 60, FIVE, &unknown), None);
        // A history shorter than the window counts from its first snapshot.
        assert_eq!(
            h.culprit(t0 + 60, FIVE, &counts(&[("1", 51), ("2", 49)]))
                .as_deref(),
            Some("1")
        );
    }

    #[test]
    fn the_history_is_bounded_and_quiet_slos_hold_one_snapshot() {
        let mut h = BrokerHistory::default();
        let t0 = 1_800_000_000;
        for i in 0..10_000u64 {
            h.record(t0 + i * 10, counts(&[("1", 0)]));
        }
        assert_eq!(h.snapshots.len(), 1, "unchanged counts add nothing");
        for i in 0..10_000u64 {
            h.record(t0 + i * 10, counts(&[("1", i)]));
        }
        // One a minute over 6h, and the base before it.
        assert!(h.snapshots.len() <= 362, "{}", h.snapshots.len());
    }

    #[test]
    fn the_template_queries_the_alert_s_instance() {
        let t = annotation_template(
            "job=\"slaprobe\",probe=\"hb\",output=\"heartbeat\",sli=\"latency\"",
            "5m",
        );
        assert_eq!(
            t,
            "{{ range query (printf `sum by (broker) (increase(slaprobe_sli_events_total{job=\"slaprobe\",probe=\"hb\",output=\"heartbeat\",sli=\"latency\",instance=%q,outcome=\"bad\",broker!=\"unknown\"}[5m])) > 0.5 * scalar(sum(increase(slaprobe_sli_events_total{job=\"slaprobe\",probe=\"hb\",output=\"heartbeat\",sli=\"latency\",instance=%q,outcome=\"bad\"}[5m])))` $labels.instance $labels.instance) }}{{ .Labels.broker }}{{ end }}"
        );
    }
}
