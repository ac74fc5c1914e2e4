//! SLO alerts end to end: the demo's pipeline drops everything, the
//! in-process evaluator pages, a real Alertmanager (Debian's
//! `prometheus-alertmanager`, started here on loopback) shows the alert, and
//! after recovery shows it resolved. SLO time runs 60x faster than real time
//! (the evaluator takes its clock as a parameter), so the 5-minute window
//! takes 5 seconds; probing itself runs in real time.

mod common;

use std::net::TcpListener;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{http_get, wait_until, Running};
use slaprobe::app::App;
use slaprobe::config::Alertmanager;
use slaprobe::demo::{self, DemoCluster, DemoPipeline};
use slaprobe::slo::evaluator::Clock;
use tokio_util::sync::CancellationToken;

/// SLO time: `scale` times faster than real time.
struct Fast {
    start: Instant,
    base: u64,
    scale: f64,
}

impl Clock for Fast {
    fn now(&self) -> u64 {
        self.base + (self.start.elapsed().as_secs_f64() * self.scale) as u64
    }
}

/// The demo (cluster, simulated pipeline, its config) with the enrichment
/// job dropping everything, alerts pushed to `alertmanager`, and SLO time
/// running 60x with a 250 ms evaluation tick.
async fn dropping_demo(
    alertmanager: &str,
    configure: impl FnOnce(&mut slaprobe::config::Config),
) -> (DemoCluster, DemoPipeline, CancellationToken, Running) {
    let cluster = DemoCluster::start(&demo::config("127.0.0.1:9092", None).expect("demo config"))
        .expect("cluster");
    let bootstrap = cluster.bootstrap();
    let mut config = demo::config(&bootstrap, None).expect("demo config");
    config.alertmanager = Some(Alertmanager {
        urls: vec![alertmanager.to_string()],
        ..Default::default()
    });
    config.server.external_url = Some("http://slaprobe.test:9464".into());
    configure(&mut config);
    let cancel = CancellationToken::new();
    let pipeline = DemoPipeline::start(&bootstrap, &cancel).expect("pipeline");
    pipeline.enrich.control().update(|f| f.drop_every = 1);
    let clock = Arc::new(Fast {
        start: Instant::now(),
        base: slaprobe::slo::evaluator::SystemClock::new().now(),
        scale: 60.0,
    });
    let mut app = App::build_with_clock(&config, clock).expect("app");
    app.eval_tick = Duration::from_millis(250);
    let r = Running::start_app(app).await;
    (cluster, pipeline, cancel, r)
}

/// A real Alertmanager on loopback, ready (`None`: not installed).
async fn ready_alertmanager() -> Option<common::Alertmanager> {
    let am = common::Alertmanager::start()?;
    assert!(
        wait_until(Duration::from_secs(20), || http_get(am.addr, "/-/ready")
            .is_ok_and(|r| r.0 == 200))
        .await,
        "alertmanager ready"
    );
    Some(am)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_gets_the_page_and_its_resolution() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("slaprobe=info")
        .try_init();
    let Some(am) = ready_alertmanager().await else {
        return;
    };
    let (cluster, pipeline, cancel, r) =
        dropping_demo(&format!("http://{}/", am.addr), |_| {}).await;

    let slo = "orders-enrichment:enriched:delivery";
    let paged = wait_until(Duration::from_secs(60), || {
        common::am_alerts(&am, slo)
            .iter()
            .any(|a| a["labels"]["severity"] == "page" && a["status"]["state"] == "active")
    })
    .await;
    assert!(
        paged,
        "the page reaches Alertmanager:\n{}",
        String::from_utf8_lossy(&r.metrics.render())
    );
    let fast_page = |a: &serde_json::Value| {
        a["labels"]["severity"] == "page" && a["labels"]["long_window"] == "1h"
    };
    assert!(
        wait_until(Duration::from_secs(30), || common::am_alerts(&am, slo)
            .iter()
            .any(fast_page))
        .await,
        "{:?}",
        common::am_alerts(&am, slo)
    );
    let alert = common::am_alerts(&am, slo)
        .into_iter()
        .find(fast_page)
        .expect("fast page");
    assert_eq!(alert["labels"]["short_window"], "5m");
    assert_eq!(
        alert["annotations"]["status_api"],
        "http://slaprobe.test:9464/api/v1/status"
    );
    assert_eq!(
        alert["generatorURL"],
        "http://slaprobe.test:9464/api/v1/status"
    );
    assert_eq!(alert["labels"]["probe"], "orders-enrichment");
    assert_eq!(alert["labels"]["output"], "enriched");
    assert_eq!(alert["labels"]["sli"], "delivery");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains(slo)),
        "{alert}"
    );
    // The very annotations the generated rule carries (no live figures),
    // so a Prometheus-raised copy of this alert deduplicates with it.
    assert!(
        alert["annotations"]["description"]
            .as_str()
            .is_some_and(|s| s.contains("in both the 1h and the 5m window")),
        "{alert}"
    );
    assert!(alert["annotations"].get("burn_rates").is_none(), "{alert}");
    assert_eq!(
        r.metric(
            "slaprobe_slo_alert_firing",
            &[("slo", slo), ("severity", "page")]
        ),
        1.0
    );
    // The heartbeat is healthy: nothing fires for it.
    assert_eq!(
        r.metric(
            "slaprobe_slo_alert_firing",
            &[("slo", "demo-heartbeat:heartbeat:delivery")]
        ),
        0.0
    );
    let (_, status) = http_get(r.addr, "/api/v1/status").expect("status");
    let status: serde_json::Value = serde_json::from_str(&status).expect("status json");
    let s = status["slos"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["slo"] == slo))
        .expect("slo in status")
        .clone();
    assert!(
        s["alerts"][0]["firing"] == true && s["alerts"][0]["since"].is_string(),
        "{s}"
    );
    assert!(
        s["budget_remaining"].as_f64().is_some_and(|b| b < 1.0),
        "{s}"
    );

    // Recovery: once the 5m window (5 s here) holds no loss, the page
    // resolves and Alertmanager drops it from its active alerts.
    pipeline.enrich.control().update(|f| f.drop_every = 0);
    let resolved = wait_until(Duration::from_secs(90), || {
        !common::am_alerts(&am, slo)
            .iter()
            .any(|a| a["labels"]["severity"] == "page")
    })
    .await;
    assert!(
        resolved,
        "resolved in Alertmanager: {:?}",
        common::am_alerts(&am, slo)
    );
    assert_eq!(
        r.metric(
            "slaprobe_slo_alert_firing",
            &[("slo", slo), ("severity", "page")]
        ),
        0.0
    );
    r.stop().await;
    cancel.cancel();
    drop(pipeline);
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_alertmanager_never_stalls_probing_or_evaluation() {
    // A port nothing listens on.
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let (cluster, pipeline, cancel, r) = dropping_demo(&format!("http://{closed}/"), |_| {}).await;
    let slo = "orders-enrichment:enriched:delivery";
    assert!(
        wait_until(Duration::from_secs(60), || {
            r.metric(
                "slaprobe_slo_alert_firing",
                &[("slo", slo), ("severity", "page")],
            ) == 1.0
        })
        .await,
        "the evaluator pages although nothing receives it"
    );
    let delivered = r.metric(
        "slaprobe_canaries_delivered_total",
        &[("output", "heartbeat")],
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            r.metric(
                "slaprobe_canaries_delivered_total",
                &[("output", "heartbeat")],
            ) > delivered + 10.0
        })
        .await,
        "probing goes on"
    );
    r.stop().await;
    cancel.cancel();
    drop(pipeline);
    drop(cluster);
}

