//! `slaprobe demo` as a user runs it: the binary, its printed guide, and
//! its HTTP endpoints showing both demo probes working.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{http_get, metric};

#[test]
fn the_demo_probes_its_cluster_and_pipeline_and_ends_on_time() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args([
            "demo",
            "--faults",
            "--duration",
            "20s",
            "--listen",
            &addr.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");

    let mut ready = false;
    let mut text = String::new();
    // Until the demo ends by itself (--duration): readiness is an event, not
    // a race against a timer on a loaded machine.
    while child.try_wait().ok().flatten().is_none() {
        if http_get(addr, "/readyz").is_ok_and(|r| r.0 == 200) {
            text = http_get(addr, "/metrics").map(|r| r.1).unwrap_or_default();
            let good = |output: &str| {
                metric(
                    &text,
                    "slaprobe_sli_events_total",
                    &[("output", output), ("sli", "delivery"), ("outcome", "good")],
                )
            };
            let status: serde_json::Value = http_get(addr, "/api/v1/status")
                .ok()
                .and_then(|r| serde_json::from_str(&r.1).ok())
                .unwrap_or_default();
            let history = status["probes"][0]["outputs"][0]["latency_history"]
                .as_array()
                .is_some_and(|h| !h.is_empty());
            if good("heartbeat") > 0.0 && good("enriched") > 0.0 && good("public") > 0.0 && history
            {
                ready = true;
                // The status page: served, self-contained.
                let (status, page) = http_get(addr, "/").expect("GET /");
                assert_eq!(status, 200);
                assert!(
                    page.contains("api/v1/status") && page.contains("<svg"),
                    "{page}"
                );
                assert!(
                    !page.contains("http://") && !page.contains("https://"),
                    "no external asset"
                );
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = child.wait().expect("demo exits");
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    assert!(
        ready,
        "readyz 200 and every output has good delivery events:\n{text}\n{out}"
    );
    assert!(status.success(), "exit status {status}");
    assert!(out.contains(&format!("http://{addr}/metrics")), "{out}");
    assert!(
        out.contains(&format!("status    http://{addr}/\n")),
        "{out}"
    );
    assert!(out.contains("[faults 00:00] steady state"), "{out}");
    assert_eq!(
        metric(&text, "slaprobe_canaries_lost_total", &[]),
        0.0,
        "{text}"
    );
    // 20s of demo plus start-up and a bounded shutdown; a demo that ignored
    // --duration would run for ever.
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "--duration ends it"
    );
}

/// `--log-format json` (or SLAPROBE_LOG_FORMAT=json): every line on
/// stderr is one JSON object a log pipeline can index, from start-up to a
/// fatal error; the default stays text for a person.
#[test]
fn logs_are_one_json_object_per_line_when_asked() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let out = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args([
            "--log-format",
            "json",
            "demo",
            "--duration",
            "3s",
            "--listen",
        ])
        .arg(addr.to_string())
        .env_remove("SLAPROBE_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .output()
        .expect("demo");
    assert!(out.status.success(), "exit status {}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for l in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(l[field].is_string(), "{field} in {l}");
        }
    }
    let listening = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("slaprobe listening on"))
        })
        .unwrap_or_else(|| panic!("the start-up line:\n{stderr}"));
    assert_eq!(listening["level"], "INFO");
    assert!(listening["run"].is_string(), "fields are kept: {listening}");

    // A fatal error too; and the environment variable chooses it as well.
    let out = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(["run", "-c", "/nonexistent/slaprobe.yaml"])
        .env("SLAPROBE_LOG_FORMAT", "json")
        .env_remove("SLAPROBE_CONFIG")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error: serde_json::Value = serde_json::from_str(stderr.trim())
        .unwrap_or_else(|e| panic!("one JSON line ({e}):\n{stderr}"));
    assert_eq!(error["level"], "ERROR");
    assert_eq!(error["message"], "configuration error");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("/nonexistent/slaprobe.yaml")),
        "{error}"
    );

    // Text by default; a wrong value is refused by name.
    let out = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(["run", "-c", "/nonexistent/slaprobe.yaml"])
        .env_remove("SLAPROBE_LOG_FORMAT")
        .env_remove("SLAPROBE_CONFIG")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("configuration error:\n"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(["--log-format", "xml", "check"])
        .env_remove("SLAPROBE_LOG_FORMAT")
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'xml'") && stderr.contains("--log-format"),
        "{stderr}"
    );
}
