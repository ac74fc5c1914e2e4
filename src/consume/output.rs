//! One output of a probe: its route through the cluster's shared consumer
//! ([`super::fetcher`]), its partitions assigned from their end offsets,
//! following partition changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rdkafka::consumer::Consumer as _;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::fetcher::{Fetcher, RouteId};
use crate::canary::Matcher;
use crate::config::{self, Probe};
use crate::kafka::{self, MetadataError, TopicLayout};
use crate::outcome::Shared;
use crate::util::format::error_chain;
use crate::util::{sleep_or_cancel, Backoff};

pub(crate) struct Output {
    index: usize,
    probe: String,
    pub(crate) name: String,
    cluster: String,
    topic: String,
    pub(crate) fetcher: Arc<Fetcher>,
    route: RouteId,
    /// The output topic's partitions when first seen.
    first_layout: OnceLock<BTreeSet<i32>>,
    /// Saved offsets to resume from after a restart (partition -> next
    /// offset), used by each partition's first assignment.
    resume: std::sync::Mutex<std::collections::BTreeMap<i32, i64>>,
    /// Partitions to be read from their end that could not be assigned
    /// yet, with when they were first wanted (Unix ms): a later try reads
    /// from there, so that canaries written in between are not skipped.
    wanted_since: std::sync::Mutex<BTreeMap<i32, i64>>,
    /// It reads the input topic itself (heartbeat): its partitions are the
    /// canaries' partitions.
    pub(crate) reads_input: bool,
}

impl Output {
    /// Output `index` (`spec`) of `probe`, reading through `fetcher`; its
    /// partitions resume from `resume` (partition -> next offset, restored
    /// state) where they can.
    pub(crate) fn build(
        probe: &Probe,
        index: usize,
        spec: &config::Output,
        resume: BTreeMap<i32, i64>,
        reads_input: bool,
        fetcher: Arc<Fetcher>,
        shared: &Arc<Shared>,
    ) -> Output {
        let matcher = Arc::new(Matcher::new(
            spec.match_rule.clone(),
            &probe.name,
            shared.run,
        ));
        let route = fetcher.route(
            shared.clone(),
            index,
            spec.name.clone(),
            matcher,
            reads_input,
        );
        Output {
            index,
            probe: probe.name.clone(),
            name: spec.name.clone(),
            cluster: spec.cluster.clone(),
            topic: spec.topic.clone(),
            fetcher,
            route,
            first_layout: OnceLock::new(),
            resume: std::sync::Mutex::new(resume),
            wanted_since: std::sync::Mutex::new(BTreeMap::new()),
            reads_input,
        }
    }

    /// The output topic's layout, read now (off the async runtime, with the
    /// consumer's client).
    pub(crate) async fn fetch_layout(&self, shared: &Shared) -> Result<TopicLayout, MetadataError> {
        self.fetcher.layouts.note(&self.topic);
        let consumer = self.fetcher.consumer().clone();
        let topic = self.topic.clone();
        let result =
            kafka::off_runtime(move || kafka::fetch_layout(consumer.client(), &topic)).await;
        shared.readiness.note_metadata(&self.cluster, &result);
        if let Err(MetadataError::Kafka(e)) = &result {
            self.fetcher
                .consumer()
                .context()
                .error(e, "metadata request");
        }
        result
    }

    /// The output topic's layout from the consumer's last read of every
    /// output's topic while it is fresh, else from a new one
    /// ([`kafka::SharedLayouts`]): what the periodic refresh uses.
    pub(crate) async fn shared_layout(
        &self,
        shared: &Shared,
    ) -> Result<TopicLayout, MetadataError> {
        let consumer = self.fetcher.consumer().clone();
        let result = self
            .fetcher
            .layouts
            .layout(&self.topic, move |topics| {
                kafka::fetch_layouts_counted(consumer.client(), &topics, |e| {
                    consumer.context().error(e, "metadata request")
                })
            })
            .await;
        shared.readiness.note_metadata(&self.cluster, &result);
        result
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
    /// Whether every partition of `layout` is read now (false: the offsets
    /// of some could not be read; the next call tries them again, from the
    /// time they were first wanted).
    pub(crate) async fn follow(&self, layout: TopicLayout, shared: &Shared) -> bool {
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
            return true;
        }
        let fetcher = self.fetcher.clone();
        let route = self.route;
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
        let since: BTreeMap<i32, i64> = {
            let mut wanted = self.wanted_since.lock().unwrap_or_else(|e| e.into_inner());
            let since = new
                .iter()
                .filter_map(|p| wanted.get(p).map(|t| (*p, *t)))
                .collect();
            // Those read from their end: if this try fails, the next reads
            // from now on (a second early, for the clocks).
            let now_ms = crate::canary::unix_ns(std::time::SystemTime::now()) / 1_000_000;
            for p in &new {
                if !from_beginning.contains(p) && !resume.contains_key(p) {
                    wanted.entry(*p).or_insert(now_ms as i64 - 1000);
                }
            }
            since
        };
        let asked = new.clone();
        let (added, invalid) = tokio::task::spawn_blocking(move || {
            fetcher.add(route, &topic, &new, &from_beginning, &resume, &since)
        })
        .await
        .unwrap_or_default();
        let complete = asked.iter().all(|p| added.contains_key(p));
        {
            let mut wanted = self.wanted_since.lock().unwrap_or_else(|e| e.into_inner());
            for p in added.keys().chain(&invalid) {
                wanted.remove(p);
            }
        }
        {
            // Resumed (or found invalid) once; a partition whose offsets
            // could not be read keeps its saved offset for the next try.
            let mut r = self.resume.lock().unwrap_or_else(|e| e.into_inner());
            for p in added.keys().chain(&invalid) {
                r.remove(p);
            }
        }
        for p in invalid {
            shared.caught_up(self.index, p);
            warn!(probe = %self.probe, output = %self.name, topic = %self.topic, partition = p,
                "the saved offset is no longer valid (topic recreated, or retention passed it): reading from the end; its restored canaries are abandoned");
            shared.abandon(self.index, self.reads_input.then_some(p));
        }
        if !added.is_empty() {
            info!(probe = %self.probe, output = %self.name, topic = %self.topic, partitions = ?added.keys(), "consuming partitions");
            shared.assigned_more(self.index, added);
        }
        complete
    }
}
