//! A small Prometheus metrics registry and text exposition.
//!
//! The performance target asks `/metrics` to render in under 5 ms with 100 probes (some
//! 20,000 series). The `prometheus` crate gathers through protobuf
//! structures and took ~15 ms for that here, so slaprobe keeps its own:
//! series are atomics with their label text rendered once, at creation, and
//! rendering is one pass that writes numbers next to those strings.
//! Creating a series takes a lock and a map lookup; the hot paths hold the
//! returned handles and never do.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `{a="x",b="y"}` (empty for no labels), values escaped per the format.
fn label_text(names: &[&str], values: &[&str], extra: Option<(&str, &str)>) -> String {
    let mut s = String::new();
    let pairs = names.iter().zip(values).map(|(n, v)| (*n, *v)).chain(extra);
    for (i, (n, v)) in pairs.enumerate() {
        s.push(if i == 0 { '{' } else { ',' });
        s.push_str(n);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    if !s.is_empty() {
        s.push('}');
    }
    s
}

/// A float as the text format wants it (`+Inf`, `-Inf`, `NaN`).
fn write_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// A monotonically increasing integer.
#[derive(Clone, Debug, Default)]
pub struct IntCounter(Arc<AtomicU64>);

impl IntCounter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A float that goes up and down.
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicU64>);

impl Default for Gauge {
    fn default() -> Self {
        Gauge(Arc::new(AtomicU64::new(0f64.to_bits())))
    }
}

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// An integer that goes up and down.
#[derive(Clone, Debug, Default)]
pub struct IntGauge(Arc<AtomicI64>);

impl IntGauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct HistogramCore {
    bounds: Arc<Vec<f64>>,
    /// Per bucket (non-cumulative), plus one for values above every bound.
    counts: Vec<AtomicU64>,
    sum: AtomicU64,
}

/// A histogram with fixed bucket bounds.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramCore>);

impl Histogram {
    fn new(bounds: Arc<Vec<f64>>) -> Histogram {
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram(Arc::new(HistogramCore {
            bounds,
            counts,
            sum: AtomicU64::new(0f64.to_bits()),
        }))
    }

    pub fn observe(&self, v: f64) {
        let h = &self.0;
        let i = h.bounds.partition_point(|b| *b < v);
        h.counts[i].fetch_add(1, Ordering::Relaxed);
        let _ = h
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((f64::from_bits(s) + v).to_bits())
            });
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.0
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

#[derive(Clone, Debug)]
enum Handle {
    Counter(IntCounter),
    Gauge(Gauge),
    IntGauge(IntGauge),
    Histogram(Histogram),
}

/// The series of one family, in creation order, with their label text.
#[derive(Debug, Default)]
struct Series {
    index: HashMap<Vec<String>, usize>,
    list: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    /// `{a="x"}`.
    text: String,
    /// Histograms: the label text of each bucket, `+Inf` last.
    buckets: Vec<String>,
    handle: Handle,
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: &'static str,
    labels: Vec<&'static str>,
    bounds: Arc<Vec<f64>>,
    series: Mutex<Series>,
}

impl Family {
    fn get(&self, values: &[&str], make: impl FnOnce() -> Handle) -> Handle {
        let mut s = lock(&self.series);
        let key: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        // A wrong number of values is a programming error; render what was
        // given rather than panic in a hot path.
        if let Some(&i) = s.index.get(&key) {
            return s.list[i].handle.clone();
        }
        let handle = make();
        let text = label_text(&self.labels, values, None);
        let buckets = match &handle {
            Handle::Histogram(h) => {
                let mut le = String::new();
                h.0.bounds
                    .iter()
                    .map(|b| {
                        le.clear();
                        write_f64(&mut le, *b);
                        label_text(&self.labels, values, Some(("le", &le)))
                    })
                    .chain(std::iter::once(label_text(
                        &self.labels,
                        values,
                        Some(("le", "+Inf")),
                    )))
                    .collect()
            }
            _ => Vec::new(),
        };
        let i = s.list.len();
        s.list.push(Entry {
            text,
            buckets,
            handle: handle.clone(),
        });
        s.index.insert(key, i);
        handle
    }

    fn render(&self, out: &mut String) {
        let s = lock(&self.series);
        if s.list.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "# HELP {} {}",
            self.name,
            self.help.replace('\\', "\\\\").replace('\n', "\\n")
        );
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for Entry {
            text,
            buckets,
            handle,
        } in &s.list
        {
            match handle {
                Handle::Counter(c) => {
                    let _ = writeln!(out, "{}{} {}", self.name, text, c.get());
                }
                Handle::IntGauge(g) => {
                    let _ = writeln!(out, "{}{} {}", self.name, text, g.get());
                }
                Handle::Gauge(g) => {
                    out.push_str(&self.name);
                    out.push_str(text);
                    out.push(' ');
                    write_f64(out, g.get());
                    out.push('\n');
                }
                Handle::Histogram(h) => {
                    let mut cumulative = 0;
                    for (count, labels) in h.0.counts.iter().zip(buckets) {
                        cumulative += count.load(Ordering::Relaxed);
                        let _ = writeln!(out, "{}_bucket{} {}", self.name, labels, cumulative);
                    }
                    out.push_str(&self.name);
                    out.push_str("_sum");
                    out.push_str(text);
                    out.push(' ');
                    write_f64(out, f64::from_bits(h.0.sum.load(Ordering::Relaxed)));
                    out.push('\n');
                    let _ = writeln!(out, "{}_count{} {}", self.name, text, cumulative);
                }
            }
        }
    }
}

