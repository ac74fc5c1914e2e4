//! One output of a probe: a consumer on the output topic with explicit
//! assignment from the end offsets, following partition changes, and the
//! thread that classifies every record it reads.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::canary::{Foreign, Matched, Matcher, RunId};
use crate::config::Probe;
use crate::kafka::{self, MetadataError, TopicLayout};

use super::{sleep_or_cancel, OutputSpec, ProbeError, Shared};
use crate::util::format::error_chain;
use crate::util::Backoff;

/// Consumer poll timeout: also how quickly the thread notices shutdown.
const POLL: Duration = Duration::from_millis(100);

pub(crate) struct Output {
    index: usize,
    probe: String,
    pub(crate) name: String,
    cluster: String,
    topic: String,
    matcher: Arc<Matcher>,
    consumer: Arc<BaseConsumer>,
    /// The output topic's partitions when first seen.
    first_layout: OnceLock<BTreeSet<i32>>,
}

impl Output {
    pub(super) fn build(
        probe: &Probe,
        index: usize,
        spec: OutputSpec<'_>,
        run: RunId,
    ) -> Result<Output, ProbeError> {
        let consumer: BaseConsumer =
            kafka::consumer_config(spec.cluster)
                .create()
                .map_err(|error| ProbeError::Client {
                    probe: probe.name.clone(),
                    role: "consumer",
                    cluster: spec.cluster.name.clone(),
                    error: Box::new(error),
                })?;
        Ok(Output {
            index,
            probe: probe.name.clone(),
            name: spec.name,
            cluster: spec.cluster.name.clone(),
            topic: spec.topic,
            matcher: Arc::new(Matcher::new(spec.rule, &probe.name, run)),
            consumer: Arc::new(consumer),
            first_layout: OnceLock::new(),
        })
    }

    pub(crate) async fn fetch_layout(&self, shared: &Shared) -> Result<TopicLayout, MetadataError> {
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        super::fetch_layout(shared, &self.cluster, move || {
            kafka::fetch_layout(consumer.client(), &topic)
        })
        .await
    }

    /// Waits until the output topic exists (slaprobe never creates a
    /// pipeline's topics). `None` when cancelled first.
    pub(crate) async fn wait_for_topic(
        &self,
        shared: &Shared,
        cancel: &CancellationToken,
    ) -> Option<TopicLayout> {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        loop {
            match self.fetch_layout(shared).await {
                Ok(l) => return Some(l),
                Err(e) => warn!(probe = %self.probe, output = %self.name, cluster = %self.cluster,
                    topic = %self.topic, error = %error_chain(&e), "waiting for the output topic"),
            }
            if sleep_or_cancel(backoff.next_wait(), cancel).await {
                return None;
            }
        }
    }

    /// Assigns partitions not yet assigned, from their current end offsets.
    pub(crate) async fn follow(&self, layout: TopicLayout, shared: &Shared) {
        let assigned = shared.assigned(self.index);
        let current: BTreeSet<i32> = layout.partitions.iter().map(|(p, _)| *p).collect();
        // Partitions that appeared after start are read from their
        // beginning: the pipeline may have written canaries to them before
        // this refresh found them (they are new, so that is little data).
        // Those present at start are read from their end.
        let at_start = self.first_layout.get_or_init(|| current.clone());
        let new: Vec<i32> = layout
            .partitions
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| !assigned.contains(p))
            .collect();
        if new.is_empty() {
            return;
        }
        let consumer = self.consumer.clone();
        let topic = self.topic.clone();
        let from_beginning: BTreeSet<i32> = new
            .iter()
            .copied()
            .filter(|p| !at_start.contains(p))
            .collect();
        let added =
            tokio::task::spawn_blocking(move || assign(&consumer, &topic, &new, &from_beginning))
                .await
                .unwrap_or_default();
        if !added.is_empty() {
            info!(probe = %self.probe, output = %self.name, topic = %self.topic, partitions = ?added, "consuming partitions");
            let mut st = shared.lock();
            if let Some(o) = st.outputs.get_mut(self.index) {
                o.assigned.extend(added);
            }
        }
    }

    pub(crate) fn spawn_consumer(
        &self,
        shared: Arc<Shared>,
        cancel: CancellationToken,
    ) -> Option<JoinHandle<()>> {
        let consumer = self.consumer.clone();
        let matcher = self.matcher.clone();
        let index = self.index;
        // Foreign records (possibly most of a busy topic) are counted here,
        // without taking the probe's lock.
        let foreign = shared.foreign_counter(index);
        let spawned = std::thread::Builder::new()
            .name(format!("consume-{}-{}", self.probe, self.name))
            .spawn(move || {
                while !cancel.is_cancelled() {
                    match consumer.poll(POLL) {
                        None => {}
                        Some(Ok(msg)) => {
                            let now = Instant::now();
                            // rdkafka's header iterator panics on a header
                            // name that is not UTF-8; such a record is
                            // foreign, and must not take the thread down.
                            let matched = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                matcher.classify(
                                    msg.key(),
                                    msg.payload(),
                                    msg.headers()
                                        .into_iter()
                                        .flat_map(|h| h.iter().map(|h| (h.key, h.value))),
                                )
                            }))
                            .unwrap_or(Matched::Foreign(Foreign::Malformed));
                            match matched {
                                Matched::Foreign(_) => {
                                    if let Some(c) = &foreign {
                                        c.inc();
                                    }
                                }
                                ours => shared.arrival(index, ours, now),
                            }
                        }
                        Some(Err(e)) => debug!(probe = %shared.name, error = %e, "consume error"),
                    }
                }
            });
        match spawned {
            Ok(t) => Some(t),
            Err(e) => {
                warn!(probe = %self.probe, output = %self.name, error = %e, "cannot start the consumer thread");
                None
            }
        }
    }
}

/// Assigns `partitions`, those in `from_beginning` from their first offset
/// and the others from their current end; returns those that were assigned
/// (a partition whose end cannot be read now is retried at the next layout
/// refresh rather than guessed at).
fn assign(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    from_beginning: &BTreeSet<i32>,
) -> BTreeSet<i32> {
    let mut tpl = TopicPartitionList::new();
    let mut added = BTreeSet::new();
    for &p in partitions {
        if from_beginning.contains(&p) {
            if tpl
                .add_partition_offset(topic, p, Offset::Beginning)
                .is_ok()
            {
                added.insert(p);
            }
            continue;
        }
        match consumer.fetch_watermarks(topic, p, kafka::METADATA_TIMEOUT) {
            Ok((_, high)) => {
                if tpl
                    .add_partition_offset(topic, p, Offset::Offset(high))
                    .is_ok()
                {
                    added.insert(p);
                }
            }
            Err(e) => warn!(topic, partition = p, error = %e,
                "cannot read the end offset; partition not consumed until the next refresh"),
        }
    }
    if added.is_empty() {
        return added;
    }
    match consumer.incremental_assign(&tpl) {
        Ok(()) => added,
        Err(e) => {
            warn!(topic, error = %e, "assigning partitions failed; retrying at the next refresh");
            BTreeSet::new()
        }
    }
}
