//! The input topic of a probe: waiting for it (creating and growing it
//! with `topic_management.create`, creating it again when it has gone),
//! following its partitions and leaders, and the [`Ticker`] that sends to
//! them.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::producer::Producer as _;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::delivery::ProducerSlot;
use super::payload::Payload;
use super::ticker::{Partitions, Ticker};
use crate::config::{Cluster, Probe, TopicManagement};
use crate::kafka::{self, Admin, MetadataError, TopicLayout};
use crate::outcome::Shared;
use crate::util::format::error_chain;
use crate::util::{sleep_or_cancel, Backoff};

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
    partitions: Partitions,
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

    /// The input topic's layout, read now (off the async runtime, with the
    /// producer's client).
    pub(crate) async fn fetch_layout(&self) -> Result<TopicLayout, MetadataError> {
        self.producer.layouts.note(&self.topic);
        let producer = self.producer.get();
        let (client, topic) = (producer.clone(), self.topic.clone());
        let result = kafka::off_runtime(move || kafka::fetch_layout(client.client(), &topic)).await;
        self.shared
            .readiness
            .note_metadata(&self.cluster.name, &result);
        if let Err(MetadataError::Kafka(e)) = &result {
            producer.context().requests.error(e, "metadata request");
        }
        result
    }

    /// The input topic's layout from the producer's last read of every
    /// input topic while it is fresh, else from a new one
    /// ([`kafka::SharedLayouts`]): what the periodic refresh uses.
    pub(crate) async fn shared_layout(&self) -> Result<TopicLayout, MetadataError> {
        let producer = self.producer.get();
        let result = self
            .producer
            .layouts
            .layout(&self.topic, move |topics| {
                kafka::fetch_layouts_counted(producer.client(), &topics, |e| {
                    producer.context().requests.error(e, "metadata request")
                })
            })
            .await;
        self.shared
            .readiness
            .note_metadata(&self.cluster.name, &result);
        result
    }

    /// The loop that sends this probe's canaries.
    pub(crate) fn ticker(&self) -> Ticker {
        Ticker {
            shared: self.shared.clone(),
            producer: self.producer.clone(),
            partitions: self.partitions.clone(),
            payload: self.payload.clone(),
            topic: self.topic.clone(),
            interval: self.interval,
            payload_bytes: self.payload_bytes,
        }
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
    /// Returns whether it created it (the caller then follows the new
    /// topic's layout soon, rather than at the next refresh).
    pub(crate) async fn recreate_if_gone(&self, brokers: usize) -> bool {
        let Some((tm, admin)) = &self.topic_management else {
            return false;
        };
        match kafka::ensure_topic(admin, &self.topic, tm, brokers, None).await {
            Ok(true) => {
                warn!(probe = %self.probe, topic = %self.topic,
                    partitions = kafka::wanted_partitions(tm, brokers), "the topic had gone; created it again");
                self.producer
                    .replace_now("the topic it wrote to was created again");
                true
            }
            Ok(false) => false,
            Err(e) => {
                warn!(probe = %self.probe, error = %error_chain(&e), "creating the gone topic again failed; retrying at the next refresh");
                false
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
        self.shared.input_layout(layout, uncovered);
        let usable: Vec<i32> = usable.into_iter().collect();
        if *current != usable {
            info!(probe = %self.probe, topic = %self.topic, partitions = ?usable, "producing to partitions");
            *self.partitions.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(usable);
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
