//! A probe's accounting, shared by its tasks and threads: its trackers,
//! recorders and metric handles behind one mutex, held for a few
//! microseconds per canary, and what sending, acks, arrivals and expiry do
//! to them.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::warn;

use super::recorder::Recorder;
use super::tracker::{self, Arrival, Outcome, Tracker};
use super::{availability_output, Context, OutputSpec, Readiness};
use crate::canary::{Matched, RunId};
use crate::config::{Probe, ProbeKind};
use crate::kafka::TopicLayout;
use crate::metrics::latency::LatencyWindow;
use crate::metrics::InputMetrics;

/// Everything a probe's threads share.
pub(crate) struct Shared {
    pub(super) name: String,
    pub(super) run: RunId,
    pub(super) readiness: Arc<Readiness>,
    state: Mutex<State>,
}

pub(super) struct State {
    pub(super) input: InputState,
    pub(super) outputs: Vec<OutputState>,
}

pub(super) struct InputState {
    pub(super) metrics: InputMetrics,
    /// The input topic's last known layout (leaders for the `broker` label).
    pub(super) layout: Option<TopicLayout>,
    /// Heartbeat probes also count deliveries per partition and leader.
    pub(super) per_partition: bool,
    /// Canaries given up as unacknowledged, logged with a count at most
    /// every 10 s.
    pub(super) unacknowledged: crate::util::Throttle,
}

impl InputState {
    pub(super) fn leader(&self, partition: i32) -> Option<i32> {
        self.layout.as_ref().and_then(|l| l.leader(partition))
    }
}

pub(super) struct OutputState {
    pub(super) tracker: Tracker,
    pub(super) rec: Recorder,
    /// Partitions of the output topic its consumer is assigned.
    pub(super) assigned: BTreeSet<i32>,
    /// Per output partition, the offset after the last canary record
    /// applied to the tracker: saved with the tracker under one lock, so a
    /// restart resumes exactly after what the saved tracker has seen.
    pub(super) offsets: std::collections::BTreeMap<i32, i64>,
    /// The output topic (saved offsets are only valid for it).
    pub(super) topic: String,
}

impl Shared {
    /// A probe's shared accounting: a tracker and a recorder per output of
    /// `outputs` (restored from `ctx.saved` where an earlier run left it;
    /// their resume offsets are filled in), the input side's metrics.
    pub(super) fn build(
        probe: &Probe,
        input_cluster: &str,
        outputs: &mut [OutputSpec<'_>],
        ctx: &Context,
    ) -> Arc<Shared> {
        let Context {
            run,
            metrics,
            readiness,
            journal,
            ..
        } = ctx;
        let run = *run;
        let saved = ctx.saved.iter().find(|s| s.probe == probe.name);
        let now = Instant::now();
        let now_unix_ns = crate::canary::unix_ns(std::time::SystemTime::now());
        let origin = Instant::now();
        let output_states = outputs
            .iter_mut()
            .map(|o| OutputState {
                tracker: {
                    let mut t = Tracker::new(probe.deadline);
                    // An output of the same name reading the same topic
                    // goes on where the saved one stopped.
                    if let Some(so) = saved.and_then(|s| {
                        s.outputs
                            .iter()
                            .find(|so| so.output == o.name && so.topic == o.topic)
                    }) {
                        // Seqs the earlier run may have sent after its last
                        // save: two save intervals' worth.
                        let unsaved = (ctx.save_every * 2)
                            .as_nanos()
                            .div_ceil(probe.interval.as_nanos().max(1))
                            as u64
                            + 1;
                        t.restore(&so.tracker, unsaved, now, now_unix_ns);
                        o.resume = so.offsets.iter().copied().collect();
                    }
                    t
                },
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
                offsets: o.resume.clone(),
                topic: o.topic.clone(),
            })
            .collect();
        Arc::new(Shared {
            name: probe.name.clone(),
            run,
            readiness: readiness.clone(),
            state: Mutex::new(State {
                input: InputState {
                    metrics: metrics.input(
                        &probe.name,
                        input_cluster,
                        probe.input_topic(),
                        availability_output(probe),
                    ),
                    layout: None,
                    per_partition: matches!(probe.kind, ProbeKind::Heartbeat(_)),
                    unacknowledged: Default::default(),
                },
                outputs: output_states,
            }),
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the trackers worse
        // than a lost update; keep probing rather than cascade.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a canary about to be produced; returns its seq.
    pub(super) fn send(&self, partition: i32, now: Instant) -> u64 {
        let mut st = self.lock();
        st.input.metrics.sent.inc();
        // Every tracker sees every send, so they all assign the same seq.
        let mut seq = 0;
        for o in &mut st.outputs {
            seq = o.tracker.on_send(partition, now);
        }
        seq
    }

    /// The delivery report of a canary sent at `sent`.
    pub(super) fn ack(
        &self,
        partition: i32,
        seq: u64,
        sent: Instant,
        result: Result<(), &rdkafka::error::KafkaError>,
    ) {
        // Purged by our own shutdown (any other purge arrives as a fatal
        // error): the canary may well have been written, so it stays
        // unresolved, to be saved and settled by the next run.
        if result.is_err_and(crate::kafka::is_purge) {
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
                rec.apply(out, now, input)
            });
            news |= i == 0 && settled;
        }
        if !news {
            return;
        }
        match result {
            Ok(()) => {
                let leader = input.leader(partition);
                input
                    .metrics
                    .acked(leader, now.saturating_duration_since(sent));
            }
            Err(e) => {
                input.metrics.produce_failed(crate::kafka::classify(e));
                tracing::debug!(probe = %self.name, partition, seq, error = %e, "produce failed");
            }
        }
    }

    /// A consumed record of output `index` (at `at`: its partition and
    /// offset), already classified, with the send time its
    /// `slaprobe-sent-ns` header gives (Unix ns), when it has one.
    pub(super) fn arrival(
        &self,
        index: usize,
        matched: Matched,
        at: (i32, i64),
        sent_ns: Option<u64>,
        now: Instant,
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
                if let Some(sent) = sent_ns {
                    let now_ns = crate::canary::unix_ns(std::time::SystemTime::now());
                    let age = Duration::from_nanos(now_ns.saturating_sub(sent));
                    tracker.unsaved_sent(partition, seq, age, now);
                }
                match tracker.on_arrival(partition, seq, now, &mut |out| rec.apply(out, now, input))
                {
                    // Our run, but an id we never sent: someone forged or
                    // mangled it.
                    Arrival::Unknown => rec.metrics.foreign.inc(),
                    Arrival::AfterFailedProduce => tracing::debug!(
                        probe = %self.name, partition, seq,
                        "canary arrived although its produce was reported failed"
                    ),
                    Arrival::Counted | Arrival::AwaitingAck => {}
                }
            }
            Matched::Foreign(_) => rec.metrics.foreign.inc(),
        }
    }

