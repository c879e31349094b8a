"""Open Inference Protocol (KServe V2) over gRPC, with Triton's model-repository extension and the
standard health service (`grpc.health.v1`), on `SERVICE_GRPC_PORT` in the same process as HTTP.

The service is `inference.GRPCInferenceService`, the name KServe's proto and Triton's share, so
`tritonclient.grpc` works unmodified. Its messages are built from the descriptor set compiled
from `proto/grpc_predict_v2.proto` (see that file for the command), into a descriptor pool of
their own: tritonclient and other KServe servers register the same `inference.*` names in
protobuf's default pool, and two sets of them cannot live in one process there.

Each RPC only translates: a `Call` through the data plane (its deadline the client's, when that
is sooner), the model leased, the tensor checked and converted, `DataPlane.infer`, and errors
answered with the gRPC status of their kind and the message "<field>: <reason>". RPCs the
service cannot honour (streaming, shared memory, statistics, trace, logging) are not
registered, so gRPC answers them UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service import __version__, tracing
from service.api import tensors
from service.api.admin import check_admin_key
from service.api.v2 import apply_timeout, check_tensors
from service.dataplane import Call, DataPlane, deadline_error
from service.errors import BadInputError, Kind, NotFoundError, ServiceError

log = logging.getLogger(__name__)

DESCRIPTORS = Path(__file__).parent / "proto" / "grpc_predict_v2.binpb"
SERVICE_NAME = "inference.GRPCInferenceService"
# gRPC's deadline timer fires up to about a millisecond before time.monotonic() reaches the same
# deadline: a cancellation this close to it is the deadline's, not a client that left.
DEADLINE_SLACK_S = 0.01

STATUS: dict[Kind, grpc.StatusCode] = {
    Kind.BAD_INPUT: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Kind.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    Kind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Kind.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Kind.UNSUPPORTED_MEDIA_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.LOAD_FAILED: grpc.StatusCode.INVALID_ARGUMENT,  # as Triton answers a failed load
    Kind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Kind.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
}
# The probes: frequent, and nothing to trace (as the HTTP health routes).
UNTRACED = ("ServerLive", "ServerReady", "ModelReady")
# The statuses that mark a call's span as an error: the server's fault, as OpenTelemetry's gRPC
# conventions count them (a client's bad input is not).
SERVER_FAULTS = {
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DATA_LOSS,
}
# The datatypes a model config may name, and the typed-contents field that holds each.
CONTENTS_FIELDS = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
}


def _service_descriptor():
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTORS.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool.FindServiceByName(SERVICE_NAME)


SERVICE = _service_descriptor()
# The proto's messages by name, e.g. `messages.ModelInferRequest`.
messages = SimpleNamespace(
    **{
        name: message_factory.GetMessageClass(message)
        for name, message in SERVICE.file.message_types_by_name.items()
    }
)


def rpc(handler: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
    """One RPC's passage through the data plane: its `Call` (the server's deadline, or the
    client's where sooner), metrics, and every error answered with its gRPC status."""

    @functools.wraps(handler)
    async def run(self: InferenceServicer, request, context: grpc.aio.ServicerContext):
        plane = self.dataplane
        started = time.perf_counter()
        call = plane.begin()
        remaining = context.time_remaining()
        if remaining is not None:
            call.shorten(remaining)
        status, message = grpc.StatusCode.INTERNAL, "internal error; see the service log"
        span = None
        if plane.tracer is not None and handler.__name__ not in UNTRACED:
            metadata = context.invocation_metadata()
            span, token = tracing.start_rpc(plane.tracer, SERVICE_NAME, handler.__name__, metadata)
            await context.send_initial_metadata(tracing.response_metadata(span))
        try:
            answer = await handler(self, call, request, context)
            status = grpc.StatusCode.OK
            return answer
        except ServiceError as error:
            status, message = _status(error)
        except asyncio.CancelledError:
            if call.reason is None:  # gRPC's doing: the client left, or its deadline passed
                expired = time.monotonic() >= call.deadline - DEADLINE_SLACK_S
                call.reason = "deadline" if expired else "disconnected"
                status = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
                raise
            asyncio.current_task().uncancel()  # the data plane's: deadline or shutdown
            status, message = _status(deadline_error(call))
        except Exception:
            log.exception("unhandled error in %s", handler.__name__)
        finally:
            plane.end(call)
            self._observe(handler.__name__, call, status, time.perf_counter() - started)
            if span is not None:
                failed = status in SERVER_FAULTS
                tracing.end_rpc(span, token, status.value[0], failed, call.model)
        await context.abort(status, message)

    return run


