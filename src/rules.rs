//! `slaprobe rules`: renders the configured SLOs as Prometheus recording and
//! alerting rules, an Alertmanager routing example and a Grafana dashboard.
//!
//! Teams that evaluate alerts in Prometheus rather than in slaprobe must get
//! the same alerts, so the rules are rendered from the very definitions the
//! in-process evaluator uses (`slo::WINDOWS`, `slo::burn_tiers`,
//! `slo::error_threshold`, `Slo::min_events`): the burn-rate expression is
//! "error ratio >= threshold and events >= min_events" in both the long and
//! the short window, with the threshold printed from the same `f64` the
//! evaluator compares against.
//!
//! Rendering is pure and deterministic (same config, same bytes), so the
//! files can be committed and `--check` can tell when they are stale. YAML is
//! written by hand: the documents are small and fixed in shape, and every
//! string is emitted single-quoted, which needs no escaping beyond doubling
//! `'`.

use std::fmt::Write as _;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{format_duration, Config, Probe, Slo};
use crate::slo::{burn_tiers, error_threshold, BurnTier, WINDOWS};

/// File name of the Prometheus rule file.
pub const RULES_FILE: &str = "slaprobe.rules.yml";
/// File name of the Alertmanager routing example.
pub const ALERTMANAGER_FILE: &str = "alertmanager.yml";
/// File name of the Grafana dashboard.
pub const DASHBOARD_FILE: &str = "grafana-dashboard.json";

/// The `job` label Prometheus must scrape slaprobe under: `SlaprobeDown`
/// can only notice a dead prober through its scrape target's `up` series,
/// and that needs a name known when the rules are written.
pub const SCRAPE_JOB: &str = "slaprobe";

/// Window of `SlaprobeNoCanaries`' increase and its `for:`: long enough to
/// ride out a producer reconnect, short enough that a silent prober (whose
/// SLIs then have no events and so can never alert) is noticed the same
/// hour.
const NO_CANARIES_WINDOW: &str = "10m";

/// `SlaprobeDown`'s `for:`: one failed scrape is not an outage.
const DOWN_FOR: &str = "5m";

/// One generated file: a name relative to the output directory, and its
/// complete content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub name: &'static str,
    pub content: String,
}

/// Renders every generated file for `config`, in a fixed order.
pub fn render(config: &Config) -> Vec<GeneratedFile> {
    let sources = sources(config);
    vec![
        GeneratedFile {
            name: RULES_FILE,
            content: rules_yaml(config, &sources),
        },
        GeneratedFile {
            name: ALERTMANAGER_FILE,
            content: alertmanager_yaml(&sources),
        },
        GeneratedFile {
            name: DASHBOARD_FILE,
            content: dashboard_json(config, &sources),
        },
    ]
}

/// Writes `files` into `dir`, creating it if needed.
pub fn write(dir: &Path, files: &[GeneratedFile]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for f in files {
        std::fs::write(dir.join(f.name), &f.content)?;
    }
    Ok(())
}

/// Names of the files in `files` whose copy in `dir` is missing, unreadable
/// or different: what `--check` reports.
pub fn stale(dir: &Path, files: &[GeneratedFile]) -> Vec<String> {
    files
        .iter()
        .filter(|f| match std::fs::read(dir.join(f.name)) {
            Ok(bytes) => bytes != f.content.as_bytes(),
            Err(_) => true,
        })
        .map(|f| f.name.to_string())
        .collect()
}

/// The selector of one SLO's series: `{probe="P",output="O",sli="S"}`.
fn selector(probe: &str, slo: &Slo) -> String {
    format!(
        "{{probe={},output={},sli={}}}",
        promql_str(probe),
        promql_str(&slo.output),
        promql_str(&slo.sli.to_string())
    )
}

/// The alert expression of one SLO tier. Mirrors `SloWindows::burning` for
/// both windows: the error ratio reaches the threshold and the window holds
/// at least `min_events` events (at least 1, as in the evaluator).
pub fn burn_expr(probe: &str, slo: &Slo, tier: &BurnTier) -> String {
    let sel = selector(probe, slo);
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
pub fn no_canaries_expr(probe: &str) -> String {
    let sel = format!("{{probe={}}}", promql_str(probe));
    format!(
        "absent(slaprobe_canaries_sent_total{sel}) or sum without (cluster, topic) \
         (increase(slaprobe_canaries_sent_total{sel}[{NO_CANARIES_WINDOW}])) == 0"
    )
}

/// `SlaprobeDown`'s expression: the target is down, or not scraped at all
/// (a prober removed from service discovery would otherwise be silent).
pub fn down_expr() -> String {
    let sel = format!("{{job={}}}", promql_str(SCRAPE_JOB));
    format!("up{sel} == 0 or absent(up{sel})")
}

fn rules_yaml(config: &Config, sources: &str) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; `let _` keeps that explicit.
    let _ = write_rules(&mut out, config, sources);
    out
}

