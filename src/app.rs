//! Production mode: builds every probe from the configuration, serves HTTP,
//! and runs until cancelled, then shuts down within a bounded grace period.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::canary::RunId;
use crate::config::{Config, Sli};
use crate::metrics::Metrics;
use crate::outcome::{Journal, Readiness, Sinks};
use crate::probe::{self, ProbeError, ProbeRunner};
use crate::serve as http;
use crate::slo::alertmanager::{PushError, Pusher};
use crate::slo::evaluator::{Alert, Clock, Evaluator, SystemClock, EVAL_TICK};
use crate::state::{self, StateDir, StateError};
use crate::status::{ProbeHandles, Sources};

/// How long shutdown takes at most after the first signal; then the process
/// exits whatever is still running.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The budget inside it, in order: probes stop (flush, join threads)...
const PROBES_GRACE: Duration = Duration::from_secs(6);
/// ...the last evaluation, state save and Alertmanager push finish...
const TASKS_GRACE: Duration = Duration::from_secs(2);
/// ...HTTP connections close...
const SERVER_GRACE: Duration = Duration::from_millis(500);
/// ...and the async runtime's stragglers get this long.
pub const RUNTIME_GRACE: Duration = Duration::from_secs(1);
const _: () = assert!(
    PROBES_GRACE.as_millis()
        + TASKS_GRACE.as_millis()
        + SERVER_GRACE.as_millis()
        + RUNTIME_GRACE.as_millis()
        < SHUTDOWN_GRACE.as_millis(),
    "the shutdown steps fit in SHUTDOWN_GRACE"
);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        error: std::io::Error,
    },
    #[error("HTTP server failed")]
    Serve(#[source] std::io::Error),
    #[error("alertmanager")]
    Alertmanager(#[from] PushError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Lag(#[from] crate::lag::LagError),
    #[error(transparent)]
    Actions(#[from] crate::actions::ActionsError),
    #[error(transparent)]
    Brokers(#[from] crate::brokers::BrokersError),
}

/// Binds the HTTP listener first, so a port conflict is reported before
/// any client is created.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| RunError::Listen { addr, error })
}

/// A configuration turned into runnable parts; `run` serves and runs them.
pub struct App {
    pub metrics: Metrics,
    pub readiness: Arc<Readiness>,
    pub run: RunId,
    probes: Vec<ProbeRunner>,
    /// Their one expiry timer.
    expiry: probe::Expiry,
    lag: crate::lag::Lag,
    /// The connection checks of the clusters' brokers.
    brokers: crate::brokers::Checks,
    /// The remediation actions, if any are configured.
    actions: Option<crate::actions::Actions>,
    evaluator: Evaluator,
    /// How often SLOs are evaluated.
    pub eval_tick: Duration,
    /// The Alertmanager config, `alerts.job` and a pusher per replica.
    pusher: Option<(crate::config::Alertmanager, String, Vec<Pusher>)>,
    status: Sources,
    /// Where SLO windows and alert state are saved, when configured.
    state_dir: Option<Arc<StateDir>>,
    /// Alerts firing when the restored state was saved.
    was_firing: Vec<Alert>,
}

impl App {
    /// Creates every client and registers every metric; fails before
    /// anything runs when a probe cannot be built.
    pub fn build(config: &Config) -> Result<App, RunError> {
        Self::build_with_clock(config, Arc::new(SystemClock::new()))
    }

    /// [`App::build`] with the SLO evaluator reading time from `clock`
    /// (tests run SLO time faster than real time).
    pub fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> Result<App, RunError> {
        // First: a second instance on the same state_dir must not create a
        // single client.
        let state_dir = config
            .state_dir
            .as_deref()
            .map(StateDir::open)
            .transpose()?;
        let files = match &state_dir {
            Some(d) => d.load()?,
            None => state::Files::default(),
        };
        let thresholds: Vec<Duration> = config
            .probes
            .iter()
            .flat_map(|p| p.slos.iter())
            .filter(|s| s.sli == Sli::Latency)
            .filter_map(|s| s.threshold)
            .collect();
        let metrics = Metrics::new(&thresholds);
        let used_clusters: Vec<&str> = config
            .clusters
            .keys()
            .map(String::as_str)
            .filter(|c| config.probes.iter().any(|p| p.clusters().contains(c)))
            .collect();
        let readiness = Arc::new(Readiness::new(
            used_clusters,
            config.probes.iter().map(|p| p.name.as_str()),
        ));
        // The saved run id goes on, so that canaries sent before the
        // restart are this run's own when they arrive.
        let mut restored = state::restore(&files, config, state::Now::read(), RunId::random());
        for warning in &restored.warnings {
            warn!(state_dir = ?config.state_dir, "{warning}");
        }
        let run = restored.run;
        let journal = Arc::new(Journal::default());
        let expiry = probe::Expiry::default();
        let ctx = probe::Context {
            run,
            expiry: expiry.clone(),
            sinks: Sinks {
                metrics: metrics.clone(),
                readiness: readiness.clone(),
                journal: journal.clone(),
                memory: crate::outcome::tracker::Memory::new(
                    crate::outcome::tracker::RESOLVED_MEMORY,
                ),
            },
        };
        let mut clients = probe::Clients::new(config, &metrics);
        let probes: Vec<ProbeRunner> = config
            .probes
            .iter()
            .map(|p| ProbeRunner::build(p, config, &ctx, restored.take(p), &mut clients))
            .collect::<Result<_, _>>()?;
        let (producers, consumers, admins) = clients.counts();
        info!(
            producers,
            consumers, admins, "Kafka clients created (shared by the probes of each cluster)"
        );
        let state_dir = state_dir.map(Arc::new);
        let lag = crate::lag::Lag::build(config, &metrics, state_dir.clone())?;
        let brokers = crate::brokers::Checks::build(config, &metrics, state_dir.clone())?;
        let mut evaluator = Evaluator::new(config, &metrics, clock);
        let was_firing = match (restored.slos_written_at, &state_dir) {
            (Some(written_at), Some(d)) => {
                info!(file = %d.file().display(), slos = restored.slos.len(), written_at,
                    "restoring SLO windows and alert state");
                evaluator.restore(&restored.slos)
            }
            _ => Vec::new(),
        };
        let actions = crate::actions::Actions::build(
            config,
            &metrics.actions,
            lag.board.clone(),
            evaluator.status(),
            evaluator.remediations(),
            state_dir.clone(),
        )?;
        let pusher = config
            .alertmanager
            .as_ref()
            .map(|am| {
                let generator = config
                    .server
                    .external_url
                    .as_ref()
                    .map(|_| config.server.status_link());
                Pusher::for_each_url(am, generator)
                    .map(|p| (am.clone(), config.alerts.job.clone(), p))
            })
            .transpose()?;
        let status = Sources {
            run: run.to_string(),
            readiness: readiness.clone(),
            probes: config
                .probes
                .iter()
                .map(|p| {
                    let outputs = p
                        .output_names()
                        .into_iter()
                        .map(|o| (o.to_string(), metrics.output(p, o)))
                        .collect();
                    ProbeHandles {
                        name: p.name.clone(),
                        kind: p.probe_type().to_string(),
                        outputs,
                    }
                })
                .collect(),
            slos: evaluator.status(),
            journal,
            groups: lag.board.clone(),
            actions: actions
                .as_ref()
                .map(|a| a.board.clone())
                .unwrap_or_default(),
            brokers: brokers.board.clone(),
        };
        Ok(App {
            metrics,
            readiness,
            run,
            probes,
            expiry,
            lag,
            brokers,
            actions,
            evaluator,
            eval_tick: EVAL_TICK,
            pusher,
            status,
            state_dir,
            was_firing,
        })
    }

    /// Serves HTTP on `listener` (see [`bind`]) and runs every probe until
    /// `cancel`.
    pub async fn run(
        self,
        listener: TcpListener,
        cancel: CancellationToken,
    ) -> Result<(), RunError> {
        self.run_with(listener, cancel.child_token(), cancel).await
    }

    /// [`App::run`], where cancelling `stop_input` first stops only the
    /// sending of canaries, so that every one sent can settle (tests count
    /// exact outcomes this way).
    pub async fn run_with(
        self,
        listener: TcpListener,
        stop_input: CancellationToken,
        cancel: CancellationToken,
    ) -> Result<(), RunError> {
        let local = listener.local_addr().map_err(RunError::Serve)?;
        info!(run = %self.run, probes = self.probes.len(), librdkafka = %crate::kafka::librdkafka_build(),
            "slaprobe listening on http://{local}/metrics");
        let router = http::router(self.metrics.clone(), self.status, self.evaluator.history());
        let server_cancel = CancellationToken::new();
        let limits = http::Limits::for_open_files(http::raise_open_files_limit());
        let mut server = tokio::spawn(http::serve(listener, router, server_cancel.clone(), limits));

        let probe_tasks = TaskTracker::new();
        let accounting: Vec<_> = self.probes.iter().map(|p| p.accounting()).collect();
        for probe in self.probes {
            probe_tasks.spawn(probe.run(stop_input.clone(), cancel.clone()));
        }
        probe_tasks.spawn(self.expiry.run(cancel.clone()));
        self.lag.spawn(&probe_tasks, &cancel);
        self.brokers.spawn(&probe_tasks, &cancel);
        if let Some(actions) = self.actions {
            probe_tasks.spawn(actions.run(cancel.clone()));
        }
        probe_tasks.close();
        // The evaluator (and with it the last state save) stops after the
        // probes, so the state saved at shutdown has every settled canary.
        let tasks = TaskTracker::new();
        let eval_cancel = CancellationToken::new();
        let alerts = self.evaluator.alerts();
        let snapshots = self.state_dir.map(|dir| {
            // One snapshot waiting at most: the evaluator never queues
            // state behind a slow disk.
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tasks.spawn(crate::state::saver(dir, rx, accounting, self.run));
            tx
        });
        tasks.spawn(
            self.evaluator
                .run(self.eval_tick, eval_cancel.clone(), snapshots),
        );
        if let Some((am, job, pushers)) = self.pusher {
            let labels = am.labels_for(&job, local, &crate::util::hostname());
            for mut pusher in pushers {
                pusher.labels = labels.clone();
                tasks.spawn(pusher.run(alerts.clone(), self.was_firing.clone(), cancel.clone()));
            }
        }
        tasks.close();

        let server_failed = tokio::select! {
            _ = cancel.cancelled() => None,
            r = &mut server => Some(r),
        };
        cancel.cancel();
        // /metrics keeps answering while probes drain.
        if tokio::time::timeout(PROBES_GRACE, probe_tasks.wait())
            .await
            .is_err()
        {
            warn!("probes did not stop within {PROBES_GRACE:?}; saving state and exiting anyway");
        }
        eval_cancel.cancel();
        if tokio::time::timeout(TASKS_GRACE, tasks.wait())
            .await
            .is_err()
        {
            warn!("the last evaluation and state save did not finish in time; exiting anyway");
        }
        server_cancel.cancel();
        if server_failed.is_none() {
            let _ = tokio::time::timeout(SERVER_GRACE, server).await;
        }
        match server_failed {
            Some(Ok(Err(e))) => Err(RunError::Serve(e)),
            Some(Err(e)) => Err(RunError::Serve(std::io::Error::other(e))),
            _ => Ok(()),
        }
    }
}
