//! The in-process SLO evaluator: every tick it reads each SLO's good/bad
//! SLI counters — the very series Prometheus scrapes — adds what changed to
//! the SLO's windows (`slo`), and publishes the result as `slo_*` gauges,
//! as the status API's SLO section, and as the set of firing alerts that
//! the Alertmanager pusher sends.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::alert::{burn_rate_alert, remediated, AlertStyle, BURN_RATE_ALERT};
use super::attribution::{self, BrokerHistory};
use super::{BurnTier, Severity, SloWindows, WindowsSnapshot, WINDOWS};
use crate::config::{Config, Slo};
use crate::metrics::{Metrics, SliSplit, SloMetrics};
use crate::status::{AlertView, SloBoard, SloRemediation, SloRemediations, SloView, WindowView};
use crate::util::format;

/// How often SLOs are evaluated: an alert fires at most this long after its
/// condition starts to hold.
pub const EVAL_TICK: Duration = Duration::from_secs(10);

/// Where the evaluator gets the time from; tests may run SLO time faster
/// than real time.
pub trait Clock: Send + Sync {
    /// Unix seconds.
    fn now(&self) -> u64;
}

/// Unix time as the wall clock read at start plus the monotonic time since:
/// the wall clock places the windows (and what a restart restores into
/// them) once, and a step of the wall clock while running (NTP, a VM
/// resumed) neither freezes the windows (stepped back) nor empties them
/// (stepped forward).
pub struct SystemClock {
    wall_at_start: u64,
    start: std::time::Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock {
            wall_at_start: format::unix_now(),
            start: std::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        self.wall_at_start + self.start.elapsed().as_secs()
    }
}

/// One SLO's windows and alert state as saved across restarts, valid for
/// its definition only.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SloState {
    /// `<probe>:<output>:<sli>`.
    pub slo: String,
    /// What the windows were counted against ([`definition`]): a changed
    /// SLO starts empty.
    pub definition: String,
    pub windows: WindowsSnapshot,
}

/// One SLO's windows as the SLA report of a running slaprobe reads them
/// (`/report`), published every [`HISTORY_EVERY`].
#[derive(Debug, Clone)]
pub struct SloHistory {
    pub probe: String,
    pub slo: Slo,
    pub windows: WindowsSnapshot,
}

/// Every SLO's [`SloHistory`], as last published.
pub type HistoryBoard = Arc<RwLock<Vec<SloHistory>>>;

/// How often the evaluator publishes its windows for `/report` (a copy
/// of each SLO's buckets, about 80 KB).
const HISTORY_EVERY: u64 = 15;

/// What the evaluator hands the state saver after an evaluation.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The evaluator's time of the evaluation (Unix seconds).
    pub at: u64,
    pub slos: Vec<SloState>,
    /// The last one, taken at shutdown.
    pub last: bool,
}

/// What an SLO's windows mean: objective, period, threshold and SLI. The
/// minimum number of events only gates alerting, so it may change freely.
pub fn definition(slo: &Slo) -> String {
    format!(
        "sli={} objective={} period={}s threshold={}",
        slo.sli,
        slo.objective,
        slo.period.as_secs(),
        slo.threshold
            .map_or_else(|| "none".to_string(), |t| format!("{}ns", t.as_nanos()))
    )
}

/// A firing alert, as pushed to Alertmanager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Unix seconds.
    pub starts_at: u64,
}

struct Tracked {
    slo: Slo,
    /// How its alerts are labelled and linked.
    style: Arc<AlertStyle>,
    probe: String,
    /// The Kafka cluster it measures.
    cluster: String,
    name: String,
    /// Its SLI's events (split by broker on heartbeats).
    events: Arc<SliSplit>,
    /// Heartbeats: bad events per broker over time, for the `broker`
    /// annotation, and the counts now.
    brokers: Option<(BrokerHistory, Vec<(String, u64)>)>,
    /// Counter values at the previous tick.
    seen: (u64, u64),
    windows: SloWindows,
    metrics: SloMetrics,
}

pub struct Evaluator {
    slos: Vec<Tracked>,
    clock: Arc<dyn Clock>,
    status: SloBoard,
    alerts: watch::Sender<Vec<Alert>>,
    /// Whether [`Evaluator::tick`] has run once.
    evaluated: bool,
    /// The remediation of SLOs an action covers (written by the actions
    /// task): their alerts are marked as the generated rules mark them.
    remediations: SloRemediations,
    /// The windows for `/report`, and when they were last published.
    history: (HistoryBoard, Option<u64>),
}

