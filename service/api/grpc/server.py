"""The gRPC listener of one worker process, on `SERVICE_GRPC_PORT` beside HTTP, started and stopped
by the composition root (`service.server`) with the rest.

Every call goes through the request lifecycle (`service.lifecycle`) as an HTTP request does, and
its message is read only once memory for it has been admitted: each method is registered as
request-streaming with no deserializer, so grpcio hands over the call before its message and the
message as bytes. grpcio would otherwise receive and parse every message before any handler runs
(100 calls of 8 MiB: 1.4 GB); its flow-control window stays at 64 KiB per call while the call
waits (BDP probing off: it would grow the window to the message's size), so a call waiting for
memory holds next to nothing (`python -m loadtest memory`).

Shutdown: when the data plane begins to drain (SIGTERM), health turns NOT_SERVING and new calls
are answered UNAVAILABLE (which clients retry) while those in flight are answered; the listener
closes when none is left, or when the drain time is over (the data plane answers what is still
running then, UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2

import grpc
from service import tracing
from service.admission import BINARY_COPIES, ENTRY_BYTES
from service.api.grpc.messages import METHODS, SERVICE_NAME, messages
from service.api.grpc.servicer import InferenceServicer, status_of
from service.dataplane import DataPlane
from service.errors import BadInputError, ServiceError
from service.lifecycle import RequestContext

log = logging.getLogger(__name__)

HEALTH_SERVICE = "grpc.health.v1.Health"
# A message read is held as bytes, as the parsed message, as the array of its tensor and as that
# array's copy in a batch: reserved for the largest message before it is read, cut to its size's
# worth once it is.
MESSAGE_COPIES = BINARY_COPIES + 1
# A message this small is counted by its size alone, without a look at the model it names.
SMALL_MESSAGE = 4096
# gRPC's deadline timer fires up to about a millisecond before time.monotonic() reaches the same
# deadline: a cancellation this close to it is the deadline's, not a client that left.
DEADLINE_SLACK_S = 0.01
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
CANCELLED = grpc.StatusCode.CANCELLED
SHUTTING_DOWN = "the service is shutting down; send the request again"


class Reservation:
    """Memory held in the budget by something that is not a request (a health probe's read)."""

    memory = 0


class GrpcServer:
    def __init__(self, dataplane: DataPlane):
        self.dataplane = dataplane
        settings = dataplane.settings
        self.read_reservation = settings.max_body_bytes * MESSAGE_COPIES
        self.health = health.aio.HealthServicer()
        self.closing = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self.server = grpc.aio.server(
            options=[
                # A larger message is refused by gRPC, RESOURCE_EXHAUSTED, before it is read.
                ("grpc.max_receive_message_length", settings.max_body_bytes),
                ("grpc.http2.bdp_probe", 0),
                # Worker processes share the port (the kernel spreads connections among them);
                # a single worker fails to start where another process holds it.
                ("grpc.so_reuseport", int(settings.workers > 1)),
            ]
        )
        servicer = InferenceServicer(dataplane)
        handlers = {
            name: grpc.stream_unary_rpc_method_handler(
                self._call(name, request, getattr(servicer, name)),
                response_serializer=response.SerializeToString,
            )
            for name, (request, response) in METHODS.items()
        }
        health_handlers = {
            "Check": grpc.stream_unary_rpc_method_handler(
                self._probe(self.health.Check),
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            ),
            "Watch": grpc.stream_stream_rpc_method_handler(
                self._probe(self.health.Watch),
                response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
            ),
        }
        self.server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),
                grpc.method_handlers_generic_handler(HEALTH_SERVICE, health_handlers),
            )
        )
        self.address = f"{settings.host}:{settings.grpc_port}"
        self.server.add_insecure_port(self.address)

    # -- a call

    async def _read(self, holder, context: grpc.aio.ServicerContext, message_class):
        """The call's message, read once memory for it is admitted, then parsed."""
        plane = self.dataplane
        await plane.memory.reserve(holder, self.read_reservation)
        data = await context.read()
        if data is grpc.aio.EOF:
            raise BadInputError("the call carries no request message", "request")
        try:
            message = await plane.decode(data, message_class.FromString)
        except DecodeError:
            raise BadInputError(f"not a {message_class.__name__} message", "request") from None
        entries = self._entries_cost(message) if len(data) > SMALL_MESSAGE else 0
        plane.memory.shrink(holder, len(data) * MESSAGE_COPIES + entries)
        return message

    def _entries_cost(self, message) -> int:
        """What the numbers of a ModelInfer message for a sparse text model cost beyond the
        message: each becomes an entry of its batch; typed contents can hold an id in one byte
        of the message and take 8 in their field and 8 in their array."""
        if not isinstance(message, messages.ModelInferRequest):
            return 0
        try:
            model = self.dataplane.registry.get(message.model_name, message.model_version or None)
        except ServiceError:
            return 0  # answered as not found by the servicer
        if not model.sparse:
            return 0
        numbers = sum(math.prod(tensor.shape) for tensor in message.inputs)
        return numbers * (ENTRY_BYTES if message.raw_input_contents else ENTRY_BYTES + 16)

    def _call(self, method: str, message_class, handler: Callable[..., Awaitable]):
        """One RPC through the request lifecycle: its deadline (the server's, or the client's
        where sooner), its message admitted and read, every error answered with its status."""

        async def run(requests, context: grpc.aio.ServicerContext):
            if self.closing:
                await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
            self._enter()
            try:
                status, message, answer = await self._run(method, message_class, handler, context)
            finally:
                self._leave()
            if status is grpc.StatusCode.OK:
                return answer
            await context.abort(status, message)

        return run

    async def _run(self, method: str, message_class, handler, context):
        metadata = dict(context.invocation_metadata() or ())
        status, message, answer = grpc.StatusCode.INTERNAL, "", None
        target = f"gRPC {method}"
        with RequestContext(self.dataplane, target, metadata.get("x-request-id", "")) as request:
            call = request.call
            remaining = context.time_remaining()
            if remaining is not None:
                call.shorten(remaining)
            span = None
            if method not in UNTRACED:
                attributes = tracing.rpc_attributes(SERVICE_NAME, method)
                span = request.trace(f"{SERVICE_NAME}/{method}", metadata, attributes)
                if span is not None:
                    await context.send_initial_metadata(tracing.response_metadata(span))
            request.prediction = method == "ModelInfer"
            try:
                parsed = await self._read(call, context, message_class)
                answer = await handler(call, parsed, context)
                status = grpc.StatusCode.OK
            except asyncio.CancelledError:
                if call.reason is not None:  # the data plane's: deadline or shutdown
                    failure = request.failure(asyncio.CancelledError())
                    status, message = status_of(failure) if failure else (CANCELLED, "")
                else:  # gRPC's: the client left, or its deadline passed
                    expired = time.monotonic() >= call.deadline - DEADLINE_SLACK_S
                    call.reason = "deadline" if expired else "disconnected"
                    status = (
                        grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
                    )
                    self._finish(request, method, status, span)
                    raise
            except Exception as error:
                status, message = status_of(request.failure(error))
            self._finish(request, method, status, span)
        return status, message, answer

    @staticmethod
    def _finish(request: RequestContext, method: str, status: grpc.StatusCode, span) -> None:
        if span is not None:
            span.set_attribute("rpc.grpc.status_code", status.value[0])
        ok, fault = status is grpc.StatusCode.OK, status in SERVER_FAULTS
        request.finish(f"/{SERVICE_NAME}/{method}", status.name, ok=ok, fault=fault)

    def _probe(self, check: Callable[..., Awaitable]):
        """A health RPC: its message admitted and read as any other, no lifecycle (a probe has
        no deadline of the service's; Watch lasts as long as the client likes)."""

        async def run(requests, context: grpc.aio.ServicerContext):
            holder = Reservation()
            try:
                request = await self._read(holder, context, health_pb2.HealthCheckRequest)
            except BadInputError as error:
                await context.abort(*status_of(error))
            finally:
                self.dataplane.memory.release(holder)
            return await check(request, context)

        return run

    def _enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        self.in_flight -= 1
        if not self.in_flight:
            self._idle.set()

    # -- start and stop

    async def start(self) -> None:
        await self.server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.dataplane.on_drain(self._begin_drain)
        log.info("gRPC listening on %s", self.address)

    def _begin_drain(self) -> None:
        """New calls are refused from now on; health says NOT_SERVING."""
        self.closing = True
        asyncio.get_running_loop().create_task(self.health.enter_graceful_shutdown())

    async def stop(self) -> None:
        """Returns once every call admitted has been answered and the port is closed."""
        self._begin_drain()
        deadline = self.dataplane.drain_deadline or time.monotonic()
        if self.in_flight:
            # The data plane answers what is left at the drain deadline; a moment for it to.
            remaining = max(deadline - time.monotonic(), 0) + 1
            try:
                await asyncio.wait_for(self._idle.wait(), remaining)
            except TimeoutError:
                log.warning("gRPC stopped with %d calls still in flight", self.in_flight)
        await self.server.stop(grace=1)
