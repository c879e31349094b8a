"""Sparse text models (`TextEncoding.form = "sparse"`): raw texts are encoded straight to n-gram
ids, requests of any padding merge into one batch, and V2 JSON, V2 binary, gRPC (raw and typed)
and V1 take ids (and weights) — each answer that of the dense version of the same weights. The
sparse versions here are the committed dense ones rewritten (`tests.service.sparse_models`)."""

from __future__ import annotations

import concurrent.futures

import httpx
import numpy as np
import pytest

from contract.config import read_config
from contract.sparse import SparseRows
from loadtest.harness.servers import free_port
from service.runtime import OnnxRuntime
from tests.service.sparse_models import add_sparse_version
from tests.service.support import (
    NEWSWIRES,
    REVIEWS,
    InProcessServer,
    ServerProcess,
    copy_repository,
    encoder,
    ort_predict,
    wait_until,
)

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
import grpc  # noqa: E402
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402

DENSE, SPARSE = 2, 9  # the committed dense version; the same weights, sparse, in the copy
TEXTS = {"imdb": ("reviews", REVIEWS), "reuters": ("newswires", NEWSWIRES)}


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = copy_repository(tmp_path_factory.mktemp("sparse") / "models")
    for name in TEXTS:
        add_sparse_version(root, name, DENSE, SPARSE)
    return root


@pytest.fixture(scope="module")
def server(repository, tmp_path_factory):
    grpc_port = free_port()
    process = ServerProcess(
        tmp_path_factory.mktemp("log"), repository, SERVICE_GRPC_PORT=str(grpc_port)
    ).wait_ready()
    process.grpc = f"127.0.0.1:{grpc_port}"
    yield process
    assert process.terminate() == 0, process.output()


def entries(name: str) -> SparseRows:
    """The sample texts' rows, as the model's encoder makes them."""
    text_encoder = encoder(name, DENSE)
    return text_encoder.sparse_rows(text_encoder.word_ids_batch(TEXTS[name][1]))


def expected(name: str) -> np.ndarray:
    """The dense version's output for the sample texts' rows, in process."""
    return ort_predict(name, DENSE, entries(name).dense())


def feeds(name: str, width: int | None = None) -> dict[str, np.ndarray]:
    ids, weights = entries(name).padded(width)
    return {"ids": ids} if name == "imdb" else {"ids": ids, "weights": weights}


def v2_json(name: str, width: int | None = None) -> dict:
    tensors = feeds(name, width)
    datatypes = {"ids": "INT64", "weights": "FP32"}
    return {
        "inputs": [
            {
                "name": k,
                "datatype": datatypes[k],
                "shape": list(v.shape),
                "data": v.ravel().tolist(),
            }
            for k, v in tensors.items()
        ]
    }


def test_the_version_describes_its_sparse_inputs(server):
    for name, inputs in (("imdb", ["ids"]), ("reuters", ["ids", "weights"])):
        metadata = httpx.get(f"{server.url}/v2/models/{name}/versions/{SPARSE}").json()
        assert [i["name"] for i in metadata["inputs"]] == inputs
        assert metadata["inputs"][0] == {"name": "ids", "datatype": "INT64", "shape": [-1, -1]}
        config = httpx.get(f"{server.url}/v2/models/{name}/versions/{SPARSE}/config").json()
        assert config["encoding"]["form"] == "sparse"
        assert config["encoding"]["dim"] == encoder(name, DENSE).encoding.dim  # the pad id


@pytest.mark.parametrize("name", TEXTS)
def test_raw_texts_answer_as_the_dense_version(server, name):
    items, texts = TEXTS[name]
    dense, sparse = (
        httpx.post(f"{server.url}/api/{name}?version={v}", json={items: texts}).json()
        for v in (DENSE, SPARSE)
    )
    assert sparse["version"] == SPARSE
    assert _close(sparse["predictions"], dense["predictions"])


