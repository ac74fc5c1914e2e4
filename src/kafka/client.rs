//! The one place Kafka clients are made: every producer, consumer, lag
//! reader and admin client of slaprobe (probes, `lag` probes and the
//! demo's simulated pipeline alike) gets its settings from its [`Role`]
//! and the cluster's `librdkafka:` options here, so what a role guarantees
//! (`acks=all` and idempotence for canaries, no group joined for outputs)
//! holds for every client of that role.

use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, FromClientConfigAndContext};
use rdkafka::error::KafkaError;

use crate::config::Cluster;

/// The admin client topic management uses.
pub type Admin = AdminClient<DefaultClientContext>;

/// What a client is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends canaries: see [`producer_config`].
    Producer {
        /// The probe's deadline: the message timeout.
        deadline: Duration,
        /// The local queue's bound (messages); see [`queue_bound`].
        queue_bound: usize,
    },
    /// Reads output topics by explicit assignment: see [`consumer_config`].
    Consumer,
    /// Reads consumer groups' offsets and partitions' watermarks: see
    /// [`lag_reader_config`].
    LagReader {
        /// How often it reads (its statistics come as often).
        read_every: Duration,
    },
    /// Creates and grows topics.
    Admin,
}

/// The settings of a client of `cluster` in `role`.
pub fn config(cluster: &Cluster, role: Role) -> ClientConfig {
    match role {
        Role::Producer {
            deadline,
            queue_bound,
        } => producer_config(cluster, deadline, queue_bound),
        Role::Consumer => consumer_config(cluster),
        Role::LagReader { read_every } => lag_reader_config(cluster, read_every),
        Role::Admin => base_config(cluster, &[]),
    }
}

/// A client of `cluster` in `role`, with `context` (its callbacks).
pub fn create<T, C>(cluster: &Cluster, role: Role, context: C) -> Result<T, KafkaError>
where
    T: FromClientConfigAndContext<C>,
    C: ClientContext,
{
    config(cluster, role).create_with_context(context)
}

/// The consumer's default fetch wait: librdkafka's own, right for Kafka,
/// whose brokers answer a waiting fetch as soon as data arrives, so the
/// wait adds no latency and an idle consumer asks each broker twice a
/// second (at 10 ms: about 80 times, measured on tansu). librdkafka's mock
/// cluster and some Kafka-compatible brokers (tansu) answer only when the
/// wait expires, which adds up to the whole wait to every latency (p50
/// 385 ms at 500 ms on tansu): there set `fetch.wait.max.ms: 10` under the
/// cluster's `librdkafka:` (the demo does so for its mock cluster).
pub const DEFAULT_FETCH_WAIT_MS: &str = "500";

/// librdkafka's `reconnect.backoff.max.ms` for every client (its default is
/// 10 s); a user's `librdkafka:` setting wins.
pub const RECONNECT_BACKOFF_MAX_MS: &str = "1000";

/// librdkafka's `statistics.interval.ms` for producers and consumers: how
/// often `slaprobe_kafka_requests_total` is brought up to date. A user's
/// setting wins (0 turns the statistics off).
pub const STATISTICS_INTERVAL_MS: &str = "10000";

/// Settings common to every client of `cluster`; the user's passthrough
/// options are applied last so they can override slaprobe's defaults (not its
/// guarantees: see [`producer_config`]).
fn base_config(cluster: &Cluster, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cluster.bootstrap)
        .set("client.id", "slaprobe");
    // librdkafka backs off reconnecting up to 10 s; a prober must see a
    // broker's return within a second or two (and its broker threads time
    // out queued canaries only when they wake up). Not when the user sets
    // the initial backoff: the maximum must not fall below it.
    if !cluster.librdkafka.contains_key("reconnect.backoff.ms") {
        c.set("reconnect.backoff.max.ms", RECONNECT_BACKOFF_MAX_MS);
    }
    // Statistics are read for the brokers' request counts only: no block
    // per topic and partition, and no batch histograms per topic handle,
    // which a heartbeat probe's topic would cost in both of its clients
    // (patch 0012 of librdkafka).
    c.set("statistics.topics", "false");
    for (k, v) in defaults {
        c.set(*k, *v);
    }
    for (k, v) in &cluster.librdkafka {
        c.set(k, v);
    }
    c
}

/// What one probe may have queued in its producer: canaries in flight per
/// partition are at most deadline/interval; allow that for up to 1024
/// partitions before librdkafka says QueueFull (counted as a produce error,
/// never buffered elsewhere).
pub fn queue_bound(deadline: Duration, interval: Duration) -> usize {
    let per_partition = deadline.as_nanos().div_ceil(interval.as_nanos().max(1));
    per_partition.saturating_mul(1024).clamp(1_000, 1_000_000) as usize
}

