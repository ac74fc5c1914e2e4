//! Turns one output's outcomes into metrics, by what the output expects:
//! deliveries, losses and repeats become outcome counters, SLI events and
//! latency observations; losses also go to the journal.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::input::InputState;
use super::journal::{Journal, Loss};
use super::readiness::Readiness;
use super::tracker::{Abandon, Outcome};
use crate::canary::{CanaryId, RunId};
use crate::config::Expect;
use crate::metrics::latency::{LatencyWindow, WINDOWS};
use crate::metrics::IntCounter;
use crate::metrics::OutputMetrics;
use crate::util::format;

/// The input partition of an outcome's canary, and its seq where the
/// outcome carries it.
fn canary(outcome: Outcome) -> (i32, Option<u64>) {
    match outcome {
        Outcome::Delivered { partition, .. }
        | Outcome::DeliveredUntimed { partition, .. }
        | Outcome::Late { partition }
        | Outcome::Duplicate { partition }
        | Outcome::LateOrDuplicate { partition } => (partition, None),
        Outcome::Lost { partition, seq }
        | Outcome::Unacknowledged { partition, seq }
        | Outcome::FailedButArrived { partition, seq }
        | Outcome::Abandoned { partition, seq, .. } => (partition, Some(seq)),
    }
}

/// Turns one output's outcomes into metrics, by what the output expects.
pub(super) struct Recorder {
    pub(super) probe: String,
    pub(super) output: String,
    pub(super) run: RunId,
    pub(super) journal: Arc<Journal>,
    pub(super) expect: Expect,
    pub(super) metrics: OutputMetrics,
    pub(super) window: LatencyWindow,
    pub(super) readiness: Arc<Readiness>,
    /// Per reason, every reason present (at 0).
    pub(super) abandoned: Vec<(Abandon, IntCounter)>,
}

/// The target of the per-canary log lines: `RUST_LOG=slaprobe::canary=debug`
/// logs one line per outcome, with the canary's id (an audit trail, and
/// what the chaos run compares with its independent truth).
pub(super) const CANARY_TARGET: &str = "slaprobe::canary";

impl Recorder {
    /// Logs what became of canary `partition`/`seq` at this output (only
    /// when `slaprobe::canary` is enabled at debug).
    pub(super) fn trace(
        &self,
        what: &str,
        partition: i32,
        seq: u64,
        detail: &dyn std::fmt::Display,
    ) {
        if tracing::enabled!(target: CANARY_TARGET, tracing::Level::DEBUG) {
            let id = CanaryId {
                probe: &self.probe,
                run: self.run,
                partition,
                seq,
            };
            tracing::debug!(target: CANARY_TARGET, probe = %self.probe, output = %self.output,
                %id, outcome = what, "{detail}");
        }
    }

    /// [`Recorder::trace`] for `outcome` of the canary with `seq` (the
    /// outcome's own seq where it carries one).
    pub(super) fn trace_outcome(&self, outcome: Outcome, seq: u64) {
        let delivered = |out_of_order| {
            if out_of_order {
                "delivered_out_of_order"
            } else {
                "delivered"
            }
        };
        if !tracing::enabled!(target: CANARY_TARGET, tracing::Level::DEBUG) {
            return;
        }
        match outcome {
            Outcome::Delivered {
                partition,
                latency,
                out_of_order,
            } => self.trace(
                delivered(out_of_order),
                partition,
                seq,
                &format_args!("latency {latency:?}"),
            ),
            Outcome::DeliveredUntimed {
                partition,
                out_of_order,
            } => self.trace(
                delivered(out_of_order),
                partition,
                seq,
                &"latency unknown (read while catching up)",
            ),
            Outcome::Lost { partition, seq } => self.trace("lost", partition, seq, &""),
            Outcome::Late { partition } => self.trace("late", partition, seq, &""),
            Outcome::Duplicate { partition } => self.trace("duplicate", partition, seq, &""),
            Outcome::LateOrDuplicate { partition } => {
                self.trace("late_or_duplicate", partition, seq, &"")
            }
            Outcome::Unacknowledged { partition, seq } => {
                self.trace("unacknowledged", partition, seq, &"")
            }
            Outcome::FailedButArrived { partition, seq } => {
                self.trace("failed_but_arrived", partition, seq, &"")
            }
            Outcome::Abandoned {
                partition,
                seq,
                reason,
            } => self.trace("abandoned", partition, seq, &reason.label()),
        }
    }

