//! The validated configuration model: what the rest of slaprobe consumes.
//!
//! Everything here has been checked by `config::load` (types, ranges,
//! cross-references, defaults inherited), so runtime code never re-validates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::alerts::Alerts;
use crate::util::format::REDACTED;

pub use super::secret::is_secret_key;
pub use crate::canary::MatchRule;

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Files the configuration was read from, in merge order.
    pub sources: Vec<PathBuf>,
    pub server: Server,
    /// Where restart-safe accounting lives; `None` disables it.
    pub state_dir: Option<PathBuf>,
    pub alertmanager: Option<Alertmanager>,
    /// How alerts are labelled and linked, pushed or from the rules.
    pub alerts: Alerts,
    /// Cluster name -> cluster. Ordered so that plans and metrics are stable.
    pub clusters: BTreeMap<String, Cluster>,
    /// Probes in file order (files in merge order).
    pub probes: Vec<Probe>,
    /// Consumer groups watched: `type: lag` probes and pipeline probes'
    /// `lag:`, one entry per cluster, in file order.
    pub lag: Vec<LagWatch>,
    /// What is done about incidents before a person is paged.
    pub actions: Vec<super::actions::Action>,
    /// Connection checks of each cluster's brokers (clusters with
    /// `connection_check_interval: off` have none), by cluster name.
    pub connection_checks: Vec<ConnectionChecks>,
}

/// One cluster's connection checks: every broker on each listener, every
/// `interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionChecks {
    pub cluster: String,
    pub interval: Duration,
    /// How long one broker's check may take, all stages.
    pub timeout: Duration,
    /// The listener slaprobe's clients use (`default`: the cluster's
    /// bootstrap and librdkafka options) first, then `listeners:`.
    pub listeners: Vec<ListenerConfig>,
}

/// The name of the listener slaprobe's own clients use (the cluster's
/// `bootstrap` and `librdkafka:`); no configured listener may take it.
pub const DEFAULT_LISTENER: &str = "default";

/// A listener to check: the cluster's librdkafka options with the
/// listener's own on top.
#[derive(Clone, PartialEq)]
pub struct ListenerConfig {
    pub name: String,
    pub bootstrap: String,
    pub librdkafka: BTreeMap<String, String>,
    /// Keys whose values are secrets (see [`Cluster::is_secret`]).
    pub secret_keys: BTreeSet<String>,
}

impl fmt::Debug for ListenerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerConfig")
            .field("name", &self.name)
            .field("bootstrap", &self.bootstrap)
            .field(
                "librdkafka",
                &redacted_map(&self.librdkafka, |k| {
                    is_secret_key(k) || self.secret_keys.contains(k)
                }),
            )
            .finish()
    }
}

#[derive(Clone, PartialEq)]
pub struct Server {
    /// HTTP listen address for /metrics, /healthz, /readyz. Default 0.0.0.0:9464
    /// (9464 is the port Prometheus' exporter registry has for slaprobe-like
    /// OpenTelemetry/Prometheus exporters, and what the README shows).
    pub listen: SocketAddr,
    /// Where people reach this slaprobe (e.g. `https://slaprobe.example`),
    /// for links in alerts; `None`: alerts carry only paths.
    pub external_url: Option<String>,
}

#[derive(Clone, PartialEq, Default)]
pub struct Alertmanager {
    /// Base URLs, e.g. `http://alertmanager:9093`, one per replica: every
    /// replica gets every alert. Each may carry basic-auth user info
    /// (redacted when shown).
    pub urls: Vec<String>,
    /// Sent as `Authorization: Bearer`; never shown.
    pub bearer_token: Option<String>,
    /// PEM certificates trusted for https besides the system's.
    pub ca_pem: Option<String>,
    /// Allows credentials over plain http.
    pub insecure: bool,
    /// Added to every pushed alert that lacks them; `job` and `instance`
    /// default to what Prometheus gives the scraped metrics (see
    /// [`Alertmanager::labels_for`]; `job` is `alerts.job`), so pushed
    /// alerts and the generated rules' alerts are one alert in
    /// Alertmanager.
    pub labels: BTreeMap<String, String>,
}

impl Alertmanager {
    /// `labels` with the defaults `job: <job>` and `instance: <host:port>`
    /// for a slaprobe listening on `listen` (its IP, or the host name when
    /// it listens on every address).
    pub fn labels_for(
        &self,
        job: &str,
        listen: SocketAddr,
        hostname: &str,
    ) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.entry("job".into()).or_insert_with(|| job.into());
        labels.entry("instance".into()).or_insert_with(|| {
            if listen.ip().is_unspecified() {
                format!("{hostname}:{}", listen.port())
            } else {
                listen.to_string()
            }
        });
        labels
    }
}

