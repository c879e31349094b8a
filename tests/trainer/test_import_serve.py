"""A model of the user's own, imported with `trainer import` and served: a Keras model made here
(two inputs, INT64 ids and a BOOL flag; two outputs) answers over V2 JSON, V2 binary
(tritonclient.http on its defaults), gRPC (tritonclient.grpc on its defaults) and V1 what
onnxruntime answers in-process on its folder's graph, and what Keras answers."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from loadtest.harness.servers import free_port
from tests.service.support import ServerProcess
from tests.trainer.test_import import keras_answers, onnx_answers, rows

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")

pytest_plugins = ["tests.trainer.test_import"]  # its fixtures: model, keras_file, keras_import


@pytest.fixture(scope="module")
def served(keras_import, tmp_path_factory):
    grpc_port = free_port()
    process = ServerProcess(
        tmp_path_factory.mktemp("log"), keras_import, SERVICE_GRPC_PORT=str(grpc_port)
    ).wait_ready()
    process.grpc = f"127.0.0.1:{grpc_port}"
    yield process
    assert process.terminate() == 0, process.output()


@pytest.fixture(scope="module")
def expected(model, keras_import):
    feeds = rows(5)
    answers = onnx_answers(keras_import / "pair" / "1", feeds)
    for name, answer in keras_answers(model, feeds).items():
        np.testing.assert_allclose(answers[name], answer, rtol=0, atol=1e-5)
    return feeds, answers


def test_v2_json(served, expected):
    feeds, answers = expected
    body = {"inputs": [
        {"name": "ids", "datatype": "INT64", "shape": [5, 3], "data": feeds["ids"].tolist()},
        {"name": "flag", "datatype": "BOOL", "shape": [5, 1], "data": feeds["flag"].tolist()},
    ]}  # fmt: skip
    answer = httpx.post(f"{served.url}/v2/models/pair/infer", json=body).json()
    for output in answer["outputs"]:
        got = np.array(output["data"], np.float32).reshape(output["shape"])
        np.testing.assert_array_equal(got, answers[output["name"]])
    assert {o["name"] for o in answer["outputs"]} == {"score", "probs"}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_tritonclient_on_its_defaults(served, expected, protocol):
    """tritonclient.http sends binary tensor data by default, tritonclient.grpc raw contents."""
    feeds, answers = expected
    module, address = {
        "http": (httpclient, served.url.removeprefix("http://")),
        "grpc": (grpcclient, served.grpc),
    }[protocol]
    inputs = [module.InferInput("ids", [5, 3], "INT64"), module.InferInput("flag", [5, 1], "BOOL")]
    inputs[0].set_data_from_numpy(feeds["ids"])
    inputs[1].set_data_from_numpy(feeds["flag"])
    result = module.InferenceServerClient(address).infer("pair", inputs)
    for name, answer in answers.items():
        np.testing.assert_array_equal(result.as_numpy(name), answer)


def test_v1_instances(served, expected):
    feeds, answers = expected
    instances = [
        {"ids": feeds["ids"][i].tolist(), "flag": feeds["flag"][i].tolist()} for i in range(5)
    ]
    predictions = httpx.post(
        f"{served.url}/v1/models/pair:predict", json={"instances": instances}
    ).json()["predictions"]
    for name, answer in answers.items():
        got = np.array([p[name] for p in predictions], np.float32)
        np.testing.assert_array_equal(got, answer)
