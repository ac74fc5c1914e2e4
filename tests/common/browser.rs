//! Headless Chromium (Debian's `chromium`) for the pages people read: the
//! status page and the SLA report; artifacts (screenshots) kept in
//! `target/test-artifacts`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Chromium binary, where one is installed.
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Headless Chromium with the flags a container needs, logging the page's
/// console to stderr, letting the page's scripts run 10 s of virtual time.
pub fn browse(chromium: &str, url: &str, extra: &[&str]) -> std::process::Output {
    Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--window-size=1280,4000",
        ])
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium")
}

pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}
