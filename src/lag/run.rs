//! Reading the groups every interval and exporting what [`Watch`] makes
//! of it. One reader client per cluster (a consumer that never joins a
//! group), shared by that cluster's watches; each watch reads on its own
//! interval, off the async runtime.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::eval::Status;
use super::timelag::Method;
use super::watch::{Read, Tp, Watch};
use crate::brokers::listener::Listener;
use crate::brokers::offsets::{self, GroupOffsets};
use crate::config::{Config, GroupSelector, LagWatch};
use crate::kafka::{self, groups, Role};
use crate::metrics::{Gauge, IntCounter, IntGauge, LagMetrics, Metrics, RequestStats};
use crate::state::StateDir;
use crate::status::GroupBoard;

mod saving;

use saving::{restore, save_every, Saved};
pub use saving::{LagFile, LAG_FILE};

/// The longest one read waits for the cluster (each of its three steps
/// gets at most this): shutdown waits for a read in progress.
const READ_TIMEOUT: Duration = Duration::from_secs(4);

/// The `request` label values of `slaprobe_consumergroup_read_errors_total`:
/// the four steps of a read.
const LIST_GROUPS: &str = "list_groups";
const OFFSETS: &str = "offsets";
const WATERMARKS: &str = "watermarks";
const RECORDS: &str = "records";
const READ_REQUESTS: [&str; 4] = [LIST_GROUPS, OFFSETS, WATERMARKS, RECORDS];

/// A cluster's reader: its librdkafka statistics count its requests in
/// `slaprobe_kafka_requests_total{client="lag"}`, and so do the batched
/// offset reads' own connections. Its watches read at once; the record
/// fetches (which assign it) take turns.
struct Reader {
    consumer: BaseConsumer<RequestStats>,
    /// Committed offsets in a request per coordinator, where the cluster
    /// and the listener allow it (else librdkafka's one per group).
    offsets: Option<GroupOffsets>,
    /// Held while a watch reads records (they assign the consumer); says
    /// until when record reads pause after the cluster refused one.
    records: std::sync::Mutex<Option<Instant>>,
}

/// The most records (committed positions) one read fetches the timestamps
/// of: with `groups::TURN_PARTITIONS` at once, a read's fetches stay small
/// whatever the watch holds.
const RECORDS_PER_READ: usize = 1_000;

/// How long record reads pause after the cluster refused one (an ACL that
/// grants `Describe` but not `Read`): lag in seconds is estimated from the
/// watermarks meanwhile.
const RECORDS_PAUSE: Duration = Duration::from_secs(300);

/// Every watch of a configuration, ready to run.
pub struct Lag {
    tasks: Vec<Task>,
    pub board: GroupBoard,
    /// Where the watches are saved, and what the last reads left.
    state: Option<(Arc<StateDir>, Saved)>,
}

struct Task {
    watch: Watch,
    reader: Arc<Reader>,
    series: Series,
    saved: Option<Saved>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot create the consumer-group reader for cluster `{cluster}`")]
pub struct LagError {
    cluster: String,
    #[source]
    error: rdkafka::error::KafkaError,
}

impl Lag {
    /// One reader per cluster that has watches; no request is sent yet.
    /// With `state_dir`, what an earlier run saved is taken back.
    pub fn build(
        config: &Config,
        metrics: &Metrics,
        state_dir: Option<Arc<StateDir>>,
    ) -> Result<Lag, LagError> {
        let mut readers: HashMap<&str, Arc<Reader>> = HashMap::new();
        let mut tasks = Vec::new();
        for w in &config.lag {
            let reader = match readers.get(w.cluster.as_str()) {
                Some(r) => r.clone(),
                None => {
                    let cluster = &config.clusters[&w.cluster];
                    let requests = RequestStats::new(metrics, &w.cluster, "lag");
                    // Polled at each read: the cluster's most frequent.
                    let read_every = config
                        .lag
                        .iter()
                        .filter(|o| o.cluster == w.cluster)
                        .map(|o| o.interval)
                        .min()
                        .unwrap_or(w.interval);
                    let consumer =
                        kafka::client::create(cluster, Role::LagReader { read_every }, requests)
                            .map_err(|error| LagError {
                                cluster: w.cluster.clone(),
                                error,
                            })?;
                    // The clients' own listener (the configuration was
                    // validated: an error here leaves librdkafka's way).
                    let offsets = match Listener::new(
                        crate::config::DEFAULT_LISTENER,
                        &cluster.bootstrap,
                        &cluster.librdkafka,
                    ) {
                        Ok(l) => GroupOffsets::new(l),
                        Err(e) => {
                            info!(cluster = %w.cluster, reason = %e, "{}", offsets::THROUGH_LIBRDKAFKA);
                            None
                        }
                    };
                    let r = Arc::new(Reader {
                        consumer,
                        offsets,
                        records: Default::default(),
                    });
                    readers.insert(&w.cluster, r.clone());
                    // At 0 from the start: an alert on failed reads has a
                    // series to look at before the first failure.
                    for request in READ_REQUESTS {
                        metrics
                            .lag
                            .read_errors
                            .with_label_values(&[&w.cluster, request]);
                    }
                    r
                }
            };
            tasks.push(Task {
                watch: Watch::new(w.clone(), named_elsewhere(config, w)),
                reader,
                series: Series::new(&metrics.lag, w),
                saved: None,
            });
        }
        let state = state_dir.filter(|_| !tasks.is_empty()).map(|dir| {
            let saved = Saved::new(std::sync::Mutex::new(restore(&dir, &mut tasks)));
            for t in &mut tasks {
                t.saved = Some(saved.clone());
            }
            (dir, saved)
        });
        if !tasks.is_empty() {
            info!(
                watches = tasks.len(),
                readers = readers.len(),
                "consumer groups watched"
            );
        }
        Ok(Lag {
            tasks,
            board: GroupBoard::default(),
            state,
        })
    }

