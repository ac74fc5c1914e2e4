use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

struct Manual(AtomicU64);

/// A heartbeat probe with one delivery SLO.
fn one_slo() -> Config {
    crate::config::load_str(
        "t.yaml",
        "clusters: { c: { bootstrap: 'k:9092' } }\nprobes:\n  - { name: p, type: heartbeat, cluster: c, topic: t, slos: [ { sli: delivery, objective: 99.9% } ] }\n",
        &|_| None,
    )
    .expect("config")
}

impl Clock for Manual {
    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[test]
fn ticks_read_counter_deltas_and_raise_one_alert_per_firing_tier() {
    let config = one_slo();
    let metrics = Metrics::new(&[]);
    let clock = Arc::new(Manual(AtomicU64::new(1_800_000_000)));
    let good = metrics.sli_counter("p", "heartbeat", crate::config::Sli::Delivery, "good");
    let bad = metrics.sli_counter("p", "heartbeat", crate::config::Sli::Delivery, "bad");
    // Counts from before the evaluator existed are not events of its windows.
    good.inc_by(5);
    let mut ev = Evaluator::new(&config, &metrics, clock.clone());
    let alerts = ev.alerts();
    ev.tick();
    assert_eq!(
        ev.status.read().map(|s| s[0].windows[0].total).unwrap_or(9),
        0
    );
    assert!(alerts.borrow().is_empty());

    good.inc_by(900);
    bad.inc_by(100);
    ev.tick();
    let status = ev.status.read().map(|s| s[0].clone()).expect("status");
    assert_eq!(status.slo, "p:heartbeat:delivery");
    assert_eq!(
        (status.windows[0].good, status.windows[0].total),
        (900, 1000)
    );
    assert!((status.windows[0].burn_rate.unwrap_or(0.0) - 100.0).abs() < 1e-6);
    // 10% errors burns every tier.
    let firing = alerts.borrow().clone();
    assert_eq!(firing.len(), 4);
    assert!(firing
        .iter()
        .all(|a| a.labels["slo"] == "p:heartbeat:delivery"));
    let windows: Vec<_> = firing
        .iter()
        .map(|a| a.labels["long_window"].as_str())
        .collect();
    assert_eq!(windows, ["1h", "6h", "1d", "3d"]);
    assert_eq!(firing[0].starts_at, 1_800_000_000);

    // Ten clean minutes later the 5m window is clean (the 30m one still
    // holds the errors): the fast page resolves, the others keep firing.
    clock.0.fetch_add(600, Ordering::Relaxed);
    good.inc_by(10_000);
    ev.tick();
    let windows: Vec<String> = alerts
        .borrow()
        .iter()
        .map(|a| a.labels["long_window"].clone())
        .collect();
    assert_eq!(windows, ["6h", "1d", "3d"]);
}

#[test]
fn remediations_mark_or_hold_the_covered_tiers() {
    let config = one_slo();
    let metrics = Metrics::new(&[]);
    let clock = Arc::new(Manual(AtomicU64::new(1_800_000_000)));
    let mut ev = Evaluator::new(&config, &metrics, clock);
    let alerts = ev.alerts();
    let marks = ev.remediations();
    metrics
        .sli_counter("p", "heartbeat", crate::config::Sli::Delivery, "bad")
        .inc_by(100);
    // (remediation, severity) per tier, in tier order.
    let mut seen = |mark: Option<SloRemediation>| -> Vec<(String, String)> {
        let mut m = marks.write().expect("marks");
        m.clear();
        m.extend(mark.map(|k| ("p:heartbeat:delivery".to_string(), k)));
        drop(m);
        ev.tick();
        let got = alerts.borrow();
        got.iter()
            .map(|a| {
                let r = a.labels.get("remediation").cloned().unwrap_or_default();
                (r, a.labels["severity"].clone())
            })
            .collect()
    };
    let pair = |r: &str, s: &str| (r.to_string(), s.to_string());
    let mark = |remediation, hold, pages_only| {
        Some(SloRemediation {
            remediation,
            hold,
            pages_only,
        })
    };
    assert_eq!(
        seen(None),
        [
            pair("", "page"),
            pair("", "page"),
            pair("", "ticket"),
            pair("", "ticket")
        ]
    );
    // An action on the page tiers, attempted: those say so.
    assert_eq!(
        seen(mark("attempted", false, true)),
        [
            pair("attempted", "page"),
            pair("attempted", "page"),
            pair("", "ticket"),
            pair("", "ticket")
        ]
    );
    // Held: the page tiers do not fire meanwhile.
    assert_eq!(
        seen(mark("attempted", true, true)),
        [pair("", "ticket"), pair("", "ticket")]
    );
    // Failed, on every tier: all page.
    assert_eq!(
        seen(mark("failed", true, false)),
        [
            pair("failed", "page"),
            pair("failed", "page"),
            pair("failed", "page"),
            pair("failed", "page")
        ]
    );
    let described = alerts.borrow()[2].annotations["description"].clone();
    assert!(described.ends_with("A person is needed."), "{described}");
}

fn config_with(objective: &str) -> Config {
    crate::config::load_str(
        "t.yaml",
        &format!("clusters: {{ c: {{ bootstrap: 'k:9092' }} }}\nprobes:\n  - {{ name: p, type: heartbeat, cluster: c, topic: t, slos: [ {{ sli: delivery, objective: {objective} }} ] }}\n"),
        &|_| None,
    )
    .expect("config")
}

#[test]
fn a_restart_restores_the_budget_and_the_firing_alerts_with_their_start() {
    let config = config_with("99.9%");
    let clock = Arc::new(Manual(AtomicU64::new(1_800_000_000)));
    let metrics = Metrics::new(&[]);
    let mut ev = Evaluator::new(&config, &metrics, clock.clone());
    let alerts = ev.alerts();
    metrics
        .sli_counter("p", "heartbeat", crate::config::Sli::Delivery, "good")
        .inc_by(900);
    metrics
        .sli_counter("p", "heartbeat", crate::config::Sli::Delivery, "bad")
        .inc_by(100);
    ev.tick();
    let before = alerts.borrow().clone();
    assert_eq!(before.len(), 4);
    let budget = ev
        .status
        .read()
        .map(|s| s[0].budget_remaining)
        .expect("status");
    let saved = ev.snapshot();

    // A new process, a minute later: fresh counters, restored windows.
    clock.0.fetch_add(60, Ordering::Relaxed);
    let metrics = Metrics::new(&[]);
    let mut ev = Evaluator::new(&config, &metrics, clock.clone());
    let was_firing = ev.restore(&saved);
    assert_eq!(was_firing, before, "what the pusher had sent");
    let alerts = ev.alerts();
    ev.tick();
    let status = ev.status.read().map(|s| s[0].clone()).expect("status");
    assert_eq!(status.budget_remaining, budget, "not back to 100%");
    let after = alerts.borrow().clone();
    assert_eq!(
        after
            .iter()
            .map(|a| (&a.labels, a.starts_at))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|a| (&a.labels, a.starts_at))
            .collect::<Vec<_>>(),
        "one continuous alert per tier: same labels, same start"
    );
}

