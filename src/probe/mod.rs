//! Probes: a configured probe turned into running canary loops, wiring
//! the stages of a canary's way together.
//!
//! One engine serves both probe types. The input side ([`crate::produce`])
//! produces a canary to every partition of the input topic, round-robin;
//! each output ([`crate::consume`]) reads its topic (explicit assignment
//! from the end offsets) with its own matcher, and the probe's accounting
//! ([`crate::outcome`]) keeps a tracker per output, so every output gets
//! its own outcomes, SLIs and histograms. A heartbeat probe is the case
//! with one output reading the input topic.
//!
//! The Kafka clients are the cluster's, shared by its probes
//! ([`clients`]): one producer, one consumer and its dispatching thread.
//!
//! Tasks and threads of one probe:
//! - the ticker (async) sends the canaries;
//! - librdkafka's producer thread reports acks, each to its own probe;
//! - the cluster's consumer thread matches arrivals for every output;
//! - the expiry task (async, one for every probe: [`Expiry`]) declares
//!   canaries lost at their deadline;
//! - the layout loop (async, metadata calls off the runtime) follows
//!   partitions and leaders of every topic and assigns new partitions.
//!
//! They share the probe's accounting: one mutex around its trackers and
//! metric handles, held for a few microseconds per canary.

mod clients;
#[cfg(any(test, feature = "bench"))]
pub mod hotpath;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::canary::RunId;
use crate::config::{Cluster, Config, Probe, ProbeKind};
use crate::consume::Output;
use crate::kafka::{MetadataError, LAYOUT_REFRESH};
use crate::outcome::{OutputStart, Shared, Sinks};
use crate::produce::{Input, Payload};
use crate::util::format::error_chain;
use crate::util::{sleep_or_cancel, Backoff};

pub use clients::Clients;

/// How often deadlines are checked: a loss is reported at most this late.
pub const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// How often the HDR quantile gauges are recomputed.
const QUANTILE_REFRESH: Duration = Duration::from_secs(5);
/// How soon after creating a gone topic again its layout is read.
const RECREATED_FOLLOW: Duration = Duration::from_secs(1);
/// An output partition whose offsets could not be read (a topic just
/// created, whose leaders not every broker knows yet) is tried again after
/// this, backing off to [`LAYOUT_REFRESH`]: a canary the pipeline writes
/// there meanwhile is read late, and one read after its deadline would be
/// judged lost.
const PENDING_RETRY: Duration = Duration::from_millis(250);
/// How long a pipeline probe waits at its start for every output
/// partition to be read before it sends its first canary anyway. (A
/// heartbeat probe sends only to the partitions it reads: it starts with
/// those at once.)
const START_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for the producer to drain at shutdown.
const FLUSH_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe {probe}: creating the Kafka {role} client for cluster {cluster}")]
    Client {
        probe: String,
        role: &'static str,
        cluster: String,
        #[source]
        error: Box<rdkafka::error::KafkaError>,
    },
    /// Templates are checked when the configuration is loaded; this is a
    /// configuration built by hand.
    #[error("probe {probe}: template: {error}")]
    Template { probe: String, error: String },
    #[error("probe {probe}: cluster {cluster} is not configured")]
    NoCluster { probe: String, cluster: String },
}

/// What every probe of one process shares when built.
pub struct Context {
    pub run: RunId,
    pub sinks: Sinks,
    /// The one expiry timer of every probe (the app runs it).
    pub expiry: Expiry,
}

/// The cluster `name` that `probe` uses (validation guarantees it exists;
/// a hand-built config may not).
fn cluster<'a>(probe: &Probe, config: &'a Config, name: &str) -> Result<&'a Cluster, ProbeError> {
    config
        .clusters
        .get(name)
        .ok_or_else(|| ProbeError::NoCluster {
            probe: probe.name.clone(),
            cluster: name.to_string(),
        })
}

/// A probe with its clients created and its metrics registered;
/// [`ProbeRunner::run`] drives it.
pub struct ProbeRunner {
    name: String,
    deadline: Duration,
    shared: Arc<Shared>,
    input: Input,
    outputs: Vec<Output>,
    expiry: Expiry,
}

