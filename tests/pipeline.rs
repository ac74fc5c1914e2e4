//! Pipeline probes through the pipeline simulator on librdkafka's mock
//! cluster: what slaprobe reports must equal what the simulator did.

mod common;

use std::time::Duration;

use common::{wait_until, Running};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use slaprobe::config;
use slaprobe::demo::sim::{Faults, KeyRewrite, SimStats, Stage, StageSpec, Transform};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 3;

fn cluster(topics: &[&str]) -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(3).expect("mock cluster");
    for t in topics {
        mock.create_topic(t, PARTITIONS, 3).expect("topic");
    }
    mock
}

/// [`pipeline`] on cluster `bs` with one output, `out`, matched by the
/// JSON field `/id`.
fn json_out(bs: &str, deadline: &str) -> config::Config {
    pipeline(
        bs,
        bs,
        deadline,
        "      - { name: out, cluster: a, topic: out, match: { json: /id } }",
    )
}

/// A mock cluster with topics `raw` and `out`, its bootstrap, and a stage
/// that copies `raw` to `out` until the token is cancelled.
fn raw_to_out() -> (
    MockCluster<'static, DefaultProducerContext>,
    String,
    CancellationToken,
    Stage,
) {
    let mock = cluster(&["raw", "out"]);
    let bs = mock.bootstrap_servers();
    let cancel = CancellationToken::new();
    let sim = Stage::start(
        stage("s", &bs, "raw", &bs, "out", Transform::default()),
        cancel.clone(),
    )
    .expect("stage");
    (mock, bs, cancel, sim)
}

/// A pipeline probe config (YAML through the real loader); `outputs` is the
/// YAML list of outputs, clusters `a` and `b` point at the given bootstraps.
fn pipeline(a: &str, b: &str, deadline: &str, outputs: &str) -> config::Config {
    let yaml = format!(
        r#"
clusters:
  a: {{ bootstrap: "{a}", librdkafka: {{ fetch.wait.max.ms: '10' }} }}
  b: {{ bootstrap: "{b}", librdkafka: {{ fetch.wait.max.ms: '10' }} }}
probes:
  - name: orders
    type: pipeline
    interval: 100ms
    deadline: {deadline}
    input:
      cluster: a
      topic: raw
      payload: '{{"id":"{{{{id}}}}","amount":1,"pad":"{{{{pad}}}}"}}'
    outputs:
{outputs}
    slos:
      - {{ sli: availability, objective: 99% }}
      - {{ sli: delivery, objective: 99% }}
"#
    );
    match config::load_str("test.yaml", &yaml, &|_| None) {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{yaml}"),
    }
}

fn stage(
    name: &str,
    input: &str,
    in_topic: &str,
    output: &str,
    out_topic: &str,
    transform: Transform,
) -> StageSpec {
    StageSpec {
        name: name.into(),
        input_bootstrap: input.into(),
        input_topic: in_topic.into(),
        output_bootstrap: output.into(),
        output_topic: out_topic.into(),
        transform,
        group: None,
    }
}

fn out(r: &Running, metric: &str, output: &str) -> f64 {
    r.metric(metric, &[("probe", "orders"), ("output", output)])
}

fn sli(r: &Running, output: &str, sli: &str, outcome: &str) -> f64 {
    r.metric(
        "slaprobe_sli_events_total",
        &[
            ("probe", "orders"),
            ("output", output),
            ("sli", sli),
            ("outcome", outcome),
        ],
    )
}

/// The probe of `config` started, once it has sent `canaries` canaries.
async fn sending(config: &config::Config, canaries: f64) -> Running {
    let r = Running::start(config).await;
    assert!(
        wait_until(Duration::from_secs(30), || r
            .metric("slaprobe_canaries_sent_total", &[])
            >= canaries)
        .await,
        "{canaries} canaries sent"
    );
    r
}