#[test]
fn an_slo_whose_definition_changed_starts_empty() {
    let clock = Arc::new(Manual(AtomicU64::new(1_800_000_000)));
    let metrics = Metrics::new(&[]);
    let mut ev = Evaluator::new(&config_with("99.9%"), &metrics, clock.clone());
    metrics
        .sli_counter("p", "heartbeat", crate::config::Sli::Delivery, "bad")
        .inc_by(100);
    ev.tick();
    let saved = ev.snapshot();
    let metrics = Metrics::new(&[]);
    let mut ev = Evaluator::new(&config_with("99%"), &metrics, clock);
    assert!(ev.restore(&saved).is_empty());
    ev.tick();
    let status = ev.status.read().map(|s| s[0].clone()).expect("status");
    assert_eq!(status.budget_remaining, 1.0);
    assert_eq!(status.windows[0].total, 0);
}

#[test]
fn the_system_clock_runs_on_monotonic_time_from_its_start() {
    // Started three days "ago" by the wall clock it read at start: its
    // time is that reading plus monotonic time, whatever the wall clock
    // does meanwhile (stepped back an hour, or forward three days).
    let c = SystemClock {
        wall_at_start: 1_800_000_000,
        start: std::time::Instant::now() - Duration::from_secs(5),
    };
    let now = c.now();
    assert!((1_800_000_005..1_800_000_007).contains(&now), "{now}");
}

/// With tokio's clock paused: one snapshot per tick (the first at
/// once), each at the evaluator's time, and a last one when cancelled,
/// after a final evaluation.
#[tokio::test(start_paused = true)]
async fn run_hands_the_saver_one_snapshot_per_tick_and_a_last_one() {
    let config = one_slo();
    let metrics = Metrics::new(&[]);
    let clock = Arc::new(Manual(AtomicU64::new(1_800_000_000)));
    let ev = Evaluator::new(&config, &metrics, clock.clone());
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(ev.run(EVAL_TICK, cancel.clone(), Some(tx)));
    for i in 0..3u64 {
        let snap = rx.recv().await.expect("a snapshot per tick");
        assert_eq!((snap.at, snap.last), (1_800_000_000 + i * 10, false));
        assert_eq!(snap.slos.len(), 1);
        clock.0.fetch_add(10, Ordering::Relaxed);
    }
    cancel.cancel();
    let last = rx.recv().await.expect("the last snapshot");
    assert!(last.last);
    assert_eq!(last.at, 1_800_000_030);
    task.await.expect("run ends");
    assert!(rx.recv().await.is_none(), "and nothing after it");
}
