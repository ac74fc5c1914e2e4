//! slaprobe as a SASL_SSL client of Apache Kafka: SCRAM-SHA-512 over TLS
//! with a private CA, under Kafka's StandardAuthorizer. Heartbeat,
//! pipeline and `type: lag` probes work as a principal that has exactly
//! the ACLs docs/operations.md lists; each of those ACLs taken away, a
//! wrong password and an untrusted CA each show as a classified error in
//! the metrics and the log, never as a silent outage or a false loss.
//!
//! Needs the suite's Kafka cluster (`scripts/kafka/cluster.sh`, which
//! `scripts/test.sh` starts): its SASL_SSL listeners, CA and users
//! (`SLAPROBE_TEST_KAFKA_*`). ACLs and SCRAM users are managed through
//! the PLAINTEXT listener, whose principal is a super user
//! (`tests/clients/kafka_admin.py`); each test has users of its own.
//!
//! Over 600 lines: the connection checks' test is here too, for the same
//! listeners, CA and users (a file of its own would repeat these helpers).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{metric, poll_until, scratch, Python, Slaprobe};

/// The suite's Kafka cluster, as `scripts/kafka/cluster.sh` describes it.
struct Secure {
    /// PLAINTEXT: the tests' own administration and stages.
    plain: String,
    /// SASL_SSL: slaprobe's.
    sasl: String,
    ca: String,
    other_ca: String,
}

fn secure() -> Option<Secure> {
    let var = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    let found = (|| {
        Some(Secure {
            plain: var("SLAPROBE_TEST_KAFKA_BOOTSTRAP")?,
            sasl: var("SLAPROBE_TEST_KAFKA_SASL_BOOTSTRAP")?,
            ca: var("SLAPROBE_TEST_KAFKA_CA")?,
            other_ca: var("SLAPROBE_TEST_KAFKA_OTHER_CA")?,
        })
    })();
    if found.is_none() {
        common::missing_prerequisite(
            "the suite's Kafka cluster with SASL_SSL (SLAPROBE_TEST_KAFKA_*)",
            "run scripts/test.sh, or source the env file scripts/kafka/cluster.sh start writes",
        );
    }
    found
}

/// `kafka_admin.py BOOTSTRAP args...`; its stdout.
fn admin(sec: &Secure, args: &[&str]) -> String {
    let mut all = vec![sec.plain.as_str()];
    all.extend_from_slice(args);
    Python::run("kafka_admin.py", &all)
}

/// A SCRAM user of this test's own: (name, password).
fn new_user(sec: &Secure) -> (String, String) {
    let name = format!("it-{:08x}", rand::random::<u32>());
    let password = format!("pw-{:016x}", rand::random::<u64>());
    admin(sec, &["user", &name, &password]);
    (name, password)
}

/// Replaces every ACL of `user` with `acls` ((type, name, operation)).
fn set_acls(sec: &Secure, user: &str, acls: &[(&str, &str, &str)]) {
    let json = serde_json::to_string(acls).expect("json");
    admin(sec, &["acls", &format!("User:{user}"), &json]);
}

/// The `clusters:` section: the SASL_SSL listeners as `user`, trusting
/// `ca`.
fn cluster_yaml(sec: &Secure, user: &str, password: &str, ca: &str) -> String {
    format!(
        r#"clusters:
  k:
    bootstrap: '{}'
    librdkafka:
      security.protocol: SASL_SSL
      sasl.mechanism: SCRAM-SHA-512
      sasl.username: '{user}'
      sasl.password: '{password}'
      ssl.ca.location: '{ca}'
"#,
        sec.sasl
    )
}

/// The topics and clients of one test: a heartbeat topic, a pipeline's
/// input and output with a stage between them, and a topic slaprobe does
/// not probe with a consumer group keeping up on it (for the lag probe).
struct Topics {
    heartbeat: String,
    input: String,
    output: String,
    watched: String,
    /// The stage (an independent consumer group, on the PLAINTEXT
    /// listener), the watched topic's producer and its group's member.
    _clients: [Python; 3],
}

