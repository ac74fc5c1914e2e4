//! `slaprobe run` as a process, watched through its HTTP endpoints.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{free_addr, http_get, metric, poll_until};

/// A `slaprobe run` process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Slaprobe {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub log: std::path::PathBuf,
}

impl Slaprobe {
    pub fn start(dir: &std::path::Path, name: &str, yaml: &str) -> Slaprobe {
        Self::start_with(dir, name, yaml, None, None)
    }

    /// [`Slaprobe::start`] under the shell's `ulimit {open_files}` (for
    /// example `-Sn 1024`: soft limit only, then `exec`), listening on
    /// `addr` (a restart keeps its address, as a pod does) or a free port.
    pub fn start_with(
        dir: &std::path::Path,
        name: &str,
        yaml: &str,
        open_files: Option<&str>,
        addr: Option<SocketAddr>,
    ) -> Slaprobe {
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, yaml).expect("write config");
        let log = dir.join(format!("{name}.log"));
        let addr = addr.unwrap_or_else(free_addr);
        let mut command = match open_files {
            None => std::process::Command::new(env!("CARGO_BIN_EXE_slaprobe")),
            Some(n) => {
                let mut c = std::process::Command::new("bash");
                c.args([
                    "-c",
                    &format!("ulimit {n} && exec \"$0\" \"$@\""),
                    env!("CARGO_BIN_EXE_slaprobe"),
                ]);
                c
            }
        };
        let child = command
            .args(["run", "-c"])
            .arg(&file)
            .args(["--listen", &addr.to_string()])
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start slaprobe");
        let s = Slaprobe { child, addr, log };
        assert!(
            poll_until(Duration::from_secs(15), || http_get(addr, "/healthz")
                .is_ok()),
            "slaprobe answers /healthz; log:\n{}",
            s.log()
        );
        s
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exposition; empty if the process does not answer three times in
    /// a row (a loaded machine may drop one request, not three).
    pub fn metrics(&self) -> String {
        for _ in 0..3 {
            if let Ok((200, body)) = http_get(self.addr, "/metrics") {
                return body;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        String::new()
    }

    /// The sum of the series of `name` with `labels`; panics when the
    /// process does not answer or has no such series (a renamed metric
    /// fails the test).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.metrics(), name, labels)
    }

    /// [`Slaprobe::value`], or `None` while the process does not answer
    /// (restarting, or dead: the caller's assertions say which). A series
    /// missing from an answer still panics.
    pub fn value_if_up(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = self.metrics();
        (!text.is_empty()).then(|| metric(&text, name, labels))
    }

    /// Canaries delivered so far, every output (`None` while the process
    /// does not answer).
    pub fn delivered(&self) -> Option<f64> {
        self.value_if_up("slaprobe_canaries_delivered_total", &[])
    }

    /// The exit status if the process has ended (a crash included).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn ready(&self) -> bool {
        http_get(self.addr, "/readyz").is_ok_and(|r| r.0 == 200)
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < end,
                "slaprobe did not stop on SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Slaprobe {
    /// [`Slaprobe::stop`], which must end in a clean exit: the status
    /// (a signal, an exit code) and the log say otherwise.
    pub fn stop_cleanly(self) {
        let log = self.log.clone();
        let status = self.stop();
        assert!(
            status.success(),
            "slaprobe did not exit cleanly on SIGTERM: {status}; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

impl Drop for Slaprobe {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An independent client of the tests (`tests/clients/<script>`, Python),
/// killed (SIGKILL) when dropped.
pub struct Python(pub std::process::Child);

/// `python3 tests/clients/<script> args…`, not started yet, and the
/// script's path.
fn python(script: &str, args: &[&str]) -> (std::process::Command, std::path::PathBuf) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let mut command = std::process::Command::new("python3");
    command.arg(&path).args(args);
    (command, path)
}

impl Python {
    /// `python3 tests/clients/<script> args…`, its output discarded.
    pub fn start(script: &str, args: &[&str]) -> Python {
        let (mut command, path) = python(script, args);
        let child = command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("python3 {}: {e}", path.display()));
        Python(child)
    }

    /// `python3 tests/clients/<script> args…` to its end: its standard
    /// output; a failure panics with its standard error.
    pub fn run(script: &str, args: &[&str]) -> String {
        let (mut command, path) = python(script, args);
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("python3 {}: {e}", path.display()));
        assert!(
            out.status.success(),
            "{script} {args:?} (pip install confluent-kafka kafka-python): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills it now (SIGKILL: it never leaves a group or flushes).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        self.kill();
    }
}
