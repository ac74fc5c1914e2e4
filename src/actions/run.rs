//! Running an action once: a command (no shell, the incident in its
//! environment, killed at its timeout) or a webhook (the incident as a JSON
//! body). What it printed or answered is kept short for the log line.

use std::process::Stdio;

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::engine::{RunOutcome, Subject};
use crate::config::{Run, Webhook};
use crate::util::format::{error_chain, rfc3339};

/// At most this much of a command's output or a webhook's answer is kept.
const OUTPUT_LIMIT: usize = 1024;

/// The incident an action runs for, as the command's environment and the
/// webhook's body show it.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentInfo {
    pub action: String,
    pub kafka_cluster: String,
    /// Empty for an SLO.
    pub group: String,
    /// Empty for a consumer group.
    pub slo: String,
    pub status: String,
    /// RFC 3339.
    pub incident_started: String,
    /// This incident's run count, from 1.
    pub attempt: u32,
    /// Which slaprobe runs it.
    pub instance: String,
}

impl IncidentInfo {
    pub fn new(action: &str, subject: &Subject, status: &str, opened: u64, attempt: u32) -> Self {
        IncidentInfo {
            action: action.to_string(),
            kafka_cluster: subject.kafka_cluster.clone(),
            group: subject.group.clone(),
            slo: subject.slo.clone(),
            status: status.to_string(),
            incident_started: rfc3339(opened),
            attempt,
            instance: crate::util::hostname(),
        }
    }

    /// The command's `SLAPROBE_*` variables.
    fn env(&self) -> [(&'static str, String); 7] {
        [
            ("SLAPROBE_ACTION", self.action.clone()),
            ("SLAPROBE_KAFKA_CLUSTER", self.kafka_cluster.clone()),
            ("SLAPROBE_GROUP", self.group.clone()),
            ("SLAPROBE_SLO", self.slo.clone()),
            ("SLAPROBE_STATUS", self.status.clone()),
            ("SLAPROBE_INCIDENT_STARTED", self.incident_started.clone()),
            ("SLAPROBE_ATTEMPT", self.attempt.to_string()),
        ]
    }
}

/// How a run ended, and what to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub outcome: RunOutcome,
    /// The exit status or HTTP status and the start of the output.
    pub detail: String,
}

/// Runs `run` for `incident` to its end (or its timeout).
pub async fn execute(run: &Run, incident: &IncidentInfo, http: &reqwest::Client) -> Ran {
    match run {
        Run::Command { argv, timeout } => {
            match tokio::time::timeout(*timeout, command(argv, incident)).await {
                Ok(ran) => ran,
                // Dropping the future kills the child (`kill_on_drop`).
                Err(_) => Ran {
                    outcome: RunOutcome::Timeout,
                    detail: format!("killed after {}", crate::util::format::duration(*timeout)),
                },
            }
        }
        Run::Webhook(w) => webhook(w, incident, http).await,
    }
}

async fn command(argv: &[String], incident: &IncidentInfo) -> Ran {
    let mut child = match tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .envs(incident.env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Ran {
                outcome: RunOutcome::Error,
                detail: format!("cannot start `{}`: {e}", argv[0]),
            }
        }
    };
    let (out, err) = (child.stdout.take(), child.stderr.take());
    let (stdout, stderr, status) = tokio::join!(head(out), head(err), child.wait());
    let output = [stdout, stderr]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    match status {
        Ok(s) if s.success() => Ran {
            outcome: RunOutcome::Ok,
            detail: with_output("exit status 0".to_string(), &output),
        },
        Ok(s) => Ran {
            outcome: RunOutcome::Failed,
            detail: with_output(s.to_string(), &output),
        },
        Err(e) => Ran {
            outcome: RunOutcome::Error,
            detail: format!("waiting for `{}`: {e}", argv[0]),
        },
    }
}

/// The first [`OUTPUT_LIMIT`] bytes of a pipe, read to its end (a child
/// must never block on a full pipe), trimmed.
async fn head(pipe: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut pipe) = pipe else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).trim().to_string()
}

fn with_output(what: String, output: &str) -> String {
    if output.is_empty() {
        what
    } else {
        format!("{what}: {output}")
    }
}

