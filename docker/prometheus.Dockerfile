# Prometheus from Debian's `prometheus` package, for the Compose stack on a machine that cannot pull
# the official prom/prometheus image (docker-compose.yml picks it with PROMETHEUS_IMAGE):
#   docker/build.sh --local-base prometheus
#   PROMETHEUS_IMAGE=dlwp-prometheus docker compose -f docker/docker-compose.yml up
# It behaves like the official image where the Compose file relies on it: the binary is the entry
# point, the configuration at /etc/prometheus/prometheus.yml, data under /prometheus, not root
# (Debian's build keeps its data in /var/lib/prometheus/metrics2 unless told: writable too).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# The base release's version of the package (pinning a Debian revision breaks at every update).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* \
    && mkdir -p /prometheus /var/lib/prometheus/metrics2 \
    && chown -R 65534:65534 /prometheus /var/lib/prometheus

WORKDIR /prometheus
USER 65534:65534
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
