//! The producer side's client: a producer whose thread serves delivery
//! reports, each handed to the probe that sent the canary
//! ([`ProduceContext`]), and the slot that replaces it when it can no
//! longer produce ([`ProducerSlot`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;
use tracing::warn;

use crate::config::Cluster;
use crate::kafka::{self, Role};
use crate::metrics::{Metrics, RequestStats};
use crate::outcome::{ProduceFailure, Shared};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

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
    /// Its requests and errors, counted (and its errors logged).
    pub(crate) requests: RequestStats,
    /// Set when librdkafka reports a fatal error: the producer must be
    /// replaced (see [`ProducerSlot`]).
    pub(crate) fatal: Arc<AtomicBool>,
    acks: AckWatch,
    /// Set when slaprobe shuts down: what is purged then is not the
    /// cluster's failure. Any other purge (librdkafka failing its queue
    /// after a fatal error, a replaced producer dropped) counts as failed
    /// produces, so no canary ends without its availability event.
    pub(crate) shutting_down: AtomicBool,
    /// Why the client cannot reach the cluster (credentials refused, a
    /// failed TLS handshake), from the error callback, until the next ack:
    /// the class of the timeouts it causes.
    refused: Mutex<Option<kafka::ProduceError>>,
}

impl ClientContext for ProduceContext {
    fn stats_raw(&self, statistics: &[u8]) {
        self.requests.record(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if kafka::is_fatal(&error) {
            self.fatal.store(true, Ordering::Relaxed);
        }
        let refusal = kafka::connection_refusal(&error);
        if refusal.is_some() {
            *lock(&self.refused) = refusal;
        }
        self.requests.error(&error, reason);
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
                *lock(&self.refused) = None;
                Ok(())
            }
            Err((e, _)) => {
                if kafka::is_fatal(e) {
                    self.fatal.store(true, Ordering::Relaxed);
                }
                self.acks.failed();
                let e = if kafka::is_purge(e) && !self.shutting_down.load(Ordering::Relaxed) {
                    &failed_queue
                } else {
                    e
                };
                let mut failure = ProduceFailure::of(e);
                failure.class = attribute(failure.class, *lock(&self.refused));
                Err(failure)
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
                    let _watch = crate::util::threads::Watch::new("produce-reports");
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

/// A producer, replaceable: an idempotent producer that hits a fatal error
/// fails every produce until it is recreated, and the prober must recover
/// by itself. Replacing it drops the old one, which fails what it still
/// held back to each probe as produce errors.
pub(crate) struct ProducerSlot {
    current: RwLock<Arc<Producer>>,
    fatal: Arc<AtomicBool>,
    cluster: Cluster,
    role: Role,
    users: String,
    metrics: Metrics,
    /// A producer that gets nothing acked this long while the cluster
    /// answers metadata is replaced: twice the deadline, at least 10 s
    /// (checked at each layout refresh, so never more often than that).
    stuck_after: Duration,
    /// The last layout read of the input topics, shared by their probes.
    pub(crate) layouts: kafka::SharedLayouts,
}

impl ProducerSlot {
    /// A producer of `cluster` in `role` (a [`Role::Producer`]), shared by
    /// `users` (for logs).
    pub(crate) fn new(
        cluster: &Cluster,
        role: Role,
        users: String,
        stuck_after: Duration,
        metrics: &Metrics,
    ) -> Result<ProducerSlot, KafkaError> {
        let fatal = Arc::new(AtomicBool::new(false));
        let producer = Self::create(cluster, role, &fatal, metrics)?;
        Ok(ProducerSlot {
            current: RwLock::new(Arc::new(producer)),
            fatal,
            cluster: cluster.clone(),
            role,
            users,
            metrics: metrics.clone(),
            stuck_after,
            layouts: kafka::SharedLayouts::default(),
        })
    }

    fn create(
        cluster: &Cluster,
        role: Role,
        fatal: &Arc<AtomicBool>,
        metrics: &Metrics,
    ) -> rdkafka::error::KafkaResult<Producer> {
        let context = ProduceContext {
            requests: RequestStats::new(metrics, &cluster.name, "producer"),
            fatal: fatal.clone(),
            acks: AckWatch::new(),
            shutting_down: AtomicBool::new(false),
            refused: Mutex::default(),
        };
        let producer = kafka::client::create(cluster, role, context)?;
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

    /// Marks the producer for replacement now: the topic it wrote to was
    /// created again (deleted, or its broker came back empty), and an
    /// idempotent producer's sequence state for it is worthless (the
    /// broker answers UNKNOWN_PRODUCER_ID or out-of-order sequence until
    /// [`ProducerSlot::replace_if_stuck`] would notice, twice the deadline
    /// later).
    pub(crate) fn replace_now(&self, why: &str) {
        if !self.fatal.swap(true, Ordering::Relaxed) {
            warn!(producer = %self.users, why, "replacing the producer");
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
        match Self::create(&self.cluster, self.role, &self.fatal, &self.metrics) {
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

/// The class of a failed produce: a timeout (or lost connection) while the
/// cluster refuses the client (`refused`: its credentials, its TLS
/// handshake) is that refusal; any other failure is its own.
fn attribute(
    class: kafka::ProduceError,
    refused: Option<kafka::ProduceError>,
) -> kafka::ProduceError {
    use kafka::ProduceError as E;
    match (class, refused) {
        (E::Timeout | E::Transport, Some(why)) => why,
        (class, _) => class,
    }
}

#[cfg(test)]
mod tests {
    use super::attribute;
    use crate::kafka::ProduceError as E;

    #[test]
    fn timeouts_while_refused_are_the_refusal_and_nothing_else_is() {
        assert_eq!(
            attribute(E::Timeout, Some(E::Authentication)),
            E::Authentication
        );
        assert_eq!(attribute(E::Transport, Some(E::Tls)), E::Tls);
        assert_eq!(attribute(E::Timeout, None), E::Timeout);
        assert_eq!(attribute(E::Authorization, Some(E::Tls)), E::Authorization);
        assert_eq!(
            attribute(E::QueueFull, Some(E::Authentication)),
            E::QueueFull
        );
    }
}
