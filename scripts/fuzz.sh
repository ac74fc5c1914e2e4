#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60) and
# prints executions per target. Needs a nightly toolchain (libFuzzer's
# sanitizer coverage) and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
# New inputs go to fuzz/work/<target> (not committed); the committed seeds
# in fuzz/corpus/<target> are read only. Without a nightly toolchain the
# same properties run in `cargo test --lib props` (what CI does).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
bash scripts/patch-rdkafka-sys.sh >/dev/null
targets=(canary_id matcher tracker template slo_windows config)
cargo +nightly fuzz build -O
printf '%-12s %12s %10s %s\n' target executions exec/s result
for t in "${targets[@]}"; do
  mkdir -p "fuzz/work/$t"
  log="fuzz/work/$t.log"
  if cargo +nightly fuzz run -O "$t" "fuzz/work/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log and fuzz/artifacts/$t)"
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
  printf '%-12s %12s %10s %s\n' "$t" "${runs:-?}" "${rate:-?}" "$result"
done
