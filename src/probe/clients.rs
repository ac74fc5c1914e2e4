//! The Kafka clients of a process, shared so that what slaprobe costs grows
//! with its canaries, not with its probes: one producer per cluster (and
//! deadline: librdkafka's message timeout, which is the deadline, is one
//! setting per client) and one consumer per cluster, shared by every probe
//! on it. A probe with `dedicated_client: true` gets clients of its own.
//!
//! Each probe keeps its own tracker, outcomes and metrics: a delivery
//! report carries the probe it belongs to, and the shared consumer hands
//! each record to the outputs that read its partition ([`super::fetcher`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;
use tracing::warn;

use super::fetcher::Fetcher;
use super::Shared;
use crate::config::{Cluster, Config, Probe};
use crate::kafka;
use crate::metrics::{IntCounter, Metrics};

/// Whether the producer still gets canaries acked: the last ack, and how
/// many produces failed since.
pub(crate) struct AckWatch {
    origin: Instant,
    /// Milliseconds since `origin` of the last successful ack (or of the
    /// producer's creation).
    last_ok_ms: AtomicU64,
    failed_since_ok: AtomicU64,
}

impl AckWatch {
    fn new() -> AckWatch {
        AckWatch {
            origin: Instant::now(),
            last_ok_ms: AtomicU64::new(0),
            failed_since_ok: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn acked(&self) {
        self.last_ok_ms.store(self.now_ms(), Ordering::Relaxed);
        self.failed_since_ok.store(0, Ordering::Relaxed);
    }

    fn failed(&self) {
        self.failed_since_ok.fetch_add(1, Ordering::Relaxed);
    }

    /// Nothing acked for `quiet` while produces keep failing.
    fn stuck(&self, quiet: Duration) -> bool {
        let since = self
            .now_ms()
            .saturating_sub(self.last_ok_ms.load(Ordering::Relaxed));
        self.failed_since_ok.load(Ordering::Relaxed) > 0 && since >= quiet.as_millis() as u64
    }
}

/// Counts the requests one client sends, per broker and request type,
/// from librdkafka's statistics (`slaprobe_kafka_requests_total`).
pub(crate) struct RequestStats {
    metrics: Metrics,
    cluster: String,
    client: &'static str,
    /// Per (broker entry, request type): the client's last total and the
    /// counter it goes to.
    seen: Mutex<HashMap<(String, String), (i64, IntCounter)>>,
}

impl RequestStats {
    pub(crate) fn new(metrics: &Metrics, cluster: &str, client: &'static str) -> RequestStats {
        RequestStats {
            metrics: metrics.clone(),
            cluster: cluster.to_string(),
            client,
            seen: Mutex::default(),
        }
    }

    /// One statistics report (JSON): what each broker got since the last.
    pub(crate) fn record(&self, json: &[u8]) {
        #[derive(serde::Deserialize)]
        struct Stats {
            #[serde(default)]
            brokers: HashMap<String, Broker>,
        }
        #[derive(serde::Deserialize)]
        struct Broker {
            nodeid: i32,
            #[serde(default)]
            req: HashMap<String, i64>,
        }
        let Ok(stats) = serde_json::from_slice::<Stats>(json) else {
            return;
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for (entry, b) in stats.brokers {
            // Bootstrap addresses (and the internal broker) have no id.
            let broker = if b.nodeid >= 0 {
                b.nodeid.to_string()
            } else {
                "bootstrap".to_string()
            };
            for (request, total) in b.req {
                if total <= 0 {
                    continue;
                }
                let (last, counter) =
                    seen.entry((entry.clone(), request.clone()))
                        .or_insert_with(|| {
                            let c = self.metrics.client_requests(
                                &self.cluster,
                                self.client,
                                &broker,
                                &request,
                            );
                            (0, c)
                        });
                counter.inc_by(total.saturating_sub(*last).max(0) as u64);
                *last = total;
            }
        }
    }
}

/// The shared consumer's context: its request statistics.
pub(crate) struct FetchContext {
    pub(crate) requests: RequestStats,
}

impl ClientContext for FetchContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.requests.record(statistics);
    }
}

impl rdkafka::consumer::ConsumerContext for FetchContext {}

/// What a produced canary carries to its delivery report: the probe it
/// belongs to, and which canary it is.
pub(crate) struct Delivery {
    pub(crate) shared: Arc<Shared>,
    pub(crate) partition: i32,
    pub(crate) seq: u64,
    pub(crate) sent: Instant,
}

/// Receives librdkafka's delivery reports on its producer thread and hands
/// each to the probe that sent the canary.
pub(crate) struct ProduceContext {
    /// The cluster, and the probes sharing the producer (for logs).
    users: String,
    requests: RequestStats,
    /// Set when librdkafka reports a fatal error: the producer must be
    /// replaced (see [`ProducerSlot`]).
    pub(crate) fatal: Arc<AtomicBool>,
    acks: AckWatch,
    /// Set when slaprobe shuts down: what is purged then is not the
    /// cluster's failure. Any other purge (librdkafka failing its queue
    /// after a fatal error, a replaced producer dropped) counts as failed
    /// produces, so no canary ends without its availability event.
    pub(crate) shutting_down: AtomicBool,
}

impl ClientContext for ProduceContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.requests.record(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if kafka::is_fatal(&error) {
            self.fatal.store(true, Ordering::Relaxed);
        }
        tracing::error!(producer = %self.users, error = %error, reason, "producer error");
    }
}

