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
        s.stop_cleanly();
    }
}

/// The SLA report from a real Prometheus filled by a running slaprobe:
/// `slaprobe demo --faults` stalls its enrichment job, whose lost canaries
/// overspend the pipeline's delivery budget, while Prometheus scrapes it
/// every second and evaluates the generated rules. `slaprobe report
/// --prometheus` then says that SLO missed, with the bad events
/// Prometheus holds of slaprobe's counter and the page tier's incident
/// from `ALERTS`, and that the heartbeat's availability was met. The HTML
/// report opens in headless Chromium without a console message (its
/// screenshot: `target/test-artifacts/sla-report.png`), and the running
/// slaprobe serves its own `/report`, linked from the status page.
#[test]
fn the_sla_report_reads_the_history_prometheus_holds() {
    use common::browser::{artifacts, browse, chromium};
    let Some(chromium) = chromium() else {
        common::missing_prerequisite("chromium", "apt-get install chromium");
        return;
    };
    let addr = common::free_addr();
    let dir = scratch("sla-report");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args([
            "demo",
            "--faults",
            "--duration",
            "150s",
            "--listen",
            &addr.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo");
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("alerts/slaprobe.rules.yml");
    let Some(prom) = Prometheus::start(&dir, addr, &[rules]) else {
        let _ = demo.kill();
        let _ = demo.wait();
        return;
    };
    const SLO: &str = "orders-enrichment:enriched:delivery";
    let fired = prom.query_until(
        &format!(r#"ALERTS{{alertname="SlaprobeSLOBurnRate",alertstate="firing",slo="{SLO}",long_window="1h"}}"#),
        Duration::from_secs(120),
        |v| v["data"]["result"].as_array().is_some_and(|r| !r.is_empty()),
    );
    // The running slaprobe's report: its evaluator counts a loss at its
    // next tick and publishes its windows every 15 s, so it may show the
    // losses a little after Prometheus does.
    let mut served = None;
    poll_until(Duration::from_secs(60), || {
        served = http_get(addr, "/report?period=10m&format=json").ok();
        served.as_ref().is_some_and(|(_, body)| {
            serde_json::from_str::<serde_json::Value>(body).is_ok_and(|v| {
                v["slos"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["slo"] == SLO && s["met"] == false))
            })
        })
    });
    let refused = http_get(addr, "/report?period=soon");
    let page = http_get(addr, "/");
    let report = |format: &str, out: Option<&std::path::Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_slaprobe"));
        c.args(["report", "-c"])
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("probes/"))
            .args(["--period", "10m", "--format", format, "--prometheus"])
            .arg(format!("http://{}", prom.addr))
            .env("SLAPROBE_DEMO_BOOTSTRAP", "127.0.0.1:9092");
        if let Some(out) = out {
            c.arg("--out").arg(out);
        }
        let o = c.output().expect("slaprobe report");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let json: serde_json::Value = serde_json::from_str(&report("json", None)).expect("json");
    let to = humantime::parse_rfc3339(json["to"].as_str().expect("to"))
        .expect("rfc3339")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    // The counter's value at the report's end, as Prometheus holds it (the
    // demo started within the period: all of it).
    let raw = |outcome: &str| {
        prom.query_until(
            &format!(
                r#"sum(slaprobe_sli_events_total{{job="slaprobe",probe="orders-enrichment",output="enriched",sli="delivery",outcome="{outcome}"}} @ {to})"#
            ),
            Duration::from_secs(10),
            |v| v["data"]["result"][0]["value"][1].is_string(),
        )
        .ok()
        .and_then(|v| v["data"]["result"][0]["value"][1].as_str()?.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
    };
    let (raw_good, raw_bad) = (raw("good"), raw("bad"));
    let markdown = report("markdown", None);
    let html_file = artifacts().join("sla-report.html");
    report("html", Some(&html_file));
    let shot = artifacts().join("sla-report.png");
    let _ = std::fs::remove_file(&shot);
    let file_url = format!("file://{}", html_file.display());
    let dom = browse(chromium, &file_url, &["--dump-dom"]);
    let screenshot = browse(
        chromium,
        &file_url,
        &[&format!("--screenshot={}", shot.display())],
    );
    let _ = demo.kill();
    let _ = demo.wait();
    fired.unwrap_or_else(|e| panic!("the delivery SLO's page tier fires in Prometheus: {e}"));

    let slo = |j: &serde_json::Value, name: &str| -> serde_json::Value {
        j["slos"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["slo"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} in {j:#}"))
    };
    let missed = slo(&json, SLO);
    assert_eq!(missed["met"], false, "{missed:#}");
    let (events, bad) = (
        missed["events"].as_f64().unwrap_or(0.0),
        missed["bad"].as_f64().unwrap_or(0.0),
    );
    // increase() per minute, summed, against the counter itself.
    let close = |got: f64, want: f64| (got - want).abs() <= 0.1 * want + 5.0;
    assert!(
        raw_bad > 0.0 && close(bad, raw_bad) && close(events, raw_good + raw_bad),
        "report: {events} events, {bad} bad; the counters at its end: {raw_good} good, {raw_bad} bad"
    );
    let incidents = missed["incidents"].as_array().expect("incidents");
    assert!(
        incidents.iter().any(|i| i["tier"] == "page 1h/5m"),
        "the page tier's incident from ALERTS: {incidents:#?}"
    );
    // A bar a minute, the first and last partly in the period.
    let bars = missed["chart"].as_array().map_or(0, Vec::len);
    assert!((10..=11).contains(&bars), "{bars} bars");
    let healthy = slo(&json, "demo-heartbeat:heartbeat:availability");
    assert_eq!(healthy["met"], true, "{healthy:#}");
    assert!(
        markdown.contains(&format!("| {SLO} | 99.900% |")) && markdown.contains("| missed |"),
        "{markdown}"
    );

    // The HTML in a browser: every SLO, a chart each, nothing logged.
    assert!(dom.status.success() && screenshot.status.success());
    let dumped = String::from_utf8_lossy(&dom.stdout);
    for s in json["slos"].as_array().expect("slos") {
        let name = s["slo"].as_str().expect("name");
        assert!(dumped.contains(&format!(">{name}</h2>")), "{name} rendered");
    }
    assert_eq!(
        dumped.matches("<svg").count(),
        json["slos"].as_array().map_or(0, Vec::len)
    );
    let log = String::from_utf8_lossy(&dom.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(shot.exists(), "screenshot taken");

    // The running slaprobe's own report, and the status page's link to it.
    let (code, body) = served.expect("/report answers");
    assert_eq!(code, 200, "{body}");
    let own: serde_json::Value = serde_json::from_str(&body).expect("json");
    let own_slo = slo(&own, SLO);
    assert_eq!(own_slo["met"], false, "{own_slo:#}");
    assert_eq!(refused.map(|r| r.0).ok(), Some(400));
    assert!(page.expect("/").1.contains("href=\"report\""));
}
