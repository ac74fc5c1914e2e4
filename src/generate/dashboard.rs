//! The Grafana dashboard `slaprobe rules` writes. One dashboard serves any
//! configuration: template variables `datasource`, `job`, `instance`,
//! `kafka_cluster`, `probe`, `output`, `group` and `slo` pick the series,
//! latency quantiles come from the histograms with `histogram_quantile` (so
//! they aggregate across replicas), and a row repeats per SLO and per
//! watched consumer group. Only the burn-rate threshold lines
//! come from the configuration (the tiers' factors for its SLO period).

use serde_json::{json, Value};

mod brokers;
mod groups;

use crate::config::Config;
use crate::slo::{burn_tiers, Severity};
use crate::util::format;

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

/// Every selector carries the job and instance variables.
const SCOPE: &str = r#"job=~"$job",instance=~"$instance""#;

/// The dashboard, with `sources` named in its description.
pub fn render(config: &Config, sources: &str) -> String {
    let mut l = Layout {
        panels: Vec::new(),
        next_id: 1,
        x: 0,
        y: 0,
        row_height: 0,
    };
    canary_panels(&mut l);
    prober_panels(&mut l);
    brokers::panels(&mut l);
    // The tiers' factors depend on the SLO period: the configuration's
    // (its first SLO's; 30 days without SLOs).
    let period = config
        .probes
        .iter()
        .flat_map(|p| p.slos.iter())
        .map(|s| s.period)
        .next()
        .unwrap_or(std::time::Duration::from_secs(30 * 86_400));
    slo_panels(&mut l, period);
    groups::panels(&mut l);
    document(sources, l.panels)
}

