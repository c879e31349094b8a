"""Any ONNX model serves: a version folder with only `model.onnx` is completed from its graph; a
partial config.json keeps what it says; tensors of every datatype, several inputs and outputs,
requested outputs, over V2 JSON, V2 binary (tritonclient.http on its defaults), gRPC
(tritonclient.grpc on its defaults) and V1, each answer equal to onnxruntime in-process; a graph
the service cannot serve is named at load while the others serve."""

from __future__ import annotations

import concurrent.futures
import json
import math
import shutil

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from loadtest.harness.servers import free_port
from tests.service.support import MODELS, ServerProcess, newest
from tests.service.test_hostile_grpc import CONTENTS, NEVER  # the proto's typed fields

httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
import grpc  # noqa: E402
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402


def save(graph, folder, config: dict | None = None):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    return folder / "model.onnx"


def tensor(name, kind, shape):
    return helper.make_tensor_value_info(name, kind, shape)


def mixer(folder):
    """FP16 and UINT8 in; FP16, INT64 and BOOL out; every dimension but the batch fixed."""
    nodes = [
        helper.make_node("Cast", ["mask"], ["mask16"], to=TensorProto.FLOAT16),
        helper.make_node("Mul", ["x", "mask16"], ["scaled"]),
        helper.make_node("Cast", ["mask"], ["counts"], to=TensorProto.INT64),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.FLOAT16, [], [0])),
        helper.make_node("Greater", ["x", "zero"], ["positive"]),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "mixer",
        [tensor("x", TensorProto.FLOAT16, ["n", 3]), tensor("mask", TensorProto.UINT8, ["n", 3])],
        [
            tensor("scaled", TensorProto.FLOAT16, ["n", 3]),
            tensor("counts", TensorProto.INT64, ["n", 3]),
            tensor("positive", TensorProto.BOOL, ["n", 3]),
        ],
    )
    return save(graph, folder)  # no config.json: completed from the graph


def texts(folder):
    """Strings and booleans, a partial config naming a description only."""
    nodes = [
        helper.make_node("Identity", ["text"], ["echo"]),
        helper.make_node("Not", ["flag"], ["flipped"]),
    ]
    graph = helper.make_graph(
        nodes,
        "texts",
        [tensor("text", TensorProto.STRING, ["n"]), tensor("flag", TensorProto.BOOL, ["n"])],
        [tensor("echo", TensorProto.STRING, ["n"]), tensor("flipped", TensorProto.BOOL, ["n"])],
    )
    return save(graph, folder, {"description": "echoes texts, flips flags"})


def fixed(folder):
    """A 2 × 2 input whose first dimension is no batch: each request runs alone."""
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=one), helper.make_node("Add", ["a", "c"], ["b"])],
        "fixed",
        [tensor("a", TensorProto.FLOAT, [2, 2])],
        [tensor("b", TensorProto.FLOAT, [2, 2])],
    )  # fmt: skip
    return save(graph, folder)


def sums(folder):
    """Rows of any length: requests merge only with requests of their length."""
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["a"], value=axes),
         helper.make_node("ReduceSum", ["seq", "a"], ["total"], keepdims=0)],
        "sums",
        [tensor("seq", TensorProto.INT64, ["n", "m"])],
        [tensor("total", TensorProto.INT64, ["n"])],
    )  # fmt: skip
    return save(graph, folder)


def lookup(folder):
    """Rows of a table by index: an index out of range fails the graph at run time."""
    table = helper.make_tensor("table", TensorProto.FLOAT, [5, 2], [float(i) for i in range(10)])
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "index"], ["row"])],
        "lookup",
        [tensor("index", TensorProto.INT64, ["n"])],
        [tensor("row", TensorProto.FLOAT, ["n", 2])],
        [table],
    )
    return save(graph, folder)


