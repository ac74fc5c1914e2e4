//! A probe's accounting, shared by its tasks and threads: its trackers,
//! recorders and metric handles behind one mutex, held for a few
//! microseconds per canary, and what sending, acks, arrivals and expiry do
//! to them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::warn;

use super::input::InputState;
use super::recorder::Recorder;
use super::tracker::{self, Arrival, Outcome, Tracker, TrackerSnapshot};
use super::{Journal, Readiness};
use crate::canary::{Matched, RunId};
use crate::config::{Probe, ProbeKind};
use crate::kafka::TopicLayout;
use crate::metrics::latency::LatencyWindow;
use crate::metrics::Metrics;

/// Where every probe's accounting reports to, shared by the process.
#[derive(Clone)]
pub struct Sinks {
    pub metrics: Metrics,
    pub readiness: Arc<Readiness>,
    pub journal: Arc<Journal>,
    /// The process-wide memory of resolved canaries every tracker shares.
    pub memory: Arc<tracker::Memory>,
}

/// Where an output's accounting starts: a fresh tracker, or one restored
/// from an earlier run with the offsets its consumer resumes from
/// (partition -> next offset).
#[derive(Debug)]
pub struct OutputStart {
    pub tracker: Tracker,
    pub offsets: BTreeMap<i32, i64>,
}

impl OutputStart {
    /// A fresh start for a probe with this `deadline`.
    pub fn fresh(deadline: Duration) -> OutputStart {
        OutputStart {
            tracker: Tracker::new(deadline),
            offsets: BTreeMap::new(),
        }
    }
}

/// One output's accounting as saved across a restart: its tracker and
/// where its consumer was, taken under one lock so that the two agree.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputSaved {
    pub output: String,
    /// The output topic (saved offsets are only valid for it).
    pub topic: String,
    /// (partition, next offset to read).
    pub offsets: Vec<(i32, i64)>,
    pub tracker: TrackerSnapshot,
}

/// A produce that failed, and its class (the `error` label of
/// `slaprobe_produce_errors_total`).
pub(crate) struct ProduceFailure<'a> {
    pub(crate) error: &'a rdkafka::error::KafkaError,
    pub(crate) class: crate::kafka::ProduceError,
}

impl<'a> ProduceFailure<'a> {
    /// `error`, classified by itself.
    pub(crate) fn of(error: &'a rdkafka::error::KafkaError) -> ProduceFailure<'a> {
        ProduceFailure {
            error,
            class: crate::kafka::classify(error),
        }
    }
}

/// Everything a probe's threads share.
pub(crate) struct Shared {
    pub(crate) name: String,
    pub(crate) run: RunId,
    pub(crate) readiness: Arc<Readiness>,
    state: Mutex<State>,
}

pub(super) struct State {
    pub(super) input: InputState,
    pub(super) outputs: Vec<OutputState>,
}

pub(super) struct OutputState {
    pub(super) tracker: Tracker,
    pub(super) rec: Recorder,
    /// Partitions of the output topic its consumer is assigned.
    pub(super) assigned: BTreeSet<i32>,
    /// Per output partition, the offset after the last canary record
    /// applied to the tracker: saved with the tracker under one lock, so a
    /// restart resumes exactly after what the saved tracker has seen.
    pub(super) offsets: BTreeMap<i32, i64>,
    /// The output topic (saved offsets are only valid for it).
    pub(super) topic: String,
    /// Partitions resumed from a saved offset whose consumer has not yet
    /// read up to where the partition ended when it was resumed: while any
    /// is left, the tracker holds its restored canaries from expiry.
    pub(super) catching_up: BTreeSet<i32>,
}

impl Shared {
    /// A probe's shared accounting: per output of the probe (in
    /// [`Probe::outputs`] order) a recorder and the tracker and offsets of
    /// `starts` (a fresh start where `starts` has none), and the input
    /// side's metrics.
    pub(crate) fn build(
        probe: &Probe,
        run: RunId,
        starts: Vec<OutputStart>,
        sinks: &Sinks,
    ) -> Arc<Shared> {
        let Sinks {
            metrics,
            readiness,
            journal,
            memory,
        } = sinks;
        let origin = Instant::now();
        let mut starts = starts.into_iter();
        let output_states = probe
            .outputs()
            .into_iter()
            .map(|o| {
                let mut start = starts
                    .next()
                    .unwrap_or_else(|| OutputStart::fresh(probe.deadline));
                start.tracker.share(memory);
                let catching_up: BTreeSet<i32> = start.offsets.keys().copied().collect();
                if catching_up.is_empty() {
                    // Nothing to read on from: what the restored canaries
                    // were written to is read from now on.
                    start.tracker.release();
                }
                OutputState {
                    tracker: start.tracker,
                    rec: Recorder {
                        probe: probe.name.clone(),
                        output: o.name.clone(),
                        run,
                        journal: journal.clone(),
                        expect: o.expect,
                        metrics: metrics.output(probe, &o.name),
                        window: LatencyWindow::new(origin, probe.deadline),
                        readiness: readiness.clone(),
                        abandoned: tracker::Abandon::ALL
                            .iter()
                            .map(|r| (*r, metrics.abandoned(&probe.name, &o.name, r.label())))
                            .collect(),
                    },
                    assigned: BTreeSet::new(),
                    offsets: start.offsets,
                    topic: o.topic,
                    catching_up,
                }
            })
            .collect();
        Arc::new(Shared {
            name: probe.name.clone(),
            run,
            readiness: readiness.clone(),
            state: Mutex::new(State {
                input: InputState {
                    metrics: metrics.input(probe),
                    layout: None,
                    per_partition: matches!(probe.kind, ProbeKind::Heartbeat(_)),
                    sent_to: Default::default(),
                    unacknowledged: Default::default(),
                    failed: Default::default(),
                },
                outputs: output_states,
            }),
        })
    }