fn write_rules(out: &mut String, config: &Config, sources: &str) -> std::fmt::Result {
    write_header(out, sources)?;
    writeln!(
        out,
        "# Scrape slaprobe under job=\"{SCRAPE_JOB}\": SlaprobeDown watches that job's `up`."
    )?;
    writeln!(out, "groups:")?;
    // One group for the recording rules and the burn-rate alerts: rules of a
    // group run in order at the same timestamp, so each alert reads ratios
    // recorded at that very evaluation, not one interval old.
    writeln!(out, "  - name: slaprobe-slo")?;
    writeln!(out, "    rules:")?;
    let all = "slaprobe_sli_events_total";
    let bad = "slaprobe_sli_events_total{outcome=\"bad\"}";
    for (w, _) in WINDOWS {
        // `without (outcome)`, not `by (probe, output, sli)`: each prober
        // instance (job, instance) keeps its own series, so a region's
        // outage is not diluted by the healthy probers of other regions.
        let events = format!("sum without (outcome) (increase({all}[{w}]))");
        let bad_events = format!("sum without (outcome) (increase({bad}[{w}]))");
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
                write_burn_alert(out, config, probe, slo, &tier)?;
            }
        }
    }

    writeln!(out, "  - name: slaprobe-health")?;
    writeln!(out, "    rules:")?;
    for probe in &config.probes {
        let p = &probe.name;
        writeln!(out, "      - alert: SlaprobeNoCanaries")?;
        writeln!(out, "        expr: {}", yaml_str(&no_canaries_expr(p)))?;
        writeln!(out, "        for: {NO_CANARIES_WINDOW}")?;
        writeln!(out, "        labels:")?;
        writeln!(out, "          severity: 'ticket'")?;
        // absent() carries only the matchers' labels; set it explicitly so
        // routing never depends on which branch of the `or` fired.
        writeln!(out, "          probe: {}", yaml_str(p))?;
        let summary = format!("slaprobe produces no canaries for probe {p}");
        let description = format!(
            "slaprobe_canaries_sent_total{{probe=\"{p}\"}} is absent or has not increased \
             in {NO_CANARIES_WINDOW}: the prober is down, stuck, or cannot produce (e.g. its \
             topic does not exist). Its SLIs get no events, so no burn-rate alert can fire."
        );
        write_annotations(out, config, &summary, &description)?;
    }
    writeln!(out, "      - alert: SlaprobeDown")?;
    writeln!(out, "        expr: {}", yaml_str(&down_expr()))?;
    writeln!(out, "        for: {DOWN_FOR}")?;
    writeln!(out, "        labels:")?;
    // A dead prober silences every SLO alert it owns: page.
    writeln!(out, "          severity: 'page'")?;
    let description = format!(
        "Prometheus cannot scrape job=\"{SCRAPE_JOB}\" (up == 0, or no such target) for \
         {DOWN_FOR}: no canaries are measured and no SLO alert can fire."
    );
    write_annotations(out, config, "slaprobe is down or not scraped", &description)?;
    Ok(())
}

