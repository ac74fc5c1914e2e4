//! Helpers shared by the integration tests: configs built in code, metric
//! scraping, polling with deadlines (never fixed sleeps where a condition
//! can be awaited).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use slaprobe::app::{self, App};
use slaprobe::config::{
    Cluster, Config, Heartbeat, Probe, ProbeKind, Server, Sli, Slo, TopicManagement,
};
use slaprobe::metrics::Metrics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn heartbeat_config(
    bootstrap: &str,
    topic: &str,
    interval: Duration,
    deadline: Duration,
) -> Config {
    let cluster = Cluster {
        name: "test".into(),
        bootstrap: bootstrap.into(),
        // The mock cluster and tansu answer a fetch only when its wait
        // expires (see kafka::DEFAULT_FETCH_WAIT_MS).
        librdkafka: [("fetch.wait.max.ms".to_string(), "10".to_string())].into(),
        secret_keys: Default::default(),
    };
    let slo = |sli, threshold| Slo {
        output: "heartbeat".into(),
        sli,
        objective: 0.99,
        period: Duration::from_secs(30 * 86_400),
        threshold,
        min_events: 10,
    };
    Config {
        sources: vec![],
        server: Server {
            listen: "127.0.0.1:0".parse().expect("addr"),
            external_url: None,
        },
        state_dir: None,
        alertmanager: None,
        clusters: [("test".to_string(), cluster)].into_iter().collect(),
        probes: vec![Probe {
            name: "hb".into(),
            interval,
            deadline,
            payload_bytes: 200,
            kind: ProbeKind::Heartbeat(Heartbeat {
                cluster: "test".into(),
                topic: topic.into(),
                topic_management: TopicManagement::default(),
            }),
            slos: vec![
                slo(Sli::Availability, None),
                slo(Sli::Delivery, None),
                slo(Sli::Latency, Some(Duration::from_millis(100))),
            ],
            dedicated_client: false,
        }],
        lag: vec![],
    }
}

/// A running slaprobe (library, not process) and what tests look at.
pub struct Running {
    pub metrics: Metrics,
    pub run: slaprobe::canary::RunId,
    pub addr: SocketAddr,
    pub cancel: CancellationToken,
    /// Cancel to stop only the sending of canaries (see `App::run_with`).
    pub stop_input: CancellationToken,
    pub task: JoinHandle<Result<(), app::RunError>>,
}

impl Running {
    pub async fn start(config: &Config) -> Running {
        Self::start_app(App::build(config).expect("build")).await
    }

    pub async fn start_app(app: App) -> Running {
        let listener = app::bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics = app.metrics.clone();
        let run = app.run;
        let cancel = CancellationToken::new();
        let stop_input = cancel.child_token();
        let task = tokio::spawn(app.run_with(listener, stop_input.clone(), cancel.clone()));
        Running {
            metrics,
            run,
            addr,
            cancel,
            stop_input,
            task,
        }
    }

    /// Sum of every series of `name` whose labels include `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(
            &String::from_utf8_lossy(&self.metrics.render()),
            name,
            labels,
        )
    }

    /// [`metric_if_present`] on this instance's exposition.
    pub fn metric_if_present(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        metric_if_present(
            &String::from_utf8_lossy(&self.metrics.render()),
            name,
            labels,
        )
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("stops within its grace period")
            .expect("task")
            .expect("clean shutdown");
    }
}

/// Sum of every sample of `name` in a text exposition whose labels include
/// all of `labels`. Panics when no sample matches: a renamed metric or label
/// must fail the test, not read as 0.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_if_present(text, name, labels)
        .unwrap_or_else(|| panic!("no series {name} with labels {labels:?} in the exposition"))
}

