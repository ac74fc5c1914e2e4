//! The input side of a probe: the producer, the canaries it renders, the
//! ticker that spreads them over the input topic's partitions, and topic
//! management.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::canary::template::{Template, Values};
use crate::canary::{self, Canary, ID_HEADER, SENT_HEADER};
use crate::config::{Cluster, PipelineInput, Probe, TopicManagement};
use crate::kafka::{self, MetadataError, TopicLayout};

use super::clients::{Admin, Delivery, Producer, ProducerSlot};
use super::{sleep_or_cancel, Shared};
use crate::util::format::error_chain;
use crate::util::Backoff;

/// What a canary's key, value and extra headers are.
pub(crate) enum Payload {
    /// The heartbeat JSON object, keyed by the id.
    Heartbeat,
    /// A pipeline probe's templates.
    Template {
        payload: Template,
        /// `None`: the id.
        key: Option<Template>,
        headers: Vec<(String, String)>,
    },
}

/// What a canary's record carries besides its payload: the id (also the
/// `slaprobe-id` header), the send time (the `slaprobe-sent-ns` header)
/// and the key.
pub(crate) struct CanaryRecord {
    pub(crate) id: String,
    pub(crate) sent: String,
    pub(crate) key: String,
}

impl Payload {
    /// Canary `c`'s record: its payload written into `buf` (reused from
    /// canary to canary), the rest returned.
    pub(crate) fn record(
        &self,
        c: &Canary<'_>,
        payload_bytes: usize,
        buf: &mut String,
    ) -> CanaryRecord {
        let id = c.id().to_string();
        let sent = c.sent_ns.to_string();
        let key = match self {
            Payload::Heartbeat => {
                c.write_heartbeat_payload(payload_bytes, buf);
                id.clone()
            }
            Payload::Template { payload, key, .. } => {
                let run = c.run.to_string();
                let values = Values {
                    id: &id,
                    probe: c.probe,
                    run: &run,
                    seq: c.seq,
                    partition: c.partition,
                    sent_ns: c.sent_ns,
                };
                *buf = payload.render(&values, payload_bytes);
                key.as_ref()
                    .map_or_else(|| id.clone(), |k| k.render(&values, 0))
            }
        };
        CanaryRecord { id, sent, key }
    }

