//! Broker faults on Apache Kafka, with the data kept: a heartbeat probe on
//! a 3-node cluster of the test's own (replication factor 3,
//! `min.insync.replicas` 2) while one node is killed with SIGKILL and
//! started again (leaders move, the ISR shrinks and grows), two nodes are
//! down (`acks=all` produces fail below `min.insync.replicas`), a node
//! makes a controlled shutdown, and a preferred-leader election moves the
//! leaders back.
//!
//! The connection checks see the killed node refused while the others
//! pass, and passing again once it is back. A `type: lag` probe reads
//! twelve groups' offsets through all of it: once the cluster has moved
//! the group coordinators of the killed node (and of the node shut down),
//! every read succeeds again.
//!
//! Through all of it slaprobe stays up and every partition delivers again
//! after each fault, without a restart. At the end its outcomes are
//! compared with an independent consumer's (`tests/clients/truth.py`,
//! which reads the topic from its beginning): no canary counted lost
//! that the log holds (every loss declared at the deadline arrived, late),
//! no canary missing from the log that was not a failed produce, and every
//! canary record in the log one of slaprobe's arrivals (delivered, late,
//! duplicate, or of a failed produce), exactly.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::broker::KafkaCluster;
use common::{scratch, wait_until, Python, Running};

const TOPIC: &str = "slaprobe.faults";
/// The watched groups' topic, and their names' prefix.
const GROUPS_TOPIC: &str = "slaprobe.faults.groups";
const GROUPS: usize = 12;
const GROUP_PREFIX: &str = "faults-group-";
/// Canaries in flight when a leader dies wait for the controller to fence
/// it (`broker.session.timeout.ms`, 9 s) and for a new leader: a
/// deadline above that makes such delays late deliveries, not losses.
const DEADLINE: Duration = Duration::from_secs(15);

fn config(bootstrap: &str) -> slaprobe::config::Config {
    let yaml = format!(
        r#"clusters:
  k: {{ bootstrap: '{bootstrap}', connection_check_interval: 1s }}
probes:
  - name: faults
    type: heartbeat
    cluster: k
    topic: {TOPIC}
    interval: 100ms
    deadline: {}s
    topic_management: {{ create: true, partitions_per_broker: 3 }}
  - name: groups
    type: lag
    cluster: k
    group_pattern: '{GROUP_PREFIX}.*'
    interval: 1s
"#,
        DEADLINE.as_secs()
    );
    slaprobe::config::load_str("faults.yaml", &yaml, &|_| None).expect("config")
}

fn delivered_on(r: &Running, partition: i32) -> f64 {
    r.metric_if_present(
        "slaprobe_heartbeat_partition_delivered_total",
        &[("partition", &partition.to_string())],
    )
    .unwrap_or(0.0)
}

/// The last connection check of `broker` on the clients' listener.
fn broker_up(r: &Running, broker: &str) -> Option<f64> {
    r.metric_if_present(
        "slaprobe_broker_connection_up",
        &[("broker", broker), ("listener", "default")],
    )
}

fn offsets_errors(r: &Running) -> f64 {
    r.metric(
        "slaprobe_consumergroup_read_errors_total",
        &[("request", "offsets")],
    )
}

/// Waits until no group read fails for 3 s (the probe reads every second;
/// a failed read counts each of its groups), printing the failed group
/// reads since `from`.
async fn groups_read_again(r: &Running, from: f64, what: &str) {
    let end = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let before = offsets_errors(r);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = offsets_errors(r);
        if after == before {
            eprintln!(
                "{what}: the groups' offsets are read again ({} failed group reads meanwhile)",
                after - from
            );
            return;
        }
        assert!(
            std::time::Instant::now() < end,
            "{what}: every group's offsets are read again\n{}",
            String::from_utf8_lossy(&r.metrics.render())
        );
    }
}

