//! Helpers shared by the integration tests: metric scraping, polling with
//! deadlines (never fixed sleeps where a condition can be awaited), HTTP,
//! scratch directories, and the prerequisites' policy. The test tiers'
//! fixtures are in the submodules: [`broker`] (the three broker tiers),
//! [`process`] (`slaprobe` as a process), [`inproc`] (slaprobe as a
//! library), [`servers`] (a real Prometheus and Alertmanager), [`browser`]
//! (headless Chromium).
// Each test binary uses some of these.
#![allow(dead_code, unused_imports)]

pub mod broker;
pub mod browser;
pub mod inproc;
pub mod process;
pub mod servers;

pub use broker::{create_topics, mock_cluster, Topic};
pub use inproc::{heartbeat_config, Running};
pub use process::{Python, Slaprobe};
pub use servers::{am_alerts, Alertmanager, Prometheus};

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Sum of every sample of `name` in a text exposition whose labels include
/// all of `labels`. Panics when no sample matches: a renamed metric or label
/// must fail the test, not read as 0.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_if_present(text, name, labels)
        .unwrap_or_else(|| panic!("no series {name} with labels {labels:?} in the exposition"))
}

/// [`metric`] for series that only appear with their first event (labels
/// from cluster metadata, e.g. per partition): `None` until then. Only for
/// polling until a value is positive, where a renamed series still fails.
pub fn metric_if_present(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples(text, name)
        .into_iter()
        .filter(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// A test tier's prerequisite (a broker, a binary) is missing. Where the
/// suite is run as a whole (`scripts/test.sh`, which installs and starts
/// everything and sets `SLAPROBE_TEST_STRICT=1`; or CI, `CI=true`) that is
/// a failure: a missing piece is a broken set-up, not a reason to pass.
/// Elsewhere (a single `cargo test` while developing) the test prints a
/// visible SKIP line and the caller returns.
pub fn missing_prerequisite(what: &str, how_to_get_it: &str) {
    let set = |v: &str| std::env::var(v).is_ok_and(|v| v == "true" || v == "1");
    if set("SLAPROBE_TEST_STRICT") || set("CI") {
        panic!("prerequisite missing: {what} ({how_to_get_it})");
    }
    eprintln!("SKIP: {what} is missing ({how_to_get_it}); this test did not run");
}

/// Every sample of `name`: (labels, value).
pub fn samples(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
            let Some(end) = r.find('}') else { continue };
            (&r[..end], r[end + 1..].trim())
        } else if rest.starts_with(' ') {
            ("", rest.trim())
        } else {
            continue;
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once("=\"") {
                map.insert(
                    k.trim_matches(',').to_string(),
                    v.trim_end_matches('"').to_string(),
                );
            }
        }
        if let Ok(v) = value.parse::<f64>() {
            out.push((map, v));
        }
    }
    out
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes (blocking,
/// for tests that run processes rather than the library).
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub async fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A minimal HTTP/1.0 GET: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Histogram `name`'s cumulative counts by bucket bound (`+Inf` as
/// infinity), in order, summed over the series whose labels include all of
/// `labels` (`sum by (le)`: a heartbeat's brokers are one histogram each).
pub fn buckets(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = Vec::new();
    for (l, n) in samples(text, &format!("{name}_bucket")) {
        if !labels
            .iter()
            .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        {
            continue;
        }
        let Some(bound) = l.get("le").and_then(|b| b.parse::<f64>().ok()) else {
            continue;
        };
        match v.iter_mut().find(|(b, _)| *b == bound) {
            Some((_, sum)) => *sum += n,
            None => v.push((bound, n)),
        }
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// Approximate median from the delta of two histogram snapshots: the upper
/// bound of the bucket holding the middle observation.
pub fn median_from_buckets(
    before: &str,
    after: &str,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let le = |text: &str| buckets(text, name, labels);
    let (b, a) = (le(before), le(after));
    let deltas: Vec<(f64, f64)> = a
        .iter()
        .map(|(bound, v)| {
            (
                *bound,
                v - b.iter().find(|x| x.0 == *bound).map_or(0.0, |x| x.1),
            )
        })
        .collect();
    let total = deltas.last()?.1;
    if total <= 0.0 {
        return None;
    }
    deltas
        .iter()
        .find(|(_, c)| *c >= total / 2.0)
        .map(|(bound, _)| *bound)
}

/// A free loopback port (bound and released; the window for a race is tiny).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "slaprobe-it-{}-{name}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Reads one HTTP/1.1 request from `reader`: its head (request line and
/// headers) and its body (by `Content-Length`); `None` at end of stream.
pub fn read_request(reader: &mut impl std::io::BufRead) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, …); 0 if absent.
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
