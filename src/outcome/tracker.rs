//! The in-flight tracker: turns sends, acks and arrivals into outcomes.
//!
//! Pure and synchronous, with time passed in, so every outcome rule is unit
//! tested without Kafka. One tracker serves one output of one probe; the
//! probe feeds it every send and ack and every arrival of one of its own
//! canaries (foreign records never get here).
//!
//! Layout: per input partition a deque of entries indexed by `seq - base`.
//! Seqs are assigned here in send order and every canary of a probe has the
//! same deadline, so entries expire strictly from the front: lookup, insert
//! and expiry are O(1) and an entry is a few dozen bytes. The number of
//! entries is bounded by rate × deadline (the producer's message timeout is
//! the deadline, so no entry waits for its ack much longer than that).
//!
//! Over 600 lines: one state machine (sends, acks, arrivals, expiry,
//! restore) whose rules all work on the same entry table; splitting it
//! would spread one canary's life over several files. Its unit tests, one
//! per outcome rule, are in tracker/tests.rs.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What happened to a canary, as reported to the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// First arrival, before the deadline, of an acked canary.
    Delivered {
        partition: i32,
        latency: Duration,
        /// It arrived after a canary with a higher seq from the same partition.
        out_of_order: bool,
    },
    /// First arrival of a canary that was written before this process read
    /// its output (read while catching up after a restart) and whose
    /// arrival time the record does not tell (a heartbeat's record carries
    /// its produce time): delivered, its latency unmeasured.
    DeliveredUntimed { partition: i32, out_of_order: bool },
    /// Acked, and not seen by the deadline.
    Lost { partition: i32, seq: u64 },
    /// Arrived after having been declared lost.
    Late { partition: i32 },
    /// Arrived again after its first arrival.
    Duplicate { partition: i32 },
    /// Arrived after its outcome was forgotten (it was resolved longer ago
    /// than the process-wide [`Memory`] of resolved canaries reaches): late
    /// if it had been lost, a duplicate otherwise; counted as neither.
    LateOrDuplicate { partition: i32 },
    /// No delivery report by the deadline + [`ACK_GRACE`] (the producer was
    /// replaced, or its thread is gone): a failed produce, never a loss.
    Unacknowledged { partition: i32, seq: u64 },
    /// An arrival of a canary whose produce was reported failed (or never
    /// acknowledged): the broker wrote it after all, e.g. a request that
    /// timed out in flight. Never delivered, lost, late nor duplicate; its
    /// produce stays an availability error. One per arrival.
    FailedButArrived { partition: i32, seq: u64 },
    /// A canary restored after a restart that cannot be accounted for:
    /// neither delivered, lost nor a failed produce.
    Abandoned {
        partition: i32,
        seq: u64,
        reason: Abandon,
    },
}

/// Why a restored canary was abandoned (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abandon {
    /// Its output partition could not be resumed from the saved offset
    /// (topic recreated, retention passed): it was read from its end.
    OffsetInvalid,
    /// Sent just before the restart, its delivery report went with the old
    /// process, and it never arrived: maybe never written at all.
    UnacknowledgedAtRestart,
    /// Sent by the earlier run after its last save (it was killed before
    /// the next): it arrived, but without its send time (no
    /// `slaprobe-sent-ns` header on the output record).
    SentAfterLastSave,
}

impl Abandon {
    pub const ALL: [Abandon; 3] = [
        Abandon::OffsetInvalid,
        Abandon::UnacknowledgedAtRestart,
        Abandon::SentAfterLastSave,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Abandon::OffsetInvalid => "offset_invalid",
            Abandon::UnacknowledgedAtRestart => "unacknowledged_at_restart",
            Abandon::SentAfterLastSave => "sent_after_last_save",
        }
    }
}

/// One unresolved canary, as saved across a restart.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedCanary {
    pub partition: i32,
    pub seq: u64,
    /// Send time, Unix nanoseconds (wall clock; latency after a restart is
    /// measured from it).
    pub sent_unix_ns: u64,
    pub acked: bool,
}

