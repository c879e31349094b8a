"""The retraining workflow end to end, as README's trainer section tells it: train → the gate →
the service serves the new version (after a load) → roll back by removing the version."""

import shutil
import threading
import time
import warnings

import httpx
import numpy as np
import pytest

from service.api.rest.typed import EXAMPLE_HOUSE
from service.server import create_app
from service.settings import Settings
from tests.service.support import ServerProcess, add_version
from trainer.cli import main
from trainer.data import BOSTON_COLUMNS
from trainer.evaluate import onnx_session

with warnings.catch_warnings():  # starlette's TestClient prefers httpx2; httpx works the same
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

KEY = "retrain-test-key"


def expected_price(models, version: int) -> float:
    session = onnx_session(models / "boston" / str(version) / "model.onnx")
    row = np.array([[EXAMPLE_HOUSE[c] for c in BOSTON_COLUMNS]], dtype=np.float32)
    return float(session.run(None, {"features": row})[0][0, 0])


@pytest.mark.usefixtures("tiny_recipes")
def test_a_retrained_version_is_served_and_rolled_back(synthetic_data_dir, tmp_path):
    models = tmp_path / "models"
    train = ["train", "boston", "--recipe", "book", "--quiet", "--out", str(models)]
    train += ["--data-dir", str(synthetic_data_dir)]
    assert main([*train, "--epochs", "3"]) == 0
    # gRPC off: its default port (8001) may be a running service's
    settings = Settings(_env_file=None, model_repository=models, admin_api_key=KEY, grpc_port=0)
    admin = {"Authorization": f"Bearer {KEY}"}
    with TestClient(create_app(settings)) as client:

        def served() -> tuple[int, float]:
            answer = client.post("/api/boston", json={"houses": [EXAMPLE_HOUSE]}).json()
            return answer["version"], answer["predictions"][0]["price"]

        assert served() == (1, pytest.approx(expected_price(models, 1), abs=1e-4))

        assert main([*train, "--epochs", "4"]) == 0  # better: the gate lets it through
        assert client.post("/v2/repository/models/boston/load", headers=admin).status_code == 200
        assert served() == (2, pytest.approx(expected_price(models, 2), abs=1e-4))

        shutil.rmtree(models / "boston" / "2")  # roll back
        assert client.post("/v2/repository/models/boston/load", headers=admin).status_code == 200
        assert served() == (1, pytest.approx(expected_price(models, 1), abs=1e-4))


@pytest.mark.usefixtures("tiny_recipes")
def test_a_running_service_serves_what_the_trainer_publishes(synthetic_data_dir, tmp_path):
    """The service polls the repository (SERVICE_POLL_INTERVAL_S): the trainer publishes a new
    Boston version while a client keeps asking, and the client sees it within the interval and no
    failure; a corrupt newer version leaves it serving; removing it rolls back."""
    models = tmp_path / "models"
    train = ["train", "boston", "--recipe", "book", "--quiet", "--out", str(models)]
    train += ["--data-dir", str(synthetic_data_dir)]
    assert main([*train, "--epochs", "3"]) == 0
    price_1 = expected_price(models, 1)
    process = ServerProcess(tmp_path, models, SERVICE_POLL_INTERVAL_S="0.3").wait_ready()
    seen: list[tuple[int, float]] = []
    failures: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=process.url, timeout=30) as http:
            while not stop.is_set():
                answer = http.post("/api/boston", json={"houses": [EXAMPLE_HOUSE]})
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text}")
                else:
                    body = answer.json()
                    seen.append((body["version"], body["predictions"][0]["price"]))

    def wait_for_version(version: int) -> None:
        deadline = time.monotonic() + 30
        while not (seen and seen[-1][0] == version):
            assert time.monotonic() < deadline, f"version {version} never served: {seen[-3:]}"
            time.sleep(0.05)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        wait_for_version(1)
        assert main([*train, "--epochs", "4"]) == 0  # better: the gate lets it through
        published = time.monotonic()
        wait_for_version(2)
        assert time.monotonic() - published < 5  # within the poll interval, and then some
        price_2 = expected_price(models, 2)
        broken = add_version(models, "boston", 2, 3)
        (broken / "model.onnx").write_bytes(b"not a graph")
        time.sleep(1.0)  # a few polls
        assert seen[-1][0] == 2  # the broken version 3 did not take its place
        shutil.rmtree(broken)
        shutil.rmtree(models / "boston" / "2")  # roll back
        wait_for_version(1)
    finally:
        stop.set()
        thread.join(30)
        code = process.terminate()
    assert failures == []
    for version, price in seen:
        assert price == pytest.approx(price_2 if version == 2 else price_1, abs=1e-4), version
    assert "boston/3 is not served" in process.output()
    assert code == 0, process.output()