def unsupported(folder):
    """A bfloat16 input: no V2 datatype for it."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["v"])],
        "unsupported",
        [tensor("w", TensorProto.BFLOAT16, ["n", 2])],
        [tensor("v", TensorProto.BFLOAT16, ["n", 2])],
    )
    return save(graph, folder)


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("any") / "models"
    shutil.copytree(MODELS / "boston" / str(newest("boston")), root / "boston" / "1",
                    ignore=shutil.ignore_patterns("saved_model", "*.png"))  # fmt: skip
    config = json.loads((root / "boston" / "1" / "config.json").read_text())
    (root / "boston" / "1" / "config.json").write_text(json.dumps({**config, "version": 1}))
    graphs = {
        "mixer": mixer(root / "mixer" / "1"),
        "texts": texts(root / "texts" / "1"),
        "fixed": fixed(root / "fixed" / "1"),
        "sums": sums(root / "sums" / "1"),
        "lookup": lookup(root / "lookup" / "1"),
    }
    unsupported(root / "broken" / "1")
    (root / "broken" / "2").mkdir()
    (root / "broken" / "2" / "model.onnx").write_bytes(b"not a graph")
    return root, graphs


@pytest.fixture(scope="module")
def server(repository, tmp_path_factory):
    root, _ = repository
    grpc_port = free_port()
    process = ServerProcess(
        tmp_path_factory.mktemp("log"),
        root,
        SERVICE_GRPC_PORT=str(grpc_port),
        SERVICE_ADMIN_API_KEY="secret",
    ).wait_ready()
    process.grpc = f"127.0.0.1:{grpc_port}"
    yield process
    assert process.terminate() == 0, process.output()


def in_process(repository, name: str, feeds: dict) -> dict:
    session = ort.InferenceSession(str(repository[1][name]))
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


X = np.array([[0.5, -1.25, 2.0], [3.0, 0.0, -0.5]], np.float16)
MASK = np.array([[1, 0, 255], [2, 1, 0]], np.uint8)


def test_a_bare_model_gets_its_config_from_the_graph(server):
    config = httpx.get(f"{server.url}/v2/models/mixer/config").json()
    assert config["name"] == "mixer"
    assert config["version"] == 1
    assert config["inputs"] == [
        {"name": "x", "datatype": "FP16", "shape": [-1, 3]},
        {"name": "mask", "datatype": "UINT8", "shape": [-1, 3]},
    ]
    assert [(o["name"], o["datatype"]) for o in config["outputs"]] == [
        ("scaled", "FP16"), ("counts", "INT64"), ("positive", "BOOL"),
    ]  # fmt: skip
    assert "training" not in config
    assert "task" not in config
    metadata = httpx.get(f"{server.url}/v2/models/mixer").json()
    assert metadata["inputs"] == config["inputs"]
    partial = httpx.get(f"{server.url}/v2/models/texts/versions/1/config").json()
    assert partial["description"] == "echoes texts, flips flags"
    assert partial["inputs"][0] == {"name": "text", "datatype": "BYTES", "shape": [-1]}


def test_v2_json_every_output_equal_to_onnxruntime(server, repository):
    body = {"inputs": [
        {"name": "mask", "datatype": "UINT8", "shape": [2, 3], "data": MASK.tolist()},
        {"name": "x", "datatype": "FP16", "shape": [2, 3], "data": X.ravel().tolist()},
    ]}  # fmt: skip
    answer = httpx.post(f"{server.url}/v2/models/mixer/infer", json=body).json()
    expected = in_process(repository, "mixer", {"x": X, "mask": MASK})
    got = {o["name"]: o for o in answer["outputs"]}
    assert list(got) == ["scaled", "counts", "positive"]
    for name, value in expected.items():
        assert got[name]["shape"] == [2, 3]
        np.testing.assert_array_equal(np.array(got[name]["data"]).reshape(2, 3), value)
    assert got["positive"]["data"][:3] == [True, False, True]


def test_v2_json_strings_and_requested_outputs(server, repository):
    body = {
        "inputs": [
            {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["héllo", ""]},
            {"name": "flag", "datatype": "BOOL", "shape": [2], "data": [True, False]},
        ],
        "outputs": [{"name": "flipped"}],
    }
    answer = httpx.post(f"{server.url}/v2/models/texts/infer", json=body).json()
    assert answer["outputs"] == [
        {"name": "flipped", "shape": [2], "datatype": "BOOL", "data": [False, True]}
    ]
    body["outputs"] = [{"name": "echo"}]
    answer = httpx.post(f"{server.url}/v2/models/texts/infer", json=body).json()
    assert answer["outputs"][0]["data"] == ["héllo", ""]


def test_v2_binary_with_tritonclient_on_its_defaults(server, repository):
    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    inputs = [
        httpclient.InferInput("x", [2, 3], "FP16"),
        httpclient.InferInput("mask", [2, 3], "UINT8"),
    ]
    inputs[0].set_data_from_numpy(X)  # binary by default
    inputs[1].set_data_from_numpy(MASK)
    outputs = [httpclient.InferRequestedOutput("counts"), httpclient.InferRequestedOutput("scaled")]
    result = client.infer("mixer", inputs, outputs=outputs)
    expected = in_process(repository, "mixer", {"x": X, "mask": MASK})
    np.testing.assert_array_equal(result.as_numpy("counts"), expected["counts"])
    np.testing.assert_array_equal(result.as_numpy("scaled"), expected["scaled"])
    assert result.as_numpy("scaled").dtype == np.float16
    assert result.as_numpy("positive") is None  # not asked for
    words = httpclient.InferInput("text", [2], "BYTES")
    words.set_data_from_numpy(np.array(["a b", "ç"], dtype=object))
    flags = httpclient.InferInput("flag", [2], "BOOL")
    flags.set_data_from_numpy(np.array([False, True]))
    result = client.infer("texts", [words, flags])
    assert [e.decode() for e in result.as_numpy("echo")] == ["a b", "ç"]
    assert result.as_numpy("flipped").tolist() == [True, False]


def test_grpc_with_tritonclient_on_its_defaults(server, repository):
    client = grpcclient.InferenceServerClient(server.grpc)
    inputs = [
        grpcclient.InferInput("x", [2, 3], "FP16"),
        grpcclient.InferInput("mask", [2, 3], "UINT8"),
    ]
    inputs[0].set_data_from_numpy(X)
    inputs[1].set_data_from_numpy(MASK)
    result = client.infer("mixer", inputs)
    expected = in_process(repository, "mixer", {"x": X, "mask": MASK})
    for name, value in expected.items():
        np.testing.assert_array_equal(result.as_numpy(name), value)
    words = grpcclient.InferInput("text", [2], "BYTES")
    words.set_data_from_numpy(np.array([b"x", "ü".encode()], dtype=object))
    flags = grpcclient.InferInput("flag", [2], "BOOL")
    flags.set_data_from_numpy(np.array([True, True]))
    result = client.infer(
        "texts", [words, flags], outputs=[grpcclient.InferRequestedOutput("echo")]
    )
    assert [e.decode() for e in result.as_numpy("echo")] == ["x", "ü"]
    assert result.as_numpy("flipped") is None


def test_v1_instances_of_several_inputs_and_columnar(server, repository):
    instances = [{"x": X[i].tolist(), "mask": MASK[i].tolist()} for i in range(2)]
    answer = httpx.post(f"{server.url}/v1/models/mixer:predict", json={"instances": instances})
    expected = in_process(repository, "mixer", {"x": X, "mask": MASK})
    rows = answer.json()["predictions"]
    assert [row["counts"] for row in rows] == expected["counts"].tolist()
    assert [row["positive"] for row in rows] == expected["positive"].tolist()
    columnar = {"inputs": {"x": X.tolist(), "mask": MASK.tolist()}}
    outputs = httpx.post(f"{server.url}/v1/models/mixer:predict", json=columnar).json()["outputs"]
    np.testing.assert_array_equal(np.array(outputs["scaled"], np.float16), expected["scaled"])
    signature = httpx.get(f"{server.url}/v1/models/mixer/metadata").json()["metadata"]
    assert (
        signature["signature_def"]["signature_def"]["serving_default"]["inputs"]["mask"]["dtype"]
        == "DT_UINT8"
    )


def test_concurrent_requests_are_batched_and_each_gets_its_rows(server, repository):
    def one(rows: int):
        x = np.full((rows, 3), rows, np.float16)
        mask = np.ones((rows, 3), np.uint8)
        body = {"inputs": [
            {"name": "x", "datatype": "FP16", "shape": [rows, 3], "data": x.ravel().tolist()},
            {"name": "mask", "datatype": "UINT8", "shape": [rows, 3], "data": mask.ravel().tolist()},
        ]}  # fmt: skip
        answer = httpx.post(f"{server.url}/v2/models/mixer/infer", json=body, timeout=30).json()
        return rows, {o["name"]: o for o in answer["outputs"]}

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for rows, got in pool.map(one, [1, 2, 3, 4, 5, 6, 7, 8] * 3):
            assert got["scaled"]["shape"] == [rows, 3]
            assert set(got["scaled"]["data"]) == {float(rows)}


def test_requests_of_other_shapes_are_not_merged(server):
    def one(length: int):
        rows = [[length] * length, [1] * length]
        body = {
            "inputs": [{"name": "seq", "datatype": "INT64", "shape": [2, length], "data": rows}]
        }
        answer = httpx.post(f"{server.url}/v2/models/sums/infer", json=body, timeout=30)
        return length, answer

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for length, answer in pool.map(one, [1, 2, 3, 4] * 6):
            assert answer.status_code == 200, answer.text
            assert answer.json()["outputs"][0]["data"] == [length * length, length]


def test_an_input_the_graph_refuses_at_run_time_is_a_400_and_fails_no_other_request(server):
    """An index out of range fails onnxruntime's Gather: that request is answered 400 (gRPC:
    INVALID_ARGUMENT), the requests batched with it are answered as if it were not there."""

    def one(index: int):
        body = {"inputs": [{"name": "index", "datatype": "INT64", "shape": [1], "data": [index]}]}
        return index, httpx.post(f"{server.url}/v2/models/lookup/infer", json=body, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for index, answer in pool.map(one, [0, 9, 4, 7, 1, 3, 8, 2] * 3):
            if index < 5:
                assert answer.status_code == 200, answer.text
                assert answer.json()["outputs"][0]["data"] == [2.0 * index, 2.0 * index + 1]
            else:
                assert answer.status_code == 400, answer.text
                detail = answer.json()["details"][0]
                assert detail["field"] == "inputs"
                assert "indices element out of data bounds" in detail["reason"]
    request = service_pb2.ModelInferRequest(model_name="lookup")
    request.inputs.add(name="index", datatype="INT64", shape=[1]).contents.int64_contents.append(5)
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.ModelInfer(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "[E:onnxruntime:" not in server.output()  # answered, not logged in its own format


def test_a_model_that_cannot_batch_runs_each_request_whole(server):
    def one(k: int):
        body = {"inputs": [{"name": "a", "datatype": "FP32", "shape": [2, 2], "data": [k] * 4}]}
        answer = httpx.post(f"{server.url}/v2/models/fixed/infer", json=body, timeout=30).json()
        return k, answer["outputs"][0]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for k, output in pool.map(one, range(8)):
            assert output["shape"] == [2, 2]
            assert output["data"] == [k + 1.0] * 4


@pytest.mark.parametrize(
    ("inputs", "field", "reason"),
    [
        ([("x", "FP32", [1, 3], [1, 2, 3]), ("mask", "UINT8", [1, 3], [1, 1, 1])],
         "inputs[0].datatype", "does not match the model input's FP16"),
        ([("x", "FP16", [1, 4], [1, 2, 3, 4]), ("mask", "UINT8", [1, 3], [1, 1, 1])],
         "inputs[0].shape", "does not fit input 'x'"),
        ([("x", "FP16", [1, 3], [1, 2, 3]), ("mask", "UINT8", [1, 3], [1, 256, 1])],
         "inputs[1].data", "beyond UINT8"),
        ([("x", "FP16", [1, 3], [1, 2, 1e6]), ("mask", "UINT8", [1, 3], [1, 1, 1])],
         "inputs[0].data", "beyond FP16"),
        ([("x", "FP16", [1, 3], [1, 2, 3]), ("mask", "UINT8", [1, 3], [1, True, 1])],
         "inputs[1].data", "whole numbers only"),
        ([("x", "FP16", [1, 3], [1, 2, 3])], "inputs", "the model takes the inputs ['x', 'mask']"),
        ([("x", "FP16", [1, 3], [1, 2, 3]), ("mask", "UINT8", [2, 3], [1] * 6)],
         "inputs", "first dimensions (the batch) differ"),
    ],
)  # fmt: skip
def test_bad_tensors_are_named_over_rest_and_grpc(server, inputs, field, reason):
    body = {"inputs": [
        {"name": n, "datatype": d, "shape": s, "data": v} for n, d, s, v in inputs
    ]}  # fmt: skip
    answer = httpx.post(f"{server.url}/v2/models/mixer/infer", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["details"][0]["field"] == field
    assert reason in answer.json()["details"][0]["reason"]
    if field.endswith(".data"):
        return  # values that JSON can carry and raw bytes cannot (out of range, booleans)
    request = service_pb2.ModelInferRequest(model_name="mixer")
    for name, datatype, shape, values in inputs:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
        request.raw_input_contents.append(np.array(values).astype(NUMPY[datatype]).tobytes())
    with grpc.insecure_channel(server.grpc) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.ModelInfer(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details().startswith(field)
    assert reason in error.value.details()


NUMPY = {"FP16": "<f2", "FP32": "<f4", "UINT8": "u1"}


def test_a_graph_that_cannot_be_served_is_named_and_the_others_serve(server):
    assert httpx.get(f"{server.url}/v2/models/boston/ready").status_code == 200
    index = httpx.post(
        f"{server.url}/v2/repository/index", headers={"Authorization": "Bearer secret"}
    ).json()
    broken = {e["version"]: e for e in index if e["name"] == "broken"}
    assert broken["1"]["state"] == "UNAVAILABLE"
    assert "input 'w' is a tensor(bfloat16)" in broken["1"]["reason"]
    assert "cannot be loaded by onnxruntime" in broken["2"]["reason"]
    log = server.output()
    assert "broken/1 is not served" in log
    assert "broken/2 is not served" in log
    assert httpx.get(f"{server.url}/v2/models/broken").status_code == 404


# -- the fuzz: any tensors, over gRPC and V2 JSON, are answered or refused, never INTERNAL/500

DATATYPE_NAMES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                  "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16", ""]  # fmt: skip
TENSOR_MODELS = st.sampled_from(["mixer", "texts", "sums", "fixed", "lookup"])
TENSOR_NAMES = st.sampled_from(["x", "mask", "text", "flag", "seq", "a", "index", "nope"])
SMALL_SHAPES = st.lists(st.integers(-1, 4), max_size=3)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=16,
)  # fmt: skip


SIGNATURES = {
    "mixer": [("x", "FP16", [-1, 3]), ("mask", "UINT8", [-1, 3])],
    "texts": [("text", "BYTES", [-1]), ("flag", "BOOL", [-1])],
    "sums": [("seq", "INT64", [-1, -1])],
    "fixed": [("a", "FP32", [2, 2])],
    "lookup": [("index", "INT64", [-1])],
}


def mostly(draw, right, anything):
    """The right value most of the time (so that the checks behind the first pass), else any."""
    return right if draw(st.integers(0, 4)) < 4 else draw(anything)


@st.composite
def tensor_requests(draw) -> service_pb2.ModelInferRequest:
    model = draw(TENSOR_MODELS)
    request = service_pb2.ModelInferRequest(model_name=model)
    raw = draw(st.booleans())
    signature = draw(st.permutations(SIGNATURES[model]))
    extra = draw(
        st.lists(st.tuples(TENSOR_NAMES, st.sampled_from(DATATYPE_NAMES), SMALL_SHAPES), max_size=1)
    )
    for name, datatype, shape in [*signature, *extra]:
        rows = draw(st.integers(0, 3))
        fitting = [rows if d == -1 else d for d in shape]
        tensor = request.inputs.add(
            name=mostly(draw, name, TENSOR_NAMES),
            datatype=mostly(draw, datatype, st.sampled_from(DATATYPE_NAMES)),
            shape=mostly(draw, fitting, SMALL_SHAPES),
        )
        count = mostly(draw, min(max(math.prod(tensor.shape), 0), 32), st.integers(0, 8))
        if raw:
            request.raw_input_contents.append(draw(st.binary(min_size=count, max_size=count * 8)))
        else:
            field = draw(st.sampled_from(sorted(CONTENTS)))
            values = st.lists(CONTENTS[field], min_size=count, max_size=count)
            getattr(tensor.contents, field).extend(draw(values))
    for name in draw(
        st.lists(st.sampled_from(["scaled", "echo", "total", "b", "nope"]), max_size=2)
    ):
        request.outputs.add(name=name)
    return request


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=tensor_requests())
def test_fuzzed_tensors_over_grpc_are_never_internal(server, request):
    with grpc.insecure_channel(server.grpc) as channel:
        future = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer.future(
            request, timeout=30
        )
        error = future.exception()
    assert error is None or error.code() not in NEVER, request


ELEMENTS = {
    "BOOL": st.booleans(), "BYTES": st.text(max_size=4), "FP16": st.floats(-7e4, 7e4),
    "FP32": st.floats(allow_nan=False, allow_infinity=False), "INT64": st.integers(-(2**64), 2**64),
    "UINT8": st.integers(-1, 256),
}  # fmt: skip


@st.composite
def json_requests(draw) -> tuple[str, dict]:
    model = draw(TENSOR_MODELS)
    inputs = []
    for name, datatype, shape in draw(st.permutations(SIGNATURES[model])):
        rows = draw(st.integers(0, 3))
        shape = mostly(draw, [rows if d == -1 else d for d in shape], SMALL_SHAPES)
        count = min(max(math.prod(shape), 0), 32)
        data = mostly(draw, draw(st.lists(ELEMENTS[datatype], min_size=count, max_size=count)),
                      JSON_VALUES)  # fmt: skip
        inputs.append({
            "name": mostly(draw, name, TENSOR_NAMES),
            "datatype": mostly(draw, datatype, st.sampled_from(DATATYPE_NAMES)),
            "shape": shape,
            "data": data,
        })  # fmt: skip
    return model, {"inputs": inputs}


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=json_requests())
def test_fuzzed_tensors_over_v2_json_are_never_a_500(server, request):
    model, body = request
    answer = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=30)
    assert answer.status_code in (200, 400), (answer.status_code, answer.text)
    if answer.status_code == 400:
        assert answer.json()["details"][0]["field"]
