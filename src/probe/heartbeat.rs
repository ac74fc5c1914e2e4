//! The heartbeat probe: canaries into every partition of one topic, found
//! again on the same topic by a consumer with explicit assignment.
//!
//! Threads and tasks of one probe:
//! - the ticker (async) sends one canary per partition per interval,
//!   round-robin, spread evenly over the interval;
//! - librdkafka's producer thread reports acks to [`ProduceContext`];
//! - the consumer thread polls the assigned partitions and matches arrivals;
//! - the expiry task (async) declares canaries lost at their deadline;
//! - the layout loop (async, metadata calls off the runtime) follows the
//!   topic's partitions and leaders and assigns new partitions.
//!
//! They share one mutex around the tracker and the metric handles; each
//! holds it for a few microseconds per canary.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::canary::{self, Canary, Decoded, RunId, ID_HEADER, SENT_HEADER};
use crate::config::{Cluster, Heartbeat, Probe, HEARTBEAT_OUTPUT};
use crate::http::Readiness;
use crate::kafka::{self, MetadataError, TopicLayout};
use crate::latency::{LatencyWindow, QUANTILES, WINDOWS};
use crate::metrics::{InputMetrics, Metrics, OutputMetrics};
use crate::tracker::{Arrival, Outcome, Tracker};

use super::{Backoff, ProbeError};

/// How often deadlines are checked: a loss is reported at most this late.
pub const EXPIRY_TICK: Duration = Duration::from_millis(100);
/// How often the HDR quantile gauges are recomputed.
const QUANTILE_REFRESH: Duration = Duration::from_secs(5);
/// How often the topic's partitions and leaders are re-read.
pub const LAYOUT_REFRESH: Duration = Duration::from_secs(10);
/// Consumer poll timeout: also how quickly the consumer thread notices
/// shutdown.
const POLL: Duration = Duration::from_millis(100);
/// Longest wait for the producer to drain at shutdown.
const FLUSH_GRACE: Duration = Duration::from_secs(3);

/// Everything the probe's threads share.
struct Shared {
    name: String,
    run: RunId,
    state: Mutex<State>,
    readiness: Arc<Readiness>,
}

struct State {
    tracker: Tracker,
    rec: Recorder,
}

/// Turns outcomes into metrics; separate from the tracker so both can be
/// borrowed at once.
struct Recorder {
    probe: String,
    readiness: Arc<Readiness>,
    window: LatencyWindow,
    input: InputMetrics,
    output: OutputMetrics,
    layout: Option<TopicLayout>,
}

impl Recorder {
    fn leader(&self, partition: i32) -> Option<i32> {
        self.layout.as_ref().and_then(|l| l.leader(partition))
    }

