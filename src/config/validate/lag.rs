//! Consumer groups to watch: `type: lag` probes and pipeline probes'
//! `lag:`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::{At, Validator};
use crate::config::model::*;
use crate::config::raw::{RawLag, RawProbe};
use crate::util::format::duration as format_duration;

/// Keys of a `type: lag` probe that no other type has.
pub(super) const KEYS: [&str; 8] = [
    "groups",
    "group_pattern",
    "topics",
    "window",
    "max_partitions",
    "max_groups",
    "stalled_for",
    "max_lag",
];

pub(crate) const DEFAULT_LAG_INTERVAL: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_WINDOW: usize = 10;
pub(crate) const DEFAULT_MAX_PARTITIONS: usize = 10_000;
/// Groups a `group_pattern` watches at most by default.
pub(crate) const DEFAULT_MAX_GROUPS: usize = 1_000;
pub(crate) const DEFAULT_STALLED_FOR: Duration = Duration::from_secs(300);
/// A `type: lag` probe's `max_lag` default (a pipeline's is its deadline).
pub(crate) const DEFAULT_MAX_LAG: Duration = Duration::from_secs(300);
/// Reads are never closer than this: each costs the coordinators a request
/// per group.
const MIN_LAG_INTERVAL: Duration = Duration::from_secs(1);

