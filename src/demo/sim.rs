//! A pipeline simulator: one stage that consumes an input topic, transforms
//! each JSON record, and produces it to an output topic — the kind of job a
//! pipeline probe watches. `slaprobe demo` runs it between `orders.raw` and
//! `orders.enriched`, and tests use it to inject exactly known faults.
//!
//! Faults are set at run time through [`Control`]: delay, stall, drop (every
//! n-th record, or a seeded rate), duplicate (every n-th), reorder (every
//! n-th record is held back behind the next record of its input partition),
//! and, for filter stages, leak (canaries are let through). [`SimStats`]
//! counts what was actually applied, which is the ground truth tests compare
//! slaprobe's report with.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::transform::Out;
pub use super::transform::{KeyRewrite, Transform};
use crate::canary::ID_HEADER;
use crate::config::Cluster;
use crate::kafka::{self, Role};

/// One stage: where it reads and writes, and what it does.
#[derive(Debug, Clone)]
pub struct StageSpec {
    pub name: String,
    pub input_bootstrap: String,
    pub input_topic: String,
    pub output_bootstrap: String,
    pub output_topic: String,
    pub transform: Transform,
    /// `Some(group)`: the stage is a member of this consumer group
    /// (subscribes, starts where the group committed or at the beginning,
    /// commits what it consumed every second), as a real job is. `None`:
    /// it assigns every input partition from its end and commits nothing,
    /// so it reads from the moment it starts (what tests that count exact
    /// outcomes want).
    pub group: Option<String>,
}

/// Faults currently applied; change them through [`Control`].
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Every record is emitted this long after it was consumed.
    pub delay: Duration,
    /// Consume nothing (records wait in Kafka).
    pub stalled: bool,
    /// Drop every n-th consumed record (0: off).
    pub drop_every: u64,
    /// Drop each record with this probability (seeded, see [`Control::seed`]).
    pub drop_rate: f64,
    /// Emit every n-th record twice (0: off).
    pub duplicate_every: u64,
    /// Hold every n-th record back behind the next one of its input
    /// partition (0: off; 1 is treated as 2).
    pub reorder_every: u64,
    /// Let canaries through a `filter_canaries` stage.
    pub leak: bool,
    /// Leave the consumer group and consume nothing (a stopped job); the
    /// stage joins again when this is lifted. A stage without a group
    /// stalls instead.
    pub stopped: bool,
}

/// What the stage has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub consumed: u64,
    pub produced: u64,
    pub dropped: u64,
    pub duplicated: u64,
    /// Records emitted after a later record of the same input partition.
    pub reordered: u64,
    pub filtered: u64,
    /// Records the stage's producer refused (not a fault it was told to play).
    pub failed: u64,
}

