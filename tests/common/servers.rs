//! A real Prometheus and a real Alertmanager (Debian's packages) on free
//! loopback ports.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{http_get, missing_prerequisite};

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
        Self::start_jobs(dir, &[("slaprobe", target)], rule_files, alertmanager)
    }

    /// A Prometheus scraping each `(job, target)` every second.
    pub fn start_jobs(
        dir: &std::path::Path,
        jobs: &[(&str, SocketAddr)],
        rule_files: &[std::path::PathBuf],
        alertmanager: Option<SocketAddr>,
    ) -> Option<Prometheus> {
        let scrape: String = jobs
            .iter()
            .map(|(job, target)| {
                format!(
                    "  - job_name: '{job}'\n    static_configs:\n      - targets: ['{target}']\n"
                )
            })
            .collect();
        let rules: String = rule_files
            .iter()
            .map(|f| format!("  - '{}'\n", f.display()))
            .collect();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{rules}scrape_configs:\n{scrape}{}",
                alertmanager
                    .map(|a| format!(
                        "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{a}']\n"
                    ))
                    .unwrap_or_default()
            ),
        )
        .expect("prometheus config");
        let log = dir.join("prometheus.log");
        // A free port may be taken between finding it and Prometheus'
        // bind (tests run side by side): then another, up to three times.
        for _ in 0..3 {
            let addr = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port");
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
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    missing_prerequisite("prometheus", "apt-get install prometheus");
                    return None;
                }
                Err(e) => panic!("starting prometheus: {e}"),
            };
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if http_get(addr, "/-/ready").is_ok_and(|r| r.0 == 200) {
                    return Some(Prometheus { child, addr, log });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "prometheus did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// A metric of Prometheus' own (its `/metrics`), summed over its
    /// series; `None` when it does not answer or has none.
    pub fn own_metric(&self, name: &str) -> Option<f64> {
        let (_, text) = http_get(self.addr, "/metrics").ok()?;
        super::metric_if_present(&text, name, &[])
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
