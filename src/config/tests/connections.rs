//! Each cluster's connection checks: the default, `off`, `listeners:` and
//! every error.

use std::time::Duration;

use super::{err, ok};

fn yaml(cluster: &str, alerts: &str) -> String {
    format!(
        "clusters:\n  c:\n    bootstrap: 'k1:9092,k2:9092'\n    librdkafka: {{ security.protocol: SASL_SSL, sasl.mechanisms: SCRAM-SHA-512, sasl.username: u, sasl.password: hunter2 }}\n{cluster}{alerts}probes:\n  - {{ name: hb, type: heartbeat, cluster: c, topic: t }}\n"
    )
}

#[test]
fn every_cluster_is_checked_every_30s_on_its_clients_listener_by_default() {
    let c = ok(&yaml("", ""));
    assert_eq!(c.connection_checks.len(), 1);
    let k = &c.connection_checks[0];
    assert_eq!(
        (k.cluster.as_str(), k.interval, k.timeout),
        ("c", Duration::from_secs(30), Duration::from_secs(10))
    );
    assert_eq!(k.listeners.len(), 1);
    assert_eq!(k.listeners[0].name, "default");
    assert_eq!(k.listeners[0].bootstrap, "k1:9092,k2:9092");
    assert_eq!(c.alerts.broker_unreachable_for, Duration::from_secs(300));
    assert_eq!(
        c.alerts.certificate_expiry_warning,
        Duration::from_secs(14 * 86_400)
    );
    let off = ok(&yaml("    connection_check_interval: off\n", ""));
    assert!(off.connection_checks.is_empty());
}

/// A listener's options go on top of the cluster's; its secrets are never
/// shown.
#[test]
fn a_listener_takes_the_clusters_options_with_its_own_on_top() {
    let c = ok(&yaml(
        "    connection_check_interval: 2s\n    listeners:\n      - { name: ext, bootstrap: 'ext:9094', librdkafka: { sasl.mechanisms: PLAIN, sasl.password: s3cret } }\n",
        "alerts: { broker_unreachable_for: 2m, certificate_expiry_warning: 30d }\n",
    ));
    let k = &c.connection_checks[0];
    assert_eq!(
        (k.interval, k.timeout),
        (Duration::from_secs(2), Duration::from_secs(2))
    );
    let ext = &k.listeners[1];
    assert_eq!(ext.name, "ext");
    assert_eq!(ext.librdkafka["security.protocol"], "SASL_SSL");
    assert_eq!(ext.librdkafka["sasl.mechanisms"], "PLAIN");
    assert_eq!(ext.librdkafka["sasl.username"], "u");
    let shown = format!("{ext:?}");
    assert!(
        !shown.contains("s3cret") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert_eq!(c.alerts.broker_unreachable_for, Duration::from_secs(120));
    assert_eq!(
        c.alerts.certificate_expiry_warning,
        Duration::from_secs(30 * 86_400)
    );
}

#[test]
fn each_wrong_setting_is_named() {
    let e = err(&yaml("    connection_check_interval: 500ms\n", ""));
    assert!(
        e.contains("clusters.c.connection_check_interval: must be at least 1s"),
        "{e}"
    );
    let e = err(&yaml("    connection_check_interval: soon\n", ""));
    assert!(e.contains("invalid duration `soon`"), "{e}");
    let e = err(&yaml(
        "    listeners:\n      - { name: default, bootstrap: 'x:1' }\n      - { name: a, bootstrap: 'nope' }\n      - { name: a, bootstrap: 'x:1' }\n",
        "",
    ));
    assert!(
        e.contains("listeners[0].name: invalid listener name `default`"),
        "{e}"
    );
    assert!(
        e.contains("listeners[1].bootstrap: `nope` is not host:port"),
        "{e}"
    );
    assert!(
        e.contains("listeners[2].name: listener `a` is named twice"),
        "{e}"
    );
    let e = err(&yaml(
        "    listeners:\n      - { name: a, bootstrap: 'x:1', librdkafka: { security.protocol: TLS } }\n",
        "",
    ));
    assert!(
        e.contains("listener `a` cannot be checked: security.protocol `TLS` is not one of"),
        "{e}"
    );
    assert!(
        e.contains("listeners[0].librdkafka.security.protocol: librdkafka rejects this option"),
        "{e}"
    );
    let e = err(&yaml(
        "",
        "alerts: { broker_unreachable_for: 0s, certificate_expiry_warning: 0s }\n",
    ));
    assert!(
        e.contains("alerts.broker_unreachable_for: must be greater than 0"),
        "{e}"
    );
    assert!(
        e.contains("alerts.certificate_expiry_warning: must be greater than 0"),
        "{e}"
    );
}
