//! `state_dir` end to end, with `slaprobe` as a process: a restart (kill -9
//! or SIGTERM) keeps the error budget and every firing alert, which a real
//! Alertmanager sees as one continuous alert; a second instance on the same
//! directory, and a state file from a newer slaprobe, are refused.
//!
//! The refusals need nothing but the binary. The restarts need a broker
//! (`SLAPROBE_TEST_BOOTSTRAP`, as the real-broker tier) and Alertmanager.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{http_get, poll_until, scratch, Slaprobe};

/// A heartbeat probe whose latency SLO nothing can meet (1 ms, against a
/// broker that answers fetches every 10 ms): every tier burns from the
/// first evaluation with events.
fn config(bootstrap: &str, topic: &str, state_dir: &Path, alertmanager: Option<&str>) -> String {
    let am = alertmanager
        .map(|a| format!("alertmanager: {{ url: 'http://{a}' }}\n"))
        .unwrap_or_default();
    format!(
        r#"state_dir: {}
{am}clusters:
  it: {{ bootstrap: '{bootstrap}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}
probes:
  - name: it-state
    type: heartbeat
    cluster: it
    topic: {topic}
    interval: 100ms
    deadline: 5s
    topic_management: {{ create: true, partitions_per_broker: 2 }}
    slos:
      - {{ sli: latency, threshold: 1ms, objective: 99% }}
"#,
        state_dir.display()
    )
}

/// Waits until `state_dir`'s file `name` has been written after `after`
/// (a save, awaited rather than slept for); false after `within`.
fn saved_after(state_dir: &Path, name: &str, after: SystemTime, within: Duration) -> bool {
    poll_until(within, || {
        std::fs::metadata(state_dir.join(name))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t > after)
    })
}

/// Waits until the SLO state (the full file, or the recent one over it)
/// has been saved after `after`: an evaluation's save, every 10 s.
fn slo_state_saved_after(state_dir: &Path, after: SystemTime) -> bool {
    poll_until(Duration::from_secs(30), || {
        ["slaprobe.state", "slaprobe.state.recent"].iter().any(|f| {
            std::fs::metadata(state_dir.join(f))
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > after)
        })
    })
}

/// Stops `s` with SIGKILL (`"kill"`) or SIGTERM (anything else, which must
/// end in a clean exit).
fn stop(mut s: Slaprobe, signal: &str) {
    if signal == "kill" {
        let _ = s.child.kill();
        let _ = s.child.wait();
    } else {
        s.stop_cleanly();
    }
}

/// Canaries delivered so far (0 while the process does not answer).
fn delivered(s: &Slaprobe) -> f64 {
    s.delivered().unwrap_or(0.0)
}

/// After a restart, every canary of the earlier run ended as delivered
/// (heartbeat canaries and the stage's records carry the send-time header,
/// so even those sent after the last save are judged): none lost,
/// duplicate, foreign nor abandoned — but for what a kill -9 cuts off:
/// a canary whose produce was on its way at that instant may never have
/// reached the broker, and one that never arrives is abandoned as
/// `unacknowledged_at_restart` (the README's "Restarts"); at this rate
/// and a few milliseconds a produce, at most a few.
const CUT_OFF_BY_A_KILL: f64 = 3.0;

fn every_canary_settled(after: &Slaprobe, signal: &str) {
    let m = after.metrics();
    let value = |name: &str| common::metric(&m, name, &[]);
    eprintln!(
        "{signal}: after the restart delivered {}, abandoned {}, lost {}, duplicate {}, foreign {}",
        value("slaprobe_canaries_delivered_total"),
        value("slaprobe_canaries_abandoned_total"),
        value("slaprobe_canaries_lost_total"),
        value("slaprobe_canaries_duplicate_total"),
        value("slaprobe_records_foreign_total"),
    );
    assert!(value("slaprobe_canaries_delivered_total") > 0.0, "{m}");
    for counter in [
        "slaprobe_canaries_lost_total",
        "slaprobe_canaries_late_total",
        "slaprobe_canaries_duplicate_total",
        "slaprobe_records_foreign_total",
    ] {
        assert_eq!(value(counter), 0.0, "{counter}:\n{m}");
    }
    let abandoned = |reason: &str| {
        common::metric(
            &m,
            "slaprobe_canaries_abandoned_total",
            &[("reason", reason)],
        )
    };
    for reason in ["offset_invalid", "sent_after_last_save"] {
        assert_eq!(abandoned(reason), 0.0, "abandoned, {reason}:\n{m}");
    }
    let cut_off = if signal == "kill" {
        CUT_OFF_BY_A_KILL
    } else {
        0.0
    };
    assert!(
        abandoned("unacknowledged_at_restart") <= cut_off,
        "abandoned, unacknowledged_at_restart (at most {cut_off}):\n{m}"
    );
}

