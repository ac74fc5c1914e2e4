//! A real Prometheus (Debian's `prometheus`) scrapes `slaprobe demo` and
//! evaluates the committed generated rules (`alerts/slaprobe.rules.yml`):
//! its query API returns the recording rules' series for the demo's SLOs.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{http_get, Prometheus};

#[test]
fn prometheus_evaluates_the_generated_rules_on_the_demo() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let dir = std::env::temp_dir().join(format!(
        "slaprobe-prom-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(["demo", "--duration", "60s", "--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo");
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("alerts/slaprobe.rules.yml");
    let result = match Prometheus::start(&dir, addr, &[rules]) {
        None => None,
        Some(prom) => {
            let up = prom.query_until("up{job=\"slaprobe\"} == 1", Duration::from_secs(30), |v| {
                v["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
            });
            let recorded = up.and_then(|_| {
                prom.query_until(
                    r#"slaprobe:sli_error:ratio_rate5m{probe="demo-heartbeat",sli="delivery"}"#,
                    Duration::from_secs(40),
                    // A number: NaN until the 5-minute window holds events.
                    |v| {
                        v["data"]["result"][0]["metric"]["output"] == "heartbeat"
                            && v["data"]["result"][0]["value"][1] != "NaN"
                    },
                )
            });
            let events = recorded.as_ref().ok().map(|_| {
                prom.query_until(
                    r#"slaprobe:sli_events:increase1h{probe="orders-enrichment",output="enriched",sli="delivery"} > 0"#,
                    Duration::from_secs(20),
                    |v| v["data"]["result"].as_array().is_some_and(|r| !r.is_empty()),
                )
            });
            Some((recorded, events))
        }
    };
    let _ = http_get(addr, "/healthz");
    let _ = demo.kill();
    let _ = demo.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let Some((recorded, events)) = result else {
        return;
    };
    let v = recorded.unwrap_or_else(|e| panic!("recording rule series: {e}"));
    // A healthy demo: no delivery errors in the last 5 minutes.
    assert_eq!(v["data"]["result"][0]["value"][1], "0", "{v}");
    if let Some(events) = events {
        events.unwrap_or_else(|e| panic!("event counts: {e}"));
    }
}
