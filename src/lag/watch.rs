//! One watch's state: the groups it reads, each partition's window of
//! observations and its lag in time, the series it exports (capped) and
//! what the status page shows. Pure: each read of the cluster is handed in
//! with its time.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::eval::{group_status, Observation, PartitionWindow, Status};
use super::timelag::Table;
use crate::config::{GroupSelector, LagWatch};
use crate::kafka::groups::{Committed, GroupInfo};
use crate::status::{GroupView, PartitionView};

/// A partition of a topic.
pub type Tp = (String, i32);

/// What one read of the cluster returned.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// Groups the pattern matched beyond `max_groups`, not read.
    pub groups_over_max: usize,
    /// Seconds on the monotonic clock (any origin: only differences count).
    pub at: f64,
    /// Every group the cluster listed, with its members; `None` when the
    /// cluster could not list them (then STOP cannot be told from STALL:
    /// see [`Watch::apply`]).
    pub listed: Option<Vec<GroupInfo>>,
    /// Each read group's committed offsets, or why not.
    pub committed: HashMap<String, Result<Vec<Committed>, String>>,
    pub high_watermarks: HashMap<Tp, i64>,
}

/// How much lag history the status page gets: an hour, a point per 30 s
/// at most (120 points: 100 groups' hour is about 500 KB of JSON).
const HISTORY_SECS: f64 = 3600.0;
const HISTORY_STEP: f64 = 30.0;
/// Partitions the status page lists per group.
const WORST: usize = 5;

#[derive(Debug, Clone)]
struct PartState {
    window: PartitionWindow,
    lag_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default)]
struct GroupState {
    partitions: BTreeMap<Tp, PartState>,
    members: Option<usize>,
    state: Option<String>,
    error: Option<String>,
    /// (step start, lag in records, lag in seconds: the worst partition's;
    /// both the worst read in the step).
    history: VecDeque<(f64, u64, Option<f64>)>,
}

impl GroupState {
    fn status(&self) -> Status {
        group_status(self.partitions.values().map(|p| &p.window))
    }

    /// Every partition read over a full window since slaprobe started.
    fn judged(&self) -> bool {
        self.partitions.values().all(|p| p.window.full())
    }

    fn lag_records(&self) -> u64 {
        self.partitions
            .values()
            .filter_map(|p| p.window.last())
            .map(Observation::lag)
            .sum()
    }

    fn lag_seconds(&self) -> Option<f64> {
        self.partitions
            .values()
            .filter_map(|p| p.lag_seconds)
            .reduce(f64::max)
    }
}

/// One watch (see [`LagWatch`]).
#[derive(Debug)]
pub struct Watch {
    pub config: LagWatch,
    /// Groups named by other probes on this cluster: a pattern leaves
    /// them to those.
    excluded: BTreeSet<String>,
    groups: BTreeMap<String, GroupState>,
    tables: HashMap<Tp, Table>,
    /// (group, topic, partition) with series, at most `max_partitions`.
    exported: BTreeSet<(String, Tp)>,
    /// Partitions left without series because of the cap.
    dropped: BTreeSet<(String, Tp)>,
}

impl Watch {
    pub fn new(config: LagWatch, excluded: BTreeSet<String>) -> Watch {
        let mut groups = BTreeMap::new();
        if let GroupSelector::Named(names) = &config.groups {
            for n in names {
                groups.insert(n.clone(), GroupState::default());
            }
        }
        Watch {
            config,
            excluded,
            groups,
            tables: HashMap::new(),
            exported: BTreeSet::new(),
            dropped: BTreeSet::new(),
        }
    }

    /// The groups to read offsets of, given the cluster's listing (`None`
    /// when it failed: a pattern then reads the groups it already knows).
    /// The groups to read, and how many a pattern matched beyond
    /// `max_groups` (left unread: those already watched are kept first,
    /// then the others by name, so the set does not churn).
    pub fn groups_to_read(&self, listed: Option<&[GroupInfo]>) -> (Vec<String>, usize) {
        match (&self.config.groups, listed) {
            (GroupSelector::Named(names), _) => (names.clone(), 0),
            (GroupSelector::Pattern(_), None) => (self.groups.keys().cloned().collect(), 0),
            (GroupSelector::Pattern(p), Some(listed)) => {
                let mut names: Vec<&str> = listed
                    .iter()
                    .filter(|g| p.regex.is_match(&g.name) && !self.excluded.contains(&g.name))
                    .map(|g| g.name.as_str())
                    .collect();
                names.sort_by_key(|n| (!self.groups.contains_key(*n), *n));
                names.dedup();
                let over = names.len().saturating_sub(self.config.max_groups);
                names.truncate(self.config.max_groups);
                names.sort_unstable();
                (names.into_iter().map(str::to_string).collect(), over)
            }
        }
    }

