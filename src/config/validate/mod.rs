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

mod actions;
mod alerts;
mod connections;
mod lag;
mod poison;
mod probes;
mod slos;

use super::model::*;
use super::raw::RawCluster;
use super::{ConfigError, LoadedFile};
use crate::util::format::{duration as format_duration, redact_url};
use slaprobe_yaml::{join_index, join_key, Node, Pos, Value};

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
pub(crate) const MAX_PROBE_DURATION: Duration = Duration::from_secs(86_400);
/// The shortest interval (per partition) whose rate slaprobe keeps.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_micros(100);
/// Kafka's limit on topic name length.
const MAX_TOPIC_LEN: usize = 249;
/// Headers slaprobe itself sets on every canary.
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
        let alerts = self.alerts();
        let defaults = self.defaults();
        let clusters = self.clusters();
        let (probes, lag) = self.probes(&defaults, &clusters);
        let actions = self.actions(&clusters, &probes, &lag);
        let connection_checks = self.connection_checks(&clusters);
        Config {
            sources: self.files.iter().map(|f| f.path.clone()).collect(),
            server,
            state_dir,
            alertmanager,
            alerts,
            clusters,
            probes,
            lag,
            actions,
            connection_checks,
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
        let raw = f.raw.alertmanager.as_ref()?;
        let at = At::root(f).child("alertmanager");
        let before = self.errors.len();
        let urls: Vec<(At<'_>, &str)> = match (&raw.url, &raw.urls) {
            (Some(_), Some(_)) => {
                self.err(at.at_key("urls", "give `url` or `urls`, not both"));
                return None;
            }
            (None, None) => {
                self.err(at.here(
                    "needs `url` (or `urls`, one per Alertmanager replica), e.g. `url: http://alertmanager:9093`",
                ));
                return None;
            }
            (Some(u), None) => vec![(at.child("url"), u.as_str())],
            (None, Some(us)) if us.is_empty() => {
                self.err(at.at_val("urls", "must list at least one Alertmanager URL"));
                return None;
            }
            (None, Some(us)) => us
                .iter()
                .enumerate()
                .map(|(i, u)| (at.child("urls").item(i), u.as_str()))
                .collect(),
        };
        for (url_at, url) in &urls {
            if !is_http_url(url) {
                self.err(url_at.here(format!(
                    "must be an http:// or https:// URL with a host, e.g. `http://alertmanager:9093`; got `{}`",
                    redact_url(url)
                )));
            } else if url.starts_with("http://") && !raw.insecure {
                let credential = if has_userinfo(url) {
                    Some("basic auth")
                } else if raw.bearer_token.is_some() {
                    Some("a bearer token")
                } else {
                    None
                };
                if let Some(credential) = credential {
                    self.err(url_at.here(format!(
                        "{credential} over plain http would send the secret in clear text; \
                         use https:// (with `ca_file` for a private CA) or set `insecure: true`"
                    )));
                }
            }
        }
        if let Some(pem) = &raw.ca {
            if let Err(e) = reqwest::Certificate::from_pem_bundle(pem.as_bytes()) {
                self.err(at.at_val("ca", format!("is not a PEM certificate bundle: {e}")));
            } else if !pem.contains("-----BEGIN CERTIFICATE-----") {
                self.err(at.at_val(
                    "ca",
                    "holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
                ));
            }
        }
        if let Some(token) = &raw.bearer_token {
            if token.trim().is_empty() || token.trim().contains(char::is_whitespace) {
                self.err(at.at_val(
                    "bearer_token",
                    "must be one token without spaces (a trailing newline is fine)",
                ));
            }
        }
        let labels = raw.labels.clone().unwrap_or_default();
        for name in labels.keys() {
            if !is_label_name(name) {
                self.err(at.child("labels").at_key(
                    name,
                    "is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)",
                ));
            }
        }
        if self.errors.len() > before {
            return None;
        }
        Some(Alertmanager {
            urls: urls.iter().map(|(_, u)| u.to_string()).collect(),
            bearer_token: raw.bearer_token.as_ref().map(|t| t.trim().to_string()),
            ca_pem: raw.ca.clone(),
            insecure: raw.insecure,
            labels,
        })
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
            d.interval = self.interval(&at, s, DEFAULT_INTERVAL);
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

    /// An `interval`: positive, and at least [`MIN_INTERVAL`].
    pub(crate) fn interval(&mut self, at: &At<'_>, s: &str, fallback: Duration) -> Duration {
        let d = self.positive_duration(at, "interval", s, fallback);
        if d < MIN_INTERVAL && !d.is_zero() {
            self.err(at.at_val(
                "interval",
                format!(
                    "must be at least 100us (one canary per partition per interval; the rate is kept down to 100us), got {}",
                    format_duration(d)
                ),
            ));
            return fallback;
        }
        d
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
                let cluster = self.cluster(&at.child(name), name, rc);
                clusters.insert(name.clone(), cluster);
            }
        }
        clusters
    }

    /// One cluster: its bootstrap list and librdkafka options (checked by
    /// librdkafka itself; secrets never echoed).
    fn cluster(&mut self, cat: &At<'_>, name: &str, rc: &RawCluster) -> Cluster {
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
        Cluster {
            name: name.to_string(),
            bootstrap: rc.bootstrap.clone(),
            librdkafka: rc.librdkafka.clone(),
            secret_keys,
        }
    }
}

/// `http://` or `https://` followed by a host.
/// `http://user[:password]@host…`
fn has_userinfo(url: &str) -> bool {
    url.split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .is_some_and(|authority| authority.contains('@'))
}

/// A Prometheus label name a user may set.
fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

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
