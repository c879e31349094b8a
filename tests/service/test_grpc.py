"""The Open Inference Protocol over gRPC (`service/api/grpc/`), against a real server on
loopback: NVIDIA's `tritonclient.grpc`, sync and asyncio, unmodified; typed and raw contents;
errors as gRPC status codes naming the field; deadlines; the model repository behind the API
key; `grpc.health.v1`; the shutdown; the setting that turns gRPC off."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from service.api.grpc.messages import DESCRIPTORS
from service.api.grpc.server import MESSAGE_COPIES
from service.dataplane import Call
from tests.service.support import (
    MODEL_NAMES,
    InProcessServer,
    ServerProcess,
    config,
    copy_repository,
    feeds,
    free_port,
    newest,
    ort_predict,
    run_service,
    sample_rows,
    v2_body,
    v2_outputs,
    versions,
    wait_until,
)

grpcclient = pytest.importorskip("tritonclient.grpc")
import tritonclient.grpc.aio as grpcclient_aio  # noqa: E402
from tritonclient.grpc import service_pb2, service_pb2_grpc  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

KEY = "grpc-test-key"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
ADMIN = {"authorization": f"Bearer {KEY}"}
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`python -m service` with gRPC on a free port and the repository API on, on a copy of the
    models (the repository tests unload and load them); yields (HTTP URL, gRPC address)."""
    grpc_port = free_port()
    root = tmp_path_factory.mktemp("grpc")
    process = ServerProcess(
        root,
        copy_repository(root / "models"),
        SERVICE_GRPC_PORT=str(grpc_port),
        SERVICE_ADMIN_API_KEY=KEY,
    ).wait_ready()
    yield process.url, f"127.0.0.1:{grpc_port}"
    code = process.terminate()
    assert code == 0, f"the service exited with {code} after SIGTERM:\n{process.output()}"


@pytest.fixture(scope="module")
def triton(served):
    client = grpcclient.InferenceServerClient(served[1])
    yield client
    client.close()


@pytest.fixture(scope="module")
def stub(served):
    """tritonclient's own generated stub, for requests that its client does not build."""
    with grpc.insecure_channel(served[1]) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def infer_inputs(name: str, rows: np.ndarray, version: int | None = None):
    """tritonclient's inputs (raw_input_contents) of `rows` in the version's form."""
    specs = {spec.name: spec for spec in config(name, version).inputs}
    tensors = []
    for input_name, array in feeds(name, version, rows).items():
        tensor = grpcclient.InferInput(input_name, list(array.shape), specs[input_name].datatype)
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def rest_answer(url: str, name: str, rows: np.ndarray, version: int | None = None) -> np.ndarray:
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
    answer = httpx.post(url + path, json=v2_body(name, rows, version), timeout=30)
    assert answer.status_code == 200, answer.text
    return v2_outputs(answer.json())


