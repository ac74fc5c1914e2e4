//! The remediation variants of the generated consumer-group alerts.

use crate::config::load_str;

fn rules(hold: bool) -> String {
    let yaml = format!(
        "clusters: {{ c: {{ bootstrap: 'k:9092' }} }}
probes:
  - {{ name: groups, type: lag, cluster: c, groups: [g1, g2] }}
  - {{ name: others, type: lag, cluster: c, group_pattern: 'x.*' }}
actions:
  - {{ name: restart.g1, on: {{ consumer_group: {{ groups: [g1] }} }}, run: {{ command: [x] }}, hold: {hold} }}
"
    );
    let config = load_str("t.yaml", &yaml, &|_| None).expect("config");
    crate::generate::rules::render(&config, "t.yaml")
}

/// The `expr:`s of alert `name`, in order.
fn exprs(rules: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = rules.lines();
    while let Some(l) = lines.next() {
        if l.trim() == format!("- alert: {name}") {
            out.push(lines.next().unwrap_or_default().trim().to_string());
        }
    }
    out
}

#[test]
fn a_covered_stop_alert_is_split_by_remediation() {
    let r = rules(false);
    let stopped = exprs(&r, "SlaprobeConsumerGroupStopped");
    // The covered watch: as before without an incident, attempted,
    // failed; the other watch as before.
    assert_eq!(stopped.len(), 4, "{stopped:#?}");
    assert!(stopped[0].ends_with(
        r#"unless on (kafka_cluster, group) slaprobe_action_incident{job="slaprobe"}'"#
    ));
    assert!(
        stopped[1].contains(r#"remediation="attempted",action=~"restart\\.g1""#),
        "{}",
        stopped[1]
    );
    assert!(stopped[2].contains(r#"remediation="failed",action=~"restart\\.g1""#));
    assert!(!stopped[3].contains("slaprobe_action_incident"));
    // STALL is not covered: one rule per watch, unchanged.
    let stalled = exprs(&r, "SlaprobeConsumerGroupStalled");
    assert_eq!(stalled.len(), 2);
    assert!(stalled
        .iter()
        .all(|e| !e.contains("slaprobe_action_incident")));
}

#[test]
fn a_held_alert_does_not_fire_while_attempted() {
    let r = rules(true);
    let stopped = exprs(&r, "SlaprobeConsumerGroupStopped");
    assert_eq!(stopped.len(), 3, "{stopped:#?}");
    assert!(stopped[0].contains("unless on (kafka_cluster, group)"));
    assert!(stopped[1].contains(r#"remediation="failed""#));
    assert!(!r.contains(r#"remediation="attempted""#));
}
