//! Remediation: the configured `actions:` run on what slaprobe sees of
//! the consumer groups it watches and of its SLOs. Every second the task
//! reads the groups' statuses (the lag tasks' [`GroupBoard`]) and the SLOs'
//! alerts (the evaluator's [`SloBoard`]), lets the [`engine`] decide,
//! starts the runs it asks for (each in a task of its own: a hanging action
//! never stalls probing or the next decision), and exports and saves where
//! every incident stands. The generated alerting rules read
//! `slaprobe_action_incident` to mark (or hold) the alerts of a group or
//! SLO whose remediation is attempted, and to page at once when it failed;
//! the evaluator does the same to the burn-rate alerts it pushes
//! ([`SloRemediations`]).

pub mod engine;
mod run;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Action, Config, Trigger};
use crate::metrics::ActionMetrics;
use crate::state::StateDir;
use crate::status::{
    ActionBoard, ActionView, GroupBoard, IncidentView, SloBoard, SloRemediation, SloRemediations,
};
use crate::util::format::{rfc3339, unix_now};
use engine::{Engine, Escalation, Event, Incident, RunOutcome, Saved, Subject};
pub use run::IncidentInfo;
use run::{execute, Ran};

/// How often the groups' statuses are looked at.
const TICK: Duration = Duration::from_secs(1);
/// Runs at once at most, all actions together.
const MAX_RUNNING: usize = 8;
/// Ended incidents the status API shows, per action.
const ENDED_SHOWN: usize = 10;
/// The file in `state_dir` that keeps incidents and cooldowns.
pub const ACTIONS_FILE: &str = "slaprobe.state.actions";

/// [`ACTIONS_FILE`]'s content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionsFile {
    pub written_at: u64,
    pub writer: String,
    #[serde(flatten)]
    pub saved: Saved,
}

/// The configured actions, ready to run.
pub struct Actions {
    engine: Engine,
    groups: GroupBoard,
    slos: SloBoard,
    /// The Kafka cluster each SLO measures.
    slo_clusters: BTreeMap<String, String>,
    /// Where the evaluator reads the SLOs' remediations.
    marks: SloRemediations,
    metrics: ActionMetrics,
    state_dir: Option<Arc<StateDir>>,
    http: reqwest::Client,
    /// `slaprobe_action_incident` series exported now.
    exported: BTreeSet<[String; 5]>,
    /// What was saved last (nothing is written while it stays the same).
    saved: Saved,
    /// How each open incident's last run ended, in words.
    outcomes: BTreeMap<(usize, Subject), String>,
    /// Ended incidents, the latest first, per action.
    ended: Vec<VecDeque<IncidentView>>,
    /// Where the status API reads them.
    pub board: ActionBoard,
}

