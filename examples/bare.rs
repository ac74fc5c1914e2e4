//! The bare round trip slaprobe is compared with (`scripts/bench.sh`): a
//! minimal rdkafka program that produces timestamped records to every
//! partition of a topic, spread evenly over the interval, and consumes them
//! by explicit assignment from the end, with slaprobe's own client settings
//! (`slaprobe::kafka::client::config` for the producer and consumer roles) against the same
//! broker; with `--client-defaults true`, with librdkafka's defaults instead
//! (only `bootstrap.servers`, the consumer's `group.id` that `assign` needs,
//! and the `--librdkafka` options), as a user's own client would be. It measures the latency from just before the produce call to the
//! consumer's poll returning the record, on the monotonic clock. With
//! `--split-queues true` it reads as slaprobe's consumer does: a queue per
//! partition, which signals a channel when records come to it empty, and
//! one thread draining each queue signalled.
//!
//! ```sh
//! cargo run --release --example bare -- --bootstrap 127.0.0.1:9092 \
//!     --topic bare.1 --partitions 6 --rate 1000 --warmup 10 --seconds 30 \
//!     [--librdkafka fetch.wait.max.ms=10] [--payload-bytes 256] \
//!     [--client-defaults true] [--split-queues true]
//! ```
//!
//! It creates the topic (unless it exists), prints `measuring` when the warm-up ends, and at
//! the end one JSON line: records delivered in the measured window, their
//! latency quantiles (µs), the rate sent. Asserts nothing.
//!
//! With `--commands true` it measures when told, on standard input, instead
//! of in one window (`scripts/bench/busy.py` runs it beside slaprobe on the
//! same topic as the reference of a burst): `reset` starts a new window,
//! `report` prints the JSON line of the records received since, and the end
//! of the input stops it. Records it did not write (no key of its own)
//! are skipped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use slaprobe::config::Cluster;
use slaprobe::kafka::{self, Role};

struct Acks(AtomicU64);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if r.is_ok() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct Args {
    bootstrap: String,
    topic: String,
    partitions: i32,
    rate: f64,
    warmup: f64,
    seconds: f64,
    payload_bytes: usize,
    librdkafka: BTreeMap<String, String>,
    client_defaults: bool,
    commands: bool,
    split_queues: bool,
}

fn args() -> Args {
    let mut a = Args {
        bootstrap: String::new(),
        topic: String::new(),
        partitions: 6,
        rate: 1000.0,
        warmup: 10.0,
        seconds: 30.0,
        payload_bytes: 256,
        librdkafka: BTreeMap::new(),
        client_defaults: false,
        commands: false,
        split_queues: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        let num = || -> f64 { v.parse().unwrap_or_else(|_| panic!("{k}: bad value {v}")) };
        match k.as_str() {
            "--partitions" => a.partitions = num() as i32,
            "--rate" => a.rate = num(),
            "--warmup" => a.warmup = num(),
            "--seconds" => a.seconds = num(),
            "--payload-bytes" => a.payload_bytes = num() as usize,
            "--bootstrap" => a.bootstrap = v,
            "--topic" => a.topic = v,
            "--client-defaults" => a.client_defaults = v == "true",
            "--commands" => a.commands = v == "true",
            "--split-queues" => a.split_queues = v == "true",
            "--librdkafka" => {
                let (key, value) = v
                    .split_once('=')
                    .unwrap_or_else(|| panic!("{v}: KEY=VALUE"));
                a.librdkafka.insert(key.into(), value.into());
            }
            _ => panic!("unknown argument {k}"),
        }
    }
    assert!(
        !a.bootstrap.is_empty() && !a.topic.is_empty(),
        "--bootstrap and --topic"
    );
    a
}