/// Waits until every partition of `partitions` has delivered at least
/// `more` canaries beyond what it had: the probe works on each again.
async fn every_partition_delivers(r: &Running, partitions: i32, more: f64, what: &str) {
    let from: Vec<f64> = (0..partitions).map(|p| delivered_on(r, p)).collect();
    let again = wait_until(Duration::from_secs(90), || {
        (0..partitions).all(|p| delivered_on(r, p) >= from[p as usize] + more)
    })
    .await;
    assert!(
        again,
        "{what}: every partition delivers again\n{}",
        String::from_utf8_lossy(&r.metrics.render())
    );
    eprintln!("{what}: every partition delivers again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_faults_keep_every_outcome_true() {
    let dir = scratch("kafka-faults");
    let Some(cluster) = KafkaCluster::start(&dir) else {
        return;
    };
    let r = Running::start(&config(&cluster.bootstrap)).await;
    let partitions = 9;
    assert!(
        wait_until(Duration::from_secs(60), || (0..partitions)
            .all(|p| delivered_on(&r, p) > 0.0))
        .await,
        "every partition delivers\n{}",
        String::from_utf8_lossy(&r.metrics.render())
    );
    // Groups with commits, no members: group i at offset i + 1.
    tokio::task::block_in_place(|| common::create_topics(&cluster.bootstrap, &[GROUPS_TOPIC], 2));
    tokio::task::block_in_place(|| {
        Python::run(
            "lag_group.py",
            &[
                &cluster.bootstrap,
                "many",
                GROUPS_TOPIC,
                GROUP_PREFIX,
                &GROUPS.to_string(),
            ],
        )
    });
    let committed = |r: &Running, i: usize| {
        r.metric_if_present(
            "slaprobe_consumergroup_committed_offset",
            &[("group", &format!("{GROUP_PREFIX}{i}")), ("partition", "0")],
        )
    };
    assert!(
        wait_until(Duration::from_secs(30), || (0..GROUPS).all(|i| committed(
            &r, i
        ) == Some(
            i as f64 + 1.0
        )))
        .await,
        "every group's offsets\n{}",
        String::from_utf8_lossy(&r.metrics.render())
    );

    let stop_file = dir.join("truth.stop");
    let truth_file = dir.join("truth.json");
    let _truth = Python::start(
        "truth.py",
        &[
            &cluster.bootstrap,
            TOPIC,
            &stop_file.to_string_lossy(),
            &truth_file.to_string_lossy(),
        ],
    );

    // One node killed: its partitions' leaders move once the controller
    // fences it; started again, it catches up and rejoins the ISR.
    let errors = offsets_errors(&r);
    cluster.kill(2);
    every_partition_delivers(&r, partitions, 10.0, "node 2 killed").await;
    groups_read_again(&r, errors, "node 2 killed").await;
    // The connection checks see it refused (it left the cluster's
    // metadata: it is checked as a broker known before).
    assert!(
        wait_until(Duration::from_secs(30), || broker_up(&r, "2") == Some(0.0)).await,
        "node 2's connection check fails\n{}",
        String::from_utf8_lossy(&r.metrics.render())
    );
    assert!(
        r.metric(
            "slaprobe_broker_connection_errors_total",
            &[("broker", "2"), ("stage", "tcp"), ("error", "refused")]
        ) > 0.0
    );
    assert_eq!(
        (broker_up(&r, "1"), broker_up(&r, "3")),
        (Some(1.0), Some(1.0))
    );
    cluster.restart(2);
    every_partition_delivers(&r, partitions, 10.0, "node 2 back").await;
    assert!(
        wait_until(Duration::from_secs(30), || broker_up(&r, "2") == Some(1.0)).await,
        "node 2's connection check passes again"
    );

    // Two nodes down: partitions with one replica left in sync refuse
    // `acks=all` produces (availability), until the nodes return.
    let errors = r.metric("slaprobe_produce_errors_total", &[]);
    cluster.kill(2);
    cluster.kill(3);
    assert!(
        wait_until(Duration::from_secs(60), || r
            .metric("slaprobe_produce_errors_total", &[])
            > errors)
        .await,
        "produces fail below min.insync.replicas"
    );
    cluster.restart(2);
    cluster.restart(3);
    every_partition_delivers(&r, partitions, 10.0, "nodes 2 and 3 back").await;

    // A controlled shutdown moves leaders away first.
    let errors = offsets_errors(&r);
    cluster.terminate(1);
    every_partition_delivers(&r, partitions, 10.0, "node 1 shut down").await;
    groups_read_again(&r, errors, "node 1 shut down").await;
    cluster.restart(1);
    every_partition_delivers(&r, partitions, 10.0, "node 1 back").await;

    // The preferred leaders take their partitions back.
    let elected = tokio::task::block_in_place(|| {
        Python::run("kafka_admin.py", &[&cluster.bootstrap, "elect", TOPIC])
    });
    eprintln!(
        "preferred leader election moved partitions {}",
        elected.trim()
    );
    every_partition_delivers(&r, partitions, 10.0, "after the election").await;

    // Stop sending; every canary settles (a deadline at most, and its
    // delivery report's grace).
    r.stop_input.cancel();
    assert!(
        wait_until(DEADLINE * 2, || r
            .metric("slaprobe_canaries_in_flight", &[])
            == 0.0)
        .await,
        "every canary settles"
    );
    std::fs::write(&stop_file, "").expect("stop file");
    assert!(
        wait_until(Duration::from_secs(60), || truth_file.exists()).await,
        "the independent consumer read the whole topic"
    );
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&truth_file).expect("truth")).expect("json");
    let seen: BTreeMap<String, u64> = truth["ids"]
        .as_object()
        .expect("ids")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect();
    let value = |name: &str| r.metric(name, &[]);
    let (sent, delivered, lost, late, duplicate, failed, failed_arrived) = (
        value("slaprobe_canaries_sent_total"),
        value("slaprobe_canaries_delivered_total"),
        value("slaprobe_canaries_lost_total"),
        value("slaprobe_canaries_late_total"),
        value("slaprobe_canaries_duplicate_total"),
        value("slaprobe_produce_errors_total"),
        value("slaprobe_canaries_failed_but_arrived_total"),
    );
    // Canaries of this run only: the ids truth.py saw carry the run.
    let run = r.run.to_string();
    let ours: Vec<&u64> = seen
        .iter()
        .filter(|(id, _)| id.contains(&run))
        .map(|(_, n)| n)
        .collect();
    let distinct = ours.len() as f64;
    let records: u64 = ours.iter().copied().sum();
    let missing = sent - distinct;
    eprintln!(
        "slaprobe: sent {sent}, delivered {delivered}, lost {lost}, late {late}, duplicate {duplicate}, \
         failed produces {failed} ({failed_arrived} arrivals of them); \
         the log: {records} canary records, {distinct} distinct canaries, {missing} never written"
    );
    assert_eq!(
        lost, late,
        "every canary declared lost arrived, late: Kafka lost no acked canary"
    );
    // Every canary record in the log is one arrival of slaprobe's: the
    // first of an acked canary (delivered, or late after its deadline), a
    // repeat (duplicate: librdkafka sends canaries again after others time
    // out in its queue, see the README), or one of a canary whose produce
    // was reported failed.
    assert_eq!(
        records as f64,
        delivered + late + duplicate + failed_arrived,
        "the log's canary records are slaprobe's arrivals"
    );
    assert!(
        missing <= failed,
        "every canary missing from the log ({missing}) was a failed produce ({failed})"
    );
    r.stop().await;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
