# WAIaaS daemon image (docs/docker.md). Two stages: the workspace is built with its committed lockfile, and only
# the `waiaas` binary is copied into a slim runtime that runs as an unprivileged user with its data on a volume.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin waiaas

FROM debian:bookworm-slim
# curl: the HEALTHCHECK below; ca-certificates: https:// RPC endpoints.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin waiaas \
    && mkdir -p /data /backups \
    && chown waiaas:waiaas /data /backups \
    && chmod 0700 /data /backups
COPY --from=build /src/target/release/waiaas /usr/local/bin/waiaas
USER 10001:10001
# Inside the container the daemon listens on all interfaces (the port is published, or reached over the compose
# network); master (admin) endpoints still answer loopback clients only, i.e. `docker exec`.
ENV WAIAAS_DATA_DIR=/data \
    WAIAAS_BACKUP_DIR=/backups \
    WAIAAS_DAEMON_HOSTNAME=0.0.0.0 \
    WAIAAS_DAEMON_PORT=3100
VOLUME ["/data", "/backups"]
EXPOSE 3100
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "-H", "Host: localhost", "http://127.0.0.1:3100/health"]
ENTRYPOINT ["waiaas"]
CMD ["start"]
