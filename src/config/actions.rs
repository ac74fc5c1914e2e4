//! `actions:`: what slaprobe does about an incident before (or instead of)
//! paging a person — a consumer group STOP or STALL, an SLO burning its
//! budget: a command or a webhook, run once per incident, never more often
//! than its cooldown, escalated when the condition outlives it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use super::secret::is_secret_key;
use crate::util::format::{redact_url, REDACTED};

/// The consumer-group statuses an action may be triggered by (`OK` is not
/// an incident).
pub const ACTION_STATUSES: [&str; 4] = ["WARN", "REWIND", "STALL", "STOP"];

/// One `actions:` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Unique; the `action` label.
    pub name: String,
    pub on: Trigger,
    pub run: Run,
    pub once_per: OncePer,
    /// Never two runs for one subject closer than this, across restarts.
    pub cooldown: Duration,
    /// The condition still holding this long after the run (or a run that
    /// failed): the remediation failed, and the alert pages.
    pub escalate_after: Duration,
    /// While the remediation is attempted, the covered alerts do not fire
    /// (instead of firing with `remediation="attempted"`).
    pub hold: bool,
}

/// When an action runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    ConsumerGroup(GroupTrigger),
    Slo(SloTrigger),
}

impl Trigger {
    /// How long the condition must hold before the action runs.
    pub fn for_(&self) -> Duration {
        match self {
            Trigger::ConsumerGroup(g) => g.for_,
            Trigger::Slo(s) => s.for_,
        }
    }

    /// When it runs, in words.
    pub fn describe(&self) -> String {
        match self {
            Trigger::ConsumerGroup(g) => g.describe(),
            Trigger::Slo(s) => s.describe(),
        }
    }
}

/// An SLO's burn-rate alert firing.
#[derive(Debug, Clone, PartialEq)]
pub struct SloTrigger {
    /// SLO names (`<probe>:<output>:<sli>`), each configured.
    pub slos: Vec<String>,
    /// `true` (`severity: page`): a page tier fires; `false` (`ticket`):
    /// any tier fires.
    pub pages_only: bool,
    pub for_: Duration,
}

impl SloTrigger {
    /// `SLO(s) a:b:c burning at a page tier for 1m`.
    pub fn describe(&self) -> String {
        format!(
            "SLO(s) {} burning at {}{}",
            self.slos.join(", "),
            if self.pages_only {
                "a page tier"
            } else {
                "any tier"
            },
            for_words(self.for_)
        )
    }
}

/// ` for 1m`, or nothing for 0.
fn for_words(d: Duration) -> String {
    if d.is_zero() {
        String::new()
    } else {
        format!(" for {}", crate::util::format::duration(d))
    }
}

/// A watched consumer group in one of `statuses`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTrigger {
    /// Some of [`ACTION_STATUSES`], in that order, each once.
    pub statuses: Vec<String>,
    pub groups: GroupScope,
    /// Only the groups on this cluster (default: wherever they are watched).
    pub cluster: Option<String>,
    /// How long the status must hold before the action runs.
    pub for_: Duration,
}

/// Which groups an action covers.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupScope {
    /// These groups (each watched by some probe).
    Named(Vec<String>),
    /// Every group the probe of this name watches (a `type: lag` probe, or
    /// a pipeline probe's `lag:`).
    Probe(String),
}

impl GroupTrigger {
    /// Whether group `group` on `cluster`, watched by probe `probe`, is
    /// covered.
    pub fn covers(&self, probe: &str, cluster: &str, group: &str) -> bool {
        self.cluster.as_deref().is_none_or(|c| c == cluster)
            && match &self.groups {
                GroupScope::Named(names) => names.iter().any(|g| g == group),
                GroupScope::Probe(p) => p == probe,
            }
    }
}

impl GroupTrigger {
    /// When it runs, in words: `group(s) a, b on cluster c STALL or STOP
    /// for 1m`.
    pub fn describe(&self) -> String {
        let groups = match &self.groups {
            GroupScope::Named(g) => format!("group(s) {}", g.join(", ")),
            GroupScope::Probe(p) => format!("every group probe {p} watches"),
        };
        let cluster = self
            .cluster
            .as_deref()
            .map(|c| format!(" on cluster {c}"))
            .unwrap_or_default();
        format!(
            "{groups}{cluster} {}{}",
            self.statuses.join(" or "),
            for_words(self.for_)
        )
    }
}

impl Run {
    /// What it runs, in words (secrets redacted): the command line, or the
    /// webhook's method and URL.
    pub fn describe(&self) -> String {
        match self {
            Run::Command { argv, .. } => argv.join(" "),
            Run::Webhook(w) => format!("webhook {} {}", w.method, redact_url(&w.url)),
        }
    }
}

/// `once_per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OncePer {
    /// One run per incident (the condition starting to hold), however long
    /// it lasts.
    Incident,
    /// Again every `cooldown` while the condition holds.
    Cooldown,
}

/// What an action runs.
#[derive(Clone, PartialEq)]
pub enum Run {
    /// A program with its arguments: no shell, the incident in its
    /// environment (`SLAPROBE_*`).
    Command {
        argv: Vec<String>,
        timeout: Duration,
    },
    /// An HTTP request with the incident as a JSON body.
    Webhook(Webhook),
}

#[derive(Clone, PartialEq)]
pub struct Webhook {
    pub url: String,
    /// `POST` or `PUT`.
    pub method: String,
    pub headers: BTreeMap<String, String>,
    /// Header names whose value was read from a `<name>_file`.
    pub secret_headers: BTreeSet<String>,
    pub timeout: Duration,
}

impl Webhook {
    /// Whether the value of header `name` must never be shown.
    pub fn is_secret_header(&self, name: &str) -> bool {
        is_secret_key(name)
            || name.eq_ignore_ascii_case("authorization")
            || self.secret_headers.contains(name)
    }

    /// The headers as they may be shown (secrets redacted).
    pub fn shown_headers(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .map(|(k, v)| {
                let v = if self.is_secret_header(k) {
                    REDACTED
                } else {
                    v
                };
                (k.as_str(), v)
            })
            .collect()
    }
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Run::Command { argv, timeout } => f
                .debug_struct("Command")
                .field("argv", argv)
                .field("timeout", timeout)
                .finish(),
            Run::Webhook(w) => f
                .debug_struct("Webhook")
                .field("url", &redact_url(&w.url))
                .field("method", &w.method)
                .field("headers", &w.shown_headers())
                .field("timeout", &w.timeout)
                .finish(),
        }
    }
}
