//! Offsets by time: where a partition's records written since a moment
//! begin.

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

/// The first offset of `topic`/`partition` written at or after `at` (Unix
/// ms, by the records' timestamps); `None` when nothing was written since.
/// Blocking (one ListOffsets request).
pub fn offset_at<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    topic: &str,
    partition: i32,
    at: i64,
) -> Result<Option<i64>, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(at))?;
    let found = consumer.offsets_for_times(tpl, super::METADATA_TIMEOUT)?;
    let Some(e) = found.find_partition(topic, partition) else {
        return Ok(None);
    };
    e.error()?;
    Ok(match e.offset() {
        Offset::Offset(o) if o >= 0 => Some(o),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    /// The suite's Apache Kafka (`SLAPROBE_TEST_KAFKA_BOOTSTRAP`): absent,
    /// the test is skipped, or fails where the whole suite runs.
    fn kafka() -> Option<String> {
        let b = std::env::var("SLAPROBE_TEST_KAFKA_BOOTSTRAP")
            .ok()
            .filter(|s| !s.is_empty());
        let strict = ["SLAPROBE_TEST_STRICT", "CI"]
            .iter()
            .any(|v| std::env::var(v).is_ok_and(|x| !x.is_empty() && x != "0"));
        assert!(
            b.is_some() || !strict,
            "SLAPROBE_TEST_KAFKA_BOOTSTRAP is not set (scripts/test.sh starts Apache Kafka)"
        );
        b
    }

    /// A partition first wanted at some time is read from the first
    /// record written since, whatever was written in between: the lookup
    /// by time against Apache Kafka.
    #[test]
    fn the_offset_at_a_time_is_the_first_record_written_since() {
        use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        use rdkafka::ClientConfig;
        let Some(bootstrap) = kafka() else { return };
        let topic = format!("slaprobe.offset-at.{}", std::process::id());
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let admin: AdminClient<_> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("admin");
        let created = rt.block_on(admin.create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ));
        assert!(created.is_ok(), "{created:?}");
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("producer");
        // A minute ago: brokers refuse timestamps far in the future.
        let t0 = crate::canary::unix_ns(std::time::SystemTime::now()) as i64 / 1_000_000 - 60_000;
        for (i, at) in [t0, t0 + 10_000, t0 + 20_000].iter().enumerate() {
            let key = i.to_string();
            producer
                .send(
                    BaseRecord::to(&topic)
                        .partition(0)
                        .key(&key)
                        .payload("x")
                        .timestamp(*at),
                )
                .map_err(|(e, _)| e)
                .expect("send");
        }
        producer
            .flush(std::time::Duration::from_secs(30))
            .expect("flush");
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("consumer");
        let at = |t| super::offset_at(&consumer, &topic, 0, t).expect("lookup");
        assert_eq!(at(t0 + 5_000), Some(1));
        assert_eq!(at(t0), Some(0));
        assert_eq!(at(t0 + 30_000), None);
        let _ = rt.block_on(admin.delete_topics(&[&topic], &AdminOptions::new()));
    }
}
