"""What a hostile or careless gRPC client sends, against a real server on loopback through a real
channel: the largest legal messages many at once (held to the memory budget before they are read),
versions and timeouts no strict parser reads, a SIGTERM with calls in flight, and a fuzz of
ModelInfer over sizes, shapes, datatypes and parameters of every kind. Every call is answered with
its documented status, never INTERNAL or UNKNOWN; the service stays up."""

from __future__ import annotations

import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadtest.scenarios.memory import peak_and_current, reset_peak
from service.datatypes import DATATYPES
from tests.service.support import ServerProcess, free_port, wait_until

pytest.importorskip("tritonclient.grpc")
from tritonclient.grpc import service_pb2, service_pb2_grpc

IMDB_DENSE, IMDB_WIDTH = "2", 50_000  # IMDB v2's input: [n, 50000] FP32, the widest rows
LARGEST_IMDB_ROWS = 41  # 8.2 MB of raw contents: the largest under the 8 MiB default
INFER = "/inference.GRPCInferenceService/ModelInfer"
MEMORY_CEILING_MIB = 400
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def grpc_service(log_dir: Path, **env: str) -> tuple[ServerProcess, str]:
    port = free_port()
    process = ServerProcess(log_dir, SERVICE_GRPC_PORT=str(port), **env).wait_ready()
    return process, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    process, address = grpc_service(tmp_path_factory.mktemp("hostile-grpc"))
    yield process, address
    assert process.terminate() == 0, process.output()


@pytest.fixture(scope="module")
def stub(served):
    with grpc.insecure_channel(served[1]) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def imdb_message(rows: int) -> bytes:
    batch = np.zeros((rows, IMDB_WIDTH), np.float32)
    batch[:, ::97] = 1.0
    request = service_pb2.ModelInferRequest(model_name="imdb", model_version=IMDB_DENSE)
    request.inputs.add(name="encoded_text", datatype="FP32", shape=batch.shape)
    request.raw_input_contents.append(batch.tobytes())
    return request.SerializeToString()


def raw_calls(address: str, message: bytes, clients: int) -> list[grpc.StatusCode]:
    """`clients` calls of `message` at once over one channel; their status codes."""
    options = [("grpc.max_send_message_length", 2 * len(message))]
    with grpc.insecure_channel(address, options=options) as channel:
        call = channel.unary_unary(INFER)
        futures = [call.future(message, timeout=300) for _ in range(clients)]
        return [f.exception().code() if f.exception() else grpc.StatusCode.OK for f in futures]


def test_many_of_the_largest_messages_wait_for_memory_before_they_are_read(served):
    """40 calls of 8.2 MB at once: grpcio would read and parse all of them (1.4 GB for 100) before
    any handler ran; admitted first, the worker stays under the ceiling and answers every one."""
    process, address = served
    assert imdb_message(LARGEST_IMDB_ROWS).__len__() <= 8 * 1024 * 1024
    reset_peak(process.process.pid)
    statuses = raw_calls(address, imdb_message(LARGEST_IMDB_ROWS), 40)
    assert statuses == [grpc.StatusCode.OK] * 40, statuses
    peak, _ = peak_and_current(process.process.pid)
    assert peak < MEMORY_CEILING_MIB


def model_infer(stub, request) -> grpc.StatusCode:
    try:
        stub.ModelInfer(request, timeout=60)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def boston_request(version: str = "", **parameters) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="boston", model_version=version)
    request.inputs.add(name="features", datatype="FP32", shape=[1, 13])
    request.raw_input_contents.append(np.ones((1, 13), np.float32).tobytes())
    for name, fields in parameters.items():
        request.parameters[name].CopyFrom(service_pb2.InferParameter(**fields))
    return request


@pytest.mark.parametrize(
    ("timeout", "code"),
    [
        ({"uint64_param": 10_000_000}, grpc.StatusCode.OK),  # Triton's client may send this
        ({"int64_param": 10_000_000}, grpc.StatusCode.OK),
        ({}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"int64_param": -1}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"double_param": 1.5}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"bool_param": True}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"string_param": "10"}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["uint64", "int64", "empty", "negative", "double", "bool", "string"],
)
def test_the_timeout_parameter_of_every_kind(stub, timeout, code):
    assert model_infer(stub, boston_request(timeout=timeout)) == code


