//! The shipped example configurations pass `check`, and the environment
//! variables a container sets (`SLAPROBE_CONFIG`, `SLAPROBE_LISTEN`) are
//! the defaults of `-c` and `--listen`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{http_get, poll_until, scratch};

fn slaprobe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slaprobe"));
    c.env_remove("SLAPROBE_CONFIG")
        .env_remove("SLAPROBE_LISTEN");
    c
}

/// `slaprobe check -c probes/examples/<name>` with `env`: its plan, after
/// asserting it passed and shows every one of `shown`.
fn check_example(name: &str, env: &[(&str, &Path)], shown: &[&str]) -> String {
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("probes/examples")
        .join(name);
    let out = slaprobe()
        .args(["check", "-c"])
        .arg(&example)
        .envs(env.iter().copied())
        .output()
        .expect("slaprobe check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for shown in shown {
        assert!(stdout.contains(shown), "{shown} in:\n{stdout}");
    }
    stdout
}

#[test]
fn the_production_example_passes_check() {
    let dir = scratch("production-example");
    let password = dir.join("password");
    std::fs::write(&password, "not-the-real-one\n").expect("password file");
    let stdout = check_example(
        "production.yaml",
        &[("KAFKA_PASSWORD_FILE", &password)],
        &[
            "prod-heartbeat",
            "orders",
            "enriched",
            "audit",
            "sasl.password: <redacted>",
            "connection checks: every broker every 30s",
            "listener default: kafka-0.kafka:9093,kafka-1.kafka:9093,kafka-2.kafka:9093 (SASL_SSL SCRAM-SHA-512)",
        ],
    );
    assert!(!stdout.contains("not-the-real-one"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// docs/dead-letter.md's recipe: its poison canaries are a probe of their
/// own with the SLOs of the dead-letter path.
#[test]
fn the_dead_letter_example_passes_check() {
    check_example(
        "dead-letter.yaml",
        &[],
        &[
            "payments.poison (pipeline: the poison canaries of payments",
            "dlq: cluster prod, topic payments.dlq, match header slaprobe-id, expect exactly_once",
            "payments.poison:validated:delivery",
            "payments.poison:dlq:delivery",
        ],
    );
}

#[test]
fn slaprobe_config_and_slaprobe_listen_are_the_defaults() {
    let dir = scratch("env-defaults");
    let config = dir.join("conf.d");
    std::fs::create_dir_all(&config).expect("dir");
    std::fs::write(
        config.join("probes.yaml"),
        "clusters:\n  c: { bootstrap: '127.0.0.1:1' }\nprobes:\n  - { name: hb, type: heartbeat, cluster: c, topic: t }\n",
    )
    .expect("config");
    let out = slaprobe()
        .arg("check")
        .env("SLAPROBE_CONFIG", &config)
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hb"));

    let addr = common::free_addr();
    let mut run = slaprobe()
        .arg("run")
        .env("SLAPROBE_CONFIG", &config)
        .env("SLAPROBE_LISTEN", addr.to_string())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run");
    let up = poll_until(Duration::from_secs(15), || {
        http_get(addr, "/healthz").is_ok()
    });
    // The prober's own process metrics, read from /proc at the scrape.
    let metrics = http_get(addr, "/metrics").map(|r| r.1).unwrap_or_default();
    let pid = run.id();
    let _ = run.kill();
    let _ = run.wait();
    assert!(up, "slaprobe run listens on SLAPROBE_LISTEN");
    // CPU time may still be 0 ticks this early: only present.
    assert!(common::metric(&metrics, "process_cpu_seconds_total", &[]) >= 0.0);
    for name in [
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_threads",
    ] {
        assert!(
            common::metric(&metrics, name, &[]) > 0.0,
            "{name}:\n{metrics}"
        );
    }
    let started = common::metric(&metrics, "process_start_time_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        (now - started).abs() < 60.0,
        "started {started}, now {now} (pid {pid})"
    );
    // The flag still wins over the variable.
    let out = slaprobe()
        .args(["check", "-c", "/nonexistent.yaml"])
        .env("SLAPROBE_CONFIG", &config)
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
