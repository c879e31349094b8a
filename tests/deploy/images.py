"""Helpers of the tests that build and run the images: the Docker client, the images built once per
test session by docker/build.sh (on a local Debian base where no registry answers), and
containers on the host's network (these machines' daemons have no bridge)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.support import DOCKER, REPO
from tests.needs import missing

# The switch of tests/needs.py that turns a missing daemon (or debootstrap, or Compose) into a failure.
SWITCH = "DEPLOY_REQUIRE_DOCKER"
# Debian's client has BuildKit built in (RUN --mount needs it); a client without buildx does not.
CLIENT = os.environ.get("DOCKER") or (
    "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
)
OFFICIAL_BASE = "python:3.11-slim-bookworm"
TAGS = {
    "service": "dlwp-serving:cpu",
    "trainer": "dlwp-trainer",
    "prometheus": "dlwp-prometheus",
    "locust": "dlwp-locust",
}
# Every image built in this session: (tag, seconds, bytes), printed at the end of the run.
BUILT: list[tuple[str, float, int]] = []


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [CLIENT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stdout}{result.stderr}")
    return result


def require_daemon() -> None:
    """Skips (or, with the switch, fails) where no Docker daemon answers."""
    if not CLIENT:
        missing("no docker client (Debian: apt-get install docker.io)", SWITCH)
    result = docker("version", "--format", "{{.Server.Version}}", timeout=30, check=False)
    if result.returncode != 0:
        missing(f"no Docker daemon answers ({result.stderr.strip()[:200]})", SWITCH)


def local_base() -> bool:
    """Whether the images are built on docker/build.sh's local Debian base: DEPLOY_IMAGES_BASE
    (`local` or `official`), else local where the official base image is neither present nor
    pullable (no registry reachable, as on this project's machines)."""
    choice = os.environ.get("DEPLOY_IMAGES_BASE", "")
    if choice in ("local", "official"):
        return choice == "local"
    if docker("image", "inspect", OFFICIAL_BASE, check=False).returncode == 0:
        return False
    try:
        return docker("pull", "--quiet", OFFICIAL_BASE, timeout=60, check=False).returncode != 0
    except subprocess.TimeoutExpired:
        return True


def build(image: str, use_local_base: bool) -> str:
    """docker/build.sh IMAGE [--local-base]: the tag, its time and size recorded in BUILT."""
    if use_local_base and not shutil.which("debootstrap"):
        missing("the local base needs debootstrap (Debian: apt-get install debootstrap)", SWITCH)
    started = time.monotonic()
    times = Path(os.environ.get("TMPDIR", "/tmp")) / f"build-times-{os.getpid()}"
    times.unlink(missing_ok=True)
    command = [
        "bash",
        str(DOCKER / "build.sh"),
        image,
        *(["--local-base"] if use_local_base else []),
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "DOCKER": CLIENT, "BUILD_TIMES": str(times)},
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for line in times.read_text().splitlines():  # the base (when made now), then the image
        tag, seconds, size = line.split()
        BUILT.append((tag, float(seconds), int(size)))
    times.unlink()
    print(result.stdout, f"({time.monotonic() - started:.0f} s)")
    return TAGS[image]


def inspect(name: str) -> dict:
    (found,) = json.loads(docker("inspect", name).stdout)
    return found


def http(url: str, body: dict | None = None, timeout: float = 30) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(condition, what: str, timeout: float, poll_s: float = 0.1) -> float:
    """Seconds until condition() is true; AssertionError after timeout."""
    started = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - started
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not {what} after {timeout} s")
        time.sleep(poll_s)


@dataclass
class Container:
    """A container of the service image on the host's network, on free ports."""

    name: str
    port: int
    grpc_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        return http(self.url + "/v2/health/ready", timeout=2)[0] == 200

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        docker("rm", "--force", self.name, check=False)


def run_service(image: str, name: str, port: int, grpc_port: int, *options: str) -> Container:
    docker("rm", "--force", name, check=False)
    container = Container(name, port, grpc_port)
    docker(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--env",
        "SERVICE_HOST=127.0.0.1",
        "--env",
        f"SERVICE_PORT={port}",
        "--env",
        f"SERVICE_GRPC_PORT={grpc_port}",
        *options,
        image,
    )
    return container
