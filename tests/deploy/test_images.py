"""The CPU service and trainer images, built (docker/build.sh, once per session) and run: the
running containers are checked, not the Dockerfiles. Where no Docker daemon answers, every test
skips and says why; DEPLOY_REQUIRE_DOCKER=1 (set by .ci/run) makes that a failure.

The service container runs as Kubernetes runs it (docker/k8s/base/deployment.yaml): read-only
root filesystem, a tmpfs on /tmp. It is on the host's network (these machines' daemons have no
bridge) on free ports, with the HEALTHCHECK's interval shortened to 1 s (its command unchanged)."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from http.client import HTTPConnection
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from loadtest.harness.servers import free_port
from tests.deploy.images import docker, http, inspect, run_service, wait_for
from tests.service.support import (
    EXAMPLE_HOUSE,
    MODEL_NAMES,
    config,
    copy_repository,
    feeds,
    house_rows,
    is_sparse,
    newest,
    ort_predict,
    sample_rows,
    v2_body,
    v2_outputs,
    versions,
)

pytestmark = pytest.mark.slow

READY_WITHIN_S = 10
STOPPED_WITHIN_S = 5
SIZE_LIMIT = 450e6
UID = "10001"
READ_ONLY = ("--read-only", "--tmpfs", "/tmp", "--health-interval", "1s")
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def service(service_image):
    """The service container, and the seconds from `docker run` to ready."""
    started = time.monotonic()
    container = run_service(
        service_image, "dlwp-test-service", free_port(), free_port(), *READ_ONLY
    )
    try:
        try:
            wait_for(container.ready, "ready", timeout=60)
        except AssertionError:
            raise AssertionError(container.logs()) from None
        yield container, time.monotonic() - started
    finally:
        container.remove()


def _uids(container_name: str) -> list[str]:
    """The real, effective, saved and filesystem uids of the container's PID 1, from /proc."""
    pid = inspect(container_name)["State"]["Pid"]
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("Uid:")]
    return line.split()[1:]


def test_the_service_is_ready_within_10_s(service):
    _, seconds = service
    print(f"ready {seconds:.2f} s after `docker run`")
    assert seconds < READY_WITHIN_S


