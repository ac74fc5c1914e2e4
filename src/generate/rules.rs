//! The Prometheus recording and alerting rules `slaprobe rules` writes.
//!
//! Teams that evaluate alerts in Prometheus rather than in slaprobe must get
//! the same alerts, so the rules are rendered from the very definitions the
//! in-process evaluator uses (`slo::WINDOWS`, `slo::burn_tiers`,
//! `slo::error_threshold`, `Slo::min_events`, and the burn-rate alert's
//! labels and annotations from `slo::alert`): the burn-rate expression is
//! "error ratio >= threshold and events >= min_events" in both the long and
//! the short window, with the threshold printed from the same `f64` the
//! evaluator compares against.

use std::fmt::Write as _;

use super::connections::{BROKER_UNREACHABLE_ALERT, CERTIFICATE_EXPIRING_ALERT};
use super::rule::{group_name, write_annotations, write_rule, Rule};
use super::text::{promql_str, write_header, yaml_str};
use crate::config::{Config, LagWatch, Slo};
use crate::slo::alert::{burn_rate_alert, AlertStyle, BURN_RATE_ALERT};
use crate::slo::attribution;
use crate::slo::{burn_tiers, error_threshold, BurnTier, Severity, WINDOWS};
use crate::util::format::duration as format_duration;

/// Every alert the rules can hold, in the order they are written (the
/// runbooks have a section for each: `tests/rules.rs`).
pub const ALERTS: [&str; 8] = [
    BURN_RATE_ALERT,
    STALLED_ALERT,
    STOPPED_ALERT,
    LAG_HIGH_ALERT,
    BROKER_UNREACHABLE_ALERT,
    CERTIFICATE_EXPIRING_ALERT,
    NO_CANARIES_ALERT,
    DOWN_ALERT,
];
const STALLED_ALERT: &str = "SlaprobeConsumerGroupStalled";
const STOPPED_ALERT: &str = "SlaprobeConsumerGroupStopped";
const LAG_HIGH_ALERT: &str = "SlaprobeConsumerGroupLagHigh";
const NO_CANARIES_ALERT: &str = "SlaprobeNoCanaries";
const DOWN_ALERT: &str = "SlaprobeDown";

/// Window of `SlaprobeNoCanaries`' increase and its `for:`: long enough to
/// ride out a producer reconnect, short enough that a silent prober (whose
/// SLIs then have no events and so can never alert) is noticed the same
/// hour.
const NO_CANARIES_WINDOW: &str = "10m";

/// `SlaprobeDown`'s `for:`: one failed scrape is not an outage.
const DOWN_FOR: &str = "5m";

/// The selector of one SLO's series: `{job="J",probe="P",output="O",sli="S"}`
/// (the job scopes them to this instance: several instances' rule files
/// load side by side, probes of the same name included).
pub fn selector(job: &str, probe: &str, slo: &Slo) -> String {
    format!(
        "{{job={},probe={},output={},sli={}}}",
        promql_str(job),
        promql_str(probe),
        promql_str(&slo.output),
        promql_str(&slo.sli.to_string())
    )
}

/// The alert expression of one SLO tier. Mirrors `SloWindows::burning` for
/// both windows: the error ratio reaches the threshold and the window holds
/// at least `min_events` events (at least 1, as in the evaluator).
pub fn burn_expr(job: &str, probe: &str, slo: &Slo, tier: &BurnTier) -> String {
    let sel = selector(job, probe, slo);
    let threshold = error_threshold(tier.factor, slo.objective);
    let min = slo.min_events.max(1);
    let (long, short) = (tier.long_label(), tier.short_label());
    format!(
        "slaprobe:sli_error:ratio_rate{long}{sel} >= {threshold} \
         and slaprobe:sli_error:ratio_rate{short}{sel} >= {threshold} \
         and slaprobe:sli_events:increase{long}{sel} >= {min} \
         and slaprobe:sli_events:increase{short}{sel} >= {min}"
    )
}

/// `SlaprobeNoCanaries`' expression for one probe: the counter is missing
/// (never produced, or the prober is gone) or flat.
pub fn no_canaries_expr(job: &str, probe: &str) -> String {
    let sel = format!("{{job={},probe={}}}", promql_str(job), promql_str(probe));
    format!(
        "absent(slaprobe_canaries_sent_total{sel}) or sum without (kafka_cluster, topic) \
         (increase(slaprobe_canaries_sent_total{sel}[{NO_CANARIES_WINDOW}])) == 0"
    )
}

