//! The rules of remediation, pure (time passed in, Unix seconds: cooldowns
//! outlive the process): when a condition starting to hold is an incident,
//! when its action runs, when a remediation has failed, and what is kept
//! across a restart.
//!
//! An incident of an action is one subject (a consumer group on a cluster,
//! or an SLO) for as long as the condition holds without a break. Its action runs once
//! the condition has held for the trigger's `for`, unless the subject's last
//! run is younger than the action's cooldown (then it runs when the cooldown
//! is over, if the incident still lasts); once per incident, or again every
//! cooldown with `once_per: cooldown`. A run that fails, or a condition
//! still holding `escalate_after` after the run, escalates the incident:
//! the remediation failed. The condition clearing ends the incident.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::{Action, OncePer};

/// What an incident is about: a consumer group on a Kafka cluster, or an
/// SLO (and the cluster it measures).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Subject {
    pub kafka_cluster: String,
    /// The consumer group; empty for an SLO.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The SLO's name; empty for a consumer group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub slo: String,
}

impl Subject {
    pub fn group(kafka_cluster: &str, group: &str) -> Subject {
        Subject {
            kafka_cluster: kafka_cluster.to_string(),
            group: group.to_string(),
            slo: String::new(),
        }
    }

    pub fn slo(kafka_cluster: &str, slo: &str) -> Subject {
        Subject {
            kafka_cluster: kafka_cluster.to_string(),
            group: String::new(),
            slo: slo.to_string(),
        }
    }

    /// `group g on cluster c` or `SLO s`, for log lines.
    pub fn describe(&self) -> String {
        if self.slo.is_empty() {
            format!("group {} on cluster {}", self.group, self.kafka_cluster)
        } else {
            format!("SLO {}", self.slo)
        }
    }
}

/// Where an incident's remediation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Remediation {
    /// Nothing ran yet: the condition has not held for `for`, or the
    /// cooldown holds the action back.
    Pending,
    /// The action ran (or runs); the condition may still clear.
    Attempted,
    /// The run failed, or the condition outlived `escalate_after`.
    Failed,
}

impl Remediation {
    /// The `remediation` label value of alerts it marks (none while
    /// pending).
    pub fn label(self) -> Option<&'static str> {
        match self {
            Remediation::Pending => None,
            Remediation::Attempted => Some("attempted"),
            Remediation::Failed => Some("failed"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Exit status 0, or an HTTP 2xx.
    Ok,
    /// Another exit status or HTTP status.
    Failed,
    /// Killed (or abandoned) at the run's timeout.
    Timeout,
    /// It could not start: no such program, connection refused, …
    Error,
}

impl RunOutcome {
    pub const ALL: [RunOutcome; 4] = [
        RunOutcome::Ok,
        RunOutcome::Failed,
        RunOutcome::Timeout,
        RunOutcome::Error,
    ];

    /// The `outcome` label value.
    pub fn label(self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::Failed => "failed",
            RunOutcome::Timeout => "timeout",
            RunOutcome::Error => "error",
        }
    }
}

/// One incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// The status that holds (the latest seen).
    pub status: String,
    /// Unix seconds it started.
    pub opened: u64,
    /// When its action last started, if it ran.
    pub ran: Option<u64>,
    /// Runs in this incident.
    pub runs: u32,
    pub remediation: Remediation,
    /// A run in progress (not saved: a run does not outlive the process).
    #[serde(skip)]
    pub running: bool,
    /// Until when the cooldown holds a run back (said once per incident).
    #[serde(skip)]
    pub held_back: Option<u64>,
}

/// What the engine decided; the caller runs, logs and counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start the action now.
    Run {
        action: usize,
        subject: Subject,
        status: String,
        opened: u64,
        attempt: u32,
    },
    /// The cooldown holds a run back until `until`.
    HeldBack {
        action: usize,
        subject: Subject,
        until: u64,
    },
    /// The remediation failed: its alert pages.
    Escalated {
        action: usize,
        subject: Subject,
        why: Escalation,
    },
    /// The condition cleared.
    Ended {
        action: usize,
        subject: Subject,
        incident: Incident,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalation {
    /// The run itself did not succeed.
    RunFailed(RunOutcome),
    /// The condition still held `escalate_after` after the run.
    StillHolding,
}

/// What survives a restart: each action's open incidents and last runs,
/// by action name (an action removed from the configuration is forgotten).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub incidents: Vec<(String, Subject, Incident)>,
    pub last_runs: Vec<(String, Subject, u64)>,
}

/// The incidents of every action.
pub struct Engine {
    actions: Vec<Action>,
    incidents: BTreeMap<(usize, Subject), Incident>,
    last_run: BTreeMap<(usize, Subject), u64>,
}

