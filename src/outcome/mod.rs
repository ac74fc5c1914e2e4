//! Outcomes: what became of each canary, and what that does to the
//! metrics.
//!
//! The [`tracker`] (pure, time passed in) turns a probe's sends, delivery
//! reports and arrivals into exactly one outcome per canary and output:
//! delivered, lost, late, duplicate, out of order, a failed produce, or
//! abandoned across a restart. The [`recorder`] turns outcomes into
//! counters, SLI events, latency histograms and HDR windows, and losses
//! into the [`journal`]. A probe's [`accounting`] holds its trackers and
//! recorders behind one lock, shared by the producing and consuming
//! stages; [`readiness`] is what `/readyz` waits for.
//!
//! Files depend on each other in this order only: `tracker`, `journal`,
//! `readiness`, `input` → `recorder` → `accounting`.

mod accounting;
mod input;
pub mod journal;
pub mod readiness;
mod recorder;
pub mod tracker;

pub use accounting::{OutputSaved, OutputStart, Sinks};
pub(crate) use accounting::{ProduceFailure, Shared};
pub use journal::{Journal, LatencyPoint, Loss};
pub use readiness::Readiness;