def status_of(call) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and message that tritonclient raised (its status is the code's text)."""
    with pytest.raises(InferenceServerException) as error:
        call()
    code = error.value.status().removeprefix("StatusCode.")
    return grpc.StatusCode[code], error.value.message()


# -- health, metadata, inference through tritonclient.grpc


def test_server_live_ready_and_metadata(triton):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    metadata = triton.get_server_metadata(as_json=True)
    assert metadata["name"] == "dlwp-serving"
    assert metadata["extensions"] == ["model_repository", "model_configuration"]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_ready_and_metadata_equal_rest(served, triton, name):
    assert triton.is_model_ready(name)
    for version in versions(name):
        assert triton.is_model_ready(name, str(version))
    assert not triton.is_model_ready(name, str(newest(name) + 100))
    assert not triton.is_model_ready("no-such-model")
    metadata = triton.get_model_metadata(name, as_json=True)
    rest = httpx.get(f"{served[0]}/v2/models/{name}").json()
    for tensor in metadata["inputs"] + metadata["outputs"]:
        tensor["shape"] = [int(d) for d in tensor["shape"]]  # int64 arrives as text in JSON
    assert metadata == {k: rest[k] for k in ("name", "versions", "platform", "inputs", "outputs")}


@pytest.mark.parametrize(("name", "version"), [(n, v) for n in MODEL_NAMES for v in versions(n)])
def test_infer_equals_rest_and_onnxruntime(served, triton, name, version):
    rows = sample_rows(name, version)
    output = config(name, version).outputs[0].name
    result = triton.infer(
        name, infer_inputs(name, rows, version), model_version=str(version), request_id="g-1"
    )
    answer = result.as_numpy(output)
    assert answer.dtype == np.float32
    assert np.array_equal(answer, rest_answer(served[0], name, rows, version))
    assert np.abs(answer - ort_predict(name, version, rows)).max() <= TOLERANCE
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == (name, str(version), "g-1")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_asyncio_client_infers_the_newest_version(served, name):
    rows = sample_rows(name)
    output = config(name).outputs[0].name

    async def run():
        async with grpcclient_aio.InferenceServerClient(served[1]) as client:
            assert await client.is_server_ready()
            assert await client.is_model_ready(name)
            requested = [grpcclient.InferRequestedOutput(output)]
            results = await asyncio.gather(
                *(client.infer(name, infer_inputs(name, rows), outputs=requested) for _ in range(8))
            )
        return [r.as_numpy(output) for r in results], results[0].get_response().model_version

    answers, version = asyncio.run(run())
    assert version == str(newest(name))
    expected = rest_answer(served[0], name, rows)
    assert all(np.array_equal(a, expected) for a in answers)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_typed_contents_are_answered_in_typed_contents(served, stub, name):
    rows = sample_rows(name)
    specs, output = {s.name: s for s in config(name).inputs}, config(name).outputs[0]
    request = service_pb2.ModelInferRequest(model_name=name)
    for input_name, array in feeds(name, None, rows).items():
        datatype = specs[input_name].datatype
        tensor = request.inputs.add(name=input_name, datatype=datatype, shape=array.shape)
        contents = {"FP32": "fp32_contents", "INT64": "int64_contents"}[datatype]
        getattr(tensor.contents, contents).extend(array.ravel().tolist())
    response = stub.ModelInfer(request)
    assert not response.raw_output_contents
    (out,) = response.outputs
    assert (out.name, out.datatype) == (output.name, output.datatype)
    answer = np.array(out.contents.fp32_contents, np.float32).reshape(out.shape)
    assert np.array_equal(answer, rest_answer(served[0], name, rows))


# -- errors: gRPC status codes, the message naming the field


def boston_request(**changes) -> service_pb2.ModelInferRequest:
    rows = sample_rows("boston")
    request = service_pb2.ModelInferRequest(model_name="boston")
    request.inputs.add(name="features", datatype="FP32", shape=rows.shape)
    request.raw_input_contents.append(rows.tobytes())
    for path, value in changes.items():
        target, _, field = path.rpartition("__")
        message = request.inputs[0] if target == "input" else request
        if isinstance(value, list | tuple):
            del getattr(message, field)[:]
            getattr(message, field).extend(value)
        else:
            setattr(message, field, value)
    return request


@pytest.mark.parametrize(
    ("request_changes", "code", "message"),
    [
        ({"input__name": "nope"}, "INVALID_ARGUMENT", "inputs: the model takes one input named"),
        ({"input__shape": [3, 12]}, "INVALID_ARGUMENT", "inputs[0]: expected shape [N, 13]"),
        ({"input__shape": [39]}, "INVALID_ARGUMENT", "inputs[0].shape: expected a 2-d shape"),
        ({"input__datatype": "FP64"}, "INVALID_ARGUMENT", "inputs[0].datatype: datatype FP64"),
        ({"raw_input_contents": [b"\0" * 20]}, "INVALID_ARGUMENT",
         "raw_input_contents[0]: holds 20 bytes; input 'features' of shape [3, 13] and datatype "
         "FP32 needs 156"),
        ({"model_name": "nope"}, "NOT_FOUND", "model: model 'nope' is not loaded"),
        ({"model_version": "7"}, "NOT_FOUND", "version: model 'boston' has no version 7"),
    ],
)  # fmt: skip
def test_bad_requests_get_their_status_naming_the_field(stub, request_changes, code, message):
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(boston_request(**request_changes))
    assert error.value.code() == getattr(grpc.StatusCode, code)
    assert error.value.details().startswith(message), error.value.details()


def test_typed_contents_of_the_wrong_size_or_kind_are_invalid(stub):
    request = boston_request(raw_input_contents=[])
    request.inputs[0].contents.fp32_contents.extend([0.5] * 38)
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == (
        "inputs[0].contents: fp32_contents holds 38 values, shape [3, 13] needs 39"
    )
    request.inputs[0].contents.Clear()
    request.inputs[0].contents.int_contents.extend([1] * 39)
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(request)
    assert error.value.details() == (
        "inputs[0].contents: FP32 data goes in fp32_contents, got ['int_contents']"
    )


def test_nan_and_a_message_over_the_body_limit(triton):
    code, message = status_of(
        lambda: triton.infer("boston", infer_inputs("boston", np.full((1, 13), np.nan)))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith("inputs[0]: contains NaN")
    huge = np.zeros((9 * 1024 * 1024 // 52, 13), np.float32)  # over the 8 MiB default
    code, message = status_of(lambda: triton.infer("boston", infer_inputs("boston", huge)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, message


def test_rpcs_the_service_cannot_honour_are_unimplemented(triton):
    code, _ = status_of(triton.get_inference_statistics)
    assert code == grpc.StatusCode.UNIMPLEMENTED
    code, _ = status_of(lambda: triton.get_model_config("boston"))
    assert code == grpc.StatusCode.UNIMPLEMENTED


# -- the model repository, behind the API key


def test_repository_index_unload_and_load_with_the_key(served, triton, stub):
    def index(**options) -> set[tuple[str, str, str]]:
        entries = triton.get_model_repository_index(headers=ADMIN, as_json=True)["models"]
        return {(m["name"], m["version"], m["state"]) for m in entries}

    everything = {(n, str(v)) for n in MODEL_NAMES for v in versions(n)}
    assert index() == {(n, v, "READY") for n, v in everything}
    triton.unload_model("imdb", headers=ADMIN)
    assert not triton.is_model_ready("imdb")
    code, _ = status_of(lambda: triton.infer("imdb", infer_inputs("imdb", sample_rows("imdb"))))
    assert code == grpc.StatusCode.NOT_FOUND
    assert index() == {(n, v, "UNAVAILABLE" if n == "imdb" else "READY") for n, v in everything}
    ready = stub.RepositoryIndex(
        service_pb2.RepositoryIndexRequest(ready=True), metadata=tuple(ADMIN.items())
    )
    assert {(m.name, m.version) for m in ready.models} == {
        (n, v) for n, v in everything if n != "imdb"
    }
    rest = httpx.post(f"{served[0]}/v2/repository/index", headers=ADMIN).json()
    assert {(m["name"], m["version"], m["state"]) for m in rest} == index()
    triton.load_model("imdb", headers=ADMIN)
    assert triton.is_model_ready("imdb")
    assert index() == {(n, v, "READY") for n, v in everything}


@pytest.mark.parametrize(
    "headers", [None, {"authorization": "Bearer wrong"}, {"authorization": KEY}]
)
def test_the_repository_without_the_right_key_is_unauthenticated(triton, headers):
    for call in (
        lambda: triton.get_model_repository_index(headers=headers),
        lambda: triton.load_model("boston", headers=headers),
        lambda: triton.unload_model("boston", headers=headers),
    ):
        code, message = status_of(call)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert message == "authorization: missing or wrong API key"
    assert triton.is_model_ready("boston")


# -- in process: held inference, deadlines, health and shutdown


def grpc_server(**overrides) -> tuple[InProcessServer, str]:
    port = free_port()
    return InProcessServer(grpc_port=port, **overrides), f"127.0.0.1:{port}"


def test_the_repository_is_off_without_a_key_permission_denied():
    server, address = grpc_server()
    with server, grpcclient.InferenceServerClient(address) as client:
        code, message = status_of(lambda: client.get_model_repository_index(headers=ADMIN))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert "SERVICE_ADMIN_API_KEY" in message


def test_an_expired_client_deadline_is_deadline_exceeded_and_never_run():
    server, address = grpc_server()
    with server, grpcclient.InferenceServerClient(address) as client:
        server.hold()
        rows = sample_rows("boston")
        running = threading.Thread(
            target=client.infer, args=("boston", infer_inputs("boston", rows[:1]))
        )
        running.start()
        assert server.entered.wait(10), "the first request never reached the model"
        started = time.monotonic()
        code, _ = status_of(
            lambda: client.infer("boston", infer_inputs("boston", rows[:2]), client_timeout=1)
        )
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        # The server's own deadline (parameters.timeout, microseconds) is answered by the server.
        code, message = status_of(
            lambda: client.infer("boston", infer_inputs("boston", rows), timeout=1_000_000)
        )
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "deadline passed" in message
        assert time.monotonic() - started < 6
        server.release()
        running.join(10)
        time.sleep(0.1)
        assert server.ran == [("boston", 1)]  # the 2 and 3 rows never reached the model
        wait_until(
            lambda: server.metric("service_dropped_requests_total", reason="deadline") == 2,
            "both drops to be counted",
        )
        assert server.metric(
            "service_requests_total",
            endpoint="/inference.GRPCInferenceService/ModelInfer",
            status="DEADLINE_EXCEEDED",
        ) == 2  # fmt: skip


def test_an_unexpected_error_is_one_internal_logged_once(capfd):
    server, address = grpc_server()
    with server, grpcclient.InferenceServerClient(address) as client:

        def explode(batch):
            raise RuntimeError("the model exploded")

        for loaded in server.dataplane.registry.models["boston"].values():
            loaded.batcher._run = explode
        code, message = status_of(
            lambda: client.infer("boston", infer_inputs("boston", sample_rows("boston")))
        )
        assert code == grpc.StatusCode.INTERNAL
        assert message == "internal error; see the service log"
        assert client.is_server_ready()
    log = capfd.readouterr().err
    assert log.count("unhandled error in gRPC ModelInfer") == 1, log
    assert log.count("RuntimeError: the model exploded") == 1, log


def test_a_call_holds_request_memory_and_waits_for_it():
    """The message and its copies count in the request memory (SERVICE_REQUEST_MEMORY_BYTES)
    while the call lasts, as an HTTP body does; a call that cannot get it is answered at its
    deadline, its message never read."""
    server, address = grpc_server(request_timeout_s=0.5)
    rows = sample_rows("boston")
    with server, grpcclient.InferenceServerClient(address) as client:
        server.hold()
        running = threading.Thread(
            target=client.infer, args=("boston", infer_inputs("boston", rows))
        )
        running.start()
        assert server.entered.wait(10), "the call never reached the model"
        message = service_pb2.ModelInferRequest(model_name="boston")
        message.inputs.add(name="features", datatype="FP32", shape=list(rows.shape))
        message.raw_input_contents.append(rows.astype(np.float32).tobytes())
        assert server.dataplane.memory.used == MESSAGE_COPIES * message.ByteSize()
        server.release()
        running.join(10)
        wait_until(lambda: server.dataplane.memory.used == 0, "the memory to be given back")

        hog = Call(time.monotonic(), 3600)  # holds all the memory for longer than the test
        limit = server.dataplane.memory.limit
        server.in_loop(lambda: server.dataplane.memory.grow(hog, limit))
        started = time.monotonic()
        code, message = status_of(lambda: client.infer("boston", infer_inputs("boston", rows)))
        assert code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "deadline" in message
        assert 0.4 < time.monotonic() - started < 5
        server.in_loop(lambda: server.dataplane.memory.release(hog))
        assert client.infer("boston", infer_inputs("boston", rows)).as_numpy("price") is not None


def test_calls_are_traced_and_probes_are_not():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server, address = grpc_server(tracer_provider=provider)
    rows = sample_rows("boston")
    with server, grpcclient.InferenceServerClient(address) as client:
        assert client.is_server_live()
        assert client.is_model_ready("boston")
        assert exporter.get_finished_spans() == ()
        with grpc.insecure_channel(address) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            message = service_pb2.ModelInferRequest(model_name="boston")
            message.inputs.add(name="features", datatype="FP32", shape=list(rows.shape))
            message.raw_input_contents.append(rows.astype(np.float32).tobytes())
            _, answer = stub.ModelInfer.with_call(message, metadata=[("traceparent", TRACEPARENT)])
            code, _ = status_of(lambda: client.infer("nope", infer_inputs("boston", rows)))
            assert code == grpc.StatusCode.NOT_FOUND
    spans = {}
    for span in exporter.get_finished_spans():
        spans.setdefault(span.name, []).append(span)
    served, refused = spans["inference.GRPCInferenceService/ModelInfer"]
    assert served.kind == SpanKind.SERVER
    assert f"{served.context.trace_id:032x}" == TRACE_ID
    assert served.parent.is_remote
    assert served.attributes["rpc.grpc.status_code"] == 0
    assert served.attributes["model.name"] == "boston"
    assert served.attributes["model.version"] == str(newest("boston"))
    for child in ("queue", "inference"):
        (span,) = spans[child]
        assert span.parent.span_id == served.context.span_id
    # The trace goes back out in the answer's initial metadata.
    assert dict(answer.initial_metadata())["traceparent"].split("-")[1] == TRACE_ID
    # A client's mistake is not the server's error.
    assert refused.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert refused.status.status_code == StatusCode.UNSET


def health_check(address: str, service: str = "") -> str:
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5
            )
        except grpc.RpcError as error:
            return error.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def test_health_serving_then_shutdown_answers_what_it_admitted():
    """The shutdown (what SIGTERM does) begins for gRPC when it begins for HTTP, while an HTTP
    request still holds the server: a health watcher hears NOT_SERVING, new RPCs are refused
    (UNAVAILABLE), and the RPCs and the HTTP request in flight are answered."""
    server, address = grpc_server()
    with server, grpc.insecure_channel(address) as channel:
        assert health_check(address) == "SERVING"
        assert health_check(address, "inference.GRPCInferenceService") == "SERVING"
        assert health_check(address, "nope") == "NOT_FOUND"
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        client = grpcclient.InferenceServerClient(address)
        rows = sample_rows("boston")
        server.hold()
        results: list = [None] * 5

        def one_rpc(i: int) -> None:
            results[i] = client.infer("boston", infer_inputs("boston", rows[: i % 3 + 1]))

        def one_http() -> None:
            results[4] = httpx.post(
                f"{server.url}/v2/models/boston/infer", json=v2_body("boston", rows), timeout=30
            )

        in_flight = [threading.Thread(target=one_rpc, args=(i,)) for i in range(4)]
        in_flight.append(threading.Thread(target=one_http))
        # one runs (held) before the others are sent, so that none joins its batch; four queue
        in_flight[0].start()
        assert server.entered.wait(10), "the first RPC never reached the model"
        for thread in in_flight[1:]:
            thread.start()
        wait_until(lambda: server.metric("service_queue_depth") == 4, "the requests to arrive")
        server.begin_shutdown()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert not server.dataplane.ready
        code, _ = status_of(client.is_server_live)
        assert code == grpc.StatusCode.UNAVAILABLE
        assert health_check(address) in ("NOT_SERVING", "UNAVAILABLE")
        server.release()
        for thread in in_flight:
            thread.join(10)
        for i, result in enumerate(results[:4]):
            assert result is not None, f"RPC {i} was not answered"
            expected = ort_predict("boston", newest("boston"), rows[: i % 3 + 1])
            assert np.abs(result.as_numpy("price") - expected).max() <= TOLERANCE
        assert results[4].status_code == 200, results[4].text
        client.close()


# -- the setting, the port, the workers


def listening_ports(pid: int) -> set[int]:
    """The TCP ports that process `pid` listens on (from /proc); none once it has exited."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except FileNotFoundError:  # closed since the directory was listed
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        tables = [Path(f"/proc/{pid}/net/{table}").read_text() for table in ("tcp", "tcp6")]
    except FileNotFoundError:  # the process has exited
        return set()
    ports = set()
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.parametrize("grpc_on", [True, False])
def test_the_grpc_port_is_on_or_off_as_the_setting_says(tmp_path, grpc_on):
    grpc_port = free_port() if grpc_on else 0
    process = ServerProcess(tmp_path, SERVICE_GRPC_PORT=str(grpc_port)).wait_ready()
    try:
        expected = {process.port, grpc_port} if grpc_on else {process.port}
        assert listening_ports(process.process.pid) == expected
        assert ("gRPC listening" in process.output()) == grpc_on
    finally:
        assert process.terminate() == 0, process.output()


def test_one_worker_refuses_a_grpc_port_that_another_process_holds(tmp_path):
    """SO_REUSEPORT is only for the service's own workers: a lone worker must not silently share
    its port with whatever else listens there."""
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        code, output = run_service(
            copy_repository(tmp_path / "models", ["boston"]), SERVICE_GRPC_PORT=str(port)
        )
    assert code != 0, output
    assert str(port) in output, output


@pytest.mark.slow
def test_workers_share_the_grpc_port(tmp_path):
    grpc_port = free_port()
    process = ServerProcess(
        tmp_path, SERVICE_GRPC_PORT=str(grpc_port), SERVICE_WORKERS="2"
    ).wait_ready()
    try:
        pid = process.process.pid

        def workers_listening() -> int:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            return sum(grpc_port in listening_ports(int(child)) for child in children)

        wait_until(lambda: workers_listening() == 2, "both workers to listen", timeout=60)
        rows = sample_rows("boston")
        expected = ort_predict("boston", newest("boston"), rows)
        for _ in range(20):  # new connections, spread by the kernel among the workers
            with grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}") as client:
                answer = client.infer("boston", infer_inputs("boston", rows)).as_numpy("price")
            assert np.abs(answer - expected).max() <= TOLERANCE
    finally:
        assert process.terminate() == 0, process.output()


def test_the_committed_descriptor_set_is_compiled_from_the_proto(tmp_path):
    compiled = tmp_path / "compiled.binpb"
    result = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{DESCRIPTORS.parent}",
         f"--descriptor_set_out={compiled}", "grpc_predict_v2.proto"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert compiled.read_bytes() == DESCRIPTORS.read_bytes(), (
        "service/api/grpc/proto/grpc_predict_v2.binpb is stale; regenerate it with the command at the "
        "top of grpc_predict_v2.proto"
    )
