#!/usr/bin/env bash
# Builds slaprobe and runs `slaprobe demo` (extra arguments are passed on,
# e.g. --duration 1m or --listen 127.0.0.1:9000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/prereqs.sh
exec cargo run --release --quiet -- demo "$@"