fn write_burn_alert(
    out: &mut String,
    config: &Config,
    probe: &Probe,
    slo: &Slo,
    tier: &BurnTier,
) -> std::fmt::Result {
    let p = &probe.name;
    let name = slo.name(p);
    let (long, short) = (tier.long_label(), tier.short_label());
    let factor = short_number(tier.factor);
    let objective = percent(slo.objective);
    let budget = percent(1.0 - slo.objective);
    let period = format_duration(slo.period);
    let threshold = error_threshold(tier.factor, slo.objective);
    let min = slo.min_events.max(1);
    // How long the whole budget lasts at this burn rate: the urgency in
    // words an on-call reads at 4 a.m.
    let exhausted = format_duration(Duration::from_secs(
        ((slo.period.as_secs_f64() / tier.factor / 60.0).round() as u64) * 60,
    ));
    writeln!(out, "      - alert: SlaprobeSLOBurnRate")?;
    writeln!(out, "        expr: {}", yaml_str(&burn_expr(p, slo, tier)))?;
    writeln!(out, "        labels:")?;
    writeln!(
        out,
        "          severity: {}",
        yaml_str(tier.severity.as_str())
    )?;
    writeln!(out, "          slo: {}", yaml_str(&name))?;
    writeln!(out, "          probe: {}", yaml_str(p))?;
    writeln!(out, "          output: {}", yaml_str(&slo.output))?;
    writeln!(out, "          sli: {}", yaml_str(&slo.sli.to_string()))?;
    writeln!(out, "          long_window: {}", yaml_str(long))?;
    writeln!(out, "          short_window: {}", yaml_str(short))?;
    let summary = format!(
        "SLO {name} is burning its error budget at >= {factor}x over the last {long} and {short}"
    );
    let description = format!(
        "Objective {objective} over {period}. The error ratio is >= {threshold} \
         ({factor}x the {budget} error budget) in both the {long} and the {short} window, \
         each with at least {min} events. At this rate the {period} budget is spent in {exhausted}."
    );
    write_annotations(out, config, &summary, &description)
}

/// The annotations every generated alert carries.
fn write_annotations(
    out: &mut String,
    config: &Config,
    summary: &str,
    description: &str,
) -> std::fmt::Result {
    writeln!(out, "        annotations:")?;
    writeln!(out, "          summary: {}", yaml_str(summary))?;
    writeln!(out, "          description: {}", yaml_str(description))?;
    writeln!(
        out,
        "          status_api: {}",
        yaml_str(&config.server.status_link())
    )
}

