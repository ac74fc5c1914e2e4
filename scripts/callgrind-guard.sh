#!/usr/bin/env bash
# The hot path's regression guard, by instruction count (valgrind's
# callgrind), which machine load does not move: examples/hot_path.rs runs
# the demo heartbeat probe's send -> ack -> match -> arrive -> outcome path
# for 2,000 and for 22,000 canaries; the difference / 20,000 is the
# instructions one canary costs. It fails when that exceeds the committed
# figure in scripts/callgrind-baseline by more than its tolerance, and says
# so when it has dropped well below (then lower the baseline). On another
# rustc or target than the baseline's it reports the figure and passes.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null 2>&1 || {
  echo "callgrind guard: valgrind is missing (apt-get install valgrind)" >&2
  exit 1
}
read -r baseline tolerance toolchain target < <(grep -v '^#' scripts/callgrind-baseline)
here_toolchain="rustc-$(rustc -vV | sed -n 's/^release: //p')"
here_target=$(rustc -vV | sed -n 's/^host: //p')
cargo build --quiet --release --features bench --example hot_path
bin="${CARGO_TARGET_DIR:-target}/release/examples/hot_path"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() {
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1" "$bin" "$1" >/dev/null 2>&1
  awk '/^summary:/ {print $2}' "$out/cg.$1"
}
small=$(count 2000)
large=$(count 22000)
per=$(( (large - small) / 20000 ))
limit=$(( baseline * (100 + tolerance) / 100 ))
floor=$(( baseline * (100 - tolerance) / 100 ))
if [ "$here_toolchain $here_target" != "$toolchain $target" ]; then
  echo "callgrind guard: ${per} instructions per canary with $here_toolchain on $here_target; the baseline (${baseline}) was taken with $toolchain on $target, so this is reported, not judged (measure a new baseline with this toolchain to judge it)"
  exit 0
fi
echo "callgrind guard: ${per} instructions per canary (baseline ${baseline}, +/-${tolerance}%: ${floor}..${limit}, $toolchain $target)"
if [ "$per" -gt "$limit" ]; then
  echo "callgrind guard: the hot path got more than ${tolerance}% costlier; find out why (callgrind_annotate), or raise scripts/callgrind-baseline with the reason in the commit" >&2
  exit 1
fi
if [ "$per" -lt "$floor" ]; then
  echo "callgrind guard: the hot path got cheaper; lower scripts/callgrind-baseline to ${per}"
fi
