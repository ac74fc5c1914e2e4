//! `actions:`: the model and every error.

use std::time::Duration;

use super::{err, ok};
use crate::config::*;

/// A lag probe `groups` watching g1 and g2 on cluster c, then `{actions}`.
fn with(actions: &str) -> String {
    format!(
        "clusters: {{ c: {{ bootstrap: 'k:9092' }} }}
probes:
  - {{ name: groups, type: lag, cluster: c, groups: [g1, g2] }}
actions:
{actions}"
    )
}

#[test]
fn actions_parse_into_the_model() {
    let c = ok(&with(
        "  - name: restart
    on:
      consumer_group: { status: [STOP, STALL], groups: [g1], for: 30s }
    run:
      command: [/usr/local/bin/restart-job, g1]
    escalate_after: 5m
    hold: true
  - name: page-bot
    on:
      consumer_group: { probe: groups, status: [WARN] }
    run:
      webhook: { url: 'https://bot.example/hook', headers: { Authorization: 'Bearer x' } }
      timeout: 3s
    once_per: cooldown
    cooldown: 1h
",
    ));
    let [a, b] = &c.actions[..] else {
        panic!("two actions: {:?}", c.actions);
    };
    assert_eq!(a.name, "restart");
    let Trigger::ConsumerGroup(t) = &a.on else {
        panic!("a group trigger");
    };
    // In the canonical order.
    assert_eq!(t.statuses, ["STALL", "STOP"]);
    assert_eq!(t.groups, GroupScope::Named(vec!["g1".into()]));
    assert_eq!(t.for_, Duration::from_secs(30));
    assert!(t.covers("groups", "c", "g1") && !t.covers("groups", "c", "g2"));
    assert_eq!(
        a.run,
        Run::Command {
            argv: vec!["/usr/local/bin/restart-job".into(), "g1".into()],
            timeout: Duration::from_secs(30)
        }
    );
    assert_eq!(a.once_per, OncePer::Incident);
    assert_eq!(a.cooldown, Duration::from_secs(600));
    assert_eq!(a.escalate_after, Duration::from_secs(300));
    assert!(a.hold);
    let Trigger::ConsumerGroup(t) = &b.on else {
        panic!("a group trigger");
    };
    assert!(t.covers("groups", "c", "g2") && !t.covers("other", "c", "g2"));
    let Run::Webhook(w) = &b.run else {
        panic!("a webhook");
    };
    assert_eq!(
        (w.method.as_str(), w.timeout),
        ("POST", Duration::from_secs(3))
    );
    // The Authorization header never shows.
    assert_eq!(w.shown_headers(), [("Authorization", "<redacted>")]);
    assert!(!format!("{:?}", b.run).contains("Bearer"));
    assert_eq!(
        (b.once_per, b.cooldown),
        (OncePer::Cooldown, Duration::from_secs(3600))
    );
    assert!(!b.hold);
}

#[test]
fn action_errors_name_the_key() {
    assert_eq!(
        err(&with("  - { name: a, on: { consumer_group: { groups: [nope] } }, run: { command: [x] } }\n")),
        "test.yaml:5:49: actions[0].on.consumer_group.groups[0]: consumer group `nope` is not watched: \
         name it in a `type: lag` probe or a pipeline probe's `lag:` (the action runs on what slaprobe sees of it)"
    );
    assert_eq!(
        err(&with("  - { name: a, on: { consumer_group: { probe: x } }, run: { command: [x] } }\n")),
        "test.yaml:5:47: actions[0].on.consumer_group.probe: probe `x` watches no consumer groups; \
         probes that do: groups"
    );
    assert_eq!(
        err(&with("  - { name: a, on: { consumer_group: { groups: [g1], probe: groups } }, run: { command: [x] } }\n")),
        "test.yaml:5:38: actions[0].on.consumer_group: give exactly one of `groups: [NAME, ...]` \
         (watched groups) and `probe: NAME` (every group that probe watches)"
    );
    assert_eq!(
        err(&with("  - { name: a, on: { consumer_group: { groups: [g1], status: [OK, STOP] } }, run: { command: [x] } }\n")),
        "test.yaml:5:63: actions[0].on.consumer_group.status[0]: `OK` is not a consumer-group status \
         an action can run on; use WARN, REWIND, STALL, STOP"
    );
    assert_eq!(
        err(&with("  - { name: a, on: {}, run: { command: [x] } }\n")),
        "test.yaml:5:16: actions[0].on: say when the action runs, with exactly one of \
         `consumer_group: { status: [STOP], groups: [NAME] }` and `slo: { slos: [PROBE:OUTPUT:SLI], severity: page }`"
    );
    assert_eq!(
        err(&with("  - { name: a, on: { consumer_group: { groups: [g1] } }, run: { command: [] } }\n")),
        "test.yaml:5:74: actions[0].run.command: give the program and its arguments as a list, e.g. \
         `[/usr/local/bin/restart-job, enricher]` (no shell runs it)"
    );
    assert_eq!(
        err(&with("  - { name: a, on: { consumer_group: { groups: [g1] } }, run: { command: [x], webhook: { url: 'http://h' } } }\n")),
        "test.yaml:5:63: actions[0].run: give exactly one of `command: [PROGRAM, ARG, ...]` and `webhook: { url: ... }`"
    );
    assert_eq!(
        err(&with("  - { name: a, on: { consumer_group: { groups: [g1] } }, run: { webhook: { url: 'ftp://h', method: GET, headers: { 'bad header': x } } } }\n")),
        "test.yaml:5:81: actions[0].run.webhook.url: must be an http:// or https:// URL with a host; got `ftp://h`\n\
         test.yaml:5:100: actions[0].run.webhook.method: `GET` is not `POST` or `PUT` (the incident is sent as a JSON body)\n\
         test.yaml:5:116: actions[0].run.webhook.headers.bad header: `bad header` is not a valid HTTP header name"
    );
    assert_eq!(
        err(&with("  - { name: a, on: { consumer_group: { groups: [g1] } }, run: { command: [x], timeout: 1h }, once_per: day, cooldown: 0s, escalate_after: 30d }\n")),
        "test.yaml:5:88: actions[0].run.timeout: must be between 1ms and 10m, got 1h\n\
         test.yaml:5:104: actions[0].once_per: `day` is not one of `incident` (one run per incident, the default) and \
         `cooldown` (again every cooldown while it holds)\n\
         test.yaml:5:119: actions[0].cooldown: must be greater than 0\n\
         test.yaml:5:139: actions[0].escalate_after: must be at most 7d, got 30d"
    );
}

