//! Black-box tests: what the `slaprobe` binary makes of the records on a
//! real broker's topics — records of other clients and other probers,
//! header names that are not UTF-8, batches no client can decode, every
//! compression codec on a pipeline's outputs — checked through its HTTP
//! endpoints, with independent (Python) clients writing the records.
//!
//! Like `tests/broker.rs`, they run on the suite's real broker
//! (`SLAPROBE_TEST_BOOTSTRAP`) and use random topic names; the damaged
//! batch goes to librdkafka's mock cluster, which stores what it gets
//! (Kafka refuses such a batch).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::broker::{self, heartbeat_yaml, heartbeat_yaml_observing, Probed, Topic};
use common::{metric, poll_until, scratch, Slaprobe};

fn delivered(s: &Slaprobe) -> f64 {
    s.value("slaprobe_canaries_delivered_total", &[])
}

#[test]
fn records_from_another_client_are_foreign_and_change_nothing_else() {
    let Some(Probed {
        bootstrap,
        topic,
        s,
        ..
    }) = Probed::ready("it-foreign", None)
    else {
        return;
    };

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/produce_foreign.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([&bootstrap, &topic.name, "9"])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the Python producer (pip install confluent-kafka) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        poll_until(Duration::from_secs(15), || s
            .value("slaprobe_records_foreign_total", &[])
            >= 9.0),
        "nine foreign records counted:\n{}",
        s.metrics()
    );
    let before = delivered(&s);
    assert!(poll_until(Duration::from_secs(10), || delivered(&s) > before + 5.0));
    let text = s.metrics();
    assert_eq!(
        metric(&text, "slaprobe_records_foreign_total", &[]),
        9.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "slaprobe_canaries_lost_total", &[]),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "slaprobe_canaries_duplicate_total", &[]),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "slaprobe_canaries_late_total", &[]),
        0.0,
        "{text}"
    );
    assert!(s.stop().success());
}

#[test]
fn two_probers_on_one_topic_see_each_other_as_foreign() {
    let Some(bootstrap) = broker::bootstrap() else {
        return;
    };
    let topic = Topic::new(&bootstrap);
    topic.create(3);
    let dir = scratch("two");
    // Same probe name on purpose: only the run id tells them apart.
    let yaml = heartbeat_yaml(&bootstrap, &topic.name, "it-shared");
    let a = Slaprobe::start(&dir, "a", &yaml);
    let b = Slaprobe::start(&dir, "b", &yaml);
    let both = poll_until(Duration::from_secs(30), || {
        a.ready()
            && b.ready()
            && a.value("slaprobe_records_foreign_total", &[]) > 10.0
            && b.value("slaprobe_records_foreign_total", &[]) > 10.0
    });
    assert!(
        both,
        "each counts the other's canaries as foreign:\n{}\n{}",
        a.metrics(),
        b.metrics()
    );
    for s in [&a, &b] {
        let text = s.metrics();
        let sent = metric(&text, "slaprobe_canaries_sent_total", &[]);
        assert!(
            metric(&text, "slaprobe_canaries_delivered_total", &[]) <= sent,
            "{text}"
        );
        assert_eq!(
            metric(&text, "slaprobe_canaries_duplicate_total", &[]),
            0.0,
            "{text}"
        );
        assert_eq!(
            metric(&text, "slaprobe_canaries_lost_total", &[]),
            0.0,
            "{text}"
        );
    }
    assert!(a.stop().success());
    assert!(b.stop().success());
}

