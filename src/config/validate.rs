//! Raw structs of all files -> the validated [`Config`], or every problem.
//!
//! This is where defaults are inherited, files are merged, names and
//! cross-references are checked and SLOs are expanded per output. Each check
//! locates its error through the file's node tree: relational problems
//! ("deadline must exceed interval", "not allowed here") point at the key, bad
//! values at the value, missing keys at the mapping that lacks them. The
//! validator never stops early: it substitutes a default for a bad value and
//! carries on, so one `slaprobe check` run lists everything to fix.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::*;
use super::raw::{RawExpect, RawProbe, RawProbeType, RawSli};
use super::{ConfigError, LoadedFile};
use crate::canary::template::{Placeholder, Template};
use crate::util::format::{duration as format_duration, redact_url};
use crate::yaml::{join_index, join_key, Node, Pos, Value};

pub(crate) const DEFAULT_LISTEN: &str = "0.0.0.0:9464";
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
pub(crate) const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);
pub(crate) const DEFAULT_PAYLOAD_BYTES: usize = 256;
pub(crate) const MAX_PAYLOAD_BYTES: u64 = 1_048_576;
pub(crate) const DEFAULT_PERIOD: Duration = Duration::from_secs(30 * 86_400);
/// Shorter periods make the 1d and 3d burn-rate windows meaningless.
pub(crate) const MIN_PERIOD: Duration = Duration::from_secs(86_400);
/// Longest SLO period: the evaluator keeps an hour bucket per hour of it.
const MAX_PERIOD: Duration = Duration::from_secs(365 * 86_400);
/// Longest interval or deadline: slaprobe probes streams, and the clocks
/// and queues it sizes from them stay sane.
const MAX_PROBE_DURATION: Duration = Duration::from_secs(86_400);
/// Kafka's limit on topic name length.
const MAX_TOPIC_LEN: usize = 249;
/// Headers slaprobe itself sets on every canary (SPEC §3).
const RESERVED_HEADERS: [&str; 2] = ["slaprobe-id", "slaprobe-sent-ns"];

const NAME_CHARS: &str = "use only letters, digits, `.`, `_` and `-`";

/// Probe, cluster and output names: `[A-Za-z0-9._-]+`.
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A place in one file: a node of its tree (if it exists) and its key path.
#[derive(Clone)]
struct At<'a> {
    file: &'a Path,
    node: Option<&'a Node>,
    path: String,
}

impl<'a> At<'a> {
    fn root(f: &'a LoadedFile) -> Self {
        At {
            file: &f.path,
            node: Some(&f.root),
            path: String::new(),
        }
    }

    fn child(&self, key: &str) -> At<'a> {
        At {
            file: self.file,
            node: self.node.and_then(|n| n.get(key)),
            path: join_key(&self.path, key),
        }
    }

    fn item(&self, i: usize) -> At<'a> {
        At {
            file: self.file,
            node: self.node.and_then(|n| n.index(i)),
            path: join_index(&self.path, i),
        }
    }

    fn pos(&self) -> Pos {
        self.node.map(|n| n.pos).unwrap_or_default()
    }

    fn has(&self, key: &str) -> bool {
        self.node.and_then(|n| n.entry(key)).is_some()
    }

    /// Error about `key` itself (relational, not allowed, duplicate):
    /// at the key, or at this mapping when the key is absent.
    fn at_key(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        let pos = self
            .node
            .and_then(|n| n.entry(key))
            .map(|e| e.key_pos)
            .unwrap_or_else(|| self.pos());
        ConfigError::new(self.file, pos, join_key(&self.path, key), msg)
    }

    /// Error about the value of `key`.
    fn at_val(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        let pos = self
            .node
            .and_then(|n| n.get(key))
            .map(|n| n.pos)
            .unwrap_or_else(|| self.pos());
        ConfigError::new(self.file, pos, join_key(&self.path, key), msg)
    }

    /// Error about this node as a whole.
    fn here(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, self.pos(), self.path.clone(), msg)
    }

    /// Whether the scalar at `key` was read from a `_file`.
    fn is_from_file(&self, key: &str) -> bool {
        matches!(
            self.node.and_then(|n| n.get(key)).map(|n| &n.value),
            Some(Value::Scalar(s)) if s.from_file
        )
    }
}

