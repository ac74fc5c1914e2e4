# slaprobe: one container per Kafka cluster.
#
#   docker build -t slaprobe:0.1.0 .
#   docker run -v $PWD/probes/examples:/etc/slaprobe:ro -p 9464:9464 slaprobe:0.1.0
#   docker run -p 9464:9464 slaprobe:0.1.0 demo --listen 0.0.0.0:9464
#
# The build context is what .dockerignore leaves (not target/ nor vendor/);
# tests/container.rs assembles exactly what the build stage copies and runs
# its commands there, so a path missing here fails a test, not a build.
#
# The configuration is read from /etc/slaprobe (mount a file or a directory
# of YAML files; nothing is baked in). It listens on 0.0.0.0:9464 unless the
# configuration's server.listen says otherwise. The root filesystem may be
# read-only: a state_dir must be a mounted volume (/var/lib/slaprobe).

# Build: dependencies first, in their own layer, then the sources.
FROM rust:1-bookworm AS build
# Package versions are not pinned (DL3008): the image takes Debian
# bookworm's current security updates whenever it is rebuilt.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends \
        cmake pkg-config libssl-dev zlib1g-dev patch libsasl2-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY scripts/patch-rdkafka-sys.sh ./scripts/
COPY patches ./patches
# The workspace's two library crates (YAML, librdkafka's unwrapped calls):
# small, and built with the dependencies.
COPY crates ./crates
# Cargo.toml declares the hot_path example: the manifest does not parse
# without it (nothing in it is built here).
COPY examples ./examples
# librdkafka with patches/librdkafka/ applied (see Cargo.toml [patch]), and
# a stub crate with the real manifest: this layer holds every compiled
# dependency (librdkafka among them) and is reused until Cargo.* change.
RUN bash scripts/patch-rdkafka-sys.sh \
    && mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/.fingerprint/slaprobe-* target/release/deps/slaprobe-* \
        target/release/deps/libslaprobe-*
COPY src ./src
# Built into the binary (include_str!): the demo's probes and /runbooks.
COPY probes/demo.yaml ./probes/demo.yaml
COPY docs/runbooks.md ./docs/runbooks.md
RUN cargo build --release --locked && strip target/release/slaprobe

FROM debian:bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="slaprobe" \
      org.opencontainers.image.description="Synthetic end-to-end SLA prober for Apache Kafka clusters and pipelines" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="README.md"
# krb5-user: kinit, which librdkafka runs for GSSAPI (sasl.kerberos.kinit.cmd);
# noninteractive, as it asks for a default realm. Not pinned (DL3008), as
# above.
# hadolint ignore=DL3008
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates libssl3 zlib1g libsasl2-2 libsasl2-modules-gssapi-mit libcurl4 krb5-user \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent slaprobe \
    && mkdir -p /etc/slaprobe /var/lib/slaprobe \
    && chown 10001:10001 /var/lib/slaprobe
COPY --from=build /src/target/release/slaprobe /usr/local/bin/slaprobe
ENV SLAPROBE_CONFIG=/etc/slaprobe
USER 10001:10001
VOLUME ["/var/lib/slaprobe"]
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/slaprobe"]
CMD ["run"]
