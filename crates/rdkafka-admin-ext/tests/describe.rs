//! `describe_topics` against librdkafka's in-process mock cluster: many
//! topics' partitions and leaders in one call, a missing topic reported as
//! such (and not created), a leaderless partition as leaderless, the
//! controller's broker down, and an unreachable cluster as a timeout.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka_admin_ext::{describe_topics, DescribeError};

const TIMEOUT: Duration = Duration::from_secs(10);

fn client(bootstrap: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("client")
}

#[test]
fn topics_come_back_in_one_call() {
    let mock: MockCluster<'static, DefaultProducerContext> = MockCluster::new(3).expect("mock");
    mock.create_topic("a", 3, 1).expect("topic a");
    mock.create_topic("b", 2, 1).expect("topic b");
    mock.partition_leader("a", 1, Some(2)).expect("leader");
    mock.partition_leader("b", 0, None).expect("leaderless");
    let reader = client(&mock.bootstrap_servers());
    let topics = ["a", "b", "gone"].map(String::from);

    let got = describe_topics(reader.client(), &topics, TIMEOUT).expect("described");
    let a = got["a"].as_ref().expect("a");
    assert_eq!(a.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(a[1], (1, Some(2)));
    assert!(a.iter().all(|(_, l)| l.is_some()), "{a:?}");
    let b = got["b"].as_ref().expect("b");
    assert_eq!(b.len(), 2);
    assert_eq!(b[0], (0, None), "leaderless");
    assert_eq!(got["gone"], Err(RDKafkaErrorCode::UnknownTopicOrPartition));

    // Asking did not create it.
    let again = describe_topics(reader.client(), &topics[2..], TIMEOUT).expect("described");
    assert_eq!(
        again["gone"],
        Err(RDKafkaErrorCode::UnknownTopicOrPartition)
    );

    // The request goes to the controller: with the first broker down
    // another one is named (the mock names the first broker that is up).
    // A request already on its way to the old one fails (transport); the
    // next ones, once librdkafka has read the new controller, are answered.
    mock.broker_down(1).expect("down");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let answered = loop {
        match describe_topics(reader.client(), &topics[..1], TIMEOUT) {
            Ok(got) => break got,
            Err(e) if std::time::Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("no answer with broker 1 down: {e}"),
        }
    };
    assert_eq!(answered["a"].as_ref().expect("a").len(), 3);
}

#[test]
fn no_topics_no_request() {
    let reader = client("127.0.0.1:1");
    let got = describe_topics(reader.client(), &[], TIMEOUT).expect("nothing to describe");
    assert!(got.is_empty());
}

#[test]
fn a_name_librdkafka_cannot_take_is_refused() {
    let mock: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1).expect("mock");
    let reader = client(&mock.bootstrap_servers());
    let got = describe_topics(reader.client(), &["a\0b".to_string()], TIMEOUT);
    assert_eq!(got, Err(DescribeError::NulInName));
}

#[test]
fn an_unreachable_cluster_is_a_timeout_not_a_hang() {
    // A port nothing listens on.
    let reader = client("127.0.0.1:1");
    let started = std::time::Instant::now();
    let got = describe_topics(reader.client(), &["a".to_string()], Duration::from_secs(2));
    assert!(
        matches!(
            got,
            Err(DescribeError::NoAnswer(_)) | Err(DescribeError::Failed { .. })
        ),
        "{got:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
