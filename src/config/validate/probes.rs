//! Probes: names, timing, clusters and topics, heartbeat and pipeline
//! specifics, match rules.

use std::collections::{BTreeMap, HashMap};

use super::{
    location, valid_name, At, Defaults, Validator, MAX_TOPIC_LEN, NAME_CHARS, RESERVED_HEADERS,
};
use crate::canary::template::{Placeholder, Template};
use crate::config::model::*;
use crate::config::raw::{
    RawExpect, RawInput, RawKind, RawMatch, RawOutput, RawProbe, RawProbeType,
};
use crate::config::LoadedFile;
use crate::util::format::duration as format_duration;
use slaprobe_yaml::Pos;

impl Validator<'_> {
    pub(super) fn probes(
        &mut self,
        d: &Defaults,
        clusters: &BTreeMap<String, Cluster>,
    ) -> (Vec<Probe>, Vec<LagWatch>) {
        let mut probes = Vec::new();
        let mut lag = Vec::new();
        let mut claimed = HashMap::new();
        let mut origin: HashMap<String, (&LoadedFile, Pos)> = HashMap::new();
        for f in self.files {
            let Some(raw) = &f.raw.probes else {
                continue;
            };
            let list = At::root(f).child("probes");
            for (i, rp) in raw.iter().enumerate() {
                let at = list.item(i);
                let name_pos = at
                    .node
                    .and_then(|n| n.get("name"))
                    .map(|n| n.pos)
                    .unwrap_or_default();
                if let Some(first) = claim(&mut origin, &rp.name, f, name_pos) {
                    let msg = format!(
                        "duplicate probe name `{}`: already used at {first}",
                        rp.name
                    );
                    self.err(at.at_val("name", msg));
                }
                if rp.kind == RawProbeType::Lag {
                    let watch: Vec<LagWatch> =
                        self.lag_probe(&at, rp, clusters).into_iter().collect();
                    self.lag_claim(&at, &watch, &mut claimed);
                    lag.extend(watch);
                    continue;
                }
                for key in super::lag::KEYS {
                    self.not_allowed(
                        &at,
                        key,
                        &format!("`{key}` is only allowed on a `type: lag` probe (or under a pipeline probe's `lag:`)"),
                    );
                }
                let probe = self.probe(&at, rp, d, clusters);
                if let Some(raw) = &rp.lag {
                    let watches = self.pipeline_lag(&at.child("lag"), raw, &probe, clusters);
                    self.lag_claim(&at, &watches, &mut claimed);
                    lag.extend(watches);
                }
                let poison = self.poison(&at, rp, &probe);
                probes.push(probe);
                if let Some(poison) = poison {
                    let pos = at.child("poison").pos();
                    if let Some(first) = claim(&mut origin, &poison.name, f, pos) {
                        let msg = format!(
                            "the poison canaries' probe is named `{}`, already a probe's name at {first}",
                            poison.name
                        );
                        self.err(at.at_key("poison", msg));
                    }
                    probes.push(poison);
                }
            }
        }
        (probes, lag)
    }

    fn probe(
        &mut self,
        at: &At<'_>,
        rp: &RawProbe,
        d: &Defaults,
        clusters: &BTreeMap<String, Cluster>,
    ) -> Probe {
        self.probe_name(
            at,
            &rp.name,
            "it is part of every canary id and a metric label",
        );
        let interval = match &rp.interval {
            Some(s) => self.interval(at, s, d.interval),
            None => d.interval,
        };
        let deadline = match &rp.deadline {
            Some(s) => self.positive_duration(at, "deadline", s, d.deadline),
            None => d.deadline,
        };
        if (rp.interval.is_some() || rp.deadline.is_some()) && deadline <= interval {
            let origin = match (&rp.deadline, d.deadline_configured) {
                (Some(_), _) => "",
                (None, true) => " (inherited from `defaults.deadline`)",
                (None, false) => " (the default deadline)",
            };
            self.err(at.at_key(
                "deadline",
                format!(
                    "must be greater than interval ({}), got {}{origin}",
                    format_duration(interval),
                    format_duration(deadline)
                ),
            ));
        }
        let payload_bytes = match rp.payload_bytes {
            Some(n) => self.payload_bytes(at, n),
            None => d.payload_bytes,
        };
        let kind = match rp.kind {
            RawProbeType::Heartbeat => ProbeKind::Heartbeat(self.heartbeat(at, rp, clusters)),
            // Lag probes are read into `LagWatch`es before this.
            RawProbeType::Pipeline | RawProbeType::Lag => {
                ProbeKind::Pipeline(self.pipeline(at, rp, clusters))
            }
        };
        let mut probe = Probe {
            name: rp.name.clone(),
            interval,
            deadline,
            payload_bytes,
            kind,
            slos: Vec::new(),
            dedicated_client: rp.dedicated_client,
            poison_of: None,
        };
        probe.slos = self.slos(at, rp, &probe, RawKind::Normal);
        probe
    }

    /// A probe's `name`: not empty, `[A-Za-z0-9._-]+`; `why` says where
    /// it goes.
    pub(super) fn probe_name(&mut self, at: &At<'_>, name: &str, why: &str) {
        if name.is_empty() {
            self.err(at.at_val("name", "must not be empty"));
        } else if !valid_name(name) {
            self.err(at.at_val(
                "name",
                format!("invalid probe name `{name}`: {NAME_CHARS} ({why})"),
            ));
        }
    }

    pub(super) fn not_allowed(&mut self, at: &At<'_>, key: &str, msg: &str) {
        if at.has(key) {
            self.err(at.at_key(key, msg.to_string()));
        }
    }

    pub(super) fn cluster_ref(
        &mut self,
        at: &At<'_>,
        key: &str,
        name: &str,
        clusters: &BTreeMap<String, Cluster>,
    ) {
        if clusters.contains_key(name) {
            return;
        }
        let msg = if clusters.is_empty() {
            format!("unknown cluster `{name}`: no clusters are defined (add one under top-level `clusters:`)")
        } else {
            let names: Vec<&str> = clusters.keys().map(String::as_str).collect();
            format!(
                "unknown cluster `{name}`; defined clusters: {}",
                names.join(", ")
            )
        };
        self.err(at.at_val(key, msg));
    }

    pub(super) fn topic(&mut self, at: &At<'_>, key: &str, topic: &str) {
        let msg = if topic.is_empty() {
            "must not be empty".to_string()
        } else if topic.len() > MAX_TOPIC_LEN {
            format!(
                "topic names are at most {MAX_TOPIC_LEN} characters, got {}",
                topic.len()
            )
        } else if topic == "." || topic == ".." {
            format!("`{topic}` is not a valid topic name")
        } else if !valid_name(topic) {
            format!("invalid topic name `{topic}`: {NAME_CHARS}")
        } else {
            return;
        };
        self.err(at.at_val(key, msg));
    }

    fn heartbeat(
        &mut self,
        at: &At<'_>,
        rp: &RawProbe,
        clusters: &BTreeMap<String, Cluster>,
    ) -> Heartbeat {
        self.not_allowed(
            at,
            "lag",
            "`lag` is not allowed on a heartbeat probe (it names a pipeline's consumer groups; watch other groups with a `type: lag` probe)",
        );
        for key in ["input", "outputs"] {
            self.not_allowed(
                at,
                key,
                &format!("`{key}` is not allowed on a heartbeat probe (`input` and `outputs` are for `type: pipeline`)"),
            );
        }
        let cluster = match &rp.cluster {
            Some(c) => {
                self.cluster_ref(at, "cluster", c, clusters);
                c.clone()
            }
            None => {
                self.err(at.at_key("cluster", "required for a heartbeat probe"));
                String::new()
            }
        };
        let topic = match &rp.topic {
            Some(t) => {
                self.topic(at, "topic", t);
                t.clone()
            }
            None => {
                self.err(at.at_key(
                    "topic",
                    "required for a heartbeat probe (e.g. `topic: slaprobe.heartbeat`)",
                ));
                String::new()
            }
        };
        let tm = self.topic_management(at, rp);
        Heartbeat {
            cluster,
            topic,
            topic_management: tm,
        }
    }

    /// A heartbeat's `topic_management`: partitions per broker and the
    /// replication factor within Kafka's limits.
    fn topic_management(&mut self, at: &At<'_>, rp: &RawProbe) -> TopicManagement {
        let mut tm = TopicManagement::default();
        if let Some(raw) = &rp.topic_management {
            let tat = at.child("topic_management");
            tm.create = raw.create;
            if let Some(n) = raw.partitions_per_broker {
                match u32::try_from(n) {
                    Ok(n) if (1..=10_000).contains(&n) => tm.partitions_per_broker = n,
                    _ => self.err(tat.at_val(
                        "partitions_per_broker",
                        format!("must be between 1 and 10000, got {n}"),
                    )),
                }
            }
            if let Some(n) = raw.replication_factor {
                // Kafka's replication factor is an int16.
                match u16::try_from(n) {
                    Ok(n) if (1..=i16::MAX as u16).contains(&n) => tm.replication_factor = Some(n),
                    _ => self.err(tat.at_val(
                        "replication_factor",
                        format!("must be between 1 and 32767, got {n}"),
                    )),
                }
            }
        }
        tm
    }

    fn pipeline(
        &mut self,
        at: &At<'_>,
        rp: &RawProbe,
        clusters: &BTreeMap<String, Cluster>,
    ) -> Pipeline {
        self.not_allowed(
            at,
            "cluster",
            "`cluster` is not allowed on a pipeline probe; set `input.cluster` and each output's `cluster`",
        );
        self.not_allowed(
            at,
            "topic",
            "`topic` is not allowed on a pipeline probe; set `input.topic` and each output's `topic`",
        );
        self.not_allowed(
            at,
            "topic_management",
            "`topic_management` is only allowed on heartbeat probes",
        );

        let (input, payload_tpl, key_tpl) = self.pipeline_input(at, rp.input.as_ref(), clusters);

        let mut outputs = Vec::new();
        let raw_outputs = rp.outputs.as_deref().unwrap_or_default();
        if raw_outputs.is_empty() {
            self.err(at.at_key(
                "outputs",
                "a pipeline probe needs at least one output (`name`, `cluster`, `topic`, `match`)",
            ));
        }
        let oat_list = at.child("outputs");
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (j, ro) in raw_outputs.iter().enumerate() {
            let oat = oat_list.item(j);
            if let Some(first) = seen.get(ro.name.as_str()) {
                self.err(oat.at_val(
                    "name",
                    format!(
                        "duplicate output name `{}` (also used by outputs[{first}])",
                        ro.name
                    ),
                ));
            } else {
                seen.insert(&ro.name, j);
            }
            outputs.push(self.pipeline_output(
                &oat,
                ro,
                clusters,
                payload_tpl.as_ref(),
                key_tpl.as_ref(),
            ));
        }
        Pipeline { input, outputs }
    }

    /// A pipeline's input, with its payload and key templates when they
    /// parse (the match rules check them for `{{id}}`).
    fn pipeline_input(
        &mut self,
        at: &At<'_>,
        raw: Option<&RawInput>,
        clusters: &BTreeMap<String, Cluster>,
    ) -> (PipelineInput, Option<Template>, Option<Template>) {
        let iat = at.child("input");
        let mut payload_tpl = None;
        let mut key_tpl = None;
        let input = match raw {
            None => {
                self.err(at.at_key(
                    "input",
                    "required for a pipeline probe (its `cluster`, `topic` and `payload`)",
                ));
                PipelineInput {
                    cluster: String::new(),
                    topic: String::new(),
                    key: None,
                    payload: String::new(),
                    headers: BTreeMap::new(),
                    secret_headers: Default::default(),
                }
            }
            Some(ri) => {
                self.cluster_ref(&iat, "cluster", &ri.cluster, clusters);
                self.topic(&iat, "topic", &ri.topic);
                match Template::parse(&ri.payload) {
                    Ok(t) => payload_tpl = Some(t),
                    Err(msg) => self.err(iat.at_val("payload", msg)),
                }
                if let Some(k) = &ri.key {
                    match Template::parse(k) {
                        Ok(t) => key_tpl = Some(t),
                        Err(msg) => self.err(iat.at_val("key", msg)),
                    }
                }
                let hat = iat.child("headers");
                self.header_names(&hat, &ri.headers);
                PipelineInput {
                    cluster: ri.cluster.clone(),
                    topic: ri.topic.clone(),
                    key: ri.key.clone(),
                    payload: ri.payload.clone(),
                    headers: ri.headers.clone(),
                    secret_headers: ri
                        .headers
                        .keys()
                        .filter(|h| hat.is_from_file(h))
                        .cloned()
                        .collect(),
                }
            }
        };
        (input, payload_tpl, key_tpl)
    }

    /// A canary's header names: not empty, not slaprobe's own.
    pub(super) fn header_names(&mut self, hat: &At<'_>, headers: &BTreeMap<String, String>) {
        for h in headers.keys() {
            if h.is_empty() {
                self.err(hat.at_key(h, "header names must not be empty"));
            } else if RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(h)) {
                self.err(hat.at_key(
                    h,
                    format!("`{h}` is set by slaprobe on every canary; reserved header names are slaprobe-id, slaprobe-sent-ns"),
                ));
            }
        }
    }

    /// One pipeline output (its name's uniqueness is the caller's).
    fn pipeline_output(
        &mut self,
        oat: &At<'_>,
        ro: &RawOutput,
        clusters: &BTreeMap<String, Cluster>,
        payload_tpl: Option<&Template>,
        key_tpl: Option<&Template>,
    ) -> Output {
        if ro.name == INPUT_OUTPUT || ro.name == HEARTBEAT_OUTPUT {
            self.err(oat.at_val(
                "name",
                format!("`{}` is reserved (it is the `output` label of input-side and heartbeat series); choose another name", ro.name),
            ));
        } else if !valid_name(&ro.name) {
            self.err(oat.at_val(
                "name",
                format!("invalid output name `{}`: {NAME_CHARS}", ro.name),
            ));
        }
        self.cluster_ref(oat, "cluster", &ro.cluster, clusters);
        self.topic(oat, "topic", &ro.topic);
        let match_rule = self.match_rule(oat, ro, payload_tpl, key_tpl);
        Output {
            name: ro.name.clone(),
            cluster: ro.cluster.clone(),
            topic: ro.topic.clone(),
            match_rule,
            expect: expect(ro.expect, Expect::ExactlyOnce),
        }
    }

    fn match_rule(
        &mut self,
        oat: &At<'_>,
        ro: &RawOutput,
        payload: Option<&Template>,
        key: Option<&Template>,
    ) -> MatchRule {
        const RULES: &str = "give exactly one of `json: /pointer`, `header: NAME` or `key: true`";
        let m = &ro.match_rule;
        if m.key == Some(false) {
            self.err(oat.at_key(
                "match",
                format!("`key: false` is not a match rule; {RULES}"),
            ));
            return MatchRule::Key;
        }
        if let Err(msg) = exactly_one_rule(m) {
            self.err(oat.at_key("match", format!("{msg}; {RULES}")));
            return MatchRule::Key;
        }
        if let Some(ptr) = &m.json {
            if !ptr.is_empty() && !ptr.starts_with('/') {
                self.err(oat.child("match").at_val(
                    "json",
                    format!("`{ptr}` is not a JSON pointer: it must be empty or start with `/`, e.g. `/order_id`"),
                ));
            } else if payload.is_some_and(|t| !t.contains(Placeholder::Id)) {
                // Only where the id starts can be checked: the pipeline may
                // reshape the record, so the pointer is about its output.
                self.err(oat.at_key(
                    "match",
                    "a `json` match looks for the canary id in the output's value, but \
                     `input.payload` does not contain `{{id}}`; put it in the payload",
                ));
            }
            return MatchRule::Json(ptr.clone());
        }
        if let Some(h) = &m.header {
            if h.is_empty() {
                self.err(oat.child("match").at_val("header", "must be a header name"));
            }
            return MatchRule::Header(h.clone());
        }
        if let Some(k) = key {
            if !k.contains(Placeholder::Id) {
                self.err(oat.at_key(
                    "match",
                    "`key: true` matches on the record key, but `input.key` does not contain `{{id}}`; \
                     add it, or omit `input.key` (the key is then the canary id)",
                ));
            }
        }
        MatchRule::Key
    }
}

