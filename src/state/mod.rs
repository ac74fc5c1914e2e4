//! Restart-safe accounting: the state file in `state_dir`.
//!
//! One instance owns one `state_dir`: it holds an advisory lock on
//! `slaprobe.lock` (with its pid written inside, so a second instance is
//! refused with a message naming the holder) for as long as it runs.
//!
//! The state is saved after every evaluation (10 s) and at shutdown, in two
//! files so that the disk sees kilobytes, not megabytes, every 10 s:
//! `slaprobe.state` holds everything (written every hour and at shutdown;
//! 100 probes' full windows are ~12 MB) and `slaprobe.state.recent` what
//! changed since (the buckets from the full file's time on, and every
//! tier's alert state). Loading lays the recent file over the full one it
//! names. Each is written atomically (temporary file, fsync, rename, fsync
//! of the directory), so a crash at any instant leaves the old or the new.
//!
//! The file is a header line, `slaprobe-state <version> <checksum>`, then a
//! JSON body. The checksum (FNV-1a 64 of the body) tells a truncated or
//! bit-flipped file from a good one: such a file is moved aside to
//! `slaprobe.state.corrupt-<unix time>` and the run starts empty, never a
//! crash loop. A file from a newer slaprobe is refused (exit 2): starting
//! empty would silently throw away what that version saved.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::canary::RunId;
use crate::probe::{ProbeSaved, ProbeState};
use crate::slo::evaluator::{SloState, Snapshot};
use crate::util::format;

/// The version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The full state file's name in `state_dir`.
pub const STATE_FILE: &str = "slaprobe.state";
/// The name of the file with what changed since the full one.
pub const RECENT_FILE: &str = "slaprobe.state.recent";
/// The name of the file with the run id, canaries in flight and consumer
/// offsets: small, and written every [`INFLIGHT_EVERY`].
pub const INFLIGHT_FILE: &str = "slaprobe.state.inflight";
/// How often the in-flight file is written (and after the last snapshot):
/// after a kill -9, what the killed run sent in at most this long before
/// is unknown to the next one.
pub const INFLIGHT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// How often the full state is written (and at shutdown); the recent file
/// in between.
pub const FULL_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
/// The lock file's name in `state_dir`.
pub const LOCK_FILE: &str = "slaprobe.lock";
const MAGIC: &str = "slaprobe-state";

/// What one run leaves for the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Unix seconds (the evaluator's time) it was taken at.
    pub written_at: u64,
    /// slaprobe's version that wrote it.
    pub writer: String,
    /// For a recent file: the `written_at` of the full file it completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
    /// The run id (hex), which the next run takes over so that canaries in
    /// flight stay its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    pub slos: Vec<SloState>,
    /// Canaries in flight and consumer offsets, per probe.
    #[serde(default)]
    pub probes: Vec<ProbeSaved>,
}

impl State {
    /// This full state completed by `recent` (which names it as its base):
    /// every SLO's windows laid over, tier states and time from `recent`.
    fn overlay(mut self, recent: State) -> State {
        for r in recent.slos {
            match self.slos.iter_mut().find(|s| s.slo == r.slo) {
                Some(s) if s.definition == r.definition => {
                    s.windows = s.windows.overlay(&r.windows);
                }
                Some(s) => *s = r,
                None => self.slos.push(r),
            }
        }
        self.written_at = recent.written_at;
        // Probe state is small and always whole in the recent file.
        self.probes = recent.probes;
        self.run = recent.run.or(self.run);
        self
    }

    /// Only what changed at or after `t`, as a recent file over the full
    /// one written at `base`.
    pub fn since(&self, t: u64, base: u64) -> State {
        State {
            written_at: self.written_at,
            writer: self.writer.clone(),
            base: Some(base),
            run: self.run.clone(),
            probes: self.probes.clone(),
            slos: self
                .slos
                .iter()
                .map(|s| SloState {
                    slo: s.slo.clone(),
                    definition: s.definition.clone(),
                    windows: s.windows.since(t),
                })
                .collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "state_dir {dir}: another slaprobe (pid {pid}) holds {LOCK_FILE}; \
         one state_dir serves one instance"
    )]
    Locked { dir: PathBuf, pid: String },
    #[error(
        "{file} was written by a newer slaprobe (state format {found}; this \
         version reads up to {FORMAT_VERSION}): upgrade, or move the file away to start empty"
    )]
    Newer { file: PathBuf, found: u32 },
    #[error("state_dir {dir}: {what}")]
    Io {
        dir: PathBuf,
        what: &'static str,
        #[source]
        error: io::Error,
    },
}

/// An open, locked `state_dir`.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// Holds the advisory lock until dropped.
    _lock: File,
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The file's bytes for `state`.
pub fn encode(state: &State) -> Vec<u8> {
    // Serializing plain data to memory cannot fail.
    let body = serde_json::to_vec(state).unwrap_or_default();
    let mut out = format!("{MAGIC} {FORMAT_VERSION} {:016x}\n", fnv1a64(&body)).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Why a file's bytes are not a state.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    Ok(Box<State>),
    Newer(u32),
    Corrupt(String),
}

