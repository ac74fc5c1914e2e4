use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as PcFamily;
use prometheus_client::metrics::gauge::Gauge as PcGauge;
use prometheus_client::metrics::histogram::Histogram as PcHistogram;

use super::*;

#[test]
fn renders_every_family_in_openmetrics_text() {
    let r = Registry::default();
    let c = r.counter_vec("x_events_total", "Events.", &["probe"]);
    let g = r.gauge_vec("x_ratio", "A ratio.", &["slo"]);
    let h = r.histogram_vec("x_seconds", "Latency.", &["probe"], vec![0.1, 1.0]);
    c.with_label_values(&["a\"b"]).inc_by(3);
    g.with_label_values(&["s"]).set(f64::NAN);
    g.with_label_values(&["inf"]).set(f64::INFINITY);
    h.with_label_values(&["p"]).observe(0.5);
    h.with_label_values(&["p"]).observe(1.0);
    let text = r.render();
    for line in [
        "# HELP x_events Events.",
        "# TYPE x_events counter",
        "x_events_total{probe=\"a\\\"b\"} 3",
        "x_ratio{slo=\"s\"} NaN",
        "x_ratio{slo=\"inf\"} +Inf",
        "x_seconds_bucket{le=\"0.1\",probe=\"p\"} 0",
        "x_seconds_bucket{le=\"1.0\",probe=\"p\"} 2",
        "x_seconds_bucket{le=\"+Inf\",probe=\"p\"} 2",
        "x_seconds_sum{probe=\"p\"} 1.5",
        "x_seconds_count{probe=\"p\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
    assert!(text.ends_with("\n# EOF\n"), "{text}");
}

#[test]
fn removed_series_are_not_rendered_and_the_others_keep_their_handles() {
    let r = Registry::default();
    let g = r.int_gauge_vec("z", "Z.", &["a"]);
    let one = g.with_label_values(&["1"]);
    let two = g.with_label_values(&["2"]);
    let three = g.with_label_values(&["3"]);
    one.set(5);
    two.set(6);
    three.set(7);
    g.remove(&["1"]);
    g.remove(&["1"]);
    g.remove(&["never"]);
    // The last series moved into the gap: its handle and its lookup still
    // meet the same series.
    three.set(8);
    g.with_label_values(&["3"]).set(9);
    two.set(10);
    let text = r.render();
    assert!(!text.contains("z{a=\"1\"}"), "{text}");
    assert!(text.contains("z{a=\"2\"} 10\n"), "{text}");
    assert!(text.contains("z{a=\"3\"} 9\n"), "{text}");
    assert_eq!(three.get(), 9);
    // A removed series comes back at 0 when asked for again.
    assert_eq!(g.with_label_values(&["1"]).get(), 0);
}

#[test]
fn handles_share_the_series() {
    let r = Registry::default();
    let c = r.counter_vec("y_total", "Y.", &["a"]);
    c.with_label_values(&["1"]).inc();
    c.with_label_values(&["1"]).inc();
    assert_eq!(c.with_label_values(&["1"]).get(), 2);
}

type PcLabels = Vec<(&'static str, String)>;

fn pc_labels(names: &[&'static str], values: &[&str]) -> PcLabels {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| (*n, v.to_string()))
        .collect()
}

/// The text is the one the `prometheus-client` crate (the official Rust
/// client, which slaprobe used before) writes for the same series: every
/// kind, label values that need escaping, no labels, NaN, large and tiny
/// floats, bucket bounds, an empty family (not written). (Collectors: the
/// one slaprobe has is compared with the crate in `process.rs`.)
#[test]
fn the_text_is_what_prometheus_client_writes() {
    let ours = Registry::default();
    let mut theirs = prometheus_client::registry::Registry::default();
    let (counter_labels, gauge_labels) = (["probe", "output"], ["slo"]);
    let c = ours.counter_vec("t_events_total", "Events seen.", &counter_labels);
    let pc_c = PcFamily::<PcLabels, Counter<u64, AtomicU64>>::default();
    theirs.register("t_events", "Events seen", pc_c.clone());
    let g = ours.gauge_vec("t_ratio", "A ratio", &gauge_labels);
    let pc_g = PcFamily::<PcLabels, PcGauge<f64, AtomicU64>>::default();
    theirs.register("t_ratio", "A ratio", pc_g.clone());
    let ig = ours.int_gauge_vec("t_in_flight", "In flight.", &[]);
    let pc_ig = PcFamily::<Vec<(&'static str, String)>, PcGauge<i64, AtomicI64>>::default();
    theirs.register("t_in_flight", "In flight", pc_ig.clone());
    let _empty = ours.counter_vec("t_never_total", "Never used.", &["x"]);
    theirs.register(
        "t_never",
        "Never used",
        PcFamily::<PcLabels, Counter<u64, AtomicU64>>::default(),
    );
    let bounds = vec![0.0005, 0.001, 0.1, 1.0, 2.5, 30.0, 1e6];
    let h = ours.histogram_vec("t_seconds", "Latency.", &["probe"], bounds.clone());
    let pc_h = PcFamily::<PcLabels, PcHistogram, _>::new_with_constructor(move || {
        PcHistogram::new(bounds.clone())
    });
    theirs.register("t_seconds", "Latency", pc_h.clone());

    for (probe, output, n) in [
        ("p1", "heartbeat", 3u64),
        ("we\"ird\\ \n", "o", 0),
        ("ü", "x", u64::MAX),
    ] {
        c.with_label_values(&[probe, output]).inc_by(n);
        pc_c.get_or_create(&pc_labels(&counter_labels, &[probe, output]))
            .inc_by(n);
    }
    for (slo, v) in [
        ("a", f64::NAN),
        ("b", 0.999),
        ("c", -1.5e-9),
        ("d", 1e21),
        ("e", 3.0),
    ] {
        g.with_label_values(&[slo]).set(v);
        pc_g.get_or_create(&pc_labels(&gauge_labels, &[slo])).set(v);
    }
    ig.with_label_values(&[]).set(-42);
    pc_ig.get_or_create(&Vec::new()).set(-42);
    for (probe, values) in [
        ("p1", &[0.0004, 0.001, 0.0011, 3.0, 5e6][..]),
        ("p2", &[][..]),
    ] {
        for v in values {
            h.with_label_values(&[probe]).observe(*v);
            pc_h.get_or_create(&pc_labels(&["probe"], &[probe]))
                .observe(*v);
        }
        h.with_label_values(&[probe]);
        let _ = pc_h.get_or_create(&pc_labels(&["probe"], &[probe]));
    }

    let mut expected = String::new();
    prometheus_client::encoding::text::encode(&mut expected, &theirs).expect("encodes");
    let rendered = ours.render();
    assert_eq!(
        sorted_lines(&rendered),
        sorted_lines(&expected),
        "ours:\n{rendered}\ntheirs:\n{expected}"
    );
    assert!(rendered.ends_with("# EOF\n"));
}

/// A text's lines, sorted. Series order within a family is not part of the
/// format (the crate's is a hash map's). A series without labels: the
/// crate writes `name{} 1`; both formats' grammars allow `name 1`, which is
/// what Prometheus' own clients write, and slaprobe does.
fn sorted_lines(text: &str) -> Vec<String> {
    let mut l: Vec<String> = text.lines().map(|l| l.replacen("{} ", " ", 1)).collect();
    l.sort();
    l
}
