//! `actions:`: names, triggers (the groups they cover must be watched, the
//! SLOs configured, and nothing is covered by two actions), what runs, and
//! the timing.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::probes::claim;
use super::{is_http_url, valid_name, At, Validator, NAME_CHARS};
use crate::config::actions::*;
use crate::config::model::{Cluster, GroupSelector, LagWatch, Probe};
use crate::config::raw::{RawAction, RawGroupTrigger, RawRun, RawSloTrigger, RawWebhook};
use crate::config::LoadedFile;
use crate::util::format::{duration as format_duration, redact_url};
use slaprobe_yaml::Pos;

pub(crate) const DEFAULT_COOLDOWN: Duration = Duration::from_secs(600);
pub(crate) const DEFAULT_ESCALATE_AFTER: Duration = Duration::from_secs(600);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a run may take: a remediation is a restart, not a job.
const MAX_RUN_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_ACTION_DURATION: Duration = Duration::from_secs(7 * 86_400);

impl Validator<'_> {
    pub(super) fn actions(
        &mut self,
        clusters: &BTreeMap<String, Cluster>,
        probes: &[Probe],
        lag: &[LagWatch],
    ) -> Vec<Action> {
        let mut actions: Vec<(Action, At<'_>)> = Vec::new();
        let mut origin: HashMap<String, (&LoadedFile, Pos)> = HashMap::new();
        for f in self.files {
            let Some(raw) = &f.raw.actions else {
                continue;
            };
            let list = At::root(f).child("actions");
            for (i, ra) in raw.iter().enumerate() {
                let at = list.item(i);
                let name_pos = at.child("name").pos();
                if let Some(first) = claim(&mut origin, &ra.name, f, name_pos) {
                    let msg = format!(
                        "duplicate action name `{}`: already used at {first}",
                        ra.name
                    );
                    self.err(at.at_val("name", msg));
                }
                if let Some(action) = self.action(&at, ra, clusters, probes, lag) {
                    actions.push((action, at));
                }
            }
        }
        self.overlaps(&actions, lag);
        actions.into_iter().map(|(a, _)| a).collect()
    }

    fn action(
        &mut self,
        at: &At<'_>,
        ra: &RawAction,
        clusters: &BTreeMap<String, Cluster>,
        probes: &[Probe],
        lag: &[LagWatch],
    ) -> Option<Action> {
        if !valid_name(&ra.name) {
            self.err(at.at_val(
                "name",
                format!("invalid action name `{}`: {NAME_CHARS}", ra.name),
            ));
        }
        let on = match (&ra.on.consumer_group, &ra.on.slo) {
            (Some(g), None) => {
                Trigger::ConsumerGroup(self.group_trigger(&at.child("on"), g, clusters, lag)?)
            }
            (None, Some(slo)) => Trigger::Slo(self.slo_trigger(&at.child("on"), slo, probes)?),
            _ => {
                self.err(at.at_key(
                    "on",
                    "say when the action runs, with exactly one of `consumer_group: { status: [STOP], groups: [NAME] }` \
                     and `slo: { slos: [PROBE:OUTPUT:SLI], severity: page }`",
                ));
                return None;
            }
        };
        let run = self.run(&at.child("run"), &ra.run)?;
        let once_per = match ra.once_per.as_deref() {
            None | Some("incident") => OncePer::Incident,
            Some("cooldown") => OncePer::Cooldown,
            Some(other) => {
                self.err(at.at_val(
                    "once_per",
                    format!("`{other}` is not one of `incident` (one run per incident, the default) and `cooldown` (again every cooldown while it holds)"),
                ));
                OncePer::Incident
            }
        };
        let cooldown =
            self.action_duration(at, "cooldown", ra.cooldown.as_deref(), DEFAULT_COOLDOWN);
        let escalate_after = self.action_duration(
            at,
            "escalate_after",
            ra.escalate_after.as_deref(),
            DEFAULT_ESCALATE_AFTER,
        );
        Some(Action {
            name: ra.name.clone(),
            on,
            run,
            once_per,
            cooldown,
            escalate_after,
            hold: ra.hold,
        })
    }

    /// A duration of an action: > 0 and at most 7 days.
    fn action_duration(
        &mut self,
        at: &At<'_>,
        key: &str,
        raw: Option<&str>,
        default: Duration,
    ) -> Duration {
        let Some(s) = raw else {
            return default;
        };
        match self.duration(at, key, s) {
            Some(d) if d.is_zero() => {
                self.err(at.at_val(key, "must be greater than 0"));
                default
            }
            Some(d) if d > MAX_ACTION_DURATION => {
                self.err(at.at_val(
                    key,
                    format!("must be at most 7d, got {}", format_duration(d)),
                ));
                default
            }
            Some(d) => d,
            None => default,
        }
    }

    fn group_trigger(
        &mut self,
        on: &At<'_>,
        raw: &RawGroupTrigger,
        clusters: &BTreeMap<String, Cluster>,
        lag: &[LagWatch],
    ) -> Option<GroupTrigger> {
        let at = on.child("consumer_group");
        let mut statuses = Vec::new();
        match &raw.status {
            None => statuses.push("STOP".to_string()),
            Some(list) if list.is_empty() => {
                self.err(at.at_val("status", "list at least one status, e.g. `[STOP, STALL]`"))
            }
            Some(list) => {
                let sat = at.child("status");
                for (i, s) in list.iter().enumerate() {
                    if !ACTION_STATUSES.contains(&s.as_str()) {
                        self.err(sat.item(i).here(format!(
                            "`{s}` is not a consumer-group status an action can run on; use {}",
                            ACTION_STATUSES.join(", ")
                        )));
                    }
                }
                // In the canonical order, each once.
                statuses = ACTION_STATUSES
                    .iter()
                    .filter(|s| list.iter().any(|l| l == *s))
                    .map(|s| s.to_string())
                    .collect();
            }
        }
        if let Some(c) = &raw.cluster {
            self.cluster_ref(&at, "cluster", c, clusters);
        }
        let in_cluster = |w: &&LagWatch| raw.cluster.as_deref().is_none_or(|c| c == w.cluster);
        let groups = match (&raw.groups, &raw.probe) {
            (Some(groups), None) if !groups.is_empty() => {
                let gat = at.child("groups");
                for (i, g) in groups.iter().enumerate() {
                    if !lag.iter().filter(in_cluster).any(|w| w.groups.matches(g)) {
                        self.err(gat.item(i).here(format!(
                            "consumer group `{g}` is not watched{}: name it in a `type: lag` probe or a pipeline probe's `lag:` (the action runs on what slaprobe sees of it)",
                            raw.cluster.as_deref().map(|c| format!(" on cluster `{c}`")).unwrap_or_default()
                        )));
                    }
                }
                GroupScope::Named(groups.clone())
            }
            (None, Some(p)) => {
                if !lag.iter().filter(in_cluster).any(|w| &w.probe == p) {
                    let watching: Vec<&str> = lag.iter().map(|w| w.probe.as_str()).collect();
                    self.err(at.at_val(
                        "probe",
                        format!(
                                "probe `{p}` watches no consumer groups{}; probes that do: {}",
                                raw.cluster
                                    .as_deref()
                                    .map(|c| format!(" on cluster `{c}`"))
                                    .unwrap_or_default(),
                                if watching.is_empty() {
                                    "none".to_string()
                                } else {
                                    watching.join(", ")
                                }
                            ),
                    ));
                }
                GroupScope::Probe(p.clone())
            }
            _ => {
                self.err(at.here(
                    "give exactly one of `groups: [NAME, ...]` (watched groups) and `probe: NAME` (every group that probe watches)",
                ));
                return None;
            }
        };
        let for_ = match &raw.for_ {
            None => Duration::ZERO,
            Some(s) => self.duration(&at, "for", s).unwrap_or_default(),
        };
        Some(GroupTrigger {
            statuses,
            groups,
            cluster: raw.cluster.clone(),
            for_,
        })
    }

    fn slo_trigger(
        &mut self,
        on: &At<'_>,
        raw: &RawSloTrigger,
        probes: &[Probe],
    ) -> Option<SloTrigger> {
        let at = on.child("slo");
        let names: Vec<(String, &str)> = probes
            .iter()
            .flat_map(|p| {
                p.slos
                    .iter()
                    .map(move |s| (s.name(&p.name), p.name.as_str()))
            })
            .collect();
        let slos = match (&raw.slos, &raw.probe) {
            (Some(list), None) if !list.is_empty() => {
                let sat = at.child("slos");
                for (i, slo) in list.iter().enumerate() {
                    if !names.iter().any(|(n, _)| n == slo) {
                        let known: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
                        self.err(sat.item(i).here(format!(
                            "no SLO is named `{slo}` (names are `<probe>:<output>:<sli>`); configured: {}",
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        )));
                    }
                }
                list.clone()
            }
            (None, Some(p)) => {
                let of: Vec<String> = names
                    .iter()
                    .filter(|(_, probe)| probe == p)
                    .map(|(n, _)| n.clone())
                    .collect();
                if of.is_empty() {
                    self.err(at.at_val("probe", format!("probe `{p}` has no SLOs")));
                }
                of
            }
            _ => {
                self.err(at.here(
                    "give exactly one of `slos: [PROBE:OUTPUT:SLI, ...]` and `probe: NAME` (every SLO of that probe)",
                ));
                return None;
            }
        };
        let pages_only = match raw.severity.as_deref() {
            None | Some("page") => true,
            Some("ticket") => false,
            Some(other) => {
                self.err(at.at_val(
                    "severity",
                    format!("`{other}` is not `page` (a page tier fires, the default) or `ticket` (any tier fires)"),
                ));
                true
            }
        };
        let for_ = match &raw.for_ {
            None => Duration::ZERO,
            Some(s) => self.duration(&at, "for", s).unwrap_or_default(),
        };
        Some(SloTrigger {
            slos,
            pages_only,
            for_,
        })
    }

    fn run(&mut self, at: &At<'_>, raw: &RawRun) -> Option<Run> {
        let timeout = |v: &mut Self, default: Duration| match &raw.timeout {
            None => default,
            Some(s) => match v.duration(at, "timeout", s) {
                Some(d) if d.is_zero() || d > MAX_RUN_TIMEOUT => {
                    v.err(at.at_val(
                        "timeout",
                        format!("must be between 1ms and 10m, got {}", format_duration(d)),
                    ));
                    default
                }
                Some(d) => d,
                None => default,
            },
        };
        match (&raw.command, &raw.webhook) {
            (Some(argv), None) => {
                if argv.first().is_none_or(|a| a.trim().is_empty()) {
                    self.err(at.at_val(
                        "command",
                        "give the program and its arguments as a list, e.g. `[/usr/local/bin/restart-job, enricher]` (no shell runs it)",
                    ));
                    return None;
                }
                Some(Run::Command {
                    argv: argv.clone(),
                    timeout: timeout(self, DEFAULT_COMMAND_TIMEOUT),
                })
            }
            (None, Some(w)) => {
                let t = timeout(self, DEFAULT_WEBHOOK_TIMEOUT);
                self.webhook(&at.child("webhook"), w, t)
            }
            _ => {
                self.err(at.here(
                    "give exactly one of `command: [PROGRAM, ARG, ...]` and `webhook: { url: ... }`",
                ));
                None
            }
        }
    }

    fn webhook(&mut self, at: &At<'_>, raw: &RawWebhook, timeout: Duration) -> Option<Run> {
        if !is_http_url(&raw.url) {
            self.err(at.at_val(
                "url",
                format!(
                    "must be an http:// or https:// URL with a host; got `{}`",
                    redact_url(&raw.url)
                ),
            ));
        }
        let method = raw.method.as_deref().unwrap_or("POST").to_ascii_uppercase();
        if method != "POST" && method != "PUT" {
            self.err(at.at_val(
                "method",
                format!("`{method}` is not `POST` or `PUT` (the incident is sent as a JSON body)"),
            ));
        }
        let hat = at.child("headers");
        for (k, v) in &raw.headers {
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                self.err(hat.at_key(k, format!("`{k}` is not a valid HTTP header name")));
            } else if reqwest::header::HeaderValue::from_str(v).is_err() {
                self.err(hat.at_val(
                    k,
                    "not a valid HTTP header value (control characters or non-ASCII)",
                ));
            }
        }
        Some(Run::Webhook(Webhook {
            url: raw.url.clone(),
            method,
            headers: raw.headers.clone(),
            secret_headers: raw
                .headers
                .keys()
                .filter(|h| hat.is_from_file(h))
                .cloned()
                .collect(),
            timeout,
        }))
    }

    /// No consumer group is covered by two actions for one status: which
    /// one's remediation would the alert carry?
    fn overlaps(&mut self, actions: &[(Action, At<'_>)], lag: &[LagWatch]) {
        for (j, (b, bat)) in actions.iter().enumerate() {
            for (a, _) in &actions[..j] {
                let (ta, tb) = match (&a.on, &b.on) {
                    (Trigger::ConsumerGroup(ta), Trigger::ConsumerGroup(tb)) => (ta, tb),
                    (Trigger::Slo(ta), Trigger::Slo(tb)) => {
                        if let Some(slo) = ta.slos.iter().find(|s| tb.slos.contains(s)) {
                            self.err(bat.child("on").at_key(
                                "slo",
                                format!("SLO `{slo}` is already covered by action `{}`; one action per SLO", a.name),
                            ));
                        }
                        continue;
                    }
                    _ => continue,
                };
                let Some(status) = ta.statuses.iter().find(|s| tb.statuses.contains(s)) else {
                    continue;
                };
                let shared = lag
                    .iter()
                    .find_map(|w| shared_in(&covered_in(ta, w), &covered_in(tb, w), w));
                if let Some((what, cluster)) = shared {
                    self.err(bat.child("on").at_key(
                        "consumer_group",
                        format!(
                            "{what} on cluster `{cluster}` at {status} is already covered by action `{}`; one action per group and status",
                            a.name
                        ),
                    ));
                }
            }
        }
    }
}

/// What a trigger covers of one watch.
enum Covered {
    /// Every group it watches (a pattern's, found at each read).
    All,
    /// These named groups (maybe none).
    Named(Vec<String>),
}

/// What trigger `t` covers of watch `w`.
fn covered_in(t: &GroupTrigger, w: &LagWatch) -> Covered {
    if t.cluster.as_deref().is_some_and(|c| c != w.cluster) {
        return Covered::Named(Vec::new());
    }
    match (&t.groups, &w.groups) {
        (GroupScope::Probe(p), GroupSelector::Pattern(_)) if *p == w.probe => Covered::All,
        (GroupScope::Probe(p), GroupSelector::Named(names)) if *p == w.probe => {
            Covered::Named(names.clone())
        }
        (GroupScope::Probe(_), _) => Covered::Named(Vec::new()),
        (GroupScope::Named(names), _) => Covered::Named(
            names
                .iter()
                .filter(|g| w.groups.matches(g))
                .cloned()
                .collect(),
        ),
    }
}

/// What two triggers both cover of watch `w`, said for an error.
fn shared_in(a: &Covered, b: &Covered, w: &LagWatch) -> Option<(String, String)> {
    let what = match (a, b) {
        (Covered::All, Covered::All) => format!("every group of probe `{}`", w.probe),
        (Covered::All, Covered::Named(n)) | (Covered::Named(n), Covered::All) => {
            format!("consumer group `{}`", n.first()?)
        }
        (Covered::Named(x), Covered::Named(y)) => {
            format!("consumer group `{}`", x.iter().find(|g| y.contains(g))?)
        }
    };
    Some((what, w.cluster.clone()))
}
