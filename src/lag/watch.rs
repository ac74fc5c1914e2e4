//! One watch's state: the groups it reads, each partition's window of
//! observations and its lag in time, the series it exports (capped) and
//! what the status page shows. Pure: each read of the cluster is handed in
//! with its time.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

mod saved;

pub use saved::WatchSaved;

use super::eval::{group_status, Observation, PartitionWindow, Status};
use super::timelag::{self, Method, Table};
use crate::config::{GroupSelector, LagWatch};
use crate::kafka::groups::{At, Committed, GroupInfo};
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
    /// Unix seconds, when it was read.
    pub wall: f64,
    /// Every group the cluster listed, with its members; `None` when the
    /// cluster could not list them (then STOP cannot be told from STALL:
    /// see [`Watch::apply`]).
    pub listed: Option<Vec<GroupInfo>>,
    /// Each read group's committed offsets, or why not.
    pub committed: HashMap<String, Result<Vec<Committed>, String>>,
    pub high_watermarks: HashMap<Tp, i64>,
    /// The timestamps (Unix seconds) of the records at committed offsets:
    /// (partition, offset) -> time.
    pub record_times: HashMap<(Tp, i64), f64>,
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
    lag: Option<(f64, Method)>,
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
            .filter_map(|p| p.lag.map(|(s, _)| s))
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
    /// The timestamps of the records at the committed offsets of the last
    /// read: a record's timestamp never changes, so a group standing at
    /// the same offset (the stalled one, whose lag in seconds matters
    /// most) needs no fetch again, and a fetch that runs out of time
    /// cannot turn its hour of lag into the table's seconds.
    record_times: HashMap<At, f64>,
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
            record_times: HashMap::new(),
        }
    }

    /// The records whose timestamps a read needs: at each committed
    /// offset (of `committed`'s groups, on the watch's topics) behind its
    /// partition's high watermark. Caught-up partitions need none (their
    /// lag is 0). Returns those known from the last read, with their
    /// times, and the first `cap` of the others in (topic, partition,
    /// offset) order, to fetch.
    pub fn records_to_read(
        &self,
        committed: &HashMap<String, Result<Vec<Committed>, String>>,
        high_watermarks: &HashMap<Tp, i64>,
        cap: usize,
    ) -> (HashMap<At, f64>, Vec<At>) {
        let topics = &self.config.topics;
        let wanted: BTreeSet<At> = committed
            .values()
            .filter_map(|r| r.as_ref().ok())
            .flatten()
            .filter(|(t, _, _)| topics.is_empty() || topics.contains(t))
            .filter_map(|(t, p, o)| {
                let tp = (t.clone(), *p);
                let hw = *high_watermarks.get(&tp)?;
                (*o < hw).then_some((tp, *o))
            })
            .collect();
        let (known, fetch): (Vec<_>, Vec<_>) = wanted
            .into_iter()
            .partition(|w| self.record_times.contains_key(w));
        let known = known
            .into_iter()
            .map(|w| {
                let t = self.record_times[&w];
                (w, t)
            })
            .collect();
        (known, fetch.into_iter().take(cap).collect())
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
        self.record_times.clone_from(&read.record_times);
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
                    lag: None,
                });
                p.window.observe(Observation {
                    at: now.max(0.0) as u64,
                    committed: *offset,
                    high_watermark: *hw,
                    members,
                });
                p.lag = timelag::lag_seconds(
                    *offset,
                    *hw,
                    read.record_times.get(&(tp.clone(), *offset)).copied(),
                    self.tables.get(&tp),
                    now,
                    read.wall,
                );
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
        lag_seconds: p.lag.map(|(s, _)| s),
        lag_method: p.lag.map(|(_, m)| m.label()),
    }
}

#[cfg(test)]
mod tests;
