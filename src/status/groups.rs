//! Consumer groups as the status API shows them: each watched group's
//! status by Burrow's rules, its lag and its worst partitions, as the lag
//! tasks left them at their last read.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

/// Each watch's groups, keyed by (probe, cluster).
pub type GroupBoard = Arc<RwLock<BTreeMap<(String, String), Vec<GroupView>>>>;

/// A partition's exported numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionView {
    pub topic: String,
    pub partition: i32,
    pub status: &'static str,
    pub committed: i64,
    pub high_watermark: i64,
    pub lag_records: u64,
    pub lag_seconds: Option<f64>,
    /// How `lag_seconds` was found (`caught_up`, `record`, `interpolated`,
    /// `at_least`).
    pub lag_method: Option<&'static str>,
}

/// A group as the status API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupView {
    pub group: String,
    pub kafka_cluster: String,
    pub probe: String,
    pub status: &'static str,
    /// Every partition has been read over a full window since slaprobe
    /// started; until then an OK may only mean "not enough reads yet".
    pub judged: bool,
    /// `None` when the cluster cannot describe groups.
    pub members: Option<usize>,
    pub state: Option<String>,
    /// Why the last read of its offsets failed.
    pub error: Option<String>,
    pub partitions: usize,
    pub lag_records: u64,
    pub lag_seconds: Option<f64>,
    /// The worst partitions: by status, then lag.
    pub worst: Vec<PartitionView>,
    /// [Unix seconds, lag in records, lag in seconds] over the last hour.
    pub history: Vec<(f64, u64, Option<f64>)>,
}