impl std::fmt::Debug for Alertmanager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self
            .urls
            .iter()
            .map(|u| crate::util::format::redact_url(u))
            .collect();
        f.debug_struct("Alertmanager")
            .field("urls", &urls)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .field("insecure", &self.insecure)
            .field("labels", &self.labels)
            .finish()
    }
}

#[derive(Clone, PartialEq, Default)]
pub struct Cluster {
    pub name: String,
    /// Comma-separated `host:port` list, passed as `bootstrap.servers`.
    pub bootstrap: String,
    /// Passed through to librdkafka verbatim (after slaprobe's own settings,
    /// so a user can override them). Values may be secrets: see
    /// [`is_secret_key`].
    pub librdkafka: BTreeMap<String, String>,
    /// `librdkafka` keys whose value was read from a `<key>_file`: secret
    /// whatever their name (see [`Cluster::is_secret`]).
    pub secret_keys: BTreeSet<String>,
}

impl Cluster {
    /// Whether the value of librdkafka option `key` must never be shown.
    pub fn is_secret(&self, key: &str) -> bool {
        is_secret_key(key) || self.secret_keys.contains(key)
    }
}

/// `map` with the values `is_secret` picks replaced, for `Debug`.
fn redacted_map(
    map: &BTreeMap<String, String>,
    is_secret: impl Fn(&str) -> bool,
) -> BTreeMap<&str, &str> {
    map.iter()
        .map(|(k, v)| {
            let v = if is_secret(k) { REDACTED } else { v.as_str() };
            (k.as_str(), v)
        })
        .collect()
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("bootstrap", &self.bootstrap)
            .field(
                "librdkafka",
                &redacted_map(&self.librdkafka, |k| self.is_secret(k)),
            )
            .field("secret_keys", &self.secret_keys)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeType {
    Heartbeat,
    Pipeline,
}

impl fmt::Display for ProbeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeType::Heartbeat => "heartbeat",
            ProbeType::Pipeline => "pipeline",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Unique; `[A-Za-z0-9._-]+` (it is part of every canary id and a label value).
    pub name: String,
    /// One canary per input partition per interval.
    pub interval: Duration,
    /// A canary not seen at an output by `sent + deadline` is lost; also the
    /// producer's message timeout.
    pub deadline: Duration,
    /// Size the canary payload is padded to.
    pub payload_bytes: usize,
    pub kind: ProbeKind,
    /// SLOs, expanded per output (one entry per (output, sli)).
    pub slos: Vec<Slo>,
    /// Its own producer and consumers instead of those its clusters' probes
    /// share (a busy output topic then costs the other probes nothing).
    pub dedicated_client: bool,
    /// Set on the probe of a pipeline's poison canaries (`<name>.poison`,
    /// from its `poison:`): the pipeline probe it was configured in.
    pub poison_of: Option<String>,
}

impl Probe {
    pub fn probe_type(&self) -> ProbeType {
        match self.kind {
            ProbeKind::Heartbeat(_) => ProbeType::Heartbeat,
            ProbeKind::Pipeline(_) => ProbeType::Pipeline,
        }
    }

    /// The cluster canaries are produced to.
    pub fn input_cluster(&self) -> &str {
        match &self.kind {
            ProbeKind::Heartbeat(h) => &h.cluster,
            ProbeKind::Pipeline(p) => &p.input.cluster,
        }
    }

    /// The Kafka cluster an SLO of this probe measures (its alerts' and
    /// series' `kafka_cluster`): the output's, or the input's for
    /// availability (and for an output it does not have).
    pub fn slo_cluster(&self, slo: &Slo) -> &str {
        match &self.kind {
            ProbeKind::Pipeline(p) => p
                .outputs
                .iter()
                .find(|o| o.name == slo.output)
                .map_or(p.input.cluster.as_str(), |o| o.cluster.as_str()),
            ProbeKind::Heartbeat(h) => &h.cluster,
        }
    }

    /// The topic canaries are produced to.
    pub fn input_topic(&self) -> &str {
        match &self.kind {
            ProbeKind::Heartbeat(h) => &h.topic,
            ProbeKind::Pipeline(p) => &p.input.topic,
        }
    }

