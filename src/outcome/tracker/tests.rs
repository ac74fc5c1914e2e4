//! The tracker's unit tests, one per outcome rule, time passed in. Over
//! 600 lines: each rule's case is spelled out send by send so that a
//! failure reads as the canary's life, not as a helper's parameters.

use super::*;

const DEADLINE: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `f` against the tracker and returns the outcomes it emitted.
fn collect<R>(f: impl FnOnce(&mut dyn FnMut(Outcome)) -> R) -> Vec<Outcome> {
    let mut v = Vec::new();
    f(&mut |o| v.push(o));
    v
}

/// Where a probe whose only output saved `s` goes on: `skip` seqs past
/// each saved next one.
fn until(s: &TrackerSnapshot, skip: u64) -> BTreeMap<i32, u64> {
    s.next_seq.iter().map(|(p, n)| (*p, n + skip)).collect()
}

fn acked(t: &mut Tracker, partition: i32, sent: Instant, ack_after: Duration) -> u64 {
    let seq = t.on_send(partition, sent);
    t.on_ack(partition, seq, true, sent + ack_after, &mut |_| {});
    seq
}

#[test]
fn delivered_with_latency_from_send() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let seq = t.on_send(2, t0);
    assert_eq!(seq, 0);
    assert_eq!(t.in_flight(), 1);
    let acks = collect(|o| t.on_ack(2, seq, true, t0 + ms(3), &mut |x| o(x)));
    assert!(acks.is_empty());
    let out = collect(|o| {
        assert_eq!(
            t.on_arrival(2, seq, t0 + ms(7), &mut |x| o(x)),
            Arrival::Counted
        );
    });
    assert_eq!(
        out,
        vec![Outcome::Delivered {
            partition: 2,
            latency: ms(7),
            out_of_order: false
        }]
    );
    assert_eq!(t.in_flight(), 0);
    // Expiry later removes it silently.
    assert!(collect(|o| t.expire(t0 + DEADLINE, &mut |x| o(x))).is_empty());
    assert_eq!(t.entries(), 0);
}

#[test]
fn lost_exactly_at_the_deadline_and_not_before() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    acked(&mut t, 0, t0, ms(1));
    assert!(collect(|o| t.expire(t0 + DEADLINE - ms(1), &mut |x| o(x))).is_empty());
    assert_eq!(
        collect(|o| t.expire(t0 + DEADLINE, &mut |x| o(x))),
        vec![Outcome::Lost {
            partition: 0,
            seq: 0
        }]
    );
    assert_eq!(t.in_flight(), 0);
    assert_eq!(t.entries(), 0);
    // Expiring again reports nothing more.
    assert!(collect(|o| t.expire(t0 + DEADLINE * 2, &mut |x| o(x))).is_empty());
}

#[test]
fn late_after_lost_then_duplicate() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let seq = acked(&mut t, 0, t0, ms(1));
    t.expire(t0 + DEADLINE, &mut |_| {});
    let out = collect(|o| {
        t.on_arrival(0, seq, t0 + DEADLINE + ms(5), &mut |x| o(x));
    });
    assert_eq!(out, vec![Outcome::Late { partition: 0 }]);
    let out = collect(|o| {
        t.on_arrival(0, seq, t0 + DEADLINE + ms(6), &mut |x| o(x));
    });
    assert_eq!(out, vec![Outcome::Duplicate { partition: 0 }]);
}

#[test]
fn arrival_past_deadline_before_the_tick_is_lost_and_late() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let seq = acked(&mut t, 0, t0, ms(1));
    let out = collect(|o| {
        t.on_arrival(0, seq, t0 + DEADLINE + ms(1), &mut |x| o(x));
    });
    assert_eq!(
        out,
        vec![
            Outcome::Lost {
                partition: 0,
                seq: 0
            },
            Outcome::Late { partition: 0 }
        ]
    );
    assert_eq!(t.in_flight(), 0);
    assert!(collect(|o| t.expire(t0 + DEADLINE * 2, &mut |x| o(x))).is_empty());
}

