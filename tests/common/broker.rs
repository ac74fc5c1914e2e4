//! The broker tiers of the tests, one fixture each:
//! - librdkafka's in-process mock cluster ([`mock_cluster`]): fast, with
//!   fault injection (a broker down, round-trip time, request errors) and
//!   its data kept across a broker's restart;
//! - the suite's real broker ([`bootstrap`]): `SLAPROBE_TEST_BOOTSTRAP`,
//!   which `scripts/test.sh` sets for the Apache Kafka cluster it starts on
//!   loopback; every test on it uses random topic names ([`Topic`]);
//! - an Apache Kafka cluster of the test's own ([`KafkaCluster`]), for
//!   nodes killed and restarted, and the cluster rebuilt empty.
//!
//! [`Probed`] is the usual start of a real-broker test: a heartbeat probe
//! on a random topic, its process started.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::process::Slaprobe;
use super::{missing_prerequisite, poll_until, scratch};

/// The suite's real broker (`SLAPROBE_TEST_BOOTSTRAP`; unset or empty:
/// none, a SKIP line, or a failure where the whole suite runs).
pub fn bootstrap() -> Option<String> {
    let b = std::env::var("SLAPROBE_TEST_BOOTSTRAP")
        .ok()
        .filter(|s| !s.trim().is_empty());
    if b.is_none() {
        missing_prerequisite(
            "a Kafka-compatible broker",
            "set SLAPROBE_TEST_BOOTSTRAP, or run scripts/test.sh which starts Apache Kafka",
        );
    }
    b
}

/// How many brokers the cluster at `bootstrap` has (its metadata says).
pub fn brokers(bootstrap: &str) -> usize {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("metadata client");
    c.fetch_metadata(None, Duration::from_secs(5))
        .expect("metadata")
        .brokers()
        .len()
}

/// A random topic, deleted when dropped.
pub struct Topic {
    pub name: String,
    bootstrap: String,
}

impl Topic {
    pub fn new(bootstrap: &str) -> Topic {
        Topic {
            name: format!("slaprobe-it-{:016x}", rand::random::<u64>()),
            bootstrap: bootstrap.to_string(),
        }
    }

    /// Partition count per the broker's metadata (0 if the topic is unknown).
    pub fn partitions(&self) -> usize {
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

    pub fn create(&self, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .create()
            .expect("admin client");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let topic = rdkafka::admin::NewTopic::new(
            &self.name,
            partitions,
            // The broker's default replication factor.
            rdkafka::admin::TopicReplication::Fixed(-1),
        );
        let result = rt
            .block_on(admin.create_topics([&topic], &AdminOptions::new()))
            .expect("create topics");
        assert!(result.iter().all(Result::is_ok), "{result:?}");
    }
}

impl Topic {
    /// Deletes the topic; the error, if any.
    pub fn delete(&self) -> Result<(), String> {
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

/// Creates `topics` with `partitions` partitions each (the broker's default
/// replication factor) and
/// waits until the broker's metadata shows them.
pub fn create_topics(bootstrap: &str, topics: &[&str], partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let config = {
        let mut c = rdkafka::config::ClientConfig::new();
        c.set("bootstrap.servers", bootstrap);
        c
    };
    let admin: AdminClient<DefaultClientContext> = config.create().expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(-1)))
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let results = rt
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .expect("create topics");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let consumer: BaseConsumer = config.create().expect("metadata client");
    for t in topics {
        assert!(
            poll_until(Duration::from_secs(30), || consumer
                .fetch_metadata(Some(t), Duration::from_secs(2))
                .is_ok_and(|m| m.topics().iter().any(
                    |x| x.name() == *t && x.partitions().len() == partitions as usize
                ))),
            "topic {t} exists"
        );
    }
}

/// librdkafka's in-process mock cluster with `brokers` brokers and `topic`
/// of `partitions` partitions, replicated on every broker, partition p led
/// by broker p % brokers + 1 (so each broker leads some).
pub fn mock_cluster(
    topic: &str,
    partitions: i32,
    brokers: i32,
) -> rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let mock = rdkafka::mocking::MockCluster::new(brokers).expect("mock cluster");
    mock.create_topic(topic, partitions, brokers)
        .expect("topic");
    for p in 0..partitions {
        mock.partition_leader(topic, p, Some(p % brokers + 1))
            .expect("leader");
    }
    mock
}

/// A heartbeat-probe config for `topic`, created by slaprobe with
/// `partitions_per_broker` partitions per broker.
pub fn heartbeat_yaml(bootstrap: &str, topic: &str, probe: &str) -> String {
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
    topic_management: {{ create: true, partitions_per_broker: 3 }}
    slos:
      - {{ sli: delivery, objective: 99.9% }}
"#
    )
}