/// Reads a state file's bytes.
pub fn decode(bytes: &[u8]) -> Decoded {
    let Some(nl) = bytes.iter().position(|b| *b == b'\n') else {
        return Decoded::Corrupt("no header line (empty or truncated)".into());
    };
    let header = String::from_utf8_lossy(&bytes[..nl]);
    let body = &bytes[nl + 1..];
    let mut parts = header.split(' ');
    if parts.next() != Some(MAGIC) {
        return Decoded::Corrupt("not a slaprobe state file".into());
    }
    let Some(version) = parts.next().and_then(|v| v.parse::<u32>().ok()) else {
        return Decoded::Corrupt("no format version in the header".into());
    };
    if version > FORMAT_VERSION {
        return Decoded::Newer(version);
    }
    let sum = parts.next().and_then(|c| u64::from_str_radix(c, 16).ok());
    if sum != Some(fnv1a64(body)) {
        return Decoded::Corrupt("checksum mismatch (truncated or damaged)".into());
    }
    match serde_json::from_slice::<State>(body) {
        Ok(s) => Decoded::Ok(Box::new(s)),
        Err(e) => Decoded::Corrupt(format!("unreadable body: {e}")),
    }
}

impl StateDir {
    /// Creates `dir` if needed and takes its lock.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        let io = |what| {
            let dir = dir.to_path_buf();
            move |error| StateError::Io { dir, what, error }
        };
        std::fs::create_dir_all(dir).map_err(io("cannot create it"))?;
        let path = dir.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("cannot open the lock file"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = lock.read_to_string(&mut pid);
                let pid = pid.trim();
                return Err(StateError::Locked {
                    dir: dir.to_path_buf(),
                    pid: if pid.is_empty() {
                        "unknown".into()
                    } else {
                        pid.into()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("cannot lock the lock file")(e)),
        }
        lock.set_len(0).map_err(io("cannot write the lock file"))?;
        writeln!(lock, "{}", std::process::id()).map_err(io("cannot write the lock file"))?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The saved state (the full file with the recent one laid over it):
    /// `None` when there is none, or when it was corrupt (moved aside, with
    /// a warning naming both paths).
    pub fn load(&self) -> Result<Option<State>, StateError> {
        let full = self.read(STATE_FILE)?;
        let recent = self.read(RECENT_FILE)?;
        let inflight = self.read(INFLIGHT_FILE)?;
        let slos = match (full, recent) {
            (Some(f), Some(r)) if r.base == Some(f.written_at) => Some(f.overlay(r)),
            (Some(f), _) => Some(f),
            (None, Some(_)) => {
                warn!(file = %self.dir.join(RECENT_FILE).display(),
                    "a recent state file without its full state file; starting with empty state");
                None
            }
            (None, None) => None,
        };
        // The run id and the canaries come from the in-flight file, always
        // the newest of the three.
        Ok(match (slos, inflight) {
            (Some(mut s), Some(i)) => {
                s.run = i.run;
                s.probes = i.probes;
                Some(s)
            }
            (None, Some(i)) => Some(i),
            (s, None) => s,
        })
    }

    /// One of the two files, decoded; corrupt ones are moved aside.
    fn read(&self, name: &str) -> Result<Option<State>, StateError> {
        let file = self.dir.join(name);
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(StateError::Io {
                    dir: self.dir.clone(),
                    what: "cannot read the state file",
                    error,
                })
            }
        };
        match decode(&bytes) {
            Decoded::Ok(s) => Ok(Some(*s)),
            Decoded::Newer(found) => Err(StateError::Newer { file, found }),
            Decoded::Corrupt(why) => {
                let aside = self
                    .dir
                    .join(format!("{name}.corrupt-{}", format::unix_now()));
                match std::fs::rename(&file, &aside) {
                    Ok(()) => {
                        warn!(file = %file.display(), moved_to = %aside.display(), reason = %why,
                        "the state file is corrupt; moved it aside and starting without it")
                    }
                    Err(e) => warn!(file = %file.display(), reason = %why, error = %e,
                        "the state file is corrupt and cannot be moved aside; starting without it"),
                }
                Ok(None)
            }
        }
    }

    /// Writes `state` atomically, as the recent file when it has a base and
    /// as the full file otherwise: a reader (or the next start) sees the
    /// old file or the new one, never a mix.
    pub fn save(&self, state: &State) -> io::Result<()> {
        let name = if state.base.is_some() {
            RECENT_FILE
        } else {
            STATE_FILE
        };
        self.write(name, state)
    }

    /// Writes the in-flight file (run id, canaries, offsets) atomically.
    pub fn save_inflight(&self, state: &State) -> io::Result<()> {
        self.write(INFLIGHT_FILE, state)
    }

    fn write(&self, name: &str, state: &State) -> io::Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&encode(state))?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(name))?;
        // The rename itself is durable only once the directory is synced.
        File::open(&self.dir)?.sync_all()
    }
}

