//! `deploy/kubernetes/`: the base and its components rendered by
//! `kustomize` as a user applies them, alone and together; the core kinds
//! validated by `kubernetes-validate` against Kubernetes' schemas, the
//! custom resources (ServiceMonitor, PrometheusRule) and the wiring between
//! all the objects checked here; the PrometheusRule and its configuration
//! equal what is tested elsewhere.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn load(name: &str) -> Yaml {
    let text = std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{name} is empty"))
}

fn at<'a>(y: &'a Yaml, path: &str) -> &'a Yaml {
    path.split('.')
        .fold(y, |y, key| match key.parse::<usize>() {
            Ok(i) => &y[i],
            Err(_) => &y[key],
        })
}

fn str_at<'a>(y: &'a Yaml, path: &str) -> &'a str {
    at(y, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string in {y:?}"))
}

const COMPONENTS: [&str; 3] = ["monitoring", "persistent-state", "network-policy"];

/// What a user applies: `deploy/kubernetes/` as shipped, `base/` alone,
/// and the base with every component, each rendered by `kustomize build`
/// (`None` when kustomize is missing: SKIP, or a failure where the whole
/// suite runs).
struct Rendered {
    name: &'static str,
    text: String,
}

fn kustomize(target: &Path) -> Option<String> {
    let out = match Command::new("kustomize").arg("build").arg(target).output() {
        Ok(o) => o,
        Err(_) => {
            common::missing_prerequisite(
                "kustomize",
                "source scripts/integration.sh; ensure_kustomize",
            );
            return None;
        }
    };
    assert!(
        out.status.success(),
        "kustomize build {}:\n{}",
        target.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("UTF-8"))
}

/// A relative path from `from` to the absolute `to` (kustomize refuses
/// absolute ones): up to the root, then down.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let mut p = PathBuf::new();
    for _ in from.components().skip(1) {
        p.push("..");
    }
    p.join(to.strip_prefix("/").expect("absolute"))
}

/// The base with `components`, as an overlay of a user's would be.
fn overlay(components: &[&str]) -> Option<String> {
    let scratch = common::scratch("kustomize");
    let mut k = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n",
        relative(&scratch, &dir().join("base")).display()
    );
    for c in components {
        let path = relative(&scratch, &dir().join("components").join(c));
        k.push_str(&format!("  - {}\n", path.display()));
    }
    std::fs::write(scratch.join("kustomization.yaml"), k).expect("overlay");
    let text = kustomize(&scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    text
}

fn renderings() -> Option<Vec<Rendered>> {
    Some(vec![
        Rendered {
            name: "deploy/kubernetes/",
            text: kustomize(&dir())?,
        },
        Rendered {
            name: "base/ alone",
            text: kustomize(&dir().join("base"))?,
        },
        Rendered {
            name: "base/ with every component",
            text: overlay(&COMPONENTS)?,
        },
    ])
}

fn documents(text: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(text).expect("kustomize output is YAML")
}

fn object<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    let mut of_kind = docs.iter().filter(|d| d["kind"].as_str() == Some(kind));
    let one = of_kind
        .next()
        .unwrap_or_else(|| panic!("no {kind} rendered"));
    assert!(of_kind.next().is_none(), "one {kind}");
    one
}

/// The custom resources' kinds: Kubernetes has no schema for them.
const CUSTOM: [&str; 2] = ["ServiceMonitor", "PrometheusRule"];

#[test]
fn every_rendering_validates_against_the_kubernetes_schemas() {
    let Some(renderings) = renderings() else {
        return;
    };
    for r in renderings {
        let docs = documents(&r.text);
        let core = docs
            .iter()
            .filter(|d| !CUSTOM.contains(&str_at(d, "kind")))
            .count();
        let file = common::scratch("k8s-validate").join("rendered.yaml");
        std::fs::write(&file, &r.text).expect("rendered");
        let out = match Command::new("kubernetes-validate")
            .arg("--strict")
            .arg(&file)
            .output()
        {
            Ok(o) => o,
            Err(_) => {
                common::missing_prerequisite(
                    "kubernetes-validate",
                    "pip install kubernetes-validate",
                );
                return;
            }
        };
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{}: {text}", r.name);
        assert_eq!(
            text.matches(" passed for resource ").count(),
            core,
            "{}: every core object passed:\n{text}",
            r.name
        );
        for line in text.lines().filter(|l| !l.contains(" passed ")) {
            assert!(
                CUSTOM
                    .iter()
                    .any(|k| line.contains(&format!("schema for kind {k} "))),
                "{}: {line}",
                r.name
            );
        }
        let _ = std::fs::remove_dir_all(file.parent().expect("scratch"));
    }
}

