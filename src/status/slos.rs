//! SLOs as the status API shows them: each SLO's windows (events, error
//! ratio, burn rate), budget and alert tiers, as the evaluator left them
//! at its last tick.

use std::sync::{Arc, RwLock};

use serde::Serialize;

/// The evaluator's latest view of every SLO.
pub type SloBoard = Arc<RwLock<Vec<SloView>>>;

/// One SLO as the status API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloView {
    pub slo: String,
    pub probe: String,
    pub output: String,
    pub sli: String,
    pub objective: f64,
    pub period: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
    pub min_events: u64,
    pub windows: Vec<WindowView>,
    pub budget_remaining: f64,
    pub alerts: Vec<AlertView>,
}

/// One window of an SLO.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowView {
    pub window: &'static str,
    pub good: u64,
    pub total: u64,
    pub error_ratio: Option<f64>,
    pub burn_rate: Option<f64>,
}

/// One burn-rate alert tier of an SLO.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertView {
    pub severity: &'static str,
    pub long_window: &'static str,
    pub short_window: &'static str,
    pub factor: f64,
    pub firing: bool,
    /// RFC 3339, when it last started or stopped firing.
    pub since: Option<String>,
}