/// `SlaprobeDown`'s expression: the target is down, or not scraped at all
/// (a prober removed from service discovery would otherwise be silent).
pub fn down_expr(job: &str) -> String {
    let sel = format!("{{job={}}}", promql_str(job));
    format!("up{sel} == 0 or absent(up{sel})")
}

/// `SlaprobeConsumerGroupLagHigh`'s `for:`: a burst the group works off
/// within a couple of minutes is not worth a ticket.
pub const LAG_HIGH_FOR: &str = "2m";

/// The selector of one watch's groups:
/// `{job="J",kafka_cluster="C",group=~"a|b"<more>}` (a pattern as written:
/// PromQL's regular expressions are anchored, as `group_pattern` is).
fn lag_selector(job: &str, w: &LagWatch, more: &str) -> String {
    format!(
        "{{job={},kafka_cluster={},group=~{}{more}}}",
        promql_str(job),
        promql_str(&w.cluster),
        promql_str(&w.groups.promql_regex())
    )
}

/// The expression of a group whose status is `status` (`STALL`:
/// `SlaprobeConsumerGroupStalled`, `STOP`: `SlaprobeConsumerGroupStopped`)
/// for one watch.
pub fn lag_status_expr(job: &str, w: &LagWatch, status: &str) -> String {
    let sel = lag_selector(job, w, &format!(",status={}", promql_str(status)));
    format!("max by (kafka_cluster, group) (slaprobe_consumergroup_status{sel}) == 1")
}

/// `SlaprobeConsumerGroupLagHigh`'s expression for one watch: a group with
/// a partition whose lag in time is above `max_lag`.
pub fn lag_high_expr(job: &str, w: &LagWatch) -> String {
    format!(
        "max by (kafka_cluster, group) (slaprobe_consumergroup_lag_seconds{}) > {}",
        lag_selector(job, w, ""),
        w.max_lag.as_secs_f64()
    )
}

/// The rules as a Prometheus Operator `PrometheusRule` named `slaprobe`:
/// the very groups of [`render`], indented under `spec:`.
pub fn render_prometheus_rule(config: &Config, sources: &str) -> String {
    let rules = render(config, sources);
    let groups_at = rules.find("\ngroups:\n").map_or(0, |i| i + 1);
    let (header, groups) = rules.split_at(groups_at);
    let mut out = String::from(header);
    out.push_str(
        "apiVersion: monitoring.coreos.com/v1\n\
         kind: PrometheusRule\n\
         metadata:\n  name: slaprobe\n  labels:\n    app.kubernetes.io/name: slaprobe\n\
         spec:\n",
    );
    for line in groups.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// The rules file, with its header.
pub fn render(config: &Config, sources: &str) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; `let _` keeps that explicit.
    let _ = write_rules(&mut out, config, sources);
    out
}

fn write_rules(out: &mut String, config: &Config, sources: &str) -> std::fmt::Result {
    let job = &config.alerts.job;
    let style = AlertStyle::new(config);
    write_header(out, sources)?;
    writeln!(
        out,
        "# Scrape slaprobe under job=\"{job}\" (`alerts.job`): SlaprobeDown watches that\n\
         # job's `up`, and every rule reads only that job's series, so the rule files\n\
         # of several slaprobe instances (one job each) load side by side."
    )?;
    writeln!(out, "groups:")?;
    // One group for the recording rules and the burn-rate alerts: rules of a
    // group run in order at the same timestamp, so each alert reads ratios
    // recorded at that very evaluation, not one interval old.
    writeln!(out, "  - name: {}", group_name("slaprobe-slo", job))?;
    writeln!(out, "    rules:")?;
    let all = format!("slaprobe_sli_events_total{{job={}}}", promql_str(job));
    let bad = format!(
        "slaprobe_sli_events_total{{job={},outcome=\"bad\"}}",
        promql_str(job)
    );
    for (w, _) in WINDOWS {
        // `without (outcome, broker)`, not `by (probe, output, sli)`: each
        // prober instance (job, instance) keeps its own series, so a
        // region's outage is not diluted by the healthy probers of other
        // regions. A heartbeat's brokers make one SLI.
        let events = format!("sum without (outcome, broker) (increase({all}[{w}]))");
        let bad_events = format!("sum without (outcome, broker) (increase({bad}[{w}]))");
        writeln!(out, "      - record: slaprobe:sli_events:increase{w}")?;
        writeln!(out, "        expr: {}", yaml_str(&events))?;
        writeln!(out, "      - record: slaprobe:sli_error:ratio_rate{w}")?;
        writeln!(
            out,
            "        expr: {}",
            yaml_str(&format!("{bad_events} / {events}"))
        )?;
    }
    for probe in &config.probes {
        for slo in &probe.slos {
            for tier in burn_tiers(slo.period) {
                write_burn_alert(out, &style, job, probe, slo, &tier, &config.actions)?;
            }
        }
    }

    write_lag_rules(out, config, &style)?;
    super::connections::write_connection_rules(out, config, &style)?;
    write_health_rules(out, config, &style)
}