async fn webhook(w: &Webhook, incident: &IncidentInfo, http: &reqwest::Client) -> Ran {
    let method = if w.method == "PUT" {
        reqwest::Method::PUT
    } else {
        reqwest::Method::POST
    };
    let mut req = http
        .request(method, &w.url)
        .timeout(w.timeout)
        .json(incident);
    for (k, v) in &w.headers {
        req = req.header(k, v);
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Ran {
                outcome: RunOutcome::Timeout,
                detail: format!(
                    "no answer within {}",
                    crate::util::format::duration(w.timeout)
                ),
            }
        }
        Err(e) => {
            return Ran {
                outcome: RunOutcome::Error,
                detail: error_chain(&e.without_url()),
            }
        }
    };
    let status = resp.status();
    let mut body = Vec::new();
    while body.len() < OUTPUT_LIMIT {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(OUTPUT_LIMIT);
    let detail = with_output(
        format!("HTTP {status}"),
        String::from_utf8_lossy(&body).trim(),
    );
    Ran {
        outcome: if status.is_success() {
            RunOutcome::Ok
        } else {
            RunOutcome::Failed
        },
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn incident() -> IncidentInfo {
        IncidentInfo::new(
            "restart",
            &Subject::group("c", "g"),
            "STOP",
            1_800_000_000,
            1,
        )
    }

    fn sh(script: &str, timeout: Duration) -> Run {
        Run::Command {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            timeout,
        }
    }

    #[tokio::test]
    async fn a_command_gets_the_incident_and_its_exit_status_counts() {
        let http = reqwest::Client::new();
        let ran = execute(
            &sh("echo $SLAPROBE_ACTION $SLAPROBE_GROUP $SLAPROBE_STATUS $SLAPROBE_INCIDENT_STARTED $SLAPROBE_ATTEMPT", Duration::from_secs(5)),
            &incident(),
            &http,
        )
        .await;
        assert_eq!(ran.outcome, RunOutcome::Ok);
        assert_eq!(
            ran.detail,
            "exit status 0: restart g STOP 2027-01-15T08:00:00Z 1"
        );
        let ran = execute(
            &sh("echo no >&2; exit 3", Duration::from_secs(5)),
            &incident(),
            &http,
        )
        .await;
        assert_eq!(ran.outcome, RunOutcome::Failed);
        assert_eq!(ran.detail, "exit status: 3: no");
    }

    /// A local HTTP server answering `status` with `body`; what it got
    /// (headers, body) comes back on the channel.
    async fn hook(
        status: u16,
        body: &'static str,
    ) -> (
        String,
        tokio::sync::mpsc::Receiver<(axum::http::HeaderMap, String)>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::any(move |headers: axum::http::HeaderMap, got: String| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((headers, got)).await;
                    (
                        axum::http::StatusCode::from_u16(status).expect("status"),
                        body,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, rx)
    }

    fn webhook(url: String, timeout: Duration) -> Run {
        Run::Webhook(Webhook {
            url,
            method: "POST".into(),
            headers: [("Authorization".to_string(), "Bearer t0ken".to_string())].into(),
            secret_headers: Default::default(),
            timeout,
        })
    }

    #[tokio::test]
    async fn a_webhook_gets_the_incident_as_json_and_its_status_counts() {
        let http = reqwest::Client::new();
        let (url, mut got) = hook(202, "queued").await;
        let ran = execute(&webhook(url, Duration::from_secs(5)), &incident(), &http).await;
        assert_eq!(ran.outcome, RunOutcome::Ok);
        assert_eq!(ran.detail, "HTTP 202 Accepted: queued");
        let (headers, body) = got.recv().await.expect("a request");
        assert_eq!(headers["authorization"], "Bearer t0ken");
        assert_eq!(headers["content-type"], "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["action"], "restart");
        assert_eq!(v["kafka_cluster"], "c");
        assert_eq!(v["group"], "g");
        assert_eq!(v["status"], "STOP");
        assert_eq!(v["incident_started"], "2027-01-15T08:00:00Z");
        assert_eq!(v["attempt"], 1);

        let (url, _got) = hook(503, "down for maintenance").await;
        let ran = execute(&webhook(url, Duration::from_secs(5)), &incident(), &http).await;
        assert_eq!(ran.outcome, RunOutcome::Failed);
        assert_eq!(
            ran.detail,
            "HTTP 503 Service Unavailable: down for maintenance"
        );

        // Nothing listens there.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let ran = execute(
            &webhook(format!("http://{closed}/hook"), Duration::from_secs(5)),
            &incident(),
            &http,
        )
        .await;
        assert_eq!(ran.outcome, RunOutcome::Error, "{}", ran.detail);
    }

    #[tokio::test]
    async fn a_webhook_that_does_not_answer_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let ran = execute(
            &webhook(url, Duration::from_millis(300)),
            &incident(),
            &reqwest::Client::new(),
        )
        .await;
        assert_eq!(ran.outcome, RunOutcome::Timeout, "{}", ran.detail);
        drop(listener);
    }

    #[tokio::test]
    async fn a_hanging_command_is_killed_at_its_timeout() {
        let started = std::time::Instant::now();
        let ran = execute(
            &sh("sleep 30", Duration::from_millis(200)),
            &incident(),
            &reqwest::Client::new(),
        )
        .await;
        assert_eq!(ran.outcome, RunOutcome::Timeout);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn a_missing_program_and_a_flood_of_output_are_said_briefly() {
        let http = reqwest::Client::new();
        let missing = Run::Command {
            argv: vec!["/nonexistent/restart-job".into()],
            timeout: Duration::from_secs(5),
        };
        let ran = execute(&missing, &incident(), &http).await;
        assert_eq!(ran.outcome, RunOutcome::Error);
        assert!(
            ran.detail
                .starts_with("cannot start `/nonexistent/restart-job`"),
            "{}",
            ran.detail
        );
        // 10 MB on stdout: read to the end (no blocked child), 1 KiB kept.
        let ran = execute(
            &sh(
                "head -c 10000000 /dev/zero | tr '\\0' x",
                Duration::from_secs(20),
            ),
            &incident(),
            &http,
        )
        .await;
        assert_eq!(ran.outcome, RunOutcome::Ok);
        assert_eq!(ran.detail.len(), "exit status 0: ".len() + OUTPUT_LIMIT);
    }
}