    fn apply(&mut self, outcome: Outcome, now: Instant) {
        match outcome {
            Outcome::Delivered {
                partition,
                latency,
                out_of_order,
            } => {
                self.output.delivered(latency, out_of_order);
                self.window.record(latency, now);
                let leader = self.leader(partition);
                self.input.partition_delivered(partition, leader);
                self.readiness.probe_matched(&self.probe);
            }
            Outcome::Lost { .. } => self.output.lost(),
            Outcome::Late { .. } => self.output.late.inc(),
            Outcome::Duplicate { .. } => self.output.duplicate.inc(),
            Outcome::Acked { partition, latency } => {
                let leader = self.leader(partition);
                self.input.acked(leader, latency);
            }
            // Counted with its error class where the failure is known.
            Outcome::ProduceFailed { .. } => {}
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the tracker in a state
        // worse than a lost update; keep probing rather than cascade.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ack(&self, partition: i32, seq: u64, result: Result<(), &rdkafka::error::KafkaError>) {
        let now = Instant::now();
        let mut st = self.lock();
        let State { tracker, rec } = &mut *st;
        if let Err(e) = result {
            rec.input.produce_failed(kafka::classify(e));
            debug!(probe = %self.name, partition, seq, error = %e, "produce failed");
        }
        tracker.on_ack(partition, seq, result.is_ok(), now, &mut |o| {
            rec.apply(o, now)
        });
    }

    /// Matches one consumed record.
    fn arrival(&self, msg: &impl Message) {
        let now = Instant::now();
        let decoded = match msg.headers() {
            None => Decoded::NotCanary,
            Some(h) => canary::decode_headers(h.iter().map(|h| (h.key, h.value))),
        };
        let mut st = self.lock();
        let State { tracker, rec } = &mut *st;
        match decoded {
            Decoded::Canary { id, .. } if id.probe == self.name && id.run == self.run => {
                let arrival =
                    tracker.on_arrival(id.partition, id.seq, now, &mut |o| rec.apply(o, now));
                match arrival {
                    Arrival::Unknown => rec.output.foreign.inc(),
                    Arrival::AfterFailedProduce => {
                        debug!(probe = %self.name, %id, "canary arrived although its produce was reported failed")
                    }
                    Arrival::Counted | Arrival::AwaitingAck => {}
                }
            }
            _ => rec.output.foreign.inc(),
        }
    }
}

/// Receives librdkafka's delivery reports on its producer thread.
struct ProduceContext {
    shared: Arc<Shared>,
}

impl ClientContext for ProduceContext {}

impl ProducerContext for ProduceContext {
    /// (partition, seq) of the canary.
    type DeliveryOpaque = Box<(i32, u64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (partition, seq) = *opaque;
        self.shared.ack(
            partition,
            seq,
            result.as_ref().map(|_| ()).map_err(|(e, _)| e),
        );
    }
}

/// A heartbeat probe, built from config with its clients created and its
/// metrics registered; [`HeartbeatProbe::run`] drives it.
pub struct HeartbeatProbe {
    probe: Probe,
    hb: Heartbeat,
    cluster: Cluster,
    shared: Arc<Shared>,
    producer: Arc<ThreadedProducer<ProduceContext>>,
    consumer: Arc<BaseConsumer>,
    admin: Option<AdminClient<DefaultClientContext>>,
    /// Partitions canaries are produced to: only those the consumer is
    /// assigned, so no canary is sent where nobody looks.
    partitions: Arc<RwLock<Arc<Vec<i32>>>>,
}

impl HeartbeatProbe {
    pub fn build(
        probe: &Probe,
        hb: &Heartbeat,
        cluster: &Cluster,
        run: RunId,
        metrics: &Metrics,
        readiness: Arc<Readiness>,
    ) -> Result<HeartbeatProbe, ProbeError> {
        let origin = Instant::now();
        let shared = Arc::new(Shared {
            name: probe.name.clone(),
            run,
            readiness: readiness.clone(),
            state: Mutex::new(State {
                tracker: Tracker::new(probe.deadline),
                rec: Recorder {
                    probe: probe.name.clone(),
                    readiness,
                    window: LatencyWindow::new(origin, probe.deadline),
                    input: metrics.input(&probe.name, &cluster.name, &hb.topic, HEARTBEAT_OUTPUT),
                    output: metrics.output(probe, HEARTBEAT_OUTPUT),
                    layout: None,
                },
            }),
        });
        // Canaries in flight per partition are at most deadline/interval;
        // allow that for up to 1024 partitions before librdkafka says
        // QueueFull (counted as a produce error, never buffered elsewhere).
        let per_partition = probe
            .deadline
            .as_nanos()
            .div_ceil(probe.interval.as_nanos().max(1));
        let queue_bound = (per_partition.saturating_mul(1024)).clamp(1_000, 1_000_000) as usize;
        let client_err = |role: &'static str| {
            let probe = probe.name.clone();
            move |e: rdkafka::error::KafkaError| ProbeError::Client {
                probe,
                role,
                error: e.to_string(),
            }
        };
        let producer: ThreadedProducer<ProduceContext> =
            kafka::producer_config(cluster, probe.deadline, queue_bound)
                .create_with_context(ProduceContext {
                    shared: shared.clone(),
                })
                .map_err(client_err("producer"))?;
        let consumer: BaseConsumer = kafka::consumer_config(cluster)
            .create()
            .map_err(client_err("consumer"))?;
        let admin = if hb.topic_management.create {
            Some(
                kafka::admin_config(cluster)
                    .create()
                    .map_err(client_err("admin"))?,
            )
        } else {
            None
        };
        Ok(HeartbeatProbe {
            probe: probe.clone(),
            hb: hb.clone(),
            cluster: cluster.clone(),
            shared,
            producer: Arc::new(producer),
            consumer: Arc::new(consumer),
            admin,
            partitions: Arc::new(RwLock::new(Arc::new(Vec::new()))),
        })
    }

