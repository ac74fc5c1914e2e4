//! One alerting rule as the rules file writes it.

use std::fmt::Write as _;

use super::text::yaml_str;
use crate::slo::alert::AlertStyle;

/// One alerting rule: its name, expression, `for:`, labels and
/// annotations (the runbook link among them).
#[derive(Clone)]
pub(super) struct Rule<'a> {
    pub name: &'a str,
    pub expr: String,
    pub for_: Option<String>,
    pub labels: Vec<(&'a str, String)>,
    pub summary: String,
    pub description: String,
}

/// A rule group's name: `base`, suffixed with the job when it is not the
/// default (so the groups of several instances are told apart).
pub(super) fn group_name(base: &str, job: &str) -> String {
    if job == crate::config::DEFAULT_JOB {
        base.to_string()
    } else {
        format!("{base}-{job}")
    }
}

pub(super) fn write_rule(out: &mut String, style: &AlertStyle, r: Rule<'_>) -> std::fmt::Result {
    writeln!(out, "      - alert: {}", r.name)?;
    writeln!(out, "        expr: {}", yaml_str(&r.expr))?;
    if let Some(f) = &r.for_ {
        writeln!(out, "        for: {f}")?;
    }
    writeln!(out, "        labels:")?;
    for (k, v) in &r.labels {
        writeln!(out, "          {k}: {}", yaml_str(v))?;
    }
    write_annotations(out, &style.annotations(r.name, r.summary, r.description))
}

pub(super) fn write_annotations(
    out: &mut String,
    annotations: &[(&str, String)],
) -> std::fmt::Result {
    writeln!(out, "        annotations:")?;
    for (k, v) in annotations {
        writeln!(out, "          {k}: {}", yaml_str(v))?;
    }
    Ok(())
}
