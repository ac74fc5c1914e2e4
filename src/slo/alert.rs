//! The burn-rate alert's labels and annotations, built in one place for the
//! alerts the evaluator pushes and for the alerting rules `slaprobe rules`
//! writes. When both reach one Alertmanager they must be one alert: the same
//! labels (so one fingerprint) and the same annotations (so notifications
//! do not flip between two texts). Live figures (current burn rates) are
//! therefore not annotations; the status API shows them.

use std::time::Duration;

use super::{error_threshold, BurnTier, Severity};
use crate::config::{Config, Slo};
use crate::util::format;

/// The alert name of burn-rate alerts.
pub const BURN_RATE_ALERT: &str = "SlaprobeSLOBurnRate";

/// A burn-rate alert of one SLO tier, without `alertname` (the rules file
/// names it in `alert:`, a pushed alert in its labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BurnRateAlert {
    /// In the order the rules file writes them.
    pub labels: Vec<(&'static str, String)>,
    pub annotations: Vec<(&'static str, String)>,
}

/// How one configuration labels and links every alert (pushed, and in the
/// rules): `alerts.severity`'s values, the status API and the runbooks.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertStyle {
    /// Where a person reads more: the status API.
    status_link: String,
    alerts: crate::config::Alerts,
    external_url: Option<String>,
}

impl AlertStyle {
    pub fn new(config: &Config) -> AlertStyle {
        AlertStyle {
            status_link: config.server.status_link(),
            alerts: config.alerts.clone(),
            // Links never carry the user info `external_url` may have.
            external_url: config
                .server
                .external_url
                .as_deref()
                .map(|u| crate::util::format::strip_userinfo(u).to_string()),
        }
    }

    /// The `severity` label value of `severity`.
    pub fn severity(&self, severity: Severity) -> &str {
        match severity {
            Severity::Page => &self.alerts.page,
            Severity::Ticket => &self.alerts.ticket,
        }
    }

    /// An alert's annotations: `summary`, `description`, `status_api` and
    /// `runbook_url` (the alert's section in the runbooks).
    pub fn annotations(
        &self,
        alert: &str,
        summary: String,
        description: String,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("summary", summary),
            ("description", description),
            ("status_api", self.status_link.clone()),
            (
                "runbook_url",
                self.alerts.runbook(self.external_url.as_deref(), alert),
            ),
        ]
    }
}

/// The alert of `tier` of `slo` on `probe`, which measures Kafka cluster
/// `cluster`.
pub fn burn_rate_alert(
    probe: &str,
    cluster: &str,
    slo: &Slo,
    tier: &BurnTier,
    style: &AlertStyle,
) -> BurnRateAlert {
    let name = slo.name(probe);
    let (long, short) = (tier.long_label(), tier.short_label());
    let factor = format::number(tier.factor, 6);
    let objective = format::percent(slo.objective);
    let budget = format::percent(1.0 - slo.objective);
    let period = format::duration(slo.period);
    let threshold = error_threshold(tier.factor, slo.objective);
    let min = slo.min_events.max(1);
    // How long the whole budget lasts at this burn rate: the urgency in
    // words an on-call reads at 4 a.m.
    let exhausted = format::duration(Duration::from_secs(
        ((slo.period.as_secs_f64() / tier.factor / 60.0).round() as u64) * 60,
    ));
    let labels = vec![
        ("severity", style.severity(tier.severity).to_string()),
        ("slo", name.clone()),
        ("probe", probe.to_string()),
        ("kafka_cluster", cluster.to_string()),
        ("output", slo.output.clone()),
        ("sli", slo.sli.to_string()),
        ("long_window", long.to_string()),
        ("short_window", short.to_string()),
    ];
    let summary = format!(
        "SLO {name} is burning its error budget at >= {factor}x over the last {long} and {short}"
    );
    let description = format!(
        "Objective {objective} over {period}. The error ratio is >= {threshold} \
         ({factor}x the {budget} error budget) in both the {long} and the {short} window, \
         each with at least {min} events. At this rate the {period} budget is spent in {exhausted}."
    );
    BurnRateAlert {
        labels,
        annotations: style.annotations(BURN_RATE_ALERT, summary, description),
    }
}

/// `a` while the remediation of its SLO stands at `remediation`
/// (`attempted` or `failed`, see `actions:`): labelled so, said in its
/// description, and a failed one pages. The evaluator's pushed alerts and
/// the generated rules are marked by this one function.
pub fn remediated(mut a: BurnRateAlert, remediation: &str, style: &AlertStyle) -> BurnRateAlert {
    if remediation == "failed" {
        for (k, v) in &mut a.labels {
            if *k == "severity" {
                *v = style.severity(Severity::Page).to_string();
            }
        }
    }
    a.labels.push(("remediation", remediation.to_string()));
    let more = if remediation == "failed" {
        " slaprobe's remediation action did not end it: the run failed, or the burn outlived the \
         action's escalate_after. A person is needed."
    } else {
        " slaprobe's remediation action ran; if the burn has not stopped within the action's \
         escalate_after, the alert fires with remediation=\"failed\" and pages."
    };
    for (k, v) in &mut a.annotations {
        if *k == "description" {
            v.push_str(more);
        }
    }
    a
}