fn alertmanager_yaml(sources: &str) -> String {
    let mut out = String::new();
    let _ = write_header(&mut out, sources);
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

fn write_header(out: &mut String, sources: &str) -> std::fmt::Result {
    writeln!(out, "# Generated by `slaprobe rules` from {sources}.")?;
    writeln!(
        out,
        "# Do not edit by hand: change the configuration and run `slaprobe rules` again"
    )?;
    writeln!(out, "# (`--check` fails while this file is stale).")?;
    writeln!(out)
}

/// The configuration files, as given (normalized so that `-c probes` and
/// `-c ./probes/` render the same bytes).
fn sources(config: &Config) -> String {
    if config.sources.is_empty() {
        return "an in-memory configuration".to_string();
    }
    config
        .sources
        .iter()
        .map(|p| {
            p.components()
                .filter(|c| !matches!(c, Component::CurDir))
                .collect::<PathBuf>()
                .display()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A PromQL string literal.
fn promql_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A single-quoted YAML scalar: no escapes but `''`, so PromQL's braces,
/// quotes and colons pass untouched.
fn yaml_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A number without float noise or trailing zeros: `14.4`, `6`, `0.23`.
fn short_number(v: f64) -> String {
    let s = format!("{v:.6}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `0.999` -> `99.9%`.
fn percent(ratio: f64) -> String {
    format!("{}%", short_number(ratio * 100.0))
}

/// Builds Grafana panels with stable ids and a simple 24-column layout.
struct Layout {
    panels: Vec<Value>,
    next_id: u64,
    x: u64,
    y: u64,
    row_height: u64,
}

impl Layout {
    fn add(&mut self, w: u64, h: u64, mut panel: Value) {
        if self.x + w > 24 {
            self.newline();
        }
        panel["id"] = json!(self.next_id);
        panel["gridPos"] = json!({ "h": h, "w": w, "x": self.x, "y": self.y });
        self.next_id += 1;
        self.x += w;
        self.row_height = self.row_height.max(h);
        self.panels.push(panel);
    }

    fn newline(&mut self) {
        if self.x > 0 {
            self.y += self.row_height;
        }
        self.x = 0;
        self.row_height = 0;
    }

    fn row(&mut self, title: String) {
        self.newline();
        self.add(
            24,
            1,
            json!({ "type": "row", "title": title, "collapsed": false, "panels": [] }),
        );
        self.newline();
    }
}

/// Panels reference the `datasource` template variable, so the dashboard
/// imports into any Grafana and picks any Prometheus.
fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

fn target(ref_id: &str, expr: String, legend: &str) -> Value {
    json!({
        "datasource": datasource(),
        "refId": ref_id,
        "expr": expr,
        "legendFormat": legend,
    })
}

fn timeseries(title: String, unit: &str, targets: Vec<Value>, thresholds: Value) -> Value {
    json!({
        "type": "timeseries",
        "title": title,
        "datasource": datasource(),
        "fieldConfig": {
            "defaults": { "unit": unit, "thresholds": thresholds, "custom": {} },
            "overrides": [],
        },
        "options": {
            "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
            "tooltip": { "mode": "multi", "sort": "none" },
        },
        "targets": targets,
    })
}

fn no_thresholds() -> Value {
    json!({ "mode": "absolute", "steps": [{ "color": "green", "value": null }] })
}

fn dashboard_json(config: &Config, sources: &str) -> String {
    let mut l = Layout {
        panels: Vec::new(),
        next_id: 1,
        x: 0,
        y: 0,
        row_height: 0,
    };
    for probe in &config.probes {
        let p = &probe.name;
        let sel = format!("probe={}", promql_str(p));
        l.row(format!("Probe {p} ({})", probe.probe_type()));
        l.add(
            12,
            8,
            timeseries(
                format!("{p}: end-to-end latency quantiles (1m window)"),
                "s",
                vec![target(
                    "A",
                    format!("slaprobe_e2e_latency_quantile_seconds{{{sel},window=\"1m\"}}"),
                    "{{output}} q{{quantile}}",
                )],
                no_thresholds(),
            ),
        );
        let outcomes = ["delivered", "lost", "late", "duplicate"];
        let targets = outcomes
            .iter()
            .zip(["A", "B", "C", "D"])
            .map(|(o, r)| {
                target(
                    r,
                    format!(
                        "sum by (output) (rate(slaprobe_canaries_{o}_total{{{sel}}}[$__rate_interval]))"
                    ),
                    &format!("{{{{output}}}} {o}"),
                )
            })
            .collect();
        l.add(
            12,
            8,
            timeseries(
                format!("{p}: canary outcomes (per second)"),
                "short",
                targets,
                no_thresholds(),
            ),
        );
        for slo in &probe.slos {
            let name = slo.name(p);
            let slo_sel = format!("slo={}", promql_str(&name));
            l.newline();
            // Threshold lines at each tier's burn factor: where the burn-rate
            // curve crosses one, that tier's window is burning.
            let mut steps = vec![json!({ "color": "green", "value": null })];
            let mut tiers = burn_tiers(slo.period);
            tiers.sort_by(|a, b| a.factor.total_cmp(&b.factor));
            for t in &tiers {
                let color = match t.severity {
                    crate::slo::Severity::Page => "red",
                    crate::slo::Severity::Ticket => "orange",
                };
                steps.push(json!({ "color": color, "value": t.factor }));
            }
            let mut burn = timeseries(
                format!("{name}: burn rate per window"),
                "short",
                vec![target(
                    "A",
                    format!("slaprobe_slo_burn_rate{{{slo_sel}}}"),
                    "{{window}}",
                )],
                json!({ "mode": "absolute", "steps": steps }),
            );
            burn["fieldConfig"]["defaults"]["custom"] =
                json!({ "thresholdsStyle": { "mode": "line" } });
            l.add(12, 7, burn);
            l.add(
                6,
                7,
                json!({
                    "type": "stat",
                    "title": format!("{name}: error budget remaining ({})", format_duration(slo.period)),
                    "datasource": datasource(),
                    "fieldConfig": {
                        "defaults": {
                            "unit": "percentunit",
                            "thresholds": { "mode": "absolute", "steps": [
                                { "color": "red", "value": null },
                                { "color": "orange", "value": 0 },
                                { "color": "green", "value": 0.25 },
                            ] },
                        },
                        "overrides": [],
                    },
                    "options": {
                        "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                        "colorMode": "background",
                        "graphMode": "area",
                        "textMode": "auto",
                    },
                    "targets": [target(
                        "A",
                        format!("slaprobe_slo_error_budget_remaining_ratio{{{slo_sel}}}"),
                        "budget",
                    )],
                }),
            );
            l.add(
                6,
                7,
                json!({
                    "type": "state-timeline",
                    "title": format!("{name}: alert state"),
                    "datasource": datasource(),
                    "fieldConfig": {
                        "defaults": {
                            "thresholds": { "mode": "absolute", "steps": [
                                { "color": "green", "value": null },
                                { "color": "red", "value": 1 },
                            ] },
                            "mappings": [{ "type": "value", "options": {
                                "0": { "text": "ok", "color": "green" },
                                "1": { "text": "firing", "color": "red" },
                            } }],
                        },
                        "overrides": [],
                    },
                    "options": { "showValue": "never", "legend": { "showLegend": false } },
                    "targets": [target(
                        "A",
                        format!("max by (severity) (slaprobe_slo_alert_firing{{{slo_sel}}})"),
                        "{{severity}}",
                    )],
                }),
            );
        }
    }
    let dashboard = json!({
        "__requires": [
            { "type": "grafana", "id": "grafana", "name": "Grafana", "version": "9.0.0" },
            { "type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0" },
        ],
        "uid": "slaprobe",
        "title": "slaprobe",
        "description": format!(
            "Generated by `slaprobe rules` from {sources}; do not edit by hand."
        ),
        "tags": ["slaprobe", "kafka", "slo"],
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": { "from": "now-6h", "to": "now" },
        "timezone": "",
        "annotations": { "list": [] },
        "links": [],
        "templating": { "list": [{
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "options": [],
        }] },
        "panels": l.panels,
    });
    let mut s = serde_json::to_string_pretty(&dashboard).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn config() -> Config {
        crate::config::load_str("test.yaml", CONFIG, &|_| None).expect("valid config")
    }

    #[test]
    fn burn_expression_of_the_fast_page_tier() {
        let c = config();
        let p = &c.probes[0];
        let slo = &p.slos[0];
        let tier = &burn_tiers(slo.period)[0];
        assert_eq!(
            burn_expr(&p.name, slo, tier),
            "slaprobe:sli_error:ratio_rate1h{probe=\"hb\",output=\"heartbeat\",sli=\"delivery\"} >= 0.0144 \
             and slaprobe:sli_error:ratio_rate5m{probe=\"hb\",output=\"heartbeat\",sli=\"delivery\"} >= 0.0144 \
             and slaprobe:sli_events:increase1h{probe=\"hb\",output=\"heartbeat\",sli=\"delivery\"} >= 10 \
             and slaprobe:sli_events:increase5m{probe=\"hb\",output=\"heartbeat\",sli=\"delivery\"} >= 10"
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
        let e = burn_expr(&p.name, slo, tier);
        assert!(
            e.contains(&format!(
                "ratio_rate3d{{probe=\"hb\",output=\"heartbeat\",sli=\"latency\"}} >= {t} "
            )),
            "{e}"
        );
        assert_eq!(t.to_string().parse::<f64>().ok(), Some(t), "round-trips");
        assert!(
            e.ends_with("increase6h{probe=\"hb\",output=\"heartbeat\",sli=\"latency\"} >= 50"),
            "{e}"
        );
    }

    #[test]
    fn rendering_is_deterministic_and_well_formed() {
        let c = config();
        let a = render(&c);
        let b = render(&c);
        assert_eq!(a, b);
        let names: Vec<&str> = a.iter().map(|f| f.name).collect();
        assert_eq!(names, [RULES_FILE, ALERTMANAGER_FILE, DASHBOARD_FILE]);
        for f in &a {
            assert!(f.content.ends_with('\n'), "{} ends with a newline", f.name);
        }
        let rules = &a[0].content;
        assert!(rules.starts_with("# Generated by `slaprobe rules` from test.yaml."));
        // 7 windows x 2 recording rules, 2 SLOs x 4 tiers, 1 probe, 1 down.
        assert_eq!(rules.matches("- record:").count(), 14);
        assert_eq!(rules.matches("- alert: SlaprobeSLOBurnRate").count(), 8);
        assert_eq!(rules.matches("- alert: SlaprobeNoCanaries").count(), 1);
        assert_eq!(rules.matches("- alert: SlaprobeDown").count(), 1);
        assert!(!rules.contains("for: 0"), "burn alerts have no `for:`");
        let dash: Value = serde_json::from_str(&a[2].content).expect("valid JSON");
        let ids: Vec<u64> = dash["panels"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["id"].as_u64()).collect())
            .unwrap_or_default();
        assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
        // A row, two probe panels, three panels per SLO.
        assert_eq!(ids.len(), 1 + 2 + 2 * 3);
    }

    #[test]
    fn stale_reports_missing_and_changed_files() {
        let c = config();
        let files = render(&c);
        let dir = std::env::temp_dir().join(format!("slaprobe-rules-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(stale(&dir, &files).len(), 3);
        write(&dir, &files).expect("write");
        assert!(stale(&dir, &files).is_empty());
        std::fs::write(dir.join(ALERTMANAGER_FILE), "changed\n").expect("write");
        assert_eq!(stale(&dir, &files), [ALERTMANAGER_FILE]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
