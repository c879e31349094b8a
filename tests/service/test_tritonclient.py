"""NVIDIA's own client, `tritonclient.http`, unmodified, against the service as a real process:
its defaults (binary tensor data in and out), JSON tensors, the two mixed, and compressed
requests and answers, compared with onnxruntime on the model file."""

from __future__ import annotations

import numpy as np
import pytest

from tests.needs import missing
from tests.service.support import (
    MODEL_NAMES,
    config,
    feeds,
    newest,
    ort_predict,
    sample_rows,
    versions,
)

try:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException
except ImportError:
    missing("tritonclient is not installed (the dev extra)", "TESTS_REQUIRE_TRITONCLIENT")

TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def triton(server):
    client = httpclient.InferenceServerClient(url=server.removeprefix("http://"))
    yield client
    client.close()


def infer(triton, name: str, version: int | None = None, rows=None, **options):
    version_text = str(version) if version else ""
    cfg = config(name, version)
    rows = sample_rows(name, version) if rows is None else rows
    tensors = infer_inputs(name, version, rows, binary_data=False)
    outputs = [httpclient.InferRequestedOutput(cfg.outputs[0].name, binary_data=False)]
    result = triton.infer(name, tensors, model_version=version_text, outputs=outputs, **options)
    return rows, result


def infer_inputs(name: str, version: int | None, rows: np.ndarray, binary_data: bool):
    """tritonclient's inputs of `rows` in the version's form."""
    specs = {spec.name: spec for spec in config(name, version).inputs}
    tensors = []
    for input_name, array in feeds(name, version, rows).items():
        tensor = httpclient.InferInput(input_name, list(array.shape), specs[input_name].datatype)
        tensor.set_data_from_numpy(array, binary_data=binary_data)
        tensors.append(tensor)
    return tensors


def test_server_live_and_ready(triton):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    metadata = triton.get_server_metadata()
    assert metadata["name"] == "dlwp-serving"
    assert "model_repository" in metadata["extensions"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_ready_and_metadata(triton, name):
    assert triton.is_model_ready(name)
    for version in versions(name):
        assert triton.is_model_ready(name, str(version))
    assert not triton.is_model_ready(name, str(newest(name) + 100))
    assert not triton.is_model_ready("no-such-model")
    metadata = triton.get_model_metadata(name)
    cfg = config(name)
    assert metadata["name"] == name
    assert metadata["versions"] == [str(v) for v in versions(name)]
    assert metadata["inputs"] == [s.model_dump() for s in cfg.inputs]
    assert metadata["outputs"] == [s.model_dump() for s in cfg.outputs]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_infer(triton, name):
    rows, result = infer(triton, name, request_id=f"triton-{name}")
    cfg = config(name)
    answer = result.as_numpy(cfg.outputs[0].name)
    expected = ort_predict(name, newest(name), rows)
    assert answer.shape == expected.shape
    assert np.abs(answer - expected).max() <= TOLERANCE
    response = result.get_response()
    assert response["model_name"] == name
    assert response["model_version"] == str(newest(name))
    assert response["id"] == f"triton-{name}"


@pytest.mark.parametrize(("name", "version"), [(n, v) for n in MODEL_NAMES for v in versions(n)])
def test_infer_explicit_version(triton, name, version):
    rows, result = infer(triton, name, version)
    answer = result.as_numpy(config(name, version).outputs[0].name)
    assert np.abs(answer - ort_predict(name, version, rows)).max() <= TOLERANCE
    assert result.get_response()["model_version"] == str(version)


def test_errors_reach_the_client(triton):
    """The client raises with the service's message: its `error` field."""
    with pytest.raises(InferenceServerException, match="model 'nope' is not loaded"):
        triton.get_model_metadata("nope")
    rows = sample_rows("boston")
    tensor = httpclient.InferInput("features", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    with pytest.raises(InferenceServerException, match="takes one input named 'features'"):
        triton.infer("boston", [httpclient.InferInput("houses", list(rows.shape), "FP32")
                                .set_data_from_numpy(rows)])  # fmt: skip
    with pytest.raises(InferenceServerException, match="NaN"):
        infer(triton, "boston", rows=np.full((1, 13), np.nan, dtype=np.float32))


def infer_with(triton, name: str, binary_in: bool, binary_out: bool | None, **options):
    """One request as tritonclient makes it: `binary_out` None names no output (the client then
    asks for every output in binary)."""
    cfg = config(name)
    rows = sample_rows(name)
    tensors = infer_inputs(name, None, rows, binary_data=binary_in)
    outputs = (
        None
        if binary_out is None
        else [httpclient.InferRequestedOutput(cfg.outputs[0].name, binary_data=binary_out)]
    )
    result = triton.infer(name, tensors, outputs=outputs, **options)
    answer = result.as_numpy(cfg.outputs[0].name)
    assert np.abs(answer - ort_predict(name, newest(name), rows)).max() <= TOLERANCE
    return result.get_response()["outputs"][0]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_the_clients_defaults_binary_in_and_out(triton, name):
    output = infer_with(triton, name, binary_in=True, binary_out=None)
    assert "data" not in output
    assert output["parameters"]["binary_data_size"] > 0


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize(("binary_in", "binary_out"), [(True, False), (False, True), (True, True)])
def test_binary_and_json_mixed(triton, name, binary_in, binary_out):
    output = infer_with(triton, name, binary_in=binary_in, binary_out=binary_out)
    assert ("data" in output) == (not binary_out)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests_and_answers(triton, name, algorithm):
    infer_with(triton, name, binary_in=True, binary_out=None,
               request_compression_algorithm=algorithm,
               response_compression_algorithm=algorithm)  # fmt: skip
    infer_with(triton, name, binary_in=False, binary_out=False,
               request_compression_algorithm=algorithm)  # fmt: skip