    /// Every output's tracker and offsets, consistent with each other, as
    /// saved across a restart (send times as wall-clock Unix ns).
    pub(crate) fn save(&self, now: Instant, now_unix_ns: u64) -> Vec<OutputSaved> {
        let st = self.lock();
        st.outputs
            .iter()
            .map(|o| OutputSaved {
                output: o.rec.output.clone(),
                topic: o.topic.clone(),
                offsets: o.offsets.iter().map(|(p, off)| (*p, *off)).collect(),
                tracker: o.tracker.snapshot(now, now_unix_ns),
            })
            .collect()
    }

    /// The input topic's new layout, and how many of its brokers lead no
    /// partition canaries go to.
    pub(crate) fn input_layout(&self, layout: TopicLayout, uncovered: usize) {
        let mut st = self.lock();
        let State { input, outputs } = &mut *st;
        input.metrics.brokers_uncovered.set(uncovered as i64);
        if input.per_partition {
            // Each leader's series from its first canary on, at 0 (so a
            // rate over them sees the first event).
            for leader in layout.partitions.iter().filter_map(|(_, l)| *l) {
                input.metrics.touch(Some(leader));
                for o in outputs.iter_mut() {
                    o.rec.metrics.touch(Some(leader));
                }
            }
        }
        input.layout = Some(layout);
    }

    /// Output `index`'s consumer reads `partitions` (partition -> the
    /// offset it reads from, also where a restart resumes until a canary
    /// has been read there): canaries written to a partition that had none
    /// yet when the process stopped are read after the restart, not
    /// skipped.
    pub(crate) fn assigned_more(&self, index: usize, partitions: BTreeMap<i32, i64>) {
        if let Some(o) = self.lock().outputs.get_mut(index) {
            for (p, start) in partitions {
                o.assigned.insert(p);
                o.offsets.insert(p, start);
            }
        }
    }

    /// Output `index`'s consumer has read `partition` up to where it ended
    /// when it was resumed (or it was not resumed after all: its saved
    /// offset was invalid). Once every resumed partition has, restored
    /// canaries are expired like any other.
    pub(crate) fn caught_up(&self, index: usize, partition: i32) {
        let mut st = self.lock();
        let Some(o) = st.outputs.get_mut(index) else {
            return;
        };
        if o.catching_up.remove(&partition) && o.catching_up.is_empty() && o.tracker.holding() {
            tracing::info!(probe = %self.name, output = %o.rec.output,
                "caught up with the output after the restart: restored canaries are judged from now on");
            o.tracker.release();
        }
    }

    /// Canaries in flight: sent, outcome not known yet (the most of any
    /// output).
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        let st = self.lock();
        st.outputs
            .iter()
            .map(|o| o.tracker.in_flight())
            .max()
            .unwrap_or(0)
    }

    /// Canaries lost at output `index` so far.
    #[cfg(test)]
    pub(crate) fn lost(&self, index: usize) -> u64 {
        self.lock()
            .outputs
            .get(index)
            .map_or(0, |o| o.rec.metrics.totals().lost)
    }

