//! What a restart keeps of a watch (`slaprobe.state.lag` in `state_dir`):
//! each group's partitions' windows of observations, so that a group
//! stopped before the restart is judged at the first read after it rather
//! than a full window later, and the watermark tables that lag in seconds
//! interpolates in. Times are saved as Unix seconds and come back on the
//! new process' monotonic clock.

use serde::{Deserialize, Serialize};

use super::{PartState, Watch};
use crate::lag::eval::{Observation, PartitionWindow};
use crate::lag::timelag::Table;

/// A watch as saved: `probe` and `cluster` name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchSaved {
    pub probe: String,
    pub cluster: String,
    pub groups: Vec<GroupSaved>,
    pub tables: Vec<TableSaved>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSaved {
    pub group: String,
    pub partitions: Vec<PartitionSaved>,
}

/// A partition's window: (committed, high watermark, members) per
/// observation, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionSaved {
    pub topic: String,
    pub partition: i32,
    pub observations: Vec<(i64, i64, bool)>,
}

/// A partition's watermark table: (offset, Unix seconds first seen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableSaved {
    pub topic: String,
    pub partition: i32,
    pub points: Vec<(i64, f64)>,
}

impl Watch {
    /// The watch as saved; `wall_minus_clock`: Unix seconds minus the
    /// clock its reads were taken on.
    pub fn save(&self, wall_minus_clock: f64) -> WatchSaved {
        WatchSaved {
            probe: self.config.probe.clone(),
            cluster: self.config.cluster.clone(),
            groups: self
                .groups
                .iter()
                .map(|(g, s)| GroupSaved {
                    group: g.clone(),
                    partitions: s
                        .partitions
                        .iter()
                        .map(|((topic, partition), p)| PartitionSaved {
                            topic: topic.clone(),
                            partition: *partition,
                            observations: p
                                .window
                                .observations()
                                .map(|o| (o.committed, o.high_watermark, o.members))
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
            tables: self
                .tables
                .iter()
                .map(|((topic, partition), t)| TableSaved {
                    topic: topic.clone(),
                    partition: *partition,
                    points: t
                        .points()
                        .map(|(o, at)| (o, at + wall_minus_clock))
                        .collect(),
                })
                .collect(),
        }
    }

    /// Takes back what an earlier process saved. The tables always (their
    /// points are facts, whatever the gap); the windows only when `recent`
    /// (a restart, not a start after a long stop: a window then spans the
    /// stop), and only those of groups this watch still reads (a named
    /// group; a pattern's until its first listing says otherwise).
    pub fn restore(&mut self, saved: &WatchSaved, wall_minus_clock: f64, recent: bool) {
        for t in &saved.tables {
            self.tables.insert(
                (t.topic.clone(), t.partition),
                Table::from_points(t.points.iter().map(|(o, at)| (*o, at - wall_minus_clock))),
            );
        }
        if !recent {
            return;
        }
        for g in &saved.groups {
            let named_elsewhere = self.excluded.contains(&g.group);
            let ours = match &self.config.groups {
                crate::config::GroupSelector::Named(n) => n.contains(&g.group),
                crate::config::GroupSelector::Pattern(p) => {
                    p.regex.is_match(&g.group) && !named_elsewhere
                }
            };
            if !ours {
                continue;
            }
            let state = self.groups.entry(g.group.clone()).or_default();
            for p in &g.partitions {
                let mut window = PartitionWindow::new(self.config.window);
                for &(committed, high_watermark, members) in &p.observations {
                    window.observe(Observation {
                        at: 0,
                        committed,
                        high_watermark,
                        members,
                    });
                }
                state.partitions.insert(
                    (p.topic.clone(), p.partition),
                    PartState { window, lag: None },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};
    use std::time::Duration;

    use super::*;
    use crate::config::{GroupSelector, LagWatch};
    use crate::lag::eval::Status;
    use crate::lag::watch::Read;

    fn watch() -> Watch {
        Watch::new(
            LagWatch {
                probe: "lag".into(),
                pipeline: false,
                cluster: "c".into(),
                groups: GroupSelector::Named(vec!["a".into()]),
                topics: Vec::new(),
                interval: Duration::from_secs(10),
                window: 3,
                max_partitions: 100,
                max_groups: 3,
                stalled_for: Duration::from_secs(300),
                max_lag: Duration::from_secs(300),
            },
            BTreeSet::new(),
        )
    }

    /// `a` committed at 10 on t/0, whose watermark is `hw`, read at `at`.
    fn read(at: f64, hw: i64) -> Read {
        Read {
            at,
            wall: 1_800_000_000.0 + at,
            committed: [("a".to_string(), Ok(vec![("t".to_string(), 0, 10)]))]
                .into_iter()
                .collect(),
            high_watermarks: [(("t".to_string(), 0), hw)].into_iter().collect(),
            listed: None,
            groups_over_max: 0,
            record_times: HashMap::new(),
        }
    }

    #[test]
    fn a_stalled_group_is_stalled_at_the_first_read_after_a_restart() {
        let mut before = watch();
        for (i, hw) in [20, 30, 40].iter().enumerate() {
            before.apply(&read(i as f64 * 10.0, *hw));
        }
        let status = |w: &Watch| w.statuses().next().map(|(_, s)| s);
        assert_eq!(status(&before), Some(Status::Stall));
        // Saved on one clock, taken back on another (a new process).
        let saved = before.save(1_800_000_000.0);
        let mut after = watch();
        after.restore(&saved, 1_800_000_000.0 + 25.0, true);
        after.apply(&read(10.0, 50));
        assert_eq!(status(&after), Some(Status::Stall), "judged at once");
        assert!(after.views()[0].judged);
        // Without the windows (a long stop) it takes a full window again.
        let mut fresh = watch();
        fresh.restore(&saved, 1_800_000_000.0 + 25.0, false);
        fresh.apply(&read(10.0, 50));
        assert_eq!(status(&fresh), Some(Status::Ok));
        assert!(!fresh.views()[0].judged);
        // The tables come back on the new clock: the watermark was 20 at
        // Unix 1_800_000_000 + 0, which is -25 on the new clock; committed
        // 10 is older than the table: at least 35 s at clock 10.
        let p = &fresh.views()[0].worst[0];
        assert_eq!(
            (p.lag_seconds, p.lag_method),
            (Some(35.0), Some("at_least"))
        );
    }

    #[test]
    fn the_saved_form_round_trips_through_json() {
        let mut w = watch();
        w.apply(&read(0.0, 20));
        w.apply(&read(10.0, 30));
        let saved = w.save(100.0);
        let json = serde_json::to_string(&saved).expect("json");
        let back: WatchSaved = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, saved);
        assert_eq!(saved.tables[0].points, vec![(20, 100.0), (30, 110.0)]);
        assert_eq!(saved.groups[0].partitions[0].observations.len(), 2);
    }
}