/// Producer settings. `acks=all` and idempotence are forced (after the
/// user's options) so that the prober never manufactures the duplicates and
/// reorders it reports (with one exception librdkafka makes: after canaries
/// time out in its queue it bumps the producer epoch and sends the ones
/// behind them again, which a leader that had appended them without being
/// able to commit then holds twice; see the README's failure table). The
/// message timeout is the probe's deadline, so a produce is never retried
/// past the point where its canary counts as lost; the local queue is
/// bounded so nothing unbounded sits in front of the client during an
/// outage.
fn producer_config(cluster: &Cluster, deadline: Duration, queue_bound: usize) -> ClientConfig {
    let mut c = base_config(
        cluster,
        &[("statistics.interval.ms", STATISTICS_INTERVAL_MS)],
    );
    let timeout_ms = deadline.as_millis().clamp(1, i32::MAX as u128).to_string();
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", &timeout_ms)
        .set("queue.buffering.max.messages", queue_bound.to_string());
    c
}

/// Consumer settings for explicit assignment: no group, no commits.
/// The group id of slaprobe's consumers (a cluster's `librdkafka:` may
/// set another): assign() needs one; none of them joins or commits.
const CONSUMER_GROUP_ID: &str = "slaprobe";

fn consumer_config(cluster: &Cluster) -> ClientConfig {
    base_config(
        cluster,
        &[
            ("fetch.wait.max.ms", DEFAULT_FETCH_WAIT_MS),
            ("statistics.interval.ms", STATISTICS_INTERVAL_MS),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "false"),
            // Positions are explicit (assigned from the end, or from the
            // beginning for new partitions); an offset out of range means
            // the topic was deleted and created again (or retention passed
            // the position), and everything in it now is newer than what
            // was read: start from its beginning rather than skip it.
            ("auto.offset.reset", "earliest"),
            // librdkafka's assign() needs a group id (without one it fails
            // with "Unknown group"); nothing ever joins or commits to it.
            ("group.id", CONSUMER_GROUP_ID),
        ],
    )
}

