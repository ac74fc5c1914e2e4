//! The consumer a cluster's outputs share, and the thread that hands each
//! record it reads to the outputs watching its partition.
//!
//! Every output partition is assigned explicitly (no group is joined), and
//! each gets its own librdkafka queue, so that a consume error (a record
//! the client cannot decode, an offset out of range) is counted on the
//! outputs of that partition only. librdkafka signals a queue that was
//! empty and has records again; one thread waits for those signals, drains
//! the queue, and dispatches each record to every output (route) of its
//! partition, each with its own matcher, in offset order and at most once
//! per route. A second thread waits in the consumer's own queue, which
//! gets librdkafka's logs, statistics and the errors that concern no one
//! partition, and serves each as it comes.
//!
//! Outputs share one position per partition. A route joining a partition
//! the consumer already reads takes the records from its own start offset
//! on: when that lies behind the consumer's position (a restart resuming
//! from a saved offset), the partition is re-assigned from there and the
//! routes already reading skip what they have seen. A partition whose
//! offsets go backwards on their own (the topic deleted and created again,
//! the consumer reset to the beginning) is read on from there by every
//! route: those are new records.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::route::Route;
use crate::canary::Matcher;
use crate::config::Cluster;
use crate::kafka::{self, Role};
use crate::metrics::RequestStats;
use crate::outcome::Shared;

/// How long the consumer's threads wait for a signal or an event before
/// they check for shutdown.
const POLL: Duration = Duration::from_millis(100);
/// Records drained from one partition before the others get a turn.
const DRAIN_BATCH: usize = 4096;

/// An output reading through a [`Fetcher`].
pub(crate) type RouteId = usize;

pub(crate) struct Fetcher {
    /// The cluster (and probe, for a dedicated client), for logs.
    name: String,
    consumer: Arc<BaseConsumer<RequestStats>>,
    /// Routes and assigned partitions; assignments change it under its
    /// lock, so they are serialised and the dispatching thread never sees
    /// half of one.
    table: Mutex<Table>,
    /// Signals of partition queues that have records (their slot index).
    wake: mpsc::Sender<usize>,
    receiver: Mutex<Option<mpsc::Receiver<usize>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The last layout read of the outputs' topics, shared by their probes.
    pub(crate) layouts: kafka::SharedLayouts,
}

#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    by_partition: HashMap<(String, i32), usize>,
    routes: Vec<Route>,
}

/// One assigned partition.
struct Slot {
    topic: String,
    partition: i32,
    queue: PartitionQueue<RequestStats>,
    pos: Position,
}

struct Position {
    assigned: bool,
    /// The offset the partition was (re-)assigned from.
    fetch_from: i64,
    /// The offset after the last record read since.
    next: Option<i64>,
    /// The routes reading it, each with the offset it reads on from.
    routes: Vec<(RouteId, i64)>,
}

impl Fetcher {
    pub(crate) fn new(
        cluster: &Cluster,
        name: String,
        requests: RequestStats,
    ) -> Result<Fetcher, KafkaError> {
        let consumer: BaseConsumer<RequestStats> =
            kafka::client::create(cluster, Role::Consumer, requests)?;
        let (wake, receiver) = mpsc::channel();
        Ok(Fetcher {
            name,
            consumer: Arc::new(consumer),
            table: Mutex::default(),
            wake,
            receiver: Mutex::new(Some(receiver)),
            threads: Mutex::default(),
            layouts: kafka::SharedLayouts::default(),
        })
    }

