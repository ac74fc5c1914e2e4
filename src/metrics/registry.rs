//! The metric families' storage and their OpenMetrics text exposition.
//!
//! Series are atomics with their label text rendered once, when the series
//! is created (a probe built, a partition or broker first seen); the hot
//! paths hold the returned handles and never look a series up. A render is
//! one pass that writes each series' numbers (`itoa`, `dtoa`) next to that
//! text, so its cost is the bytes written, not the label sets encoded.
//!
//! Measured with the 100-probe registry of `examples/bench_core.rs`
//! (1.5 MB of text): the `prometheus-client` crate, which encodes every
//! label of every line (each histogram bucket again) through `dyn Write`,
//! rendered it in 3.3-7.1 ms p50 on the 2-core test machine; this in 0.4 ms
//! (BENCHMARKS.md). The output is the crate's text but for a series
//! without labels (`name 1`, not `name{} 1`) and infinite gauges (`+Inf`,
//! not `inf`): a test renders one registry both ways and compares.
//!
//! The exposition is OpenMetrics text (served as
//! `application/openmetrics-text`), which Prometheus scrapes natively:
//! counters are named without `_total` in `# HELP`/`# TYPE` and with it
//! on their samples, help texts end with a full stop, `# EOF` closes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The content type of [`Registry::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `a="x",b="y"` (no braces), values escaped as the format wants.
fn label_text(names: &[&str], values: &[&str]) -> String {
    debug_assert_eq!(names.len(), values.len(), "label values for {names:?}");
    let mut s = String::new();
    // An empty value is no label (Prometheus' data model): a family may
    // leave a label out for some of its series (`broker` off heartbeats).
    for (n, v) in names.iter().zip(values).filter(|(_, v)| !v.is_empty()) {
        if !s.is_empty() {
            s.push(',');
        }
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
    s
}

/// A float as the format wants it (`NaN`, `+Inf`, `-Inf`).
pub(super) fn write_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        out.push_str(dtoa::Buffer::new().format_finite(v));
    }
}

fn write_u64(out: &mut String, v: u64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// `# HELP` and `# TYPE` of a family named `name` (counters: without
/// `_total`).
pub(super) fn write_descriptor(out: &mut String, name: &str, help: &str, kind: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    out.push_str(help);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// One sample line: `name{labels} value`.
pub(super) fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &str,
    value: impl FnOnce(&mut String),
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
    out.push(' ');
    value(out);
    out.push('\n');
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

/// A float that goes up and down (NaN for "no data").
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
    bounds: Arc<[f64]>,
    /// Per bucket (not cumulative), and one for values above every bound.
    counts: Box<[AtomicU64]>,
    /// The sum's f64 bits.
    sum: AtomicU64,
}

/// A histogram with fixed bucket bounds (a bucket counts values up to and
/// including its bound).
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramCore>);

impl Histogram {
    fn new(bounds: Arc<[f64]>) -> Histogram {
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
        if let Some(c) = h.counts.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let _ = h
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((f64::from_bits(s) + v).to_bits())
            });
    }
}

/// How one kind of series is made and written.
trait Series: Clone + Send + Sync + 'static {
    const KIND: &'static str;
    fn write(&self, out: &mut String, family: &Family<Self>, labels: &str);
}

impl Series for IntCounter {
    const KIND: &'static str = "counter";
    fn write(&self, out: &mut String, f: &Family<Self>, labels: &str) {
        write_sample(out, &f.name, "_total", labels, |o| write_u64(o, self.get()));
    }
}

impl Series for Gauge {
    const KIND: &'static str = "gauge";
    fn write(&self, out: &mut String, f: &Family<Self>, labels: &str) {
        write_sample(out, &f.name, "", labels, |o| write_f64(o, self.get()));
    }
}

impl Series for IntGauge {
    const KIND: &'static str = "gauge";
    fn write(&self, out: &mut String, f: &Family<Self>, labels: &str) {
        write_sample(out, &f.name, "", labels, |o| {
            o.push_str(itoa::Buffer::new().format(self.get()));
        });
    }
}

impl Series for Histogram {
    const KIND: &'static str = "histogram";
    fn write(&self, out: &mut String, f: &Family<Self>, labels: &str) {
        let h = &self.0;
        let counts: Vec<u64> = h.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total = counts.iter().sum();
        let sum = f64::from_bits(h.sum.load(Ordering::Relaxed));
        write_sample(out, &f.name, "_sum", labels, |o| write_f64(o, sum));
        write_sample(out, &f.name, "_count", labels, |o| write_u64(o, total));
        let mut cumulative = 0;
        for (count, le) in counts.iter().zip(&f.le) {
            cumulative += count;
            out.push_str(&f.name);
            out.push_str("_bucket{le=\"");
            out.push_str(le);
            out.push('"');
            if !labels.is_empty() {
                out.push(',');
                out.push_str(labels);
            }
            out.push_str("} ");
            write_u64(out, cumulative);
            out.push('\n');
        }
    }
}

/// The series of one family, with their label text.
struct Family<M> {
    /// Counters: without `_total`.
    name: String,
    help: String,
    labels: Vec<&'static str>,
    /// Histograms: their bounds, and each bound as its `le` label value
    /// (`+Inf` last).
    bounds: Arc<[f64]>,
    le: Vec<String>,
    series: Mutex<Members<M>>,
}

/// A family's series in creation order (a removal moves the last one into
/// the gap), and where each label text is in it.
struct Members<M> {
    list: Vec<(Arc<str>, M)>,
    index: HashMap<Arc<str>, usize>,
}

