#!/usr/bin/env bash
# A 3-node Apache Kafka 4.4.0 cluster (KRaft, combined broker+controller
# nodes) on loopback, for the test suite and the benchmarks: the reference
# broker of the real-broker tiers.
#
#   cluster.sh fetch            the jars into target/kafka/libs (Maven Central,
#                               scripts/kafka/pom.xml), once
#   cluster.sh start DIR        a new cluster under DIR: a CA and a server
#                               certificate, SCRAM users, formatted log dirs,
#                               three nodes started and waited for; writes
#                               DIR/env (the variables the tests read)
#   cluster.sh stop DIR         every node of DIR's cluster (SIGTERM, then KILL)
#   cluster.sh kill DIR N       node N (1..3) with SIGKILL
#   cluster.sh term DIR N       node N with SIGTERM (a controlled shutdown),
#                               waiting for it to exit
#   cluster.sh node DIR N       start node N again, with its data, and wait
#                               until it answers
#   cluster.sh empty DIR [S]    the cluster rebuilt empty: every node killed,
#                               its data removed, and S seconds later (0)
#                               formatted anew and started on the same ports
#
# Each node listens on three loopback ports: PLAINTEXT (clients and
# replication; its principal, User:ANONYMOUS, is a super user), SASL_SSL
# (SCRAM-SHA-512 over TLS with the test's own CA; the users below), and
# CONTROLLER. The StandardAuthorizer refuses everything else: a SASL user
# may do only what an ACL grants it. Replication factor 3 by default,
# min.insync.replicas 2, no topic created automatically.
#
# Users (SCRAM-SHA-512): admin (a super user), slaprobe, and nobody (no
# ACL); passwords in DIR/env. SASL clients re-authenticate every 10 s
# (KIP-368), so a changed password shows within seconds, as it does on
# clusters that set connections.max.reauth.ms. Heap 512 MiB per node
# (KAFKA_TEST_HEAP).
set -euo pipefail

KAFKA_VERSION=4.4.0
root=$(cd "$(dirname "$0")/../.." && pwd)
libs="$root/target/kafka/libs"
heap="${KAFKA_TEST_HEAP:-512m}"

die() { echo "kafka cluster: $*" >&2; exit 1; }

fetch() {
  if [ -e "$libs/.complete-$KAFKA_VERSION" ]; then return; fi
  command -v java >/dev/null 2>&1 || die "java (17 or newer) is missing: apt-get install openjdk-17-jre-headless"
  command -v mvn >/dev/null 2>&1 || die "mvn is missing: apt-get install maven"
  echo "fetching Apache Kafka $KAFKA_VERSION and its dependencies from Maven Central"
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn -q -B -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" >/dev/null
  touch "$libs/.complete-$KAFKA_VERSION"
}

# Nine distinct free loopback ports (three per node), as PLAIN_n, SASL_n
# and CTL_n assignments: the sockets stay bound until all are chosen, so no
# port is handed out twice.
free_ports() {
  python3 - <<'PY'
import socket
socks = []
for _ in range(9):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
ports = [s.getsockname()[1] for s in socks]
for n in range(3):
    print(f"PLAIN_{n + 1}={ports[3 * n]}")
    print(f"SASL_{n + 1}={ports[3 * n + 1]}")
    print(f"CTL_{n + 1}={ports[3 * n + 2]}")
PY
}

