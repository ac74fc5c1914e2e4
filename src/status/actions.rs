//! Remediation actions as the status API shows them: what each runs on
//! and what it runs, its runs so far, its open incidents and the last ones
//! that ended, as the actions task left them at its last decision.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

/// The actions task's latest view of every action.
pub type ActionBoard = Arc<RwLock<Vec<ActionView>>>;

/// Where the remediation of each SLO an action covers stands, by SLO
/// name: the SLO evaluator marks (or holds) the burn-rate alerts it pushes
/// as the generated rules do.
pub type SloRemediations = Arc<RwLock<BTreeMap<String, SloRemediation>>>;

/// One SLO's remediation while its action has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SloRemediation {
    /// `attempted` or `failed`.
    pub remediation: &'static str,
    /// The action's `hold`: no alert while attempted.
    pub hold: bool,
    /// The action covers only the page tiers (`severity: page`).
    pub pages_only: bool,
}

/// One action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionView {
    pub action: String,
    /// When it runs, in words.
    pub on: String,
    /// What it runs (secrets redacted).
    pub run: String,
    pub cooldown: String,
    pub escalate_after: String,
    pub hold: bool,
    /// Runs since slaprobe started, by outcome (`ok`, `failed`, `timeout`,
    /// `error`).
    pub runs: Vec<(&'static str, u64)>,
    pub escalations: u64,
    pub incidents: Vec<IncidentView>,
    /// Incidents that ended, the latest first (at most 10).
    pub ended: Vec<IncidentView>,
}

/// One incident of an action: a group while its status holds, or an SLO
/// while its alert fires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentView {
    pub kafka_cluster: String,
    /// Empty for an SLO.
    pub group: String,
    /// Empty for a consumer group.
    pub slo: String,
    /// The group's status that held, or the SLO's firing tier (`page
    /// 1h/5m`), the latest seen.
    pub status: String,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339; `None` while it lasts.
    pub ended: Option<String>,
    /// `pending` (nothing ran yet: `for`, or the cooldown), `attempted`,
    /// `failed` (escalated).
    pub remediation: &'static str,
    /// Runs in this incident.
    pub runs: u32,
    /// RFC 3339, when its last run started.
    pub last_run: Option<String>,
    /// How its last run ended, with its exit or HTTP status and output.
    pub last_outcome: Option<String>,
    /// RFC 3339: a run is held back by the cooldown until then.
    pub held_back_until: Option<String>,
}