    /// Every cluster the probe talks to (input first).
    pub fn clusters(&self) -> Vec<&str> {
        let mut v = vec![self.input_cluster()];
        if let ProbeKind::Pipeline(p) = &self.kind {
            v.extend(p.outputs.iter().map(|o| o.cluster.as_str()));
        }
        v
    }

    /// What output `name` expects (heartbeat: exactly once).
    pub fn expect(&self, name: &str) -> Expect {
        match &self.kind {
            ProbeKind::Heartbeat(_) => Expect::ExactlyOnce,
            ProbeKind::Pipeline(p) => p
                .outputs
                .iter()
                .find(|o| o.name == name)
                .map_or(Expect::ExactlyOnce, |o| o.expect),
        }
    }

    /// Where the probe's canaries are looked for: a heartbeat probe's one
    /// output reads its own topic for the `slaprobe-id` header, exactly
    /// once.
    pub fn outputs(&self) -> Vec<Output> {
        match &self.kind {
            ProbeKind::Heartbeat(hb) => vec![Output {
                name: HEARTBEAT_OUTPUT.to_string(),
                cluster: hb.cluster.clone(),
                topic: hb.topic.clone(),
                match_rule: MatchRule::Header(crate::canary::ID_HEADER.to_string()),
                expect: Expect::ExactlyOnce,
            }],
            ProbeKind::Pipeline(p) => p.outputs.clone(),
        }
    }

    /// The `output` label its availability SLI (an input-side property)
    /// is exported under.
    pub fn availability_output(&self) -> &'static str {
        match self.kind {
            ProbeKind::Heartbeat(_) => HEARTBEAT_OUTPUT,
            ProbeKind::Pipeline(_) => INPUT_OUTPUT,
        }
    }

    /// Output names, as used in the `output` label.
    pub fn output_names(&self) -> Vec<&str> {
        match &self.kind {
            ProbeKind::Heartbeat(_) => vec![HEARTBEAT_OUTPUT],
            ProbeKind::Pipeline(p) => p.outputs.iter().map(|o| o.name.as_str()).collect(),
        }
    }
}

/// The path of the status API.
pub const STATUS_PATH: &str = "/api/v1/status";

impl Server {
    /// The status API as people reach it: a full URL with `external_url`,
    /// else the path.
    /// The status API's address for links in alerts and rules: never with
    /// the user info `external_url` may carry.
    pub fn status_link(&self) -> String {
        match &self.external_url {
            Some(u) => format!("{}{STATUS_PATH}", crate::util::format::strip_userinfo(u)),
            None => STATUS_PATH.to_string(),
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listen", &self.listen)
            .field(
                "external_url",
                &self
                    .external_url
                    .as_deref()
                    .map(crate::util::format::redact_url),
            )
            .finish()
    }
}

/// The `output` label value of heartbeat probes.
pub const HEARTBEAT_OUTPUT: &str = "heartbeat";

/// The `output` label value of a pipeline probe's input-side series
/// (availability): produce success is not a property of any one output.
pub const INPUT_OUTPUT: &str = "input";

#[derive(Debug, Clone, PartialEq)]
pub enum ProbeKind {
    Heartbeat(Heartbeat),
    Pipeline(Pipeline),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub cluster: String,
    pub topic: String,
    pub topic_management: TopicManagement,
}

/// Whether slaprobe creates its heartbeat topic. Default: observe only.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicManagement {
    pub create: bool,
    /// Partitions created = brokers x this, so every broker leads at least one.
    pub partitions_per_broker: u32,
    /// `None`: min(3, brokers) at creation time.
    pub replication_factor: Option<u16>,
}

impl Default for TopicManagement {
    fn default() -> Self {
        TopicManagement {
            create: false,
            partitions_per_broker: 1,
            replication_factor: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub input: PipelineInput,
    pub outputs: Vec<Output>,
}

#[derive(Clone, PartialEq)]
pub struct PipelineInput {
    pub cluster: String,
    pub topic: String,
    /// Key template; `None` means the canary id.
    pub key: Option<String>,
    /// Payload template (placeholders in `canary::template`).
    pub payload: String,
    pub headers: BTreeMap<String, String>,
    /// Header names whose value was read from a `<name>_file`: secret
    /// whatever their name (see [`PipelineInput::is_secret_header`]).
    pub secret_headers: BTreeSet<String>,
}

impl PipelineInput {
    /// Whether the value of header `name` must never be shown.
    pub fn is_secret_header(&self, name: &str) -> bool {
        is_secret_key(name) || self.secret_headers.contains(name)
    }
}

impl fmt::Debug for PipelineInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineInput")
            .field("cluster", &self.cluster)
            .field("topic", &self.topic)
            .field("key", &self.key)
            .field("payload", &self.payload)
            .field(
                "headers",
                &redacted_map(&self.headers, |k| self.is_secret_header(k)),
            )
            .finish()
    }
}