    /// Spawns every watch on the current runtime, and their saver; they
    /// stop on `cancel` (the saver after a last save).
    pub fn spawn(self, tracker: &tokio_util::task::TaskTracker, cancel: &CancellationToken) {
        for t in self.tasks {
            tracker.spawn(t.run(self.board.clone(), cancel.clone()));
        }
        if let Some((dir, saved)) = self.state {
            tracker.spawn(save_every(dir, saved, cancel.clone()));
        }
    }
}

/// Groups other watches on `w`'s cluster name: a pattern leaves them alone.
fn named_elsewhere(config: &Config, w: &LagWatch) -> BTreeSet<String> {
    config
        .lag
        .iter()
        .filter(|o| o.cluster == w.cluster && o.probe != w.probe)
        .filter_map(|o| match &o.groups {
            GroupSelector::Named(n) => Some(n.clone()),
            GroupSelector::Pattern(_) => None,
        })
        .flatten()
        .collect()
}

/// Unix seconds now, with their fraction.
fn wall_now() -> f64 {
    crate::canary::unix_ns(std::time::SystemTime::now()) as f64 / 1e9
}

/// Seconds on the monotonic clock since the first read: lag in seconds
/// and the evaluation windows only ever take differences of these, so a
/// wall-clock step cannot fire a false `max_lag` alert or stretch a window.
fn monotonic_now() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

/// One read: the listing (members, and a pattern's groups), the offsets
/// of the groups to read, the watermarks of the partitions they commit.
/// Blocking.
/// One read; `first`: the reader's first, which may have to connect to
/// every broker (TLS, SASL) and gets [`READ_TIMEOUT`] whatever the
/// interval (a failure there is a read error, not a slow start).
fn read(watch: &Watch, shared: &Reader, errors: &LagMetrics, first: bool) -> Read {
    let reader = &shared.consumer;
    let cluster = &watch.config.cluster;
    let timeout = if first {
        READ_TIMEOUT
    } else {
        READ_TIMEOUT.min(watch.config.interval)
    };
    // Serve the reader's own events so that none piles up: statistics
    // (its request counts; a poll serves all that are queued within its
    // wait) and errors (connection noise the reads below report).
    for _ in 0..10_000 {
        if reader.poll(Duration::from_millis(10)).is_none() {
            break;
        }
    }
    let listed = match groups::list(reader.client(), timeout) {
        Ok(l) => Some(l),
        Err(e) => {
            errors
                .read_errors
                .with_label_values(&[cluster, LIST_GROUPS])
                .inc();
            tracing::debug!(%cluster, error = %e, "cannot list consumer groups");
            None
        }
    };
    let (names, groups_over_max) = watch.groups_to_read(listed.as_deref());
    let stats = reader.context();
    let committed = shared
        .offsets
        .as_ref()
        .and_then(|o| {
            o.committed(&names, timeout, &|broker, request| {
                stats.sent(broker, request)
            })
        })
        .unwrap_or_else(|| groups::committed(reader.client(), &names, timeout));
    let failed = committed.values().filter(|r| r.is_err()).count();
    if failed > 0 {
        errors
            .read_errors
            .with_label_values(&[cluster, OFFSETS])
            .inc_by(failed as u64);
    }
    let partitions: BTreeSet<Tp> = committed
        .values()
        .filter_map(|r| r.as_ref().ok())
        .flatten()
        .filter(|(t, _, _)| watch.config.topics.is_empty() || watch.config.topics.contains(t))
        .map(|(t, p, _)| (t.clone(), *p))
        .collect();
    // A named topic none of whose partitions came back: Kafka leaves out
    // of a group's offsets the topics the principal may not describe, so
    // ask the topic itself why (one metadata request, only then).
    for topic in &watch.config.topics {
        if partitions.iter().any(|(t, _)| t == topic) {
            continue;
        }
        if let Err(kafka::MetadataError::Kafka(e)) = kafka::fetch_layout(reader.client(), topic) {
            errors
                .read_errors
                .with_label_values(&[cluster, WATERMARKS])
                .inc();
            reader.context().error(&e, "describing a watched topic");
            warn!(%cluster, topic = %topic, error = %e,
                "cannot describe a watched topic: its groups' offsets on it are hidden (an ACL?)");
        }
    }
    let partitions: Vec<Tp> = partitions.into_iter().collect();
    let high_watermarks = match groups::high_watermarks(reader, &partitions, timeout) {
        Ok((h, failed)) => {
            if let Some((tp, e)) = failed.first() {
                errors
                    .read_errors
                    .with_label_values(&[cluster, WATERMARKS])
                    .inc();
                warn!(%cluster, partitions = failed.len(), topic = %tp.0, partition = tp.1, error = %e,
                    "cannot read some partitions' high watermarks");
            }
            h
        }
        Err(e) => {
            errors
                .read_errors
                .with_label_values(&[cluster, WATERMARKS])
                .inc();
            warn!(%cluster, error = %e, "cannot read high watermarks");
            HashMap::new()
        }
    };
    // The timestamps of the records the groups have not consumed first:
    // known from the last read, else fetched (at most RECORDS_PER_READ;
    // the others' lag comes from the table).
    let (mut record_times, wanted) = watch.records_to_read(
        &committed,
        &high_watermarks,
        watch.config.max_partitions.min(RECORDS_PER_READ),
    );
    let mut paused = shared.records.lock().unwrap_or_else(|e| e.into_inner());
    if !wanted.is_empty() && paused.is_none_or(|until| Instant::now() >= until) {
        let (times, failed) = groups::record_times(reader, &wanted, timeout);
        record_times.extend(times);
        *paused = None;
        if let Some(e) = failed {
            errors
                .read_errors
                .with_label_values(&[cluster, RECORDS])
                .inc();
            *paused = Some(Instant::now() + RECORDS_PAUSE);
            warn!(%cluster, error = %e, pause = ?RECORDS_PAUSE,
                "cannot read the records at the groups' committed offsets (a Read ACL on their topics?): lag in seconds is estimated from the watermarks (method interpolated or at_least) until the next try");
        }
    }
    drop(paused);
    Read {
        groups_over_max,
        at: monotonic_now(),
        wall: wall_now(),
        listed,
        committed,
        high_watermarks,
        record_times,
    }
}

impl Task {
    async fn run(self, board: GroupBoard, cancel: CancellationToken) {
        let key = (
            self.watch.config.probe.clone(),
            self.watch.config.cluster.clone(),
        );
        let mut ticker = tokio::time::interval(self.watch.config.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let Task {
            mut watch,
            reader,
            mut series,
            saved,
        } = self;
        let mut errors_logged: BTreeSet<String> = BTreeSet::new();
        let mut over_max = crate::util::Throttle::default();
        let mut first = true;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let reader = reader.clone();
            let metrics = series.metrics.clone();
            let job = tokio::task::spawn_blocking(move || {
                let r = read(&watch, &reader, &metrics, first);
                let dropped = watch.apply(&r);
                (watch, r, dropped)
            });
            first = false;
            let (w, r, dropped) = tokio::select! {
                _ = cancel.cancelled() => return,
                done = job => match done {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "consumer-group read failed");
                        return;
                    }
                },
            };
            watch = w;
            if let Some(saved) = &saved {
                saved
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), watch.save(r.wall - r.at));
            }
            series.groups_over_max.set(r.groups_over_max as i64);
            if r.groups_over_max > 0 {
                if let Some(reads) = over_max.note(1, std::time::Instant::now()) {
                    warn!(cluster = %watch.config.cluster, probe = %watch.config.probe,
                        over = r.groups_over_max, max_groups = watch.config.max_groups, reads,
                        "group_pattern matches more groups than max_groups; the rest are not watched (raise max_groups or narrow the pattern)");
                }
            }
            for (group, result) in &r.committed {
                match result {
                    Err(e) if errors_logged.insert(group.clone()) => {
                        warn!(cluster = %watch.config.cluster, %group, error = %e, "cannot read the group's committed offsets");
                    }
                    Ok(_) => {
                        errors_logged.remove(group);
                    }
                    Err(_) => {}
                }
            }
            series.update(&watch, dropped);
            board
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), watch.views());
        }
    }
}