/// The consumer-group alerts, per watch (`type: lag` probes and pipeline
/// probes' `lag:`): STOP pages (the job is gone), STALL and high lag are
/// tickets.
fn write_lag_rules(out: &mut String, config: &Config, style: &AlertStyle) -> std::fmt::Result {
    if config.lag.is_empty() {
        return Ok(());
    }
    let job = &config.alerts.job;
    writeln!(
        out,
        "  - name: {}",
        group_name("slaprobe-consumer-groups", job)
    )?;
    writeln!(out, "    rules:")?;
    for w in &config.lag {
        let stalled_for = format_duration(w.stalled_for);
        let max_lag = format_duration(w.max_lag);
        let labels = |severity: Severity| {
            vec![
                ("severity", style.severity(severity).to_string()),
                ("probe", w.probe.clone()),
            ]
        };
        let rules = [
            Rule {
                name: STOPPED_ALERT,
                expr: lag_status_expr(job, w, "STOP"),
                for_: Some(stalled_for.clone()),
                labels: labels(Severity::Page),
                summary: "consumer group {{ $labels.group }} on {{ $labels.kafka_cluster }} is STOP: no members, records waiting".to_string(),
                description: format!(
                    "For {stalled_for}, {{{{ $labels.group }}}} has had no members while a partition \
                     has unconsumed records and its committed offset has not moved: the job is gone. \
                     The status page names the partitions."
                ),
            },
            Rule {
                name: STALLED_ALERT,
                expr: lag_status_expr(job, w, "STALL"),
                for_: Some(stalled_for.clone()),
                labels: labels(Severity::Ticket),
                summary: "consumer group {{ $labels.group }} on {{ $labels.kafka_cluster }} is STALL: members, no commits".to_string(),
                description: format!(
                    "For {stalled_for}, the committed offsets of a partition of {{{{ $labels.group }}}} \
                     have not moved while it has unconsumed records and members: the job runs but \
                     commits nothing. The status page names the partitions."
                ),
            },
            Rule {
                name: LAG_HIGH_ALERT,
                expr: lag_high_expr(job, w),
                for_: Some(LAG_HIGH_FOR.to_string()),
                labels: labels(Severity::Ticket),
                summary: format!(
                    "consumer group {{{{ $labels.group }}}} on {{{{ $labels.kafka_cluster }}}} lags more than {max_lag}"
                ),
                description: format!(
                    "For {LAG_HIGH_FOR}, the oldest record {{{{ $labels.group }}}} has not consumed \
                     on some partition was written more than {max_lag} ago (slaprobe_consumergroup_lag_seconds)."
                ),
            },
        ];
        for r in rules {
            let status = match r.name {
                STOPPED_ALERT => "STOP",
                STALLED_ALERT => "STALL",
                _ => "",
            };
            let covering = super::remediation::covering(&config.actions, w, status);
            for r in super::remediation::variants(r, &covering, job, style) {
                write_rule(out, style, r)?;
            }
        }
    }
    Ok(())
}

