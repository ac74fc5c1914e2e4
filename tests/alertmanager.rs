//! `slaprobe run` pushing to Alertmanager the way Prometheus does: every
//! replica, credentials, TLS with a private CA, the labels that make pushed
//! alerts and the generated rules' alerts one alert; and Alertmanagers that
//! hang, fail with huge bodies or refuse the credentials, none of which
//! touches probing. The cluster is librdkafka's mock cluster in this
//! process; Prometheus and Alertmanager are the real Debian binaries.

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{am_alerts, poll_until, scratch, Slaprobe};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

const TOPIC: &str = "slaprobe.am";
const SLO: &str = "am:heartbeat:latency";

fn cluster() -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic(TOPIC, 3, 1).expect("topic");
    mock
}

/// A heartbeat probe whose latency SLO (1 µs) every canary breaks, so
/// every burn-rate tier fires within seconds.
fn burning(bootstrap: &str, alertmanager: &str) -> String {
    format!(
        r#"alertmanager:
{alertmanager}
clusters:
  it: {{ bootstrap: '{bootstrap}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}
probes:
  - name: am
    type: heartbeat
    cluster: it
    topic: {TOPIC}
    interval: 100ms
    deadline: 5s
    slos:
      - {{ sli: latency, threshold: 1us, objective: 99% }}
"#
    )
}

/// The rules `slaprobe rules` writes for exactly `yaml` (in `dir/rules/`).
fn rules_for(dir: &std::path::Path, yaml: &str) -> std::path::PathBuf {
    let config = dir.join("rules.yaml");
    std::fs::write(&config, yaml).expect("config");
    let rules = dir.join("rules");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(["rules", "-c"])
        .arg(&config)
        .arg("--out")
        .arg(&rules)
        .output()
        .expect("slaprobe rules");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rules
}

/// Canaries delivered so far (0 while the process does not answer).
fn delivered(s: &Slaprobe) -> f64 {
    s.delivered().unwrap_or(0.0)
}

fn firing_tiers(s: &Slaprobe) -> usize {
    let Ok((200, body)) = common::http_get(s.addr, "/api/v1/status") else {
        return 0;
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["slos"][0]["alerts"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|t| t["firing"] == true).count())
}

#[test]
fn pushed_alerts_and_the_rules_alerts_are_one_alert_per_tier() {
    let Some(am) = common::Alertmanager::start() else {
        return;
    };
    let mock = cluster();
    let dir = scratch("am-dedup");
    let yaml = burning(
        &mock.bootstrap_servers(),
        &format!("  url: 'http://{}'", am.addr),
    );
    let rules = rules_for(&dir, &yaml);
    let s = Slaprobe::start(&dir, "am", &yaml);
    let Some(prom) = common::Prometheus::start_alerting(
        &dir,
        s.addr,
        &[rules.join("slaprobe.rules.yml")],
        Some(am.addr),
    ) else {
        return;
    };
    // Both sides fire every tier: slaprobe's evaluator and Prometheus.
    assert!(
        poll_until(Duration::from_secs(60), || firing_tiers(&s) == 4),
        "slaprobe fires the 4 tiers; log:\n{}",
        s.log()
    );
    prom.query_until(
        &format!("count(ALERTS{{alertname=\"SlaprobeSLOBurnRate\",slo=\"{SLO}\",alertstate=\"firing\"}}) == 4"),
        Duration::from_secs(60),
        |v| v["data"]["result"].as_array().is_some_and(|r| !r.is_empty()),
    )
    .unwrap_or_else(|e| panic!("Prometheus fires the 4 tiers: {e}"));
    // slaprobe pushed when its tiers fired, before Prometheus' fired; once
    // Prometheus has sent its notifications too, count what Alertmanager
    // holds.
    assert!(
        poll_until(Duration::from_secs(30), || prom
            .own_metric("prometheus_notifications_sent_total")
            .is_some_and(|n| n >= 1.0)),
        "Prometheus sends its alerts to Alertmanager"
    );
    let alerts = am_alerts(&am, SLO);
    let tiers: std::collections::BTreeSet<String> = alerts
        .iter()
        .map(|a| {
            a["labels"]["long_window"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        (alerts.len(), tiers.len()),
        (4, 4),
        "one alert per tier, not one per sender: {alerts:#?}"
    );
    for a in &alerts {
        assert_eq!(a["labels"]["job"], "slaprobe");
        assert_eq!(a["labels"]["instance"], s.addr.to_string());
    }
    assert!(
        !s.log().contains("pushing alerts to Alertmanager failed"),
        "slaprobe's pushes were accepted; log:\n{}",
        s.log()
    );
    s.stop_cleanly();
}

#[test]
fn https_with_a_private_ca_and_basic_auth() {
    let tls = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    // bcrypt of `am-test-pass`.
    let web = format!(
        "tls_server_config:\n  cert_file: {tls}/server.pem\n  key_file: {tls}/server.key\nbasic_auth_users:\n  probe: $2b$04$pk0eGSpHkZIHf5Pv54a6UOQpmT1BLHsU/viksLGQBs.KC806u59KG\n"
    );
    let Some(am) = common::Alertmanager::start_with_web_config(Some(&web)) else {
        return;
    };
    let mock = cluster();
    let dir = scratch("am-tls");
    let yaml = burning(
        &mock.bootstrap_servers(),
        &format!(
            "  url: 'https://probe:am-test-pass@localhost:{}'\n  ca_file: {tls}/ca.pem",
            am.addr.port()
        ),
    );
    let s = Slaprobe::start(&dir, "am-tls", &yaml);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(format!("{tls}/ca.pem")).expect("ca"))
                .expect("pem"),
        )
        .build()
        .expect("client");
    let held = |user: &str, password: &str| -> Option<usize> {
        rt.block_on(async {
            let r = client
                .get(format!(
                    "https://localhost:{}/api/v2/alerts",
                    am.addr.port()
                ))
                .basic_auth(user, Some(password))
                .send()
                .await
                .ok()?;
            if !r.status().is_success() {
                return None;
            }
            let all: Vec<serde_json::Value> = r.json().await.ok()?;
            Some(all.iter().filter(|a| a["labels"]["slo"] == SLO).count())
        })
    };
    assert!(
        poll_until(Duration::from_secs(60), || held("probe", "am-test-pass")
            == Some(4)),
        "the 4 tiers reach Alertmanager over https; log:\n{}",
        s.log()
    );
    assert_eq!(
        held("probe", "wrong"),
        None,
        "Alertmanager does check the password"
    );
    assert!(!s.log().contains("am-test-pass"));
    s.stop_cleanly();
}

/// An Alertmanager stand-in that answers every request the same way and
/// keeps each request's head.
struct Stub {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone, Copy)]
enum Answer {
    /// Reads the request and never answers.
    Hang,
    /// 500 with a 10 MB body.
    HugeError,
    /// 401 with a short body.
    Unauthorized,
}

impl Stub {
    fn start(answer: Answer) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || serve_one(conn, answer, &seen));
            }
        });
        Stub { addr, requests }
    }

    fn heads(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

fn serve_one(conn: std::net::TcpStream, answer: Answer, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let Some((head, body)) = common::read_request(&mut reader) else {
        return;
    };
    seen.lock()
        .expect("lock")
        .push(format!("{head}\r\n{}", String::from_utf8_lossy(&body)));
    let mut conn = conn;
    match answer {
        Answer::Hang => std::thread::sleep(Duration::from_secs(120)),
        Answer::Unauthorized => {
            let _ = conn.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\nConnection: close\r\n\r\nUnauthorized\n",
            );
        }
        Answer::HugeError => {
            let size = 10 << 20;
            let _ = conn.write_all(
                format!("HTTP/1.1 500 Internal Server Error\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let chunk = vec![b'E'; 64 << 10];
            for _ in 0..size / chunk.len() {
                if conn.write_all(&chunk).is_err() {
                    break;
                }
            }
        }
    }
}

#[test]
fn hung_failing_and_refusing_replicas_never_touch_probing_or_the_healthy_one() {
    let Some(am) = common::Alertmanager::start() else {
        return;
    };
    let hung = Stub::start(Answer::Hang);
    let huge = Stub::start(Answer::HugeError);
    let refusing = Stub::start(Answer::Unauthorized);
    let mock = cluster();
    let dir = scratch("am-faults");
    let token = dir.join("token");
    std::fs::write(&token, "tok-3f9a\n").expect("token");
    let yaml = burning(
        &mock.bootstrap_servers(),
        &format!(
            "  urls: ['http://{}', 'http://{}', 'http://{}', 'http://{}']\n  bearer_token_file: {}\n  insecure: true\n  labels: {{ env: it }}",
            hung.addr,
            huge.addr,
            refusing.addr,
            am.addr,
            token.display()
        ),
    );
    let s = Slaprobe::start(&dir, "am-faults", &yaml);
    assert!(poll_until(Duration::from_secs(30), || delivered(&s) > 0.0));
    let peak_before = common::proc_status_kb(s.child.id(), "VmHWM");

    // The healthy replica gets every tier while the others fail.
    assert!(
        poll_until(Duration::from_secs(60), || am_alerts(&am, SLO).len() == 4),
        "the healthy replica gets the 4 tiers; log:\n{}",
        s.log()
    );
    for a in am_alerts(&am, SLO) {
        assert_eq!(a["labels"]["env"], "it");
    }
    // Each failing replica is retried (backoff 1 s, 2 s, ...), the hung one
    // gives up at its 10 s timeout; probing goes on all along.
    let delivered_before = delivered(&s);
    assert!(
        poll_until(Duration::from_secs(30), || huge.heads().len() >= 3
            && refusing.heads().len() >= 3
            && s.log().contains("no answer within 10s")),
        "retries and the hung push's timeout; log:\n{}",
        s.log()
    );
    assert!(delivered(&s) >= delivered_before + 50.0, "probing went on");
    assert_eq!(
        common::metric(&s.metrics(), "slaprobe_canaries_lost_total", &[]),
        0.0
    );
    // Every request carried the token; error bodies were cut at 512 bytes.
    for h in huge.heads().iter().chain(refusing.heads().iter()) {
        assert!(
            h.contains("authorization: Bearer tok-3f9a")
                || h.contains("Authorization: Bearer tok-3f9a"),
            "{h}"
        );
    }
    let log = s.log();
    let failure = log
        .lines()
        .find(|l| l.contains("HTTP 500"))
        .unwrap_or_else(|| panic!("the 500 is logged; log:\n{log}"));
    assert!(
        failure.contains("[truncated]") && failure.len() < 1_500,
        "{failure}"
    );
    assert!(log.contains("HTTP 401 Unauthorized: Unauthorized"), "{log}");
    let peak_after = common::proc_status_kb(s.child.id(), "VmHWM");
    println!("peak RSS before the failing pushes {peak_before} kB, after {peak_after} kB");
    assert!(
        peak_after < peak_before + 6_000,
        "a 10 MB error body is not read: peak RSS {peak_before} -> {peak_after} kB"
    );
    assert!(!log.contains("tok-3f9a"), "the token is never logged");
    s.stop_cleanly();
}

/// A heartbeat over three brokers, one of them slow: the canaries sent to
/// the partitions it leads break the latency SLO, the others do not. Every
/// burn-rate alert names that broker — the ones slaprobe pushes and the
/// ones Prometheus raises from the generated rules alike — and the
/// outcome, latency and SLI series say it too.
#[test]
fn a_burn_that_comes_from_one_broker_names_it() {
    let Some(am) = common::Alertmanager::start() else {
        return;
    };
    const SLOW: &str = "2";
    let topic = "slaprobe.brokers";
    let mock = common::mock_cluster(topic, 6, 3);
    let dir = scratch("am-broker");
    let yaml = format!(
        r#"alertmanager:
  url: 'http://{}'
clusters:
  it: {{ bootstrap: '{}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}
probes:
  - name: brokers
    type: heartbeat
    cluster: it
    topic: {topic}
    interval: 50ms
    deadline: 5s
    slos:
      - {{ sli: latency, threshold: 150ms, objective: 99% }}
"#,
        am.addr,
        mock.bootstrap_servers()
    );
    let rules = rules_for(&dir, &yaml);
    let s = Slaprobe::start(&dir, "brokers", &yaml);
    assert!(
        poll_until(Duration::from_secs(30), || delivered(&s) > 20.0),
        "canaries flow; log:\n{}",
        s.log()
    );
    mock.broker_round_trip_time(SLOW.parse().expect("id"), Duration::from_millis(400))
        .expect("rtt");
    // Prometheus evaluates the rules but sends nothing: Alertmanager holds
    // slaprobe's alerts only, and Prometheus' are read from its API.
    let Some(prom) =
        common::Prometheus::start_alerting(&dir, s.addr, &[rules.join("slaprobe.rules.yml")], None)
    else {
        return;
    };
    let slo = "brokers:heartbeat:latency";
    let named = |alerts: &[serde_json::Value]| {
        alerts.len() == 4 && alerts.iter().all(|a| a["annotations"]["broker"] == SLOW)
    };
    let mut pushed = Vec::new();
    assert!(
        poll_until(Duration::from_secs(90), || {
            pushed = am_alerts(&am, slo);
            named(&pushed)
        }),
        "slaprobe's 4 alerts name broker {SLOW}: {pushed:#?}\nlog:\n{}",
        s.log()
    );
    let mut raised = Vec::new();
    assert!(
        poll_until(Duration::from_secs(60), || {
            raised = common::http_get(prom.addr, "/api/v1/alerts")
                .ok()
                .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
                .and_then(|v| v["data"]["alerts"].as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a["labels"]["slo"] == slo && a["state"] == "firing")
                .collect();
            named(&raised)
        }),
        "Prometheus' 4 alerts name broker {SLOW}: {raised:#?}"
    );
    // The series behind it: every broker delivers, only the slow one's
    // canaries are slow.
    let text = s.metrics();
    let bad_of = |b: &str| {
        common::metric(
            &text,
            "slaprobe_sli_events_total",
            &[
                ("probe", "brokers"),
                ("sli", "latency"),
                ("outcome", "bad"),
                ("broker", b),
            ],
        )
    };
    for b in ["1", "2", "3"] {
        let delivered = common::metric(
            &text,
            "slaprobe_canaries_delivered_total",
            &[("probe", "brokers"), ("broker", b)],
        );
        assert!(delivered > 0.0, "broker {b} delivers: {delivered}");
        let bad = bad_of(b);
        let latency = common::metric(
            &text,
            "slaprobe_e2e_latency_seconds_sum",
            &[("probe", "brokers"), ("broker", b)],
        ) / common::metric(
            &text,
            "slaprobe_e2e_latency_seconds_count",
            &[("probe", "brokers"), ("broker", b)],
        );
        println!(
            "broker {b}: delivered {delivered}, latency-bad {bad}, mean latency {latency:.3}s"
        );
        if b == SLOW {
            assert!(bad > 0.0 && latency > 0.15, "broker {b}");
        } else {
            // A loaded machine may make the odd canary slow anywhere.
            assert!(bad * 10.0 < bad_of(SLOW), "broker {b} is not slow");
        }
    }
    s.stop_cleanly();
}
