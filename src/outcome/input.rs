//! The input side of a probe's accounting: its metrics, and what the
//! outputs' recorders need of it (the input topic's leaders, for the
//! `broker` label of heartbeat outcomes).

use std::collections::VecDeque;

use crate::kafka::TopicLayout;
use crate::metrics::InputMetrics;

/// Leader changes remembered per partition: canaries older than the oldest
/// (sent before this many elections within their deadline) read as
/// `unknown`.
const LEADER_CHANGES: usize = 16;

/// The input side's metrics and last known layout.
pub(super) struct InputState {
    pub(super) metrics: InputMetrics,
    /// The input topic's last known layout (leaders for the `broker` label).
    pub(super) layout: Option<TopicLayout>,
    /// Heartbeat probes also count deliveries per partition and leader,
    /// and label their outcomes by the leader a canary was sent to.
    pub(super) per_partition: bool,
    /// Heartbeats: indexed by partition, (first seq, leader) at every
    /// change of the leader canaries were sent to.
    pub(super) sent_to: Vec<VecDeque<(u64, Option<i32>)>>,
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

    /// Canary `seq` goes to `partition` now: remembers its leader
    /// (heartbeats).
    pub(super) fn sending(&mut self, partition: i32, seq: u64) {
        if !self.per_partition {
            return;
        }
        let Ok(i) = usize::try_from(partition) else {
            return;
        };
        let leader = self.leader(partition);
        if self.sent_to.len() <= i {
            self.sent_to.resize_with(i + 1, VecDeque::new);
        }
        let log = &mut self.sent_to[i];
        if log.back().is_none_or(|(_, l)| *l != leader) {
            if log.len() == LEADER_CHANGES {
                log.pop_front();
            }
            log.push_back((seq, leader));
        }
    }

    /// The leader canary `seq` of `partition` was sent to, as slaprobe's
    /// metadata had it (heartbeats; `None` on pipelines, and for canaries
    /// of an earlier run or sent before the oldest change remembered).
    pub(super) fn sent_to(&self, partition: i32, seq: u64) -> Option<i32> {
        let log = self.sent_to.get(usize::try_from(partition).ok()?)?;
        let i = log.partition_point(|(first, _)| *first <= seq);
        log.get(i.checked_sub(1)?).and_then(|(_, l)| *l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::TopicLayout;

    fn state(per_partition: bool) -> InputState {
        let m = crate::metrics::Metrics::new(&[]);
        let c = crate::config::load_str(
            "t.yaml",
            "clusters: { c: { bootstrap: 'k:9092' } }\nprobes: [ { name: hb, type: heartbeat, cluster: c, topic: t } ]\n",
            &|_| None,
        )
        .expect("config");
        InputState {
            metrics: m.input(&c.probes[0]),
            layout: None,
            per_partition,
            sent_to: Vec::new(),
            unacknowledged: Default::default(),
            failed: Default::default(),
        }
    }

    fn led_by(leader: i32) -> Option<TopicLayout> {
        Some(TopicLayout {
            partitions: vec![(0, Some(leader)), (1, Some(7))],
            brokers: [1, 2, 7].into(),
        })
    }

    #[test]
    fn a_canary_is_attributed_to_the_leader_it_was_sent_to() {
        let mut s = state(true);
        s.sending(0, 1); // no layout yet
        s.layout = led_by(1);
        s.sending(0, 2);
        s.sending(1, 3);
        s.sending(0, 4);
        s.layout = led_by(2); // an election
        s.sending(0, 5);
        assert_eq!(s.sent_to(0, 1), None);
        assert_eq!(s.sent_to(0, 2), Some(1));
        assert_eq!(s.sent_to(0, 4), Some(1), "sent before the election");
        assert_eq!(s.sent_to(0, 5), Some(2));
        assert_eq!(s.sent_to(1, 3), Some(7));
        assert_eq!(s.sent_to(1, 2), None, "before the partition's first");
        assert_eq!(s.sent_to(2, 9), None, "a partition never sent to");
        // Bounded: only the last changes are remembered.
        for i in 0..100u64 {
            s.layout = led_by(i as i32 % 2 + 1);
            s.sending(0, 10 + i);
        }
        assert_eq!(s.sent_to.first().map(VecDeque::len), Some(LEADER_CHANGES));
        assert_eq!(s.sent_to(0, 5), None, "forgotten");
        assert_eq!(s.sent_to(0, 109), Some(2));
    }

    #[test]
    fn pipelines_are_not_attributed() {
        let mut s = state(false);
        s.layout = led_by(1);
        s.sending(0, 1);
        assert_eq!(s.sent_to(0, 1), None);
    }
}
