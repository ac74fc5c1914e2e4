//! Every broker down at 1,000 canaries/s: the prober stays up with bounded
//! memory and in-flight canaries, counts the outage as failed produces
//! (availability), not as losses, and delivers again within seconds of the
//! brokers' return, without a restart.
//!
//! CI runs a 60-second outage. The 10-minute run of the failure-behaviour
//! figures is the same test with a longer outage:
//!
//! ```sh
//! SLAPROBE_OUTAGE_SECS=600 cargo test --release --test outage -- --nocapture
//! ```
//!
//! (`SLAPROBE_OUTAGE_TRACE=1` prints RSS, in-flight canaries and produce
//! errors every second of the outage.)

mod common;

use std::time::{Duration, Instant};

use common::{poll_until, scratch, Slaprobe};

const TOPIC: &str = "slaprobe.outage";
const PARTITIONS: i32 = 10;
const BROKERS: i32 = 3;
/// 10 partitions every 10 ms: 1,000 canaries/s.
const RATE: f64 = 1_000.0;
const DEADLINE: Duration = Duration::from_secs(3);

struct Sample {
    delivered: f64,
    lost: f64,
    produce_errors: f64,
    in_flight: f64,
}

fn sample(s: &Slaprobe) -> Sample {
    let text = s.metrics();
    assert!(
        !text.is_empty(),
        "slaprobe answers /metrics; log:\n{}",
        s.log()
    );
    let get = |name: &str| common::metric(&text, name, &[]);
    Sample {
        delivered: get("slaprobe_canaries_delivered_total"),
        lost: get("slaprobe_canaries_lost_total"),
        produce_errors: get("slaprobe_produce_errors_total"),
        in_flight: get("slaprobe_canaries_in_flight"),
    }
}

/// The e2e latency histogram's cumulative counts, by bucket bound
/// (`+Inf` as infinity), in order, summed over the heartbeat's brokers.
fn latency_buckets(s: &Slaprobe) -> Vec<(f64, f64)> {
    common::buckets(&s.metrics(), "slaprobe_e2e_latency_seconds", &[])
}

/// The smallest bucket bound that holds every latency observed between
/// two samples of [`latency_buckets`]: the longest send-to-read time
/// between them, rounded up to a bucket.
fn longest_between(before: &[(f64, f64)], after: &[(f64, f64)]) -> f64 {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before
                .iter()
                .find(|(b, _)| b == le)
                .map_or(0.0, |(_, n)| *n);
            (*le, n - was)
        })
        .collect();
    let all = delta.last().map_or(0.0, |(_, n)| *n);
    delta
        .iter()
        .find(|(_, n)| *n >= all)
        .map_or(f64::INFINITY, |(le, _)| *le)
}

/// Deliveries of one partition; its series appears with its first
/// delivery (`None` until then).
fn delivered_on(s: &Slaprobe, partition: i32) -> Option<f64> {
    common::metric_if_present(
        &s.metrics(),
        "slaprobe_heartbeat_partition_delivered_total",
        &[("partition", &partition.to_string())],
    )
}

