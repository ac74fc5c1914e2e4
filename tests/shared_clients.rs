//! The probes of one cluster share one producer and one consumer: a
//! `slaprobe run` process with many probes on librdkafka's mock cluster has
//! exactly one client of each (plus the dedicated ones asked for), and every
//! probe keeps its own exact accounting, also where two probes read the
//! same topic.

mod common;

use std::time::Duration;

use common::{poll_until, scratch, Slaprobe};

const PROBES: usize = 12;
const PARTITIONS: i32 = 3;

/// Threads of process `pid` whose name starts with `prefix`.
fn threads(pid: u32, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| t.ok())
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .filter(|comm| comm.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// `text` without terminal colour sequences.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn probes_share_their_clusters_clients_and_keep_their_own_counts() {
    let mock = common::mock_cluster("t0", PARTITIONS, 3);
    for i in 1..PROBES {
        mock.create_topic(&format!("t{i}"), PARTITIONS, 3)
            .expect("topic");
    }
    mock.create_topic("shared", PARTITIONS, 3).expect("topic");
    mock.create_topic("own", PARTITIONS, 3).expect("topic");
    let mut yaml = format!(
        "clusters:\n  it: {{ bootstrap: '{}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}\ndefaults: {{ interval: 20ms, deadline: 3s }}\nprobes:\n",
        mock.bootstrap_servers()
    );
    let mut names: Vec<String> = Vec::new();
    for i in 0..PROBES {
        yaml += &format!("  - {{ name: hb{i}, type: heartbeat, cluster: it, topic: t{i} }}\n");
        names.push(format!("hb{i}"));
    }
    // Two probes on one topic: each sees the other's canaries as foreign.
    for n in ["left", "right"] {
        yaml += &format!("  - {{ name: {n}, type: heartbeat, cluster: it, topic: shared }}\n");
        names.push(n.to_string());
    }
    yaml += "  - { name: own, type: heartbeat, cluster: it, topic: own, dedicated_client: true }\n";
    names.push("own".to_string());

    let dir = scratch("shared-clients");
    let s = Slaprobe::start(&dir, "shared", &yaml);
    // Every probe's series exist from the start.
    let delivered = |probe: &str| s.value("slaprobe_canaries_delivered_total", &[("probe", probe)]);
    assert!(
        poll_until(Duration::from_secs(60), || names
            .iter()
            .all(|n| delivered(n) >= 50.0)),
        "every probe delivers; delivered {:?}; log:\n{}",
        names.iter().map(|n| (n, delivered(n))).collect::<Vec<_>>(),
        s.log()
    );

    // Every librdkafka client has one `rdk:main` thread: the cluster's
    // producer and consumer, and the dedicated probe's two.
    let pid = s.child.id();
    assert_eq!(threads(pid, "rdk:main"), 4, "log:\n{}", s.log());
    let log = plain(&s.log());
    assert!(
        log.contains("producers=2 consumers=2 admins=0"),
        "log:\n{log}"
    );

    let text = s.metrics();
    let value = |name: &str, probe: &str| common::metric(&text, name, &[("probe", probe)]);
    for n in &names {
        for bad in [
            "slaprobe_canaries_lost_total",
            "slaprobe_canaries_duplicate_total",
            "slaprobe_produce_errors_total",
        ] {
            assert_eq!(value(bad, n), 0.0, "{bad} of {n}");
        }
        // Its own canaries, not another probe's: at most those still in
        // transit are missing.
        let sent = value("slaprobe_canaries_sent_total", n);
        let delivered = value("slaprobe_canaries_delivered_total", n);
        assert!(
            delivered <= sent && delivered >= 0.9 * sent,
            "{n}: delivered {delivered} of {sent} sent"
        );
    }
    // The shared topic's records reach both probes once each: each counts
    // the other's canaries as foreign, the others count none.
    for n in ["left", "right"] {
        assert!(value("slaprobe_records_foreign_total", n) > 20.0, "{n}");
    }
    assert_eq!(value("slaprobe_records_foreign_total", "hb0"), 0.0);
    s.stop_cleanly();
}

/// The probes' periodic layout refresh reads the metadata of every probe's
/// topic in one go per client (a Metadata and a DescribeTopics request),
/// not one request per probe per refresh.
#[test]
fn the_layout_refresh_asks_the_cluster_once_for_all_probes() {
    const MANY: usize = 20;
    const WINDOW: Duration = Duration::from_secs(25);
    let mock = common::mock_cluster("m0", 1, 3);
    for i in 1..MANY {
        mock.create_topic(&format!("m{i}"), 1, 3).expect("topic");
    }
    let mut yaml = format!(
        "clusters:\n  it: {{ bootstrap: '{}', librdkafka: {{ statistics.interval.ms: '1000' }} }}\ndefaults: {{ interval: 100ms, deadline: 3s }}\nprobes:\n",
        mock.bootstrap_servers()
    );
    for i in 0..MANY {
        yaml += &format!("  - {{ name: hb{i}, type: heartbeat, cluster: it, topic: m{i} }}\n");
    }
    let dir = scratch("shared-layouts");
    let s = Slaprobe::start(&dir, "layouts", &yaml);
    let delivered = |i: usize| {
        s.value(
            "slaprobe_canaries_delivered_total",
            &[("probe", &format!("hb{i}"))],
        )
    };
    assert!(
        poll_until(Duration::from_secs(60), || (0..MANY)
            .all(|i| delivered(i) >= 5.0)),
        "every probe delivers; log:\n{}",
        s.log()
    );
    // Metadata requests of every client, from librdkafka's statistics.
    let metadata = || -> f64 {
        common::samples(&s.metrics(), "slaprobe_kafka_requests_total")
            .iter()
            .filter(|(labels, _)| labels.get("request").is_some_and(|r| r == "Metadata"))
            .map(|(_, v)| v)
            .sum()
    };
    let before = metadata();
    std::thread::sleep(WINDOW);
    let asked = metadata() - before;
    // One request per probe per 10 s refresh would be 40 or more here.
    assert!(
        asked <= MANY as f64 / 2.0,
        "{asked} metadata requests in {WINDOW:?} for {MANY} probes; log:\n{}",
        s.log()
    );
    // And the layouts are still read (a read every 10 s at most 5 s old:
    // two or three reads of two requests each).
    assert!(asked >= 2.0, "{asked} metadata requests in {WINDOW:?}");
    for i in 0..MANY {
        assert_eq!(
            s.value(
                "slaprobe_canaries_lost_total",
                &[("probe", &format!("hb{i}"))]
            ),
            0.0
        );
    }
    s.stop_cleanly();
}
