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
/// At most this much of an error response's body is read and logged.
const ERROR_BODY_LIMIT: usize = 512;
/// Resolved alerts not yet delivered are kept at most this many (oldest
/// dropped first), so an Alertmanager down for days cannot grow memory.
const MAX_PENDING_RESOLVED: usize = 1000;

#[derive(Debug, Serialize)]
struct PostableAlert<'a> {
    labels: BTreeMap<&'a str, &'a str>,
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
    #[error("alertmanager.ca_file")]
    Ca(#[source] reqwest::Error),
}

/// Pushes to one Alertmanager replica (one per URL: every replica gets
/// every alert, each with its own retry pace).
pub struct Pusher {
    client: reqwest::Client,
    /// Without user info; that is in `basic_auth`.
    endpoint: reqwest::Url,
    basic_auth: Option<(String, Option<String>)>,
    bearer_token: Option<String>,
    /// Added to every alert that lacks them (see
    /// [`crate::config::Alertmanager::labels_for`]).
    pub labels: BTreeMap<String, String>,
    /// Where a person finds more (this slaprobe's status API), if known.
    generator_url: Option<String>,
}

impl Pusher {
    /// One pusher per URL of `am`; user info in a URL becomes basic auth.
    pub fn for_each_url(
        am: &crate::config::Alertmanager,
        generator_url: Option<String>,
    ) -> Result<Vec<Pusher>, PushError> {
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // Credentials never follow a redirect; Alertmanager sends none.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &am.ca_pem {
            for cert in
                reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(PushError::Ca)?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(PushError::Client)?;
        am.urls
            .iter()
            .map(|url| {
                let (endpoint, basic_auth) = endpoint(url)?;
                Ok(Pusher {
                    client: client.clone(),
                    endpoint,
                    basic_auth,
                    bearer_token: am.bearer_token.clone(),
                    labels: am.labels.clone(),
                    generator_url: generator_url.clone(),
                })
            })
            .collect()
    }

    async fn post(&self, alerts: &[PostableAlert<'_>]) -> Result<(), String> {
        let mut req = self.client.post(self.endpoint.clone()).json(alerts);
        if let Some((user, password)) = &self.basic_auth {
            req = req.basic_auth(user, password.as_ref());
        }
        if let Some(token) = &self.bearer_token {
            req = req.bearer_auth(token);
        }
        let mut resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {REQUEST_TIMEOUT:?}")
            } else {
                crate::util::format::error_chain(&e.without_url())
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        // Only the start of the body: an error page may be megabytes.
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let more = body.len() > ERROR_BODY_LIMIT;
        body.truncate(ERROR_BODY_LIMIT);
        let text = String::from_utf8_lossy(&body);
        Err(format!(
            "HTTP {status}: {}{}",
            text.trim(),
            if more { " [truncated]" } else { "" }
        ))
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
        let mut labels: BTreeMap<&str, &str> = self
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // The alert's own labels win, as over Prometheus' external labels.
        labels.extend(a.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        PostableAlert {
            labels,
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

/// Alertmanager's v2 alerts endpoint under base `url`, and the basic-auth
/// credentials `url` carries.
#[allow(clippy::type_complexity)]
fn endpoint(url: &str) -> Result<(reqwest::Url, Option<(String, Option<String>)>), PushError> {
    let mut base = reqwest::Url::parse(url).map_err(|_| PushError::Url(redact(url)))?;
    let basic_auth = (!base.username().is_empty()).then(|| {
        (
            base.username().to_string(),
            base.password().map(str::to_string),
        )
    });
    let _ = base.set_username("");
    let _ = base.set_password(None);
    // A base path without a trailing slash is a directory all the same.
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    let endpoint = base
        .join("api/v2/alerts")
        .map_err(|_| PushError::Url(redact(url)))?;
    Ok((endpoint, basic_auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_and_credentials() {
        let (e, auth) = endpoint("http://user:secret@am:9093/").expect("url");
        assert_eq!(e.as_str(), "http://am:9093/api/v2/alerts");
        assert_eq!(auth, Some(("user".into(), Some("secret".into()))));
        for base in ["http://am:9093/prefix/", "http://am:9093/prefix"] {
            let (e, auth) = endpoint(base).expect("url");
            assert_eq!(e.as_str(), "http://am:9093/prefix/api/v2/alerts");
            assert_eq!(auth, None);
        }
        let err = endpoint("not a url").map(|_| ()).unwrap_err().to_string();
        assert_eq!(err, "invalid Alertmanager URL not a url");
    }
}
