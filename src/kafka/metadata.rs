//! Topics' partitions and leaders as the cluster answers them: one topic's
//! in one Metadata request ([`fetch_layout`]), or many topics' in two,
//! whatever their number ([`fetch_layouts`]). Blocking: run them off the
//! async runtime ([`off_runtime`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;
use rdkafka_admin_ext::{DescribeError, DescribedTopics};

/// How long one metadata request may take before we retry later.
pub const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// A topic's partitions and their leaders, and the cluster's brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    /// (partition, leader broker; `None` when leaderless), sorted.
    pub partitions: Vec<(i32, Option<i32>)>,
    pub brokers: BTreeSet<i32>,
}

impl TopicLayout {
    pub fn leader(&self, partition: i32) -> Option<i32> {
        self.partitions
            .binary_search_by_key(&partition, |(p, _)| *p)
            .ok()
            .and_then(|i| self.partitions[i].1)
    }

    /// Brokers that lead none of the topic's partitions.
    pub fn brokers_uncovered(&self) -> usize {
        let leaders: BTreeSet<i32> = self.partitions.iter().filter_map(|(_, l)| *l).collect();
        self.brokers.difference(&leaders).count()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MetadataError {
    #[error("topic {topic} does not exist")]
    NoSuchTopic { topic: String, brokers: usize },
    #[error("metadata request failed")]
    Kafka(#[from] KafkaError),
    #[error("metadata task failed: {0}")]
    Task(String),
}

impl MetadataError {
    /// Whether the cluster answered (it may just not have the topic).
    pub fn cluster_answered(&self) -> bool {
        matches!(self, MetadataError::NoSuchTopic { .. })
    }
}

/// Runs `fetch` (a blocking metadata read, e.g. [`fetch_layout`]) off the
/// async runtime.
pub async fn off_runtime<T: Send + 'static>(
    fetch: impl FnOnce() -> Result<T, MetadataError> + Send + 'static,
) -> Result<T, MetadataError> {
    tokio::task::spawn_blocking(fetch)
        .await
        .unwrap_or_else(|e| Err(MetadataError::Task(e.to_string())))
}

/// Blocking metadata fetch for one topic. Run it off the async runtime.
pub fn fetch_layout<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
) -> Result<TopicLayout, MetadataError> {
    let md = client.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let brokers: BTreeSet<i32> = md.brokers().iter().map(|b| b.id()).collect();
    layout(topic, &brokers, answer_in(&md, topic))
}

/// Each topic's layout or why there is none, as one read answered it.
pub type Layouts = HashMap<String, Result<TopicLayout, MetadataError>>;

/// Blocking read of many topics' layouts in two requests, whatever their
/// number: the first topic's metadata (which names the cluster's brokers)
/// and one DescribeTopics for the others. A topic the cluster left out of
/// its answer gets an error, never [`MetadataError::NoSuchTopic`]. Run it
/// off the async runtime.
pub fn fetch_layouts<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
) -> Result<Layouts, MetadataError> {
    fetch_layouts_with(client, topics, rdkafka_admin_ext::describe_topics)
}

/// Whether a cluster's DescribeTopics failure was logged (once a process).
static DESCRIBE_FAILED: AtomicBool = AtomicBool::new(false);

/// [`fetch_layouts`] with `describe` for the DescribeTopics request. When
/// the cluster answered the first topic's request but `describe` fails (a
/// Kafka-compatible broker that names no controller, which DescribeTopics
/// is sent to), each other topic is read alone, as before there was a
/// shared read, for at most [`METADATA_TIMEOUT`]; topics left then get
/// DescribeTopics' error.
fn fetch_layouts_with<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
    describe: impl FnOnce(&Client<C>, &[String], Duration) -> Result<DescribedTopics, DescribeError>,
) -> Result<Layouts, MetadataError> {
    let Some((first, rest)) = topics.split_first() else {
        return Ok(Layouts::new());
    };
    let md = client.fetch_metadata(Some(first), METADATA_TIMEOUT)?;
    let brokers: BTreeSet<i32> = md.brokers().iter().map(|b| b.id()).collect();
    let mut out = Layouts::with_capacity(topics.len());
    out.insert(
        first.clone(),
        layout(first, &brokers, answer_in(&md, first)),
    );
    let described = match describe(client, rest, METADATA_TIMEOUT) {
        Ok(described) => described,
        Err(e) => {
            if !DESCRIBE_FAILED.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e,
                    "DescribeTopics failed although the cluster answers metadata (its controller moving, or a broker that names none): reading each topic's metadata alone this time (logged once a process)");
            }
            let code = match e {
                DescribeError::Failed { code, .. } => code,
                DescribeError::NoAnswer(_) => RDKafkaErrorCode::OperationTimedOut,
                DescribeError::NulInName | DescribeError::Setup(_) => RDKafkaErrorCode::Fail,
            };
            let until = Instant::now() + METADATA_TIMEOUT;
            for topic in rest {
                let alone = if Instant::now() < until {
                    fetch_layout(client, topic)
                } else {
                    Err(KafkaError::MetadataFetch(code).into())
                };
                out.insert(topic.clone(), alone);
            }
            return Ok(out);
        }
    };
    for topic in rest {
        let answer = match described.get(topic) {
            Some(a) => Answer::Answered(a.clone()),
            None => Answer::LeftOut,
        };
        out.insert(topic.clone(), layout(topic, &brokers, answer));
    }
    Ok(out)
}

