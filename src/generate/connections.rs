//! The connection checks' alerts: a broker no check can reach on a
//! listener, and a certificate about to expire.

use std::fmt::Write as _;

use super::rule::{group_name, write_rule, Rule};
use super::text::promql_str;
use crate::config::Config;
use crate::slo::alert::AlertStyle;
use crate::slo::Severity;
use crate::util::format::duration as format_duration;

pub const BROKER_UNREACHABLE_ALERT: &str = "SlaprobeBrokerUnreachable";
pub const CERTIFICATE_EXPIRING_ALERT: &str = "SlaprobeTLSCertificateExpiring";

/// `SlaprobeTLSCertificateExpiring`'s `for:`: one scrape of a certificate
/// just past the line is not enough.
const EXPIRING_FOR: &str = "10m";

/// A broker whose every check failed (on every slaprobe instance of the
/// job: one that still reaches it says the path of the other is at fault).
pub fn unreachable_expr(job: &str) -> String {
    format!(
        "max by (kafka_cluster, broker, listener) (slaprobe_broker_connection_up{{job={}}}) == 0",
        promql_str(job)
    )
}

/// A certificate that expires within `warning` (seconds), or has expired.
pub fn expiring_expr(job: &str, warning: f64) -> String {
    format!(
        "min by (kafka_cluster, broker, listener) (slaprobe_tls_certificate_expiry_timestamp_seconds{{job={}}}) - time() < {warning}",
        promql_str(job)
    )
}

pub(super) fn write_connection_rules(
    out: &mut String,
    config: &Config,
    style: &AlertStyle,
) -> std::fmt::Result {
    if config.connection_checks.is_empty() {
        return Ok(());
    }
    let job = &config.alerts.job;
    let a = &config.alerts;
    let unreachable_for = format_duration(a.broker_unreachable_for);
    let warning = format_duration(a.certificate_expiry_warning);
    writeln!(out, "  - name: {}", group_name("slaprobe-brokers", job))?;
    writeln!(out, "    rules:")?;
    write_rule(
        out,
        style,
        Rule {
            name: BROKER_UNREACHABLE_ALERT,
            expr: unreachable_expr(job),
            for_: Some(unreachable_for.clone()),
            labels: vec![("severity", style.severity(Severity::Page).to_string())],
            summary: "broker {{ $labels.broker }} of {{ $labels.kafka_cluster }} cannot be reached on listener {{ $labels.listener }}".to_string(),
            description: format!(
                "For {unreachable_for}, every connection check of broker {{{{ $labels.broker }}}} on \
                 listener {{{{ $labels.listener }}}} failed (broker `bootstrap`: no bootstrap address \
                 answers). slaprobe_broker_connection_errors_total says at which stage and why: refused \
                 (the broker is down), timeout, tls_expired or tls_untrusted (its certificate), \
                 sasl_auth_failed (the credentials)."
            ),
        },
    )?;
    write_rule(
        out,
        style,
        Rule {
            name: CERTIFICATE_EXPIRING_ALERT,
            expr: expiring_expr(job, a.certificate_expiry_warning.as_secs_f64()),
            for_: Some(EXPIRING_FOR.to_string()),
            labels: vec![("severity", style.severity(Severity::Ticket).to_string())],
            summary: "the certificate of broker {{ $labels.broker }} of {{ $labels.kafka_cluster }} on listener {{ $labels.listener }} expires in {{ $value | humanizeDuration }}".to_string(),
            description: format!(
                "The certificate broker {{{{ $labels.broker }}}} presents on listener \
                 {{{{ $labels.listener }}}} expires within {warning} (a negative time: it has expired, \
                 and clients that verify it cannot connect). Renew it and roll it out to the broker."
            ),
        },
    )
}
