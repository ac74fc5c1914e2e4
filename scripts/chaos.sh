#!/usr/bin/env bash
# The chaos run: slaprobe under a randomized, seeded fault schedule against
# its own 3-node Apache Kafka cluster, every canary's reported outcome
# compared with an independent truth (scripts/chaos.py says how). Prints
# the faults injected and a truth-vs-reported table; exits 1 on any
# difference.
#
#   scripts/chaos.sh [--seed N] [--seconds S] [--out DIR]
#
# --seconds: how long faults are injected (default 1200: the full run; CI
# runs 180). --seed: replays a run (the seed is printed first). --out:
# where the logs, the truth and slaprobe's state go (default
# target/chaos/<time>).
set -euo pipefail
cd "$(dirname "$0")/.."
seed=""
seconds=1200
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: scripts/chaos.sh [--seed N] [--seconds S] [--out DIR]" >&2; exit 2 ;;
  esac
done
bash scripts/prereqs.sh
source scripts/integration.sh
ensure_python_client
ensure_kafka
cargo build --quiet --bin slaprobe
out="${out:-target/chaos/$(date +%Y%m%dT%H%M%S)}"
rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
CHAOS_KAFKA="$out/kafka"
stop_chaos_kafka() { bash scripts/kafka/cluster.sh stop "$CHAOS_KAFKA" || true; }
EXIT_HOOKS+=(stop_chaos_kafka)
bash scripts/kafka/cluster.sh start "$CHAOS_KAFKA"
bootstrap=$(sed -n 's/^SLAPROBE_TEST_BOOTSTRAP=//p' "$CHAOS_KAFKA/env")
python3 scripts/chaos.py --bootstrap "$bootstrap" --kafka-dir "$CHAOS_KAFKA" \
  --slaprobe "$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug/slaprobe" --out "$out" --seconds "$seconds" \
  ${seed:+--seed "$seed"}