/// A tracker's state across a restart: each partition's next seq, every
/// canary not yet resolved, and the remembered resolved-and-unusual ones
/// (so that one lost before a restart and arriving after it is late, not
/// a duplicate). The fields after `unresolved` were added within format
/// version 1: files without them read as empty, and older readers ignore
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TrackerSnapshot {
    pub next_seq: Vec<(i32, u64)>,
    pub unresolved: Vec<SavedCanary>,
    /// Runs of consecutive resolved canaries with the same outcome, in
    /// seq order per partition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<ResolvedRun>,
    /// Per partition, the first seq this output tracked (a seq below it
    /// was sent before the output was configured).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub floor: Vec<(i32, u64)>,
    /// Per partition, seqs below this may have been resolved unusually and
    /// forgotten since (see [`Outcome::LateOrDuplicate`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forgotten: Vec<(i32, u64)>,
}

/// `count` consecutive seqs from `first` of `partition`, all resolved the
/// same way.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedRun {
    pub partition: i32,
    pub first: u64,
    pub count: u64,
    pub outcome: SavedResolved,
}

/// How a remembered canary was resolved, as saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SavedResolved {
    Lost,
    Failed,
    Late,
    /// A seq the earlier run may have sent after its last save, not seen
    /// by its deadline (added within version 1).
    Unsent,
}

/// Runs saved per tracker at most (the newest ones; the older ones are
/// forgotten): a few hundred kilobytes of JSON written every second at
/// worst, and one run per partition in a plain outage.
const SAVED_RUNS: usize = 4096;

/// The highest partition number a saved file may name: Kafka topics are
/// far smaller, and the bound keeps a damaged file from allocating
/// without limit.
pub const MAX_PARTITION: i32 = 1 << 16;

/// A restored partition holding more seqs than this between its oldest
/// unresolved canary and its next seq is not restored (a rate × deadline
/// that large is no heartbeat; the bound keeps a bad file from allocating
/// without limit).
const MAX_RESTORED_SPAN: u64 = 1_000_000;

/// How long after a restore its canaries wait at most for the output's
/// consumer to read what was written while no process read it (see
/// [`Tracker::release`]): an output that cannot be read for longer gets
/// its restored canaries judged all the same.
pub const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);

/// How long past its deadline a canary may wait for its delivery report.
/// librdkafka's message timeout is the deadline, so a report comes by then
/// plus scheduling; one that has not come 5 s later never will, and the
/// canary must not hold its partition's expiry for ever.
pub const ACK_GRACE: Duration = Duration::from_secs(5);

/// How an arrival that produced no outcome (yet) was classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Outcomes were emitted.
    Counted,
    /// Arrived before its ack; the outcome follows with the ack.
    AwaitingAck,
    /// Never sent by this tracker (a seq or partition it does not know).
    Unknown,
    /// Sent by this run before this output was configured (an output
    /// added or re-topicked across a restart): not its business.
    Untracked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sent, no delivery report yet.
    Pending,
    /// Acked, not arrived yet.
    Acked,
    /// Sent before a restart, unacknowledged then: its report will never
    /// come, an arrival proves it was written (see [`Abandon`]).
    Restored,
    /// A seq the earlier run may have used after its last save (it died
    /// before the next): nothing is known of it but that it is ours.
    Unsaved,
    /// Acked after its deadline without having arrived: already reported
    /// lost, kept only until it leaves the front of the deque.
    Lost,
    Failed,
    /// Its first arrival has been seen and reported; later ones are duplicates.
    Arrived,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    sent: Instant,
    state: State,
    /// Arrival seen while the ack was still pending: its latency, whether
    /// it was out of order, and how many more copies arrived meanwhile,
    /// reported once the ack comes.
    early: Option<(Option<Duration>, bool, u16)>,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Seq of `entries[0]`; everything below is resolved.
    base: u64,
    /// The first seq this tracker tracked here: one below was sent before
    /// its output was configured.
    floor: u64,
    /// Seqs below this may have been resolved unusually and forgotten.
    forgotten: u64,
    entries: VecDeque<Entry>,
    /// Highest seq whose first arrival has been seen (out-of-order judge).
    max_arrived: Option<u64>,
    /// Resolved-and-unusual canaries below `base`, in seq order (they are
    /// appended as they leave `entries`), so found by binary search.
    resolved: VecDeque<(u64, Resolved)>,
    /// Seqs below this were restored from an earlier run: their expiry
    /// waits while the tracker [holds](Tracker::hold) them.
    restored_below: u64,
}

impl PartitionState {
    fn next_seq(&self) -> u64 {
        self.base + self.entries.len() as u64
    }
}

