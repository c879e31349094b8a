#!/usr/bin/env bash
# Builds the project's images from the repository root (docs/images.md says more):
#   docker/build.sh                      # dlwp-serving:cpu and dlwp-trainer on the official bases
#   docker/build.sh --local-base         # on a machine without a registry: the base from Debian
#   docker/build.sh --local-base service trainer prometheus locust
# Images: service (dlwp-serving:cpu), trainer (dlwp-trainer), gpu (dlwp-serving:gpu), and for the
# Compose stack where the official ones cannot be pulled: prometheus (dlwp-prometheus, Debian's
# `prometheus` package) and locust (dlwp-locust). Default: service trainer.
#
# --local-base makes `dlwp-base:bookworm` (once; --rebuild-base to make it again): a debootstrap
# minbase of Debian bookworm from the apt mirror this machine uses, with Debian's python3 and
# python3-venv, imported with `docker import`. The Dockerfiles take it as their BASE_IMAGE.
#
# pip inside the build uses this machine's pip configuration and CA bundle where they exist
# (/etc/pip.conf, /etc/ssl/certs/ca-certificates.crt; PIP_CONF and CA_BUNDLE choose others), passed
# as BuildKit secrets: they are mounted for the pip step only and never stored in a layer.
#
# Environment: DOCKER (the client, default: /usr/bin/docker where it exists, which has BuildKit
# built in), SERVICE_TAG, TRAINER_TAG, GPU_TAG, PROMETHEUS_TAG, LOCUST_TAG, BASE_TAG, DEBIAN_MIRROR,
# BUILD_TIMES (a file that gets one "image seconds bytes" line per image built).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${DOCKER:-}" ]; then
    if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
export DOCKER_BUILDKIT=1
SERVICE_TAG=${SERVICE_TAG:-dlwp-serving:cpu}
TRAINER_TAG=${TRAINER_TAG:-dlwp-trainer}
GPU_TAG=${GPU_TAG:-dlwp-serving:gpu}
PROMETHEUS_TAG=${PROMETHEUS_TAG:-dlwp-prometheus}
LOCUST_TAG=${LOCUST_TAG:-dlwp-locust}
BASE_TAG=${BASE_TAG:-dlwp-base:bookworm}
PIP_CONF=${PIP_CONF:-/etc/pip.conf}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

local_base=0
rebuild_base=0
images=()
for arg in "$@"; do
    case "$arg" in
        --local-base) local_base=1 ;;
        --rebuild-base) local_base=1 rebuild_base=1 ;;
        -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        service | trainer | gpu | prometheus | locust) images+=("$arg") ;;
        *) echo "build.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
    esac
done
[ ${#images[@]} -gt 0 ] || images=(service trainer)

# The apt mirror of this machine (the first deb.debian.org-style URI of its sources), or Debian's.
mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local found
    found=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
        | grep -v security | grep -oE 'https?://[^ ]+/debian/?' | head -n 1 || true)
    echo "${found:-http://deb.debian.org/debian}"
}

build_base() {
    if [ "$rebuild_base" = 0 ] && "$DOCKER" image inspect "$BASE_TAG" > /dev/null 2>&1; then
        echo "build.sh: $BASE_TAG exists (--rebuild-base to make it again)"
        return
    fi
    command -v debootstrap > /dev/null || {
        echo "build.sh: --local-base needs debootstrap (apt-get install debootstrap)" >&2; exit 1
    }
    local started rootfs url
    started=$(date +%s)
    rootfs=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$rootfs'" EXIT
    url=$(mirror)
    echo "build.sh: debootstrap bookworm from $url"
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$url" \
        > "$rootfs.log" 2>&1 || { tail -n 30 "$rootfs.log" >&2; exit 1; }
    rm -f "$rootfs.log"
    # Slimmed: no apt lists, caches, docs or man pages (the images install nothing with apt but
    # the Prometheus one, which runs apt-get update itself).
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
        "$rootfs"/var/log/* "$rootfs"/tmp/*
    # The mirror debootstrap used, with bookworm's point updates.
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$url" "$url" \
        > "$rootfs/etc/apt/sources.list"
    tar -C "$rootfs" -c . | "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' - "$BASE_TAG" > /dev/null
    rm -rf "$rootfs"
    trap - EXIT
    report "$BASE_TAG" "$started"
}

report() {  # image, start time: prints and records seconds and size
    local seconds size
    seconds=$(($(date +%s) - $2))
    size=$("$DOCKER" image inspect --format '{{.Size}}' "$1")
    echo "build.sh: $1 built in ${seconds} s, $((size / 1000000)) MB"
    if [ -n "${BUILD_TIMES:-}" ]; then echo "$1 $seconds $size" >> "$BUILD_TIMES"; fi
}

build() {  # Dockerfile, tag[, "official": keep the Dockerfile's own base even with --local-base]
    local started log args=()
    started=$(date +%s)
    if [ -r "$PIP_CONF" ]; then args+=(--secret "id=pip.conf,src=$PIP_CONF"); fi
    if [ -r "$CA_BUNDLE" ]; then args+=(--secret "id=ca-certificates,src=$CA_BUNDLE"); fi
    if [ "$local_base" = 1 ] && [ "${3:-}" != official ]; then
        args+=(--build-arg "BASE_IMAGE=$BASE_TAG")
    fi
    echo "build.sh: $2 from $1"
    log=$(mktemp)
    # --network host: the build's RUN steps use the host's network (no bridge needed).
    if ! "$DOCKER" build --network host --progress plain "${args[@]}" -f "$1" -t "$2" . \
        > "$log" 2>&1; then
        tail -n 60 "$log" >&2
        rm -f "$log"
        echo "build.sh: building $2 failed" >&2
        exit 1
    fi
    rm -f "$log"
    report "$2" "$started"
}

if [ "$local_base" = 1 ]; then build_base; fi
for image in "${images[@]}"; do
    case "$image" in
        service) build docker/service.Dockerfile "$SERVICE_TAG" ;;
        trainer) build docker/trainer.Dockerfile "$TRAINER_TAG" ;;
        gpu) build docker/service-gpu.Dockerfile "$GPU_TAG" official ;;  # CUDA needs its base
        prometheus) build docker/prometheus.Dockerfile "$PROMETHEUS_TAG" ;;
        locust) build docker/locust.Dockerfile "$LOCUST_TAG" ;;
    esac
done