#[test]
fn duplicates_before_and_after_expiry() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let seq = acked(&mut t, 1, t0, ms(1));
    t.on_arrival(1, seq, t0 + ms(5), &mut |_| {});
    let out = collect(|o| {
        t.on_arrival(1, seq, t0 + ms(6), &mut |x| o(x));
    });
    assert_eq!(out, vec![Outcome::Duplicate { partition: 1 }]);
    t.expire(t0 + DEADLINE, &mut |_| {});
    let out = collect(|o| {
        t.on_arrival(1, seq, t0 + DEADLINE * 3, &mut |x| o(x));
    });
    assert_eq!(out, vec![Outcome::Duplicate { partition: 1 }]);
}

#[test]
fn out_of_order_per_partition() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let a = acked(&mut t, 0, t0, ms(1));
    let b = acked(&mut t, 0, t0 + ms(1), ms(1));
    let c = acked(&mut t, 1, t0 + ms(1), ms(1));
    // b before a on partition 0: a is out of order. c on partition 1 is not.
    let mut got = Vec::new();
    for (p, s) in [(0, b), (0, a), (1, c)] {
        t.on_arrival(p, s, t0 + ms(9), &mut |o| got.push(o));
    }
    let flags: Vec<(i32, bool)> = got
        .iter()
        .map(|o| match o {
            Outcome::Delivered {
                partition,
                out_of_order,
                ..
            } => (*partition, *out_of_order),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(flags, vec![(0, false), (0, true), (1, false)]);
}

#[test]
fn arrival_before_ack_is_delivered_on_ack() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let seq = t.on_send(0, t0);
    assert_eq!(
        t.on_arrival(0, seq, t0 + ms(4), &mut |_| panic!("no outcome yet")),
        Arrival::AwaitingAck
    );
    let out = collect(|o| t.on_ack(0, seq, true, t0 + ms(6), &mut |x| o(x)));
    assert_eq!(
        out,
        vec![Outcome::Delivered {
            partition: 0,
            latency: ms(4),
            out_of_order: false
        }]
    );
    assert_eq!(t.in_flight(), 0);
}

#[test]
fn failed_produce_is_never_a_loss() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let seq = t.on_send(0, t0);
    let out = collect(|o| t.on_ack(0, seq, false, t0 + DEADLINE, &mut |x| o(x)));
    assert!(out.is_empty());
    assert_eq!(t.in_flight(), 0);
    assert!(collect(|o| t.expire(t0 + DEADLINE * 2, &mut |x| o(x))).is_empty());
    // It showed up after all: not a delivery, not a duplicate; each
    // copy is one such arrival.
    for _ in 0..2 {
        assert_eq!(
            collect(|o| t.on_arrival(0, seq, t0 + DEADLINE * 2, &mut |x| o(x))),
            vec![Outcome::FailedButArrived { partition: 0, seq }]
        );
    }
}

#[test]
fn an_arrival_before_a_failed_report_is_counted_with_the_report() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let seq = t.on_send(0, t0);
    let mut none = |o| panic!("no outcome: {o:?}");
    assert_eq!(t.on_arrival(0, seq, t0, &mut none), Arrival::AwaitingAck);
    assert_eq!(
        collect(|o| t.on_ack(0, seq, false, t0, &mut |x| o(x))),
        vec![Outcome::FailedButArrived { partition: 0, seq }]
    );
    // Arrived, then no report at all: unacknowledged, and arrived.
    let seq = t.on_send(0, t0);
    assert_eq!(t.on_arrival(0, seq, t0, &mut none), Arrival::AwaitingAck);
    assert_eq!(
        collect(|o| t.expire(t0 + DEADLINE + ACK_GRACE, &mut |x| o(x))),
        vec![
            Outcome::Unacknowledged { partition: 0, seq },
            Outcome::FailedButArrived { partition: 0, seq }
        ]
    );
    assert_eq!(t.in_flight(), 0);
}