    /// Counts `outcome` of canary `seq` (the outcome's own seq where it
    /// carries one), labelled on heartbeats by the leader it was sent to.
    pub(super) fn apply(
        &mut self,
        outcome: Outcome,
        seq: u64,
        now: Instant,
        input: &mut InputState,
    ) {
        let (partition, own_seq) = canary(outcome);
        let broker = input.sent_to(partition, own_seq.unwrap_or(seq));
        let m = &mut self.metrics;
        match (self.expect, outcome) {
            // A filter must drop the canary: its arrival is the failure, its
            // absence by the deadline the success.
            (Expect::None, Outcome::Delivered { .. } | Outcome::DeliveredUntimed { .. }) => {
                m.outcome(broker).delivered.inc();
                m.delivery_event(broker, false);
            }
            (Expect::None, Outcome::Lost { .. }) => {
                m.delivery_event(broker, true);
                self.readiness.probe_matched(&self.probe);
            }
            // It leaked after all, only slowly: still a leak.
            (Expect::None, Outcome::Late { .. }) => {
                m.outcome(broker).late.inc();
                m.delivery_event(broker, false);
            }
            (
                _,
                Outcome::Delivered {
                    partition,
                    latency,
                    out_of_order,
                },
            ) => {
                m.delivered(broker, latency, out_of_order);
                self.window.record(latency, now);
                if input.per_partition {
                    let leader = input.leader(partition);
                    input.metrics.partition_delivered(partition, leader);
                }
                self.readiness.probe_matched(&self.probe);
            }
            (
                _,
                Outcome::DeliveredUntimed {
                    partition,
                    out_of_order,
                },
            ) => {
                m.delivered_untimed(broker, out_of_order);
                if input.per_partition {
                    let leader = input.leader(partition);
                    input.metrics.partition_delivered(partition, leader);
                }
                self.readiness.probe_matched(&self.probe);
            }
            (_, Outcome::Lost { partition, seq }) => {
                m.lost(broker);
                self.journal.push_loss(Loss {
                    probe: self.probe.clone(),
                    output: self.output.clone(),
                    id: CanaryId {
                        probe: &self.probe,
                        run: self.run,
                        partition,
                        seq,
                    }
                    .to_string(),
                    declared_at: format::rfc3339_millis_at(SystemTime::now()),
                });
            }
            (_, Outcome::Late { .. }) => {
                m.outcome(broker).late.inc();
            }
            // Exactly-once outputs: a repeat is a delivery error too.
            (Expect::ExactlyOnce, Outcome::Duplicate { .. }) => {
                m.outcome(broker).duplicate.inc();
                m.delivery_event(broker, false);
            }
            (_, Outcome::Duplicate { .. }) => {
                m.outcome(broker).duplicate.inc();
            }
            (_, Outcome::LateOrDuplicate { .. }) => m.late_or_duplicate.inc(),
            // A produce failure: the input side counts it (once per canary,
            // not per output).
            (_, Outcome::Unacknowledged { .. }) => {}
            (_, Outcome::FailedButArrived { .. }) => m.failed_but_arrived.inc(),
            (_, Outcome::Abandoned { reason, .. }) => {
                if let Some((_, c)) = self.abandoned.iter().find(|(r, _)| *r == reason) {
                    c.inc();
                }
            }
        }
    }

    pub(super) fn refresh_quantiles(&mut self, now: Instant) {
        for (w, (_, length)) in WINDOWS.iter().enumerate() {
            let values = self.window.quantiles(*length, now);
            if let (0, Some(v)) = (w, values) {
                let unix = format::unix_now();
                self.journal
                    .push_latency(&self.probe, &self.output, (unix, v[0], v[2]));
            }
            // Empty for outputs without latency (`expect: none`).
            for (q, gauge) in self.metrics.quantiles[w].iter().enumerate() {
                // No data in the window: NaN, which Prometheus shows as a gap
                // rather than a misleading zero.
                gauge.set(values.map_or(f64::NAN, |v| v[q]));
            }
        }
    }
}
