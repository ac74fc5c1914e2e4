#!/usr/bin/env bash
# Benchmarks: prints figures and tables, asserts nothing (machines are
# shared and noisy; BENCHMARKS.md says how to read them). Installs what it
# needs and starts a broker on loopback unless --bootstrap names one: tansu
# (the default) or, with --broker kafka, a 3-node Apache Kafka cluster
# (scripts/kafka/cluster.sh; topics replicated 3 times, librdkafka's fetch
# wait, since Kafka answers a waiting fetch as soon as data arrives).
#
#   bash scripts/bench.sh [--bootstrap HOST:PORT] [--broker tansu|kafka]
#                         [--only bare,loss,core,probes,lag,busy]
#                         [--setups 100x6,...] [--seconds N] [--repeats N]
#                         [--kinds defaults,settings,split,slaprobe] [--burst N]
#
# Sections:
#   bare    slaprobe against a bare rdkafka round trip (examples/bare.rs) with
#           librdkafka's default client settings and with slaprobe's,
#           interleaved, at 100, 1,000 and 10,000 canaries/s over 6 and 60
#           partitions (scripts/bench/bare.py): delivered rate, CPU per
#           canary, e2e p50/p99/p99.9, RSS, ratios to both; on tansu
#           (unless --bootstrap) every run on a tansu of its own
#   loss    how late a loss is reported after its deadline (scripts/bench/loss.py);
#           the bare section also gives the time from start to first match
#   core    in-process figures (examples/bench_core.rs): memory per
#           in-flight canary, tracker cost, /metrics render time
#   probes  1, 10, 50 and 200 heartbeat probes at one total canary rate, and
#           1 probe over as many partitions as the 200: threads, RSS, CPU,
#           fetch requests per broker (scripts/bench/probes.py); on tansu
#           (unless --bootstrap) every run on a tansu of its own
#   lag     watching 100 consumer groups x 50 partitions every 10 s: CPU and
#           requests per read, RSS, series, status API size (scripts/bench/lag.py)
#   busy    a pipeline output on a busy topic: CPU, RSS and canary latency
#           with 0 to 100,000 non-canary records/s beside the canaries
#           (scripts/bench/busy.py); with --burst N instead, one run whose
#           foreign rate steps between N and 10 x N/s: latency per phase,
#           slaprobe's and that of a default-config client (examples/bare.rs)
#           writing and reading the same topic beside it, as the reference
set -euo pipefail
cd "$(dirname "$0")/.."

bootstrap=""
own_broker=true
broker="tansu"
only="bare,loss,core,probes,lag,busy"
setups=""
seconds=""
repeats=""
kinds=""
burst=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap) bootstrap="$2"; own_broker=false; shift 2 ;;
    --broker) broker="$2"; shift 2 ;;
    --setups) setups="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    --kinds) kinds="$2"; shift 2 ;;
    --burst) burst="$2"; shift 2 ;;
    *) echo "unknown argument: $1 (see the head of $0)" >&2; exit 2 ;;
  esac
done
wants() { [[ ",$only," == *",$1,"* ]]; }

bash scripts/prereqs.sh
source scripts/integration.sh
ensure_python_client
cargo build --release --bin slaprobe --example bench_core --example bare
release="${CARGO_TARGET_DIR:-target}/release"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

if wants bare || wants loss || wants probes || wants lag || wants busy; then
  if [ -z "$bootstrap" ]; then
    case "$broker" in
      tansu) ensure_tansu; start_tansu ;;
      kafka) ensure_kafka; start_kafka ;;
      *) echo "unknown --broker $broker (tansu or kafka)" >&2; exit 2 ;;
    esac
    bootstrap="$SLAPROBE_TEST_BOOTSTRAP"
  fi
fi
# Kafka answers a waiting fetch at once: both clients keep librdkafka's
# fetch wait there, and topics are replicated as the cluster's default.
if [ "$broker" = kafka ]; then
  broker_args=(--fetch-wait 0 --replication -1)
else
  broker_args=(--fetch-wait 10 --replication 1)
fi
# A tansu of its own for every run of the bare comparison and of the probe
# counts: one tansu slows as its memory storage grows, and the later run of
# a pair paid for it.
fresh_args=()
if [ "$broker" = tansu ] && $own_broker; then
  fresh_args=(--fresh-tansu)
fi

if wants bare; then
  echo
  echo "## slaprobe against a bare client (against $broker at $bootstrap)"
  python3 scripts/bench/bare.py --bootstrap "$bootstrap" \
    --slaprobe "$release"/slaprobe --bare "$release"/examples/bare \
    "${broker_args[@]}" "${fresh_args[@]}" ${setups:+--setups "$setups"} \
    ${seconds:+--seconds "$seconds"} ${repeats:+--repeats "$repeats"} \
    ${kinds:+--kinds "$kinds"}
fi

if wants loss; then
  echo
  echo "## Loss detection (against $bootstrap)"
  python3 scripts/bench/loss.py --bootstrap "$bootstrap" --slaprobe "$release"/slaprobe \
    --replication "${broker_args[3]}"
fi

if wants core; then
  echo
  echo "## In-process figures"
  "$release"/examples/bench_core
fi

if wants probes; then
  echo
  echo "## Cost per probe count (against $bootstrap)"
  python3 scripts/bench/probes.py --bootstrap "$bootstrap" \
    --slaprobe "$release"/slaprobe --replication "${broker_args[3]}" \
    --brokers "$([ "$broker" = kafka ] && echo 3 || echo 1)" "${fresh_args[@]}" \
    ${seconds:+--seconds "$seconds"} ${repeats:+--repeats "$repeats"}
fi

if wants lag; then
  echo
  echo "## Cost of watching consumer groups (against $bootstrap)"
  python3 scripts/bench/lag.py --bootstrap "$bootstrap" --slaprobe "$release"/slaprobe \
    --replication "${broker_args[3]}"
fi

if wants busy; then
  echo
  echo "## A pipeline output on a busy topic (against $bootstrap)"
  python3 scripts/bench/busy.py --bootstrap "$bootstrap" --slaprobe "$release"/slaprobe \
    --replication "${broker_args[3]}" --fetch-wait "${broker_args[1]}" \
    ${seconds:+--seconds "$seconds"} ${burst:+--burst "$burst" --bare "$release"/examples/bare}
fi