#[test]
fn the_objects_are_wired_to_each_other() {
    let Some(all) = overlay(&COMPONENTS) else {
        return;
    };
    let docs = documents(&all);
    let deployment = object(&docs, "Deployment");
    let service = object(&docs, "Service");
    let monitor = object(&docs, "ServiceMonitor");
    let rule = object(&docs, "PrometheusRule");
    let pdb = object(&docs, "PodDisruptionBudget");
    let policy = object(&docs, "NetworkPolicy");
    let account = object(&docs, "ServiceAccount");
    let claim = object(&docs, "PersistentVolumeClaim");
    let pod = at(deployment, "spec.template.spec");
    let label = |y: &Yaml, path: &str| -> String {
        at(y, path)["app.kubernetes.io/name"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} selects app.kubernetes.io/name"))
            .to_string()
    };
    let name = label(deployment, "spec.selector.matchLabels");
    assert_eq!(label(deployment, "spec.template.metadata.labels"), name);
    assert_eq!(label(service, "spec.selector"), name);
    assert_eq!(label(monitor, "spec.selector.matchLabels"), name);
    assert_eq!(label(pdb, "spec.selector.matchLabels"), name);
    assert_eq!(label(policy, "spec.podSelector.matchLabels"), name);
    assert_eq!(
        label(service, "metadata.labels"),
        name,
        "the ServiceMonitor finds the Service"
    );

    // The ServiceMonitor scrapes the Service's port, which is the
    // container's; the job is the Service's name, as the rules expect.
    // Prometheus finds both custom resources by one label.
    assert_eq!(str_at(monitor, "apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(str_at(monitor, "spec.endpoints.0.path"), "/metrics");
    let port = str_at(monitor, "spec.endpoints.0.port");
    assert_eq!(str_at(service, "spec.ports.0.name"), port);
    assert_eq!(str_at(service, "spec.ports.0.targetPort"), port);
    let container = at(pod, "containers.0");
    assert_eq!(str_at(container, "ports.0.name"), port);
    assert_eq!(at(container, "ports.0.containerPort").as_i64(), Some(9464));
    assert_eq!(
        str_at(service, "metadata.name"),
        slaprobe::config::DEFAULT_JOB
    );
    assert_eq!(str_at(rule, "apiVersion"), "monitoring.coreos.com/v1");
    let release = str_at(monitor, "metadata.labels.release");
    assert_eq!(str_at(rule, "metadata.labels.release"), release);

    // Health, hardening, resources, identity.
    assert_eq!(str_at(container, "livenessProbe.httpGet.path"), "/healthz");
    assert_eq!(str_at(container, "readinessProbe.httpGet.path"), "/readyz");
    assert_eq!(
        at(container, "securityContext.readOnlyRootFilesystem").as_bool(),
        Some(true)
    );
    assert_eq!(
        at(container, "securityContext.allowPrivilegeEscalation").as_bool(),
        Some(false)
    );
    assert_eq!(
        at(pod, "securityContext.runAsNonRoot").as_bool(),
        Some(true)
    );
    for kind in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(
                !at(container, &format!("resources.{kind}.{r}")).is_badvalue(),
                "{kind}.{r}"
            );
        }
    }
    assert!(
        at(pod, "terminationGracePeriodSeconds").as_i64() > Some(10),
        "longer than slaprobe's 10 s shutdown"
    );
    assert_eq!(
        str_at(pod, "serviceAccountName"),
        str_at(account, "metadata.name")
    );
    for y in [account, pod] {
        assert_eq!(
            at(y, "automountServiceAccountToken").as_bool(),
            Some(false),
            "no API token: slaprobe never calls the Kubernetes API"
        );
    }

    // Volumes: the ConfigMap at the image's config directory, the Secrets
    // where the configuration's `_file` and CA paths point, state_dir on
    // the claim.
    let mounts = at(container, "volumeMounts").as_vec().expect("mounts");
    let volumes = at(pod, "volumes").as_vec().expect("volumes");
    let mount_of = |volume: &str| -> String {
        mounts
            .iter()
            .find(|m| m["name"].as_str() == Some(volume))
            .and_then(|m| m["mountPath"].as_str())
            .unwrap_or_else(|| panic!("volume {volume} is mounted"))
            .to_string()
    };
    let volume = |pred: &dyn Fn(&Yaml) -> bool| -> String {
        volumes
            .iter()
            .find(|v| pred(v))
            .and_then(|v| v["name"].as_str())
            .expect("volume")
            .to_string()
    };
    let config_map = docs
        .iter()
        .find(|d| {
            d["kind"].as_str() == Some("ConfigMap") && !d["data"]["slaprobe.yaml"].is_badvalue()
        })
        .expect("the configuration's ConfigMap");
    let config_name = str_at(config_map, "metadata.name");
    let config_volume = volume(&|v| v["configMap"]["name"].as_str() == Some(config_name));
    assert_eq!(mount_of(&config_volume), "/etc/slaprobe");
    let config_text = config_map["data"]["slaprobe.yaml"]
        .as_str()
        .expect("slaprobe.yaml");
    for secret in ["slaprobe-kafka", "slaprobe-kafka-ca"] {
        let v = volume(&|v| v["secret"]["secretName"].as_str() == Some(secret));
        let path = mount_of(&v);
        assert!(
            config_text.contains(&format!("{path}/")),
            "the config reads {secret} under {path}"
        );
    }
    let state = volume(&|v| {
        v["persistentVolumeClaim"]["claimName"].as_str() == Some(str_at(claim, "metadata.name"))
    });
    assert!(
        volumes.iter().all(|v| v["emptyDir"].is_badvalue()),
        "the claim replaced the emptyDir"
    );
    let config = production_config();
    assert_eq!(
        config.state_dir.as_deref(),
        Some(Path::new(&mount_of(&state))),
        "state_dir is on the claim"
    );
    assert!(
        config_text.contains("${POD_IP"),
        "the config's instance label uses POD_IP"
    );
    let env = at(container, "env").as_vec().expect("env");
    assert!(env.iter().any(|e| e["name"].as_str() == Some("POD_IP")
        && e["valueFrom"]["fieldRef"]["fieldPath"].as_str() == Some("status.podIP")));

    // The NetworkPolicy lets in the scrape, and out DNS, every broker the
    // configuration bootstraps from and every Alertmanager.
    let ingress = at(policy, "spec.ingress").as_vec().expect("ingress");
    assert_eq!(ingress.len(), 1, "one ingress rule");
    assert_eq!(str_at(&ingress[0], "ports.0.port"), port);
    let egress = at(policy, "spec.egress").as_vec().expect("egress");
    let allowed = |port: i64, protocol: &str| {
        egress.iter().any(|rule| {
            rule["to"].is_badvalue()
                && rule["ports"].as_vec().into_iter().flatten().any(|p| {
                    let from = p["port"].as_i64().unwrap_or(-1);
                    let to = p["endPort"].as_i64().unwrap_or(from);
                    p["protocol"].as_str() == Some(protocol) && (from..=to).contains(&port)
                })
        })
    };
    assert!(allowed(53, "UDP") && allowed(53, "TCP"), "DNS");
    let mut ports: Vec<i64> = config
        .clusters
        .values()
        .flat_map(|c| {
            c.bootstrap
                .split(',')
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .map(|hostport| {
            hostport
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("port in {hostport}"))
        })
        .collect();
    for url in &config.alertmanager.as_ref().expect("alertmanager").urls {
        let authority = url
            .split("://")
            .nth(1)
            .expect("scheme")
            .split('/')
            .next()
            .expect("host");
        ports.push(
            authority
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port"),
        );
    }
    assert!(!ports.is_empty());
    for p in ports {
        assert!(allowed(p, "TCP"), "egress to port {p}");
    }

    // The dashboard: the generated file, labelled for Grafana's sidecar.
    let dashboard = docs
        .iter()
        .find(|d| {
            d["kind"].as_str() == Some("ConfigMap") && !d["data"]["slaprobe.json"].is_badvalue()
        })
        .expect("the dashboard's ConfigMap");
    assert_eq!(str_at(dashboard, "metadata.labels.grafana_dashboard"), "1");
    assert_eq!(
        dashboard["data"]["slaprobe.json"]
            .as_str()
            .expect("slaprobe.json"),
        std::fs::read_to_string(dir().join("components/monitoring/grafana-dashboard.json"))
            .expect("dashboard")
    );
}

/// Without components there is nothing that needs an operator or a
/// storage class; as shipped, the monitoring and persistent-state
/// components are in and the NetworkPolicy is not (its ports are the
/// user's to check first).
#[test]
fn the_base_needs_nothing_and_the_shipped_set_is_documented() {
    let (Some(base), Some(shipped)) = (kustomize(&dir().join("base")), kustomize(&dir())) else {
        return;
    };
    let kinds = |text: &str| -> Vec<String> {
        let mut k: Vec<String> = documents(text)
            .iter()
            .map(|d| str_at(d, "kind").to_string())
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        kinds(&base),
        [
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount"
        ]
    );
    assert_eq!(
        kinds(&shipped),
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "PersistentVolumeClaim",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );
    let kustomization =
        std::fs::read_to_string(dir().join("kustomization.yaml")).expect("kustomization");
    let operations =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"))
            .expect("operations");
    for c in COMPONENTS {
        assert!(dir()
            .join("components")
            .join(c)
            .join("kustomization.yaml")
            .is_file());
        assert!(
            kustomization.contains(&format!("components/{c}")),
            "{c} in kustomization.yaml"
        );
        assert!(
            operations.contains(&format!("components/{c}")),
            "{c} in docs/operations.md"
        );
    }
}

/// The production example, loaded as slaprobe loads it (the password
/// file from the Secret exists only in the pod).
fn production_config() -> slaprobe::config::Config {
    let scratch = common::scratch("k8s-config");
    let password = scratch.join("password");
    std::fs::write(&password, "x").expect("password");
    let config = slaprobe::config::load(&[dir().join("base/slaprobe.yaml")], &|k| {
        (k == "KAFKA_PASSWORD_FILE").then(|| password.display().to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_dir_all(&scratch);
    config
}

/// One image name and tag everywhere a user meets it: the Deployment,
/// the kustomization's `images:` override, the Dockerfile's version label,
/// the README's `docker build`, and the package version.
#[test]
fn the_image_tag_agrees_everywhere() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).expect(p);
    let version = read("Cargo.toml")
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .expect("version")
        .trim_matches('"')
        .to_string();
    let tagged = format!("slaprobe:{version}");
    let deployment = load("base/deployment.yaml");
    let image = str_at(&deployment, "spec.template.spec.containers.0.image");
    assert_eq!(image, tagged, "deployment.yaml");
    let kustomization = load("kustomization.yaml");
    assert_eq!(str_at(&kustomization, "images.0.name"), "slaprobe");
    assert_eq!(
        format!(
            "{}:{}",
            str_at(&kustomization, "images.0.newName"),
            str_at(&kustomization, "images.0.newTag")
        ),
        tagged,
        "kustomization.yaml images:"
    );
    assert!(
        read("Dockerfile").contains(&format!("ARG VERSION={version}")),
        "Dockerfile ARG VERSION"
    );
    let readme = read("README.md");
    assert!(
        readme.contains(&format!("docker build -t {tagged} .")),
        "README builds {tagged}"
    );
    assert!(
        !readme.contains("slaprobe:latest"),
        "README names slaprobe:latest"
    );
}

#[test]
fn the_config_is_the_production_example_and_the_rules_are_current() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("probes/examples/production.yaml");
    assert_eq!(
        std::fs::read_to_string(dir().join("base/slaprobe.yaml")).expect("config"),
        std::fs::read_to_string(example).expect("example"),
        "deploy/kubernetes/base/slaprobe.yaml is a copy of probes/examples/production.yaml"
    );
    let scratch = common::scratch("k8s-rules");
    let password = scratch.join("password");
    std::fs::write(&password, "x").expect("password");
    let out = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args([
            "rules",
            "-c",
            "deploy/kubernetes/base/slaprobe.yaml",
            "--out",
            "deploy/kubernetes/components/monitoring",
            "--check",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KAFKA_PASSWORD_FILE", &password)
        .env_remove("SLAPROBE_CONFIG")
        .output()
        .expect("slaprobe rules --check");
    assert!(
        out.status.success(),
        "deploy/kubernetes/components/monitoring is stale; run `slaprobe rules -c deploy/kubernetes/base/slaprobe.yaml --out deploy/kubernetes/components/monitoring`:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rule = load("components/monitoring/prometheusrule.yaml");
    assert_eq!(str_at(&rule, "apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(str_at(&rule, "kind"), "PrometheusRule");
    // The same groups as the rule file promtool tests check.
    let plain = load("components/monitoring/slaprobe.rules.yml");
    assert_eq!(at(&rule, "spec.groups"), at(&plain, "groups"));
    let _ = std::fs::remove_dir_all(&scratch);
}