    /// Probes until `cancel`; then stops producing, drains briefly and
    /// returns.
    pub async fn run(self, cancel: CancellationToken) {
        let name = self.probe.name.clone();
        let Some(layout) = self.wait_for_topic(&cancel).await else {
            return;
        };
        let mut assigned = BTreeSet::new();
        self.follow_layout(layout, &mut assigned).await;

        let consumer_thread = self.spawn_consumer(cancel.clone());
        let ticker = tokio::spawn(self.ticker(cancel.clone()));
        let expiry = tokio::spawn(expiry(self.shared.clone(), cancel.clone()));
        info!(probe = %name, cluster = %self.cluster.name, topic = %self.hb.topic,
              partitions = assigned.len(), run = %self.shared.run, "heartbeat probe started");

        let mut refresh = tokio::time::interval(LAYOUT_REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = refresh.tick() => {}
            }
            match self.fetch_layout().await {
                Ok(layout) => self.follow_layout(layout, &mut assigned).await,
                Err(e) => {
                    warn!(probe = %name, error = %e, "refreshing topic metadata failed; keeping the last known layout")
                }
            }
        }

        let _ = ticker.await;
        let producer = self.producer.clone();
        let _ = tokio::task::spawn_blocking(move || producer.flush(FLUSH_GRACE)).await;
        let _ = expiry.await;
        if let Some(t) = consumer_thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        info!(probe = %name, "heartbeat probe stopped");
    }

    async fn fetch_layout(&self) -> Result<TopicLayout, MetadataError> {
        let consumer = self.consumer.clone();
        let topic = self.hb.topic.clone();
        let result =
            tokio::task::spawn_blocking(move || kafka::fetch_layout(consumer.client(), &topic))
                .await
                .unwrap_or_else(|e| Err(MetadataError::Task(e.to_string())));
        if !matches!(
            result,
            Err(MetadataError::Kafka(_) | MetadataError::Task(_))
        ) {
            // The cluster answered, whether or not the topic exists.
            self.shared
                .readiness
                .cluster_has_metadata(&self.cluster.name);
        }
        result
    }

    /// Waits until the topic exists (creating or growing it when
    /// `topic_management.create` says so). `None` when cancelled first.
    async fn wait_for_topic(&self, cancel: &CancellationToken) -> Option<TopicLayout> {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        loop {
            let layout = self.fetch_layout().await;
            let (existing, brokers) = match &layout {
                Ok(l) => (Some(l.partitions.len()), l.brokers.len()),
                Err(MetadataError::NoSuchTopic { brokers, .. }) => (None, *brokers),
                Err(e) => {
                    warn!(probe = %self.probe.name, cluster = %self.cluster.name, error = %e, "cannot read topic metadata; retrying");
                    if sleep_or_cancel(backoff.next_wait(), cancel).await {
                        return None;
                    }
                    continue;
                }
            };
            match (&self.admin, layout) {
                (Some(admin), layout) => {
                    match kafka::ensure_topic(
                        admin,
                        &self.hb.topic,
                        &self.hb.topic_management,
                        brokers,
                        existing,
                    )
                    .await
                    {
                        Ok(false) => {
                            if let Ok(l) = layout {
                                return Some(l);
                            }
                        }
                        Ok(true) => info!(probe = %self.probe.name, topic = %self.hb.topic,
                            partitions = kafka::wanted_partitions(&self.hb.topic_management, brokers), "topic created or grown"),
                        Err(e) => {
                            warn!(probe = %self.probe.name, error = %e, "topic management failed; retrying")
                        }
                    }
                }
                (None, Ok(l)) => return Some(l),
                (None, Err(e)) => {
                    warn!(probe = %self.probe.name, cluster = %self.cluster.name, error = %e,
                    "waiting for the topic (slaprobe only observes it: create it, or set topic_management.create: true)")
                }
            }
            if sleep_or_cancel(backoff.next_wait(), cancel).await {
                return None;
            }
        }
    }

    /// Adopts a new layout: leaders for labels, coverage gauge, and new
    /// partitions assigned (from their current end) before the producer may
    /// use them, so the first canary of each is seen.
    async fn follow_layout(&self, layout: TopicLayout, assigned: &mut BTreeSet<i32>) {
        let new: Vec<i32> = layout
            .partitions
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| !assigned.contains(p))
            .collect();
        if !new.is_empty() {
            let consumer = self.consumer.clone();
            let producer = self.producer.clone();
            let topic = self.hb.topic.clone();
            let added = tokio::task::spawn_blocking(move || {
                // The producer's own metadata cache must know the new
                // partitions too, or librdkafka rejects produces to them
                // (unknown partition) until its next periodic refresh.
                if let Err(e) = producer
                    .client()
                    .fetch_metadata(Some(&topic), kafka::METADATA_TIMEOUT)
                {
                    warn!(topic, error = %e, "refreshing the producer's metadata failed");
                }
                assign_from_end(&consumer, &topic, &new)
            })
            .await
            .unwrap_or_default();
            assigned.extend(added);
        }
        let current: BTreeSet<i32> = layout.partitions.iter().map(|(p, _)| *p).collect();
        // Partitions that vanished (topic re-created smaller) are no longer
        // produced to; the consumer keeps its assignment, harmlessly.
        let probed: Vec<i32> = assigned.intersection(&current).copied().collect();
        let leaders: BTreeSet<i32> = layout
            .partitions
            .iter()
            .filter(|(p, _)| probed.contains(p))
            .filter_map(|(_, l)| *l)
            .collect();
        let uncovered = layout.brokers.difference(&leaders).count();
        {
            let mut st = self.shared.lock();
            st.rec.input.brokers_uncovered.set(uncovered as i64);
            st.rec.layout = Some(layout);
        }
        let mut slot = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        if **slot != probed {
            *slot = Arc::new(probed);
        }
    }

    fn spawn_consumer(&self, cancel: CancellationToken) -> Option<JoinHandle<()>> {
        let consumer = self.consumer.clone();
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("consume-{}", self.probe.name))
            .spawn(move || {
                while !cancel.is_cancelled() {
                    match consumer.poll(POLL) {
                        None => {}
                        Some(Ok(msg)) => shared.arrival(&msg),
                        Some(Err(e)) => debug!(probe = %shared.name, error = %e, "consume error"),
                    }
                }
            });
        match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                warn!(probe = %self.probe.name, error = %e, "cannot start the consumer thread");
                None
            }
        }
    }

    /// Sends canaries: each interval one per partition, spread evenly, in
    /// round-robin order. When it falls behind by more than a round it skips
    /// ahead rather than bursting.
    fn ticker(
        &self,
        cancel: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        let producer = self.producer.clone();
        let partitions = self.partitions.clone();
        let topic = self.hb.topic.clone();
        let interval = self.probe.interval;
        let payload_bytes = self.probe.payload_bytes;
        async move {
            let mut payload = String::with_capacity(payload_bytes + 128);
            let mut next = tokio::time::Instant::now();
            let mut rr = 0usize;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep_until(next) => {}
                }
                let parts = partitions.read().unwrap_or_else(|e| e.into_inner()).clone();
                if parts.is_empty() {
                    next += interval;
                    continue;
                }
                let slot = interval / parts.len() as u32;
                let now = tokio::time::Instant::now();
                let mut sent = 0;
                while next <= now && sent < parts.len() {
                    let partition = parts[rr % parts.len()];
                    rr = rr.wrapping_add(1);
                    send_one(
                        &shared,
                        &producer,
                        &topic,
                        partition,
                        payload_bytes,
                        &mut payload,
                    );
                    next += slot.max(Duration::from_micros(1));
                    sent += 1;
                }
                if next <= now {
                    next = now + slot;
                }
            }
        }
    }
}

