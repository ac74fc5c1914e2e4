//! The safe API against librdkafka's in-process mock cluster: offsets a
//! consumer committed come back exactly, per group, with groups that
//! committed nothing, names librdkafka cannot take and timeouts each
//! reported for their own group.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{Offset, TopicPartitionList};
use rdkafka_admin_ext::{list_consumer_group_offsets, CommittedOffset, OffsetsError};

const TIMEOUT: Duration = Duration::from_secs(10);

fn mock(topic: &str, partitions: i32) -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(3).expect("mock cluster");
    mock.create_topic(topic, partitions, 3).expect("topic");
    mock
}

fn client(bootstrap: &str, group: Option<&str>) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("enable.auto.commit", "false");
    if let Some(g) = group {
        c.set("group.id", g);
    }
    c.create().expect("consumer")
}

/// Commits `offsets` (partition, offset) of `topic` for `group`, as a
/// consumer that assigns its partitions does.
fn commit(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let consumer = client(bootstrap, Some(group));
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    consumer.commit(&tpl, CommitMode::Sync).expect("commit");
}

fn name() -> String {
    format!("g-{:08x}", rand::random::<u32>())
}

#[test]
fn committed_offsets_come_back_per_group() {
    let mock = mock("orders", 4);
    let bootstrap = mock.bootstrap_servers();
    let (a, b, idle) = (name(), name(), name());
    commit(&bootstrap, &a, "orders", &[(0, 10), (1, 20), (3, 7)]);
    commit(&bootstrap, &b, "orders", &[(2, 5)]);

    let reader = client(&bootstrap, None);
    let groups = vec![a.clone(), b.clone(), idle.clone()];
    let got = list_consumer_group_offsets(reader.client(), &groups, TIMEOUT);
    assert_eq!(got.len(), 3, "{got:?}");
    let offsets = |topic: &str, list: &[(i32, i64)]| -> Vec<CommittedOffset> {
        list.iter()
            .map(|(p, o)| CommittedOffset {
                topic: topic.to_string(),
                partition: *p,
                offset: *o,
            })
            .collect()
    };
    assert_eq!(got[&a], Ok(offsets("orders", &[(0, 10), (1, 20), (3, 7)])));
    assert_eq!(got[&b], Ok(offsets("orders", &[(2, 5)])));
    // A group that never committed has nothing, and is no error.
    assert_eq!(got[&idle], Ok(Vec::new()));
}

#[test]
fn a_name_librdkafka_cannot_take_is_refused_for_that_group_only() {
    let mock = mock("t", 1);
    let bootstrap = mock.bootstrap_servers();
    let good = name();
    commit(&bootstrap, &good, "t", &[(0, 3)]);
    let reader = client(&bootstrap, None);
    let bad = "bad\0name".to_string();
    let got = list_consumer_group_offsets(reader.client(), &[bad.clone(), good.clone()], TIMEOUT);
    assert_eq!(got[&bad], Err(OffsetsError::NulInName));
    assert_eq!(
        got[&good],
        Ok(vec![CommittedOffset {
            topic: "t".into(),
            partition: 0,
            offset: 3
        }])
    );
}

#[test]
fn an_unreachable_cluster_is_a_timeout_for_every_group_not_a_hang() {
    let reader = client("127.0.0.1:1", None);
    let groups = vec![name(), name()];
    let started = std::time::Instant::now();
    let got = list_consumer_group_offsets(reader.client(), &groups, Duration::from_millis(500));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by its timeout"
    );
    for g in &groups {
        assert!(got[g].is_err(), "{g}: {:?}", got[g]);
    }
}

#[test]
fn no_groups_no_request() {
    let reader = client("127.0.0.1:1", None);
    assert!(list_consumer_group_offsets(reader.client(), &[], TIMEOUT).is_empty());
}

/// A reader's requests so far, from librdkafka's statistics:
/// (FindCoordinator, OffsetFetch).
#[derive(Clone, Default)]
struct Requests(std::sync::Arc<std::sync::Mutex<(i64, i64)>>);

impl rdkafka::ClientContext for Requests {
    fn stats(&self, s: rdkafka::Statistics) {
        let count = |request: &str| -> i64 {
            s.brokers
                .values()
                .map(|b| b.req.get(request).copied().unwrap_or(0))
                .sum()
        };
        *self.0.lock().unwrap() = (count("FindCoordinator"), count("OffsetFetch"));
    }
}

impl rdkafka::consumer::ConsumerContext for Requests {}

/// Reading more groups than librdkafka's coordinator cache held (11) looks
/// each coordinator up once, not on every read: patches/librdkafka/0004
/// (without it, every read of 100 groups on a 3-node Kafka sent 91
/// FindCoordinator requests).
#[test]
fn later_reads_of_30_groups_look_no_coordinator_up() {
    let mock = mock("t", 1);
    let bootstrap = mock.bootstrap_servers();
    let groups: Vec<String> = (0..30).map(|_| name()).collect();
    let requests = Requests::default();
    let reader: BaseConsumer<Requests> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("statistics.interval.ms", "100")
        .create_with_context(requests.clone())
        .expect("reader");
    // Reads, then serves the statistics that come after it.
    let read = || {
        let got = list_consumer_group_offsets(reader.client(), &groups, TIMEOUT);
        assert!(got.values().all(|r| r.is_ok()), "{got:?}");
        for _ in 0..5 {
            let _ = reader.poll(Duration::from_millis(100));
        }
        *requests.0.lock().unwrap()
    };
    // (The first read's lookups may go through the bootstrap connection,
    // whose counts leave the statistics with it.)
    let first = read();
    let second = read();
    let third = read();
    // The statistics are current: one OffsetFetch per group and read.
    assert_eq!((second.1 - first.1, third.1 - second.1), (30, 30));
    assert_eq!(
        (second.0 - first.0, third.0 - second.0),
        (0, 0),
        "FindCoordinator requests in the second and third reads"
    );
}
