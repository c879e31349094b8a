# locust for the Compose stack's `loadtest` profile on a machine that cannot pull the official
# locustio/locust image (docker-compose.yml picks it with LOCUST_IMAGE):
#   docker/build.sh --local-base locust
#   LOCUST_IMAGE=dlwp-locust docker compose -f docker/docker-compose.yml --profile loadtest up
# Like the official image: `locust` is the entry point, uid 1000; the locustfile's own needs
# (numpy, pydantic) are installed already, so the Compose file's `pip install` finds them.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

# The build machine's pip configuration and CA bundle (BuildKit secrets, optional) for this step
# only, as in service.Dockerfile.
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca-certificates,target=/etc/ssl/certs/ca-certificates.crt \
    pip install --no-cache-dir "locust==2.32.2" "numpy==2.2.6" "pydantic==2.11.7"

WORKDIR /tmp
USER 1000:1000
EXPOSE 8089
ENTRYPOINT ["locust"]
