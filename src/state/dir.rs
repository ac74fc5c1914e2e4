//! The `state_dir` itself: its lock, and reading and writing its files.
//! I/O only; what the files mean is [`super::format`] and
//! [`super::restore`].
//!
//! One instance owns one `state_dir`: it holds an advisory lock on
//! `slaprobe.lock` (with its pid written inside, so a second instance is
//! refused with a message naming the holder) for as long as it runs. Each
//! file is written atomically (temporary file, fsync, rename, fsync of the
//! directory), so a crash at any instant leaves the old or the new. A
//! corrupt file is moved aside to `<name>.corrupt-<unix time>` and the run
//! starts without it, never a crash loop; a file from a newer slaprobe is
//! refused (exit 2): starting empty would silently throw away what that
//! version saved.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::warn;

use super::format::{
    self, Decoded, FullFile, InflightFile, RecentFile, FORMAT_VERSION, INFLIGHT_FILE, RECENT_FILE,
    STATE_FILE,
};
use super::restore::Files;
use crate::util::format as show;

/// The largest state file read (100 probes' full windows are ~12 MB): a
/// larger one is damaged or not ours, and is moved aside unread.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// `path`'s first `limit + 1` bytes at most (one more than `limit` tells
/// a file over it).
fn read_at_most(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The lock file's name in `state_dir`.
pub const LOCK_FILE: &str = "slaprobe.lock";

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

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The full state file's path.
    pub fn file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Every file there is; corrupt ones are moved aside (with a warning
    /// naming both paths) and read as missing.
    pub fn load(&self) -> Result<Files, StateError> {
        Ok(Files {
            full: self.read(STATE_FILE)?,
            recent: self.read(RECENT_FILE)?,
            inflight: self.read(INFLIGHT_FILE)?,
        })
    }

    /// One file, decoded; a corrupt one is moved aside.
    fn read<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StateError> {
        let file = self.dir.join(name);
        let bytes = match read_at_most(&file, MAX_FILE_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(StateError::Io {
                    dir: self.dir.clone(),
                    what: "cannot read a state file",
                    error,
                })
            }
        };
        let decoded = if bytes.len() as u64 > MAX_FILE_BYTES {
            Decoded::Corrupt(format!(
                "larger than {} MiB, far more than any state slaprobe writes",
                MAX_FILE_BYTES >> 20
            ))
        } else {
            format::decode(&bytes)
        };
        match decoded {
            Decoded::Ok(s) => Ok(Some(*s)),
            Decoded::Newer(found) => Err(StateError::Newer { file, found }),
            Decoded::Corrupt(why) => {
                let aside = self
                    .dir
                    .join(format!("{name}.corrupt-{}", show::unix_now()));
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

    pub fn save_full(&self, f: &FullFile) -> io::Result<()> {
        self.write(STATE_FILE, f)
    }

    pub fn save_recent(&self, f: &RecentFile) -> io::Result<()> {
        self.write(RECENT_FILE, f)
    }

    pub fn save_inflight(&self, f: &InflightFile) -> io::Result<()> {
        self.write(INFLIGHT_FILE, f)
    }

    /// File `name` of another part of slaprobe (its own schema, the same
    /// envelope, checks and corrupt-file handling as the state files).
    pub fn load_named<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, StateError> {
        self.read(name)
    }

    /// Writes file `name` of another part of slaprobe, atomically.
    pub fn save_named<T: Serialize>(&self, name: &str, body: &T) -> io::Result<()> {
        self.write(name, body)
    }

    /// Writes `body` as file `name` atomically: a reader (or the next
    /// start) sees the old file or the new one, never a mix.
    fn write<T: Serialize>(&self, name: &str, body: &T) -> io::Result<()> {
        let tmp = self.dir.join(format!("{name}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&format::encode(body))?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(name))?;
        // The rename itself is durable only once the directory is synced.
        File::open(&self.dir)?.sync_all()
    }
}

/// File `name` of `dir`, decoded; `None` when it does not exist.
fn read<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<Decoded<T>>, String> {
    let file = dir.join(name);
    match std::fs::read(&file) {
        Ok(b) => Ok(Some(format::decode(&b))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("state file: {} unreadable: {e}", file.display())),
    }
}

/// The SLO windows `dir` holds (the full file completed by the recent
/// one), read without taking the lock: a running slaprobe may own it.
/// `None` when there is no state yet; an error says what is wrong.
pub fn read_slos(dir: &Path) -> Result<Option<FullFile>, String> {
    let recent = match read::<RecentFile>(dir, RECENT_FILE)? {
        Some(Decoded::Ok(r)) => Some(*r),
        _ => None,
    };
    match read::<FullFile>(dir, STATE_FILE)? {
        None => Ok(None),
        Some(Decoded::Ok(f)) => Ok(Files {
            full: Some(*f),
            recent,
            inflight: None,
        }
        .slos()),
        Some(Decoded::Newer(v)) => Err(format!(
            "state file: {} is from a newer slaprobe (format {v}, this one reads up to {FORMAT_VERSION})",
            dir.join(STATE_FILE).display()
        )),
        Some(Decoded::Corrupt(why)) => Err(format!(
            "state file: {} is corrupt ({why})",
            dir.join(STATE_FILE).display()
        )),
    }
}

/// What `slaprobe check` says about `dir`'s state, without locking it (a
/// running instance may hold it).
pub fn describe(dir: &Path) -> String {
    let file = dir.join(STATE_FILE);
    let (full, recent) = match (
        read::<FullFile>(dir, STATE_FILE),
        read::<RecentFile>(dir, RECENT_FILE),
    ) {
        (Ok(f), Ok(r)) => (f, r),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let newer = match (&full, &recent) {
        (Some(Decoded::Newer(v)), _) | (_, Some(Decoded::Newer(v))) => Some(*v),
        _ => None,
    };
    if let Some(v) = newer {
        return format!(
            "state file: {} is from a newer slaprobe (format {v}, this one reads up to {FORMAT_VERSION}): run would refuse it",
            file.display()
        );
    }
    match full {
        Some(Decoded::Corrupt(why)) => format!(
            "state file: {} is corrupt ({why}): run would move it aside and start empty",
            file.display()
        ),
        Some(Decoded::Newer(_)) | None => format!(
            "state file: {} missing (the first run starts empty)",
            file.display()
        ),
        Some(Decoded::Ok(f)) => {
            let files = Files {
                full: Some(*f),
                recent: match recent {
                    Some(Decoded::Ok(r)) => Some(*r),
                    _ => None,
                },
                inflight: None,
            };
            let Some(s) = files.slos() else {
                return String::new();
            };
            let age = show::unix_now().saturating_sub(s.written_at);
            let firing = s
                .slos
                .iter()
                .filter(|x| x.windows.tiers.iter().any(|(f, _)| *f))
                .count();
            format!(
                "state file: {}, {} old, by slaprobe {}: {} SLO(s), {firing} with a firing alert",
                file.display(),
                show::duration(std::time::Duration::from_secs(age)),
                s.writer,
                s.slos.len(),
            )
        }
    }
}
