//! The `state_dir` on disk: locking, atomic writes, corrupt and newer
//! files. The schema and its encoding are tested in `format`, restoring in
//! `restore`.

use std::path::PathBuf;

use super::format::tests::{full, inflight};
use super::format::{encode, RecentFile};
use super::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "slaprobe-state-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn saved_files_load_back_equal() {
    let dir = scratch("roundtrip");
    let d = StateDir::open(&dir).expect("open");
    assert_eq!(
        d.load().expect("load"),
        Files::default(),
        "nothing saved yet"
    );
    d.save_full(&full()).expect("save");
    d.save_inflight(&inflight()).expect("save");
    let loaded = d.load().expect("load");
    assert_eq!(loaded.full, Some(full()));
    assert_eq!(loaded.inflight, Some(inflight()));
    assert!(!dir.join(format!("{STATE_FILE}.tmp")).exists());
    assert!(
        describe(&dir).contains("1 SLO(s), 1 with a firing alert"),
        "{}",
        describe(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_file_is_moved_aside_and_the_run_starts_without_it() {
    let dir = scratch("corrupt");
    let d = StateDir::open(&dir).expect("open");
    let mut bytes = encode(&full());
    bytes.truncate(bytes.len() / 2);
    std::fs::write(d.file(), &bytes).expect("write");
    assert!(describe(&dir).contains("is corrupt"), "{}", describe(&dir));
    assert_eq!(d.load().expect("load").full, None);
    assert!(!d.file().exists());
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{STATE_FILE}.corrupt-"))
        })
        .collect();
    assert_eq!(aside.len(), 1, "kept for a post-mortem");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_from_a_newer_slaprobe_is_refused_naming_both_versions() {
    let dir = scratch("newer");
    let d = StateDir::open(&dir).expect("open");
    std::fs::write(d.file(), b"slaprobe-state 7 0000000000000000\n{}").expect("write");
    let e = d.load().expect_err("refused").to_string();
    assert!(
        e.contains("state format 7") && e.contains(&format!("up to {FORMAT_VERSION}")),
        "{e}"
    );
    assert!(e.contains(&d.file().display().to_string()), "{e}");
    assert!(d.file().exists(), "left alone");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_instance_on_one_state_dir_is_refused_with_the_holders_pid() {
    let dir = scratch("lock");
    let first = StateDir::open(&dir).expect("open");
    let e = StateDir::open(&dir).expect_err("locked").to_string();
    assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
    drop(first);
    StateDir::open(&dir).expect("free again once the holder is gone");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_describes_the_full_file_with_the_recent_one_laid_over() {
    let dir = scratch("recent");
    let d = StateDir::open(&dir).expect("open");
    let full = full();
    d.save_full(&full).expect("save full");
    let mut later = full.clone();
    later.written_at += 60;
    later.slos[0].windows.tiers[0] = (false, Some(1_800_000_060));
    let recent: RecentFile = later.since(full.written_at);
    d.save_recent(&recent).expect("save recent");
    assert!(dir.join(RECENT_FILE).exists());
    assert_eq!(d.load().expect("load").slos(), Some(later));
    assert!(
        describe(&dir).contains("0 with a firing alert"),
        "{}",
        describe(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits (in real time, at most 10 s) until `cond` holds, letting the
/// paused runtime run meanwhile.
async fn until(mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cond()
}

/// The saver with tokio's clock paused: the in-flight file every second,
/// the full file at the first snapshot, then the recent file over it, a
/// full file again an hour later and at the last snapshot, and the
/// in-flight file once more when the evaluator is gone.
#[tokio::test(start_paused = true)]
async fn the_saver_writes_each_file_when_it_is_due() {
    use crate::slo::evaluator::Snapshot;
    use std::sync::Arc;
    use std::time::Duration;

    let dir = scratch("saver");
    let d = Arc::new(StateDir::open(&dir).expect("open"));
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let task = tokio::spawn(saver(d.clone(), rx, Vec::new(), crate::canary::RunId(0xab)));
    let load = || d.load().expect("load");
    assert!(
        until(|| load().inflight.is_some_and(|f| f.run == "00000000000000ab")).await,
        "the in-flight file comes first"
    );
    let snapshot = |at, last| Snapshot {
        at,
        slos: full().slos,
        last,
    };
    tx.send(snapshot(1_800_000_000, false)).await.expect("send");
    assert!(until(|| load().full.is_some_and(|f| f.written_at == 1_800_000_000)).await);
    tx.send(snapshot(1_800_000_010, false)).await.expect("send");
    assert!(
        until(|| load()
            .recent
            .is_some_and(|r| (r.base, r.written_at) == (1_800_000_000, 1_800_000_010)))
        .await,
        "then the recent file over it"
    );
    assert_eq!(load().full.map(|f| f.written_at), Some(1_800_000_000));
    tokio::time::advance(FULL_EVERY + Duration::from_secs(1)).await;
    tx.send(snapshot(1_800_003_611, false)).await.expect("send");
    assert!(
        until(|| load().full.is_some_and(|f| f.written_at == 1_800_003_611)).await,
        "a full file again an hour later"
    );
    tx.send(snapshot(1_800_003_621, true)).await.expect("send");
    assert!(
        until(|| load().full.is_some_and(|f| f.written_at == 1_800_003_621)).await,
        "the last snapshot is a full file"
    );
    let _ = std::fs::remove_file(dir.join(INFLIGHT_FILE));
    drop(tx);
    task.await.expect("saver ends with the evaluator");
    assert!(
        load().inflight.is_some(),
        "in-flight state written at the end"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file over the size bound is moved aside unread, with the reason.
#[test]
fn an_oversized_file_is_moved_aside_unread() {
    let dir = scratch("oversized");
    let d = StateDir::open(&dir).expect("open");
    let f = std::fs::File::create(d.file()).expect("create");
    f.set_len(super::dir::MAX_FILE_BYTES + 1).expect("grow");
    assert_eq!(d.load().expect("load").full, None);
    assert!(!d.file().exists(), "moved aside");
    let _ = std::fs::remove_dir_all(&dir);
}
