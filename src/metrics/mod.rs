//! Prometheus metrics: the families, registered once, and the
//! per-probe handles the hot paths hold so they never look a series up by
//! string. Storage and text exposition are in [`registry`]; the clients' request
//! counts in [`RequestStats`].
//!
//! The Kafka cluster's label is `kafka_cluster`, never `cluster`: that is
//! the external label many Prometheus and Thanos setups add, and the two
//! would collide.
//!
//! Label values are bounded by construction: probe, output, cluster and topic
//! names come from the configuration; `broker` and `partition` from cluster
//! metadata; `error` from the fixed set in [`ProduceError`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub mod latency;
pub mod process;
pub mod registry;
mod requests;
mod split;

pub use registry::HistogramVec;
use registry::Registry;
pub use registry::{Gauge, Histogram, IntCounter, IntGauge, CONTENT_TYPE};
pub use registry::{GaugeVec, IntCounterVec, IntGaugeVec};
pub use requests::RequestStats;
pub use split::SliSplit;
use split::{Cached, OutcomeSplits, SliEvents, SliSplits};

use crate::config::{Expect, Probe, ProbeKind, Sli};
use crate::kafka::{ConsumeError, ProduceError};
use latency::{QUANTILES, WINDOWS};

/// Default latency buckets (seconds): from a fast in-rack round trip to the
/// longest deadline people set; every SLO threshold is added to these.
const LATENCY_BUCKETS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// Every metric family slaprobe exports, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    canaries_sent: IntCounterVec,
    produce_errors: IntCounterVec,
    delivered: IntCounterVec,
    lost: IntCounterVec,
    late: IntCounterVec,
    duplicate: IntCounterVec,
    out_of_order: IntCounterVec,
    foreign: IntCounterVec,
    failed_but_arrived: IntCounterVec,
    late_or_duplicate: IntCounterVec,
    consume_errors: IntCounterVec,
    abandoned: IntCounterVec,
    in_flight: IntGaugeVec,
    produce_latency: HistogramVec,
    e2e_latency: HistogramVec,
    e2e_quantile: GaugeVec,
    sli_events: IntCounterVec,
    partition_delivered: IntCounterVec,
    brokers_uncovered: IntGaugeVec,
    slo_objective: GaugeVec,
    slo_error_ratio: GaugeVec,
    slo_burn_rate: GaugeVec,
    slo_budget: GaugeVec,
    slo_firing: IntGaugeVec,
    client_requests: IntCounterVec,
    client_errors: IntCounterVec,
    /// SLI events by (probe, output, sli), split by broker on heartbeats.
    slis: SliSplits,
    /// Outcome series by (probe, output), split by broker on heartbeats.
    outcomes: Arc<OutcomeSplits<Outcomes>>,
    /// Consumer-group lag (`lag` probes and pipelines' `lag:`).
    pub lag: LagMetrics,
    /// Remediation actions (`actions:`).
    pub actions: ActionMetrics,
    /// Connection checks of the brokers.
    pub brokers: BrokerMetrics,
}

/// The connection-check families. A broker's gauges go when it is
/// forgotten (out of the cluster's metadata for a day).
#[derive(Clone)]
pub struct BrokerMetrics {
    pub seconds: HistogramVec,
    pub errors: IntCounterVec,
    pub up: IntGaugeVec,
    pub certificate_expiry: GaugeVec,
    pub info: IntGaugeVec,
}

/// Buckets of a connection stage (seconds): from a loopback connect to
/// the check's timeout.
const CONNECTION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The remediation families.
#[derive(Clone)]
pub struct ActionMetrics {
    pub runs: IntCounterVec,
    pub last_run: GaugeVec,
    pub escalations: IntCounterVec,
    pub incident: IntGaugeVec,
}