fn send_one(
    shared: &Shared,
    producer: &ThreadedProducer<ProduceContext>,
    topic: &str,
    partition: i32,
    payload_bytes: usize,
    payload: &mut String,
) {
    let now = Instant::now();
    let sent_ns = canary::unix_ns(SystemTime::now());
    let seq = {
        let mut st = shared.lock();
        st.rec.input.sent.inc();
        st.tracker.on_send(partition, now)
    };
    let c = Canary {
        probe: &shared.name,
        run: shared.run,
        partition,
        seq,
        sent_ns,
    };
    c.write_heartbeat_payload(payload_bytes, payload);
    let id = c.id().to_string();
    let sent = sent_ns.to_string();
    let headers = OwnedHeaders::new_with_capacity(2)
        .insert(Header {
            key: ID_HEADER,
            value: Some(&id),
        })
        .insert(Header {
            key: SENT_HEADER,
            value: Some(&sent),
        });
    let record = BaseRecord::with_opaque_to(topic, Box::new((partition, seq)))
        .partition(partition)
        .key(&id)
        .payload(payload.as_str())
        .timestamp((sent_ns / 1_000_000) as i64)
        .headers(headers);
    if let Err((e, _)) = producer.send(record) {
        shared.ack(partition, seq, Err(&e));
    }
}

