//! The human-readable plan printed by `slaprobe check`, and the burn-rate
//! alert tiers it shows.
//!
//! The plan is what an operator reads to confirm that the configuration
//! means what they think: which clusters, which probes and outputs, which
//! SLOs, and at what burn rates each will page. It is stable (sorted where
//! the model is unordered) so it can be diffed in review, and it never shows
//! a secret: secret-looking librdkafka options, values read from `_file`,
//! and URL user info are redacted.
//!
//! The tiers themselves are defined in `slo`, shared with the evaluator
//! and the generated Prometheus rules.

use std::fmt::Write as _;

use crate::config::*;
use crate::slo::burn_tiers;
use crate::util::format::{self, duration as format_duration, redact_url, REDACTED};

/// The plan printed by `slaprobe check`.
pub fn plan(config: &Config) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; `let _` keeps that explicit.
    let _ = write_plan(&mut out, config);
    out
}

fn write_plan(out: &mut String, c: &Config) -> std::fmt::Result {
    writeln!(out, "sources:")?;
    for s in &c.sources {
        writeln!(out, "  {}", s.display())?;
    }
    write!(out, "server: listen {}", c.server.listen)?;
    match &c.server.external_url {
        Some(u) => writeln!(out, ", external URL {}", redact_url(u))?,
        None => writeln!(out)?,
    }
    match &c.state_dir {
        Some(d) => writeln!(
            out,
            "state_dir: {} (SLO windows and alert state survive restarts; saved every 10s and at shutdown)",
            d.display()
        )?,
        None => writeln!(
            out,
            "state_dir: none (a restart empties the SLO windows and loses in-flight canaries)"
        )?,
    }
    match &c.alertmanager {
        Some(a) => {
            let urls: Vec<String> = a.urls.iter().map(|u| redact_url(u)).collect();
            let mut extras = Vec::new();
            if a.bearer_token.is_some() {
                extras.push("bearer token".to_string());
            }
            if a.ca_pem.is_some() {
                extras.push("ca_file".to_string());
            }
            if a.insecure {
                extras.push("insecure".to_string());
            }
            let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !labels.is_empty() {
                extras.push(format!("labels {}", labels.join(",")));
            }
            let extras = if extras.is_empty() {
                String::new()
            } else {
                format!(" ({})", extras.join("; "))
            };
            writeln!(out, "alertmanager: {}{extras}", urls.join(", "))?
        }
        None => writeln!(
            out,
            "alertmanager: none (alert state is exported as metrics only)"
        )?,
    }
    let runbooks = c
        .alerts
        .runbook(c.server.external_url.as_deref(), "<alert>");
    writeln!(
        out,
        "alerts: scraped as job {}; severity page={}, ticket={}; runbooks {}",
        c.alerts.job,
        c.alerts.page,
        c.alerts.ticket,
        runbooks.trim_end_matches("#<alert>")
    )?;

    writeln!(out, "clusters: {}", c.clusters.len())?;
    for cluster in c.clusters.values() {
        writeln!(out, "  {}", cluster.name)?;
        writeln!(out, "    bootstrap: {}", cluster.bootstrap)?;
        if !cluster.librdkafka.is_empty() {
            writeln!(out, "    librdkafka:")?;
            for (k, v) in &cluster.librdkafka {
                let v = if cluster.is_secret(k) { REDACTED } else { v };
                writeln!(out, "      {k}: {v}")?;
            }
        }
        match c
            .connection_checks
            .iter()
            .find(|k| k.cluster == cluster.name)
        {
            None => writeln!(out, "    connection checks: off")?,
            Some(k) => {
                writeln!(
                    out,
                    "    connection checks: every broker every {} (timeout {}), alerts: SlaprobeBrokerUnreachable (page) after {}, SlaprobeTLSCertificateExpiring {} ahead",
                    format_duration(k.interval),
                    format_duration(k.timeout),
                    format_duration(c.alerts.broker_unreachable_for),
                    format_duration(c.alerts.certificate_expiry_warning),
                )?;
                for l in &k.listeners {
                    let o = |key: &str| l.librdkafka.get(key).map(String::as_str);
                    let protocol = o("security.protocol").unwrap_or("plaintext");
                    let mechanism = o("sasl.mechanisms")
                        .or(o("sasl.mechanism"))
                        .map(|m| format!(" {m}"))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "      listener {}: {} ({protocol}{mechanism})",
                        l.name, l.bootstrap
                    )?;
                }
            }
        }
    }

    if c.probes.is_empty() && c.lag.is_empty() {
        writeln!(out, "probes: none (nothing will be probed)")?;
        return Ok(());
    }
    writeln!(out, "probes: {}", c.probes.len())?;
    for p in &c.probes {
        write_probe(out, p)?;
    }
    if !c.lag.is_empty() {
        writeln!(out, "consumer groups: {} watch(es)", c.lag.len())?;
        for w in &c.lag {
            write_lag(out, w)?;
        }
    }
    if !c.actions.is_empty() {
        writeln!(out, "actions: {}", c.actions.len())?;
        for a in &c.actions {
            write_action(out, a, c.state_dir.is_some())?;
        }
    }
    Ok(())
}

