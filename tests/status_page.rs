//! The status page in a real browser: headless Chromium (Debian's
//! `chromium`) loads `/` from a running `slaprobe demo --faults` once its
//! stalled job's group is STALL and its lost canaries have overspent an
//! SLO's budget. The rendered page must show every probe, output, SLO and
//! consumer group, name the stalled group next to the losses, read
//! "exhausted" for a spent budget, and log nothing to the console. The
//! screenshot is kept in `target/test-artifacts/status-page.png`. Then the
//! script stops the hung job, and its group must read STOP.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::browser::{artifacts, browse, chromium};
use common::{free_addr, http_get, poll_until};

#[test]
fn the_status_page_renders_everything_in_a_browser() {
    let Some(chromium) = chromium() else {
        common::missing_prerequisite("chromium", "apt-get install chromium");
        return;
    };
    let addr = free_addr();
    let started = std::time::Instant::now();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(["demo", "--faults", "--duration", "180s", "--listen"])
        .arg(addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo");
    let status = || -> serde_json::Value {
        http_get(addr, "/api/v1/status")
            .ok()
            .and_then(|(_, body)| serde_json::from_str(&body).ok())
            .unwrap_or_default()
    };
    let group_status = |s: &serde_json::Value, group: &str| -> String {
        s["consumer_groups"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|g| g["group"] == group)
            .and_then(|g| g["status"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    // The script stalls the enrichment job at 20 s: its group turns STALL
    // (a full window of reads later) and its canaries are lost at the 10 s
    // deadline, which overspends the delivery SLO's budget.
    let mut s = serde_json::Value::Null;
    let spent = poll_until(Duration::from_secs(120), || {
        s = status();
        if group_status(&s, "orders-enricher") != "STALL" {
            return false;
        }
        let groups_read = s["consumer_groups"]
            .as_array()
            .is_some_and(|g| !g.is_empty() && g.iter().all(|g| g["partitions"].as_u64() > Some(0)));
        let overspent = s["slos"]
            .as_array()
            .is_some_and(|v| v.iter().any(|o| o["budget_remaining"].as_f64() < Some(0.0)));
        groups_read && overspent
    });
    eprintln!("STALL and an overspent budget at {:?}", started.elapsed());
    let page = format!("http://{addr}/");
    let dom = browse(chromium, &page, &["--dump-dom"]);
    let shot = artifacts().join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let screenshot = browse(
        chromium,
        &page,
        &[&format!("--screenshot={}", shot.display())],
    );
    // At 50 s the script stops the hung job (it leaves its group): STOP.
    let mut last = s.clone();
    let stopped = poll_until(Duration::from_secs(90), || {
        last = status();
        group_status(&last, "orders-enricher") == "STOP"
    });
    eprintln!("STOP read at {:?}", started.elapsed());
    let _ = demo.kill();
    let _ = demo.wait();
    assert!(
        spent,
        "the demo stalls its job, overspends a budget and reads its groups: {s:#}"
    );
    assert!(
        stopped,
        "the stopped job's group reads STOP: {:#}",
        last["consumer_groups"]
    );

    let dumped = String::from_utf8_lossy(&dom.stdout);
    // What the page shows, without its script's source.
    let html = dumped.split("<script>").next().unwrap_or_default();
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "chromium --dump-dom: {log}");
    let head = html
        .lines()
        .find(|l| l.contains("id=\"head\""))
        .unwrap_or_default();
    assert!(
        !head.contains("loading…"),
        "the page rendered its data: {head}\n{log}"
    );
    assert!(!head.contains("cannot reach slaprobe"), "{head}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");

    for p in s["probes"].as_array().expect("probes") {
        let name = p["name"].as_str().expect("probe name");
        assert!(
            html.contains(&format!("<h3>{name} ")),
            "probe {name} rendered"
        );
        for o in p["outputs"].as_array().expect("outputs") {
            let output = o["name"].as_str().expect("output name");
            assert!(
                html.contains(&format!("<td>{output}</td>")),
                "output {output} of {name}"
            );
        }
    }
    for o in s["slos"].as_array().expect("slos") {
        let slo = o["slo"].as_str().expect("slo name");
        assert!(
            html.contains(&format!("<td>{slo}</td>")),
            "SLO {slo} rendered"
        );
    }
    for g in s["consumer_groups"].as_array().expect("groups") {
        let group = g["group"].as_str().expect("group");
        assert!(
            html.contains(&format!("<h3 class=\"group\">{group} ")),
            "group {group} rendered"
        );
    }
    // The connection checks of the demo's brokers, one row each.
    let brokers = s["brokers"].as_array().expect("brokers");
    assert!(!brokers.is_empty(), "the demo's brokers are checked: {s:#}");
    for b in brokers {
        let row = format!(
            "<td>{} / {} ",
            b["kafka_cluster"].as_str().expect("cluster"),
            b["broker"].as_str().expect("broker")
        );
        assert!(html.contains(&row), "broker row {row} rendered");
    }
    // The demo's remediation action, and its run on the stall: by the
    // time the group reads STOP (the second incident) the first has ended
    // after one run.
    assert!(
        html.contains("<h3 class=\"action\">restart-enricher</h3>"),
        "the action rendered"
    );
    let action = &last["actions"][0];
    assert_eq!(action["action"], "restart-enricher", "{action:#}");
    let first = action["ended"]
        .as_array()
        .and_then(|e| e.last())
        .unwrap_or_else(|| panic!("an ended incident: {action:#}"));
    assert_eq!(
        (
            &first["group"],
            &first["status"],
            &first["runs"],
            &first["remediation"]
        ),
        (
            &"orders-enricher".into(),
            &"STALL".into(),
            &1.into(),
            &"attempted".into()
        ),
        "{action:#}"
    );
    assert!(html.contains("exhausted"), "a spent budget reads exhausted");
    // The stalled group is named next to the losses it causes.
    assert!(
        html.contains("consumer group orders-enricher is STALL"),
        "the cause is named: {html}"
    );
    // No negative percentage anywhere a person reads.
    let negative = negative_percent(html);
    assert!(
        negative.is_none(),
        "a negative percentage is shown: {negative:?}"
    );

    assert!(
        screenshot.status.success(),
        "chromium --screenshot: {}",
        String::from_utf8_lossy(&screenshot.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot ({} bytes)",
        png.len()
    );
}

/// The first `-<digits>%` in the page's text, if any.
fn negative_percent(html: &str) -> Option<String> {
    let b = html.as_bytes();
    for (i, _) in html.match_indices('-') {
        let digits: String = html[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
            .collect();
        if !digits.is_empty() && b.get(i + 1 + digits.len()) == Some(&b'%') {
            return Some(format!("-{digits}%"));
        }
    }
    None
}