/// [`fetch_layouts`], passing each failure to `count` once: the read's as
/// a whole, or each topic's (as a request per topic was counted).
pub fn fetch_layouts_counted<C: ClientContext>(
    client: &Client<C>,
    topics: &[String],
    count: impl Fn(&KafkaError),
) -> Result<Layouts, MetadataError> {
    let read = fetch_layouts(client, topics);
    match &read {
        Err(MetadataError::Kafka(e)) => count(e),
        Ok(layouts) => {
            for answer in layouts.values() {
                if let Err(MetadataError::Kafka(e)) = answer {
                    count(e);
                }
            }
        }
        Err(_) => {}
    }
    read
}

/// What a metadata answer said about one topic.
enum Answer {
    Answered(Result<rdkafka_admin_ext::Partitions, RDKafkaErrorCode>),
    /// Not in the answer at all.
    LeftOut,
}

/// What `md`, the answer to a request for `topic` alone, says about it (a
/// topic missing from it does not exist).
fn answer_in(md: &rdkafka::metadata::Metadata, topic: &str) -> Answer {
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Answer::Answered(Err(RDKafkaErrorCode::UnknownTopicOrPartition));
    };
    if let Some(err) = t.error() {
        return Answer::Answered(Err(RDKafkaErrorCode::from(err)));
    }
    Answer::Answered(Ok(t
        .partitions()
        .iter()
        .map(|p| (p.id(), (p.leader() >= 0).then_some(p.leader())))
        .collect()))
}

/// `topic`'s layout from what the cluster answered about it.
fn layout(
    topic: &str,
    brokers: &BTreeSet<i32>,
    answer: Answer,
) -> Result<TopicLayout, MetadataError> {
    let missing = || MetadataError::NoSuchTopic {
        topic: topic.to_string(),
        brokers: brokers.len(),
    };
    let mut partitions = match answer {
        Answer::LeftOut => return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::Fail).into()),
        Answer::Answered(Err(
            RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
        )) => return Err(missing()),
        Answer::Answered(Err(code)) => return Err(KafkaError::MetadataFetch(code).into()),
        Answer::Answered(Ok(p)) => p,
    };
    partitions.sort_unstable();
    if partitions.is_empty() {
        return Err(missing());
    }
    Ok(TopicLayout {
        partitions,
        brokers: brokers.clone(),
    })
}

#[cfg(test)]
mod tests {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;

    use super::*;

    fn cluster() -> (MockCluster<'static, DefaultProducerContext>, BaseConsumer) {
        let mock = MockCluster::new(2).expect("mock");
        mock.create_topic("a", 2, 1).expect("a");
        mock.create_topic("b", 3, 1).expect("b");
        let client = ClientConfig::new()
            .set("bootstrap.servers", mock.bootstrap_servers())
            .create()
            .expect("client");
        (mock, client)
    }

    fn topics(names: &[&str]) -> Vec<String> {
        names.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn many_topics_in_one_read_a_missing_one_does_not_exist() {
        let (_mock, client) = cluster();
        let got = fetch_layouts(client.client(), &topics(&["a", "b", "gone"])).expect("read");
        assert_eq!(got["a"].as_ref().expect("a").partitions.len(), 2);
        let b = got["b"].as_ref().expect("b");
        assert_eq!(b.partitions.len(), 3);
        assert_eq!(b.brokers, BTreeSet::from([1, 2]));
        assert!(matches!(
            got["gone"],
            Err(MetadataError::NoSuchTopic { brokers: 2, .. })
        ));
    }

    #[test]
    fn a_topic_left_out_of_the_answer_is_an_error_not_a_missing_topic() {
        let (_mock, client) = cluster();
        let got = fetch_layouts_with(client.client(), &topics(&["a", "b"]), |_, _, _| {
            Ok(DescribedTopics::new())
        })
        .expect("read");
        assert!(got["a"].is_ok());
        assert!(
            matches!(got["b"], Err(MetadataError::Kafka(_))),
            "{:?}",
            got["b"]
        );
    }

    #[test]
    fn a_failing_describe_falls_back_to_a_request_per_topic() {
        let (_mock, client) = cluster();
        let got = fetch_layouts_with(client.client(), &topics(&["a", "b", "gone"]), |_, _, t| {
            Err(DescribeError::NoAnswer(t))
        })
        .expect("read");
        assert_eq!(got["b"].as_ref().expect("b").partitions.len(), 3);
        assert!(matches!(
            got["gone"],
            Err(MetadataError::NoSuchTopic { .. })
        ));
    }
}