/// Stops sending and waits until every canary sent is settled (nothing in
/// flight, counters still for a moment).
async fn settle(r: &Running, deadline: Duration) {
    r.stop_input.cancel();
    tokio::time::sleep(deadline).await;
    let settled = wait_until(deadline * 3, || {
        r.metric("slaprobe_canaries_in_flight", &[]) == 0.0
    })
    .await;
    assert!(
        settled,
        "in-flight canaries settle:\n{}",
        String::from_utf8_lossy(&r.metrics.render())
    );
    // Expiry runs every 100 ms; let the last tick land.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_counts_for_drops_duplicates_and_reorders() {
    let (_mock, bs, cancel, sim) = raw_to_out();
    sim.control().set(Faults {
        drop_every: 7,
        duplicate_every: 5,
        reorder_every: 4,
        ..Faults::default()
    });
    let deadline = Duration::from_secs(4);
    let config = json_out(&bs, "4s");
    let r = sending(&config, 150.0).await;
    settle(&r, deadline).await;

    let s: SimStats = sim.control().stats();
    let sent = r.metric("slaprobe_canaries_sent_total", &[]);
    eprintln!("simulator: {s:?}; slaprobe sent {sent}");
    assert!(
        s.dropped > 0 && s.duplicated > 0 && s.reordered > 0,
        "{s:?}"
    );
    assert_eq!(s.consumed as f64, sent, "the simulator saw every canary");
    assert_eq!(
        out(&r, "slaprobe_canaries_lost_total", "out"),
        s.dropped as f64
    );
    assert_eq!(
        out(&r, "slaprobe_canaries_duplicate_total", "out"),
        s.duplicated as f64
    );
    assert_eq!(
        out(&r, "slaprobe_canaries_out_of_order_total", "out"),
        s.reordered as f64
    );
    assert_eq!(
        out(&r, "slaprobe_canaries_delivered_total", "out"),
        sent - s.dropped as f64
    );
    assert_eq!(out(&r, "slaprobe_canaries_late_total", "out"), 0.0);
    assert_eq!(out(&r, "slaprobe_records_foreign_total", "out"), 0.0);
    // exactly_once: each duplicate is a bad delivery event besides the losses.
    assert_eq!(
        sli(&r, "out", "delivery", "bad"),
        (s.dropped + s.duplicated) as f64
    );
    assert_eq!(sli(&r, "input", "availability", "good"), sent);
    r.stop().await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_key_and_json_matching_each_survive_losing_the_other_two() {
    let mock = cluster(&["raw", "by-header", "by-key", "by-json"]);
    let bs = mock.bootstrap_servers();
    let cancel = CancellationToken::new();
    let strip_json = |t: Transform| Transform {
        remove: vec!["id".into()],
        ..t
    };
    let _h = Stage::start(
        stage(
            "h",
            &bs,
            "raw",
            &bs,
            "by-header",
            strip_json(Transform {
                key: KeyRewrite::Drop,
                ..Transform::default()
            }),
        ),
        cancel.clone(),
    )
    .expect("stage");
    let _k = Stage::start(
        stage(
            "k",
            &bs,
            "raw",
            &bs,
            "by-key",
            strip_json(Transform {
                drop_headers: true,
                ..Transform::default()
            }),
        ),
        cancel.clone(),
    )
    .expect("stage");
    let _j = Stage::start(
        stage(
            "j",
            &bs,
            "raw",
            &bs,
            "by-json",
            Transform {
                drop_headers: true,
                key: KeyRewrite::Drop,
                rename: vec![("id".into(), "order/ref".into())],
                ..Transform::default()
            },
        ),
        cancel.clone(),
    )
    .expect("stage");
    let config = pipeline(
        &bs,
        &bs,
        "5s",
        "      - { name: h, cluster: a, topic: by-header, match: { header: slaprobe-id } }\n\
         \x20     - { name: k, cluster: a, topic: by-key, match: { key: true } }\n\
         \x20     - { name: j, cluster: a, topic: by-json, match: { json: /order/ref } }",
    );
    let r = Running::start(&config).await;
    let all = wait_until(Duration::from_secs(30), || {
        ["h", "k", "j"]
            .iter()
            .all(|o| out(&r, "slaprobe_canaries_delivered_total", o) >= 10.0)
    })
    .await;
    assert!(all, "{}", String::from_utf8_lossy(&r.metrics.render()));
    for o in ["h", "k", "j"] {
        assert_eq!(out(&r, "slaprobe_canaries_lost_total", o), 0.0, "{o}");
        assert_eq!(out(&r, "slaprobe_records_foreign_total", o), 0.0, "{o}");
    }
    r.stop().await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_two_clusters_moves_only_the_dropping_outputs_numbers() {
    let a = cluster(&["raw", "clean"]);
    let b = cluster(&["lossy"]);
    let (abs, bbs) = (a.bootstrap_servers(), b.bootstrap_servers());
    let cancel = CancellationToken::new();
    let _clean = Stage::start(
        stage("clean", &abs, "raw", &abs, "clean", Transform::default()),
        cancel.clone(),
    )
    .expect("stage");
    let lossy = Stage::start(
        stage("lossy", &abs, "raw", &bbs, "lossy", Transform::default()),
        cancel.clone(),
    )
    .expect("stage");
    lossy.control().update(|f| f.drop_every = 3);
    let config = pipeline(
        &abs,
        &bbs,
        "3s",
        "      - { name: clean, cluster: a, topic: clean, match: { json: /id } }\n\
         \x20     - { name: lossy, cluster: b, topic: lossy, match: { json: /id } }",
    );
    let r = sending(&config, 60.0).await;
    settle(&r, Duration::from_secs(3)).await;
    let dropped = lossy.control().stats().dropped as f64;
    assert!(dropped > 0.0);
    assert_eq!(out(&r, "slaprobe_canaries_lost_total", "lossy"), dropped);
    assert_eq!(sli(&r, "lossy", "delivery", "bad"), dropped);
    assert_eq!(out(&r, "slaprobe_canaries_lost_total", "clean"), 0.0);
    assert_eq!(sli(&r, "clean", "delivery", "bad"), 0.0);
    let sent = r.metric("slaprobe_canaries_sent_total", &[]);
    assert_eq!(sli(&r, "clean", "delivery", "good"), sent);
    assert_eq!(sli(&r, "lossy", "delivery", "good"), sent - dropped);
    r.stop().await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_none_counts_a_leak_as_the_error_and_absence_as_good() {
    let mock = cluster(&["raw", "public"]);
    let bs = mock.bootstrap_servers();
    let cancel = CancellationToken::new();
    let filter = Stage::start(
        stage(
            "filter",
            &bs,
            "raw",
            &bs,
            "public",
            Transform {
                filter_canaries: true,
                ..Transform::default()
            },
        ),
        cancel.clone(),
    )
    .expect("stage");
    let config = pipeline(
        &bs,
        &bs,
        "2s",
        "      - { name: public, cluster: a, topic: public, match: { header: slaprobe-id }, expect: none }",
    );
    let r = Running::start(&config).await;
    // A clean filter: every canary's absence is good.
    assert!(
        wait_until(Duration::from_secs(30), || sli(
            &r, "public", "delivery", "good"
        ) >= 10.0)
        .await
    );
    assert_eq!(sli(&r, "public", "delivery", "bad"), 0.0);
    assert_eq!(
        out(&r, "slaprobe_canaries_lost_total", "public"),
        0.0,
        "a filtered canary is not a loss"
    );
    let (status, _) = common::http_get(r.addr, "/readyz").expect("readyz");
    assert_eq!(status, 200, "a filter-only probe becomes ready");
    // The filter leaks: each leaked canary is a bad event.
    filter.control().update(|f| f.leak = true);
    assert!(
        wait_until(Duration::from_secs(30), || sli(
            &r, "public", "delivery", "bad"
        ) >= 5.0)
        .await
    );
    assert!(out(&r, "slaprobe_canaries_delivered_total", "public") >= 5.0);
    r.stop().await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_pipeline_loses_canaries_at_the_deadline_and_recovers() {
    let (_mock, bs, cancel, sim) = raw_to_out();
    let deadline = Duration::from_secs(2);
    let config = json_out(&bs, "2s");
    let r = Running::start(&config).await;
    assert!(
        wait_until(Duration::from_secs(30), || out(
            &r,
            "slaprobe_canaries_delivered_total",
            "out"
        ) > 10.0)
        .await
    );
    assert_eq!(out(&r, "slaprobe_canaries_lost_total", "out"), 0.0);

    sim.control().update(|f| f.stalled = true);
    let stalled_at = std::time::Instant::now();
    // The first canary the stall holds was sent at or after `stalled_at`
    // minus one fetch; it is declared lost one expiry tick (100 ms) after its
    // deadline. The wait returns as soon as it happens; its bound is only
    // a limit for a loaded machine (how late losses may be reported is a
    // benchmark figure, not a timed test).
    assert!(
        wait_until(deadline + Duration::from_secs(15), || out(
            &r,
            "slaprobe_canaries_lost_total",
            "out"
        ) > 0.0)
        .await,
        "losses reported by deadline + tick"
    );
    assert!(
        stalled_at.elapsed() >= deadline - Duration::from_millis(300),
        "not before the deadline"
    );
    // While more losses are reported, nothing is delivered.
    let delivered = out(&r, "slaprobe_canaries_delivered_total", "out");
    let lost = out(&r, "slaprobe_canaries_lost_total", "out");
    assert!(
        wait_until(Duration::from_secs(5), || out(
            &r,
            "slaprobe_canaries_lost_total",
            "out"
        ) >= lost + 3.0)
        .await
    );
    assert_eq!(
        out(&r, "slaprobe_canaries_delivered_total", "out"),
        delivered,
        "nothing delivered while stalled"
    );

    sim.control().update(|f| f.stalled = false);
    assert!(
        wait_until(Duration::from_secs(30), || out(
            &r,
            "slaprobe_canaries_delivered_total",
            "out"
        ) > delivered + 10.0)
        .await,
        "delivery resumes when the stall ends"
    );
    assert!(
        out(&r, "slaprobe_canaries_late_total", "out") > 0.0,
        "the backlog arrives late"
    );
    r.stop().await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_records_on_outputs_are_counted_and_never_matched() {
    let (_mock, bs, cancel, _sim) = raw_to_out();
    let config = json_out(&bs, "3s");
    let r = Running::start(&config).await;
    assert!(
        wait_until(Duration::from_secs(30), || out(
            &r,
            "slaprobe_canaries_delivered_total",
            "out"
        ) > 0.0)
        .await
    );

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .expect("producer");
    let send = |value: String, header: Option<String>| {
        let producer = producer.clone();
        async move {
            let mut rec = FutureRecord::<str, str>::to("out")
                .partition(0)
                .payload(&value);
            if let Some(h) = &header {
                rec = rec.headers(OwnedHeaders::new().insert(Header {
                    key: "slaprobe-id",
                    value: Some(h),
                }));
            }
            producer.send(rec, Duration::from_secs(5)).await.map(|_| ())
        }
    };
    let run = r.run;
    let results = [
        // Not JSON, though it names this run.
        send(format!("{run} not json"), None).await,
        // An earlier run of this probe (id in the header too: irrelevant for a JSON rule).
        send(
            r#"{"id":"orders/00000000000000ff/0/1"}"#.into(),
            Some("orders/00000000000000ff/0/1".into()),
        )
        .await,
        // Another probe of this run.
        send(format!(r#"{{"id":"other/{run}/0/1"}}"#), None).await,
        // This probe and run, but a canary never sent.
        send(format!(r#"{{"id":"orders/{run}/99/7"}}"#), None).await,
        // The id field is not a string; and plain binary.
        send(format!(r#"{{"id":42,"run":"{run}"}}"#), None).await,
        send("\u{0}\u{1}\u{2}".into(), None).await,
    ];
    assert!(results.iter().all(Result::is_ok));
    assert!(
        wait_until(Duration::from_secs(30), || out(
            &r,
            "slaprobe_records_foreign_total",
            "out"
        ) >= 6.0)
        .await,
        "{}",
        String::from_utf8_lossy(&r.metrics.render())
    );
    // They change nothing else, while more canaries are delivered.
    let delivered = out(&r, "slaprobe_canaries_delivered_total", "out");
    assert!(
        wait_until(Duration::from_secs(10), || out(
            &r,
            "slaprobe_canaries_delivered_total",
            "out"
        ) >= delivered + 5.0)
        .await
    );
    assert_eq!(out(&r, "slaprobe_records_foreign_total", "out"), 6.0);
    assert_eq!(out(&r, "slaprobe_canaries_lost_total", "out"), 0.0);
    assert_eq!(out(&r, "slaprobe_canaries_duplicate_total", "out"), 0.0);
    r.stop().await;
    cancel.cancel();
}

/// An output partition whose offsets cannot be read when the probe starts
/// (a topic just created, whose leader not every broker knows yet) is
/// tried again within a second, and the first canary waits for it: none
/// that the pipeline writes there is read late and judged lost. (The chaos
/// run found the first canary of a run lost and then late this way, its
/// partition read only at the next 10-second refresh.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_partition_unreadable_at_start_loses_no_canary() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let (mock, bs, cancel, sim) = raw_to_out();
    // The stage reads before the fault: its own offset lookups are done.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to("raw").key("warm-up").payload("{}"),
            Duration::from_secs(5),
        )
        .await
        .expect("warm-up record");
    assert!(
        wait_until(Duration::from_secs(30), || sim.control().stats().produced
            >= 1)
        .await
    );
    // slaprobe's first offset requests fail: two partitions of the output
    // cannot be read at first (two requests each: low and high watermark).
    mock.request_errors(
        RDKafkaApiKey::ListOffsets,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 4],
    );
    let deadline = Duration::from_secs(2);
    let config = json_out(&bs, "2s");
    let r = sending(&config, 60.0).await;
    settle(&r, deadline).await;
    let sent = r.metric("slaprobe_canaries_sent_total", &[]);
    assert_eq!(out(&r, "slaprobe_canaries_lost_total", "out"), 0.0);
    assert_eq!(out(&r, "slaprobe_canaries_late_total", "out"), 0.0);
    assert_eq!(out(&r, "slaprobe_canaries_delivered_total", "out"), sent);
    r.stop().await;
    cancel.cancel();
}