/// Two copies of a canary in the log (an idempotent producer that
/// bumped its epoch and sent it again) read before its report: both are
/// arrivals of a failed produce when the report says failed (the chaos
/// run found the second counted as a duplicate), a delivery and a
/// duplicate when it says acked.
#[test]
fn copies_read_before_the_report_are_judged_by_it() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let mut none = |o| panic!("no outcome before the report: {o:?}");
    let failed = t.on_send(0, t0);
    for _ in 0..2 {
        assert_eq!(
            t.on_arrival(0, failed, t0 + ms(5), &mut none),
            Arrival::AwaitingAck
        );
    }
    assert_eq!(
        collect(|o| t.on_ack(0, failed, false, t0 + ms(6), &mut |x| o(x))),
        vec![
            Outcome::FailedButArrived {
                partition: 0,
                seq: failed
            },
            Outcome::FailedButArrived {
                partition: 0,
                seq: failed
            }
        ]
    );
    let acked = t.on_send(0, t0);
    for _ in 0..2 {
        assert_eq!(
            t.on_arrival(0, acked, t0 + ms(5), &mut none),
            Arrival::AwaitingAck
        );
    }
    assert_eq!(
        collect(|o| t.on_ack(0, acked, true, t0 + ms(6), &mut |x| o(x))),
        vec![
            Outcome::Delivered {
                partition: 0,
                latency: ms(5),
                out_of_order: false
            },
            Outcome::Duplicate { partition: 0 }
        ]
    );
    assert_eq!(t.in_flight(), 0);
}

#[test]
fn pending_front_waits_for_its_ack() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let seq = t.on_send(0, t0);
    // Until deadline + grace, the report is awaited.
    assert!(collect(|o| t.expire(t0 + DEADLINE + ACK_GRACE - ms(1), &mut |x| o(x))).is_empty());
    assert_eq!(t.in_flight(), 1);
    // Acked late and never seen: lost right away.
    let out = collect(|o| t.on_ack(0, seq, true, t0 + DEADLINE + ms(1), &mut |x| o(x)));
    assert_eq!(
        out,
        vec![Outcome::Lost {
            partition: 0,
            seq: 0
        }]
    );
    assert_eq!(t.in_flight(), 0);
    t.expire(t0 + DEADLINE * 2, &mut |_| panic!("already reported"));
    assert_eq!(t.entries(), 0);
    // And then it turns up: late.
    let out = collect(|o| {
        t.on_arrival(0, seq, t0 + DEADLINE * 3, &mut |x| o(x));
    });
    assert_eq!(out, vec![Outcome::Late { partition: 0 }]);
}

#[test]
fn a_delivery_report_that_never_comes_is_a_failed_produce_and_unblocks_expiry() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let stuck = t.on_send(0, t0);
    let behind = acked(&mut t, 0, t0 + ms(10), ms(1));
    // At the deadline it still waits for the report...
    assert!(collect(|o| t.expire(t0 + DEADLINE + ms(20), &mut |x| o(x))).is_empty());
    assert_eq!(t.in_flight(), 2);
    // ...and at deadline + grace gives up on it; the one behind it is
    // declared lost at last instead of waiting for ever.
    let out = collect(|o| t.expire(t0 + DEADLINE + ACK_GRACE + ms(20), &mut |x| o(x)));
    assert_eq!(
        out,
        vec![
            Outcome::Unacknowledged {
                partition: 0,
                seq: stuck
            },
            Outcome::Lost {
                partition: 0,
                seq: behind
            },
        ]
    );
    assert_eq!((t.in_flight(), t.entries()), (0, 0));
    // A report that turns up after all settles nothing.
    let mut none = |_| panic!("no outcome");
    assert!(!t.on_ack(0, stuck, true, t0 + DEADLINE * 2, &mut none));
    // Its canary arriving is no delivery: its produce counts as failed.
    assert_eq!(
        collect(|o| t.on_arrival(0, stuck, t0 + DEADLINE * 2, &mut |x| o(x))),
        vec![Outcome::FailedButArrived {
            partition: 0,
            seq: stuck
        }]
    );
}