fn main() {
    let a = args();
    let cluster = Cluster {
        name: "bare".into(),
        bootstrap: a.bootstrap.clone(),
        librdkafka: a.librdkafka.clone(),
        secret_keys: Default::default(),
    };
    let deadline = Duration::from_secs(5);
    let interval = Duration::from_secs_f64(a.partitions as f64 / a.rate);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let admin: AdminClient<DefaultClientContext> =
        kafka::client::create(&cluster, Role::Admin, DefaultClientContext).expect("admin");
    let topic = NewTopic::new(&a.topic, a.partitions, TopicReplication::Fixed(1));
    for r in rt
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .expect("create topic")
    {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err(e) => panic!("create topic: {e:?}"),
        }
    }

    let bound = kafka::queue_bound(deadline, interval);
    let role = Role::Producer {
        deadline,
        queue_bound: bound,
    };
    let (producer, consumer): (ThreadedProducer<Acks>, BaseConsumer) = if a.client_defaults {
        let plain = |extra: &[(&str, &str)]| {
            let mut c = rdkafka::ClientConfig::new();
            c.set("bootstrap.servers", &a.bootstrap);
            for (k, v) in extra {
                c.set(*k, *v);
            }
            for (k, v) in &a.librdkafka {
                c.set(k, v);
            }
            c
        };
        (
            plain(&[])
                .create_with_context(Acks(AtomicU64::new(0)))
                .expect("producer"),
            plain(&[("group.id", "bare")])
                .create_with_context(DefaultConsumerContext)
                .expect("consumer"),
        )
    } else {
        (
            kafka::client::create(&cluster, role, Acks(AtomicU64::new(0))).expect("producer"),
            kafka::client::create(&cluster, Role::Consumer, DefaultConsumerContext)
                .expect("consumer"),
        )
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..a.partitions {
        let high = loop {
            match consumer.fetch_watermarks(&a.topic, p, Duration::from_secs(5)) {
                Ok((_, high)) => break high,
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        tpl.add_partition_offset(&a.topic, p, Offset::Offset(high))
            .expect("tpl");
    }
    // As slaprobe's consumer reads (src/consume/fetcher.rs): a queue per
    // partition, each signalling a channel when records come to it empty.
    let consumer = Arc::new(consumer);
    let (signal, signals) = std::sync::mpsc::channel::<usize>();
    let queues: Vec<_> = if a.split_queues {
        (0..a.partitions)
            .map(|p| {
                let mut q = consumer
                    .split_partition_queue(&a.topic, p)
                    .expect("partition queue");
                let signal = signal.clone();
                q.set_nonempty_callback(move || {
                    let _ = signal.send(p as usize);
                });
                q
            })
            .collect()
    } else {
        Vec::new()
    };
    consumer.assign(&tpl).expect("assign");

    let origin = Instant::now();
    let (measure_from, end) = if a.commands {
        // Measured between commands; runs until its input ends.
        (origin, origin + Duration::from_secs(365 * 86_400))
    } else {
        let from = origin + Duration::from_secs_f64(a.warmup);
        (from, from + Duration::from_secs_f64(a.seconds))
    };
    let stop = Arc::new(AtomicBool::new(false));
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    let delivered = Arc::new(AtomicU64::new(0));
    let seconds = a.seconds;
    // The result line; `more` adds fields (`, "name": value`).
    let report = move |h: &Histogram<u64>, delivered: u64, sent: u64, more: &str| {
        let q = |q: f64| h.value_at_quantile(q);
        format!(
            "{{\"delivered\": {delivered}, \"sent\": {sent}, \"seconds\": {}, \"p50_us\": {}, \"p99_us\": {}, \"p999_us\": {}{more}}}",
            seconds,
            q(0.5),
            q(0.99),
            q(0.999),
        )
    };
    if a.commands {
        let (stop, hist, delivered) = (stop.clone(), hist.clone(), delivered.clone());
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                let mut h = hist.lock().expect("histogram");
                match line.trim() {
                    "reset" => {
                        h.reset();
                        delivered.store(0, Ordering::Relaxed);
                    }
                    "report" => {
                        println!("{}", report(&h, delivered.load(Ordering::Relaxed), 0, ""));
                    }
                    other => eprintln!("bare: unknown command {other:?}"),
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
    let reader = {
        let (stop, hist, delivered) = (stop.clone(), hist.clone(), delivered.clone());
        std::thread::spawn(move || {
            let read = |m: &BorrowedMessage<'_>| {
                let now = origin.elapsed();
                let Some(sent) = m
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .and_then(|k| k.parse::<u64>().ok())
                else {
                    return;
                };
                let sent = Duration::from_nanos(sent);
                if origin + sent >= measure_from && origin + sent < end {
                    let us = now.saturating_sub(sent).as_micros().max(1) as u64;
                    let _ = hist.lock().expect("histogram").record(us);
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            };
            while !stop.load(Ordering::Relaxed) {
                if queues.is_empty() {
                    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                        read(&m);
                    }
                    continue;
                }
                match signals.recv_timeout(Duration::from_millis(100)) {
                    Ok(p) => {
                        while let Some(Ok(m)) = queues[p].poll(Duration::ZERO) {
                            read(&m);
                        }
                    }
                    Err(_) => {
                        consumer.poll(Duration::ZERO);
                    }
                }
            }
        })
    };

    // Spread evenly: one record every interval / partitions, round-robin;
    // after a stall, skip ahead rather than burst (as slaprobe's ticker).
    let payload = "x".repeat(a.payload_bytes);
    let slot = interval / a.partitions as u32;
    let allowed = interval.max(Duration::from_millis(5));
    let mut next = Instant::now();
    let mut rr = 0i32;
    let mut sent_in_window = 0u64;
    let mut measuring = false;
    while Instant::now() < end + Duration::from_secs(1) && !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if !measuring && now >= measure_from {
            measuring = true;
            println!("measuring");
        }
        if now < next {
            std::thread::sleep(next - now);
            continue;
        }
        if now.duration_since(next) > allowed {
            next = now - allowed;
        }
        while next <= now {
            let sent = Instant::now();
            let key = sent.duration_since(origin).as_nanos().to_string();
            let record = BaseRecord::to(&a.topic)
                .partition(rr % a.partitions)
                .key(&key)
                .payload(&payload);
            let _ = producer.send(record);
            if sent >= measure_from && sent < end {
                sent_in_window += 1;
            }
            rr = rr.wrapping_add(1);
            next += slot;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    if a.commands {
        return;
    }
    let h = hist.lock().expect("histogram");
    let acked = producer.context().0.load(Ordering::Relaxed);
    println!(
        "{}",
        report(
            &h,
            delivered.load(Ordering::Relaxed),
            sent_in_window,
            &format!(", \"acked\": {acked}")
        )
    );
}