impl ProducerContext for ProduceContext {
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let Delivery {
            shared,
            partition,
            seq,
            sent,
        } = *opaque;
        let failed_queue = KafkaError::MessageProduction(RDKafkaErrorCode::Fatal);
        let outcome = match result {
            Ok(_) => {
                self.acks.acked();
                Ok(())
            }
            Err((e, _)) => {
                if kafka::is_fatal(e) {
                    self.fatal.store(true, Ordering::Relaxed);
                }
                self.acks.failed();
                if kafka::is_purge(e) && !self.shutting_down.load(Ordering::Relaxed) {
                    Err(&failed_queue)
                } else {
                    Err(e)
                }
            }
        };
        shared.ack(partition, seq, sent, outcome);
    }
}

/// A producer and the thread that serves its delivery reports.
///
/// Not rdkafka's `ThreadedProducer`: its thread polls in 100 ms windows, and
/// the last call of each window asks librdkafka to wait for the remaining
/// time truncated to whole milliseconds, so it spins through the final
/// fraction of a millisecond: about 0.5 % of a core per producer, measured
/// (half of slaprobe's CPU above a bare client at 100 canaries/s). Here a
/// window lasts [`POLL_WINDOW`]; the same spin costs a twentieth of that.
pub(crate) struct Producer {
    producer: Arc<BaseProducer<ProduceContext>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long one poll of the producer's queue lasts: also how long dropping
/// a producer may wait for its thread.
const POLL_WINDOW: Duration = Duration::from_millis(1000);

impl Producer {
    fn new(producer: BaseProducer<ProduceContext>) -> std::io::Result<Producer> {
        let producer = Arc::new(producer);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (producer, stop) = (producer.clone(), stop.clone());
            std::thread::Builder::new()
                .name("produce-reports".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(POLL_WINDOW);
                    }
                })?
        };
        Ok(Producer {
            producer,
            stop,
            thread: Some(thread),
        })
    }
}

impl std::ops::Deref for Producer {
    type Target = BaseProducer<ProduceContext>;
    fn deref(&self) -> &Self::Target {
        &self.producer
    }
}

/// Stops the thread (within a poll window) and then drops the client
/// (purging what it holds and serving those reports): blocking, keep it
/// off the async runtime.
impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The admin client topic management uses.
pub(crate) type Admin = AdminClient<DefaultClientContext>;