/// Run-time control of a stage.
pub struct Control {
    /// Whether the stage has its partitions (a group member: after its
    /// first rebalance).
    assigned: std::sync::atomic::AtomicBool,
    faults: Mutex<Faults>,
    stats: Mutex<SimStats>,
    rng: Mutex<StdRng>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Control {
    fn new() -> Control {
        Control {
            assigned: std::sync::atomic::AtomicBool::new(false),
            faults: Mutex::new(Faults::default()),
            stats: Mutex::new(SimStats::default()),
            rng: Mutex::new(StdRng::seed_from_u64(0)),
        }
    }

    pub fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    pub fn set(&self, faults: Faults) {
        *lock(&self.faults) = faults;
    }

    /// Changes the current faults in place.
    pub fn update(&self, f: impl FnOnce(&mut Faults)) {
        f(&mut lock(&self.faults));
    }

    /// Reseeds the drop-rate generator, for reproducible runs.
    pub fn seed(&self, seed: u64) {
        *lock(&self.rng) = StdRng::seed_from_u64(seed);
    }

    pub fn stats(&self) -> SimStats {
        *lock(&self.stats)
    }

    /// Whether the stage has been given its input partitions.
    pub fn assigned(&self) -> bool {
        self.assigned.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator stage {stage}")]
    Kafka {
        stage: String,
        #[source]
        error: rdkafka::error::KafkaError,
    },
    #[error("simulator stage {stage}: starting its thread")]
    Thread {
        stage: String,
        #[source]
        error: std::io::Error,
    },
    #[error("simulator stage {stage}: topics {input} ({input_partitions} partitions) and {output} ({output_partitions} partitions) must exist")]
    NoTopics {
        stage: String,
        input: String,
        input_partitions: usize,
        output: String,
        output_partitions: i32,
    },
}

/// A running stage; stops when its cancellation token is cancelled or it
/// is dropped.
pub struct Stage {
    control: Arc<Control>,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Stage {
    /// Connects, assigns every input partition from its end, and starts the
    /// stage's thread.
    pub fn start(spec: StageSpec, cancel: CancellationToken) -> Result<Stage, SimError> {
        let stop = cancel.child_token();
        let err = |error| SimError::Kafka {
            stage: spec.name.clone(),
            error,
        };
        // The job's own clients, made the one way every client is
        // (`kafka::client`), with the job's settings as its clusters'
        // `librdkafka:` options; no statistics (nobody reads them).
        let cluster = |bootstrap: &str, options: Vec<(&str, String)>| Cluster {
            name: format!("sim-{}", spec.name),
            bootstrap: bootstrap.to_string(),
            librdkafka: options
                .into_iter()
                .chain([("statistics.interval.ms", "0".to_string())])
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            secret_keys: Default::default(),
        };
        let group_options = match &spec.group {
            Some(group) => vec![
                ("group.id", group.clone()),
                ("enable.auto.commit", "true".into()),
                ("auto.commit.interval.ms", "1000".into()),
                ("session.timeout.ms", "6000".into()),
                ("heartbeat.interval.ms", "1000".into()),
            ],
            None => vec![("group.id", format!("slaprobe-sim-{}", spec.name))],
        };
        let mut consumer_options = vec![("fetch.wait.max.ms", "10".to_string())];
        consumer_options.extend(group_options);
        let consumer: BaseConsumer = kafka::client::create(
            &cluster(&spec.input_bootstrap, consumer_options),
            Role::Consumer,
            DefaultConsumerContext,
        )
        .map_err(err)?;
        let producer: BaseProducer = kafka::client::create(
            &cluster(&spec.output_bootstrap, vec![("linger.ms", "1".into())]),
            Role::Producer {
                // librdkafka's default message timeout and queue bound.
                deadline: Duration::from_secs(300),
                queue_bound: 100_000,
            },
            DefaultProducerContext,
        )
        .map_err(err)?;
        let timeout = Duration::from_secs(10);
        let md = consumer
            .fetch_metadata(Some(&spec.input_topic), timeout)
            .map_err(err)?;
        let input_partitions: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == spec.input_topic)
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let control = Arc::new(Control::new());
        if spec.group.is_none() {
            let mut tpl = TopicPartitionList::new();
            for p in &input_partitions {
                let (_, high) = consumer
                    .fetch_watermarks(&spec.input_topic, *p, timeout)
                    .map_err(err)?;
                tpl.add_partition_offset(&spec.input_topic, *p, Offset::Offset(high))
                    .map_err(err)?;
            }
            consumer.assign(&tpl).map_err(err)?;
            control
                .assigned
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let out_md = producer
            .client()
            .fetch_metadata(Some(&spec.output_topic), timeout)
            .map_err(err)?;
        let output_partitions = out_md
            .topics()
            .iter()
            .find(|t| t.name() == spec.output_topic)
            .map_or(0, |t| t.partitions().len() as i32);
        if input_partitions.is_empty() || output_partitions == 0 {
            return Err(SimError::NoTopics {
                stage: spec.name.clone(),
                input: spec.input_topic.clone(),
                input_partitions: input_partitions.len(),
                output: spec.output_topic.clone(),
                output_partitions,
            });
        }
        let worker = Worker {
            spec: spec.clone(),
            control: control.clone(),
            consumer,
            producer,
            output_partitions,
            queue: VecDeque::new(),
            held: BTreeMap::new(),
            subscribed: false,
        };
        let thread = std::thread::Builder::new()
            .name(format!("sim-{}", spec.name))
            .spawn({
                let stop = stop.clone();
                move || worker.run(stop)
            })
            .map_err(|error| SimError::Thread {
                stage: spec.name.clone(),
                error,
            })?;
        Ok(Stage {
            control,
            stop,
            thread: Some(thread),
        })
    }

    pub fn control(&self) -> Arc<Control> {
        self.control.clone()
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A record held back for reordering, and when it must go at the latest.
struct Held {
    out: Out,
    until: Instant,
}

/// How long a held record waits for a follower before it goes anyway (then
/// it was not reordered).
const HOLD_MAX: Duration = Duration::from_secs(2);

struct Worker {
    spec: StageSpec,
    control: Arc<Control>,
    consumer: BaseConsumer,
    producer: BaseProducer,
    output_partitions: i32,
    /// Records due for output, in order (delay fault).
    queue: VecDeque<(Instant, Out)>,
    /// Per input partition, the record held back (reorder fault).
    held: BTreeMap<i32, Held>,
    /// A group stage: whether it is subscribed (not `stopped`).
    subscribed: bool,
}

impl Worker {
    fn run(mut self, cancel: CancellationToken) {
        while !cancel.is_cancelled() {
            let faults = self.control.faults();
            self.emit_due();
            if self.spec.group.is_some() {
                self.membership(faults.stopped);
            }
            if faults.stalled || faults.stopped {
                self.producer.poll(Duration::from_millis(20));
                continue;
            }
            let polled = self.consumer.poll(Duration::from_millis(20));
            if !self.control.assigned() {
                let assigned = self.consumer.assignment().is_ok_and(|a| a.count() > 0);
                self.control
                    .assigned
                    .store(assigned, std::sync::atomic::Ordering::Relaxed);
            }
            let Some(Ok(msg)) = polled else {
                self.producer.poll(Duration::ZERO);
                continue;
            };
            if self.spec.group.is_some() {
                // Committed within a second (auto commit): what this job
                // has consumed.
                let _ = self.consumer.store_offset_from_message(&msg);
            }
            let now = Instant::now();
            let in_partition = msg.partition();
            // rdkafka's header iterator panics on a header name that is not
            // UTF-8: such a record loses its headers here, nothing more.
            let headers: Vec<(String, Option<Vec<u8>>)> =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    msg.headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default()
                }))
                .unwrap_or_default();
            let key = msg.key().map(<[u8]>::to_vec);
            let value = msg.payload().map(<[u8]>::to_vec);
            drop(msg);
            self.handle(now, in_partition, key, value, headers, &faults);
            self.producer.poll(Duration::ZERO);
        }
        self.flush_held(true);
        self.emit_due();
        let _ = self.producer.flush(Duration::from_secs(5));
    }

    /// A group stage joins its group, or leaves it while `stopped` (its
    /// stored offsets are committed as it goes).
    fn membership(&mut self, stopped: bool) {
        if stopped && self.subscribed {
            self.consumer.unsubscribe();
            self.subscribed = false;
            self.control
                .assigned
                .store(false, std::sync::atomic::Ordering::Relaxed);
        } else if !stopped && !self.subscribed {
            // Subscribing only fails on a bad topic name, which the
            // stage's start has already checked against the cluster.
            self.subscribed = self.consumer.subscribe(&[&self.spec.input_topic]).is_ok();
        }
    }

    fn handle(
        &mut self,
        now: Instant,
        in_partition: i32,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(String, Option<Vec<u8>>)>,
        faults: &Faults,
    ) {
        let t = &self.spec.transform;
        let number = {
            let mut s = lock(&self.control.stats);
            s.consumed += 1;
            s.consumed
        };
        if t.filter_canaries && !faults.leak && headers.iter().any(|(k, _)| k == ID_HEADER) {
            lock(&self.control.stats).filtered += 1;
            return;
        }
        let out = t.apply(in_partition, self.output_partitions, key, value, headers);
        let every = |n: u64| n > 0 && number % n == 0;
        if every(faults.drop_every)
            || (faults.drop_rate > 0.0
                && lock(&self.control.rng).random::<f64>() < faults.drop_rate)
        {
            lock(&self.control.stats).dropped += 1;
            return;
        }
        let due = now + faults.delay;
        if every(faults.duplicate_every) {
            lock(&self.control.stats).duplicated += 1;
            self.enqueue(due, out.clone());
            self.enqueue(due, out);
        } else if every(match faults.reorder_every {
            1 => 2,
            n => n,
        }) && !self.held.contains_key(&in_partition)
        {
            self.held.insert(
                in_partition,
                Held {
                    out,
                    until: now + faults.delay + HOLD_MAX,
                },
            );
            return;
        } else {
            self.enqueue(due, out);
        }
        // A later record of this input partition has gone out: the held one
        // follows it, out of order.
        if let Some(held) = self.held.remove(&in_partition) {
            lock(&self.control.stats).reordered += 1;
            self.enqueue(due, held.out);
        }
    }

    fn enqueue(&mut self, due: Instant, out: Out) {
        self.queue.push_back((due, out));
        self.emit_due();
    }

    /// Emits queued records that are due, in order, and held records whose
    /// wait is over.
    fn emit_due(&mut self) {
        self.flush_held(false);
        let now = Instant::now();
        while self.queue.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, out)) = self.queue.pop_front() {
                self.produce(out);
            }
        }
    }

    fn flush_held(&mut self, all: bool) {
        let now = Instant::now();
        let expired: Vec<i32> = self
            .held
            .iter()
            .filter(|(_, h)| all || h.until <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in expired {
            if let Some(h) = self.held.remove(&p) {
                self.queue.push_back((now, h.out));
            }
        }
    }

    fn produce(&mut self, out: Out) {
        let mut headers = OwnedHeaders::new_with_capacity(out.headers.len());
        for (k, v) in &out.headers {
            headers = headers.insert(Header {
                key: k.as_str(),
                value: v.as_deref(),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&self.spec.output_topic).partition(out.partition);
        if let Some(k) = &out.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &out.value {
            record = record.payload(v.as_slice());
        }
        record = record.headers(headers);
        // A full local queue: wait for room rather than lose the record (the
        // simulator only loses what it is told to).
        let mut record = Some(record);
        while let Some(r) = record.take() {
            match self.producer.send(r) {
                Ok(()) => lock(&self.control.stats).produced += 1,
                Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    self.producer.poll(Duration::from_millis(10));
                    record = Some(r);
                }
                // Anything else will not get better by retrying here.
                Err((e, _)) => {
                    lock(&self.control.stats).failed += 1;
                    tracing::warn!(stage = %self.spec.name, error = %e, "simulator could not produce a record");
                }
            }
        }
    }
}
