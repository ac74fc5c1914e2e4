//! Loader tests: every bad config asserts the exact error line a user sees.
//!
//! Over 600 lines because it pins the message of every configuration
//! error, one short test each; split by subject it would only scatter them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// The configuration example of the README, in full.
pub(crate) const SPEC_EXAMPLE: &str = r#"server:
  listen: 0.0.0.0:9464
state_dir: /var/lib/slaprobe        # optional: restart-safe accounting (§6)
alertmanager:                       # optional: push alerts (§5)
  url: http://alertmanager:9093
defaults:                           # inherited by every probe
  interval: 1s
  deadline: 30s
  payload_bytes: 256

clusters:
  primary:
    bootstrap: kafka-1:9092,kafka-2:9092
    librdkafka:                     # passed through to librdkafka verbatim
      security.protocol: SASL_SSL
      sasl.mechanism: SCRAM-SHA-512
      sasl.username: slaprobe
      sasl.password: ${KAFKA_PASSWORD}

probes:
  - name: primary-heartbeat
    type: heartbeat
    cluster: primary
    topic: slaprobe.heartbeat
    interval: 1s                    # one canary per partition per interval
    deadline: 10s
    topic_management:               # optional; default: observe only
      create: true
      partitions_per_broker: 1
      replication_factor: 3
    slos:
      - { sli: availability, objective: 99.95%, period: 30d }
      - { sli: delivery,     objective: 99.9% }
      - { sli: latency, threshold: 250ms, objective: 99% }

  - name: orders-enrichment
    type: pipeline
    input:
      cluster: primary
      topic: orders.raw
      key: '{{id}}'                 # optional; default: the canary id
      payload: '{"order_id":"{{id}}","amount":1,"created":"{{sent_rfc3339}}","pad":"{{pad}}"}'
      headers: { source: slaprobe }
    outputs:
      - name: enriched
        cluster: primary
        topic: orders.enriched
        match: { json: /order_id }  # or { header: NAME } or { key: true }
        expect: exactly_once        # or at_least_once, or none (a filter must drop it)
    interval: 1s
    deadline: 2m
    slos:
      - { sli: delivery, objective: 99.9% }
      - { sli: latency, threshold: 5s, objective: 99% }
"#;

/// A minimal valid heartbeat config; tests append probe keys (lines 9+ are
/// inside `probes[0]` when indented by four spaces).
const HB: &str = "\
clusters:
  c1:
    bootstrap: k:9092
probes:
  - name: hb
    type: heartbeat
    cluster: c1
    topic: t
";

/// A minimal valid pipeline config (line 9 is `outputs:`).
const PIPE: &str = r#"clusters:
  c1:
    bootstrap: k:9092
