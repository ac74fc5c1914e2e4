use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;
use crate::config::{GroupScope, GroupTrigger, Run, Trigger};

fn action(once_per: OncePer, for_: u64) -> Action {
    Action {
        name: "restart".into(),
        on: Trigger::ConsumerGroup(GroupTrigger {
            statuses: vec!["STOP".into()],
            groups: GroupScope::Named(vec!["g".into()]),
            cluster: None,
            for_: Duration::from_secs(for_),
        }),
        run: Run::Command {
            argv: vec!["true".into()],
            timeout: Duration::from_secs(5),
        },
        once_per,
        cooldown: Duration::from_secs(600),
        escalate_after: Duration::from_secs(300),
        hold: false,
    }
}

fn subject() -> Subject {
    Subject::group("c", "g")
}

/// The group STOP (`true`) or not.
fn stop(on: bool) -> BTreeMap<(usize, Subject), String> {
    let mut m = BTreeMap::new();
    if on {
        m.insert((0, subject()), "STOP".to_string());
    }
    m
}

fn runs(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Run { .. }))
        .count()
}

fn remediation(e: &Engine) -> Option<Remediation> {
    e.incidents().next().map(|(_, i)| i.remediation)
}

#[test]
fn one_run_per_incident_after_for() {
    let mut e = Engine::new(&[action(OncePer::Incident, 30)]);
    assert_eq!(
        runs(&e.observe(1000, &stop(true), &BTreeSet::new())),
        0,
        "not before `for`"
    );
    assert_eq!(remediation(&e), Some(Remediation::Pending));
    let ev = e.observe(1030, &stop(true), &BTreeSet::new());
    assert_eq!(
        ev,
        [Event::Run {
            action: 0,
            subject: subject(),
            status: "STOP".into(),
            opened: 1000,
            attempt: 1
        }]
    );
    assert_eq!(remediation(&e), Some(Remediation::Attempted));
    assert!(e.finished(0, &subject(), RunOutcome::Ok).is_empty());
    for t in 1031..1300 {
        assert_eq!(
            runs(&e.observe(t, &stop(true), &BTreeSet::new())),
            0,
            "once per incident ({t})"
        );
    }
    let ev = e.observe(1300, &stop(false), &BTreeSet::new());
    let [Event::Ended {
        action: 0,
        subject: s,
        incident,
    }] = &ev[..]
    else {
        panic!("ended: {ev:?}");
    };
    assert_eq!(s, &subject());
    assert_eq!(
        (
            incident.opened,
            incident.ran,
            incident.runs,
            incident.remediation
        ),
        (1000, Some(1030), 1, Remediation::Attempted)
    );
    assert_eq!(e.incidents().count(), 0);
}

#[test]
fn a_condition_that_outlives_the_remediation_escalates_once() {
    let mut e = Engine::new(&[action(OncePer::Incident, 0)]);
    assert_eq!(runs(&e.observe(0, &stop(true), &BTreeSet::new())), 1);
    e.finished(0, &subject(), RunOutcome::Ok);
    assert!(e.observe(299, &stop(true), &BTreeSet::new()).is_empty());
    let ev = e.observe(300, &stop(true), &BTreeSet::new());
    assert_eq!(
        ev,
        [Event::Escalated {
            action: 0,
            subject: subject(),
            why: Escalation::StillHolding
        }]
    );
    assert_eq!(remediation(&e), Some(Remediation::Failed));
    for t in 301..2000 {
        assert!(
            e.observe(t, &stop(true), &BTreeSet::new()).is_empty(),
            "escalated once ({t})"
        );
    }
}

#[test]
fn a_run_that_fails_escalates_at_once() {
    let mut e = Engine::new(&[action(OncePer::Incident, 0)]);
    e.observe(0, &stop(true), &BTreeSet::new());
    assert_eq!(
        e.finished(0, &subject(), RunOutcome::Timeout),
        [Event::Escalated {
            action: 0,
            subject: subject(),
            why: Escalation::RunFailed(RunOutcome::Timeout)
        }]
    );
    assert!(
        e.observe(300, &stop(true), &BTreeSet::new()).is_empty(),
        "not twice"
    );
}