#[test]
fn a_restored_tracker_continues_seqs_and_settles_what_was_in_flight() {
    let t0 = Instant::now();
    let unix0: u64 = 1_800_000_000_000_000_000;
    let mut t = Tracker::new(DEADLINE);
    let delivered = acked(&mut t, 0, t0, ms(1));
    t.on_arrival(0, delivered, t0 + ms(5), &mut |_| {});
    let inside = acked(&mut t, 0, t0 + ms(100), ms(1));
    let unsure = t.on_send(0, t0 + ms(200));
    let other = acked(&mut t, 2, t0 + ms(300), ms(1));
    let saved = t.snapshot(t0 + ms(400), unix0);
    assert_eq!(saved.unresolved.len(), 3);
    assert_eq!(saved.unresolved[0].sent_unix_ns, unix0 - 300_000_000);

    // The new process, two seconds later by both clocks.
    let t1 = t0 + Duration::from_secs(2);
    let mut r = Tracker::new(DEADLINE);
    r.restore(&saved, &until(&saved, 0), t1, unix0 + 1_600_000_000);
    assert_eq!(r.in_flight(), 3);
    assert_eq!(r.on_send(0, t1), unsure + 1, "seqs go on");
    // The acked one arrives: delivered, its latency from its send.
    let out = collect(|o| r.on_arrival(0, inside, t1 + ms(100), &mut |x| o(x)));
    assert_eq!(
        out,
        vec![Outcome::Delivered {
            partition: 0,
            latency: ms(2000),
            out_of_order: false
        }]
    );
    // The one delivered before the restart would be a duplicate.
    let out = collect(|o| r.on_arrival(0, delivered, t1, &mut |x| o(x)));
    assert_eq!(out, vec![Outcome::Duplicate { partition: 0 }]);
    // Its output caught up: the unacknowledged one is abandoned at its
    // deadline, the one of partition 2 lost, and the new send waits for
    // its own report.
    assert!(r.holding());
    r.release();
    let out = collect(|o| r.expire(t0 + DEADLINE + ms(350), &mut |x| o(x)));
    assert_eq!(
        out,
        vec![
            Outcome::Abandoned {
                partition: 0,
                seq: unsure,
                reason: Abandon::UnacknowledgedAtRestart
            },
            Outcome::Lost {
                partition: 2,
                seq: other
            },
        ]
    );
    assert_eq!(r.in_flight(), 1);
}

#[test]
fn restored_canaries_wait_for_the_output_to_catch_up() {
    let t0 = Instant::now();
    let unix0: u64 = 1_800_000_000_000_000_000;
    let mut t = Tracker::new(DEADLINE);
    let written = acked(&mut t, 0, t0, ms(1));
    let gone = acked(&mut t, 0, t0 + ms(100), ms(1));
    let saved = t.snapshot(t0 + ms(200), unix0);
    // Down for twice the deadline: both are past it when the new
    // process starts, and its consumer has not read anything yet.
    let t1 = t0 + DEADLINE * 2;
    let mut r = Tracker::new(DEADLINE);
    r.restore(&saved, &until(&saved, 0), t1, unix0 + 20_000_000_000);
    assert!(r.holding());
    let later = r.on_send(0, t1);
    r.on_ack(0, later, true, t1 + ms(1), &mut |_| {});
    let mut none = |o| panic!("nothing is judged while catching up: {o:?}");
    r.expire(t1 + DEADLINE * 2, &mut none);
    // Read while catching up: written while no process read the
    // output, at a time its record does not tell.
    assert_eq!(
        collect(|o| r.on_arrival_at(0, written, None, &mut |x| o(x))),
        vec![Outcome::DeliveredUntimed {
            partition: 0,
            out_of_order: false
        }]
    );
    // Caught up: the one that never came is lost, and the canary sent
    // since (behind it) is judged too.
    r.release();
    assert_eq!(
        collect(|o| r.expire(t1 + DEADLINE * 2, &mut |x| o(x))),
        vec![
            Outcome::Lost {
                partition: 0,
                seq: gone
            },
            Outcome::Lost {
                partition: 0,
                seq: later
            },
        ]
    );
    assert_eq!(r.in_flight(), 0);
}

