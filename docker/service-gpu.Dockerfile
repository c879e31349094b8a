# The service on an NVIDIA GPU: onnxruntime-gpu with the CUDA execution provider first.
#   DOCKER_BUILDKIT=1 docker build -f docker/service-gpu.Dockerfile -t dlwp-serving:gpu .
#   (or docker/build.sh gpu, docs/images.md)
#   docker run --gpus all -p 8000:8000 dlwp-serving:gpu
# The `gpu` extra installs onnxruntime-gpu[cuda,cudnn], which brings the CUDA and cuDNN 9 libraries
# as pip wheels (onnxruntime-gpu 1.31: CUDA 13, nvidia/cu13/lib; the host driver must support
# CUDA 13); so the base is the small CUDA *base* image (driver
# compatibility and the NVIDIA container runtime's environment), not the multi-GB cudnn-runtime
# one, which would ship the same libraries twice. Ubuntu 24.04's Python is 3.12 (the project needs
# >= 3.11). Without a visible GPU the service falls back to CPU and says so in its log and in the
# model metadata, or, with SERVICE_REQUIRE_PROVIDERS=true, refuses to start.

# The CUDA base of both stages (a registry mirror's copy, for instance).
ARG BASE_IMAGE=nvidia/cuda:13.0.1-base-ubuntu24.04

# --- builder ------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder

# Versions are those of the pinned base image's Ubuntu release; pinning exact Debian revisions
# would break the build at every Ubuntu security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md ./
COPY contract ./contract
COPY service ./service
COPY trainer ./trainer
# The build machine's pip configuration and CA bundle (BuildKit secrets, optional) for this step
# only, as in service.Dockerfile.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca-certificates,target=/etc/ssl/certs/ca-certificates.crt \
    pip install --no-cache-dir "/src[gpu]"

# --- runtime ------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 service \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin service

COPY --from=builder /opt/venv /opt/venv
COPY models /models

# onnxruntime's CUDA provider dlopens libcudart, libcublas, libcufft, libcurand and libcudnn: make
# the pip wheels' copies (site-packages/nvidia/**/lib, a layout that changes between CUDA majors)
# known to the dynamic linker.
RUN find /opt/venv -type d -path '*/site-packages/nvidia/*' -name lib \
        > /etc/ld.so.conf.d/nvidia-pip-wheels.conf \
    && ldconfig

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    SERVICE_MODEL_REPOSITORY=/models \
    SERVICE_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider \
    SERVICE_REQUIRE_PROVIDERS=false \
    SERVICE_HOST=0.0.0.0 \
    SERVICE_PORT=8000 \
    SERVICE_GRPC_PORT=8001 \
    SERVICE_WORKERS=1 \
    SERVICE_DRAIN_TIMEOUT_S=30 \
    SERVICE_LOG_FORMAT=json \
    XDG_CACHE_HOME=/tmp/.cache

WORKDIR /srv
USER 10001:10001
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SERVICE_PORT', '8000') + '/v2/health/ready', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["service"]
