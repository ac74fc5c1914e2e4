use super::*;
use crate::slo::evaluator::SloState;
use crate::slo::{RingSnapshot, WindowsSnapshot};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "slaprobe-state-{name}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn state() -> State {
    State {
        written_at: 1_800_000_000,
        writer: "0.1.0".into(),
        base: None,
        run: Some("00000000000000ff".into()),
        probes: Vec::new(),
        slos: vec![SloState {
            slo: "p:heartbeat:delivery".into(),
            definition: "objective=0.999 period=30d sli=delivery".into(),
            windows: WindowsSnapshot {
                minutes: RingSnapshot {
                    first: 29_999_999,
                    good: vec![590, 600],
                    total: vec![600, 600],
                },
                hours: RingSnapshot {
                    first: 500_000,
                    good: vec![1190],
                    total: vec![1200],
                },
                tiers: vec![
                    (true, Some(1_799_999_000)),
                    (false, None),
                    (false, None),
                    (false, None),
                ],
            },
        }],
    }
}

#[test]
fn a_saved_state_loads_back_equal() {
    let dir = scratch("roundtrip");
    let d = StateDir::open(&dir).expect("open");
    assert_eq!(d.load().expect("load"), None, "nothing saved yet");
    d.save(&state()).expect("save");
    assert_eq!(d.load().expect("load"), Some(state()));
    assert!(!dir.join(format!("{STATE_FILE}.tmp")).exists());
    assert!(
        describe(&dir).contains("1 SLO(s), 1 with a firing alert"),
        "{}",
        describe(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn empty_truncated_and_bit_flipped_files_are_corrupt() {
    let good = encode(&state());
    assert_eq!(decode(&good), Decoded::Ok(Box::new(state())));
    assert!(matches!(decode(b""), Decoded::Corrupt(_)));
    assert!(matches!(
        decode(&good[..good.len() - 7]),
        Decoded::Corrupt(_)
    ));
    assert!(matches!(decode(&good[..20]), Decoded::Corrupt(_)));
    // Every single-bit flip anywhere in the file is noticed.
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x04;
        assert!(
            !matches!(decode(&bad), Decoded::Ok(_)),
            "a flip at byte {i} went unnoticed"
        );
    }
}

#[test]
fn a_corrupt_file_is_moved_aside_and_the_run_starts_empty() {
    let dir = scratch("corrupt");
    let d = StateDir::open(&dir).expect("open");
    let mut bytes = encode(&state());
    bytes.truncate(bytes.len() / 2);
    std::fs::write(d.file(), &bytes).expect("write");
    assert!(describe(&dir).contains("is corrupt"), "{}", describe(&dir));
    assert_eq!(d.load().expect("load"), None);
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
fn a_recent_file_completes_the_full_one_it_names_and_only_that_one() {
    let dir = scratch("recent");
    let d = StateDir::open(&dir).expect("open");
    let full = state();
    d.save(&full).expect("save full");
    // A minute later: the newest minute grew, one more began, the page
    // resolved.
    let mut later = full.clone();
    later.written_at += 60;
    let w = &mut later.slos[0].windows;
    w.minutes.good = vec![590, 650, 100];
    w.minutes.total = vec![600, 660, 100];
    w.tiers[0] = (false, Some(1_800_000_060));
    let recent = later.since(full.written_at, full.written_at);
    assert_eq!(recent.slos[0].windows.minutes.total, vec![660, 100]);
    d.save(&recent).expect("save recent");
    assert!(dir.join(RECENT_FILE).exists());
    assert_eq!(d.load().expect("load"), Some(later.clone()));
    assert!(
        describe(&dir).contains("0 with a firing alert"),
        "{}",
        describe(&dir)
    );
    // A newer full file (say, written at shutdown) makes the recent one
    // stale: it is ignored.
    let mut newest = later;
    newest.written_at += 10;
    d.save(&newest).expect("save full");
    assert_eq!(d.load().expect("load"), Some(newest));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_run_and_the_canaries_come_from_the_in_flight_file() {
    let dir = scratch("inflight");
    let d = StateDir::open(&dir).expect("open");
    d.save(&state()).expect("save full");
    let inflight = State {
        written_at: 1_800_000_005,
        writer: "0.1.0".into(),
        base: None,
        run: Some("00000000000000aa".into()),
        slos: Vec::new(),
        probes: vec![crate::probe::ProbeSaved {
            probe: "p".into(),
            outputs: Vec::new(),
        }],
    };
    d.save_inflight(&inflight).expect("save in-flight");
    let loaded = d.load().expect("load").expect("state");
    assert_eq!(loaded.slos, state().slos, "windows from the full file");
    assert_eq!(loaded.run.as_deref(), Some("00000000000000aa"));
    assert_eq!(loaded.probes, inflight.probes);
    let _ = std::fs::remove_dir_all(&dir);
}
