#!/usr/bin/env bash
# Installs what building slaprobe needs beyond the Rust toolchain, skipping
# what is already there: a C toolchain and make for librdkafka, pkg-config
# and OpenSSL headers for TLS/SASL support.
set -euo pipefail

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
[ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
command -v patch >/dev/null 2>&1 || missing+=(patch)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing build prerequisites: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

bash "$(dirname "$0")/patch-rdkafka-sys.sh"