fn location(f: &LoadedFile, pos: Pos) -> String {
    format!("{}:{}:{}", f.path.display(), pos.line, pos.column)
}

/// Probe-level defaults after `defaults:` is applied.
struct Defaults {
    interval: Duration,
    deadline: Duration,
    payload_bytes: usize,
    /// Whether the deadline came from a `defaults:` section (for messages).
    deadline_configured: bool,
}

struct Validator<'a> {
    files: &'a [LoadedFile],
    errors: Vec<ConfigError>,
}

pub(crate) fn validate(files: &[LoadedFile]) -> Result<Config, Vec<ConfigError>> {
    let mut v = Validator {
        files,
        errors: Vec::new(),
    };
    let config = v.config();
    if v.errors.is_empty() {
        return Ok(config);
    }
    // File order, then position: the order a person fixes them in.
    let order: HashMap<&Path, usize> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_path(), i))
        .collect();
    v.errors.sort_by_key(|e| {
        (
            order.get(e.file.as_path()).copied().unwrap_or(usize::MAX),
            e.line,
            e.column,
        )
    });
    Err(v.errors)
}

impl<'a> Validator<'a> {
    fn err(&mut self, e: ConfigError) {
        self.errors.push(e);
    }

    fn config(&mut self) -> Config {
        let server = self.server();
        let state_dir = self.state_dir();
        let alertmanager = self.alertmanager();
        let defaults = self.defaults();
        let clusters = self.clusters();
        let probes = self.probes(&defaults, &clusters);
        Config {
            sources: self.files.iter().map(|f| f.path.clone()).collect(),
            server,
            state_dir,
            alertmanager,
            clusters,
            probes,
        }
    }

