//! A report's counts from slaprobe's own SLO windows: hour buckets over
//! the SLO's period and minute buckets over three days, as the evaluator
//! keeps them (a running slaprobe's `/report`) and `state_dir` saves them
//! (`slaprobe report` without `--prometheus`). They know which tiers fire
//! now, not the incidents before.

use super::model::{Bucket, Incident, Period, SloInput};
use crate::config::{Config, Slo};
use crate::slo::evaluator::{definition, SloHistory, SloState};
use crate::slo::{burn_tiers, RingSnapshot, WindowsSnapshot};

const MINUTE: u64 = 60;
const HOUR: u64 = 3_600;

/// `slo` of `probe` from its saved `windows`.
pub fn input(probe: &str, slo: &Slo, windows: &WindowsSnapshot, period: &Period) -> SloInput {
    let (ring, width) = if period.bucket == HOUR {
        (&windows.hours, HOUR)
    } else {
        (&windows.minutes, MINUTE)
    };
    let tiers = burn_tiers(slo.period);
    let incidents = windows
        .tiers
        .iter()
        .zip(&tiers)
        .filter(|((firing, _), _)| *firing)
        .map(|((_, since), t)| {
            let tier = format!(
                "{} {}/{}",
                t.severity.as_str(),
                t.long_label(),
                t.short_label()
            );
            Incident::new(tier, since.unwrap_or(period.from), period.to, true)
        })
        .collect();
    SloInput {
        slo: slo.name(probe),
        probe: probe.to_string(),
        output: slo.output.clone(),
        sli: slo.sli.to_string(),
        objective: slo.objective,
        buckets: buckets(ring, width),
        incidents: Some(incidents),
    }
}

fn buckets(ring: &RingSnapshot, width: u64) -> Vec<Bucket> {
    ring.good
        .iter()
        .zip(&ring.total)
        .enumerate()
        .filter(|(_, (_, t))| **t > 0)
        .map(|(i, (g, t))| Bucket {
            start: (ring.first + i as u64) * width,
            good: *g as f64,
            bad: t.saturating_sub(*g) as f64,
        })
        .collect()
}

/// The configured SLOs from the state `state_dir` saved (an SLO whose
/// definition changed since, or that was never saved, has no counts).
pub fn from_state(config: &Config, saved: &[SloState], period: &Period) -> Vec<SloInput> {
    let empty = WindowsSnapshot {
        minutes: RingSnapshot::default(),
        hours: RingSnapshot::default(),
        tiers: Vec::new(),
    };
    config
        .probes
        .iter()
        .flat_map(|p| p.slos.iter().map(move |s| (p, s)))
        .map(|(p, slo)| {
            let windows = saved
                .iter()
                .find(|s| s.slo == slo.name(&p.name) && s.definition == definition(slo))
                .map_or(&empty, |s| &s.windows);
            input(&p.name, slo, windows, period)
        })
        .collect()
}

/// A running evaluator's SLOs.
pub fn from_live(history: &[SloHistory], period: &Period) -> Vec<SloInput> {
    history
        .iter()
        .map(|h| input(&h.probe, &h.slo, &h.windows, period))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn saved_hour_buckets_are_the_reports_and_a_firing_tier_is_an_ongoing_incident() {
        let config = crate::config::load_str(
            "t.yaml",
            "clusters: { c: { bootstrap: 'k:9092' } }\nprobes:\n  - { name: hb, type: heartbeat, cluster: c, topic: t, slos: [ { sli: delivery, objective: 99% } ] }\n",
            &|_| None,
        )
        .expect("config");
        let slo = &config.probes[0].slos[0];
        let now = 1_800_000_000;
        let period = Period::new(Duration::from_secs(30 * 86_400), now);
        let first = period.to / HOUR - 3;
        let mut tiers = vec![(false, None); burn_tiers(slo.period).len()];
        tiers[0] = (true, Some(now - 600));
        let saved = vec![SloState {
            slo: "hb:heartbeat:delivery".into(),
            definition: definition(slo),
            windows: WindowsSnapshot {
                minutes: RingSnapshot::default(),
                hours: RingSnapshot {
                    first,
                    good: vec![100, 0, 90],
                    total: vec![100, 0, 100],
                },
                tiers,
            },
        }];
        let inputs = from_state(&config, &saved, &period);
        assert_eq!(
            inputs[0].buckets,
            vec![
                Bucket {
                    start: first * HOUR,
                    good: 100.0,
                    bad: 0.0
                },
                Bucket {
                    start: (first + 2) * HOUR,
                    good: 90.0,
                    bad: 10.0
                },
            ]
        );
        let incidents = inputs[0].incidents.as_ref().unwrap();
        assert_eq!(incidents.len(), 1);
        assert_eq!(incidents[0].tier, "page 1h/5m");
        assert_eq!(incidents[0].end, None);
        // Another definition (the objective changed): no counts.
        let mut changed = saved.clone();
        changed[0].definition = "sli=delivery objective=0.5".into();
        assert!(from_state(&config, &changed, &period)[0].buckets.is_empty());
    }
}