    /// Canaries delivered at output `index` so far.
    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn delivered(&self, index: usize) -> u64 {
        self.lock()
            .outputs
            .get(index)
            .map_or(0, |o| o.rec.metrics.totals().delivered)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the trackers worse
        // than a lost update; keep probing rather than cascade.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a canary about to be produced; returns its seq.
    pub(crate) fn send(&self, partition: i32, now: Instant) -> u64 {
        let mut st = self.lock();
        st.input.metrics.sent.inc();
        // Every tracker sees every send and starts from the probe's seqs
        // (see `state::restore`), so they all assign the same seq.
        let mut seq = None;
        for o in &mut st.outputs {
            let s = o.tracker.on_send(partition, now);
            debug_assert!(seq.is_none_or(|x| x == s), "outputs' seqs split");
            seq.get_or_insert(s);
        }
        let seq = seq.unwrap_or(0);
        st.input.sending(partition, seq);
        seq
    }

    /// The delivery report of a canary sent at `sent`.
    pub(crate) fn ack(
        &self,
        partition: i32,
        seq: u64,
        sent: Instant,
        result: Result<(), ProduceFailure<'_>>,
    ) {
        // Purged by our own shutdown (any other purge arrives as a fatal
        // error): the canary may well have been written, so it stays
        // unresolved, to be saved and settled by the next run.
        if result
            .as_ref()
            .is_err_and(|f| crate::kafka::is_purge(f.error))
        {
            return;
        }
        let now = Instant::now();
        let mut st = self.lock();
        let State { input, outputs } = &mut *st;
        // Every tracker saw the send; the first one says whether this report
        // is news (not for a canary already given up as unacknowledged).
        let mut news = outputs.is_empty();
        for (i, o) in outputs.iter_mut().enumerate() {
            let OutputState { tracker, rec, .. } = o;
            let settled = tracker.on_ack(partition, seq, result.is_ok(), now, &mut |out| {
                rec.trace_outcome(out, seq);
                rec.apply(out, seq, now, input)
            });
            if settled && result.is_err() {
                rec.trace("produce_failed", partition, seq, &"");
            }
            news |= i == 0 && settled;
        }
        if !news {
            return;
        }
        // The leader it was sent to (heartbeats); else the current one
        // (produce latency's `broker`).
        let leader = input
            .sent_to(partition, seq)
            .or_else(|| input.leader(partition));
        match result {
            Ok(()) => {
                input
                    .metrics
                    .acked(leader, now.saturating_duration_since(sent));
            }
            Err(f) => {
                input.metrics.produce_failed(leader, f.class);
                if let Some(failed) = input.failed.note(1, now) {
                    warn!(probe = %self.name, partition, class = f.class.label(), error = %f.error, failed,
                        "canaries failed to produce (counted in slaprobe_produce_errors_total by class; failed: how many since the last line)");
                }
            }
        }
    }

    /// A consumed record of output `index` (at `at`: its partition and
    /// offset), already classified, with the send time its
    /// `slaprobe-sent-ns` header gives (Unix ns), when it has one, read at
    /// `now`. `arrived` is when it arrived at the output: `now`, unless it
    /// was read while catching up after a restart (then the record's write
    /// time, or `None` where the record does not tell).
    pub(crate) fn arrival(
        &self,
        index: usize,
        matched: Matched,
        at: (i32, i64),
        sent_ns: Option<u64>,
        now: Instant,
        arrived: Option<Instant>,
    ) {
        let mut st = self.lock();
        let State { input, outputs } = &mut *st;
        let Some(OutputState {
            tracker,
            rec,
            offsets,
            ..
        }) = outputs.get_mut(index)
        else {
            return;
        };
        match matched {
            Matched::Ours { partition, seq } => {
                // The consumer hands each record over once (records read
                // again are skipped before: see `fetcher`); where the
                // partition's offsets went back, these are new records.
                offsets.insert(at.0, at.1 + 1);
                // A seq a killed earlier run sent after its last save: its
                // header says when (clamped at 0 if the clock stepped).
                let mut emit = |out| {
                    rec.trace_outcome(out, seq);
                    rec.apply(out, seq, now, input)
                };
                let judged = sent_ns.is_some_and(|sent| {
                    let now_ns = crate::canary::unix_ns(std::time::SystemTime::now());
                    let age = Duration::from_nanos(now_ns.saturating_sub(sent));
                    tracker.unsaved_sent(partition, seq, age, now, &mut emit)
                });
                let arrival = if judged {
                    Arrival::Counted
                } else {
                    tracker.on_arrival_at(partition, seq, arrived, &mut emit)
                };
                match arrival {
                    // Our run, but an id we never sent: someone forged or
                    // mangled it.
                    Arrival::Unknown => rec.metrics.foreign.inc(),
                    Arrival::Untracked => tracing::debug!(probe = %self.name, partition, seq,
                        "a canary sent before this output was configured"),
                    Arrival::Counted | Arrival::AwaitingAck => {}
                }
            }
            Matched::Foreign(_) => rec.metrics.foreign.inc(),
        }
    }

    /// Gives up the restored canaries of output `index` sent to input
    /// `partition` (all of them with `None`): an output partition could not
    /// be resumed.
    pub(crate) fn abandon(&self, index: usize, partition: Option<i32>) {
        let now = Instant::now();
        let mut st = self.lock();
        let State { input, outputs } = &mut *st;
        if let Some(OutputState { tracker, rec, .. }) = outputs.get_mut(index) {
            tracker.abandon(partition, tracker::Abandon::OffsetInvalid, &mut |out| {
                rec.trace_outcome(out, 0);
                rec.apply(out, 0, now, input)
            });
        }
    }

    pub(crate) fn expire(&self, now: Instant, refresh_quantiles: bool) {
        let mut st = self.lock();
        let State { input, outputs } = &mut *st;
        let mut in_flight = 0;
        let mut unacknowledged = Vec::new();
        for (i, o) in outputs.iter_mut().enumerate() {
            let OutputState { tracker, rec, .. } = o;
            tracker.expire(now, &mut |out| {
                if let (0, Outcome::Unacknowledged { partition, seq }) = (i, out) {
                    unacknowledged.push((partition, seq));
                }
                // Expiry's outcomes carry their canary's seq.
                rec.trace_outcome(out, 0);
                rec.apply(out, 0, now, input)
            });
            in_flight = in_flight.max(tracker.in_flight());
            if refresh_quantiles {
                rec.refresh_quantiles(now);
            }
        }
        input.metrics.in_flight.set(in_flight as i64);
        for (partition, seq) in &unacknowledged {
            let leader = input.sent_to(*partition, *seq);
            input
                .metrics
                .produce_failed(leader, crate::kafka::ProduceError::Timeout);
        }
        if let Some(canaries) = input.unacknowledged.note(unacknowledged.len() as u64, now) {
            warn!(probe = %self.name, canaries, grace = ?tracker::ACK_GRACE,
                "no delivery report by the deadline + grace; counted as failed produces (timeout)");
        }
    }

    /// Output `index`'s foreign-record counter (a handle: incrementing it
    /// needs no lock).
    pub(crate) fn foreign_counter(&self, index: usize) -> Option<crate::metrics::IntCounter> {
        self.lock()
            .outputs
            .get(index)
            .map(|o| o.rec.metrics.foreign.clone())
    }

    /// Output `index`'s consume error counters (handles, no lock needed).
    pub(crate) fn consume_error_counters(
        &self,
        index: usize,
    ) -> Vec<(crate::kafka::ConsumeError, crate::metrics::IntCounter)> {
        self.lock()
            .outputs
            .get(index)
            .map(|o| o.rec.metrics.consume_errors.clone())
            .unwrap_or_default()
    }

    /// Partitions of output `index` its consumer is assigned.
    pub(crate) fn assigned(&self, index: usize) -> BTreeSet<i32> {
        self.lock()
            .outputs
            .get(index)
            .map(|o| o.assigned.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::readiness::Readiness;
    use crate::outcome::tracker::{Memory, RESOLVED_MEMORY};

    fn shared() -> Arc<Shared> {
        let config = crate::config::load_str(
            "a.yaml",
            "clusters: { c: { bootstrap: '127.0.0.1:9092' } }\n\
             probes: [ { name: hb, type: heartbeat, cluster: c, topic: t } ]\n",
            &|_| None,
        )
        .expect("config");
        let probe = &config.probes[0];
        let sinks = Sinks {
            metrics: crate::metrics::Metrics::new(&[]),
            readiness: Arc::new(Readiness::new(Vec::<&str>::new(), [probe.name.as_str()])),
            journal: Arc::new(crate::outcome::journal::Journal::default()),
            memory: Memory::new(RESOLVED_MEMORY),
        };
        Shared::build(probe, RunId(1), Vec::new(), &sinks)
    }

    /// A partition assigned and not yet read from is saved at the offset
    /// it is read from: what is written there while the process is down is
    /// read after the restart. A canary read moves it on.
    #[test]
    fn an_assigned_partition_is_saved_from_where_it_is_read() {
        let s = shared();
        s.assigned_more(0, BTreeMap::from([(0, 40), (1, 7)]));
        let now = Instant::now();
        let saved = s.save(now, 1_800_000_000_000_000_000);
        assert_eq!(saved[0].offsets, vec![(0, 40), (1, 7)]);
        let seq = s.lock().outputs[0].tracker.on_send(0, now);
        s.arrival(
            0,
            Matched::Ours { partition: 0, seq },
            (0, 45),
            None,
            now,
            Some(now),
        );
        let saved = s.save(now, 1_800_000_000_000_000_000);
        assert_eq!(saved[0].offsets, vec![(0, 46), (1, 7)]);
    }
}