#[derive(Debug, thiserror::Error)]
pub enum ActionsError {
    #[error("cannot build the HTTP client for webhook actions")]
    Http(#[source] reqwest::Error),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

impl Actions {
    /// The actions of `config` (`None` without any), with what `state_dir`
    /// kept of their incidents and cooldowns.
    pub fn build(
        config: &Config,
        metrics: &ActionMetrics,
        groups: GroupBoard,
        slos: SloBoard,
        marks: SloRemediations,
        state_dir: Option<Arc<StateDir>>,
    ) -> Result<Option<Actions>, ActionsError> {
        if config.actions.is_empty() {
            return Ok(None);
        }
        let mut engine = Engine::new(&config.actions);
        for a in &config.actions {
            for o in RunOutcome::ALL {
                metrics.runs.with_label_values(&[&a.name, o.label()]);
            }
            metrics.escalations.with_label_values(&[&a.name]);
            metrics.last_run.with_label_values(&[&a.name]);
        }
        let mut saved = Saved::default();
        if let Some(dir) = &state_dir {
            if let Some(file) = dir.load_named::<ActionsFile>(ACTIONS_FILE)? {
                info!(
                    incidents = file.saved.incidents.len(),
                    cooldowns = file.saved.last_runs.len(),
                    "restoring remediation incidents and cooldowns"
                );
                engine.restore(file.saved);
                saved = engine.save();
                for (name, _, at) in &saved.last_runs {
                    let g = metrics.last_run.with_label_values(&[name]);
                    g.set(g.get().max(*at as f64));
                }
            }
        }
        let http = reqwest::Client::builder()
            // Credentials never follow a redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ActionsError::Http)?;
        let slo_clusters = config
            .probes
            .iter()
            .flat_map(|p| {
                p.slos
                    .iter()
                    .map(move |s| (s.name(&p.name), p.slo_cluster(s).to_string()))
            })
            .collect();
        let mut actions = Actions {
            engine,
            groups,
            slos,
            slo_clusters,
            marks,
            metrics: metrics.clone(),
            state_dir,
            http,
            exported: BTreeSet::new(),
            saved,
            outcomes: BTreeMap::new(),
            ended: vec![VecDeque::new(); config.actions.len()],
            board: ActionBoard::default(),
        };
        actions.export();
        actions.publish();
        Ok(Some(actions))
    }

    /// Decides every [`TICK`] until `cancel`; runs still going then are
    /// killed.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let running: Arc<tokio::sync::Semaphore> =
            Arc::new(tokio::sync::Semaphore::new(MAX_RUNNING));
        let mut runs: JoinSet<(usize, Subject, Ran, Duration)> = JoinSet::new();
        loop {
            let events = tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    let (holding, unknown) = self.observed();
                    self.engine.observe(unix_now(), &holding, &unknown)
                }
                Some(done) = runs.join_next(), if !runs.is_empty() => match done {
                    Ok((action, subject, ran, took)) => self.finished(action, &subject, ran, took),
                    Err(e) => {
                        warn!(error = %e, "a remediation run's task failed");
                        Vec::new()
                    }
                },
            };
            for event in events {
                if let Some(start) = self.event(event) {
                    let permits = running.clone();
                    let http = self.http.clone();
                    runs.spawn(async move {
                        let _permit = permits.acquire_owned().await;
                        let started = tokio::time::Instant::now();
                        let ran = execute(&start.run, &start.info, &http).await;
                        (start.action, start.subject, ran, started.elapsed())
                    });
                }
            }
            self.export();
            self.publish();
            self.save().await;
        }
        self.save().await;
    }

    /// (action, subject) -> status, for every covered group whose status is
    /// one its action runs on and every covered SLO whose alert fires; and
    /// the subjects whose status is not known: covered groups not judged
    /// over a full window since slaprobe started, open incidents of groups
    /// on a cluster not read yet, and SLOs before their first evaluation.
    #[allow(clippy::type_complexity)]
    fn observed(
        &self,
    ) -> (
        BTreeMap<(usize, Subject), String>,
        BTreeSet<(usize, Subject)>,
    ) {
        let mut holding = BTreeMap::new();
        let mut unknown = BTreeSet::new();
        let board = self.groups.read().unwrap_or_else(|e| e.into_inner());
        let mut seen = BTreeSet::new();
        for view in board.values().flatten() {
            for (i, a) in self.engine.actions().iter().enumerate() {
                let Trigger::ConsumerGroup(t) = &a.on else {
                    continue;
                };
                if !t.covers(&view.probe, &view.kafka_cluster, &view.group) {
                    continue;
                }
                let key = (i, Subject::group(&view.kafka_cluster, &view.group));
                seen.insert(key.clone());
                if t.statuses.iter().any(|s| s == view.status) {
                    holding.insert(key, view.status.to_string());
                } else if !view.judged {
                    unknown.insert(key);
                }
            }
        }
        for (key, _) in self.engine.incidents() {
            let read = board
                .keys()
                .any(|(_, cluster)| *cluster == key.1.kafka_cluster);
            if key.1.slo.is_empty() && !seen.contains(key) && !read {
                unknown.insert(key.clone());
            }
        }
        drop(board);
        let slos = self.slos.read().unwrap_or_else(|e| e.into_inner());
        for (i, a) in self.engine.actions().iter().enumerate() {
            let Trigger::Slo(t) = &a.on else {
                continue;
            };
            for name in &t.slos {
                let cluster = self.slo_clusters.get(name).map_or("", String::as_str);
                let key = (i, Subject::slo(cluster, name));
                let Some(view) = slos.iter().find(|v| v.slo == *name) else {
                    unknown.insert(key);
                    continue;
                };
                let tier = view
                    .alerts
                    .iter()
                    .find(|al| al.firing && (!t.pages_only || al.severity == "page"));
                if let Some(tier) = tier {
                    let status = format!(
                        "{} {}/{}",
                        tier.severity, tier.long_window, tier.short_window
                    );
                    holding.insert(key, status);
                }
            }
        }
        (holding, unknown)
    }

    /// Logs and counts `event`; a run to start is returned.
    fn event(&mut self, event: Event) -> Option<Start> {
        let name = |i: usize| self.engine.actions()[i].name.clone();
        match event {
            Event::Run {
                action,
                subject,
                status,
                opened,
                attempt,
            } => {
                let a: &Action = &self.engine.actions()[action];
                info!(action = %a.name, subject = %subject.describe(),
                    %status, attempt, incident_started = %rfc3339(opened), "running remediation action");
                self.metrics
                    .last_run
                    .with_label_values(&[&a.name])
                    .set(unix_now() as f64);
                Some(Start {
                    action,
                    info: IncidentInfo::new(&a.name, &subject, &status, opened, attempt),
                    run: a.run.clone(),
                    subject,
                })
            }
            Event::HeldBack {
                action,
                subject,
                until,
            } => {
                warn!(action = %name(action), subject = %subject.describe(),
                    until = %rfc3339(until),
                    "remediation held back: the action ran for it less than its cooldown ago; its alerts fire as without an action");
                None
            }
            Event::Escalated {
                action,
                subject,
                why,
            } => {
                let a = &self.engine.actions()[action];
                let why = match why {
                    Escalation::RunFailed(o) => format!("the action's run ended {}", o.label()),
                    Escalation::StillHolding => format!(
                        "the condition still holds {} after the action ran",
                        crate::util::format::duration(a.escalate_after)
                    ),
                };
                warn!(action = %a.name, subject = %subject.describe(),
                    %why, "remediation failed: escalating (its alerts page with remediation=\"failed\")");
                self.metrics.escalations.with_label_values(&[&a.name]).inc();
                None
            }
            Event::Ended {
                action,
                subject,
                incident,
            } => {
                info!(action = %name(action), subject = %subject.describe(),
                    lasted_s = unix_now().saturating_sub(incident.opened),
                    remediation = incident.remediation.label().unwrap_or("none"), "incident over: the condition cleared");
                let key = (action, subject);
                let outcome = self.outcomes.remove(&key);
                let mut view = incident_view(&key.1, &incident, outcome);
                view.ended = Some(rfc3339(unix_now()));
                let ended = &mut self.ended[action];
                ended.push_front(view);
                ended.truncate(ENDED_SHOWN);
                None
            }
        }
    }

    fn finished(
        &mut self,
        action: usize,
        subject: &Subject,
        ran: Ran,
        took: Duration,
    ) -> Vec<Event> {
        let name = self.engine.actions()[action].name.clone();
        self.metrics
            .runs
            .with_label_values(&[&name, ran.outcome.label()])
            .inc();
        if ran.outcome == RunOutcome::Ok {
            info!(action = %name, subject = %subject.describe(),
                outcome = ran.outcome.label(), took = ?took, detail = %ran.detail, "remediation action ran");
        } else {
            warn!(action = %name, subject = %subject.describe(),
                outcome = ran.outcome.label(), took = ?took, detail = %ran.detail, "remediation action did not succeed");
        }
        self.outcomes.insert(
            (action, subject.clone()),
            format!("{}: {}", ran.outcome.label(), ran.detail),
        );
        self.engine.finished(action, subject, ran.outcome)
    }

    /// Every action as the status API shows it now.
    fn publish(&self) {
        let views = self
            .engine
            .actions()
            .iter()
            .enumerate()
            .map(|(i, a)| ActionView {
                action: a.name.clone(),
                on: a.on.describe(),
                run: a.run.describe(),
                cooldown: crate::util::format::duration(a.cooldown),
                escalate_after: crate::util::format::duration(a.escalate_after),
                hold: a.hold,
                runs: RunOutcome::ALL
                    .iter()
                    .map(|o| {
                        let n = self
                            .metrics
                            .runs
                            .with_label_values(&[&a.name, o.label()])
                            .get();
                        (o.label(), n)
                    })
                    .collect(),
                escalations: self.metrics.escalations.with_label_values(&[&a.name]).get(),
                incidents: self
                    .engine
                    .incidents()
                    .filter(|((j, _), _)| *j == i)
                    .map(|(key, inc)| incident_view(&key.1, inc, self.outcomes.get(key).cloned()))
                    .collect(),
                ended: self.ended[i].iter().cloned().collect(),
            })
            .collect();
        *self.board.write().unwrap_or_else(|e| e.into_inner()) = views;
    }

    /// `slaprobe_action_incident`: 1 for each incident whose remediation
    /// was attempted or failed; the others' series removed. The SLOs'
    /// remediations also go to the evaluator.
    fn export(&mut self) {
        let now: BTreeSet<[String; 5]> = self
            .engine
            .incidents()
            .filter_map(|((i, s), inc)| {
                Some([
                    self.engine.actions()[*i].name.clone(),
                    s.kafka_cluster.clone(),
                    s.group.clone(),
                    s.slo.clone(),
                    inc.remediation.label()?.to_string(),
                ])
            })
            .collect();
        for gone in self.exported.difference(&now) {
            self.metrics.incident.remove(&labels(gone));
        }
        for new in now.difference(&self.exported) {
            self.metrics.incident.with_label_values(&labels(new)).set(1);
        }
        self.exported = now;
        let marks: BTreeMap<String, SloRemediation> = self
            .engine
            .incidents()
            .filter(|((_, s), _)| !s.slo.is_empty())
            .filter_map(|((i, s), inc)| {
                let a = &self.engine.actions()[*i];
                let Trigger::Slo(t) = &a.on else {
                    return None;
                };
                let mark = SloRemediation {
                    remediation: inc.remediation.label()?,
                    hold: a.hold,
                    pages_only: t.pages_only,
                };
                Some((s.slo.clone(), mark))
            })
            .collect();
        let mut current = self.marks.write().unwrap_or_else(|e| e.into_inner());
        if *current != marks {
            *current = marks;
        }
    }

    /// Writes the incidents and cooldowns when they changed (off the
    /// runtime's threads: a slow disk delays only this task).
    async fn save(&mut self) {
        let Some(dir) = self.state_dir.clone() else {
            return;
        };
        let saved = self.engine.save();
        if saved == self.saved {
            return;
        }
        let file = ActionsFile {
            written_at: unix_now(),
            writer: env!("CARGO_PKG_VERSION").to_string(),
            saved: saved.clone(),
        };
        let d = dir.clone();
        match tokio::task::spawn_blocking(move || d.save_named(ACTIONS_FILE, &file)).await {
            Ok(Ok(())) => self.saved = saved,
            Ok(Err(e)) => warn!(dir = %dir.path().display(), error = %e,
                "cannot write the remediation state; a restart now could run an action again within its cooldown"),
            Err(e) => warn!(error = %e, "writing the remediation state failed"),
        }
    }
}

/// An incident as the status API shows it (`ended` left to the caller).
fn incident_view(subject: &Subject, inc: &Incident, last_outcome: Option<String>) -> IncidentView {
    IncidentView {
        kafka_cluster: subject.kafka_cluster.clone(),
        group: subject.group.clone(),
        slo: subject.slo.clone(),
        status: inc.status.clone(),
        started: rfc3339(inc.opened),
        ended: None,
        remediation: inc.remediation.label().unwrap_or("pending"),
        runs: inc.runs,
        last_run: inc.ran.map(rfc3339),
        last_outcome,
        held_back_until: inc.held_back.map(rfc3339),
    }
}

fn labels(l: &[String; 5]) -> [&str; 5] {
    [&l[0], &l[1], &l[2], &l[3], &l[4]]
}

/// A run to start.
struct Start {
    action: usize,
    subject: Subject,
    info: IncidentInfo,
    run: crate::config::Run,
}
