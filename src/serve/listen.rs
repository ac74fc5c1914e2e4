//! The accept loop: HTTP/1 with a header-read (and idle keep-alive)
//! timeout and a cap on open connections, so that clients that connect and
//! never finish a request cannot take the file descriptors the Kafka
//! clients need or keep `/metrics` from answering.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use tracing::{info, warn};

/// File descriptors kept for everything that is not an HTTP connection:
/// Kafka sockets (a few per broker per client), librdkafka's wake-up pipes,
/// the state files, Alertmanager pushes.
const FD_RESERVE: u64 = 512;
/// At most this many HTTP connections at once, whatever the fd limit.
const MAX_CONNECTIONS: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection that has not sent a whole request head this long after
    /// it opened, or after its previous response (an idle keep-alive
    /// connection), is closed.
    pub header_read_timeout: Duration,
    /// Connections beyond this many are closed as soon as accepted.
    pub max_connections: usize,
    /// How long open connections get to finish their request at shutdown.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// The limits for a process allowed `open_files` descriptors.
    pub fn for_open_files(open_files: u64) -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: open_files
                .saturating_sub(FD_RESERVE)
                .clamp(16, MAX_CONNECTIONS) as usize,
            shutdown_grace: Duration::from_millis(500),
        }
    }
}

/// Raises the soft open-files limit to the hard limit (a container or
/// systemd often starts processes at 1024) and returns the limit in force.
pub fn raise_open_files_limit() -> u64 {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(now) => {
            if now > before {
                info!(from = before, to = now, "raised the open-files limit");
            }
            now
        }
        Err(e) => {
            warn!(limit = before, "cannot raise the open-files limit: {e}");
            before.max(16)
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled; then stops
/// accepting and gives open connections `limits.shutdown_grace` to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    limits: Limits,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let mut refused = Refused::default();
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of descriptors or memory: wait for some to be freed
                    // instead of spinning.
                    refused.note(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused.note(&format!(
                "{} HTTP connections open, the most allowed; closing new ones",
                limits.max_connections
            ));
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                app.clone().call(request)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.shutdown_grace, connection).await;
                }
            }
            drop(permit);
        });
    }
    connections.close();
    let _ = tokio::time::timeout(limits.shutdown_grace, connections.wait()).await;
    Ok(())
}

/// Errors that concern one connection only; the listener is fine.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// Warns about refused connections at most every 10 s, with a count.
#[derive(Default)]
struct Refused(crate::util::Throttle);

impl Refused {
    fn note(&mut self, what: &str) {
        if let Some(refused) = self.0.note(1, Instant::now()) {
            warn!(refused, "{what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::io::{Read, Write};

    fn limits(max_connections: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(300),
            max_connections,
            shutdown_grace: Duration::from_millis(200),
        }
    }

    async fn server(limits: Limits) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let app = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(serve(listener, app, cancel.clone(), limits));
        (addr, cancel)
    }

    /// Whether the server closed `s` (EOF or reset) within `within`.
    fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
        s.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
                Err(_) => return true,
            }
        }
    }

    fn get_ok(addr: std::net::SocketAddr) -> bool {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            return false;
        };
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 200") && out.ends_with("ok")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_that_sends_no_request_head_is_closed() {
        let (addr, _cancel) = server(limits(8)).await;
        tokio::task::spawn_blocking(move || {
            let mut silent = std::net::TcpStream::connect(addr).unwrap();
            let mut partial = std::net::TcpStream::connect(addr).unwrap();
            partial.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            assert!(closed_within(&mut silent, Duration::from_secs(3)));
            assert!(closed_within(&mut partial, Duration::from_secs(3)));
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_keep_alive_connection_is_closed() {
        let (addr, _cancel) = server(limits(8)).await;
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
            // Kept alive for the next request, but not forever.
            assert!(!closed_within(&mut s, Duration::from_millis(100)));
            assert!(closed_within(&mut s, Duration::from_secs(3)));
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_over_the_cap_are_closed_and_the_cap_frees_again() {
        let (addr, _cancel) = server(limits(4)).await;
        tokio::task::spawn_blocking(move || {
            let mut idle: Vec<_> = (0..4)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect();
            // Let the server accept the four before the fifth arrives.
            std::thread::sleep(Duration::from_millis(100));
            let mut fifth = std::net::TcpStream::connect(addr).unwrap();
            assert!(closed_within(&mut fifth, Duration::from_millis(250)));
            // The idle ones time out; then requests are served again.
            for s in &mut idle {
                assert!(closed_within(s, Duration::from_secs(3)));
            }
            assert!(get_ok(addr));
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_closes_idle_connections_and_stops_accepting() {
        let (addr, cancel) = server(limits(8)).await;
        assert!(tokio::task::spawn_blocking(move || get_ok(addr))
            .await
            .unwrap());
        let mut idle = std::net::TcpStream::connect(addr).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.cancel();
        tokio::task::spawn_blocking(move || {
            assert!(closed_within(&mut idle, Duration::from_secs(1)));
            std::thread::sleep(Duration::from_millis(300));
            assert!(!get_ok(addr));
        })
        .await
        .unwrap();
    }

    #[test]
    fn the_cap_leaves_descriptors_for_kafka() {
        assert_eq!(Limits::for_open_files(1024).max_connections, 512);
        assert_eq!(Limits::for_open_files(20_000).max_connections, 4096);
        assert_eq!(Limits::for_open_files(100).max_connections, 16);
    }
}
