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
ensure_gdb
ensure_chromium
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
step "cargo test: building"
# Examples (benchmarks) are built by clippy --all-targets; they test nothing.
cargo test --workspace --lib --bins --tests --no-run
# Two lanes at once, each a series of test binaries: the tiers on Apache
# Kafka (and alertmanager, which evens the lanes' times out), and everything
# else (in-process clusters, tools, the page). Most of a test's time is
# waiting on a broker, a timeout or a clock, so two lanes take about 60 %
# of one on two cores. Each lane's output is shown when both are done;
# every binary runs even after a failure.
kafka_tiers=(broker records state lag kafka_security kafka_faults alertmanager)
other_tiers=()
for f in tests/*.rs crates/*/tests/*.rs; do
  t=$(basename "$f" .rs)
  [[ " ${kafka_tiers[*]} ${other_tiers[*]} " == *" $t "* ]] || other_tiers+=("$t")
done
logs="target/test-logs"
rm -rf "$logs"
mkdir -p "$logs"
lane() {
  local name=$1
  shift
  local started=$SECONDS rc=0
  "$@" >"$logs/$name.log" 2>&1 || rc=$?
  echo "$rc $((SECONDS - started))" >"$logs/$name.rc"
}
step "cargo test: lanes kafka (${kafka_tiers[*]}) and other (${#other_tiers[@]} test binaries and the unit tests)"
# Both select with --workspace, as the build did: the same features, so
# nothing is built again (a narrower selection resolves features anew and
# rebuilds dependencies while the other lane waits for cargo's lock).
kafka_lane() { cargo test --workspace --no-fail-fast "${kafka_tiers[@]/#/--test=}"; }
other_lane() { cargo test --workspace --lib --bins --no-fail-fast "${other_tiers[@]/#/--test=}"; }
# A process that crashes (SIGSEGV, an abort) leaves its core in its working
# directory, the repository's root for the tests' processes (core_pattern
# `core`): its threads' backtraces are printed after the lanes, so that a
# crash seen once says where it was.
ulimit -c unlimited 2>/dev/null || true
rm -f core core.[0-9]*
lane kafka kafka_lane &
lane other other_lane &
wait
for core in core core.[0-9]*; do
  [ -f "$core" ] || continue
  echo "===== a process crashed during the tests: $(file -b "$core" 2>/dev/null || echo "$core")"
  gdb -q -batch -ex "info threads" -ex "thread apply all bt 30" target/debug/slaprobe "$core" 2>&1 \
    | grep -v "^\[New LWP\|^warning:" | head -400 || true
done
failed=0
for name in kafka other; do
  read -r rc secs <"$logs/$name.rc"
  echo "===== lane $name: exit $rc after $secs s"
  cat "$logs/$name.log"
done
for name in kafka other; do
  read -r rc secs <"$logs/$name.rc"
  echo "== lane $name: exit $rc after $secs s"
  # Which binaries failed, and their failed tests.
  awk '/^     Running/ { bin = $0 } /^test .* FAILED$/ { print bin; print }' "$logs/$name.log"
  [ "$rc" -eq 0 ] || failed=1
done
[ "$failed" -eq 0 ] || { echo "some tests failed (above)" >&2; exit 1; }
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
