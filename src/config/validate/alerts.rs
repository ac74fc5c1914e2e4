//! `alerts:`: the scrape job, the severities' values and the runbooks' URL.

use super::{is_http_url, At, Validator};
use crate::config::alerts::Alerts;
use crate::util::format::redact_url;

impl Validator<'_> {
    pub(super) fn alerts(&mut self) -> Alerts {
        let mut alerts = Alerts::default();
        let Some(f) = self.singleton("alerts") else {
            return alerts;
        };
        let Some(raw) = f.raw.alerts.as_ref() else {
            return alerts;
        };
        let at = At::root(f).child("alerts");
        if let Some(job) = &raw.job {
            if job.trim().is_empty() {
                self.err(at.at_val(
                    "job",
                    "must name the Prometheus job slaprobe is scraped under, e.g. `slaprobe`",
                ));
            } else {
                alerts.job = job.clone();
            }
        }
        if let Some(s) = &raw.severity {
            let sat = at.child("severity");
            for (key, value, slot) in [
                ("page", &s.page, &mut alerts.page),
                ("ticket", &s.ticket, &mut alerts.ticket),
            ] {
                match value {
                    Some(v) if v.trim().is_empty() => self.err(
                        sat.at_val(key, "must be a label value, e.g. `critical` or `warning`"),
                    ),
                    Some(v) => *slot = v.clone(),
                    None => {}
                }
            }
            if alerts.page == alerts.ticket {
                self.err(sat.here(format!(
                    "page and ticket are both `{}`: routing could not tell them apart",
                    alerts.page
                )));
            }
        }
        if let Some(u) = &raw.runbook_url {
            if is_http_url(u) {
                alerts.runbook_url = Some(u.trim_end_matches('/').to_string());
            } else {
                self.err(at.at_val(
                    "runbook_url",
                    format!(
                        "must be an http:// or https:// URL with a host, e.g. `https://wiki.example/slaprobe-runbooks`; got `{}`",
                        redact_url(u)
                    ),
                ));
            }
        }
        if let Some(v) = &raw.broker_unreachable_for {
            alerts.broker_unreachable_for = self.positive_duration(
                &at,
                "broker_unreachable_for",
                v,
                alerts.broker_unreachable_for,
            );
        }
        if let Some(v) = &raw.certificate_expiry_warning {
            match self.duration(&at, "certificate_expiry_warning", v) {
                Some(d) if d.is_zero() => self.err(at.at_val(
                    "certificate_expiry_warning",
                    "must be greater than 0, e.g. `14d`",
                )),
                Some(d) => alerts.certificate_expiry_warning = d,
                None => {}
            }
        }
        alerts
    }
}