#[test]
fn an_output_that_never_catches_up_is_judged_after_the_limit() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let gone = acked(&mut t, 0, t0, ms(1));
    let saved = t.snapshot(t0, 1_000_000_000_000);
    let mut r = Tracker::new(DEADLINE);
    r.restore(&saved, &until(&saved, 0), t0, 1_000_000_000_000);
    r.expire(t0 + CATCH_UP_LIMIT - ms(1), &mut |o| {
        panic!("held within the limit: {o:?}")
    });
    assert_eq!(
        collect(|o| r.expire(t0 + CATCH_UP_LIMIT, &mut |x| o(x))),
        vec![Outcome::Lost {
            partition: 0,
            seq: gone
        }]
    );
    assert!(!r.holding());
}

#[test]
fn seqs_the_earlier_run_may_have_sent_after_its_last_save_are_skipped() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let last_saved = acked(&mut t, 0, t0, ms(1));
    let saved = t.snapshot(t0, 1_000_000_000);
    let mut r = Tracker::new(DEADLINE);
    r.restore(&saved, &until(&saved, 10), t0, 1_000_000_000);
    assert_eq!(r.in_flight(), 1);
    // The new run's first canary does not reuse a seq the old one may
    // have used.
    assert_eq!(r.on_send(0, t0), last_saved + 11);
    // One the old run did send after its save turns up: abandoned once,
    // then a duplicate.
    let out = collect(|o| r.on_arrival(0, last_saved + 3, t0 + ms(5), &mut |x| o(x)));
    assert_eq!(
        out,
        vec![Outcome::Abandoned {
            partition: 0,
            seq: last_saved + 3,
            reason: Abandon::SentAfterLastSave
        }]
    );
    let out = collect(|o| r.on_arrival(0, last_saved + 3, t0 + ms(6), &mut |x| o(x)));
    assert_eq!(out, vec![Outcome::Duplicate { partition: 0 }]);
    // The others were maybe never sent: they expire without a word,
    // once the output has caught up.
    r.release();
    let out = collect(|o| r.expire(t0 + DEADLINE + ms(10), &mut |x| o(x)));
    assert_eq!(
        out,
        vec![Outcome::Lost {
            partition: 0,
            seq: last_saved
        }]
    );
    assert_eq!(r.in_flight(), 1, "the new canary");
}

#[test]
fn an_unsaved_seq_with_its_send_time_is_delivered_like_any_other() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let last_saved = acked(&mut t, 0, t0, ms(1));
    let mut r = Tracker::new(DEADLINE);
    let saved = t.snapshot(t0, 1_000_000_000);
    r.restore(&saved, &until(&saved, 10), t0, 1_000_000_000);
    let seq = last_saved + 2;
    let mut none = |o| panic!("judged by the arrival that follows: {o:?}");
    assert!(!r.unsaved_sent(0, seq, ms(700), t0 + ms(50), &mut none));
    assert_eq!(r.in_flight(), 2, "in flight from its send time");
    assert!(!r.unsaved_sent(0, seq, ms(700), t0 + ms(50), &mut none));
    assert_eq!(r.in_flight(), 2, "only once");
    let out = collect(|o| r.on_arrival(0, seq, t0 + ms(50), &mut |x| o(x)));
    assert_eq!(
        out,
        vec![Outcome::Delivered {
            partition: 0,
            latency: ms(700),
            out_of_order: false
        }]
    );
    assert_eq!(r.in_flight(), 1, "the saved one still awaits its arrival");
}

