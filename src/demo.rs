//! `slaprobe demo`: the probes of `probes/demo.yaml` against an in-process
//! 3-broker Kafka cluster (librdkafka's mock cluster), with the HTTP
//! endpoints up. Needs nothing installed.

use std::net::SocketAddr;
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio_util::sync::CancellationToken;

use crate::app::{self, App, RunError};
use crate::config::{self, Config, ConfigErrors};

/// The demo's configuration, embedded so the binary needs no files.
pub const DEMO_CONFIG: &str = include_str!("../probes/demo.yaml");
/// The variable `probes/demo.yaml` takes its bootstrap address from.
pub const BOOTSTRAP_VAR: &str = "SLAPROBE_DEMO_BOOTSTRAP";
/// Brokers in the demo cluster.
pub const BROKERS: i32 = 3;
/// Partitions per broker of every demo topic: two, so each broker leads
/// several partitions and a broker fault hits a visible share of canaries.
pub const PARTITIONS_PER_BROKER: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("starting the in-process Kafka cluster: {0}")]
    Cluster(String),
    #[error("the embedded demo configuration is invalid:\n{0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// The demo configuration with its cluster pointed at `bootstrap`; other
/// `${VAR}`s come from the environment.
pub fn config(bootstrap: &str) -> Result<Config, ConfigErrors> {
    config::load_str("probes/demo.yaml", DEMO_CONFIG, &|k| {
        if k == BOOTSTRAP_VAR {
            Some(bootstrap.to_string())
        } else {
            std::env::var(k).ok()
        }
    })
}

/// An in-process cluster with the demo's topics created.
pub struct DemoCluster {
    pub mock: MockCluster<'static, DefaultProducerContext>,
}

impl DemoCluster {
    /// Starts `BROKERS` brokers and creates each probe topic of `config`
    /// (the mock cluster does not implement the CreateTopics API).
    pub fn start(config: &Config) -> Result<DemoCluster, DemoError> {
        let mock = MockCluster::new(BROKERS).map_err(|e| DemoError::Cluster(e.to_string()))?;
        for probe in &config.probes {
            let topic = probe.input_topic();
            let err = |e: rdkafka::error::KafkaError| {
                DemoError::Cluster(format!("creating {topic}: {e}"))
            };
            mock.create_topic(topic, BROKERS * PARTITIONS_PER_BROKER, BROKERS)
                .map_err(err)?;
            // Leaders round-robin, as a balanced real cluster would have
            // them (the mock's own placement can leave a broker out).
            for p in 0..BROKERS * PARTITIONS_PER_BROKER {
                mock.partition_leader(topic, p, Some(p % BROKERS + 1))
                    .map_err(err)?;
            }
        }
        Ok(DemoCluster { mock })
    }

    pub fn bootstrap(&self) -> String {
        self.mock.bootstrap_servers()
    }
}

/// Runs the demo until `cancel` or `duration`.
pub async fn run(
    listen: SocketAddr,
    duration: Option<Duration>,
    cancel: CancellationToken,
) -> Result<(), DemoError> {
    let listener = app::bind(listen).await?;
    // Validate before starting anything, then again with the real address.
    let cluster = DemoCluster::start(&config("127.0.0.1:9092")?)?;
    let bootstrap = cluster.bootstrap();
    let config = config(&bootstrap)?;
    let app = App::build(&config)?;
    println!(
        "slaprobe demo: {BROKERS}-broker in-process Kafka cluster at {bootstrap}, probes from probes/demo.yaml"
    );
    println!("  metrics   http://{listen}/metrics");
    println!("  readiness http://{listen}/readyz");
    match duration {
        Some(d) => println!("  stopping after {}", humantime::format_duration(d)),
        None => println!("  Ctrl-C to stop"),
    }
    if let Some(d) = duration {
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            c.cancel();
        });
    }
    app.run(listener, cancel).await?;
    drop(cluster);
    Ok(())
}
