"""The install steps of each image, run here without Docker.

- service.Dockerfile: its builder's COPY steps into a temporary /src, then its very
  `pip install "/src[serve]"` (non-editable) into a fresh virtual environment, then the installed `service` command serves the committed models, the image's
  HEALTHCHECK command passes against it, SIGTERM stops it cleanly, and TensorFlow is absent.
- trainer.Dockerfile: `pip install --dry-run "/src[train]"` in the same fresh environment: the
  `train` extra resolves (a real install is ~1.5 GB of TensorFlow; the trainer's code is tested
  by the rest of the suite in the dev environment, which has the same extra).
- service-gpu.Dockerfile: onnxruntime-gpu needs CUDA to do anything; here only the `gpu` extra's
  onnxruntime-gpu requirement is resolved for the image's Python (3.12, Ubuntu 24.04, x86_64).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from loadtest.harness.servers import ServerNotReadyError, free_port, stop_server, wait_ready
from tests.deploy.support import DOCKER, REPO, final_stage, instructions

pytestmark = pytest.mark.slow


def _pip(venv: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )


def _build_context(dockerfile: Path, root: Path) -> Path:
    """The builder stage's /src, made as its COPY instructions make it (from this checkout, so
    pip builds there and leaves the checkout alone)."""
    src = root / "src"
    for keyword, rest in instructions(dockerfile):
        if keyword == "RUN" and "pip install" in rest:
            return src
        if keyword == "COPY" and not rest.startswith("--"):
            *sources, dest = rest.split()
            target = src / dest
            for source in sources:
                path = REPO / source
                if dest.endswith("/") or len(sources) > 1:
                    target.mkdir(parents=True, exist_ok=True)
                    into = target / path.name
                else:
                    into = target
                if path.is_dir():
                    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                    shutil.copytree(path, into, ignore=ignore)
                else:
                    shutil.copy2(path, into)
    raise AssertionError(f"{dockerfile.name} installs nothing with pip")


def _image_install(dockerfile: Path, root: Path) -> list[str]:
    """The arguments of the image's `pip install` (a constraints file, if it names one, and the
    requirement), /src being its build context here."""
    (command,) = [rest for key, rest in instructions(dockerfile) if key == "RUN" and "pip " in rest]
    ((constraints, requirement),) = re.findall(
        r'pip install --no-cache-dir (?:(?:-c|--constraint) (/src/\S+) )?"/src(\[\w+\])"', command
    )
    src = _build_context(dockerfile, root)
    given = ["-c", str(src / constraints.removeprefix("/src/"))] if constraints else []
    return [*given, f"{src}{requirement}"]


@pytest.fixture(scope="module")
def serve_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("image")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    requirement = _image_install(DOCKER / "service.Dockerfile", root)
    result = _pip(venv, "install", "--quiet", *requirement)
    assert result.returncode == 0, result.stdout + result.stderr
    return venv


def _python(venv: Path, code: str) -> subprocess.CompletedProcess:
    """Run code in the venv from outside the checkout (`-c` puts the working directory first on
    sys.path), without this process's PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=venv,
        env=env,
    )