#[test]
fn the_cooldown_holds_a_new_incident_back_until_it_is_over() {
    let mut e = Engine::new(&[action(OncePer::Incident, 0)]);
    assert_eq!(runs(&e.observe(0, &stop(true), &BTreeSet::new())), 1);
    e.finished(0, &subject(), RunOutcome::Ok);
    e.observe(10, &stop(false), &BTreeSet::new());
    // Flapping back 20 s later: a new incident, held back by the cooldown.
    let ev = e.observe(30, &stop(true), &BTreeSet::new());
    assert_eq!(
        ev,
        [Event::HeldBack {
            action: 0,
            subject: subject(),
            until: 600
        }]
    );
    assert_eq!(remediation(&e), Some(Remediation::Pending));
    for t in 31..600 {
        assert!(
            e.observe(t, &stop(true), &BTreeSet::new()).is_empty(),
            "said once ({t})"
        );
    }
    assert_eq!(
        runs(&e.observe(600, &stop(true), &BTreeSet::new())),
        1,
        "when the cooldown is over"
    );
}

#[test]
fn once_per_cooldown_runs_again_while_it_holds() {
    let mut e = Engine::new(&[action(OncePer::Cooldown, 0)]);
    let mut at = Vec::new();
    for t in 0..1900 {
        if runs(&e.observe(t, &stop(true), &BTreeSet::new())) == 1 {
            at.push(t);
            e.finished(0, &subject(), RunOutcome::Ok);
        }
    }
    assert_eq!(at, [0, 600, 1200, 1800]);
}

#[test]
fn the_cooldown_and_the_incident_survive_a_restart() {
    let mut e = Engine::new(&[action(OncePer::Incident, 0)]);
    e.observe(0, &stop(true), &BTreeSet::new());
    e.finished(0, &subject(), RunOutcome::Ok);
    let saved = e.save();
    // Saved as text, like the state file, and read back.
    let text = serde_json::to_string(&saved).expect("encode");
    let back: Saved = serde_json::from_str(&text).expect("decode");
    assert_eq!(back, saved);

    let mut again = Engine::new(&[action(OncePer::Incident, 0)]);
    again.restore(back.clone());
    assert_eq!(
        runs(&again.observe(100, &stop(true), &BTreeSet::new())),
        0,
        "the same incident ran"
    );
    assert_eq!(remediation(&again), Some(Remediation::Attempted));
    // It ended while slaprobe was down and came back: the cooldown holds.
    let mut third = Engine::new(&[action(OncePer::Incident, 0)]);
    third.restore(back);
    third.observe(100, &stop(false), &BTreeSet::new());
    assert!(matches!(
        third.observe(200, &stop(true), &BTreeSet::new())[..],
        [Event::HeldBack { until: 600, .. }]
    ));
    // An action no longer configured is forgotten.
    let mut renamed = action(OncePer::Incident, 0);
    renamed.name = "other".into();
    let mut fourth = Engine::new(&[renamed]);
    fourth.restore(e.save());
    assert_eq!(fourth.incidents().count(), 0);
    assert_eq!(runs(&fourth.observe(100, &stop(true), &BTreeSet::new())), 1);
}

#[test]
fn last_runs_are_forgotten_after_their_cooldown() {
    let mut e = Engine::new(&[action(OncePer::Incident, 0)]);
    e.observe(0, &stop(true), &BTreeSet::new());
    e.observe(1, &stop(false), &BTreeSet::new());
    assert_eq!(e.save().last_runs.len(), 1);
    e.observe(600, &stop(false), &BTreeSet::new());
    assert_eq!(e.save().last_runs.len(), 0);
}

#[test]
fn an_incident_whose_status_is_not_known_yet_goes_on() {
    let mut e = Engine::new(&[action(OncePer::Incident, 0)]);
    e.observe(0, &stop(true), &BTreeSet::new());
    e.finished(0, &subject(), RunOutcome::Ok);
    let mut restarted = Engine::new(&[action(OncePer::Incident, 0)]);
    restarted.restore(e.save());
    // Not read yet, then read over less than a full window: neither ended
    // nor run again nor escalated.
    let unknown: BTreeSet<(usize, Subject)> = [(0, subject())].into();
    for t in 1..400 {
        assert!(
            restarted.observe(t, &stop(false), &unknown).is_empty(),
            "{t}"
        );
    }
    assert_eq!(remediation(&restarted), Some(Remediation::Attempted));
    // Judged STOP again: it escalates (it ran 400 s ago).
    assert!(matches!(
        restarted.observe(400, &stop(true), &BTreeSet::new())[..],
        [Event::Escalated { .. }]
    ));
}