#[test]
fn a_group_is_covered_by_one_action_per_status() {
    let yaml = with(
        "  - { name: a, on: { consumer_group: { groups: [g1, g2] } }, run: { command: [x] } }
  - { name: b, on: { consumer_group: { groups: [g2] } }, run: { command: [x] } }
  - { name: c, on: { consumer_group: { probe: groups, status: [STALL] } }, run: { command: [x] } }
  - { name: a, on: { consumer_group: { groups: [g1], status: [STALL] } }, run: { command: [x] } }
",
    );
    assert_eq!(
        err(&yaml),
        "test.yaml:6:22: actions[1].on.consumer_group: consumer group `g2` on cluster `c` at STOP is \
         already covered by action `a`; one action per group and status\n\
         test.yaml:8:13: actions[3].name: duplicate action name `a`: already used at test.yaml:5:13\n\
         test.yaml:8:22: actions[3].on.consumer_group: consumer group `g1` on cluster `c` at STALL is \
         already covered by action `c`; one action per group and status"
    );
}

/// A heartbeat probe `hb` with delivery and latency SLOs, then `{actions}`.
fn with_slos(actions: &str) -> String {
    format!(
        "clusters: {{ c: {{ bootstrap: 'k:9092' }} }}
probes:
  - name: hb
    type: heartbeat
    cluster: c
    topic: t
    slos:
      - {{ sli: delivery, objective: 99.9% }}
      - {{ sli: latency, threshold: 1s, objective: 99% }}
actions:
{actions}"
    )
}

#[test]
fn slo_actions_parse_and_name_configured_slos() {
    let c = ok(&with_slos(
        "  - { name: a, on: { slo: { slos: ['hb:heartbeat:delivery'], severity: ticket, for: 1m } }, run: { command: [x] } }\n",
    ));
    let Trigger::Slo(a) = &c.actions[0].on else {
        panic!("an SLO trigger");
    };
    assert_eq!(
        (a.slos.as_slice(), a.pages_only, a.for_),
        (
            &["hb:heartbeat:delivery".to_string()][..],
            false,
            Duration::from_secs(60)
        )
    );
    assert_eq!(
        c.actions[0].on.describe(),
        "SLO(s) hb:heartbeat:delivery burning at any tier for 1m"
    );
    let c = ok(&with_slos(
        "  - { name: b, on: { slo: { probe: hb } }, run: { command: [x] } }\n",
    ));
    let Trigger::Slo(b) = &c.actions[0].on else {
        panic!("an SLO trigger");
    };
    assert!(b.pages_only);
    assert_eq!(b.slos, ["hb:heartbeat:delivery", "hb:heartbeat:latency"]);
}

#[test]
fn slo_action_errors_name_the_key() {
    let e = err(&with_slos(
        "  - { name: a, on: { slo: { slos: ['hb:heartbeat:availability'], severity: critical } }, run: { command: [x] } }
  - { name: b, on: { slo: { probe: nope } }, run: { command: [x] } }
  - { name: c, on: { slo: { probe: hb }, consumer_group: { groups: [g] } }, run: { command: [x] } }
  - { name: d, on: { slo: { probe: hb } }, run: { command: [x] } }
  - { name: e, on: { slo: { slos: ['hb:heartbeat:latency'] } }, run: { command: [x] } }
",
    ));
    let lines: Vec<&str> = e
        .lines()
        .map(|l| l.split_once(": ").map_or(l, |(_, m)| m))
        .collect();
    assert_eq!(
        lines,
        [
            "actions[0].on.slo.slos[0]: no SLO is named `hb:heartbeat:availability` (names are `<probe>:<output>:<sli>`); configured: hb:heartbeat:delivery, hb:heartbeat:latency",
            "actions[0].on.slo.severity: `critical` is not `page` (a page tier fires, the default) or `ticket` (any tier fires)",
            "actions[1].on.slo.probe: probe `nope` has no SLOs",
            "actions[2].on: say when the action runs, with exactly one of `consumer_group: { status: [STOP], groups: [NAME] }` and `slo: { slos: [PROBE:OUTPUT:SLI], severity: page }`",
            "actions[4].on.slo: SLO `hb:heartbeat:latency` is already covered by action `d`; one action per SLO",
        ],
        "{e}"
    );
}
