//! The configuration file's YAML shape, as strict serde structs.
//!
//! These describe what may be *written*; they are deliberately loose about
//! values (durations and objectives are kept as text, most keys optional) so
//! that [`super::validate`] can check everything in one pass and report all
//! problems with precise positions, instead of serde stopping at the first.
//! Unknown keys, however, are rejected here (`deny_unknown_fields`).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub server: Option<RawServer>,
    pub state_dir: Option<String>,
    pub alertmanager: Option<RawAlertmanager>,
    pub alerts: Option<RawAlerts>,
    pub defaults: Option<RawDefaults>,
    pub clusters: Option<BTreeMap<String, RawCluster>>,
    pub probes: Option<Vec<RawProbe>>,
    pub actions: Option<Vec<RawAction>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<String>,
    pub external_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlertmanager {
    pub url: Option<String>,
    pub urls: Option<Vec<String>>,
    /// From `bearer_token_file` (read at load, like every `_file`).
    pub bearer_token: Option<String>,
    /// PEM, from `ca_file`.
    pub ca: Option<String>,
    #[serde(default)]
    pub insecure: bool,
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    pub job: Option<String>,
    pub severity: Option<RawSeverity>,
    pub runbook_url: Option<String>,
    pub broker_unreachable_for: Option<String>,
    pub certificate_expiry_warning: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSeverity {
    pub page: Option<String>,
    pub ticket: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    pub interval: Option<String>,
    pub deadline: Option<String>,
    pub payload_bytes: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub bootstrap: String,
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
    /// A duration, or `off`.
    pub connection_check_interval: Option<String>,
    #[serde(default)]
    pub listeners: Vec<RawListener>,
}

/// A listener to check besides the clients' own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub name: String,
    pub bootstrap: String,
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawProbeType {
    Heartbeat,
    Pipeline,
    Lag,
}

/// One struct for both probe types; which keys are allowed for which type
/// is checked in validation, with a message that says so.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: RawProbeType,
    pub interval: Option<String>,
    pub deadline: Option<String>,
    pub payload_bytes: Option<u64>,
    #[serde(default)]
    pub slos: Vec<RawSlo>,
    /// Clients of its own instead of the cluster's shared ones.
    #[serde(default)]
    pub dedicated_client: bool,
    // heartbeat
    pub cluster: Option<String>,
    pub topic: Option<String>,
    pub topic_management: Option<RawTopicManagement>,
    // pipeline
    pub input: Option<RawInput>,
    pub outputs: Option<Vec<RawOutput>>,
    /// Poison canaries sent besides the normal ones (a dead-letter path).
    pub poison: Option<RawPoison>,
    /// The consumer groups of a pipeline's stages.
    pub lag: Option<RawLag>,
    // lag (`cluster` and `interval` are shared with the other types)
    pub groups: Option<Vec<String>>,
    pub group_pattern: Option<String>,
    pub topics: Option<Vec<String>>,
    pub window: Option<u64>,
    pub max_partitions: Option<u64>,
    pub max_groups: Option<u64>,
    pub stalled_for: Option<String>,
    pub max_lag: Option<String>,
}

/// Consumer groups to watch: a `type: lag` probe's keys, or a pipeline
/// probe's `lag:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLag {
    pub cluster: Option<String>,
    pub groups: Option<Vec<String>>,
    pub group_pattern: Option<String>,
    pub topics: Option<Vec<String>>,
    pub interval: Option<String>,
    pub window: Option<u64>,
    pub max_partitions: Option<u64>,
    pub max_groups: Option<u64>,
    pub stalled_for: Option<String>,
    pub max_lag: Option<String>,
}

impl RawProbe {
    /// A `type: lag` probe's keys as a [`RawLag`].
    pub fn as_lag(&self) -> RawLag {
        RawLag {
            cluster: self.cluster.clone(),
            groups: self.groups.clone(),
            group_pattern: self.group_pattern.clone(),
            topics: self.topics.clone(),
            interval: self.interval.clone(),
            window: self.window,
            max_partitions: self.max_partitions,
            max_groups: self.max_groups,
            stalled_for: self.stalled_for.clone(),
            max_lag: self.max_lag.clone(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTopicManagement {
    #[serde(default)]
    pub create: bool,
    pub partitions_per_broker: Option<u64>,
    pub replication_factor: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInput {
    pub cluster: String,
    pub topic: String,
    pub key: Option<String>,
    pub payload: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOutput {
    pub name: String,
    pub cluster: String,
    pub topic: String,
    #[serde(rename = "match")]
    pub match_rule: RawMatch,
    pub expect: Option<RawExpect>,
    /// What the output expects of poison canaries (default `none`).
    pub poison: Option<RawExpect>,
}

/// A pipeline probe's `poison:`: canaries the pipeline must reject.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoison {
    /// One poison canary per partition every `every` intervals.
    pub every: Option<u64>,
    pub deadline: Option<String>,
    /// Default: the input's payload (then `headers` must mark them).
    pub payload: Option<String>,
    pub key: Option<String>,
    /// Added to (and overriding) the input's headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMatch {
    pub json: Option<String>,
    pub header: Option<String>,
    pub key: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawExpect {
    ExactlyOnce,
    AtLeastOnce,
    None,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawSli {
    Availability,
    Delivery,
    Latency,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSlo {
    pub sli: RawSli,
    /// `99.95%`, or a ratio like `0.9995`; parsed in validation.
    pub objective: String,
    pub period: Option<String>,
    pub threshold: Option<String>,
    pub output: Option<String>,
    /// Fewest events a window must hold to alert.
    pub min_events: Option<u64>,
    /// Whose canaries: `normal` (default) or `poison`.
    pub kind: Option<RawKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawKind {
    Normal,
    Poison,
}

/// One `actions:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAction {
    pub name: String,
    pub on: RawTrigger,
    pub run: RawRun,
    pub once_per: Option<String>,
    pub cooldown: Option<String>,
    pub escalate_after: Option<String>,
    #[serde(default)]
    pub hold: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrigger {
    pub consumer_group: Option<RawGroupTrigger>,
    pub slo: Option<RawSloTrigger>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSloTrigger {
    pub slos: Option<Vec<String>>,
    pub probe: Option<String>,
    pub severity: Option<String>,
    #[serde(rename = "for")]
    pub for_: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGroupTrigger {
    pub status: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub probe: Option<String>,
    pub cluster: Option<String>,
    #[serde(rename = "for")]
    pub for_: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRun {
    pub command: Option<Vec<String>>,
    pub webhook: Option<RawWebhook>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub url: String,
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}
