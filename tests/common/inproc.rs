//! slaprobe as a library in the test's process ([`Running`]), with
//! configurations built in code.

use std::net::SocketAddr;
use std::time::Duration;

use slaprobe::app::{self, App};
use slaprobe::config::{
    Cluster, Config, Heartbeat, Probe, ProbeKind, Server, Sli, Slo, TopicManagement,
};
use slaprobe::metrics::Metrics;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{metric, metric_if_present};

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
        alerts: Default::default(),
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
            poison_of: None,
        }],
        lag: vec![],
        actions: vec![],
        connection_checks: vec![],
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
