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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_gets_the_page_and_its_resolution() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("slaprobe=info")
        .try_init();
    let Some(am) = common::Alertmanager::start() else {
        return;
    };
    assert!(
        wait_until(Duration::from_secs(20), || http_get(am.addr, "/-/ready")
            .is_ok_and(|r| r.0 == 200))
        .await,
        "alertmanager ready"
    );
    let (cluster, pipeline, cancel, r) = dropping_demo(&format!("http://{}/", am.addr)).await;

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
    let (cluster, pipeline, cancel, r) = dropping_demo(&format!("http://{closed}/")).await;
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