/// Settings of the client that reads consumer groups' offsets,
/// partitions' watermarks and the records at committed offsets (`lag`
/// probes): a consumer that never joins or commits; it assigns the
/// partitions whose records it reads, so it has the group id the probes'
/// consumers have (assign() fails without one). Its statistics come every
/// `read_every`, whatever the cluster's `librdkafka:` says: its events are
/// served once per read, so they must not come faster than reads. It
/// pushes no client telemetry (KIP-714): a reader of other clients' groups
/// has nothing of its own to report, and it saves two requests per
/// broker connection.
fn lag_reader_config(cluster: &Cluster, read_every: Duration) -> ClientConfig {
    let stats_ms = read_every
        .as_millis()
        .clamp(1, i32::MAX as u128)
        .to_string();
    // It fetches one record per lagging partition (the timestamp at the
    // committed offset): small fetches, nothing queued ahead. Where a
    // committed offset is gone (retention), the first record left.
    let mut c = base_config(
        cluster,
        &[
            ("enable.auto.commit", "false"),
            ("auto.offset.reset", "earliest"),
            ("group.id", CONSUMER_GROUP_ID),
            ("fetch.max.bytes", "1048576"),
            ("max.partition.fetch.bytes", "65536"),
            ("queued.min.messages", "1"),
            ("queued.max.messages.kbytes", "1024"),
        ],
    );
    c.set("statistics.interval.ms", stats_ms);
    c.set("enable.metrics.push", "false");
    c
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rdkafka::consumer::DefaultConsumerContext;

    use super::Role;
    use crate::config::Cluster;

    /// A cluster with these `librdkafka:` options.
    fn cluster(opts: &[(&str, &str)]) -> Cluster {
        Cluster {
            name: "c".into(),
            bootstrap: "127.0.0.1:1".into(),
            librdkafka: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            secret_keys: Default::default(),
        }
    }

    /// The prober's reconnect backoff applies unless the user set the
    /// initial one; a user's maximum wins; every combination makes a client.
    #[test]
    fn reconnect_backoff_defaults_and_overrides() {
        let max = |c: &Cluster| {
            super::config(c, Role::Consumer)
                .get("reconnect.backoff.max.ms")
                .map(str::to_string)
        };
        assert_eq!(
            max(&cluster(&[])).as_deref(),
            Some(super::RECONNECT_BACKOFF_MAX_MS)
        );
        assert_eq!(
            max(&cluster(&[("reconnect.backoff.max.ms", "5000")])).as_deref(),
            Some("5000")
        );
        let slow = cluster(&[("reconnect.backoff.ms", "2000")]);
        assert_eq!(max(&slow), None);
        for c in [cluster(&[]), slow] {
            let consumer: Result<rdkafka::consumer::BaseConsumer, _> =
                super::create(&c, Role::Consumer, DefaultConsumerContext);
            assert!(consumer.is_ok(), "{:?}", consumer.err());
        }
    }

    /// The consumer waits as long as Kafka needs (500 ms, answered early
    /// when data arrives) unless the cluster sets a short wait for a broker
    /// that holds fetches; statistics feed the request counts unless
    /// turned off.
    #[test]
    fn fetch_wait_and_statistics_defaults_and_overrides() {
        let plain = super::config(&cluster(&[]), Role::Consumer);
        assert_eq!(plain.get("fetch.wait.max.ms"), Some("500"));
        assert_eq!(plain.get("statistics.interval.ms"), Some("10000"));
        let producer = super::config(
            &cluster(&[]),
            Role::Producer {
                deadline: Duration::from_secs(5),
                queue_bound: 1_000,
            },
        );
        assert_eq!(producer.get("statistics.interval.ms"), Some("10000"));
        let tansu = cluster(&[("fetch.wait.max.ms", "10"), ("statistics.interval.ms", "0")]);
        let short = super::config(&tansu, Role::Consumer);
        assert_eq!(short.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(short.get("statistics.interval.ms"), Some("0"));
        // The per-topic block is off unless the cluster asks for it.
        assert_eq!(plain.get("statistics.topics"), Some("false"));
        let topics = cluster(&[("statistics.topics", "true")]);
        let topics = super::config(&topics, Role::Consumer);
        assert_eq!(topics.get("statistics.topics"), Some("true"));
    }

    /// The statistics every client gets carry the brokers' request
    /// counts (what slaprobe reads) and no block per topic: no topic
    /// handle keeps batch histograms for them (librdkafka patch 0012),
    /// while the top-level message totals still count every record.
    #[test]
    fn statistics_carry_the_brokers_and_no_topics() {
        use std::sync::Mutex;

        use rdkafka::client::ClientContext;
        use rdkafka::mocking::MockCluster;
        use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};

        #[derive(Default)]
        struct Last(Mutex<Option<serde_json::Value>>);
        impl ClientContext for Last {
            fn stats_raw(&self, statistics: &[u8]) {
                *self.0.lock().unwrap() = serde_json::from_slice(statistics).ok();
            }
        }
        impl rdkafka::producer::ProducerContext for Last {
            type DeliveryOpaque = ();
            fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
        }

        let mock: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1).expect("mock");
        mock.create_topic("t", 3, 1).expect("topic");
        let mut c = cluster(&[("statistics.interval.ms", "100")]);
        c.bootstrap = mock.bootstrap_servers();
        let role = Role::Producer {
            deadline: Duration::from_secs(5),
            queue_bound: 1_000,
        };
        let producer: BaseProducer<Last> =
            super::create(&c, role, Last::default()).expect("producer");
        for p in 0..3 {
            producer
                .send(BaseRecord::<(), str>::to("t").partition(p).payload("x"))
                .expect("send");
        }
        producer.flush(Duration::from_secs(10)).expect("flush");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let stats = loop {
            producer.poll(Duration::from_millis(50));
            let last = producer.context().0.lock().unwrap().clone();
            if let Some(s) = last.filter(|s| s["txmsgs"].as_i64() == Some(3)) {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no statistics counting 3 messages"
            );
        };
        assert_eq!(stats["topics"], serde_json::json!({}), "{stats}");
        let produce_requests: i64 = stats["brokers"]
            .as_object()
            .expect("brokers")
            .values()
            .filter_map(|b| b["req"]["Produce"].as_i64())
            .sum();
        assert!(produce_requests > 0, "{stats}");
    }

    #[test]
    fn the_lag_reader_reads_at_its_interval_and_pushes_no_telemetry() {
        let reader = super::config(
            &cluster(&[("enable.metrics.push", "true")]),
            Role::LagReader {
                read_every: Duration::from_secs(30),
            },
        );
        assert_eq!(reader.get("statistics.interval.ms"), Some("30000"));
        assert_eq!(reader.get("enable.metrics.push"), Some("false"));
    }
}