/// What an action runs on, what it runs, and how often.
fn write_action(out: &mut String, a: &Action, kept: bool) -> std::fmt::Result {
    writeln!(out, "  {}", a.name)?;
    writeln!(out, "    on: {}", a.on.describe())?;
    match &a.run {
        Run::Command { timeout, .. } => writeln!(
            out,
            "    run: {} (no shell; timeout {}; the incident in SLAPROBE_ACTION, SLAPROBE_KAFKA_CLUSTER, SLAPROBE_GROUP, SLAPROBE_STATUS, SLAPROBE_INCIDENT_STARTED, SLAPROBE_ATTEMPT)",
            a.run.describe(),
            format_duration(*timeout)
        )?,
        Run::Webhook(w) => {
            let headers: Vec<String> = w
                .shown_headers()
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let headers = if headers.is_empty() {
                String::new()
            } else {
                format!("headers {}; ", headers.join(", "))
            };
            writeln!(
                out,
                "    run: {} ({headers}timeout {}; the incident as a JSON body)",
                a.run.describe(),
                format_duration(w.timeout)
            )?
        }
    }
    let once = match a.once_per {
        OncePer::Incident => "once per incident",
        OncePer::Cooldown => "every cooldown while it holds",
    };
    let kept = if kept {
        "kept in state_dir"
    } else {
        "not kept: without state_dir a restart forgets it"
    };
    writeln!(
        out,
        "    {once}, never twice within {} per group or SLO ({kept}); escalates {} after a run that did not end the condition (its alerts then page with remediation=\"failed\")",
        format_duration(a.cooldown),
        format_duration(a.escalate_after)
    )?;
    let alerts = match &a.on {
        Trigger::ConsumerGroup(_) => "its groups' STOP/STALL alerts",
        Trigger::Slo(t) if t.pages_only => "the SLOs' page burn-rate alerts",
        Trigger::Slo(_) => "the SLOs' burn-rate alerts",
    };
    writeln!(
        out,
        "    meanwhile {alerts} {}",
        if a.hold {
            "are held (they do not fire)"
        } else {
            "fire with remediation=\"attempted\""
        }
    )
}

fn write_lag(out: &mut String, w: &LagWatch) -> std::fmt::Result {
    let of = if w.pipeline { "pipeline" } else { "lag" };
    writeln!(out, "  {} ({of}) on cluster {}", w.probe, w.cluster)?;
    match &w.groups {
        GroupSelector::Named(n) => writeln!(out, "    groups: {}", n.join(", "))?,
        GroupSelector::Pattern(p) => writeln!(
            out,
            "    groups: every group matching `{}` (found at each read)",
            p.source
        )?,
    }
    if !w.topics.is_empty() {
        writeln!(out, "    topics: {}", w.topics.join(", "))?;
    }
    writeln!(
        out,
        "    read every {}, judged over the last {} reads (OK, WARN, REWIND, STALL, STOP); at most {} partition series",
        format_duration(w.interval),
        w.window,
        w.max_partitions
    )?;
    writeln!(
        out,
        "    alerts: SlaprobeConsumerGroupStopped (page) after {0} STOP, SlaprobeConsumerGroupStalled after {0} STALL; SlaprobeConsumerGroupLagHigh above {1}",
        format_duration(w.stalled_for),
        format_duration(w.max_lag)
    )
}

fn write_probe(out: &mut String, p: &Probe) -> std::fmt::Result {
    match &p.poison_of {
        Some(of) => writeln!(
            out,
            "  {} ({}: the poison canaries of {of}, which the pipeline must reject)",
            p.name,
            p.probe_type()
        )?,
        None => writeln!(out, "  {} ({})", p.name, p.probe_type())?,
    }
    match &p.kind {
        ProbeKind::Heartbeat(h) => {
            writeln!(out, "    cluster: {}", h.cluster)?;
            writeln!(out, "    topic: {}", h.topic)?;
        }
        ProbeKind::Pipeline(pl) => write_pipeline(out, pl, p.poison_of.is_some())?,
    }
    writeln!(
        out,
        "    interval: {}, deadline: {}, payload_bytes: {}",
        format::duration(p.interval),
        format::duration(p.deadline),
        p.payload_bytes
    )?;
    if let ProbeKind::Heartbeat(h) = &p.kind {
        let tm = &h.topic_management;
        if tm.create {
            let rf = match tm.replication_factor {
                Some(rf) => rf.to_string(),
                None => "min(3, brokers)".to_string(),
            };
            writeln!(
                out,
                "    topic_management: create ({} partition(s) per broker, replication factor {rf})",
                tm.partitions_per_broker
            )?;
        } else {
            writeln!(
                out,
                "    topic_management: observe only (the topic must exist)"
            )?;
        }
    }
    write_slos(out, p)
}

