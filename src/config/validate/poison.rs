//! A pipeline probe's `poison:`: canaries the pipeline must reject, sent
//! besides the normal ones and looked for at the same outputs with their own
//! expectations (a dead-letter queue expects them, the sink must not see
//! them). They become a probe of their own, `<name>.poison`, so every
//! outcome, SLI, SLO, alert and saved state of theirs is kept apart from the
//! normal canaries' by the `probe` label, through the same code.

use super::probes::expect;
use super::{At, Validator, MAX_PROBE_DURATION};
use crate::canary::template::{Placeholder, Template, Values};
use crate::config::model::*;
use crate::config::raw::{RawKind, RawPoison, RawProbe};
use crate::util::format::duration as format_duration;

/// Poison canaries per normal round when `every` is not given: one in ten.
pub(crate) const DEFAULT_POISON_EVERY: u64 = 10;
const MAX_POISON_EVERY: u64 = 10_000;

/// The suffix of the poison canaries' probe name.
pub(crate) const POISON_SUFFIX: &str = ".poison";

impl Validator<'_> {
    /// The probe of `parent`'s poison canaries, if it has `poison:`; every
    /// `poison` key elsewhere in the probe (outputs, SLOs) is checked here
    /// too.
    pub(super) fn poison(&mut self, at: &At<'_>, rp: &RawProbe, parent: &Probe) -> Option<Probe> {
        let Some(raw) = &rp.poison else {
            self.poison_keys_without_poison(at, rp);
            return None;
        };
        let ProbeKind::Pipeline(pipeline) = &parent.kind else {
            self.err(at.at_key(
                "poison",
                "`poison` is only allowed on a pipeline probe (it sends canaries the pipeline must reject)",
            ));
            return None;
        };
        let pat = at.child("poison");
        let every = match raw.every {
            None => DEFAULT_POISON_EVERY,
            Some(n) if (1..=MAX_POISON_EVERY).contains(&n) => n,
            Some(n) => {
                self.err(pat.at_val(
                    "every",
                    format!("must be between 1 and {MAX_POISON_EVERY} (one poison canary per partition every N intervals), got {n}"),
                ));
                DEFAULT_POISON_EVERY
            }
        };
        let interval = parent
            .interval
            .saturating_mul(u32::try_from(every).unwrap_or(u32::MAX));
        if interval > MAX_PROBE_DURATION {
            self.err(pat.at_val(
                "every",
                format!(
                    "sends a poison canary every {} (interval {} x {every}); at most {} apart",
                    format_duration(interval),
                    format_duration(parent.interval),
                    format_duration(MAX_PROBE_DURATION)
                ),
            ));
        }
        let deadline = match &raw.deadline {
            Some(s) => self.positive_duration(&pat, "deadline", s, parent.deadline),
            None => parent.deadline,
        };
        if deadline <= interval && interval <= MAX_PROBE_DURATION {
            let (key, whose) = match raw.deadline {
                Some(_) => ("deadline", String::new()),
                None => (
                    "every",
                    " (the probe's deadline; set `poison.deadline`)".to_string(),
                ),
            };
            self.err(pat.at_key(
                key,
                format!(
                    "poison canaries go out every {} (interval {} x every {every}): the deadline must be greater, got {}{whose}",
                    format_duration(interval),
                    format_duration(parent.interval),
                    format_duration(deadline)
                ),
            ));
        }
        let input = self.poison_input(&pat, raw, &pipeline.input);
        let outputs = self.poison_outputs(at, rp, raw, &input, pipeline);
        let mut probe = Probe {
            name: poison_name(&parent.name),
            interval,
            deadline,
            payload_bytes: parent.payload_bytes,
            kind: ProbeKind::Pipeline(Pipeline { input, outputs }),
            slos: Vec::new(),
            dedicated_client: parent.dedicated_client,
            poison_of: Some(parent.name.clone()),
        };
        probe.slos = self.slos(at, rp, &probe, RawKind::Poison);
        Some(probe)
    }

    /// The poison canaries' input: the pipeline's topic, with the poison
    /// payload, key and headers (added to the input's).
    fn poison_input(
        &mut self,
        pat: &At<'_>,
        raw: &RawPoison,
        normal: &PipelineInput,
    ) -> PipelineInput {
        if raw.payload.is_none() && raw.key.is_none() && raw.headers.is_empty() {
            self.err(pat.here(
                "poison canaries must differ from the normal ones: give a `payload` your pipeline rejects \
                 (e.g. invalid JSON), a `key`, or `headers` with the marker it rejects",
            ));
        }
        for (key, tpl) in [("payload", &raw.payload), ("key", &raw.key)] {
            if let Some(Err(msg)) = tpl.as_deref().map(Template::parse) {
                self.err(pat.at_val(key, msg));
            }
        }
        let hat = pat.child("headers");
        self.header_names(&hat, &raw.headers);
        let mut headers = normal.headers.clone();
        let mut secret_headers = normal.secret_headers.clone();
        for (k, v) in &raw.headers {
            headers.insert(k.clone(), v.clone());
            if hat.is_from_file(k) {
                secret_headers.insert(k.clone());
            } else {
                secret_headers.remove(k);
            }
        }
        PipelineInput {
            cluster: normal.cluster.clone(),
            topic: normal.topic.clone(),
            key: raw.key.clone().or_else(|| normal.key.clone()),
            payload: raw
                .payload
                .clone()
                .unwrap_or_else(|| normal.payload.clone()),
            headers,
            secret_headers,
        }
    }

    /// The pipeline's outputs, each with what it expects of poison
    /// canaries (`outputs[].poison`, default `none`); a match rule that
    /// reads the id from the value or the key needs `{{id}}` there in the
    /// poison canary too.
    fn poison_outputs(
        &mut self,
        at: &At<'_>,
        rp: &RawProbe,
        raw: &RawPoison,
        input: &PipelineInput,
        pipeline: &Pipeline,
    ) -> Vec<Output> {
        // (A template that does not parse has its own error.)
        let lacks_id = |tpl: &str| Template::parse(tpl).is_ok_and(|t| !t.contains(Placeholder::Id));
        let list = at.child("outputs");
        let raw_outputs = rp.outputs.as_deref().unwrap_or_default();
        let mut outputs = Vec::new();
        for (j, o) in pipeline.outputs.iter().enumerate() {
            let oat = list.item(j);
            let wanted = expect(raw_outputs.get(j).and_then(|ro| ro.poison), Expect::None);
            match &o.match_rule {
                MatchRule::Json(_) if raw.payload.is_some() && lacks_id(&input.payload) => {
                    self.err(oat.at_key(
                        "match",
                        "a `json` match looks for the canary id in the value, but `poison.payload` \
                         does not contain `{{id}}`; put it in the poison payload too",
                    ))
                }
                MatchRule::Json(_) if raw.payload.is_some() && !renders_json(&input.payload) => {
                    self.err(oat.at_key(
                        "match",
                        format!(
                            "a `json` match cannot find the id in a poison canary, whose value is not JSON \
                             (`poison.payload`): one at output `{}` would never be seen (a leak unseen, \
                             or every one lost); match this output on `header: slaprobe-id` or `key: true`",
                            o.name
                        ),
                    ))
                }
                MatchRule::Key
                    if raw.key.is_some() && input.key.as_deref().is_some_and(lacks_id) =>
                {
                    self.err(oat.at_key(
                        "match",
                        "`key: true` matches on the record key, but `poison.key` does not contain `{{id}}`",
                    ))
                }
                _ => {}
            }
            outputs.push(Output {
                expect: wanted,
                ..o.clone()
            });
        }
        outputs
    }

    /// `poison` on an output or `kind: poison` on an SLO of a probe that
    /// sends no poison canaries.
    fn poison_keys_without_poison(&mut self, at: &At<'_>, rp: &RawProbe) {
        const HOW: &str = "add `poison:` to the probe (the poison canaries' payload or headers)";
        let outputs = at.child("outputs");
        for (j, ro) in rp.outputs.iter().flatten().enumerate() {
            if ro.poison.is_some() {
                self.err(outputs.item(j).at_key(
                    "poison",
                    format!("the probe sends no poison canaries; {HOW}"),
                ));
            }
        }
        let slos = at.child("slos");
        for (k, rs) in rp.slos.iter().enumerate() {
            if rs.kind == Some(RawKind::Poison) {
                self.err(slos.item(k).at_val(
                    "kind",
                    format!("an SLO of poison canaries, but the probe sends none; {HOW}"),
                ));
            }
        }
    }
}

/// Whether `payload` (a template that parses) renders as JSON.
fn renders_json(payload: &str) -> bool {
    let Ok(t) = Template::parse(payload) else {
        return true;
    };
    let values = Values {
        id: "probe/0000000000000000/0/0",
        probe: "probe",
        run: "0000000000000000",
        seq: 0,
        partition: 0,
        sent_ns: 0,
    };
    serde_json::from_str::<serde_json::Value>(&t.render(&values, 0)).is_ok()
}

/// The poison canaries' probe name of probe `name`.
pub(crate) fn poison_name(name: &str) -> String {
    format!("{name}{POISON_SUFFIX}")
}
