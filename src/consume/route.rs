//! One output's view of the records its consumer hands it: each record
//! classified by the output's matcher, a canary of its probe handed to the
//! probe's accounting with its position and send time, anything else
//! counted as foreign; consume errors counted and logged, throttled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message, Timestamp};
use tracing::warn;

use crate::canary::{Matched, Matcher, SENT_HEADER};
use crate::kafka::{self, ConsumeError};
use crate::metrics::IntCounter;
use crate::outcome::Shared;

/// An output's view: its probe's accounting, matcher and counters.
pub(super) struct Route {
    shared: Arc<Shared>,
    index: usize,
    output: String,
    matcher: Arc<Matcher>,
    foreign: Option<IntCounter>,
    errors: Vec<(ConsumeError, IntCounter)>,
    log: crate::util::Throttle,
    /// It reads the probe's input topic (a heartbeat): a record's create
    /// time is then the canary's produce time, not when it arrived.
    reads_input: bool,
    /// Partitions read from before their end (resumed after a restart,
    /// or assigned late) and not yet read up to where they ended then
    /// (partition -> that end offset): their records were written while
    /// this process could not read them.
    catching_up: BTreeMap<i32, i64>,
}

impl Route {
    /// Output `index` of `shared`'s probe, matching with `matcher`.
    pub(super) fn new(
        shared: Arc<Shared>,
        index: usize,
        output: String,
        matcher: Arc<Matcher>,
        reads_input: bool,
    ) -> Route {
        // Counter handles: foreign records (possibly most of a busy topic)
        // are counted without taking the probe's lock.
        let foreign = shared.foreign_counter(index);
        let errors = shared.consume_error_counters(index);
        Route {
            shared,
            index,
            output,
            matcher,
            foreign,
            errors,
            log: Default::default(),
            reads_input,
            catching_up: BTreeMap::new(),
        }
    }

    /// `partition` is about to be read from `start` (resumed after a
    /// restart, or picked up late: from the time it was first wanted, or
    /// new and read from its beginning), and ended at `end` then: until the
    /// route has read up to there, its records were written before, and
    /// are timed by when they were. Registered before the partition is
    /// assigned, so that no record comes first.
    pub(super) fn resuming(&mut self, partition: i32, start: i64, end: i64) {
        if start < end {
            self.catching_up.insert(partition, end);
        }
    }

    /// The assignment [`Route::resuming`] announced was made (`assigned`)
    /// or not (it is retried later, announced again). (A partition that
    /// was not resumed from a saved offset is not waited for by restored
    /// canaries: `caught_up` ignores it.)
    pub(super) fn resumed(&mut self, partition: i32, assigned: bool) {
        if !assigned {
            self.catching_up.remove(&partition);
        } else if !self.catching_up.contains_key(&partition) {
            // Nothing was written since the save (or it was read already).
            self.shared.caught_up(self.index, partition);
        }
    }

    /// When the record at `offset` of `partition` arrived at the output:
    /// `now`, or, for one written before the partition was resumed, when
    /// it was written (`None` where the record does not tell: a
    /// heartbeat's record carries its produce time unless the topic logs
    /// append times).
    fn arrived(&self, msg: &BorrowedMessage<'_>, now: Instant) -> Option<Instant> {
        match self.catching_up.get(&msg.partition()) {
            Some(&end) if msg.offset() < end => {}
            _ => return Some(now),
        }
        let written_ms = match msg.timestamp() {
            Timestamp::LogAppendTime(ms) => ms,
            Timestamp::CreateTime(ms) if !self.reads_input => ms,
            _ => return None,
        };
        let now_ms = crate::canary::unix_ns(SystemTime::now()) / 1_000_000;
        let ago = now_ms.saturating_sub(u64::try_from(written_ms).unwrap_or(0));
        Some(now.checked_sub(Duration::from_millis(ago)).unwrap_or(now))
    }

    pub(super) fn record(&mut self, msg: &BorrowedMessage<'_>, now: Instant) {
        let matched =
            self.matcher
                .classify(msg.key(), msg.payload(), kafka::headers(msg.headers()));
        match matched {
            Matched::Foreign(_) => {
                if let Some(c) = &self.foreign {
                    c.inc();
                }
            }
            ours => {
                let arrived = self.arrived(msg, now);
                let sent_ns = kafka::headers(msg.headers())
                    .find(|(k, _)| *k == SENT_HEADER)
                    .and_then(|(_, v)| crate::canary::parse_sent_ns(v?));
                self.shared.arrival(
                    self.index,
                    ours,
                    (msg.partition(), msg.offset()),
                    sent_ns,
                    now,
                    arrived,
                )
            }
        }
        // After the record is applied: the last one read while catching up
        // must not be expired before it counts.
        let partition = msg.partition();
        if self
            .catching_up
            .get(&partition)
            .is_some_and(|&end| msg.offset() + 1 >= end)
        {
            self.catching_up.remove(&partition);
            self.shared.caught_up(self.index, partition);
        }
    }

    /// A consume error, counted and logged at most every 10 s with the
    /// count since: a topic of records the client cannot decode must not
    /// flood the log, nor be silent.
    pub(super) fn error(&mut self, e: &KafkaError, at: Option<(&str, i32)>) {
        let class = ConsumeError::of(e);
        if let Some((_, c)) = self.errors.iter().find(|(k, _)| *k == class) {
            c.inc();
        }
        if let Some(errors) = self.log.note(1, Instant::now()) {
            let (topic, partition) = at.map_or(("", -1), |(t, p)| (t, p));
            warn!(probe = %self.shared.name, output = %self.output, topic, partition,
                class = class.label(), error = %e, errors,
                "consume errors (counted in slaprobe_consume_errors_total by class; canaries in records the client cannot read are not seen)");
        }
    }
}
