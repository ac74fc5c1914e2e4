//! One marker secret in every place a configuration can hold a secret;
//! it must come out of none of slaprobe's outputs.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{http_get, poll_until, scratch};
use rdkafka::mocking::MockCluster;

const MARKER: &str = "Zq7-SECRET-MARKER-41x";

/// An Alertmanager stand-in that accepts every push and keeps it whole.
fn capturing_alertmanager() -> (std::net::SocketAddr, Arc<Mutex<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let captured = Arc::new(Mutex::new(String::new()));
    let into = captured.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let into = into.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                while let Some((head, body)) = common::read_request(&mut reader) {
                    let mut c = into.lock().expect("lock");
                    c.push_str(&head);
                    c.push_str(&String::from_utf8_lossy(&body));
                    c.push('\n');
                    drop(c);
                    let mut w = &conn;
                    if w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (addr, captured)
}

#[test]
fn a_secret_leaves_through_no_output() {
    let mock = MockCluster::new(1).expect("mock cluster");
    for t in ["hb", "in", "out"] {
        mock.create_topic(t, 2, 1).expect("topic");
    }
    let bootstrap = mock.bootstrap_servers();
    let (am, captured) = capturing_alertmanager();
    let dir = scratch("secrets");
    let header_file = dir.join("auth-header");
    std::fs::write(&header_file, format!("Bearer {MARKER}\n")).expect("file");
    let yaml = format!(
        r#"server:
  external_url: 'https://ops:{MARKER}@slaprobe.example'
alertmanager:
  url: 'http://am:{MARKER}@{am}'
  insecure: true
clusters:
  plain:
    bootstrap: '{bootstrap}'
    librdkafka:
      fetch.wait.max.ms: '10'
      ssl.key.password: '{MARKER}'
      debug: all
  sasl:
    bootstrap: '{bootstrap}'
    librdkafka:
      fetch.wait.max.ms: '10'
      security.protocol: sasl_plaintext
      sasl.mechanism: PLAIN
      sasl.username: probe
      sasl.password: '${{SASL_PASSWORD}}'
      debug: all
  oauth:
    bootstrap: '{bootstrap}'
    librdkafka:
      fetch.wait.max.ms: '10'
      security.protocol: sasl_plaintext
      sasl.mechanism: OAUTHBEARER
      enable.sasl.oauthbearer.unsecure.jwt: 'true'
      sasl.oauthbearer.config: 'principal=probe extension_secret={MARKER}'
      debug: all
probes:
  - name: hb
    type: heartbeat
    cluster: plain
    topic: hb
    interval: 100ms
    deadline: 3s
    slos:
      - {{ sli: latency, threshold: 1us, objective: 99% }}
  - {{ name: hb-sasl, type: heartbeat, cluster: sasl, topic: hb, interval: 500ms }}
  - {{ name: hb-oauth, type: heartbeat, cluster: oauth, topic: hb, interval: 500ms }}
  - name: pl
    type: pipeline
    input:
      cluster: plain
      topic: in
      payload: '{{"id":"{{{{id}}}}"}}'
      headers: {{ authorization_file: '{}' }}
    outputs:
      - {{ name: out, cluster: plain, topic: out, match: {{ json: /id }} }}
actions:
  - name: page-bot
    on: {{ slo: {{ slos: ['hb:heartbeat:latency'], severity: ticket }} }}
    run: {{ webhook: {{ url: 'http://bot:{MARKER}@127.0.0.1:1/hook', headers: {{ X-Api-Key_file: '{}' }} }} }}
"#,
        header_file.display(),
        header_file.display()
    );
    let config = dir.join("secrets.yaml");
    std::fs::write(&config, &yaml).expect("config");
    let slaprobe = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_slaprobe"))
            .args(args)
            .env("SASL_PASSWORD", MARKER)
            .output()
            .expect("slaprobe");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let mut outputs: Vec<(String, String)> = Vec::new();
    let check = slaprobe(&["check", "-c", config.to_str().expect("utf-8")]);
    assert!(check.contains("<redacted>"), "check ran: {check}");
    outputs.push(("check".into(), check));
    let rules = dir.join("rules");
    outputs.push((
        "rules".into(),
        slaprobe(&[
            "rules",
            "-c",
            config.to_str().expect("utf-8"),
            "--out",
            rules.to_str().expect("utf-8"),
        ]),
    ));
    for f in std::fs::read_dir(&rules).expect("rules written").flatten() {
        outputs.push((
            format!("rules/{}", f.file_name().to_string_lossy()),
            std::fs::read_to_string(f.path()).expect("read"),
        ));
    }

    // `run` at trace level with librdkafka's `debug: all`, 10 s.
    let log = dir.join("run.log");
    let addr = common::free_addr();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args([
            "run",
            "-c",
            config.to_str().expect("utf-8"),
            "--listen",
            &addr.to_string(),
        ])
        .env("SASL_PASSWORD", MARKER)
        .env("RUST_LOG", "trace")
        .stdout(std::fs::File::create(dir.join("run.out")).expect("out"))
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run");
    assert!(poll_until(Duration::from_secs(15), || http_get(
        addr, "/healthz"
    )
    .is_ok()));
    assert!(
        poll_until(Duration::from_secs(30), || !captured
            .lock()
            .expect("lock")
            .is_empty()),
        "an alert is pushed"
    );
    std::thread::sleep(Duration::from_secs(10));
    for path in ["/metrics", "/api/v1/status", "/", "/readyz"] {
        let (_, body) = http_get(addr, path).expect("answer");
        outputs.push((path.into(), body));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let run_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        run_log.contains("librdkafka") && run_log.lines().count() > 1_000,
        "librdkafka's debug output is in the log ({} lines)",
        run_log.lines().count()
    );
    outputs.push(("run log".into(), run_log));
    outputs.push((
        "run stdout".into(),
        std::fs::read_to_string(dir.join("run.out")).unwrap_or_default(),
    ));
    // The action ran (its webhook refused): its URL and header went
    // through the run, the log and the status API.
    let metrics = &outputs
        .iter()
        .find(|(n, _)| n == "/metrics")
        .expect("metrics")
        .1;
    assert!(
        common::metric(
            metrics,
            "slaprobe_action_runs_total",
            &[("action", "page-bot"), ("outcome", "error")]
        ) >= 1.0,
        "the action ran"
    );
    let pushes = captured.lock().expect("lock").clone();
    assert!(pushes.contains("SlaprobeSLOBurnRate"), "{pushes}");
    outputs.push(("Alertmanager push".into(), pushes));

    for (name, text) in &outputs {
        if let Some(at) = text.find(MARKER) {
            let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!("the secret is in {name}: {}", &text[from..to]);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
