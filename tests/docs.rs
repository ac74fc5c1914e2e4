//! The documentation is true and self-contained: `docs/metrics.md` lists
//! exactly what `/metrics` exports, and nothing in the README or `docs/`
//! points outside the repository.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{http_get, poll_until};

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `docs/metrics.md`'s table: family name (counters without `_total`) ->
/// (type, label names).
fn documented() -> BTreeMap<String, (String, BTreeSet<String>)> {
    repo("docs/metrics.md")
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`');
            let kind = cells[2].to_string();
            let family = match kind.as_str() {
                "counter" => name.strip_suffix("_total").unwrap_or(name),
                _ => name,
            };
            // `probe, output, error (decode, …)`: the names before any `(`.
            let mut labels = BTreeSet::new();
            let mut depth = 0;
            let mut current = String::new();
            for c in cells[3].chars() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        labels.insert(std::mem::take(&mut current).trim().to_string());
                    }
                    _ if depth == 0 => current.push(c),
                    _ => {}
                }
            }
            labels.insert(current.trim().to_string());
            labels.retain(|l| !l.is_empty() && l != "—");
            (family.to_string(), (kind, labels))
        })
        .collect()
}

/// A demo's `/metrics` once it is ready (with its fault script, so every
/// kind of series appears).
fn demo_exposition() -> String {
    let port = common::free_addr().port();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(["demo", "--faults", "--duration", "100s", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("SLAPROBE_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo");
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let ready = poll_until(Duration::from_secs(30), || {
        http_get(addr, "/readyz").is_ok_and(|r| r.0 == 200)
    });
    // Some families appear with their first series: the clients' request
    // counts with their first statistics (10 s after start), the
    // remediation incidents when the fault script's stall is remediated
    // (about 30 s) and while its stop escalates (60 s to 95 s).
    let documented: BTreeSet<String> = documented()
        .into_keys()
        .filter(|k| !NOT_IN_THE_DEMO.contains(&k.as_str()))
        .collect();
    let mut text = String::new();
    poll_until(Duration::from_secs(90), || {
        text = http_get(addr, "/metrics").map(|r| r.1).unwrap_or_default();
        families(&text)
            .into_keys()
            .filter(|k| !NOT_IN_THE_DEMO.contains(&k.as_str()))
            .collect::<BTreeSet<_>>()
            == documented
    });
    let _ = demo.kill();
    let _ = demo.wait();
    assert!(ready, "the demo gets ready");
    text
}

/// Family name -> type, from the exposition's `# TYPE` lines.
fn families(text: &str) -> BTreeMap<String, String> {
    let mut exported: BTreeMap<String, String> = BTreeMap::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                exported.insert(name.to_string(), kind.to_string());
            }
        }
    }
    exported
}

/// Families the demo cannot show: its in-process cluster has no TLS, and
/// no broker of it fails a connection check within the demo's first 100 s.
/// `tests/kafka_security.rs` reads both from Apache Kafka (a listener with
/// a wrong password, one with another CA) by their documented labels.
const NOT_IN_THE_DEMO: [&str; 2] = [
    "slaprobe_broker_connection_errors",
    "slaprobe_tls_certificate_expiry_timestamp_seconds",
];

#[test]
fn the_metrics_reference_is_what_metrics_exports() {
    let text = demo_exposition();
    let exported = families(&text);
    let docs = documented();
    let doc_types: BTreeMap<String, String> = docs
        .iter()
        .filter(|(k, _)| !NOT_IN_THE_DEMO.contains(&k.as_str()) || exported.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    assert_eq!(
        doc_types, exported,
        "docs/metrics.md (left) against /metrics (right)"
    );

    // No series has a label the table does not list.
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('{'))
    {
        let (name, rest) = l.split_once('{').expect("labels");
        let family = ["_bucket", "_sum", "_count", "_total", "_created"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| docs.contains_key(*f)))
            .unwrap_or(name);
        let labels = &docs
            .get(family)
            .unwrap_or_else(|| panic!("{family} is documented"))
            .1;
        for pair in rest.split("\",") {
            let label = pair.split('=').next().unwrap_or("").trim_start_matches('{');
            if label == "le" || label.is_empty() {
                continue;
            }
            assert!(
                labels.contains(label),
                "{family} has label {label}, not in docs/metrics.md ({labels:?})"
            );
        }
    }
}

#[test]
fn the_readme_and_docs_stand_alone() {
    let mut files = vec!["README.md".to_string()];
    for f in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")).expect("docs/") {
        let f = f.expect("entry");
        files.push(format!("docs/{}", f.file_name().to_string_lossy()));
    }
    for f in &files {
        let text = repo(f);
        assert!(
            !text.contains("../shared"),
            "{f} points outside the repository"
        );
        assert!(
            !text.contains("SPEC.md"),
            "{f} points at a file users do not have"
        );
        // Relative links resolve inside the repository.
        for part in text.split("](").skip(1) {
            let target = part.split(')').next().unwrap_or("");
            if target.starts_with("http") || target.starts_with('#') || target.is_empty() {
                continue;
            }
            let base = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
            let path = base
                .parent()
                .expect("dir")
                .join(target.split('#').next().unwrap_or(""));
            assert!(path.exists(), "{f} links to {target}, which does not exist");
        }
    }
    let readme = repo("README.md");
    for doc in [
        "docs/configuration.md",
        "docs/metrics.md",
        "docs/operations.md",
    ] {
        assert!(readme.contains(doc), "the README links {doc}");
    }
}

/// Every metric a dashboard query or variable names is exported (with the
/// sample suffixes of its type), and the template variables are there.
#[test]
fn every_dashboard_query_names_exported_metrics() {
    let exported = families(&demo_exposition());
    let dashboard: serde_json::Value =
        serde_json::from_str(&repo("alerts/grafana-dashboard.json")).expect("JSON");
    let mut queries: Vec<String> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            queries.push(t["expr"].as_str().expect("expr").to_string());
        }
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let names: Vec<&str> = variables
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for v in [
        "datasource",
        "job",
        "instance",
        "kafka_cluster",
        "probe",
        "output",
        "slo",
        "group",
    ] {
        assert!(names.contains(&v), "variable {v}");
    }
    for v in variables.iter().filter(|v| v["type"] == "query") {
        queries.push(v["definition"].as_str().expect("definition").to_string());
    }
    assert!(queries.len() > 10);
    let exported_series = |name: &str| -> bool {
        if name == "up" || NOT_IN_THE_DEMO.iter().any(|f| name.starts_with(f)) {
            return true;
        }
        exported.iter().any(|(family, kind)| match kind.as_str() {
            "counter" => name == format!("{family}_total"),
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name == format!("{family}{s}")),
            _ => name == family,
        })
    };
    for q in &queries {
        for word in q.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("slaprobe_") || word.starts_with("process_") || word == "up" {
                assert!(exported_series(word), "{word} in `{q}` is not exported");
            }
        }
        // Scoped to the variables.
        if !q.starts_with("label_values(slaprobe_build_info") {
            assert!(
                q.contains("$job") && q.contains("$instance"),
                "unscoped: {q}"
            );
        }
    }
    // Latency comes from the histograms, so it aggregates across replicas.
    assert!(queries
        .iter()
        .any(|q| q.contains("histogram_quantile")
            && q.contains("slaprobe_e2e_latency_seconds_bucket")));
}