/// A producer, replaceable: an idempotent producer that hits a fatal error
/// fails every produce until it is recreated, and the prober must recover
/// by itself. Replacing it drops the old one, which fails what it still
/// held back to each probe as produce errors.
pub(crate) struct ProducerSlot {
    current: RwLock<Arc<Producer>>,
    fatal: Arc<AtomicBool>,
    config: rdkafka::config::ClientConfig,
    users: String,
    metrics: Metrics,
    cluster: String,
    /// A producer that gets nothing acked this long while the cluster
    /// answers metadata is replaced: twice the deadline, at least 10 s
    /// (checked at each layout refresh, so never more often than that).
    stuck_after: Duration,
}

impl ProducerSlot {
    fn new(
        config: rdkafka::config::ClientConfig,
        users: String,
        stuck_after: Duration,
        metrics: &Metrics,
        cluster: &str,
    ) -> Result<ProducerSlot, KafkaError> {
        let fatal = Arc::new(AtomicBool::new(false));
        let producer = Self::create(&config, &users, &fatal, metrics, cluster)?;
        Ok(ProducerSlot {
            current: RwLock::new(Arc::new(producer)),
            fatal,
            config,
            users,
            metrics: metrics.clone(),
            cluster: cluster.to_string(),
            stuck_after,
        })
    }

    fn create(
        config: &rdkafka::config::ClientConfig,
        users: &str,
        fatal: &Arc<AtomicBool>,
        metrics: &Metrics,
        cluster: &str,
    ) -> rdkafka::error::KafkaResult<Producer> {
        let producer = config.create_with_context(ProduceContext {
            users: users.to_string(),
            requests: RequestStats::new(metrics, cluster, "producer"),
            fatal: fatal.clone(),
            acks: AckWatch::new(),
            shutting_down: AtomicBool::new(false),
        })?;
        Producer::new(producer).map_err(|e| {
            KafkaError::ClientCreation(format!("cannot start the delivery report thread: {e}"))
        })
    }

    /// Marks the producer for replacement when nothing has been acked for
    /// `stuck_after` while produces fail, although the cluster answers.
    /// An idempotent producer can end up so: a broker that lost its state
    /// (came back empty) answers every produce with UNKNOWN_PRODUCER_ID,
    /// and librdkafka keeps bumping the epoch of an id the broker no longer
    /// knows. Call it only after a successful metadata request.
    pub(crate) fn replace_if_stuck(&self) {
        if self.get().context().acks.stuck(self.stuck_after)
            && !self.fatal.swap(true, Ordering::Relaxed)
        {
            warn!(producer = %self.users, after = ?self.stuck_after,
                "no canary acked for this long while the cluster answers metadata; replacing the producer");
        }
    }

    pub(crate) fn get(&self) -> Arc<Producer> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the producer after a fatal error (whichever probe's ticker
    /// comes first); the old one is dropped off the async runtime (dropping
    /// purges, which fails its canaries back to their probes, and joins its
    /// threads).
    pub(crate) async fn recover(&self) {
        if !self.fatal.swap(false, Ordering::Relaxed) {
            return;
        }
        match Self::create(
            &self.config,
            &self.users,
            &self.fatal,
            &self.metrics,
            &self.cluster,
        ) {
            Ok(fresh) => {
                let old = std::mem::replace(
                    &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
                    Arc::new(fresh),
                );
                warn!(producer = %self.users, "replaced the producer (fatal error, or stuck); what it still held counts as failed produces");
                let _ = tokio::task::spawn_blocking(move || drop(old)).await;
            }
            Err(e) => {
                self.fatal.store(true, Ordering::Relaxed);
                warn!(producer = %self.users, error = %e, "recreating the producer failed; retrying");
            }
        }
    }
}

/// Which clients a probe uses: those of its cluster, or its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Owner {
    cluster: String,
    /// `Some(probe)` for a probe's dedicated clients.
    dedicated: Option<String>,
}

impl Owner {
    fn of(probe: &Probe, cluster: &str) -> Owner {
        Owner {
            cluster: cluster.to_string(),
            dedicated: probe.dedicated_client.then(|| probe.name.clone()),
        }
    }
}

