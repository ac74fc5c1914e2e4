//! The watch's unit tests: reads handed in, statuses, lag and the series
//! cap checked.

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
fn read(at: f64, listed: Option<Vec<GroupInfo>>, groups: &[(&str, &[i64])], hw: &[i64]) -> Read {
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
        wall: 1_800_000_000.0 + at,
        record_times: HashMap::new(),
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
    assert_eq!(p0.lag_method, Some("interpolated"));
    let p1 = v.worst.iter().find(|p| p.partition == 1).unwrap();
    assert_eq!(
        (p1.lag_seconds, p1.lag_method),
        (Some(0.0), Some("caught_up"))
    );
    // With the record at the committed offset read, its age.
    let mut r = read(20.0, None, &[("a", &[100, 5])], &[300, 5]);
    r.record_times
        .insert((("t".to_string(), 0), 100), r.wall - 3_600.0);
    w.apply(&r);
    let v = &w.views()[0];
    let p0 = v.worst.iter().find(|p| p.partition == 0).unwrap();
    assert_eq!(
        (p0.lag_seconds, p0.lag_method),
        (Some(3_600.0), Some("record"))
    );
    assert_eq!(v.lag_seconds, Some(3_600.0));
}

#[test]
fn only_records_behind_the_watermark_are_read_up_to_the_cap() {
    let committed: HashMap<String, Result<Vec<Committed>, String>> = [
        (
            "a".to_string(),
            Ok(vec![
                ("t".into(), 0, 10),
                ("t".into(), 1, 50),
                ("u".into(), 0, 1),
            ]),
        ),
        (
            "b".to_string(),
            Ok(vec![("t".into(), 0, 10), ("t".into(), 0, 4)]),
        ),
        ("c".to_string(), Err("no coordinator".into())),
    ]
    .into_iter()
    .collect();
    let hw: HashMap<Tp, i64> = [
        (("t".to_string(), 0), 20),
        (("t".to_string(), 1), 50),
        (("u".to_string(), 0), 9),
    ]
    .into_iter()
    .collect();
    let t0 = |o| (("t".to_string(), 0), o);
    let w = Watch::new(config(named(&["a", "b"]), 100), BTreeSet::new());
    assert_eq!(
        w.records_to_read(&committed, &hw, 10),
        (
            HashMap::new(),
            vec![t0(4), t0(10), (("u".to_string(), 0), 1)]
        ),
        "caught up (t/1) read nothing; one read per (partition, offset)"
    );
    assert_eq!(w.records_to_read(&committed, &hw, 1).1, vec![t0(4)]);
    let mut only_t = config(named(&["a", "b"]), 100);
    only_t.topics = vec!["t".to_string()];
    let w = Watch::new(only_t, BTreeSet::new());
    assert_eq!(
        w.records_to_read(&committed, &hw, 10).1,
        vec![t0(4), t0(10)]
    );
}

/// A record's timestamp never changes: a group still at the offset of the
/// last read is not fetched again (a stalled group's hour of lag cannot
/// fall back to the table's seconds because a fetch ran out of time), and
/// a position no longer wanted is forgotten.
#[test]
fn a_record_read_once_is_not_fetched_again_while_the_group_stands_there() {
    let mut w = Watch::new(config(named(&["g"]), 100), BTreeSet::new());
    let tp = |p| ("t".to_string(), p);
    let mut first = read(0.0, None, &[("g", &[3, 5])], &[10, 10]);
    first.record_times = [((tp(0), 3), 100.0), ((tp(1), 5), 200.0)].into();
    w.apply(&first);
    // p0 stands at 3, p1 moved on to 7.
    let next = read(10.0, None, &[("g", &[3, 7])], &[10, 10]);
    let (known, fetch) = w.records_to_read(&next.committed, &next.high_watermarks, 10);
    assert_eq!(known, [((tp(0), 3), 100.0)].into());
    assert_eq!(fetch, vec![(tp(1), 7)]);
    // The fetch of p1 failed: p0 keeps its record's lag.
    let mut next = next;
    next.record_times = known;
    w.apply(&next);
    let v = &w.views()[0];
    let p0 = v.worst.iter().find(|p| p.partition == 0).unwrap();
    assert_eq!(p0.lag_method, Some("record"));
    // Caught up: nothing kept, so a later lag at offset 3 is fetched anew.
    w.apply(&read(20.0, None, &[("g", &[10, 10])], &[10, 10]));
    let again = read(30.0, None, &[("g", &[3, 7])], &[10, 10]);
    let (known, _) = w.records_to_read(&again.committed, &again.high_watermarks, 10);
    assert!(known.is_empty());
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