/// Assigns `partitions` from their current end offsets; returns those that
/// were assigned (a partition whose offsets cannot be read now is retried
/// at the next layout refresh rather than guessed at).
fn assign_from_end(consumer: &BaseConsumer, topic: &str, partitions: &[i32]) -> Vec<i32> {
    let mut tpl = TopicPartitionList::new();
    let mut added = Vec::new();
    for &p in partitions {
        match consumer.fetch_watermarks(topic, p, kafka::METADATA_TIMEOUT) {
            Ok((_, high)) => {
                if tpl
                    .add_partition_offset(topic, p, Offset::Offset(high))
                    .is_ok()
                {
                    added.push(p);
                }
            }
            Err(e) => {
                warn!(topic, partition = p, error = %e, "cannot read end offset; partition not probed until the next refresh")
            }
        }
    }
    if added.is_empty() {
        return added;
    }
    match consumer.incremental_assign(&tpl) {
        Ok(()) => added,
        Err(e) => {
            warn!(topic, error = %e, "assigning partitions failed; retrying at the next refresh");
            Vec::new()
        }
    }
}

/// Declares canaries lost at their deadline and refreshes the gauges.
async fn expiry(shared: Arc<Shared>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_quantiles = Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let mut st = shared.lock();
        let State { tracker, rec } = &mut *st;
        tracker.expire(now, &mut |o| rec.apply(o, now));
        rec.input.in_flight.set(tracker.in_flight() as i64);
        if now.duration_since(last_quantiles) >= QUANTILE_REFRESH {
            last_quantiles = now;
            refresh_quantiles(rec, now);
        }
    }
}

fn refresh_quantiles(rec: &mut Recorder, now: Instant) {
    for (w, (_, length)) in WINDOWS.iter().enumerate() {
        let values = rec.window.quantiles(*length, now);
        for (q, _) in QUANTILES.iter().enumerate() {
            // No data in the window: NaN, which Prometheus shows as a gap
            // rather than a misleading zero.
            let v = values.map_or(f64::NAN, |v| v[q]);
            rec.output.quantiles[w][q].set(v);
        }
    }
}

/// Sleeps `d` unless cancelled first; true when cancelled.
async fn sleep_or_cancel(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