/// Every client of a process, created on first use; see the module docs.
pub struct Clients {
    metrics: Metrics,
    producers: HashMap<(Owner, Duration), Arc<ProducerSlot>>,
    consumers: HashMap<Owner, Arc<Fetcher>>,
    admins: HashMap<Owner, Arc<Admin>>,
    /// Each producer's probes (for its logs and its queue bound).
    plan: HashMap<(Owner, Duration), Vec<(String, usize)>>,
}

impl Clients {
    /// The clients `config`'s probes will share; none is created yet.
    pub fn new(config: &Config, metrics: &Metrics) -> Clients {
        let mut plan: HashMap<(Owner, Duration), Vec<(String, usize)>> = HashMap::new();
        for p in &config.probes {
            plan.entry((Owner::of(p, p.input_cluster()), p.deadline))
                .or_default()
                .push((p.name.clone(), queue_bound(p)));
        }
        Clients {
            metrics: metrics.clone(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
            admins: HashMap::new(),
            plan,
        }
    }

    /// The producer `probe` sends to `cluster` with.
    pub(crate) fn producer(
        &mut self,
        probe: &Probe,
        cluster: &Cluster,
    ) -> Result<Arc<ProducerSlot>, KafkaError> {
        let key = (Owner::of(probe, &cluster.name), probe.deadline);
        if let Some(p) = self.producers.get(&key) {
            return Ok(p.clone());
        }
        let users = self.plan.get(&key).cloned().unwrap_or_default();
        // The local queue holds what every probe on it may have in flight.
        let bound = users
            .iter()
            .map(|(_, b)| *b)
            .fold(0, usize::saturating_add)
            .max(queue_bound(probe))
            .min(MAX_QUEUE);
        let names: Vec<&str> = users.iter().map(|(n, _)| n.as_str()).collect();
        let label = match names.len() {
            0 | 1 => format!("{}/{}", cluster.name, probe.name),
            n => format!("{} ({n} probes)", cluster.name),
        };
        let slot = Arc::new(ProducerSlot::new(
            kafka::producer_config(cluster, probe.deadline, bound),
            label,
            (probe.deadline * 2).max(Duration::from_secs(10)),
            &self.metrics,
            &cluster.name,
        )?);
        self.producers.insert(key, slot.clone());
        Ok(slot)
    }

    /// The consumer `probe`'s outputs on `cluster` read with.
    pub(crate) fn consumer(
        &mut self,
        probe: &Probe,
        cluster: &Cluster,
    ) -> Result<Arc<Fetcher>, KafkaError> {
        let key = Owner::of(probe, &cluster.name);
        if let Some(f) = self.consumers.get(&key) {
            return Ok(f.clone());
        }
        let name = match &key.dedicated {
            Some(p) => format!("{}/{p}", cluster.name),
            None => cluster.name.clone(),
        };
        let context = FetchContext {
            requests: RequestStats::new(&self.metrics, &cluster.name, "consumer"),
        };
        let fetcher = Arc::new(Fetcher::new(cluster, name, context)?);
        self.consumers.insert(key, fetcher.clone());
        Ok(fetcher)
    }

    /// The admin client `probe` manages its topic on `cluster` with.
    pub(crate) fn admin(
        &mut self,
        probe: &Probe,
        cluster: &Cluster,
    ) -> Result<Arc<Admin>, KafkaError> {
        let key = Owner::of(probe, &cluster.name);
        if let Some(a) = self.admins.get(&key) {
            return Ok(a.clone());
        }
        let admin: Arc<Admin> = Arc::new(kafka::admin_config(cluster).create()?);
        self.admins.insert(key, admin.clone());
        Ok(admin)
    }

    /// (producers, consumers, admin clients) created so far.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.producers.len(),
            self.consumers.len(),
            self.admins.len(),
        )
    }
}

/// The most a shared producer queues (ten probes' worth at the largest
/// per-probe bound); librdkafka allows up to 2^31 - 1.
const MAX_QUEUE: usize = 10_000_000;

fn queue_bound(probe: &Probe) -> usize {
    kafka::queue_bound(probe.deadline, probe.interval)
}
