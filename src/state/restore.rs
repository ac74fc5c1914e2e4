//! What a run starts from: the files an earlier run saved, laid over this
//! run's configuration. Pure: the files, the configuration, the time and a
//! fresh run id in; trackers, resume offsets, SLO windows and the run id
//! out, with what deserves a warning said, not logged.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::format::{FullFile, InflightFile, RecentFile};
use crate::canary::RunId;
use crate::config::{Config, Probe};
use crate::outcome::tracker::{Tracker, MAX_PARTITION};
use crate::outcome::OutputStart;
use crate::slo::evaluator::{definition, SloState};

/// How often the in-flight file is written: after a kill -9, what the
/// killed run sent in at most about this long before is unknown to the
/// next one.
pub const INFLIGHT_EVERY: Duration = Duration::from_secs(1);

/// Seqs skipped after a kill, all probes and partitions together, at
/// most, beyond what a file written just now would skip: each one is an
/// entry of ~48 bytes until its deadline passes (48 MiB for one
/// deadline). A file older than that allows is stale: at one canary per
/// second on 60 partitions, after 4.8 hours.
const MAX_UNSAVED: u64 = 1 << 20;

/// The highest seq a saved file may name (far beyond any run's).
const MAX_SEQ: u64 = 1 << 53;

/// The files found in `state_dir` (those that were missing or corrupt are
/// `None`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Files {
    pub full: Option<FullFile>,
    pub recent: Option<RecentFile>,
    pub inflight: Option<InflightFile>,
}

impl Files {
    /// The SLO state: the full file with the recent one laid over it (when
    /// the recent file names it as its base).
    pub fn slos(&self) -> Option<FullFile> {
        let full = self.full.clone()?;
        Some(match &self.recent {
            Some(r) => full.overlay(r.clone()),
            None => full,
        })
    }
}

/// The clocks, read once.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub instant: Instant,
    /// Wall clock, Unix nanoseconds.
    pub unix_ns: u64,
}

impl Now {
    pub fn read() -> Now {
        Now {
            instant: Instant::now(),
            unix_ns: crate::canary::unix_ns(std::time::SystemTime::now()),
        }
    }
}

/// What this run starts from.
#[derive(Debug)]
pub struct Restored {
    /// The earlier run's id when its canaries in flight were saved (they
    /// stay this run's own), else the fresh one.
    pub run: RunId,
    /// Per probe of the configuration, its outputs' starts in
    /// [`Probe::outputs`] order: restored where an output of the same name
    /// reads the same topic as when saved, fresh otherwise.
    pub probes: BTreeMap<String, Vec<OutputStart>>,
    /// The saved windows and alert state of every configured SLO whose
    /// definition is unchanged.
    pub slos: Vec<SloState>,
    /// When the SLO state was written (Unix seconds), if there was one.
    pub slos_written_at: Option<u64>,
    /// What an operator should hear about.
    pub warnings: Vec<String>,
}

impl Restored {
    /// `probe`'s output starts (fresh ones for a probe it does not know).
    pub fn take(&mut self, probe: &Probe) -> Vec<OutputStart> {
        self.probes.remove(&probe.name).unwrap_or_else(|| {
            probe
                .outputs()
                .iter()
                .map(|_| OutputStart::fresh(probe.deadline))
                .collect()
        })
    }
}

