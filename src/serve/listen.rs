//! The accept loop: HTTP/1 with a header-read (and idle keep-alive)
//! timeout, a write deadline, a lifetime per connection and a cap on open
//! connections, so that clients that connect and never finish a request,
//! or never read the response, cannot take the file descriptors the Kafka
//! clients need, hold rendered bodies in memory, or keep `/metrics` from
//! answering.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// A response that makes no progress being written this long (the
    /// client stopped reading) closes its connection.
    pub write_timeout: Duration,
    /// A connection is closed this long after it opened, whatever it does
    /// (after its current request, or at once if that does not finish
    /// within `shutdown_grace`); clients reconnect.
    pub lifetime: Duration,
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
            write_timeout: Duration::from_secs(10),
            lifetime: Duration::from_secs(300),
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
            let stream = WriteDeadline::new(stream, limits.write_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.shutdown_grace, connection).await;
                }
                _ = tokio::time::sleep(limits.lifetime) => {
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

/// A stream whose writes fail with `TimedOut` once one has made no
/// progress for `timeout` (the peer stopped reading and its window is
/// full), so that the connection, and the response it holds, are dropped.
struct WriteDeadline<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write is pending.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        WriteDeadline {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// `poll`'s result, or `TimedOut` if it has been pending too long.
    fn deadline<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client read nothing of the response for the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.deadline(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.deadline(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.deadline(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
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

    /// A body larger than what loopback socket buffers absorb.
    const BIG: usize = 32 << 20;

    fn limits(max_connections: usize) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(300),
            max_connections,
            shutdown_grace: Duration::from_millis(200),
            write_timeout: Duration::from_millis(500),
            lifetime: Duration::from_secs(60),
        }
    }

    async fn server(limits: Limits) -> (std::net::SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let app = Router::new()
            .route("/", get(|| async { "ok" }))
            .route("/big", get(|| async { vec![b'x'; BIG] }));
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

    /// A client that asks for a large body and stops reading: the
    /// connection (and the body it holds) is dropped at the write timeout,
    /// long before the body is through.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_is_closed_at_the_write_timeout() {
        let (addr, _cancel) = server(limits(8)).await;
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            std::thread::sleep(Duration::from_secs(2));
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut read = 0;
            let closed = loop {
                match s.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(n) => read += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                    Err(_) => break true,
                }
            };
            assert!(closed, "closed");
            assert!(
                read < BIG,
                "closed before the body was through ({read} bytes)"
            );
            assert!(get_ok(addr), "serves others meanwhile");
        })
        .await
        .unwrap();
    }

    /// A busy keep-alive connection is closed at the end of its lifetime.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_is_closed_at_the_end_of_its_lifetime() {
        let mut l = limits(8);
        l.lifetime = Duration::from_millis(800);
        let (addr, _cancel) = server(l).await;
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let t = Instant::now();
            let mut served = 0;
            while t.elapsed() < Duration::from_secs(5) {
                let mut buf = [0u8; 4096];
                let answered = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_ok()
                    && s.read(&mut buf).is_ok_and(|n| n > 0);
                if !answered {
                    break;
                }
                served += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(served >= 3, "kept alive meanwhile ({served})");
            assert!(
                t.elapsed() < Duration::from_secs(3),
                "closed at its lifetime"
            );
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
