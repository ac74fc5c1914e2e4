//! Black-box tests: the `slaprobe` binary as a process, against a real
//! Kafka-compatible broker over TCP, checked through its HTTP endpoints, an
//! independent Python client and a real Prometheus.
//!
//! They run only when `SLAPROBE_TEST_BOOTSTRAP` names a broker
//! (`scripts/test.sh` starts tansu on loopback and sets it); without it each
//! test prints a SKIP line, and fails when `CI=true` (CI always has one). They
//! are safe against any cluster: every topic has a random name and is
//! deleted at the end.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_addr, metric, poll_until, scratch, Slaprobe};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn bootstrap() -> Option<String> {
    common::test_bootstrap()
}

/// A random topic, deleted when dropped.
struct Topic {
    name: String,
    bootstrap: String,
}

impl Topic {
    fn new(bootstrap: &str) -> Topic {
        Topic {
            name: format!("slaprobe-it-{:016x}", rand::random::<u64>()),
            bootstrap: bootstrap.to_string(),
        }
    }

    /// Partition count per the broker's metadata (0 if the topic is unknown).
    fn partitions(&self) -> usize {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("metadata client");
        consumer
            .fetch_metadata(Some(&self.name), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == self.name && t.error().is_none())
                    .map(|t| t.partitions().len())
            })
            .unwrap_or(0)
    }

    fn create(&self, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("admin client");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let topic = rdkafka::admin::NewTopic::new(
            &self.name,
            partitions,
            rdkafka::admin::TopicReplication::Fixed(1),
        );
        let result = rt
            .block_on(admin.create_topics([&topic], &AdminOptions::new()))
            .expect("create topics");
        assert!(result.iter().all(Result::is_ok), "{result:?}");
    }
}

impl Topic {
    /// Deletes the topic; the error, if any.
    fn delete(&self) -> Result<(), String> {
        let admin = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create::<AdminClient<DefaultClientContext>>()
            .map_err(|e| e.to_string())?;
        let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = rt
            .block_on(admin.delete_topics(&[&self.name], &opts))
            .map_err(|e| e.to_string())?;
        match results.into_iter().next() {
            Some(Err((_, code))) => Err(code.to_string()),
            _ => Ok(()),
        }
    }
}

impl Drop for Topic {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            eprintln!("deleting test topic {}: {e}", self.name);
        }
    }
}

/// A heartbeat-probe config for `topic`, created by slaprobe with
/// `partitions_per_broker` partitions per broker.
fn config(bootstrap: &str, topic: &str, probe: &str) -> String {
    format!(
        r#"
defaults:
  interval: 200ms
  deadline: 5s
clusters:
  it:
    bootstrap: {bootstrap}
    librdkafka: {{ fetch.wait.max.ms: '10' }}
probes:
  - name: {probe}
    type: heartbeat
    cluster: it
    topic: {topic}
    topic_management: {{ create: true, partitions_per_broker: 3, replication_factor: 1 }}
    slos:
      - {{ sli: delivery, objective: 99.9% }}
"#
    )
}

fn delivered(s: &Slaprobe) -> f64 {
    s.value("slaprobe_canaries_delivered_total", &[])
}

#[test]
fn creates_the_topic_and_every_partition_delivers() {
    let Some(bootstrap) = bootstrap() else { return };
    let topic = Topic::new(&bootstrap);
    let dir = scratch("create");
    let s = Slaprobe::start(&dir, "a", &config(&bootstrap, &topic.name, "it-hb"));

    assert!(
        poll_until(Duration::from_secs(30), || s.ready()),
        "/readyz turns 200; log:\n{}",
        s.log()
    );
    // One broker here (tansu), or however many the cluster has.
    let brokers = {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("client");
        c.fetch_metadata(None, Duration::from_secs(5))
            .expect("metadata")
            .brokers()
            .len()
    };
    assert_eq!(
        topic.partitions(),
        brokers * 3,
        "brokers × partitions_per_broker"
    );
    let all = poll_until(Duration::from_secs(30), || {
        (0..topic.partitions()).all(|p| {
            // A partition's series appears with its first delivery.
            common::metric_if_present(
                &s.metrics(),
                "slaprobe_heartbeat_partition_delivered_total",
                &[("partition", &p.to_string())],
            )
            .is_some_and(|v| v > 0.0)
        })
    });
    assert!(all, "every partition delivers:\n{}", s.metrics());
    let text = s.metrics();
    assert!(
        metric(
            &text,
            "slaprobe_canaries_delivered_total",
            &[("probe", "it-hb")]
        ) > 0.0
    );
    assert_eq!(
        metric(&text, "slaprobe_canaries_lost_total", &[]),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "slaprobe_records_foreign_total", &[]),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "slaprobe_produce_errors_total", &[]),
        0.0,
        "{text}"
    );
    assert!(s.stop().success());
}

