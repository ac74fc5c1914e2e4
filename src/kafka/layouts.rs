//! One metadata read for the topics of every probe on a client, shared by
//! the probes' layout refreshes: each probe re-reads its topics' partitions
//! and leaders every 10 s, and 200 probes asking one request each made 20
//! requests a second to the cluster (and kept the blocking pool busy). A
//! refresh now takes the client's last read while it is fresh, and a stale
//! one reads every topic asked for lately in one go
//! ([`super::fetch_layouts`]: two requests, whatever the number of topics).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Layouts, MetadataError, TopicLayout};

/// How often a probe re-reads its topics' partitions and leaders.
pub const LAYOUT_REFRESH: Duration = Duration::from_secs(10);
/// A read that ended this recently answers a refresh: half the refresh
/// interval, so probes whose refreshes fall anywhere in it share at most
/// two reads.
const FRESH: Duration = Duration::from_millis(LAYOUT_REFRESH.as_millis() as u64 / 2);
/// A topic nobody asked for this long (its probe stopped) is read no more.
const FORGET: Duration = Duration::from_secs(60);

/// See the module docs. One per client.
pub struct SharedLayouts {
    /// How old a read may be and still answer (see [`FRESH`]).
    fresh: Duration,
    /// Topics asked for, each with when it was last.
    asked: Mutex<HashMap<String, Instant>>,
    /// The last read (when it ended, what it got); a refresh waits here
    /// while another one reads.
    last: tokio::sync::Mutex<Option<(Instant, Result<Layouts, MetadataError>)>>,
}

impl Default for SharedLayouts {
    fn default() -> SharedLayouts {
        SharedLayouts::new(FRESH)
    }
}

impl SharedLayouts {
    fn new(fresh: Duration) -> SharedLayouts {
        SharedLayouts {
            fresh,
            asked: Mutex::default(),
            last: tokio::sync::Mutex::default(),
        }
    }

    /// Notes that `topic`'s layout is wanted (also by a read of that topic
    /// alone, e.g. at a probe's start), so the next shared read has it.
    pub fn note(&self, topic: &str) {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(at) = asked.get_mut(topic) {
            *at = now;
        } else {
            asked.insert(topic.to_string(), now);
        }
    }

    /// `topic`'s layout from the last read if it ended while this call
    /// waited for it or less than [`FRESH`] ago, and has the topic;
    /// otherwise from a new read, by `read` off the async runtime, of every
    /// topic asked for lately. A read that failed as a whole answers every
    /// refresh waiting for it or within [`FRESH`], so a cluster that does
    /// not answer costs one timeout per [`FRESH`], not one per probe.
    pub async fn layout<F>(&self, topic: &str, read: F) -> Result<TopicLayout, MetadataError>
    where
        F: FnOnce(Vec<String>) -> Result<Layouts, MetadataError> + Send + 'static,
    {
        self.note(topic);
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((ended, result)) = last.as_ref() {
            if *ended >= asked || asked.duration_since(*ended) < self.fresh {
                match result {
                    Err(e) => return Err(e.clone()),
                    Ok(layouts) => {
                        if let Some(answer) = layouts.get(topic) {
                            return answer.clone();
                        }
                    }
                }
            }
        }
        let topics = self.topics(Instant::now());
        let result = super::off_runtime(move || read(topics)).await;
        let answer = match &result {
            Err(e) => Err(e.clone()),
            // Asked for (noted above), so answered: missing only from a
            // `read` that skipped it.
            Ok(layouts) => layouts
                .get(topic)
                .cloned()
                .unwrap_or_else(|| Err(MetadataError::Task(format!("{topic} was not read")))),
        };
        *last = Some((Instant::now(), result));
        answer
    }