# `java` with Kafka's classpath; `exec`s, so run it in a subshell (whose
# pid is then java's).
kafka_java() {
  exec java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$libs/*" "$@"
}

# The CA, a server certificate for 127.0.0.1/localhost signed by it (as a
# PKCS12 keystore), and a second CA the brokers do not use (an untrusted
# one, for tests).
make_tls() {
  local tls="$dir/tls"
  mkdir -p "$tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=slaprobe test CA" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=another CA" \
    -keyout "$tls/other-ca.key" -out "$tls/other-ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$tls/san.ext"
  # 10 days: a certificate that expires "soon" (SlaprobeTLSCertificateExpiring
  # warns 14 days ahead), which tests/kafka_security.rs reads back.
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
    -CAcreateserial -days 10 -extfile "$tls/san.ext" -out "$tls/server.pem" 2>/dev/null
  openssl pkcs12 -export -in "$tls/server.pem" -inkey "$tls/server.key" \
    -certfile "$tls/ca.pem" -name broker -passout pass:changeit -out "$tls/server.p12"
}

node_props() {
  local n=$1
  # shellcheck disable=SC1091
  source "$dir/ports"
  local plain="PLAIN_$n" sasl="SASL_$n" ctl="CTL_$n"
  cat <<EOF
process.roles=broker,controller
node.id=$n
controller.quorum.voters=1@127.0.0.1:$CTL_1,2@127.0.0.1:$CTL_2,3@127.0.0.1:$CTL_3
listeners=PLAINTEXT://127.0.0.1:${!plain},SASL_SSL://127.0.0.1:${!sasl},CONTROLLER://127.0.0.1:${!ctl}
advertised.listeners=PLAINTEXT://127.0.0.1:${!plain},SASL_SSL://127.0.0.1:${!sasl}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
log.dirs=$dir/node-$n/data
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
sasl.enabled.mechanisms=SCRAM-SHA-512
connections.max.reauth.ms=10000
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/tls/server.p12
ssl.keystore.password=changeit
ssl.key.password=changeit
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
EOF
}

launch() {
  local n=$1
  (kafka_java kafka.Kafka "$dir/node-$n/server.properties") >>"$dir/node-$n/kafka.log" 2>&1 &
  echo $! >"$dir/node-$n/pid"
}

# Waits until the metadata that `bootstrap` answers lists every node of
# `nodes` (registered and unfenced); prints how long it took.
wait_nodes() {
  local bootstrap=$1 nodes=$2 started=$SECONDS
  if ! python3 - "$bootstrap" "$nodes" <<'PY'
import sys, time
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0})
want = {int(n) for n in sys.argv[2].split(",")}
deadline = time.time() + 120
while time.time() < deadline:
    try:
        if want <= set(admin.list_topics(timeout=2).brokers):
            sys.exit(0)
    except Exception:
        pass
    time.sleep(0.5)
sys.exit(1)
PY
  then
    for n in 1 2 3; do
      echo "--- node $n log (tail):" >&2
      tail -n 40 "$dir/node-$n/kafka.log" >&2 || true
    done
    die "the cluster in $dir did not show nodes $nodes within 120 s"
  fi
  echo "kafka: nodes $nodes ready in $((SECONDS - started)) s"
}

start() {
  fetch
  # A new cluster: what an earlier one left here goes (its nodes must not
  # run any more).
  for n in 1 2 3; do
    alive "$n" && die "node $n of the cluster in $dir still runs: stop it first"
  done
  rm -rf "$dir"/node-1 "$dir"/node-2 "$dir"/node-3 "$dir"/tls "$dir"/env "$dir"/ports
  mkdir -p "$dir"
  free_ports >"$dir/ports"
  # shellcheck disable=SC1091
  source "$dir/ports"
  make_tls
  printf 'rootLogger.level=WARN\nrootLogger.appenderRef.out.ref=out\nappender.out.type=Console\nappender.out.name=out\nappender.out.layout.type=PatternLayout\nappender.out.layout.pattern=[%%d] %%p %%m (%%c)%%n\n' \
    >"$dir/log4j2.properties"
  cat >"$dir/env" <<EOF
SLAPROBE_TEST_BOOTSTRAP=127.0.0.1:$PLAIN_1,127.0.0.1:$PLAIN_2,127.0.0.1:$PLAIN_3
SLAPROBE_TEST_KAFKA_BOOTSTRAP=127.0.0.1:$PLAIN_1,127.0.0.1:$PLAIN_2,127.0.0.1:$PLAIN_3
SLAPROBE_TEST_KAFKA_SASL_BOOTSTRAP=127.0.0.1:$SASL_1,127.0.0.1:$SASL_2,127.0.0.1:$SASL_3
SLAPROBE_TEST_KAFKA_CA=$dir/tls/ca.pem
SLAPROBE_TEST_KAFKA_OTHER_CA=$dir/tls/other-ca.pem
SLAPROBE_TEST_KAFKA_ADMIN_PASSWORD=admin-secret
SLAPROBE_TEST_KAFKA_SLAPROBE_PASSWORD=slaprobe-secret
SLAPROBE_TEST_KAFKA_NOBODY_PASSWORD=nobody-secret
SLAPROBE_TEST_KAFKA_DIR=$dir
EOF
  for n in 1 2 3; do
    mkdir -p "$dir/node-$n"
    node_props "$n" >"$dir/node-$n/server.properties"
  done
  format_and_launch
}

# Formats every node's log dir for a new cluster id (the users created) and
# starts the three nodes, waiting until they answer.
format_and_launch() {
  local id
  id=$( (kafka_java kafka.tools.StorageTool random-uuid) | tail -n 1)
  # The three at once (a JVM start each).
  local pids=()
  for n in 1 2 3; do
    (kafka_java kafka.tools.StorageTool format -t "$id" -c "$dir/node-$n/server.properties" \
      --add-scram 'SCRAM-SHA-512=[name=admin,password=admin-secret]' \
      --add-scram 'SCRAM-SHA-512=[name=slaprobe,password=slaprobe-secret]' \
      --add-scram 'SCRAM-SHA-512=[name=nobody,password=nobody-secret]') \
      >"$dir/node-$n/format.log" 2>&1 &
    pids+=($!)
  done
  for n in 1 2 3; do
    wait "${pids[$((n - 1))]}" || { cat "$dir/node-$n/format.log" >&2; die "formatting node $n failed"; }
  done
  for n in 1 2 3; do launch "$n"; done
  # shellcheck disable=SC1091
  source "$dir/env"
  wait_nodes "$SLAPROBE_TEST_BOOTSTRAP" 1,2,3
}

# The cluster rebuilt empty on the same ports: every node killed (SIGKILL),
# its data removed, and, `down` seconds later, the cluster formatted anew
# and started (topics, offsets and ACLs gone; users created again).
empty() {
  local down=$1
  for n in 1 2 3; do kill_node "$n" & done
  wait
  for n in 1 2 3; do rm -rf "$dir/node-$n/data"; done
  sleep "$down"
  format_and_launch
}

pid_of() {
  cat "$dir/node-$1/pid" 2>/dev/null || true
}

alive() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

term_node() {
  local n=$1 pid
  pid=$(pid_of "$n")
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 300); do
    alive "$n" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

kill_node() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] || return 0
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    alive "$1" || return 0
    sleep 0.05
  done
}

stop() {
  for n in 1 2 3; do term_node "$n" & done
  wait
}

cmd=${1:-}
case "$cmd" in
  fetch) fetch ;;
  start|stop|kill|term|node|empty)
    dir=${2:?"$cmd needs the cluster's directory"}
    dir=$(mkdir -p "$dir" && cd "$dir" && pwd)
    case "$cmd" in
      start) start ;;
      stop) stop ;;
      kill) kill_node "${3:?node number}" ;;
      term) term_node "${3:?node number}" ;;
      empty) empty "${3:-0}" ;;
      node)
        n=${3:?node number}
        alive "$n" && die "node $n runs already"
        launch "$n"
        # shellcheck disable=SC1091
        source "$dir/ports"
        port="PLAIN_$n"
        wait_nodes "127.0.0.1:${!port}" "$n"
        ;;
    esac
    ;;
  *) die "usage: $0 fetch | start DIR | stop DIR | kill DIR N | term DIR N | node DIR N | empty DIR [SECONDS]" ;;
esac