/// A seq skipped after a kill -9 expires without a word (it may never
/// have been sent), and is remembered across the next restart: when
/// it turns up after all, with its send time, it is judged by it (here
/// lost, then late), not taken for a duplicate of something that
/// arrived; without a send time it is abandoned.
#[test]
fn a_skipped_seq_that_arrives_after_its_deadline_is_lost_then_late() {
    let t0 = Instant::now();
    let unix0: u64 = 1_800_000_000_000_000_000;
    let mut t = Tracker::new(DEADLINE);
    let last_saved = acked(&mut t, 0, t0, ms(1));
    t.on_arrival(0, last_saved, t0 + ms(5), &mut |_| {});
    let saved = t.snapshot(t0, unix0);
    // The second run skips 3 seqs, sends one, and lets the skipped
    // ones expire silently.
    let mut r = Tracker::new(DEADLINE);
    r.restore(&saved, &until(&saved, 3), t0, unix0);
    let (timed, untimed) = (last_saved + 1, last_saved + 2);
    let sent = r.on_send(0, t0);
    r.on_ack(0, sent, true, t0 + ms(1), &mut |_| {});
    r.on_arrival(0, sent, t0 + ms(5), &mut |_| {});
    let mut none = |o| panic!("maybe never sent: {o:?}");
    r.expire(t0 + DEADLINE + ms(1), &mut none);
    assert_eq!(r.in_flight(), 0);
    // A third run, after a clean stop.
    let t1 = t0 + DEADLINE * 2;
    let saved = r.snapshot(t1, unix0 + 2 * DEADLINE.as_nanos() as u64);
    let mut third = Tracker::new(DEADLINE);
    third.restore(
        &saved,
        &until(&saved, 0),
        t1,
        unix0 + 2 * DEADLINE.as_nanos() as u64,
    );
    let out = collect(|o| {
        assert!(third.unsaved_sent(0, timed, DEADLINE * 3, t1, &mut |x| o(x)));
    });
    assert_eq!(
        out,
        vec![
            Outcome::Lost {
                partition: 0,
                seq: timed
            },
            Outcome::Late { partition: 0 }
        ]
    );
    assert_eq!(
        collect(|o| third.on_arrival(0, timed, t1, &mut |x| o(x))),
        vec![Outcome::Duplicate { partition: 0 }],
        "a second copy"
    );
    assert_eq!(
        collect(|o| third.on_arrival(0, untimed, t1, &mut |x| o(x))),
        vec![Outcome::Abandoned {
            partition: 0,
            seq: untimed,
            reason: Abandon::SentAfterLastSave
        }]
    );
    assert_eq!(
        collect(|o| third.on_arrival(0, sent, t1, &mut |x| o(x))),
        vec![Outcome::Duplicate { partition: 0 }],
        "the one that did arrive"
    );
}

#[test]
fn a_partition_that_cannot_be_resumed_abandons_its_canaries() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let a = acked(&mut t, 1, t0, ms(1));
    let mut r = Tracker::new(DEADLINE);
    let saved = t.snapshot(t0, 1_000_000_000);
    r.restore(&saved, &until(&saved, 0), t0, 1_000_000_000);
    let out = collect(|o| r.abandon(Some(1), Abandon::OffsetInvalid, &mut |x| o(x)));
    assert_eq!(
        out,
        vec![Outcome::Abandoned {
            partition: 1,
            seq: a,
            reason: Abandon::OffsetInvalid
        }]
    );
    assert_eq!(r.in_flight(), 0);
    r.expire(t0 + DEADLINE * 3, &mut |o| panic!("settled already: {o:?}"));
}