/// Saves every snapshot the evaluator sends (one per evaluation and a
/// last one at shutdown) until it closes the channel: the full file at the
/// first, every [`FULL_EVERY`] and the last; the recent file otherwise.
/// Every [`INFLIGHT_EVERY`], and once more after the last snapshot, it
/// writes the probes' in-flight state. A failed write is logged and
/// retried with the next; probing goes on.
pub async fn saver(
    dir: std::sync::Arc<StateDir>,
    mut snapshots: tokio::sync::mpsc::Receiver<Snapshot>,
    probes: Vec<ProbeState>,
    run: RunId,
) {
    let mut failing = false;
    // (written_at, when) of the last full file this run wrote.
    let mut base: Option<(u64, std::time::Instant)> = None;
    let mut inflight = tokio::time::interval(INFLIGHT_EVERY);
    inflight.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = |written_at, slos, probes| State {
        written_at,
        writer: env!("CARGO_PKG_VERSION").to_string(),
        base: None,
        run: Some(run.to_string()),
        slos,
        probes,
    };
    loop {
        let (written, is_full) = tokio::select! {
            snap = snapshots.recv() => {
                let Some(snap) = snap else { break };
                let full = state(snap.at, snap.slos, Vec::new());
                let s = match base {
                    Some((at, when)) if !snap.last && when.elapsed() < FULL_EVERY => full.since(at, at),
                    _ => full,
                };
                let is_full = s.base.is_none();
                let d = dir.clone();
                let w = tokio::task::spawn_blocking(move || d.save(&s).map(|()| s.written_at)).await;
                (w, is_full)
            }
            _ = inflight.tick() => {
                let s = state(format::unix_now(), Vec::new(), probes.iter().map(ProbeState::save).collect());
                let d = dir.clone();
                let w = tokio::task::spawn_blocking(move || d.save_inflight(&s).map(|()| s.written_at)).await;
                (w, false)
            }
        };
        match written {
            Ok(Ok(written_at)) => {
                if is_full {
                    base = Some((written_at, std::time::Instant::now()));
                }
                if failing {
                    tracing::info!(dir = %dir.dir.display(), "writing the state file works again");
                }
                failing = false;
            }
            Ok(Err(e)) if !failing => {
                failing = true;
                warn!(dir = %dir.dir.display(), error = %e,
                    "cannot write the state file; a restart now would lose SLO windows, alert state and canaries in flight");
            }
            _ => {}
        }
    }
    // After the last snapshot (the probes have stopped): the final state of
    // every canary.
    let s = state(
        format::unix_now(),
        Vec::new(),
        probes.iter().map(ProbeState::save).collect(),
    );
    let d = dir.clone();
    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || d.save_inflight(&s)).await {
        warn!(dir = %dir.dir.display(), error = %e, "cannot write the in-flight state at shutdown");
    }
}

/// What `slaprobe check` says about `dir`'s state, without locking it (a
/// running instance may hold it).
pub fn describe(dir: &Path) -> String {
    let read = |name: &str| -> Result<Option<Decoded>, String> {
        let file = dir.join(name);
        match std::fs::read(&file) {
            Ok(b) => Ok(Some(decode(&b))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("state file: {} unreadable: {e}", file.display())),
        }
    };
    let file = dir.join(STATE_FILE);
    let (full, recent) = match (read(STATE_FILE), read(RECENT_FILE)) {
        (Ok(f), Ok(r)) => (f, r),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    match (full, recent) {
        (Some(Decoded::Newer(v)), _) | (_, Some(Decoded::Newer(v))) => format!(
            "state file: {} is from a newer slaprobe (format {v}, this one reads up to {FORMAT_VERSION}): run would refuse it",
            file.display()
        ),
        (Some(Decoded::Corrupt(why)), _) => format!(
            "state file: {} is corrupt ({why}): run would move it aside and start empty",
            file.display()
        ),
        (None, _) => format!(
            "state file: {} missing (the first run starts empty)",
            file.display()
        ),
        (Some(Decoded::Ok(f)), recent) => {
            let s = match recent {
                Some(Decoded::Ok(r)) if r.base == Some(f.written_at) => f.overlay(*r),
                _ => *f,
            };
            let age = format::unix_now().saturating_sub(s.written_at);
            let firing = s
                .slos
                .iter()
                .filter(|x| x.windows.tiers.iter().any(|(f, _)| *f))
                .count();
            format!(
                "state file: {}, {} old, by slaprobe {}: {} SLO(s), {firing} with a firing alert",
                file.display(),
                format::duration(std::time::Duration::from_secs(age)),
                s.writer,
                s.slos.len(),
            )
        }
    }
}

#[cfg(test)]
mod tests;