impl Topics {
    fn create(sec: &Secure) -> Topics {
        let suffix = format!("{:016x}", rand::random::<u64>());
        let (heartbeat, input, output, watched) = (
            format!("it-hb-{suffix}"),
            format!("it-in-{suffix}"),
            format!("it-out-{suffix}"),
            format!("it-lag-{suffix}"),
        );
        common::create_topics(&sec.plain, &[&heartbeat, &input, &output, &watched], 3);
        let plain = sec.plain.as_str();
        let stage = Python::start("delay_stage.py", &[plain, &input, &output, "0"]);
        let group = format!("it-group-{suffix}");
        let producer = Python::start("lag_group.py", &[plain, "produce", &watched]);
        let member = Python::start("lag_group.py", &[plain, "keepup", &watched, &group]);
        Topics {
            heartbeat,
            input,
            output,
            watched,
            _clients: [stage, producer, member],
        }
    }

    /// The group the lag probe watches (on `watched`).
    fn group(&self) -> String {
        self.watched.replacen("it-lag-", "it-group-", 1)
    }

    /// A heartbeat probe, a pipeline probe and a lag probe on the stage's
    /// group, all on cluster `k`.
    fn probes(&self) -> String {
        format!(
            r#"probes:
  - name: hb
    type: heartbeat
    cluster: k
    topic: {hb}
    interval: 200ms
    deadline: 5s
  - name: pipe
    type: pipeline
    interval: 200ms
    deadline: 10s
    input: {{ cluster: k, topic: {input}, payload: '{{{{"id":"{{{{id}}}}"}}}}' }}
    outputs:
      - {{ name: out, cluster: k, topic: {output}, match: {{ header: slaprobe-id }} }}
  - name: groups
    type: lag
    cluster: k
    groups: [{group}]
    topics: [{watched}]
    interval: 1s
"#,
            hb = self.heartbeat,
            input = self.input,
            output = self.output,
            group = self.group(),
            watched = self.watched,
        )
    }

    /// What docs/operations.md says a principal needs for these probes:
    /// each ACL with the check that shows it missing.
    fn documented_acls(&self) -> Vec<(Acl, Missing)> {
        let t = |name: &str, op: &'static str| Acl {
            kind: "topic",
            name: name.to_string(),
            operation: op,
        };
        let g = |name: &str, op: &'static str| Acl {
            kind: "group",
            name: name.to_string(),
            operation: op,
        };
        // Write and Read imply Describe (Kafka's ACL rules): a topic that
        // is written or read needs no Describe of its own. Without its only
        // ACL, a pipeline's input or output topic cannot even be described:
        // its metadata request is refused.
        vec![
            (t(&self.heartbeat, "write"), Missing::Produce("hb")),
            (t(&self.heartbeat, "read"), Missing::Consume("hb")),
            (t(&self.input, "write"), Missing::Client("producer")),
            (t(&self.output, "read"), Missing::Client("consumer")),
            // The consumers' group id (`slaprobe`): never joined nor
            // committed to, but librdkafka looks its coordinator up.
            (g("slaprobe", "describe"), Missing::Client("consumer")),
            (g(&self.group(), "describe"), Missing::LagRead("offsets")),
            // Read: the records at the group's committed offsets (lag in
            // seconds); it implies Describe, for the watermarks.
            (t(&self.watched, "read"), Missing::LagRead("watermarks")),
        ]
    }
}

/// One ACL: (resource type, name, operation).
#[derive(Debug, Clone)]
struct Acl {
    kind: &'static str,
    name: String,
    operation: &'static str,
}