impl ProbeRunner {
    /// This probe's accounting, for the state saver.
    pub(crate) fn accounting(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// `probe` with its clients from `clients` (the cluster's shared ones,
    /// or its own with `dedicated_client`), its metrics registered, and
    /// each output's accounting starting from `starts` (in
    /// [`Probe::outputs`] order; restored state, or fresh).
    pub fn build(
        probe: &Probe,
        config: &Config,
        ctx: &Context,
        starts: Vec<OutputStart>,
        clients: &mut Clients,
    ) -> Result<ProbeRunner, ProbeError> {
        let specs = probe.outputs();
        let input_cluster = cluster(probe, config, probe.input_cluster())?;
        let client_err = |role: &'static str, cluster: &Cluster| {
            let probe = probe.name.clone();
            let cluster = cluster.name.clone();
            move |error: rdkafka::error::KafkaError| ProbeError::Client {
                probe,
                role,
                cluster,
                error: Box::new(error),
            }
        };
        let resume: Vec<_> = starts.iter().map(|s| s.offsets.clone()).collect();
        let shared = Shared::build(probe, ctx.run, starts, &ctx.sinks);
        let payload = match &probe.kind {
            ProbeKind::Heartbeat(_) => Payload::Heartbeat,
            ProbeKind::Pipeline(p) => {
                Payload::template(&p.input).map_err(|error| ProbeError::Template {
                    probe: probe.name.clone(),
                    error,
                })?
            }
        };
        let topic_management = match &probe.kind {
            ProbeKind::Heartbeat(hb) if hb.topic_management.create => {
                Some(hb.topic_management.clone())
            }
            _ => None,
        };
        // Outputs reading the input topic itself: the input may only use
        // partitions they are already assigned (heartbeat probes).
        let same_topic: Vec<usize> = specs
            .iter()
            .enumerate()
            .filter(|(_, o)| o.cluster == input_cluster.name && o.topic == probe.input_topic())
            .map(|(i, _)| i)
            .collect();
        let producer = clients
            .producer(probe, input_cluster)
            .map_err(client_err("producer", input_cluster))?;
        let topic_management = match topic_management {
            Some(tm) => Some((
                tm,
                clients
                    .admin(probe, input_cluster)
                    .map_err(client_err("admin", input_cluster))?,
            )),
            None => None,
        };
        let input = Input::build(
            probe,
            input_cluster,
            payload,
            topic_management,
            same_topic.clone(),
            shared.clone(),
            producer,
        );
        let mut resume = resume.into_iter();
        let outputs = specs
            .iter()
            .enumerate()
            .map(|(index, o)| {
                let o_cluster = cluster(probe, config, &o.cluster)?;
                let fetcher = clients
                    .consumer(probe, o_cluster)
                    .map_err(client_err("consumer", o_cluster))?;
                let same = same_topic.contains(&index);
                let resume = resume.next().unwrap_or_default();
                Ok(Output::build(
                    probe, index, o, resume, same, fetcher, &shared,
                ))
            })
            .collect::<Result<_, ProbeError>>()?;
        Ok(ProbeRunner {
            name: probe.name.clone(),
            deadline: probe.deadline,
            shared,
            input,
            outputs,
            expiry: ctx.expiry.clone(),
        })
    }