/// How a resolved canary ended, remembered for a while so that a later
/// arrival can be called late (it was lost) rather than a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolved {
    Lost,
    Failed,
    /// Lost, then arrived (reported late): later copies are duplicates.
    Late,
    /// A seq the earlier run may have sent after its last save, not seen
    /// by its deadline: maybe never sent, so nothing was reported. One that
    /// arrives after all was sent: judged then, by its send time.
    Unsent,
}

impl Resolved {
    fn saved(self) -> SavedResolved {
        match self {
            Resolved::Lost => SavedResolved::Lost,
            Resolved::Failed => SavedResolved::Failed,
            Resolved::Late => SavedResolved::Late,
            Resolved::Unsent => SavedResolved::Unsent,
        }
    }
}

impl From<SavedResolved> for Resolved {
    fn from(s: SavedResolved) -> Resolved {
        match s {
            SavedResolved::Lost => Resolved::Lost,
            SavedResolved::Failed => Resolved::Failed,
            SavedResolved::Late => Resolved::Late,
            SavedResolved::Unsent => Resolved::Unsent,
        }
    }
}

/// Resolved-and-unusual canaries remembered by the whole process (every
/// tracker of every probe). Loss is rare in a healthy system, so this only
/// fills during incidents: 256k entries of 20 bytes (16 in their
/// partition's list, 4 in the tracker's eviction order) bound it to
/// 5 MiB, every lost canary of an hour-long outage at ~70 canaries/s. A
/// tracker that adds past the bound forgets its own oldest; an arrival of
/// a forgotten one is [`Outcome::LateOrDuplicate`].
pub const RESOLVED_MEMORY: usize = 262_144;

/// The process-wide count of remembered resolved canaries, and its bound.
#[derive(Debug)]
pub struct Memory {
    held: AtomicUsize,
    bound: usize,
}

impl Memory {
    pub fn new(bound: usize) -> Arc<Memory> {
        Arc::new(Memory {
            held: AtomicUsize::new(0),
            bound,
        })
    }

    /// Remembered resolved canaries, all trackers together.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn over(&self) -> bool {
        self.held() > self.bound
    }
}

#[derive(Debug)]
pub struct Tracker {
    deadline: Duration,
    partitions: Vec<PartitionState>,
    /// The partition of every remembered resolved canary, oldest first:
    /// the oldest overall is the front of that partition's list.
    resolved_order: VecDeque<u32>,
    /// Sent and not yet resolved (pending or acked, not yet arrived).
    in_flight: usize,
    memory: Arc<Memory>,
    /// Until when restored canaries are not expired: the output's consumer
    /// is still reading what was written while no process read it (see
    /// [`Tracker::release`]).
    hold: Option<Instant>,
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.memory
            .held
            .fetch_sub(self.resolved_order.len(), Ordering::Relaxed);
    }
}

impl Tracker {
    /// A tracker with a memory of its own (bounded by [`RESOLVED_MEMORY`]);
    /// [`Tracker::share`] puts it under the process's.
    pub fn new(deadline: Duration) -> Tracker {
        Tracker {
            deadline,
            partitions: Vec::new(),
            resolved_order: VecDeque::new(),
            in_flight: 0,
            memory: Memory::new(RESOLVED_MEMORY),
            hold: None,
        }
    }

    /// A fresh tracker for an output added to a probe whose canaries go on
    /// from `start` (partition -> the next seq the probe sends there): its
    /// seqs agree with the probe's other outputs, and an earlier canary
    /// that turns up is none of its business ([`Arrival::Untracked`]).
    pub fn starting_at(deadline: Duration, start: &BTreeMap<i32, u64>) -> Tracker {
        let mut t = Tracker::new(deadline);
        for (&partition, &next) in start {
            if let Some(p) = t.partition_mut(partition) {
                p.base = next;
                p.floor = next;
            }
        }
        t
    }

    /// Counts this tracker's remembered canaries in `memory` (the process's)
    /// from now on, forgetting its oldest if that is over its bound.
    pub fn share(&mut self, memory: &Arc<Memory>) {
        let mine = self.resolved_order.len();
        self.memory.held.fetch_sub(mine, Ordering::Relaxed);
        memory.held.fetch_add(mine, Ordering::Relaxed);
        self.memory = memory.clone();
        self.forget_over_bound();
    }