    /// The client, for metadata requests.
    pub(crate) fn consumer(&self) -> &Arc<BaseConsumer<RequestStats>> {
        &self.consumer
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers output `index` of `shared`'s probe; it reads nothing until
    /// partitions are [added](Fetcher::add) for it.
    pub(crate) fn route(
        &self,
        shared: Arc<Shared>,
        index: usize,
        output: String,
        matcher: Arc<Matcher>,
        reads_input: bool,
    ) -> RouteId {
        let route = Route::new(shared, index, output, matcher, reads_input);
        let mut t = self.table();
        t.routes.push(route);
        t.routes.len() - 1
    }

    /// Route `route` reads `partitions` of `topic`: those in `resume` from
    /// their saved offset when it is still within the partition, those in
    /// `from_beginning` from their first offset, those in `since` from the
    /// first record written at or after that time (Unix ms: a partition
    /// that should have been read from its end then, but could not be),
    /// the others (and those whose saved offset is no longer valid) from
    /// their current end. Blocking (offset requests). Returns the
    /// partitions added with the offset each is read from (one whose
    /// offsets cannot be read now is left out, for the caller to try again,
    /// rather than guessed at), and those whose saved offset was invalid.
    pub(crate) fn add(
        &self,
        route: RouteId,
        topic: &str,
        partitions: &[i32],
        from_beginning: &BTreeSet<i32>,
        resume: &BTreeMap<i32, i64>,
        since: &BTreeMap<i32, i64>,
    ) -> (BTreeMap<i32, i64>, Vec<i32>) {
        let mut starts: BTreeMap<i32, i64> = BTreeMap::new();
        let mut invalid = Vec::new();
        // Partitions read from before their end: (partition, start, end
        // then). What is there was written while this process could not
        // read it (before a restart, or while the partition could not be
        // assigned), so it is timed by when it was written.
        let mut behind = Vec::new();
        for &p in partitions {
            let (low, high) = match self.consumer.fetch_watermarks(
                topic,
                p,
                kafka::METADATA_TIMEOUT,
            ) {
                Ok(w) => w,
                Err(e) => {
                    warn!(consumer = %self.name, topic, partition = p, error = %e,
                        "cannot read the partition's offsets; not consumed yet, tried again shortly");
                    continue;
                }
            };
            let start = match resume.get(&p) {
                Some(&saved) if (low..=high).contains(&saved) => saved,
                Some(_) => {
                    invalid.push(p);
                    high
                }
                None if from_beginning.contains(&p) => low,
                None => match since.get(&p) {
                    Some(&at) => match kafka::offset_at(&*self.consumer, topic, p, at) {
                        Ok(o) => o.map_or(high, |o| o.clamp(low, high)),
                        Err(e) => {
                            warn!(consumer = %self.name, topic, partition = p, error = %e,
                                "cannot look up the offset at the time the partition was first wanted; not consumed yet, tried again shortly");
                            continue;
                        }
                    },
                    None => high,
                },
            };
            behind.push((p, start, high));
            starts.insert(p, start);
        }
        if let Some(r) = self.table().routes.get_mut(route) {
            for &(p, start, end) in &behind {
                r.resuming(p, start, end);
            }
        }
        let added = self.assign(route, topic, &starts);
        if let Some(r) = self.table().routes.get_mut(route) {
            for (p, _, _) in behind {
                r.resumed(p, added.contains(&p));
            }
        }
        starts.retain(|p, _| added.contains(p));
        (starts, invalid)
    }

    /// Puts `route` on each partition of `starts` from its offset, assigning
    /// the partitions the consumer does not read yet and re-assigning those
    /// it reads past the offset.
    fn assign(&self, route: RouteId, topic: &str, starts: &BTreeMap<i32, i64>) -> BTreeSet<i32> {
        let mut t = self.table();
        let Table {
            slots,
            by_partition,
            ..
        } = &mut *t;
        let mut fresh = TopicPartitionList::new();
        let mut fresh_slots = Vec::new();
        let mut rewind = TopicPartitionList::new();
        // (slot, start, the position it is moved back from)
        let mut rewind_slots = Vec::new();
        let mut joined = BTreeSet::new();
        for (&p, &start) in starts {
            let key = (topic.to_string(), p);
            let index = match by_partition.get(&key) {
                Some(&i) => i,
                None => {
                    let Some(mut queue) = self.consumer.split_partition_queue(topic, p) else {
                        warn!(consumer = %self.name, topic, partition = p, "cannot open the partition's queue; tried again shortly");
                        continue;
                    };
                    let wake = self.wake.clone();
                    let index = slots.len();
                    queue.set_nonempty_callback(move || {
                        let _ = wake.send(index);
                    });
                    slots.push(Slot {
                        topic: topic.to_string(),
                        partition: p,
                        queue,
                        pos: Position {
                            assigned: false,
                            fetch_from: start,
                            next: None,
                            routes: Vec::new(),
                        },
                    });
                    by_partition.insert(key, index);
                    index
                }
            };
            let pos = &mut slots[index].pos;
            pos.routes.retain(|(r, _)| *r != route);
            let offset = Offset::Offset(start);
            if !pos.assigned {
                if fresh.add_partition_offset(topic, p, offset).is_ok() {
                    fresh_slots.push((index, start));
                }
                continue;
            }
            let current = pos.next.unwrap_or(pos.fetch_from);
            if start < current {
                if rewind.add_partition_offset(topic, p, offset).is_ok() {
                    rewind_slots.push((index, start, current));
                }
                continue;
            }
            pos.routes.push((route, start));
            joined.insert(p);
        }
        let mut moved = Vec::new();
        if fresh.count() > 0 {
            match self.consumer.incremental_assign(&fresh) {
                Ok(()) => moved.extend(fresh_slots),
                Err(e) => warn!(consumer = %self.name, topic, error = %e,
                    "assigning partitions failed; retrying at the next refresh"),
            }
        }
        if rewind.count() > 0 {
            // What the other routes have read already is skipped for them:
            // no record is handed to a route twice.
            let back = self
                .consumer
                .incremental_unassign(&rewind)
                .and_then(|()| self.consumer.incremental_assign(&rewind));
            match back {
                Ok(()) => moved.extend(rewind_slots.iter().map(|(i, s, _)| (*i, *s))),
                Err(e) => {
                    warn!(consumer = %self.name, topic, error = %e,
                        "re-assigning partitions from an earlier offset failed; retrying at the next refresh");
                    // The routes already reading go on where they were.
                    let mut restore = TopicPartitionList::new();
                    for (i, _, current) in &rewind_slots {
                        let _ = restore.add_partition_offset(
                            topic,
                            slots[*i].partition,
                            Offset::Offset(*current),
                        );
                    }
                    let _ = self.consumer.incremental_assign(&restore);
                }
            }
        }
        for (index, start) in moved {
            let slot = &mut slots[index];
            slot.pos.assigned = true;
            slot.pos.fetch_from = start;
            slot.pos.next = None;
            slot.pos.routes.push((route, start));
            joined.insert(slot.partition);
            // Records may have come before the route was in place.
            let _ = self.wake.send(index);
        }
        joined
    }

    /// Starts the dispatching thread and the thread serving the
    /// consumer's own queue, unless they run already; they stop when
    /// `cancel` is cancelled.
    pub(crate) fn start(self: &Arc<Self>, cancel: CancellationToken) {
        let Some(receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let me = self.clone();
        let stop = cancel.clone();
        self.spawn(format!("consume-{}", self.name), move || {
            me.dispatch(&receiver, &stop)
        });
        let me = self.clone();
        self.spawn(format!("events-{}", self.name), move || {
            me.serve_main_queue(&cancel)
        });
    }

    fn spawn(&self, name: String, run: impl FnOnce() + Send + 'static) {
        let watched = name.clone();
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            let _watch = crate::util::threads::Watch::new(watched);
            run()
        });
        match spawned {
            Ok(t) => self
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(t),
            Err(e) => warn!(consumer = %self.name, error = %e, "cannot start a consumer thread"),
        }
    }