impl Engine {
    pub fn new(actions: &[Action]) -> Engine {
        Engine {
            actions: actions.to_vec(),
            incidents: BTreeMap::new(),
            last_run: BTreeMap::new(),
        }
    }

    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Takes over what an earlier run saved.
    pub fn restore(&mut self, saved: Saved) {
        let index = |name: &str| self.actions.iter().position(|a| a.name == name);
        let mut incidents = BTreeMap::new();
        let mut last_run = BTreeMap::new();
        for (name, subject, incident) in saved.incidents {
            if let Some(i) = index(&name) {
                incidents.insert((i, subject), incident);
            }
        }
        for (name, subject, at) in saved.last_runs {
            if let Some(i) = index(&name) {
                last_run.insert((i, subject), at);
            }
        }
        self.incidents = incidents;
        self.last_run = last_run;
    }

    pub fn save(&self) -> Saved {
        let name = |i: usize| self.actions[i].name.clone();
        Saved {
            incidents: self
                .incidents
                .iter()
                .map(|((i, s), inc)| (name(*i), s.clone(), inc.clone()))
                .collect(),
            last_runs: self
                .last_run
                .iter()
                .map(|((i, s), at)| (name(*i), s.clone(), *at))
                .collect(),
        }
    }

    /// Open incidents, by action index and subject.
    pub fn incidents(&self) -> impl Iterator<Item = (&(usize, Subject), &Incident)> {
        self.incidents.iter()
    }

    /// The subjects whose condition holds now (`holding`: (action,
    /// subject) -> the status) and those whose status is not known yet
    /// (`unknown`: not read, or not over a full window since slaprobe
    /// started), at `now`: incidents open, run, escalate and end. An
    /// incident ends only when its condition is seen not to hold.
    pub fn observe(
        &mut self,
        now: u64,
        holding: &BTreeMap<(usize, Subject), String>,
        unknown: &BTreeSet<(usize, Subject)>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let ended: Vec<(usize, Subject)> = self
            .incidents
            .keys()
            .filter(|k| !holding.contains_key(*k) && !unknown.contains(*k))
            .cloned()
            .collect();
        for key in ended {
            if let Some(incident) = self.incidents.remove(&key) {
                events.push(Event::Ended {
                    action: key.0,
                    subject: key.1,
                    incident,
                });
            }
        }
        for (key, status) in holding {
            let action = &self.actions[key.0];
            let inc = self
                .incidents
                .entry(key.clone())
                .or_insert_with(|| Incident {
                    status: status.clone(),
                    opened: now,
                    ran: None,
                    runs: 0,
                    remediation: Remediation::Pending,
                    running: false,
                    held_back: None,
                });
            inc.status.clone_from(status);
            // Escalation: the condition outlived the remediation.
            if inc.remediation == Remediation::Attempted
                && inc
                    .ran
                    .is_some_and(|r| now.saturating_sub(r) >= action.escalate_after.as_secs())
            {
                inc.remediation = Remediation::Failed;
                events.push(Event::Escalated {
                    action: key.0,
                    subject: key.1.clone(),
                    why: Escalation::StillHolding,
                });
            }
            let due = match (inc.ran, action.once_per) {
                (None, _) => now.saturating_sub(inc.opened) >= action.on.for_().as_secs(),
                (Some(_), OncePer::Incident) => false,
                (Some(r), OncePer::Cooldown) => {
                    !inc.running && now.saturating_sub(r) >= action.cooldown.as_secs()
                }
            };
            if !due {
                continue;
            }
            let cooldown_until = self
                .last_run
                .get(key)
                .map(|last| last + action.cooldown.as_secs())
                .filter(|until| *until > now);
            if let Some(until) = cooldown_until {
                if inc.held_back.is_none() {
                    inc.held_back = Some(until);
                    events.push(Event::HeldBack {
                        action: key.0,
                        subject: key.1.clone(),
                        until,
                    });
                }
                continue;
            }
            inc.ran = Some(now);
            inc.held_back = None;
            inc.runs += 1;
            inc.running = true;
            if inc.remediation == Remediation::Pending {
                inc.remediation = Remediation::Attempted;
            }
            self.last_run.insert(key.clone(), now);
            events.push(Event::Run {
                action: key.0,
                subject: key.1.clone(),
                status: status.clone(),
                opened: inc.opened,
                attempt: inc.runs,
            });
        }
        // A subject's last run matters only within its cooldown.
        let actions = &self.actions;
        self.last_run
            .retain(|(i, _), at| now.saturating_sub(*at) < actions[*i].cooldown.as_secs());
        events
    }

    /// A run of `action` for `subject` ended with `outcome`: one that did
    /// not succeed escalates its incident at once (if it still lasts).
    pub fn finished(
        &mut self,
        action: usize,
        subject: &Subject,
        outcome: RunOutcome,
    ) -> Vec<Event> {
        let Some(inc) = self.incidents.get_mut(&(action, subject.clone())) else {
            return Vec::new();
        };
        inc.running = false;
        if outcome == RunOutcome::Ok || inc.remediation != Remediation::Attempted {
            return Vec::new();
        }
        inc.remediation = Remediation::Failed;
        vec![Event::Escalated {
            action,
            subject: subject.clone(),
            why: Escalation::RunFailed(outcome),
        }]
    }
}

#[cfg(test)]
mod tests;
