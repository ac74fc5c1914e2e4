//! Burrow-style consumer-lag evaluation: a consumer group's partitions are
//! judged over a sliding window of their last observations, not against a
//! fixed threshold. Pure, with time passed in.
//!
//! An observation is what one read of the cluster shows for a partition:
//! the group's committed offset, the partition's high watermark (so the
//! lag in records), and whether the group had members. Rules, checked in
//! this order once the current lag is non-zero and was non-zero at every
//! observation of the window:
//!
//! - **REWIND**: the committed offset went backwards between two
//!   observations (a reset, a restore from an old checkpoint);
//! - with a full window (`window` observations):
//!   - **STOP**: the committed offset did not move over the window and the
//!     group has no members (its consumers are gone);
//!   - **STALL**: the committed offset did not move over the window while
//!     the group has members (alive, consuming nothing or committing
//!     nothing);
//!   - **WARN**: the offset moves, the lag never decreased between two
//!     observations and grew over the window (falling behind; a constant
//!     lag is a consumer keeping pace a commit behind, not a warning);
//! - otherwise **OK** (the lag reached zero in the window, or it is
//!   shrinking somewhere).
//!
//! Polling cannot see commit timestamps (OffsetFetch has none), so the
//! group's membership tells a stopped consumer from a stalled one, where
//! Burrow compares commit times.

use std::collections::VecDeque;

/// A partition's (and a group's) status, in increasing severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    Ok,
    Warn,
    Rewind,
    Stall,
    Stop,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Ok,
        Status::Warn,
        Status::Rewind,
        Status::Stall,
        Status::Stop,
    ];

    /// The `status` label value.
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Rewind => "REWIND",
            Status::Stall => "STALL",
            Status::Stop => "STOP",
        }
    }
}

/// One read of a partition for a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// When it was read, in seconds on the reader's clock (kept for the
    /// record: the rules judge the order of observations, not their times).
    pub at: u64,
    pub committed: i64,
    pub high_watermark: i64,
    /// Whether the group had members at the time.
    pub members: bool,
}

impl Observation {
    /// Records the group has not consumed (never negative: a committed
    /// offset past the watermark, read a moment apart, is no lag).
    pub fn lag(&self) -> u64 {
        u64::try_from(self.high_watermark - self.committed).unwrap_or(0)
    }
}

/// A partition's last observations.
#[derive(Debug, Clone)]
pub struct PartitionWindow {
    window: usize,
    observations: VecDeque<Observation>,
}

impl PartitionWindow {
    /// `window`: how many observations a judgement spans (at least 2).
    pub fn new(window: usize) -> PartitionWindow {
        let window = window.max(2);
        PartitionWindow {
            window,
            observations: VecDeque::with_capacity(window),
        }
    }

    pub fn observe(&mut self, o: Observation) {
        if self.observations.len() == self.window {
            self.observations.pop_front();
        }
        self.observations.push_back(o);
    }

    pub fn last(&self) -> Option<&Observation> {
        self.observations.back()
    }

    /// The observations, oldest first.
    pub fn observations(&self) -> impl Iterator<Item = &Observation> {
        self.observations.iter()
    }

    /// Whether the window is full: a STALL, STOP or WARN could be seen
    /// (before, an OK may only mean "not enough reads yet").
    pub fn full(&self) -> bool {
        self.observations.len() == self.window
    }

    pub fn status(&self) -> Status {
        let o = &self.observations;
        let Some(last) = o.back() else {
            return Status::Ok;
        };
        if last.lag() == 0 || o.iter().any(|x| x.lag() == 0) {
            return Status::Ok;
        }
        let pairs = || o.iter().zip(o.iter().skip(1));
        if pairs().any(|(a, b)| b.committed < a.committed) {
            return Status::Rewind;
        }
        if o.len() < self.window {
            return Status::Ok;
        }
        if pairs().all(|(a, b)| b.committed == a.committed) {
            return if last.members {
                Status::Stall
            } else {
                Status::Stop
            };
        }
        let first = o.front().map_or(0, Observation::lag);
        if pairs().all(|(a, b)| b.lag() >= a.lag()) && last.lag() > first {
            return Status::Warn;
        }
        Status::Ok
    }
}

