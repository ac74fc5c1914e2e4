//! SLOs: objectives, periods, latency thresholds, and the expansion of
//! each SLO to the outputs it covers.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{At, Validator, DEFAULT_PERIOD, MAX_PERIOD, MIN_PERIOD};
use crate::config::model::*;
use crate::config::raw::{RawKind, RawProbe, RawSli, RawSlo};
use crate::util::format::duration as format_duration;

impl Validator<'_> {
    /// The SLOs of `rp.slos` about canaries of `kind` (a pipeline's poison
    /// canaries are a probe of their own), expanded per output.
    pub(super) fn slos(
        &mut self,
        at: &At<'_>,
        rp: &RawProbe,
        probe: &Probe,
        kind: RawKind,
    ) -> Vec<Slo> {
        let list = at.child("slos");
        let outputs = probe.output_names();
        // Outputs where a filter must drop the canary (`expect: none`).
        let filtered: Vec<&str> = match &probe.kind {
            ProbeKind::Pipeline(p) => p
                .outputs
                .iter()
                .filter(|o| o.expect == Expect::None)
                .map(|o| o.name.as_str())
                .collect(),
            ProbeKind::Heartbeat(_) => Vec::new(),
        };
        let mut slos: Vec<Slo> = Vec::new();
        // (output, sli) -> index in `slos:` that defined it first.
        let mut defined: BTreeMap<(String, Sli), usize> = BTreeMap::new();
        for (k, rs) in rp.slos.iter().enumerate() {
            if rs.kind.unwrap_or(RawKind::Normal) != kind {
                continue;
            }
            let sat = list.item(k);
            let sli = match rs.sli {
                RawSli::Availability => Sli::Availability,
                RawSli::Delivery => Sli::Delivery,
                RawSli::Latency => Sli::Latency,
            };
            let objective = match parse_objective(&rs.objective) {
                Ok(o) => o,
                Err(msg) => {
                    self.err(sat.at_val("objective", msg));
                    0.99
                }
            };
            let period = self.slo_period(&sat, rs);
            let threshold = self.slo_threshold(&sat, rs, sli, probe);
            let Some(targets) = self.slo_targets(&sat, rs, sli, probe, &outputs, &filtered) else {
                continue;
            };
            for output in targets {
                if let Some(first) = defined.get(&(output.clone(), sli)) {
                    self.err(sat.here(format!(
                        "duplicate SLO `{}:{output}:{sli}` (slos[{first}] already defines it)",
                        probe.name
                    )));
                    continue;
                }
                defined.insert((output.clone(), sli), k);
                slos.push(Slo {
                    output,
                    sli,
                    objective,
                    period,
                    threshold,
                    min_events: rs.min_events.unwrap_or(DEFAULT_MIN_EVENTS),
                });
            }
        }
        slos
    }

    /// An SLO's period: 1d to 365d, 30d by default.
    fn slo_period(&mut self, sat: &At<'_>, rs: &RawSlo) -> Duration {
        match &rs.period {
            None => DEFAULT_PERIOD,
            Some(s) => match self.duration(sat, "period", s) {
                Some(p) if p > MAX_PERIOD => {
                    self.err(sat.at_val(
                        "period",
                        format!("must be at most 365d, got {}", format_duration(p)),
                    ));
                    DEFAULT_PERIOD
                }
                Some(p) if p < MIN_PERIOD => {
                    self.err(sat.at_val(
                        "period",
                        format!(
                            "must be at least 1d (the alert windows go up to 3d), got {}",
                            format_duration(p)
                        ),
                    ));
                    DEFAULT_PERIOD
                }
                Some(p) => p,
                None => DEFAULT_PERIOD,
            },
        }
    }

    /// A latency SLO's threshold, below the probe's deadline; no other SLI
    /// has one.
    fn slo_threshold(
        &mut self,
        sat: &At<'_>,
        rs: &RawSlo,
        sli: Sli,
        probe: &Probe,
    ) -> Option<Duration> {
        match (sli, &rs.threshold) {
            (Sli::Latency, None) => {
                self.err(sat.at_key(
                    "threshold",
                    "required for a latency SLO (e.g. `threshold: 250ms`)",
                ));
                None
            }
            (Sli::Latency, Some(s)) => match self.duration(sat, "threshold", s) {
                Some(t) if t.is_zero() => {
                    self.err(sat.at_val("threshold", "must be greater than 0"));
                    None
                }
                Some(t) if t >= probe.deadline => {
                    self.err(sat.at_key(
                        "threshold",
                        format!(
                            "must be less than the probe's deadline ({}), got {}",
                            format_duration(probe.deadline),
                            format_duration(t)
                        ),
                    ));
                    None
                }
                t => t,
            },
            (_, Some(_)) => {
                self.err(sat.at_key(
                    "threshold",
                    format!("only allowed for latency SLOs, not {sli}"),
                ));
                None
            }
            (_, None) => None,
        }
    }

    /// The outputs an SLO covers: the one it names, or every output it
    /// applies to (availability: the input side). `None` after an error.
    fn slo_targets(
        &mut self,
        sat: &At<'_>,
        rs: &RawSlo,
        sli: Sli,
        probe: &Probe,
        outputs: &[&str],
        filtered: &[&str],
    ) -> Option<Vec<String>> {
        Some(match (sli, &rs.output) {
            (Sli::Availability, Some(_)) => {
                self.err(sat.at_key(
                    "output",
                    "not allowed for availability SLOs (availability is measured where canaries are produced)",
                ));
                return None;
            }
            (Sli::Availability, None) => vec![match probe.kind {
                ProbeKind::Heartbeat(_) => HEARTBEAT_OUTPUT.to_string(),
                ProbeKind::Pipeline(_) => INPUT_OUTPUT.to_string(),
            }],
            (Sli::Latency, Some(o)) if filtered.contains(&o.as_str()) => {
                self.err(sat.at_val(
                    "output",
                    format!("output `{o}` expects `none` (a filter drops the canary): it has no latency to measure"),
                ));
                return None;
            }
            (_, Some(o)) if outputs.contains(&o.as_str()) => vec![o.clone()],
            (_, Some(o)) => {
                let msg = match probe.kind {
                    ProbeKind::Heartbeat(_) => {
                        format!(
                            "unknown output `{o}`; a heartbeat probe's only output is `heartbeat`"
                        )
                    }
                    ProbeKind::Pipeline(_) => {
                        format!(
                            "unknown output `{o}`; this probe's outputs are: {}",
                            outputs.join(", ")
                        )
                    }
                };
                self.err(sat.at_val("output", msg));
                return None;
            }
            // A latency SLO means nothing where the canary must not arrive.
            (Sli::Latency, None) => outputs
                .iter()
                .filter(|o| !filtered.contains(o))
                .map(|o| o.to_string())
                .collect(),
            (_, None) => outputs.iter().map(|o| o.to_string()).collect(),
        })
    }
}

