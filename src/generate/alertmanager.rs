//! The Alertmanager routing example `slaprobe rules` writes: pages and
//! tickets to their own receivers, ticket tiers inhibited while the same
//! SLO pages.

/// The example file, with its header.
pub fn render(sources: &str) -> String {
    let mut out = String::new();
    let _ = super::text::write_header(&mut out, sources);
    out.push_str(ALERTMANAGER_BODY);
    out
}

/// The routing example. It does not depend on the SLOs (routes match on
/// labels every slaprobe alert carries), only the header does.
const ALERTMANAGER_BODY: &str = r#"# An example: merge the `route` subtree and the inhibit rule into your own
# Alertmanager configuration and point the receivers at your pager and
# ticket system.
route:
  receiver: 'default'
  routes:
    - matchers: ['alertname=~"Slaprobe.*"']
      # One notification per alert and SLO: tiers of one SLO arrive together.
      group_by: ['alertname', 'slo']
      group_wait: 30s
      group_interval: 5m
      repeat_interval: 4h
      routes:
        - matchers: ['severity="page"']
          receiver: 'slaprobe-page'
        - matchers: ['severity="ticket"']
          receiver: 'slaprobe-ticket'
          repeat_interval: 24h

inhibit_rules:
  # While an SLO pages, its ticket tiers (which fire at lower burn rates and
  # so nearly always fire with it) add nothing. Scoped to the burn-rate alert
  # so that alerts without an `slo` label do not inhibit each other.
  - source_matchers: ['alertname="SlaprobeSLOBurnRate"', 'severity="page"']
    target_matchers: ['alertname="SlaprobeSLOBurnRate"', 'severity="ticket"']
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
"#;