/// Takes name `name` (of a probe, an action) for the one at `pos` of `f`;
/// if another has it, where that one is instead.
pub(super) fn claim<'f>(
    origin: &mut HashMap<String, (&'f LoadedFile, Pos)>,
    name: &str,
    f: &'f LoadedFile,
    pos: Pos,
) -> Option<String> {
    match origin.get(name) {
        Some((first, at)) => Some(location(first, *at)),
        None => {
            origin.insert(name.to_string(), (f, pos));
            None
        }
    }
}

/// An output's `expect` (or `poison`), `default` when not given.
pub(super) fn expect(raw: Option<RawExpect>, default: Expect) -> Expect {
    match raw {
        None => default,
        Some(RawExpect::ExactlyOnce) => Expect::ExactlyOnce,
        Some(RawExpect::AtLeastOnce) => Expect::AtLeastOnce,
        Some(RawExpect::None) => Expect::None,
    }
}

/// A `match:` must give exactly one of `json`, `header` and `key`.
fn exactly_one_rule(m: &RawMatch) -> Result<(), String> {
    let given: Vec<String> = [
        m.json.as_ref().map(|_| "json"),
        m.header.as_ref().map(|_| "header"),
        m.key.map(|_| "key"),
    ]
    .into_iter()
    .flatten()
    .map(|g| format!("`{g}`"))
    .collect();
    match given.len() {
        1 => Ok(()),
        0 => Err("no match rule".to_string()),
        _ => Err(format!("has {}", given.join(" and "))),
    }
}