/// How a missing ACL shows: the metric that counts it, by class
/// `authorization`.
#[derive(Debug, Clone, Copy)]
enum Missing {
    /// `slaprobe_kafka_errors_total{client, error="authorization"}`.
    Client(&'static str),
    /// `slaprobe_produce_errors_total{probe, error="authorization"}`.
    Produce(&'static str),
    /// `slaprobe_consume_errors_total{probe, error="authorization"}`.
    Consume(&'static str),
    /// `slaprobe_consumergroup_read_errors_total{request}`.
    LagRead(&'static str),
}

impl Missing {
    fn value(self, s: &Slaprobe) -> Option<f64> {
        let (name, labels): (&str, Vec<(&str, &str)>) = match self {
            Missing::Client(client) => (
                "slaprobe_kafka_errors_total",
                vec![("client", client), ("error", "authorization")],
            ),
            Missing::Produce(probe) => (
                "slaprobe_produce_errors_total",
                vec![("probe", probe), ("error", "authorization")],
            ),
            Missing::Consume(probe) => (
                "slaprobe_consume_errors_total",
                vec![("probe", probe), ("error", "authorization")],
            ),
            Missing::LagRead(request) => (
                "slaprobe_consumergroup_read_errors_total",
                vec![("request", request)],
            ),
        };
        s.value_if_up(name, &labels)
    }
}

fn apply(sec: &Secure, user: &str, acls: &[&Acl]) {
    let list: Vec<(&str, &str, &str)> = acls
        .iter()
        .map(|a| (a.kind, a.name.as_str(), a.operation))
        .collect();
    set_acls(sec, user, &list);
}

fn delivered(s: &Slaprobe, probe: &str) -> f64 {
    s.value_if_up("slaprobe_canaries_delivered_total", &[("probe", probe)])
        .unwrap_or(0.0)
}

/// The group's status as the status API shows it, and its read error.
fn group_status(s: &Slaprobe, group: &str) -> Option<(String, Option<String>)> {
    let (_, body) = common::http_get(s.addr, "/api/v1/status").ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["consumer_groups"].as_array()?.iter().find_map(|g| {
        (g["group"] == group).then(|| {
            (
                g["status"].as_str().unwrap_or_default().to_string(),
                g["error"].as_str().map(str::to_string),
            )
        })
    })
}

/// A fresh principal holding exactly the ACLs of docs/operations.md on
/// fresh topics, and the config that runs the probes as it.
struct Documented {
    topics: Topics,
    user: String,
    acls: Vec<(Acl, Missing)>,
    yaml: String,
}

impl Documented {
    fn new(sec: &Secure) -> Self {
        let topics = Topics::create(sec);
        let (user, password) = new_user(sec);
        let acls = topics.documented_acls();
        let all: Vec<&Acl> = acls.iter().map(|(a, _)| a).collect();
        apply(sec, &user, &all);
        let yaml = cluster_yaml(sec, &user, &password, &sec.ca) + &topics.probes();
        Documented {
            topics,
            user,
            acls,
            yaml,
        }
    }
}

/// With exactly the documented ACLs, every probe works and nothing is
/// refused; with any one of them taken away, its own classified error
/// shows within seconds.
#[test]
fn the_documented_acls_are_exactly_enough() {
    let Some(sec) = secure() else { return };
    let Documented {
        topics,
        user,
        acls,
        yaml,
    } = Documented::new(&sec);
    let dir = scratch("acls");

    let s = Slaprobe::start(&dir, "all", &yaml);
    let working = poll_until(Duration::from_secs(60), || {
        delivered(&s, "hb") >= 10.0
            && delivered(&s, "pipe") >= 10.0
            && group_status(&s, &topics.group()).is_some_and(|(st, e)| st == "OK" && e.is_none())
    });
    let text = s.metrics();
    assert!(
        working,
        "heartbeat, pipeline and lag work with the documented ACLs:\n{text}\nlog:\n{}",
        s.log()
    );
    for (name, labels) in [
        ("slaprobe_kafka_errors_total", [("error", "authorization")]),
        (
            "slaprobe_produce_errors_total",
            [("error", "authorization")],
        ),
        (
            "slaprobe_consume_errors_total",
            [("error", "authorization")],
        ),
    ] {
        assert_eq!(metric(&text, name, &labels), 0.0, "{name}:\n{text}");
    }
    assert_eq!(
        metric(&text, "slaprobe_consumergroup_read_errors_total", &[]),
        0.0,
        "{text}"
    );
    // The groups' offsets came through the reader's own SASL_SSL
    // connections, batched, not librdkafka's request per group.
    assert!(!s.log().contains("read through librdkafka"), "{}", s.log());
    s.stop_cleanly();

    for (i, (gone, shows)) in acls.iter().enumerate() {
        let rest: Vec<&Acl> = acls
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (a, _))| a)
            .collect();
        apply(&sec, &user, &rest);
        let s = Slaprobe::start(&dir, &format!("without-{i}"), &yaml);
        let seen = poll_until(Duration::from_secs(30), || {
            shows.value(&s).is_some_and(|v| v > 0.0)
        });
        assert!(
            seen,
            "without {gone:?}: {shows:?} counts it\n{}\nlog:\n{}",
            s.metrics(),
            s.log()
        );
        assert!(
            s.log().contains("authorization") || s.log().contains("Authorization"),
            "without {gone:?}: logged\n{}",
            s.log()
        );
        eprintln!("without {gone:?}: {shows:?} counts it");
        s.stop_cleanly();
    }
}

/// Over SASL_SSL as a super user: a heartbeat and a pipeline probe deliver
/// every canary, none lost.
#[test]
fn heartbeat_and_pipeline_deliver_over_sasl_ssl_with_scram() {
    let Some(sec) = secure() else { return };
    let topics = Topics::create(&sec);
    let password = std::env::var("SLAPROBE_TEST_KAFKA_ADMIN_PASSWORD").unwrap_or_default();
    let dir = scratch("sasl");
    let yaml = cluster_yaml(&sec, "admin", &password, &sec.ca) + &topics.probes();
    let s = Slaprobe::start(&dir, "sasl", &yaml);
    assert!(
        poll_until(Duration::from_secs(60), || delivered(&s, "hb") >= 20.0
            && delivered(&s, "pipe") >= 20.0),
        "both deliver over SASL_SSL:\n{}\nlog:\n{}",
        s.metrics(),
        s.log()
    );
    let text = s.metrics();
    for name in [
        "slaprobe_canaries_lost_total",
        "slaprobe_produce_errors_total",
        "slaprobe_consume_errors_total",
    ] {
        assert_eq!(metric(&text, name, &[]), 0.0, "{name}:\n{text}");
    }
    s.stop_cleanly();
}

/// A run that cannot get in (`what` misconfigured) says why: its clients'
/// errors counted as `class`, a log line naming the class, /readyz not
/// ready, and no canary counted lost.
fn refused(name: &str, yaml: String, class: &str) {
    let dir = scratch(name);
    let s = Slaprobe::start(&dir, name, &yaml);
    let counted = poll_until(Duration::from_secs(30), || {
        s.value_if_up("slaprobe_kafka_errors_total", &[("error", class)])
            .is_some_and(|v| v > 0.0)
    });
    assert!(
        counted,
        "{name}: slaprobe_kafka_errors_total{{error=\"{class}\"}}\n{}\nlog:\n{}",
        s.metrics(),
        s.log()
    );
    assert!(
        s.log().contains(&format!("class=\"{class}\"")),
        "{name}: logged with its class:\n{}",
        s.log()
    );
    assert!(!s.ready(), "{name}: not ready");
    assert_eq!(s.value("slaprobe_canaries_lost_total", &[]), 0.0);
    s.stop_cleanly();
}

#[test]
fn a_wrong_password_is_an_authentication_error() {
    let Some(sec) = secure() else { return };
    let topics = Topics::create(&sec);
    let (user, _) = new_user(&sec);
    let yaml = cluster_yaml(&sec, &user, "not-the-password", &sec.ca) + &topics.probes();
    refused("wrong-password", yaml, "authentication");
}

#[test]
fn an_untrusted_ca_is_a_tls_error() {
    let Some(sec) = secure() else { return };
    let topics = Topics::create(&sec);
    let (user, password) = new_user(&sec);
    let yaml = cluster_yaml(&sec, &user, &password, &sec.other_ca) + &topics.probes();
    refused("untrusted-ca", yaml, "tls");
}

/// The principal's password changed under a running prober (a rotation
/// gone wrong): at its next re-authentication the cluster refuses it, and
/// the canaries it cannot produce are failed produces of class
/// `authentication`.
#[test]
fn a_password_changed_under_a_running_prober_is_an_authentication_error() {
    let Some(sec) = secure() else { return };
    let Documented { user, yaml, .. } = Documented::new(&sec);
    let dir = scratch("rotated");
    let s = Slaprobe::start(&dir, "rotated", &yaml);
    assert!(
        poll_until(Duration::from_secs(60), || delivered(&s, "hb") >= 10.0),
        "delivers; log:\n{}",
        s.log()
    );
    admin(&sec, &["user", &user, "a-new-password"]);
    let refused = poll_until(Duration::from_secs(60), || {
        s.value_if_up(
            "slaprobe_produce_errors_total",
            &[("probe", "hb"), ("error", "authentication")],
        )
        .is_some_and(|v| v > 0.0)
    });
    assert!(
        refused,
        "produce errors of class authentication:\n{}\nlog:\n{}",
        s.metrics(),
        s.log()
    );
    assert!(s.log().contains("class=\"authentication\""), "{}", s.log());
    s.stop_cleanly();
}

/// `openssl x509 -checkend SECONDS` on `cert`: whether it is still valid
/// then (an independent reading of its end of validity).
fn valid_in(cert: &Path, seconds: i64) -> bool {
    Command::new("openssl")
        .args(["x509", "-noout", "-checkend", &seconds.to_string(), "-in"])
        .arg(cert)
        .output()
        .expect("openssl")
        .status
        .success()
}

/// Connection checks on the SASL_SSL listener time TCP, TLS, ApiVersions
/// and SCRAM on each broker and read the certificate's expiry (the suite's
/// broker certificate is issued for 10 days: within the 14 days of
/// SlaprobeTLSCertificateExpiring); a listener with the wrong password
/// fails at `sasl` (`sasl_auth_failed`), one trusting another CA at `tls`
/// (`tls_untrusted`), and that one still says when the certificate
/// expires.
#[test]
fn connection_checks_time_each_stage_and_classify_each_refusal() {
    let Some(sec) = secure() else { return };
    let (user, password) = new_user(&sec);
    let topic = format!("it-conn-{:08x}", rand::random::<u32>());
    common::create_topics(&sec.plain, &[&topic], 3);
    let listener = |name: &str, password: &str, ca: &str| {
        format!(
            "      - name: {name}\n        bootstrap: '{}'\n        librdkafka: {{ security.protocol: SASL_SSL, sasl.mechanism: SCRAM-SHA-512, sasl.username: '{user}', sasl.password: '{password}', ssl.ca.location: '{ca}' }}\n",
            sec.sasl
        )
    };
    let yaml = format!(
        "clusters:\n  k:\n    bootstrap: '{}'\n    connection_check_interval: 1s\n    listeners:\n{}{}{}probes:\n  - name: hb\n    type: heartbeat\n    cluster: k\n    topic: {topic}\n",
        sec.plain,
        listener("sasl_ssl", &password, &sec.ca),
        listener("wrong_password", "not-the-password", &sec.ca),
        listener("untrusted", &password, &sec.other_ca),
    );
    let dir = scratch("connections");
    let s = Slaprobe::start(&dir, "connections", &yaml);
    let value =
        |name: &str, labels: &[(&str, &str)]| common::metric_if_present(&s.metrics(), name, labels);
    let up = |l: &str, b: &str| {
        value(
            "slaprobe_broker_connection_up",
            &[("listener", l), ("broker", b)],
        )
    };
    let errors = |l: &str, stage: &str, error: &str| {
        value(
            "slaprobe_broker_connection_errors_total",
            &[("listener", l), ("stage", stage), ("error", error)],
        )
        .unwrap_or(0.0)
    };
    let checked = poll_until(Duration::from_secs(60), || {
        ["1", "2", "3"]
            .iter()
            .all(|b| up("default", b) == Some(1.0) && up("sasl_ssl", b) == Some(1.0))
            && errors("wrong_password", "sasl", "sasl_auth_failed") > 0.0
            && errors("untrusted", "tls", "tls_untrusted") > 0.0
    });
    assert!(checked, "{}\nlog:\n{}", s.metrics(), s.log());
    let text = s.metrics();
    for stage in ["tcp", "tls", "api_versions", "sasl"] {
        let n = metric(
            &text,
            "slaprobe_broker_connection_seconds_count",
            &[("listener", "sasl_ssl"), ("broker", "1"), ("stage", stage)],
        );
        assert!(n >= 1.0, "sasl_ssl stage {stage} timed:\n{text}");
    }
    for stage in ["tls", "sasl"] {
        assert!(
            common::metric_if_present(
                &text,
                "slaprobe_broker_connection_seconds_count",
                &[("listener", "default"), ("stage", stage)],
            )
            .is_none(),
            "PLAINTEXT has no {stage} stage"
        );
    }
    assert_eq!(up("wrong_password", "bootstrap"), Some(0.0));
    assert_eq!(up("untrusted", "bootstrap"), Some(0.0));
    let cert = Path::new(&sec.ca).with_file_name("server.pem");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    for (listener, broker) in [("sasl_ssl", "2"), ("untrusted", "bootstrap")] {
        let expiry = metric(
            &text,
            "slaprobe_tls_certificate_expiry_timestamp_seconds",
            &[("listener", listener), ("broker", broker)],
        ) as i64;
        let left = expiry - now;
        assert!(
            valid_in(&cert, left - 120) && !valid_in(&cert, left + 120),
            "{listener}: {expiry} is the certificate's end of validity (openssl x509 -checkend)"
        );
        assert!(
            (0..14 * 86_400).contains(&left),
            "{listener}: expires within 14 days ({left} s)"
        );
    }
    assert!(
        s.log().contains("broker connection check failed"),
        "a failing listener is logged:\n{}",
        s.log()
    );
    let log = s.log();
    let status = s.stop();
    assert!(status.success(), "{status}; log:\n{log}");
}