#[test]
fn records_from_another_client_are_foreign_and_change_nothing_else() {
    let Some(bootstrap) = bootstrap() else { return };
    let topic = Topic::new(&bootstrap);
    let dir = scratch("foreign");
    let s = Slaprobe::start(&dir, "a", &config(&bootstrap, &topic.name, "it-foreign"));
    assert!(
        poll_until(Duration::from_secs(30), || s.ready()),
        "ready; log:\n{}",
        s.log()
    );

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
    let Some(bootstrap) = bootstrap() else { return };
    let topic = Topic::new(&bootstrap);
    topic.create(3);
    let dir = scratch("two");
    // Same probe name on purpose: only the run id tells them apart.
    let yaml = config(&bootstrap, &topic.name, "it-shared");
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

#[test]
fn a_restarted_prober_delivers_again_without_manual_steps() {
    let Some(bootstrap) = bootstrap() else { return };
    let topic = Topic::new(&bootstrap);
    let dir = scratch("restart");
    let yaml = config(&bootstrap, &topic.name, "it-restart");
    let first = Slaprobe::start(&dir, "first", &yaml);
    assert!(
        poll_until(Duration::from_secs(30), || delivered(&first) > 5.0),
        "log:\n{}",
        first.log()
    );
    assert!(first.stop().success(), "graceful exit on SIGTERM");

    let second = Slaprobe::start(&dir, "second", &yaml);
    assert!(
        poll_until(Duration::from_secs(30), || second.ready()
            && delivered(&second) > 5.0),
        "delivering again after a restart; log:\n{}",
        second.log()
    );
    let text = second.metrics();
    assert_eq!(
        metric(&text, "slaprobe_canaries_lost_total", &[]),
        0.0,
        "{text}"
    );
    assert!(second.stop().success());
}

#[test]
fn a_real_prometheus_scrapes_the_exposition() {
    let Some(bootstrap) = bootstrap() else { return };
    let topic = Topic::new(&bootstrap);
    let dir = scratch("prometheus");
    let s = Slaprobe::start(&dir, "a", &config(&bootstrap, &topic.name, "it-prom"));
    assert!(
        poll_until(Duration::from_secs(30), || delivered(&s) > 0.0),
        "log:\n{}",
        s.log()
    );

    let Some(prom) = common::Prometheus::start(&dir, s.addr, &[]) else {
        panic!("the real-broker tier needs prometheus (apt-get install prometheus)");
    };
    let found = prom.query_until(
        r#"slaprobe_canaries_delivered_total{probe="it-prom"}"#,
        Duration::from_secs(60),
        |v| v["data"]["result"][0]["metric"]["probe"] == "it-prom",
    );
    assert!(
        found.is_ok(),
        "Prometheus returns the series: {}",
        found.unwrap_err()
    );
    // The target is up: Prometheus accepted the exposition format.
    assert!(s.stop().success());
}

#[test]
fn partitions_added_while_running_are_probed() {
    let Some(bootstrap) = bootstrap() else { return };
    let topic = Topic::new(&bootstrap);
    topic.create(1);
    let dir = scratch("grow");
    let s = Slaprobe::start(
        &dir,
        "a",
        &config_observing(&bootstrap, &topic.name, "it-grow"),
    );
    assert!(
        poll_until(Duration::from_secs(30), || s.ready()),
        "ready; log:\n{}",
        s.log()
    );

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let grow = rdkafka::admin::NewPartitions::new(&topic.name, 3);
    let result = match rt.block_on(admin.create_partitions([&grow], &AdminOptions::new())) {
        Err(rdkafka::error::KafkaError::AdminOp(
            rdkafka::types::RDKafkaErrorCode::UnsupportedFeature,
        )) => {
            // tansu 0.6 has no CreatePartitions (nor has librdkafka's mock
            // cluster); real Kafka does (SLAPROBE_TEST_BOOTSTRAP). A
            // capability of the broker under test, not a missing
            // prerequisite. Partitions joining the shared consumer's
            // assignment while others are read is what every probe's start
            // does in tests/shared_clients.rs.
            eprintln!("SKIP: the broker does not support adding partitions");
            assert!(s.stop().success());
            return;
        }
        other => other.expect("create partitions"),
    };
    assert!(result.iter().all(Result::is_ok), "{result:?}");
    // Within one layout refresh (10 s) the new partitions are assigned and
    // probed.
    let all = poll_until(Duration::from_secs(30), || {
        (1..3).all(|p| {
            // A partition's series appears with its first delivery.
            common::metric_if_present(
                &s.metrics(),
                "slaprobe_heartbeat_partition_delivered_total",
                &[("partition", &p.to_string())],
            )
            .is_some_and(|v| v > 0.0)
        })
    });
    assert!(
        all,
        "new partitions deliver:\n{}\nlog:\n{}",
        s.metrics(),
        s.log()
    );
    assert_eq!(
        s.value("slaprobe_canaries_lost_total", &[]),
        0.0,
        "{}",
        s.metrics()
    );
    assert!(s.stop().success());
}

/// Like [`config`], without topic management (observe only).
fn config_observing(bootstrap: &str, topic: &str, probe: &str) -> String {
    config(bootstrap, topic, probe).replace(
        "    topic_management: { create: true, partitions_per_broker: 3, replication_factor: 1 }\n",
        "",
    )
}

/// A tansu broker of the test's own on a free loopback port, with memory
/// storage: a restart brings it back empty, topics and offsets gone.
struct Tansu {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

impl Tansu {
    /// `None` (SKIP, or a failure with CI=true) when tansu is not installed.
    fn start(dir: &Path) -> Option<Tansu> {
        let installed = Command::new("tansu")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            common::missing_prerequisite("tansu", "cargo install tansu --features dynostore");
            return None;
        }
        let mut t = Tansu {
            child: None,
            addr: free_addr(),
            log: dir.join("tansu.log"),
        };
        t.launch();
        Some(t)
    }

    fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    fn launch(&mut self) {
        let url = format!("tcp://{}", self.addr);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("tansu log");
        let child = Command::new("tansu")
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("metadata client");
        assert!(
            poll_until(Duration::from_secs(60), || client
                .fetch_metadata(None, Duration::from_secs(1))
                .is_ok()),
            "tansu answers on {}; log:\n{}",
            self.addr,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Killed (SIGKILL) and started again, empty, on the same port.
    fn restart_empty(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.launch();
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The crash this guards against: librdkafka 2.12.1's consumer turned a
/// Fetch answer for a topic the broker no longer knew (zero topic id, a
/// KIP-951 leader tag) into a metadata update it looked up by a NULL name,
/// and the process died with SIGSEGV within seconds of the broker coming
/// back empty (see patches/librdkafka/).
#[test]
fn a_broker_that_comes_back_empty_does_not_kill_the_prober() {
    if bootstrap().is_none() {
        return;
    }
    let dir = scratch("empty");
    let Some(mut tansu) = Tansu::start(&dir) else {
        return;
    };
    let topic = format!("slaprobe-it-{:016x}", rand::random::<u64>());
    let mut s = Slaprobe::start(
        &dir,
        "empty",
        &config(&tansu.bootstrap(), &topic, "it-empty"),
    );
    // A dead process answers nothing: read that as no progress (the
    // assertions below say whether it died).
    let delivered_now = |s: &Slaprobe| {
        common::metric_if_present(&s.metrics(), "slaprobe_canaries_delivered_total", &[])
            .unwrap_or(0.0)
    };
    assert!(
        poll_until(Duration::from_secs(60), || delivered_now(&s) >= 20.0),
        "delivers before the restarts; log:\n{}",
        s.log()
    );
    for round in 1..=2 {
        tansu.restart_empty();
        let before = delivered_now(&s);
        // topic_management recreates the topic; delivery resumes without a
        // restart of slaprobe.
        let resumed = poll_until(Duration::from_secs(90), || {
            delivered_now(&s) >= before + 20.0
        });
        let exited = s.exited();
        assert!(
            exited.is_none() && resumed,
            "round {round}: exited {exited:?}, delivering again {resumed}; log:\n{}",
            s.log()
        );
    }
    assert!(s.stop().success());
}

/// The topic deleted under a running prober (by an operator, or a
/// retention tool): slaprobe does not crash, creates it again
/// (`topic_management.create`) with its partitions, and counts what it
/// cannot produce as produce errors. (Canaries the broker acked into the
/// deleted topic and that were never read are lost: the broker lost them.)
///
/// That delivery then resumes cannot be shown on tansu 0.6: after a topic
/// is deleted while a producer writes to it, tansu answers every produce to
/// the recreated topic with an unknown error, an independent client's too
/// (confluent-kafka, not idempotent). The path by which slaprobe resumes is
/// the one `a_broker_that_comes_back_empty_does_not_kill_the_prober` takes.
#[test]
fn a_topic_deleted_under_the_prober_is_created_again_without_a_crash() {
    let Some(bootstrap) = bootstrap() else { return };
    let topic = Topic::new(&bootstrap);
    let dir = scratch("deleted");
    let mut s = Slaprobe::start(
        &dir,
        "deleted",
        &config(&bootstrap, &topic.name, "it-deleted"),
    );
    let value = |s: &Slaprobe, name: &str| {
        common::metric_if_present(&s.metrics(), name, &[]).unwrap_or(0.0)
    };
    assert!(
        poll_until(Duration::from_secs(60), || value(
            &s,
            "slaprobe_canaries_delivered_total"
        ) >= 20.0),
        "delivers; log:\n{}",
        s.log()
    );
    topic.delete().expect("delete");
    assert!(
        poll_until(Duration::from_secs(30), || s
            .log()
            .contains("the topic had gone; created it again")),
        "created again; log:\n{}",
        s.log()
    );
    assert!(
        poll_until(Duration::from_secs(30), || topic.partitions() == 3),
        "the recreated topic has its 3 partitions"
    );
    let errors_before = value(&s, "slaprobe_produce_errors_total");
    assert!(
        poll_until(Duration::from_secs(30), || value(
            &s,
            "slaprobe_produce_errors_total"
        ) > errors_before),
        "failed produces are counted; log:\n{}",
        s.log()
    );
    std::thread::sleep(Duration::from_secs(10));
    assert!(s.exited().is_none(), "log:\n{}", s.log());
    assert!(s.stop().success());
}

/// Records whose header names are not UTF-8 (rdkafka's header accessor
/// panics on them): 10,000 of them are counted as foreign without a line of
/// panic output, and a canary id in a header after such a header is still
/// read (here an id already delivered, so it counts as a duplicate).
#[test]
fn header_names_that_are_not_utf8_are_foreign_quietly_and_hide_no_canary() {
    let Some(bootstrap) = bootstrap() else { return };
    let topic = Topic::new(&bootstrap);
    let dir = scratch("hostile");
    let s = Slaprobe::start(&dir, "a", &config(&bootstrap, &topic.name, "it-hostile"));
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
#[test]
fn records_the_consumer_cannot_decode_are_counted_consume_errors() {
    let Some(bootstrap) = bootstrap() else { return };
    let topic = Topic::new(&bootstrap);
    let dir = scratch("codec");
    let s = Slaprobe::start(&dir, "a", &config(&bootstrap, &topic.name, "it-codec"));
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
            .args([&bootstrap, &topic.name, partition, "10"])
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
    let Some(bootstrap) = bootstrap() else { return };
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
    let on = |s: &Slaprobe, name: &str, codec: &str| {
        common::metric_if_present(&s.metrics(), name, &[("output", codec)]).unwrap_or(0.0)
    };
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
            assert_eq!(
                common::metric_if_present(&text, name, &[("output", c)]).unwrap_or(0.0),
                0.0,
                "{name} on {c}"
            );
        }
        assert_eq!(
            common::metric_if_present(&text, "slaprobe_consume_errors_total", &[("output", c)])
                .unwrap_or(0.0),
            0.0,
            "consume errors on {c}"
        );
    }
    assert!(s.stop().success());
}
