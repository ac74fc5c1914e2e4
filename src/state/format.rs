//! The versioned schema of the files in `state_dir`, one struct per file,
//! and their encoding. Pure: bytes in, values out.
//!
//! - `slaprobe.state` ([`FullFile`]): every SLO's windows and alert state;
//!   written every hour and at shutdown (100 probes' full windows are
//!   ~12 MB).
//! - `slaprobe.state.recent` ([`RecentFile`]): what changed since the full
//!   file it names (the buckets from its time on, every tier's state),
//!   every 10 s, so that the disk sees kilobytes, not megabytes.
//! - `slaprobe.state.inflight` ([`InflightFile`]): the run id, canaries in
//!   flight and consumer offsets, every second.
//!
//! Each file is a header line, `slaprobe-state <version> <checksum>`, then
//! a JSON body. The checksum (FNV-1a 64 of the body) tells a truncated or
//! bit-flipped file from a good one. The bodies embed the pure cores' own
//! saved forms ([`crate::slo::WindowsSnapshot`],
//! [`crate::outcome::tracker::TrackerSnapshot`]); `tests::the_schema_is_pinned`
//! pins the serialized shape of all of it, so that any change to it is a
//! decision about [`FORMAT_VERSION`], not an accident.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::outcome::OutputSaved;
use crate::slo::evaluator::SloState;

/// The version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The full state file's name in `state_dir`.
pub const STATE_FILE: &str = "slaprobe.state";
/// The name of the file with what changed since the full one.
pub const RECENT_FILE: &str = "slaprobe.state.recent";
/// The name of the file with the run id, canaries in flight and consumer
/// offsets.
pub const INFLIGHT_FILE: &str = "slaprobe.state.inflight";
const MAGIC: &str = "slaprobe-state";

/// `slaprobe.state`: every SLO's windows and alert state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FullFile {
    /// Unix seconds (the evaluator's time) it was taken at.
    pub written_at: u64,
    /// slaprobe's version that wrote it.
    pub writer: String,
    pub slos: Vec<SloState>,
}

/// `slaprobe.state.recent`: what changed since the full file written at
/// `base`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentFile {
    pub written_at: u64,
    pub writer: String,
    /// The `written_at` of the full file it completes: over any other, it
    /// is stale and ignored.
    pub base: u64,
    /// Each SLO's buckets from `base` on and its tiers' state.
    pub slos: Vec<SloState>,
}

/// `slaprobe.state.inflight`: what the next run needs to go on with the
/// canaries this one sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InflightFile {
    pub written_at: u64,
    pub writer: String,
    /// The run id (hex), which the next run takes over so that canaries in
    /// flight stay its own.
    pub run: String,
    /// Canaries in flight and consumer offsets, per probe.
    pub probes: Vec<ProbeSaved>,
}

/// One probe's canary accounting across a restart, per output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSaved {
    pub probe: String,
    pub outputs: Vec<OutputSaved>,
}

impl FullFile {
    /// This full file completed by `recent`, when `recent` names it as its
    /// base: every SLO's windows laid over, tier states and time from
    /// `recent`. Otherwise (a stale recent file) unchanged.
    pub fn overlay(mut self, recent: RecentFile) -> FullFile {
        if recent.base != self.written_at {
            return self;
        }
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
        self
    }

