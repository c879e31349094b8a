# The service on CPU: only the `serve` extra (FastAPI, uvicorn, onnxruntime; no TensorFlow), the
# committed models in /models, a non-root user. Build from the repository root (BuildKit):
#   DOCKER_BUILDKIT=1 docker build -f docker/service.Dockerfile -t dlwp-serving:cpu .
# or docker/build.sh (docs/images.md), which also builds without registry access (--local-base).
# HTTP on 8000 (REST, /metrics, the demo page), the Open Inference Protocol over gRPC on 8001.

# The base of both stages: any Debian-like image with Python >= 3.11 as python3 and its venv
# module, e.g. the one `docker/build.sh --local-base` makes from Debian packages.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- builder: a virtual environment with the project and its `serve` extra -------------------
FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY service ./service
COPY trainer ./trainer
# Not editable: the package is copied into the venv, so /src is not needed at run time.
# tests/deploy/test_install_steps.py runs this very command in a fresh venv and starts the service.
# The build machine's pip configuration and CA bundle, where given as BuildKit secrets (build.sh
# does), are mounted for this step only: nothing of them stays in a layer. Without them the
# mounts are empty files and pip uses its defaults.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca-certificates,target=/etc/ssl/certs/ca-certificates.crt \
    pip install --no-cache-dir "/src[serve]"

# --- runtime ------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

RUN groupadd --system --gid 10001 service \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin service

COPY --from=builder /opt/venv /opt/venv
# The committed model repository; mount another one over /models (read-only is enough), or point
# SERVICE_MODEL_REPOSITORY elsewhere. Owned by root: the service only reads it.
COPY models /models

# Every setting is an environment variable of service/settings.py (SERVICE_*); override with -e.
# XDG_CACHE_HOME: onnxruntime keeps an id in its cache folder when imported, and prints a coloured
# warning, the one log line that would not be JSON, where it cannot (the user has no home). /tmp is
# writable, also with a read-only root filesystem and a tmpfs (or emptyDir) on /tmp.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SERVICE_MODEL_REPOSITORY=/models \
    SERVICE_HOST=0.0.0.0 \
    SERVICE_PORT=8000 \
    SERVICE_GRPC_PORT=8001 \
    SERVICE_WORKERS=1 \
    SERVICE_DRAIN_TIMEOUT_S=30 \
    SERVICE_LOG_FORMAT=json \
    XDG_CACHE_HOME=/tmp/.cache

# An empty working directory: no stray .env file is read from it.
WORKDIR /srv
USER 10001:10001
EXPOSE 8000 8001

# Ready = every model loaded (503 before). No curl in the slim image: Python's urllib, which exits
# non-zero on a refused connection or any non-2xx answer.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SERVICE_PORT', '8000') + '/v2/health/ready', timeout=4)"]

# Exec form: `service` (Python, uvicorn) is PID 1 and receives SIGTERM itself; it installs its own
# SIGTERM handler (PID 1 gets no default signal actions, so this matters), stops accepting, drains
# requests in flight for up to SERVICE_DRAIN_TIMEOUT_S and exits 0. With SERVICE_WORKERS > 1,
# uvicorn's supervisor forwards the signal to and reaps its worker processes, so no init is needed
# (`docker run --init` adds tini if you want one anyway). `docker stop -t` must exceed the drain.
STOPSIGNAL SIGTERM
ENTRYPOINT ["service"]