/// A group's status: the worst of its partitions' (OK without any).
pub fn group_status<'a>(partitions: impl IntoIterator<Item = &'a PartitionWindow>) -> Status {
    partitions
        .into_iter()
        .map(PartitionWindow::status)
        .max()
        .unwrap_or(Status::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 4;

    /// Observations every 10 s from (committed, high watermark) pairs.
    fn window(points: &[(i64, i64)], members: bool) -> PartitionWindow {
        let mut w = PartitionWindow::new(N);
        for (i, (committed, hw)) in points.iter().enumerate() {
            w.observe(Observation {
                at: 1_000 + 10 * i as u64,
                committed: *committed,
                high_watermark: *hw,
                members,
            });
        }
        w
    }

    #[test]
    fn ok_when_the_lag_reached_zero_in_the_window() {
        // Offsets stuck, but the lag was zero once: the producer was quiet.
        assert_eq!(
            window(&[(10, 10), (10, 12), (10, 14), (10, 16)], true).status(),
            Status::Ok
        );
        // Lag now zero.
        assert_eq!(
            window(&[(10, 20), (10, 20), (10, 20), (20, 20)], true).status(),
            Status::Ok
        );
    }

    #[test]
    fn stall_when_the_offset_does_not_move_with_members_and_lag() {
        assert_eq!(
            window(&[(10, 12), (10, 14), (10, 16), (10, 18)], true).status(),
            Status::Stall
        );
        // Fixed lag counts too.
        assert_eq!(
            window(&[(10, 15), (10, 15), (10, 15), (10, 15)], true).status(),
            Status::Stall
        );
    }

    #[test]
    fn stop_when_the_offset_does_not_move_and_the_group_is_empty() {
        assert_eq!(
            window(&[(10, 12), (10, 14), (10, 16), (10, 18)], false).status(),
            Status::Stop
        );
    }

    #[test]
    fn warn_when_offsets_move_but_the_lag_never_shrinks() {
        assert_eq!(
            window(&[(10, 20), (12, 24), (14, 28), (16, 32)], true).status(),
            Status::Warn
        );
        // Growing in steps, flat in between.
        assert_eq!(
            window(&[(10, 15), (12, 17), (14, 20), (16, 22)], true).status(),
            Status::Warn
        );
    }

    #[test]
    fn a_constant_lag_while_moving_is_ok() {
        // A consumer keeping pace one auto-commit behind its input.
        assert_eq!(
            window(&[(10, 15), (12, 17), (14, 19), (16, 21)], true).status(),
            Status::Ok
        );
    }

    #[test]
    fn ok_when_offsets_move_and_the_lag_shrinks_somewhere() {
        assert_eq!(
            window(&[(10, 20), (12, 24), (20, 26), (22, 30)], true).status(),
            Status::Ok
        );
    }

    #[test]
    fn rewind_when_an_offset_goes_backwards_even_before_the_window_fills() {
        assert_eq!(
            window(&[(100, 120), (0, 121)], true).status(),
            Status::Rewind
        );
        assert_eq!(
            window(&[(10, 20), (12, 24), (5, 26), (7, 30)], true).status(),
            Status::Rewind
        );
    }

    #[test]
    fn nothing_but_rewind_is_judged_before_the_window_fills() {
        assert_eq!(
            window(&[(10, 12), (10, 14), (10, 16)], true).status(),
            Status::Ok
        );
        assert_eq!(PartitionWindow::new(N).status(), Status::Ok);
    }

    #[test]
    fn transitions_follow_the_window() {
        let mut w = window(&[(10, 20), (14, 22), (18, 24), (22, 26)], true);
        assert_eq!(w.status(), Status::Ok, "catching up");
        // The consumer hangs: the offset stops moving while input arrives.
        for (i, hw) in [28, 30].iter().enumerate() {
            w.observe(Observation {
                at: 1_040 + 10 * i as u64,
                committed: 22,
                high_watermark: *hw,
                members: true,
            });
        }
        assert_eq!(
            w.status(),
            Status::Ok,
            "the lag still shrank inside the window"
        );
        w.observe(Observation {
            at: 1_060,
            committed: 22,
            high_watermark: 32,
            members: true,
        });
        assert_eq!(w.status(), Status::Stall, "not one move in the window");
        // Its process is killed: the group empties.
        w.observe(Observation {
            at: 1_070,
            committed: 22,
            high_watermark: 36,
            members: false,
        });
        assert_eq!(w.status(), Status::Stop);
        // Restarted with its offsets reset to the beginning.
        w.observe(Observation {
            at: 1_080,
            committed: 0,
            high_watermark: 38,
            members: true,
        });
        assert_eq!(w.status(), Status::Rewind);
        // It reads everything and catches up: the rewind leaves the window
        // with the zero lag in it.
        for (i, c) in [20, 38, 40].iter().enumerate() {
            w.observe(Observation {
                at: 1_090 + 10 * i as u64,
                committed: *c,
                high_watermark: 40,
                members: true,
            });
        }
        assert_eq!(w.status(), Status::Ok);
    }

    #[test]
    fn a_consumer_falling_behind_turns_from_ok_to_warn() {
        let mut w = window(&[(10, 12), (14, 15), (18, 18), (20, 21)], true);
        assert_eq!(w.status(), Status::Ok, "lag zero at (18, 18)");
        // Input now outpaces it: offsets move, the lag only grows.
        for (i, (c, hw)) in [(22, 26), (24, 31), (26, 36), (28, 41)].iter().enumerate() {
            w.observe(Observation {
                at: 1_040 + 10 * i as u64,
                committed: *c,
                high_watermark: *hw,
                members: true,
            });
        }
        assert_eq!(w.status(), Status::Warn);
    }

    #[test]
    fn the_group_is_its_worst_partition() {
        let ok = window(&[(10, 10), (12, 12), (14, 14), (16, 16)], true);
        let warn = window(&[(10, 20), (12, 24), (14, 28), (16, 32)], true);
        let stall = window(&[(10, 12), (10, 14), (10, 16), (10, 18)], true);
        assert_eq!(group_status([&ok, &warn]), Status::Warn);
        assert_eq!(group_status([&ok, &warn, &stall]), Status::Stall);
        assert_eq!(group_status(std::iter::empty()), Status::Ok);
        let labels: Vec<&str> = Status::ALL.iter().map(|s| s.label()).collect();
        assert_eq!(labels, ["OK", "WARN", "REWIND", "STALL", "STOP"]);
    }

    #[test]
    fn lag_is_never_negative_and_the_window_is_bounded() {
        let o = Observation {
            at: 0,
            committed: 12,
            high_watermark: 10,
            members: true,
        };
        assert_eq!(o.lag(), 0);
        let mut w = PartitionWindow::new(N);
        for i in 0..100 {
            w.observe(Observation {
                at: i,
                committed: i as i64,
                high_watermark: 200,
                members: true,
            });
        }
        assert_eq!(w.observations.len(), N);
        assert_eq!(w.last().map(|o| o.committed), Some(99));
    }
}
