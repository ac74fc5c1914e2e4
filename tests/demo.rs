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
