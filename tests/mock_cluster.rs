//! The heartbeat probe against librdkafka's in-process mock cluster, with
//! fault injection: what slaprobe reports must follow what the cluster does.

mod common;

use std::time::Duration;

use common::{heartbeat_config, median_from_buckets, wait_until, Running};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};

const TOPIC: &str = "slaprobe.heartbeat";
const PARTITIONS: i32 = 6;
const BROKERS: i32 = 3;

/// A 3-broker cluster with a 6-partition topic; partition p led by broker
/// p % 3 + 1, so each broker leads two.
fn cluster() -> MockCluster<'static, DefaultProducerContext> {
    common::mock_cluster(TOPIC, PARTITIONS, BROKERS)
}

/// Deliveries of one partition; its series appears with its first
/// delivery (`None` until then).
fn delivered_if_any(r: &Running, partition: i32) -> Option<f64> {
    r.metric_if_present(
        "slaprobe_heartbeat_partition_delivered_total",
        &[("partition", &partition.to_string())],
    )
}

/// Deliveries of a partition that has delivered before.
fn delivered(r: &Running, partition: i32) -> f64 {
    delivered_if_any(r, partition)
        .unwrap_or_else(|| panic!("partition {partition} has delivered before"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_partition_delivers_and_nothing_is_lost_from_the_first_canary() {
    let mock = cluster();
    let config = heartbeat_config(
        &mock.bootstrap_servers(),
        TOPIC,
        Duration::from_millis(100),
        Duration::from_secs(3),
    );
    let r = Running::start(&config).await;

    let all = wait_until(Duration::from_secs(30), || {
        (0..PARTITIONS).all(|p| delivered_if_any(&r, p).is_some_and(|v| v > 0.0))
    })
    .await;
    assert!(
        all,
        "every partition delivers:\n{}",
        String::from_utf8_lossy(&r.metrics.render())
    );
    // Readiness: cluster metadata and a matched canary.
    let (status, body) = common::http_get(r.addr, "/readyz").expect("GET /readyz");
    assert_eq!(status, 200, "{body}");
    // Each partition's counter carries its leader broker.
    for p in 0..PARTITIONS {
        let broker = (p % BROKERS + 1).to_string();
        assert!(
            r.metric(
                "slaprobe_heartbeat_partition_delivered_total",
                &[("partition", &p.to_string()), ("broker", &broker)]
            ) > 0.0,
            "partition {p} labelled with broker {broker}"
        );
    }
    // Every broker leads a partition.
    assert_eq!(
        r.metric("slaprobe_cluster_brokers_uncovered", &[("probe", "hb")]),
        0.0
    );

    // Let it run past a full deadline so the earliest canaries are resolved:
    // with explicit assignment from the end offsets, not one is lost, not
    // even the first (a group join would have missed it).
    let sent_at_check = r.metric("slaprobe_canaries_sent_total", &[]);
    let settled = wait_until(Duration::from_secs(20), || {
        let resolved = r.metric("slaprobe_canaries_delivered_total", &[])
            + r.metric("slaprobe_canaries_lost_total", &[]);
        resolved >= sent_at_check
    })
    .await;
    assert!(settled);
    assert_eq!(r.metric("slaprobe_canaries_lost_total", &[]), 0.0);
    assert_eq!(r.metric("slaprobe_produce_errors_total", &[]), 0.0);
    assert_eq!(r.metric("slaprobe_records_foreign_total", &[]), 0.0);
    assert_eq!(r.metric("slaprobe_canaries_duplicate_total", &[]), 0.0);
    assert!(
        r.metric(
            "slaprobe_sli_events_total",
            &[("sli", "availability"), ("outcome", "good")]
        ) > 0.0
    );
    assert_eq!(
        r.metric(
            "slaprobe_sli_events_total",
            &[("sli", "delivery"), ("outcome", "bad")]
        ),
        0.0
    );
    assert!(r.metric("slaprobe_produce_latency_seconds_count", &[("broker", "1")]) > 0.0);
    let (status, body) = common::http_get(r.addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    assert!(body.contains("slaprobe_build_info{version="), "{body}");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_latency_follows_the_brokers_round_trip_time() {
    let mock = cluster();
    // A low rate: the mock cluster answers delayed requests on a connection
    // one after another, so at high rates a large RTT builds a queue in the
    // mock itself and the test would measure that rather than the RTT.
    let config = heartbeat_config(
        &mock.bootstrap_servers(),
        TOPIC,
        Duration::from_millis(300),
        Duration::from_secs(5),
    );
    let r = Running::start(&config).await;
    let name = "slaprobe_e2e_latency_seconds";
    let labels = [("probe", "hb"), ("output", "heartbeat")];
    assert!(
        wait_until(Duration::from_secs(20), || r
            .metric("slaprobe_canaries_delivered_total", &[])
            > 6.0)
        .await
    );

    // Each median is taken over the next ten latencies observed.
    let render = || String::from_utf8_lossy(&r.metrics.render()).into_owned();
    let observed = || r.metric("slaprobe_e2e_latency_seconds_count", &labels);
    let ten_more = || {
        let from = observed();
        wait_until(Duration::from_secs(20), move || observed() >= from + 10.0)
    };
    let before = render();
    assert!(ten_more().await, "ten latencies observed");
    let mid = render();
    let base = median_from_buckets(&before, &mid, name, &labels).expect("baseline samples");

    for b in 1..=BROKERS {
        mock.broker_round_trip_time(b, Duration::from_millis(200))
            .expect("rtt");
    }
    // Canaries sent before the change are still settling: skip them, until
    // everything sent so far has an outcome.
    let sent = r.metric("slaprobe_canaries_sent_total", &[]);
    assert!(
        wait_until(Duration::from_secs(20), || r
            .metric("slaprobe_canaries_delivered_total", &[])
            + r.metric("slaprobe_canaries_lost_total", &[])
            >= sent)
        .await,
        "the canaries sent before the change settle"
    );
    let slow_start = render();
    assert!(ten_more().await, "ten latencies observed under delay");
    let slow_end = render();
    let slow =
        median_from_buckets(&slow_start, &slow_end, name, &labels).expect("samples under delay");
    eprintln!("e2e median (bucket upper bound): baseline {base}s, with 200 ms RTT {slow}s");
    // Produce and fetch each cross a 200 ms round trip: the median must move
    // from tens of milliseconds to 0.4–0.6 s, i.e. into the (0.25, 0.5] or
    // (0.5, 1] bucket.
    assert!(base <= 0.05, "baseline median {base}");
    assert!(
        slow > 0.25 && slow <= 1.0,
        "median under 200 ms RTT: {slow} (baseline {base})"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_down_fails_its_partitions_only_and_recovery_needs_no_restart() {
    let mock = cluster();
    let deadline = Duration::from_secs(2);
    let config = heartbeat_config(
        &mock.bootstrap_servers(),
        TOPIC,
        Duration::from_millis(100),
        deadline,
    );
    let r = Running::start(&config).await;
    assert!(
        wait_until(Duration::from_secs(30), || (0..PARTITIONS)
            .all(|p| delivered_if_any(&r, p).is_some_and(|v| v > 0.0)))
        .await
    );

    // Broker 2 leads partitions 1 and 4.
    mock.broker_down(2).expect("down");
    let down: Vec<i32> = (0..PARTITIONS).filter(|p| p % BROKERS + 1 == 2).collect();
    let up: Vec<i32> = (0..PARTITIONS).filter(|p| p % BROKERS + 1 != 2).collect();
    let failures = || {
        r.metric("slaprobe_produce_errors_total", &[])
            + r.metric("slaprobe_canaries_lost_total", &[])
    };
    assert!(
        wait_until(deadline * 5, || failures() > 0.0).await,
        "produces to the down broker's partitions fail or are lost"
    );
    // Once failures show, and the canaries sent before them have had
    // their deadline to settle, the down partitions have stopped
    // delivering while the others go on: each of those delivers a few
    // more while the down ones deliver nothing.
    tokio::time::sleep(deadline).await;
    let frozen: Vec<f64> = down.iter().map(|p| delivered(&r, *p)).collect();
    let moving: Vec<f64> = up.iter().map(|p| delivered(&r, *p)).collect();
    assert!(
        wait_until(Duration::from_secs(10), || up
            .iter()
            .zip(&moving)
            .all(|(p, before)| delivered(&r, *p) >= *before + 3.0))
        .await,
        "the partitions on the other brokers keep delivering"
    );
    for (p, before) in down.iter().zip(&frozen) {
        assert_eq!(
            delivered(&r, *p),
            *before,
            "partition {p} on the down broker delivers nothing"
        );
    }
    assert!(
        r.metric(
            "slaprobe_sli_events_total",
            &[("sli", "availability"), ("outcome", "bad")]
        ) + r.metric(
            "slaprobe_sli_events_total",
            &[("sli", "delivery"), ("outcome", "bad")]
        ) > 0.0
    );

    mock.broker_up(2).expect("up");
    let resumed = wait_until(Duration::from_secs(30), || {
        down.iter()
            .zip(&frozen)
            .all(|(p, before)| delivered(&r, *p) > *before)
    })
    .await;
    assert!(
        resumed,
        "delivery resumes after broker_up without a restart"
    );
    r.stop().await;
}

/// librdkafka's own events (statistics, logs, errors that concern no one
/// partition) come on the consumer's queue, however fast: statistics
/// every 5 ms are 200 a second. Each is served as it comes, so a broker
/// going down is counted as a consume error at once, not behind a
/// backlog (a queue served one event per 100 ms would hold ~1,900 events
/// after these 10 s, and hand the error over minutes later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumers_own_events_are_served_as_fast_as_they_come() {
    let mock = cluster();
    let mut config = heartbeat_config(
        &mock.bootstrap_servers(),
        TOPIC,
        Duration::from_millis(100),
        Duration::from_secs(2),
    );
    for c in config.clusters.values_mut() {
        c.librdkafka
            .insert("statistics.interval.ms".into(), "5".into());
    }
    let r = Running::start(&config).await;
    assert!(
        wait_until(Duration::from_secs(30), || (0..PARTITIONS)
            .all(|p| delivered_if_any(&r, p).is_some_and(|v| v > 0.0)))
        .await
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    let transport = || r.metric("slaprobe_consume_errors_total", &[("error", "transport")]);
    let before = transport();
    mock.broker_down(2).expect("down");
    assert!(
        wait_until(Duration::from_secs(10), || transport() > before).await,
        "the consumer's transport error is counted within 10 s of the broker going down"
    );
    mock.broker_up(2).expect("up");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_are_not_our_canaries_are_foreign() {
    let mock = cluster();
    let config = heartbeat_config(
        &mock.bootstrap_servers(),
        TOPIC,
        Duration::from_millis(100),
        Duration::from_secs(3),
    );
    let r = Running::start(&config).await;
    assert!(
        wait_until(Duration::from_secs(30), || r
            .metric("slaprobe_canaries_delivered_total", &[])
            > 0.0)
        .await
    );

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .expect("producer");
    let send = |p: i32, payload: &'static str, headers: Option<OwnedHeaders>| {
        let mut rec = FutureRecord::<str, str>::to(TOPIC)
            .partition(p)
            .payload(payload);
        if let Some(h) = headers {
            rec = rec.headers(h);
        }
        producer.send(rec, Duration::from_secs(5))
    };
    let id = |v: &'static str| {
        Some(OwnedHeaders::new().insert(Header {
            key: "slaprobe-id",
            value: Some(v),
        }))
    };
    // Plain traffic, a canary of another run, of another probe, and garbage.
    let foreign = [
        send(0, "not a canary", None).await,
        send(1, "{}", id("hb/00000000000000ff/1/0")).await,
        send(2, "{}", id("other/00000000000000ff/2/0")).await,
        send(3, "{}", id("\u{1F980} not an id")).await,
        send(4, "\u{0}\u{1}", None).await,
    ];
    assert!(foreign.iter().all(Result::is_ok));
    let seen = wait_until(Duration::from_secs(30), || {
        r.metric("slaprobe_records_foreign_total", &[]) >= 5.0
    })
    .await;
    assert!(seen, "foreign records counted");
    // And they change nothing else, while more canaries are delivered.
    let delivered = r.metric("slaprobe_canaries_delivered_total", &[]);
    assert!(
        wait_until(Duration::from_secs(10), || r
            .metric("slaprobe_canaries_delivered_total", &[])
            >= delivered + 5.0)
        .await
    );
    assert_eq!(r.metric("slaprobe_records_foreign_total", &[]), 5.0);
    assert_eq!(r.metric("slaprobe_canaries_lost_total", &[]), 0.0);
    assert_eq!(r.metric("slaprobe_canaries_duplicate_total", &[]), 0.0);
    assert_eq!(r.metric("slaprobe_canaries_late_total", &[]), 0.0);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_leading_no_probed_partition_are_uncovered() {
    let mock = MockCluster::new(BROKERS).expect("mock cluster");
    mock.create_topic(TOPIC, 2, BROKERS).expect("topic");
    // Both partitions on broker 1: brokers 2 and 3 see no canary.
    for p in 0..2 {
        mock.partition_leader(TOPIC, p, Some(1)).expect("leader");
    }
    let config = heartbeat_config(
        &mock.bootstrap_servers(),
        TOPIC,
        Duration::from_millis(100),
        Duration::from_secs(3),
    );
    let r = Running::start(&config).await;
    let labels = [("kafka_cluster", "test"), ("probe", "hb")];
    assert!(
        wait_until(Duration::from_secs(20), || {
            r.metric("slaprobe_canaries_delivered_total", &[]) > 0.0
        })
        .await
    );
    assert_eq!(r.metric("slaprobe_cluster_brokers_uncovered", &labels), 2.0);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_idempotent_producer_error_is_recovered_without_a_restart() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("slaprobe=warn")
        .try_init();
    let mock = cluster();
    mock.create_topic("second", PARTITIONS, BROKERS)
        .expect("topic");
    let mut config = heartbeat_config(
        &mock.bootstrap_servers(),
        TOPIC,
        Duration::from_millis(100),
        Duration::from_secs(3),
    );
    // A second probe on the cluster shares the producer: the replacement
    // must serve both.
    let mut second = config.probes[0].clone();
    second.name = "second".into();
    if let slaprobe::config::ProbeKind::Heartbeat(hb) = &mut second.kind {
        hb.topic = "second".into();
    }
    config.probes.push(second);
    let r = Running::start(&config).await;
    let delivered =
        |probe: &str| r.metric("slaprobe_canaries_delivered_total", &[("probe", probe)]);
    assert!(
        wait_until(Duration::from_secs(20), || {
            delivered("hb") > 10.0 && delivered("second") > 10.0
        })
        .await
    );
    // The broker says the head-of-line batch is out of sequence: librdkafka
    // declares the idempotent producer's state lost — a fatal error.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    assert!(
        wait_until(Duration::from_secs(20), || {
            r.metric("slaprobe_produce_errors_total", &[("error", "fatal")]) > 0.0
        })
        .await,
        "the fatal error is counted:\n{}",
        String::from_utf8_lossy(&r.metrics.render())
    );
    let before = (delivered("hb"), delivered("second"));
    assert!(
        wait_until(Duration::from_secs(20), || {
            delivered("hb") > before.0 + 20.0 && delivered("second") > before.1 + 20.0
        })
        .await,
        "a new producer delivers again for both probes:\n{}",
        String::from_utf8_lossy(&r.metrics.render())
    );
    // Nothing the old producer held is left behind: every canary of both
    // probes is settled (in flight is what the last 3 s deadline holds).
    assert_eq!(r.metric("slaprobe_canaries_lost_total", &[]), 0.0);
    r.stop().await;
}

/// A fatal error with tens of thousands of canaries queued: the producer is
/// replaced, and every queued canary is settled — its report counted as a
/// failed produce, or, if no report ever comes, given up at deadline +
/// grace — so nothing stays in flight for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_error_with_50000_canaries_queued_leaves_none_in_flight() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mock = cluster();
    let deadline = Duration::from_secs(12);
    let config = heartbeat_config(
        &mock.bootstrap_servers(),
        TOPIC,
        Duration::from_millis(1),
        deadline,
    );
    let r = Running::start(&config).await;
    assert!(
        wait_until(Duration::from_secs(30), || {
            r.metric("slaprobe_canaries_delivered_total", &[]) > 10.0
        })
        .await
    );
    // Acks stop coming: canaries pile up in the producer.
    for b in 1..=BROKERS {
        mock.broker_round_trip_time(b, Duration::from_secs(11))
            .expect("rtt");
    }
    assert!(
        wait_until(Duration::from_secs(30), || {
            r.metric("slaprobe_canaries_in_flight", &[]) >= 50_000.0
        })
        .await,
        "50,000 in flight:\n{}",
        String::from_utf8_lossy(&r.metrics.render())
    );
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    r.stop_input.cancel();
    for b in 1..=BROKERS {
        mock.broker_round_trip_time(b, Duration::ZERO).expect("rtt");
    }
    assert!(
        wait_until(deadline + tracker_grace() + Duration::from_secs(30), || {
            r.metric("slaprobe_canaries_in_flight", &[]) == 0.0
        })
        .await,
        "nothing stays in flight:\n{}",
        String::from_utf8_lossy(&r.metrics.render())
    );
    // Every canary ended somewhere: delivered, lost, or a failed produce.
    let sent = r.metric("slaprobe_canaries_sent_total", &[]);
    let ended = r.metric("slaprobe_sli_events_total", &[("sli", "availability")]);
    assert_eq!(ended, sent, "every send has its availability event");
    r.stop().await;
}

fn tracker_grace() -> Duration {
    slaprobe::outcome::tracker::ACK_GRACE
}

/// Connection checks reach every broker of the cluster, stage by stage,
/// with its rack; a broker that goes down is refused (or hung up on) at
/// the next check while the others pass, and passes again when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_checks_follow_each_broker_down_and_up() {
    let mock = cluster();
    mock.broker_rack(1, "az-a").expect("rack");
    let yaml = format!(
        r#"clusters:
  m:
    bootstrap: '{}'
    connection_check_interval: 1s
    librdkafka: {{ fetch.wait.max.ms: '10' }}
probes:
  - name: hb
    type: heartbeat
    cluster: m
    topic: {TOPIC}
    interval: 100ms
"#,
        mock.bootstrap_servers()
    );
    let config = slaprobe::config::load_str("checks.yaml", &yaml, &|_| None).expect("config");
    let r = Running::start(&config).await;
    let up = |b: &str| {
        r.metric_if_present(
            "slaprobe_broker_connection_up",
            &[("broker", b), ("listener", "default")],
        )
    };
    let text = || String::from_utf8_lossy(&r.metrics.render()).into_owned();
    assert!(
        wait_until(Duration::from_secs(30), || ["1", "2", "3"]
            .iter()
            .all(|b| up(b) == Some(1.0)))
        .await,
        "every broker checked and up:\n{}",
        text()
    );
    assert_eq!(
        up("bootstrap"),
        None,
        "the bootstrap's series go once brokers are known"
    );
    for stage in ["tcp", "api_versions"] {
        assert!(
            r.metric(
                "slaprobe_broker_connection_seconds_count",
                &[("broker", "2"), ("stage", stage)]
            ) >= 1.0,
            "{stage} timed:\n{}",
            text()
        );
    }
    assert_eq!(
        r.metric_if_present(
            "slaprobe_broker_connection_seconds_count",
            &[("stage", "tls")]
        ),
        None,
        "a plaintext listener has no TLS stage"
    );
    assert_eq!(
        r.metric("slaprobe_broker_info", &[("broker", "1"), ("rack", "az-a")]),
        1.0
    );

    mock.broker_down(2).expect("down");
    assert!(
        wait_until(Duration::from_secs(15), || up("2") == Some(0.0)).await,
        "broker 2 down:\n{}",
        text()
    );
    assert!(
        r.metric(
            "slaprobe_broker_connection_errors_total",
            &[("broker", "2")]
        ) > 0.0,
        "{}",
        text()
    );
    assert_eq!(
        (up("1"), up("3")),
        (Some(1.0), Some(1.0)),
        "the others pass"
    );
    mock.broker_up(2).expect("up");
    assert!(
        wait_until(Duration::from_secs(15), || up("2") == Some(1.0)).await,
        "broker 2 back:\n{}",
        text()
    );
    r.stop().await;
}