/// The group that watches the prober itself: no canaries, not scraped.
fn write_health_rules(out: &mut String, config: &Config, style: &AlertStyle) -> std::fmt::Result {
    let job = &config.alerts.job;
    writeln!(out, "  - name: {}", group_name("slaprobe-health", job))?;
    writeln!(out, "    rules:")?;
    for probe in &config.probes {
        let p = &probe.name;
        write_rule(
            out,
            style,
            Rule {
                name: NO_CANARIES_ALERT,
                expr: no_canaries_expr(job, p),
                for_: Some(NO_CANARIES_WINDOW.to_string()),
                // absent() carries only the matchers' labels; set these
                // explicitly so routing never depends on which branch of
                // the `or` fired.
                labels: vec![
                    ("severity", style.severity(Severity::Ticket).to_string()),
                    ("probe", p.clone()),
                    ("kafka_cluster", probe.input_cluster().to_string()),
                ],
                summary: format!("slaprobe produces no canaries for probe {p}"),
                description: format!(
                    "slaprobe_canaries_sent_total{{probe=\"{p}\"}} is absent or has not increased \
                     in {NO_CANARIES_WINDOW}: the prober is down, stuck, or cannot produce (e.g. its \
                     topic does not exist). Its SLIs get no events, so no burn-rate alert can fire."
                ),
            },
        )?;
    }
    write_rule(
        out,
        style,
        Rule {
            name: DOWN_ALERT,
            expr: down_expr(job),
            for_: Some(DOWN_FOR.to_string()),
            // A dead prober silences every SLO alert it owns: page.
            labels: vec![("severity", style.severity(Severity::Page).to_string())],
            summary: "slaprobe is down or not scraped".to_string(),
            description: format!(
                "Prometheus cannot scrape job=\"{job}\" (up == 0, or no such target) for \
                 {DOWN_FOR}: no canaries are measured and no SLO alert can fire."
            ),
        },
    )
}

fn write_burn_alert(
    out: &mut String,
    style: &AlertStyle,
    job: &str,
    probe: &crate::config::Probe,
    slo: &Slo,
    tier: &BurnTier,
    actions: &[crate::config::Action],
) -> std::fmt::Result {
    let mut a = burn_rate_alert(&probe.name, probe.slo_cluster(slo), slo, tier, style);
    if matches!(probe.kind, crate::config::ProbeKind::Heartbeat(_)) {
        let sel = selector(job, &probe.name, slo);
        let sel = sel.trim_start_matches('{').trim_end_matches('}');
        a.annotations.push((
            attribution::ANNOTATION,
            attribution::annotation_template(sel, tier.short_label()),
        ));
    }
    let expr = burn_expr(job, &probe.name, slo, tier);
    let name = slo.name(&probe.name);
    for (expr, a) in super::remediation::burn_variants(expr, a, &name, tier, actions, job, style) {
        writeln!(out, "      - alert: {BURN_RATE_ALERT}")?;
        writeln!(out, "        expr: {}", yaml_str(&expr))?;
        writeln!(out, "        labels:")?;
        for (k, v) in &a.labels {
            writeln!(out, "          {k}: {}", yaml_str(v))?;
        }
        write_annotations(out, &a.annotations)?;
    }
    Ok(())
}

/// An alert's annotations block.
#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::slo::evaluator::{Clock, Evaluator};
    use slaprobe_yaml::{Node, Value};

    /// A heartbeat probe with two SLOs, one with its own period and
    /// minimum events.
    const CONFIG: &str = r#"
clusters:
  c: { bootstrap: "127.0.0.1:9092" }
probes:
  - name: hb
    type: heartbeat
    cluster: c
    topic: t
    slos:
      - { sli: delivery, objective: 99.9% }
      - { sli: latency, threshold: 100ms, objective: 99%, period: 7d, min_events: 50 }