    /// Takes in one read. Returns the partitions newly left without series
    /// by the cap.
    ///
    /// Membership decides STOP against STALL; where the cluster cannot
    /// list groups (librdkafka's mock cluster), a group counts as having
    /// members, so a consumer whose offsets stand still is STALL.
    pub fn apply(&mut self, read: &Read) -> usize {
        let now = read.at;
        for (tp, hw) in &read.high_watermarks {
            self.tables.entry(tp.clone()).or_default().record(*hw, now);
        }
        let listed: Option<HashMap<&str, &GroupInfo>> = read
            .listed
            .as_ref()
            .map(|l| l.iter().map(|g| (g.name.as_str(), g)).collect());
        // A pattern's groups: those read this time (vanished ones go).
        if let GroupSelector::Pattern(_) = &self.config.groups {
            if read.listed.is_some() {
                self.groups.retain(|g, _| read.committed.contains_key(g));
            }
        }
        for (name, result) in &read.committed {
            let window = self.config.window;
            let topics = &self.config.topics;
            let g = self.groups.entry(name.clone()).or_default();
            let info = listed.as_ref().and_then(|l| l.get(name.as_str()));
            g.members = match (&listed, info) {
                (None, _) => None,
                (Some(_), Some(i)) => i.members,
                // Not listed: no coordinator knows it as active.
                (Some(_), None) => Some(0),
            };
            g.state = info.map(|i| i.state.clone());
            let committed = match result {
                Ok(c) => c,
                Err(e) => {
                    g.error = Some(e.clone());
                    continue;
                }
            };
            g.error = None;
            let members = g.members.is_none_or(|m| m > 0);
            let mut seen = BTreeSet::new();
            for (topic, partition, offset) in committed {
                if !topics.is_empty() && !topics.contains(topic) {
                    continue;
                }
                let tp = (topic.clone(), *partition);
                let Some(hw) = read.high_watermarks.get(&tp) else {
                    seen.insert(tp);
                    continue;
                };
                let p = g.partitions.entry(tp.clone()).or_insert_with(|| PartState {
                    window: PartitionWindow::new(window),
                    lag_seconds: None,
                });
                p.window.observe(Observation {
                    at: now.max(0.0) as u64,
                    committed: *offset,
                    high_watermark: *hw,
                    members,
                });
                p.lag_seconds = self
                    .tables
                    .get(&tp)
                    .and_then(|t| t.lag_seconds(*offset, now));
                seen.insert(tp);
            }
            g.partitions.retain(|tp, _| seen.contains(tp));
            let (records, seconds) = (g.lag_records(), g.lag_seconds());
            match g.history.back_mut() {
                // Within a step the point keeps the worst: a spike shorter
                // than a step still shows.
                Some((t, r, s)) if now - *t < HISTORY_STEP => {
                    *r = (*r).max(records);
                    *s = match (*s, seconds) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        (a, b) => a.or(b),
                    };
                }
                _ => g.history.push_back((now, records, seconds)),
            }
            while g
                .history
                .front()
                .is_some_and(|(t, _, _)| now - t > HISTORY_SECS)
            {
                g.history.pop_front();
            }
        }
        // Watermark tables of partitions no group commits any more go.
        let live: BTreeSet<&Tp> = self
            .groups
            .values()
            .flat_map(|g| g.partitions.keys())
            .collect();
        self.tables.retain(|tp, _| live.contains(tp));
        self.cap()
    }

    /// Keeps the exported set to live partitions, fills it up to the cap
    /// (first come: series do not flap), and returns how many partitions
    /// were newly dropped.
    fn cap(&mut self) -> usize {
        let live: BTreeSet<(String, Tp)> = self
            .groups
            .iter()
            .flat_map(|(g, s)| s.partitions.keys().map(move |tp| (g.clone(), tp.clone())))
            .collect();
        self.exported.retain(|k| live.contains(k));
        self.dropped.retain(|k| live.contains(k));
        let mut newly_dropped = 0;
        for k in live {
            if self.exported.contains(&k) {
                continue;
            }
            if self.exported.len() < self.config.max_partitions {
                self.dropped.remove(&k);
                self.exported.insert(k);
            } else if self.dropped.insert(k) {
                newly_dropped += 1;
            }
        }
        newly_dropped
    }

    /// Each group's status (groups never read yet are OK).
    pub fn statuses(&self) -> impl Iterator<Item = (&str, Status)> {
        self.groups.iter().map(|(g, s)| (g.as_str(), s.status()))
    }

    /// The exported partitions' numbers.
    pub fn exported(&self) -> impl Iterator<Item = (&str, PartitionView)> + '_ {
        self.exported.iter().filter_map(|(g, tp)| {
            let p = self.groups.get(g)?.partitions.get(tp)?;
            Some((g.as_str(), view(tp, p)))
        })
    }

    /// The groups as the status API shows them.
    pub fn views(&self) -> Vec<GroupView> {
        self.groups
            .iter()
            .map(|(name, g)| {
                let mut worst: Vec<PartitionView> =
                    g.partitions.iter().map(|(tp, p)| view(tp, p)).collect();
                worst.sort_by(|a, b| {
                    rank(b.status)
                        .cmp(&rank(a.status))
                        .then(b.lag_records.cmp(&a.lag_records))
                });
                worst.truncate(WORST);
                GroupView {
                    group: name.clone(),
                    kafka_cluster: self.config.cluster.clone(),
                    probe: self.config.probe.clone(),
                    status: g.status().label(),
                    judged: g.judged(),
                    members: g.members,
                    state: g.state.clone(),
                    error: g.error.clone(),
                    partitions: g.partitions.len(),
                    lag_records: g.lag_records(),
                    lag_seconds: g.lag_seconds(),
                    worst,
                    history: g.history.iter().copied().collect(),
                }
            })
            .collect()
    }
}