    /// This (newer) state as a recent file over the full file written at
    /// `base`: only the buckets from `base` on, and every tier's state.
    pub fn since(&self, base: u64) -> RecentFile {
        RecentFile {
            written_at: self.written_at,
            writer: self.writer.clone(),
            base,
            slos: self
                .slos
                .iter()
                .map(|s| SloState {
                    slo: s.slo.clone(),
                    definition: s.definition.clone(),
                    windows: s.windows.since(base),
                })
                .collect(),
        }
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A file's bytes for `body`.
pub fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    // Serializing plain data to memory cannot fail.
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mut out = format!("{MAGIC} {FORMAT_VERSION} {:016x}\n", fnv1a64(&body)).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// What a file's bytes are.
#[derive(Debug, PartialEq)]
pub enum Decoded<T> {
    Ok(Box<T>),
    /// Written by a newer slaprobe, in this format version.
    Newer(u32),
    /// Not a state file of ours, or damaged: why.
    Corrupt(String),
}

/// Reads a state file's bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Decoded<T> {
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
    match serde_json::from_slice::<T>(body) {
        Ok(s) => Decoded::Ok(Box::new(s)),
        Err(e) => Decoded::Corrupt(format!("unreadable body: {e}")),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::outcome::tracker::{ResolvedRun, SavedCanary, SavedResolved, TrackerSnapshot};
    use crate::slo::{RingSnapshot, WindowsSnapshot};

    pub(in crate::state) fn full() -> FullFile {
        FullFile {
            written_at: 1_800_000_000,
            writer: "0.1.0".into(),
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

    pub(in crate::state) fn inflight() -> InflightFile {
        InflightFile {
            written_at: 1_800_000_005,
            writer: "0.1.0".into(),
            run: "00000000000000aa".into(),
            probes: vec![ProbeSaved {
                probe: "p".into(),
                outputs: vec![saved_output("heartbeat", "t")],
            }],
        }
    }

    /// An output that read `topic` up to offset 42 of partition 0, with one
    /// acked canary (seq 6) in flight.
    pub(in crate::state) fn saved_output(output: &str, topic: &str) -> OutputSaved {
        OutputSaved {
            output: output.into(),
            topic: topic.into(),
            offsets: vec![(0, 42)],
            tracker: TrackerSnapshot {
                next_seq: vec![(0, 7)],
                unresolved: vec![SavedCanary {
                    partition: 0,
                    seq: 6,
                    sent_unix_ns: 1_800_000_004_000_000_000,
                    acked: true,
                }],
                ..TrackerSnapshot::default()
            },
        }
    }

    /// The bytes of every file kind, pinned: a change to any struct a file
    /// embeds changes them, and must come with a decision on
    /// [`FORMAT_VERSION`] (and a way to read the old files).
    #[test]
    fn the_schema_is_pinned() {
        let body = |b: Vec<u8>| {
            let nl = b.iter().position(|c| *c == b'\n').expect("header");
            String::from_utf8(b[nl + 1..].to_vec()).expect("utf-8")
        };
        assert_eq!(
            body(encode(&full())),
            r#"{"written_at":1800000000,"writer":"0.1.0","slos":[{"slo":"p:heartbeat:delivery","definition":"objective=0.999 period=30d sli=delivery","windows":{"minutes":{"first":29999999,"good":[590,600],"total":[600,600]},"hours":{"first":500000,"good":[1190],"total":[1200]},"tiers":[[true,1799999000],[false,null],[false,null],[false,null]]}}]}"#
        );
        assert_eq!(
            body(encode(&full().since(1_800_000_000))),
            r#"{"written_at":1800000000,"writer":"0.1.0","base":1800000000,"slos":[{"slo":"p:heartbeat:delivery","definition":"objective=0.999 period=30d sli=delivery","windows":{"minutes":{"first":30000000,"good":[600],"total":[600]},"hours":{"first":500000,"good":[1190],"total":[1200]},"tiers":[[true,1799999000],[false,null],[false,null],[false,null]]}}]}"#
        );
        assert_eq!(
            body(encode(&inflight())),
            r#"{"written_at":1800000005,"writer":"0.1.0","run":"00000000000000aa","probes":[{"probe":"p","outputs":[{"output":"heartbeat","topic":"t","offsets":[[0,42]],"tracker":{"next_seq":[[0,7]],"unresolved":[{"partition":0,"seq":6,"sent_unix_ns":1800000004000000000,"acked":true}]}}]}]}"#
        );
        // The fields added within version 1, when there is something in
        // them.
        let mut tracker = saved_output("heartbeat", "t").tracker;
        tracker.resolved = vec![ResolvedRun {
            partition: 0,
            first: 2,
            count: 3,
            outcome: SavedResolved::Lost,
        }];
        tracker.floor = vec![(0, 1)];
        tracker.forgotten = vec![(0, 2)];
        assert_eq!(
            serde_json::to_string(&tracker).expect("json"),
            r#"{"next_seq":[[0,7]],"unresolved":[{"partition":0,"seq":6,"sent_unix_ns":1800000004000000000,"acked":true}],"resolved":[{"partition":0,"first":2,"count":3,"outcome":"lost"}],"floor":[[0,1]],"forgotten":[[0,2]]}"#
        );
    }

    /// Files written before the three kinds had a struct each (one struct
    /// for all, its other fields empty) still read.
    #[test]
    fn files_of_the_single_struct_era_still_read() {
        let old_full = br#"{"written_at":1800000000,"writer":"0.1.0","run":"00000000000000ff","slos":[],"probes":[]}"#;
        let old_inflight = br#"{"written_at":1800000005,"writer":"0.1.0","run":"00000000000000aa","slos":[],"probes":[]}"#;
        let with_header = |body: &[u8]| {
            let mut b = format!("{MAGIC} 1 {:016x}\n", fnv1a64(body)).into_bytes();
            b.extend_from_slice(body);
            b
        };
        assert!(matches!(
            decode::<FullFile>(&with_header(old_full)),
            Decoded::Ok(_)
        ));
        match decode::<InflightFile>(&with_header(old_inflight)) {
            Decoded::Ok(f) => assert_eq!(f.run, "00000000000000aa"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_truncated_and_bit_flipped_files_are_corrupt() {
        let good = encode(&full());
        assert_eq!(decode::<FullFile>(&good), Decoded::Ok(Box::new(full())));
        assert!(matches!(decode::<FullFile>(b""), Decoded::Corrupt(_)));
        assert!(matches!(
            decode::<FullFile>(&good[..good.len() - 7]),
            Decoded::Corrupt(_)
        ));
        assert!(matches!(
            decode::<FullFile>(&good[..20]),
            Decoded::Corrupt(_)
        ));
        // Every single-bit flip anywhere in the file is noticed.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x04;
            assert!(
                !matches!(decode::<FullFile>(&bad), Decoded::Ok(_)),
                "a flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn a_recent_file_completes_the_full_one_it_names_and_only_that_one() {
        let full = full();
        // A minute later: the newest minute grew, one more began, the page
        // resolved.
        let mut later = full.clone();
        later.written_at += 60;
        let w = &mut later.slos[0].windows;
        w.minutes.good = vec![590, 650, 100];
        w.minutes.total = vec![600, 660, 100];
        w.tiers[0] = (false, Some(1_800_000_060));
        let recent = later.since(full.written_at);
        assert_eq!(recent.slos[0].windows.minutes.total, vec![660, 100]);
        assert_eq!(full.clone().overlay(recent.clone()), later);
        // Over a newer full file (written at shutdown, say) it is stale.
        let mut newer = full;
        newer.written_at += 10;
        assert_eq!(newer.clone().overlay(recent), newer);
    }
}