probes:
  - name: pl
    type: pipeline
    input: { cluster: c1, topic: in, payload: '{"id":"{{id}}"}' }
    outputs:
      - { name: out, cluster: c1, topic: out, match: { json: /id } }
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn ok(yaml: &str) -> Config {
    match load_str("test.yaml", yaml, &no_env) {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn err_with(yaml: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    match load_str("test.yaml", yaml, env) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

fn err(yaml: &str) -> String {
    err_with(yaml, &no_env)
}

/// A fresh, empty directory under the temp dir.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "slaprobe-config-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write temp file");
    p
}

// ---------------------------------------------------------------- positive

#[test]
fn spec_example_parses_into_the_model() {
    let env = env_of(&[("KAFKA_PASSWORD", "hunter2")]);
    let c = load_str("spec.yaml", SPEC_EXAMPLE, &env).expect("SPEC example is valid");
    assert_eq!(c.sources, vec![PathBuf::from("spec.yaml")]);
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:9464");
    assert_eq!(c.state_dir, Some(PathBuf::from("/var/lib/slaprobe")));
    assert_eq!(
        c.alertmanager,
        Some(Alertmanager {
            urls: vec!["http://alertmanager:9093".into()],
            ..Default::default()
        })
    );
    let primary = &c.clusters["primary"];
    assert_eq!(primary.bootstrap, "kafka-1:9092,kafka-2:9092");
    assert_eq!(primary.librdkafka["sasl.password"], "hunter2");
    assert_eq!(primary.librdkafka.len(), 4);
    assert!(primary.secret_keys.is_empty());

    assert_eq!(c.probes.len(), 2);
    let hb = &c.probes[0];
    assert_eq!(hb.name, "primary-heartbeat");
    assert_eq!(hb.interval, Duration::from_secs(1));
    assert_eq!(hb.deadline, Duration::from_secs(10));
    assert_eq!(hb.payload_bytes, 256, "inherited from defaults");
    assert_eq!(
        hb.kind,
        ProbeKind::Heartbeat(Heartbeat {
            cluster: "primary".into(),
            topic: "slaprobe.heartbeat".into(),
            topic_management: TopicManagement {
                create: true,
                partitions_per_broker: 1,
                replication_factor: Some(3),
            },
        })
    );
    let d30 = Duration::from_secs(30 * 86_400);
    assert_eq!(
        hb.slos,
        vec![
            Slo {
                output: "heartbeat".into(),
                sli: Sli::Availability,
                objective: 0.9995,
                period: d30,
                threshold: None,
                min_events: 10,
            },
            Slo {
                output: "heartbeat".into(),
                sli: Sli::Delivery,
                objective: 0.999,
                period: d30,
                threshold: None,
                min_events: 10,
            },
            Slo {
                output: "heartbeat".into(),
                sli: Sli::Latency,
                objective: 0.99,
                period: d30,
                threshold: Some(Duration::from_millis(250)),
                min_events: 10,
            },
        ]
    );
    assert_eq!(
        hb.slos[0].name(&hb.name),
        "primary-heartbeat:heartbeat:availability"
    );

    let pl = &c.probes[1];
    assert_eq!(pl.deadline, Duration::from_secs(120));
    assert_eq!(pl.payload_bytes, 256);
    let ProbeKind::Pipeline(p) = &pl.kind else {
        panic!("pipeline expected")
    };
    assert_eq!(p.input.key.as_deref(), Some("{{id}}"));
    assert_eq!(p.input.headers["source"], "slaprobe");
    assert_eq!(
        p.outputs,
        vec![Output {
            name: "enriched".into(),
            cluster: "primary".into(),
            topic: "orders.enriched".into(),
            match_rule: MatchRule::Json("/order_id".into()),
            expect: Expect::ExactlyOnce,
        }]
    );
    let slos: Vec<_> = pl.slos.iter().map(|s| s.name(&pl.name)).collect();
    assert_eq!(
        slos,
        [
            "orders-enrichment:enriched:delivery",
            "orders-enrichment:enriched:latency"
        ]
    );
}

#[test]
fn defaults_apply_when_sections_are_absent() {
    let c = ok(HB);
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:9464");
    assert_eq!(c.state_dir, None);
    assert_eq!(c.alertmanager, None);
    let p = &c.probes[0];
    assert_eq!(
        (p.interval, p.deadline, p.payload_bytes),
        (Duration::from_secs(1), Duration::from_secs(30), 256)
    );
    assert_eq!(
        p.kind,
        ProbeKind::Heartbeat(Heartbeat {
            cluster: "c1".into(),
            topic: "t".into(),
            topic_management: TopicManagement::default(),
        })
    );
}

#[test]
fn empty_document_is_a_valid_config_without_probes() {
    let c = ok("# nothing yet\n");
    assert!(c.probes.is_empty() && c.clusters.is_empty());
}

#[test]
fn pipeline_slos_expand_per_output_and_availability_uses_input() {
    let yaml = format!(
        "{PIPE}      - {{ name: out2, cluster: c1, topic: out2, match: {{ header: x-id }}, expect: at_least_once }}
    slos:
      - {{ sli: availability, objective: 99.9% }}
      - {{ sli: delivery, objective: 0.999 }}
      - {{ sli: latency, objective: 99%, threshold: 2s, output: out2, period: 7d }}
"
    );
    let c = ok(&yaml);
    let p = &c.probes[0];
    let names: Vec<_> = p.slos.iter().map(|s| s.name(&p.name)).collect();
    assert_eq!(
        names,
        [
            "pl:input:availability",
            "pl:out:delivery",
            "pl:out2:delivery",
            "pl:out2:latency"
        ]
    );
    assert_eq!(p.slos[1].objective, 0.999);
    assert_eq!(p.slos[3].period, Duration::from_secs(7 * 86_400));
    let ProbeKind::Pipeline(pl) = &p.kind else {
        panic!()
    };
    assert_eq!(pl.outputs[1].match_rule, MatchRule::Header("x-id".into()));
    assert_eq!(pl.outputs[1].expect, Expect::AtLeastOnce);
    assert_eq!(pl.input.key, None);
}

#[test]
fn anchors_aliases_and_merge_keys() {
    let yaml = "\
common: &common { bootstrap: 'k:9092', librdkafka: { linger.ms: 5 } }
";
    // A top-level helper key is still an unknown key: anchors must live in
    // allowed places. Use an anchor inside the real structure instead.
    assert!(err(yaml).contains("unknown field `common`"));

    let c = ok("\
clusters:
  a: &base
    bootstrap: k1:9092
    librdkafka: &opts { linger.ms: 5, acks: all }
  b:
    <<: *base
    bootstrap: k2:9092
probes:
  - &hb
    name: hb-a
    type: heartbeat
    cluster: a
    topic: t
    slos: [ &avail { sli: availability, objective: 99.9% } ]
  - <<: *hb
    name: hb-b
    cluster: b
    slos: [ *avail ]
");
    assert_eq!(c.clusters["b"].bootstrap, "k2:9092", "keys present win");
    assert_eq!(c.clusters["b"].librdkafka["linger.ms"], "5");
    assert_eq!(c.clusters["b"].librdkafka["acks"], "all");
    assert_eq!(c.probes[1].name, "hb-b");
    assert_eq!(c.probes[1].input_cluster(), "b");
    assert_eq!(c.probes[1].input_topic(), "t");
    assert_eq!(c.probes[1].slos.len(), 1);
}

#[test]
fn scalars_are_strings_where_strings_are_wanted() {
    let c = ok("\
clusters:
  c1:
    bootstrap: k:9092
    librdkafka: { linger.ms: 5, enable.idempotence: true, client.rack: ~ }
probes:
  - { name: hb, type: heartbeat, cluster: c1, topic: 123 }
");
    assert_eq!(c.probes[0].input_topic(), "123");
    let opts = &c.clusters["c1"].librdkafka;
    assert_eq!(opts["linger.ms"], "5");
    assert_eq!(opts["enable.idempotence"], "true");
}

#[test]
fn env_expansion_defaults_and_typing() {
    let yaml = format!(
        "{HB}    topic_management: {{ create: true, partitions_per_broker: '${{PPB:-2}}' }}
    payload_bytes: ${{PAYLOAD}}
    interval: ${{UNSET:-5s}}
    deadline: '${{EMPTY:-1m}}'
"
    );
    let env = env_of(&[("PAYLOAD", "512"), ("EMPTY", "")]);
    let c = load_str("test.yaml", &yaml, &env).expect("valid");
    let p = &c.probes[0];
    assert_eq!(p.payload_bytes, 512);
    assert_eq!(p.interval, Duration::from_secs(5));
    assert_eq!(
        p.deadline,
        Duration::from_secs(60),
        "empty uses the default"
    );
    let ProbeKind::Heartbeat(h) = &p.kind else {
        panic!()
    };
    assert_eq!(h.topic_management.partitions_per_broker, 2);

    let c = ok("\
clusters:
  c1: { bootstrap: 'k:9092', librdkafka: { sasl.password: 'a$$b$c' } }
");
    assert_eq!(c.clusters["c1"].librdkafka["sasl.password"], "a$b$c");
}

#[test]
fn secret_file_is_read_trimmed_and_redacted() {
    let dir = temp_dir("secret");
    let secret = write(&dir, "kafka-password", "s3cret\n\n");
    let yaml = format!(
        "clusters:
  c1:
    bootstrap: k:9092
    librdkafka:
      sasl.password_file: {}
      sasl.oauthbearer.config_file: ${{DIR}}/kafka-password
",
        secret.display()
    );
    let env = env_of(&[("DIR", &dir.display().to_string())]);
    let c = load_str("test.yaml", &yaml, &env).expect("valid");
    let cl = &c.clusters["c1"];
    assert_eq!(
        cl.librdkafka["sasl.password"], "s3cret\n",
        "one newline trimmed"
    );
    assert_eq!(cl.librdkafka["sasl.oauthbearer.config"], "s3cret\n");
    assert!(cl.secret_keys.contains("sasl.oauthbearer.config"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn directory_merges_in_file_name_order() {
    let dir = temp_dir("merge");
    write(
        &dir,
        "20-probes.yaml",
        "probes:\n  - { name: p2, type: heartbeat, cluster: b, topic: t }\n",
    );
    write(
        &dir,
        "10-base.yml",
        "defaults: { payload_bytes: 100 }\nclusters:\n  a: { bootstrap: 'a:9092' }\n  b: { bootstrap: 'b:9092' }\nprobes:\n  - { name: p1, type: heartbeat, cluster: a, topic: t }\n",
    );
    write(&dir, "README.md", "not yaml");
    write(&dir, ".hidden.yaml", "garbage: [");
    let c = load(std::slice::from_ref(&dir), &no_env).expect("valid");
    assert_eq!(
        c.sources,
        vec![dir.join("10-base.yml"), dir.join("20-probes.yaml")]
    );
    let names: Vec<_> = c.probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["p1", "p2"]);
    assert_eq!(
        c.probes[1].payload_bytes, 100,
        "defaults apply across files"
    );
    assert_eq!(c.clusters.len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- negative

#[test]
fn yaml_syntax_error() {
    assert_eq!(
        err("clusters:\n  c1: [a, b\nprobes: []\n"),
        "test.yaml:3:7: YAML syntax error: illegal placement of ':' indicator"
    );
}

#[test]
fn duplicate_yaml_key() {
    assert_eq!(
        err(&format!("{HB}    topic: t2\n")),
        "test.yaml:9:5: probes[0].topic: duplicate key (first given at line 8, column 5)"
    );
}

#[test]
fn unknown_top_level_key() {
    assert_eq!(
        err(&format!("{HB}servr:\n  listen: 0.0.0.0:1\n")),
        "test.yaml:9:1: servr: unknown field `servr`, expected one of `server`, `state_dir`, \
         `alertmanager`, `alerts`, `defaults`, `clusters`, `probes`, `actions`"
    );
}

#[test]
fn unknown_probe_key_typo() {
    assert_eq!(
        err(&format!("{HB}    deadlin: 5s\n")),
        "test.yaml:9:5: probes[0].deadlin: unknown field `deadlin`, expected one of `name`, `type`, \
         `interval`, `deadline`, `payload_bytes`, `slos`, `dedicated_client`, `cluster`, `topic`, `topic_management`, \
         `input`, `outputs`, `poison`, `lag`, `groups`, `group_pattern`, `topics`, `window`, `max_partitions`, \
         `max_groups`, `stalled_for`, `max_lag`"
    );
}

#[test]
fn missing_required_key() {
    assert_eq!(
        err("probes:\n  - name: x\n    cluster: c1\n"),
        "test.yaml:2:5: probes[0].type: required key is missing"
    );
    assert_eq!(
        err("clusters:\n  c1: { librdkafka: {} }\n"),
        "test.yaml:2:7: clusters.c1.bootstrap: required key is missing"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        err(&format!("{HB}    payload_bytes: '256'\n")),
        "test.yaml:9:20: probes[0].payload_bytes: invalid type: string \"256\", expected u64"
    );
    assert_eq!(
        err(&format!("{HB}    slos: {{ sli: delivery }}\n")),
        "test.yaml:9:11: probes[0].slos: invalid type: map, expected a sequence"
    );
    assert_eq!(
        err("probes:\n  - name: x\n    type: heartbeet\n"),
        "test.yaml:3:11: probes[0].type: unknown variant `heartbeet`, expected one of `heartbeat`, `pipeline`, `lag`"
    );
}

#[test]
fn unquoted_template_gets_a_hint() {
    let yaml = PIPE.replace("'{\"id\":\"{{id}}\"}'", "{{id}}");
    assert_eq!(
        err(&yaml),
        "test.yaml:7:48: probes[0].input.payload: mapping keys must be strings, not lists or \
         mappings (a value starting with `{` is a YAML mapping: quote templates, e.g. '{{id}}')"
    );
}

#[test]
fn bad_duration() {
    assert_eq!(
        err(&format!("{HB}    interval: 5\n")),
        "test.yaml:9:15: probes[0].interval: invalid duration `5`: time unit needed, for example \
         5sec or 5ms (write e.g. `250ms`, `30s`, `2m`, `30d`)"
    );
    assert_eq!(
        err(&format!("{HB}    interval: 0s\n")),
        "test.yaml:9:15: probes[0].interval: must be greater than 0"
    );
}

#[test]
fn deadline_not_greater_than_interval() {
    assert_eq!(
        err(&format!("{HB}    interval: 1s\n    deadline: 500ms\n")),
        "test.yaml:10:5: probes[0].deadline: must be greater than interval (1s), got 500ms"
    );
    // Inherited deadline: the key path still names it, the position is the probe.
    assert_eq!(
        err(&format!(
            "defaults: {{ deadline: 10s }}\n{HB}    interval: 1m\n"
        )),
        "test.yaml:6:5: probes[0].deadline: must be greater than interval (1m), got 10s \
         (inherited from `defaults.deadline`)"
    );
}

#[test]
fn payload_bytes_out_of_range() {
    assert_eq!(
        err(&format!("{HB}    payload_bytes: 2000000\n")),
        "test.yaml:9:20: probes[0].payload_bytes: must be between 1 and 1048576 (1 MiB), got 2000000"
    );
}

#[test]
fn objective_out_of_range() {
    assert_eq!(
        err(&format!(
            "{HB}    slos:\n      - {{ sli: availability, objective: 100% }}\n"
        )),
        "test.yaml:10:41: probes[0].slos[0].objective: must be between 0% and 100% (exclusive), got `100%`"
    );
    assert_eq!(
        err(&format!(
            "{HB}    slos:\n      - {{ sli: availability, objective: 0% }}\n"
        )),
        "test.yaml:10:41: probes[0].slos[0].objective: must be between 0% and 100% (exclusive), got `0%`"
    );
    assert_eq!(
        err(&format!(
            "{HB}    slos:\n      - {{ sli: availability, objective: 99.9 }}\n"
        )),
        "test.yaml:10:41: probes[0].slos[0].objective: a bare number is a ratio and must be between \
         0 and 1 (exclusive); did you mean `99.9%`?"
    );
    assert_eq!(
        err(&format!(
            "{HB}    slos:\n      - {{ sli: availability, objective: high }}\n"
        )),
        "test.yaml:10:41: probes[0].slos[0].objective: invalid objective `high`: write a percentage \
         like `99.9%` or a ratio like `0.999`"
    );
}

#[test]
fn period_too_short() {
    assert_eq!(
        err(&format!(
            "{HB}    slos:\n      - {{ sli: delivery, objective: 99%, period: 12h }}\n"
        )),
        "test.yaml:10:50: probes[0].slos[0].period: must be at least 1d (the alert windows go up to 3d), got 12h"
    );
}

#[test]
fn threshold_not_less_than_deadline() {
    assert_eq!(
        err(&format!(
            "{HB}    deadline: 10s\n    slos:\n      - sli: latency\n        objective: 99%\n        threshold: 10s\n"
        )),
        "test.yaml:13:9: probes[0].slos[0].threshold: must be less than the probe's deadline (10s), got 10s"
    );
}

#[test]
fn latency_without_threshold() {
    assert_eq!(
        err(&format!(
            "{HB}    slos:\n      - {{ sli: latency, objective: 99% }}\n"
        )),
        "test.yaml:10:9: probes[0].slos[0].threshold: required for a latency SLO (e.g. `threshold: 250ms`)"
    );
}

#[test]
fn threshold_on_delivery() {
    assert_eq!(
        err(&format!(
            "{HB}    slos:\n      - {{ sli: delivery, objective: 99%, threshold: 1s }}\n"
        )),
        "test.yaml:10:42: probes[0].slos[0].threshold: only allowed for latency SLOs, not delivery"
    );
}

#[test]
fn slo_output_rules() {
    assert_eq!(
        err(&format!(
            "{HB}    slos:\n      - {{ sli: availability, objective: 99%, output: heartbeat }}\n"
        )),
        "test.yaml:10:46: probes[0].slos[0].output: not allowed for availability SLOs \
         (availability is measured where canaries are produced)"
    );
    assert_eq!(
        err(&format!(
            "{PIPE}    slos:\n      - {{ sli: delivery, objective: 99%, output: nope }}\n"
        )),
        "test.yaml:11:50: probes[0].slos[0].output: unknown output `nope`; this probe's outputs are: out"
    );
    assert_eq!(
        err(&format!(
            "{PIPE}    slos:\n      - {{ sli: delivery, objective: 99% }}\n      - {{ sli: delivery, objective: 99.9%, output: out }}\n"
        )),
        "test.yaml:12:9: probes[0].slos[1]: duplicate SLO `pl:out:delivery` (slos[0] already defines it)"
    );
}

#[test]
fn unknown_cluster() {
    assert_eq!(
        err(&HB.replace("cluster: c1", "cluster: c2")),
        "test.yaml:7:14: probes[0].cluster: unknown cluster `c2`; defined clusters: c1"
    );
}

#[test]
fn bad_bootstrap_and_cluster_name() {
    assert_eq!(
        err("clusters:\n  c1: { bootstrap: 'k:9092,kafka-2' }\n  'bad name': { bootstrap: 'k:9092' }\n"),
        "test.yaml:2:20: clusters.c1.bootstrap: `kafka-2` is not host:port with a numeric port; \
         write e.g. `kafka-1:9092,kafka-2:9092`\n\
         test.yaml:3:3: clusters.bad name: invalid cluster name `bad name`: use only letters, \
         digits, `.`, `_` and `-`"
    );
}

#[test]
fn duplicate_probe_names() {
    assert_eq!(
        err(&format!(
            "{HB}  - {{ name: hb, type: heartbeat, cluster: c1, topic: t2 }}\n"
        )),
        "test.yaml:9:13: probes[1].name: duplicate probe name `hb`: already used at test.yaml:5:11"
    );
}

#[test]
fn bad_probe_name() {
    assert_eq!(
        err(&HB.replace("name: hb", "name: 'hb/1'")),
        "test.yaml:5:11: probes[0].name: invalid probe name `hb/1`: use only letters, digits, `.`, \
         `_` and `-` (it is part of every canary id and a metric label)"
    );
}

#[test]
fn undefined_env_var() {
    assert_eq!(
        err("clusters:\n  c1:\n    bootstrap: k:9092\n    librdkafka:\n      sasl.password: ${KAFKA_PASSWORD}\n"),
        "test.yaml:5:22: clusters.c1.librdkafka.sasl.password: environment variable KAFKA_PASSWORD \
         is not set (use ${KAFKA_PASSWORD:-default} for a default)"
    );
    assert_eq!(
        err("state_dir: ${1BAD}\n"),
        "test.yaml:1:12: state_dir: invalid environment variable reference `${1BAD}`: use `${NAME}` \
         or `${NAME:-default}` with NAME made of letters, digits and `_` (write `$$` for a literal `$`)"
    );
}

#[test]
fn secret_file_unreadable() {
    let dir = temp_dir("unreadable");
    let missing = dir.join("missing");
    let got = err(&format!(
        "alertmanager:\n  url_file: {}\n",
        missing.display()
    ));
    assert_eq!(
        got,
        format!(
            "test.yaml:2:13: alertmanager.url_file: cannot read {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn key_and_key_file_both() {
    assert_eq!(
        err("clusters:\n  c1:\n    bootstrap: k:9092\n    librdkafka:\n      sasl.password: x\n      sasl.password_file: /run/secrets/kafka\n"),
        "test.yaml:6:7: clusters.c1.librdkafka.sasl.password_file: both `sasl.password` and \
         `sasl.password_file` are given; use only one"
    );
}

#[test]
fn heartbeat_with_outputs() {
    assert_eq!(
        err(&format!("{HB}    outputs: []\n")),
        "test.yaml:9:5: probes[0].outputs: `outputs` is not allowed on a heartbeat probe \
         (`input` and `outputs` are for `type: pipeline`)"
    );
}

#[test]
fn pipeline_rules() {
    assert_eq!(
        err("clusters: { c1: { bootstrap: 'k:9092' } }\nprobes:\n  - name: pl\n    type: pipeline\n    cluster: c1\n    input: { cluster: c1, topic: in, payload: x }\n"),
        "test.yaml:3:5: probes[0].outputs: a pipeline probe needs at least one output \
         (`name`, `cluster`, `topic`, `match`)\n\
         test.yaml:5:5: probes[0].cluster: `cluster` is not allowed on a pipeline probe; set \
         `input.cluster` and each output's `cluster`"
    );
}

#[test]
fn match_with_two_rules() {
    assert_eq!(
        err(&PIPE.replace("{ json: /id }", "{ json: /id, header: x-id }")),
        "test.yaml:9:47: probes[0].outputs[0].match: has `json` and `header`; give exactly one of \
         `json: /pointer`, `header: NAME` or `key: true`"
    );
    assert_eq!(
        err(&PIPE.replace("{ json: /id }", "{ key: false }")),
        "test.yaml:9:47: probes[0].outputs[0].match: `key: false` is not a match rule; give exactly \
         one of `json: /pointer`, `header: NAME` or `key: true`"
    );
}

#[test]
fn key_match_needs_id_in_key_template() {
    let yaml = PIPE
        .replace("payload:", "key: 'k-{{seq}}', payload:")
        .replace("{ json: /id }", "{ key: true }");
    assert_eq!(
        err(&yaml),
        "test.yaml:9:47: probes[0].outputs[0].match: `key: true` matches on the record key, but \
         `input.key` does not contain `{{id}}`; add it, or omit `input.key` (the key is then the canary id)"
    );
}

#[test]
fn unknown_template_placeholder() {
    assert_eq!(
        err(&PIPE.replace("{{id}}\"}'", "{{id}}\",\"t\":\"{{sent}}\"}'")),
        "test.yaml:7:47: probes[0].input.payload: unknown placeholder `{{sent}}`; valid placeholders \
         are {{id}}, {{probe}}, {{run}}, {{seq}}, {{partition}}, {{sent_ns}}, {{sent_rfc3339}}, {{pad}}"
    );
}

#[test]
fn json_match_needs_the_id_in_the_payload() {
    // The pointer is about the pipeline's output, which may be reshaped: a
    // pointer that finds nothing in the input payload is fine.
    ok(&PIPE.replace("{ json: /id }", "{ json: /order/ref }"));
    assert_eq!(
        err(&PIPE.replace("'{\"id\":\"{{id}}\"}'", "'{\"id\":\"{{seq}}\"}'")),
        "test.yaml:9:47: probes[0].outputs[0].match: a `json` match looks for the canary id in the \
         output's value, but `input.payload` does not contain `{{id}}`; put it in the payload"
    );
    assert_eq!(
        err(&PIPE.replace("{ json: /id }", "{ json: id }")),
        "test.yaml:9:62: probes[0].outputs[0].match.json: `id` is not a JSON pointer: it must be \
         empty or start with `/`, e.g. `/order_id`"
    );
}

#[test]
fn duplicate_and_reserved_output_names() {
    let yaml = format!(
        "{PIPE}      - {{ name: out, cluster: c1, topic: o2, match: {{ key: true }} }}\n      - {{ name: input, cluster: c1, topic: o3, match: {{ key: true }} }}\n"
    );
    assert_eq!(
        err(&yaml),
        "test.yaml:10:17: probes[0].outputs[1].name: duplicate output name `out` (also used by outputs[0])\n\
         test.yaml:11:17: probes[0].outputs[2].name: `input` is reserved (it is the `output` label of \
         input-side and heartbeat series); choose another name"
    );
}

#[test]
fn reserved_header_name() {
    assert_eq!(
        err(&PIPE.replace("payload:", "headers: { Slaprobe-Id: x }, payload:")),
        "test.yaml:7:49: probes[0].input.headers.Slaprobe-Id: `Slaprobe-Id` is set by slaprobe on \
         every canary; reserved header names are slaprobe-id, slaprobe-sent-ns"
    );
}

#[test]
fn all_validation_errors_are_reported() {
    let got = err(&format!(
        "server: {{ listen: 'localhost:80' }}\nalertmanager: {{ url: 'am:9093' }}\n{HB}    payload_bytes: 0\n    slos:\n      - {{ sli: latency, objective: 1% }}\n"
    ));
    assert_eq!(
        got,
        "test.yaml:1:19: server.listen: `localhost:80` is not a socket address; use IP:port, e.g. \
         `0.0.0.0:9464` or `[::]:9464`\n\
         test.yaml:2:22: alertmanager.url: must be an http:// or https:// URL with a host, e.g. \
         `http://alertmanager:9093`; got `am:9093`\n\
         test.yaml:11:20: probes[0].payload_bytes: must be between 1 and 1048576 (1 MiB), got 0\n\
         test.yaml:13:9: probes[0].slos[0].threshold: required for a latency SLO (e.g. `threshold: 250ms`)"
    );
}

#[test]
fn directory_merge_duplicate_cluster() {
    let dir = temp_dir("dupcluster");
    write(
        &dir,
        "a.yaml",
        "clusters:\n  primary: { bootstrap: 'a:9092' }\n",
    );
    let b = write(
        &dir,
        "b.yaml",
        "# second\nclusters:\n  primary: { bootstrap: 'b:9092' }\n",
    );
    let got = load(std::slice::from_ref(&dir), &no_env)
        .unwrap_err()
        .to_string();
    assert_eq!(
        got,
        format!(
            "{}:3:3: clusters.primary: duplicate cluster `primary`: already defined at {}:2:3",
            b.display(),
            dir.join("a.yaml").display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn directory_merge_duplicate_server() {
    let dir = temp_dir("dupserver");
    let a = write(&dir, "a.yaml", "server: { listen: '0.0.0.0:1' }\n");
    let b = write(
        &dir,
        "b.yaml",
        "state_dir: /x\nserver:\n  listen: 0.0.0.0:2\n",
    );
    let got = load(std::slice::from_ref(&dir), &no_env)
        .unwrap_err()
        .to_string();
    assert_eq!(
        got,
        format!(
            "{}:2:1: server: already set in {}:1:1; top-level `server` may appear in only one file",
            b.display(),
            a.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_paths() {
    let dir = temp_dir("paths");
    let missing = dir.join("nope.yaml");
    assert_eq!(
        load(std::slice::from_ref(&missing), &no_env)
            .unwrap_err()
            .to_string(),
        format!(
            "{}: cannot read configuration path: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert_eq!(
        load(std::slice::from_ref(&dir), &no_env)
            .unwrap_err()
            .to_string(),
        format!(
            "{}: directory contains no *.yaml or *.yml files",
            dir.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_inputs_do_not_panic() {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    assert!(err(bomb).contains("document too large"));
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(err(&deep).contains("nesting deeper than 64 levels"));
    // yaml-rust2 has its own recursion limit, which surfaces as a syntax error.
    let deeper = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(err(&deeper).contains("recursion limit exceeded"));
    for text in [
        "---\na: 1\n---\nb: 2\n",
        "[1, 2]",
        "probes: 5",
        "? [a]\n: b\n",
        "x: !!binary aGVsbG8=",
        "<<: 5",
        "state_dir: ${X",
        "\u{feff}probes: []",
        "probes:\n  - name: ''\n    type: pipeline\n    input: { cluster: '', topic: '', payload: '' }\n    outputs: [{ name: '', cluster: '', topic: '', match: {} }]\n    slos: [{ sli: latency, objective: nan%, threshold: 0s }]\n",
    ] {
        let _ = load_str("t.yaml", text, &no_env);
    }
}

#[test]
fn file_values_are_strings_and_only_scalars_are_file_references() {
    let dir = temp_dir("typed");
    let n = write(&dir, "n", "512\n");
    assert_eq!(
        err(&format!("{HB}    payload_bytes_file: {}\n", n.display())),
        "test.yaml:9:25: probes[0].payload_bytes: invalid type: string \"512\", expected u64"
    );
    // A cluster that happens to be named `*_file` is still a cluster.
    let c = ok("clusters:\n  eu_file: { bootstrap: 'k:9092' }\n");
    assert!(c.clusters.contains_key("eu_file"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_document_per_file() {
    assert_eq!(
        err("probes: []\n---\nprobes: []\n"),
        "test.yaml:2:1: a file may hold only one YAML document (found a second `---`); split it \
         into separate files in a directory"
    );
}

#[test]
fn a_broken_file_does_not_cause_follow_up_errors() {
    let dir = temp_dir("broken");
    let a = write(
        &dir,
        "a.yaml",
        "clusters:\n  c1: { bootstrap: 'k:9092', x: 1 }\n",
    );
    write(
        &dir,
        "b.yaml",
        "probes:\n  - { name: p, type: heartbeat, cluster: c1, topic: t }\n",
    );
    assert_eq!(
        load(std::slice::from_ref(&dir), &no_env)
            .unwrap_err()
            .to_string(),
        format!(
            "{}:2:30: clusters.c1.x: unknown field `x`, expected one of `bootstrap`, `librdkafka`, `connection_check_interval`, `listeners`",
            a.display()
        )
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn librdkafka_options_are_checked_by_librdkafka() {
    let yaml = "\
clusters:
  c1:
    bootstrap: k:9092
    librdkafka:
      linger.ms: 5
      no.such.property: 1
      acks: sometimes
      sasl.password: hunter2
";
    assert_eq!(
        err(yaml),
        "test.yaml:6:7: clusters.c1.librdkafka.no.such.property: librdkafka rejects this option: No such configuration property: \"no.such.property\"\n\
         test.yaml:7:7: clusters.c1.librdkafka.acks: librdkafka rejects this option: Invalid value for configuration property \"request.required.acks\""
    );
}

#[test]
fn latency_slos_skip_outputs_that_must_filter_the_canary() {
    let yaml = r#"clusters:
  c1:
    bootstrap: k:9092
probes:
  - name: pl
    type: pipeline
    input: { cluster: c1, topic: in, payload: '{"id":"{{id}}"}' }
    outputs:
      - { name: out, cluster: c1, topic: out, match: { json: /id } }
      - { name: audit, cluster: c1, topic: audit, match: { header: slaprobe-id }, expect: none }
    slos:
      - { sli: delivery, objective: 99% }
      - { sli: latency, threshold: 1s, objective: 99% }
"#;
    let c = ok(yaml);
    let names: Vec<String> = c.probes[0].slos.iter().map(|s| s.name("pl")).collect();
    assert_eq!(
        names,
        ["pl:out:delivery", "pl:audit:delivery", "pl:out:latency"]
    );
    let explicit = yaml.replace(
        "      - { sli: latency, threshold: 1s, objective: 99% }\n",
        "      - { sli: latency, threshold: 1s, objective: 99%, output: audit }\n",
    );
    assert_eq!(
        err(&explicit),
        "test.yaml:13:64: probes[0].slos[1].output: output `audit` expects `none` (a filter drops the canary): it has no latency to measure"
    );
}

#[test]
fn huge_durations_are_refused() {
    assert_eq!(
        err(&format!("{HB}    deadline: 100000y\n")),
        "test.yaml:9:15: probes[0].deadline: must be at most 1d (slaprobe probes streams), got 36525000d"
    );
    assert_eq!(
        err(&format!(
            "{HB}    slos:\n      - {{ sli: delivery, objective: 99%, period: 400d }}\n"
        )),
        "test.yaml:10:50: probes[0].slos[0].period: must be at most 365d, got 400d"
    );
}

#[test]
fn external_url_links_alerts_to_the_status_api() {
    let c = ok(&format!(
        "server:\n  external_url: https://slaprobe.example/\n{HB}"
    ));
    assert_eq!(
        c.server.external_url.as_deref(),
        Some("https://slaprobe.example")
    );
    assert_eq!(
        c.server.status_link(),
        "https://slaprobe.example/api/v1/status"
    );
    assert_eq!(ok(HB).server.status_link(), "/api/v1/status");
    assert_eq!(
        err(&format!("server:\n  external_url: slaprobe.example\n{HB}")),
        "test.yaml:2:17: server.external_url: must be an http:// or https:// URL with a host, e.g. `https://slaprobe.example`; got `slaprobe.example`"
    );
}

#[test]
fn alerts_job_severities_and_runbooks() {
    let d = ok(HB);
    assert_eq!(d.alerts, Alerts::default());
    assert_eq!(d.alerts.job, "slaprobe");
    assert_eq!(
        d.alerts
            .runbook(d.server.external_url.as_deref(), "SlaprobeDown"),
        "/runbooks#slaprobedown"
    );
    let c = ok(&format!(
        "server:\n  external_url: https://u:p@slaprobe.example/\n\
         alerts:\n  job: slaprobe-eu1\n  severity: {{ page: critical, ticket: warning }}\n{HB}"
    ));
    assert_eq!(
        (
            c.alerts.job.as_str(),
            c.alerts.page.as_str(),
            c.alerts.ticket.as_str()
        ),
        ("slaprobe-eu1", "critical", "warning")
    );
    assert_eq!(
        c.alerts
            .runbook(c.server.external_url.as_deref(), "SlaprobeSLOBurnRate"),
        "https://slaprobe.example/runbooks#slaprobesloburnrate",
        "under external_url, without its user info"
    );
    let own = ok(&format!(
        "alerts:\n  runbook_url: https://wiki.example/runbooks/\n{HB}"
    ));
    assert_eq!(
        own.alerts
            .runbook(own.server.external_url.as_deref(), "SlaprobeDown"),
        "https://wiki.example/runbooks#slaprobedown"
    );
    assert_eq!(
        err(&format!("alerts:\n  job: ''\n{HB}")),
        "test.yaml:2:8: alerts.job: must name the Prometheus job slaprobe is scraped under, e.g. `slaprobe`"
    );
    assert_eq!(
        err(&format!("alerts:\n  severity: {{ page: x, ticket: x }}\n{HB}")),
        "test.yaml:2:13: alerts.severity: page and ticket are both `x`: routing could not tell them apart"
    );
    assert_eq!(
        err(&format!("alerts:\n  runbook_url: wiki\n{HB}")),
        "test.yaml:2:16: alerts.runbook_url: must be an http:// or https:// URL with a host, e.g. `https://wiki.example/slaprobe-runbooks`; got `wiki`"
    );
    assert!(err(&format!("alerts:\n  severity: {{ pager: x }}\n{HB}")).contains("pager"));
}

#[test]
fn alertmanager_replicas_credentials_and_labels() {
    let dir = temp_dir("am");
    let token = dir.join("token");
    std::fs::write(&token, "s3cr3t-token\n").expect("token");
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem");
    let c = ok(&format!(
        "alertmanager:\n  urls: ['https://am-0:9093', 'https://am-1:9093/prefix']\n  bearer_token_file: {}\n  ca_file: {ca}\n  labels: {{ cluster: eu-1, instance: probe-0 }}\n{HB}",
        token.display()
    ));
    let am = c.alertmanager.expect("alertmanager");
    assert_eq!(am.urls, ["https://am-0:9093", "https://am-1:9093/prefix"]);
    assert_eq!(am.bearer_token.as_deref(), Some("s3cr3t-token"));
    assert!(am.ca_pem.is_some_and(|p| p.contains("BEGIN CERTIFICATE")));
    // Debug shows neither the token nor any password.
    let am = ok(&format!(
        "alertmanager:\n  url: 'https://u:pa55@am:9093'\n  bearer_token_file: {}\n{HB}",
        token.display()
    ))
    .alertmanager
    .expect("am");
    let debug = format!("{am:?}");
    assert!(
        !debug.contains("s3cr3t") && !debug.contains("pa55"),
        "{debug}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn alertmanager_default_labels_match_prometheus_scraping_slaprobe() {
    let am = ok(&format!("alertmanager: {{ url: 'http://am:9093' }}\n{HB}"))
        .alertmanager
        .expect("am");
    let l = am.labels_for("slaprobe", "127.0.0.1:9464".parse().unwrap(), "pod-7");
    assert_eq!(l["job"], "slaprobe");
    assert_eq!(l["instance"], "127.0.0.1:9464");
    let l = am.labels_for("slaprobe", "0.0.0.0:9464".parse().unwrap(), "pod-7");
    assert_eq!(l["instance"], "pod-7:9464");
    let am = ok(&format!(
        "alertmanager: {{ url: 'http://am:9093', labels: {{ instance: 'x:1', env: prod }} }}\n{HB}"
    ))
    .alertmanager
    .expect("am");
    let l = am.labels_for("slaprobe", "0.0.0.0:9464".parse().unwrap(), "pod-7");
    assert_eq!(
        (l["instance"].as_str(), l["env"].as_str(), l["job"].as_str()),
        ("x:1", "prod", "slaprobe")
    );
}

#[test]
fn alertmanager_errors() {
    let dir = temp_dir("am-errors");
    let token = dir.join("token");
    std::fs::write(&token, "t").expect("token");
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").expect("file");
    let cases = [
        (
            "alertmanager: { url: 'http://a:1', urls: ['http://b:1'] }\n".to_string(),
            "test.yaml:1:36: alertmanager.urls: give `url` or `urls`, not both",
        ),
        (
            "alertmanager: { insecure: true }\n".to_string(),
            "test.yaml:1:15: alertmanager: needs `url` (or `urls`, one per Alertmanager replica), e.g. `url: http://alertmanager:9093`",
        ),
        (
            "alertmanager: { urls: [] }\n".to_string(),
            "test.yaml:1:23: alertmanager.urls: must list at least one Alertmanager URL",
        ),
        (
            "alertmanager: { urls: ['http://a:1', 'http://u:pw@b:1'] }\n".to_string(),
            "test.yaml:1:38: alertmanager.urls[1]: basic auth over plain http would send the secret in clear text; use https:// (with `ca_file` for a private CA) or set `insecure: true`",
        ),
        (
            format!("alertmanager: {{ url: 'http://a:1', bearer_token_file: {} }}\n", token.display()),
            "test.yaml:1:22: alertmanager.url: a bearer token over plain http would send the secret in clear text; use https:// (with `ca_file` for a private CA) or set `insecure: true`",
        ),
        (
            format!("alertmanager: {{ url: 'https://a:1', ca_file: {} }}\n", not_pem.display()),
            "alertmanager.ca: holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
        ),
        (
            "alertmanager: { url: 'https://a:1', labels: { 9x: y } }\n".to_string(),
            "test.yaml:1:47: alertmanager.labels.9x: is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
        ),
    ];
    for (yaml, want) in cases {
        let got = err(&format!("{yaml}{HB}"));
        assert!(got.contains(want), "for {yaml}\nwant: {want}\ngot:  {got}");
        assert!(!got.contains("pw@"), "{got}");
    }
    // insecure: true is an explicit choice.
    ok(&format!(
        "alertmanager: {{ url: 'http://u:pw@a:1', insecure: true }}\n{HB}"
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn debug_of_a_config_shows_no_secret() {
    let dir = temp_dir("debug-secrets");
    let header = dir.join("header");
    std::fs::write(&header, "hdr-s3cret").expect("file");
    let key = dir.join("key");
    std::fs::write(&key, "key-s3cret").expect("file");
    let env = env_of(&[("PW", "env-s3cret")]);
    let yaml = format!(
        r#"server: {{ external_url: 'https://u:url-s3cret@x.example' }}
alertmanager: {{ url: 'https://u:am-s3cret@am:9093' }}
clusters:
  c1:
    bootstrap: k:9092
    librdkafka:
      sasl.password: '${{PW}}'
      sasl.oauthbearer.config: 'principal=p extension_x=oauth-s3cret'
      ssl.key.password_file: {}
probes:
  - name: pl
    type: pipeline
    input: {{ cluster: c1, topic: in, payload: '{{"id":"{{{{id}}}}"}}', headers: {{ x-auth_file: {} }} }}
    outputs:
      - {{ name: out, cluster: c1, topic: out, match: {{ json: /id }} }}
"#,
        key.display(),
        header.display()
    );
    let c = load_str("test.yaml", &yaml, &env).expect("valid");
    let debug = format!("{c:?} {c:#?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(debug.contains("<redacted>"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Intervals down to 100 µs per partition are kept (the ticker sends every
/// canary whose time has come at each timer wake); shorter ones are refused.
#[test]
fn intervals_below_100us_are_refused() {
    assert_eq!(
        ok(&format!("{HB}    interval: 100us\n")).probes[0].interval,
        std::time::Duration::from_micros(100)
    );
    assert_eq!(
        err(&format!("{HB}    interval: 50us\n")),
        "test.yaml:9:15: probes[0].interval: must be at least 100us (one canary per partition per interval; the rate is kept down to 100us), got 50us"
    );
    assert!(err(
        "defaults: { interval: 10us }\nclusters: { c1: { bootstrap: 'k:9092' } }\nprobes: []\n"
    )
    .contains("defaults.interval: must be at least 100us"));
}

const LAG_CLUSTERS: &str =
    "clusters:\n  c1: { bootstrap: 'k:9092' }\n  c2: { bootstrap: 'k2:9092' }\nprobes:\n";

#[test]
fn lag_probes_and_pipeline_lag_become_watches() {
    let c = ok(&format!(
        "{LAG_CLUSTERS}  - name: groups
    type: lag
    cluster: c1
    group_pattern: 'orders-.*'
    topics: [orders.raw]
    interval: 30s
    window: 5
    max_partitions: 200
    stalled_for: 10m
    max_lag: 2m
  - name: p
    type: pipeline
    deadline: 1m
    input: {{ cluster: c1, topic: in, payload: '{{{{id}}}}' }}
    outputs:
      - {{ name: out, cluster: c2, topic: out, match: {{ key: true }} }}
    lag: {{ groups: [enricher, publisher] }}
"
    ));
    assert_eq!(c.probes.len(), 1, "a lag probe sends no canaries");
    assert_eq!(
        c.lag.len(),
        3,
        "the lag probe, and the pipeline on both its clusters"
    );
    let w = &c.lag[0];
    assert_eq!(
        (w.probe.as_str(), w.cluster.as_str(), w.pipeline),
        ("groups", "c1", false)
    );
    assert!(w.groups.matches("orders-enricher") && !w.groups.matches("xorders-a"));
    assert_eq!(w.topics, ["orders.raw"]);
    assert_eq!(
        (
            w.interval,
            w.window,
            w.max_partitions,
            w.stalled_for,
            w.max_lag
        ),
        (
            Duration::from_secs(30),
            5,
            200,
            Duration::from_secs(600),
            Duration::from_secs(120)
        )
    );
    let clusters: Vec<&str> = c.lag[1..].iter().map(|w| w.cluster.as_str()).collect();
    assert_eq!(clusters, ["c1", "c2"]);
    let p = &c.lag[1];
    assert!(p.pipeline);
    assert_eq!(p.groups.promql_regex(), "enricher|publisher");
    // Defaults: 10 s, 10 reads, 5m; a pipeline's max_lag is its deadline.
    assert_eq!(
        (p.interval, p.window, p.stalled_for, p.max_lag),
        (
            Duration::from_secs(10),
            10,
            Duration::from_secs(300),
            Duration::from_secs(60)
        )
    );
}

#[test]
fn lag_config_errors_name_the_key() {
    let e = err(&format!(
        "{LAG_CLUSTERS}  - name: g\n    type: lag\n    cluster: c1\n"
    ));
    assert!(
        e.contains("probes[0].groups: name the consumer groups to watch"),
        "{e}"
    );
    let e = err(&format!(
        "{LAG_CLUSTERS}  - name: g\n    type: lag\n    cluster: c1\n    groups: [a]\n    group_pattern: 'a.*'\n"
    ));
    assert!(
        e.contains("probes[0].group_pattern: set either `groups`"),
        "{e}"
    );
    let e = err(&format!(
        "{LAG_CLUSTERS}  - name: g\n    type: lag\n    cluster: c1\n    group_pattern: 'a(('\n"
    ));
    assert!(
        e.contains("probes[0].group_pattern: invalid regular expression `a((`"),
        "{e}"
    );
    let e = err(&format!(
        "{LAG_CLUSTERS}  - name: g\n    type: lag\n    cluster: c9\n    groups: [a]\n    window: 1\n    interval: 100ms\n    deadline: 5s\n"
    ));
    assert!(e.contains("probes[0].cluster: unknown cluster `c9`"), "{e}");
    assert!(
        e.contains("probes[0].window: must be between 2 and 1000 reads, got 1"),
        "{e}"
    );
    assert!(e.contains("probes[0].interval: must be at least 1s"), "{e}");
    assert!(
        e.contains("probes[0].deadline: `deadline` is not allowed on a lag probe"),
        "{e}"
    );
    let e = err(&format!(
        "{LAG_CLUSTERS}  - name: h\n    type: heartbeat\n    cluster: c1\n    topic: t\n    groups: [a]\n"
    ));
    assert!(
        e.contains("probes[0].groups: `groups` is only allowed on a `type: lag` probe"),
        "{e}"
    );
    let e = err(&format!(
        "{LAG_CLUSTERS}  - name: h\n    type: heartbeat\n    cluster: c1\n    topic: t\n    lag: {{ groups: [a] }}\n"
    ));
    assert!(
        e.contains("probes[0].lag: `lag` is not allowed on a heartbeat probe"),
        "{e}"
    );
    let e = err(&format!(
        "{LAG_CLUSTERS}  - name: g1\n    type: lag\n    cluster: c1\n    groups: [a, a]\n  - name: g2\n    type: lag\n    cluster: c1\n    groups: [b, a]\n"
    ));
    assert!(
        e.contains("probes[0].groups.1: group `a` is listed twice"),
        "{e}"
    );
    assert!(
        e.contains(
            "probes[1].groups: consumer group `a` on cluster `c1` is already watched by probe `g1`"
        ),
        "{e}"
    );
}

#[test]
fn named_groups_are_escaped_for_promql() {
    let g = GroupSelector::Named(vec!["orders-enricher".into(), "a.b(c)".into()]);
    assert_eq!(g.promql_regex(), r"orders-enricher|a\.b\(c\)");
}

mod actions;
mod connections;
mod poison;