/// A pipeline's input (templates, headers with secrets redacted) and
/// outputs.
fn write_pipeline(out: &mut String, pl: &Pipeline, poison: bool) -> std::fmt::Result {
    let i = &pl.input;
    writeln!(out, "    input: cluster {}, topic {}", i.cluster, i.topic)?;
    match &i.key {
        Some(k) => writeln!(out, "      key: {k}")?,
        None => writeln!(out, "      key: the canary id")?,
    }
    writeln!(out, "      payload: {}", i.payload)?;
    for (k, v) in &i.headers {
        let v = if i.is_secret_header(k) { REDACTED } else { v };
        writeln!(out, "      header {k}: {v}")?;
    }
    writeln!(out, "    outputs:")?;
    for o in &pl.outputs {
        let m = match &o.match_rule {
            MatchRule::Json(ptr) => format!("json {ptr}"),
            MatchRule::Header(h) => format!("header {h}"),
            MatchRule::Key => "key".to_string(),
        };
        let expect = match o.expect {
            Expect::ExactlyOnce => "exactly_once",
            Expect::AtLeastOnce => "at_least_once",
            Expect::None if poison => "none (a poison canary here is a leak)",
            Expect::None => "none (the pipeline must drop canaries)",
        };
        writeln!(
            out,
            "      {}: cluster {}, topic {}, match {m}, expect {expect}",
            o.name, o.cluster, o.topic
        )?;
    }
    Ok(())
}