/// [`metric`] for series that only appear with their first event (labels
/// from cluster metadata, e.g. per partition): `None` until then. Only for
/// polling until a value is positive, where a renamed series still fails.
pub fn metric_if_present(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples(text, name)
        .into_iter()
        .filter(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// A test tier's prerequisite (a broker, a binary) is missing. With
/// `CI=true` that is a failure: CI installs everything, so a missing piece
/// is a broken set-up, not a reason to pass. Elsewhere the test prints a
/// visible SKIP line and the caller returns.
pub fn missing_prerequisite(what: &str, how_to_get_it: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("prerequisite missing with CI=true: {what} ({how_to_get_it})");
    }
    eprintln!("SKIP: {what} is missing ({how_to_get_it}); this test did not run");
}

/// The Kafka-compatible broker of the black-box tests
/// (`SLAPROBE_TEST_BOOTSTRAP`, which `scripts/test.sh` sets for the tansu
/// it starts); `None` after a SKIP line when there is none.
pub fn test_bootstrap() -> Option<String> {
    let b = std::env::var("SLAPROBE_TEST_BOOTSTRAP")
        .ok()
        .filter(|s| !s.is_empty());
    if b.is_none() {
        missing_prerequisite(
            "a Kafka-compatible broker",
            "set SLAPROBE_TEST_BOOTSTRAP, or run scripts/test.sh which starts tansu",
        );
    }
    b
}

/// Every sample of `name`: (labels, value).
pub fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
            let Some(end) = r.find('}') else { continue };
            (&r[..end], r[end + 1..].trim())
        } else if rest.starts_with(' ') {
            ("", rest.trim())
        } else {
            continue;
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once("=\"") {
                map.insert(
                    k.trim_matches(',').to_string(),
                    v.trim_end_matches('"').to_string(),
                );
            }
        }
        if let Ok(v) = value.parse::<f64>() {
            out.push((map, v));
        }
    }
    out
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes (blocking,
/// for tests that run processes rather than the library).
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A minimal HTTP/1.0 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Approximate median from the delta of two histogram snapshots: the upper
/// bound of the bucket holding the middle observation.
pub fn median_from_buckets(
    before: &str,
    after: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let bucket = format!("{name}_bucket");
    let le = |text: &str| -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = samples(text, &bucket)
            .into_iter()
            .filter(|(l, _)| {
                labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .filter_map(|(l, v)| Some((l.get("le")?.parse::<f64>().ok()?, v)))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    let (b, a) = (le(before), le(after));
    let deltas: Vec<(f64, f64)> = a
        .iter()
        .map(|(bound, v)| {
            (
                *bound,
                v - b.iter().find(|x| x.0 == *bound).map_or(0.0, |x| x.1),
            )
        })
        .collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    deltas
        .iter()
        .find(|(_, c)| *c >= total / 2.0)
        .map(|(bound, _)| *bound)
}

/// A real Prometheus (Debian's `prometheus`) on a free loopback port,
/// scraping `target` every second under job `slaprobe`, with `rule_files`
/// evaluated every second; killed when dropped.
pub struct Prometheus {
    child: std::process::Child,
    pub addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Prometheus {
    /// `None` (and a printed note) when Prometheus is not installed.
    pub fn start(
        dir: &std::path::Path,
        target: SocketAddr,
        rule_files: &[std::path::PathBuf],
    ) -> Option<Prometheus> {
        Self::start_alerting(dir, target, rule_files, None)
    }

    /// [`Prometheus::start`], sending its alerts to `alertmanager`.
    pub fn start_alerting(
        dir: &std::path::Path,
        target: SocketAddr,
        rule_files: &[std::path::PathBuf],
        alertmanager: Option<SocketAddr>,
    ) -> Option<Prometheus> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port");
        let rules: String = rule_files
            .iter()
            .map(|f| format!("  - '{}'\n", f.display()))
            .collect();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{rules}scrape_configs:\n  - job_name: slaprobe\n    static_configs:\n      - targets: ['{target}']\n{}",
                alertmanager
                    .map(|a| format!(
                        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{a}']\n"
                    ))
                    .unwrap_or_default()
            ),
        )
        .expect("prometheus config");
        let log = dir.join("prometheus.log");
        let spawned = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn();
        match spawned {
            Ok(child) => Some(Prometheus { child, addr, log }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing_prerequisite("prometheus", "apt-get install prometheus");
                None
            }
            Err(e) => panic!("starting prometheus: {e}"),
        }
    }

    /// Polls an instant query until `accept` likes the JSON answer; returns
    /// the last answer on timeout as the error.
    pub fn query_until(
        &self,
        query: &str,
        timeout: Duration,
        accept: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value, String> {
        let path = format!("/api/v1/query?query={}", urlencode(query));
        let end = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < end {
            if let Ok((200, body)) = http_get(self.addr, &path) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                    if accept(&v) {
                        return Ok(v);
                    }
                }
                last = body;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!(
            "last answer to {query}: {last}\nprometheus log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        ))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A real Alertmanager (Debian's `prometheus-alertmanager`) on a free
/// loopback port, with a receiver that drops everything; killed when dropped.
pub struct Alertmanager {
    pub addr: std::net::SocketAddr,
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Alertmanager {
    /// `None` (SKIP, or a failure with CI=true) when it is not installed.
    pub fn start() -> Option<Alertmanager> {
        Self::start_with_web_config(None)
    }

    /// [`Alertmanager::start`] with `--web.config.file` holding `web` (TLS,
    /// basic auth).
    pub fn start_with_web_config(web: Option<&str>) -> Option<Alertmanager> {
        let bin = ["prometheus-alertmanager", "alertmanager"]
            .into_iter()
            .find(|b| {
                std::process::Command::new(b)
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
        let Some(bin) = bin else {
            missing_prerequisite(
                "an Alertmanager binary",
                "apt-get install prometheus-alertmanager",
            );
            return None;
        };
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        let dir = std::env::temp_dir().join(format!(
            "slaprobe-am-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: 'null'\n  group_wait: 0s\nreceivers:\n  - name: 'null'\n",
        )
        .expect("config");
        let mut command = std::process::Command::new(bin);
        if let Some(web) = web {
            let file = dir.join("web.yml");
            std::fs::write(&file, web).expect("web config");
            command.arg(format!("--web.config.file={}", file.display()));
        }
        let child = command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start alertmanager");
        Some(Alertmanager { child, addr, dir })
    }
}

/// The burn-rate alerts Alertmanager holds for `slo` (active ones only:
/// resolved alerts leave the list).
pub fn am_alerts(am: &Alertmanager, slo: &str) -> Vec<serde_json::Value> {
    let Ok((200, body)) = http_get(am.addr, "/api/v2/alerts") else {
        return Vec::new();
    };
    let all: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap_or_default();
    all.into_iter()
        .filter(|a| a["labels"]["alertname"] == "SlaprobeSLOBurnRate" && a["labels"]["slo"] == slo)
        .collect()
}

/// A free loopback port (bound and released; the window for a race is tiny).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "slaprobe-it-{}-{name}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A `slaprobe run` process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Slaprobe {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub log: std::path::PathBuf,
}

impl Slaprobe {
    pub fn start(dir: &std::path::Path, name: &str, yaml: &str) -> Slaprobe {
        Self::start_with(dir, name, yaml, None, None)
    }

    /// [`Slaprobe::start`] under the shell's `ulimit {open_files}` (for
    /// example `-Sn 1024`: soft limit only, then `exec`), listening on
    /// `addr` (a restart keeps its address, as a pod does) or a free port.
    pub fn start_with(
        dir: &std::path::Path,
        name: &str,
        yaml: &str,
        open_files: Option<&str>,
        addr: Option<SocketAddr>,
    ) -> Slaprobe {
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, yaml).expect("write config");
        let log = dir.join(format!("{name}.log"));
        let addr = addr.unwrap_or_else(free_addr);
        let mut command = match open_files {
            None => std::process::Command::new(env!("CARGO_BIN_EXE_slaprobe")),
            Some(n) => {
                let mut c = std::process::Command::new("bash");
                c.args([
                    "-c",
                    &format!("ulimit {n} && exec \"$0\" \"$@\""),
                    env!("CARGO_BIN_EXE_slaprobe"),
                ]);
                c
            }
        };
        let child = command
            .args(["run", "-c"])
            .arg(&file)
            .args(["--listen", &addr.to_string()])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start slaprobe");
        let s = Slaprobe { child, addr, log };
        assert!(
            poll_until(Duration::from_secs(15), || http_get(addr, "/healthz")
                .is_ok()),
            "slaprobe answers /healthz; log:\n{}",
            s.log()
        );
        s
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exposition; empty if the process does not answer three times in
    /// a row (a loaded machine may drop one request, not three).
    pub fn metrics(&self) -> String {
        for _ in 0..3 {
            if let Ok((200, body)) = http_get(self.addr, "/metrics") {
                return body;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        String::new()
    }

    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.metrics(), name, labels)
    }

    /// The exit status if the process has ended (a crash included).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn ready(&self) -> bool {
        http_get(self.addr, "/readyz").is_ok_and(|r| r.0 == 200)
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < end,
                "slaprobe did not stop on SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Slaprobe {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Creates `topics` with `partitions` partitions each (replication 1) and
/// waits until the broker's metadata shows them.
pub fn create_topics(bootstrap: &str, topics: &[&str], partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let config = {
        let mut c = rdkafka::config::ClientConfig::new();
        c.set("bootstrap.servers", bootstrap);
        c
    };
    let admin: AdminClient<DefaultClientContext> = config.create().expect("admin client");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let results = rt
        .block_on(admin.create_topics(&new, &AdminOptions::new()))
        .expect("create topics");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let consumer: BaseConsumer = config.create().expect("metadata client");
    for t in topics {
        assert!(
            poll_until(Duration::from_secs(30), || consumer
                .fetch_metadata(Some(t), Duration::from_secs(2))
                .is_ok_and(|m| m.topics().iter().any(
                    |x| x.name() == *t && x.partitions().len() == partitions as usize
                ))),
            "topic {t} exists"
        );
    }
}

/// Reads one HTTP/1.1 request from `reader`: its head (request line and
/// headers) and its body (by `Content-Length`); `None` at end of stream.
pub fn read_request(reader: &mut impl std::io::BufRead) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, …); 0 if absent.
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// librdkafka's in-process mock cluster with `brokers` brokers and `topic`
/// of `partitions` partitions, replicated on every broker, partition p led
/// by broker p % brokers + 1 (so each broker leads some).
pub fn mock_cluster(
    topic: &str,
    partitions: i32,
    brokers: i32,
) -> rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let mock = rdkafka::mocking::MockCluster::new(brokers).expect("mock cluster");
    mock.create_topic(topic, partitions, brokers)
        .expect("topic");
    for p in 0..partitions {
        mock.partition_leader(topic, p, Some(p % brokers + 1))
            .expect("leader");
    }
    mock
}