#[test]
fn every_broker_down_stays_bounded_and_recovers_without_a_restart() {
    let outage = Duration::from_secs(
        std::env::var("SLAPROBE_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60),
    );
    let mock = common::mock_cluster(TOPIC, PARTITIONS, BROKERS);
    let dir = scratch("outage");
    let yaml = format!(
        r#"clusters:
  it: {{ bootstrap: '{}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}
probes:
  - name: outage
    type: heartbeat
    cluster: it
    topic: {TOPIC}
    interval: 10ms
    deadline: {}s
"#,
        mock.bootstrap_servers(),
        DEADLINE.as_secs()
    );
    let mut s = Slaprobe::start(&dir, "outage", &yaml);
    let pid = s.child.id();
    assert!(
        poll_until(Duration::from_secs(30), || (0..PARTITIONS)
            .all(|p| delivered_on(&s, p).is_some_and(|v| v > 0.0))),
        "every partition delivers; log:\n{}",
        s.log()
    );
    // Steady state: the tracker holds a deadline's worth of delivered
    // canaries (for duplicates), the histograms have their buckets: four
    // deadlines' worth of canaries delivered.
    let warm = sample(&s).delivered + RATE * DEADLINE.as_secs_f64() * 4.0;
    let steady_from = latency_buckets(&s);
    assert!(
        poll_until(Duration::from_secs(60), || sample(&s).delivered >= warm),
        "steady delivery; log:\n{}",
        s.log()
    );
    let rss_before = common::proc_status_kb(pid, "VmRSS");
    let before = sample(&s);
    // How long a canary took from send to read before the outage (the
    // longest of the steady seconds before it, to the bucket): canaries
    // acked within that much of the outage's start were written and could
    // not be read before it.
    let read_within = longest_between(&steady_from, &latency_buckets(&s));

    for b in 1..=BROKERS {
        mock.broker_down(b).expect("down");
    }
    let down_at = Instant::now();
    let (mut rss_max, mut in_flight_max) = (rss_before, 0.0f64);
    while down_at.elapsed() < outage {
        std::thread::sleep(Duration::from_secs(1));
        assert!(s.exited().is_none(), "slaprobe died; log:\n{}", s.log());
        rss_max = rss_max.max(common::proc_status_kb(pid, "VmRSS"));
        let now = sample(&s);
        in_flight_max = in_flight_max.max(now.in_flight);
        if std::env::var("SLAPROBE_OUTAGE_TRACE").is_ok() {
            println!(
                "{:>4}s rss {} kB in flight {} produce errors {}",
                down_at.elapsed().as_secs(),
                common::proc_status_kb(pid, "VmRSS"),
                now.in_flight,
                now.produce_errors
            );
        }
    }
    let during = sample(&s);

    for b in 1..=BROKERS {
        mock.broker_up(b).expect("up");
    }
    let up_at = Instant::now();
    let frozen: Vec<f64> = (0..PARTITIONS)
        .map(|p| delivered_on(&s, p).expect("delivered before"))
        .collect();
    assert!(
        poll_until(Duration::from_secs(30), || (0..PARTITIONS).all(|p| {
            delivered_on(&s, p).is_some_and(|v| v > frozen[p as usize])
        })),
        "every partition delivers again; log:\n{}",
        s.log()
    );
    let resumed = up_at.elapsed();
    let after = sample(&s);

    let errors = during.produce_errors - before.produce_errors;
    let lost = during.lost - before.lost;
    let bound = RATE * (DEADLINE.as_secs_f64() + 2.0);
    println!(
        "outage {outage:?} at {RATE}/s: RSS {rss_before} kB before, {rss_max} kB at most ({:.2}x); \
         in flight at most {in_flight_max} (bound {bound}); produce errors {errors}, lost {lost} \
         (longest read before {read_within} s); \
         every partition delivering again {resumed:?} after the brokers returned",
        rss_max as f64 / rss_before as f64
    );
    assert!(
        (rss_max as f64) <= rss_before as f64 * 1.5,
        "RSS {rss_before} -> {rss_max} kB"
    );
    assert!(
        in_flight_max <= bound,
        "in flight {in_flight_max} > {bound}"
    );
    // The outage is availability: nearly every canary of it failed to
    // produce. Only canaries acked in the instant before the brokers went
    // away can be lost (they were written and never read in time): those
    // of the longest send-to-read time before it, and 200 ms more. (On a
    // loaded machine the prober reads later, and that instant is longer: a
    // fixed bound, and then one from the p99.9, made this test fail where
    // it shared two cores with other tests: 785 lost at a p99.9 of 0.53 s.)
    assert!(
        errors >= RATE * (outage.as_secs_f64() - DEADLINE.as_secs_f64() * 2.0) * 0.8,
        "{errors} produce errors"
    );
    let lost_bound = RATE * (read_within + 0.2);
    assert!(
        lost <= lost_bound,
        "{lost} canaries lost during the outage (bound {lost_bound}: longest read {read_within} s)"
    );
    assert!(
        resumed <= Duration::from_secs(5),
        "resumed after {resumed:?}"
    );
    assert!(after.delivered > during.delivered);
    s.stop_cleanly();
}
