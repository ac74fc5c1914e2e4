//! The Alertmanager routing example `slaprobe rules` writes: pages and
//! tickets to their own receivers, ticket tiers inhibited while the same
//! SLO pages.

use std::fmt::Write as _;

use super::text::yaml_str;
use crate::config::Alerts;

/// The example file, with its header.
pub fn render(alerts: &Alerts, sources: &str) -> String {
    let mut out = String::new();
    let _ = super::text::write_header(&mut out, sources);
    let _ = write_body(&mut out, alerts);
    out
}

/// The routing example. It does not depend on the SLOs (routes match on
/// labels every slaprobe alert carries), only on `alerts.severity`.
fn write_body(out: &mut String, alerts: &Alerts) -> std::fmt::Result {
    let severity = |v: &str| yaml_str(&format!("severity={}", super::text::promql_str(v)));
    let (page, ticket) = (severity(&alerts.page), severity(&alerts.ticket));
    write!(
        out,
        r#"# An example: merge the `route` subtree and the inhibit rule into your own
# Alertmanager configuration and point the receivers at your pager and
# ticket system. Severities are `alerts.severity` ({page_value} and
# {ticket_value}).
route:
  receiver: 'default'
  routes:
    - matchers: ['alertname=~"Slaprobe.*"']
      # One notification per incident: the labels that tell slaprobe's
      # alerts apart (a burn-rate alert's SLO, a consumer group's group, a
      # probe, a Kafka cluster, a prober's job and instance); tiers of one
      # SLO arrive together. A label an alert lacks groups as empty.
      group_by: ['alertname', 'kafka_cluster', 'probe', 'slo', 'group', 'job', 'instance']
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 4h
      routes:
        - matchers: [{page}]
          receiver: 'slaprobe-page'
        - matchers: [{ticket}]
          receiver: 'slaprobe-ticket'
          repeat_interval: 24h

inhibit_rules:
  # While an SLO pages, its ticket tiers (which fire at lower burn rates and
  # so nearly always fire with it) add nothing. Scoped to the burn-rate alert
  # so that alerts without an `slo` label do not inhibit each other.
  - source_matchers: ['alertname="SlaprobeSLOBurnRate"', {page}]
    target_matchers: ['alertname="SlaprobeSLOBurnRate"', {ticket}]
    equal: ['slo']

receivers:
  - name: 'default'
  - name: 'slaprobe-page'
    webhook_configs:
      - url: 'http://pager.example/slaprobe'
        send_resolved: true
  - name: 'slaprobe-ticket'
    webhook_configs:
      - url: 'http://tickets.example/slaprobe'
        send_resolved: true
"#,
        page_value = alerts.page,
        ticket_value = alerts.ticket,
    )
}