    /// The one file that sets top-level `key`; later files that also set it
    /// are errors, since silently picking one would hide a mistake.
    fn singleton(&mut self, key: &str) -> Option<&'a LoadedFile> {
        let mut first: Option<(&LoadedFile, Pos)> = None;
        for f in self.files {
            let Some(entry) = f.root.entry(key) else {
                continue;
            };
            match first {
                None => first = Some((f, entry.key_pos)),
                Some((ff, pos)) => self.err(ConfigError::new(
                    &f.path,
                    entry.key_pos,
                    key,
                    format!(
                        "already set in {}; top-level `{key}` may appear in only one file",
                        location(ff, pos)
                    ),
                )),
            }
        }
        first.map(|(f, _)| f)
    }

    fn server(&mut self) -> Server {
        let fallback: SocketAddr = ([0, 0, 0, 0], 9464).into();
        let Some(f) = self.singleton("server") else {
            return Server {
                listen: fallback,
                external_url: None,
            };
        };
        let raw = f.raw.server.as_ref();
        let listen = raw
            .and_then(|s| s.listen.as_deref())
            .unwrap_or(DEFAULT_LISTEN);
        let at = At::root(f).child("server");
        let listen = match listen.parse() {
            Ok(listen) => listen,
            Err(_) => {
                self.err(at.at_val(
                    "listen",
                    format!(
                        "`{listen}` is not a socket address; use IP:port, e.g. `0.0.0.0:9464` or `[::]:9464`"
                    ),
                ));
                fallback
            }
        };
        let external_url = raw.and_then(|s| s.external_url.as_deref()).and_then(|u| {
            if is_http_url(u) {
                Some(u.trim_end_matches('/').to_string())
            } else {
                self.err(at.at_val(
                    "external_url",
                    format!("must be an http:// or https:// URL with a host, e.g. `https://slaprobe.example`; got `{}`", redact_url(u)),
                ));
                None
            }
        });
        Server {
            listen,
            external_url,
        }
    }

    fn state_dir(&mut self) -> Option<PathBuf> {
        let f = self.singleton("state_dir")?;
        let dir = f.raw.state_dir.as_deref()?;
        if dir.is_empty() {
            self.err(At::root(f).at_val(
                "state_dir",
                "must be a directory path (omit `state_dir` to disable restart-safe accounting)",
            ));
            return None;
        }
        Some(PathBuf::from(dir))
    }

    fn alertmanager(&mut self) -> Option<Alertmanager> {
        let f = self.singleton("alertmanager")?;
        let url = &f.raw.alertmanager.as_ref()?.url;
        if !is_http_url(url) {
            self.err(At::root(f).child("alertmanager").at_val(
                "url",
                format!(
                    "must be an http:// or https:// URL with a host, e.g. `http://alertmanager:9093`; got `{}`",
                    redact_url(url)
                ),
            ));
            return None;
        }
        Some(Alertmanager { url: url.clone() })
    }

    fn defaults(&mut self) -> Defaults {
        let mut d = Defaults {
            interval: DEFAULT_INTERVAL,
            deadline: DEFAULT_DEADLINE,
            payload_bytes: DEFAULT_PAYLOAD_BYTES,
            deadline_configured: false,
        };
        let Some(f) = self.singleton("defaults") else {
            return d;
        };
        let Some(raw) = &f.raw.defaults else {
            return d;
        };
        let at = At::root(f).child("defaults");
        if let Some(s) = &raw.interval {
            d.interval = self.positive_duration(&at, "interval", s, DEFAULT_INTERVAL);
        }
        if let Some(s) = &raw.deadline {
            d.deadline = self.positive_duration(&at, "deadline", s, DEFAULT_DEADLINE);
            d.deadline_configured = true;
        }
        if d.deadline <= d.interval {
            self.err(at.at_key(
                "deadline",
                format!(
                    "must be greater than interval ({}), got {}",
                    format_duration(d.interval),
                    format_duration(d.deadline)
                ),
            ));
        }
        if let Some(n) = raw.payload_bytes {
            d.payload_bytes = self.payload_bytes(&at, n);
        }
        d
    }

    fn duration(&mut self, at: &At<'_>, key: &str, s: &str) -> Option<Duration> {
        match humantime::parse_duration(s.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(at.at_val(
                    key,
                    format!("invalid duration `{s}`: {e} (write e.g. `250ms`, `30s`, `2m`, `30d`)"),
                ));
                None
            }
        }
    }

    fn positive_duration(
        &mut self,
        at: &At<'_>,
        key: &str,
        s: &str,
        fallback: Duration,
    ) -> Duration {
        match self.duration(at, key, s) {
            Some(d) if d.is_zero() => {
                self.err(at.at_val(key, "must be greater than 0"));
                fallback
            }
            Some(d) if d > MAX_PROBE_DURATION => {
                self.err(at.at_val(
                    key,
                    format!(
                        "must be at most 1d (slaprobe probes streams), got {}",
                        format_duration(d)
                    ),
                ));
                fallback
            }
            Some(d) => d,
            None => fallback,
        }
    }

    fn payload_bytes(&mut self, at: &At<'_>, n: u64) -> usize {
        if (1..=MAX_PAYLOAD_BYTES).contains(&n) {
            n as usize
        } else {
            self.err(at.at_val(
                "payload_bytes",
                format!("must be between 1 and {MAX_PAYLOAD_BYTES} (1 MiB), got {n}"),
            ));
            DEFAULT_PAYLOAD_BYTES
        }
    }

    fn clusters(&mut self) -> BTreeMap<String, Cluster> {
        let mut clusters = BTreeMap::new();
        let mut origin: HashMap<String, (&LoadedFile, Pos)> = HashMap::new();
        for f in self.files {
            let Some(raw) = &f.raw.clusters else {
                continue;
            };
            let at = At::root(f).child("clusters");
            for (name, rc) in raw {
                if !valid_name(name) {
                    self.err(
                        at.at_key(name, format!("invalid cluster name `{name}`: {NAME_CHARS}")),
                    );
                }
                let key_pos = at
                    .node
                    .and_then(|n| n.entry(name))
                    .map(|e| e.key_pos)
                    .unwrap_or_default();
                if let Some((ff, pos)) = origin.get(name) {
                    let msg = format!(
                        "duplicate cluster `{name}`: already defined at {}",
                        location(ff, *pos)
                    );
                    self.err(at.at_key(name, msg));
                    continue;
                }
                origin.insert(name.clone(), (f, key_pos));
                let cat = at.child(name);
                if let Err(msg) = check_bootstrap(&rc.bootstrap) {
                    self.err(cat.at_val("bootstrap", msg));
                }
                let lat = cat.child("librdkafka");
                let mut secret_keys = BTreeSet::new();
                for key in rc.librdkafka.keys() {
                    if key == "bootstrap.servers" {
                        self.err(lat.at_key(key, "set the cluster's `bootstrap` instead"));
                    }
                    if key.is_empty() {
                        self.err(lat.at_key(key, "librdkafka option names must not be empty"));
                    }
                    if lat.is_from_file(key) {
                        secret_keys.insert(key.clone());
                    }
                }
                for (key, value) in &rc.librdkafka {
                    if key.is_empty() || key == "bootstrap.servers" {
                        continue;
                    }
                    if let Err(msg) = super::check_option(key, value) {
                        // librdkafka may echo the value; never a secret's.
                        let msg = if is_secret_key(key) || secret_keys.contains(key) {
                            "librdkafka rejects this option's value (not shown: secret)".to_string()
                        } else {
                            format!("librdkafka rejects this option: {msg}")
                        };
                        self.err(lat.at_key(key, msg));
                    }
                }
                clusters.insert(
                    name.clone(),
                    Cluster {
                        name: name.clone(),
                        bootstrap: rc.bootstrap.clone(),
                        librdkafka: rc.librdkafka.clone(),
                        secret_keys,
                    },
                );
            }
        }
        clusters
    }

    fn probes(&mut self, d: &Defaults, clusters: &BTreeMap<String, Cluster>) -> Vec<Probe> {
        let mut probes = Vec::new();
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
                if let Some((ff, pos)) = origin.get(&rp.name) {
                    let msg = format!(
                        "duplicate probe name `{}`: already used at {}",
                        rp.name,
                        location(ff, *pos)
                    );
                    self.err(at.at_val("name", msg));
                } else {
                    origin.insert(rp.name.clone(), (f, name_pos));
                }
                probes.push(self.probe(&at, rp, d, clusters));
            }
        }
        probes
    }

    fn probe(
        &mut self,
        at: &At<'_>,
        rp: &RawProbe,
        d: &Defaults,
        clusters: &BTreeMap<String, Cluster>,
    ) -> Probe {
        if rp.name.is_empty() {
            self.err(at.at_val("name", "must not be empty"));
        } else if !valid_name(&rp.name) {
            self.err(at.at_val(
                "name",
                format!(
                    "invalid probe name `{}`: {NAME_CHARS} (it is part of every canary id and a metric label)",
                    rp.name
                ),
            ));
        }
        let interval = match &rp.interval {
            Some(s) => self.positive_duration(at, "interval", s, d.interval),
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
            RawProbeType::Pipeline => ProbeKind::Pipeline(self.pipeline(at, rp, clusters)),
        };
        let mut probe = Probe {
            name: rp.name.clone(),
            interval,
            deadline,
            payload_bytes,
            kind,
            slos: Vec::new(),
        };
        probe.slos = self.slos(at, rp, &probe);
        probe
    }

    fn not_allowed(&mut self, at: &At<'_>, key: &str, msg: &str) {
        if at.has(key) {
            self.err(at.at_key(key, msg.to_string()));
        }
    }

    fn cluster_ref(
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

    fn topic(&mut self, at: &At<'_>, key: &str, topic: &str) {
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
        Heartbeat {
            cluster,
            topic,
            topic_management: tm,
        }
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

        let iat = at.child("input");
        let mut payload_tpl = None;
        let mut key_tpl = None;
        let input = match &rp.input {
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
                for h in ri.headers.keys() {
                    if h.is_empty() {
                        self.err(hat.at_key(h, "header names must not be empty"));
                    } else if RESERVED_HEADERS.iter().any(|r| r.eq_ignore_ascii_case(h)) {
                        self.err(hat.at_key(
                            h,
                            format!("`{h}` is set by slaprobe on every canary; reserved header names are slaprobe-id, slaprobe-sent-ns"),
                        ));
                    }
                }
                PipelineInput {
                    cluster: ri.cluster.clone(),
                    topic: ri.topic.clone(),
                    key: ri.key.clone(),
                    payload: ri.payload.clone(),
                    headers: ri.headers.clone(),
                }
            }
        };

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
            self.cluster_ref(&oat, "cluster", &ro.cluster, clusters);
            self.topic(&oat, "topic", &ro.topic);
            let match_rule = self.match_rule(&oat, ro, payload_tpl.as_ref(), key_tpl.as_ref());
            outputs.push(PipelineOutput {
                name: ro.name.clone(),
                cluster: ro.cluster.clone(),
                topic: ro.topic.clone(),
                match_rule,
                expect: match ro.expect {
                    None | Some(RawExpect::ExactlyOnce) => Expect::ExactlyOnce,
                    Some(RawExpect::AtLeastOnce) => Expect::AtLeastOnce,
                    Some(RawExpect::None) => Expect::None,
                },
            });
        }
        Pipeline { input, outputs }
    }

    fn match_rule(
        &mut self,
        oat: &At<'_>,
        ro: &super::raw::RawOutput,
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
        let given: Vec<&str> = [
            m.json.as_ref().map(|_| "json"),
            m.header.as_ref().map(|_| "header"),
            m.key.map(|_| "key"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.len() != 1 {
            let msg = if given.is_empty() {
                format!("no match rule; {RULES}")
            } else {
                format!(
                    "has {}; {RULES}",
                    given
                        .iter()
                        .map(|g| format!("`{g}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                )
            };
            self.err(oat.at_key("match", msg));
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

    fn slos(&mut self, at: &At<'_>, rp: &RawProbe, probe: &Probe) -> Vec<Slo> {
        let list = at.child("slos");
        let outputs = probe.output_names();
        // Outputs where a filter must drop the canary (`expect: none`).
        let filtered: Vec<&str> = match &probe.kind {
            ProbeKind::Pipeline(p) => p
                .outputs
                .iter()
                .filter(|o| o.expect == Expect::None)
                .map(|o| o.name.as_str())
                .collect(),
            ProbeKind::Heartbeat(_) => Vec::new(),
        };
        let mut slos: Vec<Slo> = Vec::new();
        // (output, sli) -> index in `slos:` that defined it first.
        let mut defined: BTreeMap<(String, Sli), usize> = BTreeMap::new();
        for (k, rs) in rp.slos.iter().enumerate() {
            let sat = list.item(k);
            let sli = match rs.sli {
                RawSli::Availability => Sli::Availability,
                RawSli::Delivery => Sli::Delivery,
                RawSli::Latency => Sli::Latency,
            };
            let objective = match parse_objective(&rs.objective) {
                Ok(o) => o,
                Err(msg) => {
                    self.err(sat.at_val("objective", msg));
                    0.99
                }
            };
            let period = match &rs.period {
                None => DEFAULT_PERIOD,
                Some(s) => match self.duration(&sat, "period", s) {
                    Some(p) if p > MAX_PERIOD => {
                        self.err(sat.at_val(
                            "period",
                            format!("must be at most 365d, got {}", format_duration(p)),
                        ));
                        DEFAULT_PERIOD
                    }
                    Some(p) if p < MIN_PERIOD => {
                        self.err(sat.at_val(
                            "period",
                            format!(
                                "must be at least 1d (the alert windows go up to 3d), got {}",
                                format_duration(p)
                            ),
                        ));
                        DEFAULT_PERIOD
                    }
                    Some(p) => p,
                    None => DEFAULT_PERIOD,
                },
            };
            let threshold = match (sli, &rs.threshold) {
                (Sli::Latency, None) => {
                    self.err(sat.at_key(
                        "threshold",
                        "required for a latency SLO (e.g. `threshold: 250ms`)",
                    ));
                    None
                }
                (Sli::Latency, Some(s)) => match self.duration(&sat, "threshold", s) {
                    Some(t) if t.is_zero() => {
                        self.err(sat.at_val("threshold", "must be greater than 0"));
                        None
                    }
                    Some(t) if t >= probe.deadline => {
                        self.err(sat.at_key(
                            "threshold",
                            format!(
                                "must be less than the probe's deadline ({}), got {}",
                                format_duration(probe.deadline),
                                format_duration(t)
                            ),
                        ));
                        None
                    }
                    t => t,
                },
                (_, Some(_)) => {
                    self.err(sat.at_key(
                        "threshold",
                        format!("only allowed for latency SLOs, not {sli}"),
                    ));
                    None
                }
                (_, None) => None,
            };
            let targets: Vec<String> = match (sli, &rs.output) {
                (Sli::Availability, Some(_)) => {
                    self.err(sat.at_key(
                        "output",
                        "not allowed for availability SLOs (availability is measured where canaries are produced)",
                    ));
                    continue;
                }
                (Sli::Availability, None) => vec![match probe.kind {
                    ProbeKind::Heartbeat(_) => HEARTBEAT_OUTPUT.to_string(),
                    ProbeKind::Pipeline(_) => INPUT_OUTPUT.to_string(),
                }],
                (Sli::Latency, Some(o)) if filtered.contains(&o.as_str()) => {
                    self.err(sat.at_val(
                        "output",
                        format!("output `{o}` expects `none` (a filter drops the canary): it has no latency to measure"),
                    ));
                    continue;
                }
                (_, Some(o)) if outputs.contains(&o.as_str()) => vec![o.clone()],
                (_, Some(o)) => {
                    let msg = match probe.kind {
                        ProbeKind::Heartbeat(_) => {
                            format!("unknown output `{o}`; a heartbeat probe's only output is `heartbeat`")
                        }
                        ProbeKind::Pipeline(_) => {
                            format!(
                                "unknown output `{o}`; this probe's outputs are: {}",
                                outputs.join(", ")
                            )
                        }
                    };
                    self.err(sat.at_val("output", msg));
                    continue;
                }
                // A latency SLO means nothing where the canary must not arrive.
                (Sli::Latency, None) => outputs
                    .iter()
                    .filter(|o| !filtered.contains(o))
                    .map(|o| o.to_string())
                    .collect(),
                (_, None) => outputs.iter().map(|o| o.to_string()).collect(),
            };
            for output in targets {
                if let Some(first) = defined.get(&(output.clone(), sli)) {
                    self.err(sat.here(format!(
                        "duplicate SLO `{}:{output}:{sli}` (slos[{first}] already defines it)",
                        probe.name
                    )));
                    continue;
                }
                defined.insert((output.clone(), sli), k);
                slos.push(Slo {
                    output,
                    sli,
                    objective,
                    period,
                    threshold,
                    min_events: rs.min_events.unwrap_or(DEFAULT_MIN_EVENTS),
                });
            }
        }
        slos
    }
}

/// `http://` or `https://` followed by a host.
fn is_http_url(url: &str) -> bool {
    url.strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
}

/// `host:port[,host:port...]`, numeric port.
fn check_bootstrap(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(
            "must list at least one broker as host:port, e.g. `kafka-1:9092,kafka-2:9092`"
                .to_string(),
        );
    }
    for entry in s.split(',') {
        let entry = entry.trim();
        let ok = entry.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            return Err(format!(
                "`{entry}` is not host:port with a numeric port; write e.g. `kafka-1:9092,kafka-2:9092`"
            ));
        }
    }
    Ok(())
}

/// `99.95%` -> 0.9995, or a bare ratio like `0.999`; exclusive (0, 1).
pub(crate) fn parse_objective(s: &str) -> Result<f64, String> {
    const FORMS: &str = "write a percentage like `99.9%` or a ratio like `0.999`";
    let t = s.trim();
    let (ratio, pct) = match t.strip_suffix('%') {
        Some(num) => {
            let num = num.trim();
            let v = percent_to_ratio(num).or_else(|| num.parse::<f64>().ok().map(|v| v / 100.0));
            (v, true)
        }
        None => (t.parse::<f64>().ok(), false),
    };
    let Some(ratio) = ratio.filter(|r| r.is_finite()) else {
        return Err(format!("invalid objective `{s}`: {FORMS}"));
    };
    if !pct && (1.0..100.0).contains(&ratio) {
        return Err(format!(
            "a bare number is a ratio and must be between 0 and 1 (exclusive); did you mean `{t}%`?"
        ));
    }
    if !(ratio > 0.0 && ratio < 1.0) {
        return Err(format!(
            "must be between 0% and 100% (exclusive), got `{s}`"
        ));
    }
    Ok(ratio)
}

/// Decimal-exact percent -> ratio: `99.95` -> `0.9995` by moving the point,
/// so the result is the f64 nearest 0.9995 rather than `99.95 / 100`.
fn percent_to_ratio(num: &str) -> Option<f64> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    if int.len() > 2 {
        return None;
    }
    format!("0.{int:0>2}{frac}").parse().ok()
}