#[test]
fn unknown_seqs_and_partitions() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    acked(&mut t, 0, t0, ms(1));
    let mut none = |_| panic!("no outcome");
    assert_eq!(t.on_arrival(0, 1, t0, &mut none), Arrival::Unknown);
    assert_eq!(t.on_arrival(5, 0, t0, &mut none), Arrival::Unknown);
    assert_eq!(t.on_arrival(-1, 0, t0, &mut none), Arrival::Unknown);
    assert_eq!(
        t.on_arrival(i32::MAX, u64::MAX, t0, &mut none),
        Arrival::Unknown
    );
    t.on_ack(7, 0, true, t0, &mut none);
}

/// The bound is the process's: a tracker adding past it forgets its
/// own oldest, and an arrival of a forgotten one is neither late nor a
/// duplicate.
#[test]
fn resolved_memory_is_bounded_for_the_whole_process() {
    let t0 = Instant::now();
    let memory = Memory::new(100);
    let mut quiet = Tracker::new(ms(1));
    quiet.share(&memory);
    for i in 0..40 {
        acked(&mut quiet, 0, t0 + Duration::from_micros(i), Duration::ZERO);
    }
    quiet.expire(t0 + Duration::from_secs(5), &mut |_| {});
    assert_eq!(memory.held(), 40);
    let mut t = Tracker::new(ms(1));
    t.share(&memory);
    for i in 0..110 {
        acked(&mut t, 0, t0 + Duration::from_micros(i), Duration::ZERO);
    }
    t.expire(t0 + Duration::from_secs(5), &mut |_| {});
    assert_eq!(memory.held(), 100);
    assert_eq!((quiet.remembered(), t.remembered()), (40, 60));
    let mut outs = Vec::new();
    let later = t0 + Duration::from_secs(6);
    t.on_arrival(0, 0, later, &mut |o| outs.push(o));
    t.on_arrival(0, 109, later, &mut |o| outs.push(o));
    quiet.on_arrival(0, 0, later, &mut |o| outs.push(o));
    assert_eq!(
        outs,
        [
            Outcome::LateOrDuplicate { partition: 0 },
            Outcome::Late { partition: 0 },
            Outcome::Late { partition: 0 },
        ]
    );
    drop(t);
    assert_eq!(memory.held(), 40, "a dropped tracker gives its share back");
}

/// Lost and failed canaries are saved: one lost before a restart and
/// arriving after it is late (not a duplicate), a failed one that
/// shows up is no outcome, a delivered one is a duplicate.
#[test]
fn lost_and_failed_canaries_survive_a_restart() {
    let t0 = Instant::now();
    let mut t = Tracker::new(DEADLINE);
    let delivered = acked(&mut t, 0, t0, ms(1));
    t.on_arrival(0, delivered, t0 + ms(5), &mut |_| {});
    let lost = acked(&mut t, 0, t0 + ms(10), ms(1));
    let failed = t.on_send(0, t0 + ms(20));
    t.on_ack(0, failed, false, t0 + ms(21), &mut |_| {});
    let lost_too = acked(&mut t, 0, t0 + ms(30), ms(1));
    let out = collect(|o| t.expire(t0 + DEADLINE + ms(40), &mut |x| o(x)));
    assert_eq!(out.len(), 2, "{out:?}");
    let inflight = acked(&mut t, 0, t0 + DEADLINE, ms(1));
    let saved = t.snapshot(t0 + DEADLINE + ms(50), 1_000_000_000_000);
    assert_eq!(
        saved.resolved,
        vec![
            ResolvedRun {
                partition: 0,
                first: lost,
                count: 1,
                outcome: SavedResolved::Lost
            },
            ResolvedRun {
                partition: 0,
                first: failed,
                count: 1,
                outcome: SavedResolved::Failed
            },
            ResolvedRun {
                partition: 0,
                first: lost_too,
                count: 1,
                outcome: SavedResolved::Lost
            },
        ]
    );
    let mut r = Tracker::new(DEADLINE);
    let t1 = t0 + DEADLINE * 2;
    assert_eq!(
        r.restore(&saved, &until(&saved, 0), t1, 1_000_000_000_000),
        0
    );
    assert_eq!(
        collect(|o| r.on_arrival(0, failed, t1, &mut |x| o(x))),
        vec![Outcome::FailedButArrived {
            partition: 0,
            seq: failed
        }]
    );
    let out = collect(|o| {
        r.on_arrival(0, lost, t1, &mut |x| o(x));
        r.on_arrival(0, lost, t1, &mut |x| o(x));
        r.on_arrival(0, delivered, t1, &mut |x| o(x));
    });
    assert_eq!(
        out,
        vec![
            Outcome::Late { partition: 0 },
            Outcome::Duplicate { partition: 0 },
            Outcome::Duplicate { partition: 0 },
        ]
    );
    assert_eq!(r.in_flight(), 1);
    // Saved again after the restart: the late one stays late.
    let again = r.snapshot(t1, 1_000_000_000_000);
    assert!(again
        .resolved
        .iter()
        .any(|x| x.first == lost && x.outcome == SavedResolved::Late));
    let _ = inflight;
}