/// `99.95%` -> 0.9995, or a bare ratio like `0.999`; exclusive (0, 1).
fn parse_objective(s: &str) -> Result<f64, String> {
    const FORMS: &str = "write a percentage like `99.9%` or a ratio like `0.999`";
    let t = s.trim();
    let (ratio, pct) = match t.strip_suffix('%') {
        Some(num) => {
            let num = num.trim();
            let v = percent_to_ratio(num).or_else(|| num.parse::<f64>().ok().map(|v| v / 100.0));
            (v, true)
        }
        None => (t.parse::<f64>().ok(), false),
    };
    let Some(ratio) = ratio.filter(|r| r.is_finite()) else {
        return Err(format!("invalid objective `{s}`: {FORMS}"));
    };
    if !pct && (1.0..100.0).contains(&ratio) {
        return Err(format!(
            "a bare number is a ratio and must be between 0 and 1 (exclusive); did you mean `{t}%`?"
        ));
    }
    if !(ratio > 0.0 && ratio < 1.0) {
        return Err(format!(
            "must be between 0% and 100% (exclusive), got `{s}`"
        ));
    }
    Ok(ratio)
}

/// Decimal-exact percent -> ratio: `99.95` -> `0.9995` by moving the point,
/// so the result is the f64 nearest 0.9995 rather than `99.95 / 100`.
fn percent_to_ratio(num: &str) -> Option<f64> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    if int.len() > 2 {
        return None;
    }
    format!("0.{int:0>2}{frac}").parse().ok()
}