    /// The topics asked for within [`FORGET`] of `now`, sorted; the others
    /// are forgotten.
    fn topics(&self, now: Instant) -> Vec<String> {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        asked.retain(|_, at| now.duration_since(*at) < FORGET);
        let mut topics: Vec<String> = asked.keys().cloned().collect();
        topics.sort_unstable();
        topics
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use rdkafka::error::{KafkaError, RDKafkaErrorCode};

    use super::*;

    fn layout(partitions: i32) -> TopicLayout {
        TopicLayout {
            partitions: (0..partitions).map(|p| (p, Some(1))).collect(),
            brokers: BTreeSet::from([1]),
        }
    }

    /// A reader that answers every topic with `partitions` partitions and
    /// counts its reads and the topics each asked for.
    #[derive(Clone, Default)]
    struct Reader {
        reads: Arc<AtomicUsize>,
        asked: Arc<Mutex<Vec<Vec<String>>>>,
    }

    impl Reader {
        fn read(
            &self,
            partitions: i32,
        ) -> impl FnOnce(Vec<String>) -> Result<Layouts, MetadataError> + Send + 'static {
            let me = self.clone();
            move |topics| {
                me.reads.fetch_add(1, Ordering::SeqCst);
                me.asked.lock().unwrap().push(topics.clone());
                Ok(topics
                    .into_iter()
                    .map(|t| (t, Ok(layout(partitions))))
                    .collect())
            }
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn refreshes_within_fresh_share_one_read_of_every_topic() {
        let shared = SharedLayouts::default();
        let reader = Reader::default();
        for t in ["a", "b", "c"] {
            shared.note(t);
        }
        assert_eq!(shared.layout("a", reader.read(3)).await.unwrap(), layout(3));
        // Later refreshes of the others within FRESH: no new read.
        tokio::time::advance(FRESH / 2).await;
        assert_eq!(shared.layout("b", reader.read(4)).await.unwrap(), layout(3));
        assert_eq!(shared.layout("c", reader.read(4)).await.unwrap(), layout(3));
        assert_eq!(reader.reads(), 1);
        assert_eq!(reader.asked.lock().unwrap()[0], ["a", "b", "c"]);
        // Past FRESH: a new read, whose answer is the new layout.
        tokio::time::advance(FRESH).await;
        assert_eq!(shared.layout("b", reader.read(4)).await.unwrap(), layout(4));
        assert_eq!(reader.reads(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_topic_the_last_read_lacks_is_read_at_once_with_the_others() {
        let shared = SharedLayouts::default();
        let reader = Reader::default();
        shared.layout("a", reader.read(1)).await.unwrap();
        shared.layout("new", reader.read(2)).await.unwrap();
        assert_eq!(reader.reads(), 2);
        assert_eq!(reader.asked.lock().unwrap()[1], ["a", "new"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_answers_every_refresh_while_fresh() {
        let shared = SharedLayouts::default();
        let reads = Arc::new(AtomicUsize::new(0));
        let failing = |reads: Arc<AtomicUsize>| {
            move |_: Vec<String>| -> Result<Layouts, MetadataError> {
                reads.fetch_add(1, Ordering::SeqCst);
                Err(KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut).into())
            }
        };
        for t in ["a", "b", "c"] {
            let got = shared.layout(t, failing(reads.clone())).await;
            assert!(matches!(got, Err(MetadataError::Kafka(_))), "{got:?}");
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "one timeout, not one per probe"
        );
        tokio::time::advance(FRESH).await;
        let _ = shared.layout("a", failing(reads.clone())).await;
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    /// Refreshes that waited while a slow read failed take its answer, even
    /// when it ended more than FRESH after it began (a cluster that does
    /// not answer: one timeout, not one per waiting probe).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refreshes_waiting_for_a_slow_failed_read_take_its_answer() {
        let shared = Arc::new(SharedLayouts::new(Duration::from_millis(20)));
        let reads = Arc::new(AtomicUsize::new(0));
        let mut waiting = Vec::new();
        for t in ["a", "b", "c", "d"] {
            let (shared, reads) = (shared.clone(), reads.clone());
            waiting.push(tokio::spawn(async move {
                shared
                    .layout(t, move |_| {
                        reads.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        Err(KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut).into())
                    })
                    .await
            }));
        }
        for w in waiting {
            assert!(matches!(w.await.unwrap(), Err(MetadataError::Kafka(_))));
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_topic_is_the_reads_answer_for_it() {
        let shared = SharedLayouts::default();
        let read = |_: Vec<String>| -> Result<Layouts, MetadataError> {
            let gone = MetadataError::NoSuchTopic {
                topic: "gone".into(),
                brokers: 3,
            };
            Ok(HashMap::from([("gone".to_string(), Err(gone))]))
        };
        let got = shared.layout("gone", read).await;
        assert!(
            matches!(got, Err(MetadataError::NoSuchTopic { brokers: 3, .. })),
            "{got:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn topics_nobody_asks_for_are_forgotten() {
        let shared = SharedLayouts::default();
        let reader = Reader::default();
        shared.note("stopped");
        tokio::time::advance(FORGET).await;
        shared.layout("running", reader.read(1)).await.unwrap();
        assert_eq!(reader.asked.lock().unwrap()[0], ["running"]);
    }
}
