#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs prerequisites,
# starts a 3-node Apache Kafka cluster on loopback (the real-broker tiers
# use SLAPROBE_TEST_BOOTSTRAP instead when it names a cluster of yours), and
# runs every test tier.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { echo "== test.sh: $* (at $((SECONDS / 60)) min $((SECONDS % 60)) s)"; }
step prerequisites
bash scripts/prereqs.sh
source scripts/integration.sh
step tools
ensure_prometheus
ensure_alertmanager
ensure_python_client
ensure_manifest_linters
ensure_kustomize
ensure_valgrind
ensure_chromium
# tansu: the broker the tests restart empty (tests/broker.rs starts its own).
ensure_tansu
# Apache Kafka: the real-broker tiers' broker, unless SLAPROBE_TEST_BOOTSTRAP
# names one of yours; the security tier always uses this one (it changes
# ACLs and users).
ensure_kafka
yours="${SLAPROBE_TEST_BOOTSTRAP:-}"
step "starting Apache Kafka"
start_kafka
if [ -n "$yours" ]; then
  export SLAPROBE_TEST_BOOTSTRAP="$yours"
fi
# Everything above is installed and started: a test that finds a
# prerequisite missing now fails instead of printing SKIP.
export SLAPROBE_TEST_STRICT=1
step "cargo test"
# Examples (benchmarks) are built by clippy --all-targets; they test nothing.
cargo test --workspace --lib --bins --tests --no-fail-fast
step "callgrind guard"
# The hot path's instruction count against its committed figure.
bash scripts/callgrind-guard.sh
# The chaos run, 3 minutes of faults on a cluster of its own: every
# canary's outcome against an independent truth (docs/chaos.md). A fixed
# seed, so that CI's schedule is the one a failure replays; other seeds:
# scripts/chaos.sh --seed N, or SLAPROBE_CHAOS_SEED=random here.
step "chaos run"
stop_kafka  # the suite's cluster is done; the chaos run starts its own
chaos_seed="${SLAPROBE_CHAOS_SEED:-20261206}"
if [ "$chaos_seed" = random ]; then chaos_seed=""; fi
bash scripts/chaos.sh --seconds 180 ${chaos_seed:+--seed "$chaos_seed"}
step done
