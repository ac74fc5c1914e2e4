//! Parity: for one synthetic event sequence, slaprobe's in-process
//! evaluator (`slo::SloWindows`, as the evaluator runs it) and the generated
//! Prometheus rules (evaluated by `promtool test rules`) reach the same alert
//! state for every tier at every checkpoint, with a restart of slaprobe
//! (windows saved and restored, counters reset) in the middle.
//!
//! Checkpoints sit where every window has seen a steady regime for at least
//! a minute: Prometheus' `increase()` covers the samples inside its range
//! (one minute fewer than the window at 1m resolution) while the evaluator
//! sums whole minute buckets, so the two may legitimately differ for about
//! a minute around a change of error rate.

mod common;

use std::path::PathBuf;
use std::process::Command;

use slaprobe::slo::{burn_tiers, SloWindows};

const YAML: &str = r#"
clusters:
  c: { bootstrap: "k:9092" }
probes:
  - name: p
    type: heartbeat
    cluster: c
    topic: t
    slos:
      - { sli: delivery, objective: 99.9% }
"#;

/// Events per minute, and the error ratio of each phase (start minute, ratio).
const RATE: u64 = 1000;
const PHASES: [(u64, f64); 4] = [(0, 0.0), (90, 0.02), (150, 0.0), (220, 0.0)];
const END: u64 = 600;
/// slaprobe restarts after this minute: the evaluator's windows are saved
/// and restored (through the state file's JSON) and its counters start
/// again from zero, as Prometheus sees them.
const RESTART: u64 = 180;
/// (minute, expected firing state of the four tiers) — also checked against
/// the evaluator so the scenario cannot silently become trivial.
const CHECKPOINTS: [(u64, [bool; 4]); 4] = [
    (90, [false, false, false, false]),
    (150, [true, true, true, true]),
    (220, [false, false, true, true]),
    (600, [false, false, false, false]),
];

fn bad_in_minute(m: u64) -> u64 {
    let ratio = PHASES
        .iter()
        .rev()
        .find(|(start, _)| m > *start)
        .map_or(0.0, |p| p.1);
    (RATE as f64 * ratio).round() as u64
}

#[test]
fn evaluator_and_prometheus_rules_agree() {
    let config = slaprobe::config::load_str("parity.yaml", YAML, &|_| None).expect("config");
    let probe = &config.probes[0];
    let slo = probe
        .slos
        .iter()
        .find(|s| s.sli == slaprobe::config::Sli::Delivery)
        .expect("slo");
    let tiers = burn_tiers(slo.period);

    // The evaluator: minute m's increments land in the bucket of minute m.
    let t0: u64 = 1_800_000_000 - 1_800_000_000 % 86_400;
    let mut w = SloWindows::new(slo.objective, slo.period, slo.min_events);
    let mut states = Vec::new();
    for m in 1..=END {
        let bad = bad_in_minute(m);
        w.record(t0 + m * 60, RATE - bad, bad);
        if m == RESTART {
            let saved = serde_json::to_string(&w.snapshot()).expect("snapshot");
            w = SloWindows::new(slo.objective, slo.period, slo.min_events);
            let shift = w.restore(&serde_json::from_str(&saved).expect("parse"), t0 + m * 60);
            assert_eq!(shift, 0);
        }
        if let Some((_, want)) = CHECKPOINTS.iter().find(|c| c.0 == m) {
            let e = w.evaluate(t0 + m * 60);
            let got: Vec<bool> = e.tiers.iter().map(|(_, s)| s.firing).collect();
            assert_eq!(got, want.to_vec(), "evaluator at minute {m}");
            states.push((m, got));
        }
    }

    // The same sequence as Prometheus counters sampled every minute; the
    // restarted process counts from zero again (a counter reset).
    let (mut good, mut bad) = (vec![0u64], vec![0u64]);
    for m in 1..=END {
        let b = bad_in_minute(m);
        let (g0, b0) = if m == RESTART + 1 {
            (0, 0)
        } else {
            (good[good.len() - 1], bad[bad.len() - 1])
        };
        good.push(g0 + RATE - b);
        bad.push(b0 + b);
    }
    let series = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
    let mut tests = String::new();
    for (m, got) in &states {
        for (tier, firing) in tiers.iter().zip(got) {
            let expr = slaprobe::generate::burn_expr("slaprobe", &probe.name, slo, tier);
            let samples = if *firing {
                "\n          - labels: '{}'\n            value: 1"
            } else {
                " []"
            };
            tests.push_str(&format!(
                "      - expr: 'count({expr})'\n        eval_time: {m}m\n        exp_samples:{samples}\n"
            ));
        }
    }
    let dir = std::env::temp_dir().join(format!("slaprobe-parity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for f in slaprobe::generate::render(&config) {
        std::fs::write(dir.join(f.name), f.content).expect("write rules");
    }
    let test_file: PathBuf = dir.join("parity.yml");
    std::fs::write(
        &test_file,
        format!(
            "rule_files:\n  - slaprobe.rules.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'slaprobe_sli_events_total{{job=\"slaprobe\",probe=\"p\",output=\"heartbeat\",sli=\"delivery\",outcome=\"good\"}}'\n        values: '{}'\n      - series: 'slaprobe_sli_events_total{{job=\"slaprobe\",probe=\"p\",output=\"heartbeat\",sli=\"delivery\",outcome=\"bad\"}}'\n        values: '{}'\n    promql_expr_test:\n{tests}",
            series(&good),
            series(&bad)
        ),
    )
    .expect("write test");
    let out = match Command::new("promtool")
        .arg("test")
        .arg("rules")
        .arg(&test_file)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            common::missing_prerequisite("promtool", "apt-get install prometheus");
            return;
        }
        Err(e) => panic!("promtool: {e}"),
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "promtool disagrees with the evaluator:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
