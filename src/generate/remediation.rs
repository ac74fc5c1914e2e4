//! The alerts of groups and SLOs a remediation action covers: while
//! slaprobe's action is attempted the alert carries
//! `remediation="attempted"` (or, with the action's `hold: true`, does not
//! fire at all), and once the remediation failed it fires at once with
//! `remediation="failed"` and pages. `slaprobe_action_incident` says which
//! groups and SLOs are where; one without a series there alerts as before.

use super::rule::Rule;
use super::text::promql_str;
use crate::config::GroupScope;
use crate::config::{Action, LagWatch, Trigger};
use crate::slo::alert::{remediated, AlertStyle, BurnRateAlert};
use crate::slo::{BurnTier, Severity};

/// The actions that cover any group of watch `w` at `status`.
pub(super) fn covering<'a>(actions: &'a [Action], w: &LagWatch, status: &str) -> Vec<&'a Action> {
    actions
        .iter()
        .filter(|a| {
            let Trigger::ConsumerGroup(t) = &a.on else {
                return false;
            };
            t.statuses.iter().any(|s| s == status)
                && t.cluster.as_deref().is_none_or(|c| c == w.cluster)
                && match &t.groups {
                    GroupScope::Probe(p) => *p == w.probe,
                    GroupScope::Named(names) => names.iter().any(|g| w.groups.matches(g)),
                }
        })
        .collect()
}

/// `rule` split by remediation for the actions `covering` it: as before
/// for groups without a remediation, marked `attempted` (for the actions
/// without `hold`), and `failed`, which pages at once.
pub(super) fn variants<'a>(
    rule: Rule<'a>,
    covering: &[&Action],
    job: &str,
    style: &AlertStyle,
) -> Vec<Rule<'a>> {
    if covering.is_empty() {
        return vec![rule];
    }
    let incident =
        |more: &str| format!("slaprobe_action_incident{{job={}{more}}}", promql_str(job));
    let marked = |remediation: &str, actions: &[&Action]| {
        let names: Vec<String> = actions.iter().map(|a| regex_escape(&a.name)).collect();
        format!(
            "({}) * on (kafka_cluster, group) group_left (remediation) max by (kafka_cluster, group, remediation) ({})",
            rule.expr,
            incident(&format!(
                ",remediation={},action=~{}",
                promql_str(remediation),
                promql_str(&names.join("|"))
            ))
        )
    };
    let names = |actions: &[&Action]| {
        actions
            .iter()
            .map(|a| format!("`{}`", a.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    let unheld: Vec<&Action> = covering.iter().copied().filter(|a| !a.hold).collect();
    if !unheld.is_empty() {
        out.push(Rule {
            expr: marked("attempted", &unheld),
            description: format!(
                "{} slaprobe's remediation action ({}) ran and the group has not recovered yet; \
                 if it has not within the action's escalate_after, the alert fires with remediation=\"failed\" and pages.",
                rule.description,
                names(&unheld)
            ),
            ..rule.clone()
        });
    }
    let mut labels = rule.labels.clone();
    for (k, v) in &mut labels {
        if *k == "severity" {
            *v = style.severity(Severity::Page).to_string();
        }
    }
    out.push(Rule {
        expr: marked("failed", covering),
        for_: None,
        labels,
        description: format!(
            "{} slaprobe's remediation action ({}) did not bring the group back: the run failed, \
             or the status outlived the action's escalate_after. A person is needed.",
            rule.description,
            names(covering)
        ),
        ..rule.clone()
    });
    out.insert(
        0,
        Rule {
            expr: format!(
                "({}) unless on (kafka_cluster, group) {}",
                rule.expr,
                incident("")
            ),
            ..rule
        },
    );
    out
}

/// `s` matched literally in a PromQL regular expression.
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = matches!(
                c,
                '.' | '+' | '*' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' | '\\'
            );
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// The burn-rate alert `a` (expression `expr`) of `tier` of SLO `slo`,
/// split by remediation if an action covers the tier: as before without
/// an incident, marked `attempted` (unless the action holds), and `failed`,
/// paging — labels and annotations as the evaluator pushes them.
pub(super) fn burn_variants(
    expr: String,
    a: BurnRateAlert,
    slo: &str,
    tier: &BurnTier,
    actions: &[Action],
    job: &str,
    style: &AlertStyle,
) -> Vec<(String, BurnRateAlert)> {
    let covering = actions.iter().find(|action| match &action.on {
        Trigger::Slo(t) => {
            t.slos.iter().any(|s| s == slo) && (!t.pages_only || tier.severity == Severity::Page)
        }
        Trigger::ConsumerGroup(_) => false,
    });
    let Some(action) = covering else {
        return vec![(expr, a)];
    };
    let incident = |more: &str| {
        format!(
            "slaprobe_action_incident{{job={},slo={}{more}}}",
            promql_str(job),
            promql_str(slo)
        )
    };
    let marked = |remediation: &str| {
        format!(
            "({expr}) * on () group_left (remediation) max by (remediation) ({})",
            incident(&format!(",remediation={}", promql_str(remediation)))
        )
    };
    let mut out = vec![(format!("({expr}) unless on () {}", incident("")), a.clone())];
    if !action.hold {
        out.push((
            marked("attempted"),
            remediated(a.clone(), "attempted", style),
        ));
    }
    out.push((marked("failed"), remediated(a, "failed", style)));
    out
}