    /// The configured extra headers (pipeline probes).
    pub(crate) fn extra_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let extra: &[(String, String)] = match self {
            Payload::Heartbeat => &[],
            Payload::Template { headers, .. } => headers,
        };
        extra.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(crate) fn template(input: &PipelineInput) -> Result<Payload, String> {
        Ok(Payload::Template {
            payload: Template::parse(&input.payload)?,
            key: input.key.as_deref().map(Template::parse).transpose()?,
            headers: input
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

/// The most a ticker catches up at once when it is behind by less than an
/// interval: several timer wakes' worth (tokio's timer has a 1 ms grain).
const CATCH_UP: Duration = Duration::from_millis(5);

/// What a ticker wake `late` past its next send time does, with a canary
/// every `slot` and a round every `interval`: how many canaries it sends
/// (every one whose time has come: the timer wakes about once a
/// millisecond, and a slot can be much shorter), and how much of the
/// schedule it skips (after a stall longer than a round or [`CATCH_UP`],
/// rather than bursting).
fn due(late: Duration, slot: Duration, interval: Duration) -> (u64, Duration) {
    let caught_up = late.min(interval.max(CATCH_UP));
    let count = (caught_up.as_nanos() / slot.as_nanos().max(1)) as u64 + 1;
    (count, late - caught_up)
}

pub(crate) struct Input {
    probe: String,
    cluster: Cluster,
    topic: String,
    interval: Duration,
    payload_bytes: usize,
    payload: Arc<Payload>,
    /// With `topic_management.create`: how, and the cluster's admin client.
    topic_management: Option<(TopicManagement, Arc<Admin>)>,
    /// Outputs reading this very topic: only partitions they are assigned
    /// are produced to, so no canary is sent where nobody looks yet.
    same_topic_outputs: Vec<usize>,
    shared: Arc<Shared>,
    producer: Arc<ProducerSlot>,
    /// Partitions canaries go to.
    partitions: Arc<RwLock<Arc<Vec<i32>>>>,
}

impl Input {
    pub(crate) fn build(
        probe: &Probe,
        cluster: &Cluster,
        payload: Payload,
        topic_management: Option<(TopicManagement, Arc<Admin>)>,
        same_topic_outputs: Vec<usize>,
        shared: Arc<Shared>,
        producer: Arc<ProducerSlot>,
    ) -> Input {
        Input {
            probe: probe.name.clone(),
            cluster: cluster.clone(),
            topic: probe.input_topic().to_string(),
            interval: probe.interval,
            payload_bytes: probe.payload_bytes,
            payload: Arc::new(payload),
            topic_management,
            same_topic_outputs,
            shared,
            producer,
            partitions: Arc::new(RwLock::new(Arc::new(Vec::new()))),
        }
    }

    pub(crate) async fn fetch_layout(&self) -> Result<TopicLayout, MetadataError> {
        let producer = self.producer.get();
        let topic = self.topic.clone();
        super::fetch_layout(&self.shared, &self.cluster.name, move || {
            kafka::fetch_layout(producer.client(), &topic)
        })
        .await
    }

    /// Waits until the topic exists (creating or growing it when
    /// `topic_management.create` says so). `None` when cancelled first.
    pub(crate) async fn wait_for_topic(&self, cancel: &CancellationToken) -> Option<TopicLayout> {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        loop {
            let layout = self.fetch_layout().await;
            let (existing, brokers) = match &layout {
                Ok(l) => (Some(l.partitions.len()), l.brokers.len()),
                Err(MetadataError::NoSuchTopic { brokers, .. }) => (None, *brokers),
                Err(e) => {
                    warn!(probe = %self.probe, cluster = %self.cluster.name, error = %error_chain(e),
                        "cannot read the input topic's metadata; retrying");
                    if sleep_or_cancel(backoff.next_wait(), cancel).await {
                        return None;
                    }
                    continue;
                }
            };
            match (&self.topic_management, layout) {
                (Some((tm, admin)), layout) => {
                    match kafka::ensure_topic(admin, &self.topic, tm, brokers, existing).await {
                        Ok(false) => {
                            if let Ok(l) = layout {
                                return Some(l);
                            }
                        }
                        Ok(true) => info!(probe = %self.probe, topic = %self.topic,
                            partitions = kafka::wanted_partitions(tm, brokers), "topic created or grown"),
                        Err(e) => {
                            warn!(probe = %self.probe, error = %error_chain(&e), "topic management failed; retrying")
                        }
                    }
                }
                (_, Ok(l)) => return Some(l),
                (_, Err(e)) => {
                    warn!(probe = %self.probe, cluster = %self.cluster.name, error = %error_chain(&e),
                    "waiting for the input topic (slaprobe only observes it: create it, or set topic_management.create: true on a heartbeat probe)")
                }
            }
            if sleep_or_cancel(backoff.next_wait(), cancel).await {
                return None;
            }
        }
    }

    /// With `topic_management.create`, grows the topic when the cluster has
    /// gained brokers (or had some down when the topic was created), so
    /// every broker keeps leading a probed partition. The new partitions are
    /// picked up at the next refresh.
    pub(crate) async fn grow_if_needed(&self, layout: &TopicLayout) {
        let Some((tm, admin)) = &self.topic_management else {
            return;
        };
        let brokers = layout.brokers.len();
        if layout.partitions.len() >= kafka::wanted_partitions(tm, brokers) {
            return;
        }
        match kafka::ensure_topic(
            admin,
            &self.topic,
            tm,
            brokers,
            Some(layout.partitions.len()),
        )
        .await
        {
            Ok(true) => info!(probe = %self.probe, topic = %self.topic,
                partitions = kafka::wanted_partitions(tm, brokers), "topic grown to cover every broker"),
            Ok(false) => {}
            Err(e) => {
                warn!(probe = %self.probe, error = %error_chain(&e), "growing the topic failed; retrying at the next refresh")
            }
        }
    }

    /// See [`ProducerSlot::replace_if_stuck`]; after a successful metadata
    /// request for the input topic.
    pub(crate) fn replace_producer_if_stuck(&self) {
        self.producer.replace_if_stuck();
    }

    /// With `topic_management.create`, creates the topic again when it has
    /// gone (deleted, or a broker came back empty): canaries sent meanwhile
    /// fail as produce errors, and delivery resumes without a restart.
    pub(crate) async fn recreate_if_gone(&self, brokers: usize) {
        let Some((tm, admin)) = &self.topic_management else {
            return;
        };
        match kafka::ensure_topic(admin, &self.topic, tm, brokers, None).await {
            Ok(true) => warn!(probe = %self.probe, topic = %self.topic,
                partitions = kafka::wanted_partitions(tm, brokers), "the topic had gone; created it again"),
            Ok(false) => {}
            Err(e) => {
                warn!(probe = %self.probe, error = %error_chain(&e), "creating the gone topic again failed; retrying at the next refresh")
            }
        }
    }

    /// Adopts a new layout of the input topic: leaders for labels, the
    /// coverage gauge, and the partitions canaries go to.
    pub(crate) async fn follow(&self, layout: TopicLayout) {
        let mut usable: BTreeSet<i32> = layout.partitions.iter().map(|(p, _)| *p).collect();
        for &o in &self.same_topic_outputs {
            usable = usable
                .intersection(&self.shared.assigned(o))
                .copied()
                .collect();
        }
        let current = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if usable.iter().any(|p| !current.contains(p)) {
            // The producer's own metadata cache must know new partitions, or
            // librdkafka rejects produces to them (unknown partition) until
            // its next periodic refresh.
            let producer = self.producer.get();
            let topic = self.topic.clone();
            let refreshed = tokio::task::spawn_blocking(move || {
                producer
                    .client()
                    .fetch_metadata(Some(&topic), kafka::METADATA_TIMEOUT)
                    .map(|m| {
                        m.topics()
                            .iter()
                            .find(|t| t.name() == topic)
                            .map_or(0, |t| t.partitions().len())
                    })
            })
            .await;
            match refreshed {
                Ok(Ok(count)) => usable.retain(|p| (*p as usize) < count),
                Ok(Err(e)) => {
                    warn!(probe = %self.probe, error = %e, "refreshing the producer's metadata failed; new partitions wait for the next refresh");
                    usable.retain(|p| current.contains(p));
                }
                Err(_) => usable.retain(|p| current.contains(p)),
            }
        }
        let leaders: BTreeSet<i32> = layout
            .partitions
            .iter()
            .filter(|(p, _)| usable.contains(p))
            .filter_map(|(_, l)| *l)
            .collect();
        let uncovered = layout.brokers.difference(&leaders).count();
        {
            let mut st = self.shared.lock();
            st.input.metrics.brokers_uncovered.set(uncovered as i64);
            st.input.layout = Some(layout);
        }
        let usable: Vec<i32> = usable.into_iter().collect();
        if *current != usable {
            info!(probe = %self.probe, topic = %self.topic, partitions = ?usable, "producing to partitions");
            *self.partitions.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(usable);
        }
    }

    /// Sends canaries until `stop`: each interval one per partition, spread
    /// evenly, round-robin. When it falls behind by more than a round (or
    /// [`CATCH_UP`]) it skips ahead rather than bursting.
    pub(crate) fn ticker(
        &self,
        stop: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let shared = self.shared.clone();
        let producer = self.producer.clone();
        let partitions = self.partitions.clone();
        let payload = self.payload.clone();
        let topic = self.topic.clone();
        let interval = self.interval;
        let payload_bytes = self.payload_bytes;
        async move {
            let mut buf = String::with_capacity(payload_bytes + 128);
            let mut next = tokio::time::Instant::now();
            let mut rr = 0usize;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(next) => {}
                }
                producer.recover().await;
                let client = producer.get();
                let parts = partitions.read().unwrap_or_else(|e| e.into_inner()).clone();
                if parts.is_empty() {
                    next += interval;
                    continue;
                }
                let slot = (interval / parts.len() as u32).max(Duration::from_nanos(1));
                let now = tokio::time::Instant::now();
                let Some(late) = now.checked_duration_since(next) else {
                    continue;
                };
                let (count, skipped) = due(late, slot, interval);
                next += skipped;
                for _ in 0..count {
                    let partition = parts[rr % parts.len()];
                    rr = rr.wrapping_add(1);
                    send_one(
                        &shared,
                        &client,
                        &payload,
                        &topic,
                        partition,
                        payload_bytes,
                        &mut buf,
                    );
                    next += slot;
                }
            }
        }
    }

    pub(crate) async fn flush(&self, grace: Duration) {
        let producer = self.producer.get();
        producer
            .context()
            .shutting_down
            .store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || producer.flush(grace)).await;
    }
}

fn send_one(
    shared: &Arc<Shared>,
    producer: &Producer,
    payload: &Payload,
    topic: &str,
    partition: i32,
    payload_bytes: usize,
    buf: &mut String,
) {
    let now = Instant::now();
    let sent_ns = canary::unix_ns(SystemTime::now());
    let seq = shared.send(partition, now);
    let c = Canary {
        probe: &shared.name,
        run: shared.run,
        partition,
        seq,
        sent_ns,
    };
    let CanaryRecord { id, sent, key } = payload.record(&c, payload_bytes, buf);
    let mut headers = OwnedHeaders::new_with_capacity(2)
        .insert(Header {
            key: ID_HEADER,
            value: Some(&id),
        })
        .insert(Header {
            key: SENT_HEADER,
            value: Some(&sent),
        });
    for (k, v) in payload.extra_headers() {
        headers = headers.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    let delivery = Box::new(Delivery {
        shared: shared.clone(),
        partition,
        seq,
        sent: now,
    });
    let record = BaseRecord::with_opaque_to(topic, delivery)
        .partition(partition)
        .key(&key)
        .payload(buf.as_str())
        .timestamp((sent_ns / 1_000_000) as i64)
        .headers(headers);
    if let Err((e, _)) = producer.send(record) {
        if kafka::is_fatal(&e) {
            producer.context().fatal.store(true, Ordering::Relaxed);
        }
        shared.ack(partition, seq, now, Err(&e));
    }
}

#[cfg(test)]
mod tests {
    use super::due;
    use std::time::Duration;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// 10,000/s over 6 partitions: a canary every 100 µs. A wake 1 ms late
    /// sends the ten due since and the one due now; one round per wake
    /// (6) kept 4,800/s of 10,000.
    #[test]
    fn a_wake_sends_every_canary_due_since_the_last() {
        assert_eq!(due(us(1_000), us(100), us(600)), (11, Duration::ZERO));
        assert_eq!(due(Duration::ZERO, us(100), us(600)), (1, Duration::ZERO));
        // Slow rates: one per wake.
        assert_eq!(due(us(300), us(10_000), us(60_000)), (1, Duration::ZERO));
    }

    /// After a stall the schedule skips ahead: at most a round (or 5 ms)
    /// of canaries at once.
    #[test]
    fn a_stall_is_skipped_not_burst() {
        let (count, skipped) = due(Duration::from_secs(2), us(10_000), us(60_000));
        assert_eq!(count, 7);
        assert_eq!(skipped, Duration::from_secs(2) - us(60_000));
        let (count, skipped) = due(Duration::from_millis(50), us(100), us(600));
        assert_eq!((count, skipped), (51, Duration::from_millis(45)));
    }
}
