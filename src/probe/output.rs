//! One output of a probe: a consumer on the output topic with explicit
//! assignment from the end offsets, following partition changes, and the
//! thread that classifies every record it reads.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::canary::{Matched, Matcher, RunId, SENT_HEADER};
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
    /// Saved offsets to resume from after a restart (partition -> next
    /// offset), used by each partition's first assignment.
    resume: std::sync::Mutex<std::collections::BTreeMap<i32, i64>>,
    /// It reads the input topic itself (heartbeat): its partitions are the
    /// canaries' partitions.
    reads_input: bool,
}

impl Output {
    pub(super) fn build(
        probe: &Probe,
        index: usize,
        spec: OutputSpec<'_>,
        run: RunId,
        reads_input: bool,
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
            resume: std::sync::Mutex::new(spec.resume),
            reads_input,
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
        let resume: BTreeMap<i32, i64> = {
            let r = self.resume.lock().unwrap_or_else(|e| e.into_inner());
            new.iter()
                .filter_map(|p| r.get(p).map(|o| (*p, *o)))
                .collect()
        };
        let (added, invalid) = tokio::task::spawn_blocking(move || {
            assign(&consumer, &topic, &new, &from_beginning, &resume)
        })
        .await
        .unwrap_or_default();
        {
            // Resumed (or found invalid) once; a partition whose offsets
            // could not be read keeps its saved offset for the next try.
            let mut r = self.resume.lock().unwrap_or_else(|e| e.into_inner());
            for p in added.iter().chain(&invalid) {
                r.remove(p);
            }
        }
        for p in invalid {
            warn!(probe = %self.probe, output = %self.name, topic = %self.topic, partition = p,
                "the saved offset is no longer valid (topic recreated, or retention passed it): reading from the end; its restored canaries are abandoned");
            shared.abandon(self.index, self.reads_input.then_some(p));
        }
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
        let errors = shared.consume_error_counters(index);
        let output = self.name.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("consume-{}-{}", self.probe, self.name))
            .spawn(move || {
                let mut log = ErrorLog::default();
                while !cancel.is_cancelled() {
                    match consumer.poll(POLL) {
                        None => {}
                        Some(Ok(msg)) => {
                            let now = Instant::now();
                            let matched = matcher.classify(
                                msg.key(),
                                msg.payload(),
                                kafka::headers(msg.headers()),
                            );
                            match matched {
                                Matched::Foreign(_) => {
                                    if let Some(c) = &foreign {
                                        c.inc();
                                    }
                                }
                                ours => {
                                    let sent_ns = kafka::headers(msg.headers())
                                        .find(|(k, _)| *k == SENT_HEADER)
                                        .and_then(|(_, v)| {
                                            std::str::from_utf8(v?).ok()?.parse().ok()
                                        });
                                    shared.arrival(
                                        index,
                                        ours,
                                        (msg.partition(), msg.offset()),
                                        sent_ns,
                                        now,
                                    )
                                }
                            }
                        }
                        Some(Err(e)) => {
                            let class = kafka::ConsumeError::of(&e);
                            if let Some((_, c)) = errors.iter().find(|(k, _)| *k == class) {
                                c.inc();
                            }
                            log.error(&shared.name, &output, class, &e);
                        }
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

/// Consume errors go to the log at most every 10 s, with the count since
/// the last line: a topic of records the client cannot decode must not
/// flood the log, nor be silent.
#[derive(Default)]
struct ErrorLog(crate::util::Throttle);

impl ErrorLog {
    fn error(
        &mut self,
        probe: &str,
        output: &str,
        class: kafka::ConsumeError,
        e: &rdkafka::error::KafkaError,
    ) {
        if let Some(errors) = self.0.note(1, Instant::now()) {
            warn!(probe, output, class = class.label(), error = %e, errors,
                "consume errors (counted in slaprobe_consume_errors_total; canaries in undecodable records cannot be seen)");
        }
    }
}

/// Assigns `partitions`: those in `resume` from their saved offset when it
/// is still within the partition, those in `from_beginning` from their
/// first offset, the others (and those whose saved offset is no longer
/// valid) from their current end. Returns those that were assigned (a
/// partition whose offsets cannot be read now is retried at the next
/// layout refresh rather than guessed at), and those whose saved offset
/// was invalid.
fn assign(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    from_beginning: &BTreeSet<i32>,
    resume: &BTreeMap<i32, i64>,
) -> (BTreeSet<i32>, Vec<i32>) {
    let mut tpl = TopicPartitionList::new();
    let mut added = BTreeSet::new();
    let mut invalid = Vec::new();
    for &p in partitions {
        if let Some(&saved) = resume.get(&p) {
            match consumer.fetch_watermarks(topic, p, kafka::METADATA_TIMEOUT) {
                Ok((low, high)) if (low..=high).contains(&saved) => {
                    if tpl
                        .add_partition_offset(topic, p, Offset::Offset(saved))
                        .is_ok()
                    {
                        added.insert(p);
                    }
                    continue;
                }
                Ok(_) => invalid.push(p),
                Err(e) => {
                    warn!(topic, partition = p, error = %e,
                        "cannot read the offsets to resume from; partition not consumed until the next refresh");
                    continue;
                }
            }
        }
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
        return (added, invalid);
    }
    match consumer.incremental_assign(&tpl) {
        Ok(()) => (added, invalid),
        Err(e) => {
            warn!(topic, error = %e, "assigning partitions failed; retrying at the next refresh");
            (BTreeSet::new(), invalid)
        }
    }
}