@pytest.mark.parametrize("version", ["\u0661", "1_0", "-1", "01", "+1", " 1", "1 ", "\u00b2"])
def test_a_version_that_is_not_ascii_digits_is_invalid(stub, version):
    assert model_infer(stub, boston_request(version)) == grpc.StatusCode.INVALID_ARGUMENT
    for rpc, message in (
        (stub.ModelReady, service_pb2.ModelReadyRequest),
        (stub.ModelMetadata, service_pb2.ModelMetadataRequest),
    ):
        with pytest.raises(grpc.RpcError) as error:
            rpc(message(name="boston", version=version))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, version
        assert error.value.details().startswith("version: "), error.value.details()


def test_sigterm_answers_the_calls_in_flight_and_refuses_new_ones(tmp_path):
    """64 calls of 4 MB under way, most waiting for memory with their message unread, when
    SIGTERM comes: each call the server had taken up is answered OK, one it had not yet taken up
    is refused UNAVAILABLE (which clients retry) as a call made after the signal is; none is
    CANCELLED or reset; then the service exits 0."""
    process, address = grpc_service(tmp_path)
    message = imdb_message(20)
    try:
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(raw_calls, address, message, 64)
            time.sleep(1)  # orders events only: the calls have begun
            process.process.send_signal(signal.SIGTERM)
            wait_until(lambda: "draining" in process.output(), "the drain to begin")
            late = raw_calls(address, imdb_message(1), 1)
            statuses = Counter(in_flight.result(120))
        code = process.terminate(timeout=60)
    finally:
        process.kill()
    assert set(statuses) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, statuses
    assert statuses[grpc.StatusCode.OK] >= 32, statuses
    assert late == [grpc.StatusCode.UNAVAILABLE], late
    assert code == 0, process.output()


# -- the fuzz: any message tritonclient's proto can carry

NAMES = st.sampled_from(["boston", "imdb", "reuters", "nope", ""])
SHAPES = st.lists(st.integers(-2, 2**40), max_size=4) | st.lists(st.integers(0, 60), max_size=3)
PARAMETER = st.one_of(
    st.builds(dict),
    st.builds(lambda v: {"bool_param": v}, st.booleans()),
    st.builds(lambda v: {"int64_param": v}, st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: {"uint64_param": v}, st.integers(0, 2**64 - 1)),
    st.builds(lambda v: {"double_param": v}, st.floats(allow_nan=True)),
    st.builds(lambda v: {"string_param": v}, st.text(max_size=20)),
)
CONTENTS = {
    "bool_contents": st.booleans(),
    "int_contents": st.integers(-(2**31), 2**31 - 1),
    "int64_contents": st.integers(-(2**63), 2**63 - 1),
    "uint_contents": st.integers(0, 2**32 - 1),
    "uint64_contents": st.integers(0, 2**64 - 1),
    "fp32_contents": st.floats(width=32),
    "fp64_contents": st.floats(),
    "bytes_contents": st.binary(max_size=8),
}


@st.composite
def infer_requests(draw) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(
        model_name=draw(NAMES), model_version=draw(st.sampled_from(["", "1", "2", "9", "x"]))
    )
    for name, fields in draw(st.dictionaries(st.sampled_from(["timeout", "x"]), PARAMETER)).items():
        request.parameters[name].CopyFrom(service_pb2.InferParameter(**fields))
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 2))):
        tensor = request.inputs.add(
            name=draw(st.sampled_from(["features", "encoded_text", "x", ""])),
            datatype=draw(st.sampled_from([*DATATYPES, "BYTES", "BF16", "fp32", ""])),
            shape=draw(SHAPES),
        )
        for name, fields in draw(st.dictionaries(st.just("binary_data_size"), PARAMETER)).items():
            tensor.parameters[name].CopyFrom(service_pb2.InferParameter(**fields))
        if raw:
            request.raw_input_contents.append(draw(st.binary(max_size=2048)))
        else:
            field = draw(st.sampled_from(sorted(CONTENTS)))
            getattr(tensor.contents, field).extend(draw(st.lists(CONTENTS[field], max_size=64)))
    for name in draw(
        st.lists(st.sampled_from(["price", "probability", "probabilities", "x"]), max_size=2)
    ):
        request.outputs.add(name=name)
    return request


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=infer_requests())
def test_fuzzed_model_infer_is_never_internal(stub, request):
    code = model_infer(stub, request)
    assert code not in NEVER, request


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(message=st.binary(max_size=256))
def test_bytes_that_are_not_a_message_are_invalid_or_served(served, message):
    with grpc.insecure_channel(served[1]) as channel:
        future = channel.unary_unary(INFER).future(message, timeout=30)
        error = future.exception()
    assert error is None or error.code() not in NEVER, message
