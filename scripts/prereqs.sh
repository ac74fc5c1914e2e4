#!/usr/bin/env bash
# Installs what building slaprobe needs beyond the Rust toolchain, skipping
# what is already there: a C toolchain and make for librdkafka, pkg-config
# and OpenSSL headers for TLS/SASL, Cyrus SASL headers for GSSAPI
# (Kerberos), libcurl headers for OAUTHBEARER/OIDC token retrieval. (zstd,
# lz4 and snappy are compiled from source with librdkafka.)
set -euo pipefail

missing=()
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
[ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
command -v patch >/dev/null 2>&1 || missing+=(patch)
[ -e /usr/include/sasl/sasl.h ] || missing+=(libsasl2-dev)
pkg-config --exists libcurl 2>/dev/null || missing+=(libcurl4-openssl-dev)

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing build prerequisites: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

bash "$(dirname "$0")/patch-rdkafka-sys.sh"
