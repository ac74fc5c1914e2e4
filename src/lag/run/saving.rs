//! The watches kept across a restart (`state_dir`'s [`LAG_FILE`]): what
//! each watch's last read left, written every [`SAVE_EVERY`] and at
//! shutdown, and taken back at start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{monotonic_now, wall_now, Task};
use crate::lag::watch::WatchSaved;
use crate::state::StateDir;

/// The file in `state_dir` that keeps the watches' windows and watermark
/// tables across a restart.
pub const LAG_FILE: &str = "slaprobe.state.lag";

/// How often the watches are saved (and at shutdown).
pub(super) const SAVE_EVERY: Duration = Duration::from_secs(10);

/// A restart within a window's reads and this much more finds the windows
/// as they were; after a longer stop they start over (a window would span
/// the stop).
const RESTART_GRACE: Duration = Duration::from_secs(300);

/// [`LAG_FILE`]'s content.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LagFile {
    pub written_at: u64,
    pub writer: String,
    pub watches: Vec<WatchSaved>,
}

/// Each watch's saved form after its last read, by (probe, cluster).
pub(super) type Saved = Arc<std::sync::Mutex<BTreeMap<(String, String), WatchSaved>>>;

/// Unix seconds minus [`monotonic_now`].
fn wall_minus_clock() -> f64 {
    let clock = monotonic_now();
    wall_now() - clock
}

/// Takes back what [`LAG_FILE`] holds for `tasks`' watches (an unreadable
/// file is logged and ignored: the watches start empty); returns the
/// watches' saved forms as restored.
pub(super) fn restore(
    dir: &StateDir,
    tasks: &mut [Task],
) -> BTreeMap<(String, String), WatchSaved> {
    let file = match dir.load_named::<LagFile>(LAG_FILE) {
        Ok(Some(f)) => f,
        Ok(None) => return BTreeMap::new(),
        Err(e) => {
            warn!(error = %e, "cannot read the consumer groups' saved windows; they start empty");
            return BTreeMap::new();
        }
    };
    let age = crate::util::format::unix_now().saturating_sub(file.written_at);
    let offset = wall_minus_clock();
    let mut restored = 0;
    for t in tasks.iter_mut() {
        let c = &t.watch.config;
        let Some(saved) = file
            .watches
            .iter()
            .find(|s| s.probe == c.probe && s.cluster == c.cluster)
        else {
            continue;
        };
        let span = c.interval * c.window as u32 + RESTART_GRACE;
        t.watch.restore(saved, offset, age <= span.as_secs());
        restored += 1;
    }
    // Saved again as restored until each is read: a stop before the first
    // read keeps it.
    let back: BTreeMap<(String, String), WatchSaved> = tasks
        .iter()
        .map(|t| {
            let c = &t.watch.config;
            ((c.probe.clone(), c.cluster.clone()), t.watch.save(offset))
        })
        .collect();
    info!(
        watches = restored,
        age_seconds = age,
        "restoring consumer groups' windows and watermark tables"
    );
    back
}

/// Writes the watches' last saved forms every [`SAVE_EVERY`] when they
/// changed, and once more when cancelled (off the runtime's threads).
pub(super) async fn save_every(dir: Arc<StateDir>, saved: Saved, cancel: CancellationToken) {
    let mut written: Option<Vec<WatchSaved>> = None;
    let mut ticker = tokio::time::interval(SAVE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = cancel.cancelled() => true,
            _ = ticker.tick() => false,
        };
        let watches: Vec<WatchSaved> = saved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        // Nothing read nor restored yet: the file on disk stays as it is.
        if !watches.is_empty() && written.as_ref() != Some(&watches) {
            let file = LagFile {
                written_at: crate::util::format::unix_now(),
                writer: env!("CARGO_PKG_VERSION").to_string(),
                watches: watches.clone(),
            };
            let d = dir.clone();
            match tokio::task::spawn_blocking(move || d.save_named(LAG_FILE, &file)).await {
                Ok(Ok(())) => written = Some(watches),
                Ok(Err(e)) => warn!(dir = %dir.path().display(), error = %e,
                    "cannot write the consumer groups' windows; a restart now judges them from scratch"),
                Err(e) => warn!(error = %e, "writing the consumer groups' windows failed"),
            }
        }
        if last {
            return;
        }
    }
}
