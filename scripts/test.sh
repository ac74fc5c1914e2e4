#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs prerequisites,
# starts a tansu broker on loopback (unless SLAPROBE_TEST_BOOTSTRAP already
# names a cluster to test against), and runs every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh
source scripts/integration.sh
ensure_prometheus
ensure_alertmanager
ensure_python_client
ensure_manifest_linters
ensure_valgrind
ensure_chromium
if [ -z "${SLAPROBE_TEST_BOOTSTRAP:-}" ]; then
  ensure_tansu
  start_tansu
fi
# Everything above is installed and started: a test that finds a
# prerequisite missing now fails instead of printing SKIP.
export SLAPROBE_TEST_STRICT=1
# Examples (benchmarks) are built by clippy --all-targets; they test nothing.
cargo test --workspace --lib --bins --tests
# The hot path's instruction count against its committed figure.
bash scripts/callgrind-guard.sh
