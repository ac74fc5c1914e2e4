//! `alerts:`: the scrape job, severities and runbook links of every alert
//! slaprobe pushes and every rule it writes.

use std::time::Duration;

/// `alerts:`: what the alerts slaprobe pushes and the rules it writes say
/// about where they come from and how bad they are.
#[derive(Debug, Clone, PartialEq)]
pub struct Alerts {
    /// The Prometheus job this instance is scraped under: `SlaprobeDown`
    /// watches its `up`, and every rule selects its series (so the rule
    /// files of several instances, one job each, load side by side).
    pub job: String,
    /// The `severity` label of alerts that page.
    pub page: String,
    /// The `severity` label of alerts that open a ticket.
    pub ticket: String,
    /// Where the runbooks are: each alert's `runbook_url` is this with
    /// `#<alert name in lower case>` appended. `None`: this slaprobe's own
    /// `/runbooks` (under `server.external_url` when set).
    pub runbook_url: Option<String>,
    /// `SlaprobeBrokerUnreachable` fires when a broker's connection check
    /// has failed for this long.
    pub broker_unreachable_for: Duration,
    /// `SlaprobeTLSCertificateExpiring` fires when a broker's certificate
    /// expires within this.
    pub certificate_expiry_warning: Duration,
}

/// The default `alerts.broker_unreachable_for`.
pub const DEFAULT_BROKER_UNREACHABLE_FOR: Duration = Duration::from_secs(300);

/// The default `alerts.certificate_expiry_warning`: 14 days.
pub const DEFAULT_CERTIFICATE_EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

/// The default `alerts.job`.
pub const DEFAULT_JOB: &str = "slaprobe";

/// The path slaprobe serves its runbooks at.
pub const RUNBOOKS_PATH: &str = "/runbooks";

impl Default for Alerts {
    fn default() -> Alerts {
        Alerts {
            job: DEFAULT_JOB.to_string(),
            page: "page".to_string(),
            ticket: "ticket".to_string(),
            runbook_url: None,
            broker_unreachable_for: DEFAULT_BROKER_UNREACHABLE_FOR,
            certificate_expiry_warning: DEFAULT_CERTIFICATE_EXPIRY_WARNING,
        }
    }
}

impl Alerts {
    /// The `runbook_url` of alert `name`, for a slaprobe people reach at
    /// `external_url` (`server.external_url`).
    pub fn runbook(&self, external_url: Option<&str>, name: &str) -> String {
        let base = match &self.runbook_url {
            Some(u) => u.clone(),
            None => match external_url {
                Some(u) => format!("{}{RUNBOOKS_PATH}", crate::util::format::strip_userinfo(u)),
                None => RUNBOOKS_PATH.to_string(),
            },
        };
        format!("{base}#{}", name.to_ascii_lowercase())
    }
}
