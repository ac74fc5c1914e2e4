//! The Grafana dashboard `slaprobe rules` writes: a row per probe (latency
//! quantiles, outcomes) and, per SLO, its burn rates against the tier
//! thresholds, the error budget left and the alert state.

use serde_json::{json, Value};

use super::promql_str;
use crate::config::{Config, Probe, Slo};
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

/// The dashboard, with `sources` named in its description.
pub fn render(config: &Config, sources: &str) -> String {
    let mut l = Layout {
        panels: Vec::new(),
        next_id: 1,
        x: 0,
        y: 0,
        row_height: 0,
    };
    for probe in &config.probes {
        probe_panels(&mut l, probe);
        for slo in &probe.slos {
            slo_panels(&mut l, &probe.name, slo);
        }
    }
    document(sources, l.panels)
}

/// A probe's row: latency quantiles and outcome rates.
fn probe_panels(l: &mut Layout, probe: &Probe) {
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
}

/// One SLO's burn rates (with a threshold line per tier), error budget and
/// alert state.
fn slo_panels(l: &mut Layout, p: &str, slo: &Slo) {
    let name = slo.name(p);
    let slo_sel = format!("slo={}", promql_str(&name));
    l.newline();
    l.add(12, 7, burn_rate_panel(&name, &slo_sel, slo));
    l.add(6, 7, budget_panel(&name, &slo_sel, slo));
    l.add(6, 7, alert_state_panel(&name, &slo_sel));
}

/// Burn rate per window, with a threshold line at each tier's factor:
/// where the curve crosses one, that tier's window is burning.
fn burn_rate_panel(name: &str, slo_sel: &str, slo: &Slo) -> Value {
    // Threshold lines at each tier's burn factor: where the burn-rate
    // curve crosses one, that tier's window is burning.
    let mut steps = vec![json!({ "color": "green", "value": null })];
    let mut tiers = burn_tiers(slo.period);
    tiers.sort_by(|a, b| a.factor.total_cmp(&b.factor));
    for t in &tiers {
        let color = match t.severity {
            Severity::Page => "red",
            Severity::Ticket => "orange",
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
    burn["fieldConfig"]["defaults"]["custom"] = json!({ "thresholdsStyle": { "mode": "line" } });
    burn
}

/// The SLO's error budget left over its period.
fn budget_panel(name: &str, slo_sel: &str, slo: &Slo) -> Value {
    json!({
        "type": "stat",
        "title": format!("{name}: error budget remaining ({})", format::duration(slo.period)),
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
fn alert_state_panel(name: &str, slo_sel: &str) -> Value {
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
    })
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
        "panels": panels,
    });
    let mut s = serde_json::to_string_pretty(&dashboard).unwrap_or_default();
    s.push('\n');
    s
}