    /// Partition `partition`'s state, created on first use; `None` for a
    /// negative one or one over [`MAX_PARTITION`].
    fn partition_mut(&mut self, partition: i32) -> Option<&mut PartitionState> {
        if !(0..=MAX_PARTITION).contains(&partition) {
            return None;
        }
        let index = partition as usize;
        if self.partitions.len() <= index {
            self.partitions
                .resize_with(index + 1, PartitionState::default);
        }
        self.partitions.get_mut(index)
    }

    /// Remembers that `seq` of partition `index` resolved as `kind`.
    fn remember(&mut self, index: usize, seq: u64, kind: Resolved) {
        if let Some(p) = self.partitions.get_mut(index) {
            p.resolved.push_back((seq, kind));
            self.resolved_order.push_back(index as u32);
            self.memory.held.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Forgets this tracker's oldest remembered canaries while the
    /// process's memory is over its bound.
    fn forget_over_bound(&mut self) {
        while self.memory.over() {
            let Some(oldest) = self.resolved_order.pop_front() else {
                break;
            };
            self.memory.held.fetch_sub(1, Ordering::Relaxed);
            if let Some(p) = self.partitions.get_mut(oldest as usize) {
                if let Some((seq, _)) = p.resolved.pop_front() {
                    p.forgotten = p.forgotten.max(seq + 1);
                }
            }
        }
    }

    /// Canaries sent whose outcome is not known yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Entries held (in flight plus delivered ones kept until their deadline
    /// to recognise duplicates); what memory is proportional to.
    pub fn entries(&self) -> usize {
        self.partitions.iter().map(|p| p.entries.len()).sum()
    }

    /// Registers a canary about to be produced to `partition` and returns its
    /// seq. `partition` must be a real partition (non-negative).
    pub fn on_send(&mut self, partition: i32, now: Instant) -> u64 {
        // Partitions come from the topic's metadata; one out of range
        // (never seen) is counted on partition 0 rather than allocated.
        let partition = if (0..=MAX_PARTITION).contains(&partition) {
            partition
        } else {
            0
        };
        let Some(p) = self.partition_mut(partition) else {
            return 0;
        };
        let seq = p.next_seq();
        p.entries.push_back(Entry {
            sent: now,
            state: State::Pending,
            early: None,
        });
        self.in_flight += 1;
        seq
    }

    fn entry(&mut self, partition: i32, seq: u64) -> Option<&mut Entry> {
        let p = self.partitions.get_mut(usize::try_from(partition).ok()?)?;
        let offset = usize::try_from(seq.checked_sub(p.base)?).ok()?;
        p.entries.get_mut(offset)
    }

    /// The delivery report for a canary: `ok` when the broker acked it.
    /// Produce latency and failures are the input side's business; this
    /// only settles what the ack means for the output. Returns whether the
    /// report was for a canary still waiting for it (not one already given
    /// up as [`Outcome::Unacknowledged`], nor one it does not know).
    pub fn on_ack(
        &mut self,
        partition: i32,
        seq: u64,
        ok: bool,
        now: Instant,
        out: &mut impl FnMut(Outcome),
    ) -> bool {
        let deadline = self.deadline;
        let Some(entry) = self.entry(partition, seq) else {
            return false;
        };
        if entry.state != State::Pending {
            return false;
        }
        if !ok {
            // An availability error (counted by the producer side), never a
            // loss. Had it arrived already, the broker wrote it after all.
            entry.state = State::Failed;
            let arrivals = entry.early.map_or(0, |(_, _, more)| 1 + u32::from(more));
            self.in_flight -= 1;
            for _ in 0..arrivals {
                out(Outcome::FailedButArrived { partition, seq });
            }
            return true;
        }
        let age = now.saturating_duration_since(entry.sent);
        match entry.early {
            Some((latency, out_of_order, more)) => {
                entry.state = State::Arrived;
                self.in_flight -= 1;
                first_arrival(deadline, partition, seq, latency, out_of_order, out);
                for _ in 0..more {
                    out(Outcome::Duplicate { partition });
                }
            }
            None if age >= deadline => {
                // Acked after its deadline without having arrived: lost now;
                // waiting for the expiry tick would only delay the news.
                entry.state = State::Lost;
                self.in_flight -= 1;
                out(Outcome::Lost { partition, seq });
            }
            None => entry.state = State::Acked,
        }
        true
    }

    /// An arrival of one of this tracker's canaries, at `now`.
    pub fn on_arrival(
        &mut self,
        partition: i32,
        seq: u64,
        now: Instant,
        out: &mut impl FnMut(Outcome),
    ) -> Arrival {
        self.on_arrival_at(partition, seq, Some(now), out)
    }

    /// An arrival of one of this tracker's canaries at `at`, or at a time
    /// not known (`None`: read while catching up, from a record that does
    /// not say when it was written; a first arrival is then delivered,
    /// untimed).
    pub fn on_arrival_at(
        &mut self,
        partition: i32,
        seq: u64,
        at: Option<Instant>,
        out: &mut impl FnMut(Outcome),
    ) -> Arrival {
        let deadline = self.deadline;
        let Some(p) = usize::try_from(partition)
            .ok()
            .and_then(|i| self.partitions.get_mut(i))
        else {
            return Arrival::Unknown;
        };
        if seq >= p.next_seq() {
            return Arrival::Unknown;
        }
        if seq < p.base {
            if seq < p.floor {
                return Arrival::Untracked;
            }
            let forgotten = seq < p.forgotten;
            let found = p
                .resolved
                .binary_search_by_key(&seq, |r| r.0)
                .ok()
                .map(|i| &mut p.resolved[i].1);
            return match found {
                Some(r @ Resolved::Lost) => {
                    // Later copies are duplicates of this late arrival.
                    *r = Resolved::Late;
                    out(Outcome::Late { partition });
                    Arrival::Counted
                }
                Some(Resolved::Failed) => {
                    out(Outcome::FailedButArrived { partition, seq });
                    Arrival::Counted
                }
                Some(r @ Resolved::Unsent) => {
                    // Sent after all, when is unknown (see
                    // `Tracker::unsaved_sent` for one that tells).
                    *r = Resolved::Late;
                    out(Outcome::Abandoned {
                        partition,
                        seq,
                        reason: Abandon::SentAfterLastSave,
                    });
                    Arrival::Counted
                }
                None if forgotten => {
                    out(Outcome::LateOrDuplicate { partition });
                    Arrival::Counted
                }
                Some(Resolved::Late) | None => {
                    out(Outcome::Duplicate { partition });
                    Arrival::Counted
                }
            };
        }
        let offset = (seq - p.base) as usize;
        let max_arrived = p.max_arrived;
        let entry = &mut p.entries[offset];
        let latency = at.map(|at| at.saturating_duration_since(entry.sent));
        match entry.state {
            State::Failed => {
                out(Outcome::FailedButArrived { partition, seq });
                return Arrival::Counted;
            }
            State::Arrived => {
                out(Outcome::Duplicate { partition });
                return Arrival::Counted;
            }
            State::Pending if entry.early.is_some() => {
                // Another copy before the ack: a duplicate, or one more
                // arrival of a failed produce; the ack decides.
                if let Some((_, _, more)) = &mut entry.early {
                    *more = more.saturating_add(1);
                }
                return Arrival::AwaitingAck;
            }
            State::Lost => {
                entry.state = State::Arrived;
                out(Outcome::Late { partition });
                return Arrival::Counted;
            }
            State::Unsaved => {
                entry.state = State::Arrived;
                out(Outcome::Abandoned {
                    partition,
                    seq,
                    reason: Abandon::SentAfterLastSave,
                });
                return Arrival::Counted;
            }
            State::Pending | State::Acked | State::Restored => {}
        }
        let out_of_order = max_arrived.is_some_and(|m| m > seq);
        p.max_arrived = Some(max_arrived.map_or(seq, |m| m.max(seq)));
        if entry.state == State::Pending {
            entry.early = Some((latency, out_of_order, 0));
            return Arrival::AwaitingAck;
        }
        entry.state = State::Arrived;
        self.in_flight -= 1;
        first_arrival(deadline, partition, seq, latency, out_of_order, out);
        Arrival::Counted
    }

    /// Resolves every canary whose deadline has passed: acked and unseen ones
    /// are lost. Call it periodically; it only looks at partition fronts.
    /// What a restart needs: next seqs and unresolved canaries, their send
    /// times as wall-clock Unix nanoseconds (`now` is `now_unix_ns`).
    pub fn snapshot(&self, now: Instant, now_unix_ns: u64) -> TrackerSnapshot {
        let mut snap = TrackerSnapshot::default();
        for (index, p) in self.partitions.iter().enumerate() {
            let partition = index as i32;
            snap.next_seq.push((partition, p.next_seq()));
            if p.floor > 0 {
                snap.floor.push((partition, p.floor));
            }
            for (i, e) in p.entries.iter().enumerate() {
                let acked = match e.state {
                    State::Acked => true,
                    State::Pending | State::Restored => false,
                    State::Lost | State::Failed | State::Arrived | State::Unsaved => continue,
                };
                let age = now.saturating_duration_since(e.sent).as_nanos() as u64;
                snap.unresolved.push(SavedCanary {
                    partition,
                    seq: p.base + i as u64,
                    sent_unix_ns: now_unix_ns.saturating_sub(age),
                    acked,
                });
            }
            // Resolved ones still in the deque (lost or failed behind an
            // unresolved front) are saved too: they are remembered once
            // they leave it.
            let in_deque = p.entries.iter().enumerate().filter_map(|(i, e)| {
                let kind = match e.state {
                    State::Lost => Resolved::Lost,
                    State::Failed => Resolved::Failed,
                    // Below the saved next seq, it would read as arrived.
                    State::Unsaved => Resolved::Unsent,
                    _ => return None,
                };
                Some((p.base + i as u64, kind))
            });
            let mut runs: Vec<ResolvedRun> = Vec::new();
            for (seq, kind) in p.resolved.iter().copied().chain(in_deque) {
                let outcome = kind.saved();
                match runs.last_mut() {
                    Some(r) if r.outcome == outcome && r.first + r.count == seq => r.count += 1,
                    _ => runs.push(ResolvedRun {
                        partition,
                        first: seq,
                        count: 1,
                        outcome,
                    }),
                }
            }
            // Only the newest runs are saved; the older ones are forgotten.
            let keep = (SAVED_RUNS / self.partitions.len().max(1)).max(1);
            let mut forgotten = p.forgotten;
            if runs.len() > keep {
                let dropped = runs.len() - keep;
                let last = &runs[dropped - 1];
                forgotten = forgotten.max(last.first + last.count);
                runs.drain(..dropped);
            }
            if forgotten > 0 {
                snap.forgotten.push((partition, forgotten));
            }
            snap.resolved.extend(runs);
        }
        snap
    }

    /// A tracker continuing `s`, saved by an earlier run (same run id):
    /// each partition of `until` goes on from there (the probe's next seq:
    /// the highest any of its outputs saved, plus the seqs the earlier run
    /// may have sent after its last save). Unresolved canaries keep their
    /// wall-clock send times (clamped to now if the clock stepped back);
    /// remembered resolved ones keep their outcome; an arrival of any
    /// other seq below the saved next one is a duplicate. A seq from the
    /// saved next one up to `until` that arrives is abandoned (its send
    /// time is unknown), never foreign nor mistaken for a new canary.
    /// What a damaged file holds out of range (a negative or huge
    /// partition, a span over [`MAX_RESTORED_SPAN`], runs out of order or
    /// not below the unresolved ones) is left out: returns how many items
    /// were.
    pub fn restore(
        &mut self,
        s: &TrackerSnapshot,
        until: &BTreeMap<i32, u64>,
        now: Instant,
        now_unix_ns: u64,
    ) -> usize {
        let mut skipped = 0;
        // Remembered canaries restored, all partitions together.
        let mut budget = RESOLVED_MEMORY as u64;
        let lookup = |v: &[(i32, u64)], partition: i32| {
            v.iter().find(|(p, _)| *p == partition).map(|(_, x)| *x)
        };
        for (&partition, &until) in until {
            let next = lookup(&s.next_seq, partition).unwrap_or(until).min(until);
            let mine: Vec<&SavedCanary> = s
                .unresolved
                .iter()
                .filter(|c| c.partition == partition && c.seq < next)
                .collect();
            let mut base = mine.iter().map(|c| c.seq).min().unwrap_or(next);
            if until - base > MAX_RESTORED_SPAN {
                skipped += mine.len();
                base = until;
            }
            let Some(p) = self.partition_mut(partition) else {
                skipped += 1;
                continue;
            };
            p.base = base;
            p.floor = lookup(&s.floor, partition).unwrap_or(0).min(base);
            p.forgotten = lookup(&s.forgotten, partition).unwrap_or(0).min(base);
            p.entries = (base..until)
                .map(|seq| Entry {
                    sent: now,
                    state: if seq < next {
                        State::Arrived
                    } else {
                        State::Unsaved
                    },
                    early: None,
                })
                .collect();
            // Remembered outcomes, in seq order from the floor: below the
            // unresolved ones within the memory's bound, and among them
            // (resolved behind an unresolved one) in their entries.
            let mut from = p.floor;
            let mut remembered: Vec<(u64, Resolved)> = Vec::new();
            for r in s.resolved.iter().filter(|r| r.partition == partition) {
                let Some(end) = r.first.checked_add(r.count).filter(|_| r.first >= from) else {
                    skipped += 1;
                    continue;
                };
                if end <= base && r.count <= budget {
                    budget -= r.count;
                    remembered.extend((r.first..end).map(|seq| (seq, r.outcome.into())));
                } else if r.first >= base && end <= next {
                    for e in p
                        .entries
                        .range_mut((r.first - base) as usize..(end - base) as usize)
                    {
                        e.state = match r.outcome {
                            SavedResolved::Lost => State::Lost,
                            SavedResolved::Failed => State::Failed,
                            SavedResolved::Late => State::Arrived,
                            SavedResolved::Unsent => State::Unsaved,
                        };
                    }
                } else {
                    skipped += 1;
                    continue;
                }
                from = end;
            }
            let mut restored = 0;
            for c in mine {
                let Some(e) = c
                    .seq
                    .checked_sub(base)
                    .and_then(|i| p.entries.get_mut(i as usize))
                else {
                    continue;
                };
                if matches!(e.state, State::Acked | State::Restored) {
                    continue;
                }
                let age = Duration::from_nanos(now_unix_ns.saturating_sub(c.sent_unix_ns));
                e.sent = now.checked_sub(age).unwrap_or(now);
                e.state = if c.acked {
                    State::Acked
                } else {
                    State::Restored
                };
                restored += 1;
            }
            if restored > 0 {
                p.restored_below = until;
                self.hold = Some(now + CATCH_UP_LIMIT);
            }
            self.in_flight += restored;
            for (seq, kind) in remembered {
                self.remember(partition as usize, seq, kind);
            }
            self.forget_over_bound();
        }
        skipped
    }

    /// Whether restored canaries are held from expiry (see
    /// [`Tracker::release`]).
    pub fn holding(&self) -> bool {
        self.hold.is_some()
    }

    /// The output's consumer has read everything written before this
    /// process started reading it: restored canaries are judged from now
    /// on like any other. Until then (at most [`CATCH_UP_LIMIT`] after the
    /// restore) one that has not arrived may still be in what is left to
    /// read, and calling it lost would be a false loss.
    pub fn release(&mut self) {
        self.hold = None;
    }

    /// A seq an earlier run may have sent after its last save turned up
    /// with its send time (`age` before `now`, from the record's
    /// `slaprobe-sent-ns` header): it was sent and written. Still in
    /// flight, it is judged like any acked canary by the arrival that
    /// follows (returns false). Already expired (silently: it might not
    /// have been sent), it is judged here, by its send time, and the
    /// arrival is counted (returns true): delivered within the deadline,
    /// otherwise lost, then late.
    pub fn unsaved_sent(
        &mut self,
        partition: i32,
        seq: u64,
        age: Duration,
        now: Instant,
        out: &mut impl FnMut(Outcome),
    ) -> bool {
        if let Some(e) = self.entry(partition, seq) {
            if e.state == State::Unsaved {
                e.state = State::Acked;
                e.sent = now.checked_sub(age).unwrap_or(now);
                self.in_flight += 1;
            }
            return false;
        }
        let deadline = self.deadline;
        let Some(p) = usize::try_from(partition)
            .ok()
            .and_then(|i| self.partitions.get_mut(i))
        else {
            return false;
        };
        if seq >= p.base || seq < p.floor {
            return false;
        }
        match p.resolved.binary_search_by_key(&seq, |r| r.0) {
            Ok(i) if p.resolved[i].1 == Resolved::Unsent => {
                // Later copies are duplicates.
                p.resolved[i].1 = Resolved::Late;
                first_arrival(deadline, partition, seq, Some(age), false, out);
                true
            }
            _ => false,
        }
    }

    /// Gives up every unresolved canary sent to input `partition`, or to
    /// any partition with `None` (an output partition could not be resumed
    /// where the restart left it; when the output is another topic, which
    /// canaries its records held is unknown).
    pub fn abandon(
        &mut self,
        partition: Option<i32>,
        reason: Abandon,
        out: &mut impl FnMut(Outcome),
    ) {
        for (index, p) in self.partitions.iter_mut().enumerate() {
            let this = index as i32;
            if partition.is_some_and(|want| want != this) {
                continue;
            }
            for (i, e) in p.entries.iter_mut().enumerate() {
                if matches!(e.state, State::Pending | State::Acked | State::Restored) {
                    e.state = State::Failed;
                    self.in_flight -= 1;
                    out(Outcome::Abandoned {
                        partition: this,
                        seq: p.base + i as u64,
                        reason,
                    });
                }
            }
        }
    }

    pub fn expire(&mut self, now: Instant, out: &mut impl FnMut(Outcome)) {
        if self.hold.is_some_and(|until| now >= until) {
            self.hold = None;
        }
        let held = self.hold.is_some();
        for (index, p) in self.partitions.iter_mut().enumerate() {
            let partition = index as i32;
            while let Some(front) = p.entries.front() {
                if now.saturating_duration_since(front.sent) < self.deadline
                    || (held && p.base < p.restored_below)
                {
                    break;
                }
                let resolved = match front.state {
                    // The producer's message timeout equals the deadline, so
                    // its report is imminent and decides; acks come in order
                    // per partition, so nothing behind it is waiting long.
                    State::Pending
                        if now.saturating_duration_since(front.sent)
                            < self.deadline + ACK_GRACE =>
                    {
                        break
                    }
                    State::Pending => {
                        out(Outcome::Unacknowledged {
                            partition,
                            seq: p.base,
                        });
                        let arrivals = front.early.map_or(0, |(_, _, more)| 1 + u32::from(more));
                        for _ in 0..arrivals {
                            out(Outcome::FailedButArrived {
                                partition,
                                seq: p.base,
                            });
                        }
                        self.in_flight -= 1;
                        Some(Resolved::Failed)
                    }
                    State::Acked => {
                        out(Outcome::Lost {
                            partition,
                            seq: p.base,
                        });
                        self.in_flight -= 1;
                        Some(Resolved::Lost)
                    }
                    State::Restored => {
                        out(Outcome::Abandoned {
                            partition,
                            seq: p.base,
                            reason: Abandon::UnacknowledgedAtRestart,
                        });
                        self.in_flight -= 1;
                        Some(Resolved::Failed)
                    }
                    State::Lost => Some(Resolved::Lost),
                    State::Failed => Some(Resolved::Failed),
                    // Maybe never sent: nothing to report, but remembered
                    // (an arrival after all is judged by its send time).
                    State::Unsaved => Some(Resolved::Unsent),
                    State::Arrived => None,
                };
                if let Some(kind) = resolved {
                    p.resolved.push_back((p.base, kind));
                    self.resolved_order.push_back(index as u32);
                    self.memory.held.fetch_add(1, Ordering::Relaxed);
                }
                p.entries.pop_front();
                p.base += 1;
            }
        }
        self.forget_over_bound();
    }

    /// Resolved canaries remembered (for tests of the bound).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.partitions.iter().map(|p| p.resolved.len()).sum()
    }
}

/// The outcome of an acked canary's first arrival: delivered before the
/// deadline; otherwise (arrived past it, before the expiry tick or its own
/// ack declared it) lost, then late.
fn first_arrival(
    deadline: Duration,
    partition: i32,
    seq: u64,
    latency: Option<Duration>,
    out_of_order: bool,
    out: &mut impl FnMut(Outcome),
) {
    let Some(latency) = latency else {
        out(Outcome::DeliveredUntimed {
            partition,
            out_of_order,
        });
        return;
    };
    if latency < deadline {
        out(Outcome::Delivered {
            partition,
            latency,
            out_of_order,
        });
    } else {
        out(Outcome::Lost { partition, seq });
        out(Outcome::Late { partition });
    }
}

#[cfg(test)]
mod tests;
