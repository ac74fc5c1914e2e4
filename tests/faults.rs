//! `slaprobe run` as a process under faults that are not Kafka's: clients
//! that hold HTTP connections open, signals at awkward moments. The cluster
//! is librdkafka's mock cluster in this test process.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{http_get, poll_until, scratch, Slaprobe};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

const TOPIC: &str = "slaprobe.faults";

fn cluster() -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic(TOPIC, 3, 1).expect("topic");
    mock
}

fn heartbeat(bootstrap: &str) -> String {
    format!(
        r#"clusters:
  it: {{ bootstrap: '{bootstrap}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}
probes:
  - name: faults
    type: heartbeat
    cluster: it
    topic: {TOPIC}
    interval: 100ms
    deadline: 5s
"#
    )
}

/// Canaries delivered so far (0 while the process does not answer).
fn delivered(s: &Slaprobe) -> f64 {
    s.delivered().unwrap_or(0.0)
}

#[test]
fn two_thousand_idle_half_open_connections_neither_block_metrics_nor_probing() {
    // This process holds the client side of every connection.
    let limit = slaprobe::serve::raise_open_files_limit();
    if limit < 2_300 {
        common::missing_prerequisite(
            "an open-files hard limit of at least 2,300 for the test process",
            "raise it (ulimit -Hn) for the user that runs the tests",
        );
        return;
    }
    let mock = cluster();
    let dir = scratch("half-open");
    // Started as containers and systemd start processes: soft limit 1,024.
    let s = Slaprobe::start_with(
        &dir,
        "half-open",
        &heartbeat(&mock.bootstrap_servers()),
        Some("-Sn 1024"),
        None,
    );
    assert!(
        poll_until(Duration::from_secs(30), || delivered(&s) > 0.0),
        "delivers before the connections; log:\n{}",
        s.log()
    );

    // Half of them send nothing, half a request head that never ends.
    let mut held = Vec::with_capacity(2_000);
    for i in 0..2_000 {
        let mut c = TcpStream::connect(s.addr).expect("connect");
        if i % 2 == 1 {
            let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
        }
        held.push(c);
    }
    let before = delivered(&s);
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        if let Ok((200, body)) = http_get(s.addr, "/metrics") {
            assert!(body.contains("slaprobe_canaries_sent_total"));
            best = best.min(t.elapsed());
        }
    }
    println!("/metrics with 2,000 idle connections held: {best:?} (best of 3)");
    assert!(
        best < Duration::from_secs(1),
        "/metrics answered within 1 s"
    );
    assert!(
        poll_until(Duration::from_secs(10), || delivered(&s) >= before + 10.0),
        "probes keep delivering while the connections are held; log:\n{}",
        s.log()
    );
    let log = s.log();
    assert!(
        log.contains("raised the open-files limit") && !log.contains("accept failed"),
        "the soft limit was raised and every connection accepted; log:\n{log}"
    );
    drop(held);
    let lost = common::metric(&s.metrics(), "slaprobe_canaries_lost_total", &[]);
    assert_eq!(lost, 0.0);
    s.stop_cleanly();
}

#[test]
fn connections_over_the_cap_are_refused_without_starving_kafka() {
    // 600 descriptors leave room for 88 HTTP connections.
    let mock = cluster();
    let dir = scratch("fd-cap");
    let s = Slaprobe::start_with(
        &dir,
        "fd-cap",
        &heartbeat(&mock.bootstrap_servers()),
        Some("-n 600"),
        None,
    );
    assert!(
        poll_until(Duration::from_secs(30), || delivered(&s) > 0.0),
        "delivers; log:\n{}",
        s.log()
    );
    let before = delivered(&s);
    let held: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(s.addr).ok())
        .collect();
    assert!(
        poll_until(Duration::from_secs(10), || s
            .log()
            .contains("88 HTTP connections open, the most allowed")),
        "refusals are logged with the cap; log:\n{}",
        s.log()
    );
    // Probing goes on while HTTP is full (30 canaries/s; /metrics answers
    // on a connection of its own when one frees up).
    let going_on = poll_until(Duration::from_secs(10), || {
        s.value_if_up("slaprobe_canaries_delivered_total", &[])
            .is_some_and(|d| d >= before + 45.0)
    });
    drop(held);
    let during = delivered(&s) - before;
    assert!(going_on, "delivered {during} while HTTP was full");
    assert_eq!(
        common::metric(&s.metrics(), "slaprobe_canaries_lost_total", &[]),
        0.0
    );
    s.stop_cleanly();
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// 2,000 clients ask for `/metrics` and never read the response:
/// `/healthz` answers meanwhile, resident memory stays far below a pod's
/// limit, and every connection is closed by the server. (A body this size,
/// ~90 KB, fits in the sockets' buffers on loopback, so the response is
/// written and the idle timeout closes it; a body larger than the buffers
/// stalls, and the write deadline closes it: `serve::listen`'s unit test
/// with a 32 MB body.)
#[test]
fn clients_that_never_read_their_response_cannot_hold_the_server() {
    use std::io::{ErrorKind, Read};
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-files limit");
    let mock = cluster();
    let dir = scratch("never-read");
    // Ten probes: a /metrics body of ~90 KB.
    let mut yaml = heartbeat(&mock.bootstrap_servers());
    for i in 1..10 {
        yaml += &format!(
            "  - {{ name: faults-{i}, type: heartbeat, cluster: it, topic: {TOPIC}, interval: 1s, deadline: 5s }}\n"
        );
    }
    let s = Slaprobe::start(&dir, "never-read", &yaml);
    assert!(
        poll_until(Duration::from_secs(30), || delivered(&s) > 0.0),
        "delivers; log:\n{}",
        s.log()
    );
    let body = s.metrics().len();
    let pid = s.child.id();
    let before = rss(pid);
    let mut held = Vec::new();
    for _ in 0..2000 {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.set_recv_buffer_size(1024).expect("rcvbuf");
        socket.connect(&s.addr.into()).expect("connect");
        let mut stream: TcpStream = socket.into();
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("request");
        held.push(stream);
    }
    let mut peak = 0;
    let t = Instant::now();
    // Past the write and idle timeouts (10 s) before reading anything.
    while t.elapsed() < Duration::from_secs(12) {
        let health = http_get(s.addr, "/healthz");
        assert!(
            health.as_ref().is_ok_and(|(code, _)| *code == 200),
            "/healthz answers while 2,000 clients hold responses: {health:?}"
        );
        peak = peak.max(rss(pid));
        std::thread::sleep(Duration::from_millis(250));
    }
    // Each has been closed by the server by now: reading finds its end.
    let (mut closed, mut most) = (0, 0);
    for stream in &mut held {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0;
        let was_closed = loop {
            match stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break false
                }
                Err(_) => break true,
            }
        };
        closed += usize::from(was_closed);
        most = most.max(got);
    }
    peak = peak.max(rss(pid));
    assert_eq!(
        closed,
        held.len(),
        "closed by the server; at most {most} of {body} bytes received"
    );
    eprintln!(
        "/metrics body {body} bytes; RSS {} MiB before, {} MiB at most with 2,000 stalled clients",
        before >> 20,
        peak >> 20
    );
    assert!(peak < 256 << 20, "RSS {peak} bytes");
    assert!(
        http_get(s.addr, "/healthz").is_ok_and(|(code, _)| code == 200),
        "still serving"
    );
    s.stop_cleanly();
}

