//! A pipeline probe's `poison:`: the probe it becomes, and every error.

use std::time::Duration;

use super::{err, ok};
use crate::config::*;

/// A pipeline with a sink and a dead-letter output; `{poison}` is the
/// probe's `poison:` block and `{slos}` its `slos:` entries.
fn dlq(poison: &str, slos: &str) -> String {
    format!(
        r#"clusters: {{ c: {{ bootstrap: 'k:9092' }} }}
probes:
  - name: orders
    type: pipeline
    interval: 1s
    input: {{ cluster: c, topic: in, payload: '{{"id":"{{{{id}}}}"}}', headers: {{ src: probe }} }}
{poison}    outputs:
      - {{ name: sink, cluster: c, topic: out, match: {{ json: /id }} }}
      - {{ name: dlq, cluster: c, topic: dlq, match: {{ header: slaprobe-id }}, expect: none, poison: exactly_once }}
    slos:
      - {{ sli: delivery, objective: 99% }}
{slos}"#
    )
}

#[test]
fn poison_canaries_are_a_probe_of_their_own() {
    let c = ok(&dlq(
        "    poison: { every: 5, payload: '{\"id\":\"{{id}}\",\"amount\":\"x\"}', headers: { x-poison: 'yes', src: bad } }\n",
        "      - { sli: delivery, kind: poison, objective: 99.5% }\n",
    ));
    let names: Vec<&str> = c.probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["orders", "orders.poison"]);
    let (normal, poison) = (&c.probes[0], &c.probes[1]);
    assert_eq!(normal.poison_of, None);
    assert_eq!(poison.poison_of.as_deref(), Some("orders"));
    assert_eq!(poison.interval, Duration::from_secs(5));
    assert_eq!(poison.deadline, normal.deadline);
    let (ProbeKind::Pipeline(n), ProbeKind::Pipeline(p)) = (&normal.kind, &poison.kind) else {
        panic!("both are pipelines");
    };
    assert_eq!(p.input.topic, "in");
    assert_eq!(p.input.payload, "{\"id\":\"{{id}}\",\"amount\":\"x\"}");
    // The poison headers are added to the input's, overriding a name.
    assert_eq!(p.input.headers["x-poison"], "yes");
    assert_eq!(p.input.headers["src"], "bad");
    assert_eq!(n.input.headers.get("x-poison"), None);
    // Each output's expectation of its kind of canary.
    let expects = |pl: &Pipeline| -> Vec<(String, Expect)> {
        pl.outputs
            .iter()
            .map(|o| (o.name.clone(), o.expect))
            .collect()
    };
    assert_eq!(
        expects(n),
        [
            ("sink".into(), Expect::ExactlyOnce),
            ("dlq".into(), Expect::None)
        ]
    );
    assert_eq!(
        expects(p),
        [
            ("sink".into(), Expect::None),
            ("dlq".into(), Expect::ExactlyOnce)
        ]
    );
    // SLOs go to the probe of their kind.
    let slos = |pr: &Probe| -> Vec<String> { pr.slos.iter().map(|s| s.name(&pr.name)).collect() };
    assert_eq!(
        slos(normal),
        ["orders:sink:delivery", "orders:dlq:delivery"]
    );
    assert_eq!(
        slos(poison),
        ["orders.poison:sink:delivery", "orders.poison:dlq:delivery"]
    );
    assert_eq!(poison.slos[0].objective, 0.995);
}

#[test]
fn poison_defaults_to_one_in_ten_with_the_input_payload() {
    let c = ok(&dlq("    poison: { headers: { x-poison: 'yes' } }\n", ""));
    let ProbeKind::Pipeline(p) = &c.probes[1].kind else {
        panic!("a pipeline");
    };
    assert_eq!(c.probes[1].interval, Duration::from_secs(10));
    assert_eq!(p.input.payload, "{\"id\":\"{{id}}\"}");
}