impl Evaluator {
    pub fn new(config: &Config, metrics: &Metrics, clock: Arc<dyn Clock>) -> Evaluator {
        let style = Arc::new(AlertStyle::new(config));
        let slos = config
            .probes
            .iter()
            .flat_map(|p| p.slos.iter().map(move |s| (p, s)))
            .map(|(p, s)| {
                let name = s.name(&p.name);
                let windows: Vec<&str> = WINDOWS.iter().map(|(w, _)| *w).collect();
                let severities: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
                let m = metrics.slo(&name, &windows, &severities);
                m.objective.set(s.objective);
                let events = metrics.sli(p, &s.output, s.sli);
                Tracked {
                    slo: s.clone(),
                    style: style.clone(),
                    probe: p.name.clone(),
                    cluster: p.slo_cluster(s).to_string(),
                    seen: events.totals(),
                    brokers: events
                        .attributed()
                        .then(|| (BrokerHistory::default(), Vec::new())),
                    events,
                    windows: SloWindows::new(s.objective, s.period, s.min_events),
                    metrics: m,
                    name,
                }
            })
            .collect();
        let (alerts, _) = watch::channel(Vec::new());
        Evaluator {
            slos,
            clock,
            status: Arc::new(RwLock::new(Vec::new())),
            alerts,
            evaluated: false,
            remediations: SloRemediations::default(),
            history: (HistoryBoard::default(), None),
        }
    }

    /// Where `/report` reads the windows.
    pub fn history(&self) -> HistoryBoard {
        self.history.0.clone()
    }

    /// Publishes the windows when [`HISTORY_EVERY`] has passed.
    fn publish_history(&mut self, now: u64) {
        if self.history.1.is_some_and(|t| now < t + HISTORY_EVERY) {
            return;
        }
        self.history.1 = Some(now);
        let h = self
            .slos
            .iter()
            .map(|t| SloHistory {
                probe: t.probe.clone(),
                slo: t.slo.clone(),
                windows: t.windows.snapshot(),
            })
            .collect();
        *self.history.0.write().unwrap_or_else(|e| e.into_inner()) = h;
    }

    /// Where the actions task writes the SLOs' remediations.
    pub fn remediations(&self) -> SloRemediations {
        self.remediations.clone()
    }

    /// Restores windows and alert state saved by an earlier run (only
    /// those of SLOs whose definition is unchanged: the caller, which
    /// reads the saved state, filters them). Returns the alerts that
    /// were firing when the state was saved, so that those that resolved
    /// while slaprobe was down are sent as resolved.
    pub fn restore(&mut self, saved: &[SloState]) -> Vec<Alert> {
        let now = self.clock.now();
        let mut was_firing = Vec::new();
        for t in &mut self.slos {
            let Some(s) = saved.iter().find(|s| s.slo == t.name) else {
                continue;
            };
            if s.definition != definition(&t.slo) {
                continue;
            }
            let shift = t.windows.restore(&s.windows, now);
            if shift > 0 {
                tracing::warn!(slo = %t.name, behind = %format::duration(Duration::from_secs(shift)),
                    "the wall clock is behind the clock that saved the state; restored windows were moved back by the difference");
            }
            let tiers = super::burn_tiers(t.slo.period);
            for (tier, (firing, since)) in tiers.iter().zip(&s.windows.tiers) {
                if *firing {
                    was_firing.extend(alert(t, tier, now, since.unwrap_or(0), None));
                }
            }
        }
        was_firing
    }

    /// Every SLO's windows and alert state, to be saved.
    pub fn snapshot(&self) -> Vec<SloState> {
        self.slos
            .iter()
            .map(|t| SloState {
                slo: t.name.clone(),
                definition: definition(&t.slo),
                windows: t.windows.snapshot(),
            })
            .collect()
    }

    /// The SLO section of `/api/v1/status`, updated every tick.
    pub fn status(&self) -> SloBoard {
        self.status.clone()
    }

    /// The currently firing alerts, updated every tick.
    pub fn alerts(&self) -> watch::Receiver<Vec<Alert>> {
        self.alerts.subscribe()
    }

