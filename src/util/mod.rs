//! Small helpers every layer shares and that know nothing of Kafka or
//! SLOs: how numbers, durations, times and URLs are shown to people
//! ([`format`]), retry pacing ([`backoff`]), throttled warnings
//! ([`throttle`]), which of our threads died ([`threads`]) and
//! cancellable waits. One concept, one place: the plan,
//! the status API, the generated rules and the Alertmanager pusher all
//! print through these.

pub mod backoff;
pub mod format;
pub mod threads;
pub mod throttle;

pub use backoff::Backoff;
pub use throttle::Throttle;

/// This machine's (or pod's) host name: the kernel's, else `$HOSTNAME`,
/// else `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Sleeps `d` unless `cancel` is cancelled first; true when cancelled.
pub async fn sleep_or_cancel(
    d: std::time::Duration,
    cancel: &tokio_util::sync::CancellationToken,
) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