#[test]
fn poison_errors_name_the_key() {
    assert_eq!(
        err(&dlq("    poison: { every: 5 }\n", "")),
        "test.yaml:7:13: probes[0].poison: poison canaries must differ from the normal ones: give a \
         `payload` your pipeline rejects (e.g. invalid JSON), a `key`, or `headers` with the marker it rejects"
    );
    assert_eq!(
        err(&dlq(
            "    poison: { every: 0, payload: '{\"id\":\"{{id}}\",\"bad\":1}' }\n",
            ""
        )),
        "test.yaml:7:22: probes[0].poison.every: must be between 1 and 10000 (one poison canary \
         per partition every N intervals), got 0"
    );
    // 1s x 40 is past the 30 s deadline.
    assert_eq!(
        err(&dlq("    poison: { every: 40, payload: '{\"id\":\"{{id}}\",\"bad\":1}' }\n", "")),
        "test.yaml:7:15: probes[0].poison.every: poison canaries go out every 40s (interval 1s x \
         every 40): the deadline must be greater, got 30s (the probe's deadline; set `poison.deadline`)"
    );
    assert_eq!(
        err(&dlq(
            "    poison: { payload: 'x', headers: { slaprobe-id: x } }\n",
            ""
        )),
        "test.yaml:7:40: probes[0].poison.headers.slaprobe-id: `slaprobe-id` is set by slaprobe \
         on every canary; reserved header names are slaprobe-id, slaprobe-sent-ns\n\
         test.yaml:9:47: probes[0].outputs[0].match: a `json` match looks for the canary id in the \
         value, but `poison.payload` does not contain `{{id}}`; put it in the poison payload too"
    );
    // The sink matches `json: /id`: it could never see a poison canary
    // whose value is not JSON.
    assert_eq!(
        err(&dlq("    poison: { payload: '{\"id\":\"{{id}}\", broken' }\n", "")),
        "test.yaml:9:47: probes[0].outputs[0].match: a `json` match cannot find the id in a poison \
         canary, whose value is not JSON (`poison.payload`): one at output `sink` would never be seen \
         (a leak unseen, or every one lost); match this output on `header: slaprobe-id` or `key: true`"
    );
    assert_eq!(
        err(&dlq("    poison: { payload: '{{nope}}' }\n", "")),
        "test.yaml:7:24: probes[0].poison.payload: unknown placeholder `{{nope}}`; valid placeholders \
         are {{id}}, {{probe}}, {{run}}, {{seq}}, {{partition}}, {{sent_ns}}, {{sent_rfc3339}}, {{pad}}"
    );
}

#[test]
fn poison_keys_need_a_poison_block() {
    let yaml = dlq(
        "",
        "      - { sli: delivery, kind: poison, objective: 99% }\n",
    );
    assert_eq!(
        err(&yaml),
        "test.yaml:9:92: probes[0].outputs[1].poison: the probe sends no poison canaries; add \
         `poison:` to the probe (the poison canaries' payload or headers)\n\
         test.yaml:12:32: probes[0].slos[1].kind: an SLO of poison canaries, but the probe sends \
         none; add `poison:` to the probe (the poison canaries' payload or headers)"
    );
    assert_eq!(
        err("clusters: { c: { bootstrap: 'k:9092' } }\nprobes:\n  - { name: hb, type: heartbeat, cluster: c, topic: t, poison: { payload: x } }\n"),
        "test.yaml:3:56: probes[0].poison: `poison` is only allowed on a pipeline probe (it sends \
         canaries the pipeline must reject)"
    );
    assert_eq!(
        err("clusters: { c: { bootstrap: 'k:9092' } }\nprobes:\n  - { name: l, type: lag, cluster: c, groups: [g], poison: { payload: x } }\n"),
        "test.yaml:3:52: probes[0].poison: `poison` is not allowed on a lag probe (it sends no \
         canaries; it reads `groups` on `cluster`)"
    );
}

#[test]
fn the_poison_probe_name_must_be_free() {
    let yaml = format!(
        "{}  - {{ name: orders.poison, type: heartbeat, cluster: c, topic: t }}\n",
        dlq(
            "    poison: { payload: '{\"id\":\"{{id}}\",\"bad\":1}' }\n",
            ""
        )
    );
    let e = err(&yaml);
    assert!(
        e.starts_with("test.yaml:13:13: probes[1].name: duplicate probe name `orders.poison`: already used at test.yaml:7:"),
        "{e}"
    );
}