fn rank(label: &str) -> usize {
    Status::ALL
        .iter()
        .position(|s| s.label() == label)
        .unwrap_or(0)
}

fn view(tp: &Tp, p: &PartState) -> PartitionView {
    let last = p.window.last();
    PartitionView {
        topic: tp.0.clone(),
        partition: tp.1,
        status: p.window.status().label(),
        committed: last.map_or(0, |o| o.committed),
        high_watermark: last.map_or(0, |o| o.high_watermark),
        lag_records: last.map_or(0, Observation::lag),
        lag_seconds: p.lag_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GroupPattern;
    use std::time::Duration;

    fn config(groups: GroupSelector, max_partitions: usize) -> LagWatch {
        LagWatch {
            probe: "lag".into(),
            pipeline: false,
            cluster: "c".into(),
            groups,
            topics: Vec::new(),
            interval: Duration::from_secs(10),
            window: 3,
            max_partitions,
            max_groups: 3,
            stalled_for: Duration::from_secs(300),
            max_lag: Duration::from_secs(300),
        }
    }

    fn named(names: &[&str]) -> GroupSelector {
        GroupSelector::Named(names.iter().map(|n| n.to_string()).collect())
    }

    fn info(name: &str, members: usize) -> GroupInfo {
        GroupInfo {
            name: name.into(),
            state: if members > 0 { "Stable" } else { "Empty" }.into(),
            members: Some(members),
        }
    }

    /// A read at `at` where `group` committed `offsets[p]` on t/p and each
    /// partition's watermark is `hw[p]`.
    fn read(
        at: f64,
        listed: Option<Vec<GroupInfo>>,
        groups: &[(&str, &[i64])],
        hw: &[i64],
    ) -> Read {
        Read {
            groups_over_max: 0,
            at,
            listed,
            committed: groups
                .iter()
                .map(|(g, offsets)| {
                    let c = offsets
                        .iter()
                        .enumerate()
                        .map(|(p, o)| ("t".to_string(), p as i32, *o))
                        .collect();
                    (g.to_string(), Ok(c))
                })
                .collect(),
            high_watermarks: hw
                .iter()
                .enumerate()
                .map(|(p, h)| (("t".to_string(), p as i32), *h))
                .collect(),
        }
    }

    fn status(w: &Watch, g: &str) -> Status {
        w.statuses().find(|(n, _)| *n == g).map(|(_, s)| s).unwrap()
    }

    #[test]
    fn stopped_and_stalled_are_told_apart_by_membership() {
        let mut w = Watch::new(config(named(&["a", "b"]), 100), BTreeSet::new());
        for (i, hw) in [20, 30, 40].iter().enumerate() {
            let listed = vec![info("a", 1), info("b", 0)];
            w.apply(&read(
                i as f64 * 10.0,
                Some(listed),
                &[("a", &[10]), ("b", &[10])],
                &[*hw],
            ));
        }
        assert_eq!(status(&w, "a"), Status::Stall);
        assert_eq!(status(&w, "b"), Status::Stop);
        // A group the cluster no longer lists has no members.
        let mut w2 = Watch::new(config(named(&["b"]), 100), BTreeSet::new());
        for (i, hw) in [20, 30, 40].iter().enumerate() {
            w2.apply(&read(
                i as f64 * 10.0,
                Some(vec![]),
                &[("b", &[10])],
                &[*hw],
            ));
        }
        assert_eq!(status(&w2, "b"), Status::Stop);
        // A group its coordinator could not describe is not taken for
        // empty.
        let mut w4 = Watch::new(config(named(&["b"]), 100), BTreeSet::new());
        let undescribed = GroupInfo {
            name: "b".into(),
            state: String::new(),
            members: None,
        };
        for (i, hw) in [20, 30, 40].iter().enumerate() {
            let listed = Some(vec![undescribed.clone()]);
            w4.apply(&read(i as f64 * 10.0, listed, &[("b", &[10])], &[*hw]));
        }
        assert_eq!(status(&w4, "b"), Status::Stall);
        // Without a listing (the mock cluster) a standing group is STALL.
        let mut w3 = Watch::new(config(named(&["b"]), 100), BTreeSet::new());
        for (i, hw) in [20, 30, 40].iter().enumerate() {
            w3.apply(&read(i as f64 * 10.0, None, &[("b", &[10])], &[*hw]));
        }
        assert_eq!(status(&w3, "b"), Status::Stall);
        let v = w3.views();
        assert_eq!(v[0].members, None);
        assert_eq!(v[0].lag_records, 30);
    }

    #[test]
    fn lag_is_the_watermark_minus_the_commit_and_time_comes_from_the_table() {
        let mut w = Watch::new(config(named(&["a"]), 100), BTreeSet::new());
        w.apply(&read(0.0, None, &[("a", &[0, 5])], &[100, 5]));
        w.apply(&read(10.0, None, &[("a", &[100, 5])], &[200, 5]));
        let v = &w.views()[0];
        assert_eq!(v.lag_records, 100);
        let p0 = v.worst.iter().find(|p| p.partition == 0).unwrap();
        assert_eq!(
            (p0.committed, p0.high_watermark, p0.lag_records),
            (100, 200, 100)
        );
        // The watermark was 100 at t=0.
        assert!((p0.lag_seconds.unwrap() - 10.0).abs() < 1e-9, "{p0:?}");
        let p1 = v.worst.iter().find(|p| p.partition == 1).unwrap();
        assert_eq!(p1.lag_seconds, Some(0.0));
    }

    #[test]
    fn a_pattern_finds_groups_created_later_and_drops_vanished_ones() {
        let p = GroupPattern {
            source: "orders-.*".into(),
            regex: regex::Regex::new("^(?:orders-.*)$").unwrap(),
        };
        let excluded = BTreeSet::from(["orders-named".to_string()]);
        let w = Watch::new(config(GroupSelector::Pattern(p), 100), excluded);
        let listed = [
            info("orders-a", 1),
            info("billing", 1),
            info("orders-named", 1),
        ];
        assert_eq!(w.groups_to_read(Some(&listed)).0, ["orders-a"]);
        let mut w = w;
        w.apply(&read(
            0.0,
            Some(listed.to_vec()),
            &[("orders-a", &[1])],
            &[1],
        ));
        let listed = [info("orders-a", 1), info("orders-b", 1)];
        assert_eq!(w.groups_to_read(Some(&listed)).0, ["orders-a", "orders-b"]);
        w.apply(&read(
            10.0,
            Some(listed.to_vec()),
            &[("orders-b", &[1])],
            &[1],
        ));
        let names: Vec<&str> = w.statuses().map(|(g, _)| g).collect();
        assert_eq!(names, ["orders-b"]);
        // A failed listing keeps the groups known.
        assert_eq!(w.groups_to_read(None).0, ["orders-b"]);
    }

    /// A pattern matching more than `max_groups` reads that many: the
    /// groups already watched first, then by name; the rest are counted.
    #[test]
    fn a_pattern_reads_at_most_max_groups_keeping_those_it_watches() {
        let p = GroupPattern {
            source: "g.*".into(),
            regex: regex::Regex::new("^(?:g.*)$").unwrap(),
        };
        let mut w = Watch::new(config(GroupSelector::Pattern(p), 100), BTreeSet::new());
        let listed: Vec<GroupInfo> = ["g5", "g4", "g3", "g2", "g1"]
            .iter()
            .map(|n| info(n, 1))
            .collect();
        assert_eq!(
            w.groups_to_read(Some(&listed)),
            (vec!["g1".into(), "g2".into(), "g3".into()], 2)
        );
        w.apply(&read(
            0.0,
            Some(listed.clone()),
            &[("g3", &[1]), ("g4", &[1]), ("g5", &[1])],
            &[1],
        ));
        let mut more = listed;
        more.push(info("g0", 1));
        assert_eq!(
            w.groups_to_read(Some(&more)),
            (vec!["g3".into(), "g4".into(), "g5".into()], 3)
        );
    }

    #[test]
    fn partition_series_are_capped_first_come_and_drops_are_counted_once() {
        let mut w = Watch::new(config(named(&["a", "b"]), 3), BTreeSet::new());
        let dropped = w.apply(&read(0.0, None, &[("a", &[1, 1]), ("b", &[1, 1])], &[1, 1]));
        assert_eq!(dropped, 1);
        assert_eq!(w.exported().count(), 3);
        assert_eq!(
            w.apply(&read(
                10.0,
                None,
                &[("a", &[1, 1]), ("b", &[1, 1])],
                &[1, 1]
            )),
            0
        );
        // Group a's partitions go: b's dropped one gets its series.
        w.apply(&read(20.0, None, &[("a", &[]), ("b", &[1, 1])], &[1, 1]));
        let exported: Vec<(&str, i32)> = w.exported().map(|(g, p)| (g, p.partition)).collect();
        assert_eq!(exported, [("b", 0), ("b", 1)]);
    }

    #[test]
    fn a_failed_read_keeps_the_state_and_says_why() {
        let mut w = Watch::new(config(named(&["a"]), 100), BTreeSet::new());
        w.apply(&read(0.0, None, &[("a", &[5])], &[10]));
        let mut r = read(10.0, None, &[], &[10]);
        r.committed
            .insert("a".into(), Err("coordinator not available".into()));
        w.apply(&r);
        let v = &w.views()[0];
        assert_eq!(v.error.as_deref(), Some("coordinator not available"));
        assert_eq!(v.lag_records, 5);
    }

    #[test]
    fn history_keeps_the_worst_of_each_step_for_an_hour() {
        let mut w = Watch::new(config(named(&["a"]), 100), BTreeSet::new());
        // A spike at 10 s, gone at 20 s: one point for the step, at its worst.
        w.apply(&read(0.0, None, &[("a", &[5])], &[5]));
        w.apply(&read(10.0, None, &[("a", &[5])], &[50]));
        w.apply(&read(20.0, None, &[("a", &[50])], &[50]));
        assert_eq!(w.views()[0].history.len(), 1);
        assert_eq!(w.views()[0].history[0].1, 45);
        for i in 3..1000 {
            w.apply(&read(i as f64 * 10.0, None, &[("a", &[50])], &[50]));
        }
        let h = &w.views()[0].history;
        assert!(h.len() <= 121, "{}", h.len());
        assert!(h[0].0 >= 9990.0 - 3600.0, "{:?}", h[0]);
    }

    #[test]
    fn topics_restrict_the_partitions() {
        let mut c = config(named(&["a"]), 100);
        c.topics = vec!["other".into()];
        let mut w = Watch::new(c, BTreeSet::new());
        w.apply(&read(0.0, None, &[("a", &[5])], &[10]));
        assert_eq!(w.views()[0].partitions, 0);
    }
}
