//! Connection checks: every `connection_check_interval`, each broker of a
//! cluster is connected to on each listener, stage by stage (TCP, TLS,
//! ApiVersions, SASL), timed, its certificate's expiry read; a failure is
//! classified. This tells "the broker is down" from "its certificate
//! expired" from "the credentials were rotated" before any canary is lost,
//! and covers listeners slaprobe's clients do not use.
//!
//! - [`wire`]: the few Kafka requests, by hand (pure);
//! - [`sasl`]: PLAIN and SCRAM's client side;
//! - [`listener`]: a listener's TLS and SASL from librdkafka's options;
//! - [`check`]: one check of one broker;
//! - [`known`]: the brokers each listener advertised, remembered (and
//!   kept in `state_dir`) so a broker that stops is still checked after
//!   it leaves the cluster's metadata — and after a restart;
//! - [`groups`], [`offsets`]: the same connections reading many consumer
//!   groups' committed offsets in one request per coordinator, for the
//!   lag reader.

pub mod check;
pub mod groups;
pub mod known;
pub mod listener;
pub mod offsets;
pub mod sasl;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, ConnectionChecks};
use crate::metrics::{BrokerMetrics, Metrics};
use crate::state::StateDir;
use crate::status::{BrokerBoard, BrokerView};
use check::Outcome;
use known::{Known, KnownFile, Target, BOOTSTRAP};
use listener::Listener;

/// The most brokers checked at once (a thread each).
const PARALLEL: usize = 16;

/// A listener whose options cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cluster `{cluster}`, listener `{listener}`: cannot check connections: {error}")]
pub struct BrokersError {
    cluster: String,
    listener: String,
    error: String,
}

/// Every cluster's checks, ready to run.
pub struct Checks {
    clusters: Vec<ClusterChecks>,
    state: Option<Arc<StateDir>>,
    /// The last results, for the status API.
    pub board: BrokerBoard,
}

struct ClusterChecks {
    config: ConnectionChecks,
    listeners: Vec<(Listener, Known)>,
    metrics: BrokerMetrics,
    board: BrokerBoard,
    /// `alerts.certificate_expiry_warning`, in seconds.
    warning: i64,
}

/// Each configured listener, made from its options: what `check` and the
/// start-up refuse (a CA or key file that cannot be read, say).
pub fn listeners(config: &ConnectionChecks) -> Result<Vec<Listener>, BrokersError> {
    config
        .listeners
        .iter()
        .map(|l| {
            Listener::new(&l.name, &l.bootstrap, &l.librdkafka).map_err(|error| BrokersError {
                cluster: config.cluster.clone(),
                listener: l.name.clone(),
                error,
            })
        })
        .collect()
}

impl Checks {
    /// The checks of `config`'s clusters, with the brokers an earlier run
    /// knew (`state_dir`).
    pub fn build(
        config: &Config,
        metrics: &Metrics,
        state: Option<Arc<StateDir>>,
    ) -> Result<Checks, BrokersError> {
        let saved = state.as_ref().map(|d| known::load(d)).unwrap_or_default();
        let board = BrokerBoard::default();
        let mut clusters = Vec::new();
        for c in &config.connection_checks {
            let listeners = listeners(c)?
                .into_iter()
                .map(|l| {
                    let known = saved.restore(&c.cluster, &l.name);
                    (l, known)
                })
                .collect();
            clusters.push(ClusterChecks {
                config: c.clone(),
                listeners,
                metrics: metrics.brokers.clone(),
                board: board.clone(),
                warning: config.alerts.certificate_expiry_warning.as_secs() as i64,
            });
        }
        Ok(Checks {
            clusters,
            state,
            board,
        })
    }

    pub fn spawn(self, tracker: &tokio_util::task::TaskTracker, cancel: &CancellationToken) {
        for c in self.clusters {
            tracker.spawn(c.run(self.state.clone(), cancel.clone()));
        }
    }
}

