//! The task that keeps `state_dir` up to date while slaprobe runs.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

use super::dir::StateDir;
use super::format::{FullFile, InflightFile, ProbeSaved};
use super::restore::{Now, INFLIGHT_EVERY};
use crate::canary::RunId;
use crate::outcome::Shared;
use crate::slo::evaluator::Snapshot;
use crate::util::format::unix_now;

/// How often the full state is written (and at shutdown); the recent file
/// in between.
pub const FULL_EVERY: Duration = Duration::from_secs(3600);

const WRITER: &str = env!("CARGO_PKG_VERSION");

/// Saves every snapshot the evaluator sends (one per evaluation and a
/// last one at shutdown) until it closes the channel: the full file at the
/// first, every [`FULL_EVERY`] and the last; the recent file otherwise.
/// Every [`INFLIGHT_EVERY`], and once more after the last snapshot, it
/// writes the probes' in-flight state. A failed write is logged and
/// retried with the next; probing goes on.
pub(crate) async fn saver(
    dir: Arc<StateDir>,
    mut snapshots: tokio::sync::mpsc::Receiver<Snapshot>,
    probes: Vec<Arc<Shared>>,
    run: RunId,
) {
    let mut failing = false;
    // (written_at, when) of the last full file this run wrote (tokio's
    // clock, so that tests can run an hour in an instant).
    let mut base: Option<(u64, Instant)> = None;
    let mut inflight = tokio::time::interval(INFLIGHT_EVERY);
    inflight.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let d = dir.clone();
        let (written, full_at) = tokio::select! {
            snap = snapshots.recv() => {
                let Some(snap) = snap else { break };
                let full = FullFile {
                    written_at: snap.at,
                    writer: WRITER.to_string(),
                    slos: snap.slos,
                };
                match base {
                    Some((at, when)) if !snap.last && when.elapsed() < FULL_EVERY => {
                        let recent = full.since(at);
                        (tokio::task::spawn_blocking(move || d.save_recent(&recent)).await, None)
                    }
                    _ => {
                        let at = full.written_at;
                        (tokio::task::spawn_blocking(move || d.save_full(&full)).await, Some(at))
                    }
                }
            }
            _ = inflight.tick() => {
                let f = inflight_file(&probes, run);
                (tokio::task::spawn_blocking(move || d.save_inflight(&f)).await, None)
            }
        };
        match written {
            Ok(Ok(())) => {
                if let Some(at) = full_at {
                    base = Some((at, Instant::now()));
                }
                if failing {
                    tracing::info!(dir = %dir.path().display(), "writing the state file works again");
                }
                failing = false;
            }
            Ok(Err(e)) if !failing => {
                failing = true;
                warn!(dir = %dir.path().display(), error = %e,
                    "cannot write the state file; a restart now would lose SLO windows, alert state and canaries in flight");
            }
            _ => {}
        }
    }
    // After the last snapshot (the probes have stopped): the final state of
    // every canary.
    let f = inflight_file(&probes, run);
    let d = dir.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || d.save_inflight(&f)).await {
        warn!(dir = %dir.path().display(), error = %e, "cannot write the in-flight state at shutdown");
    }
}

/// The probes' trackers and offsets now.
fn inflight_file(probes: &[Arc<Shared>], run: RunId) -> InflightFile {
    let now = Now::read();
    InflightFile {
        written_at: unix_now(),
        writer: WRITER.to_string(),
        run: run.to_string(),
        probes: probes
            .iter()
            .map(|s| ProbeSaved {
                probe: s.name.clone(),
                outputs: s.save(now.instant, now.unix_ns),
            })
            .collect(),
    }
}
