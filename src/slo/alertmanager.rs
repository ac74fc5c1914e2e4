//! Pushes the evaluator's alerts to Alertmanager's v2 API.
//!
//! Firing alerts are posted when the set changes and re-sent every
//! [`RESEND`] while they fire, each time with an `endsAt` a few resends
//! ahead, so Alertmanager resolves them by itself if slaprobe dies. An alert
//! that stops firing is posted once more with `endsAt` = when it stopped.
//! Alertmanager being down is logged and retried with backoff and jitter; it
//! never blocks probing or evaluation (the evaluator only updates a watch
//! channel).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::evaluator::Alert;
use crate::util::format::{redact_url as redact, rfc3339_at as rfc3339};
use crate::util::Backoff;

/// How often firing alerts are re-sent.
pub const RESEND: Duration = Duration::from_secs(60);
/// `endsAt` of a firing alert: this many resends ahead.
const ENDS_AFTER: u32 = 4;
/// Per-request timeout: a hung Alertmanager must not stall the loop.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Resolved alerts not yet delivered are kept at most this many (oldest
/// dropped first), so an Alertmanager down for days cannot grow memory.
const MAX_PENDING_RESOLVED: usize = 1000;

#[derive(Debug, Serialize)]
struct PostableAlert<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<&'a str>,
}

fn unix(t: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t)
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("invalid Alertmanager URL {0}")]
    Url(String),
}

pub struct Pusher {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    /// Where a person finds more (this slaprobe's status API), if known.
    generator_url: Option<String>,
}

impl Pusher {
    /// `url` is Alertmanager's base URL (`http://alertmanager:9093`); user
    /// info in it becomes basic auth.
    pub fn new(url: &str, generator_url: Option<String>) -> Result<Pusher, PushError> {
        let mut base = reqwest::Url::parse(url).map_err(|_| PushError::Url(redact(url)))?;
        // A base path without a trailing slash is a directory all the same.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let endpoint = base
            .join("api/v2/alerts")
            .map_err(|_| PushError::Url(redact(url)))?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(PushError::Client)?;
        Ok(Pusher {
            client,
            endpoint,
            generator_url,
        })
    }

    async fn post(&self, alerts: &[PostableAlert<'_>]) -> Result<(), String> {
        let mut url = self.endpoint.clone();
        let user = url.username().to_string();
        let password = url.password().map(str::to_string);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut req = self.client.post(url).json(alerts);
        if !user.is_empty() {
            req = req.basic_auth(user, password);
        }
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            let body = resp.text().await.unwrap_or_default();
            Err(format!("HTTP {status}: {}", body.trim()))
        }
    }

    /// Sends until `cancel`: on every change of the firing set, and every
    /// `RESEND` while anything fires; failed sends are retried with backoff.
    /// `was_firing`: alerts an earlier run had pushed as firing (restored
    /// state); those no longer firing are sent as resolved.
    pub async fn run(
        self,
        mut alerts: watch::Receiver<Vec<Alert>>,
        was_firing: Vec<Alert>,
        cancel: CancellationToken,
    ) {
        let mut firing: Vec<Alert> = was_firing;
        // Nothing is sent before the first evaluation: until then the
        // channel says nothing fires, which would resolve restored alerts.
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = alerts.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        // Resolved but not yet delivered: (alert, when it resolved).
        let mut resolved: Vec<(Alert, SystemTime)> = Vec::new();
        let mut backoff = Backoff::new(Duration::from_secs(1), RESEND);
        let mut failing = false;
        loop {
            let now = SystemTime::now();
            let current = alerts.borrow_and_update().clone();
            for old in &firing {
                if !current.iter().any(|a| a.labels == old.labels) {
                    resolved.push((old.clone(), now));
                }
            }
            if resolved.len() > MAX_PENDING_RESOLVED {
                let excess = resolved.len() - MAX_PENDING_RESOLVED;
                resolved.drain(..excess);
            }
            firing = current;
            // Firing again before its resolution was delivered: not resolved.
            resolved.retain(|(a, _)| !firing.iter().any(|f| f.labels == a.labels));
            let ends = now + RESEND * ENDS_AFTER;
            let body: Vec<PostableAlert<'_>> = firing
                .iter()
                .map(|a| self.postable(a, rfc3339(ends)))
                .chain(
                    resolved
                        .iter()
                        .map(|(a, at)| self.postable(a, rfc3339(*at))),
                )
                .collect();
            let wait = if body.is_empty() {
                RESEND
            } else {
                match self.post(&body).await {
                    Ok(()) => {
                        if failing {
                            info!(url = %redact(self.endpoint.as_str()), "Alertmanager reachable again");
                        }
                        failing = false;
                        backoff.reset();
                        resolved.clear();
                        RESEND
                    }
                    Err(e) => {
                        failing = true;
                        let wait = backoff.next_wait();
                        warn!(url = %redact(self.endpoint.as_str()), error = %e, retry_in = ?wait,
                            alerts = body.len(), "pushing alerts to Alertmanager failed");
                        wait
                    }
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = alerts.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // While failing, keep the backoff pace.
                    if failing {
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn postable<'a>(&'a self, a: &'a Alert, ends_at: String) -> PostableAlert<'a> {
        PostableAlert {
            labels: &a.labels,
            annotations: &a.annotations,
            // Never after now: Alertmanager rejects an alert that starts
            // after it ends (the evaluator's clock is the wall clock in
            // production; tests run it faster).
            starts_at: rfc3339(unix(a.starts_at).min(SystemTime::now())),
            ends_at,
            generator_url: self.generator_url.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_and_redaction() {
        let p = Pusher::new("http://user:secret@am:9093/", None).expect("pusher");
        assert_eq!(p.endpoint.path(), "/api/v2/alerts");
        assert!(!redact(p.endpoint.as_str()).contains("secret"));
        for base in ["http://am:9093/prefix/", "http://am:9093/prefix"] {
            let p = Pusher::new(base, None).expect("pusher");
            assert_eq!(p.endpoint.as_str(), "http://am:9093/prefix/api/v2/alerts");
        }
        assert!(Pusher::new("not a url", None).is_err());
    }
}
