//! A probe's canary accounting as saved across restarts (`state_dir`): per
//! output, the tracker's unresolved canaries and where its consumer was,
//! taken under the probe's lock so that the two agree.

use std::sync::Arc;
use std::time::Instant;

use super::{tracker, Shared};

/// One probe's canary accounting across a restart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProbeSaved {
    pub probe: String,
    pub outputs: Vec<OutputSaved>,
}

/// One output's tracker and where its consumer was.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutputSaved {
    pub output: String,
    pub topic: String,
    /// (partition, next offset to read).
    pub offsets: Vec<(i32, i64)>,
    pub tracker: tracker::TrackerSnapshot,
}

/// A handle on a running probe's accounting, for the state saver.
#[derive(Clone)]
pub struct ProbeState(pub(super) Arc<Shared>);

impl ProbeState {
    /// The probe's trackers and offsets, consistent with each other.
    pub fn save(&self) -> ProbeSaved {
        let now = Instant::now();
        let now_unix_ns = crate::canary::unix_ns(std::time::SystemTime::now());
        let st = self.0.lock();
        ProbeSaved {
            probe: self.0.name.clone(),
            outputs: st
                .outputs
                .iter()
                .map(|o| OutputSaved {
                    output: o.rec.output.clone(),
                    topic: o.topic.clone(),
                    offsets: o.offsets.iter().map(|(p, off)| (*p, *off)).collect(),
                    tracker: o.tracker.snapshot(now, now_unix_ns),
                })
                .collect(),
        }
    }
}