def _status(error: ServiceError) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and message of an error: "<field>: <reason>", as the REST answers'."""
    message = f"{error.field}: {error.reason}" if error.field else error.reason
    return STATUS[error.kind], message


class InferenceServicer:
    """`inference.GRPCInferenceService`: each method the RPC of the same name."""

    def __init__(self, dataplane: DataPlane):
        self.dataplane = dataplane
        self.settings = dataplane.settings

    def _observe(self, method: str, call: Call, status: grpc.StatusCode, seconds: float) -> None:
        endpoint = f"/{SERVICE_NAME}/{method}"
        model = call.model
        name, version = (model.name, str(model.version)) if model else ("", "")
        metrics = self.dataplane.metrics
        metrics.request(endpoint, name, version, status.name, seconds)
        if self.settings.access_log:
            model_text = f"{name}/{version}" if model else "-"
            log.info("gRPC %s %s %s %.1f ms", method, status.name, model_text, seconds * 1000)

    # -- health and metadata

    @rpc
    async def ServerLive(self, call: Call, request, context):
        return messages.ServerLiveResponse(live=True)

    @rpc
    async def ServerReady(self, call: Call, request, context):
        return messages.ServerReadyResponse(ready=self.dataplane.ready)

    @rpc
    async def ModelReady(self, call: Call, request, context):
        try:
            self.dataplane.lease(call, request.name, request.version)
        except NotFoundError:
            return messages.ModelReadyResponse(ready=False)
        return messages.ModelReadyResponse(ready=True)

    @rpc
    async def ServerMetadata(self, call: Call, request, context):
        return messages.ServerMetadataResponse(
            name="dlwp-serving", version=__version__, extensions=["model_repository"]
        )

    @rpc
    async def ModelMetadata(self, call: Call, request, context):
        model = self.dataplane.lease(call, request.name, request.version)
        config = model.config
        tensor = messages.ModelMetadataResponse.TensorMetadata
        return messages.ModelMetadataResponse(
            name=config.name,
            versions=[str(v) for v in sorted(self.dataplane.registry.models[config.name])],
            platform=config.platform,
            inputs=[tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in config.inputs],
            outputs=[
                tensor(name=s.name, datatype=s.datatype, shape=s.shape) for s in config.outputs
            ],
        )

    # -- inference

    @rpc
    async def ModelInfer(self, call: Call, request, context):
        plane = self.dataplane
        model = plane.lease(call, request.model_name, request.model_version)
        if "timeout" in request.parameters:
            parameter = request.parameters["timeout"]
            choice = parameter.WhichOneof("parameter_choice")
            if choice is None:
                raise BadInputError("the timeout parameter holds no value", "parameters.timeout")
            apply_timeout(call, getattr(parameter, choice))
        check_tensors(
            model,
            [(i.name, i.datatype) for i in request.inputs],
            [o.name for o in request.outputs],
        )
        tensor = request.inputs[0]
        shape = list(tensor.shape)
        plane.check_shape(model, shape, "inputs[0].shape", "inputs[0]")
        raw = bool(request.raw_input_contents)
        # Counted in the request memory as HTTP bodies are, for as long as the call holds it: the
        # message that gRPC has parsed, and its rows (typed contents pass through Python numbers).
        await plane.memory.reserve(call, request.ByteSize() * 4)
        rows = (_raw_rows if raw else _typed_rows)(request, shape)
        result = await plane.infer(call, model, rows, "inputs[0]")
        output = model.config.outputs[0]
        answer = messages.ModelInferResponse(
            model_name=model.name, model_version=str(model.version), id=request.id
        )
        tensor = answer.outputs.add(name=output.name, datatype=output.datatype, shape=result.shape)
        # Answered in the form asked in: raw contents (as tritonclient sends) or typed ones.
        if raw:
            answer.raw_output_contents.append(tensors.to_bytes(result, output.datatype))
        else:
            getattr(tensor.contents, CONTENTS_FIELDS[output.datatype]).extend(
                result.ravel().tolist()
            )
        return answer

    # -- the model repository (Triton's extension), behind SERVICE_ADMIN_API_KEY

    def _require_admin(self, context: grpc.aio.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata() or ())
        check_admin_key(self.settings.admin_api_key, metadata.get("authorization", ""))

    @rpc
    async def RepositoryIndex(self, call: Call, request, context):
        self._require_admin(context)
        entries = self.dataplane.registry.index()
        if request.ready:
            entries = [e for e in entries if e["state"] == "READY"]
        return messages.RepositoryIndexResponse(
            models=[messages.RepositoryIndexResponse.ModelIndex(**entry) for entry in entries]
        )

    @rpc
    async def RepositoryModelLoad(self, call: Call, request, context):
        self._require_admin(context)
        await self.dataplane.registry.load(request.model_name)
        return messages.RepositoryModelLoadResponse()

    @rpc
    async def RepositoryModelUnload(self, call: Call, request, context):
        self._require_admin(context)
        await self.dataplane.registry.unload(request.model_name)
        return messages.RepositoryModelUnloadResponse()