/// A (group, partition)'s series.
struct PartitionSeries {
    records: IntGauge,
    /// The method labelling it, and lag in seconds.
    seconds: (&'static str, Gauge),
    committed: IntGauge,
}

/// A watch's series: handles kept per partition and group, removed when
/// the partition or group goes.
struct Series {
    metrics: LagMetrics,
    cluster: String,
    /// Two probes whose patterns match one group each have its series.
    probe: String,
    partitions: HashMap<(String, Tp), PartitionSeries>,
    groups: HashMap<String, Vec<IntGauge>>,
    /// Created at 0, so an alert on it has a series from the start.
    dropped: IntCounter,
    groups_over_max: IntGauge,
}

impl Series {
    fn new(metrics: &LagMetrics, w: &LagWatch) -> Series {
        Series {
            metrics: metrics.clone(),
            cluster: w.cluster.clone(),
            probe: w.probe.clone(),
            partitions: HashMap::new(),
            groups: HashMap::new(),
            dropped: metrics
                .partitions_dropped
                .with_label_values(&[&w.cluster, &w.probe]),
            groups_over_max: metrics
                .groups_over_max
                .with_label_values(&[&w.cluster, &w.probe]),
        }
    }

    fn update(&mut self, watch: &Watch, dropped: usize) {
        let m = &self.metrics;
        let c = self.cluster.as_str();
        let probe = self.probe.as_str();
        self.dropped.inc_by(dropped as u64);
        let mut live = BTreeSet::new();
        for (group, p) in watch.exported() {
            let key = (group.to_string(), (p.topic.clone(), p.partition));
            let partition = p.partition.to_string();
            let l = [c, probe, group, p.topic.as_str(), partition.as_str()];
            // The method of a partition's lag may change from read to read
            // (a record read, then not): one series at a time.
            let method = p.lag_method.unwrap_or(Method::AtLeast.label());
            let seconds_of = |method: &str| {
                let [c, probe, group, topic, partition] = l;
                m.lag_seconds
                    .with_label_values(&[c, probe, group, topic, partition, method])
            };
            let PartitionSeries {
                records,
                seconds,
                committed,
            } = self
                .partitions
                .entry(key.clone())
                .or_insert_with(|| PartitionSeries {
                    records: m.lag_records.with_label_values(&l),
                    seconds: (method, seconds_of(method)),
                    committed: m.committed_offset.with_label_values(&l),
                });
            if seconds.0 != method {
                let [c, probe, group, topic, partition] = l;
                m.lag_seconds
                    .remove(&[c, probe, group, topic, partition, seconds.0]);
                *seconds = (method, seconds_of(method));
            }
            records.set(i64::try_from(p.lag_records).unwrap_or(i64::MAX));
            seconds.1.set(p.lag_seconds.unwrap_or(f64::NAN));
            committed.set(p.committed);
            live.insert(key);
        }
        self.partitions
            .retain(|(group, (topic, partition)), series| {
                let method = series.seconds.0;
                let keep = live.contains(&(group.clone(), (topic.clone(), *partition)));
                if !keep {
                    let partition = partition.to_string();
                    let l = [c, probe, group.as_str(), topic.as_str(), partition.as_str()];
                    m.lag_records.remove(&l);
                    m.committed_offset.remove(&l);
                    let [c, probe, group, topic, partition] = l;
                    m.lag_seconds
                        .remove(&[c, probe, group, topic, partition, method]);
                }
                keep
            });
        let mut groups = BTreeSet::new();
        for (group, status) in watch.statuses() {
            let gauges = self.groups.entry(group.to_string()).or_insert_with(|| {
                Status::ALL
                    .iter()
                    .map(|s| m.status.with_label_values(&[c, probe, group, s.label()]))
                    .collect()
            });
            for (g, s) in gauges.iter().zip(Status::ALL) {
                g.set(i64::from(s == status));
            }
            groups.insert(group.to_string());
        }
        self.groups.retain(|group, _| {
            let keep = groups.contains(group);
            if !keep {
                for s in Status::ALL {
                    m.status.remove(&[c, probe, group.as_str(), s.label()]);
                }
            }
            keep
        });
    }
}
