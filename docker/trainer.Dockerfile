# The trainer: the `train` extra (TensorFlow CPU, tf2onnx, onnx, onnxruntime, matplotlib). It
# retrains into a mounted model repository, adding new versions beside the existing ones:
#   DOCKER_BUILDKIT=1 docker build -f docker/trainer.Dockerfile -t dlwp-trainer .
#   (or docker/build.sh trainer, docs/images.md)
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD/../shared/data:/data:ro" \
#       -v "$PWD/models:/models" dlwp-trainer                      # = train all
#   docker run --rm ... dlwp-trainer train imdb --data-dir /data --out /models --epochs 3
# The base: any Debian-like image with Python >= 3.11 as python3 and its venv module.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

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
    pip install --no-cache-dir "/src[train]" \
    && groupadd --system --gid 10001 trainer \
    && useradd --system --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin trainer \
    && mkdir -p /data /models \
    && chown 10001:10001 /models

# /data: the Keras dataset files (read-only is enough); /models: the model repository the service
# reads, e.g. the same PersistentVolume, or a folder synced to the service's bucket afterwards.
ENV TRAINER_DATA_DIR=/data \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MPLBACKEND=Agg \
    PYTHONUNBUFFERED=1
VOLUME ["/data", "/models"]
WORKDIR /home/trainer
USER 10001:10001

ENTRYPOINT ["trainer"]
CMD ["train", "all", "--data-dir", "/data", "--out", "/models"]