def _raw_rows(request, shape: list[int]) -> np.ndarray:
    """The input from `raw_input_contents`: little-endian bytes, row-major."""
    tensor = request.inputs[0]
    if len(request.raw_input_contents) != 1 or tensor.HasField("contents"):
        raise BadInputError(
            "send the input's data either in raw_input_contents (one entry per input) or in "
            "inputs[0].contents, not both",
            "raw_input_contents",
        )
    return tensors.from_bytes(
        request.raw_input_contents[0], tensor.name, tensor.datatype, shape, "raw_input_contents[0]"
    )


def _typed_rows(request, shape: list[int]) -> np.ndarray:
    """The input from `inputs[0].contents`, in the field of its datatype."""
    tensor = request.inputs[0]
    field = CONTENTS_FIELDS[tensor.datatype]
    others = [f.name for f, _ in tensor.contents.ListFields() if f.name != field]
    if others:
        raise BadInputError(
            f"{tensor.datatype} data goes in {field}, got {others}", "inputs[0].contents"
        )
    values = getattr(tensor.contents, field)
    if len(values) != math.prod(shape):
        raise BadInputError(
            f"{field} holds {len(values)} values, shape {shape} needs {math.prod(shape)}",
            "inputs[0].contents",
        )
    return np.array(values, tensors.DATATYPES[tensor.datatype]).reshape(shape)


class GrpcServer:
    """The gRPC listener of one worker process: started once the models are loaded, and
    stopping as soon as the data plane begins to drain (SIGTERM), like the HTTP listener: new
    RPCs are refused and health turns NOT_SERVING, RPCs in flight are answered (those left when
    the drain time is over: UNAVAILABLE, by the data plane)."""

    def __init__(self, dataplane: DataPlane):
        self.dataplane = dataplane
        self.health = health.aio.HealthServicer()
        self._stopping: asyncio.Task | None = None
        settings = dataplane.settings
        self.server = grpc.aio.server(
            options=[
                # A larger message is refused by gRPC, RESOURCE_EXHAUSTED, before it is parsed.
                ("grpc.max_receive_message_length", settings.max_body_bytes),
                # Worker processes share the port (the kernel spreads connections among them);
                # a single worker fails to start where another process holds it.
                ("grpc.so_reuseport", int(settings.workers > 1)),
            ]
        )
        servicer = InferenceServicer(dataplane)
        handlers = {
            method.name: grpc.unary_unary_rpc_method_handler(
                getattr(servicer, method.name),
                request_deserializer=message_factory.GetMessageClass(method.input_type).FromString,
                response_serializer=message_factory.GetMessageClass(
                    method.output_type
                ).SerializeToString,
            )
            for method in SERVICE.methods
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),)
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.address = f"{settings.host}:{settings.grpc_port}"
        self.server.add_insecure_port(self.address)

    async def start(self) -> None:
        await self.server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.dataplane.on_drain(self._begin_stop)
        log.info("gRPC listening on %s", self.address)

    def _begin_stop(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._stop())

    async def _stop(self) -> None:
        await self.health.enter_graceful_shutdown()
        # The data plane answers what is left when the drain time is over (UNAVAILABLE); gRPC's
        # own grace, which cancels without an answer, comes later.
        await self.server.stop(grace=self.dataplane.settings.drain_timeout_s + 2)

    async def stop(self) -> None:
        """Returns once every RPC has been answered and the port is closed."""
        self._begin_stop()
        await self._stopping