/// `slaprobe run` that is expected to exit by itself: (exit code, stderr).
fn run_expecting_exit(dir: &Path, yaml: &str) -> (Option<i32>, String) {
    let file = dir.join("refused.yaml");
    std::fs::write(&file, yaml).expect("config");
    let out = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(["run", "-c"])
        .arg(&file)
        .args(["--listen", &common::free_addr().to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run slaprobe");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_second_instance_on_one_state_dir_is_refused_naming_the_holder() {
    let dir = scratch("state-lock");
    let state = dir.join("state");
    // No broker needed: the first instance keeps running while it waits
    // for one, holding the directory.
    let yaml = config("127.0.0.1:1", "t", &state, None);
    let first = Slaprobe::start(&dir, "first", &yaml);
    let (code, stderr) = run_expecting_exit(&dir, &yaml);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())) && stderr.contains("slaprobe.lock"),
        "{stderr}"
    );
    first.stop_cleanly();
    // Its lock is gone with it.
    let second = Slaprobe::start(&dir, "second", &yaml);
    second.stop_cleanly();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_state_file_from_a_newer_slaprobe_is_refused_with_exit_2() {
    let dir = scratch("state-newer");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("dir");
    std::fs::write(
        state.join("slaprobe.state"),
        "slaprobe-state 99 0000000000000000\n{}",
    )
    .expect("write");
    let yaml = config("127.0.0.1:1", "t", &state, None);
    let (code, stderr) = run_expecting_exit(&dir, &yaml);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("state format 99") && stderr.contains("reads up to 1"),
        "{stderr}"
    );
    // `check` says so too, and the file is left alone.
    let file = dir.join("refused.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(["check", "-c"])
        .arg(&file)
        .output()
        .expect("check");
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.contains("is from a newer slaprobe (format 99"),
        "{plan}"
    );
    assert!(state.join("slaprobe.state").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The fast page as the status API shows it: (firing, since), and the
/// budget left.
fn page_and_budget(s: &Slaprobe) -> Option<(bool, Option<String>, f64)> {
    let (status, body) = http_get(s.addr, "/api/v1/status").ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let slo = &v["slos"][0];
    let page = &slo["alerts"][0];
    Some((
        page["firing"].as_bool()?,
        page["since"].as_str().map(str::to_string),
        slo["budget_remaining"].as_f64()?,
    ))
}

/// The fast page's `startsAt` as Alertmanager holds it.
fn am_page_start(am: &common::Alertmanager) -> Option<String> {
    common::am_alerts(am, "it-state:heartbeat:latency")
        .into_iter()
        .find(|a| a["labels"]["long_window"] == "1h")
        .and_then(|a| a["startsAt"].as_str().map(str::to_string))
}

fn restart_keeps_budget_and_alerts(signal: &str) {
    let Some(bootstrap) = common::broker::bootstrap() else {
        return;
    };
    let Some(am) = common::Alertmanager::start() else {
        return;
    };
    let dir = scratch(&format!("state-{signal}"));
    let topic = format!("slaprobe-it-{:016x}", rand::random::<u64>());
    let yaml = config(
        &bootstrap,
        &topic,
        &dir.join("state"),
        Some(&am.addr.to_string()),
    );
    let s = Slaprobe::start(&dir, "before", &yaml);
    // Evaluations run every 10 s: the page fires at the first one that sees
    // events.
    assert!(
        poll_until(Duration::from_secs(60), || page_and_budget(&s)
            .is_some_and(|p| p.0)),
        "the page fires; log:\n{}",
        s.log()
    );
    assert!(
        poll_until(Duration::from_secs(30), || am_page_start(&am).is_some()),
        "Alertmanager has the page"
    );
    let started = am_page_start(&am);
    // One more save, so the saved state holds the firing page.
    assert!(
        slo_state_saved_after(&dir.join("state"), SystemTime::now()),
        "the SLO state is saved; log:\n{}",
        s.log()
    );
    let (_, since, budget) = page_and_budget(&s).expect("status");
    assert!(budget < 1.0);

    let addr = s.addr;
    stop(s, signal);
    let restarted = SystemTime::now();
    // Same address, so the same `instance` label on its pushed alerts.
    let after = Slaprobe::start_with(&dir, "after", &yaml, None, Some(addr));
    // The first evaluation, at start: restored before anything new counts.
    assert!(
        poll_until(Duration::from_secs(20), || page_and_budget(&after)
            .is_some()),
        "status after restart; log:\n{}",
        after.log()
    );
    let (firing, since_after, budget_after) = page_and_budget(&after).expect("status");
    assert!(firing, "the page still fires");
    // `slaprobe report` without Prometheus reads the windows state_dir
    // holds, beside the running slaprobe: the SLO missed, and its page is
    // an incident still going on since the same instant.
    let report = std::process::Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(["report", "--period", "1h", "--format", "json", "-c"])
        .arg(dir.join("after.yaml"))
        .output()
        .expect("slaprobe report");
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&report.stdout).expect("json");
    let slo = &r["slos"][0];
    assert_eq!(
        (&slo["slo"], &slo["met"]),
        (&"it-state:heartbeat:latency".into(), &false.into()),
        "{r:#}"
    );
    assert!(slo["events"].as_f64() > Some(0.0), "{r:#}");
    let page = slo["incidents"]
        .as_array()
        .and_then(|i| i.iter().find(|i| i["tier"] == "page 1h/5m"))
        .unwrap_or_else(|| panic!("the page as an incident: {r:#}"));
    assert_eq!(page["end"], serde_json::Value::Null, "still firing");
    assert_eq!(page["start"].as_str(), since.as_deref(), "{r:#}");
    assert_eq!(since_after, since, "since the same instant");
    assert!(
        budget_after < 1.0 && budget_after <= budget + 1e-9,
        "the budget continues ({budget} before, {budget_after} after), not back at 100%"
    );
    // Alertmanager still holds one page, started when it first fired,
    // once the restarted process has pushed it again.
    let pushed_again = |a: &serde_json::Value| {
        a["updatedAt"]
            .as_str()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .is_some_and(|t| t > restarted)
    };
    let pages = |am: &common::Alertmanager| -> Vec<serde_json::Value> {
        common::am_alerts(am, "it-state:heartbeat:latency")
            .into_iter()
            .filter(|a| a["labels"]["long_window"] == "1h")
            .collect()
    };
    assert!(
        poll_until(Duration::from_secs(30), || pages(&am)
            .iter()
            .any(pushed_again)),
        "the restarted slaprobe pushes the page; log:\n{}",
        after.log()
    );
    let pages = pages(&am);
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert_eq!(pages[0]["startsAt"].as_str().map(str::to_string), started);
    after.stop_cleanly();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_9_keeps_the_error_budget_and_the_page() {
    restart_keeps_budget_and_alerts("kill");
}

#[test]
fn sigterm_keeps_the_error_budget_and_the_page() {
    restart_keeps_budget_and_alerts("term");
}

/// Canaries in flight when slaprobe stops: the next run takes over the run
/// id, the unresolved canaries and the consumer offsets, so each ends as
/// delivered — never lost, late, duplicate nor foreign, even when it is
/// down for `down`, longer than their deadline: they were written while
/// it was down, and are judged once its consumer has read that far.
fn in_flight_canaries_survive(signal: &str, down: Duration) {
    let Some(bootstrap) = common::broker::bootstrap() else {
        return;
    };
    let dir = scratch(&format!("inflight-{signal}"));
    let topic = format!("slaprobe-it-{:016x}", rand::random::<u64>());
    let yaml = config(&bootstrap, &topic, &dir.join("state"), None);
    let s = Slaprobe::start(&dir, "before", &yaml);
    assert!(
        poll_until(Duration::from_secs(60), || delivered(&s) > 50.0),
        "delivers; log:\n{}",
        s.log()
    );
    // A save with canaries in flight, then stop mid-stream.
    assert!(saved_after(
        &dir.join("state"),
        "slaprobe.state.inflight",
        SystemTime::now(),
        Duration::from_secs(10)
    ));
    stop(s, signal);
    std::thread::sleep(down);
    let after = Slaprobe::start(&dir, "after", &yaml);
    let status: serde_json::Value =
        serde_json::from_str(&http_get(after.addr, "/api/v1/status").expect("status").1)
            .expect("json");
    let log = std::fs::read_to_string(dir.join("before.log")).unwrap_or_default();
    assert!(
        log.contains(status["run"].as_str().expect("run")),
        "the run id goes on"
    );
    // Everything restored settles within its deadline (5 s): a loss could
    // only show after it, so wait it out (and the expiry tick) before
    // looking for none.
    std::thread::sleep(Duration::from_secs(8));
    every_canary_settled(&after, signal);
    after.stop_cleanly();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_9_loses_no_canary_in_flight() {
    in_flight_canaries_survive("kill", Duration::ZERO);
}

#[test]
fn sigterm_loses_no_canary_in_flight() {
    in_flight_canaries_survive("term", Duration::ZERO);
}

#[test]
fn down_longer_than_the_deadline_loses_no_canary_in_flight() {
    in_flight_canaries_survive("kill", Duration::from_secs(8));
}

/// A pipeline whose stage (an independent Python client) holds every
/// record `hold` seconds: slaprobe stops while seconds of canaries are
/// inside it, and starts again after `down`. Every one of them is
/// delivered — none lost, late, duplicate, foreign nor abandoned — also
/// when it was down longer than the `deadline`: what the stage wrote
/// meanwhile is timed by when it wrote it.
fn canaries_inside_a_slow_stage_survive(signal: &str, hold: u64, deadline: &str, down: Duration) {
    let Some(bootstrap) = common::broker::bootstrap() else {
        return;
    };
    let dir = scratch(&format!("stage-{signal}"));
    let suffix = format!("{:016x}", rand::random::<u64>());
    let (input, output) = (format!("it-in-{suffix}"), format!("it-out-{suffix}"));
    common::create_topics(&bootstrap, &[&input, &output], 2);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/delay_stage.py");
    let mut stage = Command::new("python3")
        .arg(&script)
        .args([&bootstrap, &input, &output, &hold.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 delay stage (pip install confluent-kafka)");
    let yaml = format!(
        r#"state_dir: {}
clusters:
  it: {{ bootstrap: '{bootstrap}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}
probes:
  - name: it-stage
    type: pipeline
    interval: 200ms
    deadline: {deadline}
    input: {{ cluster: it, topic: {input}, payload: '{{{{"id":"{{{{id}}}}"}}}}' }}
    outputs:
      - {{ name: out, cluster: it, topic: {output}, match: {{ header: slaprobe-id }} }}
"#,
        dir.join("state").display()
    );
    let s = Slaprobe::start(&dir, "before", &yaml);
    assert!(
        poll_until(Duration::from_secs(90), || delivered(&s) >= 10.0),
        "the stage forwards canaries; log:\n{}",
        s.log()
    );
    // A save with canaries inside the stage, then stop.
    assert!(saved_after(
        &dir.join("state"),
        "slaprobe.state.inflight",
        SystemTime::now(),
        Duration::from_secs(10)
    ));
    stop(s, signal);
    std::thread::sleep(down);
    let after = Slaprobe::start(&dir, "after", &yaml);
    // Everything held by the stage comes out within its hold.
    assert!(
        poll_until(Duration::from_secs(30), || delivered(&after) >= 20.0),
        "delivered after the restart; log:\n{}",
        after.log()
    );
    // A loss, duplicate or late arrival could only show within the
    // stage's hold after that: wait it out before looking for none.
    std::thread::sleep(Duration::from_secs(hold + 1));
    let _ = stage.kill();
    let _ = stage.wait();
    every_canary_settled(&after, signal);
    after.stop_cleanly();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_9_with_canaries_inside_a_slow_stage() {
    canaries_inside_a_slow_stage_survive("kill", 5, "30s", Duration::from_millis(500));
}

#[test]
fn sigterm_with_canaries_inside_a_slow_stage() {
    canaries_inside_a_slow_stage_survive("term", 5, "30s", Duration::from_millis(500));
}

#[test]
fn down_longer_than_the_deadline_with_canaries_inside_a_slow_stage() {
    canaries_inside_a_slow_stage_survive("kill", 2, "5s", Duration::from_secs(10));
}
