//! One output's view of the records its consumer hands it: each record
//! classified by the output's matcher, a canary of its probe handed to the
//! probe's accounting with its position and send time, anything else
//! counted as foreign; consume errors counted and logged, throttled.

use std::sync::Arc;
use std::time::Instant;

use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
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
}

impl Route {
    /// Output `index` of `shared`'s probe, matching with `matcher`.
    pub(super) fn new(
        shared: Arc<Shared>,
        index: usize,
        output: String,
        matcher: Arc<Matcher>,
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
        }
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
                let sent_ns = kafka::headers(msg.headers())
                    .find(|(k, _)| *k == SENT_HEADER)
                    .and_then(|(_, v)| crate::canary::parse_sent_ns(v?));
                self.shared.arrival(
                    self.index,
                    ours,
                    (msg.partition(), msg.offset()),
                    sent_ns,
                    now,
                )
            }
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