/// Like [`heartbeat_yaml`], without topic management (observe only).
pub fn heartbeat_yaml_observing(bootstrap: &str, topic: &str, probe: &str) -> String {
    heartbeat_yaml(bootstrap, topic, probe).replace(
        "    topic_management: { create: true, partitions_per_broker: 3 }\n",
        "",
    )
}

/// The prologue of most real-broker tests: a heartbeat probe on a random
/// topic of the suite's broker, its process started.
pub struct Probed {
    pub bootstrap: String,
    pub topic: Topic,
    pub dir: PathBuf,
    pub s: Slaprobe,
}

impl Probed {
    /// Probe `probe` on a new topic that slaprobe creates (3 partitions per
    /// broker), or, with `observe: Some(n)`, on one created here with `n`
    /// partitions that slaprobe only observes. `None` (after a SKIP line)
    /// without a broker.
    pub fn start(probe: &str, observe: Option<i32>) -> Option<Probed> {
        let bootstrap = bootstrap()?;
        let topic = Topic::new(&bootstrap);
        let yaml = match observe {
            None => heartbeat_yaml(&bootstrap, &topic.name, probe),
            Some(partitions) => {
                topic.create(partitions);
                heartbeat_yaml_observing(&bootstrap, &topic.name, probe)
            }
        };
        let dir = scratch(probe);
        let s = Slaprobe::start(&dir, "a", &yaml);
        Some(Probed {
            bootstrap,
            topic,
            dir,
            s,
        })
    }

    /// [`Probed::start`], then waits until `/readyz` says every cluster
    /// answered and the probe matched a canary.
    pub fn ready(probe: &str, observe: Option<i32>) -> Option<Probed> {
        let p = Probed::start(probe, observe)?;
        assert!(
            poll_until(Duration::from_secs(30), || p.s.ready()),
            "/readyz turns 200; log:\n{}",
            p.s.log()
        );
        Some(p)
    }
}

/// A 3-node Apache Kafka cluster of the test's own
/// (`scripts/kafka/cluster.sh`), for faults that would disturb the other
/// tests on the suite's cluster: nodes killed, stopped and started again
/// with their data, or the whole cluster rebuilt empty. Stopped when
/// dropped.
pub struct KafkaCluster {
    dir: PathBuf,
    pub bootstrap: String,
}

impl KafkaCluster {
    fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka/cluster.sh")
    }

    fn run(&self, args: &[&str]) {
        let out = Command::new("bash")
            .arg(Self::script())
            .args(args)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "cluster.sh {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A new cluster under `dir`; `None` (SKIP, or a failure where the
    /// whole suite runs) without Kafka's jars (`cluster.sh fetch`).
    pub fn start(dir: &Path) -> Option<KafkaCluster> {
        let libs = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kafka/libs");
        if !libs.join(".complete-4.4.0").exists() {
            missing_prerequisite(
                "Apache Kafka's jars",
                "bash scripts/kafka/cluster.sh fetch (scripts/test.sh does)",
            );
            return None;
        }
        let dir = dir.join("kafka");
        let out = Command::new("bash")
            .arg(Self::script())
            .arg("start")
            .arg(&dir)
            .output()
            .expect("bash");
        let cluster = KafkaCluster {
            dir: dir.clone(),
            bootstrap: String::new(),
        };
        assert!(
            out.status.success(),
            "starting a Kafka cluster: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        let env = std::fs::read_to_string(dir.join("env")).expect("env");
        let bootstrap = env
            .lines()
            .find_map(|l| l.strip_prefix("SLAPROBE_TEST_BOOTSTRAP="))
            .expect("bootstrap")
            .to_string();
        let mut cluster = cluster;
        cluster.bootstrap = bootstrap;
        Some(cluster)
    }

    /// Node `n` (1..3) killed with SIGKILL.
    pub fn kill(&self, n: u8) {
        self.run(&["kill", &self.dir.to_string_lossy(), &n.to_string()]);
    }

    /// Node `n` stopped with SIGTERM (a controlled shutdown), waited for.
    pub fn terminate(&self, n: u8) {
        self.run(&["term", &self.dir.to_string_lossy(), &n.to_string()]);
    }

    /// Node `n` started again with its data, waited for until it answers.
    pub fn restart(&self, n: u8) {
        self.run(&["node", &self.dir.to_string_lossy(), &n.to_string()]);
    }

    /// The cluster rebuilt empty on the same ports: every node killed, its
    /// data removed, and `down` later formatted anew and started, waited
    /// for until every node answers (topics and offsets gone).
    pub fn restart_empty(&self, down: Duration) {
        self.run(&[
            "empty",
            &self.dir.to_string_lossy(),
            &down.as_secs().to_string(),
        ]);
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .output();
    }
}