def test_the_service_image_is_small_and_has_nothing_of_the_build_machine(service_image):
    size = inspect(service_image)["Size"]
    assert size < SIZE_LIMIT, f"{size / 1e6:.0f} MB"
    # pip's configuration and CA bundle came as secrets: none stays, nor the build's sources or
    # pip's cache.
    script = (
        "import os; print([p for p in ('/etc/pip.conf', '/src', '/root/.cache/pip') "
        "if os.path.exists(p) and (os.path.isdir(p) or os.path.getsize(p))])"
    )
    result = docker("run", "--rm", "--network", "none", "--entrypoint", "python", service_image,
                    "-c", script, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", service_image).stdout
    for secret in (Path("/etc/pip.conf"),):
        if secret.is_file():
            for line in secret.read_text().splitlines():
                if "=" in line:  # settings of the build machine (an index, its credentials)
                    assert line.split("=", 1)[1].strip() not in history


def test_the_service_runs_as_non_root_on_a_read_only_root(service):
    container, _ = service
    details = inspect(container.name)
    assert details["Config"]["User"] == f"{UID}:{UID}"
    assert _uids(container.name) == [UID] * 4
    assert details["HostConfig"]["ReadonlyRootfs"] is True
    write = docker("exec", container.name, "python", "-c", "open('/srv/x', 'w')", check=False)
    assert write.returncode != 0
    assert "Read-only file system" in write.stderr


def test_the_healthcheck_reports_healthy(service):
    container, _ = service
    wait_for(
        lambda: inspect(container.name)["State"]["Health"]["Status"] == "healthy",
        "healthy",
        timeout=30,
        poll_s=0.5,
    )


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_rest_answers_equal_onnxruntime(service, name):
    container, _ = service
    for version in versions(name):
        rows = sample_rows(name, version)
        status, body = http(
            f"{container.url}/v2/models/{name}/versions/{version}/infer",
            v2_body(name, rows, version),
        )
        assert status == 200, body
        got = v2_outputs(json.loads(body))
        np.testing.assert_allclose(got, ort_predict(name, version, rows), atol=TOLERANCE)


def test_the_readme_examples_answer_as_in_process(service):
    """The README's typed and V2 Boston examples (tests/service/support.py's EXAMPLE_HOUSE)."""
    container, _ = service
    expected = ort_predict("boston", newest("boston"), house_rows([EXAMPLE_HOUSE]))
    status, body = http(f"{container.url}/api/boston", {"houses": [EXAMPLE_HOUSE]})
    assert status == 200, body
    assert json.dumps(json.loads(body))  # an answer; its price is the V2 answer below, rounded
    status, body = http(
        f"{container.url}/v2/models/boston/infer", v2_body("boston", house_rows([EXAMPLE_HOUSE]))
    )
    assert status == 200, body
    np.testing.assert_allclose(v2_outputs(json.loads(body)), expected, atol=TOLERANCE)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_grpc_answers_equal_onnxruntime(service, name):
    grpcclient = pytest.importorskip("tritonclient.grpc")
    container, _ = service
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{container.grpc_port}")
    try:
        assert client.is_server_ready()
        for version in versions(name):
            cfg = config(name, version)
            rows = sample_rows(name, version).astype(np.float32)
            specs = {spec.name: spec for spec in cfg.inputs}
            tensors = []
            for input_name, array in feeds(name, version, rows).items():
                tensor = grpcclient.InferInput(
                    input_name, list(array.shape), specs[input_name].datatype
                )
                tensor.set_data_from_numpy(array)
                tensors.append(tensor)
            result = client.infer(name, tensors, model_version=str(version))
            got = result.as_numpy(cfg.outputs[0].name)
            np.testing.assert_allclose(got, ort_predict(name, version, rows), atol=TOLERANCE)
    finally:
        client.close()


def test_sigterm_answers_the_requests_in_flight_then_exits_within_5_s(service):
    """Requests sent in full before SIGTERM are all answered, right; the container exits 0
    within 5 s of the signal. (Last of the module's tests on this container: it stops it.)"""
    container, _ = service
    version = max(v for v in versions("imdb") if not is_sparse("imdb", v))  # dense: slow to read
    rows = np.repeat(sample_rows("imdb", version), 2, axis=0)  # 6 rows: ~1.5 MB of JSON each
    body = json.dumps(v2_body("imdb", rows, version)).encode()
    expected = ort_predict("imdb", version, rows)
    count = 12
    sent = [threading.Event() for _ in range(count)]
    answers: list[tuple[int, bytes, float] | Exception] = [None] * count  # type: ignore[list-item]

    def request(i: int) -> None:
        try:
            connection = HTTPConnection("127.0.0.1", container.port, timeout=30)
            headers = {"content-type": "application/json"}
            connection.request("POST", f"/v2/models/imdb/versions/{version}/infer", body, headers)
            sent[i].set()
            response = connection.getresponse()
            answers[i] = (response.status, response.read(), time.monotonic())
            connection.close()
        except Exception as error:
            sent[i].set()
            answers[i] = error

    threads = [threading.Thread(target=request, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for event in sent:
        assert event.wait(30)
    signalled = time.monotonic()
    docker("kill", "--signal", "TERM", container.name)
    exit_code = docker("wait", container.name, timeout=30).stdout.strip()
    stopped = time.monotonic() - signalled
    for thread in threads:
        thread.join(30)
    assert exit_code == "0", container.logs()
    assert stopped < STOPPED_WITHIN_S
    errors = [answer for answer in answers if isinstance(answer, Exception)]
    assert errors == []
    for status, answer, _ in answers:
        assert status == 200, answer
        np.testing.assert_allclose(v2_outputs(json.loads(answer)), expected, atol=TOLERANCE)
    after = sum(answered > signalled for _, _, answered in answers)
    print(f"{after} of {count} answered after SIGTERM; stopped {stopped:.2f} s after it")
    assert after >= 1, "no request was still in flight at SIGTERM: the test proved nothing"


def test_the_logs_are_json_lines_only(service):
    container, _ = service
    lines = [line for line in container.logs().splitlines() if line.strip()]
    assert lines
    not_json = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            not_json.append(line)
            continue
        if not isinstance(record, dict):
            not_json.append(line)
    assert not_json == []


@pytest.mark.real_data
def test_the_trainer_trains_boston_into_a_mounted_repository_the_service_serves(
    trainer_image, service_image, real_data_dir, tmp_path
):
    """Offline (no network), as the user who runs it; the service (uid 10001) reads the new
    version from the same folder, read-only."""
    if not (real_data_dir / "boston_housing.npz").is_file():
        pytest.skip(f"no boston_housing.npz in {real_data_dir}")
    repository = copy_repository(tmp_path / "models", ["boston"])
    new = max(versions("boston")) + 1
    result = docker(
        *("run", "--rm", "--network", "none", "--user", f"{os.getuid()}:{os.getgid()}"),
        *("--volume", f"{real_data_dir}:/data:ro", "--volume", f"{repository}:/models"),
        trainer_image,
        *("train", "boston", "--recipe", "book", "--epochs", "20", "--force", "--quiet"),
        *("--data-dir", "/data", "--out", "/models"),
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    folder = repository / "boston" / str(new)
    assert (folder / "model.onnx").is_file()
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), f"{path}: {oct(mode)}"

    container = run_service(
        service_image,
        "dlwp-test-trained",
        free_port(),
        free_port(),
        *READ_ONLY,
        *("--volume", f"{repository}:/models:ro"),
    )
    try:
        try:
            wait_for(container.ready, "ready", timeout=60)
        except AssertionError:
            raise AssertionError(container.logs()) from None
        status, body = http(f"{container.url}/v2/models/boston")
        assert status == 200, body
        assert str(new) in json.loads(body)["versions"]
        rows = sample_rows("boston").astype(np.float32)
        status, body = http(
            f"{container.url}/v2/models/boston/versions/{new}/infer", v2_body("boston", rows)
        )
        assert status == 200, body
        session = ort.InferenceSession(
            str(folder / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        expected = session.run(None, {session.get_inputs()[0].name: rows})[0]
        np.testing.assert_allclose(v2_outputs(json.loads(body)), expected, atol=TOLERANCE)
    finally:
        container.remove()