/// One place a probe's canaries are looked for: an output of a pipeline
/// probe, or (see [`Probe::outputs`]) a heartbeat probe's own topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The `output` label value.
    pub name: String,
    pub cluster: String,
    pub topic: String,
    pub match_rule: MatchRule,
    pub expect: Expect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    ExactlyOnce,
    AtLeastOnce,
    /// The pipeline must filter the canary out.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sli {
    Availability,
    Delivery,
    Latency,
}

impl fmt::Display for Sli {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sli::Availability => "availability",
            Sli::Delivery => "delivery",
            Sli::Latency => "latency",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// The `output` label: an output name, or `heartbeat` for heartbeat
    /// probes. Availability is measured at the input, so a pipeline probe's
    /// availability SLO uses [`INPUT_OUTPUT`] (no output may take that name).
    pub output: String,
    pub sli: Sli,
    /// Target good/total ratio, in (0, 1).
    pub objective: f64,
    /// Default 30 days.
    pub period: Duration,
    /// Latency SLI only: a canary delivered within this is good.
    pub threshold: Option<Duration>,
    /// A window with fewer events than this never alerts (default
    /// [`DEFAULT_MIN_EVENTS`]).
    pub min_events: u64,
}

impl Slo {
    /// `<probe>:<output>:<sli>`, the `slo` label value.
    pub fn name(&self, probe: &str) -> String {
        format!("{probe}:{}:{}", self.output, self.sli)
    }
}

/// Consumer groups watched on one cluster, Burrow-style (see `lag`).
#[derive(Debug, Clone, PartialEq)]
pub struct LagWatch {
    /// The probe it belongs to: a `type: lag` probe, or the pipeline probe
    /// whose stages these groups are.
    pub probe: String,
    /// Whether `probe` is a pipeline probe (its page shows the groups as a
    /// cause of lost or late canaries).
    pub pipeline: bool,
    pub cluster: String,
    pub groups: GroupSelector,
    /// Only these topics' partitions; empty: every topic a group commits.
    pub topics: Vec<String>,
    /// How often offsets and watermarks are read. Default 10 s.
    pub interval: Duration,
    /// Reads a partition is judged over. Default 10.
    pub window: usize,
    /// Most partition series exported (each group's status always is).
    pub max_partitions: usize,
    /// Most groups a `group_pattern` watches (those already watched first,
    /// then by name); the rest are counted and warned about.
    pub max_groups: usize,
    /// How long a group is STALL or STOP before the alert fires. Default 5m.
    pub stalled_for: Duration,
    /// Lag in time above which `SlaprobeConsumerGroupLagHigh` fires.
    pub max_lag: Duration,
}

/// Which groups a [`LagWatch`] reads.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupSelector {
    Named(Vec<String>),
    /// Every group whose whole name matches (checked at each read, so
    /// groups created later are found).
    Pattern(GroupPattern),
}

/// A compiled `group_pattern`, anchored at both ends.
#[derive(Debug, Clone)]
pub struct GroupPattern {
    /// As written.
    pub source: String,
    pub regex: regex::Regex,
}

impl PartialEq for GroupPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl GroupSelector {
    pub fn matches(&self, group: &str) -> bool {
        match self {
            GroupSelector::Named(names) => names.iter().any(|n| n == group),
            GroupSelector::Pattern(p) => p.regex.is_match(group),
        }
    }

    /// A PromQL regular expression matching the same groups.
    pub fn promql_regex(&self) -> String {
        match self {
            GroupSelector::Named(names) => names
                .iter()
                .map(|n| {
                    n.chars().fold(String::new(), |mut s, c| {
                        if "\\.+*?()|[]{}^$".contains(c) {
                            s.push('\\');
                        }
                        s.push(c);
                        s
                    })
                })
                .collect::<Vec<_>>()
                .join("|"),
            GroupSelector::Pattern(p) => p.source.clone(),
        }
    }
}

/// Default minimum number of events a window must hold before it may alert:
/// with fewer, one bad event is a huge error ratio and the page would be
/// noise. Set per SLO with `min_events`.
pub const DEFAULT_MIN_EVENTS: u64 = 10;