/// A probe's SLOs and the burn rates at which each tier alerts.
fn write_slos(out: &mut String, p: &Probe) -> std::fmt::Result {
    if p.slos.is_empty() {
        writeln!(out, "    slos: none (metrics only, no alerts)")?;
    } else {
        writeln!(out, "    slos:")?;
    }
    for slo in &p.slos {
        write!(
            out,
            "      {}: objective {}, period {}",
            slo.name(&p.name),
            format::percent(slo.objective),
            format::duration(slo.period)
        )?;
        if let Some(t) = slo.threshold {
            write!(out, ", threshold {}", format::duration(t))?;
        }
        writeln!(
            out,
            ", alerts need >= {} events per window",
            slo.min_events.max(1)
        )?;
        for t in burn_tiers(slo.period) {
            writeln!(
                out,
                "        {:<6} burn rate >= {} over {} and {}",
                t.severity.as_str(),
                format::number(t.factor, 2),
                t.long_label(),
                t.short_label()
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::SPEC_EXAMPLE;

    #[test]
    fn empty_config_says_nothing_is_probed() {
        let c = load_str("empty.yaml", "# nothing yet\n", &|_| None).expect("valid");
        assert!(plan(&c).contains("probes: none (nothing will be probed)"));
    }

    #[test]
    fn lag_probes_are_planned_with_their_alerts() {
        let yaml = "clusters:\n  c1: { bootstrap: 'k:9092' }\nprobes:\n  - { name: g, type: lag, cluster: c1, group_pattern: 'orders-.*', stalled_for: 10m }\n";
        let c = load_str("test.yaml", yaml, &|_| None).expect("valid");
        let text = plan(&c);
        for line in [
            "probes: 0\n",
            "consumer groups: 1 watch(es)\n",
            "  g (lag) on cluster c1\n",
            "    groups: every group matching `orders-.*` (found at each read)\n",
            "    read every 10s, judged over the last 10 reads (OK, WARN, REWIND, STALL, STOP); at most 10000 partition series\n",
            "    alerts: SlaprobeConsumerGroupStopped (page) after 10m STOP, SlaprobeConsumerGroupStalled after 10m STALL; SlaprobeConsumerGroupLagHigh above 5m\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn actions_are_planned_with_what_they_run_and_secrets_redacted() {
        let dir = std::env::temp_dir().join(format!("slaprobe-plan-act-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let token = dir.join("token");
        std::fs::write(&token, "Bearer s3cret\n").expect("write");
        let yaml = format!(
            "clusters:\n  c1: {{ bootstrap: 'k:9092' }}\nprobes:\n  - {{ name: g, type: lag, cluster: c1, groups: [a, b] }}\nactions:
  - {{ name: restart, on: {{ consumer_group: {{ groups: [a], status: [STALL, STOP], for: 1m }} }}, run: {{ command: [restart-job, a] }}, hold: true }}
  - {{ name: hook, on: {{ consumer_group: {{ probe: g, cluster: c1, status: [WARN] }} }}, run: {{ webhook: {{ url: 'https://u:pw@bot.example/h', headers: {{ X-Token_file: {} }} }} }}, once_per: cooldown }}
",
            token.display()
        );
        let c = load_str("test.yaml", &yaml, &|_| None).expect("valid");
        let text = plan(&c);
        for line in [
            "actions: 2\n",
            "  restart\n    on: group(s) a STALL or STOP for 1m\n",
            "    run: restart-job a (no shell; timeout 30s; the incident in SLAPROBE_ACTION,",
            "    once per incident, never twice within 10m per group or SLO (not kept: without state_dir a restart forgets it); escalates 10m after",
            "    meanwhile its groups' STOP/STALL alerts are held (they do not fire)\n",
            "  hook\n    on: every group probe g watches on cluster c1 WARN\n",
            "    run: webhook POST https://<redacted>@bot.example/h (headers X-Token: <redacted>; timeout 10s; the incident as a JSON body)\n",
            "    every cooldown while it holds, never twice within 10m",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
        assert!(!text.contains("s3cret") && !text.contains("pw@"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_slo_action_says_which_alerts_it_marks() {
        let yaml = "clusters: { c1: { bootstrap: 'k:9092' } }
probes:
  - { name: hb, type: heartbeat, cluster: c1, topic: t, slos: [ { sli: delivery, objective: 99% } ] }
actions:
  - { name: failover, on: { slo: { probe: hb, for: 2m } }, run: { webhook: { url: 'http://ops.example/failover', method: put } } }
";
        let text = plan(&load_str("test.yaml", yaml, &|_| None).expect("valid"));
        for line in [
            "  failover\n    on: SLO(s) hb:heartbeat:delivery burning at a page tier for 2m\n",
            "    run: webhook PUT http://ops.example/failover (timeout 10s; the incident as a JSON body)\n",
            "    meanwhile the SLOs' page burn-rate alerts fire with remediation=\"attempted\"\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn secrets_read_from_files_are_redacted() {
        let dir = std::env::temp_dir().join(format!("slaprobe-plan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let secret = dir.join("token");
        std::fs::write(&secret, "s3cret\n").expect("write");
        let yaml = format!(
            "clusters:\n  c1:\n    bootstrap: k:9092\n    librdkafka:\n      sasl.oauthbearer.config_file: {}\n",
            secret.display()
        );
        let c = load_str("test.yaml", &yaml, &|_| None).expect("valid");
        let text = plan(&c);
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains("      sasl.oauthbearer.config: <redacted>\n"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn plan_of_the_readme_example_redacts_and_shows_tiers() {
        let env = |k: &str| (k == "KAFKA_PASSWORD").then(|| "hunter2".to_string());
        let yaml = SPEC_EXAMPLE.replace(
            "http://alertmanager:9093",
            "https://am-user:am-pass@alertmanager:9093",
        );
        let c = load_str("spec.yaml", &yaml, &env).expect("valid");
        let text = plan(&c);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("am-pass"), "{text}");
        assert!(text.contains("      sasl.password: <redacted>\n"), "{text}");
        assert!(text.contains("      sasl.username: slaprobe\n"), "{text}");
        assert!(text.contains("alertmanager: https://<redacted>@alertmanager:9093\n"));
        assert!(
            text.contains(
                "      primary-heartbeat:heartbeat:availability: objective 99.95%, period 30d, alerts need >= 10 events per window\n\
             \x20       page   burn rate >= 14.4 over 1h and 5m\n\
             \x20       page   burn rate >= 6 over 6h and 30m\n\
             \x20       ticket burn rate >= 3 over 1d and 2h\n\
             \x20       ticket burn rate >= 1 over 3d and 6h\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "      orders-enrichment:enriched:latency: objective 99%, period 30d, threshold 5s, alerts need >= 10 events per window\n"
        ));
        assert!(text.contains(
            "      enriched: cluster primary, topic orders.enriched, match json /order_id, expect exactly_once\n"
        ));
        assert!(text.contains("    interval: 1s, deadline: 10s, payload_bytes: 256\n"));
        assert!(text.contains(
            "    topic_management: create (1 partition(s) per broker, replication factor 3)\n"
        ));
        // Stable: same config, same text.
        assert_eq!(text, plan(&c));
    }
}