impl Validator<'_> {
    /// A `type: lag` probe.
    pub(super) fn lag_probe(
        &mut self,
        at: &At<'_>,
        rp: &RawProbe,
        clusters: &BTreeMap<String, Cluster>,
    ) -> Option<LagWatch> {
        self.probe_name(at, &rp.name, "it is the `probe` label of its alerts");
        for key in [
            "deadline",
            "payload_bytes",
            "slos",
            "dedicated_client",
            "topic",
            "topic_management",
            "input",
            "outputs",
            "poison",
            "lag",
        ] {
            self.not_allowed(
                at,
                key,
                &format!("`{key}` is not allowed on a lag probe (it sends no canaries; it reads `groups` on `cluster`)"),
            );
        }
        let raw = rp.as_lag();
        let Some(cluster) = &raw.cluster else {
            self.err(at.at_key("cluster", "required for a lag probe"));
            return None;
        };
        self.cluster_ref(at, "cluster", cluster, clusters);
        self.lag_watch(at, &raw, &rp.name, false, cluster, DEFAULT_MAX_LAG)
    }

    /// A pipeline probe's `lag:`: one watch per cluster, `lag.cluster` or
    /// else every cluster of the probe's topics.
    pub(super) fn pipeline_lag(
        &mut self,
        at: &At<'_>,
        raw: &RawLag,
        probe: &Probe,
        clusters: &BTreeMap<String, Cluster>,
    ) -> Vec<LagWatch> {
        let wanted: Vec<String> = match &raw.cluster {
            Some(c) => {
                self.cluster_ref(at, "cluster", c, clusters);
                vec![c.clone()]
            }
            None => {
                let set: BTreeSet<&str> = probe.clusters().into_iter().collect();
                set.into_iter().map(str::to_string).collect()
            }
        };
        wanted
            .iter()
            .filter_map(|c| self.lag_watch(at, raw, &probe.name, true, c, probe.deadline))
            .collect()
    }

    fn lag_watch(
        &mut self,
        at: &At<'_>,
        raw: &RawLag,
        probe: &str,
        pipeline: bool,
        cluster: &str,
        default_max_lag: Duration,
    ) -> Option<LagWatch> {
        let groups = match (&raw.groups, &raw.group_pattern) {
            (Some(_), Some(_)) => {
                self.err(at.at_key(
                    "group_pattern",
                    "set either `groups` (names) or `group_pattern` (a regular expression), not both",
                ));
                return None;
            }
            (None, None) => {
                self.err(at.at_key(
                    "groups",
                    "name the consumer groups to watch (`groups: [enricher]`) or match them (`group_pattern: 'orders-.*'`)",
                ));
                return None;
            }
            (Some(names), None) => self.group_names(at, names)?,
            (None, Some(p)) => self.group_pattern(at, p)?,
        };
        let topics = raw.topics.clone().unwrap_or_default();
        let tat = at.child("topics");
        for (i, t) in topics.iter().enumerate() {
            self.topic(&tat, &i.to_string(), t);
        }
        let interval = match &raw.interval {
            Some(s) => {
                let d = self.positive_duration(at, "interval", s, DEFAULT_LAG_INTERVAL);
                if d < MIN_LAG_INTERVAL {
                    self.err(at.at_val(
                        "interval",
                        format!("must be at least 1s for consumer groups (each read is a request per group), got {}", format_duration(d)),
                    ));
                }
                d.max(MIN_LAG_INTERVAL)
            }
            None => DEFAULT_LAG_INTERVAL,
        };
        let window = match raw.window {
            Some(n) if (2..=1000).contains(&n) => n as usize,
            Some(n) => {
                self.err(at.at_val(
                    "window",
                    format!("must be between 2 and 1000 reads, got {n}"),
                ));
                DEFAULT_WINDOW
            }
            None => DEFAULT_WINDOW,
        };
        let max_partitions = match raw.max_partitions {
            Some(n) if (1..=1_000_000).contains(&n) => n as usize,
            Some(n) => {
                self.err(at.at_val(
                    "max_partitions",
                    format!("must be between 1 and 1000000, got {n}"),
                ));
                DEFAULT_MAX_PARTITIONS
            }
            None => DEFAULT_MAX_PARTITIONS,
        };
        let max_groups = match (raw.max_groups, &groups) {
            (Some(_), GroupSelector::Named(_)) => {
                self.err(at.at_key(
                    "max_groups",
                    "only applies to `group_pattern` (the groups named in `groups` are all watched)",
                ));
                DEFAULT_MAX_GROUPS
            }
            (Some(n), _) if (1..=100_000).contains(&n) => n as usize,
            (Some(n), _) => {
                self.err(at.at_val(
                    "max_groups",
                    format!("must be between 1 and 100000, got {n}"),
                ));
                DEFAULT_MAX_GROUPS
            }
            (None, _) => DEFAULT_MAX_GROUPS,
        };
        let stalled_for = match &raw.stalled_for {
            Some(s) => self.positive_duration(at, "stalled_for", s, DEFAULT_STALLED_FOR),
            None => DEFAULT_STALLED_FOR,
        };
        let max_lag = match &raw.max_lag {
            Some(s) => self.positive_duration(at, "max_lag", s, default_max_lag),
            None => default_max_lag,
        };
        Some(LagWatch {
            probe: probe.to_string(),
            pipeline,
            cluster: cluster.to_string(),
            groups,
            topics,
            interval,
            window,
            max_partitions,
            max_groups,
            stalled_for,
            max_lag,
        })
    }

    fn group_names(&mut self, at: &At<'_>, names: &[String]) -> Option<GroupSelector> {
        if names.is_empty() {
            self.err(at.at_val("groups", "must name at least one consumer group"));
            return None;
        }
        let gat = at.child("groups");
        let mut seen = BTreeSet::new();
        for (i, n) in names.iter().enumerate() {
            let key = i.to_string();
            if n.is_empty() || n.len() > 255 || n.chars().any(char::is_control) {
                self.err(gat.at_val(
                    &key,
                    format!("invalid consumer group name {n:?}: 1 to 255 characters, no control characters"),
                ));
            } else if !seen.insert(n.as_str()) {
                self.err(gat.at_val(&key, format!("group `{n}` is listed twice")));
            }
        }
        Some(GroupSelector::Named(names.to_vec()))
    }

    fn group_pattern(&mut self, at: &At<'_>, p: &str) -> Option<GroupSelector> {
        match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(regex) => Some(GroupSelector::Pattern(GroupPattern {
                source: p.to_string(),
                regex,
            })),
            Err(e) => {
                self.err(at.at_val(
                    "group_pattern",
                    format!("invalid regular expression `{p}`: {e}"),
                ));
                None
            }
        }
    }

    /// A group named on a cluster by two probes would be two sets of the
    /// same series: refuse it. (A pattern that also matches a named group
    /// leaves it to the probe that names it, at run time.) `owner` holds
    /// the groups claimed by earlier probes.
    pub(super) fn lag_claim(
        &mut self,
        at: &At<'_>,
        watches: &[LagWatch],
        owner: &mut HashMap<(String, String), String>,
    ) {
        for w in watches {
            let GroupSelector::Named(names) = &w.groups else {
                continue;
            };
            for n in names {
                let key = (w.cluster.clone(), n.clone());
                match owner.get(&key) {
                    Some(first) if *first != w.probe => self.err(at.at_key(
                        if w.pipeline { "lag" } else { "groups" },
                        format!(
                            "consumer group `{n}` on cluster `{}` is already watched by probe `{first}`: name it in one probe only",
                            w.cluster
                        ),
                    )),
                    Some(_) => {}
                    None => {
                        owner.insert(key, w.probe.clone());
                    }
                }
            }
        }
    }
}
