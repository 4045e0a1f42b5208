# syntax=docker/dockerfile:1
# modelgate's container image: a release build on the Rust image, run on Debian slim as a
# non-root user. docs/deploy.md says how to run it; deploy/kubernetes/ is its kustomize base.
#
#   docker build -t modelgate .
#   docker run -p 8080:8080 -p 8081:8081 -p 9090:9090 modelgate
#
# Both stages are Debian bookworm, so the runtime's glibc is the one the binary was linked
# against (rust:1.95 is the toolchain the repository is tested with; rust-version is 1.91).

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Only what the build reads (.dockerignore keeps target/ and data/ out): the manifest names
# the benches, so cargo needs their sources to load it; build.rs compiles proto/; migrations/
# is embedded by sqlx::migrate!.
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY migrations migrations
COPY benches benches
COPY src src
# The cache mounts keep the registry and compiled dependencies between builds, so a change in
# src/ rebuilds modelgate only; the binary is copied out because the mount is not in the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/modelgate /usr/local/bin/modelgate

FROM debian:bookworm-slim
# ca-certificates: TLS to PostgreSQL, Redis (rediss://), the auth service, MLflow and alert
# webhooks verifies against the system roots (rustls-native-certs). Nothing else is needed:
# the binary links glibc only, with no OpenSSL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed numeric id, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 modelgate \
    && useradd --system --uid 10001 --gid modelgate --home-dir /var/lib/modelgate \
        --no-create-home --shell /usr/sbin/nologin modelgate \
    && install -d -o modelgate -g modelgate -m 0750 /var/lib/modelgate
COPY --from=build /usr/local/bin/modelgate /usr/local/bin/modelgate
# Model 21 ships in the image, so that it serves out of the box; mount another folder here
# (or set MODELGATE_MODELS_DIR) for other models, or take them from an MLflow registry.
COPY models /srv/modelgate/models

# Every listener on all interfaces: the defaults (127.0.0.1) are unreachable from outside a
# container. 9090 is the admin listener (health and /metrics only, outside the public
# connection cap), where the HEALTHCHECK, Kubernetes probes and Prometheus go.
ENV MODELGATE_LISTEN=0.0.0.0:8080 \
    MODELGATE_GRPC_LISTEN=0.0.0.0:8081 \
    MODELGATE_SERVER_ADMIN_LISTEN=0.0.0.0:9090 \
    MODELGATE_MODELS_DIR=/srv/modelgate/models \
    MODELGATE_DATABASE_URL=sqlite:///var/lib/modelgate/modelgate.db \
    MODELGATE_EVENTS_OUTBOX_DIR=/var/lib/modelgate/outbox \
    MODELGATE_MODELS_CACHE_DIR=/var/lib/modelgate/model-cache \
    MODELGATE_LOG_FORMAT=json
# The SQLite store (unless MODELGATE_DATABASE_URL names PostgreSQL), the events journal and
# outbox, and the MLflow model cache: records not yet delivered live here, so keep it.
VOLUME ["/var/lib/modelgate", "/srv/modelgate/models"]
WORKDIR /var/lib/modelgate
USER 10001:10001
EXPOSE 8080 8081 9090

# There is no curl in the image, and `modelgate probe` makes a real prediction with a key
# (it spends a credit and writes an inference record), so it is no liveness check: bash's
# /dev/tcp asks /health/live on the admin port (the public one when admin is turned off).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/bin/bash", "-c", "addr=${MODELGATE_SERVER_ADMIN_LISTEN:-$MODELGATE_LISTEN}; exec 3<>/dev/tcp/127.0.0.1/${addr##*:} && printf 'GET /health/live HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"]

ENTRYPOINT ["/usr/local/bin/modelgate"]
CMD ["serve"]