/// The families of one process, rendered in registration order.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    families: Arc<Mutex<Vec<Arc<Family>>>>,
}

impl Registry {
    fn family(
        &self,
        name: &str,
        help: &str,
        kind: &'static str,
        labels: &[&'static str],
        bounds: Vec<f64>,
    ) -> Arc<Family> {
        let f = Arc::new(Family {
            name: name.to_string(),
            help: help.to_string(),
            kind,
            labels: labels.to_vec(),
            bounds: Arc::new(bounds),
            series: Mutex::new(Series::default()),
        });
        lock(&self.families).push(f.clone());
        f
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&'static str]) -> IntCounterVec {
        IntCounterVec(self.family(name, help, "counter", labels, Vec::new()))
    }

    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&'static str]) -> GaugeVec {
        GaugeVec(self.family(name, help, "gauge", labels, Vec::new()))
    }

    pub fn int_gauge_vec(&self, name: &str, help: &str, labels: &[&'static str]) -> IntGaugeVec {
        IntGaugeVec(self.family(name, help, "gauge", labels, Vec::new()))
    }

    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&'static str],
        bounds: Vec<f64>,
    ) -> HistogramVec {
        HistogramVec(self.family(name, help, "histogram", labels, bounds))
    }

    /// The text exposition (format 0.0.4) of every series.
    pub fn render(&self) -> String {
        let families: Vec<Arc<Family>> = lock(&self.families).clone();
        let mut out = String::with_capacity(64 * 1024);
        for f in families {
            f.render(&mut out);
        }
        out
    }
}

#[derive(Clone, Debug)]
pub struct IntCounterVec(Arc<Family>);
#[derive(Clone, Debug)]
pub struct GaugeVec(Arc<Family>);
#[derive(Clone, Debug)]
pub struct IntGaugeVec(Arc<Family>);
#[derive(Clone, Debug)]
pub struct HistogramVec(Arc<Family>);

impl IntCounterVec {
    pub fn with_label_values(&self, values: &[&str]) -> IntCounter {
        match self
            .0
            .get(values, || Handle::Counter(IntCounter::default()))
        {
            Handle::Counter(c) => c,
            _ => IntCounter::default(),
        }
    }
}

impl GaugeVec {
    pub fn with_label_values(&self, values: &[&str]) -> Gauge {
        match self.0.get(values, || Handle::Gauge(Gauge::default())) {
            Handle::Gauge(g) => g,
            _ => Gauge::default(),
        }
    }
}

impl IntGaugeVec {
    pub fn with_label_values(&self, values: &[&str]) -> IntGauge {
        match self.0.get(values, || Handle::IntGauge(IntGauge::default())) {
            Handle::IntGauge(g) => g,
            _ => IntGauge::default(),
        }
    }
}

impl HistogramVec {
    pub fn with_label_values(&self, values: &[&str]) -> Histogram {
        let bounds = self.0.bounds.clone();
        match self
            .0
            .get(values, || Handle::Histogram(Histogram::new(bounds)))
        {
            Handle::Histogram(h) => h,
            _ => Histogram::new(self.0.bounds.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let r = Registry::default();
        let c = r.counter_vec("x_total", "Things.", &["a", "b"]);
        c.with_label_values(&["1", "q\"uo\\te\n"]).inc_by(3);
        c.with_label_values(&["1", "q\"uo\\te\n"]).inc();
        let g = r.gauge_vec("g", "A gauge.", &["w"]);
        g.with_label_values(&["5m"]).set(f64::NAN);
        g.with_label_values(&["1h"]).set(f64::INFINITY);
        g.with_label_values(&["1d"]).set(0.25);
        let h = r.histogram_vec("lat_seconds", "Latency.", &["p"], vec![0.1, 1.0]);
        let hp = h.with_label_values(&["x"]);
        for v in [0.05, 0.1, 0.5, 3.0] {
            hp.observe(v);
        }
        r.int_gauge_vec("empty", "Never used.", &["z"]);
        assert_eq!(
            r.render(),
            "# HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{a=\"1\",b=\"q\\\"uo\\\\te\\n\"} 4\n\
             # HELP g A gauge.\n# TYPE g gauge\n\
             g{w=\"5m\"} NaN\ng{w=\"1h\"} +Inf\ng{w=\"1d\"} 0.25\n\
             # HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n\
             lat_seconds_bucket{p=\"x\",le=\"0.1\"} 2\n\
             lat_seconds_bucket{p=\"x\",le=\"1\"} 3\n\
             lat_seconds_bucket{p=\"x\",le=\"+Inf\"} 4\n\
             lat_seconds_sum{p=\"x\"} 3.65\n\
             lat_seconds_count{p=\"x\"} 4\n"
        );
        assert_eq!(hp.count(), 4);
    }
}
