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
use common::{metric, poll_until, scratch, Python, Slaprobe};

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

    Python::run("produce_foreign.py", &[&bootstrap, &topic.name, "9"]);
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
    s.stop_cleanly();
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
    a.stop_cleanly();
    b.stop_cleanly();
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

    Python::run(
        "produce_bad_headers.py",
        &[
            &bootstrap,
            &topic.name,
            "10000",
            &format!("it-hostile/{run}/0/0"),
        ],
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
    s.stop_cleanly();
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
    for partition in ["0", "1", "2"] {
        Python::run(
            "produce_corrupt_batch.py",
            &[&bootstrap, &topic, partition, "10"],
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
    s.stop_cleanly();
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
    s.stop_cleanly();
}

/// A pipeline probe with poison canaries, through three independent
/// stages (Python) that differ only in what they do with a record they
/// cannot parse: route it to the dead-letter topic (right), forward it to
/// the sink, or drop it. Each is reported exactly as what it did: the
/// poison canaries delivered at the DLQ, leaked to the sink, or lost, in
/// the numbers the stage itself counted; the normal canaries are
/// delivered at the sink and never at the DLQ in all three.
#[test]
fn a_dead_letter_path_is_probed_with_poison_canaries() {
    let Some(bootstrap) = broker::bootstrap() else {
        return;
    };
    let dir = scratch("dlq");
    let suffix = format!("{:016x}", rand::random::<u64>());
    let modes = ["route", "forward", "drop"];
    let topic = |role: &str, mode: &str| format!("it-{role}-{mode}-{suffix}");
    let topics: Vec<String> = modes
        .iter()
        .flat_map(|m| ["in", "sink", "dlq"].map(|r| topic(r, m)))
        .collect();
    common::create_topics(
        &bootstrap,
        &topics.iter().map(String::as_str).collect::<Vec<_>>(),
        2,
    );
    let counts = |mode: &str| dir.join(format!("{mode}.count"));
    let mut stages: Vec<common::Python> = modes
        .iter()
        .map(|m| {
            common::Python::start(
                "dlq_stage.py",
                &[
                    &bootstrap,
                    &topic("in", m),
                    &topic("sink", m),
                    &topic("dlq", m),
                    m,
                    counts(m).to_str().expect("utf-8 path"),
                ],
            )
        })
        .collect();
    let probes: String = modes
        .iter()
        .map(|m| {
            format!(
                r#"  - name: dlq-{m}
    type: pipeline
    interval: 200ms
    deadline: 5s
    input: {{ cluster: it, topic: {input}, payload: '{{"id":"{{{{id}}}}"}}' }}
    poison: {{ every: 2, payload: '{{"id":"{{{{id}}}}", broken' }}
    outputs:
      - {{ name: sink, cluster: it, topic: {sink}, match: {{ header: slaprobe-id }} }}
      - {{ name: dlq, cluster: it, topic: {dlq}, match: {{ header: slaprobe-id }}, expect: none, poison: exactly_once }}
"#,
                input = topic("in", m),
                sink = topic("sink", m),
                dlq = topic("dlq", m),
            )
        })
        .collect();
    let yaml = format!(
        "clusters:\n  it: {{ bootstrap: '{bootstrap}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}\nprobes:\n{probes}"
    );
    let s = Slaprobe::start(&dir, "dlq", &yaml);
    let at = |text: &str, name: &str, probe: &str, output: &str| {
        metric(text, name, &[("probe", probe), ("output", output)])
    };
    const DELIVERED: &str = "slaprobe_canaries_delivered_total";
    const LOST: &str = "slaprobe_canaries_lost_total";
    let seen = poll_until(Duration::from_secs(90), || {
        let t = s.metrics();
        modes
            .iter()
            .all(|m| at(&t, DELIVERED, &format!("dlq-{m}"), "sink") >= 20.0)
            && at(&t, DELIVERED, "dlq-route.poison", "dlq") >= 10.0
            && at(&t, DELIVERED, "dlq-forward.poison", "sink") >= 10.0
            && at(&t, LOST, "dlq-forward.poison", "dlq") >= 3.0
            && at(&t, LOST, "dlq-drop.poison", "dlq") >= 3.0
    });
    assert!(
        seen,
        "every kind of canary resolved:\n{}\nlog:\n{}",
        s.metrics(),
        s.log()
    );
    // Read before the stages' counts: slaprobe cannot have lost more than
    // the dropping stage dropped.
    let t = s.metrics();
    let count = |mode: &str| -> f64 {
        let text = std::fs::read_to_string(counts(mode)).expect("the stage's count");
        let (m, n) = text.trim().split_once(' ').expect("`<mode> <count>`");
        assert_eq!(m, mode);
        n.parse().expect("a count")
    };
    for m in modes {
        let normal = format!("dlq-{m}");
        assert_eq!(
            at(&t, LOST, &normal, "sink"),
            0.0,
            "{m}: normal canaries lost"
        );
        assert_eq!(
            at(&t, DELIVERED, &normal, "dlq"),
            0.0,
            "{m}: normal canaries in the DLQ"
        );
        assert_eq!(
            at(&t, "slaprobe_canaries_duplicate_total", &normal, "sink"),
            0.0
        );
    }
    for (name, probe, output, what) in [
        (DELIVERED, "dlq-route.poison", "sink", "route: no leak"),
        (LOST, "dlq-route.poison", "dlq", "route: nothing lost"),
        (DELIVERED, "dlq-forward.poison", "dlq", "forward: DLQ empty"),
        (DELIVERED, "dlq-drop.poison", "sink", "drop: no leak"),
        (DELIVERED, "dlq-drop.poison", "dlq", "drop: DLQ empty"),
    ] {
        assert_eq!(at(&t, name, probe, output), 0.0, "{what}");
    }
    // (Forwarded ones are counted by the stage when Kafka acks them, which
    // can be after slaprobe read them: they are compared once stopped.)
    assert!(at(&t, LOST, "dlq-drop.poison", "dlq") <= count("drop"));

    // Stopped (SIGTERM: each flushes and writes its final count), every
    // poison canary a stage handled is accounted for as what it did.
    for stage in &stages {
        let pid = stage.0.id().to_string();
        let ok = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -TERM {pid}");
    }
    for stage in &mut stages {
        let status = stage.0.wait().expect("the stage exits");
        assert!(status.success(), "a stage exited with {status}");
    }
    let (routed, forwarded, dropped) = (count("route"), count("forward"), count("drop"));
    assert!(routed >= 10.0 && forwarded >= 10.0 && dropped >= 3.0);
    let exact = poll_until(Duration::from_secs(15), || {
        let t = s.metrics();
        at(&t, DELIVERED, "dlq-route.poison", "dlq") == routed
            && at(&t, DELIVERED, "dlq-forward.poison", "sink") == forwarded
            && at(&t, LOST, "dlq-drop.poison", "dlq") >= dropped
    });
    let t = s.metrics();
    assert!(
        exact,
        "routed {routed}, forwarded {forwarded}, dropped {dropped}; slaprobe: delivered at the DLQ {}, \
         leaked {}, lost {}",
        at(&t, DELIVERED, "dlq-route.poison", "dlq"),
        at(&t, DELIVERED, "dlq-forward.poison", "sink"),
        at(&t, LOST, "dlq-drop.poison", "dlq")
    );
    // A leak is a bad delivery event of the poison canaries at the sink.
    let bad = |probe: &str, output: &str| {
        metric(
            &t,
            "slaprobe_sli_events_total",
            &[
                ("probe", probe),
                ("output", output),
                ("sli", "delivery"),
                ("outcome", "bad"),
            ],
        )
    };
    assert_eq!(bad("dlq-forward.poison", "sink"), forwarded);
    assert_eq!(bad("dlq-route.poison", "sink"), 0.0);
    assert_eq!(at(&t, DELIVERED, "dlq-drop.poison", "sink"), 0.0);
    s.stop_cleanly();
}
