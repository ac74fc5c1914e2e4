//! The consumer-group rows of the dashboard: one per group `type: lag`
//! probes and pipeline probes' `lag:` watch.

use serde_json::{json, Value};

use super::{cluster_sel, datasource, no_thresholds, target, timeseries, Layout};

/// A row per watched consumer group (repeated over `$group`): its status
/// as a state timeline, its lag in records and in seconds per topic. A
/// group two probes watch shows once (`max` over the probes).
pub(super) fn panels(l: &mut Layout) {
    l.newline();
    let mut row = json!({ "type": "row", "title": "Consumer group $group", "collapsed": false, "panels": [], "repeat": "group" });
    row["id"] = json!(0);
    l.add(24, 1, row);
    l.newline();
    let sel = format!(r#"{},group=~"$group""#, cluster_sel());
    l.add(8, 6, status_panel(&sel));
    l.add(
        8,
        6,
        timeseries(
            "$group: lag (records)".to_string(),
            "short",
            vec![target(
                "A",
                format!(
                    "sum by (kafka_cluster, group, topic) (max by (kafka_cluster, group, topic, partition) \
                     (slaprobe_consumergroup_lag_records{{{sel}}}))"
                ),
                "{{kafka_cluster}} {{group}} {{topic}}",
            )],
            no_thresholds(),
        ),
    );
    l.add(
        8,
        6,
        timeseries(
            "$group: lag (seconds, oldest partition)".to_string(),
            "s",
            vec![target(
                "A",
                format!(
                    "max by (kafka_cluster, group, topic) (slaprobe_consumergroup_lag_seconds{{{sel}}})"
                ),
                "{{kafka_cluster}} {{group}} {{topic}}",
            )],
            no_thresholds(),
        ),
    );
}

/// The statuses in the order of their codes on the state timeline, with
/// their colours.
const STATUSES: [(&str, &str); 5] = [
    ("OK", "green"),
    ("WARN", "yellow"),
    ("REWIND", "orange"),
    ("STALL", "red"),
    ("STOP", "dark-red"),
];

/// The group's status over time: `slaprobe_consumergroup_status` has a
/// series per status (1 on the current one, 0 on the others, all always
/// there), folded here into one code per group (0 OK … 4 STOP) that value
/// mappings name and colour.
fn status_panel(sel: &str) -> Value {
    let expr = STATUSES
        .iter()
        .enumerate()
        .skip(1)
        .map(|(code, (status, _))| {
            format!(
                r#"{code} * max by (kafka_cluster, group) (slaprobe_consumergroup_status{{{sel},status="{status}"}})"#
            )
        })
        .collect::<Vec<_>>()
        .join(" + ");
    let mappings: serde_json::Map<String, Value> = STATUSES
        .iter()
        .enumerate()
        .map(|(code, (status, color))| {
            (
                code.to_string(),
                json!({ "text": status, "color": color, "index": code }),
            )
        })
        .collect();
    json!({
        "type": "state-timeline",
        "title": "$group: status",
        "datasource": datasource(),
        "fieldConfig": {
            "defaults": {
                "color": { "mode": "thresholds" },
                "mappings": [{ "type": "value", "options": mappings }],
                "thresholds": no_thresholds(),
                "custom": { "fillOpacity": 80, "lineWidth": 0 },
            },
            "overrides": [],
        },
        "options": {
            "mergeValues": true,
            "showValue": "auto",
            "rowHeight": 0.9,
            "legend": { "displayMode": "list", "placement": "bottom", "showLegend": false },
            "tooltip": { "mode": "single", "sort": "none" },
        },
        "targets": [target("A", expr, "{{kafka_cluster}} {{group}}")],
    })
}
