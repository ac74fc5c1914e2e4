//! The input side of a probe's accounting: its metrics, and what the
//! outputs' recorders need of it (the input topic's leaders, for the
//! `broker` label of heartbeat deliveries).

use crate::kafka::TopicLayout;
use crate::metrics::InputMetrics;

/// The input side's metrics and last known layout.
pub(super) struct InputState {
    pub(super) metrics: InputMetrics,
    /// The input topic's last known layout (leaders for the `broker` label).
    pub(super) layout: Option<TopicLayout>,
    /// Heartbeat probes also count deliveries per partition and leader.
    pub(super) per_partition: bool,
    /// Canaries given up as unacknowledged, logged with a count at most
    /// every 10 s.
    pub(super) unacknowledged: crate::util::Throttle,
    /// Failed produces, logged with a count at most every 10 s.
    pub(super) failed: crate::util::Throttle,
}

impl InputState {
    pub(super) fn leader(&self, partition: i32) -> Option<i32> {
        self.layout.as_ref().and_then(|l| l.leader(partition))
    }
}