/// A TCP server that accepts connections and never answers (a broker or an
/// Alertmanager that hangs); how many it accepted.
fn black_hole() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(c);
        }
    });
    (addr, accepted)
}

/// Whether the black hole accepted a connection within `timeout`.
fn accepted_within(accepted: &std::sync::atomic::AtomicUsize, timeout: Duration) -> bool {
    poll_until(timeout, || {
        accepted.load(std::sync::atomic::Ordering::SeqCst) > 0
    })
}

/// Sends each of `signals` (`kill -s` names) 300 ms apart and returns how
/// long after the first the process took to exit, and its status.
fn exit_after(mut s: Slaprobe, signals: &[&str]) -> (Duration, std::process::ExitStatus) {
    let t = Instant::now();
    let mut sent = 0;
    loop {
        if let Ok(Some(status)) = s.child.try_wait() {
            return (t.elapsed(), status);
        }
        if sent < signals.len() && t.elapsed() >= Duration::from_millis(300) * sent as u32 {
            let _ = std::process::Command::new("kill")
                .args(["-s", signals[sent], &s.child.id().to_string()])
                .status();
            sent += 1;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "slaprobe still runs 20 s after {signals:?}; log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shutdown_is_bounded_while_the_broker_hangs_during_topic_creation() {
    let (broker, accepted) = black_hole();
    let dir = scratch("hung-broker");
    let yaml = heartbeat(&broker.to_string()).replace(
        "deadline: 5s\n",
        "deadline: 5s\n    topic_management: { create: true }\n",
    );
    let s = Slaprobe::start(&dir, "hung-broker", &yaml);
    assert!(
        accepted_within(&accepted, Duration::from_secs(10)),
        "slaprobe connects to the broker"
    );
    assert!(!s.ready());
    let (took, status) = exit_after(s, &["TERM"]);
    println!("SIGTERM while the broker hangs: exited in {took:?} ({status})");
    assert!(took <= Duration::from_millis(10_500), "exited in {took:?}");
}

#[test]
fn shutdown_is_bounded_when_every_broker_stops_answering_mid_run() {
    let mock = cluster();
    let dir = scratch("slow-broker");
    let s = Slaprobe::start(&dir, "slow-broker", &heartbeat(&mock.bootstrap_servers()));
    assert!(poll_until(Duration::from_secs(30), || delivered(&s) > 10.0));
    // Canaries in flight to a broker that answers in a minute.
    mock.broker_round_trip_time(1, Duration::from_secs(60))
        .expect("rtt");
    let sent = s.value("slaprobe_canaries_sent_total", &[]);
    assert!(poll_until(Duration::from_secs(10), || s
        .value("slaprobe_canaries_sent_total", &[])
        >= sent + 10.0));
    let (took, status) = exit_after(s, &["TERM"]);
    println!("SIGTERM with every request hung: exited in {took:?} ({status})");
    assert!(took <= Duration::from_millis(10_500), "exited in {took:?}");
}

#[test]
fn shutdown_is_bounded_while_alertmanager_hangs() {
    let mock = cluster();
    let (am, accepted) = black_hole();
    let dir = scratch("hung-am");
    let yaml = format!(
        "alertmanager: {{ url: 'http://{am}' }}\n{}    slos:\n      - {{ sli: latency, threshold: 1us, objective: 99.9% }}\n",
        heartbeat(&mock.bootstrap_servers())
    );
    let s = Slaprobe::start(&dir, "hung-am", &yaml);
    assert!(
        accepted_within(&accepted, Duration::from_secs(60)),
        "slaprobe pushes an alert; log:\n{}",
        s.log()
    );
    let (took, status) = exit_after(s, &["TERM"]);
    println!("SIGTERM with a push to a hung Alertmanager: exited in {took:?} ({status})");
    assert!(took <= Duration::from_millis(10_500), "exited in {took:?}");
    assert!(status.success(), "a hung push does not fail the shutdown");
}

#[test]
fn a_second_signal_exits_at_once() {
    let (broker, _) = black_hole();
    let dir = scratch("second-signal");
    let yaml = heartbeat(&broker.to_string()).replace(
        "deadline: 5s\n",
        "deadline: 5s\n    topic_management: { create: true }\n",
    );
    let s = Slaprobe::start(&dir, "second-signal", &yaml);
    std::thread::sleep(Duration::from_secs(1));
    let log = s.log.clone();
    let (took, status) = exit_after(s, &["TERM", "INT"]);
    println!("SIGTERM then SIGINT 300 ms later: exited in {took:?} ({status})");
    assert!(took < Duration::from_secs(3), "exited in {took:?}");
    assert!(!status.success());
    assert!(std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("second signal"));
}

/// Exiting never runs OpenSSL's exit-time cleanup. The shutdown is bounded
/// and may leave a straggler behind (a client's broker thread in a TLS
/// handshake, a blocking request past its grace): OpenSSL freeing its
/// tables under such a thread crashed slaprobe at exit (SIGSEGV after
/// SIGTERM, against a cluster whose certificate it did not trust). gdb,
/// attached to a slaprobe whose TLS handshakes hang, breaks on
/// `OPENSSL_cleanup`: a SIGTERM must take the process to its exit without
/// reaching it.
#[test]
fn exiting_never_runs_openssls_cleanup_under_a_straggler() {
    if std::process::Command::new("gdb")
        .arg("--version")
        .output()
        .is_err()
    {
        common::missing_prerequisite("gdb", "apt-get install gdb");
        return;
    }
    let (broker, accepted) = black_hole();
    let dir = scratch("tls-exit");
    let yaml = heartbeat(&broker.to_string())
        .replace("librdkafka: {", "librdkafka: { security.protocol: SSL,");
    let s = Slaprobe::start(&dir, "tls-exit", &yaml);
    assert!(
        accepted_within(&accepted, Duration::from_secs(10)),
        "slaprobe connects to the broker (a TLS handshake that hangs)"
    );
    let pid = s.child.id().to_string();
    let gdb = std::process::Command::new("gdb")
        .args(["-batch", "-nx", "-p", &pid])
        .args(["-ex", "handle SIGTERM nostop noprint pass"])
        .args(["-ex", "break OPENSSL_cleanup"])
        .args(["-ex", "continue"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start gdb");
    // gdb stops the process while it attaches and reads the symbols, then
    // sets the breakpoint and lets it run: seen stopped by its tracer,
    // then traced and running again.
    let status = format!("/proc/{pid}/status");
    let field = |k: &str| {
        std::fs::read_to_string(&status)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let stopped = || field("State:").starts_with('t');
    assert!(
        poll_until(Duration::from_secs(60), stopped),
        "gdb attaches (stops the process to trace it)"
    );
    assert!(
        poll_until(Duration::from_secs(60), || field("TracerPid:") != "0"
            && !stopped()),
        "gdb set its breakpoint and let the process run"
    );
    let (took, status) = exit_after(s, &["TERM"]);
    let seen = gdb.wait_with_output().expect("gdb's output");
    let seen = String::from_utf8_lossy(&seen.stdout);
    println!("SIGTERM with TLS handshakes hung: exited in {took:?} ({status})");
    assert!(
        !seen.contains("Breakpoint 1,"),
        "OPENSSL_cleanup ran at exit:\n{seen}"
    );
    assert!(seen.contains("exited"), "gdb saw the exit:\n{seen}");
}