impl<M> Default for Members<M> {
    fn default() -> Self {
        Members {
            list: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<M: Series> Family<M> {
    fn get_or_create(&self, values: &[&str], make: impl FnOnce() -> M) -> M {
        let text = label_text(&self.labels, values);
        let mut s = lock(&self.series);
        let Members { list, index } = &mut *s;
        if let Some(&i) = index.get(text.as_str()) {
            return list[i].1.clone();
        }
        let series = make();
        let text: Arc<str> = text.into();
        index.insert(text.clone(), list.len());
        list.push((text, series.clone()));
        series
    }

    fn remove(&self, values: &[&str]) {
        let text = label_text(&self.labels, values);
        let mut s = lock(&self.series);
        let Members { list, index } = &mut *s;
        let Some(i) = index.remove(text.as_str()) else {
            return;
        };
        list.swap_remove(i);
        if let Some((moved, _)) = list.get(i) {
            index.insert(moved.clone(), i);
        }
    }
}

/// What the registry renders: a family of any kind, or a collector.
trait Render: Send + Sync {
    fn render(&self, out: &mut String);
}

impl<M: Series> Render for Family<M> {
    /// Nothing for a family without series.
    fn render(&self, out: &mut String) {
        let s = lock(&self.series);
        if s.list.is_empty() {
            return;
        }
        write_descriptor(out, &self.name, &self.help, M::KIND);
        for (labels, series) in &s.list {
            series.write(out, self, labels);
        }
    }
}

/// Series computed at each scrape (see [`super::process`]): writes whole
/// families with [`write_descriptor`] and their samples.
pub trait Collector: Send + Sync + 'static {
    fn collect(&self, out: &mut String);
}

struct Collected<C>(C);

impl<C: Collector> Render for Collected<C> {
    fn render(&self, out: &mut String) {
        self.0.collect(out);
    }
}

/// Every family, registered once at start, rendered in registration order
/// on each scrape.
#[derive(Clone, Default)]
pub struct Registry(Arc<Mutex<Vec<Arc<dyn Render>>>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("families", &lock(&self.0).len())
            .finish()
    }
}

impl Registry {
    fn family<M: Series>(
        &self,
        name: &str,
        help: &str,
        labels: &[&'static str],
        bounds: Vec<f64>,
    ) -> Arc<Family<M>> {
        let name = if M::KIND == "counter" {
            name.strip_suffix("_total").unwrap_or(name)
        } else {
            name
        };
        let mut help = help
            .strip_suffix('.')
            .unwrap_or(help)
            .replace('\\', "\\\\")
            .replace('\n', "\\n");
        help.push('.');
        let mut le: Vec<String> = bounds
            .iter()
            .map(|b| {
                let mut s = String::new();
                write_f64(&mut s, *b);
                s
            })
            .collect();
        le.push("+Inf".to_string());
        let family = Arc::new(Family {
            name: name.to_string(),
            help,
            labels: labels.to_vec(),
            bounds: bounds.into(),
            le,
            series: Mutex::default(),
        });
        lock(&self.0).push(family.clone());
        family
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&'static str]) -> IntCounterVec {
        IntCounterVec(self.family(name, help, labels, Vec::new()))
    }

    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&'static str]) -> GaugeVec {
        GaugeVec(self.family(name, help, labels, Vec::new()))
    }

    pub fn int_gauge_vec(&self, name: &str, help: &str, labels: &[&'static str]) -> IntGaugeVec {
        IntGaugeVec(self.family(name, help, labels, Vec::new()))
    }

    /// `bounds`: ascending and finite (`+Inf` is added).
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&'static str],
        bounds: Vec<f64>,
    ) -> HistogramVec {
        HistogramVec(self.family(name, help, labels, bounds))
    }

    /// Series computed at each scrape, after the families registered
    /// before it.
    pub fn collector(&self, c: impl Collector) {
        lock(&self.0).push(Arc::new(Collected(c)));
    }

    /// The OpenMetrics text exposition of every series.
    pub fn render(&self) -> String {
        let all: Vec<Arc<dyn Render>> = lock(&self.0).clone();
        let mut out = String::with_capacity(64 * 1024);
        for r in all {
            r.render(&mut out);
        }
        out.push_str("# EOF\n");
        out
    }
}

#[derive(Clone)]
pub struct IntCounterVec(Arc<Family<IntCounter>>);

#[derive(Clone)]
pub struct GaugeVec(Arc<Family<Gauge>>);

#[derive(Clone)]
pub struct IntGaugeVec(Arc<Family<IntGauge>>);

#[derive(Clone)]
pub struct HistogramVec(Arc<Family<Histogram>>);

impl IntCounterVec {
    /// The series with these label values (created at 0 if new).
    pub fn with_label_values(&self, values: &[&str]) -> IntCounter {
        self.0.get_or_create(values, IntCounter::default)
    }
}

impl GaugeVec {
    pub fn with_label_values(&self, values: &[&str]) -> Gauge {
        self.0.get_or_create(values, Gauge::default)
    }

    /// Drops the series (a handle kept elsewhere no longer shows).
    pub fn remove(&self, values: &[&str]) {
        self.0.remove(values);
    }
}

impl IntGaugeVec {
    pub fn with_label_values(&self, values: &[&str]) -> IntGauge {
        self.0.get_or_create(values, IntGauge::default)
    }

    /// Drops the series (a handle kept elsewhere no longer shows).
    pub fn remove(&self, values: &[&str]) {
        self.0.remove(values);
    }
}

impl HistogramVec {
    pub fn with_label_values(&self, values: &[&str]) -> Histogram {
        let bounds = self.0.bounds.clone();
        self.0.get_or_create(values, || Histogram::new(bounds))
    }
}

#[cfg(test)]
#[path = "registry/tests.rs"]
mod tests;
