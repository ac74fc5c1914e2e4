//! Consumer-group lag, black-box: `slaprobe run` with a `type: lag` probe
//! against Apache Kafka's own group coordinator, with independent
//! consumer groups (Python confluent-kafka, `tests/clients/lag_group.py`)
//! that keep up, stop committing, are killed, fall behind and are reset.
//! slaprobe's status for each must follow within two reads of the
//! behaviour showing over a full window, and its lag in records must equal
//! high watermark - committed offset as the independent client reads them.
//!
//! Also: lag in seconds read from the record at the committed offset, and
//! the windows kept across a restart. Over 600 lines: one real-broker tier
//! whose tests share the Python groups and the status helpers.
//!
//! Runs only with `SLAPROBE_TEST_BOOTSTRAP` (see `tests/broker.rs`).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{create_topics, http_get, metric, poll_until, scratch, Python, Slaprobe};

/// The members' session timeout (`tests/clients/lag_group.py`).
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// The probe's read interval and window (reads).
const INTERVAL: Duration = Duration::from_secs(1);
const WINDOW: u32 = 3;

/// The groups slaprobe's status API shows, by name.
fn groups(s: &Slaprobe) -> BTreeMap<String, serde_json::Value> {
    let Ok((200, body)) = http_get(s.addr, "/api/v1/status") else {
        return BTreeMap::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["consumer_groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| Some((g["group"].as_str()?.to_string(), g.clone())))
        .collect()
}

fn status_of(s: &Slaprobe, group: &str) -> Option<String> {
    groups(s)
        .get(group)
        .and_then(|g| g["status"].as_str().map(str::to_string))
}

/// Waits up to `within` for `group` to be `status`; the time it took.
fn expect_status(s: &Slaprobe, group: &str, status: &str, within: Duration) -> Duration {
    let start = Instant::now();
    let mut last = None;
    let reached = poll_until(within, || {
        last = status_of(s, group);
        last.as_deref() == Some(status)
    });
    assert!(
        reached,
        "{group} is {status} within {within:?}; last status {last:?}; groups: {:#?}",
        groups(s).get(group)
    );
    let took = start.elapsed();
    // The metric says the same (`/metrics` may serve a body up to a
    // second old).
    let mut value = 0.0;
    // (A group the status API shows may not have series in that body yet.)
    let agrees = poll_until(Duration::from_secs(3), || {
        value = common::metric_if_present(
            &s.metrics(),
            "slaprobe_consumergroup_status",
            &[("group", group), ("status", status)],
        )
        .unwrap_or(0.0);
        value == 1.0
    });
    assert!(agrees, "{group} status metric for {status}: {value}");
    took
}

#[test]
fn consumer_group_statuses_follow_the_groups_and_lag_is_exact() {
    let Some(bootstrap) = common::broker::bootstrap() else {
        return;
    };
    let topic = format!("slaprobe-lag-{:016x}", rand::random::<u64>());
    create_topics(&bootstrap, &[&topic], 2);
    let prefix = format!("lagit-{:08x}-", rand::random::<u32>());
    let dir = scratch("lag");
    let group = |role: &str| format!("{prefix}{role}");
    let trigger = |role: &str| dir.join(format!("{role}.trigger"));

    let mut producer = Python::start("lag_group.py", &[&bootstrap, "produce", &topic]);
    let yaml = lag_yaml(
        &bootstrap,
        "",
        "groups",
        &format!("    group_pattern: '{prefix}.*'\n    topics: [{topic}]\n"),
        "",
    );
    let slaprobe = Slaprobe::start(&dir, "lag", &yaml);

    // Every group is created after slaprobe started: the pattern finds them.
    let stall_trigger = trigger("stall");
    let rewind_trigger = trigger("rewind");
    let mut members = vec![
        Python::start(
            "lag_group.py",
            &[&bootstrap, "keepup", &topic, &group("ok")],
        ),
        Python::start(
            "lag_group.py",
            &[
                &bootstrap,
                "nocommit",
                &topic,
                &group("stall"),
                stall_trigger.to_str().expect("path"),
            ],
        ),
        Python::start(
            "lag_group.py",
            &[&bootstrap, "keepup", &topic, &group("stop")],
        ),
        Python::start(
            "lag_group.py",
            &[&bootstrap, "slow", &topic, &group("warn")],
        ),
    ];
    let settle = Duration::from_secs(60);
    expect_status(&slaprobe, &group("ok"), "OK", settle);
    expect_status(&slaprobe, &group("stop"), "OK", settle);
    expect_status(&slaprobe, &group("stall"), "OK", settle);
    let took = expect_status(&slaprobe, &group("warn"), "WARN", settle);
    eprintln!("WARN after {took:?}");

    // A group created now is found within two reads of its first commit
    // (the rewind role commits without joining, at once).
    let started = Instant::now();
    let mut rewind = Python::start(
        "lag_group.py",
        &[
            &bootstrap,
            "rewind",
            &topic,
            &group("rewind"),
            rewind_trigger.to_str().expect("path"),
        ],
    );
    assert!(
        poll_until(Duration::from_secs(20), || groups(&slaprobe)
            .contains_key(&group("rewind"))),
        "the later group is found"
    );
    let found = started.elapsed();
    eprintln!("later group found {found:?} after its process started");
    assert!(
        found <= 2 * INTERVAL + Duration::from_secs(3),
        "found within two reads of its first commit (python start-up included): {found:?}"
    );

    // STALL: consuming, committing nothing. The offsets stand still from
    // now: a full window of reads, then at most two more.
    std::fs::write(&stall_trigger, "").expect("trigger");
    let budget = (WINDOW + 2) * INTERVAL + Duration::from_secs(1);
    let took = expect_status(&slaprobe, &group("stall"), "STALL", budget);
    eprintln!("STALL after {took:?}");
    let g = &groups(&slaprobe)[&group("stall")];
    assert!(g["members"].as_u64().unwrap_or(0) >= 1, "{g:#}");

    // REWIND: the offsets go back to the beginning.
    expect_status(&slaprobe, &group("rewind"), "OK", settle);
    std::fs::write(&rewind_trigger, "").expect("trigger");
    let took = expect_status(
        &slaprobe,
        &group("rewind"),
        "REWIND",
        2 * INTERVAL + Duration::from_secs(1),
    );
    eprintln!("REWIND after {took:?}");

    // STOP: the consumer is killed (SIGKILL: it never leaves the group).
    // The coordinator drops it when its session times out (6 s), by
    // itself; the next read finds the group empty.
    members[2].kill();
    let took = expect_status(
        &slaprobe,
        &group("stop"),
        "STOP",
        SESSION_TIMEOUT + 2 * INTERVAL + Duration::from_secs(2),
    );
    eprintln!("STOP {took:?} after the kill (the session timeout is {SESSION_TIMEOUT:?})");
    let g = &groups(&slaprobe)[&group("stop")];
    assert_eq!(g["members"].as_u64(), Some(0), "{g:#}");

    // Exact lag: everything stops, then slaprobe's numbers must equal what
    // the independent client reads.
    producer.kill();
    rewind.kill();
    for m in &mut members {
        m.kill();
    }
    std::thread::sleep(2 * INTERVAL);
    for role in ["ok", "stall", "stop", "warn", "rewind"] {
        let name = group(role);
        let out = Python::run("lag_group.py", &[&bootstrap, "offsets", &topic, &name]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("offsets json");
        let committed = v["committed"].as_object().expect("committed");
        assert!(!committed.is_empty(), "{name} committed offsets: {v}");
        for (tp, offset) in committed {
            let (t, p) = tp.rsplit_once('/').expect("topic/partition");
            let offset = offset.as_i64().expect("offset");
            let high = v["high_watermarks"][tp].as_i64().expect("watermark");
            let labels = [("group", name.as_str()), ("topic", t), ("partition", p)];
            let mut seen = (0.0, 0.0);
            let equal = poll_until(3 * INTERVAL, || {
                let text = slaprobe.metrics();
                seen = (
                    metric(&text, "slaprobe_consumergroup_lag_records", &labels),
                    metric(&text, "slaprobe_consumergroup_committed_offset", &labels),
                );
                seen == ((high - offset) as f64, offset as f64)
            });
            assert!(
                equal,
                "{name} {tp}: slaprobe (lag, committed) = {seen:?}, independent client: ({}, {offset})",
                high - offset
            );
        }
    }
    let text = slaprobe.metrics();
    assert_eq!(
        metric(
            &text,
            "slaprobe_consumergroup_partitions_dropped_total",
            &[]
        ),
        0.0
    );
    // The reader's statistics are served (nothing piles up in its queue)
    // and count its requests.
    assert!(
        metric(
            &text,
            "slaprobe_kafka_requests_total",
            &[("client", "lag"), ("request", "OffsetFetch")]
        ) > 0.0,
        "the lag reader's OffsetFetch requests are counted"
    );
    let _ = slaprobe.stop();
}

/// The configuration of one `type: lag` probe `name` on `bootstrap`, read
/// every INTERVAL over WINDOW reads: `selector` names its groups (and
/// topics) as YAML lines of the probe; `top` comes first (`state_dir:`),
/// `tail` last (`actions:`).
fn lag_yaml(bootstrap: &str, top: &str, name: &str, selector: &str, tail: &str) -> String {
    format!(
        "clusters:\n  it:\n    bootstrap: {bootstrap}\n{top}probes:\n  - name: {name}\n    type: lag\n    cluster: it\n{selector}    interval: {}s\n    window: {WINDOW}\n{tail}",
        INTERVAL.as_secs()
    )
}

/// Runs a one-shot role of `lag_group.py` (it exits when done).
fn group_once(args: &[&str]) {
    Python::run("lag_group.py", args);
}

/// Lag in seconds is the age of the first record a group has not
/// consumed, read from that record: an hour, though slaprobe started a
/// moment ago (no table of the watermarks it read could know; the old
/// estimate extrapolated or said "since the first read"). A group that has
/// read a quiet topic to its end has lag 0 from the first read, never NaN.
#[test]
fn lag_in_seconds_is_the_age_of_the_first_record_not_consumed() {
    let Some(bootstrap) = common::broker::bootstrap() else {
        return;
    };
    let id = format!("{:08x}", rand::random::<u32>());
    let (aged_topic, quiet_topic) = (
        format!("slaprobe-aged-{id}"),
        format!("slaprobe-quiet-{id}"),
    );
    create_topics(&bootstrap, &[&aged_topic, &quiet_topic], 2);
    let (aged, quiet) = (format!("aged-{id}"), format!("quiet-{id}"));
    const AGE: f64 = 3600.0;
    group_once(&[&bootstrap, "aged", &aged_topic, &aged, "3600"]);
    group_once(&[&bootstrap, "caughtup", &quiet_topic, &quiet]);
    let dir = scratch("lag-seconds");
    let yaml = lag_yaml(
        &bootstrap,
        "",
        "seconds",
        &format!("    groups: [{aged}, {quiet}]\n"),
        "",
    );
    let slaprobe = Slaprobe::start(&dir, "lag-seconds", &yaml);
    // The lag of `group` on `partition` by `method`, once it shows.
    let lag = |group: &str, partition: &str, method: &str| {
        let mut seen = None;
        let shown = poll_until(Duration::from_secs(30), || {
            seen = common::metric_if_present(
                &slaprobe.metrics(),
                "slaprobe_consumergroup_lag_seconds",
                &[
                    ("group", group),
                    ("partition", partition),
                    ("method", method),
                ],
            );
            seen.is_some()
        });
        assert!(
            shown,
            "{group}/{partition}: a lag by {method}; metrics:\n{}",
            slaprobe.metrics()
        );
        seen.unwrap_or(f64::NAN)
    };
    for partition in ["0", "1"] {
        let behind = lag(&aged, partition, "record");
        assert!(
            (AGE..AGE + 60.0).contains(&behind),
            "{aged}/{partition}: {behind} s behind (records written {AGE} s ago)"
        );
        let caught_up = lag(&quiet, partition, "caught_up");
        assert_eq!(caught_up, 0.0, "{quiet}/{partition}: 0, not NaN");
    }
    // The status API says how too.
    let g = &groups(&slaprobe)[&aged];
    assert_eq!(g["worst"][0]["lag_method"], "record", "{g:#}");
    assert!(g["lag_seconds"].as_f64().unwrap_or(0.0) >= AGE, "{g:#}");
    let _ = slaprobe.stop();
}

/// Many groups' offsets are read in one OffsetFetch per coordinator
/// (slaprobe's own connections; librdkafka's Admin API sends one per
/// group), after one FindCoordinator for all of them: every group's
/// offsets as committed, from more than one coordinator, with requests
/// per read that do not grow with the groups.
#[test]
fn many_groups_are_read_in_a_request_per_coordinator() {
    let Some(bootstrap) = common::broker::bootstrap() else {
        return;
    };
    const GROUPS: usize = 30;
    let id = format!("{:08x}", rand::random::<u32>());
    let topic = format!("slaprobe-many-{id}");
    create_topics(&bootstrap, &[&topic], 2);
    let prefix = format!("many-{id}-");
    group_once(&[&bootstrap, "many", &topic, &prefix, &GROUPS.to_string()]);
    let dir = scratch("lag-many");
    let yaml = lag_yaml(
        &bootstrap,
        "",
        "many",
        &format!("    group_pattern: '{prefix}.*'\n"),
        "",
    );
    let slaprobe = Slaprobe::start(&dir, "lag-many", &yaml);
    let requests = |text: &str, request: &str| {
        common::metric_if_present(
            text,
            "slaprobe_kafka_requests_total",
            &[("client", "lag"), ("request", request)],
        )
        .unwrap_or(0.0)
    };
    let committed = |text: &str, group: &str, partition: &str| {
        common::metric_if_present(
            text,
            "slaprobe_consumergroup_committed_offset",
            &[
                ("group", group),
                ("topic", &topic),
                ("partition", partition),
            ],
        )
    };
    let mut text = String::new();
    let all = poll_until(Duration::from_secs(30), || {
        text = slaprobe.metrics();
        (0..GROUPS).all(|i| committed(&text, &format!("{prefix}{i}"), "1").is_some())
    });
    assert!(all, "every group's offsets; metrics:\n{text}");
    for i in 0..GROUPS {
        let group = format!("{prefix}{i}");
        assert_eq!(
            committed(&text, &group, "0"),
            Some(i as f64 + 1.0),
            "{group}"
        );
        assert_eq!(
            committed(&text, &group, "1"),
            Some(i as f64 + 2.0),
            "{group}"
        );
    }
    // Reads go on; count what the next ones send.
    let before = (
        requests(&text, "OffsetFetch"),
        requests(&text, "FindCoordinator"),
    );
    let started = Instant::now();
    std::thread::sleep(5 * INTERVAL);
    let text = slaprobe.metrics();
    let reads = (started.elapsed().as_secs_f64() / INTERVAL.as_secs_f64()).ceil() + 1.0;
    let fetches = requests(&text, "OffsetFetch") - before.0;
    assert!(
        fetches >= 1.0 && fetches <= 3.0 * reads,
        "{fetches} OffsetFetch requests in at most {reads} reads of {GROUPS} groups on 3 brokers: one per coordinator and read, not one per group"
    );
    assert_eq!(
        requests(&text, "FindCoordinator") - before.1,
        0.0,
        "coordinators are remembered between reads"
    );
    assert!(
        requests(&text, "FindCoordinator") < GROUPS as f64,
        "one lookup for every group, not one each"
    );
    let coordinators: BTreeSet<String> = common::samples(&text, "slaprobe_kafka_requests_total")
        .into_iter()
        .filter(|(l, v)| {
            l.get("client").map(String::as_str) == Some("lag")
                && l.get("request").map(String::as_str) == Some("OffsetFetch")
                && *v > 0.0
        })
        .filter_map(|(l, _)| l.get("broker").cloned())
        .collect();
    assert!(
        coordinators.len() > 1,
        "{GROUPS} groups have more than one coordinator among 3 brokers: {coordinators:?}"
    );
    let _ = slaprobe.stop();
}

/// With `state_dir` a restart keeps each partition's window of reads: a
/// group that was STOP before it is judged, and not OK, at the first read
/// after it (without the windows, the first reads would say OK, not yet
/// judged, for a full window).
#[test]
fn a_restart_judges_the_groups_at_its_first_read() {
    let Some(bootstrap) = common::broker::bootstrap() else {
        return;
    };
    let id = format!("{:08x}", rand::random::<u32>());
    let topic = format!("slaprobe-restart-{id}");
    create_topics(&bootstrap, &[&topic], 2);
    let group = format!("restart-{id}");
    let _producer = Python::start("lag_group.py", &[&bootstrap, "produce", &topic]);
    let mut member = Python::start("lag_group.py", &[&bootstrap, "keepup", &topic, &group]);
    let dir = scratch("lag-restart");
    let yaml = lag_yaml(
        &bootstrap,
        &format!("state_dir: {}\n", dir.join("state").display()),
        "restart",
        &format!("    groups: [{group}]\n"),
        "",
    );
    let s = Slaprobe::start(&dir, "lag-restart", &yaml);
    let settle = Duration::from_secs(60);
    // Committed on both partitions and judged before the kill (a group
    // without offsets has nothing to stop).
    let committed = poll_until(settle, || {
        groups(&s)
            .get(group.as_str())
            .is_some_and(|v| v["partitions"] == 2 && v["judged"] == true && v["status"] == "OK")
    });
    assert!(
        committed,
        "{group} commits: {:#?}",
        groups(&s).get(group.as_str())
    );
    member.kill();
    expect_status(
        &s,
        &group,
        "STOP",
        SESSION_TIMEOUT + (WINDOW + 2) * INTERVAL + Duration::from_secs(5),
    );
    s.stop_cleanly();
    assert!(dir.join("state/slaprobe.state.lag").exists());

    let s = Slaprobe::start(&dir, "lag-restart-again", &yaml);
    let mut first = None;
    assert!(
        poll_until(Duration::from_secs(20), || {
            first = groups(&s)
                .get(&group)
                .filter(|g| g["partitions"].as_u64().unwrap_or(0) > 0)
                .cloned();
            first.is_some()
        }),
        "{group} read after the restart:\n{}",
        s.log()
    );
    // Judged, and not OK. STOP needs the group listing (no members); a
    // new client's first listing may not answer within the read's budget
    // (then the group counts as having members: STALL), the next does.
    let g = first.unwrap_or_default();
    assert!(
        g["judged"] == true && (g["status"] == "STOP" || g["status"] == "STALL"),
        "at the first read after the restart: {g:#}\n{}",
        s.log()
    );
    expect_status(&s, &group, "STOP", 3 * INTERVAL);
    assert!(
        s.log().contains("restoring consumer groups' windows"),
        "{}",
        s.log()
    );
    s.stop_cleanly();
}

/// A remediation action (`actions:`) on Apache Kafka's groups: two groups
/// whose consumers are killed (STOP); the action's command (the test's
/// `restart_group.py`) brings one back and cannot help the other. The
/// first is back to OK after exactly one run; the second escalates once,
/// `escalate_after` later. The incident and the cooldown survive a
/// restart of slaprobe: no second run for the escalated group, and none
/// when the revived group stops again within the cooldown.
#[test]
fn a_remediation_action_revives_a_stopped_group_once_and_escalates_one_it_cannot() {
    let Some(bootstrap) = common::broker::bootstrap() else {
        return;
    };
    let topic = format!("slaprobe-act-{:016x}", rand::random::<u64>());
    create_topics(&bootstrap, &[&topic], 2);
    let prefix = format!("actit-{:08x}-", rand::random::<u32>());
    let (revive, dead) = (format!("{prefix}revive"), format!("{prefix}dead"));
    let dir = scratch("actions");
    let runs = dir.join("runs");
    let restart = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/restart_group.py");
    let _producer = Python::start("lag_group.py", &[&bootstrap, "produce", &topic]);
    let mut members = [
        Python::start("lag_group.py", &[&bootstrap, "keepup", &topic, &revive]),
        Python::start("lag_group.py", &[&bootstrap, "keepup", &topic, &dead]),
    ];
    let actions = format!(
        "actions:
  - name: restart
    on:
      consumer_group: {{ status: [STOP], probe: groups }}
    run:
      command: [python3, {restart}, '{bootstrap}', {topic}, {runs}]
      timeout: 20s
    cooldown: 10m
    escalate_after: 20s
",
        restart = restart.display(),
        runs = runs.display(),
    );
    let yaml = lag_yaml(
        &bootstrap,
        &format!("state_dir: {}\n", dir.join("state").display()),
        "groups",
        &format!("    group_pattern: '{prefix}.*'\n    topics: [{topic}]\n"),
        &actions,
    );
    let s = Slaprobe::start(&dir, "actions", &yaml);
    let settle = Duration::from_secs(60);
    // OK with both partitions committed and judged: a group listed while
    // its members still join has no offsets, so nothing to stop (CI
    // killed such members once, and the group stayed OK).
    for g in [&revive, &dead] {
        expect_status(&s, g, "OK", settle);
        let committed = poll_until(settle, || {
            groups(&s)
                .get(g.as_str())
                .is_some_and(|v| v["partitions"] == 2 && v["judged"] == true)
        });
        assert!(
            committed,
            "{g} commits on both partitions: {:#?}",
            groups(&s).get(g.as_str())
        );
    }
    let ran = || -> Vec<String> {
        std::fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let value = |s: &Slaprobe, name: &str, labels: &[(&str, &str)]| {
        common::metric_if_present(&s.metrics(), name, labels).unwrap_or(0.0)
    };
    assert!(ran().is_empty());

    for m in &mut members {
        m.kill();
    }
    let both = poll_until(SESSION_TIMEOUT + Duration::from_secs(30), || {
        ran().len() == 2
    });
    assert!(both, "a run per stopped group: {:?}\n{}", ran(), s.log());
    let mut lines = ran();
    lines.sort();
    assert_eq!(
        lines,
        [format!("{dead} STOP 1"), format!("{revive} STOP 1")]
    );
    // The revived group is OK again; the other is not.
    let took = expect_status(&s, &revive, "OK", settle);
    eprintln!("revived group OK {took:?} after its run");
    assert!(poll_until(Duration::from_secs(5), || value(
        &s,
        "slaprobe_action_runs_total",
        &[("action", "restart"), ("outcome", "ok")]
    ) == 2.0));
    // `escalate_after` (20 s) after its run the dead group's remediation
    // failed; the revived one's incident is over.
    let incident = |s: &Slaprobe, group: &str, remediation: &str| {
        value(
            s,
            "slaprobe_action_incident",
            &[("group", group), ("remediation", remediation)],
        )
    };
    let escalations = |s: &Slaprobe| {
        value(
            s,
            "slaprobe_action_escalations_total",
            &[("action", "restart")],
        )
    };
    assert!(
        poll_until(Duration::from_secs(40), || incident(&s, &dead, "failed")
            == 1.0),
        "escalated:\n{}\n{}",
        s.metrics(),
        s.log()
    );
    assert_eq!(escalations(&s), 1.0);
    assert_eq!(
        incident(&s, &revive, "attempted") + incident(&s, &revive, "failed"),
        0.0
    );
    assert!(
        s.log().contains("remediation failed: escalating"),
        "{}",
        s.log()
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(ran().len(), 2, "no second run: {:?}", ran());
    assert_eq!(escalations(&s), 1.0, "escalated once");

    // A restart of slaprobe: the dead group's incident goes on (no run, no
    // second escalation); the revived group stopping again within the
    // cooldown is held back.
    s.stop_cleanly();
    let s = Slaprobe::start(&dir, "actions-again", &yaml);
    expect_status(&s, &revive, "OK", settle);
    assert!(
        poll_until(Duration::from_secs(20), || incident(&s, &dead, "failed")
            == 1.0),
        "the escalated incident is restored:\n{}",
        s.metrics()
    );
    let pids = std::fs::read_to_string(runs.with_extension("pids")).unwrap_or_default();
    for pid in pids.lines() {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
    expect_status(
        &s,
        &revive,
        "STOP",
        SESSION_TIMEOUT + 4 * INTERVAL + Duration::from_secs(2),
    );
    assert!(
        poll_until(Duration::from_secs(10), || s
            .log()
            .contains("remediation held back")),
        "held back by the cooldown:\n{}",
        s.log()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(ran().len(), 2, "no run within the cooldown: {:?}", ran());
    assert_eq!(
        escalations(&s),
        0.0,
        "the restored incident does not escalate again"
    );
    s.stop_cleanly();
}
