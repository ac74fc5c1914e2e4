//! `slaprobe demo`: the probes of `probes/demo.yaml` against an in-process
//! 3-broker Kafka cluster (librdkafka's mock cluster), with a simulated
//! pipeline between `orders.raw` and `orders.enriched` (and a filter job
//! into `orders.public`), and the HTTP endpoints up. `--faults` plays a
//! fault script so that every outcome can be seen. Needs nothing installed.

pub mod sim;
mod transform;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio_util::sync::CancellationToken;

use crate::app::{self, App, RunError};
use crate::config::{self, Config, ConfigErrors, ProbeKind};
use sim::{Faults, KeyRewrite, Stage, StageSpec, Transform};

/// The demo's configuration, embedded so the binary needs no files.
pub const DEMO_CONFIG: &str = include_str!("../../probes/demo.yaml");
/// The variable `probes/demo.yaml` takes its bootstrap address from.
pub const BOOTSTRAP_VAR: &str = "SLAPROBE_DEMO_BOOTSTRAP";
/// The directory its remediation action writes restart requests to.
pub const CONTROL_VAR: &str = "SLAPROBE_DEMO_CONTROL";
/// The file the `restart-enricher` action creates there.
const RESTART_FILE: &str = "restart-orders-enricher";
/// Brokers in the demo cluster.
pub const BROKERS: i32 = 3;
/// Partitions per broker of every demo topic: two, so each broker leads
/// several partitions and a broker fault hits a visible share of canaries.
pub const PARTITIONS_PER_BROKER: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("starting the in-process Kafka cluster")]
    Cluster(#[source] rdkafka::error::KafkaError),
    #[error("creating the demo topic {topic}")]
    Topic {
        topic: String,
        #[source]
        error: rdkafka::error::KafkaError,
    },
    #[error("the embedded demo configuration is invalid:\n{0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Sim(#[from] sim::SimError),
    #[error("creating the directory the demo's action writes restart requests to")]
    Control(#[source] std::io::Error),
}

/// The demo configuration with its cluster pointed at `bootstrap` (and
/// its action's restart requests at `control`, if given); other `${VAR}`s
/// come from the environment.
pub fn config(bootstrap: &str, control: Option<&Path>) -> Result<Config, ConfigErrors> {
    config::load_str("probes/demo.yaml", DEMO_CONFIG, &|k| {
        if k == BOOTSTRAP_VAR {
            Some(bootstrap.to_string())
        } else if k == CONTROL_VAR {
            control
                .map(|c| c.display().to_string())
                .or_else(|| std::env::var(k).ok())
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
        let mock = MockCluster::new(BROKERS).map_err(DemoError::Cluster)?;
        let mut topics: Vec<&str> = Vec::new();
        for probe in &config.probes {
            topics.push(probe.input_topic());
            if let ProbeKind::Pipeline(p) = &probe.kind {
                topics.extend(p.outputs.iter().map(|o| o.topic.as_str()));
            }
        }
        topics.sort_unstable();
        topics.dedup();
        for topic in topics {
            let err = |error| DemoError::Topic {
                topic: topic.to_string(),
                error,
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

/// The demo's simulated pipeline: an enrichment job from `orders.raw` to
/// `orders.enriched` (renames, adds fields, drops headers, re-keys), and a
/// publishing job to `orders.public` that filters canaries out. Each is a
/// member of its own consumer group ([`ENRICH_GROUP`], [`PUBLISH_GROUP`])
/// and commits what it consumed, so the demo's `lag:` has real groups.
/// The consumer groups of the demo's jobs (`probes/demo.yaml` names them).
pub const ENRICH_GROUP: &str = "orders-enricher";
pub const PUBLISH_GROUP: &str = "orders-publisher";

/// How long the jobs may take to join their groups (the mock cluster
/// delays a new group's first rebalance by 3 s).
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);

pub struct DemoPipeline {
    pub enrich: Stage,
    pub publish: Stage,
}

impl DemoPipeline {
    pub fn start(bootstrap: &str, cancel: &CancellationToken) -> Result<DemoPipeline, DemoError> {
        let spec = |name: &str, output: &str, group: &str, transform: Transform| StageSpec {
            name: name.to_string(),
            input_bootstrap: bootstrap.to_string(),
            input_topic: "orders.raw".to_string(),
            output_bootstrap: bootstrap.to_string(),
            output_topic: output.to_string(),
            transform,
            group: Some(group.to_string()),
        };
        let enrich = Stage::start(
            spec(
                "enrich",
                "orders.enriched",
                ENRICH_GROUP,
                Transform {
                    rename: vec![("order_id".into(), "orderId".into())],
                    add: vec![
                        ("enriched".into(), serde_json::Value::Bool(true)),
                        ("region".into(), serde_json::Value::from("eu-west-1")),
                    ],
                    drop_headers: true,
                    key: KeyRewrite::Field("orderId".into()),
                    ..Transform::default()
                },
            ),
            cancel.clone(),
        )?;
        let publish = Stage::start(
            spec(
                "publish",
                "orders.public",
                PUBLISH_GROUP,
                Transform {
                    filter_canaries: true,
                    ..Transform::default()
                },
            ),
            cancel.clone(),
        )?;
        // Both join at once; canaries sent before they have their
        // partitions wait in Kafka (the groups start at the beginning).
        let end = std::time::Instant::now() + JOIN_TIMEOUT;
        while !(enrich.control().assigned() && publish.control().assigned())
            && std::time::Instant::now() < end
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(DemoPipeline { enrich, publish })
    }
}

/// One step of the fault script: what it is called, how long it lasts,
/// and what it does (undone by the next step).
struct Step {
    label: &'static str,
    length: Duration,
    enrich: Faults,
    publish_leaks: bool,
    broker_down: Option<i32>,
    /// A restart of the enrichment job (the `restart-enricher` action)
    /// clears its faults.
    restart_helps: bool,
}

fn script() -> Vec<Step> {
    let step = |label, secs, enrich| Step {
        label,
        length: Duration::from_secs(secs),
        enrich,
        publish_leaks: false,
        broker_down: None,
        restart_helps: false,
    };
    vec![
        step("steady state", 20, Faults::default()),
        Step {
            restart_helps: true,
            ..step(
                "enrichment stalled: member of its group, consuming nothing (group STALL, canaries lost at the 10s deadline); the restart-enricher action restarts it after 15s of STALL",
                30,
                Faults {
                    stalled: true,
                    ..Faults::default()
                },
            )
        },
        step(
            "enrichment stopped: the job is killed, its consumer leaves the group (group STOP); a restart does not help this time: the action escalates 20s after it",
            45,
            Faults {
                stopped: true,
                ..Faults::default()
            },
        ),
        step("recovering", 20, Faults::default()),
        step(
            "slow pipeline: every record delayed 2s (latency SLO over 1s)",
            15,
            Faults {
                delay: Duration::from_secs(2),
                ..Faults::default()
            },
        ),
        step(
            "drop burst: every 3rd record dropped",
            10,
            Faults {
                drop_every: 3,
                ..Faults::default()
            },
        ),
        step(
            "duplicates: every 4th record written twice",
            10,
            Faults {
                duplicate_every: 4,
                ..Faults::default()
            },
        ),
        step(
            "reordering: every 3rd record held behind the next",
            10,
            Faults {
                reorder_every: 3,
                ..Faults::default()
            },
        ),
        Step {
            publish_leaks: true,
            ..step("the public filter leaks canaries", 10, Faults::default())
        },
        Step {
            broker_down: Some(2),
            ..step("broker 2 down", 20, Faults::default())
        },
        step("recovered", 30, Faults::default()),
    ]
}

/// `[faults mm:ss]` since `started`.
fn faults_clock(started: std::time::Instant) -> String {
    let t = started.elapsed().as_secs();
    format!("[faults {:02}:{:02}]", t / 60, t % 60)
}

/// Plays the fault script in a loop until `cancel`.
async fn play_faults(
    cluster: &DemoCluster,
    pipeline: &DemoPipeline,
    restart_helps: &AtomicBool,
    started: std::time::Instant,
    cancel: &CancellationToken,
) {
    loop {
        for step in script() {
            println!(
                "{} {} ({}s)",
                faults_clock(started),
                step.label,
                step.length.as_secs()
            );
            restart_helps.store(step.restart_helps, Ordering::Relaxed);
            pipeline.enrich.control().set(step.enrich.clone());
            pipeline
                .publish
                .control()
                .update(|f| f.leak = step.publish_leaks);
            if let Some(b) = step.broker_down {
                let _ = cluster.mock.broker_down(b);
            }
            let cancelled = tokio::select! {
                _ = cancel.cancelled() => true,
                _ = tokio::time::sleep(step.length) => false,
            };
            if let Some(b) = step.broker_down {
                let _ = cluster.mock.broker_up(b);
            }
            if cancelled {
                return;
            }
        }
    }
}

/// The enrichment job's restarts: each request the `restart-enricher`
/// action leaves in `control` restarts the job, clearing its faults when
/// the script's step lets a restart help.
async fn serve_restarts(
    control: PathBuf,
    pipeline: &DemoPipeline,
    restart_helps: &AtomicBool,
    started: std::time::Instant,
    cancel: &CancellationToken,
) {
    let request = control.join(RESTART_FILE);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        if std::fs::remove_file(&request).is_err() {
            continue;
        }
        if restart_helps.load(Ordering::Relaxed) {
            pipeline.enrich.control().set(Faults::default());
            println!(
                "{} the restart-enricher action restarted the enrichment job: it consumes again",
                faults_clock(started)
            );
        } else {
            println!(
                "{} the restart-enricher action restarted the enrichment job: it is still down",
                faults_clock(started)
            );
        }
    }
}

/// Runs the demo until `cancel` or `duration`.
pub async fn run(
    listen: SocketAddr,
    duration: Option<Duration>,
    faults: bool,
    cancel: CancellationToken,
) -> Result<(), DemoError> {
    let listener = app::bind(listen).await?;
    // Validate before starting anything, then again with the real address.
    let cluster = DemoCluster::start(&config("127.0.0.1:9092", None)?)?;
    let bootstrap = cluster.bootstrap();
    let control = std::env::temp_dir().join(format!("slaprobe-demo-{}", std::process::id()));
    std::fs::create_dir_all(&control).map_err(DemoError::Control)?;
    let config = config(&bootstrap, Some(&control))?;
    let pipeline = DemoPipeline::start(&bootstrap, &cancel)?;
    let app = App::build(&config)?;
    println!("slaprobe demo: {BROKERS}-broker in-process Kafka cluster at {bootstrap}");
    for probe in &config.probes {
        println!(
            "  probe {} ({}): {}",
            probe.name,
            probe.probe_type(),
            probe.output_names().join(", ")
        );
    }
    println!("  pipeline  orders.raw -> enrich -> orders.enriched; orders.raw -> filter -> orders.public");
    println!("  status    http://{listen}/");
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
    let restart_helps = AtomicBool::new(false);
    let started = std::time::Instant::now();
    let script = async {
        if faults {
            play_faults(&cluster, &pipeline, &restart_helps, started, &cancel).await;
        }
    };
    let restarts = serve_restarts(control.clone(), &pipeline, &restart_helps, started, &cancel);
    // The script and the restarts go on until cancelled: an app that ends
    // by itself (its server failed) ends them too.
    let app = async {
        let result = app.run(listener, cancel.clone()).await;
        cancel.cancel();
        result
    };
    let (result, (), ()) = tokio::join!(app, script, restarts);
    let _ = std::fs::remove_dir_all(&control);
    result?;
    drop(pipeline);
    drop(cluster);
    Ok(())
}
