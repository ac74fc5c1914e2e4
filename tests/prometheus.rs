//! A real Prometheus (Debian's `prometheus`) scrapes `slaprobe demo` and
//! evaluates the committed generated rules (`alerts/slaprobe.rules.yml`):
//! its query API returns the recording rules' series for the demo's SLOs.
//! And two slaprobe instances (two Kafka clusters, one probe name, one job
//! each) in one Prometheus with both generated rule files loaded: no
//! duplicate series, alerts only for the cluster that fails, one
//! `SlaprobeDown` for the instance that is gone.

mod common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{http_get, poll_until, scratch, Prometheus, Slaprobe};
use rdkafka::mocking::MockCluster;

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

/// One instance's config: cluster `cluster` at `bootstrap`, scraped as
/// `job`, a heartbeat probe named `heartbeat` (the same name in both).
fn instance_yaml(job: &str, cluster: &str, bootstrap: &str) -> String {
    format!(
        r#"alerts:
  job: {job}
clusters:
  {cluster}: {{ bootstrap: '{bootstrap}' }}
probes:
  - name: heartbeat
    type: heartbeat
    cluster: {cluster}
    topic: slaprobe.heartbeat
    interval: 100ms
    deadline: 2s
    slos:
      - {{ sli: availability, objective: 99.9% }}
"#
    )
}

#[test]
fn two_instances_of_two_clusters_share_one_prometheus() {
    let dir = scratch("two-instances");
    let mut instances = Vec::new();
    let mut mocks = Vec::new();
    let mut rule_files = Vec::new();
    for (job, cluster) in [("slaprobe-east", "east"), ("slaprobe-west", "west")] {
        let mock = MockCluster::new(1).expect("mock cluster");
        mock.create_topic("slaprobe.heartbeat", 3, 1)
            .expect("topic");
        let yaml = instance_yaml(job, cluster, &mock.bootstrap_servers());
        let s = Slaprobe::start(&dir, job, &yaml);
        let out = dir.join(format!("rules-{job}"));
        let status = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
            .args(["rules", "-c"])
            .arg(dir.join(format!("{job}.yaml")))
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .expect("slaprobe rules");
        assert!(status.success());
        rule_files.push(out.join("slaprobe.rules.yml"));
        instances.push((job, s));
        mocks.push(mock);
    }
    let jobs: Vec<(&str, std::net::SocketAddr)> =
        instances.iter().map(|(job, s)| (*job, s.addr)).collect();
    let Some(prom) = Prometheus::start_jobs(&dir, &jobs, &rule_files, None) else {
        return;
    };
    let non_empty = |v: &serde_json::Value| {
        v["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    };
    let count = |v: &serde_json::Value| v["data"]["result"].as_array().map_or(0, Vec::len);
    // Both instances' recording rules, one series each.
    prom.query_until(
        r#"count(slaprobe:sli_events:increase5m{probe="heartbeat",sli="availability"}) == 2"#,
        Duration::from_secs(40),
        non_empty,
    )
    .unwrap_or_else(|e| panic!("both instances recorded: {e}"));
    let duplicates = prom
        .query_until(
            "count by (job, probe, output, sli) (slaprobe:sli_events:increase5m) > 1",
            Duration::from_secs(5),
            |v| v["status"] == "success",
        )
        .expect("query");
    assert_eq!(
        count(&duplicates),
        0,
        "duplicate recorded series: {duplicates}"
    );

    // West's broker goes away: its canaries fail to produce.
    mocks[1].broker_down(1).expect("broker down");
    let firing = prom
        .query_until(
            r#"ALERTS{alertname="SlaprobeSLOBurnRate",alertstate="firing"}"#,
            Duration::from_secs(60),
            non_empty,
        )
        .unwrap_or_else(|e| panic!("west burns its budget: {e}"));
    for alert in firing["data"]["result"].as_array().expect("result") {
        let m = &alert["metric"];
        assert_eq!(m["kafka_cluster"], "west", "{alert}");
        assert_eq!(m["job"], "slaprobe-west", "{alert}");
    }
    // One alert per tier that fires, not one per rule file.
    let per_tier = prom
        .query_until(
            r#"count by (long_window) (ALERTS{alertname="SlaprobeSLOBurnRate",alertstate="firing"}) > 1"#,
            Duration::from_secs(5),
            |v| v["status"] == "success",
        )
        .expect("query");
    assert_eq!(count(&per_tier), 0, "duplicate alerts: {per_tier}");

    // East's instance goes away: one SlaprobeDown (pending its 5 minutes),
    // for east's job only.
    let (_, east) = instances.remove(0);
    drop(east);
    let down = prom
        .query_until(
            r#"ALERTS{alertname="SlaprobeDown"}"#,
            Duration::from_secs(30),
            non_empty,
        )
        .unwrap_or_else(|e| panic!("SlaprobeDown pending: {e}"));
    let down = down["data"]["result"].as_array().expect("result");
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(down[0]["metric"]["job"], "slaprobe-east");
    // Every rule of both files evaluated without an error.
    assert!(
        poll_until(Duration::from_secs(5), || prom
            .own_metric("prometheus_rule_evaluation_failures_total")
            .is_some()),
        "Prometheus' own metrics"
    );
    assert_eq!(
        prom.own_metric("prometheus_rule_evaluation_failures_total"),
        Some(0.0),
        "rule evaluation failures"
    );
    drop(prom);
    for (_, s) in instances {
        assert!(s.stop().success());
    }
}