/// An action on an SLO (`on: slo`): the page makes it run once (a
/// command, with the SLO in its environment); the page slaprobe pushes to a
/// real Alertmanager says `remediation="attempted"`, and once the burn
/// outlives `escalate_after`, `remediation="failed"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_slo_action_runs_once_and_its_pushed_page_says_how_it_went() {
    use slaprobe::config::{Action, OncePer, Run, SloTrigger, Trigger};
    let Some(am) = ready_alertmanager().await else {
        return;
    };
    let slo = "orders-enrichment:enriched:delivery";
    let ran = common::scratch("slo-action").join("ran");
    let script = format!(
        "echo \"$SLAPROBE_SLO $SLAPROBE_STATUS\" >> '{}'",
        ran.display()
    );
    let (cluster, pipeline, cancel, r) = dropping_demo(&format!("http://{}/", am.addr), |config| {
        config.actions.push(Action {
            name: "failover".into(),
            on: Trigger::Slo(SloTrigger {
                slos: vec![slo.into()],
                pages_only: true,
                for_: Duration::ZERO,
            }),
            run: Run::Command {
                argv: vec!["sh".into(), "-c".into(), script],
                timeout: Duration::from_secs(5),
            },
            once_per: OncePer::Incident,
            cooldown: Duration::from_secs(600),
            escalate_after: Duration::from_secs(8),
            hold: false,
        })
    })
    .await;
    let page_with = |remediation: &str| {
        common::am_alerts(&am, slo).iter().any(|a| {
            a["labels"]["severity"] == "page"
                && a["labels"]["remediation"] == remediation
                && a["status"]["state"] == "active"
        })
    };
    assert!(
        wait_until(Duration::from_secs(60), || page_with("attempted")).await,
        "the page says the remediation is attempted: {:#?}",
        common::am_alerts(&am, slo)
    );
    // "attempted" is pushed when the run starts; the command's line may
    // land a moment later (it failed in CI read at once: 0 lines).
    let read = || std::fs::read_to_string(&ran).unwrap_or_default();
    wait_until(Duration::from_secs(10), || !read().is_empty()).await;
    let lines = read();
    assert_eq!(lines.lines().count(), 1, "one run: {lines}");
    assert!(lines.starts_with(&format!("{slo} page ")), "{lines}");
    assert!(
        wait_until(Duration::from_secs(30), || page_with("failed")).await,
        "escalated: {:#?}",
        common::am_alerts(&am, slo)
    );
    let failed = common::am_alerts(&am, slo)
        .into_iter()
        .find(|a| a["labels"]["remediation"] == "failed")
        .expect("failed");
    assert!(
        failed["annotations"]["description"]
            .as_str()
            .is_some_and(|d| d.ends_with("A person is needed.")),
        "{failed}"
    );
    assert_eq!(
        r.metric(
            "slaprobe_action_runs_total",
            &[("action", "failover"), ("outcome", "ok")]
        ),
        1.0
    );
    assert_eq!(
        r.metric(
            "slaprobe_action_escalations_total",
            &[("action", "failover")]
        ),
        1.0
    );
    assert_eq!(
        std::fs::read_to_string(&ran)
            .unwrap_or_default()
            .lines()
            .count(),
        1
    );
    r.stop().await;
    cancel.cancel();
    drop(pipeline);
    drop(cluster);
}
