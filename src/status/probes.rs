//! Probes and their outputs as the status API shows them: counters and
//! latency quantiles read from the metric handles the hot paths update,
//! the latency history from the journal.

use serde::Serialize;

use crate::metrics::OutputMetrics;
use crate::outcome::{Journal, LatencyPoint};

/// A probe and its outputs' metric handles: what its view is read from.
pub struct ProbeHandles {
    pub name: String,
    /// `heartbeat` or `pipeline`.
    pub kind: String,
    pub outputs: Vec<(String, OutputMetrics)>,
}

/// A probe as the status API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub outputs: Vec<OutputView>,
}

/// One output: its outcome counters and latency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputView {
    pub name: String,
    pub delivered: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicate: u64,
    pub out_of_order: u64,
    pub foreign: u64,
    pub latency_seconds_1m: Quantiles,
    pub latency_seconds_5m: Quantiles,
    /// [Unix seconds, p50, p99] over the last minute, every 5 s, for an
    /// hour.
    pub latency_history: Vec<LatencyPoint>,
}

/// End-to-end latency quantiles over a sliding window, in seconds; `None`
/// (JSON `null`) when nothing arrived in the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantiles {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
}

impl ProbeView {
    /// `probe`'s view now.
    pub fn read(probe: &ProbeHandles, journal: &Journal) -> ProbeView {
        ProbeView {
            name: probe.name.clone(),
            kind: probe.kind.clone(),
            outputs: probe
                .outputs
                .iter()
                .map(|(output, m)| {
                    let t = m.totals();
                    OutputView {
                        name: output.clone(),
                        delivered: t.delivered,
                        lost: t.lost,
                        late: t.late,
                        duplicate: t.duplicate,
                        out_of_order: t.out_of_order,
                        foreign: m.foreign.get(),
                        latency_seconds_1m: Quantiles::read(m, 0),
                        latency_seconds_5m: Quantiles::read(m, 1),
                        latency_history: journal.latency(&probe.name, output),
                    }
                })
                .collect(),
        }
    }
}

impl Quantiles {
    /// Window `w`'s quantile gauges (in `metrics::latency::WINDOWS` and
    /// `QUANTILES` order; NaN when empty).
    fn read(m: &OutputMetrics, w: usize) -> Quantiles {
        let q = |q: usize| {
            m.quantiles
                .get(w)
                .and_then(|g| g.get(q))
                .map(|g| g.get())
                .filter(|v| v.is_finite())
        };
        Quantiles {
            p50: q(0),
            p90: q(1),
            p99: q(2),
            p999: q(3),
        }
    }
}