    /// Waits for the consumer's threads to stop (the first caller does;
    /// blocking).
    pub(crate) fn join(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }

    fn dispatch(&self, receiver: &mpsc::Receiver<usize>, cancel: &CancellationToken) {
        while !cancel.is_cancelled() {
            match receiver.recv_timeout(POLL) {
                Ok(index) => self.drain(index),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Hands what partition `index`'s queue holds to its routes.
    fn drain(&self, index: usize) {
        let mut t = self.table();
        let Table { slots, routes, .. } = &mut *t;
        let Some(Slot {
            topic,
            partition,
            queue,
            pos,
        }) = slots.get_mut(index)
        else {
            return;
        };
        for _ in 0..DRAIN_BATCH {
            match queue.poll(Duration::ZERO) {
                None => return,
                Some(Ok(msg)) => deliver(&self.name, pos, routes, &msg),
                Some(Err(e)) => {
                    for (r, _) in &pos.routes {
                        if let Some(route) = routes.get_mut(*r) {
                            route.error(&e, Some((topic, *partition)));
                        }
                    }
                }
            }
        }
        // More than a batch: the other partitions get their turn first.
        let _ = self.wake.send(index);
    }

    /// The consumer's own queue: errors that concern no one partition
    /// (brokers unreachable) count on every route, and a record that came
    /// there (fetched before its partition had its own queue) goes to its
    /// partition's routes. librdkafka's logs and statistics come there too:
    /// a poll serves every one of those that comes within its wait and
    /// returns at the first error or record, so this thread waits in the
    /// queue and nothing piles up in it however many events a failing
    /// cluster sends (a poll that returned after one event each time would
    /// serve ten a second).
    fn serve_main_queue(&self, cancel: &CancellationToken) {
        while !cancel.is_cancelled() {
            let Some(polled) = self.consumer.poll(POLL) else {
                continue;
            };
            let mut t = self.table();
            let Table {
                slots,
                by_partition,
                routes,
            } = &mut *t;
            match polled {
                Ok(msg) => {
                    let key = (msg.topic().to_string(), msg.partition());
                    if let Some(slot) = by_partition.get(&key).and_then(|i| slots.get_mut(*i)) {
                        deliver(&self.name, &mut slot.pos, routes, &msg);
                    }
                }
                Err(e) => {
                    for route in routes.iter_mut() {
                        route.error(&e, None);
                    }
                }
            }
        }
    }
}

/// Hands `msg` to every route of its partition that has not read it yet.
fn deliver(consumer: &str, pos: &mut Position, routes: &mut [Route], msg: &BorrowedMessage<'_>) {
    let now = Instant::now();
    let reset = pos.take(msg.offset(), |r| {
        if let Some(route) = routes.get_mut(r) {
            route.record(msg, now);
        }
    });
    if let Some(expected) = reset {
        warn!(consumer, topic = msg.topic(), partition = msg.partition(), offset = msg.offset(), expected,
            "the partition's offsets went back (topic deleted and created again, or truncated): reading on from there");
    }
}

impl Position {
    /// Takes the record at `offset`, calling `to` for each route that has
    /// not read it. Returns the offset expected instead when the offsets
    /// went back: the consumer never goes back by itself otherwise (a
    /// re-assignment resets `next`), so the partition's log was replaced
    /// and everything in it is new to every route.
    fn take(&mut self, offset: i64, mut to: impl FnMut(RouteId)) -> Option<i64> {
        let current = self.next.unwrap_or(self.fetch_from);
        let reset = (offset < current).then_some(current);
        if reset.is_some() {
            for (_, next) in &mut self.routes {
                *next = (*next).min(offset);
            }
        }
        self.next = Some(offset + 1);
        for (r, next) in &mut self.routes {
            if offset >= *next {
                *next = offset + 1;
                to(*r);
            }
        }
        reset
    }
}

#[cfg(test)]
mod tests {
    use super::{Position, RouteId};

    fn position(fetch_from: i64, routes: &[(RouteId, i64)]) -> Position {
        Position {
            assigned: true,
            fetch_from,
            next: None,
            routes: routes.to_vec(),
        }
    }

    /// Offsets in order, each to the routes whose start it has reached.
    fn take(p: &mut Position, offsets: impl IntoIterator<Item = i64>) -> Vec<(i64, RouteId)> {
        let mut got = Vec::new();
        for o in offsets {
            p.take(o, |r| got.push((o, r)));
        }
        got
    }

    #[test]
    fn each_route_reads_from_its_own_start_once() {
        // Route 0 from 10, route 1 (joined later) from 12.
        let mut p = position(10, &[(0, 10), (1, 12)]);
        assert_eq!(
            take(&mut p, 10..14),
            vec![(10, 0), (11, 0), (12, 0), (12, 1), (13, 0), (13, 1)]
        );
        // Gaps (compaction, transaction markers) are no reset.
        assert_eq!(take(&mut p, [20]), vec![(20, 0), (20, 1)]);
    }

    /// A route resuming from a saved offset behind the consumer's position
    /// re-assigns the partition from there: it gets what it has not seen,
    /// the route already reading skips what it has.
    #[test]
    fn a_rewind_for_one_route_is_no_duplicate_for_the_others() {
        let mut p = position(100, &[(0, 100)]);
        assert_eq!(take(&mut p, 100..103), vec![(100, 0), (101, 0), (102, 0)]);
        // As `Fetcher::assign` does it: from 95, position reset.
        p.fetch_from = 95;
        p.next = None;
        p.routes.push((1, 95));
        let got = take(&mut p, 95..104);
        assert_eq!(got.iter().filter(|(_, r)| *r == 1).count(), 9);
        assert_eq!(
            got.iter().filter(|(_, r)| *r == 0).collect::<Vec<_>>(),
            vec![&(103, 0)]
        );
    }

    /// Offsets going back by themselves (a topic created again) are new
    /// records for every route, not records read again.
    #[test]
    fn offsets_going_back_are_read_on_by_every_route() {
        let mut p = position(0, &[(0, 0), (1, 5000)]);
        assert!(p.take(5000, |_| {}).is_none());
        assert_eq!(p.take(0, |_| {}), Some(5001));
        assert_eq!(take(&mut p, 1..3), vec![(1, 0), (1, 1), (2, 0), (2, 1)]);
        // Assigned at 500 and reset before any record: also a reset.
        let mut q = position(500, &[(0, 500)]);
        assert_eq!(q.take(0, |_| {}), Some(500));
    }
}
