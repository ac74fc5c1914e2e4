//! The dashboard's row of connection checks: each broker's last check per
//! listener, the stages' p99 and the certificates' time left.

use serde_json::json;

use super::{cluster_sel, no_thresholds, target, timeseries, Layout};

pub(super) fn panels(l: &mut Layout) {
    l.row("Brokers (connection checks)".to_string());
    let sel = cluster_sel();
    l.add(
        8,
        7,
        timeseries(
            "Connection check passes (1) or fails (0), per broker and listener".to_string(),
            "short",
            vec![target(
                "A",
                format!(
                    "max by (kafka_cluster, broker, listener) (slaprobe_broker_connection_up{{{sel}}})"
                ),
                "{{kafka_cluster}} {{broker}} {{listener}}",
            )],
            no_thresholds(),
        ),
    );
    l.add(
        8,
        7,
        timeseries(
            "Connection stages, p99 (tcp, tls, api_versions, sasl)".to_string(),
            "s",
            vec![target(
                "A",
                format!(
                    "histogram_quantile(0.99, sum by (le, kafka_cluster, listener, stage) \
                     (rate(slaprobe_broker_connection_seconds_bucket{{{sel}}}[5m])))"
                ),
                "{{kafka_cluster}} {{listener}} {{stage}}",
            )],
            no_thresholds(),
        ),
    );
    l.add(
        8,
        7,
        timeseries(
            "Certificate expires in".to_string(),
            "s",
            vec![target(
                "A",
                format!(
                    "min by (kafka_cluster, broker, listener) \
                     (slaprobe_tls_certificate_expiry_timestamp_seconds{{{sel}}}) - time()"
                ),
                "{{kafka_cluster}} {{broker}} {{listener}}",
            )],
            json!({ "mode": "absolute", "steps": [
                { "color": "red", "value": null },
                { "color": "green", "value": 14 * 86_400 },
            ] }),
        ),
    );
}