"#;

    /// The configuration the generator's tests render.
    pub(in crate::generate) fn config() -> Config {
        crate::config::load_str("test.yaml", CONFIG, &|_| None).expect("valid config")
    }

    #[test]
    fn burn_expression_of_the_fast_page_tier() {
        let c = config();
        let p = &c.probes[0];
        let slo = &p.slos[0];
        let tier = &burn_tiers(slo.period)[0];
        assert_eq!(
            burn_expr("slaprobe", &p.name, slo, tier),
            "slaprobe:sli_error:ratio_rate1h{job=\"slaprobe\",probe=\"hb\",output=\"heartbeat\",sli=\"delivery\"} >= 0.0144 \
             and slaprobe:sli_error:ratio_rate5m{job=\"slaprobe\",probe=\"hb\",output=\"heartbeat\",sli=\"delivery\"} >= 0.0144 \
             and slaprobe:sli_events:increase1h{job=\"slaprobe\",probe=\"hb\",output=\"heartbeat\",sli=\"delivery\"} >= 10 \
             and slaprobe:sli_events:increase5m{job=\"slaprobe\",probe=\"hb\",output=\"heartbeat\",sli=\"delivery\"} >= 10"
        );
    }

    #[test]
    fn thresholds_and_min_events_come_from_the_slo() {
        let c = config();
        let p = &c.probes[0];
        let slo = &p.slos[1];
        // 7d: 0.1 x 7/3 = 0.2333.. x 1% budget; printed as the evaluator's f64.
        let tier = &burn_tiers(slo.period)[3];
        let t = error_threshold(tier.factor, slo.objective);
        let e = burn_expr("slaprobe", &p.name, slo, tier);
        assert!(
            e.contains(&format!(
                "ratio_rate3d{{job=\"slaprobe\",probe=\"hb\",output=\"heartbeat\",sli=\"latency\"}} >= {t} "
            )),
            "{e}"
        );
        assert_eq!(t.to_string().parse::<f64>().ok(), Some(t), "round-trips");
        assert!(
            e.ends_with("increase6h{job=\"slaprobe\",probe=\"hb\",output=\"heartbeat\",sli=\"latency\"} >= 50"),
            "{e}"
        );
    }

    /// The (labels, annotations) of every burn-rate alert in a rules file,
    /// read back with the YAML parser, `alertname` among the labels.
    fn rule_alerts(rules: &str) -> Vec<(BTreeMap<String, String>, BTreeMap<String, String>)> {
        let root = slaprobe_yaml::parse(rules).expect("rules parse");
        let strings = |n: Option<&Node>| -> BTreeMap<String, String> {
            match n.map(|n| &n.value) {
                Some(Value::Map(entries)) => entries
                    .iter()
                    .filter_map(|e| match &e.value.value {
                        Value::Scalar(s) => Some((e.key.clone(), s.text.clone())),
                        _ => None,
                    })
                    .collect(),
                _ => BTreeMap::new(),
            }
        };
        let mut out = Vec::new();
        let groups = root.get("groups").expect("groups");
        for g in 0.. {
            let Some(group) = groups.index(g) else { break };
            let rules = group.get("rules").expect("rules");
            for r in 0.. {
                let Some(rule) = rules.index(r) else { break };
                let name = strings(Some(rule)).get("alert").cloned();
                if name.as_deref() != Some(BURN_RATE_ALERT) {
                    continue;
                }
                let mut labels = strings(rule.get("labels"));
                labels.insert("alertname".into(), BURN_RATE_ALERT.into());
                out.push((labels, strings(rule.get("annotations"))));
            }
        }
        out
    }

    #[test]
    fn pushed_burn_rate_alerts_equal_the_generated_rules() {
        struct Fixed;
        impl Clock for Fixed {
            fn now(&self) -> u64 {
                1_800_000_000
            }
        }
        let c = config();
        let metrics = Metrics::new(&[]);
        let mut ev = Evaluator::new(&c, &metrics, Arc::new(Fixed));
        let alerts = ev.alerts();
        // Half of all events bad: every tier of both SLOs burns.
        for slo in &c.probes[0].slos {
            metrics
                .sli_counter("hb", &slo.output, slo.sli, "good")
                .inc_by(500);
            metrics
                .sli_counter("hb", &slo.output, slo.sli, "bad")
                .inc_by(500);
        }
        ev.tick();
        let pushed = alerts.borrow().clone();
        assert_eq!(pushed.len(), 8, "4 tiers x 2 SLOs");
        let generated = rule_alerts(&render(&c, "test.yaml"));
        assert_eq!(generated.len(), 8);
        for a in &pushed {
            let rule = generated
                .iter()
                .find(|(labels, _)| *labels == a.labels)
                .unwrap_or_else(|| panic!("no rule with the labels {:?}", a.labels));
            // The broker annotation is a template in the rule, the
            // evaluator's value in the pushed alert (empty here: every bad
            // event's leader is unknown, never named).
            let (mut generated, mut pushed) = (rule.1.clone(), a.annotations.clone());
            let template = generated.remove(attribution::ANNOTATION);
            assert!(
                template.is_some_and(|t| t.contains("query")),
                "a heartbeat SLO's rule names the broker: {:?}",
                rule.1
            );
            assert_eq!(pushed.remove(attribution::ANNOTATION).as_deref(), Some(""));
            assert_eq!(generated, pushed, "annotations of {:?}", a.labels);
        }
    }
}