def _close(a, b) -> bool:
    """JSON answers equal but for float rounding."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return abs(a - b) <= 1e-6
    return a == b


@pytest.mark.parametrize("name", TEXTS)
def test_ids_over_every_transport_answer_as_the_dense_rows(server, name):
    want = expected(name)
    path = f"{server.url}/v2/models/{name}/versions/{SPARSE}/infer"
    answer = httpx.post(path, json=v2_json(name)).json()
    np.testing.assert_allclose(_v2_output(answer, want.shape), want, atol=1e-6)
    wider = httpx.post(path, json=v2_json(name, width=999)).json()  # padding adds nothing
    np.testing.assert_allclose(_v2_output(wider, want.shape), want, atol=1e-6)

    http = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    grpc_client = grpcclient.InferenceServerClient(server.grpc)
    for client, module in ((http, httpclient), (grpc_client, grpcclient)):
        inputs = []
        for key, value in feeds(name).items():
            tensor = module.InferInput(key, list(value.shape), "INT64" if key == "ids" else "FP32")
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        result = client.infer(name, inputs, model_version=str(SPARSE))
        np.testing.assert_allclose(result.as_numpy(answer["outputs"][0]["name"]), want, atol=1e-6)

    typed = service_pb2.ModelInferRequest(model_name=name, model_version=str(SPARSE))
    for key, value in feeds(name).items():
        tensor = typed.inputs.add(name=key, datatype="INT64" if key == "ids" else "FP32")
        tensor.shape.extend(value.shape)
        contents = tensor.contents.int64_contents if key == "ids" else tensor.contents.fp32_contents
        contents.extend(value.ravel().tolist())
    with grpc.insecure_channel(server.grpc) as channel:
        reply = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(typed, timeout=10)
    np.testing.assert_allclose(
        np.array(reply.outputs[0].contents.fp32_contents).reshape(want.shape), want, atol=1e-6
    )

    rows = entries(name)
    per_row = [rows.take(i, i + 1) for i in range(len(rows))]  # each instance its own length
    instances = [
        {"ids": r.columns.tolist(), "weights": r.values.tolist()}
        if name == "reuters"
        else {"ids": r.columns.tolist()}
        for r in per_row
    ]
    v1 = httpx.post(
        f"{server.url}/v1/models/{name}/versions/{SPARSE}:predict", json={"instances": instances}
    )
    assert v1.status_code == 200, v1.text
    np.testing.assert_allclose(np.array(v1.json()["predictions"]), want, atol=1e-6)


def _v2_output(answer: dict, shape) -> np.ndarray:
    return np.array(answer["outputs"][0]["data"]).reshape(shape)


@pytest.mark.parametrize(
    ("tensors", "field", "reason"),
    [
        ({"ids": [[1, 50001]]}, "inputs[0]", "id 50001 is not a column"),
        ({"ids": [[-1, 3]]}, "inputs[0]", "id -1 is not a column"),
        ({"ids": []}, "inputs[0]", "the batch is empty"),
    ],
)
def test_bad_ids_are_named_over_rest_and_grpc(server, tensors, field, reason):
    _refused_everywhere(server, "imdb", tensors, field, reason)


@pytest.mark.parametrize(
    ("tensors", "field", "reason"),
    [
        ({"ids": [[1, 2]], "weights": [[1.0]]}, "inputs[1]", "one weight per id"),
        ({"ids": [[1, 2]], "weights": [[1.0, float("nan")]]}, "inputs[1]", "must be finite"),
        ({"ids": [[1, 99999]], "weights": [[1.0, 1.0]]}, "inputs[0]", "not a column"),
    ],
)
def test_bad_weights_are_named_over_rest_and_grpc(server, tensors, field, reason):
    _refused_everywhere(server, "reuters", tensors, field, reason)


def _refused_everywhere(server, name: str, tensors: dict, field: str, reason: str) -> None:
    arrays = {
        k: np.array(v, np.int64 if k == "ids" else np.float32).reshape(len(v), -1 if v else 3)
        for k, v in tensors.items()
    }
    request = service_pb2.ModelInferRequest(model_name=name, model_version=str(SPARSE))
    body = {"inputs": []}
    for key, value in arrays.items():
        datatype = "INT64" if key == "ids" else "FP32"
        request.inputs.add(name=key, datatype=datatype, shape=value.shape)
        request.raw_input_contents.append(value.tobytes())
        body["inputs"].append(
            {"name": key, "datatype": datatype, "shape": list(value.shape), "data": value.tolist()}
        )
    if all(np.isfinite(value).all() for value in arrays.values()):  # JSON has no NaN; bytes do
        answer = httpx.post(f"{server.url}/v2/models/{name}/versions/{SPARSE}/infer", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["details"][0]["field"] == field
        assert reason in answer.json()["details"][0]["reason"]
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.ModelInfer(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field), error.value.details()
    assert reason in error.value.details()


def test_requests_of_any_padding_and_raw_texts_merge_into_one_batch_without_dense_rows(
    repository, monkeypatch
):
    """Held behind a first request, V2 ids of every padding and raw texts run as one batch of
    entries: no dense row is made on the way (`SparseRows.dense`/`write` would fail)."""

    def refuse(*args):
        raise AssertionError("a dense row was made for a sparse model")

    want = expected("imdb")
    monkeypatch.setattr(SparseRows, "dense", refuse)
    monkeypatch.setattr(SparseRows, "write", refuse)
    with InProcessServer(model_repository=str(repository)) as server:
        path = f"{server.url}/v2/models/imdb/versions/{SPARSE}/infer"
        typed = f"{server.url}/api/imdb?version={SPARSE}"
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            server.hold()
            first = pool.submit(httpx.post, path, json=v2_json("imdb"), timeout=30)
            assert server.entered.wait(10)
            widths = [None, 1000, 300, 2000]
            held = [
                pool.submit(httpx.post, path, json=v2_json("imdb", w), timeout=30) for w in widths
            ]
            texts = pool.submit(httpx.post, typed, json={"reviews": REVIEWS}, timeout=30)
            _wait_queued(server, len(held) + 1)
            server.release()
            for answer in [first.result(), *(h.result() for h in held)]:
                assert answer.status_code == 200, answer.text
                np.testing.assert_allclose(_v2_output(answer.json(), want.shape), want, atol=1e-6)
            assert texts.result().status_code == 200, texts.result().text
        rows = len(REVIEWS)
        assert server.ran == [("imdb", rows), ("imdb", rows * (len(held) + 1))]


def _wait_queued(server, count: int) -> None:
    model = server.dataplane.registry.get("imdb", SPARSE)
    wait_until(lambda: server.in_loop(lambda: model.batcher.waiting) >= count, "queued requests")


def test_a_batch_of_very_different_lengths_runs_in_parts_of_similar_length(repository, monkeypatch):
    """Padded to one long text, every short one would cost as much: past the padded ids a call
    may gather (`call_entries`, from SPARSE_CALL_BYTES and the config's gathered width), the
    batch runs in parts, and answers as if whole."""
    folder = repository / "reuters" / str(SPARSE)
    runtime = OnnxRuntime(folder / "model.onnx", ["CPUExecutionProvider"], 1)
    runtime.bind(read_config(folder))
    text_encoder = encoder("reuters", DENSE)
    texts = [*NEWSWIRES, " ".join(NEWSWIRES) * 20, *NEWSWIRES]
    rows = text_encoder.sparse_rows(text_encoder.word_ids_batch(texts))
    whole = runtime.run_sparse(rows)
    calls = []

    def counted(batch: SparseRows, rows: np.ndarray) -> np.ndarray:
        calls.append(batch.padded(rows=rows)[0])
        return _alone(runtime, batch, rows)

    monkeypatch.setattr(runtime, "_run_padded", counted)
    monkeypatch.setattr(runtime, "call_entries", 2 * int(rows.counts().max()))
    parts = runtime.run_sparse(rows)
    assert len(calls) > 1
    assert max(ids.size for ids in calls) <= 2 * rows.counts().max()
    np.testing.assert_allclose(parts, whole, atol=1e-6)
    np.testing.assert_allclose(whole, ort_predict("reuters", DENSE, rows.dense()), atol=1e-6)


def _alone(runtime, batch: SparseRows, rows: np.ndarray) -> np.ndarray:
    feeds = dict(zip(runtime.input_names, batch.padded(rows=rows), strict=False))
    return runtime.session.run([runtime.output.name], feeds)[0]


def test_more_ids_than_a_request_may_send_are_refused_before_they_become_entries(server):
    """SERVICE_MAX_SPARSE_ENTRIES (2**18): an id costs two bytes of JSON and some 30 of entries."""
    shape = [2, (1 << 17) + 1]  # 2**18 + 2 ids, all padding
    ids = [50_000] * (shape[0] * shape[1])
    body = {"inputs": [{"name": "ids", "datatype": "INT64", "shape": shape, "data": ids}]}
    answer = httpx.post(
        f"{server.url}/v2/models/imdb/versions/{SPARSE}/infer", json=body, timeout=60
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["details"][0] == {
        "field": "inputs[0]",
        "reason": f"{len(ids)} ids exceed the limit of {1 << 18}",
    }
    request = service_pb2.ModelInferRequest(model_name="imdb", model_version=str(SPARSE))
    tensor = request.inputs.add(name="ids", datatype="INT64", shape=shape)
    tensor.contents.int64_contents.extend(ids)  # 3 bytes an id: within the message limit
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.ModelInfer(request, timeout=60)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == f"inputs[0]: {len(ids)} ids exceed the limit of {1 << 18}"
