//! Runs the canary hot path (`slaprobe::probe::hotpath`) of the demo's
//! heartbeat probe for N canaries after a warm-up of 1,000: the program
//! `scripts/callgrind-guard.sh` counts instructions of.
//!
//!     cargo run --release --features bench --example hot_path -- 20000

fn main() {
    let canaries: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let config = slaprobe::demo::config("127.0.0.1:9092", None).expect("demo config");
    let mut path = slaprobe::probe::hotpath::HotPath::new(&config, 6).expect("a probe");
    path.run(1_000);
    let delivered = path.run(canaries);
    assert_eq!(delivered, 1_000 + canaries, "every canary delivered");
    println!("{canaries} canaries through the hot path, {delivered} delivered");
}
