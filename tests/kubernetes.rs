//! `deploy/kubernetes/`: the core kinds validated by `kubernetes-validate`
//! against Kubernetes' schemas; the custom resources (ServiceMonitor,
//! PrometheusRule) and the wiring between all the objects checked here;
//! the PrometheusRule and its configuration equal what is tested elsewhere.

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

#[test]
fn core_kinds_validate_against_the_kubernetes_schemas() {
    let files = [
        "deployment.yaml",
        "service.yaml",
        "poddisruptionbudget.yaml",
    ];
    let out = match Command::new("kubernetes-validate")
        .arg("--strict")
        .args(files.iter().map(|f| dir().join(f)))
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            common::missing_prerequisite("kubernetes-validate", "pip install kubernetes-validate");
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(" passed ").count(), files.len(), "{text}");
}

#[test]
fn the_objects_are_wired_to_each_other() {
    let kustomization = load("kustomization.yaml");
    let resources: Vec<&str> = at(&kustomization, "resources")
        .as_vec()
        .expect("resources")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    for r in &resources {
        assert!(dir().join(r).is_file(), "kustomization resource {r}");
    }
    let config_map = str_at(&kustomization, "configMapGenerator.0.name");
    assert_eq!(
        str_at(&kustomization, "configMapGenerator.0.files.0"),
        "slaprobe.yaml"
    );

    let deployment = load("deployment.yaml");
    let service = load("service.yaml");
    let monitor = load("servicemonitor.yaml");
    let pdb = load("poddisruptionbudget.yaml");
    let label = |y: &Yaml, path: &str| -> String {
        at(y, path)["app.kubernetes.io/name"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} selects app.kubernetes.io/name"))
            .to_string()
    };
    let name = label(&deployment, "spec.selector.matchLabels");
    assert_eq!(label(&deployment, "spec.template.metadata.labels"), name);
    assert_eq!(label(&service, "spec.selector"), name);
    assert_eq!(label(&monitor, "spec.selector.matchLabels"), name);
    assert_eq!(label(&pdb, "spec.selector.matchLabels"), name);
    assert_eq!(
        label(&service, "metadata.labels"),
        name,
        "the ServiceMonitor finds the Service"
    );

    // The ServiceMonitor scrapes the Service's port, which is the
    // container's; the job is the Service's name, as the rules expect.
    assert_eq!(str_at(&monitor, "apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(str_at(&monitor, "kind"), "ServiceMonitor");
    assert_eq!(str_at(&monitor, "spec.endpoints.0.path"), "/metrics");
    let port = str_at(&monitor, "spec.endpoints.0.port");
    assert_eq!(str_at(&service, "spec.ports.0.name"), port);
    assert_eq!(str_at(&service, "spec.ports.0.targetPort"), port);
    let container = at(&deployment, "spec.template.spec.containers.0");
    assert_eq!(str_at(container, "ports.0.name"), port);
    assert_eq!(at(container, "ports.0.containerPort").as_i64(), Some(9464));
    assert_eq!(
        str_at(&service, "metadata.name"),
        slaprobe::config::DEFAULT_JOB
    );

    // Health, hardening, resources.
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
        at(
            &deployment,
            "spec.template.spec.securityContext.runAsNonRoot"
        )
        .as_bool(),
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
        at(
            &deployment,
            "spec.template.spec.terminationGracePeriodSeconds"
        )
        .as_i64()
            > Some(10),
        "longer than slaprobe's 10 s shutdown"
    );

    // Volumes: the ConfigMap at the image's config directory, the Secrets
    // where the configuration's `_file` and CA paths point.
    let mounts = at(container, "volumeMounts").as_vec().expect("mounts");
    let volumes = at(&deployment, "spec.template.spec.volumes")
        .as_vec()
        .expect("volumes");
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
    let config_volume = volume(&|v| v["configMap"]["name"].as_str() == Some(config_map));
    assert_eq!(mount_of(&config_volume), "/etc/slaprobe");
    let config = std::fs::read_to_string(dir().join("slaprobe.yaml")).expect("config");
    for secret in ["slaprobe-kafka", "slaprobe-kafka-ca"] {
        let v = volume(&|v| v["secret"]["secretName"].as_str() == Some(secret));
        let path = mount_of(&v);
        assert!(
            config.contains(&format!("{path}/")),
            "the config reads {secret} under {path}"
        );
    }
    assert!(
        config.contains("${POD_IP"),
        "the config's instance label uses POD_IP"
    );
    let env = at(container, "env").as_vec().expect("env");
    assert!(env.iter().any(|e| e["name"].as_str() == Some("POD_IP")
        && e["valueFrom"]["fieldRef"]["fieldPath"].as_str() == Some("status.podIP")));
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
    let deployment = load("deployment.yaml");
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
        std::fs::read_to_string(dir().join("slaprobe.yaml")).expect("config"),
        std::fs::read_to_string(example).expect("example"),
        "deploy/kubernetes/slaprobe.yaml is a copy of probes/examples/production.yaml"
    );
    let scratch = common::scratch("k8s-rules");
    let password = scratch.join("password");
    std::fs::write(&password, "x").expect("password");
    let out = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args([
            "rules",
            "-c",
            "deploy/kubernetes/slaprobe.yaml",
            "--out",
            "deploy/kubernetes/rules",
            "--check",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("KAFKA_PASSWORD_FILE", &password)
        .env_remove("SLAPROBE_CONFIG")
        .output()
        .expect("slaprobe rules --check");
    assert!(
        out.status.success(),
        "deploy/kubernetes/rules is stale; run `slaprobe rules -c deploy/kubernetes/slaprobe.yaml --out deploy/kubernetes/rules`:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rule = load("rules/prometheusrule.yaml");
    assert_eq!(str_at(&rule, "apiVersion"), "monitoring.coreos.com/v1");
    assert_eq!(str_at(&rule, "kind"), "PrometheusRule");
    // The same groups as the rule file promtool tests check.
    let plain = load("rules/slaprobe.rules.yml");
    assert_eq!(at(&rule, "spec.groups"), at(&plain, "groups"));
    let _ = std::fs::remove_dir_all(&scratch);
}
