//! Restart-safe accounting: what one run leaves in `state_dir` for the
//! next, and how the next starts from it.
//!
//! - [`format`]: the versioned schema (one struct per file) and its
//!   checksummed encoding; pure.
//! - [`restore`]: the saved files laid over this run's configuration:
//!   trackers, resume offsets, SLO windows and the run id; pure, time
//!   passed in.
//! - [`dir`]: the locked `state_dir` and its atomic file writes (I/O only).
//! - [`saver`]: the task that writes the files while slaprobe runs: the
//!   in-flight file (run id, canaries, offsets) every second, the recent
//!   file (SLO windows changed since the full file) every 10 s, the full
//!   file every hour and at shutdown.

pub mod dir;
pub mod format;
pub mod restore;
mod saver;

pub use dir::{describe, read_slos, StateDir, StateError, LOCK_FILE};
pub use format::{FORMAT_VERSION, INFLIGHT_FILE, RECENT_FILE, STATE_FILE};
pub use restore::{restore, Files, Now, Restored, INFLIGHT_EVERY};
pub(crate) use saver::saver;
pub use saver::FULL_EVERY;

#[cfg(test)]
mod tests;
