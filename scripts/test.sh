#!/usr/bin/env bash
# The whole test suite: installs prerequisites, then runs every test tier
# that this machine can run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh
cargo test --all-targets