/// An output added (or re-topicked) across a restart starts clean at
/// the probe's seqs: it assigns the same seq as the restored outputs,
/// and an earlier canary is none of its business.
#[test]
fn a_new_output_starts_at_the_probes_seqs() {
    let t0 = Instant::now();
    let mut old = Tracker::new(DEADLINE);
    let before = acked(&mut old, 0, t0, ms(1));
    acked(&mut old, 1, t0, ms(1));
    let saved = old.snapshot(t0, 1_000_000_000_000);
    let start = until(&saved, 3);
    let mut restored = Tracker::new(DEADLINE);
    restored.restore(&saved, &start, t0, 1_000_000_000_000);
    let mut new = Tracker::starting_at(DEADLINE, &start);
    for p in [0, 1] {
        assert_eq!(restored.on_send(p, t0), new.on_send(p, t0));
    }
    let mut none = |o| panic!("no outcome: {o:?}");
    assert_eq!(new.on_arrival(0, before, t0, &mut none), Arrival::Untracked);
    // And so it stays across the next restart.
    let saved = new.snapshot(t0, 1_000_000_000_000);
    let mut next = Tracker::new(DEADLINE);
    next.restore(&saved, &until(&saved, 3), t0, 1_000_000_000_000);
    assert_eq!(
        next.on_arrival(0, before, t0, &mut none),
        Arrival::Untracked
    );
}

/// A damaged or crafted snapshot cannot allocate without bound nor
/// index out of range: what is out of range is left out and counted.
#[test]
fn a_damaged_snapshot_is_bounded() {
    let t0 = Instant::now();
    let canary = |partition, seq| SavedCanary {
        partition,
        seq,
        sent_unix_ns: 0,
        acked: true,
    };
    let bad = TrackerSnapshot {
        next_seq: vec![(0, 10), (-1, 5), (i32::MAX, 5), (3, 1 << 40)],
        unresolved: vec![canary(0, 3), canary(0, 3), canary(3, 0), canary(0, 99)],
        resolved: vec![
            ResolvedRun {
                partition: 0,
                first: 0,
                count: u64::MAX,
                outcome: SavedResolved::Lost,
            },
            ResolvedRun {
                partition: 0,
                first: 1,
                count: 1,
                outcome: SavedResolved::Lost,
            },
        ],
        floor: vec![(0, 7)],
        forgotten: vec![],
    };
    let mut r = Tracker::new(DEADLINE);
    let start: BTreeMap<i32, u64> = [(0, 12), (-1, 5), (i32::MAX, 5), (3, 1 << 40)]
        .into_iter()
        .collect();
    let skipped = r.restore(&bad, &start, t0, 1_000_000_000_000);
    assert!(skipped >= 4, "{skipped}");
    assert_eq!(r.in_flight(), 1, "seq 3 once; the others out of range");
    assert!(r.entries() < 1000);
    assert_eq!(r.on_send(0, t0), 12);
    assert_eq!(r.on_send(3, t0), 1 << 40);
}