fn probe_sel() -> String {
    format!(r#"{SCOPE},probe=~"$probe""#)
}

fn cluster_sel() -> String {
    format!(r#"{SCOPE},kafka_cluster=~"$kafka_cluster""#)
}

fn output_sel() -> String {
    format!(r#"{SCOPE},probe=~"$probe",output=~"$output""#)
}

/// End-to-end and produce latency, outcomes, failures.
fn canary_panels(l: &mut Layout) {
    l.row("Canaries".to_string());
    let quantiles: Vec<Value> = [("A", "0.5"), ("B", "0.99"), ("C", "0.999")]
        .iter()
        .map(|(r, q)| {
            target(
                r,
                format!(
                    "histogram_quantile({q}, sum by (le, probe, output) \
                     (rate(slaprobe_e2e_latency_seconds_bucket{{{}}}[$__rate_interval])))",
                    output_sel()
                ),
                &format!("{{{{probe}}}}/{{{{output}}}} p{}", &q[2..]),
            )
        })
        .collect();
    l.add(
        12,
        8,
        timeseries(
            "End-to-end latency (p50, p99, p999)".to_string(),
            "s",
            quantiles,
            no_thresholds(),
        ),
    );
    let outcomes = ["delivered", "lost", "late", "duplicate", "out_of_order"];
    let mut targets: Vec<Value> = outcomes
        .iter()
        .zip(["A", "B", "C", "D", "E"])
        .map(|(o, r)| {
            target(
                r,
                format!(
                    "sum by (probe, output) (rate(slaprobe_canaries_{o}_total{{{}}}[$__rate_interval]))",
                    output_sel()
                ),
                &format!("{{{{probe}}}}/{{{{output}}}} {o}"),
            )
        })
        .collect();
    targets.push(target(
        "F",
        format!(
            "sum by (probe, output) (rate(slaprobe_records_foreign_total{{{}}}[$__rate_interval]))",
            output_sel()
        ),
        "{{probe}}/{{output}} foreign",
    ));
    l.add(
        12,
        8,
        timeseries(
            "Canary outcomes (per second)".to_string(),
            "short",
            targets,
            no_thresholds(),
        ),
    );
    // Heartbeats label their outcomes by the partition's leader: which
    // broker a burn comes from (the burn-rate alert's `broker` annotation).
    l.add(
        12,
        8,
        timeseries(
            "Heartbeat bad SLI events by leader broker (per second)".to_string(),
            "short",
            vec![target(
                "A",
                format!(
                    "sum by (probe, sli, broker) (rate(slaprobe_sli_events_total{{{},outcome=\"bad\",broker!=\"\"}}[$__rate_interval]))",
                    probe_sel()
                ),
                "{{probe}} {{sli}} broker {{broker}}",
            )],
            no_thresholds(),
        ),
    );
    l.add(
        12,
        8,
        timeseries(
            "Heartbeat end-to-end latency p99 by leader broker".to_string(),
            "s",
            vec![target(
                "A",
                format!(
                    "histogram_quantile(0.99, sum by (le, probe, broker) \
                     (rate(slaprobe_e2e_latency_seconds_bucket{{{},broker!=\"\"}}[$__rate_interval])))",
                    probe_sel()
                ),
                "{{probe}} broker {{broker}}",
            )],
            no_thresholds(),
        ),
    );
    l.add(
        8,
        8,
        timeseries(
            "Produce latency p99 by leader broker".to_string(),
            "s",
            vec![target(
                "A",
                format!(
                    "histogram_quantile(0.99, sum by (le, probe, broker) \
                     (rate(slaprobe_produce_latency_seconds_bucket{{{}}}[$__rate_interval])))",
                    probe_sel()
                ),
                "{{probe}} broker {{broker}}",
            )],
            no_thresholds(),
        ),
    );
    l.add(
        8,
        8,
        timeseries(
            "Produce and consume errors (per second)".to_string(),
            "short",
            vec![
                target(
                    "A",
                    format!(
                        "sum by (probe, error) (rate(slaprobe_produce_errors_total{{{}}}[$__rate_interval]))",
                        probe_sel()
                    ),
                    "{{probe}} produce {{error}}",
                ),
                target(
                    "B",
                    format!(
                        "sum by (probe, output, error) (rate(slaprobe_consume_errors_total{{{}}}[$__rate_interval]))",
                        output_sel()
                    ),
                    "{{probe}}/{{output}} consume {{error}}",
                ),
            ],
            no_thresholds(),
        ),
    );
    l.add(
        8,
        8,
        timeseries(
            "Canaries in flight".to_string(),
            "short",
            vec![target(
                "A",
                format!("slaprobe_canaries_in_flight{{{}}}", probe_sel()),
                "{{probe}} {{instance}}",
            )],
            no_thresholds(),
        ),
    );
}

/// The prober's own health and cost.
fn prober_panels(l: &mut Layout) {
    l.row("Prober".to_string());
    l.add(
        8,
        6,
        timeseries(
            "Up".to_string(),
            "short",
            vec![target("A", format!("up{{{SCOPE}}}"), "{{instance}}")],
            no_thresholds(),
        ),
    );
    l.add(
        8,
        6,
        timeseries(
            "CPU (cores)".to_string(),
            "short",
            vec![target(
                "A",
                format!("rate(process_cpu_seconds_total{{{SCOPE}}}[$__rate_interval])"),
                "{{instance}}",
            )],
            no_thresholds(),
        ),
    );
    l.add(
        8,
        6,
        timeseries(
            "Memory, threads, open files".to_string(),
            "short",
            vec![
                target(
                    "A",
                    format!("process_resident_memory_bytes{{{SCOPE}}} / 1048576"),
                    "{{instance}} RSS MiB",
                ),
                target(
                    "B",
                    format!("process_threads{{{SCOPE}}}"),
                    "{{instance}} threads",
                ),
                target(
                    "C",
                    format!("process_open_fds{{{SCOPE}}}"),
                    "{{instance}} open fds",
                ),
            ],
            no_thresholds(),
        ),
    );
}

/// A row per SLO (repeated over `$slo`): burn rates against the tier
/// thresholds, the error budget left and the alert state.
fn slo_panels(l: &mut Layout, period: std::time::Duration) {
    l.newline();
    let mut row = json!({ "type": "row", "title": "SLO $slo", "collapsed": false, "panels": [], "repeat": "slo" });
    row["id"] = json!(0);
    l.add(24, 1, row);
    l.newline();
    let slo_sel = format!(r#"{SCOPE},slo=~"$slo""#);
    l.add(12, 7, burn_rate_panel(&slo_sel, period));
    l.add(6, 7, budget_panel(&slo_sel, period));
    l.add(6, 7, alert_state_panel(&slo_sel));
}

/// Burn rate per window, with a threshold line at each tier's factor:
/// where the curve crosses one, that tier's window is burning.
fn burn_rate_panel(slo_sel: &str, period: std::time::Duration) -> Value {
    // Threshold lines at each tier's burn factor: where the burn-rate
    // curve crosses one, that tier's window is burning.
    let mut steps = vec![json!({ "color": "green", "value": null })];
    let mut tiers = burn_tiers(period);
    tiers.sort_by(|a, b| a.factor.total_cmp(&b.factor));
    for t in &tiers {
        let color = match t.severity {
            Severity::Page => "red",
            Severity::Ticket => "orange",
        };
        steps.push(json!({ "color": color, "value": t.factor }));
    }
    let mut burn = timeseries(
        format!(
            "$slo: burn rate per window (lines: tier factors for a {} period)",
            format::duration(period)
        ),
        "short",
        vec![target(
            "A",
            format!("slaprobe_slo_burn_rate{{{slo_sel}}}"),
            "{{window}}",
        )],
        json!({ "mode": "absolute", "steps": steps }),
    );
    burn["fieldConfig"]["defaults"]["custom"] = json!({ "thresholdsStyle": { "mode": "line" } });
    burn
}

/// The SLO's error budget left over its period.
fn budget_panel(slo_sel: &str, period: std::time::Duration) -> Value {
    json!({
        "type": "stat",
        "title": format!("$slo: error budget remaining ({})", format::duration(period)),
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
    })
}

/// Which severities fire, over time.
fn alert_state_panel(slo_sel: &str) -> Value {
    json!({
        "type": "state-timeline",
        "title": "$slo: alert state",
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
    })
}

/// A query variable over a label's values (refreshed with the time range;
/// multi-select with "All").
fn variable(name: &str, label: &str, query: String) -> Value {
    json!({
        "name": name,
        "label": label,
        "type": "query",
        "datasource": datasource(),
        "query": { "query": query, "refId": format!("{name}-variable") },
        "definition": query,
        "refresh": 2,
        "multi": true,
        "includeAll": true,
        "allValue": ".*",
        "current": { "text": ["All"], "value": ["$__all"] },
        "sort": 1,
        "hide": 0,
        "options": [],
    })
}

/// `datasource`, then `job` → `instance` → `kafka_cluster` → `probe` →
/// `output`, and `slo` and `group`, each narrowed by the ones before it.
fn templating() -> Vec<Value> {
    vec![
        json!({
            "name": "datasource",
            "label": "Prometheus",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
            "options": [],
        }),
        variable(
            "job",
            "job",
            "label_values(slaprobe_build_info, job)".to_string(),
        ),
        variable(
            "instance",
            "instance",
            r#"label_values(slaprobe_build_info{job=~"$job"}, instance)"#.to_string(),
        ),
        // Every cluster has the error counters' series (at 0), whatever
        // its probes.
        variable(
            "kafka_cluster",
            "Kafka cluster",
            format!("label_values(slaprobe_kafka_errors_total{{{SCOPE}}}, kafka_cluster)"),
        ),
        variable(
            "probe",
            "probe",
            format!(
                "label_values(slaprobe_canaries_sent_total{{{}}}, probe)",
                cluster_sel()
            ),
        ),
        variable(
            "output",
            "output",
            format!(
                "label_values(slaprobe_canaries_delivered_total{{{}}}, output)",
                probe_sel()
            ),
        ),
        variable(
            "slo",
            "SLO",
            format!("label_values(slaprobe_slo_objective_ratio{{{SCOPE}}}, slo)"),
        ),
        variable(
            "group",
            "consumer group",
            format!(
                "label_values(slaprobe_consumergroup_status{{{}}}, group)",
                cluster_sel()
            ),
        ),
    ]
}

/// The dashboard document around `panels`.
fn document(sources: &str, panels: Vec<Value>) -> String {
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
        "templating": { "list": templating() },
        "panels": panels,
    });
    let mut s = serde_json::to_string_pretty(&dashboard).unwrap_or_default();
    s.push('\n');
    s
}