    /// Probes until `cancel`. `stop_input` stops only the sending (tests use
    /// it to let every canary settle); cancelling `cancel` stops everything:
    /// sending stops, the producer drains briefly, consumers stop.
    pub async fn run(self, stop_input: CancellationToken, cancel: CancellationToken) {
        let name = self.name.clone();
        // The input topic first (it may be created here), then every output
        // assigned from its end, and only then canaries: the first one sent
        // is already watched.
        let Some(input_layout) = self.input.wait_for_topic(&cancel).await else {
            return;
        };
        for o in &self.outputs {
            let Some(layout) = o.wait_for_topic(&self.shared, &cancel).await else {
                return;
            };
            let began = tokio::time::Instant::now();
            let mut backoff = Backoff::new(PENDING_RETRY, LAYOUT_REFRESH);
            let mut complete = o.follow(layout, &self.shared).await || o.reads_input;
            while !complete {
                if began.elapsed() >= START_WAIT {
                    warn!(probe = %name, output = %o.name, waited = ?START_WAIT,
                        "starting with output partitions not read yet: canaries that reach them before they are are read late");
                    break;
                }
                if sleep_or_cancel(backoff.next_wait(), &cancel).await {
                    return;
                }
                if let Ok(layout) = o.fetch_layout(&self.shared).await {
                    complete = o.follow(layout, &self.shared).await;
                }
            }
        }
        self.input.follow(input_layout).await;

        for o in &self.outputs {
            o.fetcher.start(cancel.clone());
        }
        let stop_sending = stop_input.child_token();
        let ticker = tokio::spawn(self.input.ticker().run(stop_sending.clone()));
        self.expiry.add(&self.shared);
        info!(probe = %name, run = %self.shared.run, deadline = ?self.deadline, "probe started");

        let mut refresh = tokio::time::interval(LAYOUT_REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.tick().await;
        // Retries of output partitions not read yet, sooner than a refresh.
        let mut pending = Backoff::new(PENDING_RETRY, LAYOUT_REFRESH);
        // A refresh takes the layouts its client read last for every probe
        // (at most half of `LAYOUT_REFRESH` old), except right after a round
        // that left partitions unread or created the input topic again:
        // that one reads its own topics now.
        let mut read_now = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = refresh.tick() => {}
            }
            // Metadata calls against a dead cluster can take a while; a
            // shutdown does not wait for the round to finish.
            let round = async {
                let mut complete = true;
                let mut recreated = false;
                // An output reading the input topic (a heartbeat's) has
                // just read its layout: one metadata request, not two.
                let mut input_layout = None;
                for o in &self.outputs {
                    let layout = if read_now {
                        o.fetch_layout(&self.shared).await
                    } else {
                        o.shared_layout(&self.shared).await
                    };
                    match layout {
                        Ok(layout) => {
                            if o.reads_input && input_layout.is_none() {
                                input_layout = Some(layout.clone());
                            }
                            complete &= o.follow(layout, &self.shared).await;
                        }
                        Err(e) => warn!(probe = %name, output = %o.name, error = %error_chain(&e),
                            "refreshing output topic metadata failed; keeping the last known layout"),
                    }
                }
                let input_layout = match input_layout {
                    Some(layout) => Ok(layout),
                    None if read_now => self.input.fetch_layout().await,
                    None => self.input.shared_layout().await,
                };
                match input_layout {
                    Ok(layout) => {
                        self.input.replace_producer_if_stuck();
                        self.input.grow_if_needed(&layout).await;
                        self.input.follow(layout).await
                    }
                    Err(MetadataError::NoSuchTopic { brokers, .. }) => {
                        warn!(probe = %name,
                            "the input topic does not exist any more; keeping the last known layout");
                        if self.input.recreate_if_gone(brokers).await {
                            // Follow the new topic as soon as its partitions
                            // have leaders, not a whole refresh later.
                            refresh.reset_after(RECREATED_FOLLOW);
                            recreated = true;
                        }
                    }
                    Err(e) => warn!(probe = %name, error = %error_chain(&e),
                        "refreshing input topic metadata failed; keeping the last known layout"),
                }
                (complete, recreated)
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                (complete, recreated) = round => {
                    read_now = !complete || recreated;
                    if complete {
                        pending.reset();
                    } else {
                        refresh.reset_after(pending.next_wait());
                    }
                }
            }
        }

        stop_sending.cancel();
        let _ = ticker.await;
        self.input.flush(FLUSH_GRACE).await;
        self.expiry.remove(&self.shared);
        for o in &self.outputs {
            let fetcher = o.fetcher.clone();
            let _ = tokio::task::spawn_blocking(move || fetcher.join()).await;
        }
        // Dropping the clients purges, flushes and joins librdkafka threads:
        // blocking work, kept off the async runtime.
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
        info!(probe = %name, "probe stopped");
    }
}

/// The expiry of every probe's canaries, driven by one timer: every
/// [`EXPIRY_TICK`] each running probe declares its canaries past their
/// deadline lost, and every [`QUANTILE_REFRESH`] its latency quantile
/// gauges are recomputed. One task for all probes, not one per probe: 200
/// probes cost 10 wake-ups a second, not 2,000.
#[derive(Clone, Default)]
pub struct Expiry(Arc<std::sync::Mutex<Vec<Arc<Shared>>>>);

impl Expiry {
    fn probes(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Shared>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, shared: &Arc<Shared>) {
        self.probes().push(shared.clone());
    }

    fn remove(&self, shared: &Arc<Shared>) {
        self.probes().retain(|s| !Arc::ptr_eq(s, shared));
    }

    /// Ticks until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_quantiles = Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let refresh = now.duration_since(last_quantiles) >= QUANTILE_REFRESH;
            if refresh {
                last_quantiles = now;
            }
            // A copy, so that probes starting or stopping do not wait for
            // the round.
            let probes = self.probes().clone();
            for shared in probes {
                shared.expire(now, refresh);
            }
        }
    }
}
