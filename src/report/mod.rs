//! The SLA report (`slaprobe report`, and `/report` of a running
//! slaprobe): per SLO, its attainment against the objective over a period,
//! the error budget spent, the worst hours, the incidents (each burn-rate
//! tier's firing intervals) and a daily attainment chart — for the people
//! an SLA is reported to.
//!
//! - [`model`]: the report from each SLO's event counts per bucket (pure);
//! - this file: the formats, and `slaprobe report`'s sources;
//! - [`prometheus`]: the counts and incidents from Prometheus' query API;
//! - [`saved`]: the counts from slaprobe's own SLO windows (a running
//!   evaluator's, or `state_dir`'s);
//! - [`render`]: HTML (inline SVG, no JavaScript) and Markdown.

mod model;
pub mod prometheus;
pub mod render;
pub mod saved;

use std::time::Duration;

pub use model::{build, Bucket, Incident, Period, Report, Row, SloInput, SloReport};
use model::{DAY, MINUTE};

use crate::util::format::duration as format_duration;

/// The longest period a report covers (slaprobe's hour buckets span an
/// SLO's period; Prometheus' retention is usually shorter).
pub const MAX_PERIOD: Duration = Duration::from_secs(366 * DAY);

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Markdown,
    Json,
}

impl Format {
    /// `html`, `markdown` (or `md`), `json`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "html" => Some(Format::Html),
            "markdown" | "md" => Some(Format::Markdown),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The body and its content type.
    pub fn write(self, r: &Report) -> (&'static str, String) {
        match self {
            Format::Html => ("text/html; charset=utf-8", render::html(r)),
            Format::Markdown => ("text/markdown; charset=utf-8", render::markdown(r)),
            Format::Json => (
                "application/json",
                serde_json::to_string_pretty(r).unwrap_or_default() + "\n",
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Prometheus(#[from] prometheus::PrometheusError),
    #[error("{0}")]
    State(String),
    #[error("no history to report from: give --prometheus URL (the Prometheus that scrapes slaprobe), or set state_dir in the configuration")]
    NoSource,
    #[error("--period must be between 1m and 366d, got {0}")]
    Period(String),
}

/// The report of `config`'s SLOs over the `length` up to `now`: from the
/// Prometheus at `prometheus`, else from `state_dir`.
pub async fn from_config(
    config: &crate::config::Config,
    length: Duration,
    prometheus: Option<&str>,
    now: u64,
) -> Result<Report, ReportError> {
    if length < Duration::from_secs(MINUTE) || length > MAX_PERIOD {
        return Err(ReportError::Period(format_duration(length)));
    }
    let period = Period::new(length, now);
    match (prometheus, &config.state_dir) {
        (Some(url), _) => {
            let inputs = prometheus::inputs(url, config, &period).await?;
            let source = format!(
                "Prometheus {} (job {})",
                crate::util::format::redact_url(url),
                config.alerts.job
            );
            Ok(build(&period, inputs, &source, now))
        }
        (None, Some(dir)) => {
            let saved = crate::state::read_slos(dir)
                .map_err(ReportError::State)?
                .map(|f| f.slos)
                .unwrap_or_default();
            let inputs = saved::from_state(config, &saved, &period);
            let source = format!(
                "slaprobe's saved SLO windows in {} (incidents: the tiers firing when saved)",
                dir.display()
            );
            Ok(build(&period, inputs, &source, now))
        }
        (None, None) => Err(ReportError::NoSource),
    }
}