impl ClusterChecks {
    async fn run(mut self, state: Option<Arc<StateDir>>, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let job = tokio::task::spawn_blocking(move || {
                let changed = self.round();
                (self, changed)
            });
            let (me, changed) = tokio::select! {
                _ = cancel.cancelled() => return,
                done = job => match done {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "connection checks failed");
                        return;
                    }
                },
            };
            self = me;
            if let (true, Some(dir)) = (changed, &state) {
                let mine: Vec<(String, &Known)> = self
                    .listeners
                    .iter()
                    .map(|(l, k)| (l.name.clone(), k))
                    .collect();
                if let Err(e) = KnownFile::update(dir, &self.config.cluster, &mine) {
                    warn!(error = %e, "cannot save the known brokers in state_dir");
                }
            }
        }
    }

    /// One check of every broker on every listener; whether the known
    /// brokers changed (to be saved).
    fn round(&mut self) -> bool {
        let now = crate::util::format::unix_now();
        let cluster = self.config.cluster.clone();
        let timeout = self.config.timeout;
        let mut changed = false;
        for (listener, known) in &mut self.listeners {
            let targets = known.targets(&listener.bootstrap);
            let mut results = run_all(listener, &targets, timeout);
            let advertised = results.iter().find_map(|(_, o)| o.brokers.clone());
            let was_empty = known.is_empty();
            if let Some(brokers) = &advertised {
                changed |= known.learn(brokers, now);
                // Brokers new to this round are checked in it.
                let new: Vec<Target> = known
                    .targets(&listener.bootstrap)
                    .into_iter()
                    .filter(|t| !targets.iter().any(|o| o.label == t.label))
                    .collect();
                results.extend(run_all(listener, &new, timeout));
            }
            let forgotten = known.forget(now);
            changed |= !forgotten.is_empty();
            changed |= known.save_due(now);
            let m = &self.metrics;
            let l = listener.name.as_str();
            for id in &forgotten {
                m.up.remove(&[&cluster, id, l]);
                m.certificate_expiry.remove(&[&cluster, id, l]);
                info!(cluster = %cluster, listener = l, broker = %id,
                    "broker forgotten: not in the listener's metadata for a day; no longer checked");
            }
            known.export_info(&m.info, &cluster, l);
            // Once brokers are known, the bootstrap's check (which found
            // them) leaves no series: each broker has its own.
            let found = was_empty && !known.is_empty();
            let views: Vec<BrokerView> = results
                .iter()
                .filter(|(t, _)| !(found && t.label == BOOTSTRAP))
                .map(|(target, outcome)| {
                    let mut v = record(m, &cluster, l, target, outcome, known, now);
                    v.certificate_expiring = v
                        .certificate_expiry
                        .is_some_and(|e| e - (now as i64) < self.warning);
                    v
                })
                .collect();
            let mut board = self.board.write().unwrap_or_else(|e| e.into_inner());
            board.retain(|(c, li, _), _| c != &cluster || li != l);
            for v in views {
                board.insert((cluster.clone(), l.to_string(), v.broker.clone()), v);
            }
            if found {
                m.up.remove(&[&cluster, BOOTSTRAP, l]);
                m.certificate_expiry.remove(&[&cluster, BOOTSTRAP, l]);
            }
        }
        changed
    }
}

/// Checks `targets` on `listener`, at most [`PARALLEL`] at once.
fn run_all(listener: &Listener, targets: &[Target], timeout: Duration) -> Vec<(Target, Outcome)> {
    let mut out = Vec::with_capacity(targets.len());
    for chunk in targets.chunks(PARALLEL) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|t| {
                    s.spawn(move || {
                        let nonce = format!("{:032x}", rand::random::<u128>());
                        // The bootstrap addresses in turn, until one answers.
                        let mut last = Outcome {
                            failure: Some(check::Failure {
                                stage: check::Stage::Tcp,
                                class: check::ErrorClass::Dns,
                                message: "no address to connect to".into(),
                            }),
                            ..Outcome::default()
                        };
                        for (host, port) in &t.addresses {
                            last = check::check(listener, host, *port, timeout, &nonce);
                            if last.ok() {
                                break;
                            }
                        }
                        (t.clone(), last)
                    })
                })
                .collect();
            for h in handles {
                if let Ok(r) = h.join() {
                    out.push(r);
                }
            }
        });
    }
    out
}