/// Records whose header names are not UTF-8 (rdkafka's header accessor
/// panics on them): 10,000 of them are counted as foreign without a line of
/// panic output, and a canary id in a header after such a header is still
/// read (here an id already delivered, so it counts as a duplicate).
#[test]
fn header_names_that_are_not_utf8_are_foreign_quietly_and_hide_no_canary() {
    let Some(Probed {
        bootstrap,
        topic,
        s,
        ..
    }) = Probed::start("it-hostile", None)
    else {
        return;
    };
    let first_delivered = || {
        common::metric_if_present(
            &s.metrics(),
            "slaprobe_heartbeat_partition_delivered_total",
            &[("partition", "0")],
        )
        .is_some_and(|v| v > 0.0)
    };
    assert!(
        poll_until(Duration::from_secs(30), first_delivered),
        "partition 0 delivers; log:\n{}",
        s.log()
    );
    let status: serde_json::Value = serde_json::from_str(
        &common::http_get(s.addr, "/api/v1/status")
            .expect("status")
            .1,
    )
    .expect("json");
    let run = status["run"].as_str().expect("run id").to_string();
    let log_lines_before = s.log().lines().count();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/produce_bad_headers.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([
            &bootstrap,
            &topic.name,
            "10000",
            &format!("it-hostile/{run}/0/0"),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the Python producer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        poll_until(Duration::from_secs(60), || {
            s.value("slaprobe_records_foreign_total", &[]) >= 10_000.0
                && s.value("slaprobe_canaries_duplicate_total", &[]) >= 1.0
        }),
        "10,000 foreign records and the canary behind a bad header:\n{}",
        s.metrics()
    );
    let log = s.log();
    assert!(!log.contains("panicked"), "no panic output:\n{log}");
    let new_lines = log.lines().count() - log_lines_before;
    assert!(new_lines < 50, "{new_lines} new log lines:\n{log}");
    assert_eq!(s.value("slaprobe_canaries_lost_total", &[]), 0.0);
    assert!(s.stop().success());
}

/// Records the consumer cannot decode (a corrupt batch) are consume
/// errors, counted by class and logged, never silently lost canaries nor a
/// crash.
///
/// Kafka validates every batch it is sent and refuses such a one, so the
/// test writes it to librdkafka's mock cluster (in this process, on a
/// loopback port), which stores what it gets: the case of a broker that
/// hands out a damaged batch.
#[test]
fn records_the_consumer_cannot_decode_are_counted_consume_errors() {
    let dir = scratch("codec");
    let topic = format!("slaprobe-it-{:016x}", rand::random::<u64>());
    let mock = broker::mock_cluster(&topic, 3, 1);
    let bootstrap = mock.bootstrap_servers();
    let topic = format!("slaprobe-it-{:016x}", rand::random::<u64>());
    let yaml = heartbeat_yaml_observing(&bootstrap, &topic, "it-codec");
    let s = Slaprobe::start(&dir, "codec", &yaml);
    assert!(
        poll_until(Duration::from_secs(30), || s.ready()),
        "ready; log:\n{}",
        s.log()
    );
    // A batch that claims zstd but holds uncompressed records: no client
    // can decode it (every codec is built in, so a missing one cannot be
    // the test any more).
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/produce_corrupt_batch.py");
    for partition in ["0", "1", "2"] {
        let out = Command::new("python3")
            .arg(&script)
            .args([&bootstrap, &topic, partition, "10"])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "the raw producer (pip install kafka-python) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        poll_until(Duration::from_secs(30), || s
            .value("slaprobe_consume_errors_total", &[("error", "decode")])
            > 0.0),
        "decode errors counted:\n{}\nlog:\n{}",
        s.metrics(),
        s.log()
    );
    assert!(s.log().contains("consume errors"), "logged:\n{}", s.log());
    assert!(s.stop().success());
}

/// A pipeline whose stages (independent Python clients) write its output
/// topics compressed with gzip, snappy, lz4 and zstd: every canary is
/// matched on every output, none lost, nothing undecodable.
#[test]
fn every_codec_on_a_pipeline_output_is_decoded() {
    let Some(bootstrap) = broker::bootstrap() else {
        return;
    };
    let dir = scratch("codecs");
    let suffix = format!("{:016x}", rand::random::<u64>());
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    let input = format!("it-in-{suffix}");
    let outputs: Vec<String> = codecs.iter().map(|c| format!("it-{c}-{suffix}")).collect();
    let mut topics: Vec<&str> = outputs.iter().map(String::as_str).collect();
    topics.push(&input);
    common::create_topics(&bootstrap, &topics, 2);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/delay_stage.py");
    let mut stages: Vec<std::process::Child> = codecs
        .iter()
        .zip(&outputs)
        .map(|(codec, output)| {
            Command::new("python3")
                .arg(&script)
                .args([&bootstrap, &input, output, "0", codec])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("python3 stage (pip install confluent-kafka)")
        })
        .collect();
    let outputs_yaml: String = codecs
        .iter()
        .zip(&outputs)
        .map(|(codec, topic)| {
            format!("      - {{ name: {codec}, cluster: it, topic: {topic}, match: {{ header: slaprobe-id }} }}\n")
        })
        .collect();
    let yaml = format!(
        r#"clusters:
  it: {{ bootstrap: '{bootstrap}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}
probes:
  - name: it-codecs
    type: pipeline
    interval: 200ms
    deadline: 20s
    input: {{ cluster: it, topic: {input}, payload: '{{{{"id":"{{{{id}}}}"}}}}' }}
    outputs:
{outputs_yaml}"#
    );
    let s = Slaprobe::start(&dir, "codecs", &yaml);
    // Every output's series exist from the start.
    let on = |s: &Slaprobe, name: &str, codec: &str| s.value(name, &[("output", codec)]);
    let all = poll_until(Duration::from_secs(90), || {
        codecs
            .iter()
            .all(|c| on(&s, "slaprobe_canaries_delivered_total", c) >= 20.0)
    });
    for stage in &mut stages {
        let _ = stage.kill();
        let _ = stage.wait();
    }
    assert!(
        all,
        "every output delivers:\n{}\nlog:\n{}",
        s.metrics(),
        s.log()
    );
    let text = s.metrics();
    for c in codecs {
        for name in [
            "slaprobe_canaries_lost_total",
            "slaprobe_records_foreign_total",
        ] {
            assert_eq!(metric(&text, name, &[("output", c)]), 0.0, "{name} on {c}");
        }
        assert_eq!(
            metric(&text, "slaprobe_consume_errors_total", &[("output", c)]),
            0.0,
            "consume errors on {c}"
        );
    }
    assert!(s.stop().success());
}
