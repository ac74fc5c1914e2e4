//! The connection checks' last results, as the status API shows them.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

/// Each (cluster, listener, broker)'s last check, written by the checks
/// after each round.
pub type BrokerBoard = Arc<RwLock<BTreeMap<(String, String, String), BrokerView>>>;

/// One broker on one listener.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokerView {
    pub kafka_cluster: String,
    pub listener: String,
    /// The broker's id, or `bootstrap` while none is known.
    pub broker: String,
    /// `host:port` the listener advertises (`None`: the bootstrap).
    pub address: Option<String>,
    pub rack: Option<String>,
    /// The last check passed every stage.
    pub up: bool,
    /// When it ran (Unix seconds).
    pub checked_at: u64,
    /// The stages that completed and how long each took (seconds).
    pub stages: Vec<(&'static str, f64)>,
    /// The stage that failed, its error class and message.
    pub failed: Option<(&'static str, &'static str, String)>,
    /// When the broker's certificate expires (Unix seconds).
    pub certificate_expiry: Option<i64>,
    /// It expires within `alerts.certificate_expiry_warning` (or has).
    pub certificate_expiring: bool,
}
