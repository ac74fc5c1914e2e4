# Multi-stage build: compile in the Rust image, run in a slim Debian image
# as an unprivileged user.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        cmake pkg-config libssl-dev zlib1g-dev patch libsasl2-dev libcurl4-openssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY scripts ./scripts
COPY patches ./patches
# librdkafka with patches/librdkafka/ applied (see Cargo.toml [patch]).
RUN bash scripts/patch-rdkafka-sys.sh
COPY src ./src
COPY probes ./probes
RUN cargo build --release --locked && strip target/release/slaprobe

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        ca-certificates libssl3 zlib1g libsasl2-2 libsasl2-modules-gssapi-mit libcurl4 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/slaprobe --create-home slaprobe
COPY --from=build /src/target/release/slaprobe /usr/local/bin/slaprobe
COPY probes /etc/slaprobe
USER 10001:10001
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/slaprobe"]
CMD ["run", "-c", "/etc/slaprobe"]
