"""The retraining workflow end to end, as README's trainer section tells it: train → the gate →
the service serves the new version (after a load) → roll back by removing the version."""

import shutil
import warnings

import numpy as np
import pytest

from service.api.typed import EXAMPLE_HOUSE
from service.app import create_app
from service.settings import Settings
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
    settings = Settings(_env_file=None, model_repository=models, admin_api_key=KEY)
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
