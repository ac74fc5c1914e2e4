//! One alerting rule as the rules file writes it.

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
