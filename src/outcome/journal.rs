//! What the status API shows beyond counters: the last losses of every
//! probe, with ids a person can look up in the pipeline's own logs, and an
//! hour of each output's latency quantiles. Bounded by construction.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// How many recent losses the status API shows.
const RECENT_LOSSES: usize = 50;

/// One lost canary, as the status API shows it: the id lets a person find
/// it in the pipeline's own logs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Loss {
    pub probe: String,
    pub output: String,
    pub id: String,
    /// RFC 3339, when it was declared lost (its send time + the deadline,
    /// within one expiry tick).
    pub declared_at: String,
}

/// How much latency history the status page shows: one point per quantile
/// refresh (5 s) for an hour.
const HISTORY_POINTS: usize = 720;

/// One point of an output's latency history: Unix seconds, and p50 and p99
/// over the last minute (seconds).
pub type LatencyPoint = (u64, f64, f64);

/// What the status API shows beyond counters: the last [`RECENT_LOSSES`]
/// losses of every probe (oldest first) and each output's recent latency.
#[derive(Debug, Default)]
pub struct Journal {
    losses: Mutex<VecDeque<Loss>>,
    /// (probe, output) -> points, oldest first.
    history: Mutex<BTreeMap<(String, String), VecDeque<LatencyPoint>>>,
}

impl Journal {
    pub(crate) fn push_loss(&self, loss: Loss) {
        let mut q = self.losses.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= RECENT_LOSSES {
            q.pop_front();
        }
        q.push_back(loss);
    }

    pub(crate) fn push_latency(&self, probe: &str, output: &str, point: LatencyPoint) {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let q = h
            .entry((probe.to_string(), output.to_string()))
            .or_default();
        if q.len() >= HISTORY_POINTS {
            q.pop_front();
        }
        q.push_back(point);
    }

    pub fn losses(&self) -> Vec<Loss> {
        self.losses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub fn latency(&self, probe: &str, output: &str) -> Vec<LatencyPoint> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(probe.to_string(), output.to_string()))
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }
}