    /// Gives up the restored canaries of output `index` sent to input
    /// `partition` (all of them with `None`): an output partition could not
    /// be resumed.
    pub(super) fn abandon(&self, index: usize, partition: Option<i32>) {
        let now = Instant::now();
        let mut st = self.lock();
        let State { input, outputs } = &mut *st;
        if let Some(OutputState { tracker, rec, .. }) = outputs.get_mut(index) {
            tracker.abandon(partition, tracker::Abandon::OffsetInvalid, &mut |out| {
                rec.apply(out, now, input)
            });
        }
    }

    pub(super) fn expire(&self, now: Instant, refresh_quantiles: bool) {
        let mut st = self.lock();
        let State { input, outputs } = &mut *st;
        let mut in_flight = 0;
        let mut unacknowledged = 0u64;
        for (i, o) in outputs.iter_mut().enumerate() {
            let OutputState { tracker, rec, .. } = o;
            tracker.expire(now, &mut |out| {
                if i == 0 && matches!(out, Outcome::Unacknowledged { .. }) {
                    unacknowledged += 1;
                }
                rec.apply(out, now, input)
            });
            in_flight = in_flight.max(tracker.in_flight());
            if refresh_quantiles {
                rec.refresh_quantiles(now);
            }
        }
        input.metrics.in_flight.set(in_flight as i64);
        if unacknowledged > 0 {
            for _ in 0..unacknowledged {
                input
                    .metrics
                    .produce_failed(crate::kafka::ProduceError::Timeout);
            }
        }
        if let Some(canaries) = input.unacknowledged.note(unacknowledged, now) {
            warn!(probe = %self.name, canaries, grace = ?tracker::ACK_GRACE,
                "no delivery report by the deadline + grace; counted as failed produces (timeout)");
        }
    }

    /// Output `index`'s foreign-record counter (a handle: incrementing it
    /// needs no lock).
    pub(super) fn foreign_counter(&self, index: usize) -> Option<crate::metrics::IntCounter> {
        self.lock()
            .outputs
            .get(index)
            .map(|o| o.rec.metrics.foreign.clone())
    }

    /// Output `index`'s consume error counters (handles, no lock needed).
    pub(super) fn consume_error_counters(
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
    pub(super) fn assigned(&self, index: usize) -> BTreeSet<i32> {
        self.lock()
            .outputs
            .get(index)
            .map(|o| o.assigned.clone())
            .unwrap_or_default()
    }
}