/// The consumer-group families. Partition series come and go with the
/// groups' commits, so the lag reader removes what it no longer reads.
#[derive(Clone)]
pub struct LagMetrics {
    pub lag_records: IntGaugeVec,
    pub lag_seconds: GaugeVec,
    pub committed_offset: IntGaugeVec,
    pub status: IntGaugeVec,
    pub partitions_dropped: IntCounterVec,
    pub groups_over_max: IntGaugeVec,
    pub read_errors: IntCounterVec,
}

/// Every family's name starts with `slaprobe_`.
fn name(n: &str) -> String {
    format!("slaprobe_{n}")
}

impl Metrics {
    /// Registers every family. `thresholds` are the configured SLO latency
    /// thresholds; each becomes a bucket bound so latency SLIs can be computed
    /// exactly from the histograms.
    pub fn new(thresholds: &[Duration]) -> Metrics {
        let r = Registry::default();
        let mut buckets: Vec<f64> = LATENCY_BUCKETS.to_vec();
        buckets.extend(thresholds.iter().map(Duration::as_secs_f64));
        buckets.retain(|b| b.is_finite() && *b > 0.0);
        buckets.sort_by(f64::total_cmp);
        buckets.dedup();
        let counter =
            |n: &str, help: &str, labels: &[&'static str]| r.counter_vec(&name(n), help, labels);
        let gauge =
            |n: &str, help: &str, labels: &[&'static str]| r.gauge_vec(&name(n), help, labels);
        let int_gauge =
            |n: &str, help: &str, labels: &[&'static str]| r.int_gauge_vec(&name(n), help, labels);
        let outcome = |n: &str, help: &str| counter(n, help, &["probe", "output"]);
        // Heartbeats' outcomes are split by the partition's leader.
        let by_broker = |n: &str, help: &str| counter(n, help, &["probe", "output", "broker"]);
        let build = int_gauge(
            "build_info",
            "Always 1; the version label says which build runs.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        r.collector(process::ProcessCollector);
        Metrics {
            canaries_sent: counter("canaries_sent_total", "Canaries handed to the producer (produce attempted).", &["probe", "kafka_cluster", "topic"]),
            produce_errors: counter("produce_errors_total", "Canaries whose produce failed, by error class.", &["probe", "kafka_cluster", "topic", "error"]),
            delivered: by_broker("canaries_delivered_total", "Acked canaries whose first arrival was before the deadline."),
            lost: by_broker("canaries_lost_total", "Acked canaries not seen by the deadline."),
            late: by_broker("canaries_late_total", "Canaries that arrived after being declared lost."),
            duplicate: by_broker("canaries_duplicate_total", "Canary arrivals after the first."),
            out_of_order: by_broker("canaries_out_of_order_total", "First arrivals with a lower seq than an earlier arrival from the same input partition."),
            abandoned: counter("canaries_abandoned_total", "Canaries restored after a restart that could not be accounted for (their output partition could not be resumed, or their delivery report went with the old process and they never arrived): neither delivered nor lost.", &["probe", "output", "reason"]),
            consume_errors: counter("consume_errors_total", "Errors the output's consumer reported, by error class (records it could not decode are canaries it cannot see).", &["probe", "output", "error"]),
            late_or_duplicate: outcome("canaries_late_or_duplicate_total", "Arrivals of canaries resolved so long ago that their outcome was forgotten (beyond the process-wide memory of 262,144 lost, failed or late canaries): late if it was lost, a duplicate otherwise; counted as neither."),
            failed_but_arrived: outcome("canaries_failed_but_arrived_total", "Arrivals of canaries whose produce was reported failed: the broker wrote them after all (a request that timed out in flight). Never delivered, lost, late nor duplicate; their produce stays an availability error."),
            foreign: outcome("records_foreign_total", "Records on probed topics that are not this run's canaries (other traffic, other probers, earlier runs, malformed)."),
            in_flight: int_gauge("canaries_in_flight", "Canaries sent whose outcome is not known yet.", &["probe"]),
            produce_latency: r.histogram_vec(&name("produce_latency_seconds"), "Send to broker ack, by the partition's leader broker.", &["probe", "kafka_cluster", "broker"], buckets.clone()),
            e2e_latency: r.histogram_vec(&name("e2e_latency_seconds"), "Send to first arrival at the output (monotonic clock); heartbeats by the partition's leader when sent.", &["probe", "output", "broker"], buckets),
            e2e_quantile: gauge("e2e_latency_quantile_seconds", "End-to-end latency quantiles over a sliding window (HDR histogram).", &["probe", "output", "quantile", "window"]),
            sli_events: counter("sli_events_total", "SLI events: good and bad, per SLI; heartbeats by the partition's leader when sent.", &["probe", "output", "sli", "outcome", "broker"]),
            partition_delivered: counter("heartbeat_partition_delivered_total", "Heartbeat canaries delivered, per partition and its leader broker.", &["probe", "partition", "broker"]),
            brokers_uncovered: int_gauge("cluster_brokers_uncovered", "Brokers that lead no partition of the probe's topic, so no canary exercises them.", &["kafka_cluster", "probe"]),
            slo_objective: gauge("slo_objective_ratio", "The SLO's objective, as a ratio.", &["slo"]),
            slo_error_ratio: gauge("slo_error_ratio", "Bad/total SLI events over the window (in-process evaluator).", &["slo", "window"]),
            slo_burn_rate: gauge("slo_burn_rate", "Error ratio over the window / (1 - objective).", &["slo", "window"]),
            slo_budget: gauge("slo_error_budget_remaining_ratio", "Share of the period's error budget left; negative when overspent.", &["slo"]),
            slo_firing: int_gauge("slo_alert_firing", "1 while a burn-rate alert of this severity fires for the SLO.", &["slo", "severity"]),
            client_errors: counter("kafka_errors_total", "Errors slaprobe's own Kafka clients got, by class: authentication (credentials refused), tls (handshake failed), authorization (an ACL), transport (brokers unreachable), timeout, other (librdkafka's error callback and failed metadata requests).", &["kafka_cluster", "client", "error"]),
            client_requests: counter("kafka_requests_total", "Requests slaprobe's own Kafka clients sent, per broker and request type (from librdkafka's statistics, every statistics.interval.ms): the load the prober puts on the cluster.", &["kafka_cluster", "client", "broker", "request"]),
            lag: LagMetrics {
                lag_records: int_gauge("consumergroup_lag_records", "Records the group has not consumed: the partition's high watermark minus the group's committed offset.", &["kafka_cluster", "probe", "group", "topic", "partition"]),
                lag_seconds: gauge("consumergroup_lag_seconds", "How long ago the first record the group has not consumed was written; method: record (that record's timestamp), interpolated (between two reads of the high watermark), at_least (older than those reads: a lower bound), caught_up (0).", &["kafka_cluster", "probe", "group", "topic", "partition", "method"]),
                committed_offset: int_gauge("consumergroup_committed_offset", "The group's committed offset.", &["kafka_cluster", "probe", "group", "topic", "partition"]),
                status: int_gauge("consumergroup_status", "1 on the group's current status (the worst of its partitions', judged Burrow's way over the last reads), 0 on the others.", &["kafka_cluster", "probe", "group", "status"]),
                partitions_dropped: counter("consumergroup_partitions_dropped_total", "Partitions left without series because the probe's max_partitions was reached (each counted once).", &["kafka_cluster", "probe"]),
                groups_over_max: int_gauge("consumergroup_groups_over_max", "Groups the probe's group_pattern matched beyond its max_groups at the last read: not watched.", &["kafka_cluster", "probe"]),
                read_errors: counter("consumergroup_read_errors_total", "Failed reads of consumer groups, by request: list_groups (members), offsets (committed offsets), watermarks, or records (the records at committed offsets, for lag in seconds).", &["kafka_cluster", "request"]),
            },
            actions: ActionMetrics {
                runs: counter("action_runs_total", "Runs of a remediation action, by how they ended: ok (exit status 0, HTTP 2xx), failed (another status), timeout (killed at the action's timeout), error (could not start or connect).", &["action", "outcome"]),
                last_run: gauge("action_last_run_timestamp_seconds", "When the action last started a run (Unix seconds; 0: not since slaprobe started, unless its state_dir remembers one within the cooldown).", &["action"]),
                escalations: counter("action_escalations_total", "Incidents whose remediation failed: the run did not succeed, or the condition still held escalate_after after it.", &["action"]),
                incident: int_gauge("action_incident", "1 for each consumer group or SLO whose remediation is `attempted` (the action ran, the condition may still clear) or `failed` (escalated): the generated alerts carry it as their remediation label.", &["action", "kafka_cluster", "group", "slo", "remediation"]),
            },
            brokers: BrokerMetrics {
                seconds: r.histogram_vec(&name("broker_connection_seconds"), "How long each stage of a connection check took: tcp (connect), tls (handshake), api_versions (the first request's round trip), sasl (authentication); only stages that completed.", &["kafka_cluster", "broker", "listener", "stage"], CONNECTION_BUCKETS.to_vec()),
                errors: counter("broker_connection_errors_total", "Connection checks that failed, by the stage that failed and why: dns, refused, timeout, unreachable, closed, io, tls_untrusted, tls_expired, tls_hostname, tls_handshake, tls_config, sasl_auth_failed, sasl_mechanism, sasl_server_unverified, protocol.", &["kafka_cluster", "broker", "listener", "stage", "error"]),
                up: int_gauge("broker_connection_up", "1 when the broker's last connection check passed every stage on the listener, 0 when it failed (broker `bootstrap`: the bootstrap addresses, while no broker is known).", &["kafka_cluster", "broker", "listener"]),
                certificate_expiry: gauge("tls_certificate_expiry_timestamp_seconds", "When the certificate the broker presents on the listener expires (Unix seconds), read at each check's TLS handshake.", &["kafka_cluster", "broker", "listener"]),
                info: int_gauge("broker_info", "1 for each broker a listener's metadata advertises (last seen within a day): its address and broker.rack (empty when the cluster sets none), to join on kafka_cluster and broker.", &["kafka_cluster", "listener", "broker", "address", "rack"]),
            },
            slis: SliSplits::default(),
            outcomes: Arc::default(),
            registry: r.clone(),
        }
    }

    /// The counter of `request`s `client` (`producer`, `consumer`) of
    /// `cluster` sent to `broker` (its id, or `bootstrap`).
    pub fn client_requests(
        &self,
        cluster: &str,
        client: &str,
        broker: &str,
        request: &str,
    ) -> IntCounter {
        self.client_requests
            .with_label_values(&[cluster, client, broker, request])
    }

    /// The error counter of (cluster, client role, class).
    pub fn client_errors(&self, cluster: &str, client: &str, error: &str) -> IntCounter {
        self.client_errors
            .with_label_values(&[cluster, client, error])
    }

    /// The text exposition of every family.
    pub fn render(&self) -> Vec<u8> {
        self.registry.render().into_bytes()
    }

    /// The SLI events of (probe, output, sli), split by broker on
    /// heartbeats: the evaluator reads the very numbers Prometheus scrapes.
    pub fn sli(&self, probe: &Probe, output: &str, sli: Sli) -> Arc<SliSplit> {
        let attributed = matches!(probe.kind, ProbeKind::Heartbeat(_));
        self.slis
            .get(&self.sli_events, &probe.name, output, sli, attributed)
    }

    /// The (unsplit) SLI counter of (probe, output, sli, outcome), for
    /// tests and benchmarks that count events by hand.
    pub fn sli_counter(&self, probe: &str, output: &str, sli: Sli, outcome: &str) -> IntCounter {
        self.slis
            .get(&self.sli_events, probe, output, sli, false)
            .counter(None, outcome == "good")
    }

    /// Gauges of one SLO (`slo` is `<probe>:<output>:<sli>`), one per
    /// window and one per severity, in the order given.
    pub fn slo(&self, slo: &str, windows: &[&str], severities: &[&str]) -> SloMetrics {
        SloMetrics {
            objective: self.slo_objective.with_label_values(&[slo]),
            error_ratio: windows
                .iter()
                .map(|w| self.slo_error_ratio.with_label_values(&[slo, w]))
                .collect(),
            burn_rate: windows
                .iter()
                .map(|w| self.slo_burn_rate.with_label_values(&[slo, w]))
                .collect(),
            budget: self.slo_budget.with_label_values(&[slo]),
            firing: severities
                .iter()
                .map(|s| self.slo_firing.with_label_values(&[slo, s]))
                .collect(),
        }
    }

    /// Handles for one output of one probe (its outcome series shared by
    /// every caller: the recorder counts, the status page reads).
    pub fn output(&self, probe: &Probe, output: &str) -> OutputMetrics {
        let l = [probe.name.as_str(), output];
        let attributed = matches!(probe.kind, ProbeKind::Heartbeat(_));
        let latency_threshold = probe
            .slos
            .iter()
            .find(|s| s.sli == Sli::Latency && s.output == output)
            .and_then(|s| s.threshold);
        // Where a filter must drop the canary there is no latency to show.
        let filtered = probe.expect(output) == Expect::None;
        let quantiles = WINDOWS
            .iter()
            .map(|(w, _)| {
                QUANTILES
                    .iter()
                    .filter(|_| !filtered)
                    .map(|(q, _)| {
                        self.e2e_quantile
                            .with_label_values(&[probe.name.as_str(), output, q, w])
                    })
                    .collect()
            })
            .collect();
        let mut m = OutputMetrics {
            outcomes: Cached::new(self.outcomes.get(&probe.name, output, attributed)),
            families: OutcomeFamilies {
                labels: [probe.name.clone(), output.to_string()],
                delivered: self.delivered.clone(),
                lost: self.lost.clone(),
                late: self.late.clone(),
                duplicate: self.duplicate.clone(),
                out_of_order: self.out_of_order.clone(),
                e2e: self.e2e_latency.clone(),
            },
            foreign: self.foreign.with_label_values(&l),
            failed_but_arrived: self.failed_but_arrived.with_label_values(&l),
            late_or_duplicate: self.late_or_duplicate.with_label_values(&l),
            consume_errors: ConsumeError::ALL
                .iter()
                .map(|e| {
                    (
                        *e,
                        self.consume_errors.with_label_values(&[
                            probe.name.as_str(),
                            output,
                            e.label(),
                        ]),
                    )
                })
                .collect(),
            quantiles,
            delivery: self.sli(probe, output, Sli::Delivery).cached(),
            latency: latency_threshold.map(|t| (t, self.sli(probe, output, Sli::Latency).cached())),
        };
        // The series exist from the start, at 0 (on heartbeats those of
        // `unknown`, until the leaders are known).
        m.touch(None);
        m
    }

    /// The abandoned-canaries counter of one output and reason.
    pub fn abandoned(&self, probe: &str, output: &str, reason: &str) -> IntCounter {
        self.abandoned.with_label_values(&[probe, output, reason])
    }

    /// Handles for a probe's input side (produce).
    pub fn input(&self, probe: &Probe) -> InputMetrics {
        let (name, cluster, topic) = (
            probe.name.as_str(),
            probe.input_cluster(),
            probe.input_topic(),
        );
        let errors = ProduceError::ALL
            .iter()
            .map(|e| {
                (
                    *e,
                    self.produce_errors
                        .with_label_values(&[name, cluster, topic, e.label()]),
                )
            })
            .collect();
        InputMetrics {
            probe: name.to_string(),
            cluster: cluster.to_string(),
            sent: self
                .canaries_sent
                .with_label_values(&[name, cluster, topic]),
            errors,
            in_flight: self.in_flight.with_label_values(&[name]),
            available: self
                .sli(probe, probe.availability_output(), Sli::Availability)
                .cached(),
            produce_latency: self.produce_latency.clone(),
            produce_latency_by_broker: HashMap::new(),
            partition_delivered: self.partition_delivered.clone(),
            partition_delivered_cache: HashMap::new(),
            brokers_uncovered: self.brokers_uncovered.with_label_values(&[cluster, name]),
        }
    }
}

/// One SLO's gauges, per window and per severity in the order
/// [`Metrics::slo`] was given them.
pub struct SloMetrics {
    pub objective: Gauge,
    pub error_ratio: Vec<Gauge>,
    pub burn_rate: Vec<Gauge>,
    pub budget: Gauge,
    pub firing: Vec<IntGauge>,
}

/// One broker's outcome series of an output (the output's only ones where
/// outcomes are not split by broker).
#[derive(Clone)]
pub struct Outcomes {
    pub delivered: IntCounter,
    pub lost: IntCounter,
    pub late: IntCounter,
    pub duplicate: IntCounter,
    pub out_of_order: IntCounter,
    pub e2e: Histogram,
}

/// The families an output's [`Outcomes`] are made in, and its labels.
struct OutcomeFamilies {
    labels: [String; 2],
    delivered: IntCounterVec,
    lost: IntCounterVec,
    late: IntCounterVec,
    duplicate: IntCounterVec,
    out_of_order: IntCounterVec,
    e2e: HistogramVec,
}

impl OutcomeFamilies {
    fn make(&self, broker: &str) -> Outcomes {
        let [probe, output] = &self.labels;
        let l = [probe.as_str(), output.as_str(), broker];
        Outcomes {
            delivered: self.delivered.with_label_values(&l),
            lost: self.lost.with_label_values(&l),
            late: self.late.with_label_values(&l),
            duplicate: self.duplicate.with_label_values(&l),
            out_of_order: self.out_of_order.with_label_values(&l),
            e2e: self.e2e.with_label_values(&l),
        }
    }
}

/// An output's outcome counts over every broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeTotals {
    pub delivered: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicate: u64,
    pub out_of_order: u64,
}

/// Per-output handles (outcomes, latency, SLIs). Outcomes, latency and SLI
/// events take the broker that led the canary's partition when it was sent
/// (`None`: not known); it labels them on heartbeats and is ignored on
/// pipelines.
pub struct OutputMetrics {
    outcomes: Cached<Outcomes>,
    families: OutcomeFamilies,
    pub foreign: IntCounter,
    /// Every arrival of a canary whose produce was reported failed.
    pub failed_but_arrived: IntCounter,
    pub late_or_duplicate: IntCounter,
    /// Per consume error class, every class present (at 0).
    pub consume_errors: Vec<(ConsumeError, IntCounter)>,
    /// `[window][quantile]`, in `latency::WINDOWS` × `latency::QUANTILES` order.
    pub quantiles: Vec<Vec<Gauge>>,
    delivery: SliEvents,
    /// Latency SLI: (threshold, events), when a latency SLO is configured.
    latency: Option<(Duration, SliEvents)>,
}

impl OutputMetrics {
    /// The outcome series of `broker`.
    pub fn outcome(&mut self, broker: Option<i32>) -> &Outcomes {
        let families = &self.families;
        self.outcomes.get(broker, |b| families.make(b))
    }

    /// Every series of `broker` present, at 0 until its first event (so a
    /// rate over them sees the first one).
    pub fn touch(&mut self, broker: Option<i32>) {
        self.outcome(broker);
        self.delivery.touch(broker);
        if let Some((_, l)) = &mut self.latency {
            l.touch(broker);
        }
    }

    /// A delivery SLI event.
    pub fn delivery_event(&mut self, broker: Option<i32>, good: bool) {
        self.delivery.event(broker, good);
    }

    /// A delivery whose latency is not known (see
    /// `Outcome::DeliveredUntimed`): a good delivery event, no latency
    /// observation nor latency SLI event.
    pub fn delivered_untimed(&mut self, broker: Option<i32>, out_of_order: bool) {
        let o = self.outcome(broker);
        o.delivered.inc();
        if out_of_order {
            o.out_of_order.inc();
        }
        self.delivery.event(broker, true);
    }

    pub fn delivered(&mut self, broker: Option<i32>, latency: Duration, out_of_order: bool) {
        let o = self.outcome(broker);
        o.delivered.inc();
        if out_of_order {
            o.out_of_order.inc();
        }
        o.e2e.observe(latency.as_secs_f64());
        self.delivery.event(broker, true);
        if let Some((threshold, events)) = &mut self.latency {
            events.event(broker, latency <= *threshold);
        }
    }

    pub fn lost(&mut self, broker: Option<i32>) {
        self.outcome(broker).lost.inc();
        self.delivery.event(broker, false);
        if let Some((_, events)) = &mut self.latency {
            events.event(broker, false);
        }
    }

    /// The output's outcome counts over every broker.
    pub fn totals(&self) -> OutcomeTotals {
        let split = self.outcomes.split();
        let sum = |f: fn(&Outcomes) -> &IntCounter| split.sum(|o| f(o).get());
        OutcomeTotals {
            delivered: sum(|o| &o.delivered),
            lost: sum(|o| &o.lost),
            late: sum(|o| &o.late),
            duplicate: sum(|o| &o.duplicate),
            out_of_order: sum(|o| &o.out_of_order),
        }
    }
}

/// Per-probe input-side handles (produce).
pub struct InputMetrics {
    probe: String,
    cluster: String,
    pub sent: IntCounter,
    errors: Vec<(ProduceError, IntCounter)>,
    pub in_flight: IntGauge,
    /// Availability SLI events (split by broker on heartbeats).
    available: SliEvents,
    produce_latency: HistogramVec,
    /// Per broker id; bounded by the cluster's broker count.
    produce_latency_by_broker: HashMap<i32, Histogram>,
    partition_delivered: IntCounterVec,
    /// Per (partition, broker); bounded by partitions × brokers.
    partition_delivered_cache: HashMap<(i32, i32), IntCounter>,
    pub brokers_uncovered: IntGauge,
}

/// The `broker` label for an unknown leader (no metadata yet, or leaderless).
fn broker_label(broker: Option<i32>) -> String {
    broker.map_or_else(|| "unknown".to_string(), |b| b.to_string())
}

impl InputMetrics {
    /// A failed produce of a canary sent to a partition `broker` led.
    pub fn produce_failed(&mut self, broker: Option<i32>, error: ProduceError) {
        self.available.event(broker, false);
        if let Some((_, c)) = self.errors.iter().find(|(e, _)| *e == error) {
            c.inc();
        }
    }

    /// The availability series of `broker`, at 0 until its first event.
    pub fn touch(&mut self, broker: Option<i32>) {
        self.available.touch(broker);
    }

    /// An acked canary sent to a partition `broker` led.
    pub fn acked(&mut self, broker: Option<i32>, latency: Duration) {
        self.available.event(broker, true);
        let key = broker.unwrap_or(-1);
        let (probe, cluster, vec) = (&self.probe, &self.cluster, &self.produce_latency);
        self.produce_latency_by_broker
            .entry(key)
            .or_insert_with(|| {
                vec.with_label_values(&[probe.as_str(), cluster.as_str(), &broker_label(broker)])
            })
            .observe(latency.as_secs_f64());
    }

    pub fn partition_delivered(&mut self, partition: i32, broker: Option<i32>) {
        let (probe, vec) = (&self.probe, &self.partition_delivered);
        self.partition_delivered_cache
            .entry((partition, broker.unwrap_or(-1)))
            .or_insert_with(|| {
                vec.with_label_values(&[
                    probe.as_str(),
                    &partition.to_string(),
                    &broker_label(broker),
                ])
            })
            .inc();
    }
}