    /// One evaluation of every SLO.
    pub fn tick(&mut self) {
        let now = self.clock.now();
        let mut status = Vec::with_capacity(self.slos.len());
        let mut firing = Vec::new();
        let marks = self
            .remediations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for t in &mut self.slos {
            let (good, bad) = t.events.totals();
            if let Some((history, now_bad)) = &mut t.brokers {
                *now_bad = t.events.bad_by_broker();
                history.record(now, now_bad.clone());
            }
            let (dg, db) = (good.saturating_sub(t.seen.0), bad.saturating_sub(t.seen.1));
            t.seen = (good, bad);
            if dg + db > 0 {
                t.windows.record(now, dg, db);
            }
            let e = t.windows.evaluate(now);
            for (i, (_, ratio, burn)) in e.windows.iter().enumerate() {
                t.metrics.error_ratio[i].set(ratio.unwrap_or(f64::NAN));
                t.metrics.burn_rate[i].set(burn.unwrap_or(f64::NAN));
            }
            t.metrics.budget.set(e.budget_remaining);
            for (severity, gauge) in Severity::ALL.iter().zip(&t.metrics.firing) {
                gauge.set(i64::from(t.windows.firing(*severity)));
            }
            // One alert per firing tier, exactly as the generated rules
            // raise it (so Alertmanager deduplicates the two).
            for (tier, state) in e.tiers.iter().filter(|(_, s)| s.firing) {
                firing.extend(alert(
                    t,
                    tier,
                    now,
                    state.since.unwrap_or(now),
                    marks.get(&t.name),
                ));
            }
            status.push(SloView {
                slo: t.name.clone(),
                probe: t.probe.clone(),
                output: t.slo.output.clone(),
                sli: t.slo.sli.to_string(),
                objective: t.slo.objective,
                period: format::duration(t.slo.period),
                threshold: t.slo.threshold.map(format::duration),
                min_events: t.slo.min_events,
                windows: WINDOWS
                    .iter()
                    .zip(&e.windows)
                    .map(|((w, _), (c, ratio, burn))| WindowView {
                        window: w,
                        good: c.good,
                        total: c.total,
                        error_ratio: *ratio,
                        burn_rate: *burn,
                    })
                    .collect(),
                budget_remaining: e.budget_remaining,
                alerts: e
                    .tiers
                    .iter()
                    .map(|(tier, s)| AlertView {
                        severity: tier.severity.as_str(),
                        long_window: tier.long_label(),
                        short_window: tier.short_label(),
                        factor: tier.factor,
                        firing: s.firing,
                        since: s.since.map(format::rfc3339),
                    })
                    .collect(),
            });
        }
        *self.status.write().unwrap_or_else(|e| e.into_inner()) = status;
        self.publish_history(now);
        let first = !self.evaluated;
        self.evaluated = true;
        self.alerts.send_if_modified(|current| {
            // Only a change in which alerts fire (or since when) is news for
            // the pusher, and the first evaluation: the pusher waits for it.
            let key = |a: &Vec<Alert>| {
                a.iter()
                    .map(|a| (a.labels.clone(), a.starts_at))
                    .collect::<Vec<_>>()
            };
            let changed = key(current) != key(&firing);
            *current = firing;
            changed || first
        });
    }

    /// Evaluates every `tick` until `cancel`. With `snapshots`, sends the
    /// state after every evaluation (dropped when the saver is still busy
    /// with the previous one) and a last one when cancelled.
    pub async fn run(
        mut self,
        tick: Duration,
        cancel: CancellationToken,
        snapshots: Option<tokio::sync::mpsc::Sender<Snapshot>>,
    ) {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = interval.tick() => self.tick(),
            }
            if let Some(tx) = &snapshots {
                if let Ok(permit) = tx.try_reserve() {
                    permit.send(Snapshot {
                        at: self.clock.now(),
                        slos: self.snapshot(),
                        last: false,
                    });
                }
            }
        }
        if let Some(tx) = snapshots {
            self.tick();
            let last = Snapshot {
                at: self.clock.now(),
                slos: self.snapshot(),
                last: true,
            };
            let _ = tx.send(last).await;
        }
    }
}

/// The alert of `tier` of `t`, marked by its remediation `mark` if the
/// action covers the tier; `None` while an action with `hold` is attempted.
fn alert(
    t: &Tracked,
    tier: &BurnTier,
    now: u64,
    starts_at: u64,
    mark: Option<&SloRemediation>,
) -> Option<Alert> {
    let mut a = burn_rate_alert(&t.probe, &t.cluster, &t.slo, tier, &t.style);
    if let Some(m) = mark.filter(|m| !m.pages_only || tier.severity == Severity::Page) {
        if m.hold && m.remediation == "attempted" {
            return None;
        }
        a = remediated(a, m.remediation, &t.style);
    }
    let owned = |kv: Vec<(&str, String)>| -> BTreeMap<String, String> {
        kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    };
    let mut labels = owned(a.labels);
    labels.insert("alertname".to_string(), BURN_RATE_ALERT.to_string());
    let mut annotations = owned(a.annotations);
    if let Some((history, now_bad)) = &t.brokers {
        let window = super::WINDOWS[tier.short].1;
        // Empty when no broker stands out, as the rule's template renders.
        let culprit = history.culprit(now, window, now_bad);
        annotations.insert(
            attribution::ANNOTATION.to_string(),
            culprit.unwrap_or_default(),
        );
    }
    Some(Alert {
        labels,
        annotations,
        starts_at,
    })
}

#[cfg(test)]
mod tests;
