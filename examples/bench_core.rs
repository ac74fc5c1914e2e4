//! Figures for SPEC §8 that need no broker: tracker memory per in-flight
//! canary, tracker cost per canary, and `/metrics` render time with 100
//! probes. Run: `cargo run --release --example bench_core`. Prints figures;
//! asserts nothing (machines are shared and noisy).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use slaprobe::config::{self, Config};
use slaprobe::metrics::Metrics;
use slaprobe::outcome::tracker::Tracker;

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
        "tracker memory: {} in flight, {} bytes, {:.1} bytes per in-flight canary (target <= 128, with the 40-byte delivery opaque each canary carries through librdkafka)",
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
        let mut out = metrics.output(p, "heartbeat");
        let mut input = metrics.input(p);
        for part in 0..6 {
            let leader = Some(1 + part as i32 % 3);
            out.delivered(leader, Duration::from_millis(3 + part), false);
            input.partition_delivered(part as i32, Some(1 + part as i32 % 3));
            input.acked(Some(1 + part as i32 % 3), Duration::from_millis(2));
        }
        handles.push((out, input));
    }
    let _ev = slaprobe::slo::evaluator::Evaluator::new(
        &cfg,
        &metrics,
        std::sync::Arc::new(slaprobe::slo::evaluator::SystemClock::new()),
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
        "/metrics with 100 probes: {} bytes, render p50 {:.2} ms, p99 {:.2} ms (target: p50 <= 2 ms)",
        size,
        times[100].as_secs_f64() * 1e3,
        times[198].as_secs_f64() * 1e3
    );
    shared_exposition(&metrics);

    state_file(&cfg);
}

/// What a scrape costs once `/metrics`' body is shared
/// (`slaprobe::serve::exposition`): ten scrapes at once, and scrapes within
/// a second of a render.
fn shared_exposition(metrics: &Metrics) {
    use slaprobe::serve::exposition::{Exposition, MAX_AGE};
    use std::sync::Arc;
    let renders = Arc::new(AtomicUsize::new(0));
    let (m, r) = (metrics.clone(), renders.clone());
    let e = Arc::new(Exposition::new(
        move || {
            r.fetch_add(1, Ordering::Relaxed);
            m.render()
        },
        MAX_AGE,
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    let (concurrent, mut hits) = rt.block_on(async {
        let started = Instant::now();
        let scrapes: Vec<_> = (0..10)
            .map(|_| {
                let e = e.clone();
                tokio::spawn(async move { e.body().await.len() })
            })
            .collect();
        for s in scrapes {
            std::hint::black_box(s.await.expect("scrape"));
        }
        let concurrent = started.elapsed();
        let hits: Vec<Duration> = timed_scrapes(&e, 200).await;
        (concurrent, hits)
    });
    hits.sort();
    println!(
        "/metrics shared: 10 concurrent scrapes took {:.2} ms and {} render(s); a scrape within {:?} of a render p50 {:.3} ms, p99 {:.3} ms",
        concurrent.as_secs_f64() * 1e3,
        renders.load(Ordering::Relaxed),
        MAX_AGE,
        hits[100].as_secs_f64() * 1e3,
        hits[198].as_secs_f64() * 1e3
    );
}

/// `n` scrapes one after the other, each timed.
async fn timed_scrapes(e: &slaprobe::serve::exposition::Exposition, n: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Instant::now();
        std::hint::black_box(e.body().await.len());
        times.push(s.elapsed());
    }
    times
}

/// A clock the bench moves by hand.
struct Manual(std::sync::atomic::AtomicU64);

impl slaprobe::slo::evaluator::Clock for Manual {
    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The state file of 100 probes × 3 SLOs whose windows are full (three
/// days of minutes with events, the period's hours): its size, the time to
/// write it (encode, write, fsync, rename) and to read and restore it.
fn state_file(cfg: &Config) {
    use slaprobe::slo::evaluator::{Clock, Evaluator};
    use slaprobe::state::format::{encode, FullFile};
    use slaprobe::state::StateDir;
    use std::sync::Arc;

    let metrics = Metrics::new(&[Duration::from_millis(100)]);
    let clock = Arc::new(Manual(std::sync::atomic::AtomicU64::new(1_800_000_000)));
    let mut ev = Evaluator::new(cfg, &metrics, clock.clone());
    let counters: Vec<_> = cfg
        .probes
        .iter()
        .flat_map(|p| p.slos.iter().map(move |s| (p, s)))
        .map(|(p, s)| {
            (
                metrics.sli_counter(&p.name, &s.output, s.sli, "good"),
                metrics.sli_counter(&p.name, &s.output, s.sli, "bad"),
            )
        })
        .collect();
    // 30 days of hours, then three days of minutes: every bucket full.
    for minute in 0..(30 * 24 * 60u64) {
        if minute < 27 * 24 * 60 && minute % 60 != 0 {
            continue;
        }
        for (good, bad) in &counters {
            good.inc_by(355 + minute % 10);
            bad.inc_by(minute % 3);
        }
        clock.0.fetch_add(
            if minute < 27 * 24 * 60 { 3600 } else { 60 },
            Ordering::Relaxed,
        );
        ev.tick();
    }
    let dir = std::env::temp_dir().join(format!("slaprobe-bench-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state_dir = StateDir::open(&dir).expect("state dir");
    let snapshot = |ev: &Evaluator, at| FullFile {
        written_at: at,
        writer: "bench".into(),
        slos: ev.snapshot(),
    };
    let time = |size: usize, save: &dyn Fn() -> std::io::Result<()>| {
        let mut times: Vec<Duration> = (0..10)
            .map(|_| {
                let start = Instant::now();
                save().expect("save");
                start.elapsed()
            })
            .collect();
        times.sort();
        (size, times[5], times[9])
    };
    let base = clock.now();
    let start = Instant::now();
    let full = snapshot(&ev, base);
    let taken = start.elapsed();
    let (full_size, full_p50, full_max) = time(encode(&full).len(), &|| state_dir.save_full(&full));
    // Ten minutes of evaluations later: what the recent file holds then.
    for _ in 0..60 {
        for (good, bad) in &counters {
            good.inc_by(60);
            bad.inc_by(1);
        }
        clock.0.fetch_add(10, Ordering::Relaxed);
        ev.tick();
    }
    let recent = snapshot(&ev, clock.now()).since(base);
    let (recent_size, recent_p50, recent_max) =
        time(encode(&recent).len(), &|| state_dir.save_recent(&recent));
    let start = Instant::now();
    let loaded = state_dir.load().expect("load").slos().expect("a state");
    let mut fresh = Evaluator::new(
        cfg,
        &Metrics::new(&[Duration::from_millis(100)]),
        clock.clone(),
    );
    fresh.restore(&loaded.slos);
    let restore = start.elapsed();
    println!(
        "state, 100 probes x 3 SLOs with full windows: full file {full_size} bytes (snapshot {:.1} ms, write p50 {:.1} ms, max {:.1} ms; hourly and at shutdown), recent file after 10 min {recent_size} bytes (write p50 {:.1} ms, max {:.1} ms; every 10 s); read both and restore {:.1} ms",
        taken.as_secs_f64() * 1e3,
        full_p50.as_secs_f64() * 1e3,
        full_max.as_secs_f64() * 1e3,
        recent_p50.as_secs_f64() * 1e3,
        recent_max.as_secs_f64() * 1e3,
        restore.as_secs_f64() * 1e3
    );
    let _ = std::fs::remove_dir_all(&dir);
}
