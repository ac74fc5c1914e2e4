//! The read-models people see: what `/api/v1/status` returns and the
//! status page draws, as typed views serialized once per request.
//!
//! The stages that know the numbers publish their views: the SLO
//! evaluator its [`SloView`]s at every tick ([`SloBoard`]), the lag tasks
//! their [`GroupView`]s at every read ([`GroupBoard`]), the actions task
//! its [`ActionView`]s at every decision ([`ActionBoard`]), the connection
//! checks their [`BrokerView`]s at every round ([`BrokerBoard`]); probes' views are
//! read from their metric handles and the journal when asked
//! ([`ProbeView::read`]). [`Sources::report`] assembles them.

mod actions;
mod brokers;
mod groups;
mod probes;
mod slos;

use std::sync::Arc;

use serde::Serialize;

pub use actions::{ActionBoard, ActionView, IncidentView, SloRemediation, SloRemediations};
pub use brokers::{BrokerBoard, BrokerView};
pub use groups::{GroupBoard, GroupView, PartitionView};
pub use probes::{OutputView, ProbeHandles, ProbeView, Quantiles};
pub use slos::{AlertView, SloBoard, SloView, WindowView};

use crate::outcome::{Journal, Loss, Readiness};

/// What `/api/v1/status` returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub version: &'static str,
    /// This run's id (hex), as in canary ids.
    pub run: String,
    pub ready: bool,
    /// What `/readyz` still waits for (`cluster:NAME`, `probe:NAME`).
    pub waiting_for: Vec<String>,
    pub probes: Vec<ProbeView>,
    pub slos: Vec<SloView>,
    /// The last losses, oldest first, with ids to look up in a pipeline's
    /// own logs.
    pub recent_losses: Vec<Loss>,
    /// Consumer groups watched (`lag` probes, pipelines' `lag:`).
    pub consumer_groups: Vec<GroupView>,
    /// Remediation actions (`actions:`) and their incidents.
    pub actions: Vec<ActionView>,
    /// Each broker's last connection check, per listener.
    pub brokers: Vec<BrokerView>,
}

/// Where the status report is read from.
pub struct Sources {
    pub run: String,
    pub readiness: Arc<Readiness>,
    pub probes: Vec<ProbeHandles>,
    pub slos: SloBoard,
    pub journal: Arc<Journal>,
    pub groups: GroupBoard,
    pub actions: ActionBoard,
    pub brokers: BrokerBoard,
}

impl Sources {
    /// The report now.
    pub fn report(&self) -> StatusReport {
        let waiting_for = self.readiness.waiting_for();
        StatusReport {
            version: env!("CARGO_PKG_VERSION"),
            run: self.run.clone(),
            ready: waiting_for.is_empty(),
            waiting_for,
            probes: self
                .probes
                .iter()
                .map(|p| ProbeView::read(p, &self.journal))
                .collect(),
            slos: self.slos.read().unwrap_or_else(|e| e.into_inner()).clone(),
            recent_losses: self.journal.losses(),
            consumer_groups: self
                .groups
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .flatten()
                .cloned()
                .collect(),
            actions: self
                .actions
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            brokers: self
                .brokers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect(),
        }
    }
}
