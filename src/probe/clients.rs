//! The Kafka clients of a process, shared so that what slaprobe costs grows
//! with its canaries, not with its probes: one producer per cluster (and
//! deadline: librdkafka's message timeout, which is the deadline, is one
//! setting per client) and one consumer per cluster, shared by every probe
//! on it. A probe with `dedicated_client: true` gets clients of its own.
//!
//! Each probe keeps its own tracker, outcomes and metrics: a delivery
//! report carries the probe it belongs to, and the shared consumer hands
//! each record to the outputs that read its partition
//! ([`crate::consume::fetcher`]). The clients themselves are made by
//! [`crate::kafka::client`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;

use crate::config::{Cluster, Config, Probe};
use crate::consume::Fetcher;
use crate::kafka::{self, Admin, Role};
use crate::metrics::{Metrics, RequestStats};
use crate::produce::ProducerSlot;

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
        let role = Role::Producer {
            deadline: probe.deadline,
            queue_bound: bound,
        };
        let slot = Arc::new(ProducerSlot::new(
            cluster,
            role,
            label,
            (probe.deadline * 2).max(Duration::from_secs(10)),
            &self.metrics,
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
        let requests = RequestStats::new(&self.metrics, &cluster.name, "consumer");
        let fetcher = Arc::new(Fetcher::new(cluster, name, requests)?);
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
        let admin: Arc<Admin> = Arc::new(kafka::client::create(
            cluster,
            Role::Admin,
            DefaultClientContext,
        )?);
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
