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
use std::time::Duration;

use super::model::*;
use crate::slo::burn_tiers;

/// Compact duration: `250ms`, `30s`, `1h30m`, `30d`. (humantime's own
/// formatter writes `30days`, and `d` is what people type in the config.)
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_string();
    }
    const UNITS: [(&str, u128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let mut ns = d.as_nanos();
    let mut out = String::new();
    for (unit, size) in UNITS {
        let q = ns / size;
        if q > 0 {
            let _ = write!(out, "{q}{unit}");
            ns %= size;
        }
    }
    out
}

/// `user:pass@` in a URL's authority becomes `<redacted>@`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => format!(
            "{}<redacted>{}",
            &url[..authority_start],
            &url[authority_start + at..]
        ),
        None => url.to_string(),
    }
}

/// A number without float noise or trailing zeros: `14.4`, `6`, `0.23`.
fn format_number(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `0.9995` -> `99.95%`.
pub fn format_objective(ratio: f64) -> String {
    format!("{}%", format_number(ratio * 100.0, 6))
}

const REDACTED: &str = "<redacted>";

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
            "state_dir: {} (not used by this version: restarts still lose in-flight canaries and SLO windows)",
            d.display()
        )?,
        None => writeln!(
            out,
            "state_dir: none (restarts lose in-flight canaries and SLO windows)"
        )?,
    }
    match &c.alertmanager {
        Some(a) => writeln!(out, "alertmanager: {}", redact_url(&a.url))?,
        None => writeln!(
            out,
            "alertmanager: none (alert state is exported as metrics only)"
        )?,
    }

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
    }

    if c.probes.is_empty() {
        writeln!(out, "probes: none (nothing will be probed)")?;
        return Ok(());
    }
    writeln!(out, "probes: {}", c.probes.len())?;
    for p in &c.probes {
        write_probe(out, p)?;
    }
    Ok(())
}

fn write_probe(out: &mut String, p: &Probe) -> std::fmt::Result {
    writeln!(out, "  {} ({})", p.name, p.probe_type())?;
    match &p.kind {
        ProbeKind::Heartbeat(h) => {
            writeln!(out, "    cluster: {}", h.cluster)?;
            writeln!(out, "    topic: {}", h.topic)?;
        }
        ProbeKind::Pipeline(pl) => {
            let i = &pl.input;
            writeln!(out, "    input: cluster {}, topic {}", i.cluster, i.topic)?;
            match &i.key {
                Some(k) => writeln!(out, "      key: {k}")?,
                None => writeln!(out, "      key: the canary id")?,
            }
            writeln!(out, "      payload: {}", i.payload)?;
            for (k, v) in &i.headers {
                let v = if is_secret_key(k) { REDACTED } else { v };
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
                    Expect::None => "none (the pipeline must drop canaries)",
                };
                writeln!(
                    out,
                    "      {}: cluster {}, topic {}, match {m}, expect {expect}",
                    o.name, o.cluster, o.topic
                )?;
            }
        }
    }
    writeln!(
        out,
        "    interval: {}, deadline: {}, payload_bytes: {}",
        format_duration(p.interval),
        format_duration(p.deadline),
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
            format_objective(slo.objective),
            format_duration(slo.period)
        )?;
        if let Some(t) = slo.threshold {
            write!(out, ", threshold {}", format_duration(t))?;
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
                format_number(t.factor, 2),
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

    #[test]
    fn durations_are_compact() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(30 * 86_400)), "30d");
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn url_userinfo_is_redacted() {
        assert_eq!(
            redact_url("https://bob:s3cr@t@am:9093/path@x"),
            "https://<redacted>@am:9093/path@x"
        );
        assert_eq!(redact_url("http://am:9093"), "http://am:9093");
    }

    #[test]
    fn objective_formatting() {
        assert_eq!(format_objective(0.9995), "99.95%");
        assert_eq!(format_objective(0.99), "99%");
    }
}