/// This run's start: `files` (saved by an earlier run) laid over `config`,
/// at `now`; `fresh` is the run id to take when no run can be continued.
pub fn restore(files: &Files, config: &Config, now: Now, fresh: RunId) -> Restored {
    let mut warnings = Vec::new();
    if files.full.is_none() && files.recent.is_some() {
        warnings.push(
            "a recent state file without its full state file: SLO windows start empty".into(),
        );
    }
    let slo_state = files.slos();
    let mut slos = Vec::new();
    for probe in &config.probes {
        for slo in &probe.slos {
            let name = slo.name(&probe.name);
            let Some(saved) = slo_state
                .as_ref()
                .and_then(|f| f.slos.iter().find(|s| s.slo == name))
            else {
                continue;
            };
            let now_def = definition(slo);
            if saved.definition == now_def {
                slos.push(saved.clone());
            } else {
                warnings.push(format!(
                    "SLO {name}: its definition changed since the state was saved ({} -> {now_def}); its windows start empty",
                    saved.definition
                ));
            }
        }
    }
    let now_s = now.unix_ns / 1_000_000_000;
    let mut continued = files
        .inflight
        .as_ref()
        .and_then(|f| u64::from_str_radix(&f.run, 16).ok().map(|r| (RunId(r), f)));
    // Each probe's next seq per partition: the highest any of its outputs
    // saved (they agree unless an earlier version split them), plus what
    // the earlier run may have sent after its last save, judged by the
    // file's age. A file so old that the skipped seqs would not fit in
    // memory is stale: a new run id, and the old canaries are foreign.
    let mut until: BTreeMap<String, BTreeMap<i32, u64>> = BTreeMap::new();
    if let Some((_, f)) = continued {
        let age = Duration::from_secs(now_s.saturating_sub(f.written_at));
        let mut skipped = 0u64;
        // What a file written just now would skip: always allowed.
        let mut floor = 0u64;
        for probe in &config.probes {
            let Some(saved) = f.probes.iter().find(|s| s.probe == probe.name) else {
                continue;
            };
            let skip = unsaved(probe, age);
            let least = unsaved(probe, Duration::ZERO);
            let mut next: BTreeMap<i32, u64> = BTreeMap::new();
            for (partition, n) in saved.outputs.iter().flat_map(|o| &o.tracker.next_seq) {
                if (0..=MAX_PARTITION).contains(partition) && *n <= MAX_SEQ {
                    let e = next.entry(*partition).or_default();
                    *e = (*e).max(*n);
                }
            }
            for n in next.values_mut() {
                *n += skip;
                skipped = skipped.saturating_add(skip);
                floor = floor.saturating_add(least);
            }
            until.insert(probe.name.clone(), next);
        }
        if skipped > MAX_UNSAVED.max(floor) {
            warnings.push(format!(
                "the in-flight state file is {} old (saves were late or failing): the canaries \
                 the earlier run may have sent since are too many to skip; starting a new run \
                 (the earlier run's canaries count as foreign)",
                humantime::format_duration(age)
            ));
            continued = None;
            until.clear();
        }
    }
    let run = continued.map_or(fresh, |(r, _)| r);
    let probes = config
        .probes
        .iter()
        .map(|probe| {
            let saved =
                continued.and_then(|(_, f)| f.probes.iter().find(|s| s.probe == probe.name));
            let start = until.remove(&probe.name).unwrap_or_default();
            let starts = probe
                .outputs()
                .iter()
                .map(|o| {
                    // An output of the same name reading the same topic
                    // goes on where the saved one stopped; any other
                    // starts clean, its seqs in step with the others.
                    let Some(so) = saved.and_then(|s| {
                        s.outputs
                            .iter()
                            .find(|so| so.output == o.name && so.topic == o.topic)
                    }) else {
                        return OutputStart {
                            tracker: Tracker::starting_at(probe.deadline, &start),
                            offsets: BTreeMap::new(),
                        };
                    };
                    let mut tracker = Tracker::new(probe.deadline);
                    let left_out = tracker.restore(&so.tracker, &start, now.instant, now.unix_ns);
                    if left_out > 0 {
                        warnings.push(format!(
                            "probe {} output {}: {left_out} saved item(s) out of range were left out of the restored state",
                            probe.name, o.name
                        ));
                    }
                    OutputStart {
                        tracker,
                        offsets: so
                            .offsets
                            .iter()
                            .copied()
                            .filter(|(p, off)| (0..=MAX_PARTITION).contains(p) && *off >= 0)
                            .collect(),
                    }
                })
                .collect();
            (probe.name.clone(), starts)
        })
        .collect();
    Restored {
        run,
        probes,
        slos,
        slos_written_at: slo_state.map(|f| f.written_at),
        warnings,
    }
}

