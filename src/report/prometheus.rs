//! A report's counts and incidents from Prometheus' query API: the SLI
//! event counters slaprobe exports (`increase` per bucket, one range query
//! per SLO and outcome) and the burn-rate alerts Prometheus evaluated from
//! the generated rules (`ALERTS`), or, where it does not evaluate them,
//! slaprobe's own `slaprobe_slo_alert_firing`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::{Bucket, Incident, Period, SloInput};
use crate::config::Config;
use crate::generate::rules::selector;
use crate::generate::text::promql_str;
use crate::slo::alert::BURN_RATE_ALERT;

/// Prometheus answers at most 11,000 points per series: a range query's
/// step is at least the period over this many.
const MAX_POINTS: u64 = 10_000;

/// How long one query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("querying Prometheus at {url}: {error}")]
    Http { url: String, error: String },
    #[error("Prometheus refused `{query}`: {error}")]
    Query { query: String, error: String },
}

/// One series of a range query: its labels and (time, value) points.
type Series = (BTreeMap<String, String>, Vec<(u64, f64)>);

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn range(
        &self,
        query: &str,
        period: &Period,
        step: u64,
    ) -> Result<Vec<Series>, PrometheusError> {
        let url = format!("{}/api/v1/query_range", self.base);
        let http = |e: reqwest::Error| PrometheusError::Http {
            url: crate::util::format::redact_url(&self.base),
            error: e.without_url().to_string(),
        };
        // Points at `to`, `to - step`, … while their step lies in the
        // period: the point at t counts (t - step, t].
        let steps = ((period.to - period.from) / step).max(1);
        let start = period.to - (steps - 1) * step;
        let params = [
            ("query", query.to_string()),
            ("start", start.to_string()),
            ("end", period.to.to_string()),
            ("step", step.to_string()),
        ];
        let body: serde_json::Value = self
            .client
            .post(&url)
            .form(&params)
            .timeout(QUERY_TIMEOUT)
            .send()
            .await
            .map_err(http)?
            .json()
            .await
            .map_err(http)?;
        if body["status"] != "success" {
            return Err(PrometheusError::Query {
                query: query.to_string(),
                error: body["error"]
                    .as_str()
                    .unwrap_or("no error given")
                    .to_string(),
            });
        }
        let series = body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(series
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let points = s["values"]
                    .as_array()
                    .map(|v| {
                        v.iter()
                            .filter_map(|p| {
                                let t = p[0].as_f64()?;
                                let v: f64 = p[1].as_str()?.parse().ok()?;
                                Some((t as u64, v))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (labels, points)
            })
            .collect())
    }
}

/// Every configured SLO's counts and incidents over `period`, from the
/// Prometheus at `url` that scrapes slaprobe under `config.alerts.job`.
pub async fn inputs(
    url: &str,
    config: &Config,
    period: &Period,
) -> Result<Vec<SloInput>, PrometheusError> {
    let api = Api {
        client: reqwest::Client::new(),
        base: url.trim_end_matches('/').to_string(),
    };
    let job = &config.alerts.job;
    let b = period.bucket;
    let alert_step = ((period.to - period.from) / MAX_POINTS).max(15);
    let mut out = Vec::new();
    for p in &config.probes {
        for slo in &p.slos {
            let sel = selector(job, &p.name, slo);
            // `{job=…,sli=…}` with the outcome added.
            let open = sel.strip_suffix('}').unwrap_or(&sel);
            let counts = |outcome: &str| {
                format!(
                    "sum(increase(slaprobe_sli_events_total{open},outcome=\"{outcome}\"}}[{b}s]))"
                )
            };
            let good = api.range(&counts("good"), period, b).await?;
            let bad = api.range(&counts("bad"), period, b).await?;
            let mut buckets: BTreeMap<u64, Bucket> = BTreeMap::new();
            for (series, is_bad) in [(good, false), (bad, true)] {
                for (t, v) in series.into_iter().flat_map(|(_, p)| p) {
                    // The point at t counts (t - bucket, t].
                    let start = t.saturating_sub(b);
                    let e = buckets.entry(start).or_insert(Bucket {
                        start,
                        good: 0.0,
                        bad: 0.0,
                    });
                    if v.is_finite() {
                        if is_bad {
                            e.bad += v;
                        } else {
                            e.good += v;
                        }
                    }
                }
            }
            let name = slo.name(&p.name);
            let (qjob, qslo) = (promql_str(job), promql_str(&name));
            let tiers = api
                .range(
                    &format!(
                        "max by (severity, long_window, short_window) (ALERTS{{alertname=\"{BURN_RATE_ALERT}\",alertstate=\"firing\",job={qjob},slo={qslo}}})"
                    ),
                    period,
                    alert_step,
                )
                .await?;
            let tiers = if tiers.is_empty() {
                api.range(
                    &format!(
                        "max by (severity) (slaprobe_slo_alert_firing{{job={qjob},slo={qslo}}}) == 1"
                    ),
                    period,
                    alert_step,
                )
                .await?
            } else {
                tiers
            };
            let incidents = tiers
                .iter()
                .flat_map(|(labels, points)| intervals(labels, points, alert_step, period))
                .collect();
            out.push(SloInput {
                slo: name,
                probe: p.name.clone(),
                output: slo.output.clone(),
                sli: slo.sli.to_string(),
                objective: slo.objective,
                buckets: buckets.into_values().collect(),
                incidents: Some(incidents),
            });
        }
    }
    Ok(out)
}

/// The firing intervals of one tier's series: points `step` apart are one
/// interval; one that reaches the period's end is still firing.
fn intervals(
    labels: &BTreeMap<String, String>,
    points: &[(u64, f64)],
    step: u64,
    period: &Period,
) -> Vec<Incident> {
    let tier = match (
        labels.get("severity"),
        labels.get("long_window"),
        labels.get("short_window"),
    ) {
        (Some(s), Some(l), Some(w)) => format!("{s} {l}/{w}"),
        (Some(s), _, _) => s.clone(),
        _ => "unknown".to_string(),
    };
    let mut out = Vec::new();
    let mut current: Option<(u64, u64)> = None;
    for (t, _) in points {
        current = match current {
            Some((start, last)) if *t <= last + step => Some((start, *t)),
            Some((start, last)) => {
                out.push(Incident::new(tier.clone(), start, last + step, false));
                Some((*t, *t))
            }
            None => Some((*t, *t)),
        };
    }
    if let Some((start, last)) = current {
        let ongoing = last + step >= period.to;
        out.push(Incident::new(
            tier,
            start,
            (last + step).min(period.to),
            ongoing,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_points_are_one_incident_and_the_last_may_still_fire() {
        let period = Period {
            from: 0,
            to: 1_000,
            bucket: 60,
            chart_step: 60,
        };
        let labels: BTreeMap<String, String> = [
            ("severity".to_string(), "page".to_string()),
            ("long_window".to_string(), "1h".to_string()),
            ("short_window".to_string(), "5m".to_string()),
        ]
        .into();
        let points: Vec<(u64, f64)> = [100, 115, 130, 400, 415, 985]
            .iter()
            .map(|t| (*t, 1.0))
            .collect();
        let i = intervals(&labels, &points, 15, &period);
        let spans: Vec<(u64, Option<&str>, &str)> = i
            .iter()
            .map(|x| (x.start_unix, x.end.as_deref(), x.tier.as_str()))
            .collect();
        assert_eq!(
            spans,
            [
                (100, Some("1970-01-01T00:02:25Z"), "page 1h/5m"),
                (400, Some("1970-01-01T00:07:10Z"), "page 1h/5m"),
                (985, None, "page 1h/5m"),
            ]
        );
        assert_eq!(i[0].duration, "45s");
    }
}