def test_the_serve_install_has_no_tensorflow(serve_venv):
    result = _python(
        serve_venv,
        "import importlib.util as u; print([m for m in ('tensorflow', 'tf2onnx', 'keras')"
        " if u.find_spec(m)]); import onnxruntime, fastapi, service.server",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    # installed, not linked to the checkout: the image has no /src at run time
    location = _python(serve_venv, "import service; print(service.__file__)").stdout.strip()
    assert location.startswith(str(serve_venv)), location


def test_the_installed_service_serves_passes_the_healthcheck_and_drains(serve_venv, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_")}
    env.pop("PYTHONPATH", None)
    env.update(
        SERVICE_HOST="127.0.0.1",
        SERVICE_PORT=str(port),
        SERVICE_GRPC_PORT=str(free_port()),  # the descriptor set is package data: gRPC must start
        SERVICE_MODEL_REPOSITORY=str(REPO / "models"),
        SERVICE_DRAIN_TIMEOUT_S="5",
    )
    log = (tmp_path / "service.log").open("wb")
    process = subprocess.Popen(
        [str(serve_venv / "bin" / "service")], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    try:
        try:
            wait_ready(process, f"http://127.0.0.1:{port}")
        except ServerNotReadyError as error:
            raise AssertionError(f"{error}:\n{(tmp_path / 'service.log').read_text()}") from None
        # The image's HEALTHCHECK command, as Docker would run it inside the container.
        healthcheck = dict(final_stage(DOCKER / "service.Dockerfile"))["HEALTHCHECK"]
        command = json.loads(healthcheck[healthcheck.index("CMD [") + 4 :])
        assert command[0] == "python"
        check = subprocess.run(
            [str(serve_venv / "bin" / "python"), *command[1:]],
            env={**env, "SERVICE_PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert check.returncode == 0, check.stderr
    finally:
        code = stop_server(process)
        log.close()
    assert code == 0, (tmp_path / "service.log").read_text()
    # Once stopped, the same healthcheck fails, as Docker needs it to.
    check = subprocess.run(
        [str(serve_venv / "bin" / "python"), *command[1:]],
        env={**env, "SERVICE_PORT": str(port)},
        capture_output=True,
        timeout=30,
    )
    assert check.returncode != 0


def test_the_train_extra_resolves(serve_venv, tmp_path):
    result = _pip(
        serve_venv,
        "install",
        "--dry-run",
        "--quiet",
        "--report",
        "-",
        *_image_install(DOCKER / "trainer.Dockerfile", tmp_path),
    )
    assert result.returncode == 0, result.stderr
    names = {  # normalised as PEP 503 says: tensorflow_cpu's metadata spells it with "_"
        re.sub(r"[-_.]+", "-", item["metadata"]["name"]).lower()
        for item in json.loads(result.stdout)["install"]
    }
    assert {"tensorflow-cpu", "tf2onnx", "onnx"} <= names


def test_the_gpu_extra_resolves_onnxruntime_gpu_for_the_image(tmp_path):
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    (requirement,) = [item for item in extras["gpu"] if item.startswith("onnxruntime")]
    assert '"/src[gpu]"' in (DOCKER / "service-gpu.Dockerfile").read_text()
    # --no-deps: only onnxruntime-gpu's own wheel metadata (its CUDA wheels are gigabytes).
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--quiet"),
            *("--ignore-installed", "--report", "-", "--only-binary=:all:"),
            *("--python-version", "3.12", "--platform", "manylinux_2_28_x86_64"),
            *("--target", str(tmp_path / "target"), requirement),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (item,) = json.loads(result.stdout)["install"]
    assert item["metadata"]["name"] == "onnxruntime-gpu"


# README's install commands and CI: the lock (requirements/constraints.txt) and the stock pip.

LOCK = REPO / "requirements" / "constraints.txt"
LOCKED_EXTRAS = ("train", "serve", "clients", "dev", "loadtest")  # requirements/compile.sh's


def _locked() -> dict[str, list[tuple[str, str]]]:
    """name → [(version, marker)] of the lock, names normalised as PEP 503 says."""
    pins: dict[str, list[tuple[str, str]]] = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith(("#", " ")):
            requirement, _, marker = line.partition(" ; ")
            name, version = requirement.split("==")
            pins.setdefault(re.sub(r"[-_.]+", "-", name).lower(), []).append((version, marker))
    return pins


def test_the_lock_pins_every_requirement_of_the_locked_extras_within_pyproject():
    """requirements/constraints.txt is up to date: every requirement of pyproject.toml's locked
    extras is pinned (==) to a version its specifier allows, for Python 3.11 (rerun
    requirements/compile.sh after changing pyproject.toml)."""
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    script = (REPO / "requirements" / "compile.sh").read_text()
    assert all(f"--extra {extra}" in script for extra in LOCKED_EXTRAS)
    extras = project["optional-dependencies"]
    assert set(extras) - set(LOCKED_EXTRAS) == {"gpu"}  # a new extra: lock it too
    pins = _locked()
    environment = {"python_full_version": "3.11.7", "python_version": "3.11"}
    for text in [*project["dependencies"], *(r for e in LOCKED_EXTRAS for r in extras[e])]:
        requirement = Requirement(text)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{name} is not in {LOCK.name}: run requirements/compile.sh"
        versions = [v for v, m in pins[name] if not m or Marker(m).evaluate(environment)]
        assert len(versions) == 1, (name, pins[name])
        assert requirement.specifier.contains(versions[0], prereleases=True), (text, versions)


def test_readmes_commands_install_with_the_lock_and_ci_runs_them_on_the_stock_pip():
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    serve, tests = [line for line in block.splitlines() if line.startswith("python3 -m venv ")]
    assert '.venv/bin/pip install -c requirements/constraints.txt -e ".[serve]" && ' in serve
    assert serve.endswith(" && .venv/bin/service")
    assert '-c requirements/constraints.txt -e ".[train,serve,dev]" && ' in tests
    assert tests.endswith(" && TRAINER_DATA_DIR=../shared/data .venv/bin/pytest")
    ci = (REPO / ".ci" / "run").read_text()
    commands = [line.split("#")[0] for line in ci.splitlines()]
    # The project is installed by README's commands only (CI's own tools may be pip-installed
    # after them), and pip is never upgraded: a newcomer's pip must do.
    assert [line for line in commands if re.search(r"pip install.*(\.\[|-e )", line)] == []
    assert [line for line in commands if re.search(r"pip.* (-U|--upgrade)\b.*\bpip\b", line)] == []
    assert ci.count('timed_install "${README_COMMANDS[') == 2


def test_clients_install_beside_the_service_without_breaking_it(serve_venv):
    """README's gRPC example installs tritonclient[grpc] into the service's environment: protobuf
    stays where `serve` put it, and the service's gRPC modules still import (a protobuf older than
    the one their messages were built with stops the service with a VersionError)."""

    def versions() -> dict[str, str]:
        listed = _pip(serve_venv, "list", "--format", "json")
        return {item["name"].lower(): item["version"] for item in json.loads(listed.stdout)}

    before = versions()
    result = _pip(serve_venv, "install", "--quiet", "tritonclient[grpc]")
    assert result.returncode == 0, result.stdout + result.stderr
    after = versions()
    assert "tritonclient" in after
    assert {name: after[name] for name in before} == before  # nothing changed, nothing removed
    result = _python(
        serve_venv, "import service.server, service.api.grpc.server, tritonclient.grpc"
    )
    assert result.returncode == 0, result.stderr