/// The series and log lines of one check; its view.
fn record(
    m: &BrokerMetrics,
    cluster: &str,
    listener: &str,
    target: &Target,
    o: &Outcome,
    known: &mut Known,
    now: u64,
) -> BrokerView {
    let b = target.label.as_str();
    for (stage, took) in &o.stages {
        m.seconds
            .with_label_values(&[cluster, b, listener, stage.label()])
            .observe(took.as_secs_f64());
    }
    if let Some(expiry) = o.certificate_expiry {
        m.certificate_expiry
            .with_label_values(&[cluster, b, listener])
            .set(expiry as f64);
    }
    m.up.with_label_values(&[cluster, b, listener])
        .set(i64::from(o.ok()));
    let was_up = known.set_up(b, o.ok());
    match &o.failure {
        Some(f) => {
            m.errors
                .with_label_values(&[cluster, b, listener, f.stage.label(), f.class.label()])
                .inc();
            if was_up != Some(false) {
                warn!(%cluster, listener, broker = b, stage = f.stage.label(),
                    error = f.class.label(), message = %f.message,
                    "broker connection check failed");
            }
        }
        None if was_up == Some(false) => {
            let total: Duration = o.stages.iter().map(|(_, d)| *d).sum();
            info!(%cluster, listener, broker = b, took = ?total, "broker connection check passes again");
        }
        None => {}
    }
    let broker = known.broker(b);
    BrokerView {
        kafka_cluster: cluster.to_string(),
        listener: listener.to_string(),
        broker: b.to_string(),
        address: broker.map(|b| known::address(&b.host, b.port)),
        rack: broker.and_then(|b| b.rack.clone()),
        up: o.ok(),
        checked_at: now,
        stages: o
            .stages
            .iter()
            .map(|(s, d)| (s.label(), d.as_secs_f64()))
            .collect(),
        failed: o
            .failure
            .as_ref()
            .map(|f| (f.stage.label(), f.class.label(), f.message.clone())),
        certificate_expiry: o.certificate_expiry,
        certificate_expiring: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_whose_files_cannot_be_read_is_named_with_its_cluster() {
        let yaml = "clusters:\n  c:\n    bootstrap: 'k:9092'\n    listeners:\n      - { name: tls, bootstrap: 'k:9093', librdkafka: { security.protocol: SSL, ssl.ca.location: /nonexistent/ca.pem } }\nprobes:\n  - { name: hb, type: heartbeat, cluster: c, topic: t }\n";
        let config = crate::config::load_str("t.yaml", yaml, &|_| None).expect("config");
        let e = listeners(&config.connection_checks[0])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cluster `c`, listener `tls`: cannot check connections: ssl.ca.location `/nonexistent/ca.pem`"),
            "{e}"
        );
        let metrics = Metrics::new(&[]);
        assert!(Checks::build(&config, &metrics, None).is_err());
    }

    /// A target with no address to try fails its check: it never reads as
    /// a broker that passed.
    #[test]
    fn a_target_without_an_address_fails() {
        let listener = Listener::new("default", "k:9092", &Default::default()).expect("listener");
        let target = Target {
            label: BOOTSTRAP.to_string(),
            addresses: Vec::new(),
        };
        let results = run_all(&listener, &[target], Duration::from_secs(1));
        let (_, outcome) = &results[0];
        assert!(!outcome.ok());
        assert_eq!(
            outcome.failure.as_ref().map(|f| (f.stage, f.class)),
            Some((check::Stage::Tcp, check::ErrorClass::Dns))
        );
    }
}
