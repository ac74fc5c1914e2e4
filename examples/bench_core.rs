//! Figures for SPEC §8 that need no broker: tracker memory per in-flight
//! canary, tracker cost per canary, and `/metrics` render time with 100
//! probes. Run: `cargo run --release --example bench_core`. Prints figures;
//! asserts nothing (machines are shared and noisy).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use slaprobe::config::{self, Config};
use slaprobe::metrics::Metrics;
use slaprobe::probe::tracker::Tracker;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() {
    // Memory: 30 s deadline, 1000 partitions, one canary per partition per
    // 100 ms: 300,000 in flight.
    let t0 = Instant::now();
    let before = LIVE.load(Ordering::Relaxed);
    let mut t = Tracker::new(Duration::from_secs(30));
    let n = 300_000u64;
    for i in 0..n {
        let p = (i % 1000) as i32;
        let seq = t.on_send(p, t0 + Duration::from_micros(i * 100));
        t.on_ack(
            p,
            seq,
            true,
            t0 + Duration::from_micros(i * 100 + 50),
            &mut |_| {},
        );
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "tracker memory: {} in flight, {} bytes, {:.1} bytes per in-flight canary (target <= 256)",
        t.in_flight(),
        bytes,
        bytes as f64 / t.in_flight() as f64
    );

    // Cost: send + ack + arrival + expiry per canary.
    let mut t = Tracker::new(Duration::from_secs(30));
    let n = 2_000_000u64;
    let start = Instant::now();
    let mut delivered = 0u64;
    for i in 0..n {
        let p = (i % 64) as i32;
        let at = t0 + Duration::from_micros(i * 10);
        let seq = t.on_send(p, at);
        t.on_ack(p, seq, true, at, &mut |_| {});
        t.on_arrival(p, seq, at + Duration::from_millis(5), &mut |_| {
            delivered += 1
        });
        if i % 1000 == 0 {
            t.expire(at, &mut |_| {});
        }
    }
    let per = start.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "tracker cost: {per:.0} ns per canary (send, ack, arrival, expiry), {delivered} delivered"
    );

    // /metrics with 100 probes, each with a heartbeat output and three SLOs.
    let mut yaml = String::from("clusters: { c: { bootstrap: 'k:9092' } }\nprobes:\n");
    for i in 0..100 {
        yaml.push_str(&format!(
            "  - {{ name: p{i}, type: heartbeat, cluster: c, topic: t{i}, slos: [ {{ sli: availability, objective: 99.9% }}, {{ sli: delivery, objective: 99.9% }}, {{ sli: latency, threshold: 100ms, objective: 99% }} ] }}\n"
        ));
    }
    let cfg: Config = config::load_str("bench.yaml", &yaml, &|_| None).expect("config");
    let metrics = Metrics::new(&[Duration::from_millis(100)]);
    let mut handles = Vec::new();
    for p in &cfg.probes {
        let out = metrics.output(p, "heartbeat");
        let mut input = metrics.input(&p.name, "c", p.input_topic(), "heartbeat");
        for part in 0..6 {
            out.delivered(Duration::from_millis(3 + part), false);
            input.partition_delivered(part as i32, Some(1 + part as i32 % 3));
            input.acked(Some(1 + part as i32 % 3), Duration::from_millis(2));
        }
        handles.push((out, input));
    }
    let _ev = slaprobe::slo::evaluator::Evaluator::new(
        &cfg,
        &metrics,
        std::sync::Arc::new(slaprobe::slo::evaluator::SystemClock),
    );
    let mut times: Vec<Duration> = (0..200)
        .map(|_| {
            let s = Instant::now();
            let body = metrics.render();
            std::hint::black_box(body.len());
            s.elapsed()
        })
        .collect();
    times.sort();
    let size = metrics.render().len();
    // `--dump PATH` keeps the exposition, e.g. to rebuild the same series in
    // another metrics library and compare render times.
    let args: Vec<String> = std::env::args().collect();
    if let Some(path) = args.windows(2).find(|w| w[0] == "--dump").map(|w| &w[1]) {
        std::fs::write(path, metrics.render()).expect("write the exposition");
    }
    println!(
        "/metrics with 100 probes: {} bytes, render p50 {:.2} ms, p99 {:.2} ms (target < 5 ms)",
        size,
        times[100].as_secs_f64() * 1e3,
        times[198].as_secs_f64() * 1e3
    );
}