/// Seqs per partition the earlier run may have sent after its last save
/// (it was killed before the next), the file being `age` old now: all it
/// could have sent since, and two save intervals more for the clocks.
fn unsaved(probe: &Probe, age: Duration) -> u64 {
    let span = age.saturating_add(INFLIGHT_EVERY * 2).as_nanos();
    let seqs = span.div_ceil(probe.interval.as_nanos().max(1)) + 1;
    u64::try_from(seqs).unwrap_or(u64::MAX).min(MAX_SEQ)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::format::tests::saved_output;
    use crate::state::format::ProbeSaved;

    fn config() -> Config {
        crate::config::load_str(
            "t.yaml",
            "clusters: { c: { bootstrap: 'k:9092' } }\n\
             probes:\n\
             \x20 - name: p\n\
             \x20   type: pipeline\n\
             \x20   interval: 1s\n\
             \x20   deadline: 10s\n\
             \x20   input: { cluster: c, topic: in, payload: '{\"id\":\"{{id}}\"}' }\n\
             \x20   outputs:\n\
             \x20     - { name: a, cluster: c, topic: out-a, match: { json: /id } }\n\
             \x20     - { name: b, cluster: c, topic: out-b, match: { json: /id } }\n\
             \x20   slos:\n\
             \x20     - { sli: delivery, objective: 99% }\n",
            &|_| None,
        )
        .expect("config")
    }

    fn now() -> Now {
        Now {
            instant: Instant::now(),
            unix_ns: 1_800_000_005_000_000_000,
        }
    }

    #[test]
    fn nothing_saved_is_a_fresh_start() {
        let r = restore(&Files::default(), &config(), now(), RunId(9));
        assert_eq!(r.run, RunId(9));
        let starts = &r.probes["p"];
        assert_eq!(starts.len(), 2);
        assert!(starts
            .iter()
            .all(|s| s.tracker.in_flight() == 0 && s.offsets.is_empty()));
        assert!(r.slos.is_empty() && r.warnings.is_empty());
    }

    /// The run goes on; an output of the same name and topic resumes, a
    /// re-topicked one starts fresh; probes no longer configured are
    /// dropped.
    #[test]
    fn outputs_resume_by_name_and_topic() {
        let files = Files {
            inflight: Some(InflightFile {
                written_at: 1_800_000_005,
                writer: "0.1.0".into(),
                run: "00000000000000aa".into(),
                probes: vec![
                    ProbeSaved {
                        probe: "p".into(),
                        outputs: vec![saved_output("a", "out-a"), saved_output("b", "elsewhere")],
                    },
                    ProbeSaved {
                        probe: "gone".into(),
                        outputs: vec![saved_output("a", "out-a")],
                    },
                ],
            }),
            ..Files::default()
        };
        let r = restore(&files, &config(), now(), RunId(9));
        assert_eq!(r.run, RunId(0xaa));
        assert_eq!(r.probes.len(), 1);
        let starts = &r.probes["p"];
        assert_eq!(starts[0].tracker.in_flight(), 1);
        assert_eq!(starts[0].offsets, BTreeMap::from([(0, 42)]));
        assert_eq!(starts[1].tracker.in_flight(), 0);
        assert!(starts[1].offsets.is_empty());
    }

    /// SLO windows are restored when their definition is unchanged; a
    /// changed one starts empty, with a warning naming both definitions.
    #[test]
    fn slo_windows_only_for_unchanged_definitions() {
        let config = config();
        let slo = &config.probes[0].slos[0];
        let name = slo.name("p");
        let state = |definition: String| SloState {
            slo: name.clone(),
            definition,
            windows: crate::state::format::tests::full().slos[0].windows.clone(),
        };
        let mut files = Files {
            full: Some(FullFile {
                written_at: 1_800_000_000,
                writer: "0.1.0".into(),
                slos: vec![state(definition(slo)), state("an old one".into())],
            }),
            ..Files::default()
        };
        let r = restore(&files, &config, now(), RunId(1));
        assert_eq!(r.slos.len(), 1);
        assert_eq!(r.slos_written_at, Some(1_800_000_000));
        if let Some(f) = &mut files.full {
            f.slos = vec![state("objective=0.5".into())];
        }
        let r = restore(&files, &config, now(), RunId(1));
        assert!(r.slos.is_empty());
        assert!(
            r.warnings[0].contains("objective=0.5 ->") && r.warnings[0].contains(&name),
            "{:?}",
            r.warnings
        );
    }

    fn inflight_at(written_at: u64, outputs: Vec<crate::outcome::OutputSaved>) -> Files {
        Files {
            inflight: Some(InflightFile {
                written_at,
                writer: "0.1.0".into(),
                run: "00000000000000aa".into(),
                probes: vec![ProbeSaved {
                    probe: "p".into(),
                    outputs,
                }],
            }),
            ..Files::default()
        }
    }

    /// Output `a` is restored, `b` re-topicked: both send the same seqs,
    /// past everything the earlier run may have sent (saved next 7, the
    /// file 1 s old: 1 + 2 s of saves at 1 s = 4 seqs, the rounding one
    /// included).
    #[test]
    fn a_changed_output_starts_at_the_probes_seqs() {
        let files = inflight_at(
            1_800_000_004,
            vec![saved_output("a", "out-a"), saved_output("b", "elsewhere")],
        );
        let mut r = restore(&files, &config(), now(), RunId(9));
        let mut starts = r.probes.remove("p").expect("p");
        let t = Instant::now();
        let a = starts[0].tracker.on_send(0, t);
        let b = starts[1].tracker.on_send(0, t);
        assert_eq!((a, b), (7 + 4, 7 + 4));
    }

    /// The seqs skipped grow with the file's age: saves that were late or
    /// failing cannot make the next run reuse seqs.
    #[test]
    fn the_seqs_skipped_follow_the_files_age() {
        for (age, skip) in [(0, 3), (1, 4), (60, 63)] {
            let files = inflight_at(1_800_000_005 - age, vec![saved_output("a", "out-a")]);
            let mut r = restore(&files, &config(), now(), RunId(9));
            assert_eq!(r.run, RunId(0xaa));
            let mut starts = r.probes.remove("p").expect("p");
            assert_eq!(
                starts[0].tracker.on_send(0, Instant::now()),
                7 + skip,
                "age {age}"
            );
        }
    }

    /// A file so old that what the earlier run may have sent since cannot
    /// be skipped is stale: a new run, every output fresh, and a warning
    /// saying so.
    #[test]
    fn a_stale_inflight_file_starts_a_new_run() {
        let files = inflight_at(
            1_800_000_005 - 86_400 * 30,
            vec![saved_output("a", "out-a")],
        );
        let mut r = restore(&files, &config(), now(), RunId(9));
        assert_eq!(r.run, RunId(9));
        assert!(
            r.warnings.iter().any(|w| w.contains("new run")),
            "{:?}",
            r.warnings
        );
        let mut starts = r.probes.remove("p").expect("p");
        assert_eq!(starts[0].tracker.in_flight(), 0);
        assert!(starts[0].offsets.is_empty());
        assert_eq!(starts[0].tracker.on_send(0, Instant::now()), 0);
    }
}
