"""One request's lifecycle, the same for every transport: the one context that REST's middleware and
gRPC's servicer enter when a request arrives and leave once its answer is written.

    with RequestContext(dataplane, target, request_id) as context:
        context.trace(name, carrier, attributes)    # its SERVER span, where tracing is on
        try:
            ...                                     # the transport's translation
        except BaseException as error:
            failure = context.failure(error)        # what to answer, whatever went wrong
        context.finish(endpoint, status, ok, fault)  # the outcome, in the transport's words

Inside: the request id (every log line carries it), the data plane's `Call` (deadline, leases,
memory: given back on leaving), the error → outcome mapping (a data-plane cancellation is a
deadline or shutdown error, an unexpected error is logged once and answered as INTERNAL, a client
that left gets no answer), and on leaving the Prometheus counters and latency, the access-log line
and the span's end. A transport only says what its status words are.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import time

from opentelemetry.trace import Span

from service import logs, tracing
from service.dataplane import Call, ClientDisconnectedError, DataPlane, deadline_error
from service.errors import Kind, ServiceError, UnavailableError

log = logging.getLogger("service")
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


def new_request_id() -> str:
    """32 hex digits, as a uuid4's: a random prefix drawn once per process, then a count. Unique
    without a system call per request (os.urandom is one); an id is a name, not a secret."""
    return f"{_ID_PREFIX}{next(_ID_COUNT):016x}"


_ID_PREFIX = os.urandom(8).hex()
_ID_COUNT = itertools.count(int.from_bytes(os.urandom(4)))


class RequestContext:
    __slots__ = (
        "_id_token",
        "_trace_token",
        "call",
        "endpoint",
        "fault",
        "ok",
        "plane",
        "prediction",
        "request_id",
        "span",
        "started",
        "status",
        "target",
    )

    def __init__(self, plane: DataPlane, target: str, request_id: str = ""):
        """`target`: what the request asks for, in its transport's words (for the log)."""
        self.plane = plane
        self.target = target
        # A client's own id is kept (cut); else one unique to this process and request.
        self.request_id = request_id[:200] or new_request_id()
        self.span: Span | None = None
        self.endpoint = "unmatched"
        self.status = "INTERNAL"
        self.ok = False
        self.fault = True
        self.prediction = False  # counted per model version, as Triton's inference metrics

    def __enter__(self) -> RequestContext:
        self.started = time.perf_counter()
        self._id_token = logs.request_id.set(self.request_id)
        self.call: Call = self.plane.begin()
        return self

    def trace(self, name: str, carrier: dict[str, str], attributes: dict) -> Span | None:
        """The request's SERVER span where tracing is on, continued from `carrier`'s traceparent
        and made the current span (the data plane's spans are its children)."""
        if self.plane.tracer is not None:
            self.span, self._trace_token = tracing.start_server(
                self.plane.tracer, name, carrier, attributes
            )
        return self.span

    def failure(self, error: BaseException) -> ServiceError | None:
        """What the request is answered for `error`, in the data plane's kinds; None where there
        is no one to answer. A cancellation that is not the data plane's is raised again."""
        call = self.call
        if isinstance(error, asyncio.CancelledError):
            if call.reason is None:
                raise error
            asyncio.current_task().uncancel()  # the data plane's: deadline, shutdown, or gone
            return None if call.reason == "disconnected" else deadline_error(call)
        if isinstance(error, ClientDisconnectedError):
            return None
        if isinstance(error, ServiceError):
            return error
        if isinstance(error, OSError) and error.errno in OUT_OF_DESCRIPTORS:
            log.error("out of file descriptors: %s", error)
            return UnavailableError("the service is out of file descriptors; retry later")
        log.error("unhandled error in %s", self.target, exc_info=error)
        return ServiceError("internal error; see the service log", kind=Kind.INTERNAL)

    def finish(self, endpoint: str, status: str, ok: bool, fault: bool) -> None:
        """The request's outcome in its transport's words: the endpoint that took it (for the
        metrics), its status, whether it succeeded, and whether its failure is the server's
        fault (the span's error: a client's bad input is not)."""
        self.endpoint, self.status, self.ok, self.fault = endpoint, status, ok, fault

    def __exit__(self, *exc) -> None:
        seconds = time.perf_counter() - self.started
        call, plane = self.call, self.plane
        plane.end(call)
        model = call.model
        name, version = (model.name, str(model.version)) if model else ("", "")
        plane.metrics.request(self.endpoint, name, version, self.status, seconds)
        if model is not None and self.prediction:
            plane.metrics.version(model.name, model.version).request(self.ok, seconds)
        if plane.settings.access_log:
            log.info(
                "%s %s %s %.1f ms",
                self.target,
                self.status,
                f"{name}/{version}" if model else "-",
                seconds * 1000,
            )
        if self.span is not None:
            tracing.end_server(self.span, self._trace_token, model, self.fault)
        logs.request_id.reset(self._id_token)
